/* test_registry_conflict.c — :unique conflicts (docs/registry.md §5): registrations of one key made on both
 * sides of a partition resolve to the latest (HLC) everywhere, whichever way the heal delivers them; the loser
 * gets {name_conflict, {Key, LoserValue}, RegistryName, WinnerPid} exactly once, from the replica its owner is
 * attached to (for a C process: its own node's), and its entry is removed. */
#include "registry_harness.h"

static void join(h_world *w)
{
    hc_pid c = h_beam(1);
    size_t n;
    const uint8_t *r =
        h_req(w, 0, &c, &n, "taltaataan", 2u, "set_members", 2u, 2u, "reg", "h1@sim", 2u, "reg", "h2@sim");
    h_expect(r, n, "a", "ok");
    h_run(w, 500);
}

static void attach(h_world *w, int i, const hc_pid *client)
{
    size_t n;
    const uint8_t *r = h_req(w, i, client, &n, "tapn", 3u, "attach", client);
    assert_true(n > 3 && r[0] == 104 && r[1] == 2);
}

static void reg_ok(h_world *w, int i, const char *key, const hc_pid *pid, const char *val, const hc_pid *owner)
{
    size_t n;
    const uint8_t *r = owner ? h_req(w, i, pid, &n, "taapap", 5u, "register", key, pid, val, owner)
                             : h_req(w, i, pid, &n, "taapaa", 5u, "register", key, pid, val, "hordec");
    hc_pid s = {h_node(i), 1, 0, 1};
    h_expect(r, n, "tap", 2u, "ok", &s);
}

/* The one exit `loser` got: from replica `by`, naming the winner. */
static void expect_exit(h_world *w, const hc_pid *loser, int by, const char *key, const char *val, const hc_pid *winner)
{
    assert_int_equal(h_exits_to(w, loser), 1);
    for (size_t k = 0; k < w->nexits; k++) {
        if (!hc_pid_eq(&w->exits[k].pid, loser))
            continue;
        assert_int_equal(w->exits[k].by, by);
        h_expect(w->exits[k].reason, w->exits[k].len, "tataaap", 4u, "name_conflict", 2u, key, val, "reg", winner);
    }
}

/* No {r, Key, Pid} left in replica i's CRDT map. */
static void expect_no_entry(h_world *w, int i, const char *key, const hc_pid *pid)
{
    hc_buf k = {0};
    h_term(&k, "taap", 3u, "r", key, pid);
    const uint8_t *v;
    size_t vl;
    assert_false(hc_crdt_get(hc_registry_core_engine(w->r[i].core), k.data, k.len, &v, &vl));
    hc_buf_free(&k);
}

/* first: the replica whose registration comes first; heal_first: the direction healed first (from -> to). */
static void conflict_case(int first, int heal_from)
{
    h_world w;
    h_init(&w, 2, HC_REGISTRY_UNIQUE);
    join(&w);
    hc_pid c[2] = {h_beam(10), h_beam(20)}, p[2] = {h_beam(11), h_beam(21)};
    attach(&w, 0, &c[0]);
    attach(&w, 1, &c[1]);
    h_run(&w, 300);
    h_partition(&w, 0, 1, true);
    int second = 1 - first;
    reg_ok(&w, first, "k", &p[first], first ? "v2" : "v1", &c[first]);
    h_run(&w, 100);
    reg_ok(&w, second, "k", &p[second], second ? "v2" : "v1", &c[second]);
    h_run(&w, 100);
    w.cut[heal_from][1 - heal_from] = false; /* one direction first */
    h_run(&w, 1500);
    h_partition(&w, 0, 1, false);
    h_run(&w, 3000);
    /* the later registration wins everywhere; the earlier one is told once, by its owner's replica */
    hc_buf k = {0};
    hc_enc_atom_cstr(&k, "k");
    for (int i = 0; i < 2; i++) {
        assert_true(h_shows(&w, i, &k, &p[second]));
        assert_false(h_shows(&w, i, &k, &p[first]));
        assert_int_equal(h_count_reg(&w, i), 1);
        expect_no_entry(&w, i, "k", &p[first]);
    }
    expect_exit(&w, &p[first], first, "k", first ? "v2" : "v1", &p[second]);
    assert_int_equal(h_exits_to(&w, &p[second]), 0);
    size_t n;
    const uint8_t *r = h_req(&w, first, &p[first], &n, "taa", 2u, "lookup", "k");
    h_expect(r, n, "ltpan", 1u, 2u, &p[second], second ? "v2" : "v1");
    h_check(&w);
    hc_buf_free(&k);
    h_free(&w);
}

