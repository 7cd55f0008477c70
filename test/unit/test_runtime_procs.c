/* test_runtime_procs.c — the runtime's process model between C processes on one node: spawning (with a
 * name, in one step), messages, monitors (by pid and by name), links and exit signals (including unlink
 * racing an exit), trap_exit, kill, GenServer-style calls between C processes (reply, noproc, timeout,
 * caller gone), the caller's tag (compact, alias, raw of any size, kept beyond the callback), batches of
 * calls ('$gen_calls', answered by one '$gen_replies'; '$hordec_noreply' tags not answered), replies from
 * a buffer whose encoding failed, loop timers and timers owned by a process (send_after included).
 * The node does not register with epmd and talks to nobody: everything here is local. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hordec/hc_runtime.h"

/* ------------------------------------------------------------------ a recording process */

typedef struct rec {
    int messages, downs, exits, terminated, calls_answered;
    uint8_t last_msg[4096];
    size_t last_msg_len;
    uint8_t last_reason[256];
    size_t last_reason_len;
    hc_ref last_down_ref;
    hc_atom last_down_name;
    bool last_down_by_pid;
    hc_pid last_msg_from;
    bool last_msg_has_from;
    bool last_exit_linked;
    bool keep_from; /* on_call keeps a copy of the caller instead of replying */
    hc_gen_from kept;
    int call_status;
    uint8_t call_reply[4096];
    size_t call_reply_len;
    int call_cb_runs;
    bool never_reply;
    int batch_begins, batch_ends;
} rec;

static void copy_capped(uint8_t *dst, size_t cap, size_t *dlen, const uint8_t *src, size_t n)
{
    *dlen = n < cap ? n : cap;
    memcpy(dst, src, *dlen);
}
#define copy(dst, dlen, src, n) copy_capped(dst, sizeof(dst), dlen, src, n)

static void on_message(hc_rt *rt, hc_proc *self, const hc_pid *from, const uint8_t *msg, size_t len)
{
    rec *r = hc_proc_state(self);
    r->messages++;
    copy(r->last_msg, &r->last_msg_len, msg, len);
    r->last_msg_has_from = from != NULL;
    if (from)
        r->last_msg_from = *from;
    (void)rt;
}

/* Echo server: replies with the request, unless told never to reply. */
static void on_call(hc_rt *rt, hc_proc *self, const hc_gen_from *from, const uint8_t *req, size_t len)
{
    rec *r = hc_proc_state(self);
    if (r->keep_from) {
        hc_gen_from_release(&r->kept);
        assert_int_equal(hc_gen_from_copy(&r->kept, from), HC_OK);
        return;
    }
    if (r->never_reply)
        return;
    r->calls_answered++;
    hc_gen_reply(rt, from, req, len);
}

static void on_down(hc_rt *rt, hc_proc *self, const hc_down *d)
{
    rec *r = hc_proc_state(self);
    r->downs++;
    r->last_down_ref = d->ref;
    r->last_down_name = d->name;
    r->last_down_by_pid = d->pid != NULL;
    copy(r->last_reason, &r->last_reason_len, d->reason.p, d->reason.len);
    (void)rt;
}

static void on_exit_signal(hc_rt *rt, hc_proc *self, const hc_exit_info *e)
{
    rec *r = hc_proc_state(self);
    r->exits++;
    r->last_exit_linked = e->linked;
    copy(r->last_reason, &r->last_reason_len, e->reason.p, e->reason.len);
    (void)rt;
}

static void on_terminate(hc_rt *rt, hc_proc *self, const uint8_t *reason, size_t rlen)
{
    rec *r = hc_proc_state(self);
    r->terminated++;
    copy(r->last_reason, &r->last_reason_len, reason, rlen);
    hc_gen_from_release(&r->kept);
    (void)rt;
}

static void on_batch(hc_rt *rt, hc_proc *self, bool begin)
{
    rec *r = hc_proc_state(self);
    if (begin)
        r->batch_begins++;
    else
        r->batch_ends++;
    (void)rt;
}

static const hc_proc_ops ops = {.on_message = on_message,
                                .on_call = on_call,
                                .on_down = on_down,
                                .on_exit_signal = on_exit_signal,
                                .on_terminate = on_terminate,
                                .on_batch = on_batch};

/* ------------------------------------------------------------------ fixtures */

typedef struct world {
    hc_rt *rt;
    rec recs[8];
    hc_proc *procs[8];
    hc_pid pids[8];
} world;

/* A process pointer dies with its process (at the end of that loop turn): ask by pid. */
static bool alive(const world *w, int i) { return hc_proc_lookup(w->rt, &w->pids[i]) != NULL; }

static int setup(void **state)
{
    world *w = calloc(1, sizeof *w);
    hc_rt_config cfg;
    hc_rt_config_defaults(&cfg);
    cfg.node_name = "unit@127.0.0.1";
    cfg.cookie = "unit";
    cfg.register_epmd = false;
    char err[256];
    assert_int_equal(hc_rt_new(&cfg, &w->rt, err, sizeof err), HC_OK);
    assert_non_null(w->rt);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(hc_proc_spawn(w->rt, &ops, &w->recs[i], 0, &w->procs[i]), HC_OK);
        assert_non_null(w->procs[i]);
        w->pids[i] = *hc_proc_pid(w->procs[i]);
    }
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    world *w = *state;
    hc_rt_free(w->rt);
    hc_atom_table_reset();
    free(w);
    return 0;
}

static void run(world *w)
{
    for (int i = 0; i < 10; i++)
        hc_rt_run_once(w->rt, 0);
}

static hc_span atom_term(hc_buf *b, const char *a)
{
    hc_buf_reset(b);
    assert_int_equal(hc_enc_atom_cstr(b, a), HC_OK);
    return (hc_span){b->data, b->len};
}

