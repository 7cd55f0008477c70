/* test_crdt_hostile.c — a neighbour that lies: timestamps from the far future (or 2^64-1), claims about
 * another replica's own dots it never issued, the same dot twice, and a delta that is good up to its last
 * record. Each such message is rejected as a whole, counted under its reason, changes nothing, and later
 * writes still win everywhere. Two live replicas sync through a tiny in-test network; the lies are forged
 * with the engine's own encoders, so they are well-formed and pass every decoder check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crdt/codec.h"
#include "crdt/context.h"
#include "crdt/hlc.h"
#include "crdt/replica.h"

#define WALL0 UINT64_C(1700000000000) /* a plausible wall clock, Nov 2023 */
#define A_IN_B 1                      /* the handle B knows A by */
#define B_IN_A 2
#define YEAR_MS (UINT64_C(365) * 24 * 3600 * 1000)

typedef struct world {
    hc_crdt *a, *b;
    uint64_t t; /* ms since the start: both clocks read WALL0 + t */
} world;

static hc_time now(const world *w) { return (hc_time){w->t, WALL0 + w->t}; }

static void drain_events(hc_crdt *r)
{
    hc_crdt_event ev;
    while (hc_crdt_pop_event(r, &ev))
        ;
}

static int deliver(hc_crdt *from, hc_crdt *to, uint64_t handle, hc_time t)
{
    int n = 0;
    hc_crdt_msg m;
    while (hc_crdt_pop_message(from, &m)) {
        hc_crdt_receive(to, handle, m.data, m.len, t);
        n++;
    }
    return n;
}

/* Runs the two replicas until nothing is in flight and both are idle. */
static void settle(world *w)
{
    for (int round = 0; round < 2000; round++) {
        hc_crdt_tick(w->a, now(w));
        hc_crdt_tick(w->b, now(w));
        int n = deliver(w->a, w->b, A_IN_B, now(w)) + deliver(w->b, w->a, B_IN_A, now(w));
        drain_events(w->a);
        drain_events(w->b);
        w->t += 10;
        if (!n && hc_crdt_idle(w->a) && hc_crdt_idle(w->b) && round > 5)
            return;
    }
    fail_msg("the replicas did not settle");
}

static hc_crdt *replica(uint64_t rid, uint64_t max_offset_ms, uint64_t peer, const world *w)
{
    hc_crdt_config cfg;
    hc_crdt_config_init(&cfg, rid);
    if (max_offset_ms)
        cfg.max_clock_offset_ms = max_offset_ms;
    hc_crdt *r;
    assert_int_equal(hc_crdt_new(&cfg, now(w), &r), HC_OK);
    assert_int_equal(hc_crdt_add_neighbour(r, peer, now(w)), HC_OK);
    return r;
}

static void world_init(world *w, uint64_t max_offset_ms)
{
    w->t = 0;
    w->a = replica(0xA, max_offset_ms, B_IN_A, w);
    w->b = replica(0xB, max_offset_ms, A_IN_B, w);
    settle(w);
}

static void world_free(world *w)
{
    hc_crdt_free(w->a);
    hc_crdt_free(w->b);
}

/* Keys and values: small integers as ETF (SMALL_INTEGER_EXT). */
static const uint8_t *term(uint8_t v)
{
    static uint8_t t[256][2];
    t[v][0] = 97;
    t[v][1] = v;
    return t[v];
}

static void put(world *w, hc_crdt *r, uint8_t k, uint8_t v)
{
    assert_int_equal(hc_crdt_put(r, term(k), 2, term(v), 2, now(w)), HC_OK);
    drain_events(r);
}

static int value_of(const hc_crdt *r, uint8_t k)
{
    const uint8_t *v;
    size_t n;
    if (!hc_crdt_get(r, term(k), 2, &v, &n))
        return -1;
    assert_int_equal(n, 2);
    return v[1];
}

/* ---- forging: one delta record at a time, as A would send it to B ---- */

typedef struct forged_elem {
    uint64_t rid, ctr, hlc;
    uint8_t val;
} forged_elem;

typedef struct forged_rec {
    uint8_t key;
    forged_elem elems[3];
    uint32_t n;
    uint64_t removed[4][2];
    uint32_t n_removed;
} forged_rec;

static void enc_recs(hc_buf *b, const forged_rec *recs, uint32_t n)
{
    crdt_enc_list(b, n);
    for (uint32_t i = 0; i < n; i++) {
        const forged_rec *r = &recs[i];
        hc_enc_tuple_header(b, 3);
        hc_enc_raw(b, term(r->key), 2);
        crdt_enc_list(b, r->n);
        for (uint32_t k = 0; k < r->n; k++)
            crdt_enc_elem(b, r->elems[k].rid, r->elems[k].ctr, r->elems[k].hlc, term(r->elems[k].val), 2);
        if (r->n)
            hc_enc_nil(b);
        hc_buf dots = {0};
        for (uint32_t k = 0; k < r->n_removed; k++) {
            hc_buf_put_be64(&dots, r->removed[k][0]);
            hc_buf_put_be64(&dots, r->removed[k][1]);
        }
        hc_enc_binary(b, dots.data, dots.len);
        hc_buf_free(&dots);
    }
    if (n)
        hc_enc_nil(b);
}