static void test_conflict_h1_first_heal_h1_to_h2(void **state)
{
    conflict_case(0, 0);
    (void)state;
}

static void test_conflict_h1_first_heal_h2_to_h1(void **state)
{
    conflict_case(0, 1);
    (void)state;
}

static void test_conflict_h2_first_heal_h1_to_h2(void **state)
{
    conflict_case(1, 0);
    (void)state;
}

static void test_conflict_h2_first_heal_h2_to_h1(void **state)
{
    conflict_case(1, 1);
    (void)state;
}

/* The loser is a C process of h1 (Owner hordec): h1 tells it, and forgets its monitor. */
static void test_conflict_local_loser(void **state)
{
    h_world w;
    h_init(&w, 2, HC_REGISTRY_UNIQUE);
    join(&w);
    hc_pid cp = h_cproc(0, 7), cb = h_beam(20), pb = h_beam(21);
    attach(&w, 1, &cb);
    h_partition(&w, 0, 1, true);
    reg_ok(&w, 0, "k", &cp, "c", NULL);
    assert_non_null(h_monitor_of(&w, 0, &cp));
    h_run(&w, 100);
    reg_ok(&w, 1, "k", &pb, "b", &cb);
    h_partition(&w, 0, 1, false);
    h_run(&w, 3000);
    expect_exit(&w, &cp, 0, "k", "c", &pb);
    assert_null(h_monitor_of(&w, 0, &cp));
    for (int i = 0; i < 2; i++)
        expect_no_entry(&w, i, "k", &cp);
    h_check(&w);
    h_free(&w);
    (void)state;
}

/* Three concurrent registrations of one key through three replicas: one winner, two losers told once each. */
static void test_conflict_three_ways(void **state)
{
    h_world w;
    h_init(&w, 3, HC_REGISTRY_UNIQUE);
    hc_pid c0 = h_beam(1);
    size_t n;
    const uint8_t *r = h_req(&w, 0, &c0, &n, "taltaataataan", 2u, "set_members", 3u, 2u, "reg", "h1@sim", 2u, "reg",
                             "h2@sim", 2u, "reg", "h3@sim");
    h_expect(r, n, "a", "ok");
    h_run(&w, 500);
    hc_pid c[3] = {h_beam(10), h_beam(20), h_beam(30)}, p[3] = {h_beam(11), h_beam(21), h_beam(31)};
    for (int i = 0; i < 3; i++)
        attach(&w, i, &c[i]);
    h_run(&w, 300);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            w.cut[i][j] = i != j;
    reg_ok(&w, 2, "k", &p[2], "v", &c[2]);
    h_run(&w, 10);
    reg_ok(&w, 0, "k", &p[0], "v", &c[0]);
    h_run(&w, 10);
    reg_ok(&w, 1, "k", &p[1], "v", &c[1]); /* the latest */
    memset(w.cut, 0, sizeof w.cut);
    h_run(&w, 3000);
    hc_buf k = {0};
    hc_enc_atom_cstr(&k, "k");
    for (int i = 0; i < 3; i++) {
        assert_true(h_shows(&w, i, &k, &p[1]));
        assert_int_equal(h_count_reg(&w, i), 1);
    }
    expect_exit(&w, &p[0], 0, "k", "v", &p[1]);
    expect_exit(&w, &p[2], 2, "k", "v", &p[1]);
    assert_int_equal(w.nexits, 2);
    h_check(&w);
    hc_buf_free(&k);
    h_free(&w);
    (void)state;
}

/* A client fails over with an owned entry whose key is held here by another process, and its own entry never
 * reached this replica: it lost, and is told now (not re-registered over the winner). */