/* {shutdown, Tag} */
static hc_span shutdown_term(hc_buf *b, const char *tag)
{
    hc_buf_reset(b);
    assert_int_equal(hc_enc_tuple_header(b, 2), HC_OK);
    assert_int_equal(hc_enc_atom_cstr(b, "shutdown"), HC_OK);
    assert_int_equal(hc_enc_atom_cstr(b, tag), HC_OK);
    return (hc_span){b->data, b->len};
}

static void assert_reason(const rec *r, hc_span want)
{
    assert_int_equal(r->last_reason_len, want.len);
    assert_memory_equal(r->last_reason, want.p, want.len);
}

/* ------------------------------------------------------------------ tests */

static void test_send_delivers_on_the_next_turn(void **state)
{
    world *w = *state;
    hc_buf b = {0};
    hc_span t = atom_term(&b, "hello");
    assert_int_equal(hc_send(w->rt, w->procs[0], hc_proc_pid(w->procs[1]), t.p, t.len), HC_OK);
    assert_int_equal(w->recs[1].messages, 0); /* signals are asynchronous */
    run(w);
    assert_int_equal(w->recs[1].messages, 1);
    assert_memory_equal(w->recs[1].last_msg, t.p, t.len);
    hc_buf_free(&b);
}

static void test_monitor_fires_with_the_exit_reason(void **state)
{
    world *w = *state;
    hc_buf b = {0};
    hc_ref ref;
    assert_int_equal(hc_monitor(w->rt, w->procs[0], hc_proc_pid(w->procs[1]), 0, 0, &ref), HC_OK);
    hc_span reason = shutdown_term(&b, "bye");
    hc_proc_exit(w->rt, w->procs[1], reason.p, reason.len);
    run(w);
    assert_int_equal(w->recs[0].downs, 1);
    assert_true(hc_ref_eq(&w->recs[0].last_down_ref, &ref));
    assert_true(w->recs[0].last_down_by_pid);
    assert_int_equal(w->recs[0].last_down_name, 0);
    assert_reason(&w->recs[0], reason);
    assert_int_equal(w->recs[1].terminated, 1);
    hc_buf_free(&b);
}

static void test_monitor_of_dead_or_unknown_is_noproc(void **state)
{
    world *w = *state;
    hc_buf b = {0};
    hc_ref ref;
    hc_pid dead = *hc_proc_pid(w->procs[1]);
    hc_span normal = hc_reason_normal();
    hc_proc_exit(w->rt, w->procs[1], normal.p, normal.len);
    run(w);
    assert_int_equal(hc_monitor(w->rt, w->procs[0], &dead, 0, 0, &ref), HC_OK);
    run(w);
    assert_int_equal(w->recs[0].downs, 1);
    assert_reason(&w->recs[0], hc_reason_noproc());
    hc_atom nobody = hc_atom_intern_cstr("nobody");
    assert_int_equal(hc_monitor(w->rt, w->procs[0], NULL, nobody, 0, &ref), HC_OK);
    run(w);
    assert_int_equal(w->recs[0].downs, 2);
    assert_int_equal(w->recs[0].last_down_name, nobody);
    assert_reason(&w->recs[0], hc_reason_noproc());
    hc_buf_free(&b);
}

static void test_monitor_by_name_and_demonitor(void **state)
{
    world *w = *state;
    hc_atom name = hc_atom_intern_cstr("srv");
    assert_int_equal(hc_proc_register(w->rt, w->procs[1], name), HC_OK);
    assert_int_equal(hc_proc_register(w->rt, w->procs[2], name), HC_EEXIST);
    assert_ptr_equal(hc_proc_whereis(w->rt, name), w->procs[1]);
    hc_ref by_name, cancelled;
    assert_int_equal(hc_monitor(w->rt, w->procs[0], NULL, name, 0, &by_name), HC_OK);
    assert_int_equal(hc_monitor(w->rt, w->procs[2], hc_proc_pid(w->procs[1]), 0, 0, &cancelled), HC_OK);
    assert_int_equal(hc_demonitor(w->rt, w->procs[2], &cancelled), HC_OK);
    hc_span killed = hc_reason_killed();
    hc_proc_exit(w->rt, w->procs[1], killed.p, killed.len);
    run(w);
    assert_int_equal(w->recs[0].downs, 1);
    assert_int_equal(w->recs[0].last_down_name, name);
    assert_int_equal(w->recs[2].downs, 0);
    assert_null(hc_proc_whereis(w->rt, name)); /* the name goes with the process */
}

/* A monitor that fired but whose DOWN is not delivered yet (local signals go on the next turn): demonitor still
 * means no DOWN arrives afterwards. */
static void test_demonitor_after_the_target_died_drops_the_down(void **state)
{
    world *w = *state;
    hc_ref ref;
    assert_int_equal(hc_monitor(w->rt, w->procs[0], hc_proc_pid(w->procs[1]), 0, 0, &ref), HC_OK);
    hc_span killed = hc_reason_killed();
    hc_proc_exit(w->rt, w->procs[1], killed.p, killed.len);
    assert_int_equal(hc_demonitor(w->rt, w->procs[0], &ref), HC_OK);
    run(w);
    assert_int_equal(w->recs[0].downs, 0);
    assert_int_equal(w->recs[1].terminated, 1);
}

static void test_link_propagates_abnormal_exit_not_normal(void **state)
{
    world *w = *state;
    hc_buf b = {0};
    assert_int_equal(hc_link(w->rt, w->procs[0], hc_proc_pid(w->procs[1])), HC_OK);
    assert_int_equal(hc_link(w->rt, w->procs[2], hc_proc_pid(w->procs[3])), HC_OK);
    hc_ref watch;
    assert_int_equal(hc_monitor(w->rt, w->procs[4], hc_proc_pid(w->procs[0]), 0, 0, &watch), HC_OK);
    hc_span boom = atom_term(&b, "boom");
    hc_proc_exit(w->rt, w->procs[1], boom.p, boom.len);
    hc_span normal = hc_reason_normal();
    hc_proc_exit(w->rt, w->procs[3], normal.p, normal.len);
    run(w);
    assert_false(alive(w, 0)); /* died of the linked exit, with the same reason */
    assert_int_equal(w->recs[0].terminated, 1);
    assert_int_equal(w->recs[4].downs, 1);
    assert_reason(&w->recs[4], boom);
    assert_true(alive(w, 2)); /* a normal exit does not propagate */
    hc_buf_free(&b);
}

