/* repair.c — push repair: bring a peer up to date with our state at a cost that follows the size of
 * the difference, in messages that never exceed max_message_bytes, without ever letting the peer
 * believe it has seen something it has not.
 *
 * A session (we = source S, the peer = sink K) runs three phases, each message acknowledged and re-sent
 * until it is, with at most cfg.repair_window in flight:
 *
 *  1. ctx:   S snapshots its causal context C and sends it in pieces. K keeps it aside (not absorbed).
 *  2. tree:  S sends (count, sum) of Merkle nodes, starting at the root; K answers with the nodes that
 *            differ from its own (and whether it is empty there). S descends 4 levels at a time into
 *            differing nodes, and stops at leaves, small nodes or nodes where K is empty: those ranges go
 *            to the ship list. S then sends `chunk`s: each speaks for a whole key-hash range [lo, hi] and
 *            carries all of S's entries in it (current ones). K joins them *as a state restricted to that
 *            range*: for its keys in the range, it drops elements whose dot C has observed but S no
 *            longer holds, and adds S's elements it has not observed. Nothing outside [lo, hi] is
 *            touched. A key whose elements do not fit in a message is listed by dots only and its
 *            elements follow one per `elems` message.
 *  3. end:   once every chunk is acknowledged, S sends `end`, and only then does K absorb C.
 *
 * Why this is safe (DeltaCrdt absorbed C with a truncated value set and lost data forever): C only grows,
 * and S's entries at any later time are a valid state for C, so applying a chunk never deletes what S
 * did not remove nor adds what S does not hold. By `end`, K has either received S's entries for a range
 * or matched them by hash, so every dot in C is either held by K or known removed; absorbing C then
 * hides nothing K still needs. An interrupted session never absorbs C. Chunks, elems and ctx pieces are
 * each safe to apply alone, late or twice. */
#include "crdt/replica.h"

#include <stdlib.h>
#include <string.h>

#include "crdt/hash.h"

#define TREE_ENTRY_BYTES 16 /* idx:32 count:32 sum:64 */
#define DIFF_ENTRY_BYTES 5  /* idx:32 flags:8 */
#define DIFF_K_EMPTY 1
#define DESCEND_LEVELS 4
#define SHIP_DIRECTLY 32 /* below this many entries a range is cheaper to send than to compare */
#define MAX_CTX_PIECES (1u << 16)
#define MAX_BACKOFF_SHIFT 4

void crdt_incoming_reset(crdt_incoming *in)
{
    crdt_ctx_free(&in->ctx);
    free(in->have);
    in->have = NULL;
    in->pieces = in->got = 0;
}

static void req_free(crdt_req *q)
{
    hc_buf_free(&q->msg);
    free(q->nodes);
    memset(q, 0, sizeof *q);
}

void crdt_session_free(crdt_session *s)
{
    crdt_ctx_free(&s->snap);
    for (size_t i = 0; i < s->n_pieces; i++)
        hc_buf_free(&s->pieces[i]);
    free(s->pieces);
    free(s->front);
    free(s->ship);
    for (size_t i = s->head_big; i < s->n_big; i++)
        free(s->big[i].key);
    free(s->big);
    for (size_t i = 0; i < s->n_reqs; i++)
        req_free(&s->reqs[i]);
    free(s->reqs);
    free(s);
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    return hc_array_reserve(arr, cap, need, elem, 16);
}

static int push_front(crdt_session *s, uint32_t level, uint32_t idx)
{
    if (grow((void **)&s->front, &s->cap_front, s->n_front + 1, sizeof *s->front))
        return HC_ENOMEM;
    s->front[s->n_front++] = (crdt_node_ref){level, idx};
    return HC_OK;
}

static int push_ship(crdt_session *s, uint64_t lo, uint64_t hi)
{
    if (grow((void **)&s->ship, &s->cap_ship, s->n_ship + 1, sizeof *s->ship))
        return HC_ENOMEM;
    s->ship[s->n_ship++] = (crdt_range){lo, hi};
    return HC_OK;
}

