/* test_crdt_slices.c — big work is done a slice per loop turn, never all at once:
 *  - a cursor reads the map as it was when opened, however the map changes between slices;
 *  - a whole-map read (to_map) of a big map is answered after several ticks, each a bounded slice, with the
 *    map of the moment it was asked, although writes land in between;
 *  - a flush of many pending keys ships at most a slice per tick, and no delta batch or repair chunk carries
 *    more than CRDT_MAX_RECS_PER_MSG records (the receiver joins a message in one go);
 *  - the lag a replica reports for a neighbour that stops acknowledging grows, and is 0 again once it caught up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crdt/codec.h"
#include "crdt/replica.h"
#include "hordec/hc_crdt.h"

static hc_time T(uint64_t ms) { return (hc_time){ms, 1700000000000 + ms}; }

static uint64_t seed = 4242;
static uint64_t rnd(void)
{
    uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* INTEGER_EXT terms for keys and values */
static void int_term(uint8_t out[5], uint32_t v)
{
    out[0] = 98;
    out[1] = (uint8_t)(v >> 24);
    out[2] = (uint8_t)(v >> 16);
    out[3] = (uint8_t)(v >> 8);
    out[4] = (uint8_t)v;
}

static uint32_t term_int(const uint8_t *p) { return (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | p[3] << 8 | p[4]; }

static void put(hc_crdt *r, uint32_t k, uint32_t v, uint64_t t)
{
    uint8_t kb[5], vb[5];
    int_term(kb, k);
    int_term(vb, v);
    assert_int_equal(hc_crdt_put(r, kb, 5, vb, 5, T(t)), HC_OK);
}

static void del(hc_crdt *r, uint32_t k, uint64_t t)
{
    uint8_t kb[5];
    int_term(kb, k);
    assert_int_equal(hc_crdt_delete(r, kb, 5, T(t)), HC_OK);
}

static void drain_events(hc_crdt *r)
{
    hc_crdt_event ev;
    while (hc_crdt_pop_event(r, &ev))
        ;
}

#define KEYS 20000u
#define NOVAL UINT32_MAX

/* map[k] = value, or NOVAL */
typedef struct view {
    uint32_t v[KEYS * 2];
    size_t n;
} view;

static int collect(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    view *w = ud;
    assert_int_equal(kl, 5);
    assert_int_equal(vl, 5);
    uint32_t key = term_int(k);
    assert_true(key < KEYS * 2);
    assert_true(w->v[key] == NOVAL); /* each key once */
    w->v[key] = term_int(v);
    w->n++;
    return 0;
}

static void view_init(view *w)
{
    for (size_t i = 0; i < KEYS * 2; i++)
        w->v[i] = NOVAL;
    w->n = 0;
}

static hc_crdt *replica(uint64_t rid)
{
    hc_crdt_config cfg;
    hc_crdt_config_init(&cfg, rid);
    hc_crdt *r;
    assert_int_equal(hc_crdt_new(&cfg, T(0), &r), HC_OK);
    return r;
}

static void test_cursor_reads_the_map_it_opened_on(void **state)
{
    (void)state;
    hc_crdt *r = replica(1);
    uint64_t t = 1;
    for (uint32_t k = 0; k < KEYS; k++)
        put(r, k, k, t++);
    drain_events(r);
    static view at_open, c1, c2;
    view_init(&at_open);
    hc_crdt_foreach(r, collect, &at_open);

    hc_crdt_cursor *a, *b, *doomed;
    assert_int_equal(hc_crdt_cursor_open(r, &a), HC_OK);
    assert_int_equal(hc_crdt_cursor_open(r, &doomed), HC_OK);
    assert_int_equal(hc_crdt_cursor_count(a), KEYS);
    view_init(&c1);
    int rc, slices = 0;
    do {
        size_t got = 0;
        rc = hc_crdt_cursor_next(a, 500, &got, collect, &c1);
        assert_true(rc == 0 || rc == 1);
        assert_true(got < 500 + 64); /* whole buckets: a few more than asked at most */
        slices++;
        if (slices == 3)
            hc_crdt_cursor_close(doomed); /* closing one cursor leaves the others alone */
        /* a second reader, opened mid-way, sees the map of its own moment */
        if (slices == 5) {
            view_init(&c2);
            hc_crdt_foreach(r, collect, &c2);
            assert_int_equal(hc_crdt_cursor_open(r, &b), HC_OK);
        }
        /* between slices: overwrites, deletes, new keys, ahead of the cursor and behind it */
        for (int op = 0; op < 200; op++) {
            uint32_t k = (uint32_t)(rnd() % (KEYS * 2));
            if (rnd() % 3 == 0)
                del(r, k, t++);
            else
                put(r, k, (uint32_t)(rnd() % 1000000), t++);
        }
        drain_events(r);
    } while (rc == 1);
    assert_true(slices > 10);
    assert_int_equal(c1.n, at_open.n);
    assert_memory_equal(c1.v, at_open.v, sizeof c1.v);
    hc_crdt_cursor_close(a);

    /* the second one's map is the one of its own moment */
    static view c2_read;
    view_init(&c2_read);
    size_t expect = hc_crdt_cursor_count(b);
    while ((rc = hc_crdt_cursor_next(b, 1000, NULL, collect, &c2_read)) == 1) {
        for (int op = 0; op < 300; op++)
            put(r, (uint32_t)(rnd() % (KEYS * 2)), 7, t++);
        drain_events(r);
    }
    assert_int_equal(rc, HC_OK);
    assert_int_equal(c2_read.n, expect);
    assert_memory_equal(c2_read.v, c2.v, sizeof c2.v);
    hc_crdt_cursor_close(b);
    assert_int_equal(hc_crdt_check(r, NULL, 0), HC_OK);

    /* a cursor that outlives its replica answers HC_ESTATE, and closes cleanly */
    hc_crdt_cursor *orphan;
    assert_int_equal(hc_crdt_cursor_open(r, &orphan), HC_OK);
    hc_crdt_free(r);
    assert_int_equal(hc_crdt_cursor_next(orphan, 10, NULL, collect, &c2_read), HC_ESTATE);
    hc_crdt_cursor_close(orphan);
}

/* ---- the map core: a to_map of a big map ---- */

static uint64_t reply_token;
static hc_buf reply;

static int pop_reply(void *core)
{
    hc_effect e;
    int n = 0;
    while (hc_crdt_core_ops.pop_effect(core, &e))
        if (e.kind == HC_EFF_REPLY) {
            reply_token = e.token;
            hc_buf_reset(&reply);
            hc_buf_append(&reply, e.data, e.len);
            n++;
        }
    return n;
}

static void test_to_map_answered_in_slices(void **state)
{
    (void)state;
    hc_crdt_config cfg;
    hc_crdt_config_init(&cfg, 9);
    void *core;
    assert_int_equal(hc_crdt_core_new(&cfg, T(0), &core), HC_OK);
    hc_crdt *r = hc_crdt_core_engine(core);
    uint64_t t = 1;
    for (uint32_t k = 0; k < KEYS; k++)
        put(r, k, k + 1, t++);
    pop_reply(core);
    static view expected;
    view_init(&expected);
    hc_crdt_foreach(r, collect, &expected);

    hc_buf req = {0};
    hc_enc_atom_cstr(&req, "to_map");
    hc_crdt_core_ops.request(core, 77, NULL, req.data, req.len, T(t));
    assert_int_equal(pop_reply(core), 0); /* not at once: the map is big */
    assert_int_equal(hc_crdt_core_ops.next_deadline(core), 0);
    int ticks = 0;
    while (!pop_reply(core)) {
        assert_true(++ticks < 100);
        for (int op = 0; op < 100; op++) { /* writes between the slices do not show in the reply */
            uint32_t k = (uint32_t)(rnd() % (KEYS * 2));
            if (rnd() % 2)
                del(r, k, t++);
            else
                put(r, k, 0, t++);
        }
        hc_crdt_core_ops.tick(core, T(t));
    }
    assert_true(ticks >= 2);
    assert_int_equal(reply_token, 77);
    /* the reply is the map of the moment it was asked */
    static view got;
    view_init(&got);
    size_t i = 0;
    hc_iter it;
    assert_int_equal(hc_iter_map(&it, reply.data, reply.len, &i), HC_OK);
    hc_span k, v;
    while (hc_iter_next_pair(&it, &k, &v))
        collect(&got, k.p, k.len, v.p, v.len);
    assert_int_equal(i, reply.len);
    assert_int_equal(got.n, expected.n);
    assert_memory_equal(got.v, expected.v, sizeof got.v);

    /* a core freed with a read in progress frees it too (ASan/LSan watch this) */
    hc_crdt_core_ops.request(core, 78, NULL, req.data, req.len, T(t));
    hc_crdt_core_ops.free(core);
    hc_buf_free(&req);
    hc_buf_free(&reply);
}

/* ---- flush and repair slices ---- */

static uint32_t recs_in(const hc_crdt_msg *m, int *type)
{
    crdt_msg d;
    assert_int_equal(crdt_msg_decode(m->data, m->len, &d), HC_OK);
    uint32_t n = d.n_recs;
    *type = d.type;
    crdt_msg_free(&d);
    return n;
}

typedef struct traffic {
    uint32_t delta_recs, chunk_recs, max_recs;
} traffic;

static void deliver(hc_crdt *from, hc_crdt *to, uint64_t handle, uint64_t t, traffic *tr)
{
    hc_crdt_msg m;
    while (hc_crdt_pop_message(from, &m)) {
        int type;
        uint32_t n = recs_in(&m, &type);
        if (n > tr->max_recs)
            tr->max_recs = n;
        if (type == HC_CRDT_MSG_DELTA)
            tr->delta_recs += n;
        if (type == HC_CRDT_MSG_CHUNK)
            tr->chunk_recs += n;
        hc_crdt_receive(to, handle, m.data, m.len, T(t));
    }
    drain_events(to);
}

/* a knows b as b_in_a; b knows a as 1 */
static void settle(hc_crdt *a, hc_crdt *b, uint64_t b_in_a, uint64_t *t, traffic *tr)
{
    for (int round = 0; round < 5000; round++) {
        hc_crdt_tick(a, T(*t));
        hc_crdt_tick(b, T(*t));
        deliver(a, b, 1, *t, tr);
        deliver(b, a, b_in_a, *t, tr);
        *t += 5;
        if (hc_crdt_idle(a) && hc_crdt_idle(b) && round > 5)
            return;
    }
    fail_msg("no quiescence");
}

static void test_flush_and_repair_in_slices(void **state)
{
    (void)state;
    hc_crdt *a = replica(0xA), *b = replica(0xB);
    uint64_t t = 1;
    traffic tr = {0};
    assert_int_equal(hc_crdt_add_neighbour(a, 2, T(t)), HC_OK);
    assert_int_equal(hc_crdt_add_neighbour(b, 1, T(t)), HC_OK);
    settle(a, b, 2, &t, &tr);

    /* a 20000-key batch: the flush deadline ships one slice; the rest is due at once, not all in this tick */
    for (uint32_t k = 0; k < KEYS; k++)
        put(a, k, k, t);
    drain_events(a);
    t += 100;
    hc_crdt_tick(a, T(t));
    deliver(a, b, 1, t, &tr);
    assert_true(tr.delta_recs > 0);
    assert_true(tr.delta_recs < KEYS);
    assert_true(a->pending.n > 0);
    assert_true(hc_crdt_next_deadline(a) <= t);
    settle(a, b, 2, &t, &tr);
    assert_int_equal(hc_crdt_size(b), KEYS);
    assert_true(tr.delta_recs >= KEYS);
    assert_true(tr.max_recs <= CRDT_MAX_RECS_PER_MSG);

    /* a new empty replica is repaired in chunks of bounded record counts */
    hc_crdt *c = replica(0xC);
    traffic tc = {0};
    assert_int_equal(hc_crdt_remove_neighbour(a, 2, T(t)), HC_OK);
    assert_int_equal(hc_crdt_add_neighbour(a, 3, T(t)), HC_OK);
    assert_int_equal(hc_crdt_add_neighbour(c, 1, T(t)), HC_OK);
    settle(a, c, 3, &t, &tc);
    assert_int_equal(hc_crdt_size(c), KEYS);
    assert_true(tc.chunk_recs >= KEYS);
    assert_int_equal(tc.delta_recs, 0);
    assert_true(tc.max_recs <= CRDT_MAX_RECS_PER_MSG);
    assert_int_equal(hc_crdt_check(c, NULL, 0), HC_OK);
    hc_crdt_free(a);
    hc_crdt_free(b);
    hc_crdt_free(c);
}

/* The lag a replica reports (hc_crdt_get_lag, the sync_lag_ms stat and hordec's sync-lag metric): a neighbour
 * that stops acknowledging shows unacknowledged bytes whose age grows; once it catches up, both are 0. */
static void test_lag_of_a_silent_neighbour(void **state)
{
    (void)state;
    hc_crdt *a = replica(0xA), *b = replica(0xB);
    uint64_t t = 1;
    traffic tr = {0};
    assert_int_equal(hc_crdt_add_neighbour(a, 2, T(t)), HC_OK);
    assert_int_equal(hc_crdt_add_neighbour(b, 1, T(t)), HC_OK);
    settle(a, b, 2, &t, &tr);
    hc_crdt_lag lag;
    hc_crdt_get_lag(a, &lag);
    assert_int_equal(lag.unacked_bytes, 0);
    assert_int_equal(lag.oldest_unacked_ms, 0);

    put(a, 1, 1, t);
    drain_events(a);
    t += 100;
    hc_crdt_tick(a, T(t)); /* the flush sends a delta ... */
    hc_crdt_msg m;
    while (hc_crdt_pop_message(a, &m)) /* ... that b never gets */
        ;
    t += 700;
    hc_crdt_tick(a, T(t));
    while (hc_crdt_pop_message(a, &m))
        ;
    hc_crdt_get_lag(a, &lag);
    assert_true(lag.unacked_bytes > 0);
    assert_true(lag.oldest_unacked_ms >= 700);

    settle(a, b, 2, &t, &tr);
    hc_crdt_get_lag(a, &lag);
    assert_int_equal(lag.unacked_bytes, 0);
    assert_int_equal(lag.oldest_unacked_ms, 0);
    assert_int_equal(lag.repairing, 0);
    hc_crdt_free(a);
    hc_crdt_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor_reads_the_map_it_opened_on),
        cmocka_unit_test(test_to_map_answered_in_slices),
        cmocka_unit_test(test_flush_and_repair_in_slices),
        cmocka_unit_test(test_lag_of_a_silent_neighbour),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