static void test_unlink_before_delivery_cancels_the_exit(void **state)
{
    world *w = *state;
    hc_buf b = {0};
    assert_int_equal(hc_link(w->rt, w->procs[0], hc_proc_pid(w->procs[1])), HC_OK);
    hc_span boom = atom_term(&b, "boom");
    hc_proc_exit(w->rt, w->procs[1], boom.p, boom.len); /* the exit signal is now on its way */
    assert_int_equal(hc_unlink(w->rt, w->procs[0], hc_proc_pid(w->procs[1])), HC_OK);
    run(w);
    assert_true(alive(w, 0));
    hc_buf_free(&b);
}

static void test_trap_exit_and_kill(void **state)
{
    world *w = *state;
    hc_buf b = {0};
    hc_proc_set_trap_exit(w->procs[0], true);
    assert_int_equal(hc_link(w->rt, w->procs[0], hc_proc_pid(w->procs[1])), HC_OK);
    hc_span boom = atom_term(&b, "boom");
    hc_proc_exit(w->rt, w->procs[1], boom.p, boom.len);
    run(w);
    assert_true(alive(w, 0));
    assert_int_equal(w->recs[0].exits, 1);
    assert_reason(&w->recs[0], boom);
    assert_true(w->recs[0].last_exit_linked);
    /* exit/2 with another reason is trapped too, and says it is not a link */
    assert_int_equal(hc_exit_signal(w->rt, w->procs[2], hc_proc_pid(w->procs[0]), boom.p, boom.len), HC_OK);
    run(w);
    assert_int_equal(w->recs[0].exits, 2);
    assert_false(w->recs[0].last_exit_linked);
    /* exit(Pid, kill) cannot be trapped: the process dies with `killed` */
    hc_span kill = atom_term(&b, "kill");
    assert_int_equal(hc_exit_signal(w->rt, w->procs[2], hc_proc_pid(w->procs[0]), kill.p, kill.len), HC_OK);
    run(w);
    assert_false(alive(w, 0));
    assert_reason(&w->recs[0], hc_reason_killed());
    /* link to a dead process: noproc exit signal (trapped here) */
    hc_proc_set_trap_exit(w->procs[3], true);
    hc_pid dead = w->pids[1];
    assert_int_equal(hc_link(w->rt, w->procs[3], &dead), HC_OK);
    run(w);
    assert_int_equal(w->recs[3].exits, 1);
    assert_reason(&w->recs[3], hc_reason_noproc());
    hc_buf_free(&b);
}

static void call_cb(hc_rt *rt, hc_proc *caller, const hc_call_result *res, void *ud)
{
    rec *r = ud;
    r->call_cb_runs++;
    r->call_status = res->status;
    if (res->status == HC_OK)
        copy(r->call_reply, &r->call_reply_len, res->reply.p, res->reply.len);
    else
        assert_null(res->reply.p);
    (void)rt, (void)caller;
}

static void test_calls_between_c_processes(void **state)
{
    world *w = *state;
    hc_buf b = {0};
    hc_atom name = hc_atom_intern_cstr("echo");
    assert_int_equal(hc_proc_register(w->rt, w->procs[1], name), HC_OK);
    hc_span req = shutdown_term(&b, "request"); /* any term */
    assert_int_equal(hc_gen_call(w->rt, w->procs[0], NULL, name, 0, req.p, req.len, 1000, call_cb, &w->recs[0]), HC_OK);
    run(w);
    assert_int_equal(w->recs[0].call_cb_runs, 1);
    assert_int_equal(w->recs[0].call_status, HC_OK);
    assert_int_equal(w->recs[0].call_reply_len, req.len);
    assert_memory_equal(w->recs[0].call_reply, req.p, req.len);
    /* by pid too */
    assert_int_equal(
        hc_gen_call(w->rt, w->procs[0], hc_proc_pid(w->procs[1]), 0, 0, req.p, req.len, 1000, call_cb, &w->recs[0]),
        HC_OK);
    run(w);
    assert_int_equal(w->recs[0].call_cb_runs, 2);
    assert_int_equal(w->recs[0].call_status, HC_OK);
    /* unknown name: noproc, at once */
    hc_atom missing = hc_atom_intern_cstr("missing");
    assert_int_equal(hc_gen_call(w->rt, w->procs[0], NULL, missing, 0, req.p, req.len, 1000, call_cb, &w->recs[0]),
                     HC_OK);
    run(w);
    assert_int_equal(w->recs[0].call_cb_runs, 3);
    assert_int_equal(w->recs[0].call_status, HC_ENOPROC);
    assert_int_equal(w->recs[1].calls_answered, 2);
    hc_buf_free(&b);
}

