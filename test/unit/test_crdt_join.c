/* test_crdt_join.c — the lattice laws of the replica state (join commutative, associative, idempotent),
 * delta joins equal state joins, HLC order, causal-context bookkeeping, local operation semantics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crdt/context.h"
#include "crdt/hash.h"
#include "crdt/hlc.h"
#include "crdt/replica.h"

/* Tests give both clocks the same reading unless a test is about their difference. */
static hc_time T(uint64_t ms) { return (hc_time){ms, ms}; }

static uint64_t seed = 12345;
static uint64_t rnd(void)
{
    uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static size_t key_term(uint8_t *out, uint32_t k)
{
    uint8_t t[] = {98, (uint8_t)(k >> 24), (uint8_t)(k >> 16), (uint8_t)(k >> 8), (uint8_t)k};
    memcpy(out, t, 5);
    return 5;
}

static hc_crdt *replica(uint64_t rid)
{
    hc_crdt_config cfg;
    hc_crdt_config_init(&cfg, rid);
    hc_crdt *r;
    assert_int_equal(hc_crdt_new(&cfg, T(1000), &r), HC_OK);
    return r;
}

static void drain_events(hc_crdt *r)
{
    hc_crdt_event ev;
    while (hc_crdt_pop_event(r, &ev))
        ;
}

/* dst := dst ⊔ src, the full-state join (what a complete repair achieves). */
static void join_into(hc_crdt *dst, const hc_crdt *src)
{
    crdt_entry **absent = NULL;
    size_t n = 0;
    for (size_t b = 0; b < crdt_map_nbuckets(&dst->map); b++)
        for (crdt_entry *e = dst->map.buckets[b]; e; e = e->next)
            if (!crdt_map_find(&src->map, e->key, e->key_len, e->hash)) {
                absent = realloc(absent, (n + 1) * sizeof *absent);
                absent[n++] = e;
            }
    for (size_t i = 0; i < n; i++)
        assert_int_equal(crdt_apply_absent(dst, absent[i], &src->ctx), HC_OK);
    free(absent);
    for (size_t b = 0; b < crdt_map_nbuckets(&src->map); b++)
        for (crdt_entry *e = src->map.buckets[b]; e; e = e->next) {
            crdt_wire_elem we[16];
            assert_true(e->n <= 16);
            for (uint32_t i = 0; i < e->n; i++)
                we[i] = (crdt_wire_elem){e->elems[i].rid,
                                         e->elems[i].ctr,
                                         e->elems[i].hlc,
                                         {e->elems[i].val->data, e->elems[i].val->len},
                                         1};
            crdt_wire_rec rec = {{e->key, e->key_len}, we, e->n, {NULL, 0}};
            assert_int_equal(crdt_apply_record(dst, &rec, &src->ctx), HC_OK);
        }
    assert_int_equal(crdt_ctx_merge(&dst->ctx, &src->ctx), HC_OK);
    drain_events(dst);
    assert_int_equal(hc_crdt_check(dst, NULL, 0), HC_OK);
}

static hc_crdt *clone(const hc_crdt *x, uint64_t rid)
{
    hc_crdt *c = replica(rid);
    join_into(c, x);
    return c;
}

static void assert_same_state(const hc_crdt *a, const hc_crdt *b)
{
    assert_int_equal(hc_crdt_size(a), hc_crdt_size(b));
    assert_true(hc_crdt_root_hash(a) == hc_crdt_root_hash(b));
    assert_true(crdt_ctx_hash(&a->ctx) == crdt_ctx_hash(&b->ctx));
    for (size_t bk = 0; bk < crdt_map_nbuckets(&a->map); bk++)
        for (crdt_entry *e = a->map.buckets[bk]; e; e = e->next) {
            const uint8_t *v;
            size_t vl;
            assert_int_equal(hc_crdt_get(b, e->key, e->key_len, &v, &vl), true);
            assert_int_equal(vl, e->elems[0].val->len);
            assert_memory_equal(v, e->elems[0].val->data, vl);
        }
}

static void random_ops(hc_crdt *r, int n, uint64_t *now)
{
    for (int i = 0; i < n; i++) {
        uint8_t key[8], val[16] = {97, 0};
        size_t kl = key_term(key, (uint32_t)(rnd() % 40));
        *now += rnd() % 3;
        if (rnd() % 4 == 0) {
            assert_int_equal(hc_crdt_delete(r, key, kl, T(*now)), HC_OK);
        } else {
            val[1] = (uint8_t)rnd();
            assert_int_equal(hc_crdt_put(r, key, kl, val, 2, T(*now)), HC_OK);
        }
    }
    drain_events(r);
}

/* Three replicas that write, partially exchange state and write again: concurrent elements, removed
 * dots and gaps in contexts all occur. */
static void diverged(hc_crdt *x[3])
{
    uint64_t now = 1000 + rnd() % 100;
    for (int i = 0; i < 3; i++) {
        x[i] = replica(100 + (uint64_t)i);
        random_ops(x[i], 30, &now);
    }
    join_into(x[1], x[0]);
    random_ops(x[0], 20, &now);
    random_ops(x[1], 20, &now);
    join_into(x[2], x[1]);
    random_ops(x[2], 20, &now);
    random_ops(x[0], 10, &now);
}

static void free3(hc_crdt *x[3])
{
    for (int i = 0; i < 3; i++)
        hc_crdt_free(x[i]);
}

static void test_join_commutative(void **state)
{
    (void)state;
    for (int round = 0; round < 30; round++) {
        hc_crdt *x[3];
        diverged(x);
        hc_crdt *ab = clone(x[0], 900), *ba = clone(x[1], 901);
        join_into(ab, x[1]);
        join_into(ba, x[0]);
        assert_same_state(ab, ba);
        hc_crdt_free(ab);
        hc_crdt_free(ba);
        free3(x);
    }
}

static void test_join_associative(void **state)
{
    (void)state;
    for (int round = 0; round < 30; round++) {
        hc_crdt *x[3];
        diverged(x);
        hc_crdt *left = clone(x[0], 900), *bc = clone(x[1], 901), *right = clone(x[0], 902);
        join_into(left, x[1]);
        join_into(left, x[2]);
        join_into(bc, x[2]);
        join_into(right, bc);
        assert_same_state(left, right);
        hc_crdt_free(left);
        hc_crdt_free(bc);
        hc_crdt_free(right);
        free3(x);
    }
}

static void test_join_idempotent(void **state)
{
    (void)state;
    for (int round = 0; round < 30; round++) {
        hc_crdt *x[3];
        diverged(x);
        hc_crdt *a = clone(x[2], 900);
        join_into(a, x[2]);
        join_into(a, a);
        assert_same_state(a, x[2]);
        hc_crdt_free(a);
        free3(x);
    }
}

/* Makes `r` treat peer 1 as a known, greeted neighbour so flushes produce delta messages. */
static void fake_peer(hc_crdt *r)
{
    assert_int_equal(hc_crdt_add_neighbour(r, 1, T(0)), HC_OK);
    crdt_peer *p = crdt_peer_find(r, 1);
    p->rid = 77;
    p->inc = 1;
    p->heard_me = 1;
    p->needs_repair = 0;
}

static void test_delta_join_equals_state_join(void **state)
{
    (void)state;
    for (int round = 0; round < 30; round++) {
        hc_crdt *x[3];
        diverged(x);
        fake_peer(x[0]);
        hc_crdt *via_deltas = clone(x[1], 900);
        hc_crdt_msg m;
        while (hc_crdt_pop_message(x[0], &m))
            ;
        uint64_t now = 5000;
        random_ops(x[0], 40, &now);
        assert_int_equal(hc_crdt_flush(x[0], T(now)), HC_OK);
        while (hc_crdt_pop_message(x[0], &m)) {
            crdt_msg dm;
            assert_int_equal(crdt_msg_decode(m.data, m.len, &dm), HC_OK);
            assert_int_equal(dm.type, HC_CRDT_MSG_DELTA);
            for (uint32_t i = 0; i < dm.n_recs; i++)
                assert_int_equal(crdt_apply_record(via_deltas, &dm.recs[i], NULL), HC_OK);
            crdt_msg_free(&dm);
        }
        drain_events(via_deltas);
        assert_int_equal(hc_crdt_check(via_deltas, NULL, 0), HC_OK);
        /* x1 ⊔ Δ ⊔ x0 must equal x1 ⊔ x0: deltas are joins of state fragments */
        hc_crdt *via_state = clone(x[1], 901);
        join_into(via_state, x[0]);
        join_into(via_deltas, x[0]);
        assert_same_state(via_deltas, via_state);
        hc_crdt_free(via_deltas);
        hc_crdt_free(via_state);
        free3(x);
    }
}

/* A replica that missed nothing but the ops of a burst converges by deltas alone. */
static void test_deltas_alone_converge(void **state)
{
    (void)state;
    hc_crdt *a = replica(1);
    fake_peer(a);
    uint64_t now = 1000;
    random_ops(a, 50, &now);
    hc_crdt_flush(a, T(now));
    hc_crdt *b = replica(2);
    hc_crdt_msg m;
    while (hc_crdt_pop_message(a, &m)) {
        crdt_msg dm;
        assert_int_equal(crdt_msg_decode(m.data, m.len, &dm), HC_OK);
        for (uint32_t i = 0; i < dm.n_recs; i++)
            assert_int_equal(crdt_apply_record(b, &dm.recs[i], NULL), HC_OK);
        crdt_msg_free(&dm);
    }
    drain_events(b);
    assert_same_state(a, b);
    hc_crdt_free(a);
    hc_crdt_free(b);
}

static void test_hlc_monotonic_and_tiebreak(void **state)
{
    (void)state;
    crdt_hlc c = {0};
    uint64_t prev = 0;
    for (int i = 0; i < 100000; i++) { /* same millisecond many times, and a clock going backwards */
        uint64_t t = crdt_hlc_next(&c, i < 50000 ? 1000 : 900);
        assert_true(t > prev);
        prev = t;
    }
    crdt_hlc_observe(&c, crdt_hlc_pack(5000, 3));
    assert_true(crdt_hlc_next(&c, 1000) > crdt_hlc_pack(5000, 3));
    /* equal timestamps: the greater replica id wins, deterministically */
    crdt_elem x = {1, 1, 42, NULL}, y = {2, 1, 42, NULL};
    assert_true(crdt_elem_newer(&y, &x));
    assert_false(crdt_elem_newer(&x, &y));
    crdt_elem z = {1, 1, 43, NULL};
    assert_true(crdt_elem_newer(&z, &y));
}

static void test_write_after_observing_wins(void **state)
{
    (void)state;
    hc_crdt *fast = replica(9), *slow = replica(1); /* fast's clock is an hour ahead */
    uint8_t key[8], v1[2] = {97, 1}, v2[2] = {97, 2};
    size_t kl = key_term(key, 7);
    assert_int_equal(hc_crdt_put(fast, key, kl, v1, 2, T(3600000 + 1000)), HC_OK);
    join_into(slow, fast);
    assert_int_equal(hc_crdt_put(slow, key, kl, v2, 2, T(1000)), HC_OK);
    join_into(fast, slow);
    const uint8_t *v;
    size_t vl;
    assert_true(hc_crdt_get(fast, key, kl, &v, &vl));
    assert_int_equal(v[1], 2);
    hc_crdt_free(fast);
    hc_crdt_free(slow);
}

static void test_concurrent_adds_keep_both(void **state)
{
    (void)state;
    hc_crdt *a = replica(1), *b = replica(2);
    uint8_t key[8], v1[2] = {97, 1}, v2[2] = {97, 2};
    size_t kl = key_term(key, 1);
    hc_crdt_put(a, key, kl, v1, 2, T(1000));
    hc_crdt_put(b, key, kl, v2, 2, T(1000));
    join_into(a, b);
    hc_crdt_elem_info el[4];
    assert_int_equal(hc_crdt_elements(a, key, kl, el, 4), 2);
    assert_int_equal(el[0].replica_id, 2); /* same HLC: replica id breaks the tie */
    /* a delete at a removes both (it observed both); b's concurrent-free state then loses its element */
    hc_crdt_delete(a, key, kl, T(1001));
    join_into(b, a);
    assert_false(hc_crdt_get(b, key, kl, NULL, NULL));
    hc_crdt_free(a);
    hc_crdt_free(b);
}

static void test_events_only_on_change(void **state)
{
    (void)state;
    hc_crdt *a = replica(1);
    uint8_t key[8], v1[2] = {97, 1};
    size_t kl = key_term(key, 1);
    hc_crdt_event ev;
    hc_crdt_put(a, key, kl, v1, 2, T(1000));
    assert_true(hc_crdt_pop_event(a, &ev));
    assert_int_equal(ev.kind, HC_CRDT_ADDED);
    assert_null(ev.old_value);
    hc_crdt_put(a, key, kl, v1, 2, T(1001)); /* same value: no event */
    assert_false(hc_crdt_pop_event(a, &ev));
    hc_crdt_delete(a, key, kl, T(1002));
    assert_true(hc_crdt_pop_event(a, &ev));
    assert_int_equal(ev.kind, HC_CRDT_REMOVED);
    assert_memory_equal(ev.old_value, v1, 2);
    hc_crdt_delete(a, key, kl, T(1003));
    assert_false(hc_crdt_pop_event(a, &ev));
    hc_crdt_free(a);
}

static void test_put_validation(void **state)
{
    (void)state;
    hc_crdt *a = replica(1);
    uint8_t key[8], bad[2] = {200, 1};
    size_t kl = key_term(key, 1);
    assert_int_equal(hc_crdt_put(a, key, kl, bad, 2, T(1)), HC_EINVAL);
    assert_int_equal(hc_crdt_put(a, bad, 2, key, kl, T(1)), HC_EINVAL);
    size_t big = a->cfg.max_message_bytes;
    uint8_t *v = calloc(1, big + 5);
    v[0] = 109;
    v[1] = (uint8_t)(big >> 24), v[2] = (uint8_t)(big >> 16), v[3] = (uint8_t)(big >> 8), v[4] = (uint8_t)big;
    assert_int_equal(hc_crdt_put(a, key, kl, v, big + 5, T(1)), HC_ETOOBIG);
    size_t ok = big - HC_CRDT_VALUE_OVERHEAD - kl - 5;
    v[1] = (uint8_t)(ok >> 24), v[2] = (uint8_t)(ok >> 16), v[3] = (uint8_t)(ok >> 8), v[4] = (uint8_t)ok;
    assert_int_equal(hc_crdt_put(a, key, kl, v, ok + 5, T(1)), HC_OK);
    free(v);
    assert_int_equal(hc_crdt_size(a), 1);
    hc_crdt_free(a);
}

static void test_context_gaps(void **state)
{
    (void)state;
    crdt_ctx c;
    crdt_ctx_init(&c);
    for (uint64_t i = 1000; i >= 2; i--) /* worst order: every insert is a gap until the last */
        assert_int_equal(crdt_ctx_add(&c, 5, i), HC_OK);
    assert_int_equal(crdt_ctx_base(&c, 5), 0);
    assert_int_equal(crdt_ctx_cloud_size(&c), 999);
    assert_false(crdt_ctx_has(&c, 5, 1));
    crdt_ctx_add(&c, 5, 1);
    assert_int_equal(crdt_ctx_base(&c, 5), 1000);
    assert_int_equal(crdt_ctx_cloud_size(&c), 0);
    crdt_ctx_add(&c, 6, 10);
    crdt_ctx_add(&c, 6, 12);
    hc_buf *pieces;
    size_t n;
    assert_int_equal(crdt_ctx_encode_pieces(&c, 40, &pieces, &n), HC_OK);
    assert_true(n >= 2);
    crdt_ctx d;
    crdt_ctx_init(&d);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(crdt_ctx_merge_piece(&d, pieces[i].data, pieces[i].len), HC_OK);
        hc_buf_free(&pieces[i]);
    }
    free(pieces);
    assert_true(crdt_ctx_hash(&c) == crdt_ctx_hash(&d));
    assert_true(crdt_ctx_has(&d, 6, 12) && !crdt_ctx_has(&d, 6, 11));
    uint8_t junk[21] = {0};
    assert_int_equal(crdt_ctx_merge_piece(&d, junk, sizeof junk), HC_EDECODE);
    crdt_ctx_free(&c);
    crdt_ctx_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_commutative),
        cmocka_unit_test(test_join_associative),
        cmocka_unit_test(test_join_idempotent),
        cmocka_unit_test(test_delta_join_equals_state_join),
        cmocka_unit_test(test_deltas_alone_converge),
        cmocka_unit_test(test_hlc_monotonic_and_tiebreak),
        cmocka_unit_test(test_write_after_observing_wins),
        cmocka_unit_test(test_concurrent_adds_keep_both),
        cmocka_unit_test(test_events_only_on_change),
        cmocka_unit_test(test_put_validation),
        cmocka_unit_test(test_context_gaps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
