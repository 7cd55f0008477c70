/* simnet.h — the simulated world every HordeC simulation runs in: one PRNG, simulated time and clocks,
 * nodes that crash and restart, distribution connections that are dialled, cut by partitions and noticed
 * late, and a network that delays, drops, duplicates, reorders and damages messages.
 *
 * Everything random comes from the one PRNG seeded at simnet_init, and events at the same millisecond run
 * in the order they were scheduled, so a seed replays bit for bit (simnet's trace hash checks it).
 *
 * A scenario (the CRDT simulation, later the registry and supervisor ones) adds its nodes, gives a handler
 * that receives what happens (a message arrives, a timer fires, a node sees a connection come up or go
 * down) and drives time with simnet_run_until. Functions a host's env calls from inside a host call
 * (send, connect, is_connected, timer_set) only schedule: no handler runs re-entrantly.
 *
 * The model:
 *   - messages go to a registered name on a node, or to a pid; the sending node dials the receiving one
 *     when they are not connected (as distribution auto-connects), and a message is delivered when its
 *     destination node is alive and reachable then (same partition group, or either node unpartitionable);
 *   - with faults on, each message may be lost, delivered twice, or followed by a damaged copy (truncated,
 *     or changed by the scenario's corrupt hook: damage must be detectable, as ETF truncation is); latency
 *     is 1..max_delay_ms, per node pair in order unless the message is picked for reordering; with faults
 *     off nothing is lost and each pair is FIFO with 1..3 ms latency;
 *   - a connection comes up 1..dial_ms after a dial if both ends are alive and reachable then, and both
 *     ends see it come up; a partition cuts connections, which each end notices 1..detect_ms later (until
 *     then messages across it are silently lost); a node crash cuts its connections at once. */
#ifndef HORDEC_SIM_SIMNET_H
#define HORDEC_SIM_SIMNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hordec/hc_common.h"
#include "hordec/hc_term.h"

#define SIMNET_MAX_NODES 32

typedef struct simnet_msg {
    uint64_t at; /* delivery time */
    int from_node, to_node;
    hc_pid from;     /* the sending process */
    hc_atom to_name; /* non-zero: to the process registered as to_name on to_node */
    hc_pid to_pid;   /* otherwise: to this process */
    uint8_t *data;
    size_t len;
} simnet_msg;

typedef struct simnet_faults {
    unsigned drop_pm, dup_pm, corrupt_pm; /* per message, permille */
    unsigned reorder_pm;                  /* permille of messages that ignore the per-pair order */
    unsigned max_delay_ms;                /* latency 1..max_delay_ms */
    unsigned dial_ms;                     /* a dial takes 1..dial_ms */
    unsigned detect_ms;                   /* a partitioned connection is noticed after 1..detect_ms */
} simnet_faults;

/* What a scenario gets told. Each returns 0, or -1 after recording a failure with simnet_fail. */
typedef struct simnet_handler {
    void *ud;
    /* `m` reached its node (alive and reachable); the bytes are valid during the call. */
    int (*deliver)(void *ud, const simnet_msg *m);
    /* Timer `id` fired (it is disarmed first: re-arm it to fire again). */
    int (*timer)(void *ud, int id);
    /* Node `at` (alive) sees its connection to `about` come up or go down. */
    int (*node_event)(void *ud, int at, int about, bool up);
    /* Optional: damage `m` in place (it may shorten m->len); false to have it truncated instead. */
    bool (*corrupt)(void *ud, simnet_msg *m);
} simnet_handler;

typedef struct simnet_node {
    hc_atom atom;
    bool alive;
    bool partitionable;   /* false: reachable from every node whatever the partition (client nodes) */
    int group;            /* partition group */
    uint64_t mono_origin; /* its monotonic clock reads now + mono_origin */
    int64_t skew;         /* its wall clock reads now + skew */
} simnet_node;

typedef struct simnet_event simnet_event;