static void test_call_timeout_and_server_death(void **state)
{
    world *w = *state;
    hc_buf b = {0};
    w->recs[1].never_reply = true;
    hc_span req = atom_term(&b, "ping");
    assert_int_equal(
        hc_gen_call(w->rt, w->procs[0], hc_proc_pid(w->procs[1]), 0, 0, req.p, req.len, 30, call_cb, &w->recs[0]),
        HC_OK);
    for (int i = 0; i < 100 && !w->recs[0].call_cb_runs; i++)
        hc_rt_run_once(w->rt, 5);
    assert_int_equal(w->recs[0].call_cb_runs, 1);
    assert_int_equal(w->recs[0].call_status, HC_ETIMEOUT);
    /* the server dies while the call is pending: noproc, not a timeout */
    assert_int_equal(
        hc_gen_call(w->rt, w->procs[0], hc_proc_pid(w->procs[1]), 0, 0, req.p, req.len, 5000, call_cb, &w->recs[0]),
        HC_OK);
    run(w);
    hc_span boom = atom_term(&b, "boom");
    hc_proc_exit(w->rt, w->procs[1], boom.p, boom.len);
    run(w);
    assert_int_equal(w->recs[0].call_cb_runs, 2);
    assert_int_equal(w->recs[0].call_status, HC_ENOPROC);
    /* the caller dies first: its callback never runs */
    w->recs[3].never_reply = true;
    assert_int_equal(
        hc_gen_call(w->rt, w->procs[2], hc_proc_pid(w->procs[3]), 0, 0, req.p, req.len, 20, call_cb, &w->recs[2]),
        HC_OK);
    hc_span normal = hc_reason_normal();
    hc_proc_exit(w->rt, w->procs[2], normal.p, normal.len);
    for (int i = 0; i < 10; i++)
        hc_rt_run_once(w->rt, 5);
    assert_int_equal(w->recs[2].call_cb_runs, 0);
    hc_buf_free(&b);
}

static int fired[4];
static void timer_cb(hc_rt *rt, void *ud)
{
    fired[(intptr_t)ud]++;
    (void)rt;
}

static void test_timers(void **state)
{
    world *w = *state;
    memset(fired, 0, sizeof fired);
    hc_timer_id first, cancelled, never;
    assert_int_equal(hc_timer_start(w->rt, 1, timer_cb, (void *)0, &first), HC_OK);
    assert_int_equal(hc_timer_start(w->rt, 1, timer_cb, (void *)1, &cancelled), HC_OK);
    assert_int_equal(hc_timer_start(w->rt, 100000, timer_cb, (void *)2, &never), HC_OK);   /* freed, never fired */
    assert_int_equal(hc_timer_start(w->rt, UINT64_MAX, timer_cb, (void *)3, NULL), HC_OK); /* no wrap-around */
    assert_true(first && cancelled && never && first != cancelled);
    assert_true(hc_timer_cancel(w->rt, cancelled));
    assert_false(hc_timer_cancel(w->rt, cancelled)); /* only once */
    assert_false(hc_timer_cancel(w->rt, 0));
    for (int i = 0; i < 50 && !fired[0]; i++)
        hc_rt_run_once(w->rt, 5);
    assert_int_equal(fired[0], 1);
    assert_int_equal(fired[1], 0);
    assert_int_equal(fired[2], 0);
    assert_int_equal(fired[3], 0);
    assert_false(hc_timer_cancel(w->rt, first)); /* it fired */
}

/* ------------------------------------------------------------------ spawning */

static void test_spawn_with_a_name_in_one_step(void **state)
{
    world *w = *state;
    static rec named, loser;
    memset(&named, 0, sizeof named);
    memset(&loser, 0, sizeof loser);
    hc_atom name = hc_atom_intern_cstr("named");
    hc_proc *p = NULL;
    assert_int_equal(hc_proc_spawn(w->rt, &ops, &named, name, &p), HC_OK);
    assert_non_null(p);
    assert_ptr_equal(hc_proc_whereis(w->rt, name), p);
    assert_int_equal(hc_proc_name(p), name);
    assert_ptr_equal(hc_proc_state(p), &named);

    /* the name is taken: nothing is created, on_terminate never runs, the state is still the caller's */
    hc_rt_stats before, after;
    hc_rt_stats_get(w->rt, &before);
    hc_proc *q = (hc_proc *)&loser; /* must be overwritten with NULL */
    assert_int_equal(hc_proc_spawn(w->rt, &ops, &loser, name, &q), HC_EEXIST);
    assert_null(q);
    hc_rt_stats_get(w->rt, &after);
    assert_int_equal(after.processes, before.processes);
    assert_int_equal(hc_proc_spawn(w->rt, NULL, &loser, 0, &q), HC_EINVAL);
    assert_null(q);
    run(w);
    assert_int_equal(loser.terminated, 0);
    assert_ptr_equal(hc_proc_whereis(w->rt, name), p);

    /* unnamed, and without wanting the pointer back */
    assert_int_equal(hc_proc_spawn(w->rt, &ops, &loser, 0, NULL), HC_OK);
    hc_rt_stats_get(w->rt, &after);
    assert_int_equal(after.processes, before.processes + 1);

    /* late registration renames */
    hc_atom other = hc_atom_intern_cstr("renamed");
    assert_int_equal(hc_proc_register(w->rt, p, other), HC_OK);
    assert_null(hc_proc_whereis(w->rt, name));
    assert_ptr_equal(hc_proc_whereis(w->rt, other), p);
    assert_int_equal(hc_proc_register(w->rt, w->procs[0], other), HC_EEXIST);
    hc_span normal = hc_reason_normal();
    hc_proc_exit(w->rt, p, normal.p, normal.len);
    run(w);
    assert_int_equal(named.terminated, 1);
    /* `loser`'s unnamed process ends with the runtime; its rec is static so that is fine */
}

static void test_new_runtime_errors(void **state)
{
    (void)state;
    hc_rt_config cfg;
    hc_rt_config_defaults(&cfg);
    cfg.node_name = "no_host_part";
    cfg.cookie = "c";
    cfg.register_epmd = false;
    hc_rt *rt = (hc_rt *)&cfg;
    char err[128] = "";
    assert_int_equal(hc_rt_new(&cfg, &rt, err, sizeof err), HC_EINVAL);
    assert_null(rt);
    assert_non_null(strstr(err, "node name"));
    cfg.node_name = "ok@127.0.0.1";
    cfg.cookie = NULL;
    assert_int_equal(hc_rt_new(&cfg, &rt, NULL, 0), HC_EINVAL); /* no message wanted */
    assert_null(rt);
}

/* ------------------------------------------------------------------ process timers */

static int pfired[4];
static hc_proc *pfired_self[4];
static void ptimer_cb(hc_rt *rt, hc_proc *self, void *ud)
{
    int *slot = ud;
    (*slot)++;
    pfired_self[slot - pfired] = self;
    (void)rt;
}