/* A `delta` from A to B with the given records; returns what B's receive says. */
static int forge_delta(world *w, uint64_t seq, const forged_rec *recs, uint32_t n)
{
    hc_buf b = {0};
    crdt_enc_header(&b, HC_CRDT_MSG_DELTA, hc_crdt_replica_id(w->a), hc_crdt_incarnation(w->a),
                    hc_crdt_replica_id(w->b), hc_crdt_incarnation(w->b));
    hc_enc_tuple_header(&b, 2);
    hc_enc_ulong(&b, seq);
    enc_recs(&b, recs, n);
    assert_int_equal(b.err, HC_OK);
    int rc = hc_crdt_receive(w->b, A_IN_B, b.data, b.len, now(w));
    hc_buf_free(&b);
    return rc;
}

/* An `elems` message (the repair path's lone-element carrier), from A to B. */
static int forge_elems(world *w, const forged_rec *rec)
{
    hc_buf b = {0};
    crdt_enc_header(&b, HC_CRDT_MSG_ELEMS, hc_crdt_replica_id(w->a), hc_crdt_incarnation(w->a),
                    hc_crdt_replica_id(w->b), hc_crdt_incarnation(w->b));
    hc_enc_tuple_header(&b, 3);
    hc_enc_ulong(&b, 1);
    hc_enc_ulong(&b, 1);
    enc_recs(&b, rec, 1);
    int rc = hc_crdt_receive(w->b, A_IN_B, b.data, b.len, now(w));
    hc_buf_free(&b);
    return rc;
}

static uint64_t rejected(const hc_crdt *r, int reason)
{
    hc_crdt_stats st;
    hc_crdt_get_stats(r, &st);
    return st.rejected[reason];
}

static uint64_t stamp(uint64_t wall_ms) { return crdt_hlc_pack(wall_ms, 0); }

/* What B looks like from outside, to show a rejected message changed nothing. */
typedef struct snapshot {
    uint64_t root, hlc, ctx_hash;
    size_t size, out_n, ev_n, acks;
} snapshot;

static snapshot snap(const hc_crdt *r)
{
    return (snapshot){
        hc_crdt_root_hash(r), hc_crdt_hlc_last(r), crdt_ctx_hash(&r->ctx), hc_crdt_size(r), r->out_n, r->ev_n,
        r->peers[0].n_acks};
}

static void assert_unchanged(const hc_crdt *r, const snapshot *before)
{
    snapshot s = snap(r);
    assert_true(s.root == before->root);
    assert_true(s.hlc == before->hlc);
    assert_true(s.ctx_hash == before->ctx_hash);
    assert_true(s.size == before->size);
    assert_true(s.out_n == before->out_n);
    assert_true(s.ev_n == before->ev_n);
    assert_true(s.acks == before->acks);
    assert_int_equal(hc_crdt_check(r, NULL, 0), HC_OK);
}

/* ---- 3. clocks ---- */

static void test_future_stamp_rejected_and_later_writes_win(void **state)
{
    (void)state;
    world w;
    world_init(&w, 0);
    put(&w, w.a, 1, 10);
    settle(&w);
    assert_int_equal(value_of(w.b, 1), 10);

    /* A write stamped 100 years ahead, as a hostile A (or one whose clock jumped) would send it */
    snapshot before = snap(w.b);
    forged_rec far = {1, {{0xA, 1000, stamp(WALL0 + w.t + 100 * YEAR_MS), 66}}, 1, {{0}}, 0};
    assert_int_equal(forge_delta(&w, 1000, &far, 1), HC_EDECODE);
    assert_int_equal(rejected(w.b, HC_CRDT_REJ_CLOCK), 1);
    assert_unchanged(w.b, &before);
    assert_int_equal(value_of(w.b, 1), 10);

    /* 2^64-1: rejected too, never observed (it would wrap the clock to 0 on the next write) */
    forged_rec top = {1, {{0xA, 1001, UINT64_MAX, 67}}, 1, {{0}}, 0};
    assert_int_equal(forge_delta(&w, 1001, &top, 1), HC_EDECODE);
    assert_int_equal(rejected(w.b, HC_CRDT_REJ_CLOCK), 2);
    assert_unchanged(w.b, &before);

    /* the repair path's carrier is held to the same bound */
    assert_int_equal(forge_elems(&w, &far), HC_EDECODE);
    assert_int_equal(rejected(w.b, HC_CRDT_REJ_CLOCK), 3);
    assert_unchanged(w.b, &before);

    /* later writes, from either side, still win everywhere */
    w.t += 5;
    put(&w, w.b, 1, 20);
    settle(&w);
    assert_int_equal(value_of(w.a, 1), 20);
    assert_int_equal(value_of(w.b, 1), 20);
    w.t += 5;
    put(&w, w.a, 1, 30);
    settle(&w);
    assert_int_equal(value_of(w.a, 1), 30);
    assert_int_equal(value_of(w.b, 1), 30);
    assert_true(hc_crdt_hlc_last(w.b) < stamp(WALL0 + w.t + HC_CRDT_DEFAULT_MAX_CLOCK_OFFSET_MS));
    world_free(&w);
}

