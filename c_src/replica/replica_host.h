/* replica_host.h — a CRDT replica as a C process: it owns an hc_crdt, registers under the map's name,
 * ships the replica's sync messages over distribution to the same-named replicas of its neighbours, and
 * serves clients (HordeC.Crdt) with GenServer-style calls. The wire formats are in docs/protocol.md. */
#ifndef HORDEC_REPLICA_HOST_H
#define HORDEC_REPLICA_HOST_H

#include "hordec/hc_crdt.h"
#include "hordec/hc_runtime.h"

typedef struct hordec_replica_opts {
    uint32_t flush_interval_ms; /* 0 = the engine's default */
    size_t max_message_bytes;   /* 0 = the engine's default */
} hordec_replica_opts;

/* Starts replica `name` (or returns the running one in *out). HC_OK, HC_EEXIST if the name is taken by
 * something that is not a replica, HC_ENOMEM. */
int hordec_replica_start(hc_rt *rt, hc_atom name, const hordec_replica_opts *opts, hc_proc **out);
/* True if `p` is a replica process. */
bool hordec_is_replica(const hc_proc *p);

#endif
