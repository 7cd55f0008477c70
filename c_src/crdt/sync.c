/* sync.c — neighbours, the handshake, delta shipping and the idle digest check.
 *
 * Identity. Every message names its sender (replica id, incarnation) and the receiver as the sender
 * believes it to be. A peer's identity is learnt from `hello`; any other message must come from the
 * identity we recorded and be addressed to our current one, otherwise it is stale (from before a restart
 * on either side) and rejected, and we greet the peer again so both sides re-learn. A new identity means
 * the peer lost or reloaded its state: everything bound to the old one is dropped and a repair starts.
 *
 * Deltas. Local changes collect in `pending` until the flush deadline; a flush turns each touched key
 * into one record (its current elements + the dots its operations removed) and packs records into
 * batches under max_message_bytes. A batch is encoded once and queued for every known peer; the peer
 * acknowledges each batch by seq (joins are idempotent and commutative, so order and duplicates do not
 * matter); unacknowledged batches are re-sent with backoff. A queue that outgrows its bound is dropped
 * and the peer repaired instead, so a slow or absent peer costs bounded memory.
 *
 * Digest. When nothing is in flight with a peer, both sides exchange root hashes and context hashes now
 * and then; a mismatch (a delta lost with a dropped queue, a non-mesh topology) starts a repair. */
#include "crdt/replica.h"

#include <stdlib.h>
#include <string.h>

#include "crdt/hash.h"
#include "hordec/hc_log.h"

#define ACKS_PER_MESSAGE 1024
#define MAX_BACKOFF_SHIFT 4
/* Keys turned into delta records per tick. A bigger set (a 100k-key merge) is shipped over several loop turns,
 * so that other peers and clients are served in between; keys written meanwhile simply join the set. */
#define FLUSH_SLICE 4096

/* ---- peers ---- */

crdt_peer *crdt_peer_find(hc_crdt *r, uint64_t handle)
{
    for (size_t i = 0; i < r->n_peers; i++)
        if (r->peers[i].handle == handle)
            return &r->peers[i];
    return NULL;
}

static void batch_unref(crdt_batch *b)
{
    if (b && --b->refs == 0)
        free(b);
}

static void queue_drop(crdt_peer *p)
{
    for (size_t i = 0; i < p->qn; i++)
        batch_unref(p->q[i].batch);
    p->qn = 0;
    p->q_bytes = 0;
}

void crdt_peer_reset(hc_crdt *r, crdt_peer *p)
{
    (void)r;
    queue_drop(p);
    p->n_acks = 0;
    if (p->push) {
        crdt_session_free(p->push);
        p->push = NULL;
    }
    crdt_incoming_reset(&p->in);
    p->in.sid = 0;
    p->heard_me = 0;
    p->needs_repair = 1;
}

void crdt_peer_free(crdt_peer *p)
{
    queue_drop(p);
    free(p->q);
    free(p->acks);
    if (p->push)
        crdt_session_free(p->push);
    crdt_incoming_reset(&p->in);
    memset(p, 0, sizeof *p);
}

int hc_crdt_add_neighbour(hc_crdt *r, uint64_t peer, hc_time now)
{
    if (crdt_peer_find(r, peer))
        return HC_EEXIST;
    if (hc_array_reserve((void **)&r->peers, &r->cap_peers, r->n_peers + 1, sizeof *r->peers, 8))
        return HC_ENOMEM;
    crdt_peer *p = &r->peers[r->n_peers++];
    memset(p, 0, sizeof *p);
    p->handle = peer;
    p->up = 1;
    p->hello_at = 0; /* greet at the next tick */
    p->needs_repair = 1;
    p->digest_at = now.mono_ms + r->cfg.digest_interval_ms;
    return HC_OK;
}

int hc_crdt_remove_neighbour(hc_crdt *r, uint64_t peer, hc_time now)
{
    (void)now;
    crdt_peer *p = crdt_peer_find(r, peer);
    if (!p)
        return HC_EINVAL;
    crdt_peer_free(p);
    size_t i = (size_t)(p - r->peers);
    memmove(&r->peers[i], &r->peers[i + 1], (r->n_peers - i - 1) * sizeof *r->peers);
    r->n_peers--;
    return HC_OK;
}