static void test_attach_owned_key_held_by_another(void **state)
{
    h_world w;
    h_init(&w, 1, HC_REGISTRY_UNIQUE);
    hc_pid cq = h_beam(10), q = h_beam(11), c = h_beam(20), p = h_beam(21);
    attach(&w, 0, &cq);
    reg_ok(&w, 0, "k", &q, "vq", &cq);
    size_t n;
    const uint8_t *r =
        h_req(&w, 0, &c, &n, "tapltapatapan", 3u, "attach", &c, 2u, 3u, "k", &p, "vp", 3u, "mine", &p, "vm");
    assert_true(n > 3 && r[0] == 104);
    expect_exit(&w, &p, 0, "k", "vp", &q);
    hc_buf k = {0}, m = {0};
    hc_enc_atom_cstr(&k, "k");
    hc_enc_atom_cstr(&m, "mine");
    assert_true(h_shows(&w, 0, &k, &q));
    assert_false(h_shows(&w, 0, &k, &p));
    assert_true(h_shows(&w, 0, &m, &p)); /* its other, uncontested key is re-asserted */
    h_check(&w);
    hc_buf_free(&k);
    hc_buf_free(&m);
    h_free(&w);
    (void)state;
}

/* A loser whose owner is attached to neither side of the conflict's replicas: only the owner's replica acts,
 * also when it learns of the conflict last. */
static void test_conflict_told_by_owner_replica_only(void **state)
{
    h_world w;
    h_init(&w, 3, HC_REGISTRY_UNIQUE);
    hc_pid c0 = h_beam(1);
    size_t n;
    const uint8_t *r = h_req(&w, 0, &c0, &n, "taltaataataan", 2u, "set_members", 3u, 2u, "reg", "h1@sim", 2u, "reg",
                             "h2@sim", 2u, "reg", "h3@sim");
    h_expect(r, n, "a", "ok");
    h_run(&w, 500);
    hc_pid c3 = h_beam(30), p = h_beam(31), cq = h_beam(10), q = h_beam(11);
    attach(&w, 2, &c3);
    attach(&w, 0, &cq);
    h_run(&w, 300);
    /* p registers through h2 while h1 is cut off; it reaches h3 (p's owner's replica), then h3 is cut off */
    h_partition(&w, 0, 1, true);
    h_partition(&w, 0, 2, true);
    reg_ok(&w, 1, "k", &p, "vp", &c3);
    h_run(&w, 300); /* reaches h3 */
    h_partition(&w, 2, 0, true);
    h_partition(&w, 2, 1, true);
    h_run(&w, 10);
    reg_ok(&w, 0, "k", &q, "vq", &cq); /* later: q wins */
    h_partition(&w, 0, 1, false);
    h_run(&w, 2000);
    assert_int_equal(w.nexits, 0); /* h1 and h2 know of the conflict, but p's owner is attached to h3 */
    h_partition(&w, 2, 0, false);
    h_partition(&w, 2, 1, false);
    h_run(&w, 3000);
    expect_exit(&w, &p, 2, "k", "vp", &q);
    hc_buf k = {0};
    hc_enc_atom_cstr(&k, "k");
    for (int i = 0; i < 3; i++) {
        assert_true(h_shows(&w, i, &k, &q));
        assert_int_equal(h_count_reg(&w, i), 1);
    }
    h_check(&w);
    hc_buf_free(&k);
    h_free(&w);
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conflict_h1_first_heal_h1_to_h2),
        cmocka_unit_test(test_conflict_h1_first_heal_h2_to_h1),
        cmocka_unit_test(test_conflict_h2_first_heal_h1_to_h2),
        cmocka_unit_test(test_conflict_h2_first_heal_h2_to_h1),
        cmocka_unit_test(test_conflict_local_loser),
        cmocka_unit_test(test_conflict_three_ways),
        cmocka_unit_test(test_attach_owned_key_held_by_another),
        cmocka_unit_test(test_conflict_told_by_owner_replica_only),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    hc_atom_table_reset();
    return rc;
}
