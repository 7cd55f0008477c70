/* core.c — the CRDT map as an hc_core (hc_core.h): the engine plus the decoding of its client requests,
 * so that the host (and the simulator) can run it like any other core.
 *
 * Requests, each answered with exactly one reply:
 *   {put, K, V} | {delete, K} | {merge, #{K => V}} | {drop, [K]}
 *       -> ok | {error, too_big | {too_deep, 200} | enomem | badarg}
 *   {get, K} -> {ok, V} | error        {take, [K]} -> #{K => V}        to_map -> #{K => V}
 * anything else -> {error, badarg}.
 *
 * No request holds the loop long (docs/crdt.md, "Work per loop turn"): a big to_map is read with a cursor a slice
 * per tick, and a big merge or drop is validated whole and then applied a slice per tick (write_job); requests
 * that arrive meanwhile wait in arrival order (parked) and are handled once it is done. */
#include <stdlib.h>
#include <string.h>

#include "hordec/hc_crdt.h"

/* A whole-map reply being built a slice per tick (see do_to_map). */
typedef struct read_job {
    struct read_job *next;
    uint64_t token;
    hc_crdt_cursor *cur;
    hc_buf body;
} read_job;

/* A merge or drop too big for one loop turn. Its argument is read (each term skipped) and validated a slice per
 * tick, and only once all of it passed is it applied, a slice per tick: a request that fails validation — a
 * malformed term anywhere, as much as a value too deep — changes nothing. */
typedef struct write_job {
    uint64_t token;
    uint8_t *req;    /* a copy of the request: its bytes are the caller's only during the call */
    size_t len, pos; /* the request's length, and where its next unread element starts */
    bool is_map;     /* merge (a map of puts), or drop (a LIST of deletes) */
    hc_crdt_kv *ops; /* pointing into req */
    size_t total, read, applied;
} write_job;

/* A request that arrived while a write job was being applied, waiting for its turn. */
typedef struct parked_req {
    struct parked_req *next;
    uint64_t token;
    size_t len;
    uint8_t req[];
} parked_req;

typedef struct crdt_core {
    hc_crdt *crdt;
    hc_reply_queue replies;
    read_job *jobs, **jobs_tail; /* oldest first */
    write_job *write;            /* the merge or drop being applied, if any */
    parked_req *parked, **parked_tail;
} crdt_core;

/* A map up to this size is read in one go; a bigger one a slice of READ_SLICE entries per tick (all requests
 * together), so a large to_map never holds the loop long and other callers are answered in between. */
#define READ_AT_ONCE 4096
#define READ_SLICE 8192
/* A merge or drop of up to WRITE_AT_ONCE keys is applied in one go; a bigger one is read and validated
 * CHECK_SLICE keys per tick, then applied WRITE_SLICE keys per tick (applying costs about ten times more than
 * validating: a few ms per slice on a loaded machine). */
#define WRITE_AT_ONCE 4096
#define CHECK_SLICE 16384
#define WRITE_SLICE 4096

/* ------------------------------------------------------------------ replies */

static void queue_reply(crdt_core *c, uint64_t token, hc_buf *body) { hc_reply_queue_push(&c->replies, token, body); }

/* The engine answers HC_EINVAL for a write whose request decoded only when a key or value nests deeper than it
 * stores (hc_term_check): that gets its own reply, {error, {too_deep, 200}}, not the bare badarg of a malformed
 * request. */
#define RC_TOO_DEEP 1000 /* not an HC_E* code: those are negative */
static int engine_status(int rc) { return rc == HC_EINVAL ? RC_TOO_DEEP : rc; }

static void reply_status(crdt_core *c, uint64_t token, int rc)
{
    hc_buf b = {0};
    if (rc == HC_OK) {
        hc_enc_atom_cstr(&b, "ok");
    } else {
        hc_enc_tuple_header(&b, 2);
        hc_enc_atom_cstr(&b, "error");
        if (rc == RC_TOO_DEEP) {
            hc_enc_tuple_header(&b, 2);
            hc_enc_atom_cstr(&b, "too_deep");
            hc_enc_ulong(&b, HC_TERM_MAX_DEPTH);
        } else {
            hc_enc_atom_cstr(&b, rc == HC_ETOOBIG ? "too_big" : rc == HC_ENOMEM ? "enomem" : "badarg");
        }
    }
    queue_reply(c, token, &b);
}

