/* test_registry_core.c — the registry core driven through hc_core_ops (registry_harness.h plays the host):
 * the requests of docs/registry.md §4, the observable map of §3, liveness and failover of §5. */
#include "registry_harness.h"

#define REG_GRACE 5000 /* REG_ADOPT_GRACE_MS */
#define REG_SLICE 4096 /* REG_SLICE: big work is done this many items a turn */

static hc_pid self_of(int i) { return (hc_pid){h_node(i), 1, 0, 1}; }

/* {attach, C, []} -> {ok, #{keys => Kind, replica => Self}} */
static void attach(h_world *w, int i, const hc_pid *client)
{
    size_t n;
    const uint8_t *r = h_req(w, i, client, &n, "tapn", 3u, "attach", client);
    hc_pid s = self_of(i);
    h_expect(r, n, "tamaaap", 2u, "ok", 2u, "keys", w->keys == HC_REGISTRY_UNIQUE ? "unique" : "duplicate", "replica",
             &s);
}

/* {register, Key, Pid, Value, Owner} with atom key and value; returns the reply. */
static const uint8_t *reg(h_world *w, int i, const char *key, const hc_pid *pid, const char *val, const hc_pid *owner,
                          size_t *n)
{
    if (owner)
        return h_req(w, i, pid, n, "taapap", 5u, "register", key, pid, val, owner);
    return h_req(w, i, pid, n, "taapaa", 5u, "register", key, pid, val, "hordec");
}

static void expect_ok_self(h_world *w, int i, const uint8_t *r, size_t n)
{
    hc_pid s = self_of(i);
    (void)w;
    h_expect(r, n, "tap", 2u, "ok", &s);
}

static void reg_ok(h_world *w, int i, const char *key, const hc_pid *pid, const char *val, const hc_pid *owner)
{
    size_t n;
    const uint8_t *r = reg(w, i, key, pid, val, owner, &n);
    expect_ok_self(w, i, r, n);
}

static hc_buf atom_term(const char *a)
{
    hc_buf b = {0};
    hc_enc_atom_cstr(&b, a);
    return b;
}

static void test_register_lookup_unregister(void **state)
{
    h_world w;
    h_init(&w, 1, HC_REGISTRY_UNIQUE);
    hc_pid c = h_beam(10), p1 = h_beam(11), p2 = h_beam(12);
    size_t n;
    const uint8_t *r;
    attach(&w, 0, &c);
    reg_ok(&w, 0, "k1", &p1, "v1", &c);
    r = h_req(&w, 0, &p1, &n, "taa", 2u, "lookup", "k1");
    h_expect(r, n, "ltpan", 1u, 2u, &p1, "v1");
    /* taken: by another process, and by the same one again (Elixir's Registry says so too) */
    r = reg(&w, 0, "k1", &p2, "v2", &c, &n);
    h_expect(r, n, "tatap", 2u, "error", 2u, "already_registered", &p1);
    r = reg(&w, 0, "k1", &p1, "v2", &c, &n);
    h_expect(r, n, "tatap", 2u, "error", 2u, "already_registered", &p1);
    /* a process can unregister only its own keys */
    r = h_req(&w, 0, &p2, &n, "taap", 3u, "unregister", "k1", &p2);
    h_expect(r, n, "a", "ok");
    hc_buf k1 = atom_term("k1");
    assert_true(h_shows(&w, 0, &k1, &p1));
    r = h_req(&w, 0, &p1, &n, "taap", 3u, "unregister", "k1", &p1);
    h_expect(r, n, "a", "ok");
    assert_false(h_shows(&w, 0, &k1, &p1));
    r = h_req(&w, 0, &p1, &n, "taa", 2u, "lookup", "k1");
    h_expect(r, n, "n");
    /* free again: p2 gets it */
    reg_ok(&w, 0, "k1", &p2, "v2", &c);
    assert_true(h_shows(&w, 0, &k1, &p2));
    /* unregister_keys: several of one pid's keys, and an integer-keyed list that travels as a STRING */
    reg_ok(&w, 0, "k2", &p2, "v", &c);
    r = h_req(&w, 0, &p2, &n, "taipap", 5u, "register", 7, &p2, "v", &c);
    expect_ok_self(&w, 0, r, n);
    uint8_t str[] = {107, 0, 1, 7}; /* [7] as the BEAM sends it */
    r = h_req(&w, 0, &p2, &n, "tapr", 3u, "unregister_keys", &p2, str, sizeof str);
    h_expect(r, n, "a", "ok");
    r = h_req(&w, 0, &p2, &n, "taplaan", 3u, "unregister_keys", &p2, 2u, "k1", "k2");
    h_expect(r, n, "a", "ok");
    assert_int_equal(h_count_reg(&w, 0), 0);
    h_check(&w);
    hc_buf_free(&k1);
    h_free(&w);
    (void)state;
}

static void test_update_value(void **state)
{
    h_world w;
    h_init(&w, 1, HC_REGISTRY_UNIQUE);
    hc_pid c = h_beam(10), p1 = h_beam(11), p2 = h_beam(12);
    size_t n;
    const uint8_t *r;
    attach(&w, 0, &c);
    reg_ok(&w, 0, "k", &p1, "v1", &c);
    r = h_req(&w, 0, &p1, &n, "taapa", 4u, "update_value", "k", &p1, "v2");
    h_expect(r, n, "a", "ok");
    r = h_req(&w, 0, &p2, &n, "taapa", 4u, "update_value", "k", &p2, "v3");
    h_expect(r, n, "a", "error");
    r = h_req(&w, 0, &p2, &n, "taapa", 4u, "update_value", "nokey", &p1, "v3");
    h_expect(r, n, "a", "error");
    r = h_req(&w, 0, &p1, &n, "taa", 2u, "lookup", "k");
    h_expect(r, n, "ltpan", 1u, 2u, &p1, "v2");
    /* the stream shows the new value, with the owner kept */
    hc_buf k = {0}, v = {0};
    h_term(&k, "taap", 3u, "reg", "k", &p1);
    h_term(&v, "tap", 2u, "v2", &c);
    bool found = false;
    for (size_t m = 0; m < w.r[0].nmirror; m++)
        if (w.r[0].mirror[m].kl == k.len && !memcmp(w.r[0].mirror[m].k, k.data, k.len)) {
            assert_int_equal(w.r[0].mirror[m].vl, v.len);
            assert_memory_equal(w.r[0].mirror[m].v, v.data, v.len);
            found = true;
        }
    assert_true(found);
    h_check(&w);
    hc_buf_free(&k);
    hc_buf_free(&v);
    h_free(&w);
    (void)state;
}

