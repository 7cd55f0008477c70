/* control.c — see control.h. Every request gets a reply; an unknown or malformed one gets
 * {error, {unknown_request, Request}} rather than silence or a crash. */
#include "hordec/control.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hordec/hc_log.h"
#include "hordec/workers.h"
#include "hordec/hc_crdt.h"
#include "hordec/replicas.h"
#include "replica/termlist.h"

typedef struct control_state {
    uint64_t started_ms;
} control_state;

typedef struct deferred {
    hc_gen_from from;
} deferred;

/* {ok, Pid} of a process we just started, or {error, enomem} if there is none. */
static void reply_ok_pid(hc_rt *rt, const hc_gen_from *from, const hc_proc *p)
{
    hc_buf b = {0};
    if (p && !hc_enc_pid(&b, hc_proc_pid(p)))
        hc_gen_reply_ok(rt, from, b.data, b.len);
    else
        hc_gen_reply_error(rt, from, "enomem");
    hc_buf_free(&b);
}

static void reply_unknown(hc_rt *rt, const hc_gen_from *from, const uint8_t *req, size_t len)
{
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "error");
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "unknown_request");
    hc_buf_append(&b, req, len);
    hc_gen_reply_buf(rt, from, &b);
    hc_buf_free(&b);
}

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

static int put_key(hc_buf *b, const char *k) { return hc_enc_atom_cstr(b, k); }

static void reply_info(hc_rt *rt, control_state *st, const hc_gen_from *from)
{
    hc_rt_stats s;
    hc_rt_stats_get(rt, &s);
    hc_atom peers[1024];
    size_t n = hc_rt_peers(rt, peers, 1024);
    if (n > 1024)
        n = 1024;
    hc_buf b = {0};
    int rc = hc_enc_map_header(&b, 10) || put_key(&b, "version") || hc_enc_string(&b, HORDEC_VERSION) ||
             put_key(&b, "node") || hc_enc_atom(&b, hc_rt_node(rt)) || put_key(&b, "uptime_ms") ||
             hc_enc_ulong(&b, hc_rt_now_ms(rt) - st->started_ms) || put_key(&b, "peers");
    if (!rc && n) {
        rc = hc_enc_list_header(&b, (uint32_t)n);
        for (size_t i = 0; !rc && i < n; i++)
            rc = hc_enc_atom(&b, peers[i]);
    }
    rc = rc || hc_enc_nil(&b) || put_key(&b, "os_pid") || hc_enc_ulong(&b, (uint64_t)getpid()) ||
         put_key(&b, "rss_bytes") || hc_enc_ulong(&b, (uint64_t)rss_bytes()) || put_key(&b, "processes") ||
         hc_enc_ulong(&b, s.processes) || put_key(&b, "msgs_in") || hc_enc_ulong(&b, s.msgs_in) ||
         put_key(&b, "msgs_out") || hc_enc_ulong(&b, s.msgs_out) || put_key(&b, "ticktime") ||
         hc_enc_ulong(&b, hc_rt_config_get(rt)->ticktime_s);
    (void)rc; /* the buffer's sticky error says it all */
    hc_gen_reply_buf(rt, from, &b);
    hc_buf_free(&b);
}

/* Applies block/unblock to each node atom of a list. HC_EDECODE if it is not a list of atoms. */
static int for_each_node(hc_rt *rt, const uint8_t *t, size_t len, size_t i, bool block)
{
    /* Validate everything before acting, so a bad element changes nothing. */
    for (int pass = 0; pass < 2; pass++) {
        size_t k = i;
        uint32_t n;
        if (hc_peek_type(t, len, k) == 107) /* a charlist-looking list of small ints: not nodes */
            return HC_EDECODE;
        if (hc_dec_list_header(t, len, &k, &n))
            return HC_EDECODE;
        for (uint32_t e = 0; e < n; e++) {
            hc_atom a;
            if (hc_dec_atom(t, len, &k, &a) || !strchr(hc_atom_name(a), '@'))
                return HC_EDECODE;
            if (pass && block)
                hc_rt_block(rt, a);
            else if (pass)
                hc_rt_unblock(rt, a);
        }
        if (n && (hc_peek_type(t, len, k) != 106 || k + 1 != len))
            return HC_EDECODE;
    }
    return HC_OK;
}

static void undefer(deferred *d)
{
    hc_gen_from_release(&d->from);
    free(d);
}

static void call_done(hc_rt *rt, hc_proc *caller, const hc_call_result *res, void *ud)
{
    deferred *d = ud;
    if (res->status == HC_OK) {
        hc_gen_reply_ok(rt, &d->from, res->reply.p, res->reply.len);
    } else {
        hc_gen_reply_error(rt, &d->from, res->status == HC_ETIMEOUT  ? "timeout"
                                         : res->status == HC_ENOCONN ? "noconnection"
                                                                     : "noproc");
    }
    undefer(d);
    (void)caller;
}