typedef struct simnet {
    uint64_t rng;
    uint64_t now; /* global simulated milliseconds */
    simnet_handler h;
    simnet_node nodes[SIMNET_MAX_NODES];
    int n_nodes;
    bool faults_on;
    simnet_faults faults;
    bool conn[SIMNET_MAX_NODES][SIMNET_MAX_NODES];
    bool dialing[SIMNET_MAX_NODES][SIMNET_MAX_NODES];
    bool detecting[SIMNET_MAX_NODES][SIMNET_MAX_NODES];
    uint64_t last_at[SIMNET_MAX_NODES][SIMNET_MAX_NODES]; /* per-pair order */
    simnet_event *heap;
    size_t n_heap, cap_heap, in_flight;
    uint64_t order;
    uint64_t *timers; /* by id: global time, or HC_NO_DEADLINE */
    size_t n_timers;
    /* what happened */
    uint64_t trace_hash, delivered, bytes, lost, dropped, duplicated, damaged, reordered;
    uint64_t dials, connects, disconnects;
    bool failed;
    char fail_msg[512];
    uint64_t fail_t;
} simnet;

/* Starts an empty world at time `start` with the PRNG seeded from `seed`; faults off. */
void simnet_init(simnet *n, uint64_t seed, uint64_t start, const simnet_handler *h);
/* Frees messages in flight and timers. */
void simnet_free(simnet *n);

/* ---- randomness: the only source in a simulation ---- */
uint64_t simnet_rnd(simnet *n);
uint64_t simnet_below(simnet *n, uint64_t k); /* 0..k-1 (0 when k is 0) */
bool simnet_permille(simnet *n, unsigned p);

/* ---- failures: the first one is kept, with the time it happened ---- */
int simnet_fail(simnet *n, const char *fmt, ...) __attribute__((format(printf, 2, 3))); /* returns -1 */

/* ---- nodes and clocks ---- */

/* Adds an alive node named `name` (interned); returns its index. */
int simnet_add_node(simnet *n, const char *name, bool partitionable, uint64_t mono_origin, int64_t skew);
int simnet_node_of(const simnet *n, hc_atom node); /* index, or -1 if not a node of this world */
hc_time simnet_time(const simnet *n, int node);    /* the node's clocks now */
/* The global time at which the node's monotonic clock reads `mono` (never before now). */
uint64_t simnet_global(const simnet *n, int node, uint64_t mono);
/* Cuts its connections; the other ends notice at once (a handler failure shows in n->failed). */
void simnet_crash(simnet *n, int node);
void simnet_restart(simnet *n, int node); /* alive again, with no connections */
/* New partition: node i goes to group[i] (unpartitionable nodes ignore it). Cut connections are noticed
 * later; a group of 0 for everyone heals. */
void simnet_partition(simnet *n, const int *group);
bool simnet_reachable(const simnet *n, int a, int b);
void simnet_set_faults(simnet *n, bool on, const simnet_faults *f); /* f may be NULL: keep the rates */

/* ---- connections ---- */
bool simnet_connected(const simnet *n, int a, int b);
void simnet_connect(simnet *n, int from, int to); /* dials unless connected or dialling */
/* Cuts the connection now (a flap); both ends notice at once. -1 if a handler failed. */
int simnet_disconnect(simnet *n, int a, int b);

/* ---- messages and timers ---- */
void simnet_send_name(simnet *n, const hc_pid *from, int to_node, hc_atom name, const uint8_t *data, size_t len);
void simnet_send_pid(simnet *n, const hc_pid *from, const hc_pid *to, const uint8_t *data, size_t len);
/* Arms timer `id` (small integers chosen by the scenario) for global time `at`; HC_NO_DEADLINE disarms. */
void simnet_timer_set(simnet *n, int id, uint64_t at);

/* Runs every delivery, connection event and timer up to time t, in time order; now is t afterwards.
 * 0, or -1 when a handler failed. */
int simnet_run_until(simnet *n, uint64_t t);
size_t simnet_in_flight(const simnet *n);              /* messages on the wire */
size_t simnet_in_flight_to(const simnet *n, int node); /* ... on their way to `node` */

#endif