static void test_meta(void **state)
{
    h_world w;
    h_init(&w, 2, HC_REGISTRY_UNIQUE);
    hc_pid c = h_beam(10);
    size_t n;
    const uint8_t *r =
        h_req(&w, 0, &c, &n, "taltaataan", 2u, "set_members", 2u, 2u, "reg", "h1@sim", 2u, "reg", "h2@sim");
    h_expect(r, n, "a", "ok");
    r = h_req(&w, 0, &c, &n, "taai", 3u, "put_meta", "color", 42);
    h_expect(r, n, "a", "ok");
    h_run(&w, 500);
    hc_buf mk = {0}, mv = {0};
    h_term(&mk, "taa", 2u, "meta", "color");
    h_term(&mv, "i", 42);
    for (int i = 0; i < 2; i++) {
        bool found = false;
        for (size_t m = 0; m < w.r[i].nmirror; m++)
            if (w.r[i].mirror[m].kl == mk.len && !memcmp(w.r[i].mirror[m].k, mk.data, mk.len)) {
                assert_memory_equal(w.r[i].mirror[m].v, mv.data, mv.len);
                found = true;
            }
        assert_true(found);
    }
    r = h_req(&w, 1, &c, &n, "taa", 2u, "delete_meta", "color");
    h_expect(r, n, "a", "ok");
    h_run(&w, 500);
    for (int i = 0; i < 2; i++)
        for (size_t m = 0; m < w.r[i].nmirror; m++)
            assert_false(w.r[i].mirror[m].kl == mk.len && !memcmp(w.r[i].mirror[m].k, mk.data, mk.len));
    h_check(&w);
    hc_buf_free(&mk);
    hc_buf_free(&mv);
    h_free(&w);
    (void)state;
}

static void test_members_and_neighbours(void **state)
{
    h_world w;
    h_init(&w, 3, HC_REGISTRY_UNIQUE);
    hc_pid c = h_beam(10);
    size_t n;
    /* a new replica is a member of itself only, and has no neighbours */
    const uint8_t *r = h_req(&w, 1, &c, &n, "a", "members");
    h_expect(r, n, "ltaan", 1u, 2u, "reg", "h2@sim");
    assert_false(w.r[1].nb[0] || w.r[1].nb[2]);
    /* set_members (unsorted, with a duplicate): sorted members, neighbours follow */
    r = h_req(&w, 0, &c, &n, "taltaataataataan", 2u, "set_members", 4u, 2u, "reg", "h3@sim", 2u, "reg", "h1@sim", 2u,
              "reg", "h3@sim", 2u, "reg", "h2@sim");
    h_expect(r, n, "a", "ok");
    assert_true(w.r[0].nb[1] && w.r[0].nb[2]);
    r = h_req(&w, 0, &c, &n, "a", "members");
    h_expect(r, n, "ltaataataan", 3u, 2u, "reg", "h1@sim", 2u, "reg", "h2@sim", 2u, "reg", "h3@sim");
    /* the others were never told: they learn it from h1, which contacts them (adopt_peers) */
    h_run(&w, 1000);
    for (int i = 0; i < 3; i++) {
        r = h_req(&w, i, &c, &n, "a", "members");
        h_expect(r, n, "ltaataataan", 3u, 2u, "reg", "h1@sim", 2u, "reg", "h2@sim", 2u, "reg", "h3@sim");
        for (int j = 0; j < 3; j++)
            assert_true(w.r[i].nb[j] == (i != j));
    }
    /* one call anywhere removes a member everywhere */
    r = h_req(&w, 2, &c, &n, "taltaataan", 2u, "set_members", 2u, 2u, "reg", "h1@sim", 2u, "reg", "h2@sim");
    h_expect(r, n, "a", "ok");
    h_run(&w, 1000);
    for (int i = 0; i < 3; i++) {
        r = h_req(&w, i, &c, &n, "a", "members");
        h_expect(r, n, "ltaataan", 2u, 2u, "reg", "h1@sim", 2u, "reg", "h2@sim");
    }
    /* h3 is no member of its registry any more: it syncs with nobody, and nobody keeps it */
    h_run(&w, 2 * REG_GRACE);
    assert_false(w.r[0].nb[2] || w.r[1].nb[2] || w.r[2].nb[0] || w.r[2].nb[1]);
    assert_true(w.r[0].nb[1] && w.r[1].nb[0]);
    /* added again at h1: h3, out of its registry in its own view, refuses h1's contact until told itself */
    r = h_req(&w, 0, &c, &n, "taltaataataan", 2u, "set_members", 3u, 2u, "reg", "h1@sim", 2u, "reg", "h2@sim", 2u,
              "reg", "h3@sim");
    h_expect(r, n, "a", "ok");
    h_run(&w, 2 * REG_GRACE);
    assert_false(w.r[2].nb[0] || w.r[2].nb[1]);
    r = h_req(&w, 2, &c, &n, "taltaataataan", 2u, "set_members", 3u, 2u, "reg", "h1@sim", 2u, "reg", "h2@sim", 2u,
              "reg", "h3@sim");
    h_expect(r, n, "a", "ok");
    h_run(&w, 2 * REG_GRACE);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            assert_true(w.r[i].nb[j] == (i != j));
    h_check(&w);
    h_free(&w);
    (void)state;
}