/* ------------------------------------------------------------------ requests */

/* What a request handler sees: the core, the caller's token, the time. A handler queues exactly one reply
 * and returns HC_OK, or returns HC_EINVAL without replying when its arguments are malformed. */
typedef struct req {
    crdt_core *c;
    uint64_t token;
    hc_time now;
} req;

static int start_write(req *r, hc_req_args *a, size_t pos, uint32_t n, bool is_map);

static int do_put(void *ctx, hc_req_args *a)
{
    req *r = ctx;
    hc_span k, v;
    if (hc_dec_term(a->p, a->len, &a->i, &k) || hc_dec_term(a->p, a->len, &a->i, &v) || !hc_req_args_done(a))
        return HC_EINVAL;
    reply_status(r->c, r->token, engine_status(hc_crdt_put(r->c->crdt, k.p, k.len, v.p, v.len, r->now)));
    return HC_OK;
}

static int do_delete(void *ctx, hc_req_args *a)
{
    req *r = ctx;
    hc_span k;
    if (hc_dec_term(a->p, a->len, &a->i, &k) || !hc_req_args_done(a))
        return HC_EINVAL;
    reply_status(r->c, r->token, engine_status(hc_crdt_delete(r->c->crdt, k.p, k.len, r->now)));
    return HC_OK;
}

static int do_get(void *ctx, hc_req_args *a)
{
    req *r = ctx;
    hc_span k;
    const uint8_t *v;
    size_t vl;
    if (hc_dec_term(a->p, a->len, &a->i, &k) || !hc_req_args_done(a))
        return HC_EINVAL;
    hc_buf b = {0};
    if (hc_crdt_get(r->c->crdt, k.p, k.len, &v, &vl)) {
        hc_enc_tuple_header(&b, 2);
        hc_enc_atom_cstr(&b, "ok");
        hc_enc_raw(&b, v, vl);
    } else {
        hc_enc_atom_cstr(&b, "error");
    }
    queue_reply(r->c, r->token, &b);
    return HC_OK;
}

/* The keys of a list argument as CRDT ops. The iterator hands out STRING elements (a list of small
 * integers) in its own storage, valid until the next element: those are copied into `small`. */
static int list_keys(hc_req_args *a, hc_crdt_kv **out, size_t *n, uint8_t (**small)[2])
{
    hc_iter it;
    *out = NULL;
    *small = NULL;
    *n = 0;
    if (hc_iter_list(&it, a->p, a->len, &a->i) || !hc_req_args_done(a))
        return HC_EINVAL;
    *out = calloc(it.left ? it.left : 1, sizeof **out);
    *small = calloc(it.left ? it.left : 1, sizeof **small);
    if (!*out || !*small)
        return HC_ENOMEM;
    hc_span k;
    while (hc_iter_next(&it, &k)) {
        if (k.p == it.small) {
            memcpy((*small)[*n], k.p, 2);
            k.p = (*small)[*n];
        }
        (*out)[(*n)++] = (hc_crdt_kv){k.p, k.len, NULL, 0};
    }
    return HC_OK;
}

static int do_drop(void *ctx, hc_req_args *a)
{
    req *r = ctx;
    size_t at = a->i;
    uint32_t count;
    if (hc_dec_list_header(a->p, a->len, &at, &count) == HC_OK && count > WRITE_AT_ONCE)
        return start_write(r, a, at, count, false);
    hc_crdt_kv *ops;
    uint8_t(*small)[2];
    size_t n;
    int rc = list_keys(a, &ops, &n, &small);
    if (rc != HC_EINVAL) /* malformed: no reply here, the dispatcher answers badarg */
        reply_status(r->c, r->token, rc ? rc : engine_status(hc_crdt_bulk(r->c->crdt, ops, n, r->now)));
    free(ops);
    free(small);
    return rc == HC_EINVAL ? rc : HC_OK;
}

