/* test_runtime_procs.c — the runtime's process model between C processes on one node: messages,
 * monitors (by pid and by name), links and exit signals (including unlink racing an exit), trap_exit,
 * kill, GenServer-style calls between C processes (reply, noproc, timeout, caller gone) and timers.
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
    uint8_t last_msg[256];
    size_t last_msg_len;
    uint8_t last_reason[256];
    size_t last_reason_len;
    hc_ref last_down_ref;
    hc_atom last_down_name;
    int call_status;
    uint8_t call_reply[256];
    size_t call_reply_len;
    int call_cb_runs;
    bool never_reply;
} rec;

static void copy(uint8_t *dst, size_t *dlen, const uint8_t *src, size_t n)
{
    *dlen = n < 256 ? n : 256;
    memcpy(dst, src, *dlen);
}

static void on_message(hc_rt *rt, hc_proc *self, const hc_pid *from, const uint8_t *msg, size_t len)
{
    rec *r = hc_proc_state(self);
    r->messages++;
    copy(r->last_msg, &r->last_msg_len, msg, len);
    (void)rt, (void)from;
}

/* Echo server: replies with the request, unless told never to reply. */
static void on_call(hc_rt *rt, hc_proc *self, const hc_gen_from *from, const uint8_t *req, size_t len)
{
    rec *r = hc_proc_state(self);
    if (r->never_reply)
        return;
    r->calls_answered++;
    hc_gen_reply(rt, from, req, len);
}

static void on_down(hc_rt *rt, hc_proc *self, const hc_ref *ref, const hc_pid *pid, hc_atom name, hc_atom node,
                    const uint8_t *reason, size_t rlen)
{
    rec *r = hc_proc_state(self);
    r->downs++;
    r->last_down_ref = *ref;
    r->last_down_name = name;
    copy(r->last_reason, &r->last_reason_len, reason, rlen);
    (void)rt, (void)pid, (void)node;
}

static void on_exit_signal(hc_rt *rt, hc_proc *self, const hc_pid *from, const uint8_t *reason, size_t rlen)
{
    rec *r = hc_proc_state(self);
    r->exits++;
    copy(r->last_reason, &r->last_reason_len, reason, rlen);
    (void)rt, (void)from;
}

static void on_terminate(hc_rt *rt, hc_proc *self, const uint8_t *reason, size_t rlen)
{
    rec *r = hc_proc_state(self);
    r->terminated++;
    copy(r->last_reason, &r->last_reason_len, reason, rlen);
    (void)rt;
}

