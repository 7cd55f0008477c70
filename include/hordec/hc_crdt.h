/* hc_crdt.h — a replicated add-wins / last-writer-wins map (AWLWWMap semantics) and its anti-entropy
 * protocol, as a sans-I/O state machine.
 *
 * The replica never touches sockets, clocks or randomness. The host feeds it local operations, messages
 * from peers and the current time as an hc_time (hc_common.h): every deadline is in its monotonic
 * milliseconds, and only the hybrid-logical-clock stamps of local writes read its wall-clock milliseconds
 * (which may jump either way: the HLC never goes backwards). After every call the host drains the effects:
 *
 *   hc_crdt_pop_message()  outgoing messages, each addressed to a peer handle (send as an Erlang message
 *                          to that peer replica's registered name);
 *   hc_crdt_pop_event()    change events of the *resolved* map (added / updated / removed);
 *   hc_crdt_next_deadline() when to call hc_crdt_tick() next (monotonic milliseconds).
 *
 * Keys and values are Erlang terms in external term format WITHOUT the leading 131 version byte. Key
 * identity is byte equality of that encoding. Wire messages produced here are also ETF without the
 * version byte; hc_crdt_receive() accepts them with or without it. See docs/crdt.md for the protocol.
 *
 * Peers are opaque `uint64_t` handles chosen by the host (it maps them to {name, node}). A replica only
 * talks to its neighbours (hc_crdt_set_neighbours and friends). All replicas of one map must use the same
 * max_message_bytes. Single-threaded: one replica must only be used from one thread at a time.
 *
 * Return codes are HC_OK or a negative HC_E* from hc_common.h; predicates and pops return bool. */
#ifndef HORDEC_HC_CRDT_H
#define HORDEC_HC_CRDT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hordec/hc_common.h"
#include "hordec/hc_core.h"
#include "hordec/hc_export.h"

HC_BEGIN_DECLS

typedef struct hc_crdt hc_crdt;

#define HC_CRDT_PROTOCOL_VERSION 1
#define HC_CRDT_MIN_MESSAGE_BYTES 4096
/* Bytes of a message reserved for framing around one key and one value. The largest value a put accepts
 * is max_message_bytes - HC_CRDT_VALUE_OVERHEAD - key_len; anything bigger fails with HC_ETOOBIG. */
#define HC_CRDT_VALUE_OVERHEAD 512
#define HC_CRDT_NO_DEADLINE HC_NO_DEADLINE

typedef struct hc_crdt_config {
    uint64_t replica_id;          /* non-zero; must be new whenever a replica starts without its old state */
    size_t max_message_bytes;     /* hard cap on every message this replica emits (default 1 MiB) */
    uint32_t flush_interval_ms;   /* local ops are batched for this long before deltas go out (default 5) */
    uint32_t retransmit_ms;       /* unacknowledged deltas / repair requests are re-sent after this (50) */
    uint32_t hello_interval_ms;   /* handshake retry while a peer's identity is unknown (100) */
    uint32_t digest_interval_ms;  /* idle anti-entropy check of root hashes with each neighbour (1000) */
    size_t max_unacked_bytes;     /* per-peer delta buffer; beyond it the peer is repaired instead (8 MiB) */
    uint32_t max_unacked_batches; /* same, counted in batches (4096) */
    uint32_t repair_window;       /* repair requests in flight per peer (4) */
    /* A message carrying a timestamp more than this far ahead of our wall clock is rejected as a whole,
     * counted (HC_CRDT_REJ_CLOCK) and logged (default HC_CRDT_DEFAULT_MAX_CLOCK_OFFSET_MS; 0 = the default).
     * See docs/crdt.md, "Clocks", for what happens to the writes of a node whose clock is off. */
    uint64_t max_clock_offset_ms;
} hc_crdt_config;

#define HC_CRDT_DEFAULT_MAX_CLOCK_OFFSET_MS 60000

/* Fills `cfg` with the defaults above for `replica_id`. */
void hc_crdt_config_init(hc_crdt_config *cfg, uint64_t replica_id);