static void connect_done(hc_rt *rt, const hc_node_event *ev, void *ud)
{
    deferred *d = ud;
    if (ev->up)
        hc_gen_reply_atom(rt, &d->from, "ok");
    else
        hc_gen_reply_error(rt, &d->from, ev->reason == HC_EAUTH ? "auth" : "noconnection");
    undefer(d);
}

/* The caller, kept to answer after on_call returned. */
static deferred *defer(const hc_gen_from *from)
{
    deferred *d = malloc(sizeof *d);
    if (d && hc_gen_from_copy(&d->from, from)) {
        free(d);
        d = NULL;
    }
    return d;
}

/* Options of crdt_start: a keyword list of {flush_interval_ms, N} | {max_message_bytes, N} |
 * {stream_batch_bytes, N}. */
static int parse_replica_opts(const uint8_t *t, size_t len, size_t *i, hordec_crdt_opts *o)
{
    hc_list_iter it;
    if (hc_list_begin(&it, t, len, i))
        return HC_EDECODE;
    const uint8_t *e;
    size_t el;
    while (hc_list_next(&it, &e, &el) == 1) {
        size_t j = 0;
        uint32_t arity;
        int64_t v;
        if (hc_dec_tuple_header(e, el, &j, &arity) || arity != 2)
            return HC_EDECODE;
        size_t k = j;
        if (hc_dec_is_atom(e, el, &k, "flush_interval_ms") && !hc_dec_long(e, el, &k, &v) && v > 0 && v <= 60000)
            o->flush_interval_ms = (uint32_t)v;
        else if ((k = j, hc_dec_is_atom(e, el, &k, "max_message_bytes")) && !hc_dec_long(e, el, &k, &v) &&
                 v >= HC_CRDT_MIN_MESSAGE_BYTES && v <= (1 << 30))
            o->max_message_bytes = (size_t)v;
        else if ((k = j, hc_dec_is_atom(e, el, &k, "stream_batch_bytes")) && !hc_dec_long(e, el, &k, &v) &&
                 v >= 256 && v <= (1 << 30))
            o->stream_batch_bytes = (size_t)v;
        else
            return HC_EDECODE;
    }
    return HC_OK;
}

static void crdt_start(hc_rt *rt, const hc_gen_from *from, const uint8_t *req, size_t len, size_t i)
{
    hc_atom name;
    hordec_crdt_opts o = {0};
    hc_proc *p;
    if (hc_dec_atom(req, len, &i, &name) || !name || parse_replica_opts(req, len, &i, &o) || i != len) {
        reply_unknown(rt, from, req, len);
        return;
    }
    int rc = hordec_crdt_start(rt, name, &o, &p);
    if (rc) {
        hc_gen_reply_error(rt, from, rc == HC_EEXIST ? "name_taken" : "enomem");
        return;
    }
    reply_ok_pid(rt, from, p);
}

static void crdt_stop(hc_rt *rt, const hc_gen_from *from, const uint8_t *req, size_t len, size_t i)
{
    hc_atom name;
    if (hc_dec_atom(req, len, &i, &name) || i != len) {
        reply_unknown(rt, from, req, len);
        return;
    }
    hc_proc *p = hc_proc_whereis(rt, name);
    if (!hordec_is_crdt(p)) {
        hc_gen_reply_error(rt, from, "not_found");
        return;
    }
    hc_term_span reason = hc_reason_shutdown();
    hc_proc_exit(rt, p, reason.p, reason.len);
    hc_gen_reply_atom(rt, from, "ok");
}

