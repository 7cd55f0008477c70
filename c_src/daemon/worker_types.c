/* worker_types.c — see worker_types.h. Each type is a request table (hc_req_match) plus what it keeps. */
#include "daemon/worker_types.h"

#include <stdlib.h>
#include <string.h>

#include "common/hmap.h"
#include "crdt/hash.h"

/* What a request handler gets. A handler replies itself and returns HC_OK, or returns an error without
 * replying and the request is answered {error, {unknown_call, Request}}. */
typedef struct call_ctx {
    hc_worker *w;
    void *state;
    const hc_gen_from *from;
} call_ctx;

static void reply_buf(const call_ctx *c, hc_buf *b)
{
    hc_gen_reply_buf(hc_worker_rt(c->w), c->from, b); /* an encoding failure still gets an answer */
    hc_buf_free(b);
}

static void reply_unknown_call(hc_worker *w, const hc_gen_from *from, const uint8_t *req, size_t len)
{
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "error");
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "unknown_call");
    hc_enc_raw(&b, req, len);
    hc_gen_reply_buf(hc_worker_rt(w), from, &b);
    hc_buf_free(&b);
}

/* Matches req against table and runs the handler; anything unmatched or malformed gets unknown_call. */
static void dispatch(const hc_req_entry *table, size_t n, hc_worker *w, void *state, const hc_gen_from *from,
                     const uint8_t *req, size_t len)
{
    call_ctx c = {w, state, from};
    hc_req_args a;
    const hc_req_entry *e = hc_req_match(table, n, req, len, &a);
    if (!e || e->fn(&c, &a) != HC_OK)
        reply_unknown_call(w, from, req, len);
}

/* ------------------------------------------------------------------ what every built-in type answers */

/* call {exit, R}: ok, then exit with R (after the reply: the caller gets its answer first). */
static int do_exit(void *ctx, hc_req_args *a)
{
    const call_ctx *c = ctx;
    hc_span r;
    if (hc_dec_term(a->p, a->len, &a->i, &r) || !hc_req_args_done(a))
        return HC_EDECODE;
    hc_gen_reply_atom(hc_worker_rt(c->w), c->from, "ok");
    hc_worker_exit(c->w, r.p, r.len);
    return HC_OK;
}

/* call crash: no reply; exit with {crash, TypeName}, as a gen_server whose handle_call raised. */
static int do_crash(void *ctx, hc_req_args *a)
{
    const call_ctx *c = ctx;
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "crash");
    hc_enc_string(&b, hc_worker_get_type(c->w)->name);
    if (b.err) {
        hc_span shutdown = hc_reason_shutdown(); /* still an abnormal exit */
        hc_worker_exit(c->w, shutdown.p, shutdown.len);
    } else {
        hc_worker_exit(c->w, b.data, b.len);
    }
    hc_buf_free(&b);
    (void)a;
    return HC_OK;
}

/* cast or message {exit, R}: exit with R. Anything else is ignored. */
static void exit_on_request(hc_worker *w, void *state, const uint8_t *msg, size_t len)
{
    size_t i = 0;
    uint32_t arity;
    hc_span r;
    if (!hc_dec_tuple_header(msg, len, &i, &arity) && arity == 2 && hc_dec_is_atom(msg, len, &i, "exit") &&
        !hc_dec_term(msg, len, &i, &r) && i == len)
        hc_worker_exit(w, r.p, r.len);
    (void)state;
}

/* ------------------------------------------------------------------ echo */

typedef struct echo_state {
    size_t len;
    uint8_t arg[]; /* the init argument, ETF */
} echo_state;

static int echo_init(hc_worker *w, const uint8_t *arg, size_t len, void **state, hc_buf *reason)
{
    echo_state *s = malloc(sizeof *s + len);
    if (!s)
        return HC_ENOMEM;
    s->len = len;
    memcpy(s->arg, arg, len);
    *state = s;
    (void)w, (void)reason;
    return HC_OK;
}

static int do_echo(void *ctx, hc_req_args *a)
{
    const call_ctx *c = ctx;
    hc_span t;
    if (hc_dec_term(a->p, a->len, &a->i, &t) || !hc_req_args_done(a))
        return HC_EDECODE;
    hc_gen_reply(hc_worker_rt(c->w), c->from, t.p, t.len);
    return HC_OK;
}

