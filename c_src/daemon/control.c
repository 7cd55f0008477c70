/* control.c — see control.h. Every request gets a reply; an unknown or malformed one gets
 * {error, {unknown_request, Request}} rather than silence or a crash. */
#include "daemon/control.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/control_req.h"
#include "hordec/hc_log.h"
#include "daemon/workers.h"

typedef struct control_state {
    uint64_t started_ms;
} control_state;

typedef struct deferred {
    hc_gen_from from;
} deferred;

void control_reply_ok_pid(const control_req *c, const hc_proc *p)
{
    hc_buf b = {0};
    if (p && !hc_enc_pid(&b, hc_proc_pid(p)))
        hc_gen_reply_ok(c->rt, c->from, b.data, b.len);
    else
        hc_gen_reply_error(c->rt, c->from, "enomem");
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

static void reply_info(const control_req *c)
{
    hc_rt_stats s;
    hc_rt_stats_get(c->rt, &s);
    hc_atom peers[1024];
    size_t n = hc_rt_peers(c->rt, peers, 1024);
    if (n > 1024)
        n = 1024;
    hc_rt_loop_stats ls;
    hc_rt_loop_stats_get(c->rt, &ls);
    hc_buf b = {0};
    hc_enc_map_header(&b, 10 + 7);
    hc_enc_atom_cstr(&b, "version");
    hc_enc_string(&b, HORDEC_VERSION);
    hc_enc_atom_cstr(&b, "node");
    hc_enc_atom(&b, hc_rt_node(c->rt));
    hc_enc_atom_cstr(&b, "uptime_ms");
    hc_enc_ulong(&b, hc_rt_now_ms(c->rt) - c->started_ms);
    hc_enc_atom_cstr(&b, "peers");
    if (n)
        hc_enc_list_header(&b, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        hc_enc_atom(&b, peers[i]);
    hc_enc_nil(&b);
    hc_enc_atom_cstr(&b, "os_pid");
    hc_enc_ulong(&b, (uint64_t)getpid());
    hc_enc_atom_cstr(&b, "rss_bytes");
    hc_enc_ulong(&b, (uint64_t)rss_bytes());
    hc_enc_atom_cstr(&b, "processes");
    hc_enc_ulong(&b, s.processes);
    hc_enc_atom_cstr(&b, "msgs_in");
    hc_enc_ulong(&b, s.msgs_in);
    hc_enc_atom_cstr(&b, "msgs_out");
    hc_enc_ulong(&b, s.msgs_out);
    hc_enc_atom_cstr(&b, "ticktime");
    hc_enc_ulong(&b, hc_rt_config_get(c->rt)->ticktime_s);
    /* hardening (docs/hardening.md): what hostile or stalled peers cost, and how long the loop stalled */
    hc_enc_atom_cstr(&b, "atoms");
    hc_enc_ulong(&b, hc_atom_count());
    hc_enc_atom_cstr(&b, "connections");
    hc_enc_ulong(&b, s.connections);
    hc_enc_atom_cstr(&b, "handshakes");
    hc_enc_ulong(&b, s.handshakes);
    hc_enc_atom_cstr(&b, "refused_conns");
    hc_enc_ulong(&b, s.refused_conns);
    hc_enc_atom_cstr(&b, "queue_overflows");
    hc_enc_ulong(&b, s.queue_overflows);
    hc_enc_atom_cstr(&b, "loop_max_us");
    hc_enc_ulong(&b, ls.max_iter_us);
    hc_enc_atom_cstr(&b, "loop_slow_iters");
    hc_enc_ulong(&b, ls.slow_iters);
    hc_gen_reply_buf(c->rt, c->from, &b); /* the buffer's sticky error, if any, becomes the reply */
    hc_buf_free(&b);
}

/* Blocks or unblocks every node of a list of node atoms (the request's last argument). The whole list is
 * validated before anything changes. HC_EDECODE if it is not a list of node names. */
static int for_each_node(hc_rt *rt, hc_req_args *a, bool block)
{
    hc_iter it;
    hc_span e;
    if (hc_iter_list(&it, a->p, a->len, &a->i) || !hc_req_args_done(a))
        return HC_EDECODE;
    for (int pass = 0; pass < 2; pass++) {
        hc_iter walk = it;
        while (hc_iter_next(&walk, &e)) {
            size_t k = 0;
            hc_atom node;
            if (hc_dec_atom(e.p, e.len, &k, &node) || k != e.len || !strchr(hc_atom_name(node), '@'))
                return HC_EDECODE;
            if (block && node == hc_rt_node(rt))
                return HC_EINVAL; /* cutting itself off is not a partition: refused, nothing changes */
            if (pass && block)
                hc_rt_block(rt, node);
            else if (pass)
                hc_rt_unblock(rt, node);
        }
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
        hc_gen_reply_error(rt, &d->from,
                           res->status == HC_ETIMEOUT  ? "timeout"
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

/* ---- the requests ---- */

static int do_ping(void *ctx, hc_req_args *a)
{
    const control_req *c = ctx;
    hc_gen_reply_atom(c->rt, c->from, "pong");
    (void)a;
    return HC_OK;
}

static int do_info(void *ctx, hc_req_args *a)
{
    reply_info(ctx);
    (void)a;
    return HC_OK;
}

/* reset_loop_stats: starts a new window for the loop_max_us / loop_slow_iters of :info, to measure the worst
 * stall of one operation. */
static int do_reset_loop_stats(void *ctx, hc_req_args *a)
{
    const control_req *c = ctx;
    hc_rt_loop_stats_reset(c->rt);
    hc_gen_reply_atom(c->rt, c->from, "ok");
    (void)a;
    return HC_OK;
}

static int do_spawn_worker(void *ctx, hc_req_args *a)
{
    const control_req *c = ctx;
    hc_proc *w = NULL;
    hordec_worker_spawn(c->rt, &w);
    control_reply_ok_pid(c, w);
    (void)a;
    return HC_OK;
}

static int do_echo(void *ctx, hc_req_args *a)
{
    const control_req *c = ctx;
    hc_gen_reply(c->rt, c->from, a->p + a->i, a->len - a->i);
    return HC_OK;
}

static int do_watch(void *ctx, hc_req_args *a)
{
    const control_req *c = ctx;
    hc_pid target;
    hc_ref ref;
    if (hc_dec_pid(a->p, a->len, &a->i, &target) || !hc_req_args_done(a))
        return HC_EDECODE;
    if (hordec_watch(c->rt, &target, &c->from->pid, &ref)) {
        hc_gen_reply_error(c->rt, c->from, "enomem");
        return HC_OK;
    }
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "ok");
    hc_enc_ref(&b, &ref);
    hc_gen_reply_buf(c->rt, c->from, &b);
    hc_buf_free(&b);
    return HC_OK;
}

static int do_link(void *ctx, hc_req_args *a)
{
    const control_req *c = ctx;
    hc_pid target;
    if (hc_dec_pid(a->p, a->len, &a->i, &target) || !hc_req_args_done(a))
        return HC_EDECODE;
    hc_proc *l = NULL;
    hordec_link(c->rt, &target, &c->from->pid, &l);
    control_reply_ok_pid(c, l);
    return HC_OK;
}

static int block_or_unblock(void *ctx, hc_req_args *a, bool block)
{
    const control_req *c = ctx;
    int rc = for_each_node(c->rt, a, block);
    if (rc == HC_OK)
        hc_gen_reply_atom(c->rt, c->from, "ok");
    if (rc == HC_EINVAL) {
        hc_gen_reply_error(c->rt, c->from, "own_node");
        return HC_OK;
    }
    return rc;
}

static int do_block(void *ctx, hc_req_args *a) { return block_or_unblock(ctx, a, true); }
static int do_unblock(void *ctx, hc_req_args *a) { return block_or_unblock(ctx, a, false); }

static int do_connect(void *ctx, hc_req_args *a)
{
    const control_req *c = ctx;
    hc_atom node;
    if (hc_dec_atom(a->p, a->len, &a->i, &node) || !hc_req_args_done(a) || !strchr(hc_atom_name(node), '@'))
        return HC_EDECODE;
    deferred *d = defer(c->from);
    if (!d || hc_rt_on_connect_result(c->rt, node, connect_done, d)) {
        if (d)
            undefer(d);
        hc_gen_reply_error(c->rt, c->from, "enomem");
    }
    return HC_OK;
}

/* {call, Node, Name, Request, TimeoutMs}: hordec itself calls {Name, Node}. */
static int do_call(void *ctx, hc_req_args *a)
{
    const control_req *c = ctx;
    hc_atom node, name;
    hc_span req;
    int64_t timeout;
    if (hc_dec_atom(a->p, a->len, &a->i, &node) || hc_dec_atom(a->p, a->len, &a->i, &name) ||
        hc_dec_term(a->p, a->len, &a->i, &req) || hc_dec_long(a->p, a->len, &a->i, &timeout) || !hc_req_args_done(a) ||
        timeout < 0 || timeout > 3600000)
        return HC_EDECODE;
    deferred *d = defer(c->from);
    int rc =
        d ? hc_gen_call(c->rt, c->self, NULL, name, node, req.p, req.len, (uint32_t)timeout, call_done, d) : HC_ENOMEM;
    if (rc) {
        if (d)
            undefer(d);
        hc_gen_reply_error(c->rt, c->from, rc == HC_ENOCONN ? "noconnection" : "enomem");
    }
    return HC_OK;
}

static const hc_req_entry requests[] = {
    {"ping", 0, do_ping},
    {"info", 0, do_info},
    {"reset_loop_stats", 0, do_reset_loop_stats},
    {"spawn_worker", 0, do_spawn_worker},
    {"echo", 1, do_echo},
    {"watch", 1, do_watch},
    {"link", 1, do_link},
    {"block_peers", 1, do_block},
    {"unblock_peers", 1, do_unblock},
    {"connect", 1, do_connect},
    {"call", 4, do_call},
    {"crdt_start", 2, control_crdt_start},
    {"crdt_stop", 1, control_crdt_stop},
    {"registry_start", 2, control_registry_start},
    {"registry_stop", 1, control_registry_stop},
    {"registry_demo", 2, control_registry_demo},
    {"supervisor_start", 2, control_supervisor_start},
    {"supervisor_stop", 1, control_supervisor_stop},
    {"start_worker", 2, control_start_worker},
};

static void reply_unknown(const control_req *c, const uint8_t *req, size_t len)
{
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "error");
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "unknown_request");
    hc_enc_raw(&b, req, len);
    hc_gen_reply_buf(c->rt, c->from, &b);
    hc_buf_free(&b);
}

static void on_call(hc_rt *rt, hc_proc *self, const hc_gen_from *from, const uint8_t *req, size_t len)
{
    control_state *st = hc_proc_state(self);
    control_req c = {rt, self, from, st->started_ms};
    hc_req_args a;
    const hc_req_entry *e = hc_req_match(requests, sizeof requests / sizeof requests[0], req, len, &a);
    if (!e || e->fn(&c, &a) != HC_OK)
        reply_unknown(&c, req, len);
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
