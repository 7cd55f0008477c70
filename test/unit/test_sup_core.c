/* test_sup_core.c — the supervisor core driven through hc_core_ops (sup_harness.h plays the host, the network,
 * the worker runtime and the BEAM clients): the requests of docs/supervisor.md §4, the observable map of §2,
 * and who restarts what of §5 — restart types, intensity, replica death, graceful shutdown, BEAM members,
 * duplicates after a partition, quorum — and bad input. Every test ends with s_check (the core's own check,
 * snapshot against the event stream, every worker watched and counted). */
#include "sup_harness.h"
#include "supervisor/sup.h" /* the children index: a failed start must leave nothing behind */

static hc_pid caller(void) { return s_bpid("a@sim", 5); }

/* {start_child, {c, Restart, Hash, {<<Type>>, Arg}}} through replica i. */
static const uint8_t *start_c(s_world *w, int i, const char *restart, uint64_t hash, const char *type, int arg,
                              size_t *n)
{
    hc_pid from = caller();
    return s_req(w, i, &from, n, "tataautBi", 2u, "start_child", 4u, "c", restart, hash, 2u, type, arg);
}

/* The pid of a reply {ok, Pid}; fails on anything else. */
static hc_pid ok_pid(const uint8_t *r, size_t n)
{
    size_t x = 0;
    uint32_t a;
    hc_pid pid;
    if (hc_dec_tuple_header(r, n, &x, &a) || a != 2 || !hc_dec_is_atom(r, n, &x, "ok") || hc_dec_pid(r, n, &x, &pid) ||
        x != n) {
        s_dump("not {ok, Pid}", r, n);
        fail();
    }
    return pid;
}

/* {error, {node_dead_or_shutting_down, Msg}} */
static void expect_dead(const uint8_t *r, size_t n)
{
    size_t x = 0;
    uint32_t a, b;
    hc_span msg;
    if (hc_dec_tuple_header(r, n, &x, &a) || a != 2 || !hc_dec_is_atom(r, n, &x, "error") ||
        hc_dec_tuple_header(r, n, &x, &b) || b != 2 || !hc_dec_is_atom(r, n, &x, "node_dead_or_shutting_down") ||
        hc_dec_binary(r, n, &x, &msg) || x != n) {
        s_dump("not {error, {node_dead_or_shutting_down, Msg}}", r, n);
        fail();
    }
}

/* Starts an echo worker through replica i; it must run (on whichever replica placement chose) and replica i's
 * map must name it. Returns its pid and record Id. */
static hc_pid start_ok(s_world *w, int i, const char *restart, uint64_t hash, int arg, uint64_t *id)
{
    size_t n = 0;
    const uint8_t *r = start_c(w, i, restart, hash, "echo", arg, &n);
    hc_pid pid = ok_pid(r, n);
    assert_true(w->replies[w->nreplies - 1].shown); /* the record was on its way to subscribers first */
    s_worker *wk = s_worker_of(w, &pid);
    assert_non_null(wk);
    assert_true(wk->alive);
    assert_string_equal(wk->type, "echo");
    *id = s_child_by_pid(w, i, &pid);
    assert_int_not_equal(*id, 0);
    return pid;
}

/* Replica i's map holds {child, Id} => {c, Restart, Hash, {<<"echo">>, Arg}, {sup, hON@sim}, Pid}. */
static void expect_record(s_world *w, int i, uint64_t id, const char *restart, uint64_t hash, int arg, int on,
                          const hc_pid *pid)
{
    s_kv *kv = s_child(w, i, id);
    if (!kv)
        fail_msg("replica %d has no record of child %llu", i, (unsigned long long)id);
    s_expect(kv->v, kv->vl, "taautBiMp", 6u, "c", restart, hash, 2u, "echo", arg, on, pid);
}

/* The record is relinquished: {c, Restart, Hash, {<<"echo">>, Arg}, nil, nil}. */
static void expect_relinquished(s_world *w, int i, uint64_t id, const char *restart, uint64_t hash, int arg)
{
    s_kv *kv = s_child(w, i, id);
    assert_non_null(kv);
    s_expect(kv->v, kv->vl, "taautBiaa", 6u, "c", restart, hash, 2u, "echo", arg, "nil", "nil");
}

/* The worker now running child `id` according to replica i's record (it must be a live worker). */
static hc_pid running_pid(s_world *w, int i, uint64_t id)
{
    hc_pid pid;
    if (!s_child_pid(w, i, id, &pid))
        fail_msg("child %llu has no pid on replica %d", (unsigned long long)id, i);
    s_worker *wk = s_worker_of(w, &pid);
    assert_non_null(wk);
    assert_true(wk->alive);
    return pid;
}

/* {Tag, {sup, Node}} in replica i's map. */
static s_kv *member_entry(s_world *w, int i, const char *tag, hc_atom node)
{
    hc_buf k = {0};
    s_term(&k, "tataA", 2u, tag, 2u, "sup", node);
    s_kv *kv = s_lookup(&w->r[i], k.data, k.len);
    hc_buf_free(&k);
    return kv;
}

/* Replica i's map says member {sup, node} left: {member, M} => removed (a tombstone, not an absent key). */
static void expect_member_removed(s_world *w, int i, hc_atom node)
{
    s_kv *kv = member_entry(w, i, "member", node);
    if (!kv)
        fail_msg("replica %d has no {member, _} entry for %s", i, hc_atom_name(node));
    size_t j = 0;
    assert_true(hc_dec_is_atom(kv->v, kv->vl, &j, "removed") && j == kv->vl);
}

/* Replica i's map says replica j's status is `st`: {c, St, SelfJ, {sup, hJ@sim}, [<<Type>>...]}. */
static void expect_replica_status(s_world *w, int i, int j, const char *st)
{
    s_kv *kv = member_entry(w, i, "status", s_node(j));
    if (!kv)
        fail_msg("replica %d has no status of replica %d", i, j);
    hc_buf want = {0};
    s_term(&want, "taapM", 5u, "c", st, &w->r[j].self, j);
    if (w->ntypes[j])
        hc_enc_list_header(&want, (uint32_t)w->ntypes[j]);
    for (size_t k = 0; k < w->ntypes[j]; k++)
        hc_enc_string(&want, w->types[j][k]);
    hc_enc_nil(&want);
    if (!s_equal(kv->v, kv->vl, &want)) {
        s_dump("status", kv->v, kv->vl);
        s_dump("expected", want.data, want.len);
        hc_buf_free(&want);
        fail_msg("replica %d: status of replica %d", i, j);
    }
    hc_buf_free(&want);
}

/* Replica i's map says BEAM member {sup, Node}'s status is {beam, St, Client, {sup, hVIA@sim}, []}. */
static void expect_beam_status(s_world *w, int i, hc_atom node, const char *st, const hc_pid *client, int via)
{
    s_kv *kv = member_entry(w, i, "status", node);
    if (!kv)
        fail_msg("replica %d has no status of %s", i, hc_atom_name(node));
    s_expect(kv->v, kv->vl, "taapMn", 5u, "beam", st, client, via);
}

static void set_members(s_world *w, int i, const int *reps, size_t n)
{
    hc_buf b = {0};
    s_term(&b, "ta", 2u, "set_members");
    if (n)
        hc_enc_list_header(&b, (uint32_t)n);
    for (size_t k = 0; k < n; k++)
        s_term(&b, "M", reps[k]);
    hc_enc_nil(&b);
    hc_pid from = caller();
    size_t len = 0;
    const uint8_t *r = s_call_within(w, i, &from, &b, 0, &len);
    s_expect(r, len, "a", "ok");
    hc_buf_free(&b);
}

/* n replicas that know each other, synced, every one alive in every map. */
static void cluster(s_world *w, int n)
{
    s_init(w, n);
    int reps[S_MAXR] = {0, 1, 2, 3};
    set_members(w, 0, reps, (size_t)n);
    s_run(w, 2000);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            expect_replica_status(w, i, j, "alive");
}

/* {start_child, Spec, Id}: the caller's id. Asked again (its client failed over and sent it once more) it is the
 * same child: the pid of the running one, and no second worker. */