/* Creates an empty replica. *out is owned by the caller (hc_crdt_free). HC_EINVAL on a zero replica id or
 * max_message_bytes < HC_CRDT_MIN_MESSAGE_BYTES; HC_ENOMEM. */
int hc_crdt_new(const hc_crdt_config *cfg, hc_time now, hc_crdt **out);
void hc_crdt_free(hc_crdt *r); /* NULL is fine */

/* "Restart with state": keeps the map, its causal context and the HLC, bumps the incarnation and forgets
 * every session, queued effect and in-flight message, as a crashed-and-reloaded process would. Neighbours
 * are kept but must re-handshake. (Restarting *empty* is hc_crdt_free + hc_crdt_new with a new id.) */
int hc_crdt_restart(hc_crdt *r, hc_time now);

/* ---- local operations (each may queue change events; deltas leave on the next flush) ---- */

/* Puts key => value (both ETF, copied). HC_EINVAL if either is not one well-formed term, HC_ETOOBIG if
 * the pair cannot fit in one message (see HC_CRDT_VALUE_OVERHEAD). */
int hc_crdt_put(hc_crdt *r, const uint8_t *key, size_t key_len, const uint8_t *val, size_t val_len, hc_time now);
/* Removes key (every value this replica has observed for it). Deleting an absent key is HC_OK. */
int hc_crdt_delete(hc_crdt *r, const uint8_t *key, size_t key_len, hc_time now);

typedef struct hc_crdt_kv {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value; /* NULL: delete the key */
    size_t value_len;
} hc_crdt_kv;
/* Applies ops in order as one batch (Horde's merge/drop). Validates all of them first: on error nothing
 * is applied. */
int hc_crdt_bulk(hc_crdt *r, const hc_crdt_kv *ops, size_t n, hc_time now);
/* Validates ops exactly as hc_crdt_bulk does, applying nothing: HC_OK or its error. For a caller that applies a
 * large batch in slices (one hc_crdt_bulk per loop turn) and must refuse it whole before the first slice. */
int hc_crdt_bulk_check(const hc_crdt *r, const hc_crdt_kv *ops, size_t n);

/* Looks up the resolved value. Returns true and sets *val and *val_len (borrowed, valid until the next call
 * that takes `r` non-const), or false when absent. */
bool hc_crdt_get(const hc_crdt *r, const uint8_t *key, size_t key_len, const uint8_t **val, size_t *val_len);

/* Calls fn for every key with its resolved value, in no particular order (to_map). A non-zero return from
 * fn stops the walk and is returned. The map must not be modified from inside fn. */
typedef int (*hc_crdt_visit_fn)(void *ud, const uint8_t *key, size_t key_len, const uint8_t *val, size_t val_len);
int hc_crdt_foreach(const hc_crdt *r, hc_crdt_visit_fn fn, void *ud);
size_t hc_crdt_size(const hc_crdt *r);

/* A reader of the whole map a slice at a time, for replies too big to build in one loop turn (to_map of a
 * large map): it walks the map AS IT WAS WHEN OPENED, whatever local writes and joins change meanwhile (it
 * keeps the old value of each key changed ahead of it, so it costs memory in proportion to those changes).
 * Open cursors must be closed (hc_crdt_cursor_close) before or after hc_crdt_free; after it they answer
 * HC_ESTATE. */
typedef struct hc_crdt_cursor hc_crdt_cursor;
int hc_crdt_cursor_open(hc_crdt *r, hc_crdt_cursor **out); /* HC_OK or HC_ENOMEM */
size_t hc_crdt_cursor_count(const hc_crdt_cursor *c);      /* the entries it hands out in all */
/* Calls fn for about `max` more entries (whole hash buckets: a few more may come), setting *visited (may be
 * NULL) to how many. Returns 1 while entries remain, HC_OK (0) when the walk is complete, fn's non-zero
 * return (which stops it), HC_ENOMEM (it could not keep an old value) or HC_ESTATE (the replica is gone). */