static void test_stamp_within_bound_accepted(void **state)
{
    (void)state;
    world w;
    world_init(&w, 0);
    /* a clock 59 s ahead is within the default bound (60 s): its write is accepted and wins */
    forged_rec ahead = {2, {{0xA, 1, stamp(WALL0 + w.t + 59000), 5}}, 1, {{0}}, 0};
    assert_int_equal(forge_delta(&w, 1, &ahead, 1), HC_OK);
    assert_int_equal(value_of(w.b, 2), 5);
    assert_int_equal(rejected(w.b, HC_CRDT_REJ_CLOCK), 0);
    /* and the HLC follows it, so B's next write still orders after it */
    put(&w, w.b, 2, 6);
    assert_int_equal(value_of(w.b, 2), 6);
    world_free(&w);
}

static void test_bound_is_configurable(void **state)
{
    (void)state;
    world w;
    world_init(&w, 1000);
    assert_int_equal(hc_crdt_max_clock_offset(w.b), 1000);
    forged_rec ahead = {3, {{0xA, 1, stamp(WALL0 + w.t + 2000), 5}}, 1, {{0}}, 0};
    assert_int_equal(forge_delta(&w, 1, &ahead, 1), HC_EDECODE);
    assert_int_equal(rejected(w.b, HC_CRDT_REJ_CLOCK), 1);
    /* once B's clock has caught up, the same write is fine */
    w.t += 1500;
    assert_int_equal(forge_delta(&w, 1, &ahead, 1), HC_OK);
    assert_int_equal(value_of(w.b, 3), 5);
    world_free(&w);
}

static void test_hlc_never_wraps(void **state)
{
    (void)state;
    crdt_hlc c = {UINT64_MAX - 1};
    assert_true(crdt_hlc_next(&c, 5) == UINT64_MAX);
    assert_true(crdt_hlc_next(&c, 5) == UINT64_MAX); /* saturates: never 0 */
    assert_true(crdt_hlc_bound(UINT64_MAX - 3, 60000) == UINT64_MAX);
    assert_true(crdt_hlc_bound(1000, UINT64_MAX) == UINT64_MAX);
    assert_true(crdt_hlc_bound(1000, 500) == crdt_hlc_pack(1500, 0xffff));
}

/* ---- 4. poisoned causal context ---- */

static void test_claims_about_own_dots_rejected(void **state)
{
    (void)state;
    world w;
    world_init(&w, 0);
    put(&w, w.b, 1, 1);
    settle(&w);
    uint64_t issued = w.b->counter;
    snapshot before = snap(w.b);

    /* "B's next ten writes were removed": dots B never issued, as removed dots of some key */
    forged_rec rm = {9, {{0}}, 0, {{0xB, issued + 1}, {0xB, issued + 5}, {0xB, issued + 10}}, 3};
    assert_int_equal(forge_delta(&w, 7, &rm, 1), HC_EDECODE);
    assert_int_equal(rejected(w.b, HC_CRDT_REJ_OWN_DOTS), 1);
    assert_unchanged(w.b, &before);
    assert_false(hc_crdt_context_has(w.b, 0xB, issued + 1));

    /* a write in B's name that B never made */
    forged_rec fake = {9, {{0xB, issued + 3, stamp(WALL0 + w.t), 9}}, 1, {{0}}, 0};
    assert_int_equal(forge_delta(&w, 8, &fake, 1), HC_EDECODE);
    assert_int_equal(rejected(w.b, HC_CRDT_REJ_OWN_DOTS), 2);
    assert_unchanged(w.b, &before);

    /* a repair context piece claiming B's future dots */
    hc_buf piece = {0}, b = {0};
    hc_buf_put_be64(&piece, 0xB);
    hc_buf_put_be64(&piece, issued + 10);
    hc_buf_put_be32(&piece, 0);
    crdt_enc_header(&b, HC_CRDT_MSG_CTX, 0xA, hc_crdt_incarnation(w.a), 0xB, hc_crdt_incarnation(w.b));
    hc_enc_tuple_header(&b, 5);
    hc_enc_ulong(&b, 99);
    hc_enc_ulong(&b, 1);
    hc_enc_ulong(&b, 0);
    hc_enc_ulong(&b, 1);
    hc_enc_binary(&b, piece.data, piece.len);
    assert_int_equal(hc_crdt_receive(w.b, A_IN_B, b.data, b.len, now(&w)), HC_EDECODE);
    assert_int_equal(rejected(w.b, HC_CRDT_REJ_OWN_DOTS), 3);
    assert_unchanged(w.b, &before);
    hc_buf_free(&piece);
    hc_buf_free(&b);

    /* claims up to what B issued are normal (A saw B's write and removed it) */
    forged_rec ok = {1, {{0}}, 0, {{0xB, issued}}, 1};
    assert_int_equal(forge_delta(&w, 9, &ok, 1), HC_OK);
    assert_int_equal(value_of(w.b, 1), -1);

    /* B's next ten acknowledged writes survive, on B and on A */
    for (uint8_t k = 20; k < 30; k++)
        put(&w, w.b, k, k);
    settle(&w);
    for (uint8_t k = 20; k < 30; k++) {
        assert_int_equal(value_of(w.b, k), k);
        assert_int_equal(value_of(w.a, k), k);
    }
    world_free(&w);
}