int hc_crdt_set_neighbours(hc_crdt *r, const uint64_t *peers, size_t n, hc_time now)
{
    if (n && !peers)
        return HC_EINVAL;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < i; k++)
            if (peers[i] == peers[k])
                return HC_EINVAL;
    for (size_t i = r->n_peers; i-- > 0;) {
        int keep = 0;
        for (size_t k = 0; k < n && !keep; k++)
            keep = peers[k] == r->peers[i].handle;
        if (!keep)
            hc_crdt_remove_neighbour(r, r->peers[i].handle, now);
    }
    for (size_t k = 0; k < n; k++)
        if (!crdt_peer_find(r, peers[k])) {
            int rc = hc_crdt_add_neighbour(r, peers[k], now);
            if (rc)
                return rc;
        }
    return HC_OK;
}

int hc_crdt_peer_down(hc_crdt *r, uint64_t peer, hc_time now)
{
    (void)now;
    crdt_peer *p = crdt_peer_find(r, peer);
    if (!p)
        return HC_EINVAL;
    p->up = 0;
    return HC_OK;
}

int hc_crdt_peer_up(hc_crdt *r, uint64_t peer, hc_time now)
{
    crdt_peer *p = crdt_peer_find(r, peer);
    if (!p)
        return HC_EINVAL;
    p->up = 1;
    p->hello_at = 0; /* it may have restarted: confirm identities */
    /* Compare digests as soon as the link is idle, not a digest interval later: what either side wrote while the
     * link was down and no batch carries is found by the repair that starts from there (a healed partition then
     * converges in milliseconds, which UniformQuorumDistribution's settle time relies on). */
    p->digest_at = now.mono_ms;
    for (size_t i = 0; i < p->qn; i++)
        p->q[i].sent_at = 0;
    if (p->push)
        for (size_t i = 0; i < p->push->n_reqs; i++)
            p->push->reqs[i].sent_at = 0;
    return HC_OK;
}

int crdt_peer_idle(const hc_crdt *r, const crdt_peer *p)
{
    return p->qn == 0 && !p->push && !p->needs_repair && r->pending.n == 0 && p->n_acks == 0;
}

void hc_crdt_get_lag(const hc_crdt *r, hc_crdt_lag *out)
{
    *out = (hc_crdt_lag){0, 0, 0};
    for (size_t i = 0; i < r->n_peers; i++) {
        const crdt_peer *p = &r->peers[i];
        out->unacked_bytes += p->q_bytes;
        out->repairing += p->push || p->needs_repair;
        if (p->qn && p->q[0].queued_at && r->now_ms > p->q[0].queued_at &&
            r->now_ms - p->q[0].queued_at > out->oldest_unacked_ms)
            out->oldest_unacked_ms = r->now_ms - p->q[0].queued_at;
    }
}

bool hc_crdt_idle(const hc_crdt *r)
{
    for (size_t i = 0; i < r->n_peers; i++)
        if (!crdt_peer_idle(r, &r->peers[i]))
            return false;
    return r->pending.n == 0;
}

bool hc_crdt_idle_reachable(const hc_crdt *r)
{
    for (size_t i = 0; i < r->n_peers; i++)
        if (r->peers[i].up && !crdt_peer_idle(r, &r->peers[i]))
            return false;
    return r->pending.n == 0;
}

/* ---- small messages ---- */

static int send_simple(hc_crdt *r, crdt_peer *p, int type, const uint64_t *f, int n)
{
    hc_buf b = {0};
    int rc = crdt_enc_simple(&b, type, r->rid, r->inc, p->rid, p->inc, f, n);
    if (rc) {
        hc_buf_free(&b);
        return rc;
    }
    return crdt_send(r, p, type, &b);
}

static int send_hello(hc_crdt *r, crdt_peer *p)
{
    uint64_t f[2] = {CRDT_MERKLE_DEPTH, r->cfg.max_message_bytes};
    return send_simple(r, p, HC_CRDT_MSG_HELLO, f, 2);
}

static int send_digest(hc_crdt *r, crdt_peer *p, int want_reply)
{
    uint64_t f[4] = {hc_crdt_root_hash(r), r->map.count, crdt_ctx_hash(&r->ctx), (uint64_t)want_reply};
    return send_simple(r, p, HC_CRDT_MSG_DIGEST, f, 4);
}