int hc_crdt_cursor_next(hc_crdt_cursor *c, size_t max, size_t *visited, hc_crdt_visit_fn fn, void *ud);
void hc_crdt_cursor_close(hc_crdt_cursor *c); /* NULL is fine */

/* A core built on the engine whose observable map is the engine's map translated entry by entry (the registry's,
 * the supervisor's) gets its sliced change-stream snapshot (hc_core_ops.snapshot_open/next/close) from these:
 * `translate` is called for each engine entry AS IT WAS WHEN OPENED, with a context holding the core and where to
 * put what it shows (`fn(ud, ...)`, and a scratch buffer). It translates through the core's state of the moment it
 * is called: an entry that changed since the opening may come out in its newer shape or not at all, and the
 * diffs the host holds for the subscriber until the snapshot is out bring every such key to its current state. */
typedef struct hc_crdt_snap_ctx {
    const void *core;
    hc_core_visit_fn fn;
    void *ud;
    hc_buf scratch;
} hc_crdt_snap_ctx;
int hc_crdt_snap_open(hc_crdt *r, const void *core, hc_crdt_visit_fn translate, void **reader, size_t *count);
int hc_crdt_snap_next(void *reader, size_t max, hc_core_visit_fn fn, void *ud);
void hc_crdt_snap_close(void *reader);

/* ---- neighbours and peers ---- */

/* Replaces the neighbour set. New neighbours are greeted and repaired; removed ones are forgotten
 * (their queued deltas and sessions dropped). HC_EINVAL on duplicates. */
int hc_crdt_set_neighbours(hc_crdt *r, const uint64_t *peers, size_t n, hc_time now);
/* The same from a host's peers (hc_core_ops.set_peers of a core built on the engine); when `kept` is not NULL, a
 * copy of the peers replaces *kept / *nkept on success (the core keeps who its neighbours are). */
int hc_crdt_set_peers(hc_crdt *r, const hc_core_peer *peers, size_t n, hc_core_peer **kept, size_t *nkept, hc_time now);
int hc_crdt_add_neighbour(hc_crdt *r, uint64_t peer, hc_time now);    /* HC_EEXIST if present */
int hc_crdt_remove_neighbour(hc_crdt *r, uint64_t peer, hc_time now); /* HC_EINVAL if absent */
/* The host's view of reachability (nodedown / nodeup). While down nothing is sent to the peer; deltas
 * keep queueing up to the bound. On up the peer is re-greeted and unacknowledged data re-sent. */
int hc_crdt_peer_down(hc_crdt *r, uint64_t peer, hc_time now);
int hc_crdt_peer_up(hc_crdt *r, uint64_t peer, hc_time now);

/* ---- input from the network and from the timer ---- */

/* Feeds one message received from `peer`. The bytes are only read during the call. HC_OK when applied;
 * HC_EDECODE (malformed, or hostile: a timestamp beyond the clock bound, a claim about our own dots beyond
 * what we issued, a dot named twice — each counted under its own HC_CRDT_REJ_* and logged at most once a
 * second), HC_EVERSION (other protocol version), HC_ESTATE (not a neighbour, stale session, unexpected).
 * The whole message is validated before any of it is applied: a rejected message changes nothing but the
 * stats (only running out of memory can stop a delta half way, and each record applied is a valid join). */
int hc_crdt_receive(hc_crdt *r, uint64_t peer, const uint8_t *data, size_t len, hc_time now);
/* Ships batched local changes now instead of at the flush deadline. */
int hc_crdt_flush(hc_crdt *r, hc_time now);
/* Runs everything due at now.mono_ms: flush, acks, retransmits, handshakes, repairs, digests. */
int hc_crdt_tick(hc_crdt *r, hc_time now);
/* The earliest time hc_crdt_tick must be called (HC_CRDT_NO_DEADLINE if nothing is pending). */
uint64_t hc_crdt_next_deadline(const hc_crdt *r);

/* ---- effects ---- */