static void test_process_timers(void **state)
{
    world *w = *state;
    memset(pfired, 0, sizeof pfired);
    hc_timer_id a, b, c, id;
    assert_int_equal(hc_proc_timer_start(w->rt, w->procs[0], 1, ptimer_cb, &pfired[0], &a), HC_OK);
    assert_int_equal(hc_proc_timer_start(w->rt, w->procs[0], 1, ptimer_cb, &pfired[1], &b), HC_OK);
    assert_int_equal(hc_proc_timer_start(w->rt, w->procs[1], 1, ptimer_cb, &pfired[2], &c), HC_OK);
    assert_int_equal(hc_proc_timer_start(w->rt, w->procs[1], 100000, ptimer_cb, &pfired[3], NULL), HC_OK);
    assert_true(a && b && c);
    assert_true(hc_proc_timer_cancel(w->rt, w->procs[0], b));
    assert_false(hc_proc_timer_cancel(w->rt, w->procs[0], b));
    assert_false(hc_proc_timer_cancel(w->rt, w->procs[0], c)); /* not procs[0]'s timer */
    assert_false(hc_timer_cancel(w->rt, 0));
    /* procs[1] exits: both its timers go with it */
    hc_span normal = hc_reason_normal();
    hc_proc_exit(w->rt, w->procs[1], normal.p, normal.len);
    /* a process that exited (its pointer is good until the end of this turn) cannot start one */
    id = 77;
    assert_int_equal(hc_proc_timer_start(w->rt, w->procs[1], 1, ptimer_cb, &pfired[2], &id), HC_EINVAL);
    assert_int_equal(id, 0);
    for (int i = 0; i < 50 && !pfired[0]; i++)
        hc_rt_run_once(w->rt, 5);
    for (int i = 0; i < 5; i++)
        hc_rt_run_once(w->rt, 2);
    assert_int_equal(pfired[0], 1);
    assert_ptr_equal(pfired_self[0], w->procs[0]);
    assert_int_equal(pfired[1], 0);
    assert_int_equal(pfired[2], 0);
    assert_int_equal(pfired[3], 0);
    assert_false(hc_proc_timer_cancel(w->rt, w->procs[0], a)); /* fired already */
    assert_int_equal(hc_proc_timer_start(w->rt, w->procs[0], 1, NULL, NULL, &id), HC_EINVAL);
}

static void test_send_after(void **state)
{
    world *w = *state;
    hc_buf b = {0};
    hc_span tick = shutdown_term(&b, "tick");
    uint8_t want[64];
    size_t want_len = tick.len;
    memcpy(want, tick.p, tick.len);
    hc_timer_id kept, cancelled;
    assert_int_equal(hc_proc_send_after(w->rt, w->procs[2], 1, tick.p, tick.len, &kept), HC_OK);
    assert_int_equal(hc_proc_send_after(w->rt, w->procs[3], 1, tick.p, tick.len, &cancelled), HC_OK);
    assert_int_equal(hc_proc_send_after(w->rt, w->procs[4], 1, tick.p, tick.len, NULL), HC_OK);
    atom_term(&b, "overwritten"); /* the message was copied */
    assert_true(hc_proc_timer_cancel(w->rt, w->procs[3], cancelled));
    hc_span normal = hc_reason_normal();
    hc_proc_exit(w->rt, w->procs[4], normal.p, normal.len); /* its pending message goes with it */
    for (int i = 0; i < 50 && !w->recs[2].messages; i++)
        hc_rt_run_once(w->rt, 5);
    for (int i = 0; i < 5; i++)
        hc_rt_run_once(w->rt, 2);
    assert_int_equal(w->recs[2].messages, 1);
    assert_int_equal(w->recs[2].last_msg_len, want_len);
    assert_memory_equal(w->recs[2].last_msg, want, want_len);
    assert_true(w->recs[2].last_msg_has_from); /* from itself */
    assert_true(hc_pid_eq(&w->recs[2].last_msg_from, &w->pids[2]));
    assert_int_equal(w->recs[3].messages, 0);
    assert_int_equal(w->recs[4].messages, 0);
    assert_false(hc_proc_timer_cancel(w->rt, w->procs[2], kept));
    hc_buf_free(&b);
}

/* ------------------------------------------------------------------ the caller's tag */

/* Sends {'$gen_call', {From, Tag}, Req} to `to` as a BEAM caller would, and checks that `from` then
 * receives exactly {Tag, Req} (the echo server's reply) as a plain message. */
static void call_by_hand(world *w, int from, int to, const uint8_t *tag, size_t tag_len, const char *req_atom)
{
    hc_buf msg = {0}, want = {0};
    hc_enc_tuple_header(&msg, 3);
    hc_enc_atom_cstr(&msg, "$gen_call");
    hc_enc_tuple_header(&msg, 2);
    hc_enc_pid(&msg, &w->pids[from]);
    hc_buf_append(&msg, tag, tag_len);
    hc_enc_atom_cstr(&msg, req_atom);
    assert_int_equal(msg.err, HC_OK);
    hc_enc_tuple_header(&want, 2);
    hc_buf_append(&want, tag, tag_len);
    hc_enc_atom_cstr(&want, req_atom);
    assert_int_equal(want.err, HC_OK);
    int before = w->recs[from].messages;
    assert_int_equal(hc_send(w->rt, NULL, &w->pids[to], msg.data, msg.len), HC_OK);
    run(w);
    assert_int_equal(w->recs[from].messages, before + 1);
    assert_int_equal(w->recs[from].last_msg_len, want.len);
    assert_memory_equal(w->recs[from].last_msg, want.data, want.len);
    hc_buf_free(&msg);
    hc_buf_free(&want);
}