static void test_duplicate_keys(void **state)
{
    h_world w;
    h_init(&w, 2, HC_REGISTRY_DUPLICATE);
    hc_pid c = h_beam(10), p1 = h_beam(11), p2 = h_beam(12);
    size_t n;
    const uint8_t *r =
        h_req(&w, 0, &c, &n, "taltaataan", 2u, "set_members", 2u, 2u, "reg", "h1@sim", 2u, "reg", "h2@sim");
    h_expect(r, n, "a", "ok");
    attach(&w, 0, &c);
    h_run(&w, 300); /* c's record reaches h2 */
    reg_ok(&w, 0, "topic", &p1, "a", &c);
    reg_ok(&w, 1, "topic", &p2, "b", &c);
    r = reg(&w, 0, "topic", &p1, "again", &c, &n);
    h_expect(r, n, "tatap", 2u, "error", 2u, "already_registered", &p1);
    h_run(&w, 1000);
    hc_buf t = atom_term("topic");
    for (int i = 0; i < 2; i++) {
        assert_true(h_shows(&w, i, &t, &p1));
        assert_true(h_shows(&w, i, &t, &p2));
    }
    r = h_req(&w, 1, &c, &n, "taa", 2u, "lookup", "topic");
    assert_true(n > 4 && r[0] == 108 && r[4] == 2); /* two matches */
    r = h_req(&w, 1, &p1, &n, "taap", 3u, "unregister", "topic", &p1);
    h_expect(r, n, "a", "ok");
    h_run(&w, 1000);
    for (int i = 0; i < 2; i++) {
        assert_false(h_shows(&w, i, &t, &p1));
        assert_true(h_shows(&w, i, &t, &p2));
    }
    /* duplicate keys never conflict */
    assert_int_equal(w.nexits, 0);
    h_check(&w);
    hc_buf_free(&t);
    h_free(&w);
    (void)state;
}

/* Of registrations of one key through one replica, exactly one wins, however they interleave with sync. */
static void test_atomic_register(void **state)
{
    h_world w;
    h_init(&w, 1, HC_REGISTRY_UNIQUE);
    hc_pid c = h_beam(10);
    size_t n, ok = 0;
    attach(&w, 0, &c);
    for (uint32_t k = 0; k < 20; k++) {
        hc_pid p = h_beam(100 + k);
        const uint8_t *r = reg(&w, 0, "one", &p, "v", &c, &n);
        ok += r[2] == 119 && r[3] == 2 && r[4] == 'o';
    }
    assert_int_equal(ok, 1);
    assert_int_equal(h_count_reg(&w, 0), 1);
    h_check(&w);
    h_free(&w);
    (void)state;
}

static void test_pids_down(void **state)
{
    h_world w;
    h_init(&w, 1, HC_REGISTRY_DUPLICATE);
    hc_pid c1 = h_beam(10), c2 = h_beam(20), p1 = h_beam(11), p2 = h_beam(12);
    size_t n;
    attach(&w, 0, &c1);
    attach(&w, 0, &c2);
    reg_ok(&w, 0, "a", &p1, "v", &c1);
    reg_ok(&w, 0, "b", &p1, "v", &c1);
    reg_ok(&w, 0, "a", &p2, "v", &c1);
    /* an entry of p1 that another owner vouches for */
    reg_ok(&w, 0, "c", &p1, "v", &c2);
    const uint8_t *r = h_req(&w, 0, &c1, &n, "taplpn", 3u, "pids_down", &c1, 1u, &p1);
    h_expect(r, n, "a", "ok");
    hc_buf a = atom_term("a"), b = atom_term("b"), cc = atom_term("c");
    assert_false(h_shows(&w, 0, &a, &p1));
    assert_false(h_shows(&w, 0, &b, &p1));
    assert_true(h_shows(&w, 0, &a, &p2));
    assert_true(h_shows(&w, 0, &cc, &p1));
    h_check(&w);
    hc_buf_free(&a);
    hc_buf_free(&b);
    hc_buf_free(&cc);
    h_free(&w);
    (void)state;
}

/* {pids_down, Owner, [{Pid, Keys}]}: only those keys go (the client names what the process held, so the replica
 * needs no pid index); unknown keys and other owners' entries are left alone; a malformed element refuses the
 * whole request. */
static void test_pids_down_keys(void **state)
{
    h_world w;
    h_init(&w, 1, HC_REGISTRY_DUPLICATE);
    hc_pid c1 = h_beam(10), c2 = h_beam(20), p1 = h_beam(11), p2 = h_beam(12);
    size_t n;
    attach(&w, 0, &c1);
    attach(&w, 0, &c2);
    reg_ok(&w, 0, "a", &p1, "v", &c1);
    reg_ok(&w, 0, "b", &p1, "v", &c1);
    reg_ok(&w, 0, "a", &p2, "v", &c1);
    reg_ok(&w, 0, "c", &p1, "v", &c2);
    hc_buf a = atom_term("a"), b = atom_term("b"), cc = atom_term("c");
    const uint8_t *r = h_req(&w, 0, &c1, &n, "tapltplanpn", 3u, "pids_down", &c1, 2u, 2u, &p1, 1u, "a", &p2);
    h_expect(r, n, "a", "ok");
    assert_false(h_shows(&w, 0, &a, &p1));
    assert_true(h_shows(&w, 0, &b, &p1));
    assert_false(h_shows(&w, 0, &a, &p2)); /* a bare pid: all its keys */
    /* {p1, notalist} after a good element: nothing happens */
    r = h_req(&w, 0, &c1, &n, "tapltplantpan", 3u, "pids_down", &c1, 2u, 2u, &p1, 1u, "b", 2u, &p1, "x");
    h_expect(r, n, "taa", 2u, "error", "badarg");
    assert_true(h_shows(&w, 0, &b, &p1));
    r = h_req(&w, 0, &c1, &n, "tapltplaaann", 3u, "pids_down", &c1, 1u, 2u, &p1, 3u, "b", "c", "zzz");
    h_expect(r, n, "a", "ok");
    assert_false(h_shows(&w, 0, &b, &p1));
    assert_true(h_shows(&w, 0, &cc, &p1)); /* c2 vouches for it */
    h_check(&w);
    hc_buf_free(&a);
    hc_buf_free(&b);
    hc_buf_free(&cc);
    h_free(&w);
    (void)state;
}

/* Processes holding many names, a C process of this node (listed in its watch) and a BEAM process (its client
 * names the keys): dropping them all leaves nothing, whatever order the list of the C process was built in. */