typedef struct hc_crdt_msg {
    uint64_t peer;
    const uint8_t *data; /* ETF, no version byte; borrowed until the next pop or mutating call */
    size_t len;
} hc_crdt_msg;
/* Pops the oldest outgoing message. Returns true with *out filled, false when there is none. */
bool hc_crdt_pop_message(hc_crdt *r, hc_crdt_msg *out);

enum { HC_CRDT_ADDED = 1, HC_CRDT_UPDATED = 2, HC_CRDT_REMOVED = 3 };
typedef struct hc_crdt_event {
    int kind; /* HC_CRDT_ADDED / UPDATED / REMOVED */
    const uint8_t *key;
    size_t key_len;
    const uint8_t *old_value; /* NULL for ADDED */
    size_t old_len;
    const uint8_t *new_value; /* NULL for REMOVED */
    size_t new_len;
} hc_crdt_event;
/* Pops the oldest change event (pointers borrowed until the next pop or mutating call); false when there
 * is none. Events are only produced when the resolved value of a key actually changes. */
bool hc_crdt_pop_event(hc_crdt *r, hc_crdt_event *out);

/* ---- observability ---- */

enum {
    HC_CRDT_MSG_HELLO,
    HC_CRDT_MSG_DELTA,
    HC_CRDT_MSG_DELTA_ACK,
    HC_CRDT_MSG_DIGEST,
    HC_CRDT_MSG_TREE,
    HC_CRDT_MSG_TREE_DIFF,
    HC_CRDT_MSG_CHUNK,
    HC_CRDT_MSG_ELEMS,
    HC_CRDT_MSG_CTX,
    HC_CRDT_MSG_END,
    HC_CRDT_MSG_ACK,
    HC_CRDT_MSG__COUNT
};
enum {
    HC_CRDT_REJ_DECODE,
    HC_CRDT_REJ_VERSION,
    HC_CRDT_REJ_NOT_NEIGHBOUR,
    HC_CRDT_REJ_STALE,
    HC_CRDT_REJ_INVALID,
    HC_CRDT_REJ_CLOCK,     /* a timestamp further ahead of our clock than max_clock_offset_ms */
    HC_CRDT_REJ_OWN_DOTS,  /* a claim about one of our own dots (a write, a removal, a context) beyond what we issued */
    HC_CRDT_REJ_DUPLICATE, /* the same dot twice in one message */
    HC_CRDT_REJ__COUNT
};
typedef struct hc_crdt_stats {
    uint64_t sent_msgs[HC_CRDT_MSG__COUNT], sent_bytes[HC_CRDT_MSG__COUNT];
    uint64_t recv_msgs[HC_CRDT_MSG__COUNT], recv_bytes[HC_CRDT_MSG__COUNT];
    uint64_t rejected[HC_CRDT_REJ__COUNT];
    uint64_t retransmits;      /* deltas and repair requests sent again */
    uint64_t buffer_overflows; /* a peer's delta buffer overflowed and the peer was scheduled for repair */
    uint64_t repairs_started, repairs_completed;
    uint64_t keys_shipped; /* key records sent in repair chunks */
    uint64_t unshippable;  /* elements too large for max_message_bytes (a config mismatch) */
    uint64_t keys, elements, key_bytes, value_bytes;
} hc_crdt_stats;
void hc_crdt_get_stats(const hc_crdt *r, hc_crdt_stats *out);
const char *hc_crdt_msg_name(int type); /* "delta", ... */
const char *hc_crdt_reject_name(int reason);

/* ---- introspection (tests, the simulator, conflict reporting) ---- */

typedef struct hc_crdt_elem_info {
    uint64_t replica_id, counter; /* the dot of the write */
    uint64_t hlc;                 /* (physical_ms << 16) | logical */
    const uint8_t *value;
    size_t value_len;
} hc_crdt_elem_info;
/* Copies up to `cap` concurrent elements of key into out (best first: index 0 is the resolved value) and
 * returns how many the key has (0 when absent). */