static void test_caller_tags_of_every_shape_and_size(void **state)
{
    world *w = *state;
    assert_true(sizeof(hc_gen_from) <= 64); /* it used to be ~300 bytes */
    hc_buf t = {0};
    hc_ref ref;
    hc_make_ref(w->rt, &ref);
    /* a bare ref (gen:call before OTP 24) */
    hc_enc_ref(&t, &ref);
    call_by_hand(w, 0, 1, t.data, t.len, "a");
    /* [alias | Ref] (OTP 24+), from a local caller: answered by a plain send */
    hc_buf_reset(&t);
    hc_enc_list_header(&t, 1);
    hc_enc_atom_cstr(&t, "alias");
    hc_enc_ref(&t, &ref);
    call_by_hand(w, 0, 1, t.data, t.len, "b");
    /* a small tag of another shape */
    hc_buf_reset(&t);
    hc_enc_atom_cstr(&t, "tag");
    call_by_hand(w, 0, 1, t.data, t.len, "c");
    /* an old NEW_REFERENCE_EXT: not re-encoded, echoed byte for byte */
    static const uint8_t old_ref[] = {114, 0, 1, 119, 3, 'a', '@', 'b', 2, 0, 0, 0, 42};
    call_by_hand(w, 0, 1, old_ref, sizeof old_ref, "d");
    /* tags well over the old 256-byte ceiling */
    for (size_t n = 200; n <= 3000; n += 1400) {
        hc_buf_reset(&t);
        hc_enc_tuple_header(&t, 2);
        hc_enc_ref(&t, &ref);
        uint8_t big[3000];
        memset(big, 'x', sizeof big);
        hc_enc_binary(&t, big, n);
        assert_int_equal(t.err, HC_OK);
        call_by_hand(w, 0, 1, t.data, t.len, "e");
    }
    assert_int_equal(w->recs[1].calls_answered, 7);
    hc_buf_free(&t);
}

static void test_caller_kept_beyond_the_callback(void **state)
{
    world *w = *state;
    hc_buf t = {0}, msg = {0}, reply = {0};
    uint8_t big[1000];
    memset(big, 'y', sizeof big);
    hc_enc_binary(&t, big, sizeof big); /* a heap-held tag */
    w->recs[1].keep_from = true;
    hc_enc_tuple_header(&msg, 3);
    hc_enc_atom_cstr(&msg, "$gen_call");
    hc_enc_tuple_header(&msg, 2);
    hc_enc_pid(&msg, &w->pids[0]);
    hc_buf_append(&msg, t.data, t.len);
    hc_enc_atom_cstr(&msg, "later");
    assert_int_equal(hc_send(w->rt, NULL, &w->pids[1], msg.data, msg.len), HC_OK);
    run(w);
    assert_int_equal(w->recs[0].messages, 0);
    /* a copy of the copy outlives the original */
    hc_gen_from second;
    assert_int_equal(hc_gen_from_copy(&second, &w->recs[1].kept), HC_OK);
    hc_gen_from_release(&w->recs[1].kept);
    hc_gen_from_release(&w->recs[1].kept);                                        /* twice is harmless */
    assert_int_equal(hc_gen_reply_atom(w->rt, &w->recs[1].kept, "x"), HC_EINVAL); /* released: empty */
    assert_true(hc_pid_eq(&second.pid, &w->pids[0]));
    assert_int_equal(hc_gen_reply_atom(w->rt, &second, "done"), HC_OK);
    run(w);
    hc_enc_tuple_header(&reply, 2);
    hc_buf_append(&reply, t.data, t.len);
    hc_enc_atom_cstr(&reply, "done");
    assert_int_equal(w->recs[0].messages, 1);
    assert_int_equal(w->recs[0].last_msg_len, reply.len);
    assert_memory_equal(w->recs[0].last_msg, reply.data, reply.len);
    hc_gen_from_release(&second);
    /* a zeroed one is empty too */
    hc_gen_from zero;
    memset(&zero, 0, sizeof zero);
    hc_gen_from_release(&zero);
    assert_int_equal(hc_gen_reply_atom(w->rt, &zero, "x"), HC_EINVAL);
    hc_buf_free(&t);
    hc_buf_free(&msg);
    hc_buf_free(&reply);
}

/* ------------------------------------------------------------------ batches of calls */

/* {'$gen_calls', From, [{Tag, Req}...]} with the given tags (encoded terms) and atom requests. */
static void enc_batch(hc_buf *msg, const hc_pid *from, const hc_buf *tags, const char *const *reqs, int n)
{
    hc_buf_reset(msg);
    hc_enc_tuple_header(msg, 3);
    hc_enc_atom_cstr(msg, "$gen_calls");
    hc_enc_pid(msg, from);
    if (n)
        hc_enc_list_header(msg, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        hc_enc_tuple_header(msg, 2);
        hc_buf_append(msg, tags[i].data, tags[i].len);
        hc_enc_atom_cstr(msg, reqs[i]);
    }
    hc_enc_nil(msg);
    assert_int_equal(msg->err, HC_OK);
}

