/* hc_core.h — the one interface between a replicated sans-I/O core (the CRDT map today; the registry and
 * the supervisor next) and the host that runs it.
 *
 * A core is a pure state machine. Events go in through the functions of hc_core_ops, always with the time
 * (hc_time: monotonic milliseconds for deadlines, wall-clock milliseconds only for HLC stamps); effects come
 * out as data, popped one at a time with pop_effect until it returns false. The core never does I/O, never
 * reads a clock and never sees a runtime type: peers are opaque handles the host chose, callers are opaque
 * tokens, monitors are ids the core chose. The same core therefore runs under the real runtime (hordec) and
 * under the deterministic simulator, unchanged.
 *
 * The host owns everything that is the same for every core: the peer table ({name, node} <-> handle), the
 * envelope around peer messages, timers, re-dialling, subscribers and change streams, and turning effects
 * into sends, replies, monitors and exit signals. A core only decodes its own requests. */
#ifndef HORDEC_HC_CORE_H
#define HORDEC_HC_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hordec/hc_common.h"
#include "hordec/hc_export.h"
#include "hordec/hc_term.h"

HC_BEGIN_DECLS

typedef enum hc_effect_kind {
    HC_EFF_SEND_PEER = 1, /* `data` to the replica behind peer handle `peer` */
    HC_EFF_SEND_PID,      /* `data` (a message) to `pid` */
    HC_EFF_REPLY,         /* `data` is the reply to the request behind `token`; exactly one per request */
    HC_EFF_MONITOR,       /* monitor `pid`; the core names the monitor `id` (unique among its live monitors) */
    HC_EFF_DEMONITOR,     /* drop monitor `id`; no down arrives for it afterwards */
    HC_EFF_EXIT,          /* exit signal to `pid` with reason `data` */
    HC_EFF_EVENT,         /* the observable map changed: key `data` now maps to `value` (NULL: removed) */
    HC_EFF_NEIGHBOURS,    /* replace the neighbour set: `data` is a list term [{Name, Node}] (a core whose
                           * membership is replicated data, like the registry, steers its own sync this way) */
    HC_EFF_LOCAL,         /* an action for the process hosting the core, `data` a term the core documents (the
                           * supervisor: start or stop a C worker of this node). The host hands it to its env,
                           * which may give back a result term; the host feeds that to ops->local right after
                           * the effects it is draining, so the core sees the outcome before any other input */
} hc_effect_kind;

/* One effect. Pointers are borrowed: valid until the next pop_effect or any other call into the core. */
typedef struct hc_effect {
    hc_effect_kind kind;
    uint64_t peer;       /* SEND_PEER */
    uint64_t token;      /* REPLY */
    uint64_t id;         /* MONITOR, DEMONITOR */
    hc_pid pid;          /* SEND_PID, MONITOR, EXIT */
    const uint8_t *data; /* ETF without the version byte: message, reply, reason, or the event's key */
    size_t len;
    const uint8_t *value; /* EVENT: the key's new value, NULL when the key was removed */
    size_t value_len;
} hc_effect;

/* A neighbour as the host knows it: the handle the core uses, and who it is (its registered name and
 * node), so that a core can relate replicated membership data to reachability. */
typedef struct hc_core_peer {
    uint64_t handle;
    hc_atom name, node;
} hc_core_peer;

/* Called for each entry of a core's observable map (change-stream snapshots). Non-zero stops the walk. */
typedef int (*hc_core_visit_fn)(void *ud, const uint8_t *key, size_t key_len, const uint8_t *val, size_t val_len);

/* What the host knows that a core's stats reply may include. */
typedef struct hc_host_stats {
    size_t neighbours;
    size_t subscribers;
    uint64_t dropped_in; /* peer messages the host refused before the core saw them (not a neighbour, no envelope) */
    bool core_busy;      /* set by the core: work of its own is still being done a slice at a time (not idle) */
} hc_host_stats;

/* The operations a core implements. `core` is the core's own state pointer. Every function that takes a
 * `now` may queue effects. Functions returning int return HC_OK or an HC_E* code; a rejected input changes
 * nothing in the core but its counters. */
