/* host_rt.h — a host (host.h) running as a C process of the runtime: the replica of a core, registered
 * under its name, reached by peers with envelopes and by clients with GenServer calls.
 *
 * The binding is the only place where runtime types meet the host: it keeps the hc_gen_from of each call
 * behind the opaque token the core sees, turns monitor ids into runtime refs and back, arms one process
 * timer for the host's wake-up, and feeds node up/down events in. */
#ifndef HORDEC_HOST_HOST_RT_H
#define HORDEC_HOST_HOST_RT_H

#include "host/host.h"
#include "hordec/hc_runtime.h"

/* Carries out a core's HC_EFF_LOCAL action in the replica process `self` (see hc_host_env.local). */
typedef void (*hc_host_rt_local_fn)(hc_rt *rt, hc_proc *self, const uint8_t *action, size_t len, hc_buf *result,
                                    void *ud);

typedef struct hc_host_rt_opts {
    size_t stream_batch_bytes; /* 0: HC_HOST_STREAM_BATCH_BYTES */
    hc_host_rt_local_fn local; /* NULL: the core has no local actions */
    void *local_ud;
} hc_host_rt_opts;

/* Spawns the replica process registered as `name`, hosting `core` (owned from now on, also on failure).
 * HC_OK with the process in *out (may be NULL), HC_EEXIST if the name is taken, HC_ENOMEM. */
int hc_host_rt_start(hc_rt *rt, hc_atom name, const hc_core_ops *ops, void *core, const hc_host_rt_opts *opts,
                     hc_proc **out);
/* The time to give a core: the loop's monotonic milliseconds and the wall clock's. */
hc_time hc_host_rt_now(const hc_rt *rt);
/* The core operations of a replica process, or NULL if `p` is not one (tells a CRDT from a registry). */
const hc_core_ops *hc_host_rt_kind(const hc_proc *p);
/* The core a replica process hosts (NULL if `p` is not one); valid while the process lives. */
void *hc_host_rt_core(const hc_proc *p);
/* Appends the stats map of replica `p` (what a `stats` call answers) to out: metrics read it without a call.
 * HC_OK, HC_EINVAL if `p` is not a replica, or the encoder's error. */
int hc_host_rt_stats(const hc_proc *p, hc_buf *out);
/* Feeds a term to the core of replica `p` from its own node (hc_host_local), as if the process received it. */
void hc_host_rt_local(hc_rt *rt, hc_proc *p, const uint8_t *msg, size_t len);

#endif