static void test_batch_of_calls_answered_in_one_message(void **state)
{
    world *w = *state;
    hc_buf tags[3] = {{0}}, msg = {0}, want = {0};
    const char *reqs[3] = {"a", "b", "c"};
    hc_ref ref;
    hc_make_ref(w->rt, &ref);
    hc_enc_ref(&tags[0], &ref);
    hc_make_ref(w->rt, &ref);
    hc_enc_ref(&tags[1], &ref);
    hc_enc_atom_cstr(&tags[2], "raw_tag");
    enc_batch(&msg, &w->pids[0], tags, reqs, 3);
    assert_int_equal(hc_send(w->rt, NULL, &w->pids[1], msg.data, msg.len), HC_OK);
    run(w);
    /* each call answered, the answers in one message, in order, and the process told where the batch was */
    assert_int_equal(w->recs[1].calls_answered, 3);
    assert_int_equal(w->recs[1].batch_begins, 1);
    assert_int_equal(w->recs[1].batch_ends, 1);
    assert_int_equal(w->recs[0].messages, 1);
    hc_enc_tuple_header(&want, 2);
    hc_enc_atom_cstr(&want, "$gen_replies");
    hc_enc_list_header(&want, 3);
    for (int i = 0; i < 3; i++) {
        hc_enc_tuple_header(&want, 2);
        hc_buf_append(&want, tags[i].data, tags[i].len);
        hc_enc_atom_cstr(&want, reqs[i]);
    }
    hc_enc_nil(&want);
    assert_int_equal(w->recs[0].last_msg_len, want.len);
    assert_memory_equal(w->recs[0].last_msg, want.data, want.len);

    /* an empty batch: nothing to answer, no message */
    enc_batch(&msg, &w->pids[0], tags, reqs, 0);
    assert_int_equal(hc_send(w->rt, NULL, &w->pids[1], msg.data, msg.len), HC_OK);
    run(w);
    assert_int_equal(w->recs[0].messages, 1);

    /* a call answered after its batch ended: its reply goes alone, as any reply */
    w->recs[1].keep_from = true;
    enc_batch(&msg, &w->pids[0], tags, reqs, 1);
    assert_int_equal(hc_send(w->rt, NULL, &w->pids[1], msg.data, msg.len), HC_OK);
    run(w);
    assert_int_equal(w->recs[0].messages, 1);
    assert_int_equal(hc_gen_reply_atom(w->rt, &w->recs[1].kept, "later"), HC_OK);
    run(w);
    assert_int_equal(w->recs[0].messages, 2);
    hc_buf_reset(&want);
    hc_enc_tuple_header(&want, 2);
    hc_buf_append(&want, tags[0].data, tags[0].len);
    hc_enc_atom_cstr(&want, "later");
    assert_int_equal(w->recs[0].last_msg_len, want.len);
    assert_memory_equal(w->recs[0].last_msg, want.data, want.len);
    w->recs[1].keep_from = false;

    /* calls tagged '$hordec_noreply' are served, their replies dropped: with another call in the batch only its
     * reply comes back; alone (in a batch or as a plain call) nothing comes back at all */
    hc_buf nr[2] = {{0}};
    hc_enc_atom_cstr(&nr[0], "$hordec_noreply");
    hc_buf_append(&nr[1], tags[2].data, tags[2].len);
    int answered = w->recs[1].calls_answered;
    enc_batch(&msg, &w->pids[0], nr, reqs, 2);
    assert_int_equal(hc_send(w->rt, NULL, &w->pids[1], msg.data, msg.len), HC_OK);
    run(w);
    assert_int_equal(w->recs[1].calls_answered, answered + 2);
    assert_int_equal(w->recs[0].messages, 3);
    hc_buf_reset(&want);
    hc_enc_tuple_header(&want, 2);
    hc_enc_atom_cstr(&want, "$gen_replies");
    hc_enc_list_header(&want, 1);
    hc_enc_tuple_header(&want, 2);
    hc_buf_append(&want, tags[2].data, tags[2].len);
    hc_enc_atom_cstr(&want, reqs[1]);
    hc_enc_nil(&want);
    assert_int_equal(w->recs[0].last_msg_len, want.len);
    assert_memory_equal(w->recs[0].last_msg, want.data, want.len);
    enc_batch(&msg, &w->pids[0], nr, reqs, 1);
    assert_int_equal(hc_send(w->rt, NULL, &w->pids[1], msg.data, msg.len), HC_OK);
    hc_buf_reset(&msg);
    hc_enc_tuple_header(&msg, 3);
    hc_enc_atom_cstr(&msg, "$gen_call");
    hc_enc_tuple_header(&msg, 2);
    hc_enc_pid(&msg, &w->pids[0]);
    hc_enc_atom_cstr(&msg, "$hordec_noreply");
    hc_enc_atom_cstr(&msg, "d");
    assert_int_equal(hc_send(w->rt, NULL, &w->pids[1], msg.data, msg.len), HC_OK);
    run(w);
    assert_int_equal(w->recs[1].calls_answered, answered + 4);
    assert_int_equal(w->recs[0].messages, 3);
    hc_buf_free(&nr[0]);
    hc_buf_free(&nr[1]);

    /* malformed (an element that is not {Tag, Req}): not a batch, so nothing is called; it arrives as it is */
    answered = w->recs[1].calls_answered;
    int plain = w->recs[1].messages;
    hc_buf_reset(&msg);
    hc_enc_tuple_header(&msg, 3);
    hc_enc_atom_cstr(&msg, "$gen_calls");
    hc_enc_pid(&msg, &w->pids[0]);
    hc_enc_list_header(&msg, 2);
    hc_enc_tuple_header(&msg, 2);
    hc_buf_append(&msg, tags[0].data, tags[0].len);
    hc_enc_atom_cstr(&msg, "a");
    hc_enc_atom_cstr(&msg, "not_a_call");
    hc_enc_nil(&msg);
    assert_int_equal(hc_send(w->rt, NULL, &w->pids[1], msg.data, msg.len), HC_OK);
    run(w);
    assert_int_equal(w->recs[1].calls_answered, answered);
    assert_int_equal(w->recs[1].messages, plain + 1);
    assert_int_equal(w->recs[0].messages, 3);
    for (int i = 0; i < 3; i++)
        hc_buf_free(&tags[i]);
    hc_buf_free(&msg);
    hc_buf_free(&want);
}

/* ------------------------------------------------------------------ replies that respect the sticky error */

