/* test_worker.c — C workers (hc_worker.h) on one node, in-process: the per-runtime type table (duplicates,
 * find, list, bad names), starting (unknown type, bad argument, init failing, ignoring, asking to exit, a
 * registered name), the gen_server-like callbacks (calls, casts, plain messages, DOWN and EXIT as info),
 * every way a worker ends (an exit asked for in a callback, hc_worker_stop from outside and from inside,
 * hc_proc_exit under a callback, exit signals: normal ignored, an abnormal reason, kill; a broken link;
 * hc_rt_free) with terminate once, the exit observer once after it, and monitors seeing the same reason; and
 * the built-in "echo" and "kv" types of the daemon. The node does not register with epmd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/worker_types.h"
#include "hordec/hc_runtime.h"
#include "hordec/hc_worker.h"

/* ------------------------------------------------------------------ terms */

static hc_span done(hc_buf *b)
{
    assert_int_equal(b->err, HC_OK);
    return (hc_span){b->data, b->len};
}

static hc_span atom(hc_buf *b, const char *a)
{
    hc_buf_reset(b);
    hc_enc_atom_cstr(b, a);
    return done(b);
}

static hc_span integer(hc_buf *b, int64_t v)
{
    hc_buf_reset(b);
    hc_enc_long(b, v);
    return done(b);
}

/* {Tag, T} (t must not live in b) */
static hc_span pair(hc_buf *b, const char *tag, hc_span t)
{
    hc_buf_reset(b);
    hc_enc_tuple_header(b, 2);
    hc_enc_atom_cstr(b, tag);
    hc_enc_raw(b, t.p, t.len);
    return done(b);
}

/* {Tag, X, Y} */
static hc_span triple(hc_buf *b, const char *tag, hc_span x, hc_span y)
{
    hc_buf_reset(b);
    hc_enc_tuple_header(b, 3);
    hc_enc_atom_cstr(b, tag);
    hc_enc_raw(b, x.p, x.len);
    hc_enc_raw(b, y.p, y.len);
    return done(b);
}

static hc_span pid_term(hc_buf *b, const hc_pid *p)
{
    hc_buf_reset(b);
    hc_enc_pid(b, p);
    return done(b);
}

#define assert_span_equal(got_p, got_len, want)                                                                        \
    do {                                                                                                               \
        hc_span want_ = (want);                                                                                        \
        assert_int_equal((got_len), want_.len);                                                                        \
        assert_memory_equal((got_p), want_.p, want_.len);                                                              \
    } while (0)

/* ------------------------------------------------------------------ a probe type that records everything */

typedef struct probe_log {
    int inits, calls, casts, infos, terminates, observed;
    int seq, terminate_seq, observe_seq; /* terminate must come before the observer */
    uint8_t cast[256], info[512], term_reason[256], obs_reason[256];
    size_t cast_len, info_len, term_reason_len, obs_reason_len;
    hc_pid obs_pid;
    void *obs_ud;
    bool link_in_init;
    hc_pid link_to;
    int start_in_observer; /* hc_worker_start's result when the observer starts a worker (0: not tried) */
    bool try_start_in_observer;
} probe_log;

static probe_log plog;

typedef struct probe {
    uint32_t magic; /* touched after stops asked for under a callback: ASan sees a premature free */
    hc_worker *w;
} probe;

static void keep(uint8_t *dst, size_t cap, size_t *dlen, const uint8_t *src, size_t n)
{
    *dlen = n < cap ? n : cap;
    memcpy(dst, src, *dlen);
}

/* init(Arg): ok -> runs; ignore -> ignore; {fail, R} -> error R; exit_now -> asks to exit in init;
 * fail_silent -> an error code with no reason. */
static int probe_init(hc_worker *w, const uint8_t *arg, size_t len, void **state, hc_buf *reason)
{
    plog.inits++;
    if (plog.link_in_init)
        assert_int_equal(hc_link(hc_worker_rt(w), hc_worker_proc(w), &plog.link_to), HC_OK);
    size_t i = 0;
    uint32_t arity;
    if (hc_dec_is_atom(arg, len, &i, "ignore"))
        return HC_WORKER_IGNORE;
    if (hc_dec_is_atom(arg, len, &i, "fail_silent"))
        return HC_ENOMEM;
    if (!hc_dec_tuple_header(arg, len, &i, &arity) && arity == 2 && hc_dec_is_atom(arg, len, &i, "fail")) {
        hc_buf_append(reason, arg + i, len - i);
        return HC_EINVAL;
    }
    probe *p = calloc(1, sizeof *p);
    p->w = w;
    *state = p;
    i = 0;
    if (hc_dec_is_atom(arg, len, &i, "exit_now")) {
        static const uint8_t why[] = "\x77\x04nope";
        hc_worker_exit(w, why, sizeof why - 1);
        p->magic = 1; /* still ours: the exit waits for init to return */
    }
    return HC_OK;
}

/* {echo, T} -> T; {exit, R} -> ok, exit R; {stop_self, R} -> ok, hc_worker_stop on itself; {proc_exit, R} ->
 * ok, hc_proc_exit on itself; {monitor, Pid} -> ok; trap -> ok (traps exits); whoami -> Pid. */