int crdt_repair_start(hc_crdt *r, crdt_peer *p, uint64_t now)
{
    crdt_session *s = calloc(1, sizeof *s);
    if (!s)
        return HC_ENOMEM;
    s->sid = ++r->next_sid;
    s->reqs = calloc(r->cfg.repair_window, sizeof *s->reqs);
    int rc = s->reqs ? crdt_ctx_copy(&s->snap, &r->ctx) : HC_ENOMEM;
    if (!rc)
        rc = crdt_ctx_encode_pieces(&s->snap, crdt_budget(r), &s->pieces, &s->n_pieces);
    if (!rc)
        rc = push_front(s, 0, 0);
    if (rc) {
        crdt_session_free(s);
        return rc;
    }
    s->phase = CRDT_PHASE_CTX;
    p->push = s;
    p->needs_repair = 0;
    r->stats.repairs_started++;
    return crdt_repair_step(r, p, now);
}

/* ---- requests ---- */

static uint64_t rto(const hc_crdt *r, uint32_t tries)
{
    uint32_t shift = tries > 0 ? tries - 1 : 0;
    return (uint64_t)r->cfg.retransmit_ms << (shift > MAX_BACKOFF_SHIFT ? MAX_BACKOFF_SHIFT : shift);
}

static int req_send(hc_crdt *r, crdt_peer *p, crdt_req *q, uint64_t now)
{
    hc_buf copy = {0};
    int rc = hc_buf_append(&copy, q->msg.data, q->msg.len);
    if (rc)
        return rc;
    if (q->sent_at)
        r->stats.retransmits++;
    q->sent_at = now ? now : 1;
    q->tries++;
    return crdt_send(r, p, q->type, &copy);
}

/* Starts a request: header and the {Sid, Req, ...} prefix of the body. */
static crdt_req *req_begin(hc_crdt *r, crdt_peer *p, int type, int arity)
{
    crdt_session *s = p->push;
    crdt_req *q = &s->reqs[s->n_reqs];
    memset(q, 0, sizeof *q);
    q->id = ++s->next_req;
    q->type = type;
    if (crdt_enc_header(&q->msg, type, r->rid, r->inc, p->rid, p->inc) || hc_enc_tuple_header(&q->msg, arity) ||
        hc_enc_ulong(&q->msg, s->sid) || hc_enc_ulong(&q->msg, q->id)) {
        req_free(q);
        return NULL;
    }
    return q;
}

static int req_commit(hc_crdt *r, crdt_peer *p, crdt_req *q, uint64_t now)
{
    p->push->n_reqs++;
    return req_send(r, p, q, now);
}