static void test_duplicate_dots_rejected(void **state)
{
    (void)state;
    world w;
    world_init(&w, 0);
    snapshot before = snap(w.b);
    uint64_t t = stamp(WALL0 + w.t);
    /* one write named under two keys */
    forged_rec two[2] = {{4, {{0xA, 50, t, 1}}, 1, {{0}}, 0}, {5, {{0xA, 50, t, 2}}, 1, {{0}}, 0}};
    assert_int_equal(forge_delta(&w, 1, two, 2), HC_EDECODE);
    assert_int_equal(rejected(w.b, HC_CRDT_REJ_DUPLICATE), 1);
    assert_unchanged(w.b, &before);
    /* twice in one record */
    forged_rec twice = {4, {{0xA, 51, t, 1}, {0xA, 51, t + 1, 2}}, 2, {{0}}, 0};
    assert_int_equal(forge_delta(&w, 2, &twice, 1), HC_EDECODE);
    /* a write both present and removed */
    forged_rec both = {4, {{0xA, 52, t, 1}}, 1, {{0xA, 52}}, 1};
    assert_int_equal(forge_delta(&w, 3, &both, 1), HC_EDECODE);
    /* removed twice */
    forged_rec rm2 = {4, {{0}}, 0, {{0xA, 53}, {0xA, 53}}, 2};
    assert_int_equal(forge_delta(&w, 4, &rm2, 1), HC_EDECODE);
    assert_int_equal(rejected(w.b, HC_CRDT_REJ_DUPLICATE), 4);
    assert_unchanged(w.b, &before);
    world_free(&w);
}

static void test_delta_all_or_nothing(void **state)
{
    (void)state;
    world w;
    world_init(&w, 0);
    put(&w, w.b, 1, 1);
    settle(&w);
    snapshot before = snap(w.b);
    uint64_t t = stamp(WALL0 + w.t);
    /* two good records, then a bad one: none of them may be applied, nothing acknowledged */
    forged_rec recs[3] = {
        {40, {{0xA, 60, t, 40}}, 1, {{0}}, 0},
        {41, {{0xA, 61, t, 41}}, 1, {{0}}, 0},
        {42, {{0xB, w.b->counter + 1, t, 42}}, 1, {{0}}, 0},
    };
    assert_int_equal(forge_delta(&w, 77, recs, 3), HC_EDECODE);
    assert_unchanged(w.b, &before);
    assert_int_equal(value_of(w.b, 40), -1);
    assert_false(hc_crdt_context_has(w.b, 0xA, 60));
    /* the same with a future stamp last */
    recs[2] = (forged_rec){42, {{0xA, 62, stamp(WALL0 + w.t + YEAR_MS), 42}}, 1, {{0}}, 0};
    assert_int_equal(forge_delta(&w, 78, recs, 3), HC_EDECODE);
    assert_unchanged(w.b, &before);
    /* and without the bad record, both apply */
    assert_int_equal(forge_delta(&w, 79, recs, 2), HC_OK);
    assert_int_equal(value_of(w.b, 40), 40);
    assert_int_equal(value_of(w.b, 41), 41);
    world_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_future_stamp_rejected_and_later_writes_win),
        cmocka_unit_test(test_stamp_within_bound_accepted),
        cmocka_unit_test(test_bound_is_configurable),
        cmocka_unit_test(test_hlc_never_wraps),
        cmocka_unit_test(test_claims_about_own_dots_rejected),
        cmocka_unit_test(test_duplicate_dots_rejected),
        cmocka_unit_test(test_delta_all_or_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