static int do_take(void *ctx, hc_req_args *a)
{
    req *r = ctx;
    hc_crdt_kv *keys;
    uint8_t(*small)[2];
    size_t n;
    int rc = list_keys(a, &keys, &n, &small);
    if (rc == HC_OK) {
        hc_buf body = {0}, b = {0};
        uint32_t found = 0;
        for (size_t k = 0; k < n; k++) {
            const uint8_t *v;
            size_t vl;
            if (hc_crdt_get(r->c->crdt, keys[k].key, keys[k].key_len, &v, &vl)) {
                hc_enc_raw(&body, keys[k].key, keys[k].key_len);
                hc_enc_raw(&body, v, vl);
                found++;
            }
        }
        hc_enc_map_header(&b, found);
        hc_enc_raw(&b, body.data, body.len);
        if (body.err && !b.err)
            b.err = body.err;
        queue_reply(r->c, r->token, &b);
        hc_buf_free(&body);
    } else if (rc != HC_EINVAL) {
        reply_status(r->c, r->token, rc);
    }
    free(keys);
    free(small);
    return rc == HC_EINVAL ? rc : HC_OK;
}

static int do_merge(void *ctx, hc_req_args *a)
{
    req *r = ctx;
    hc_iter it;
    size_t at = a->i;
    uint32_t count;
    if (hc_dec_map_header(a->p, a->len, &at, &count) == HC_OK && count > WRITE_AT_ONCE)
        return start_write(r, a, at, count, true); /* not even skipped whole here: that is a slice's work too */
    if (hc_iter_map(&it, a->p, a->len, &a->i) || !hc_req_args_done(a))
        return HC_EINVAL;
    hc_crdt_kv *ops = calloc(it.left ? it.left : 1, sizeof *ops);
    int rc = ops ? HC_OK : HC_ENOMEM;
    size_t n = 0;
    hc_span k, v;
    while (ops && hc_iter_next_pair(&it, &k, &v))
        ops[n++] = (hc_crdt_kv){k.p, k.len, v.p, v.len};
    reply_status(r->c, r->token, rc ? rc : engine_status(hc_crdt_bulk(r->c->crdt, ops, n, r->now)));
    free(ops);
    return HC_OK;
}

static int add_pair(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    hc_buf *b = ud;
    hc_enc_raw(b, k, kl);
    return hc_enc_raw(b, v, vl);
}

static int do_to_map(void *ctx, hc_req_args *a)
{
    req *r = ctx;
    crdt_core *c = r->c;
    (void)a;
    size_t n = hc_crdt_size(c->crdt);
    read_job *j = n > READ_AT_ONCE ? calloc(1, sizeof *j) : NULL;
    if (j && hc_crdt_cursor_open(c->crdt, &j->cur) != HC_OK) {
        free(j);
        j = NULL;
    }
    if (!j) { /* small (or no memory for a cursor): at once */
        hc_buf b = {0};
        hc_enc_map_header(&b, (uint32_t)n);
        hc_crdt_foreach(c->crdt, add_pair, &b);
        queue_reply(c, r->token, &b);
        return HC_OK;
    }
    j->token = r->token;
    hc_enc_map_header(&j->body, (uint32_t)hc_crdt_cursor_count(j->cur));
    if (!c->jobs_tail)
        c->jobs_tail = &c->jobs;
    *c->jobs_tail = j;
    c->jobs_tail = &j->next;
    return HC_OK;
}

static void job_free(read_job *j)
{
    hc_crdt_cursor_close(j->cur);
    hc_buf_free(&j->body);
    free(j);
}

/* Advances the oldest whole-map reads by READ_SLICE entries in all; a finished one is replied. */
static void run_jobs(crdt_core *c)
{
    size_t budget = READ_SLICE;
    while (c->jobs && budget) {
        read_job *j = c->jobs;
        size_t done = 0;
        int rc = hc_crdt_cursor_next(j->cur, budget, &done, add_pair, &j->body);
        budget -= done < budget ? done : budget;
        if (rc == 1 && !j->body.err)
            continue;
        if (rc == HC_OK)
            queue_reply(c, j->token, &j->body); /* a sticky encoding error becomes {error, enomem} */
        else
            reply_status(c, j->token, rc == 1 ? j->body.err : rc);
        c->jobs = j->next;
        if (!c->jobs)
            c->jobs_tail = &c->jobs;
        job_free(j);
    }
}

static void write_free(write_job *w)
{
    if (!w)
        return;
    free(w->req);
    free(w->ops);
    free(w);
}

/* Makes the merge or drop whose argument (a map of n pairs, or a LIST of n elements) starts at a->p[pos] the core's
 * write job; the reply comes when it is done. Nothing of the argument is read yet. */