static void probe_call(hc_worker *w, void *state, const hc_gen_from *from, const uint8_t *req, size_t len)
{
    probe *p = state;
    hc_rt *rt = hc_worker_rt(w);
    plog.calls++;
    assert_ptr_equal(p->w, w);
    static const char *const names[] = {"echo", "exit", "stop_self", "proc_exit", "monitor"};
    size_t i = 0, k;
    uint32_t arity;
    static const uint8_t ok[] = "\x77\x02ok";
    if (hc_dec_is_atom(req, len, &i, "trap")) {
        hc_worker_set_trap_exit(w, true);
        hc_gen_reply(rt, from, ok, sizeof ok - 1);
        return;
    }
    if (hc_dec_is_atom(req, len, &i, "whoami")) {
        hc_buf b = {0};
        hc_enc_pid(&b, hc_worker_pid(w));
        hc_gen_reply_buf(rt, from, &b);
        hc_buf_free(&b);
        return;
    }
    assert_int_equal(hc_dec_tuple_header(req, len, &i, &arity), HC_OK);
    assert_int_equal(arity, 2);
    assert_int_equal(hc_dec_atom_index(req, len, &i, names, 5, &k), HC_OK);
    const uint8_t *t = req + i;
    size_t tlen = len - i;
    switch (k) {
    case 0: hc_gen_reply(rt, from, t, tlen); return;
    case 1:
        hc_gen_reply(rt, from, ok, sizeof ok - 1);
        hc_worker_exit(w, t, tlen);
        break;
    case 2:
        assert_int_equal(hc_worker_stop(rt, hc_worker_proc(w), t, tlen), HC_OK);
        hc_gen_reply(rt, from, ok, sizeof ok - 1);
        break;
    case 3:
        hc_proc_exit(rt, hc_worker_proc(w), t, tlen);
        assert_int_equal(plog.terminates, 0); /* not under this callback */
        hc_gen_reply(rt, from, ok, sizeof ok - 1);
        break;
    case 4: {
        hc_pid target;
        size_t j = 0;
        hc_ref ref;
        assert_int_equal(hc_dec_pid(t, tlen, &j, &target), HC_OK);
        assert_int_equal(hc_monitor(rt, hc_worker_proc(w), &target, 0, 0, &ref), HC_OK);
        hc_gen_reply(rt, from, ok, sizeof ok - 1);
        break;
    }
    }
    p->magic++; /* the state is still alive here, whatever was asked */
}

static void probe_cast(hc_worker *w, void *state, const uint8_t *msg, size_t len)
{
    plog.casts++;
    keep(plog.cast, sizeof plog.cast, &plog.cast_len, msg, len);
    (void)w, (void)state;
}

static void probe_info(hc_worker *w, void *state, const uint8_t *msg, size_t len)
{
    plog.infos++;
    keep(plog.info, sizeof plog.info, &plog.info_len, msg, len);
    (void)w, (void)state;
}

static void probe_terminate(hc_worker *w, void *state, const uint8_t *reason, size_t len)
{
    probe *p = state;
    assert_ptr_equal(p->w, w);
    plog.terminates++;
    plog.terminate_seq = ++plog.seq;
    keep(plog.term_reason, sizeof plog.term_reason, &plog.term_reason_len, reason, len);
    assert_false(hc_proc_alive(hc_worker_proc(w)));
    hc_worker_exit(w, reason, len); /* a no-op by now */
    free(p);
}

static const hc_worker_type probe_type = {
    .name = "probe",
    .init = probe_init,
    .handle_call = probe_call,
    .handle_cast = probe_cast,
    .handle_info = probe_info,
    .terminate = probe_terminate,
};

/* A type with no callbacks at all: state NULL, calls answered {error, {unknown_call, Req}}. */
static const hc_worker_type bare_type = {.name = "bare"};

static void observer(hc_rt *rt, const hc_pid *pid, const uint8_t *reason, size_t len, void *ud)
{
    plog.observed++;
    plog.observe_seq = ++plog.seq;
    plog.obs_pid = *pid;
    plog.obs_ud = ud;
    keep(plog.obs_reason, sizeof plog.obs_reason, &plog.obs_reason_len, reason, len);
    if (plog.try_start_in_observer) {
        static const uint8_t ok[] = "\x77\x02ok";
        hc_proc *p;
        plog.start_in_observer = hc_worker_start(rt, "probe", 5, ok, sizeof ok - 1, &p, NULL);
        if (plog.start_in_observer == HC_OK)
            hc_worker_stop(rt, p, ok, sizeof ok - 1);
    }
}

/* ------------------------------------------------------------------ a client process (calls, monitors, links) */

typedef struct client {
    hc_ref mon; /* the monitor whose DOWNs count (the runtime may deliver a call's own, see the report) */
    int runs, status;
    uint8_t reply[4096];
    size_t reply_len;
    int downs, exits;
    uint8_t down_reason[256], exit_reason[256];
    size_t down_reason_len, exit_reason_len;
} client;

static void client_down(hc_rt *rt, hc_proc *self, const hc_down *d)
{
    client *c = hc_proc_state(self);
    if (!hc_ref_eq(&c->mon, &d->ref))
        return;
    c->downs++;
    keep(c->down_reason, sizeof c->down_reason, &c->down_reason_len, d->reason.p, d->reason.len);
    (void)rt;
}

static void client_exit(hc_rt *rt, hc_proc *self, const hc_exit_info *e)
{
    client *c = hc_proc_state(self);
    c->exits++;
    keep(c->exit_reason, sizeof c->exit_reason, &c->exit_reason_len, e->reason.p, e->reason.len);
    (void)rt;
}

static const hc_proc_ops client_ops = {.on_down = client_down, .on_exit_signal = client_exit};

typedef struct world {
    hc_rt *rt;
    client cl;
    hc_proc *client;
    hc_buf b[4];
} world;