static int send_acks(hc_crdt *r, crdt_peer *p)
{
    while (p->n_acks) {
        size_t n = p->n_acks < ACKS_PER_MESSAGE ? p->n_acks : ACKS_PER_MESSAGE;
        hc_buf b = {0};
        int rc = crdt_enc_header(&b, HC_CRDT_MSG_DELTA_ACK, r->rid, r->inc, p->rid, p->inc);
        if (!rc)
            rc = hc_enc_tuple_header(&b, 1);
        if (!rc)
            rc = crdt_enc_list(&b, (uint32_t)n);
        for (size_t i = 0; !rc && i < n; i++)
            rc = hc_enc_ulong(&b, p->acks[p->n_acks - n + i]);
        if (!rc)
            rc = hc_enc_nil(&b);
        if (rc) {
            hc_buf_free(&b);
            return rc;
        }
        p->n_acks -= n;
        if ((rc = crdt_send(r, p, HC_CRDT_MSG_DELTA_ACK, &b)))
            return rc;
    }
    return HC_OK;
}

/* ---- flush: pending keys -> batches -> peer queues ---- */

typedef struct packer {
    hc_crdt *r;
    hc_buf recs;
    uint32_t n;
    uint64_t now;
} packer;

static int send_batch(hc_crdt *r, crdt_peer *p, crdt_unacked *u, uint64_t now)
{
    hc_buf b = {0};
    int rc = crdt_enc_header(&b, HC_CRDT_MSG_DELTA, r->rid, r->inc, p->rid, p->inc);
    if (!rc)
        rc = hc_enc_raw(&b, u->batch->body, u->batch->len);
    if (rc) {
        hc_buf_free(&b);
        return rc;
    }
    if (u->sent_at)
        r->stats.retransmits++;
    u->sent_at = now ? now : 1;
    u->tries++;
    return crdt_send(r, p, HC_CRDT_MSG_DELTA, &b);
}

static int enqueue(hc_crdt *r, crdt_peer *p, crdt_batch *b, uint64_t now)
{
    if (hc_array_reserve((void **)&p->q, &p->qcap, p->qn + 1, sizeof *p->q, 16))
        return HC_ENOMEM;
    b->refs++;
    p->q[p->qn++] = (crdt_unacked){b, 0, 0, now ? now : 1};
    p->q_bytes += b->len;
    if (p->qn > r->cfg.max_unacked_batches || p->q_bytes > r->cfg.max_unacked_bytes) {
        /* too far behind: stop buffering and let a repair ship the difference later */
        queue_drop(p);
        p->needs_repair = 1;
        r->stats.buffer_overflows++;
        return HC_OK;
    }
    if (p->up && p->heard_me)
        return send_batch(r, p, &p->q[p->qn - 1], now);
    return HC_OK;
}

static int packer_finish(packer *pk)
{
    hc_crdt *r = pk->r;
    if (!pk->n)
        return HC_OK;
    hc_buf body = {0};
    uint64_t seq = ++r->next_seq;
    int rc = hc_enc_tuple_header(&body, 2);
    if (!rc)
        rc = hc_enc_ulong(&body, seq);
    if (!rc)
        rc = crdt_enc_list(&body, pk->n);
    if (!rc)
        rc = hc_enc_raw(&body, pk->recs.data, pk->recs.len);
    if (!rc)
        rc = hc_enc_nil(&body);
    crdt_batch *b = rc ? NULL : malloc(sizeof *b + body.len);
    if (!rc && !b)
        rc = HC_ENOMEM;
    if (!rc) {
        b->refs = 1;
        b->seq = seq;
        b->len = body.len;
        memcpy(b->body, body.data, body.len);
        for (size_t i = 0; !rc && i < r->n_peers; i++)
            if (r->peers[i].rid)
                rc = enqueue(r, &r->peers[i], b, pk->now);
        batch_unref(b);
    }
    hc_buf_free(&body);
    hc_buf_reset(&pk->recs);
    pk->n = 0;
    return rc;
}

/* Appends one record {Key, Elems, Removed}, starting a new batch first if it would not fit. */
static int packer_add(packer *pk, const uint8_t *key, size_t key_len, const uint8_t *removed, size_t n_removed,
                      const crdt_elem *elems, uint32_t n)
{
    size_t size = crdt_rec_size(key_len, n_removed, elems, n);
    if (pk->recs.len + size > crdt_budget(pk->r) || pk->n >= CRDT_MAX_RECS_PER_MSG) {
        int rc = packer_finish(pk);
        if (rc)
            return rc;
    }
    hc_buf *b = &pk->recs;
    int rc = hc_enc_tuple_header(b, 3);
    if (!rc)
        rc = hc_enc_raw(b, key, key_len);
    if (!rc)
        rc = crdt_enc_list(b, n);
    for (uint32_t i = 0; !rc && i < n; i++)
        rc = crdt_enc_elem(b, elems[i].rid, elems[i].ctr, elems[i].hlc, elems[i].val->data, elems[i].val->len);
    if (!rc && n)
        rc = hc_enc_nil(b);
    if (!rc)
        rc = hc_enc_binary(b, removed, n_removed * CRDT_DOT_BYTES);
    if (!rc)
        pk->n++;
    return rc;
}

