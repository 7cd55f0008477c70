/* replicas.h — the daemon's replicated cores: starting a named replica of the CRDT map, or of a registry, in
 * this node. */
#ifndef HORDEC_DAEMON_REPLICAS_H
#define HORDEC_DAEMON_REPLICAS_H

#include "hordec/hc_registry.h"
#include "hordec/hc_runtime.h"

typedef struct hordec_crdt_opts {
    uint32_t flush_interval_ms;   /* 0 = the engine's default */
    size_t max_message_bytes;     /* 0 = the engine's default */
    size_t stream_batch_bytes;    /* 0 = the host's default */
    uint64_t max_clock_offset_ms; /* 0 = the daemon's (hordec_set_clock_offset) */
} hordec_crdt_opts;

/* The clock bound of replicas started without one (--max-clock-offset-ms; 0 = the engine's default, 60 s). */
#define HORDEC_MAX_CLOCK_OFFSET_MS (INT64_C(1) << 40)
void hordec_set_clock_offset(uint64_t ms);
/* `ms`, or the daemon's bound when it is 0. */
uint64_t hordec_clock_offset(uint64_t ms);

/* Starts CRDT replica `name` (or returns the running one in *out). HC_OK, HC_EEXIST if the name is taken by
 * something that is not a CRDT replica, HC_ENOMEM. */
int hordec_crdt_start(hc_rt *rt, hc_atom name, const hordec_crdt_opts *opts, hc_proc **out);
/* True if `p` is a CRDT replica process. */
bool hordec_is_crdt(const hc_proc *p);

typedef struct hordec_registry_opts {
    hc_registry_keys keys;        /* 0: unique for a new replica, whatever a running one has */
    uint32_t flush_interval_ms;   /* 0 = the engine's default */
    size_t max_message_bytes;     /* 0 = the engine's default; all replicas of a registry must agree */
    size_t stream_batch_bytes;    /* 0 = the host's default */
    uint64_t max_clock_offset_ms; /* 0 = the daemon's (hordec_set_clock_offset) */
} hordec_registry_opts;

/* Starts registry replica `name` (or returns the running one in *out). HC_OK; HC_EEXIST if the name is taken by
 * something that is not a registry replica; HC_ESTATE if a replica of that name runs with the other kind of
 * keys (*running says which); HC_ENOMEM. */
int hordec_registry_start(hc_rt *rt, hc_atom name, const hordec_registry_opts *opts, hc_proc **out,
                          hc_registry_keys *running);
/* True if `p` is a registry replica process. */
bool hordec_is_registry(const hc_proc *p);

#endif