static void test_one_process_many_names(void **state)
{
    enum { N = 200 }; /* the harness mirrors at most H_MAX entries */
    h_world w;
    h_init(&w, 1, HC_REGISTRY_UNIQUE);
    hc_pid c = h_beam(10), bp = h_beam(11), cp = h_cproc(0, 500);
    size_t n;
    attach(&w, 0, &c);
    hc_buf keys = {0};
    hc_enc_list_header(&keys, N);
    for (int i = 0; i < N; i++) {
        const uint8_t *r = h_req(&w, 0, &bp, &n, "taipap", 5u, "register", i, &bp, "v", &c);
        expect_ok_self(&w, 0, r, n);
        r = h_req(&w, 0, &cp, &n, "taipaa", 5u, "register", N + i, &cp, "v", "hordec");
        expect_ok_self(&w, 0, r, n);
        hc_enc_long(&keys, i);
    }
    hc_enc_nil(&keys);
    for (int i = 0; i < N; i += 3) { /* holes in the C process's list, then some of them filled again */
        const uint8_t *r = h_req(&w, 0, &cp, &n, "taip", 3u, "unregister", N + i, &cp);
        h_expect(r, n, "a", "ok");
    }
    for (int i = 0; i < N; i += 6) {
        const uint8_t *r = h_req(&w, 0, &cp, &n, "taipaa", 5u, "register", N + i, &cp, "v", "hordec");
        expect_ok_self(&w, 0, r, n);
    }
    h_check(&w);
    assert_int_equal(h_count_reg(&w, 0), N + N - (N + 2) / 3 + (N + 5) / 6);
    h_down(&w, h_monitor_of(&w, 0, &cp), "kill");
    assert_int_equal(h_count_reg(&w, 0), N);
    const uint8_t *r = h_req(&w, 0, &c, &n, "tapltpbn", 3u, "pids_down", &c, 1u, 2u, &bp, &keys);
    h_expect(r, n, "a", "ok");
    assert_int_equal(h_count_reg(&w, 0), 0);
    h_check(&w);
    hc_buf_free(&keys);
    h_free(&w);
    (void)state;
}

/* The value of one integer stat of replica i (its stats reply, as the host makes it). */
static long stat_of(h_world *w, int i, const char *name)
{
    hc_host_stats hs = {0};
    hc_buf b = {0};
    assert_int_equal(hc_registry_core_ops.stats(w->r[i].core, &hs, &b), HC_OK);
    size_t idx = 0;
    hc_iter it;
    hc_span k, v;
    long found = -1;
    assert_int_equal(hc_iter_map(&it, b.data, b.len, &idx), HC_OK);
    while (found < 0 && hc_iter_next_pair(&it, &k, &v)) {
        size_t ki = 0, vi = 0;
        long x;
        if (hc_dec_is_atom(k.p, k.len, &ki, name) && hc_dec_long(v.p, v.len, &vi, &x) == HC_OK)
            found = x;
    }
    hc_buf_free(&b);
    assert_true(found >= 0);
    return found;
}

/* An attach with more owned entries than REG_SLICE is validated, then written, over several turns of the loop: no
 * reply until the last one; requests that arrive meanwhile wait, and are handled after it, in order (a monitor
 * DOWN is not held). The death of a client owning as many entries removes them a slice at a time too. */
static void test_big_attach_is_sliced(void **state)
{
    enum { N = 3 * REG_SLICE + 5 };
    h_world w;
    h_init(&w, 1, HC_REGISTRY_UNIQUE);
    w.no_mirror = true;
    hc_pid c = h_beam(10), other = h_beam(20), p = h_beam(11), q = h_beam(12), cp = h_cproc(0, 500);
    reg_ok(&w, 0, "worker", &cp, "v", NULL); /* a C process of this node, monitored */
    hc_buf owned = {0};
    hc_enc_list_header(&owned, N);
    for (int i = 0; i < N; i++) {
        h_term(&owned, "tipa", 3u, i, i % 2 ? &p : &q, "v");
    }
    hc_enc_nil(&owned);
    hc_buf req = {0};
    h_term(&req, "tapb", 3u, "attach", &c, &owned);
    w.reply_token = ++w.next_token;
    w.replies = 0;
    hc_registry_core_ops.request(w.r[0].core, w.reply_token, &c, req.data, req.len, w.now);
    h_pump(&w, 0);
    assert_int_equal(w.replies, 0); /* a slice validated so far */
    assert_int_equal(hc_registry_core_ops.next_deadline(w.r[0].core), 0);
    /* meanwhile: another client's attach and register of key 7 (held), and the C process's death (held) */
    uint64_t t1 = ++w.next_token, t2 = ++w.next_token;
    hc_buf a2 = {0}, r2 = {0};
    h_term(&a2, "tapn", 3u, "attach", &other);
    h_term(&r2, "taipap", 5u, "register", 7, &other, "late", &other);
    hc_registry_core_ops.request(w.r[0].core, t1, &other, a2.data, a2.len, w.now);
    hc_registry_core_ops.request(w.r[0].core, t2, &other, r2.data, r2.len, w.now);
    h_mon *m = h_monitor_of(&w, 0, &cp);
    assert_non_null(m);
    h_down(&w, m, "kill");                          /* a DOWN is handled at once */
    assert_int_equal(stat_of(&w, 0, "entries"), 0); /* nothing written before all is valid */
    w.reply_token = t2;                             /* the register's reply is the one kept */
    h_run(&w, 0);
    assert_int_equal(w.replies, 1);
    /* it came after the attach: key 7 was c's by then */
    h_expect(w.reply, w.reply_len, "tatap", 2u, "error", 2u, "already_registered", &p);
    hc_buf_free(&a2);
    hc_buf_free(&r2);
    assert_int_equal(stat_of(&w, 0, "entries"), N);
    assert_int_equal(stat_of(&w, 0, "names"), N);
    /* the client dies: its N entries go, a slice a turn */
    h_down(&w, h_monitor_of(&w, 0, &c), "noproc");
    assert_true(stat_of(&w, 0, "entries") > 0);
    h_run(&w, 0);
    assert_int_equal(stat_of(&w, 0, "entries"), 0);
    h_check(&w);
    hc_buf_free(&owned);
    hc_buf_free(&req);
    h_free(&w);
    (void)state;
}

/* A big attach whose last element is malformed is refused whole, though it was validated over several turns:
 * nothing written, not even the client's record; requests held meanwhile are then handled. */