static void on_call(hc_rt *rt, hc_proc *self, const hc_gen_from *from, const uint8_t *req, size_t len)
{
    control_state *st = hc_proc_state(self);
    size_t i = 0;
    uint32_t arity;
    if (hc_dec_is_atom(req, len, &i, "ping") && i == len) {
        hc_gen_reply_atom(rt, from, "pong");
        return;
    }
    i = 0;
    if (hc_dec_is_atom(req, len, &i, "info") && i == len) {
        reply_info(rt, st, from);
        return;
    }
    i = 0;
    if (hc_dec_is_atom(req, len, &i, "spawn_worker") && i == len) {
        hc_proc *w = NULL;
        hordec_worker_spawn(rt, &w);
        reply_ok_pid(rt, from, w);
        return;
    }
    i = 0;
    if (hc_dec_tuple_header(req, len, &i, &arity) || arity < 2) {
        reply_unknown(rt, from, req, len);
        return;
    }
    size_t args = i;
    if (arity == 2 && hc_dec_is_atom(req, len, &i, "echo")) {
        hc_gen_reply(rt, from, req + i, len - i);
        return;
    }
    i = args;
    if (arity == 2 && hc_dec_is_atom(req, len, &i, "watch")) {
        hc_pid target;
        hc_ref ref;
        if (hc_dec_pid(req, len, &i, &target) || i != len) {
            reply_unknown(rt, from, req, len);
            return;
        }
        if (hordec_watch(rt, &target, &from->pid, &ref)) {
            hc_gen_reply_error(rt, from, "enomem");
            return;
        }
        hc_buf b = {0};
        hc_enc_tuple_header(&b, 2);
        hc_enc_atom_cstr(&b, "ok");
        hc_enc_ref(&b, &ref);
        hc_gen_reply_buf(rt, from, &b);
        hc_buf_free(&b);
        return;
    }
    i = args;
    if (arity == 2 && hc_dec_is_atom(req, len, &i, "link")) {
        hc_pid target;
        if (hc_dec_pid(req, len, &i, &target) || i != len) {
            reply_unknown(rt, from, req, len);
            return;
        }
        hc_proc *l = NULL;
        hordec_link(rt, &target, &from->pid, &l);
        reply_ok_pid(rt, from, l);
        return;
    }
    i = args;
    if (arity == 2 && (hc_dec_is_atom(req, len, &i, "block_peers") ||
                       (i = args, hc_dec_is_atom(req, len, &i, "unblock_peers")))) {
        bool block = req[args + 2] == 'b';
        if (for_each_node(rt, req, len, i, block))
            reply_unknown(rt, from, req, len);
        else
            hc_gen_reply_atom(rt, from, "ok");
        return;
    }
    i = args;
    if (arity == 2 && hc_dec_is_atom(req, len, &i, "connect")) {
        hc_atom node;
        if (hc_dec_atom(req, len, &i, &node) || i != len || !strchr(hc_atom_name(node), '@')) {
            reply_unknown(rt, from, req, len);
            return;
        }
        deferred *d = defer(from);
        if (!d || hc_rt_on_connect_result(rt, node, connect_done, d)) {
            if (d)
                undefer(d);
            hc_gen_reply_error(rt, from, "enomem");
        }
        return;
    }
    i = args;
    if (arity == 3 && hc_dec_is_atom(req, len, &i, "crdt_start")) {
        crdt_start(rt, from, req, len, i);
        return;
    }
    i = args;
    if (arity == 2 && hc_dec_is_atom(req, len, &i, "crdt_stop")) {
        crdt_stop(rt, from, req, len, i);
        return;
    }
    i = args;
    if (arity == 5 && hc_dec_is_atom(req, len, &i, "call")) {
        hc_atom node, name;
        int64_t timeout;
        size_t r0, r1;
        if (hc_dec_atom(req, len, &i, &node) || hc_dec_atom(req, len, &i, &name) || (r0 = i, 0) ||
            hc_dec_skip(req, len, &i) || (r1 = i, 0) || hc_dec_long(req, len, &i, &timeout) || i != len ||
            timeout < 0 || timeout > 3600000) {
            reply_unknown(rt, from, req, len);
            return;
        }
        deferred *d = defer(from);
        int rc = d ? hc_gen_call(rt, self, NULL, name, node, req + r0, r1 - r0, (uint32_t)timeout, call_done, d)
                   : HC_ENOMEM;
        if (rc) {
            if (d)
                undefer(d);
            hc_gen_reply_error(rt, from, rc == HC_ENOCONN ? "noconnection" : "enomem");
        }
        return;
    }
    reply_unknown(rt, from, req, len);
}

static void on_message(hc_rt *rt, hc_proc *self, const hc_pid *from, const uint8_t *msg, size_t len)
{
    /* Plain messages are counted (msgs_in) and dropped: benchmarks use them as a sink. */
    (void)rt;
    (void)self;
    (void)from;
    (void)msg;
    (void)len;
}

static void on_terminate(hc_rt *rt, hc_proc *self, const uint8_t *reason, size_t rlen)
{
    free(hc_proc_state(self));
    (void)rt;
    (void)reason;
    (void)rlen;
}

static const hc_proc_ops control_ops = {.on_call = on_call, .on_message = on_message, .on_terminate = on_terminate};

int hordec_control_start(hc_rt *rt, uint64_t started_ms)
{
    control_state *st = calloc(1, sizeof *st);
    if (!st)
        return HC_ENOMEM;
    st->started_ms = started_ms;
    int rc = hc_proc_spawn(rt, &control_ops, st, hc_atom_intern_cstr("hordec"), NULL);
    if (rc)
        free(st); /* nothing was created: the state is still ours */
    return rc;
}