static int do_get_arg(void *ctx, hc_req_args *a)
{
    const call_ctx *c = ctx;
    const echo_state *s = c->state;
    hc_gen_reply(hc_worker_rt(c->w), c->from, s->arg, s->len);
    (void)a;
    return HC_OK;
}

static const hc_req_entry echo_requests[] = {
    {"echo", 1, do_echo},
    {"get_arg", 0, do_get_arg},
    {"exit", 1, do_exit},
    {"crash", 0, do_crash},
};

static void echo_call(hc_worker *w, void *state, const hc_gen_from *from, const uint8_t *req, size_t len)
{
    dispatch(echo_requests, sizeof echo_requests / sizeof echo_requests[0], w, state, from, req, len);
}

static void free_state(hc_worker *w, void *state, const uint8_t *reason, size_t len)
{
    free(state);
    (void)w, (void)reason, (void)len;
}

static const hc_worker_type echo_type = {
    .name = "echo",
    .init = echo_init,
    .handle_call = echo_call,
    .handle_cast = exit_on_request,
    .handle_info = exit_on_request,
    .terminate = free_state,
};

/* ------------------------------------------------------------------ kv */

/* One pair: the key's bytes, then the value's, in one allocation. */
typedef struct kv_entry {
    size_t klen, vlen;
    uint8_t data[];
} kv_entry;

typedef struct kv_state {
    hc_hmap map; /* crdt_hash_bytes(key) -> kv_entry (a multimap: compare the key bytes) */
} kv_state;

static kv_entry *kv_find(const kv_state *s, uint64_t h, const uint8_t *key, size_t klen)
{
    size_t pos = 0;
    kv_entry *e;
    while ((e = hc_hmap_next(&s->map, h, &pos)))
        if (e->klen == klen && memcmp(e->data, key, klen) == 0)
            return e;
    return NULL;
}

/* Sets key to value (both copied). HC_OK, HC_ETOOBIG when full (a new key only), HC_ENOMEM. */
static int kv_put(kv_state *s, hc_span key, hc_span value)
{
    uint64_t h = crdt_hash_bytes(key.p, key.len);
    kv_entry *old = kv_find(s, h, key.p, key.len);
    if (!old && s->map.count >= HORDEC_KV_MAX_ENTRIES)
        return HC_ETOOBIG;
    kv_entry *e = malloc(sizeof *e + key.len + value.len);
    if (!e)
        return HC_ENOMEM;
    e->klen = key.len;
    e->vlen = value.len;
    memcpy(e->data, key.p, key.len);
    memcpy(e->data + key.len, value.p, value.len);
    if (hc_hmap_put(&s->map, h, e)) {
        free(e);
        return HC_ENOMEM;
    }
    if (old) { /* only now: a failed put leaves the old pair */
        hc_hmap_del(&s->map, h, old);
        free(old);
    }
    return HC_OK;
}

static void kv_free(kv_state *s)
{
    for (size_t i = 0; i < s->map.cap; i++)
        if (hc_hmap_live(&s->map, i))
            free(s->map.vals[i]);
    hc_hmap_free(&s->map);
    free(s);
}

/* {K, V} as an element of an init list; anything else is skipped. */
static int kv_put_pair(kv_state *s, hc_span pair)
{
    size_t i = 0;
    uint32_t arity;
    hc_span k, v;
    if (hc_dec_tuple_header(pair.p, pair.len, &i, &arity) || arity != 2 || hc_dec_term(pair.p, pair.len, &i, &k) ||
        hc_dec_term(pair.p, pair.len, &i, &v))
        return HC_OK;
    return kv_put(s, k, v);
}

static int kv_init(hc_worker *w, const uint8_t *arg, size_t len, void **state, hc_buf *reason)
{
    kv_state *s = calloc(1, sizeof *s);
    if (!s)
        return HC_ENOMEM;
    hc_iter it;
    hc_span k, v;
    size_t i = 0;
    int rc = HC_OK;
    if (hc_term_type(arg, len, 0) == HC_TYPE_MAP && !hc_iter_map(&it, arg, len, &i)) {
        while (rc == HC_OK && hc_iter_next_pair(&it, &k, &v))
            rc = kv_put(s, k, v);
    } else if (hc_term_type(arg, len, 0) == HC_TYPE_LIST && !hc_iter_list(&it, arg, len, &i)) {
        while (rc == HC_OK && hc_iter_next(&it, &k))
            rc = kv_put_pair(s, k);
    }
    if (rc) { /* too many pairs, or out of memory: {error, Code} from the start */
        kv_free(s);
        hc_enc_atom_cstr(reason, rc == HC_ETOOBIG ? "too_many_entries" : hc_err_atom(rc));
        return rc;
    }
    *state = s;
    (void)w;
    return HC_OK;
}

