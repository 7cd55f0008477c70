/* replica.h — the inside of struct hc_crdt, shared by the files that implement it:
 *
 *   replica.c  public API, local operations, joining remote records, effects (outbox, events)
 *   sync.c     neighbours, handshake, delta batches / acks / retransmits, digests, timers, dispatch
 *   repair.c   push-repair sessions: context pieces, Merkle range comparison, chunked range transfer
 */
#ifndef HORDEC_CRDT_REPLICA_H
#define HORDEC_CRDT_REPLICA_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/codec.h"
#include "crdt/context.h"
#include "crdt/hlc.h"
#include "crdt/map.h"
#include "crdt/pending.h"
#include "hordec/hc_crdt.h"

/* One flushed batch of delta records, encoded once as the message body {Seq, Records} and shared by the
 * queues of every peer it goes to. */
typedef struct crdt_batch {
    uint32_t refs;
    uint64_t seq;
    size_t len;
    uint8_t body[];
} crdt_batch;

typedef struct crdt_unacked {
    crdt_batch *batch;
    uint64_t sent_at; /* 0 = not sent yet */
    uint32_t tries;
    uint64_t queued_at; /* monotonic ms when it was made: its age is the neighbour's lag (stats) */
} crdt_unacked;

/* A repair request in flight, kept encoded for retransmission. */
typedef struct crdt_req {
    uint64_t id;
    int type;
    hc_buf msg;
    uint64_t sent_at;
    uint32_t tries;
    uint32_t level;  /* tree: the level asked about */
    uint32_t *nodes; /* tree: the node indices asked about, sorted */
    uint32_t n_nodes;
} crdt_req;

typedef struct crdt_node_ref {
    uint32_t level, idx;
} crdt_node_ref;

typedef struct crdt_range {
    uint64_t lo, hi; /* inclusive */
} crdt_range;

/* An element too large to travel inside a chunk; shipped alone in an `elems` message. */
typedef struct crdt_big_elem {
    uint64_t rid, ctr;
    uint32_t key_len;
    uint8_t *key;
} crdt_big_elem;

enum { CRDT_PHASE_CTX, CRDT_PHASE_TREE, CRDT_PHASE_END };

/* Our side of a push repair toward one peer (see repair.c for the protocol and its safety argument). */
typedef struct crdt_session {
    uint64_t sid;
    int phase;
    crdt_ctx snap;  /* our context when the session started */
    hc_buf *pieces; /* snap, serialised */
    size_t n_pieces, next_piece;
    crdt_node_ref *front; /* nodes still to compare */
    size_t n_front, cap_front;
    crdt_range *ship; /* ranges whose entries must be sent */
    size_t head_ship, n_ship, cap_ship;
    uint64_t ship_pos; /* next key hash to send inside ship[head_ship] */
    int ship_started;
    crdt_big_elem *big;
    size_t head_big, n_big, cap_big;
    crdt_req *reqs; /* in flight, at most cfg.repair_window */
    size_t n_reqs;
    uint64_t next_req;
} crdt_session;

/* The peer's push session toward us: its snapshot context, absorbed only once the session ends. */
typedef struct crdt_incoming {
    uint64_t sid; /* 0 = none */
    crdt_ctx ctx;
    uint64_t pieces, got;
    uint8_t *have; /* one byte per piece */
} crdt_incoming;

typedef struct crdt_peer {
    uint64_t handle;
    int up;
    uint64_t rid, inc; /* the peer's identity, 0 = unknown */
    int heard_me;      /* the peer addressed a message to our current identity */
    uint64_t hello_at;
    crdt_unacked *q; /* our unacknowledged batches, by increasing seq */
    size_t qn, qcap, q_bytes;
    uint64_t *acks; /* seqs of its batches we applied and must acknowledge */
    size_t n_acks, cap_acks;
    int needs_repair;
    crdt_session *push;
    crdt_incoming in;
    uint64_t digest_at;
} crdt_peer;

typedef struct crdt_out {
    uint64_t peer;
    hc_buf msg;
} crdt_out;

typedef struct crdt_event {
    int kind;
    uint8_t *key;
    size_t key_len;
    crdt_blob *old_val, *new_val;
} crdt_event;