static int start_write(req *r, hc_req_args *a, size_t pos, uint32_t n, bool is_map)
{
    if (n > a->len - pos)
        return HC_EINVAL; /* each element takes a byte at least: the count lies */
    write_job *w = calloc(1, sizeof *w);
    if (w) {
        w->req = malloc(a->len);
        w->ops = calloc(n, sizeof *w->ops);
    }
    if (!w || !w->req || !w->ops) {
        write_free(w);
        reply_status(r->c, r->token, HC_ENOMEM);
        return HC_OK;
    }
    memcpy(w->req, a->p, a->len);
    w->token = r->token;
    w->len = a->len;
    w->pos = pos;
    w->is_map = is_map;
    w->total = n;
    r->c->write = w;
    return HC_OK;
}

static void write_done(crdt_core *c, int rc)
{
    reply_status(c, c->write->token, rc);
    write_free(c->write);
    c->write = NULL;
}

/* Reads the next CHECK_SLICE elements of the job's argument; after the last, the argument must end the request (a
 * list with its [] tail). HC_OK, or HC_EINVAL for a malformed request. */
static int write_read(write_job *w)
{
    for (size_t from = w->read; w->read < w->total && w->read - from < CHECK_SLICE; w->read++) {
        hc_span k, v = {0};
        if (hc_dec_term(w->req, w->len, &w->pos, &k) || (w->is_map && hc_dec_term(w->req, w->len, &w->pos, &v)))
            return HC_EINVAL;
        w->ops[w->read] = (hc_crdt_kv){k.p, k.len, w->is_map ? v.p : NULL, v.len};
    }
    if (w->read < w->total)
        return HC_OK;
    if (!w->is_map && (hc_peek_type(w->req, w->len, w->pos) != 106 /* NIL_EXT */ || ++w->pos > w->len))
        return HC_EINVAL;
    return w->pos == w->len ? HC_OK : HC_EINVAL;
}

/* One slice of the write job: reading and validating the next CHECK_SLICE keys, or, once all are valid,
 * applying the next WRITE_SLICE. */
static void write_step(crdt_core *c, hc_time now)
{
    write_job *w = c->write;
    if (w->read < w->total) {
        size_t from = w->read;
        if (write_read(w)) {
            write_done(c, HC_EINVAL); /* {error, badarg}, as for any malformed request */
            return;
        }
        int rc = hc_crdt_bulk_check(c->crdt, w->ops + from, w->read - from);
        if (rc)
            write_done(c, engine_status(rc));
        return;
    }
    size_t n = w->total - w->applied < WRITE_SLICE ? w->total - w->applied : WRITE_SLICE;
    int rc = hc_crdt_bulk(c->crdt, w->ops + w->applied, n, now);
    w->applied += n;
    if (rc || w->applied == w->total)
        write_done(c, engine_status(rc));
}

static const hc_req_entry requests[] = {
    {"put", 2, do_put},     {"delete", 1, do_delete}, {"get", 1, do_get},       {"take", 1, do_take},
    {"merge", 1, do_merge}, {"drop", 1, do_drop},     {"to_map", 0, do_to_map},
};

static void dispatch(crdt_core *c, uint64_t token, const uint8_t *p, size_t len, hc_time now)
{
    req r = {c, token, now};
    hc_req_args a;
    const hc_req_entry *e = hc_req_match(requests, sizeof requests / sizeof requests[0], p, len, &a);
    if (!e || e->fn(&r, &a) != HC_OK)
        reply_status(c, token, HC_EINVAL);
}

/* While a merge or drop is being applied over several ticks, every request behind it waits, in arrival order:
 * so a caller's next request, and any read, sees the whole write (read-your-writes), and replies leave in the
 * order the requests came, as from any GenServer. Only this replica's callers wait; the loop serves everyone
 * else, and this replica's peers, between slices. */
static void core_request(void *core, uint64_t token, const hc_pid *from, const uint8_t *p, size_t len, hc_time now)
{
    crdt_core *c = core;
    (void)from;
    if (!c->write) {
        dispatch(c, token, p, len, now);
        return;
    }
    parked_req *q = malloc(sizeof *q + len);
    if (!q) {
        reply_status(c, token, HC_ENOMEM);
        return;
    }
    *q = (parked_req){.token = token, .len = len};
    memcpy(q->req, p, len);
    if (!c->parked_tail)
        c->parked_tail = &c->parked;
    *c->parked_tail = q;
    c->parked_tail = &q->next;
}