static int make_ctx(hc_crdt *r, crdt_peer *p, uint64_t now)
{
    crdt_session *s = p->push;
    crdt_req *q = req_begin(r, p, HC_CRDT_MSG_CTX, 5);
    hc_buf *piece = &s->pieces[s->next_piece];
    if (!q || hc_enc_ulong(&q->msg, s->next_piece) || hc_enc_ulong(&q->msg, s->n_pieces) ||
        hc_enc_binary(&q->msg, piece->data, piece->len)) {
        if (q)
            req_free(q);
        return HC_ENOMEM;
    }
    s->next_piece++;
    return req_commit(r, p, q, now);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int make_tree(hc_crdt *r, crdt_peer *p, uint64_t now)
{
    crdt_session *s = p->push;
    uint32_t level = s->front[s->n_front - 1].level;
    size_t max = (crdt_budget(r) - 16) / TREE_ENTRY_BYTES, n = 0;
    uint32_t *nodes = malloc((s->n_front < max ? s->n_front : max) * sizeof *nodes);
    if (!nodes)
        return HC_ENOMEM;
    /* take nodes of one level off the top of the stack */
    while (s->n_front && n < max && s->front[s->n_front - 1].level == level)
        nodes[n++] = s->front[--s->n_front].idx;
    qsort(nodes, n, sizeof *nodes, cmp_u32);
    hc_buf bin = {0};
    int rc = HC_OK;
    for (size_t i = 0; !rc && i < n; i++) {
        uint32_t k = crdt_merkle_index(level, nodes[i]);
        if (!(rc = hc_buf_put_be32(&bin, nodes[i])) && !(rc = hc_buf_put_be32(&bin, r->map.tree.count[k])))
            rc = hc_buf_put_be64(&bin, r->map.tree.sum[k]);
    }
    crdt_req *q = rc ? NULL : req_begin(r, p, HC_CRDT_MSG_TREE, 4);
    if (!q || hc_enc_ulong(&q->msg, level) || hc_enc_binary(&q->msg, bin.data, bin.len)) {
        if (q)
            req_free(q);
        free(nodes);
        hc_buf_free(&bin);
        return rc ? rc : HC_ENOMEM;
    }
    hc_buf_free(&bin);
    q->level = level;
    q->nodes = nodes;
    q->n_nodes = (uint32_t)n;
    return req_commit(r, p, q, now);
}

static int cmp_entry_hash(const void *a, const void *b)
{
    const crdt_entry *x = *(crdt_entry *const *)a, *y = *(crdt_entry *const *)b;
    return x->hash < y->hash ? -1 : x->hash > y->hash;
}

static int enc_record(hc_buf *b, const crdt_entry *e, int with_values)
{
    int rc = hc_enc_tuple_header(b, 3);
    if (!rc)
        rc = hc_enc_raw(b, e->key, e->key_len);
    if (!rc)
        rc = crdt_enc_list(b, e->n);
    for (uint32_t i = 0; !rc && i < e->n; i++) {
        const crdt_elem *el = &e->elems[i];
        rc = crdt_enc_elem(b, el->rid, el->ctr, el->hlc, with_values ? el->val->data : NULL,
                           with_values ? el->val->len : 0);
    }
    if (!rc)
        rc = hc_enc_nil(b);
    if (!rc)
        rc = hc_enc_binary(b, NULL, 0);
    return rc;
}

static int queue_big(crdt_session *s, const crdt_entry *e)
{
    for (uint32_t i = 0; i < e->n; i++) {
        if (grow((void **)&s->big, &s->cap_big, s->n_big + 1, sizeof *s->big))
            return HC_ENOMEM;
        uint8_t *k = malloc(e->key_len ? e->key_len : 1);
        if (!k)
            return HC_ENOMEM;
        memcpy(k, e->key, e->key_len);
        s->big[s->n_big++] = (crdt_big_elem){e->elems[i].rid, e->elems[i].ctr, e->key_len, k};
    }
    return HC_OK;
}

/* Packs the next chunk of ship[head_ship], from ship_pos, in key-hash order, cutting only between
 * distinct hashes so the claimed range [lo, hi] is exactly covered by the records sent. */
static int make_chunk(hc_crdt *r, crdt_peer *p, uint64_t now)
{
    crdt_session *s = p->push;
    crdt_range *rg = &s->ship[s->head_ship];
    if (!s->ship_started) {
        s->ship_pos = rg->lo;
        s->ship_started = 1;
    }
    const crdt_map *m = &r->map;
    size_t budget = crdt_budget(r);
    uint64_t lo = s->ship_pos, claim_hi = rg->hi;
    int range_done = 1, rc = HC_OK;
    hc_buf recs = {0};
    uint32_t n = 0;
    crdt_entry **v = NULL;
    size_t vcap = 0;
    for (size_t b = crdt_map_bucket(m, lo), b1 = crdt_map_bucket(m, rg->hi); b <= b1 && range_done; b++) {
        size_t nv = 0;
        for (crdt_entry *e = m->buckets[b]; e; e = e->next)
            if (e->hash >= lo && e->hash <= rg->hi) {
                if ((rc = grow((void **)&v, &vcap, nv + 1, sizeof *v)))
                    goto out;
                v[nv++] = e;
            }
        if (nv > 1)
            qsort(v, nv, sizeof *v, cmp_entry_hash);
        for (size_t i = 0; i < nv && range_done;) {
            size_t j = i, size = 0;
            for (; j < nv && v[j]->hash == v[i]->hash; j++)
                size += crdt_rec_size(v[j]->key_len, 0, v[j]->elems, v[j]->n);
            uint64_t h = v[i]->hash;
            if (recs.len + size <= budget && (n == 0 || n + (j - i) <= CRDT_MAX_RECS_PER_MSG)) {
                for (size_t k = i; k < j && !rc; k++)
                    rc = enc_record(&recs, v[k], 1);
                n += (uint32_t)(j - i);
            } else if (n == 0) {
                /* alone too big: list dots only, ship each element separately */
                for (size_t k = i; k < j && !rc; k++)
                    if (!(rc = enc_record(&recs, v[k], 0)))
                        rc = queue_big(s, v[k]);
                n += (uint32_t)(j - i);
                if (h != rg->hi) {
                    claim_hi = h;
                    s->ship_pos = h + 1;
                    range_done = 0;
                }
            } else {
                claim_hi = h - 1;
                s->ship_pos = h;
                range_done = 0;
                break;
            }
            if (rc)
                goto out;
            i = j;
        }
        if (b == SIZE_MAX)
            break;
    }
    r->stats.keys_shipped += n;
    crdt_req *q = req_begin(r, p, HC_CRDT_MSG_CHUNK, 5);
    if (!q || hc_enc_ulong(&q->msg, lo) || hc_enc_ulong(&q->msg, claim_hi) || crdt_enc_list(&q->msg, n) ||
        hc_enc_raw(&q->msg, recs.data, recs.len) || (n && hc_enc_nil(&q->msg))) {
        if (q)
            req_free(q);
        rc = HC_ENOMEM;
        goto out;
    }
    if (range_done) {
        s->head_ship++;
        s->ship_started = 0;
        if (s->head_ship == s->n_ship)
            s->head_ship = s->n_ship = 0;
    }
    rc = req_commit(r, p, q, now);
out:
    free(v);
    hc_buf_free(&recs);
    return rc;
}

/* Sends the next oversized element on its own. Returns 1 if a request was made, 0 if the element had
 * gone meanwhile (its removal travels as a delta) or cannot fit. */
static int make_elems(hc_crdt *r, crdt_peer *p, uint64_t now)
{
    crdt_session *s = p->push;
    crdt_big_elem big = s->big[s->head_big++];
    if (s->head_big == s->n_big)
        s->head_big = s->n_big = 0;
    const crdt_entry *e = crdt_map_find(&r->map, big.key, big.key_len, crdt_hash_bytes(big.key, big.key_len));
    free(big.key);
    const crdt_elem *el = NULL;
    for (uint32_t i = 0; e && i < e->n && !el; i++)
        if (e->elems[i].rid == big.rid && e->elems[i].ctr == big.ctr)
            el = &e->elems[i];
    if (!el)
        return 0;
    if (crdt_rec_size(e->key_len, 0, el, 1) > crdt_budget(r)) {
        r->stats.unshippable++;
        return 0;
    }
    crdt_req *q = req_begin(r, p, HC_CRDT_MSG_ELEMS, 3);
    if (!q || crdt_enc_list(&q->msg, 1) || hc_enc_tuple_header(&q->msg, 3) || hc_enc_raw(&q->msg, e->key, e->key_len) ||
        crdt_enc_list(&q->msg, 1) || crdt_enc_elem(&q->msg, el->rid, el->ctr, el->hlc, el->val->data, el->val->len) ||
        hc_enc_nil(&q->msg) || hc_enc_binary(&q->msg, NULL, 0) || hc_enc_nil(&q->msg)) {
        if (q)
            req_free(q);
        return HC_ENOMEM;
    }
    int rc = req_commit(r, p, q, now);
    return rc ? rc : 1;
}

static int make_end(hc_crdt *r, crdt_peer *p, uint64_t now)
{
    crdt_req *q = req_begin(r, p, HC_CRDT_MSG_END, 2);
    return q ? req_commit(r, p, q, now) : HC_ENOMEM;
}

static int has_tree_work(const crdt_session *s) { return s->n_big > s->head_big || s->n_front || s->n_ship; }

/* Makes at most one new request. 1 = made, 0 = nothing to do until a reply arrives. */
static int next_request(hc_crdt *r, crdt_peer *p, uint64_t now)
{
    crdt_session *s = p->push;
    int rc;
    if (s->phase == CRDT_PHASE_CTX) {
        if (s->next_piece < s->n_pieces)
            return (rc = make_ctx(r, p, now)) ? rc : 1;
        if (s->n_reqs)
            return 0; /* chunks must not overtake the context they are judged against */
        s->phase = CRDT_PHASE_TREE;
    }
    if (s->phase == CRDT_PHASE_TREE) {
        while (s->n_big > s->head_big) {
            rc = make_elems(r, p, now);
            if (rc)
                return rc;
        }
        if (s->n_front)
            return (rc = make_tree(r, p, now)) ? rc : 1;
        if (s->n_ship)
            return (rc = make_chunk(r, p, now)) ? rc : 1;
        if (s->n_reqs)
            return 0;
        s->phase = CRDT_PHASE_END;
        return (rc = make_end(r, p, now)) ? rc : 1;
    }
    return 0;
}

int crdt_repair_step(hc_crdt *r, crdt_peer *p, uint64_t now)
{
    crdt_session *s = p->push;
    if (!p->up || !p->heard_me)
        return HC_OK;
    for (size_t i = 0; i < s->n_reqs; i++) {
        crdt_req *q = &s->reqs[i];
        if (!q->sent_at || now >= q->sent_at + rto(r, q->tries)) {
            int rc = req_send(r, p, q, now);
            if (rc)
                return rc;
        }
    }
    while (p->push && s->n_reqs < r->cfg.repair_window) {
        int rc = next_request(r, p, now);
        if (rc <= 0)
            return rc;
    }
    return HC_OK;
}

uint64_t crdt_repair_deadline(const hc_crdt *r, const crdt_peer *p)
{
    const crdt_session *s = p->push;
    uint64_t d = HC_CRDT_NO_DEADLINE;
    for (size_t i = 0; i < s->n_reqs; i++) {
        uint64_t t = s->reqs[i].sent_at ? s->reqs[i].sent_at + rto(r, s->reqs[i].tries) : 0;
        d = t < d ? t : d;
    }
    if (s->n_reqs < r->cfg.repair_window) {
        if ((s->phase == CRDT_PHASE_CTX && s->next_piece < s->n_pieces) ||
            (s->phase == CRDT_PHASE_TREE && has_tree_work(s)) || (s->phase != CRDT_PHASE_END && !s->n_reqs))
            d = 0;
    }
    return d;
}

/* ---- source side: replies ---- */

static crdt_req *find_req(crdt_session *s, uint64_t id)
{
    for (size_t i = 0; i < s->n_reqs; i++)
        if (s->reqs[i].id == id)
            return &s->reqs[i];
    return NULL;
}

static void drop_req(crdt_session *s, crdt_req *q)
{
    req_free(q);
    size_t i = (size_t)(q - s->reqs);
    memmove(&s->reqs[i], &s->reqs[i + 1], (s->n_reqs - i - 1) * sizeof *s->reqs);
    s->n_reqs--;
}

static int on_tree_diff(hc_crdt *r, crdt_peer *p, const crdt_msg *m, uint64_t now)
{
    crdt_session *s = p->push;
    crdt_req *q = s ? find_req(s, m->req) : NULL;
    if (!s || m->sid != s->sid)
        return HC_ESTATE;
    if (!q)
        return HC_OK; /* a duplicate answer */
    if (q->type != HC_CRDT_MSG_TREE || m->level != q->level || m->bin.len % DIFF_ENTRY_BYTES)
        return HC_EINVAL;
    for (size_t o = 0; o < m->bin.len; o += DIFF_ENTRY_BYTES) {
        uint32_t idx = hc_get_be32(m->bin.p + o);
        if (!bsearch(&idx, q->nodes, q->n_nodes, sizeof idx, cmp_u32))
            return HC_EINVAL; /* an answer about a node we did not ask about */
    }
    uint32_t level = q->level;
    for (size_t o = 0; o < m->bin.len; o += DIFF_ENTRY_BYTES) {
        uint32_t idx = hc_get_be32(m->bin.p + o);
        int k_empty = m->bin.p[o + 4] & DIFF_K_EMPTY;
        uint32_t count = r->map.tree.count[crdt_merkle_index(level, idx)];
        int rc;
        if (k_empty || count <= SHIP_DIRECTLY || level == CRDT_MERKLE_DEPTH) {
            rc = push_ship(s, crdt_merkle_lo(level, idx), crdt_merkle_hi(level, idx));
        } else {
            uint32_t down = level + DESCEND_LEVELS > CRDT_MERKLE_DEPTH ? CRDT_MERKLE_DEPTH - level : DESCEND_LEVELS;
            rc = HC_OK;
            for (uint32_t c = 0; c < (1u << down) && !rc; c++)
                rc = push_front(s, level + down, (idx << down) | c);
        }
        if (rc)
            return rc;
    }
    drop_req(s, q);
    return crdt_repair_step(r, p, now);
}

static int on_ack(hc_crdt *r, crdt_peer *p, const crdt_msg *m, uint64_t now)
{
    crdt_session *s = p->push;
    if (!s || m->sid != s->sid)
        return HC_ESTATE;
    if (m->req == 0) {
        /* the peer no longer knows this session (it forgot us, e.g. a membership change): start over */
        crdt_session_free(s);
        p->push = NULL;
        p->needs_repair = 1;
        return HC_OK;
    }
    crdt_req *q = find_req(s, m->req);
    if (!q)
        return HC_OK;
    if (q->type == HC_CRDT_MSG_TREE)
        return HC_EINVAL;
    int was_end = q->type == HC_CRDT_MSG_END;
    drop_req(s, q);
    if (was_end) {
        crdt_session_free(s);
        p->push = NULL;
        r->stats.repairs_completed++;
        return HC_OK;
    }
    return crdt_repair_step(r, p, now);
}

/* ---- sink side ---- */

static int send_ack(hc_crdt *r, crdt_peer *p, const crdt_msg *m)
{
    hc_buf b = {0};
    uint64_t f[2] = {m->sid, m->req};
    int rc = crdt_enc_simple(&b, HC_CRDT_MSG_ACK, r->rid, r->inc, p->rid, p->inc, f, 2);
    if (rc) {
        hc_buf_free(&b);
        return rc;
    }
    return crdt_send(r, p, HC_CRDT_MSG_ACK, &b);
}

/* Tells the source we have no record of its session: it must start a new one. */
static int send_session_unknown(hc_crdt *r, crdt_peer *p, const crdt_msg *m)
{
    crdt_msg reset = *m;
    reset.req = 0;
    return send_ack(r, p, &reset);
}

static int on_tree(hc_crdt *r, crdt_peer *p, const crdt_msg *m)
{
    if (m->level > CRDT_MERKLE_DEPTH || m->bin.len % TREE_ENTRY_BYTES)
        return HC_EINVAL;
    for (size_t o = 0; o < m->bin.len; o += TREE_ENTRY_BYTES)
        if (hc_get_be32(m->bin.p + o) >= (1u << m->level))
            return HC_EINVAL;
    hc_buf diff = {0};
    int rc = HC_OK;
    for (size_t o = 0; o < m->bin.len && !rc; o += TREE_ENTRY_BYTES) {
        uint32_t idx = hc_get_be32(m->bin.p + o), k = crdt_merkle_index((uint32_t)m->level, idx);
        if (r->map.tree.count[k] == hc_get_be32(m->bin.p + o + 4) &&
            r->map.tree.sum[k] == hc_get_be64(m->bin.p + o + 8))
            continue;
        if (!(rc = hc_buf_put_be32(&diff, idx)))
            rc = hc_buf_put_u8(&diff, r->map.tree.count[k] ? 0 : DIFF_K_EMPTY);
    }
    hc_buf b = {0};
    if (!rc && !(rc = crdt_enc_header(&b, HC_CRDT_MSG_TREE_DIFF, r->rid, r->inc, p->rid, p->inc)) &&
        !(rc = hc_enc_tuple_header(&b, 4)) && !(rc = hc_enc_ulong(&b, m->sid)) && !(rc = hc_enc_ulong(&b, m->req)) &&
        !(rc = hc_enc_ulong(&b, m->level)))
        rc = hc_enc_binary(&b, diff.data, diff.len);
    hc_buf_free(&diff);
    if (rc) {
        hc_buf_free(&b);
        return rc;
    }
    return crdt_send(r, p, HC_CRDT_MSG_TREE_DIFF, &b);
}

static int on_ctx(hc_crdt *r, crdt_peer *p, const crdt_msg *m)
{
    crdt_incoming *in = &p->in;
    if (m->sid < in->sid)
        return HC_ESTATE; /* a late piece of a session the peer has abandoned */
    if (m->pieces > MAX_CTX_PIECES)
        return HC_EINVAL;
    if (m->sid > in->sid) {
        crdt_incoming_reset(in);
        in->sid = m->sid;
        in->pieces = m->pieces;
        if (!(in->have = calloc(m->pieces, 1)))
            return HC_ENOMEM;
    }
    if (in->have) { /* NULL once absorbed: a duplicate after `end` only needs its ack */
        if (m->pieces != in->pieces)
            return HC_EINVAL;
        if (!in->have[m->piece]) {
            int rc = crdt_ctx_merge_piece(&in->ctx, m->bin.p, m->bin.len);
            if (rc)
                return rc;
            in->have[m->piece] = 1;
            in->got++;
        }
    }
    return send_ack(r, p, m);
}

typedef struct rec_ref {
    uint64_t hash;
    uint32_t i;
} rec_ref;

static int cmp_rec_ref(const void *a, const void *b)
{
    const rec_ref *x = a, *y = b;
    return x->hash < y->hash ? -1 : x->hash > y->hash;
}

static int chunk_mentions(const crdt_msg *m, const rec_ref *refs, const crdt_entry *e)
{
    size_t lo = 0, hi = m->n_recs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (refs[mid].hash < e->hash)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < m->n_recs && refs[lo].hash == e->hash; lo++) {
        const crdt_wire_rec *rec = &m->recs[refs[lo].i];
        if (rec->key.len == e->key_len && memcmp(rec->key.p, e->key, e->key_len) == 0)
            return 1;
    }
    return 0;
}