static int flush_key(packer *pk, const crdt_pend_rec *pr)
{
    hc_crdt *r = pk->r;
    crdt_entry *e = crdt_map_find(&r->map, pr->key, pr->key_len, pr->hash);
    const crdt_elem *elems = e ? e->elems : NULL;
    uint32_t n = e ? e->n : 0;
    size_t n_rm = pr->removed.len / CRDT_DOT_BYTES;
    size_t budget = crdt_budget(r);
    if (crdt_rec_size(pr->key_len, n_rm, elems, n) <= budget)
        return packer_add(pk, pr->key, pr->key_len, pr->removed.data, n_rm, elems, n);
    /* Too big for one message (several large concurrent values): split into records that are each a
     * valid delta on their own — the removed dots first, then one element per record. */
    size_t per = (budget - CRDT_REC_OVERHEAD - pr->key_len) / CRDT_DOT_BYTES;
    for (size_t i = 0; i < n_rm; i += per) {
        size_t k = n_rm - i < per ? n_rm - i : per;
        int rc = packer_add(pk, pr->key, pr->key_len, pr->removed.data + i * CRDT_DOT_BYTES, k, NULL, 0);
        if (rc)
            return rc;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (crdt_rec_size(pr->key_len, 0, &elems[i], 1) > budget) {
            r->stats.unshippable++;
            continue;
        }
        int rc = packer_add(pk, pr->key, pr->key_len, NULL, 0, &elems[i], 1);
        if (rc)
            return rc;
    }
    return HC_OK;
}

/* Ships at most `limit` of the pending keys, oldest first; what is left stays due at once (the next tick). */
static int flush_some(hc_crdt *r, uint64_t now, size_t limit)
{
    r->flush_at = HC_CRDT_NO_DEADLINE;
    int known = 0;
    for (size_t i = 0; i < r->n_peers; i++)
        known |= r->peers[i].rid != 0;
    if (!known || !r->pending.n) {
        /* peers not yet known get everything through their first repair instead */
        crdt_pending_clear(&r->pending);
        return HC_OK;
    }
    size_t n = r->pending.n < limit ? r->pending.n : limit;
    packer pk = {r, {0}, 0, now};
    int rc = HC_OK;
    for (size_t i = 0; !rc && i < n; i++)
        rc = flush_key(&pk, r->pending.recs[r->pending.head + i]);
    if (!rc)
        rc = packer_finish(&pk);
    hc_buf_free(&pk.recs);
    crdt_pending_drop_first(&r->pending, n);
    if (r->pending.n)
        r->flush_at = now;
    return rc;
}

int crdt_flush(hc_crdt *r, uint64_t now) { return flush_some(r, now, SIZE_MAX); }

int hc_crdt_flush(hc_crdt *r, hc_time now) { return crdt_flush(r, now.mono_ms); }

/* ---- incoming ---- */

static int on_delta(hc_crdt *r, crdt_peer *p, const crdt_msg *m)
{
    for (uint32_t i = 0; i < m->n_recs; i++) {
        int rc = crdt_apply_record(r, &m->recs[i], NULL);
        if (rc)
            return rc;
    }
    if (hc_array_reserve((void **)&p->acks, &p->cap_acks, p->n_acks + 1, sizeof *p->acks, 16))
        return HC_ENOMEM;
    p->acks[p->n_acks++] = m->seq;
    return p->n_acks >= ACKS_PER_MESSAGE ? send_acks(r, p) : HC_OK;
}

static void on_delta_ack(crdt_peer *p, const crdt_msg *m)
{
    for (uint32_t k = 0; k < m->n_seqs; k++) {
        size_t lo = 0, hi = p->qn;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (p->q[mid].batch->seq < m->seqs[k])
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < p->qn && p->q[lo].batch->seq == m->seqs[k]) {
            p->q_bytes -= p->q[lo].batch->len;
            batch_unref(p->q[lo].batch);
            memmove(&p->q[lo], &p->q[lo + 1], (p->qn - lo - 1) * sizeof *p->q);
            p->qn--;
        }
    }
}