static void test_big_attach_bad_element(void **state)
{
    enum { N = 2 * REG_SLICE + 1 };
    h_world w;
    h_init(&w, 1, HC_REGISTRY_UNIQUE);
    w.no_mirror = true;
    hc_pid c = h_beam(10), p = h_beam(11);
    hc_buf owned = {0}, req = {0}, a2 = {0};
    hc_enc_list_header(&owned, N);
    for (int i = 0; i < N - 1; i++)
        h_term(&owned, "tipa", 3u, i, &p, "v");
    h_term(&owned, "ti", 1u, 5); /* not {Key, Pid, Value} */
    hc_enc_nil(&owned);
    h_term(&req, "tapb", 3u, "attach", &c, &owned);
    w.reply_token = ++w.next_token;
    w.replies = 0;
    hc_registry_core_ops.request(w.r[0].core, w.reply_token, &c, req.data, req.len, w.now);
    h_pump(&w, 0);
    assert_int_equal(w.replies, 0);
    uint64_t t_ok = ++w.next_token;
    h_term(&a2, "tapn", 3u, "attach", &c);
    hc_registry_core_ops.request(w.r[0].core, t_ok, &c, a2.data, a2.len, w.now); /* held */
    h_run(&w, 0);
    assert_int_equal(w.replies, 1);
    h_expect(w.reply, w.reply_len, "taa", 2u, "error", "badarg");
    assert_int_equal(stat_of(&w, 0, "entries"), 0);
    assert_int_equal(stat_of(&w, 0, "clients"), 1); /* the held attach of nothing came after */
    h_check(&w);
    hc_buf_free(&owned);
    hc_buf_free(&req);
    hc_buf_free(&a2);
    h_free(&w);
    (void)state;
}

/* The attaching client dies during a big attach: its DOWN is handled at once, and the attach ends there (what is
 * left would be entries nobody vouches for); nothing of it stays. */
static void test_big_attach_client_dies(void **state)
{
    enum { N = 3 * REG_SLICE };
    h_world w;
    h_init(&w, 1, HC_REGISTRY_UNIQUE);
    w.no_mirror = true;
    hc_pid c = h_beam(10), p = h_beam(11);
    hc_buf owned = {0}, req = {0};
    hc_enc_list_header(&owned, N);
    for (int i = 0; i < N; i++)
        h_term(&owned, "tipa", 3u, i, &p, "v");
    hc_enc_nil(&owned);
    h_term(&req, "tapb", 3u, "attach", &c, &owned);
    w.reply_token = ++w.next_token;
    w.replies = 0;
    hc_registry_core_ops.request(w.r[0].core, w.reply_token, &c, req.data, req.len, w.now);
    /* turn the loop until some entries are written (validation first, then writing) */
    for (int turn = 0; turn < 8 && stat_of(&w, 0, "entries") == 0; turn++) {
        hc_registry_core_ops.tick(w.r[0].core, w.now);
        h_pump(&w, 0);
    }
    long written = stat_of(&w, 0, "entries");
    assert_true(written > 0 && written < N);
    h_mon *m = h_monitor_of(&w, 0, &c);
    assert_non_null(m);
    h_down(&w, m, "noproc");
    h_run(&w, 0);
    assert_int_equal(w.replies, 1);
    h_expect(w.reply, w.reply_len, "taa", 2u, "error", "not_attached");
    assert_int_equal(stat_of(&w, 0, "entries"), 0);
    assert_int_equal(stat_of(&w, 0, "clients"), 0);
    h_check(&w);
    hc_buf_free(&owned);
    hc_buf_free(&req);
    h_free(&w);
    (void)state;
}

/* A C process of this node registered with Owner hordec is monitored by this replica; its DOWN removes it. */
static void test_local_process_monitored(void **state)
{
    h_world w;
    h_init(&w, 1, HC_REGISTRY_UNIQUE);
    hc_pid p = h_cproc(0, 500), remote = h_cproc(1, 500);
    size_t n;
    reg_ok(&w, 0, "worker", &p, "v", NULL);
    reg_ok(&w, 0, "worker2", &p, "v", NULL);
    h_mon *m = h_monitor_of(&w, 0, &p);
    assert_non_null(m);
    /* Owner hordec vouches for this node's processes only */
    const uint8_t *r = reg(&w, 0, "other", &remote, "v", NULL, &n);
    h_expect(r, n, "taa", 2u, "error", "badarg");
    h_down(&w, m, "normal");
    assert_int_equal(h_count_reg(&w, 0), 0);
    assert_null(h_monitor_of(&w, 0, &p));
    h_check(&w);
    h_free(&w);
    (void)state;
}

/* A client Owner must be attached: one without a record (never attached, or dropped by a replica that saw its
 * node go) is told to attach first, and nothing is written. */
static void test_register_needs_attach(void **state)
{
    h_world w;
    h_init(&w, 1, HC_REGISTRY_UNIQUE);
    hc_pid c = h_beam(10), p = h_beam(11);
    size_t n;
    const uint8_t *r = reg(&w, 0, "k", &p, "v", &c, &n);
    h_expect(r, n, "taa", 2u, "error", "not_attached");
    assert_int_equal(h_count_reg(&w, 0), 0);
    attach(&w, 0, &c);
    reg_ok(&w, 0, "k", &p, "v", &c);
    /* the replica saw c's node go: its record goes, and so does its right to register */
    h_down(&w, h_monitor_of(&w, 0, &c), "noconnection");
    assert_int_equal(h_count_reg(&w, 0), 0);
    r = reg(&w, 0, "k2", &p, "v", &c, &n);
    h_expect(r, n, "taa", 2u, "error", "not_attached");
    /* attaching again re-asserts what it owns, and it may register again */
    r = h_req(&w, 0, &c, &n, "tapltapan", 3u, "attach", &c, 1u, 3u, "k", &p, "v");
    assert_true(n > 3 && r[0] == 104);
    hc_buf k = atom_term("k");
    assert_true(h_shows(&w, 0, &k, &p));
    reg_ok(&w, 0, "k2", &p, "v", &c);
    h_check(&w);
    hc_buf_free(&k);
    h_free(&w);
    (void)state;
}