size_t hc_crdt_elements(const hc_crdt *r, const uint8_t *key, size_t key_len, hc_crdt_elem_info *out, size_t cap);
uint64_t hc_crdt_replica_id(const hc_crdt *r);
uint64_t hc_crdt_incarnation(const hc_crdt *r);
uint64_t hc_crdt_hlc_last(const hc_crdt *r);         /* the last timestamp issued or observed */
uint64_t hc_crdt_max_clock_offset(const hc_crdt *r); /* the clock bound in force, in ms */
uint64_t hc_crdt_root_hash(const hc_crdt *r);        /* digest of all stored elements: equal maps, equal hashes */
/* True if the causal context contains dot (rid, counter). */
bool hc_crdt_context_has(const hc_crdt *r, uint64_t replica_id, uint64_t counter);
/* Checks every internal invariant (index counts, range hashes, context covers stored dots, resolved
 * winner, HLC bound). HC_OK or HC_ESTATE with a description in why (may be NULL). Slow: O(map). */
int hc_crdt_check(const hc_crdt *r, char *why, size_t why_len);
/* True when nothing is queued, unacknowledged or being repaired for any neighbour. */
bool hc_crdt_idle(const hc_crdt *r);
/* The same, over the neighbours that are up only (a node that stops waits for those it can still reach). */
bool hc_crdt_idle_reachable(const hc_crdt *r);

/* ---- the map as an hc_core (hc_core.h), so a host can run it ----
 *
 * Requests it answers (each with exactly one reply):
 *   {put, K, V} | {delete, K} | {merge, #{K => V}} | {drop, [K]}  -> ok | {error, badarg | too_big | enomem}
 *   {get, K} -> {ok, V} | error       {take, [K]} -> #{K => V}       to_map -> #{K => V}
 * and anything else -> {error, badarg}. Its observable map (change streams) is the resolved map. A merge or drop of
 * more than 4096 keys is validated whole, then applied a slice per tick and answered at the end; the requests that
 * arrive meanwhile wait and are handled in arrival order (docs/crdt.md, "Work per loop turn"). Big snapshots and
 * to_map replies are read with a cursor (hc_core_ops.snapshot_open). */
extern const hc_core_ops hc_crdt_core_ops;
/* Creates the core around a new replica. HC_OK, or hc_crdt_new's errors. */
int hc_crdt_core_new(const hc_crdt_config *cfg, hc_time now, void **out);
/* How far the neighbours are behind this replica: bytes of delta batches they have not acknowledged (summed over
 * neighbours), the age of the oldest of those batches (ms since it was made, as of the replica's latest input; 0
 * when none), and how many neighbours are being repaired (a repair ships what deltas could not: after a restart, a
 * partition or a queue overflow). A lag that keeps growing means a neighbour does not keep up or cannot be reached. */
typedef struct hc_crdt_lag {
    uint64_t unacked_bytes, oldest_unacked_ms;
    size_t repairing;
} hc_crdt_lag;
void hc_crdt_get_lag(const hc_crdt *r, hc_crdt_lag *out);

/* Appends the HC_CRDT_SYNC_STATS pairs every core built on this engine reports in its stats map (replica_id,
 * neighbours, subscribers, msgs_sent, msgs_received, bytes_sent, bytes_received, rejected (the engine's
 * rejections plus the host's), repairs_completed, retransmits, rejected_clock (messages refused for a timestamp
 * beyond the clock bound), rejected_dots (refused for claiming our own dots beyond what we issued, or naming a
 * dot twice), max_clock_offset_ms, unacked_bytes, sync_lag_ms and repairing (hc_crdt_get_lag), idle); the caller
 * writes the map header. */
#define HC_CRDT_SYNC_STATS 17
int hc_crdt_enc_sync_stats(const hc_crdt *r, const hc_host_stats *hs, hc_buf *b);
/* The engine inside a core made by hc_crdt_core_new (tests, the simulator). */
hc_crdt *hc_crdt_core_engine(void *core);

HC_END_DECLS
#endif