static void test_reply_and_send_from_a_failed_buffer(void **state)
{
    world *w = *state;
    hc_buf bad = {0}, good = {0}, want = {0};
    hc_enc_tuple_header(&bad, 2);
    assert_int_equal(hc_buf_reserve(&bad, SIZE_MAX), HC_ETOOBIG); /* an encoder failed part-way */
    size_t len_at_failure = bad.len;
    assert_true(hc_enc_atom_cstr(&bad, "later") < 0); /* what follows is a no-op */
    assert_int_equal(bad.len, len_at_failure);
    assert_int_equal(bad.err, HC_ETOOBIG);
    assert_int_equal(bad.err, HC_ETOOBIG);
    /* a send refuses it, and nothing arrives */
    assert_int_equal(hc_send_buf(w->rt, w->procs[0], &w->pids[2], &bad), HC_ETOOBIG);
    hc_enc_atom_cstr(&good, "fine");
    assert_int_equal(hc_send_buf(w->rt, w->procs[0], &w->pids[2], &good), HC_OK);
    run(w);
    assert_int_equal(w->recs[2].messages, 1);
    assert_memory_equal(w->recs[2].last_msg, good.data, good.len);
    /* a reply still answers the caller: {error, {encode_failed, etoobig}} */
    w->recs[1].keep_from = true;
    assert_int_equal(
        hc_gen_call(w->rt, w->procs[0], &w->pids[1], 0, 0, good.data, good.len, 5000, call_cb, &w->recs[0]), HC_OK);
    run(w);
    assert_int_equal(hc_gen_reply_buf(w->rt, &w->recs[1].kept, &bad), HC_ETOOBIG);
    run(w);
    assert_int_equal(w->recs[0].call_cb_runs, 1);
    assert_int_equal(w->recs[0].call_status, HC_OK);
    hc_enc_tuple_header(&want, 2);
    hc_enc_atom_cstr(&want, "error");
    hc_enc_tuple_header(&want, 2);
    hc_enc_atom_cstr(&want, "encode_failed");
    hc_enc_atom_cstr(&want, "etoobig");
    assert_int_equal(w->recs[0].call_reply_len, want.len);
    assert_memory_equal(w->recs[0].call_reply, want.data, want.len);
    /* and a good buffer is the reply itself */
    assert_int_equal(
        hc_gen_call(w->rt, w->procs[0], &w->pids[1], 0, 0, good.data, good.len, 5000, call_cb, &w->recs[0]), HC_OK);
    run(w);
    assert_int_equal(hc_gen_reply_buf(w->rt, &w->recs[1].kept, &good), HC_OK);
    run(w);
    assert_int_equal(w->recs[0].call_cb_runs, 2);
    assert_int_equal(w->recs[0].call_reply_len, good.len);
    assert_memory_equal(w->recs[0].call_reply, good.data, good.len);
    assert_string_equal(hc_err_atom(HC_ETIMEOUT), "etimeout");
    assert_string_equal(hc_err_atom(12345), "unknown");
    assert_string_equal(hc_strerror(HC_ETIMEOUT), "timed out");
    hc_buf_free(&bad);
    hc_buf_free(&good);
    hc_buf_free(&want);
}

/* ------------------------------------------------------------------ node events */

static hc_node_event last_ev;
static int node_events;
static void node_cb(hc_rt *rt, const hc_node_event *ev, void *ud)
{
    last_ev = *ev;
    last_ev.detail = NULL; /* only valid during the callback */
    assert_non_null(ev->detail);
    node_events++;
    (void)rt, (void)ud;
}

static void test_node_events_carry_codes(void **state)
{
    world *w = *state;
    hc_atom node = hc_atom_intern_cstr("elsewhere@127.0.0.1");
    assert_int_equal(hc_rt_block(w->rt, node), HC_OK);
    node_events = 0;
    /* blocked: the one-shot result comes at once, as a code */
    assert_int_equal(hc_rt_on_connect_result(w->rt, node, node_cb, NULL), HC_OK);
    assert_int_equal(node_events, 1);
    assert_false(last_ev.up);
    assert_int_equal(last_ev.node, node);
    assert_int_equal(last_ev.reason, HC_ENOCONN);
    assert_int_equal(hc_rt_on_connect_result(w->rt, node, NULL, NULL), HC_EINVAL);
    /* a call to a process there is answered through the callback (noconnection), and the caller sees no
     * stray DOWN for the call's internal monitor */
    hc_atom name = hc_atom_intern_cstr("srv");
    assert_int_equal(
        hc_gen_call(w->rt, w->procs[0], NULL, name, node, (const uint8_t *)"\x6a", 1, 5000, call_cb, &w->recs[0]),
        HC_OK);
    run(w);
    assert_int_equal(w->recs[0].call_cb_runs, 1);
    assert_int_equal(w->recs[0].call_status, HC_ENOCONN);
    assert_int_equal(w->recs[0].downs, 0);
    /* a monitor there fires noconnection, by name */
    hc_ref mref;
    assert_int_equal(hc_monitor(w->rt, w->procs[0], NULL, name, node, &mref), HC_OK);
    run(w);
    assert_int_equal(w->recs[0].downs, 1);
    assert_false(w->recs[0].last_down_by_pid);
    assert_int_equal(w->recs[0].last_down_name, name);
    assert_reason(&w->recs[0], hc_reason_noconnection());
    hc_rt_unblock(w->rt, node);
    /* subscriptions: a handle, and unsubscribing twice is harmless */
    uint64_t h = 0;
    assert_int_equal(hc_rt_subscribe_nodes(w->rt, node_cb, NULL, &h), HC_OK);
    assert_true(h != 0);
    hc_rt_unsubscribe_nodes(w->rt, h);
    hc_rt_unsubscribe_nodes(w->rt, h);
    assert_int_equal(hc_rt_subscribe_nodes(w->rt, NULL, NULL, &h), HC_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_send_delivers_on_the_next_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_monitor_fires_with_the_exit_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_monitor_of_dead_or_unknown_is_noproc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_demonitor_after_the_target_died_drops_the_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_monitor_by_name_and_demonitor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_propagates_abnormal_exit_not_normal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unlink_before_delivery_cancels_the_exit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trap_exit_and_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_between_c_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_timeout_and_server_death, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spawn_with_a_name_in_one_step, setup, teardown),
        cmocka_unit_test(test_new_runtime_errors),
        cmocka_unit_test_setup_teardown(test_process_timers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_caller_tags_of_every_shape_and_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_caller_kept_beyond_the_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_of_calls_answered_in_one_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_and_send_from_a_failed_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_events_carry_codes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