static void test_attach_records_and_monitors_client(void **state)
{
    h_world w;
    h_init(&w, 1, HC_REGISTRY_UNIQUE);
    hc_pid c = h_beam(10);
    attach(&w, 0, &c);
    hc_buf k = {0}, v = {0};
    h_term(&k, "tap", 2u, "client", &c);
    h_term(&v, "taa", 2u, "reg", "h1@sim");
    bool found = false;
    for (size_t m = 0; m < w.r[0].nmirror; m++)
        if (w.r[0].mirror[m].kl == k.len && !memcmp(w.r[0].mirror[m].k, k.data, k.len)) {
            assert_memory_equal(w.r[0].mirror[m].v, v.data, v.len);
            found = true;
        }
    assert_true(found);
    assert_non_null(h_monitor_of(&w, 0, &c));
    h_check(&w);
    hc_buf_free(&k);
    hc_buf_free(&v);
    h_free(&w);
    (void)state;
}

/* Two replicas that know each other: one call at h1 suffices. */
static void pair(h_world *w)
{
    hc_pid c = h_beam(1);
    size_t n;
    const uint8_t *r =
        h_req(w, 0, &c, &n, "taltaataan", 2u, "set_members", 2u, 2u, "reg", "h1@sim", 2u, "reg", "h2@sim");
    h_expect(r, n, "a", "ok");
    h_run(w, 500);
    r = h_req(w, 1, &c, &n, "a", "members");
    h_expect(r, n, "ltaataan", 2u, 2u, "reg", "h1@sim", 2u, "reg", "h2@sim");
}

static void test_client_down_attached_here(void **state)
{
    h_world w;
    h_init(&w, 2, HC_REGISTRY_UNIQUE);
    pair(&w);
    hc_pid c = h_beam(10), other = h_beam(20), p1 = h_beam(11), p2 = h_beam(12), q = h_beam(21);
    attach(&w, 0, &c);
    attach(&w, 1, &other);
    reg_ok(&w, 0, "a", &p1, "v", &c);
    reg_ok(&w, 0, "b", &p2, "v", &c);
    reg_ok(&w, 1, "q", &q, "v", &other);
    h_run(&w, 500);
    assert_int_equal(h_count_reg(&w, 1), 3);
    /* only the replica named in {client, C} watches C */
    assert_non_null(h_monitor_of(&w, 0, &c));
    assert_null(h_monitor_of(&w, 1, &c));
    h_down(&w, h_monitor_of(&w, 0, &c), "noproc");
    h_run(&w, 500);
    for (int i = 0; i < 2; i++)
        assert_int_equal(h_count_reg(&w, i), 1); /* q stays */
    hc_buf qk = atom_term("q");
    assert_true(h_shows(&w, 0, &qk, &q));
    h_check(&w);
    hc_buf_free(&qk);
    h_free(&w);
    (void)state;
}

/* The client moved to h2 while h1 was cut off from everyone. h1 then sees the client's node go (noconnection)
 * and, still believing the client is attached to it, deletes its entries: after the heal they must survive,
 * because the client re-asserted them at h2 with fresh writes. */
static void test_cut_off_replica_loses_nothing(void **state)
{
    h_world w;
    h_init(&w, 2, HC_REGISTRY_UNIQUE);
    pair(&w);
    hc_pid c = h_beam(10), p1 = h_beam(11);
    size_t n;
    attach(&w, 0, &c);
    reg_ok(&w, 0, "a", &p1, "v", &c);
    h_run(&w, 500);
    h_partition(&w, 0, 1, true);
    /* failover: attach to h2 with what the client owns */
    hc_pid s = self_of(1);
    const uint8_t *r = h_req(&w, 1, &c, &n, "tapltapan", 3u, "attach", &c, 1u, 3u, "a", &p1, "v");
    h_expect(r, n, "tamaaap", 2u, "ok", 2u, "keys", "unique", "replica", &s);
    h_down(&w, h_monitor_of(&w, 0, &c), "noconnection");
    h_run(&w, 300);
    assert_int_equal(h_count_reg(&w, 0), 0); /* h1 acted on its own view */
    h_partition(&w, 0, 1, false);
    h_run(&w, 3000);
    hc_buf a = atom_term("a");
    for (int i = 0; i < 2; i++)
        assert_true(h_shows(&w, i, &a, &p1));
    assert_null(h_monitor_of(&w, 0, &c));
    assert_non_null(h_monitor_of(&w, 1, &c));
    /* and a stale DOWN at h1 (its monitor is gone) changes nothing */
    hc_buf reason = atom_term("noproc");
    hc_registry_core_ops.monitor_down(w.r[0].core, 1, &c, reason.data, reason.len, w.now);
    h_pump(&w, 0);
    h_run(&w, 500);
    for (int i = 0; i < 2; i++)
        assert_true(h_shows(&w, i, &a, &p1));
    h_check(&w);
    hc_buf_free(&a);
    hc_buf_free(&reason);
    h_free(&w);
    (void)state;
}

/* A replica restarted empty (its node crashed): the client attaches again with what it owns, and the entries
 * are back; with a surviving peer they were never gone. */
static void test_attach_reasserts_after_state_loss(void **state)
{
    h_world w;
    h_init(&w, 1, HC_REGISTRY_UNIQUE);
    hc_pid c = h_beam(10), p1 = h_beam(11), p2 = h_beam(12);
    size_t n;
    attach(&w, 0, &c);
    reg_ok(&w, 0, "a", &p1, "v1", &c);
    reg_ok(&w, 0, "b", &p2, "v2", &c);
    h_stop(&w, 0);
    h_start(&w, 0);
    assert_int_equal(h_count_reg(&w, 0), 0);
    hc_pid s = self_of(0);
    const uint8_t *r =
        h_req(&w, 0, &c, &n, "tapltapatapan", 3u, "attach", &c, 2u, 3u, "a", &p1, "v1", 3u, "b", &p2, "v2");
    h_expect(r, n, "tamaaap", 2u, "ok", 2u, "keys", "unique", "replica", &s);
    hc_buf a = atom_term("a"), b = atom_term("b");
    assert_true(h_shows(&w, 0, &a, &p1));
    assert_true(h_shows(&w, 0, &b, &p2));
    r = h_req(&w, 0, &c, &n, "taa", 2u, "lookup", "b");
    h_expect(r, n, "ltpan", 1u, 2u, &p2, "v2");
    assert_non_null(h_monitor_of(&w, 0, &c));
    h_check(&w);
    hc_buf_free(&a);
    hc_buf_free(&b);
    h_free(&w);
    (void)state;
}