static int on_chunk(hc_crdt *r, crdt_peer *p, const crdt_msg *m)
{
    crdt_incoming *in = &p->in;
    if (m->sid < in->sid)
        return HC_ESTATE; /* a late chunk of an abandoned session */
    if (m->sid > in->sid || !in->have || in->got != in->pieces) {
        int rc = send_session_unknown(r, p, m);
        return rc ? rc : HC_ESTATE;
    }
    rec_ref *refs = malloc((m->n_recs ? m->n_recs : 1) * sizeof *refs);
    if (!refs)
        return HC_ENOMEM;
    for (uint32_t i = 0; i < m->n_recs; i++) {
        refs[i] = (rec_ref){crdt_hash_bytes(m->recs[i].key.p, m->recs[i].key.len), i};
        if (refs[i].hash < m->lo || refs[i].hash > m->hi || m->recs[i].removed.len) {
            free(refs);
            return HC_EINVAL; /* a chunk may only speak about its own range */
        }
    }
    if (m->n_recs > 1)
        qsort(refs, m->n_recs, sizeof *refs, cmp_rec_ref);
    /* our keys in [lo, hi] the sender did not send: it holds nothing for them, so every dot of theirs
     * that the sender's context has observed has been removed there */
    crdt_map *map = &r->map;
    crdt_entry **absent = NULL;
    size_t n_absent = 0, cap_absent = 0;
    int rc = HC_OK;
    for (size_t b = crdt_map_bucket(map, m->lo), b1 = crdt_map_bucket(map, m->hi); b <= b1 && !rc; b++) {
        for (crdt_entry *e = map->buckets[b]; e && !rc; e = e->next)
            if (e->hash >= m->lo && e->hash <= m->hi && !chunk_mentions(m, refs, e) &&
                !(rc = grow((void **)&absent, &cap_absent, n_absent + 1, sizeof *absent)))
                absent[n_absent++] = e;
        if (b == SIZE_MAX)
            break;
    }
    for (size_t i = 0; i < n_absent && !rc; i++)
        rc = crdt_apply_absent(r, absent[i], &in->ctx);
    for (uint32_t i = 0; i < m->n_recs && !rc; i++)
        rc = crdt_apply_record(r, &m->recs[i], &in->ctx);
    free(absent);
    free(refs);
    return rc ? rc : send_ack(r, p, m);
}