static int on_digest(hc_crdt *r, crdt_peer *p, const crdt_msg *m)
{
    int rc = m->want_reply ? send_digest(r, p, 0) : HC_OK;
    if ((m->root != hc_crdt_root_hash(r) || m->ctx_hash != crdt_ctx_hash(&r->ctx)) && crdt_peer_idle(r, p))
        p->needs_repair = 1;
    return rc;
}

static int on_hello(hc_crdt *r, crdt_peer *p, const crdt_msg *m)
{
    if (m->depth != CRDT_MERKLE_DEPTH)
        return HC_EINVAL;
    if (m->from_rid == p->rid && m->from_inc < p->inc)
        return HC_ESTATE; /* a late greeting from an incarnation we already saw replaced */
    if (m->from_rid != p->rid || m->from_inc != p->inc) {
        crdt_peer_reset(r, p);
        p->rid = m->from_rid;
        p->inc = m->from_inc;
    }
    if (m->to_rid == r->rid && m->to_inc == r->inc)
        p->heard_me = 1;
    else
        p->hello_at = 0; /* it does not know who we are (any more): answer */
    return HC_OK;
}

int crdt_dispatch(hc_crdt *r, crdt_peer *p, const crdt_msg *m, uint64_t now)
{
    switch (m->type) {
    case HC_CRDT_MSG_DELTA: return on_delta(r, p, m);
    case HC_CRDT_MSG_DELTA_ACK: on_delta_ack(p, m); return HC_OK;
    case HC_CRDT_MSG_DIGEST: return on_digest(r, p, m);
    default: return crdt_repair_handle(r, p, m, now);
    }
}

/* ---- what a message claims, checked before anything changes ----
 *
 * A peer is a cluster member, but a buggy or hostile one must not be able to poison every replica:
 *  - a timestamp far in the future would win over every later write and pin every HLC there;
 *  - a claim about one of OUR dots beyond what we issued (a write, a removal, a context) would make the
 *    writes we are about to make invisible or "already removed" everywhere, us included;
 *  - the same dot twice in one message names one write as two things.
 * Any of these rejects the whole message: nothing in it is applied (a delta is all or nothing). */

typedef struct crdt_dot {
    uint64_t rid, ctr;
} crdt_dot;

typedef struct crdt_verdict {
    int reason; /* HC_CRDT_REJ_*, or -1: acceptable */
    crdt_dot dot;
    uint64_t hlc;
} crdt_verdict;

static void own_dot(const hc_crdt *r, crdt_verdict *v, uint64_t rid, uint64_t ctr)
{
    if (v->reason < 0 && rid == r->rid && ctr > r->counter)
        *v = (crdt_verdict){HC_CRDT_REJ_OWN_DOTS, {rid, ctr}, 0};
}

static void dot_insert(crdt_dot *set, size_t cap, uint64_t rid, uint64_t ctr, crdt_verdict *v)
{
    for (size_t i = crdt_dot_hash(rid, ctr) & (cap - 1);; i = (i + 1) & (cap - 1)) {
        if (!set[i].rid) {
            set[i] = (crdt_dot){rid, ctr};
            return;
        }
        if (set[i].rid == rid && set[i].ctr == ctr) {
            *v = (crdt_verdict){HC_CRDT_REJ_DUPLICATE, {rid, ctr}, 0};
            return;
        }
    }
}