/* Removing a member drops, everywhere, the entries of the clients attached through it and the entries of its
 * node's own processes; nothing else. */
static void test_membership_removal(void **state)
{
    h_world w;
    h_init(&w, 2, HC_REGISTRY_UNIQUE);
    pair(&w);
    hc_pid ca = h_beam(10), cb = h_beam(20), pa = h_beam(11), pb = h_beam(21), local_b = h_cproc(1, 77);
    size_t n;
    attach(&w, 0, &ca);
    attach(&w, 1, &cb);
    reg_ok(&w, 0, "a", &pa, "v", &ca);
    reg_ok(&w, 1, "b", &pb, "v", &cb);
    reg_ok(&w, 1, "lb", &local_b, "v", NULL);
    h_run(&w, 500);
    assert_int_equal(h_count_reg(&w, 0), 3);
    const uint8_t *r = h_req(&w, 0, &ca, &n, "taltaan", 2u, "set_members", 1u, 2u, "reg", "h1@sim");
    h_expect(r, n, "a", "ok");
    /* h1 acts at once; h2 hears of it before h1 stops talking to it (the removal travels with the deletes) */
    h_run(&w, 1000);
    hc_buf a = atom_term("a");
    for (int i = 0; i < 2; i++) { /* h2 learnt of its removal before h1 let go of it */
        assert_int_equal(h_count_reg(&w, i), 1);
        assert_true(h_shows(&w, i, &a, &pa));
    }
    h_check(&w);
    hc_buf_free(&a);
    h_free(&w);
    (void)state;
}

/* Malformed requests, one per request and then some: {error, badarg}, and nothing changes. */
static void test_bad_input(void **state)
{
    h_world w;
    h_init(&w, 1, HC_REGISTRY_UNIQUE);
    hc_pid c = h_beam(10), p = h_beam(11), remote_c = h_cproc(2, 5);
    size_t n;
    attach(&w, 0, &c);
    reg_ok(&w, 0, "k", &p, "v", &c);
    h_run(&w, 10);
    uint64_t before = hc_crdt_root_hash(hc_registry_core_engine(w.r[0].core));
    size_t mirror = w.r[0].nmirror;
    uint8_t trunc[] = {104, 3, 119, 8, 'r', 'e', 'g', 'i', 's', 't', 'e', 'r', 119};
    uint8_t deep[2000];
    for (size_t i = 0; i < 1000; i++) {
        deep[2 * i] = 104;
        deep[2 * i + 1] = 1;
    }
    static const char *const fmts[] = {
        "a",         /* register as a bare atom */
        "ta",        /* {register} */
        "taap",      /* {register, K, P} */
        "taaaaa",    /* {register, k, notapid, v, owner} */
        "taapai",    /* owner neither pid nor hordec */
        "taapaa",    /* owner some other atom */
        "taapapa",   /* one too many */
        "taaa",      /* {unregister, k, notapid} */
        "taaa",      /* {unregister_keys, notapid, k} */
        "tapi",      /* {unregister_keys, P, 5} (not a list) */
        "taap",      /* {update_value, k, P}: wrong arity */
        "taia",      /* {pids_down, 5, [..]} */
        "tapa",      /* {pids_down, P, notalist} */
        "taa",       /* {put_meta, k} */
        "ta",        /* {delete_meta} */
        "tai",       /* {set_members, 5} */
        "talin",     /* {set_members, [5]} */
        "taltaan",   /* {set_members, [{a, b}]}: not a node */
        "taa",       /* {members, x} */
        "ta",        /* {lookup} */
        "taai",      /* {attach, notapid, 5} */
        "tapi",      /* {attach, P, 5} */
        "taplin",    /* {attach, P, [5]} */
        "tapltaapn", /* {attach, P, [{k, notapid, ...}]} */
        "tapltaaan", /* {attach, P, [{k, v, x}]} */
        "a",         /* unknown */
        "tai",       /* {unknown, 1} */
        "i",         /* 5 */
    };
    for (size_t f = 0; f < sizeof fmts / sizeof fmts[0]; f++) {
        const uint8_t *r = NULL;
        switch (f) {
        case 0: r = h_req(&w, 0, &c, &n, fmts[f], "register"); break;
        case 1: r = h_req(&w, 0, &c, &n, fmts[f], 1u, "register"); break;
        case 2: r = h_req(&w, 0, &c, &n, fmts[f], 3u, "register", "k", &p); break;
        case 3: r = h_req(&w, 0, &c, &n, fmts[f], 5u, "register", "k2", "x", "v", "y"); break;
        case 4: r = h_req(&w, 0, &c, &n, fmts[f], 5u, "register", "k2", &p, "v", 5); break;
        case 5: r = h_req(&w, 0, &c, &n, fmts[f], 5u, "register", "k2", &p, "v", "hordex"); break;
        case 6: r = h_req(&w, 0, &c, &n, fmts[f], 6u, "register", "k2", &p, "v", &c, "extra"); break;
        case 7: r = h_req(&w, 0, &c, &n, fmts[f], 3u, "unregister", "k", "notapid"); break;
        case 8: r = h_req(&w, 0, &c, &n, fmts[f], 3u, "unregister_keys", "notapid", "k"); break;
        case 9: r = h_req(&w, 0, &c, &n, fmts[f], 3u, "unregister_keys", &p, 5); break;
        case 10: r = h_req(&w, 0, &c, &n, fmts[f], 3u, "update_value", "k", &p); break;
        case 11: r = h_req(&w, 0, &c, &n, fmts[f], 3u, "pids_down", 5, "x"); break;
        case 12: r = h_req(&w, 0, &c, &n, fmts[f], 3u, "pids_down", &c, "notalist"); break;
        case 13: r = h_req(&w, 0, &c, &n, fmts[f], 2u, "put_meta", "k"); break;
        case 14: r = h_req(&w, 0, &c, &n, fmts[f], 1u, "delete_meta"); break;
        case 15: r = h_req(&w, 0, &c, &n, fmts[f], 2u, "set_members", 5); break;
        case 16: r = h_req(&w, 0, &c, &n, fmts[f], 2u, "set_members", 1u, 5); break;
        case 17: r = h_req(&w, 0, &c, &n, fmts[f], 2u, "set_members", 1u, 2u, "a", "b"); break;
        case 18: r = h_req(&w, 0, &c, &n, fmts[f], 2u, "members", "x"); break;
        case 19: r = h_req(&w, 0, &c, &n, fmts[f], 1u, "lookup"); break;
        case 20: r = h_req(&w, 0, &c, &n, fmts[f], 3u, "attach", "x", 5); break;
        case 21: r = h_req(&w, 0, &c, &n, fmts[f], 3u, "attach", &c, 5); break;
        case 22: r = h_req(&w, 0, &c, &n, fmts[f], 3u, "attach", &c, 1u, 5); break;
        case 23: r = h_req(&w, 0, &c, &n, fmts[f], 3u, "attach", &c, 1u, 3u, "k", "x", &p); break;
        case 24: r = h_req(&w, 0, &c, &n, fmts[f], 3u, "attach", &c, 1u, 3u, "k", "v", "x"); break;
        case 25: r = h_req(&w, 0, &c, &n, fmts[f], "frobnicate"); break;
        case 26: r = h_req(&w, 0, &c, &n, fmts[f], 2u, "frobnicate", 1); break;
        case 27: r = h_req(&w, 0, &c, &n, fmts[f], 5); break;
        }
        h_expect(r, n, "taa", 2u, "error", "badarg");
    }
    /* an attach whose LAST element is bad writes nothing, not even the record */
    const uint8_t *r =
        h_req(&w, 0, &c, &n, "tapltapataian", 3u, "attach", &remote_c, 2u, 3u, "k9", &p, "v", 3u, "k10", 5, "v");
    h_expect(r, n, "taa", 2u, "error", "badarg");
    /* a register whose Owner hordec names a process of another node */
    r = reg(&w, 0, "k3", &remote_c, "v", NULL, &n);
    h_expect(r, n, "taa", 2u, "error", "badarg");
    /* truncated and too-deep terms */
    hc_buf t = {0};
    hc_buf_append(&t, trunc, sizeof trunc);
    r = h_call(&w, 0, &c, &t, &n);
    h_expect(r, n, "taa", 2u, "error", "badarg");
    hc_buf_reset(&t);
    h_term(&t, "ta", 5u, "register");
    hc_buf_append(&t, deep, sizeof deep);
    hc_enc_atom_cstr(&t, "x");
    h_term(&t, "pap", &p, "v", &c);
    r = h_call(&w, 0, &c, &t, &n);
    h_expect(r, n, "taa", 2u, "error", "badarg");
    hc_buf_free(&t);
    assert_int_equal(hc_crdt_root_hash(hc_registry_core_engine(w.r[0].core)), before);
    assert_int_equal(w.r[0].nmirror, mirror);
    assert_int_equal(w.nexits, 0);
    h_check(&w);
    h_free(&w);
    (void)state;
}