static int do_put(void *ctx, hc_req_args *a)
{
    const call_ctx *c = ctx;
    hc_span k, v;
    if (hc_dec_term(a->p, a->len, &a->i, &k) || hc_dec_term(a->p, a->len, &a->i, &v) || !hc_req_args_done(a))
        return HC_EDECODE;
    int rc = kv_put(c->state, k, v);
    hc_rt *rt = hc_worker_rt(c->w);
    if (rc == HC_OK)
        hc_gen_reply_atom(rt, c->from, "ok");
    else
        hc_gen_reply_error(rt, c->from, rc == HC_ETOOBIG ? "full" : hc_err_atom(rc));
    return HC_OK;
}

static int do_get(void *ctx, hc_req_args *a)
{
    const call_ctx *c = ctx;
    hc_span k;
    if (hc_dec_term(a->p, a->len, &a->i, &k) || !hc_req_args_done(a))
        return HC_EDECODE;
    const kv_entry *e = kv_find(c->state, crdt_hash_bytes(k.p, k.len), k.p, k.len);
    if (!e) {
        hc_gen_reply_atom(hc_worker_rt(c->w), c->from, "error");
        return HC_OK;
    }
    hc_gen_reply_ok(hc_worker_rt(c->w), c->from, e->data + e->klen, e->vlen);
    return HC_OK;
}

static int do_delete(void *ctx, hc_req_args *a)
{
    const call_ctx *c = ctx;
    kv_state *s = c->state;
    hc_span k;
    if (hc_dec_term(a->p, a->len, &a->i, &k) || !hc_req_args_done(a))
        return HC_EDECODE;
    uint64_t h = crdt_hash_bytes(k.p, k.len);
    kv_entry *e = kv_find(s, h, k.p, k.len);
    if (e) {
        hc_hmap_del(&s->map, h, e);
        free(e);
    }
    hc_gen_reply_atom(hc_worker_rt(c->w), c->from, "ok");
    return HC_OK;
}

static int do_size(void *ctx, hc_req_args *a)
{
    const call_ctx *c = ctx;
    const kv_state *s = c->state;
    hc_buf b = {0};
    hc_enc_ulong(&b, s->map.count);
    reply_buf(c, &b);
    (void)a;
    return HC_OK;
}

static int do_keys(void *ctx, hc_req_args *a)
{
    const call_ctx *c = ctx;
    const kv_state *s = c->state;
    hc_buf b = {0};
    if (s->map.count)
        hc_enc_list_header(&b, (uint32_t)s->map.count);
    for (size_t i = 0; i < s->map.cap; i++) {
        if (hc_hmap_live(&s->map, i)) {
            const kv_entry *e = s->map.vals[i];
            hc_enc_raw(&b, e->data, e->klen);
        }
    }
    hc_enc_nil(&b);
    reply_buf(c, &b);
    (void)a;
    return HC_OK;
}

static const hc_req_entry kv_requests[] = {
    {"put", 2, do_put},   {"get", 1, do_get},   {"delete", 1, do_delete}, {"size", 0, do_size},
    {"keys", 0, do_keys}, {"exit", 1, do_exit}, {"crash", 0, do_crash},
};

static void kv_call(hc_worker *w, void *state, const hc_gen_from *from, const uint8_t *req, size_t len)
{
    dispatch(kv_requests, sizeof kv_requests / sizeof kv_requests[0], w, state, from, req, len);
}

static void kv_terminate(hc_worker *w, void *state, const uint8_t *reason, size_t len)
{
    kv_free(state);
    (void)w, (void)reason, (void)len;
}

static const hc_worker_type kv_type = {
    .name = "kv",
    .init = kv_init,
    .handle_call = kv_call,
    .handle_cast = exit_on_request,
    .handle_info = exit_on_request,
    .terminate = kv_terminate,
};

/* ------------------------------------------------------------------ registration */

int hordec_worker_types_register(hc_rt *rt)
{
    int rc = hc_worker_type_register(rt, &echo_type);
    if (rc == HC_OK)
        rc = hc_worker_type_register(rt, &kv_type);
    return rc;
}