static int check_records(const hc_crdt *r, const crdt_msg *m, uint64_t bound, crdt_verdict *v)
{
    size_t n = 0;
    for (uint32_t i = 0; i < m->n_recs; i++) {
        const crdt_wire_rec *rec = &m->recs[i];
        n += rec->n + rec->removed.len / CRDT_DOT_BYTES;
        for (uint32_t k = 0; k < rec->n; k++) {
            const crdt_wire_elem *w = &rec->elems[k];
            if (v->reason < 0 && w->hlc > bound)
                *v = (crdt_verdict){HC_CRDT_REJ_CLOCK, {w->rid, w->ctr}, w->hlc};
            own_dot(r, v, w->rid, w->ctr);
        }
        for (size_t o = 0; o < rec->removed.len; o += CRDT_DOT_BYTES)
            own_dot(r, v, hc_get_be64(rec->removed.p + o), hc_get_be64(rec->removed.p + o + 8));
    }
    if (v->reason >= 0 || n < 2)
        return HC_OK;
    /* duplicates: an open-addressing set of the message's dots, at most half full ({0, 0} is no dot) */
    size_t cap = 4;
    while (cap < 2 * n)
        cap *= 2;
    crdt_dot *set = calloc(cap, sizeof *set);
    if (!set)
        return HC_ENOMEM;
    for (uint32_t i = 0; i < m->n_recs && v->reason < 0; i++) {
        const crdt_wire_rec *rec = &m->recs[i];
        for (uint32_t k = 0; k < rec->n && v->reason < 0; k++)
            dot_insert(set, cap, rec->elems[k].rid, rec->elems[k].ctr, v);
        for (size_t o = 0; o < rec->removed.len && v->reason < 0; o += CRDT_DOT_BYTES)
            dot_insert(set, cap, hc_get_be64(rec->removed.p + o), hc_get_be64(rec->removed.p + o + 8), v);
    }
    free(set);
    return HC_OK;
}

static int check_message(const hc_crdt *r, const crdt_msg *m, hc_time now, crdt_verdict *v)
{
    v->reason = -1;
    if (m->type == HC_CRDT_MSG_CTX) {
        uint64_t max = 0;
        if (crdt_ctx_check_piece(m->bin.p, m->bin.len, r->rid, &max))
            return HC_OK; /* malformed: on_ctx rejects it as such */
        own_dot(r, v, r->rid, max);
        return HC_OK;
    }
    if (!m->n_recs)
        return HC_OK;
    return check_records(r, m, crdt_hlc_bound(now.wall_ms, r->cfg.max_clock_offset_ms), v);
}

/* One warning a second at most, whatever a peer sends: the counters say how many. */
static void log_rejection(hc_crdt *r, const crdt_msg *m, const crdt_verdict *v, hc_time now)
{
    if (r->reject_logged && now.mono_ms - r->reject_log_at < 1000)
        return;
    r->reject_logged = 1;
    r->reject_log_at = now.mono_ms;
    unsigned long long me = r->rid, from = m->from_rid, rid = v->dot.rid, ctr = v->dot.ctr;
    if (v->reason == HC_CRDT_REJ_CLOCK) {
        uint64_t phys = v->hlc >> 16;
        hc_log_warn("crdt %016llx: rejected a %s from replica %016llx: it carries a timestamp %llu ms ahead of this "
                    "node's clock (the bound is max_clock_offset_ms = %llu); check the clocks (counted in stats)",
                    me, crdt_msg_type_name(m->type), from,
                    (unsigned long long)(phys > now.wall_ms ? phys - now.wall_ms : 0),
                    (unsigned long long)r->cfg.max_clock_offset_ms);
    } else if (v->reason == HC_CRDT_REJ_OWN_DOTS) {
        hc_log_warn("crdt %016llx: rejected a %s from replica %016llx: it claims our write %llu, but we have issued "
                    "only %llu (counted in stats)",
                    me, crdt_msg_type_name(m->type), from, ctr, (unsigned long long)r->counter);
    } else {
        hc_log_warn("crdt %016llx: rejected a %s from replica %016llx: it names write (%016llx, %llu) twice (counted "
                    "in stats)",
                    me, crdt_msg_type_name(m->type), from, rid, ctr);
    }
}