typedef struct hc_core_ops {
    const char *kind; /* "crdt", "registry", ... (logs) */
    /* A message from the replica behind `peer` (the envelope already removed). */
    int (*receive)(void *core, uint64_t peer, const uint8_t *msg, size_t len, hc_time now);
    /* A client request (a GenServer.call the host did not handle itself). `from` is the caller's pid. The
     * core must eventually emit exactly one HC_EFF_REPLY carrying `token`, also for a request it does not
     * understand. */
    void (*request)(void *core, uint64_t token, const hc_pid *from, const uint8_t *req, size_t len, hc_time now);
    /* Runs whatever is due at now.mono_ms. */
    int (*tick)(void *core, hc_time now);
    /* The earliest now.mono_ms at which tick must run, or HC_NO_DEADLINE. */
    uint64_t (*next_deadline)(const void *core);
    /* The neighbour set changed (the replicas this one syncs with; handles stay stable for a given
     * {name, node} as long as it stays a neighbour). */
    int (*set_peers)(void *core, const hc_core_peer *peers, size_t n, hc_time now);
    /* Reachability of a neighbour as the host sees it (nodeup / nodedown). */
    int (*peer_up)(void *core, uint64_t peer, hc_time now);
    int (*peer_down)(void *core, uint64_t peer, hc_time now);
    /* A monitor the core asked for fired (also with reason noproc / noconnection). May be NULL. */
    void (*monitor_down)(void *core, uint64_t id, const hc_pid *pid, const uint8_t *reason, size_t len, hc_time now);
    /* Pops the oldest effect; false when there is none. */
    bool (*pop_effect)(void *core, hc_effect *out);
    /* Walks the observable map (what change-stream subscribers mirror), in no particular order. */
    int (*snapshot)(const void *core, hc_core_visit_fn fn, void *ud);
    /* Appends the reply to a `stats` request (a map term) to `out`, including what the host reports. */
    int (*stats)(const void *core, const hc_host_stats *host, hc_buf *out);
    /* Frees the core. */
    void (*free)(void *core);
    /* A term from the process hosting the core (the result of an HC_EFF_LOCAL action, or an event only that
     * process sees). NULL for cores without local actions. */
    int (*local)(void *core, const uint8_t *msg, size_t len, hc_time now);
    /* True for a core whose membership is replicated data (the registry): the host then also accepts a replica
     * message from a process registered under the core's own name on another node that is not (yet) a
     * neighbour — it adds it as one and delivers the message — so a replica nobody told its membership learns
     * it from the first member that contacts it. The core's next HC_EFF_NEIGHBOURS decides who stays. */
    bool adopt_peers;
    /* Any node became reachable (not only a neighbour's: a BEAM member's too), so that a core can check again what
     * it concluded while that node was cut off. May be NULL. */
    void (*node_up)(void *core, hc_atom node, hc_time now);
    /* Optional (all three, or none: then `snapshot` walks the map in one go): the observable map handed out a
     * slice at a time AS IT WAS WHEN OPENED, whatever changes meanwhile, so that the host sends a big change-stream
     * snapshot over several loop turns. (A key changed since the opening may instead come out in its newer shape or
     * not at all: the host holds the subscriber's diffs made since the opening and sends them after the last slice,
     * which brings every such key to its current state; see hc_crdt_snap_open.) snapshot_open makes a reader and says how many entries it will hand out
     * (HC_OK or HC_ENOMEM); snapshot_next calls fn for about `max` more entries and returns 1 while some remain,
     * HC_OK when done, fn's non-zero return or an error; snapshot_close frees a reader, done or not (also after the
     * core is freed). */
    int (*snapshot_open)(void *core, void **reader, size_t *count);
    int (*snapshot_next)(void *reader, size_t max, hc_core_visit_fn fn, void *ud);
    void (*snapshot_close)(void *reader);
} hc_core_ops;

/* ---- for core authors: the queue of replies a core has built but not yet handed out ----
 *
 * A core answers each request by pushing the reply's term; pop_effect hands replies out in order. A reply whose
 * encoding failed (body->err) becomes {error, enomem}, so the caller is always answered. */
typedef struct hc_reply_queue {
    struct hc_queued_reply *q;
    size_t n, cap, head;
    hc_buf popped; /* the reply handed out last, kept until the next pop */
} hc_reply_queue;

/* Takes body's bytes (body is left empty). If even the queue cannot grow, the reply is dropped and the caller's
 * call times out: the only case a request goes unanswered, and only out of memory. */
void hc_reply_queue_push(hc_reply_queue *q, uint64_t token, hc_buf *body);
/* Pushes the atom `atom`, or {error, Reason} for hc_reply_queue_push_error. */
void hc_reply_queue_push_atom(hc_reply_queue *q, uint64_t token, const char *atom);
void hc_reply_queue_push_error(hc_reply_queue *q, uint64_t token, const char *reason);
/* Fills *out with the oldest reply as an HC_EFF_REPLY; false when there is none. */
bool hc_reply_queue_pop(hc_reply_queue *q, hc_effect *out);
static inline bool hc_reply_queue_pending(const hc_reply_queue *q) { return q->head < q->n; }
void hc_reply_queue_free(hc_reply_queue *q);

/* ---- for core authors: the queue of a core's own effects (everything but replies and the engine's messages) ----
 *
 * Effects are handed out in the order they were pushed; their data is the queue's until the next pop. An effect
 * whose term failed to encode (data->err) is dropped when popped: a half-built term never leaves. If the queue
 * cannot grow, the effect is lost and counted in `lost`. */
typedef struct hc_effect_queue {
    struct hc_queued_effect *q;
    size_t n, cap, head;
    hc_buf popped; /* the data of the effect handed out last */
    uint64_t lost;
} hc_effect_queue;

/* Queues an effect; `data` (may be NULL) is taken (left empty). */
void hc_effect_queue_push(hc_effect_queue *q, hc_effect_kind kind, const hc_pid *pid, uint64_t id, uint64_t peer,
                          hc_buf *data);
/* Queues an HC_EFF_EVENT for `key` (NULL: append the key to the returned buffer yourself), a removal until
 * hc_effect_queue_event_value gives it a value. Returns the event's buffer, NULL when out of memory. */
hc_buf *hc_effect_queue_push_event(hc_effect_queue *q, const uint8_t *key, size_t klen);
/* The key of the event pushed last is complete: `val` (NULL: removed) follows it. */
void hc_effect_queue_event_value(hc_effect_queue *q, const uint8_t *val, size_t vlen);
bool hc_effect_queue_pop(hc_effect_queue *q, hc_effect *out);
static inline bool hc_effect_queue_pending(const hc_effect_queue *q) { return q->head < q->n; }
void hc_effect_queue_free(hc_effect_queue *q);

HC_END_DECLS
#endif
