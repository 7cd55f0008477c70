/* sim_crdt.h — the CRDT scenario of hordec-sim (sim_crdt.c) and the engine benchmark (sim_bench.c). */
#ifndef HORDEC_SIM_SIM_CRDT_H
#define HORDEC_SIM_SIM_CRDT_H

#include <stddef.h>
#include <stdint.h>

typedef struct sim_crdt_opts {
    int rmin, rmax; /* replicas per run, drawn from the seed */
    int ops;        /* chaos steps */
} sim_crdt_opts;

/* What a batch of runs did, summed over the runs (printed by main). */
typedef struct sim_totals {
    uint64_t delivered, bytes, lost, dropped, duplicated, damaged, reordered, connects, disconnects; /* network */
    uint64_t requests, injected, dropped_in, rejected;                                               /* hosts */
    uint64_t mirrors, subscriptions, kills, unsubscribes, stream_msgs, gaps, stream_dups, stream_stale,
        stream_damaged;   /* change streams */
    uint64_t max_payload; /* the largest stream payload a mirror saw (a maximum, not a sum) */
} sim_totals;

typedef struct sim_result {
    uint64_t trace_hash, delivered; /* of this run: a replay must match both */
    uint64_t fail_t;                /* when it failed (simulated ms) */
    char why[512];
} sim_result;

/* Runs one seed. 0 when every check passed; otherwise -1 with res->why. */
int sim_crdt_run(uint64_t seed, const sim_crdt_opts *o, sim_totals *tot, sim_result *res);
/* Interns every atom the scenario uses, in a fixed order, so runs do not depend on which ran before. */
void sim_crdt_atoms(void);
int sim_crdt_bench(void);

/* Keys {k, N} and values <<OpId:64, Padding/binary>>, as ETF without the version byte. */
size_t sim_key_term(uint8_t *out, uint32_t k);
uint8_t *sim_value_term(uint64_t op, size_t pad, size_t *len); /* malloc'd */

#endif