int hc_crdt_receive(hc_crdt *r, uint64_t peer, const uint8_t *data, size_t len, hc_time now)
{
    r->now_ms = now.mono_ms;
    crdt_msg m;
    int rc = crdt_msg_decode(data, len, &m);
    if (rc) {
        r->stats.rejected[rc == HC_EVERSION ? HC_CRDT_REJ_VERSION : HC_CRDT_REJ_DECODE]++;
        return rc == HC_ENOMEM ? rc : rc == HC_EVERSION ? HC_EVERSION : HC_EDECODE;
    }
    r->stats.recv_msgs[m.type]++;
    r->stats.recv_bytes[m.type] += len;
    crdt_peer *p = crdt_peer_find(r, peer);
    crdt_verdict v = {-1, {0, 0}, 0};
    if (!p) {
        r->stats.rejected[HC_CRDT_REJ_NOT_NEIGHBOUR]++;
        rc = HC_ESTATE;
    } else if (m.type == HC_CRDT_MSG_HELLO) {
        rc = on_hello(r, p, &m);
    } else if (!p->rid || m.from_rid != p->rid || m.from_inc != p->inc || m.to_rid != r->rid || m.to_inc != r->inc) {
        r->stats.rejected[HC_CRDT_REJ_STALE]++;
        p->hello_at = 0; /* one of us restarted: greet again so both re-learn */
        rc = HC_ESTATE;
    } else if ((rc = check_message(r, &m, now, &v)) == HC_OK && v.reason >= 0) {
        r->stats.rejected[v.reason]++;
        log_rejection(r, &m, &v, now);
        crdt_msg_free(&m);
        return HC_EDECODE;
    } else if (rc == HC_OK) {
        p->heard_me = 1;
        rc = crdt_dispatch(r, p, &m, now.mono_ms);
    }
    if (p && m.type == HC_CRDT_MSG_HELLO && rc == HC_ESTATE)
        r->stats.rejected[HC_CRDT_REJ_STALE]++;
    if (rc == HC_EINVAL || rc == HC_EDECODE) {
        r->stats.rejected[HC_CRDT_REJ_INVALID]++;
        rc = HC_EDECODE;
    }
    crdt_msg_free(&m);
    return rc;
}

/* ---- timers ---- */

static uint64_t rto(const hc_crdt *r, uint32_t tries)
{
    uint32_t shift = tries > 0 ? tries - 1 : 0;
    if (shift > MAX_BACKOFF_SHIFT)
        shift = MAX_BACKOFF_SHIFT;
    return (uint64_t)r->cfg.retransmit_ms << shift;
}

static int hello_due(const crdt_peer *p) { return !p->rid || !p->heard_me || p->hello_at == 0; }

int crdt_sync_tick(hc_crdt *r, uint64_t now)
{
    int rc = HC_OK;
    r->now_ms = now;
    if (r->pending.n && now >= r->flush_at && (rc = flush_some(r, now, FLUSH_SLICE)))
        return rc;
    for (size_t i = 0; i < r->n_peers; i++) {
        crdt_peer *p = &r->peers[i];
        if (!p->up)
            continue;
        if (hello_due(p) && now >= p->hello_at) {
            if ((rc = send_hello(r, p)))
                return rc;
            p->hello_at = now + r->cfg.hello_interval_ms;
        }
        if (!p->rid)
            continue;
        if (p->n_acks && (rc = send_acks(r, p)))
            return rc;
        if (!p->heard_me)
            continue;
        for (size_t k = 0; k < p->qn; k++) {
            crdt_unacked *u = &p->q[k];
            if ((!u->sent_at || now >= u->sent_at + rto(r, u->tries)) && (rc = send_batch(r, p, u, now)))
                return rc;
        }
        if (!p->push && p->needs_repair && (rc = crdt_repair_start(r, p, now)))
            return rc;
        if (p->push && (rc = crdt_repair_step(r, p, now)))
            return rc;
        if (crdt_peer_idle(r, p) && now >= p->digest_at) {
            if ((rc = send_digest(r, p, 1)))
                return rc;
            p->digest_at = now + r->cfg.digest_interval_ms;
        }
    }
    return HC_OK;
}

int hc_crdt_tick(hc_crdt *r, hc_time now) { return crdt_sync_tick(r, now.mono_ms); }

static uint64_t min64(uint64_t a, uint64_t b) { return a < b ? a : b; }

uint64_t crdt_sync_deadline(const hc_crdt *r)
{
    uint64_t d = r->pending.n ? r->flush_at : HC_CRDT_NO_DEADLINE;
    for (size_t i = 0; i < r->n_peers; i++) {
        const crdt_peer *p = &r->peers[i];
        if (!p->up)
            continue;
        if (hello_due(p))
            d = min64(d, p->hello_at);
        if (!p->rid)
            continue;
        if (p->n_acks)
            d = 0;
        if (!p->heard_me)
            continue;
        for (size_t k = 0; k < p->qn; k++)
            d = min64(d, p->q[k].sent_at ? p->q[k].sent_at + rto(r, p->q[k].tries) : 0);
        if (!p->push && p->needs_repair)
            d = 0;
        if (p->push)
            d = min64(d, crdt_repair_deadline(r, p));
        if (crdt_peer_idle(r, p))
            d = min64(d, p->digest_at);
    }
    return d;
}

uint64_t hc_crdt_next_deadline(const hc_crdt *r) { return crdt_sync_deadline(r); }