/* A bad peer writes keys and values the registry does not know: they stay invisible, never break anything. */
static void test_foreign_crdt_data_is_invisible(void **state)
{
    h_world w;
    h_init(&w, 1, HC_REGISTRY_UNIQUE);
    hc_pid c = h_beam(10), p = h_beam(11);
    hc_crdt *e = hc_registry_core_engine(w.r[0].core);
    hc_buf k = {0}, v = {0};
    /* {r, Key, Pid} with a value that is not {Value, Owner}; an unknown tag; {r, K, notapid}; a PID_EXT key */
    h_term(&k, "taap", 3u, "r", "k", &p);
    h_term(&v, "i", 5);
    assert_int_equal(hc_crdt_put(e, k.data, k.len, v.data, v.len, w.now), HC_OK);
    hc_buf_reset(&k);
    h_term(&k, "taa", 2u, "zzz", "k");
    assert_int_equal(hc_crdt_put(e, k.data, k.len, v.data, v.len, w.now), HC_OK);
    hc_buf_reset(&k);
    h_term(&k, "taaa", 3u, "r", "k", "x");
    assert_int_equal(hc_crdt_put(e, k.data, k.len, v.data, v.len, w.now), HC_OK);
    hc_buf_reset(&v);
    h_term(&v, "tap", 2u, "v", &c);
    hc_buf_reset(&k);
    h_term(&k, "taa", 3u, "r", "old");
    uint8_t old_pid[] = {103, 119, 6, 'a', '@', 'b', 'e', 'a', 'm', 0, 0, 0, 11, 0, 0, 0, 0, 1};
    hc_buf_append(&k, old_pid, sizeof old_pid);
    assert_int_equal(hc_crdt_put(e, k.data, k.len, v.data, v.len, w.now), HC_OK);
    size_t n;
    const uint8_t *r = h_req(&w, 0, &c, &n, "a", "members"); /* any input runs the pump */
    (void)r;
    assert_int_equal(h_count_reg(&w, 0), 0);
    h_check(&w);
    hc_buf_free(&k);
    hc_buf_free(&v);
    h_free(&w);
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_lookup_unregister),
        cmocka_unit_test(test_update_value),
        cmocka_unit_test(test_meta),
        cmocka_unit_test(test_members_and_neighbours),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_atomic_register),
        cmocka_unit_test(test_pids_down),
        cmocka_unit_test(test_pids_down_keys),
        cmocka_unit_test(test_one_process_many_names),
        cmocka_unit_test(test_big_attach_is_sliced),
        cmocka_unit_test(test_big_attach_bad_element),
        cmocka_unit_test(test_big_attach_client_dies),
        cmocka_unit_test(test_local_process_monitored),
        cmocka_unit_test(test_register_needs_attach),
        cmocka_unit_test(test_attach_records_and_monitors_client),
        cmocka_unit_test(test_client_down_attached_here),
        cmocka_unit_test(test_cut_off_replica_loses_nothing),
        cmocka_unit_test(test_attach_reasserts_after_state_loss),
        cmocka_unit_test(test_membership_removal),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_foreign_crdt_data_is_invisible),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    hc_atom_table_reset();
    return rc;
}