static const hc_proc_ops ops = {.on_message = on_message,
                                .on_call = on_call,
                                .on_down = on_down,
                                .on_exit_signal = on_exit_signal,
                                .on_terminate = on_terminate};

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
    w->rt = hc_rt_new(&cfg, err, sizeof err);
    assert_non_null(w->rt);
    for (int i = 0; i < 8; i++) {
        w->procs[i] = hc_proc_spawn(w->rt, &ops, &w->recs[i]);
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

static hc_term_span atom_term(hc_buf *b, const char *a)
{
    hc_buf_reset(b);
    assert_int_equal(hc_enc_atom_cstr(b, a), HC_OK);
    return (hc_term_span){b->data, b->len};
}

/* {shutdown, Tag} */
static hc_term_span shutdown_term(hc_buf *b, const char *tag)
{
    hc_buf_reset(b);
    assert_int_equal(hc_enc_tuple_header(b, 2), HC_OK);
    assert_int_equal(hc_enc_atom_cstr(b, "shutdown"), HC_OK);
    assert_int_equal(hc_enc_atom_cstr(b, tag), HC_OK);
    return (hc_term_span){b->data, b->len};
}

static void assert_reason(const rec *r, hc_term_span want)
{
    assert_int_equal(r->last_reason_len, want.len);
    assert_memory_equal(r->last_reason, want.p, want.len);
}

/* ------------------------------------------------------------------ tests */

static void test_send_delivers_on_the_next_turn(void **state)
{
    world *w = *state;
    hc_buf b = {0};
    hc_term_span t = atom_term(&b, "hello");
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
    hc_term_span reason = shutdown_term(&b, "bye");
    hc_proc_exit(w->rt, w->procs[1], reason.p, reason.len);
    run(w);
    assert_int_equal(w->recs[0].downs, 1);
    assert_true(hc_ref_eq(&w->recs[0].last_down_ref, &ref));
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
    hc_term_span normal = hc_reason_normal();
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
    hc_term_span killed = hc_reason_killed();
    hc_proc_exit(w->rt, w->procs[1], killed.p, killed.len);
    run(w);
    assert_int_equal(w->recs[0].downs, 1);
    assert_int_equal(w->recs[0].last_down_name, name);
    assert_int_equal(w->recs[2].downs, 0);
    assert_null(hc_proc_whereis(w->rt, name)); /* the name goes with the process */
}

static void test_link_propagates_abnormal_exit_not_normal(void **state)
{
    world *w = *state;
    hc_buf b = {0};
    assert_int_equal(hc_link(w->rt, w->procs[0], hc_proc_pid(w->procs[1])), HC_OK);
    assert_int_equal(hc_link(w->rt, w->procs[2], hc_proc_pid(w->procs[3])), HC_OK);
    hc_ref watch;
    assert_int_equal(hc_monitor(w->rt, w->procs[4], hc_proc_pid(w->procs[0]), 0, 0, &watch), HC_OK);
    hc_term_span boom = atom_term(&b, "boom");
    hc_proc_exit(w->rt, w->procs[1], boom.p, boom.len);
    hc_term_span normal = hc_reason_normal();
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
    hc_term_span boom = atom_term(&b, "boom");
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
    hc_term_span boom = atom_term(&b, "boom");
    hc_proc_exit(w->rt, w->procs[1], boom.p, boom.len);
    run(w);
    assert_true(alive(w, 0));
    assert_int_equal(w->recs[0].exits, 1);
    assert_reason(&w->recs[0], boom);
    /* exit(Pid, kill) cannot be trapped: the process dies with `killed` */
    hc_term_span kill = atom_term(&b, "kill");
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

static void call_cb(hc_rt *rt, hc_proc *caller, int status, const uint8_t *reply, size_t len, void *ud)
{
    rec *r = ud;
    r->call_cb_runs++;
    r->call_status = status;
    if (reply)
        copy(r->call_reply, &r->call_reply_len, reply, len);
    (void)rt, (void)caller;
}

static void test_calls_between_c_processes(void **state)
{
    world *w = *state;
    hc_buf b = {0};
    hc_atom name = hc_atom_intern_cstr("echo");
    assert_int_equal(hc_proc_register(w->rt, w->procs[1], name), HC_OK);
    hc_term_span req = shutdown_term(&b, "request"); /* any term */
    assert_int_equal(hc_gen_call(w->rt, w->procs[0], NULL, name, 0, req.p, req.len, 1000, call_cb, &w->recs[0]),
                     HC_OK);
    run(w);
    assert_int_equal(w->recs[0].call_cb_runs, 1);
    assert_int_equal(w->recs[0].call_status, HC_OK);
    assert_int_equal(w->recs[0].call_reply_len, req.len);
    assert_memory_equal(w->recs[0].call_reply, req.p, req.len);
    /* by pid too */
    assert_int_equal(hc_gen_call(w->rt, w->procs[0], hc_proc_pid(w->procs[1]), 0, 0, req.p, req.len, 1000, call_cb,
                                 &w->recs[0]),
                     HC_OK);
    run(w);
    assert_int_equal(w->recs[0].call_cb_runs, 2);
    assert_int_equal(w->recs[0].call_status, HC_OK);
    /* unknown name: noproc, at once */
    hc_atom missing = hc_atom_intern_cstr("missing");
    assert_int_equal(
        hc_gen_call(w->rt, w->procs[0], NULL, missing, 0, req.p, req.len, 1000, call_cb, &w->recs[0]), HC_OK);
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
    hc_term_span req = atom_term(&b, "ping");
    assert_int_equal(hc_gen_call(w->rt, w->procs[0], hc_proc_pid(w->procs[1]), 0, 0, req.p, req.len, 30, call_cb,
                                 &w->recs[0]),
                     HC_OK);
    for (int i = 0; i < 100 && !w->recs[0].call_cb_runs; i++)
        hc_rt_run_once(w->rt, 5);
    assert_int_equal(w->recs[0].call_cb_runs, 1);
    assert_int_equal(w->recs[0].call_status, HC_CALL_TIMEOUT);
    /* the server dies while the call is pending: noproc, not a timeout */
    assert_int_equal(hc_gen_call(w->rt, w->procs[0], hc_proc_pid(w->procs[1]), 0, 0, req.p, req.len, 5000, call_cb,
                                 &w->recs[0]),
                     HC_OK);
    run(w);
    hc_term_span boom = atom_term(&b, "boom");
    hc_proc_exit(w->rt, w->procs[1], boom.p, boom.len);
    run(w);
    assert_int_equal(w->recs[0].call_cb_runs, 2);
    assert_int_equal(w->recs[0].call_status, HC_ENOPROC);
    /* the caller dies first: its callback never runs */
    w->recs[3].never_reply = true;
    assert_int_equal(hc_gen_call(w->rt, w->procs[2], hc_proc_pid(w->procs[3]), 0, 0, req.p, req.len, 20, call_cb,
                                 &w->recs[2]),
                     HC_OK);
    hc_term_span normal = hc_reason_normal();
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
    hc_timer_start(w->rt, 1, timer_cb, (void *)0);
    hc_timer_id cancelled = hc_timer_start(w->rt, 1, timer_cb, (void *)1);
    hc_timer_start(w->rt, 100000, timer_cb, (void *)2); /* freed with the runtime, never fired */
    hc_timer_cancel(w->rt, cancelled);
    for (int i = 0; i < 50 && !fired[0]; i++)
        hc_rt_run_once(w->rt, 5);
    assert_int_equal(fired[0], 1);
    assert_int_equal(fired[1], 0);
    assert_int_equal(fired[2], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_send_delivers_on_the_next_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_monitor_fires_with_the_exit_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_monitor_of_dead_or_unknown_is_noproc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_monitor_by_name_and_demonitor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_propagates_abnormal_exit_not_normal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unlink_before_delivery_cancels_the_exit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trap_exit_and_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_between_c_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_timeout_and_server_death, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