/* Handles parked requests, oldest first, until one of them is a big write again (or none is left). */
static void run_parked(crdt_core *c, hc_time now)
{
    while (!c->write && c->parked) {
        parked_req *q = c->parked;
        c->parked = q->next;
        if (!c->parked)
            c->parked_tail = &c->parked;
        dispatch(c, q->token, q->req, q->len, now);
        free(q);
    }
}

/* ------------------------------------------------------------------ the rest of hc_core_ops */

static int core_receive(void *core, uint64_t peer, const uint8_t *msg, size_t len, hc_time now)
{
    return hc_crdt_receive(((crdt_core *)core)->crdt, peer, msg, len, now);
}

static int core_tick(void *core, hc_time now)
{
    crdt_core *c = core;
    if (c->write)
        write_step(c, now);
    run_parked(c, now);
    run_jobs(c);
    return hc_crdt_tick(c->crdt, now);
}

static uint64_t core_deadline(const void *core)
{
    const crdt_core *c = core;
    /* a queued reply, or a reply being built, is due now, so the host drains it even if no input follows */
    return hc_reply_queue_pending(&c->replies) || c->jobs || c->write ? 0 : hc_crdt_next_deadline(c->crdt);
}

int hc_crdt_set_peers(hc_crdt *r, const hc_core_peer *peers, size_t n, hc_core_peer **kept, size_t *nkept, hc_time now)
{
    uint64_t *handles = calloc(n ? n : 1, sizeof *handles);
    hc_core_peer *copy = kept ? malloc((n ? n : 1) * sizeof *copy) : NULL;
    if (!handles || (kept && !copy)) {
        free(handles);
        free(copy);
        return HC_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        handles[i] = peers[i].handle;
    int rc = hc_crdt_set_neighbours(r, handles, n, now);
    free(handles);
    if (rc || !kept) {
        free(copy);
        return rc;
    }
    if (n)
        memcpy(copy, peers, n * sizeof *copy);
    free(*kept);
    *kept = copy;
    *nkept = n;
    return HC_OK;
}

static int core_set_peers(void *core, const hc_core_peer *peers, size_t n, hc_time now)
{
    return hc_crdt_set_peers(((crdt_core *)core)->crdt, peers, n, NULL, NULL, now);
}

static int core_peer_up(void *core, uint64_t peer, hc_time now)
{
    return hc_crdt_peer_up(((crdt_core *)core)->crdt, peer, now);
}

static int core_peer_down(void *core, uint64_t peer, hc_time now)
{
    return hc_crdt_peer_down(((crdt_core *)core)->crdt, peer, now);
}

/* Order: messages to peers, then change events, then replies, so that the host has queued a request's
 * changes for subscribers before the reply goes out. */
static bool core_pop(void *core, hc_effect *out)
{
    crdt_core *c = core;
    hc_crdt_msg m;
    if (hc_crdt_pop_message(c->crdt, &m)) {
        *out = (hc_effect){.kind = HC_EFF_SEND_PEER, .peer = m.peer, .data = m.data, .len = m.len};
        return true;
    }
    hc_crdt_event e;
    if (hc_crdt_pop_event(c->crdt, &e)) {
        *out = (hc_effect){
            .kind = HC_EFF_EVENT, .data = e.key, .len = e.key_len, .value = e.new_value, .value_len = e.new_len};
        return true;
    }
    return hc_reply_queue_pop(&c->replies, out);
}

static int core_snapshot(const void *core, hc_core_visit_fn fn, void *ud)
{
    return hc_crdt_foreach(((const crdt_core *)core)->crdt, fn, ud);
}

static int core_snapshot_open(void *core, void **reader, size_t *count)
{
    hc_crdt_cursor *cur;
    int rc = hc_crdt_cursor_open(((crdt_core *)core)->crdt, &cur);
    *reader = cur;
    *count = rc ? 0 : hc_crdt_cursor_count(cur);
    return rc;
}

static int core_snapshot_next(void *reader, size_t max, hc_core_visit_fn fn, void *ud)
{
    return hc_crdt_cursor_next(reader, max, NULL, fn, ud);
}

static void core_snapshot_close(void *reader) { hc_crdt_cursor_close(reader); }

static void put_stat(hc_buf *b, const char *k, uint64_t v)
{
    hc_enc_atom_cstr(b, k);
    hc_enc_ulong(b, v);
}

int hc_crdt_enc_sync_stats(const hc_crdt *r, const hc_host_stats *hs, hc_buf *b)
{
    hc_crdt_stats s;
    hc_crdt_get_stats(r, &s);
    uint64_t sent = 0, recv = 0, sentb = 0, recvb = 0, rej = hs->dropped_in;
    for (int i = 0; i < HC_CRDT_MSG__COUNT; i++) {
        sent += s.sent_msgs[i];
        recv += s.recv_msgs[i];
        sentb += s.sent_bytes[i];
        recvb += s.recv_bytes[i];
    }
    for (int i = 0; i < HC_CRDT_REJ__COUNT; i++)
        rej += s.rejected[i];
    put_stat(b, "replica_id", hc_crdt_replica_id(r));
    put_stat(b, "neighbours", hs->neighbours);
    put_stat(b, "subscribers", hs->subscribers);
    put_stat(b, "msgs_sent", sent);
    put_stat(b, "msgs_received", recv);
    put_stat(b, "bytes_sent", sentb);
    put_stat(b, "bytes_received", recvb);
    put_stat(b, "rejected", rej);
    put_stat(b, "repairs_completed", s.repairs_completed);
    put_stat(b, "retransmits", s.retransmits);
    put_stat(b, "rejected_clock", s.rejected[HC_CRDT_REJ_CLOCK]);
    put_stat(b, "rejected_dots", s.rejected[HC_CRDT_REJ_OWN_DOTS] + s.rejected[HC_CRDT_REJ_DUPLICATE]);
    put_stat(b, "max_clock_offset_ms", hc_crdt_max_clock_offset(r));
    hc_crdt_lag lag;
    hc_crdt_get_lag(r, &lag);
    put_stat(b, "unacked_bytes", lag.unacked_bytes);
    put_stat(b, "sync_lag_ms", lag.oldest_unacked_ms);
    put_stat(b, "repairing", lag.repairing);
    hc_enc_atom_cstr(b, "idle");
    hc_enc_bool(b, hc_crdt_idle(r) && !hs->core_busy);
    return b->err;
}

static int core_stats(const void *core, const hc_host_stats *hs, hc_buf *b)
{
    const crdt_core *c = core;
    hc_crdt_stats s;
    hc_crdt_get_stats(c->crdt, &s);
    hc_enc_map_header(b, 4 + HC_CRDT_SYNC_STATS);
    put_stat(b, "keys", s.keys);
    put_stat(b, "elements", s.elements);
    put_stat(b, "key_bytes", s.key_bytes);
    put_stat(b, "value_bytes", s.value_bytes);
    return hc_crdt_enc_sync_stats(c->crdt, hs, b);
}

static void core_free(void *core)
{
    crdt_core *c = core;
    if (!c)
        return;
    while (c->jobs) {
        read_job *j = c->jobs;
        c->jobs = j->next;
        job_free(j);
    }
    write_free(c->write);
    while (c->parked) {
        parked_req *q = c->parked;
        c->parked = q->next;
        free(q);
    }
    hc_crdt_free(c->crdt);
    hc_reply_queue_free(&c->replies);
    free(c);
}

const hc_core_ops hc_crdt_core_ops = {
    .kind = "crdt",
    .receive = core_receive,
    .request = core_request,
    .tick = core_tick,
    .next_deadline = core_deadline,
    .set_peers = core_set_peers,
    .peer_up = core_peer_up,
    .peer_down = core_peer_down,
    .monitor_down = NULL,
    .pop_effect = core_pop,
    .snapshot = core_snapshot,
    .stats = core_stats,
    .free = core_free,
    .snapshot_open = core_snapshot_open,
    .snapshot_next = core_snapshot_next,
    .snapshot_close = core_snapshot_close,
};

int hc_crdt_core_new(const hc_crdt_config *cfg, hc_time now, void **out)
{
    *out = NULL;
    crdt_core *c = calloc(1, sizeof *c);
    if (!c)
        return HC_ENOMEM;
    int rc = hc_crdt_new(cfg, now, &c->crdt);
    if (rc) {
        free(c);
        return rc;
    }
    *out = c;
    return HC_OK;
}

hc_crdt *hc_crdt_core_engine(void *core) { return ((crdt_core *)core)->crdt; }