static int setup(void **state)
{
    memset(&plog, 0, sizeof plog);
    world *w = calloc(1, sizeof *w);
    hc_rt_config cfg;
    hc_rt_config_defaults(&cfg);
    cfg.node_name = "unit@127.0.0.1";
    cfg.cookie = "unit";
    cfg.register_epmd = false;
    char err[256];
    assert_int_equal(hc_rt_new(&cfg, &w->rt, err, sizeof err), HC_OK);
    assert_int_equal(hc_worker_type_register(w->rt, &probe_type), HC_OK);
    assert_int_equal(hc_worker_type_register(w->rt, &bare_type), HC_OK);
    assert_int_equal(hordec_worker_types_register(w->rt), HC_OK);
    assert_int_equal(hc_proc_spawn(w->rt, &client_ops, &w->cl, 0, &w->client), HC_OK);
    hc_proc_set_trap_exit(w->client, true);
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    world *w = *state;
    if (w->rt)
        hc_rt_free(w->rt);
    for (int i = 0; i < 4; i++)
        hc_buf_free(&w->b[i]);
    hc_atom_table_reset();
    free(w);
    return 0;
}

static void run(world *w)
{
    for (int i = 0; i < 10; i++)
        hc_rt_run_once(w->rt, 0);
}

static void call_cb(hc_rt *rt, hc_proc *caller, const hc_call_result *res, void *ud)
{
    client *c = ud;
    c->runs++;
    c->status = res->status;
    c->reply_len = 0;
    if (res->status == HC_OK)
        keep(c->reply, sizeof c->reply, &c->reply_len, res->reply.p, res->reply.len);
    (void)rt, (void)caller;
}

/* GenServer.call(pid, req) from the client: the status, with the reply in w->cl.reply. */
static int call(world *w, const hc_pid *to, hc_span req)
{
    int before = w->cl.runs;
    assert_int_equal(hc_gen_call(w->rt, w->client, to, 0, 0, req.p, req.len, 1000, call_cb, &w->cl), HC_OK);
    for (int i = 0; i < 100 && w->cl.runs == before; i++)
        hc_rt_run_once(w->rt, 1);
    if (w->cl.runs != before + 1)
        fail_msg("a call of %zu bytes (tag %u) got %d answers", req.len, req.len ? req.p[0] : 0, w->cl.runs - before);
    return w->cl.status;
}

static hc_proc *start(world *w, const char *type, hc_span arg, const hc_worker_opts *opts)
{
    hc_proc *p = NULL;
    hc_buf why = {0};
    int rc = hc_worker_start_with(w->rt, type, strlen(type), arg.p, arg.len, opts, &p, &why);
    if (rc)
        fail_msg("start %s: %s (%zu reason bytes)", type, hc_strerror(rc), why.len);
    hc_buf_free(&why);
    assert_non_null(p);
    assert_non_null(hc_worker_of(p));
    return p;
}

static hc_proc *start_probe(world *w, const hc_worker_opts *opts)
{
    return start(w, "probe", atom(&w->b[3], "ok"), opts);
}

static void assert_ended_once(const hc_pid *pid, hc_span reason, bool observed)
{
    assert_int_equal(plog.terminates, 1);
    assert_span_equal(plog.term_reason, plog.term_reason_len, reason);
    assert_int_equal(plog.observed, observed ? 1 : 0);
    if (observed) {
        assert_true(hc_pid_eq(&plog.obs_pid, pid));
        assert_span_equal(plog.obs_reason, plog.obs_reason_len, reason);
        assert_true(plog.terminate_seq < plog.observe_seq);
    }
}

/* ------------------------------------------------------------------ types */

static void test_type_registration(void **state)
{
    world *w = *state;
    static const hc_worker_type dup = {.name = "probe"};
    assert_int_equal(hc_worker_type_register(w->rt, &dup), HC_EEXIST);
    assert_int_equal(hc_worker_type_register(w->rt, &probe_type), HC_EEXIST);
    static const hc_worker_type unnamed = {.name = NULL}, empty = {.name = ""};
    assert_int_equal(hc_worker_type_register(w->rt, NULL), HC_EINVAL);
    assert_int_equal(hc_worker_type_register(w->rt, &unnamed), HC_EINVAL);
    assert_int_equal(hc_worker_type_register(w->rt, &empty), HC_EINVAL);
    static char long_name[HC_WORKER_TYPE_NAME_MAX + 2];
    memset(long_name, 'x', HC_WORKER_TYPE_NAME_MAX + 1);
    static hc_worker_type too_long = {.name = long_name};
    assert_int_equal(hc_worker_type_register(w->rt, &too_long), HC_EINVAL);
    long_name[HC_WORKER_TYPE_NAME_MAX] = 0; /* exactly the limit */
    assert_int_equal(hc_worker_type_register(w->rt, &too_long), HC_OK);

    assert_ptr_equal(hc_worker_type_find(w->rt, "probe", 5), &probe_type);
    assert_ptr_equal(hc_worker_type_find(w->rt, "probex", 5), &probe_type); /* by length, not NUL */
    assert_null(hc_worker_type_find(w->rt, "prob", 4));
    assert_null(hc_worker_type_find(w->rt, "probe!", 6));
    assert_null(hc_worker_type_find(w->rt, "", 0));
    assert_null(hc_worker_type_find(w->rt, NULL, 3));
    assert_non_null(hc_worker_type_find(w->rt, "echo", 4));
    assert_non_null(hc_worker_type_find(w->rt, "kv", 2));

    const hc_worker_type *all[8];
    assert_int_equal(hc_worker_types(w->rt, all, 8), 5);
    assert_ptr_equal(all[0], &probe_type); /* registration order */
    assert_ptr_equal(all[1], &bare_type);
    assert_string_equal(all[2]->name, "echo");
    assert_string_equal(all[3]->name, "kv");
    assert_ptr_equal(all[4], &too_long);
    const hc_worker_type *two[2] = {NULL, NULL};
    assert_int_equal(hc_worker_types(w->rt, two, 2), 5); /* the count, writing at most max */
    assert_ptr_equal(two[1], &bare_type);
    assert_int_equal(hc_worker_types(w->rt, NULL, 0), 5);
}