static void test_start_child_with_id_is_idempotent(void **state)
{
    static s_world w;
    cluster(&w, 2);
    hc_pid from = caller();
    size_t n = 0;
    const uint8_t *r = s_req(&w, 0, &from, &n, "tataautBiu", 3u, "start_child", 4u, "c", "permanent", (uint64_t)7, 2u,
                             "echo", 1, (uint64_t)4242);
    hc_pid p = ok_pid(r, n);
    assert_int_equal(w.start_actions, 1);
    s_run(&w, 2000);
    /* the same request at the other replica, once it has the record */
    r = s_req(&w, 1, &from, &n, "tataautBiu", 3u, "start_child", 4u, "c", "permanent", (uint64_t)7, 2u, "echo", 1,
              (uint64_t)4242);
    hc_pid q = ok_pid(r, n);
    assert_true(hc_pid_eq(&p, &q));
    assert_int_equal(w.start_actions, 1);
    assert_int_equal(s_child_count(&w, 1), 1);
    /* id 0 is not an id */
    r = s_req(&w, 0, &from, &n, "tataautBiu", 3u, "start_child", 4u, "c", "permanent", (uint64_t)7, 2u, "echo", 1,
              (uint64_t)0);
    s_expect(r, n, "taa", 2u, "error", "badarg");
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* {set_options, #{Key => N}} */
static void set_option_n(s_world *w, int i, const char *key, int v)
{
    hc_pid from = caller();
    size_t n = 0;
    const uint8_t *r = s_req(w, i, &from, &n, "tamai", 2u, "set_options", 1u, key, v);
    s_expect(r, n, "a", "ok");
}

static void set_option_a(s_world *w, int i, const char *key, const char *v)
{
    hc_pid from = caller();
    size_t n = 0;
    const uint8_t *r = s_req(w, i, &from, &n, "tamaa", 2u, "set_options", 1u, key, v);
    s_expect(r, n, "a", "ok");
}

/* Live entries of the children index (records, running workers, operations in flight). */
static size_t indexed_children(s_world *w, int i) { return ((sup_core *)w->r[i].core)->children.count; }

/* ------------------------------------------------------------------ 1. one C worker on one replica */

static void test_start_c_worker(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    s_init(&w, 1);
    hc_pid from = caller(), self = s_self(0);
    size_t n = 0;
    const uint8_t *r;
    expect_replica_status(&w, 0, 0, "alive");
    r = s_req(&w, 0, &from, &n, "a", "members");
    s_expect(r, n, "lMn", 1u, 0);

    uint64_t id;
    hc_pid pid = start_ok(&w, 0, "permanent", 42, 7, &id);
    assert_int_equal(w.start_actions, 1); /* one start_worker action, the worker is the first one */
    assert_int_equal(w.nworkers, 1);
    s_expect(w.workers[0].arg, w.workers[0].arg_len, "i", 7);
    assert_int_equal(pid.node, s_node(0));
    expect_record(&w, 0, id, "permanent", 42, 7, 0, &pid);
    assert_int_equal(s_child_count(&w, 0), 1);
    assert_non_null(s_monitor_of(&w, 0, &pid));
    assert_true(id > 0 && id < (1ull << 63));

    r = s_req(&w, 0, &from, &n, "a", "which_children");
    s_expect(r, n, "ltapalann", 1u, 4u, "undefined", &pid, "worker", 1u, "Elixir.HordeC.CWorker");
    r = s_req(&w, 0, &from, &n, "a", "count_children");
    s_expect(r, n, "mauauauau", 4u, "active", (uint64_t)1, "specs", (uint64_t)1, "supervisors", (uint64_t)0, "workers",
             (uint64_t)1);

    /* a second child gets another Id */
    uint64_t id2;
    hc_pid pid2 = start_ok(&w, 0, "temporary", 43, 8, &id2);
    assert_int_not_equal(id, id2);
    assert_false(hc_pid_eq(&pid, &pid2));
    expect_record(&w, 0, id2, "temporary", 43, 8, 0, &pid2);

    /* terminate_child: the worker is stopped (shutdown), the record goes, the monitor with it */
    r = s_req(&w, 0, &from, &n, "tap", 2u, "terminate_child", &pid2);
    s_expect(r, n, "a", "ok");
    s_worker *wk = s_worker_of(&w, &pid2);
    assert_false(wk->alive);
    assert_int_equal(wk->stops, 1);
    s_expect(wk->stop_reason, wk->stop_len, "a", "shutdown");
    assert_null(s_child(&w, 0, id2));
    assert_null(s_monitor_of(&w, 0, &pid2));
    r = s_req(&w, 0, &from, &n, "tap", 2u, "terminate_child", &pid2);
    s_expect(r, n, "taa", 2u, "error", "not_found");
    r = s_req(&w, 0, &from, &n, "tap", 2u, "terminate_child", &self);
    s_expect(r, n, "taa", 2u, "error", "not_found");
    expect_record(&w, 0, id, "permanent", 42, 7, 0, &pid);

    s_run(&w, 1000);
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* A start that does not start (an unknown type, ignore) answers what the worker runtime said, writes nothing and
 * leaves nothing behind in the core. */
static void test_failed_start_leaves_nothing(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    s_init(&w, 1);
    size_t n = 0;
    const uint8_t *r = start_c(&w, 0, "permanent", 1, "nope", 0, &n);
    s_expect(r, n, "tataB", 2u, "error", 2u, "unknown_worker_type", "nope");
    r = start_c(&w, 0, "transient", 2, "ignore", 0, &n);
    s_expect(r, n, "a", "ignore");
    assert_int_equal(w.start_actions, 2);
    /* a type no replica advertises: refused by placement, the runtime is not even asked */
    r = start_c(&w, 0, "permanent", 3, "zzz", 0, &n);
    s_expect(r, n, "tataB", 2u, "error", 2u, "unknown_worker_type", "zzz");
    assert_int_equal(w.start_actions, 2);
    assert_int_equal(w.nworkers, 0);
    assert_int_equal(s_child_count(&w, 0), 0);
    s_check(&w);
    for (int k = 0; k < 50; k++) {
        r = start_c(&w, 0, "permanent", (uint64_t)k, k % 2 ? "nope" : "ignore", k, &n);
        assert_int_not_equal(n, 0);
    }
    s_run(&w, 1000);
    assert_int_equal(s_child_count(&w, 0), 0);
    /* nothing refers to those children: the index must not keep one entry per failed start */
    assert_int_equal(indexed_children(&w, 0), 0);
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* ------------------------------------------------------------------ 2. restart types */

static void test_restart_types(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    s_init(&w, 1);
    set_option_n(&w, 0, "max_restarts", 100); /* intensity has its own test */
    uint64_t idp, idt1, idt2, idt3, idx;
    hc_pid p = start_ok(&w, 0, "permanent", 1, 1, &idp);
    hc_pid t1 = start_ok(&w, 0, "transient", 2, 2, &idt1);
    hc_pid t2 = start_ok(&w, 0, "transient", 3, 3, &idt2);
    hc_pid t3 = start_ok(&w, 0, "transient", 4, 4, &idt3);
    hc_pid x = start_ok(&w, 0, "temporary", 5, 5, &idx);
    size_t starts = w.start_actions;

    /* permanent: restarted, same Id, a new pid in the record, the new worker watched */
    s_exit(&w, &p, "a", "killed");
    assert_int_equal(w.start_actions, starts + 1);
    hc_pid p2 = running_pid(&w, 0, idp);
    assert_false(hc_pid_eq(&p, &p2));
    expect_record(&w, 0, idp, "permanent", 1, 1, 0, &p2);
    assert_non_null(s_monitor_of(&w, 0, &p2));
    s_expect(s_worker_of(&w, &p2)->arg, s_worker_of(&w, &p2)->arg_len, "i", 1);
    /* ... also after a normal exit */
    s_exit(&w, &p2, "a", "normal");
    assert_int_equal(w.start_actions, starts + 2);
    hc_pid p3 = running_pid(&w, 0, idp);
    assert_false(hc_pid_eq(&p2, &p3));

    /* transient: an abnormal exit restarts it, normal ends it */
    s_exit(&w, &t1, "a", "killed");
    assert_int_equal(w.start_actions, starts + 3);
    hc_pid t1b = running_pid(&w, 0, idt1);
    assert_false(hc_pid_eq(&t1, &t1b));
    expect_record(&w, 0, idt1, "transient", 2, 2, 0, &t1b);
    s_exit(&w, &t1b, "a", "normal");
    assert_int_equal(w.start_actions, starts + 3);
    assert_null(s_child(&w, 0, idt1));
    /* {shutdown, x} and shutdown end a transient child too */
    s_exit(&w, &t2, "taa", 2u, "shutdown", "x");
    assert_null(s_child(&w, 0, idt2));
    s_exit(&w, &t3, "a", "shutdown");
    assert_null(s_child(&w, 0, idt3));
    /* ... but {shutdown, x, y} is not {shutdown, _} */
    uint64_t idt4;
    hc_pid t4 = start_ok(&w, 0, "transient", 6, 6, &idt4);
    starts = w.start_actions;
    s_exit(&w, &t4, "taaa", 3u, "shutdown", "x", "y");
    assert_int_equal(w.start_actions, starts + 1);
    running_pid(&w, 0, idt4);

    /* temporary: never */
    starts = w.start_actions;
    s_exit(&w, &x, "a", "killed");
    assert_int_equal(w.start_actions, starts);
    assert_null(s_child(&w, 0, idx));

    assert_int_equal(s_child_count(&w, 0), 2);
    assert_int_equal(s_stat(&w, 0, "given_up"), 0);
    assert_int_equal(s_stat(&w, 0, "restarted"), 4);
    s_run(&w, 1000);
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* ------------------------------------------------------------------ 3. intensity */

static void test_intensity(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    s_init(&w, 1);
    hc_pid from = caller();
    size_t n = 0;
    const uint8_t *r = s_req(&w, 0, &from, &n, "tamaiai", 2u, "set_options", 2u, "max_restarts", 3, "max_seconds", 5);
    s_expect(r, n, "a", "ok");
    uint64_t ida, idb;
    hc_pid a = start_ok(&w, 0, "permanent", 1, 1, &ida);
    hc_pid b = start_ok(&w, 0, "permanent", 2, 2, &idb);

    /* three crashes within 5 s: restarted each time */
    for (int k = 0; k < 3; k++) {
        size_t starts = w.start_actions;
        s_exit(&w, &a, "a", "boom");
        assert_int_equal(w.start_actions, starts + 1);
        a = running_pid(&w, 0, ida);
        s_run(&w, 100);
    }
    /* the fourth gives the child up: no restart, the record goes; the other child keeps running */
    size_t starts = w.start_actions;
    s_exit(&w, &a, "a", "boom");
    assert_int_equal(w.start_actions, starts);
    assert_null(s_child(&w, 0, ida));
    assert_int_equal(s_stat(&w, 0, "given_up"), 1);
    assert_true(s_worker_of(&w, &b)->alive);
    expect_record(&w, 0, idb, "permanent", 2, 2, 0, &b);
    assert_int_equal(s_stat(&w, 0, "running_here"), 1);

    /* once the window has passed, crashes restart again (three of them), and the fourth gives up again */
    s_run(&w, 5000);
    for (int k = 0; k < 3; k++) {
        starts = w.start_actions;
        s_exit(&w, &b, "a", "boom");
        assert_int_equal(w.start_actions, starts + 1);
        b = running_pid(&w, 0, idb);
        s_run(&w, 1000);
    }
    s_exit(&w, &b, "a", "boom");
    assert_null(s_child(&w, 0, idb));
    assert_int_equal(s_stat(&w, 0, "given_up"), 2);

    /* max_restarts 0: any crash gives up */
    set_option_n(&w, 0, "max_restarts", 0);
    uint64_t idc;
    hc_pid c = start_ok(&w, 0, "permanent", 3, 3, &idc);
    s_run(&w, 60000);
    s_exit(&w, &c, "a", "boom");
    assert_null(s_child(&w, 0, idc));
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* max_restarts larger than the core's memory of recent restarts still counts every restart. */
static void test_intensity_many(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    s_init(&w, 1);
    set_option_n(&w, 0, "max_restarts", 100);
    set_option_n(&w, 0, "max_seconds", 3600);
    uint64_t id;
    hc_pid a = start_ok(&w, 0, "permanent", 1, 1, &id);
    for (int k = 0; k < 100; k++) {
        s_exit(&w, &a, "a", "boom");
        a = running_pid(&w, 0, id);
        s_run(&w, 10);
    }
    s_exit(&w, &a, "a", "boom"); /* the 101st within the hour */
    if (s_child(&w, 0, id))
        fail_msg("restart 101 of max_restarts 100 within max_seconds was not refused");
    s_check(&w);
    s_free(&w);
    (void)state;
}

/* ------------------------------------------------------------------ 4. start on another replica */

static void test_start_on_other_replica(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    cluster(&w, 2);
    int both[] = {0, 1};
    uint64_t h1 = s_hash_for(both, 2, 1), h0 = s_hash_for(both, 2, 0);
    size_t peer_msgs = w.peer_sup_msgs;

    uint64_t id;
    hc_pid pid = start_ok(&w, 0, "permanent", h1, 11, &id); /* asserts the map showed it before the reply */
    assert_int_equal(pid.node, s_node(1));
    assert_int_equal(w.peer_sup_msgs, peer_msgs + 2); /* sup_start there, sup_started back */
    assert_int_equal(s_worker_of(&w, &pid)->rep, 1);
    assert_non_null(s_monitor_of(&w, 1, &pid));
    assert_null(s_monitor_of(&w, 0, &pid)); /* the replica that runs a worker watches it, nobody else */
    expect_record(&w, 0, id, "permanent", h1, 11, 1, &pid);
    expect_record(&w, 1, id, "permanent", h1, 11, 1, &pid);
    s_run(&w, 1000);
    expect_record(&w, 0, id, "permanent", h1, 11, 1, &pid);
    expect_record(&w, 1, id, "permanent", h1, 11, 1, &pid);

    /* a child whose hash the ring gives replica 0 stays there, through either replica */
    uint64_t id0;
    hc_pid pid0 = start_ok(&w, 1, "permanent", h0, 12, &id0);
    assert_int_equal(pid0.node, s_node(0));
    s_run(&w, 1000);
    expect_record(&w, 0, id0, "permanent", h0, 12, 0, &pid0);

    /* which_children and count_children from either replica's state */
    hc_pid from = caller();
    size_t n = 0;
    const uint8_t *r = s_req(&w, 1, &from, &n, "a", "count_children");
    s_expect(r, n, "mauauauau", 4u, "active", (uint64_t)2, "specs", (uint64_t)2, "supervisors", (uint64_t)0, "workers",
             (uint64_t)2);

    /* a crash on replica 1 is restarted there, and replica 0 sees the new pid */
    s_exit(&w, &pid, "a", "boom");
    hc_pid pid2 = running_pid(&w, 1, id);
    assert_int_equal(pid2.node, s_node(1));
    s_run(&w, 1000);
    expect_record(&w, 0, id, "permanent", h1, 11, 1, &pid2);

    /* terminate_child through replica 0: replica 1 stops it, the record goes everywhere */
    r = s_req(&w, 0, &from, &n, "tap", 2u, "terminate_child", &pid2);
    s_expect(r, n, "a", "ok");
    assert_false(s_worker_of(&w, &pid2)->alive);
    s_run(&w, 1000);
    assert_null(s_child(&w, 0, id));
    assert_null(s_child(&w, 1, id));
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* ------------------------------------------------------------------ 5. a replica dies */

static void test_replica_dies(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    cluster(&w, 2);
    int both[] = {0, 1};
    uint64_t h1 = s_hash_for(both, 2, 1), h0 = s_hash_for(both, 2, 0);
    uint64_t idp, idt, idx, id0;
    hc_pid p = start_ok(&w, 0, "permanent", h1, 1, &idp);
    hc_pid t = start_ok(&w, 0, "transient", h1, 2, &idt);
    hc_pid x = start_ok(&w, 0, "temporary", h1, 3, &idx);
    hc_pid c0 = start_ok(&w, 0, "permanent", h0, 4, &id0);
    assert_int_equal(p.node, s_node(1));
    assert_int_equal(t.node, s_node(1));
    assert_int_equal(x.node, s_node(1));
    assert_int_equal(c0.node, s_node(0));
    s_run(&w, 1000);
    hc_pid self1 = s_self(1);
    assert_non_null(s_monitor_of(&w, 0, &self1)); /* replica 0 watches replica 1 */

    s_kill(&w, 1); /* replica 1's node goes: replica 0's monitor fires with noconnection */
    expect_replica_status(&w, 0, 1, "dead");
    /* permanent and transient children come back on replica 0 with the same Id; the temporary one goes */
    hc_pid p2 = running_pid(&w, 0, idp), t2 = running_pid(&w, 0, idt);
    assert_int_equal(p2.node, s_node(0));
    assert_int_equal(t2.node, s_node(0));
    expect_record(&w, 0, idp, "permanent", h1, 1, 0, &p2);
    expect_record(&w, 0, idt, "transient", h1, 2, 0, &t2);
    assert_null(s_child(&w, 0, idx));
    expect_record(&w, 0, id0, "permanent", h0, 4, 0, &c0); /* untouched */
    assert_int_equal(s_stat(&w, 0, "taken_over"), 2);
    assert_int_equal(s_child_count(&w, 0), 3);
    s_run(&w, 2000);
    assert_int_equal(s_alive_workers(&w, 0), 3);
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* ------------------------------------------------------------------ 6. graceful shutdown */

static void test_graceful_shutdown(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    cluster(&w, 2);
    int both[] = {0, 1};
    uint64_t h1 = s_hash_for(both, 2, 1), h0 = s_hash_for(both, 2, 0);
    uint64_t idp, idt, idx, id1;
    hc_pid p = start_ok(&w, 0, "permanent", h0, 1, &idp);
    hc_pid t = start_ok(&w, 0, "transient", h0, 2, &idt);
    hc_pid x = start_ok(&w, 0, "temporary", h0, 3, &idx);
    hc_pid c1 = start_ok(&w, 0, "permanent", h1, 4, &id1);
    assert_int_equal(p.node, s_node(0));
    s_run(&w, 1000);

    hc_buf sd = {0};
    hc_enc_atom_cstr(&sd, "shutdown");
    assert_int_equal(S_OPS->local(w.r[0].core, sd.data, sd.len, w.now), HC_OK);
    hc_buf_free(&sd);
    s_pump(&w, 0);
    /* replica 0 marks itself shutting_down, stops its workers (reason shutdown) and relinquishes their records */
    expect_replica_status(&w, 0, 0, "shutting_down");
    const hc_pid *mine[] = {&p, &t, &x};
    for (int k = 0; k < 3; k++) {
        s_worker *wk = s_worker_of(&w, mine[k]);
        assert_false(wk->alive);
        assert_int_equal(wk->stops, 1);
        s_expect(wk->stop_reason, wk->stop_len, "a", "shutdown");
    }
    expect_relinquished(&w, 0, idp, "permanent", h0, 1);
    expect_relinquished(&w, 0, idt, "transient", h0, 2);
    expect_relinquished(&w, 0, idx, "temporary", h0, 3);
    /* no new children here */
    size_t n = 0;
    const uint8_t *r = start_c(&w, 0, "permanent", h0, "echo", 9, &n);
    s_expect(r, n, "tataB", 2u, "error", 2u, "shutting_down", "this node is shutting down.");

    /* replica 1 adopts every one of them (they did not fail: temporary too), same Id */
    s_run(&w, 2000);
    expect_replica_status(&w, 1, 0, "shutting_down");
    hc_pid p2 = running_pid(&w, 1, idp), t2 = running_pid(&w, 1, idt), x2 = running_pid(&w, 1, idx);
    assert_int_equal(p2.node, s_node(1));
    assert_int_equal(t2.node, s_node(1));
    assert_int_equal(x2.node, s_node(1));
    for (int i = 0; i < 2; i++) {
        expect_record(&w, i, idp, "permanent", h0, 1, 1, &p2);
        expect_record(&w, i, idt, "transient", h0, 2, 1, &t2);
        expect_record(&w, i, idx, "temporary", h0, 3, 1, &x2);
        expect_record(&w, i, id1, "permanent", h1, 4, 1, &c1);
    }
    assert_int_equal(s_alive_workers(&w, 0), 0);
    assert_int_equal(s_alive_workers(&w, 1), 4);
    assert_true(hc_supervisor_core_flushed(w.r[0].core));
    /* new children go to replica 1 even when the ring would say replica 0 */
    uint64_t idn;
    hc_pid pn = start_ok(&w, 1, "permanent", h0, 5, &idn);
    assert_int_equal(pn.node, s_node(1));
    s_run(&w, 1000);
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* ------------------------------------------------------------------ 7. a BEAM member */

/* Message k is {'$hordec_sup', start, ReplicaPid, Op, Id, Spec} from its replica: Op, Id and Spec. */
static void start_msg_parts(s_world *w, size_t k, uint64_t *op, uint64_t *id, hc_span *spec)
{
    const uint8_t *m = w->sent[k].data;
    size_t len = w->sent[k].len, x = 0;
    uint32_t a;
    hc_pid rp;
    assert_int_equal(hc_dec_tuple_header(m, len, &x, &a), HC_OK);
    assert_int_equal(a, 6);
    assert_true(hc_dec_is_atom(m, len, &x, "$hordec_sup"));
    assert_true(hc_dec_is_atom(m, len, &x, "start"));
    assert_int_equal(hc_dec_pid(m, len, &x, &rp), HC_OK);
    assert_true(hc_pid_eq(&rp, &w->r[w->sent[k].by].self));
    assert_int_equal(hc_dec_ulong(m, len, &x, op), HC_OK);
    assert_int_equal(hc_dec_ulong(m, len, &x, id), HC_OK);
    assert_int_equal(hc_dec_term(m, len, &x, spec), HC_OK);
    assert_int_equal(x, len);
}

/* Message k as a list of start requests: {'$hordec_sup', start, ReplicaPid, Op, Id, Spec} gives one,
 * {'$hordec_sup', starts, ReplicaPid, [{Op, Id, Spec}]} (a takeover's burst) gives each. Returns how many (at most
 * max) and whether it was a `starts`. */
static size_t start_items(s_world *w, size_t k, uint64_t *ops, uint64_t *ids, hc_span *specs, size_t max, bool *batch)
{
    const uint8_t *m = w->sent[k].data;
    size_t len = w->sent[k].len, x = 0;
    uint32_t a;
    assert_int_equal(hc_dec_tuple_header(m, len, &x, &a), HC_OK);
    *batch = a == 4;
    if (!*batch) {
        start_msg_parts(w, k, &ops[0], &ids[0], &specs[0]);
        return 1;
    }
    hc_pid rp;
    hc_iter it;
    hc_span t;
    assert_true(hc_dec_is_atom(m, len, &x, "$hordec_sup"));
    assert_true(hc_dec_is_atom(m, len, &x, "starts"));
    assert_int_equal(hc_dec_pid(m, len, &x, &rp), HC_OK);
    assert_true(hc_pid_eq(&rp, &w->r[w->sent[k].by].self));
    assert_int_equal(hc_iter_list(&it, m, len, &x), HC_OK);
    assert_int_equal(x, len);
    size_t n = 0;
    while (hc_iter_next(&it, &t)) {
        assert_true(n < max);
        size_t j = 0;
        assert_int_equal(hc_dec_tuple_header(t.p, t.len, &j, &a), HC_OK);
        assert_int_equal(a, 3);
        assert_int_equal(hc_dec_ulong(t.p, t.len, &j, &ops[n]), HC_OK);
        assert_int_equal(hc_dec_ulong(t.p, t.len, &j, &ids[n]), HC_OK);
        assert_int_equal(hc_dec_term(t.p, t.len, &j, &specs[n]), HC_OK);
        assert_int_equal(j, t.len);
        n++;
    }
    return n;
}

/* The next {'$hordec_sup', start, ReplicaPid, Op, Id, Spec} sent to `client` after *cursor; Spec must be `spec`. */
static void next_start_msg(s_world *w, const hc_pid *client, size_t *cursor, const hc_buf *spec, uint64_t *op,
                           uint64_t *id)
{
    long k = s_next_sent(w, client, cursor);
    assert_true(k >= 0);
    hc_span sp;
    start_msg_parts(w, (size_t)k, op, id, &sp);
    assert_true(s_equal(sp.p, sp.len, spec));
}

/* The client answers a start: {started, Op, Id, {ok, ChildPid}} as a call to the replica. */
static void started(s_world *w, int i, const hc_pid *client, uint64_t op, uint64_t id, const hc_pid *child)
{
    size_t n = 0;
    const uint8_t *r = s_req(w, i, client, &n, "tauutap", 4u, "started", op, id, 2u, "ok", child);
    s_expect(r, n, "a", "ok");
}

/* {beam, Restart, Hash, #{id => Name, start => {'Elixir.W', start_link, [Arg]}}} */
static void beam_spec(hc_buf *b, const char *restart, uint64_t hash, const char *name, int arg)
{
    s_term(b, "taaumaaataalin", 4u, "beam", restart, hash, 2u, "id", name, "start", 3u, "Elixir.W", "start_link", 1u,
           arg);
}

/* The Body of a spec {Kind, Restart, Hash, Body}, as a view into it. */
static hc_buf body_of(const hc_buf *spec)
{
    size_t x = 0;
    uint32_t a;
    assert_int_equal(hc_dec_tuple_header(spec->data, spec->len, &x, &a), HC_OK);
    for (int k = 0; k < 3; k++)
        assert_int_equal(hc_dec_skip(spec->data, spec->len, &x), HC_OK);
    return (hc_buf){spec->data + x, spec->len - x, 0, 0};
}

static void test_beam_member(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    s_init(&w, 1);
    hc_pid client = s_bpid("b1@sim", 50), other = s_bpid("b2@sim", 51), from = caller(), self = s_self(0);
    hc_atom b1 = hc_atom_intern_cstr("b1@sim");
    size_t n = 0;
    const uint8_t *r;

    r = s_req(&w, 0, &client, &n, "tapmaan", 4u, "attach", &client, 1u, "auto", "true");
    s_expect(r, n, "tamapataa", 2u, "ok", 2u, "replica", &self, "member", 2u, "sup", "b1@sim");
    expect_beam_status(&w, 0, b1, "alive", &client, 0);
    s_kv *mem = member_entry(&w, 0, "member", b1);
    assert_non_null(mem);
    s_expect(mem->v, mem->vl, "a", "auto");
    assert_non_null(s_monitor_of(&w, 0, &client));
    r = s_req(&w, 0, &from, &n, "a", "members");
    s_expect(r, n, "ltaaMn", 2u, 2u, "sup", "b1@sim", 0); /* sorted: b1@sim before h0@sim */

    /* start_child of a BEAM spec: sent to the client; the caller waits for the client's answer */
    hc_buf spec = {0}, req = {0};
    beam_spec(&spec, "permanent", 77, "w1", 1);
    s_term(&req, "tab", 2u, "start_child", &spec);
    size_t cursor = 0;
    uint64_t tok = s_send(&w, 0, &from, &req), op, id;
    assert_null(s_reply(&w, tok, &n));
    next_start_msg(&w, &client, &cursor, &spec, &op, &id);
    assert_null(s_child(&w, 0, id));
    hc_pid c1 = s_bpid("b1@sim", 60);
    started(&w, 0, &client, op, id, &c1);
    r = s_reply(&w, tok, &n);
    assert_non_null(r);
    s_expect(r, n, "tap", 2u, "ok", &c1);
    assert_true(s_reply_rec(&w, tok)->shown);
    s_kv *rec = s_child(&w, 0, id);
    assert_non_null(rec);
    hc_buf body = body_of(&spec);
    s_expect(rec->v, rec->vl, "taaubtaap", 6u, "beam", "permanent", (uint64_t)77, &body, 2u, "sup", "b1@sim", &c1);
    r = s_req(&w, 0, &from, &n, "a", "which_children");
    s_expect(r, n, "ltapalann", 1u, 4u, "undefined", &c1, "worker", 1u, "Elixir.W");
    /* a second answer to an op already answered changes nothing */
    size_t keys = hc_crdt_size(hc_supervisor_core_engine(w.r[0].core));
    hc_pid c1b = s_bpid("b1@sim", 69);
    started(&w, 0, &client, op, id, &c1b);
    assert_int_equal(s_child_by_pid(&w, 0, &c1), id);
    assert_int_equal(hc_crdt_size(hc_supervisor_core_engine(w.r[0].core)), keys);

    /* child_restarted from the client rewrites the pid; from another client it is ignored */
    hc_pid c2 = s_bpid("b1@sim", 61), c3 = s_bpid("b2@sim", 62);
    r = s_req(&w, 0, &client, &n, "tapup", 4u, "child_restarted", &client, id, &c2);
    s_expect(r, n, "a", "ok");
    assert_int_equal(s_child_by_pid(&w, 0, &c2), id);
    r = s_req(&w, 0, &other, &n, "tapup", 4u, "child_restarted", &other, id, &c3);
    s_expect(r, n, "a", "ok");
    assert_int_equal(s_child_by_pid(&w, 0, &c2), id);
    r = s_req(&w, 0, &other, &n, "tapua", 4u, "child_exited", &other, id, "delete");
    s_expect(r, n, "a", "ok");
    assert_int_equal(s_child_by_pid(&w, 0, &c2), id);

    /* child_exited relinquish: the record loses its member and is placed again: the same client, same Id */
    r = s_req(&w, 0, &client, &n, "tapua", 4u, "child_exited", &client, id, "relinquish");
    s_expect(r, n, "a", "ok");
    uint64_t op2, id2;
    next_start_msg(&w, &client, &cursor, &spec, &op2, &id2);
    assert_int_equal(id2, id);
    assert_int_not_equal(op2, op);
    hc_pid c4 = s_bpid("b1@sim", 63);
    started(&w, 0, &client, op2, id, &c4);
    assert_int_equal(s_child_by_pid(&w, 0, &c4), id);
    /* child_exited delete: gone */
    r = s_req(&w, 0, &client, &n, "tapua", 4u, "child_exited", &client, id, "delete");
    s_expect(r, n, "a", "ok");
    assert_null(s_child(&w, 0, id));
    assert_int_equal(s_child_count(&w, 0), 0);

    /* re-attach with Owned: the owned record stays; one the client does not name is relinquished (and placed
     * again), a temporary one goes */
    hc_buf spec_q = {0}, spec_z = {0}, spec_k = {0};
    beam_spec(&spec_q, "permanent", 78, "q", 2);
    beam_spec(&spec_z, "temporary", 79, "z", 3);
    beam_spec(&spec_k, "transient", 80, "k", 4);
    const hc_buf *specs[] = {&spec_q, &spec_z, &spec_k};
    uint64_t ids[3];
    hc_pid pids[3];
    for (int k = 0; k < 3; k++) {
        hc_buf rq = {0};
        s_term(&rq, "tab", 2u, "start_child", specs[k]);
        uint64_t t = s_send(&w, 0, &from, &rq), o;
        hc_buf_free(&rq);
        next_start_msg(&w, &client, &cursor, specs[k], &o, &ids[k]);
        pids[k] = s_bpid("b1@sim", 70 + (uint32_t)k);
        started(&w, 0, &client, o, ids[k], &pids[k]);
        r = s_reply(&w, t, &n);
        assert_non_null(r);
        s_expect(r, n, "tap", 2u, "ok", &pids[k]);
    }
    /* Owned = [{IdK, beam, transient, 80, Body, PidK}] */
    hc_buf owned = {0};
    hc_enc_list_header(&owned, 1);
    hc_enc_tuple_header(&owned, 6);
    hc_enc_ulong(&owned, ids[2]);
    hc_buf_append(&owned, spec_k.data + 2, spec_k.len - 2); /* Kind, Restart, Hash, Body */
    hc_enc_pid(&owned, &pids[2]);
    hc_enc_nil(&owned);
    r = s_req(&w, 0, &client, &n, "tapmb", 4u, "attach", &client, 0u, &owned);
    s_expect(r, n, "tamapataa", 2u, "ok", 2u, "replica", &self, "member", 2u, "sup", "b1@sim");
    assert_int_equal(s_child_by_pid(&w, 0, &pids[2]), ids[2]); /* owned: kept */
    assert_null(s_child(&w, 0, ids[1]));                       /* temporary: deleted */
    hc_pid none;
    assert_non_null(s_child(&w, 0, ids[0]));
    assert_false(s_child_pid(&w, 0, ids[0], &none)); /* relinquished, being started again */
    uint64_t op3, id3;
    next_start_msg(&w, &client, &cursor, &spec_q, &op3, &id3);
    assert_int_equal(id3, ids[0]);
    hc_pid q2 = s_bpid("b1@sim", 80);
    started(&w, 0, &client, op3, id3, &q2);
    assert_int_equal(s_child_by_pid(&w, 0, &q2), ids[0]);

    /* the client dies while a start is in flight: the caller is told, the member is dead (and, auto, leaves) */
    uint64_t t = s_send(&w, 0, &from, &req), o5, id5;
    next_start_msg(&w, &client, &cursor, &spec, &o5, &id5);
    s_exit(&w, &client, "a", "noconnection");
    r = s_reply(&w, t, &n);
    assert_non_null(r);
    expect_dead(r, n);
    expect_beam_status(&w, 0, b1, "dead", &client, 0);
    expect_member_removed(&w, 0, b1);
    /* its children wait for a BEAM member (none is left): records stay, nothing is sent */
    s_run(&w, 1000);
    assert_non_null(s_child(&w, 0, ids[0]));
    assert_non_null(s_child(&w, 0, ids[2]));
    r = start_c(&w, 0, "permanent", 1, "echo", 1, &n); /* C children still run here */
    ok_pid(r, n);

    hc_buf_free(&spec);
    hc_buf_free(&req);
    hc_buf_free(&spec_q);
    hc_buf_free(&spec_z);
    hc_buf_free(&spec_k);
    hc_buf_free(&owned);
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* ------------------------------------------------------------------ 8. duplicates */

/* A partition: replica 1 sees replica 0 die and takes its child over; after the heal the record (replica 1's,
 * the later write) decides, and replica 0 stops its copy. */
static void test_duplicate_after_partition(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    cluster(&w, 2);
    int both[] = {0, 1};
    uint64_t h0 = s_hash_for(both, 2, 0);
    uint64_t id;
    hc_pid p = start_ok(&w, 0, "permanent", h0, 1, &id);
    assert_int_equal(p.node, s_node(0));
    s_run(&w, 1000);
    expect_record(&w, 1, id, "permanent", h0, 1, 0, &p);

    s_partition(&w, 0, 1, true);
    hc_pid self0 = s_self(0);
    hc_buf nc = {0};
    hc_enc_atom_cstr(&nc, "noconnection");
    s_mon *m = s_monitor_of(&w, 1, &self0);
    assert_non_null(m);
    s_fire(&w, m, &nc);
    hc_buf_free(&nc);
    expect_replica_status(&w, 1, 0, "dead");
    hc_pid p1 = running_pid(&w, 1, id);
    assert_int_equal(p1.node, s_node(1));
    assert_true(s_worker_of(&w, &p)->alive); /* both run it while the partition lasts */
    s_run(&w, 1000);
    assert_true(s_worker_of(&w, &p)->alive);

    s_partition(&w, 0, 1, false);
    s_run(&w, 5000);
    /* one copy left: replica 1's; replica 0 stopped its own (and is alive again everywhere) */
    assert_false(s_worker_of(&w, &p)->alive);
    assert_int_equal(s_worker_of(&w, &p)->stops, 1);
    assert_true(s_worker_of(&w, &p1)->alive);
    for (int i = 0; i < 2; i++) {
        expect_record(&w, i, id, "permanent", h0, 1, 1, &p1);
        expect_replica_status(&w, i, 0, "alive");
        expect_replica_status(&w, i, 1, "alive");
    }
    assert_int_equal(s_stat(&w, 0, "duplicates_stopped"), 1);
    assert_int_equal(s_alive_workers(&w, 0) + s_alive_workers(&w, 1), 1);
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* Both sides of a partition saw the other die (noconnection) and one took over the other's child. After the heal
 * (the node comes back, then the data) the record decides: the copy it names survives, the other stops, and the
 * side whose own monitor had fired checks that death again instead of acting on it — it used to restart the
 * child the record now gives to the "dead" member, a third copy. */
static void test_partition_heal_keeps_a_split_copy(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    cluster(&w, 2);
    int both[] = {0, 1};
    uint64_t h0 = s_hash_for(both, 2, 0);
    uint64_t id;
    hc_pid p = start_ok(&w, 0, "permanent", h0, 1, &id);
    assert_int_equal(p.node, s_node(0));
    s_run(&w, 1000);

    s_partition(&w, 0, 1, true);
    hc_buf nc = {0};
    hc_enc_atom_cstr(&nc, "noconnection");
    for (int i = 0; i < 2; i++) {
        hc_pid other = s_self(1 - i);
        s_mon *m = s_monitor_of(&w, i, &other);
        assert_non_null(m);
        s_fire(&w, m, &nc);
    }
    hc_buf_free(&nc);
    expect_replica_status(&w, 1, 0, "dead");
    expect_replica_status(&w, 0, 1, "dead");
    hc_pid p1 = running_pid(&w, 1, id);
    assert_int_equal(p1.node, s_node(1));
    s_run(&w, 1000);
    assert_true(s_worker_of(&w, &p)->alive); /* both run it while the partition lasts */

    s_partition(&w, 0, 1, false);
    for (int i = 0; i < 2; i++) {
        S_OPS->node_up(w.r[i].core, s_node(1 - i), w.now);
        s_pump(&w, i);
    }
    s_run(&w, 5000);
    assert_false(s_worker_of(&w, &p)->alive);
    assert_true(s_worker_of(&w, &p1)->alive);
    assert_int_equal(s_alive_workers(&w, 0) + s_alive_workers(&w, 1), 1); /* no third copy */
    assert_int_equal(s_stat(&w, 0, "taken_over"), 0);
    for (int i = 0; i < 2; i++) {
        expect_record(&w, i, id, "permanent", h0, 1, 1, &p1);
        expect_replica_status(&w, i, 0, "alive");
        expect_replica_status(&w, i, 1, "alive");
    }
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* terminate_child answered on one side of a partition while the far side, which saw the child's member die,
 * takes the child over: the takeover is the newer write and comes back with the heal. The replica that answered
 * `ok` remembers the child and terminates that copy too (the chaos run found a failover racing a terminate). */
static void test_terminate_beats_concurrent_takeover(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    cluster(&w, 2);
    int both[] = {0, 1};
    uint64_t h0 = s_hash_for(both, 2, 0);
    uint64_t id;
    hc_pid p = start_ok(&w, 0, "permanent", h0, 1, &id);
    s_run(&w, 1000);

    s_partition(&w, 0, 1, true);
    hc_pid self0 = s_self(0);
    hc_buf nc = {0};
    hc_enc_atom_cstr(&nc, "noconnection");
    s_mon *m = s_monitor_of(&w, 1, &self0);
    assert_non_null(m);
    s_fire(&w, m, &nc);
    hc_buf_free(&nc);
    hc_pid p1 = running_pid(&w, 1, id); /* the far side took it over */
    assert_int_equal(p1.node, s_node(1));

    hc_pid from = caller();
    size_t n = 0;
    const uint8_t *r = s_req(&w, 0, &from, &n, "tap", 2u, "terminate_child", &p);
    s_expect(r, n, "a", "ok");
    assert_false(s_worker_of(&w, &p)->alive);
    assert_null(s_child(&w, 0, id));

    s_partition(&w, 0, 1, false);
    S_OPS->node_up(w.r[1].core, s_node(0), w.now);
    s_pump(&w, 1);
    s_run(&w, 5000);
    assert_false(s_worker_of(&w, &p1)->alive); /* terminated again */
    for (int i = 0; i < 2; i++) {
        assert_null(s_child(&w, i, id));
        assert_int_equal(s_alive_workers(&w, i), 0);
    }
    assert_int_equal(s_stat(&w, 0, "terminated_again"), 1);
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* The same race through the dead-member path: the child's member (replica 2) dies; replica 0, cut off from
 * replica 1, answers terminate_child by deleting the record while replica 1 restarts the child. */
static void test_terminate_of_dead_members_child_beats_takeover(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    cluster(&w, 3);
    int all[] = {0, 1, 2}, left[] = {0, 1};
    uint64_t h = 1;
    while (s_owner(all, 3, h) != 2 || s_owner(left, 2, h) != 1)
        h++;
    uint64_t id;
    hc_pid p = start_ok(&w, 0, "permanent", h, 1, &id);
    assert_int_equal(p.node, s_node(2));
    s_run(&w, 1000);

    s_partition(&w, 0, 1, true);
    s_kill(&w, 2);
    hc_pid p1 = running_pid(&w, 1, id);
    assert_int_equal(p1.node, s_node(1));

    hc_pid from = caller();
    size_t n = 0;
    const uint8_t *r = s_req(&w, 0, &from, &n, "tap", 2u, "terminate_child", &p);
    s_expect(r, n, "a", "ok");
    assert_null(s_child(&w, 0, id));

    s_partition(&w, 0, 1, false);
    s_run(&w, 5000);
    assert_false(s_worker_of(&w, &p1)->alive);
    for (int i = 0; i < 2; i++)
        assert_null(s_child(&w, i, id));
    assert_int_equal(s_stat(&w, 0, "terminated_again"), 1);
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* A peer rewrites the record of a worker replica 0 runs to name another member: replica 0 stops its worker. */
static void test_duplicate_rewritten_by_peer(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    cluster(&w, 2);
    int both[] = {0, 1};
    uint64_t h0 = s_hash_for(both, 2, 0);
    uint64_t id;
    hc_pid p = start_ok(&w, 0, "permanent", h0, 1, &id);
    s_run(&w, 1000);
    /* replica 1's engine gets a write naming a BEAM member nobody knows yet (not ours to judge) */
    hc_buf k = {0}, v = {0};
    hc_pid elsewhere = s_bpid("b9@sim", 9);
    s_term(&k, "tau", 2u, "child", id);
    s_term(&v, "taautBitaap", 6u, "c", "permanent", h0, 2u, "echo", 1, 2u, "sup", "b9@sim", &elsewhere);
    assert_int_equal(hc_crdt_put(hc_supervisor_core_engine(w.r[1].core), k.data, k.len, v.data, v.len, w.now), HC_OK);
    assert_int_equal(S_OPS->tick(w.r[1].core, w.now), HC_OK);
    s_pump(&w, 1);
    s_run(&w, 1000);
    s_worker *wk = s_worker_of(&w, &p);
    assert_false(wk->alive);
    assert_int_equal(wk->stops, 1);
    assert_null(s_monitor_of(&w, 0, &p));
    for (int i = 0; i < 2; i++) {
        s_kv *kv = s_child(&w, i, id);
        assert_non_null(kv);
        assert_true(s_equal(kv->v, kv->vl, &v));
    }
    /* deleted by a peer: the same */
    uint64_t id2;
    hc_pid p2 = start_ok(&w, 0, "permanent", h0, 2, &id2);
    s_run(&w, 1000);
    hc_buf_reset(&k);
    s_term(&k, "tau", 2u, "child", id2);
    assert_int_equal(hc_crdt_delete(hc_supervisor_core_engine(w.r[1].core), k.data, k.len, w.now), HC_OK);
    assert_int_equal(S_OPS->tick(w.r[1].core, w.now), HC_OK);
    s_run(&w, 1000);
    assert_false(s_worker_of(&w, &p2)->alive);
    assert_null(s_child(&w, 0, id2));
    assert_int_equal(s_stat(&w, 0, "duplicates_stopped"), 2);
    hc_buf_free(&k);
    hc_buf_free(&v);
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* ------------------------------------------------------------------ 9. quorum */

static void test_quorum(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    cluster(&w, 3);
    for (int i = 0; i < 3; i++)
        set_option_a(&w, i, "distribution", "quorum");
    hc_pid client = s_bpid("b1@sim", 50);
    size_t n = 0;
    const uint8_t *r = s_req(&w, 0, &client, &n, "tapmn", 4u, "attach", &client, 0u); /* not a listed member */
    assert_true(n > 0);
    int all[] = {0, 1, 2};
    uint64_t h0 = s_hash_for(all, 3, 0), h1 = s_hash_for(all, 3, 1);
    uint64_t ida, idb, idc;
    hc_pid a = start_ok(&w, 0, "permanent", h0, 1, &ida);
    hc_pid b = start_ok(&w, 0, "permanent", h0, 2, &idb);
    hc_pid c = start_ok(&w, 0, "permanent", h1, 3, &idc);
    assert_int_equal(a.node, s_node(0));
    assert_int_equal(c.node, s_node(1));
    s_run(&w, 1000);
    assert_int_equal(s_stat(&w, 0, "quorum"), 1);

    /* one of three dead: quorum holds, its child is taken over once the death has settled */
    s_kill(&w, 1);
    s_run(&w, SUP_QUORUM_SETTLE_MS / 2);
    assert_int_equal(s_stat(&w, 0, "taken_over") + s_stat(&w, 2, "taken_over"), 0);
    s_run(&w, SUP_QUORUM_SETTLE_MS);
    assert_int_equal(s_stat(&w, 0, "quorum"), 1);
    hc_pid c2 = running_pid(&w, 0, idc);
    assert_false(hc_pid_eq(&c, &c2));
    size_t nsent = w.nsent;

    /* two of three dead: no quorum; replica 0 stops its workers, the records stay, new children are refused */
    s_kill(&w, 2);
    assert_int_equal(s_stat(&w, 0, "quorum"), 0);
    assert_int_equal(s_alive_workers(&w, 0), 0);
    assert_false(s_worker_of(&w, &a)->alive);
    assert_false(s_worker_of(&w, &b)->alive);
    assert_int_equal(s_child_count(&w, 0), 3);
    r = start_c(&w, 0, "permanent", h0, "echo", 9, &n);
    s_expect(r, n, "taa", 2u, "error", "quorum_not_met");
    /* the attached client is told */
    size_t cur = nsent;
    long k = s_next_sent(&w, &client, &cur);
    assert_true(k >= 0);
    s_expect(w.sent[k].data, w.sent[k].len, "taa", 2u, "$hordec_sup", "quorum_lost");
    s_run(&w, 2000);
    assert_int_equal(s_alive_workers(&w, 0), 0);
    s_check(&w);

    /* back to uniform: replica 0 alone runs everything again, same Ids */
    set_option_a(&w, 0, "distribution", "uniform");
    s_run(&w, 1000);
    running_pid(&w, 0, ida);
    running_pid(&w, 0, idb);
    running_pid(&w, 0, idc);
    assert_int_equal(s_alive_workers(&w, 0), 3);
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);

    /* uniform with no alive C member (replica 0 not among the members) */
    s_init(&w, 1);
    int other[] = {2};
    set_members(&w, 0, other, 1);
    r = start_c(&w, 0, "permanent", 1, "echo", 1, &n);
    s_expect(r, n, "taa", 2u, "error", "no_alive_nodes");
    /* nor a BEAM member for a BEAM child */
    set_members(&w, 0, all, 1);
    hc_buf spec = {0};
    hc_pid from = caller();
    beam_spec(&spec, "permanent", 77, "w1", 1);
    r = s_req(&w, 0, &from, &n, "tab", 2u, "start_child", &spec);
    s_expect(r, n, "taa", 2u, "error", "no_alive_nodes");
    hc_buf_free(&spec);
    assert_int_equal(w.start_actions, 0);
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* A partition's connections fail one at a time. Replica 0 loses replica 1 first and still counts two of three,
 * then loses replica 2 within the settle time: it never acts on replica 1's death (it used to take its child
 * over, a write that won after the heal and restarted the child the majority had kept running). */
static void test_quorum_minority_does_not_act_on_first_losses(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    cluster(&w, 3);
    for (int i = 0; i < 3; i++)
        set_option_a(&w, i, "distribution", "quorum");
    int all[] = {0, 1, 2}, left[] = {0, 2};
    uint64_t h1 = 1; /* on replica 1; on replica 0 once replica 1 is gone */
    while (s_owner(all, 3, h1) != 1 || s_owner(left, 2, h1) != 0)
        h1++;
    uint64_t id;
    hc_pid c = start_ok(&w, 0, "permanent", h1, 3, &id);
    assert_int_equal(c.node, s_node(1));
    s_run(&w, 1000);

    hc_buf nc = {0};
    hc_enc_atom_cstr(&nc, "noconnection");
    s_partition(&w, 0, 1, true);
    hc_pid self1 = s_self(1), self2 = s_self(2), self0 = s_self(0);
    s_fire(&w, s_monitor_of(&w, 0, &self1), &nc);
    s_fire(&w, s_monitor_of(&w, 1, &self0), &nc);
    s_run(&w, SUP_QUORUM_SETTLE_MS / 4);
    assert_int_equal(s_stat(&w, 0, "quorum"), 1); /* two of three, for now */
    s_partition(&w, 0, 2, true);
    s_fire(&w, s_monitor_of(&w, 0, &self2), &nc);
    s_fire(&w, s_monitor_of(&w, 2, &self0), &nc);
    hc_buf_free(&nc);
    assert_int_equal(s_stat(&w, 0, "quorum"), 0);
    s_run(&w, 3 * SUP_QUORUM_SETTLE_MS);
    assert_int_equal(s_stat(&w, 0, "taken_over"), 0);
    assert_true(s_worker_of(&w, &c)->alive); /* the majority kept it running */

    s_partition(&w, 0, 1, false);
    s_partition(&w, 0, 2, false);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (i != j)
                S_OPS->node_up(w.r[i].core, s_node(j), w.now);
    for (int i = 0; i < 3; i++)
        s_pump(&w, i);
    s_run(&w, 5000);
    assert_true(s_worker_of(&w, &c)->alive); /* not restarted by the heal */
    for (int i = 0; i < 3; i++) {
        expect_record(&w, i, id, "permanent", h1, 3, 1, &c);
        assert_int_equal(s_stat(&w, i, "taken_over"), 0);
    }
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* ------------------------------------------------------------------ 10. bad input */

typedef struct fingerprint {
    uint64_t root;
    size_t mirror, sent, q, starts, stops, mons, workers;
} fingerprint;

static fingerprint fp_of(s_world *w, int i)
{
    return (fingerprint){hc_crdt_root_hash(hc_supervisor_core_engine(w->r[i].core)),
                         w->r[i].nmirror,
                         w->nsent,
                         w->nq,
                         w->start_actions,
                         w->stop_actions,
                         w->nmons,
                         w->nworkers};
}

static void same_fp(const fingerprint *a, const fingerprint *b, const char *what)
{
    if (memcmp(a, b, sizeof *a))
        fail_msg("%s changed something", what);
}

static void test_bad_requests(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    s_init(&w, 1);
    hc_pid client = s_bpid("b1@sim", 50), from = caller(), own = s_bpid("h0@sim", 77);
    size_t n = 0;
    const uint8_t *r = s_req(&w, 0, &client, &n, "tapmaan", 4u, "attach", &client, 1u, "auto", "true");
    uint64_t id;
    hc_pid pid = start_ok(&w, 0, "permanent", 5, 5, &id);
    s_run(&w, 1000);
    (void)r;

    hc_buf big = {0}; /* 2^64: an integer no uint64 holds */
    const uint8_t two64[] = {110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    hc_buf_append(&big, two64, sizeof two64);
    hc_buf deep = {0}; /* nesting deeper than any stored term may be */
    for (int k = 0; k < 300; k++)
        hc_enc_list_header(&deep, 1);
    hc_enc_nil(&deep);
    for (int k = 0; k < 300; k++)
        hc_enc_nil(&deep);

    struct {
        const char *what;
        hc_buf b;
    } bad[64];
    size_t nb = 0;
#define BAD(w_, ...)                                                                                                   \
    do {                                                                                                               \
        bad[nb].what = w_;                                                                                             \
        bad[nb].b = (hc_buf){0};                                                                                       \
        s_term(&bad[nb].b, __VA_ARGS__);                                                                               \
        nb++;                                                                                                          \
    } while (0)
    BAD("bare start_child", "a", "start_child");
    BAD("{start_child}", "ta", 1u, "start_child");
    BAD("{start_child, junk}", "tai", 2u, "start_child", 5);
    BAD("{start_child, Spec, extra}", "tataautBia", 3u, "start_child", 4u, "c", "permanent", (uint64_t)1, 2u, "echo", 1,
        "extra");
    BAD("3-tuple spec", "tataau", 2u, "start_child", 3u, "c", "permanent", (uint64_t)1);
    BAD("bad kind", "tataautBi", 2u, "start_child", 4u, "x", "permanent", (uint64_t)1, 2u, "echo", 1);
    BAD("bad restart", "tataautBi", 2u, "start_child", 4u, "c", "forever", (uint64_t)1, 2u, "echo", 1);
    BAD("negative hash", "tataaitBi", 2u, "start_child", 4u, "c", "permanent", -1, 2u, "echo", 1);
    BAD("huge hash", "tataabtBi", 2u, "start_child", 4u, "c", "permanent", &big, 2u, "echo", 1);
    BAD("empty type", "tataautBi", 2u, "start_child", 4u, "c", "permanent", (uint64_t)1, 2u, "", 1);
    BAD("atom type", "tataautai", 2u, "start_child", 4u, "c", "permanent", (uint64_t)1, 2u, "echo", 1);
    BAD("1-tuple body", "tataautB", 2u, "start_child", 4u, "c", "permanent", (uint64_t)1, 1u, "echo");
    BAD("too deep body", "tataaub", 2u, "start_child", 4u, "beam", "permanent", (uint64_t)1, &deep);
    BAD("{terminate_child, notapid}", "taa", 2u, "terminate_child", "notapid");
    BAD("{terminate_child, Pid, x}", "tapa", 3u, "terminate_child", &pid, "x");
    BAD("child_restarted bad client", "taaup", 4u, "child_restarted", "x", id, &pid);
    BAD("child_restarted Id 0", "tapup", 4u, "child_restarted", &client, (uint64_t)0, &pid);
    BAD("child_restarted Id 2^63", "tapup", 4u, "child_restarted", &client, 1ull << 63, &pid);
    BAD("child_restarted Id 2^64", "tapbp", 4u, "child_restarted", &client, &big, &pid);
    BAD("child_restarted bad pid", "tapua", 4u, "child_restarted", &client, id, "x");
    BAD("child_exited bad how", "tapua", 4u, "child_exited", &client, id, "maybe");
    BAD("child_exited negative Id", "tapia", 4u, "child_exited", &client, -1, "delete");
    BAD("child_exited 3 args", "tapu", 3u, "child_exited", &client, id);
    BAD("attach from own node", "tapmn", 4u, "attach", &own, 0u);
    BAD("attach opts not a map", "tapnn", 4u, "attach", &client);
    BAD("attach bad distribution", "tapmaan", 4u, "attach", &client, 1u, "distribution", "nope");
    BAD("attach bad auto", "tapmaan", 4u, "attach", &client, 1u, "auto", "maybe");
    BAD("attach owned junk", "tapmlin", 4u, "attach", &client, 0u, 1u, 5);
    BAD("attach owned not a list", "tapma", 4u, "attach", &client, 0u, "x");
    BAD("attach owned Id 0", "tapmltuaaumpn", 4u, "attach", &client, 0u, 1u, 6u, (uint64_t)0, "beam", "permanent",
        (uint64_t)1, 0u, &client);
    BAD("attach owned bad pid", "tapmltuaauman", 4u, "attach", &client, 0u, 1u, 6u, (uint64_t)9, "beam", "permanent",
        (uint64_t)1, 0u, "x");
    BAD("attach owned bad C body", "tapmltuaauapn", 4u, "attach", &client, 0u, 1u, 6u, (uint64_t)9, "c", "permanent",
        (uint64_t)1, "notatuple", &client);
    BAD("attach 2 args", "tap", 2u, "attach", &client);
    BAD("set_options not a map", "tan", 2u, "set_options");
    BAD("set_options negative", "tamai", 2u, "set_options", 1u, "max_restarts", -1);
    BAD("set_options bad max_children", "tamaa", 2u, "set_options", 1u, "max_children", "lots");
    BAD("set_options bad redistribution", "tamaa", 2u, "set_options", 1u, "redistribution", "sometimes");
    BAD("set_options max_seconds 2^64", "tamab", 2u, "set_options", 1u, "max_seconds", &big);
    BAD("set_members junk", "talin", 2u, "set_members", 1u, 5);
    BAD("set_members not a list", "taa", 2u, "set_members", "x");
    BAD("set_members bad member", "taltaBn", 2u, "set_members", 1u, 2u, "sup", "h1@sim");
    BAD("set_status alive", "tapa", 3u, "set_status", &client, "alive");
    BAD("set_status bad pid", "taaa", 3u, "set_status", "x", "shutting_down");
    BAD("detach bad pid", "taa", 2u, "detach", "x");
    BAD("started Id 0", "tauuta", 4u, "started", (uint64_t)1, (uint64_t)0, 1u, "ignore");
    BAD("started bad op", "taauta", 4u, "started", "x", id, 1u, "ignore");
    BAD("terminated 2 args", "tauu", 3u, "terminated", (uint64_t)1, id);
    BAD("members with an argument", "tai", 2u, "members", 1);
    BAD("which_children with an argument", "tai", 2u, "which_children", 1);
    BAD("count_children tuple", "ta", 1u, "count_children");
    BAD("unknown atom", "a", "frobnicate");
    BAD("an integer", "i", 5);
    BAD("a pid", "p", &pid);
#undef BAD
    /* and bytes that are not one term */
    bad[nb].what = "truncated";
    bad[nb].b = (hc_buf){0};
    s_term(&bad[nb].b, "tataautBi", 2u, "start_child", 4u, "c", "permanent", (uint64_t)1, 2u, "echo", 1);
    bad[nb].b.len -= 1;
    nb++;
    bad[nb].what = "trailing bytes";
    bad[nb].b = (hc_buf){0};
    s_term(&bad[nb].b, "aa", "members", "members");
    nb++;
    assert_true(nb <= sizeof bad / sizeof bad[0]);

    /* every case runs (each is reported), then the test fails if any misbehaved */
    int failures = 0;
    hc_buf want = {0};
    s_term(&want, "taa", 2u, "error", "badarg");
    for (size_t k = 0; k < nb; k++) {
        fingerprint before = fp_of(&w, 0);
        hc_sup_options opt = ((sup_core *)w.r[0].core)->opt;
        uint64_t tok = s_send(&w, 0, &from, &bad[k].b);
        r = s_reply(&w, tok, &n);
        if (!r) {
            fprintf(stderr, "%s: no reply\n", bad[k].what);
            failures++;
        } else if (!s_equal(r, n, &want)) {
            s_dump(bad[k].what, r, n);
            fprintf(stderr, "%s: not {error, badarg}\n", bad[k].what);
            failures++;
        }
        s_run(&w, 100);
        fingerprint after = fp_of(&w, 0);
        if (memcmp(&before, &after, sizeof before) || memcmp(&opt, &((sup_core *)w.r[0].core)->opt, sizeof opt)) {
            fprintf(stderr, "%s: changed something\n", bad[k].what);
            failures++;
        }
        hc_buf_free(&bad[k].b);
    }
    hc_buf_free(&want);
    assert_int_equal(failures, 0);
    expect_record(&w, 0, id, "permanent", 5, 5, 0, &pid);
    hc_buf_free(&big);
    hc_buf_free(&deep);
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

static void test_bad_peer_messages(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    cluster(&w, 2);
    int both[] = {0, 1};
    uint64_t h0 = s_hash_for(both, 2, 0);
    uint64_t id;
    hc_pid pid = start_ok(&w, 0, "permanent", h0, 5, &id);
    s_run(&w, 1000);
    hc_buf big = {0};
    const uint8_t two64[] = {110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    hc_buf_append(&big, two64, sizeof two64);

    struct {
        const char *what;
        hc_buf b;
    } bad[32];
    size_t nb = 0;
#define BAD(w_, ...)                                                                                                   \
    do {                                                                                                               \
        bad[nb].what = w_;                                                                                             \
        bad[nb].b = (hc_buf){0};                                                                                       \
        s_term(&bad[nb].b, __VA_ARGS__);                                                                               \
        nb++;                                                                                                          \
    } while (0)
    BAD("sup_start junk spec", "tauui", 4u, "sup_start", (uint64_t)1, (uint64_t)2, 5);
    BAD("sup_start Id 0", "tauutaautBi", 4u, "sup_start", (uint64_t)1, (uint64_t)0, 4u, "c", "permanent", h0, 2u,
        "echo", 1);
    BAD("sup_start Id 2^63", "tauutaautBi", 4u, "sup_start", (uint64_t)1, 1ull << 63, 4u, "c", "permanent", h0, 2u,
        "echo", 1);
    BAD("sup_start op not an int", "taautaautBi", 4u, "sup_start", "x", (uint64_t)3, 4u, "c", "permanent", h0, 2u,
        "echo", 1);
    BAD("sup_start bad C body", "tauutaaua", 4u, "sup_start", (uint64_t)1, (uint64_t)3, 4u, "c", "permanent", h0, "x");
    BAD("sup_started bad op", "taauta", 4u, "sup_started", "x", id, 1u, "ignore");
    BAD("sup_started Id 2^64", "taubta", 4u, "sup_started", (uint64_t)1, &big, 1u, "ignore");
    BAD("sup_terminate bad Id", "taua", 3u, "sup_terminate", (uint64_t)1, "x");
    BAD("sup_terminated bad op", "taaua", 4u, "sup_terminated", "x", id, "ok");
#undef BAD
    for (size_t k = 0; k < nb; k++) {
        fingerprint before = fp_of(&w, 0);
        uint64_t ignored = s_stat(&w, 0, "ignored");
        int rc = S_OPS->receive(w.r[0].core, 2, bad[k].b.data, bad[k].b.len, w.now);
        if (rc == HC_OK)
            fail_msg("%s: accepted", bad[k].what);
        s_pump(&w, 0);
        if (s_stat(&w, 0, "ignored") != ignored + 1)
            fail_msg("%s: not counted", bad[k].what);
        s_run(&w, 100);
        fingerprint after = fp_of(&w, 0);
        same_fp(&before, &after, bad[k].what);
        hc_buf_free(&bad[k].b);
    }
    expect_record(&w, 0, id, "permanent", h0, 5, 0, &pid);
    assert_true(s_worker_of(&w, &pid)->alive);
    assert_int_equal(indexed_children(&w, 0), 1);
    hc_buf_free(&big);
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* ------------------------------------------------------------------ more of §4 and §5 */

/* A start whose member does not answer is answered {error, {node_dead_or_shutting_down, _}} after start_timeout;
 * a late answer still writes the record (the child runs, so it is supervised). */
static void test_start_timeout(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    s_init_timeout(&w, 2, 3000);
    int both[] = {0, 1};
    set_members(&w, 0, both, 2);
    s_run(&w, 2000);
    uint64_t h1 = s_hash_for(both, 2, 1);
    hc_pid from = caller();

    /* nothing reaches replica 1 */
    s_partition(&w, 0, 1, true);
    hc_buf req = {0};
    s_term(&req, "tataautBi", 2u, "start_child", 4u, "c", "permanent", h1, 2u, "echo", 1);
    uint64_t t0 = w.now.mono_ms, tok = s_send(&w, 0, &from, &req);
    size_t n = 0;
    const uint8_t *r;
    while (!(r = s_reply(&w, tok, &n)) && w.now.mono_ms - t0 < 20000)
        s_run(&w, 100);
    assert_non_null(r);
    uint64_t took = w.now.mono_ms - t0;
    if (took < 3000 || took > 3100)
        fail_msg("answered after %llu ms, start_timeout is 3000", (unsigned long long)took);
    expect_dead(r, n);
    assert_int_equal(s_child_count(&w, 0), 0);
    s_partition(&w, 0, 1, false);
    s_run(&w, 2000);
    assert_int_equal(s_child_count(&w, 0), 0);
    assert_int_equal(w.nworkers, 0);

    /* replica 1 starts it, but its answer (and its sync) is lost until after the timeout */
    w.cut[1][0] = true;
    t0 = w.now.mono_ms;
    tok = s_send(&w, 0, &from, &req);
    while (!(r = s_reply(&w, tok, &n)) && w.now.mono_ms - t0 < 20000)
        s_run(&w, 100);
    assert_non_null(r);
    expect_dead(r, n);
    assert_int_equal(w.nworkers, 1);
    assert_true(w.workers[0].alive);
    w.cut[1][0] = false;
    s_run(&w, 3000);
    uint64_t id = s_child_by_pid(&w, 0, &w.workers[0].pid);
    assert_int_not_equal(id, 0);
    expect_record(&w, 0, id, "permanent", h1, 1, 1, &w.workers[0].pid);
    assert_non_null(s_monitor_of(&w, 1, &w.workers[0].pid));
    s_run(&w, 70000); /* the late answer's op expires for good */
    assert_int_equal(indexed_children(&w, 0), 1);
    hc_buf_free(&req);
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* A replica restarted without its state (its node came back before anyone saw it go): the records that name it
 * are its orphans; it restarts the permanent ones with the same Id and deletes the temporary ones. */
static void test_restarted_replica(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    cluster(&w, 2);
    int both[] = {0, 1};
    uint64_t h1 = s_hash_for(both, 2, 1);
    uint64_t idp, idx;
    hc_pid p = start_ok(&w, 0, "permanent", h1, 1, &idp);
    start_ok(&w, 0, "temporary", h1, 2, &idx);
    s_run(&w, 1000);
    hc_pid old_self = w.r[1].self;
    s_stop(&w, 1);
    s_start(&w, 1);
    s_pump(&w, 1);
    assert_false(hc_pid_eq(&old_self, &w.r[1].self));
    s_run(&w, 3000);
    for (int i = 0; i < 2; i++)
        expect_replica_status(&w, i, 1, "alive");
    hc_pid p2 = running_pid(&w, 1, idp);
    assert_false(hc_pid_eq(&p, &p2));
    assert_int_equal(p2.node, s_node(1));
    s_run(&w, 1000);
    expect_record(&w, 0, idp, "permanent", h1, 1, 1, &p2);
    assert_null(s_child(&w, 0, idx));
    assert_null(s_child(&w, 1, idx));
    assert_non_null(s_monitor_of(&w, 0, &w.r[1].self)); /* replica 0 watches the new pid */
    assert_null(s_monitor_of(&w, 0, &old_self));
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* Active redistribution: when a replica joins, the children the ring now gives it are stopped with {shutdown,
 * process_redistribution}, relinquished and adopted by it; each child runs exactly once, where the ring says. */
static void test_active_redistribution(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    s_init(&w, 2);
    for (int i = 0; i < 2; i++)
        set_option_a(&w, i, "redistribution", "active");
    enum { N = 12 };
    uint64_t ids[N];
    hc_pid pids[N];
    for (int k = 0; k < N; k++) {
        pids[k] = start_ok(&w, 0, "permanent", (uint64_t)k + 1, k, &ids[k]);
        assert_int_equal(pids[k].node, s_node(0));
    }
    int both[] = {0, 1};
    set_members(&w, 0, both, 2);
    s_run(&w, 3000);
    int moved = 0;
    for (int k = 0; k < N; k++) {
        int on = s_owner(both, 2, (uint64_t)k + 1);
        hc_pid now = running_pid(&w, 0, ids[k]);
        assert_int_equal(now.node, s_node(on));
        expect_record(&w, 1, ids[k], "permanent", (uint64_t)k + 1, k, on, &now);
        s_worker *old = s_worker_of(&w, &pids[k]);
        if (on == 1) {
            moved++;
            assert_false(old->alive);
            s_expect(old->stop_reason, old->stop_len, "taa", 2u, "shutdown", "process_redistribution");
        } else {
            assert_true(hc_pid_eq(&now, &pids[k]));
        }
    }
    assert_true(moved > 0 && moved < N);
    assert_int_equal(s_alive_workers(&w, 0) + s_alive_workers(&w, 1), N);
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* max_children per member: a start past it is {error, max_children}. */
static void test_max_children(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    s_init(&w, 1);
    set_option_n(&w, 0, "max_children", 2);
    uint64_t id;
    start_ok(&w, 0, "permanent", 1, 1, &id);
    start_ok(&w, 0, "permanent", 2, 2, &id);
    size_t n = 0;
    const uint8_t *r = start_c(&w, 0, "permanent", 3, "echo", 3, &n);
    s_expect(r, n, "taa", 2u, "error", "max_children");
    assert_int_equal(w.nworkers, 2);
    assert_int_equal(s_child_count(&w, 0), 2);
    set_option_a(&w, 0, "max_children", "infinity");
    start_ok(&w, 0, "permanent", 3, 3, &id);
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* ... and 0 allows none, as Elixir's DynamicSupervisor (and the BEAM members of HordeC's) read it. */
static void test_max_children_zero(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    size_t n = 0;
    const uint8_t *r;
    s_init(&w, 1);
    set_option_n(&w, 0, "max_children", 0);
    r = start_c(&w, 0, "permanent", 1, "echo", 1, &n);
    s_expect(r, n, "taa", 2u, "error", "max_children");
    assert_int_equal(w.nworkers, 0);
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* A replica removed from the members: its children are orphans, restarted on a member (same Id; temporary ones
 * deleted), and the removed replica stops its copies. */
static void test_member_removed(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    cluster(&w, 2);
    int both[] = {0, 1}, only0[] = {0};
    uint64_t h1 = s_hash_for(both, 2, 1);
    uint64_t idp, idx;
    hc_pid p = start_ok(&w, 0, "permanent", h1, 1, &idp);
    hc_pid x = start_ok(&w, 0, "temporary", h1, 2, &idx);
    s_run(&w, 1000);
    set_members(&w, 0, only0, 1);
    s_run(&w, 5000);
    hc_pid p2 = running_pid(&w, 0, idp);
    assert_int_equal(p2.node, s_node(0));
    assert_null(s_child(&w, 0, idx));
    if (s_worker_of(&w, &p)->alive || s_worker_of(&w, &x)->alive)
        fail_msg("the removed replica still runs its old workers (duplicates)");
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* Starts a BEAM child through replica `via`: whichever of the clients gets the start answers {ok, Pid}. Returns
 * the client's index; *id and *pid the child's. */
static int beam_start(s_world *w, int via, const hc_buf *spec, const hc_pid *clients, int nclients, uint32_t num,
                      uint64_t *id, hc_pid *pid)
{
    hc_pid from = caller();
    hc_buf rq = {0};
    s_term(&rq, "tab", 2u, "start_child", spec);
    size_t mark = w->nsent, n = 0;
    uint64_t tok = s_send(w, via, &from, &rq), op;
    hc_buf_free(&rq);
    for (int c = 0; c < nclients; c++) {
        size_t cur = mark;
        long k = s_next_sent(w, &clients[c], &cur);
        if (k < 0)
            continue;
        int by = w->sent[k].by;
        cur = mark;
        next_start_msg(w, &clients[c], &cur, spec, &op, id);
        *pid = (hc_pid){clients[c].node, num, 0, 1};
        started(w, by, &clients[c], op, *id, pid);
        s_run(w, 10);
        const uint8_t *r = s_reply(w, tok, &n);
        assert_non_null(r);
        s_expect(r, n, "tap", 2u, "ok", pid);
        return c;
    }
    fail_msg("no client was asked to start the child");
    return -1;
}

/* BEAM members attached to two replicas: terminate_child through the other replica, set_status shutting_down
 * and a handoff to the other member, detach, and failover of a client to another replica. */
static void test_beam_members_lifecycle(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    cluster(&w, 2);
    hc_pid cl[2] = {s_bpid("b1@sim", 50), s_bpid("b2@sim", 50)}, from = caller();
    hc_atom bn[2] = {hc_atom_intern_cstr("b1@sim"), hc_atom_intern_cstr("b2@sim")};
    size_t n = 0;
    const uint8_t *r;
    for (int c = 0; c < 2; c++) {
        r = s_req(&w, c, &cl[c], &n, "tapmaan", 4u, "attach", &cl[c], 1u, "auto", "true");
        s_expect(r, n, "tamapataa", 2u, "ok", 2u, "replica", &w.r[c].self, "member", 2u, "sup", hc_atom_name(bn[c]));
    }
    s_run(&w, 1000);
    for (int i = 0; i < 2; i++)
        for (int c = 0; c < 2; c++) {
            expect_beam_status(&w, i, bn[c], "alive", &cl[c], c);
        }

    /* children on both members, started through either replica */
    enum { N = 8 };
    hc_buf specs[N];
    uint64_t ids[N];
    hc_pid pids[N];
    int on[N], count[2] = {0, 0};
    for (int k = 0; k < N; k++) {
        specs[k] = (hc_buf){0};
        char name[8];
        snprintf(name, sizeof name, "c%d", k);
        beam_spec(&specs[k], "permanent", (uint64_t)k * 7919 + 1, name, k);
        on[k] = beam_start(&w, k % 2, &specs[k], cl, 2, 100 + (uint32_t)k, &ids[k], &pids[k]);
        count[on[k]]++;
    }
    assert_true(count[0] > 0 && count[1] > 0);
    s_run(&w, 1000);
    for (int k = 0; k < N; k++)
        for (int i = 0; i < 2; i++)
            assert_int_equal(s_child_by_pid(&w, i, &pids[k]), ids[k]);

    /* terminate_child through the replica the member is not attached to */
    int kt = 0;
    while (on[kt] != 0)
        kt++;
    size_t cur = w.nsent;
    hc_buf tq = {0};
    s_term(&tq, "tap", 2u, "terminate_child", &pids[kt]);
    uint64_t tok = s_send(&w, 1, &from, &tq);
    hc_buf_free(&tq);
    long k = s_next_sent(&w, &cl[0], &cur);
    assert_true(k >= 0);
    {
        const uint8_t *m = w.sent[k].data;
        size_t len = w.sent[k].len, x = 0;
        uint32_t a;
        uint64_t op, id;
        hc_pid rp;
        assert_int_equal(hc_dec_tuple_header(m, len, &x, &a), HC_OK);
        assert_int_equal(a, 5);
        assert_true(hc_dec_is_atom(m, len, &x, "$hordec_sup"));
        assert_true(hc_dec_is_atom(m, len, &x, "terminate"));
        assert_int_equal(hc_dec_pid(m, len, &x, &rp), HC_OK);
        assert_true(hc_pid_eq(&rp, &w.r[1].self));
        assert_int_equal(hc_dec_ulong(m, len, &x, &op), HC_OK);
        assert_int_equal(hc_dec_ulong(m, len, &x, &id), HC_OK);
        assert_int_equal(id, ids[kt]);
        assert_null(s_reply(&w, tok, &n));
        r = s_req(&w, 1, &cl[0], &n, "tauua", 4u, "terminated", op, id, "ok");
        s_expect(r, n, "a", "ok");
    }
    r = s_reply(&w, tok, &n);
    assert_non_null(r);
    s_expect(r, n, "a", "ok");
    s_run(&w, 1000);
    assert_null(s_child(&w, 0, ids[kt]));
    assert_null(s_child(&w, 1, ids[kt]));

    /* b1 shuts down gracefully: out of placement; what it relinquishes b2 adopts (same Id) */
    r = s_req(&w, 0, &cl[0], &n, "tapa", 3u, "set_status", &cl[0], "shutting_down");
    s_expect(r, n, "a", "ok");
    s_run(&w, 1000);
    for (int i = 0; i < 2; i++) {
        expect_beam_status(&w, i, bn[0], "shutting_down", &cl[0], 0);
    }
    for (int j = 0; j < N; j++) {
        if (on[j] != 0 || j == kt)
            continue;
        cur = w.nsent;
        r = s_req(&w, 0, &cl[0], &n, "tapua", 4u, "child_exited", &cl[0], ids[j], "relinquish");
        s_expect(r, n, "a", "ok");
        s_run(&w, 500);
        uint64_t op, id;
        next_start_msg(&w, &cl[1], &cur, &specs[j], &op, &id);
        assert_int_equal(id, ids[j]);
        int by = w.sent[cur - 1].by;
        assert_int_equal(by, 1); /* the replica b2 is attached to */
        pids[j] = s_bpid("b2@sim", 200 + (uint32_t)j);
        started(&w, by, &cl[1], op, id, &pids[j]);
        on[j] = 1;
    }
    s_run(&w, 1000);
    uint32_t num = 300;
    for (int j = 0; j < 4; j++) { /* new children all go to b2 */
        hc_buf sp = {0};
        beam_spec(&sp, "transient", (uint64_t)j * 104729 + 3, "new", j);
        uint64_t id;
        hc_pid pid;
        assert_int_equal(beam_start(&w, j % 2, &sp, cl, 2, num++, &id, &pid), 1);
        hc_buf_free(&sp);
    }
    /* b1 detaches: dead, and (auto) no longer a member */
    r = s_req(&w, 0, &cl[0], &n, "tap", 2u, "detach", &cl[0]);
    s_expect(r, n, "a", "ok");
    s_run(&w, 1000);
    for (int i = 0; i < 2; i++) {
        expect_beam_status(&w, i, bn[0], "dead", &cl[0], 0);
        expect_member_removed(&w, i, bn[0]);
    }

    /* replica 1 dies; b2 fails over to replica 0 with what it runs: nothing restarts, the records stay */
    s_kill(&w, 1);
    s_run(&w, 1000);
    hc_buf owned = {0};
    size_t nown = 0;
    for (size_t m = 0; m < w.r[0].nmirror; m++) {
        s_kv *kv = &w.r[0].mirror[m];
        uint64_t id;
        hc_pid pid;
        nown += s_is_child_key(kv->k, kv->kl, &id) && s_record_pid(kv->v, kv->vl, &pid) && pid.node == bn[1];
    }
    assert_int_equal(nown, s_child_count(&w, 0));
    hc_enc_list_header(&owned, (uint32_t)nown);
    for (size_t m = 0; m < w.r[0].nmirror; m++) {
        s_kv *kv = &w.r[0].mirror[m];
        uint64_t id;
        hc_pid pid;
        if (!s_is_child_key(kv->k, kv->kl, &id) || !s_record_pid(kv->v, kv->vl, &pid))
            continue;
        /* {Id, Kind, Restart, Hash, Body, Pid} from {Kind, Restart, Hash, Body, Member, Pid} */
        size_t x = 0, s0;
        uint32_t a;
        hc_dec_tuple_header(kv->v, kv->vl, &x, &a);
        s0 = x;
        for (int e = 0; e < 4; e++)
            hc_dec_skip(kv->v, kv->vl, &x);
        hc_enc_tuple_header(&owned, 6);
        hc_enc_ulong(&owned, id);
        hc_buf_append(&owned, kv->v + s0, x - s0);
        hc_enc_pid(&owned, &pid);
    }
    hc_enc_nil(&owned);
    size_t keys = hc_crdt_size(hc_supervisor_core_engine(w.r[0].core));
    size_t children = s_child_count(&w, 0), mark = w.nsent;
    r = s_req(&w, 0, &cl[1], &n, "tapmaab", 4u, "attach", &cl[1], 1u, "auto", "true", &owned);
    s_expect(r, n, "tamapataa", 2u, "ok", 2u, "replica", &w.r[0].self, "member", 2u, "sup", "b2@sim");
    s_run(&w, 1000);
    expect_beam_status(&w, 0, bn[1], "alive", &cl[1], 0);
    assert_int_equal(s_child_count(&w, 0), children);
    cur = mark;
    assert_true(s_next_sent(&w, &cl[1], &cur) < 0); /* nothing to start again */
    assert_int_equal(hc_crdt_size(hc_supervisor_core_engine(w.r[0].core)), keys);
    hc_buf_free(&owned);
    for (int j = 0; j < N; j++)
        hc_buf_free(&specs[j]);
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* Quorum under a partition {0} | {1, 2}: the minority stops its workers (records stay), the majority takes its
 * children over; after the heal every child runs exactly once, on the majority's choice. */
static void test_quorum_partition(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    cluster(&w, 3);
    for (int i = 0; i < 3; i++)
        set_option_a(&w, i, "distribution", "quorum");
    int all[] = {0, 1, 2}, maj[] = {1, 2};
    enum { N = 6 };
    uint64_t ids[N], hashes[N];
    hc_pid pids[N];
    uint64_t h = 1;
    for (int k = 0; k < N; k++) { /* four on replica 0 (one temporary), one each on replicas 1 and 2 */
        h = hashes[k] = s_hash_from(all, 3, k < 4 ? 0 : 1 + k % 2, h + 1);
        pids[k] = start_ok(&w, 0, k == 3 ? "temporary" : "permanent", h, k, &ids[k]);
    }
    s_run(&w, 1000);
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            if ((a == 0) != (b == 0))
                w.cut[a][b] = true;
    /* each side sees the other go (noconnection) */
    hc_buf nc = {0};
    hc_enc_atom_cstr(&nc, "noconnection");
    for (int by = 0; by < 3; by++)
        for (int j = 0; j < 3; j++) {
            if ((by == 0) == (j == 0))
                continue;
            s_mon *m = s_monitor_of(&w, by, &w.r[j].self);
            assert_non_null(m);
            s_fire(&w, m, &nc);
        }
    hc_buf_free(&nc);
    s_run(&w, 2000);
    assert_int_equal(s_stat(&w, 0, "quorum"), 0);
    assert_int_equal(s_stat(&w, 1, "quorum"), 1);
    assert_int_equal(s_alive_workers(&w, 0), 0); /* the minority runs nothing */
    assert_int_equal(s_child_count(&w, 0), N);   /* ... and keeps the records */
    for (int k = 0; k < N; k++) {
        if (k == 3) { /* the temporary child of the "dead" replica is gone on the majority side */
            assert_null(s_child(&w, 1, ids[k]));
            continue;
        }
        hc_pid p = running_pid(&w, 1, ids[k]);
        assert_int_equal(p.node, s_node(s_owner(maj, 2, hashes[k])));
        if (k < 4)
            assert_false(s_worker_of(&w, &pids[k])->alive);
        else
            assert_true(hc_pid_eq(&p, &pids[k])); /* the majority's own children did not move */
    }
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            w.cut[a][b] = false;
    s_run(&w, 5000);
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++)
            expect_replica_status(&w, i, j, "alive");
        assert_int_equal(s_stat(&w, i, "quorum"), 1);
    }
    /* one copy of every child; every replica agrees on where */
    size_t alive = 0;
    for (int i = 0; i < 3; i++)
        alive += s_alive_workers(&w, i);
    assert_int_equal(alive, N - 1);
    for (int k = 0; k < N; k++) {
        if (k == 3) {
            for (int i = 0; i < 3; i++)
                assert_null(s_child(&w, i, ids[k]));
            continue;
        }
        hc_pid p = running_pid(&w, 0, ids[k]);
        for (int i = 1; i < 3; i++) {
            hc_pid q;
            assert_true(s_child_pid(&w, i, ids[k], &q));
            assert_true(hc_pid_eq(&p, &q));
        }
    }
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* A BEAM member dies: every replica watching it marks it dead; its permanent children are restarted, same Id, on
 * the other BEAM member by the replica that member is attached to (once); its temporary ones are deleted. */
static void test_beam_member_dies(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    cluster(&w, 2);
    hc_pid cl[2] = {s_bpid("b1@sim", 50), s_bpid("b2@sim", 50)};
    hc_atom b1 = hc_atom_intern_cstr("b1@sim");
    size_t n = 0;
    const uint8_t *r;
    for (int c = 0; c < 2; c++) {
        r = s_req(&w, c, &cl[c], &n, "tapmaan", 4u, "attach", &cl[c], 1u, "auto", "true");
        s_expect(r, n, "tamapataa", 2u, "ok", 2u, "replica", &w.r[c].self, "member", 2u, "sup",
                 c ? "b2@sim" : "b1@sim");
    }
    s_run(&w, 1000);
    enum { N = 10 };
    hc_buf specs[N];
    uint64_t ids[N];
    hc_pid pids[N];
    int on[N], on_b1 = 0;
    for (int k = 0; k < N; k++) {
        specs[k] = (hc_buf){0};
        beam_spec(&specs[k], k % 3 == 2 ? "temporary" : "permanent", (uint64_t)k * 7919 + 5, "c", k);
        on[k] = beam_start(&w, 0, &specs[k], cl, 2, 100 + (uint32_t)k, &ids[k], &pids[k]);
        on_b1 += on[k] == 0;
    }
    assert_true(on_b1 > 0);
    s_run(&w, 1000);
    size_t mark = w.nsent;
    s_exit(&w, &cl[0], "a", "noconnection"); /* both replicas watch it */
    s_run(&w, 1000);
    for (int i = 0; i < 2; i++) {
        expect_beam_status(&w, i, b1, "dead", &cl[0], 0);
    }
    /* b2 is asked to start each permanent child of b1 once, by replica 1, same Id */
    size_t cur = mark;
    int restarted = 0;
    for (int k = 0; k < N; k++) {
        if (on[k] != 0)
            continue;
        if (k % 3 == 2) {
            for (int i = 0; i < 2; i++)
                assert_null(s_child(&w, i, ids[k]));
            continue;
        }
        restarted++;
    }
    /* the burst reaches b2 as `starts` messages: one per SUP_STARTS_MAX requests, not one per child */
    int asked = 0, messages = 0;
    long msg;
    while ((msg = s_next_sent(&w, &cl[1], &cur)) >= 0) {
        assert_int_equal(w.sent[msg].by, 1); /* the replica b2 is attached to */
        uint64_t ops[N], sids[N];
        hc_span sspecs[N];
        bool batch;
        size_t nitems = start_items(&w, (size_t)msg, ops, sids, sspecs, N, &batch);
        assert_true(batch == (nitems > 1));
        messages++;
        for (size_t j = 0; j < nitems; j++) {
            int idx = -1;
            for (int y = 0; y < N; y++)
                if (ids[y] == sids[j])
                    idx = y;
            assert_true(idx >= 0 && on[idx] == 0 && idx % 3 != 2);
            assert_true(s_equal(sspecs[j].p, sspecs[j].len, &specs[idx]));
            pids[idx] = s_bpid("b2@sim", 500 + (uint32_t)idx);
            started(&w, 1, &cl[1], ops[j], sids[j], &pids[idx]);
            on[idx] = 1;
            asked++;
        }
    }
    assert_int_equal(asked, restarted); /* each once, nothing else */
    assert_int_equal(messages, (restarted + SUP_STARTS_MAX - 1) / SUP_STARTS_MAX);
    size_t c0 = mark;
    assert_true(s_next_sent(&w, &cl[0], &c0) < 0); /* nothing to the dead one */
    s_run(&w, 1000);
    for (int k = 0; k < N; k++) {
        if (on[k] == 0) /* b1's temporary children */
            continue;
        for (int i = 0; i < 2; i++)
            assert_int_equal(s_child_by_pid(&w, i, &pids[k]), ids[k]);
    }
    for (int k = 0; k < N; k++)
        hc_buf_free(&specs[k]);
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* A restart or a takeover that fails to start gives the child up: the record goes (nothing half-supervised). */
static void test_failed_restart_gives_up(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    cluster(&w, 2);
    int both[] = {0, 1};
    uint64_t h0 = s_hash_for(both, 2, 0), h1 = s_hash_for(both, 2, 1);
    uint64_t ida, idb;
    hc_pid a = start_ok(&w, 0, "permanent", h0, 1, &ida);
    start_ok(&w, 0, "permanent", h1, 2, &idb);
    s_run(&w, 1000);
    w.refuse_starts = 1;
    s_exit(&w, &a, "a", "boom");
    assert_int_equal(w.refuse_starts, 0);
    assert_null(s_child(&w, 0, ida));
    assert_int_equal(s_stat(&w, 0, "given_up"), 1);
    w.refuse_starts = 1;
    s_kill(&w, 1);
    assert_int_equal(w.refuse_starts, 0);
    assert_null(s_child(&w, 0, idb));
    assert_int_equal(s_stat(&w, 0, "given_up"), 2);
    assert_int_equal(s_child_count(&w, 0), 0);
    assert_int_equal(indexed_children(&w, 0), 0);
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* attach from a pid on another replica's node would make that replica a BEAM member: refused, nothing changes. */
static void test_attach_from_replica_node(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    cluster(&w, 2);
    hc_pid fake = {s_node(1), 99, 0, 1};
    fingerprint before = fp_of(&w, 0);
    size_t n = 0;
    const uint8_t *r = s_req(&w, 0, &fake, &n, "tapmn", 4u, "attach", &fake, 0u);
    s_expect(r, n, "taa", 2u, "error", "badarg");
    s_run(&w, 1000);
    fingerprint after = fp_of(&w, 0);
    assert_int_equal(before.root, after.root);
    for (int i = 0; i < 2; i++)
        expect_replica_status(&w, i, 1, "alive");
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

/* Worker types: a C child goes only to a replica whose runtime has its type (the ring's choice if it has it, else
 * the next one clockwise that does); a child whose type no alive replica has waits, and comes back when one does. */
static void test_worker_types(void **state)
{
    static s_world w; /* static: a failed test's world is freed by s_teardown */
    static const char *const echo[] = {"echo"}, *const echo_kv[] = {"echo", "kv"};
    s_init(&w, 2);
    s_restart(&w, 0, echo, 1);
    s_restart(&w, 1, echo_kv, 2);
    int both[] = {0, 1};
    set_members(&w, 0, both, 2);
    s_run(&w, 2000);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            expect_replica_status(&w, i, j, "alive");
    uint64_t h0 = s_hash_for(both, 2, 0);
    size_t n = 0;
    hc_pid from = caller();
    const uint8_t *r = s_req(&w, 0, &from, &n, "tataautBi", 2u, "start_child", 4u, "c", "permanent", h0, 2u, "kv", 1);
    hc_pid kv = ok_pid(r, n);
    assert_int_equal(kv.node, s_node(1)); /* the ring says replica 0, which has no kv */
    uint64_t idkv = s_child_by_pid(&w, 0, &kv), ide;
    hc_pid e = start_ok(&w, 0, "permanent", h0, 2, &ide);
    assert_int_equal(e.node, s_node(0)); /* echo stays where the ring says */
    r = s_req(&w, 0, &from, &n, "tataautBi", 2u, "start_child", 4u, "c", "permanent", h0, 2u, "zzz", 1);
    s_expect(r, n, "tataB", 2u, "error", 2u, "unknown_worker_type", "zzz");
    s_run(&w, 1000);

    /* replica 1 goes: nobody else has kv, so its child waits (its record stays) */
    s_kill(&w, 1);
    s_run(&w, 2000);
    assert_non_null(s_child(&w, 0, idkv));
    assert_false(s_child_pid(&w, 0, idkv, &kv) && s_worker_of(&w, &kv)->alive);
    assert_int_equal(s_alive_workers(&w, 0), 1);
    /* it comes back (a new node creation, with kv): the child runs there again, same Id */
    s_start(&w, 1);
    s_pump(&w, 1);
    s_run(&w, 5000);
    hc_pid kv2 = running_pid(&w, 0, idkv);
    assert_int_equal(kv2.node, s_node(1));
    assert_string_equal(s_worker_of(&w, &kv2)->type, "kv");
    s_check(&w);
    s_all_answered(&w);
    s_free(&w);
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_start_c_worker, s_teardown),
        cmocka_unit_test_teardown(test_failed_start_leaves_nothing, s_teardown),
        cmocka_unit_test_teardown(test_start_child_with_id_is_idempotent, s_teardown),
        cmocka_unit_test_teardown(test_restart_types, s_teardown),
        cmocka_unit_test_teardown(test_intensity, s_teardown),
        cmocka_unit_test_teardown(test_intensity_many, s_teardown),
        cmocka_unit_test_teardown(test_start_on_other_replica, s_teardown),
        cmocka_unit_test_teardown(test_replica_dies, s_teardown),
        cmocka_unit_test_teardown(test_graceful_shutdown, s_teardown),
        cmocka_unit_test_teardown(test_beam_member, s_teardown),
        cmocka_unit_test_teardown(test_duplicate_after_partition, s_teardown),
        cmocka_unit_test_teardown(test_partition_heal_keeps_a_split_copy, s_teardown),
        cmocka_unit_test_teardown(test_terminate_beats_concurrent_takeover, s_teardown),
        cmocka_unit_test_teardown(test_terminate_of_dead_members_child_beats_takeover, s_teardown),
        cmocka_unit_test_teardown(test_duplicate_rewritten_by_peer, s_teardown),
        cmocka_unit_test_teardown(test_quorum, s_teardown),
        cmocka_unit_test_teardown(test_quorum_minority_does_not_act_on_first_losses, s_teardown),
        cmocka_unit_test_teardown(test_bad_requests, s_teardown),
        cmocka_unit_test_teardown(test_bad_peer_messages, s_teardown),
        cmocka_unit_test_teardown(test_start_timeout, s_teardown),
        cmocka_unit_test_teardown(test_restarted_replica, s_teardown),
        cmocka_unit_test_teardown(test_active_redistribution, s_teardown),
        cmocka_unit_test_teardown(test_max_children, s_teardown),
        cmocka_unit_test_teardown(test_max_children_zero, s_teardown),
        cmocka_unit_test_teardown(test_member_removed, s_teardown),
        cmocka_unit_test_teardown(test_beam_members_lifecycle, s_teardown),
        cmocka_unit_test_teardown(test_quorum_partition, s_teardown),
        cmocka_unit_test_teardown(test_beam_member_dies, s_teardown),
        cmocka_unit_test_teardown(test_failed_restart_gives_up, s_teardown),
        cmocka_unit_test_teardown(test_attach_from_replica_node, s_teardown),
        cmocka_unit_test_teardown(test_worker_types, s_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    hc_atom_table_reset();
    return rc;
}