static int on_elems(hc_crdt *r, crdt_peer *p, const crdt_msg *m)
{
    for (uint32_t i = 0; i < m->n_recs; i++) {
        int rc = crdt_apply_record(r, &m->recs[i], NULL);
        if (rc)
            return rc;
    }
    return send_ack(r, p, m);
}

static int on_end(hc_crdt *r, crdt_peer *p, const crdt_msg *m)
{
    crdt_incoming *in = &p->in;
    if (m->sid == in->sid && in->have && in->got == in->pieces) {
        /* every range has been sent or matched: now, and only now, the snapshot context is ours */
        int rc = crdt_ctx_merge(&r->ctx, &in->ctx);
        if (rc)
            return rc;
        crdt_incoming_reset(in);
    } else if (m->sid > in->sid) {
        return send_session_unknown(r, p, m);
    }
    return send_ack(r, p, m);
}

int crdt_repair_handle(hc_crdt *r, crdt_peer *p, const crdt_msg *m, uint64_t now)
{
    switch (m->type) {
    case HC_CRDT_MSG_TREE: return on_tree(r, p, m);
    case HC_CRDT_MSG_TREE_DIFF: return on_tree_diff(r, p, m, now);
    case HC_CRDT_MSG_CHUNK: return on_chunk(r, p, m);
    case HC_CRDT_MSG_ELEMS: return on_elems(r, p, m);
    case HC_CRDT_MSG_CTX: return on_ctx(r, p, m);
    case HC_CRDT_MSG_END: return on_end(r, p, m);
    case HC_CRDT_MSG_ACK: return on_ack(r, p, m, now);
    }
    return HC_EINVAL;
}