static void test_types_are_per_runtime(void **state)
{
    world *w = *state;
    hc_rt_config cfg;
    hc_rt_config_defaults(&cfg);
    cfg.node_name = "other@127.0.0.1";
    cfg.cookie = "unit";
    cfg.register_epmd = false;
    hc_rt *other;
    assert_int_equal(hc_rt_new(&cfg, &other, NULL, 0), HC_OK);
    assert_null(hc_worker_type_find(other, "probe", 5));
    assert_int_equal(hc_worker_types(other, NULL, 0), 0);
    assert_int_equal(hc_worker_type_register(other, &probe_type), HC_OK); /* the same type in two runtimes */
    assert_ptr_equal(hc_worker_type_find(other, "probe", 5), &probe_type);
    hc_rt_free(other);
    assert_ptr_equal(hc_worker_type_find(w->rt, "probe", 5), &probe_type);
}

/* ------------------------------------------------------------------ starting */

static void test_start_unknown_type_and_bad_arg(void **state)
{
    world *w = *state;
    hc_rt_stats before, after;
    hc_rt_stats_get(w->rt, &before);
    hc_buf why = {0};
    hc_proc *p = (hc_proc *)w; /* must be overwritten */
    hc_span ok = atom(&w->b[0], "ok");
    assert_int_equal(hc_worker_start(w->rt, "nope", 4, ok.p, ok.len, &p, &why), HC_EINVAL);
    assert_null(p);
    hc_buf want = {0};
    hc_enc_tuple_header(&want, 2);
    hc_enc_atom_cstr(&want, "unknown_worker_type");
    hc_enc_binary(&want, "nope", 4);
    assert_span_equal(why.data, why.len, done(&want));

    /* the argument must be exactly one term */
    static const uint8_t torn[] = {104, 2, 100}; /* a tuple that stops short */
    uint8_t two[16];
    memcpy(two, ok.p, ok.len);
    memcpy(two + ok.len, ok.p, ok.len);
    hc_span badarg = atom(&w->b[1], "badarg");
    const struct {
        const uint8_t *p;
        size_t len;
    } bad[] = {{torn, sizeof torn}, {two, 2 * ok.len}, {NULL, 0}, {ok.p, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hc_buf_reset(&why);
        assert_int_equal(hc_worker_start(w->rt, "probe", 5, bad[i].p, bad[i].len, &p, &why), HC_EINVAL);
        assert_null(p);
        assert_span_equal(why.data, why.len, badarg);
    }
    assert_int_equal(hc_worker_start(w->rt, "nope", 4, ok.p, ok.len, NULL, NULL), HC_EINVAL); /* both optional */
    assert_int_equal(plog.inits, 0);
    run(w);
    hc_rt_stats_get(w->rt, &after);
    assert_int_equal(after.processes, before.processes);
    hc_buf_free(&why);
    hc_buf_free(&want);
}

static void test_init_failure_ignore_and_exit(void **state)
{
    world *w = *state;
    hc_rt_stats before, after;
    hc_rt_stats_get(w->rt, &before);
    hc_worker_opts o = {.on_exit = observer};
    hc_buf why = {0};
    hc_proc *p;

    /* {fail, R}: init's code and reason; the process exits with R (a link made by init sees it), no terminate */
    plog.link_in_init = true;
    plog.link_to = *hc_proc_pid(w->client);
    hc_span r = pair(&w->b[0], "shutdown", atom(&w->b[1], "bad_config"));
    hc_span arg = pair(&w->b[2], "fail", r);
    assert_int_equal(hc_worker_start_with(w->rt, "probe", 5, arg.p, arg.len, &o, &p, &why), HC_EINVAL);
    assert_null(p);
    assert_span_equal(why.data, why.len, r);
    run(w);
    assert_int_equal(w->cl.exits, 1);
    assert_span_equal(w->cl.exit_reason, w->cl.exit_reason_len, r);
    plog.link_in_init = false;

    /* an error code without a reason: the code's atom */
    hc_buf_reset(&why);
    arg = atom(&w->b[2], "fail_silent");
    assert_int_equal(hc_worker_start_with(w->rt, "probe", 5, arg.p, arg.len, &o, &p, &why), HC_ENOMEM);
    assert_span_equal(why.data, why.len, atom(&w->b[0], "enomem"));

    /* ignore: its own result, no reason, nothing left */
    hc_buf_reset(&why);
    arg = atom(&w->b[2], "ignore");
    assert_int_equal(hc_worker_start_with(w->rt, "probe", 5, arg.p, arg.len, &o, &p, &why), HC_WORKER_IGNORE);
    assert_null(p);
    assert_int_equal(why.len, 0);

    /* init succeeded but asked to exit: the start fails with that reason, terminate frees the state */
    arg = atom(&w->b[2], "exit_now");
    assert_int_equal(hc_worker_start_with(w->rt, "probe", 5, arg.p, arg.len, &o, &p, &why), HC_ESTATE);
    assert_null(p);
    assert_span_equal(why.data, why.len, atom(&w->b[0], "nope"));
    assert_int_equal(plog.terminates, 1);
    assert_int_equal(plog.inits, 4);
    assert_int_equal(plog.observed, 0); /* a start that failed is answered by its result only */
    run(w);
    hc_rt_stats_get(w->rt, &after);
    assert_int_equal(after.processes, before.processes);
    hc_buf_free(&why);
}

static void test_start_with_a_name(void **state)
{
    world *w = *state;
    hc_atom name = hc_atom_intern_cstr("the_probe");
    hc_worker_opts o = {.name = name};
    hc_proc *p = start_probe(w, &o);
    assert_ptr_equal(hc_proc_whereis(w->rt, name), p);
    hc_buf why = {0};
    hc_proc *q;
    hc_span ok = atom(&w->b[0], "ok");
    assert_int_equal(hc_worker_start_with(w->rt, "probe", 5, ok.p, ok.len, &o, &q, &why), HC_EEXIST);
    assert_null(q);
    assert_span_equal(why.data, why.len, pair(&w->b[1], "already_started", pid_term(&w->b[2], hc_proc_pid(p))));
    assert_int_equal(plog.inits, 1);
    hc_buf_free(&why);
}

/* ------------------------------------------------------------------ callbacks */

static void test_calls_casts_and_infos(void **state)
{
    world *w = *state;
    hc_proc *p = start_probe(w, NULL);
    const hc_pid pid = *hc_proc_pid(p);
    hc_span t = triple(&w->b[0], "any", integer(&w->b[1], 1234567), atom(&w->b[2], "term"));
    assert_int_equal(call(w, &pid, pair(&w->b[1], "echo", t)), HC_OK);
    assert_span_equal(w->cl.reply, w->cl.reply_len, t);
    assert_int_equal(call(w, &pid, atom(&w->b[1], "whoami")), HC_OK);
    assert_span_equal(w->cl.reply, w->cl.reply_len, pid_term(&w->b[1], &pid));

    /* {'$gen_cast', Msg} -> handle_cast(Msg) */
    hc_span msg = atom(&w->b[1], "hello");
    hc_span cast = pair(&w->b[2], "$gen_cast", msg);
    assert_int_equal(hc_send(w->rt, w->client, &pid, cast.p, cast.len), HC_OK);
    run(w);
    assert_int_equal(plog.casts, 1);
    assert_span_equal(plog.cast, plog.cast_len, msg);
    /* anything else, a malformed cast included, is info */
    hc_span notcast = triple(&w->b[2], "$gen_cast", msg, msg);
    assert_int_equal(hc_send(w->rt, w->client, &pid, notcast.p, notcast.len), HC_OK);
    run(w);
    assert_int_equal(plog.casts, 1);
    assert_int_equal(plog.infos, 1);
    assert_span_equal(plog.info, plog.info_len, notcast);

    /* a monitor the worker holds: {'DOWN', Ref, process, Pid, Reason} */
    hc_proc *target;
    assert_int_equal(hc_proc_spawn(w->rt, &client_ops, &(client){0}, 0, &target), HC_OK);
    hc_pid tpid = *hc_proc_pid(target);
    assert_int_equal(call(w, &pid, pair(&w->b[1], "monitor", pid_term(&w->b[0], &tpid))), HC_OK);
    hc_span boom = atom(&w->b[0], "boom");
    hc_proc_exit(w->rt, target, boom.p, boom.len);
    run(w);
    assert_int_equal(plog.infos, 2);
    size_t i = 0;
    uint32_t arity;
    hc_ref ref;
    hc_pid who;
    assert_int_equal(hc_dec_tuple_header(plog.info, plog.info_len, &i, &arity), HC_OK);
    assert_int_equal(arity, 5);
    assert_true(hc_dec_is_atom(plog.info, plog.info_len, &i, "DOWN"));
    assert_int_equal(hc_dec_ref(plog.info, plog.info_len, &i, &ref), HC_OK);
    assert_true(hc_dec_is_atom(plog.info, plog.info_len, &i, "process"));
    assert_int_equal(hc_dec_pid(plog.info, plog.info_len, &i, &who), HC_OK);
    assert_true(hc_pid_eq(&who, &tpid));
    assert_span_equal(plog.info + i, plog.info_len - i, boom);

    /* trapping exits: exit/2 with a reason becomes {'EXIT', From, Reason} */
    assert_int_equal(call(w, &pid, atom(&w->b[1], "trap")), HC_OK);
    assert_int_equal(hc_exit_signal(w->rt, w->client, &pid, boom.p, boom.len), HC_OK);
    run(w);
    assert_non_null(hc_proc_lookup(w->rt, &pid));
    assert_int_equal(plog.infos, 3);
    assert_span_equal(plog.info, plog.info_len,
                      triple(&w->b[2], "EXIT", pid_term(&w->b[1], hc_proc_pid(w->client)), boom));
    assert_int_equal(plog.terminates, 0);
}

static void test_type_without_callbacks(void **state)
{
    world *w = *state;
    hc_proc *p = start(w, "bare", atom(&w->b[0], "anything"), NULL);
    const hc_pid pid = *hc_proc_pid(p);
    hc_span req = atom(&w->b[0], "hello");
    assert_int_equal(call(w, &pid, req), HC_OK);
    assert_span_equal(w->cl.reply, w->cl.reply_len, pair(&w->b[2], "error", pair(&w->b[1], "unknown_call", req)));
    assert_int_equal(hc_send(w->rt, w->client, &pid, req.p, req.len), HC_OK);
    run(w);
    hc_span r = atom(&w->b[0], "bye");
    assert_int_equal(hc_worker_stop(w->rt, p, r.p, r.len), HC_OK);
    assert_null(hc_proc_lookup(w->rt, &pid));
}

/* ------------------------------------------------------------------ endings */

static void test_exit_asked_in_a_call(void **state)
{
    world *w = *state;
    int ud;
    hc_worker_opts o = {.on_exit = observer, .ud = &ud};
    hc_proc *p = start_probe(w, &o);
    const hc_pid pid = *hc_proc_pid(p);
    assert_int_equal(hc_monitor(w->rt, w->client, &pid, 0, 0, &w->cl.mon), HC_OK);
    hc_span r = pair(&w->b[0], "shutdown", atom(&w->b[1], "bye"));
    assert_int_equal(call(w, &pid, pair(&w->b[2], "exit", r)), HC_OK); /* the reply came first */
    assert_span_equal(w->cl.reply, w->cl.reply_len, atom(&w->b[1], "ok"));
    run(w);
    assert_null(hc_proc_lookup(w->rt, &pid));
    assert_ended_once(&pid, r, true);
    assert_ptr_equal(plog.obs_ud, &ud);
    assert_int_equal(w->cl.downs, 1);
    assert_span_equal(w->cl.down_reason, w->cl.down_reason_len, r);
}

static void test_stop_from_outside_is_synchronous(void **state)
{
    world *w = *state;
    hc_worker_opts o = {.on_exit = observer};
    hc_proc *p = start_probe(w, &o);
    const hc_pid pid = *hc_proc_pid(p);
    assert_int_equal(hc_monitor(w->rt, w->client, &pid, 0, 0, &w->cl.mon), HC_OK);
    hc_span r = atom(&w->b[0], "shutdown");
    assert_int_equal(hc_worker_stop(w->rt, p, r.p, r.len), HC_OK);
    assert_ended_once(&pid, r, true); /* before hc_worker_stop returned */
    assert_false(hc_proc_alive(p));
    assert_int_equal(hc_worker_stop(w->rt, p, r.p, r.len), HC_EINVAL); /* once */
    assert_int_equal(hc_worker_watch(p, observer, NULL), HC_EINVAL);
    assert_null(hc_worker_of(p));
    run(w);
    assert_int_equal(plog.terminates, 1);
    assert_int_equal(plog.observed, 1);
    assert_int_equal(w->cl.downs, 1);
    assert_span_equal(w->cl.down_reason, w->cl.down_reason_len, r);
    /* a process that is not a worker is left alone */
    assert_int_equal(hc_worker_stop(w->rt, w->client, r.p, r.len), HC_EINVAL);
    assert_int_equal(hc_worker_stop(w->rt, NULL, r.p, r.len), HC_EINVAL);
    assert_true(hc_proc_alive(w->client));
    assert_int_equal(hc_worker_watch(w->client, observer, NULL), HC_EINVAL);
}

static void test_stop_or_proc_exit_under_its_own_callback(void **state)
{
    world *w = *state;
    hc_worker_opts o = {.on_exit = observer};
    const char *how[] = {"stop_self", "proc_exit"};
    for (int k = 0; k < 2; k++) {
        memset(&plog, 0, sizeof plog);
        hc_proc *p = start_probe(w, &o);
        const hc_pid pid = *hc_proc_pid(p);
        hc_span r = pair(&w->b[0], "shutdown", atom(&w->b[1], how[k]));
        if (k == 0) { /* a stop asked for waits for the callback to return: the reply goes first */
            assert_int_equal(call(w, &pid, pair(&w->b[2], how[k], r)), HC_OK);
            assert_span_equal(w->cl.reply, w->cl.reply_len, atom(&w->b[1], "ok"));
        } else { /* the process is gone at once (so the reply comes too late), but terminate waits */
            assert_int_equal(call(w, &pid, pair(&w->b[2], how[k], r)), HC_ENOPROC);
        }
        run(w);
        assert_null(hc_proc_lookup(w->rt, &pid));
        assert_ended_once(&pid, r, true);
    }
}

static void test_exit_signals(void **state)
{
    world *w = *state;
    hc_worker_opts o = {.on_exit = observer};
    hc_proc *p = start_probe(w, &o);
    const hc_pid pid = *hc_proc_pid(p);

    /* normal: ignored by a worker that does not trap exits */
    hc_span normal = hc_reason_normal();
    assert_int_equal(hc_exit_signal(w->rt, w->client, &pid, normal.p, normal.len), HC_OK);
    run(w);
    assert_non_null(hc_proc_lookup(w->rt, &pid));
    assert_int_equal(plog.terminates, 0);

    /* any other reason ends it with that reason */
    hc_span boom = atom(&w->b[0], "boom");
    assert_int_equal(hc_exit_signal(w->rt, w->client, &pid, boom.p, boom.len), HC_OK);
    run(w);
    assert_null(hc_proc_lookup(w->rt, &pid));
    assert_ended_once(&pid, boom, true);

    /* kill: killed, even when trapping exits */
    memset(&plog, 0, sizeof plog);
    p = start_probe(w, &o);
    const hc_pid pid2 = *hc_proc_pid(p);
    assert_int_equal(call(w, &pid2, atom(&w->b[1], "trap")), HC_OK);
    hc_span kill = atom(&w->b[0], "kill");
    assert_int_equal(hc_exit_signal(w->rt, w->client, &pid2, kill.p, kill.len), HC_OK);
    run(w);
    assert_null(hc_proc_lookup(w->rt, &pid2));
    assert_ended_once(&pid2, hc_reason_killed(), true);

    /* a broken link: the linked process's reason */
    memset(&plog, 0, sizeof plog);
    p = start_probe(w, &o);
    const hc_pid pid3 = *hc_proc_pid(p);
    hc_proc *partner;
    assert_int_equal(hc_proc_spawn(w->rt, &client_ops, &(client){0}, 0, &partner), HC_OK);
    assert_int_equal(hc_link(w->rt, partner, &pid3), HC_OK);
    run(w);
    hc_span r = pair(&w->b[0], "shutdown", atom(&w->b[1], "partner"));
    hc_proc_exit(w->rt, partner, r.p, r.len);
    run(w);
    assert_null(hc_proc_lookup(w->rt, &pid3));
    assert_ended_once(&pid3, r, true);
}

static void test_watch_replaces_and_clears_the_observer(void **state)
{
    world *w = *state;
    int a, b;
    hc_worker_opts o = {.on_exit = observer, .ud = &a};
    hc_proc *p = start_probe(w, &o);
    const hc_pid pid = *hc_proc_pid(p);
    assert_int_equal(hc_worker_watch(p, observer, &b), HC_OK);
    hc_span r = atom(&w->b[0], "first");
    assert_int_equal(hc_worker_stop(w->rt, p, r.p, r.len), HC_OK);
    assert_ended_once(&pid, r, true);
    assert_ptr_equal(plog.obs_ud, &b);

    memset(&plog, 0, sizeof plog);
    p = start_probe(w, &o);
    const hc_pid pid2 = *hc_proc_pid(p);
    assert_int_equal(hc_worker_watch(p, NULL, &b), HC_OK);
    assert_int_equal(hc_worker_stop(w->rt, p, r.p, r.len), HC_OK);
    assert_ended_once(&pid2, r, false);

    /* started without an observer, one added later */
    memset(&plog, 0, sizeof plog);
    p = start_probe(w, NULL);
    const hc_pid pid3 = *hc_proc_pid(p);
    assert_int_equal(hc_worker_watch(p, observer, &a), HC_OK);
    assert_int_equal(hc_worker_stop(w->rt, p, r.p, r.len), HC_OK);
    assert_ended_once(&pid3, r, true);
}

static void test_runtime_free_ends_workers(void **state)
{
    world *w = *state;
    hc_worker_opts o = {.on_exit = observer};
    hc_proc *p = start_probe(w, &o);
    const hc_pid pid = *hc_proc_pid(p);
    plog.try_start_in_observer = true;
    hc_rt_free(w->rt);
    w->rt = NULL;
    assert_ended_once(&pid, hc_reason_shutdown(), true);
    assert_int_equal(plog.start_in_observer, HC_ESTATE); /* no new worker once the runtime is going */
}

/* ------------------------------------------------------------------ the built-in types */

static void test_echo_type(void **state)
{
    world *w = *state;
    hc_span arg = pair(&w->b[0], "config", integer(&w->b[1], 42));
    hc_proc *p = start(w, "echo", arg, NULL);
    const hc_pid pid = *hc_proc_pid(p);
    uint8_t argcopy[64];
    memcpy(argcopy, arg.p, arg.len);
    hc_span want_arg = {argcopy, arg.len};
    assert_int_equal(call(w, &pid, atom(&w->b[0], "get_arg")), HC_OK);
    assert_span_equal(w->cl.reply, w->cl.reply_len, want_arg);
    hc_span t = triple(&w->b[0], "t", atom(&w->b[1], "x"), integer(&w->b[2], -7));
    assert_int_equal(call(w, &pid, pair(&w->b[1], "echo", t)), HC_OK);
    assert_span_equal(w->cl.reply, w->cl.reply_len, t);
    /* unknown and malformed calls: {error, {unknown_call, Req}}, and it keeps running */
    hc_span bad = triple(&w->b[2], "echo", t, t);
    assert_int_equal(call(w, &pid, bad), HC_OK);
    assert_span_equal(w->cl.reply, w->cl.reply_len, pair(&w->b[0], "error", pair(&w->b[1], "unknown_call", bad)));
    assert_non_null(hc_proc_lookup(w->rt, &pid));
    /* crash: no reply, the caller sees the worker die with {crash, <<"echo">>} */
    assert_int_equal(hc_monitor(w->rt, w->client, &pid, 0, 0, &w->cl.mon), HC_OK);
    assert_int_equal(call(w, &pid, atom(&w->b[0], "crash")), HC_ENOPROC);
    run(w);
    assert_null(hc_proc_lookup(w->rt, &pid));
    hc_buf want = {0};
    hc_enc_tuple_header(&want, 2);
    hc_enc_atom_cstr(&want, "crash");
    hc_enc_binary(&want, "echo", 4);
    assert_int_equal(w->cl.downs, 1);
    assert_span_equal(w->cl.down_reason, w->cl.down_reason_len, done(&want));
    hc_buf_free(&want);

    /* cast {exit, R} and message {exit, R} end it with R; other casts and messages are ignored */
    const bool as_cast[] = {true, false};
    for (int k = 0; k < 2; k++) {
        p = start(w, "echo", atom(&w->b[0], "nil"), NULL);
        const hc_pid q = *hc_proc_pid(p);
        assert_int_equal(hc_monitor(w->rt, w->client, &q, 0, 0, &w->cl.mon), HC_OK);
        hc_span junk = atom(&w->b[0], "junk");
        hc_span msg = as_cast[k] ? pair(&w->b[1], "$gen_cast", junk) : junk;
        assert_int_equal(hc_send(w->rt, w->client, &q, msg.p, msg.len), HC_OK);
        run(w);
        assert_non_null(hc_proc_lookup(w->rt, &q));
        hc_span r = atom(&w->b[2], as_cast[k] ? "by_cast" : "by_info");
        hc_span ex = pair(&w->b[0], "exit", r);
        msg = as_cast[k] ? pair(&w->b[1], "$gen_cast", ex) : ex;
        assert_int_equal(hc_send(w->rt, w->client, &q, msg.p, msg.len), HC_OK);
        run(w);
        assert_null(hc_proc_lookup(w->rt, &q));
        assert_int_equal(w->cl.downs, 2 + k);
        assert_span_equal(w->cl.down_reason, w->cl.down_reason_len, r);
    }
}

static int kv_call(world *w, const hc_pid *pid, hc_span req) { return call(w, pid, req); }

static void test_kv_type(void **state)
{
    world *w = *state;
    hc_buf arg = {0};
    /* init from a map */
    hc_enc_map_header(&arg, 2);
    hc_enc_atom_cstr(&arg, "a");
    hc_enc_long(&arg, 1);
    hc_enc_binary(&arg, "b", 1);
    hc_enc_list_header(&arg, 1);
    hc_enc_long(&arg, 2);
    hc_enc_nil(&arg);
    hc_proc *p = start(w, "kv", done(&arg), NULL);
    const hc_pid pid = *hc_proc_pid(p);
    assert_int_equal(kv_call(w, &pid, atom(&w->b[0], "size")), HC_OK);
    assert_span_equal(w->cl.reply, w->cl.reply_len, integer(&w->b[0], 2));
    assert_int_equal(kv_call(w, &pid, pair(&w->b[1], "get", atom(&w->b[0], "a"))), HC_OK);
    assert_span_equal(w->cl.reply, w->cl.reply_len, pair(&w->b[1], "ok", integer(&w->b[0], 1)));

    /* put (new and overwrite), get, delete, keys, size */
    hc_span k = triple(&w->b[2], "key", integer(&w->b[0], 3), atom(&w->b[1], "x"));
    uint8_t kc[64];
    memcpy(kc, k.p, k.len);
    k.p = kc;
    assert_int_equal(kv_call(w, &pid, triple(&w->b[2], "put", k, atom(&w->b[0], "v1"))), HC_OK);
    assert_span_equal(w->cl.reply, w->cl.reply_len, atom(&w->b[0], "ok"));
    assert_int_equal(kv_call(w, &pid, triple(&w->b[2], "put", k, atom(&w->b[0], "v2"))), HC_OK);
    assert_int_equal(kv_call(w, &pid, pair(&w->b[2], "get", k)), HC_OK);
    assert_span_equal(w->cl.reply, w->cl.reply_len, pair(&w->b[1], "ok", atom(&w->b[0], "v2")));
    assert_int_equal(kv_call(w, &pid, atom(&w->b[0], "size")), HC_OK);
    assert_span_equal(w->cl.reply, w->cl.reply_len, integer(&w->b[0], 3));
    assert_int_equal(kv_call(w, &pid, atom(&w->b[0], "keys")), HC_OK);
    hc_iter it;
    size_t i = 0;
    hc_span e;
    int nkeys = 0, found = 0;
    assert_int_equal(hc_iter_list(&it, w->cl.reply, w->cl.reply_len, &i), HC_OK);
    while (hc_iter_next(&it, &e)) {
        nkeys++;
        found += e.len == k.len && memcmp(e.p, k.p, k.len) == 0;
    }
    assert_int_equal(nkeys, 3);
    assert_int_equal(found, 1);
    assert_int_equal(kv_call(w, &pid, pair(&w->b[2], "delete", k)), HC_OK);
    assert_span_equal(w->cl.reply, w->cl.reply_len, atom(&w->b[0], "ok"));
    assert_int_equal(kv_call(w, &pid, pair(&w->b[2], "delete", k)), HC_OK); /* deleting nothing is fine */
    assert_int_equal(kv_call(w, &pid, pair(&w->b[2], "get", k)), HC_OK);
    assert_span_equal(w->cl.reply, w->cl.reply_len, atom(&w->b[0], "error"));
    /* a bad call changes nothing */
    hc_span bad = pair(&w->b[2], "put", k);
    assert_int_equal(kv_call(w, &pid, bad), HC_OK);
    assert_span_equal(w->cl.reply, w->cl.reply_len, pair(&w->b[1], "error", pair(&w->b[0], "unknown_call", bad)));
    assert_int_equal(kv_call(w, &pid, atom(&w->b[0], "size")), HC_OK);
    assert_span_equal(w->cl.reply, w->cl.reply_len, integer(&w->b[0], 2));
    /* {exit, R} as echo's */
    hc_span r = atom(&w->b[0], "done");
    assert_int_equal(kv_call(w, &pid, pair(&w->b[1], "exit", r)), HC_OK);
    run(w);
    assert_null(hc_proc_lookup(w->rt, &pid));

    /* init from a list of pairs (other elements skipped), and from anything else: empty */
    hc_buf_reset(&arg);
    hc_enc_list_header(&arg, 3);
    hc_enc_tuple_header(&arg, 2);
    hc_enc_long(&arg, 1);
    hc_enc_long(&arg, 10);
    hc_enc_atom_cstr(&arg, "not_a_pair");
    hc_enc_tuple_header(&arg, 2);
    hc_enc_long(&arg, 2);
    hc_enc_long(&arg, 20);
    hc_enc_nil(&arg);
    p = start(w, "kv", done(&arg), NULL);
    const hc_pid pid2 = *hc_proc_pid(p);
    assert_int_equal(kv_call(w, &pid2, atom(&w->b[0], "size")), HC_OK);
    assert_span_equal(w->cl.reply, w->cl.reply_len, integer(&w->b[0], 2));
    assert_int_equal(kv_call(w, &pid2, pair(&w->b[1], "get", integer(&w->b[0], 2))), HC_OK);
    assert_span_equal(w->cl.reply, w->cl.reply_len, pair(&w->b[1], "ok", integer(&w->b[0], 20)));
    p = start(w, "kv", atom(&w->b[0], "nil"), NULL);
    const hc_pid pid3 = *hc_proc_pid(p);
    assert_int_equal(kv_call(w, &pid3, atom(&w->b[0], "keys")), HC_OK);
    hc_buf_reset(&arg);
    hc_enc_nil(&arg);
    assert_span_equal(w->cl.reply, w->cl.reply_len, done(&arg)); /* [] */
    hc_buf_free(&arg);
    /* the rest are freed by hc_rt_free in teardown (terminate frees the stores: LeakSanitizer checks) */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_type_registration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_types_are_per_runtime, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_unknown_type_and_bad_arg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_failure_ignore_and_exit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_with_a_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_casts_and_infos, setup, teardown),
        cmocka_unit_test_setup_teardown(test_type_without_callbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_asked_in_a_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_from_outside_is_synchronous, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_or_proc_exit_under_its_own_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_signals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_replaces_and_clears_the_observer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runtime_free_ends_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_echo_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kv_type, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