struct hc_crdt {
    hc_crdt_config cfg;
    uint64_t rid, inc;
    uint64_t counter; /* last dot counter issued */
    crdt_hlc hlc;
    crdt_map map;
    crdt_ctx ctx;

    crdt_pending pending;
    uint64_t flush_at; /* HC_CRDT_NO_DEADLINE when nothing is pending */
    uint64_t next_seq, next_sid;

    crdt_peer *peers;
    size_t n_peers, cap_peers;

    crdt_out *out;
    size_t out_head, out_n, out_cap;
    hc_buf popped_msg;
    crdt_event *ev;
    size_t ev_head, ev_n, ev_cap;
    crdt_event popped_ev;

    hc_crdt_stats stats;
    hc_crdt_cursor *cursors; /* open slice-at-a-time readers (cursor.c), told of every change ahead of them */
    uint64_t now_ms;         /* the latest monotonic time an input brought (stats: the age of unacknowledged data) */
    int reject_logged;       /* a rejection has been logged, at reject_log_at (monotonic ms) */
    uint64_t reject_log_at;  /* rejections are logged at most once a second */
};

/* ---- replica.c ---- */
/* Joins one remote key record. sender_ctx (may be NULL) is context the sender speaks for beyond the
 * record itself (a repair snapshot); the record's own dots are always added to our context. */
int crdt_apply_record(hc_crdt *r, const crdt_wire_rec *rec, const crdt_ctx *sender_ctx);
/* Removes, for an entry the sender did not send, every element whose dot sender_ctx has observed. */
int crdt_apply_absent(hc_crdt *r, crdt_entry *e, const crdt_ctx *sender_ctx);
int crdt_emit_change(hc_crdt *r, const uint8_t *key, size_t key_len, crdt_blob *old_val, crdt_blob *new_val);
/* Queues a message for the host and counts it. Takes ownership of msg's memory. */
int crdt_send(hc_crdt *r, crdt_peer *p, int type, hc_buf *msg);
void crdt_outbox_clear(hc_crdt *r);
size_t crdt_budget(const hc_crdt *r); /* bytes available for records in one message */
size_t crdt_rec_size(size_t key_len, size_t n_removed, const crdt_elem *elems, uint32_t n);

/* ---- cursor.c ---- */
/* Called before every change to key: open cursors that have not passed it keep its old value. */
void crdt_cursors_note(hc_crdt *r, const uint8_t *key, size_t key_len, uint64_t hash);
void crdt_cursors_detach(hc_crdt *r); /* the replica is going: its cursors answer HC_ESTATE from now on */
/* Every change to the map goes through here, so that open cursors still see the map they opened on. */
static inline int crdt_store(hc_crdt *r, const uint8_t *key, size_t key_len, uint64_t hash, crdt_elem *elems,
                             uint32_t n)
{
    if (r->cursors)
        crdt_cursors_note(r, key, key_len, hash);
    return crdt_map_set(&r->map, key, key_len, hash, elems, n);
}

/* ---- sync.c ---- */
crdt_peer *crdt_peer_find(hc_crdt *r, uint64_t handle);
void crdt_peer_reset(hc_crdt *r, crdt_peer *p); /* forget its sessions, queues and identity-bound state */
void crdt_peer_free(crdt_peer *p);
int crdt_flush(hc_crdt *r, uint64_t now);
int crdt_dispatch(hc_crdt *r, crdt_peer *p, const crdt_msg *m, uint64_t now);
int crdt_sync_tick(hc_crdt *r, uint64_t now);
uint64_t crdt_sync_deadline(const hc_crdt *r);
int crdt_peer_idle(const hc_crdt *r, const crdt_peer *p);

/* ---- repair.c ---- */
int crdt_repair_start(hc_crdt *r, crdt_peer *p, uint64_t now);
void crdt_session_free(crdt_session *s);
void crdt_incoming_reset(crdt_incoming *in);
int crdt_repair_step(hc_crdt *r, crdt_peer *p, uint64_t now); /* send what the window allows, retransmit */
uint64_t crdt_repair_deadline(const hc_crdt *r, const crdt_peer *p);
/* Handlers for the repair messages (tree, tree_diff, chunk, elems, ctx, end, ack). */
int crdt_repair_handle(hc_crdt *r, crdt_peer *p, const crdt_msg *m, uint64_t now);

#endif
