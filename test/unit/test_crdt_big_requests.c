/* test_crdt_big_requests.c — no single client request holds the loop, however big (issue 9, item 5). The real
 * CRDT core runs in the real host with a fake env that records what the host does; every "loop turn" is one
 * hc_host_tick, as the runtime calls it while the wake-up is armed at 0.
 *
 *  - a merge (and a drop) of 50 000 keys is validated whole, then applied WRITE_SLICE keys per tick; a request to
 *    another replica and a host-level request are answered between the slices; the caller's next request, and
 *    every other request of that replica, waits and sees the whole merge, in arrival order; a subscriber gets
 *    every change once, in order, before the merge's reply;
 *  - a merge whose last value is invalid, or whose request is malformed after its last key, is refused over
 *    several ticks and changes nothing;
 *  - the change-stream snapshot of a 20 000-key map is sent over several ticks, a bounded slice each; it is the
 *    map of the moment of the subscription, then come exactly the changes made after it, in order, with no gap;
 *    the subscribe call is answered after the last part, as a small snapshot's is; a resubscription, an
 *    unsubscription or the subscriber's death while it is being sent answer the waiting call; a host freed
 *    meanwhile frees everything. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hordec/hc_crdt.h"
#include "host/host.h"
#include "host/stream.h"

#ifndef HC_STREAM_SNAP_SLICE /* (so that the test also builds against the code before the change, and fails there) */
#define HC_STREAM_SNAP_SLICE 8192
#endif

static hc_time T(uint64_t ms) { return (hc_time){ms, 1700000000000 + ms}; }

/* ------------------------------------------------------------------ the fake env: a log of what the host did */

enum { EV_SEND_PID = 1, EV_REPLY, EV_MONITOR, EV_DEMONITOR, EV_WAKE, EV_OTHER };

typedef struct ev {
    int kind;
    void *host; /* which host did it (env ud) */
    hc_pid pid;
    uint64_t token, id, at;
    uint8_t *data;
    size_t len;
} ev;

static struct {
    ev *evs;
    size_t n, cap;
} L;

static void record(void *ud, ev e, const uint8_t *data, size_t len)
{
    if (L.n == L.cap) {
        L.cap = L.cap ? L.cap * 2 : 1024;
        L.evs = realloc(L.evs, L.cap * sizeof *L.evs);
        assert_non_null(L.evs);
    }
    e.host = ud;
    e.data = malloc(len ? len : 1);
    assert_non_null(e.data);
    if (len)
        memcpy(e.data, data, len);
    e.len = len;
    L.evs[L.n++] = e;
}

static void log_clear(void)
{
    for (size_t i = 0; i < L.n; i++)
        free(L.evs[i].data);
    L.n = 0;
}

static void env_send_name(void *ud, hc_atom node, hc_atom name, const uint8_t *msg, size_t len)
{
    (void)node, (void)name;
    record(ud, (ev){.kind = EV_OTHER}, msg, len);
}
static void env_send_pid(void *ud, const hc_pid *to, const uint8_t *msg, size_t len)
{
    record(ud, (ev){.kind = EV_SEND_PID, .pid = *to}, msg, len);
}
static void env_reply(void *ud, uint64_t token, const uint8_t *msg, size_t len)
{
    record(ud, (ev){.kind = EV_REPLY, .token = token}, msg, len);
}
static int env_monitor(void *ud, const hc_pid *pid, uint64_t id)
{
    record(ud, (ev){.kind = EV_MONITOR, .pid = *pid, .id = id}, NULL, 0);
    return HC_OK;
}
static void env_demonitor(void *ud, uint64_t id) { record(ud, (ev){.kind = EV_DEMONITOR, .id = id}, NULL, 0); }
static void env_exit(void *ud, const hc_pid *to, const uint8_t *reason, size_t len)
{
    (void)to;
    record(ud, (ev){.kind = EV_OTHER}, reason, len);
}
static uint64_t wake[2]; /* each host's armed wake-up */
static void env_wake_at(void *ud, uint64_t at) { wake[(uintptr_t)ud - 1] = at; }
static void env_connect(void *ud, hc_atom node) { (void)ud, (void)node; }
static bool env_is_connected(void *ud, hc_atom node) { return (void)ud, (void)node, true; }

static hc_host *H[2];
static hc_pid CALLER, OTHER, SUB, LIVE;
static hc_buf REQ;

static hc_pid pid_of(uint32_t num) { return (hc_pid){hc_atom_intern_cstr("client@host"), num, 0, 1}; }

static hc_host *new_host(int which, size_t batch_bytes)
{
    hc_host_env env = {.ud = (void *)(uintptr_t)(which + 1),
                       .send_name = env_send_name,
                       .send_pid = env_send_pid,
                       .reply = env_reply,
                       .monitor = env_monitor,
                       .demonitor = env_demonitor,
                       .exit = env_exit,
                       .wake_at = env_wake_at,
                       .connect = env_connect,
                       .is_connected = env_is_connected};
    hc_crdt_config cfg;
    hc_crdt_config_init(&cfg, 100 + (uint64_t)which);
    void *core;
    assert_int_equal(hc_crdt_core_new(&cfg, T(0), &core), HC_OK);
    hc_host_config hc = {.name = hc_atom_intern_cstr(which ? "other_map" : "big_map"),
                         .node = hc_atom_intern_cstr("hordec@host"),
                         .stream_batch_bytes = batch_bytes,
                         .epoch_base = 1};
    hc_host *h;
    wake[which] = HC_NO_DEADLINE;
    assert_int_equal(hc_host_new(&hc, &env, &hc_crdt_core_ops, core, &h), HC_OK);
    return h;
}

static int setup(void **state)
{
    (void)state;
    CALLER = pid_of(1);
    OTHER = pid_of(2);
    SUB = pid_of(3);
    LIVE = pid_of(4);
    H[0] = new_host(0, 4096);
    H[1] = new_host(1, 4096);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hc_host_free(H[0]);
    hc_host_free(H[1]);
    log_clear();
    hc_buf_free(&REQ);
    return 0;
}

static hc_crdt *engine(int which) { return hc_crdt_core_engine(hc_host_core(H[which])); }

/* ------------------------------------------------------------------ requests and what answers them */

static void enc_key(hc_buf *b, uint32_t k)
{
    hc_enc_tuple_header(b, 2);
    hc_enc_atom_cstr(b, "k");
    hc_enc_ulong(b, k);
}

static void call(int which, uint64_t token, const hc_pid *from, uint64_t t)
{
    hc_host_request(H[which], token, from, REQ.data, REQ.len, T(t));
}

static void put_req(uint32_t k, uint64_t v)
{
    hc_buf_reset(&REQ);
    hc_enc_tuple_header(&REQ, 3);
    hc_enc_atom_cstr(&REQ, "put");
    enc_key(&REQ, k);
    hc_enc_ulong(&REQ, v);
}

static void del_req(uint32_t k)
{
    hc_buf_reset(&REQ);
    hc_enc_tuple_header(&REQ, 2);
    hc_enc_atom_cstr(&REQ, "delete");
    enc_key(&REQ, k);
}

static void get_req(uint32_t k)
{
    hc_buf_reset(&REQ);
    hc_enc_tuple_header(&REQ, 2);
    hc_enc_atom_cstr(&REQ, "get");
    enc_key(&REQ, k);
}

/* {merge, #{{k, I} => I + add}} for I in [0, n); with `poison`, the last value nests deeper than a replica stores. */
static void merge_req(uint32_t n, uint64_t add, bool poison)
{
    hc_buf_reset(&REQ);
    hc_enc_tuple_header(&REQ, 2);
    hc_enc_atom_cstr(&REQ, "merge");
    hc_enc_map_header(&REQ, n);
    for (uint32_t i = 0; i < n; i++) {
        enc_key(&REQ, i);
        if (poison && i + 1 == n) {
            for (int d = 0; d < HC_TERM_MAX_DEPTH + 10; d++)
                hc_enc_list_header(&REQ, 1);
            hc_enc_nil(&REQ);
            for (int d = 0; d < HC_TERM_MAX_DEPTH + 10; d++)
                hc_enc_nil(&REQ);
        } else {
            hc_enc_ulong(&REQ, i + add);
        }
    }
}

static void drop_req(uint32_t from, uint32_t n)
{
    hc_buf_reset(&REQ);
    hc_enc_tuple_header(&REQ, 2);
    hc_enc_atom_cstr(&REQ, "drop");
    hc_enc_list_header(&REQ, n);
    for (uint32_t i = from; i < from + n; i++)
        enc_key(&REQ, i);
    hc_enc_nil(&REQ);
}

static void stream_req(const char *op, const hc_pid *pid)
{
    hc_buf_reset(&REQ);
    hc_enc_tuple_header(&REQ, 2);
    hc_enc_atom_cstr(&REQ, op);
    hc_enc_pid(&REQ, pid);
}

/* The index in the log of the reply to `token`, or -1. */
static long reply_at(uint64_t token)
{
    for (size_t i = 0; i < L.n; i++)
        if (L.evs[i].kind == EV_REPLY && L.evs[i].token == token)
            return (long)i;
    return -1;
}

static bool reply_is_atom(uint64_t token, const char *atom)
{
    long at = reply_at(token);
    assert_true(at >= 0);
    size_t i = 0;
    return hc_dec_is_atom(L.evs[at].data, L.evs[at].len, &i, atom) && i == L.evs[at].len;
}

/* {Tag, Atom} or {Tag, Integer} reply: the second element as an atom test, or the integer. */
static bool reply_is_pair(uint64_t token, const char *tag, const char *atom, uint64_t *num)
{
    long at = reply_at(token);
    assert_true(at >= 0);
    const uint8_t *p = L.evs[at].data;
    size_t len = L.evs[at].len, i = 0;
    uint32_t arity;
    if (hc_dec_tuple_header(p, len, &i, &arity) || arity != 2 || !hc_dec_is_atom(p, len, &i, tag))
        return false;
    return atom ? hc_dec_is_atom(p, len, &i, atom) && i == len : hc_dec_ulong(p, len, &i, num) == HC_OK && i == len;
}

/* Runs one loop turn of host `which` when its wake-up is due (the wake-up is then spent, as a runtime timer's
 * is). Returns whether it was. */
static bool turn(int which, uint64_t t)
{
    if (wake[which] > t)
        return false;
    wake[which] = HC_NO_DEADLINE;
    hc_host_tick(H[which], T(t));
    return true;
}

static uint64_t value_of(int which, uint32_t k)
{
    hc_buf key = {0};
    enc_key(&key, k);
    const uint8_t *v;
    size_t vl, i = 0;
    uint64_t out = UINT64_MAX;
    if (hc_crdt_get(engine(which), key.data, key.len, &v, &vl))
        assert_int_equal(hc_dec_ulong(v, vl, &i, &out), HC_OK);
    hc_buf_free(&key);
    return out;
}

/* ------------------------------------------------------------------ reading a change stream */

#define MAXK 60000u
#define ABSENT UINT64_MAX

typedef struct stream_view {
    uint64_t epoch, seq;
    bool snapshot_done;
    uint64_t snap[MAXK]; /* the snapshot as received */
    size_t snap_n, parts;
    uint64_t live[MAXK]; /* the snapshot with every diff applied */
    uint32_t *changed;   /* the keys of the diffs, in order */
    size_t nchanged, capchanged;
    size_t last_msg; /* log index of the last message read */
} stream_view;

static void view_init(stream_view *w, uint64_t epoch)
{
    memset(w, 0, offsetof(stream_view, snap));
    w->epoch = epoch;
    for (size_t i = 0; i < MAXK; i++)
        w->snap[i] = w->live[i] = ABSENT;
    w->snap_n = w->parts = w->nchanged = 0;
}

static uint32_t dec_key(const uint8_t *p, size_t len, size_t *i)
{
    uint32_t arity;
    uint64_t k;
    assert_int_equal(hc_dec_tuple_header(p, len, i, &arity), HC_OK);
    assert_int_equal(arity, 2);
    assert_true(hc_dec_is_atom(p, len, i, "k"));
    assert_int_equal(hc_dec_ulong(p, len, i, &k), HC_OK);
    assert_true(k < MAXK);
    return (uint32_t)k;
}

/* Reads one stream message to `pid` of epoch w->epoch: the next in sequence, snapshot parts before diffs. */
static void view_read(stream_view *w, const ev *e)
{
    const uint8_t *p = e->data;
    size_t len = e->len, i = 0;
    uint32_t arity, n, barity;
    uint64_t epoch, seq;
    assert_int_equal(hc_dec_tuple_header(p, len, &i, &arity), HC_OK);
    assert_int_equal(arity, 5);
    assert_true(hc_dec_is_atom(p, len, &i, "hordec_stream"));
    assert_int_equal(hc_dec_skip(p, len, &i), HC_OK);
    assert_int_equal(hc_dec_ulong(p, len, &i, &epoch), HC_OK);
    assert_int_equal(hc_dec_ulong(p, len, &i, &seq), HC_OK);
    if (epoch != w->epoch)
        return;
    assert_int_equal(seq, w->seq + 1); /* no gap, no duplicate */
    w->seq = seq;
    assert_int_equal(hc_dec_tuple_header(p, len, &i, &barity), HC_OK);
    hc_iter it;
    hc_span item;
    if (hc_dec_is_atom(p, len, &i, "snapshot")) {
        assert_false(w->snapshot_done);
        assert_int_equal(barity, 3);
        assert_int_equal(hc_iter_list(&it, p, len, &i), HC_OK);
        w->parts++;
        while (hc_iter_next(&it, &item)) {
            size_t j = 0;
            assert_int_equal(hc_dec_tuple_header(item.p, item.len, &j, &n), HC_OK);
            uint32_t k = dec_key(item.p, item.len, &j);
            uint64_t v;
            assert_int_equal(hc_dec_ulong(item.p, item.len, &j, &v), HC_OK);
            assert_true(w->snap[k] == ABSENT); /* each key once */
            w->snap[k] = w->live[k] = v;
            w->snap_n++;
        }
        w->snapshot_done = hc_dec_is_atom(p, len, &i, "false");
    } else {
        assert_true(hc_dec_is_atom(p, len, &i, "diffs"));
        assert_true(w->snapshot_done); /* diffs only after the whole snapshot */
        assert_int_equal(hc_iter_list(&it, p, len, &i), HC_OK);
        while (hc_iter_next(&it, &item)) {
            size_t j = 0;
            assert_int_equal(hc_dec_tuple_header(item.p, item.len, &j, &n), HC_OK);
            bool add = hc_dec_is_atom(item.p, item.len, &j, "add");
            assert_true(add || hc_dec_is_atom(item.p, item.len, &j, "remove"));
            uint32_t k = dec_key(item.p, item.len, &j);
            uint64_t v = ABSENT;
            if (add)
                assert_int_equal(hc_dec_ulong(item.p, item.len, &j, &v), HC_OK);
            w->live[k] = v;
            assert_int_equal(
                hc_array_reserve((void **)&w->changed, &w->capchanged, w->nchanged + 1, sizeof *w->changed, 64), HC_OK);
            w->changed[w->nchanged++] = k;
        }
    }
}

/* Reads every message to `pid` logged since the view's last read, up to log index `limit`. */
static void view_catch_up_to(stream_view *w, const hc_pid *pid, size_t limit)
{
    for (; w->last_msg < limit && w->last_msg < L.n; w->last_msg++)
        if (L.evs[w->last_msg].kind == EV_SEND_PID && hc_pid_eq(&L.evs[w->last_msg].pid, pid))
            view_read(w, &L.evs[w->last_msg]);
}

static void view_catch_up(stream_view *w, const hc_pid *pid) { view_catch_up_to(w, pid, SIZE_MAX); }

static size_t msgs_to(const hc_pid *pid, size_t from)
{
    size_t n = 0;
    for (size_t i = from; i < L.n; i++)
        n += L.evs[i].kind == EV_SEND_PID && hc_pid_eq(&L.evs[i].pid, pid);
    return n;
}

/* ------------------------------------------------------------------ merge and drop */

#define BIG 50000u

static void test_big_merge_applied_over_ticks(void **state)
{
    (void)state;
    static stream_view live;
    uint64_t t = 1;
    stream_req("stream_subscribe", &LIVE);
    call(0, 1, &LIVE, t);
    uint64_t epoch;
    assert_true(reply_is_pair(1, "ok", NULL, &epoch));
    view_init(&live, epoch);
    view_catch_up(&live, &LIVE);
    assert_true(live.snapshot_done);

    merge_req(BIG, 7, false);
    call(0, 10, &CALLER, t);
    assert_true(reply_at(10) < 0); /* not in one go */
    assert_int_equal(hc_crdt_size(engine(0)), 0);
    assert_int_equal(wake[0], 0); /* the next slice is due at once */

    /* the caller's next request and another caller's wait, in arrival order */
    get_req(BIG - 1);
    call(0, 11, &CALLER, t);
    put_req(3, 1000);
    call(0, 12, &OTHER, t);
    assert_true(reply_at(11) < 0 && reply_at(12) < 0);

    int ticks = 0, validating = 0;
    size_t before = 0;
    while (reply_at(10) < 0) {
        assert_true(++ticks < 100);
        t++;
        /* between the slices, a host-level request and another replica's requests are answered at once */
        hc_buf_reset(&REQ);
        hc_enc_atom_cstr(&REQ, "stats");
        call(0, 1000 + (uint64_t)ticks, &OTHER, t);
        assert_true(reply_at(1000 + (uint64_t)ticks) >= 0);
        put_req((uint32_t)ticks, 1);
        call(1, 2000 + (uint64_t)ticks, &OTHER, t);
        assert_true(reply_is_atom(2000 + (uint64_t)ticks, "ok"));

        assert_true(turn(0, t));
        size_t now_n = hc_crdt_size(engine(0));
        assert_true(now_n - before <= 4096); /* WRITE_SLICE keys per turn at most */
        if (now_n == 0)
            validating++;
        before = now_n;
        view_catch_up_to(&live, &LIVE, reply_at(10) < 0 ? SIZE_MAX : (size_t)reply_at(10));
    }
    assert_true(ticks >= (int)(BIG / 4096));
    assert_true(validating >= 2); /* validated in slices too, before anything was applied */
    assert_true(reply_is_atom(10, "ok"));
    assert_int_equal(hc_crdt_size(engine(0)), BIG);
    /* every change reached the subscriber once, in order, before the reply (the parked put's too, maybe: its
     * change leaves with the last slice's) */
    assert_true(live.nchanged == BIG || live.nchanged == BIG + 1);
    static bool seen[BIG];
    for (size_t i = 0; i < BIG; i++) {
        assert_true(live.changed[i] < BIG && !seen[live.changed[i]]);
        seen[live.changed[i]] = true;
    }
    for (uint32_t k = 0; k < BIG; k++)
        assert_true(k == 3 || live.live[k] == (uint64_t)k + 7);
    /* then the parked requests, in order: the get sees the whole merge */
    uint64_t got;
    assert_true(reply_at(10) < reply_at(11) && reply_at(11) < reply_at(12));
    assert_true(reply_is_pair(11, "ok", NULL, &got) && got == BIG - 1 + 7);
    assert_true(reply_is_atom(12, "ok"));
    assert_int_equal(value_of(0, 3), 1000);
    view_catch_up(&live, &LIVE);
    assert_int_equal(live.changed[live.nchanged - 1], 3); /* the put after the merge, after its changes */

    /* a drop of as many keys, the same way */
    drop_req(0, BIG);
    call(0, 20, &CALLER, t);
    assert_true(reply_at(20) < 0);
    ticks = 0;
    while (reply_at(20) < 0) {
        assert_true(++ticks < 100);
        assert_true(turn(0, ++t));
    }
    assert_true(ticks >= (int)(BIG / 4096));
    assert_true(reply_is_atom(20, "ok"));
    assert_int_equal(hc_crdt_size(engine(0)), 0);
    free(live.changed);
}

static void test_invalid_big_merge_changes_nothing(void **state)
{
    (void)state;
    static stream_view live;
    uint64_t t = 1;
    put_req(5, 55);
    call(0, 1, &CALLER, t);
    stream_req("stream_subscribe", &LIVE);
    call(0, 2, &LIVE, t);
    uint64_t epoch;
    assert_true(reply_is_pair(2, "ok", NULL, &epoch));
    view_init(&live, epoch);
    uint64_t root = hc_crdt_root_hash(engine(0));

    merge_req(BIG, 7, true);
    call(0, 10, &CALLER, t);
    get_req(5);
    call(0, 11, &CALLER, t);
    int ticks = 0;
    while (reply_at(10) < 0) {
        assert_true(++ticks < 100);
        assert_true(turn(0, ++t));
        assert_int_equal(hc_crdt_root_hash(engine(0)), root); /* nothing applied, at no point */
    }
    assert_true(ticks >= 2);
    long at = reply_at(10);
    size_t i = 0;
    uint32_t arity;
    const uint8_t *p = L.evs[at].data;
    assert_int_equal(hc_dec_tuple_header(p, L.evs[at].len, &i, &arity), HC_OK);
    assert_true(hc_dec_is_atom(p, L.evs[at].len, &i, "error"));
    assert_int_equal(hc_dec_tuple_header(p, L.evs[at].len, &i, &arity), HC_OK);
    assert_true(hc_dec_is_atom(p, L.evs[at].len, &i, "too_deep"));
    assert_int_equal(hc_crdt_size(engine(0)), 1);
    view_catch_up(&live, &LIVE);
    assert_int_equal(live.nchanged, 0);
    assert_true(reply_is_pair(11, "ok", NULL, &epoch) && epoch == 55);

    /* malformed: a byte after the map, a drop list with an improper tail: {error, badarg}, nothing changed */
    for (int bad = 0; bad < 2; bad++) {
        if (bad == 0) {
            merge_req(BIG, 7, false);
            hc_enc_nil(&REQ);
        } else {
            drop_req(0, BIG);
            REQ.len--; /* the [] tail ... */
            hc_enc_atom_cstr(&REQ, "tail");
        }
        call(0, 30 + (uint64_t)bad, &CALLER, t);
        ticks = 0;
        while (reply_at(30 + (uint64_t)bad) < 0) {
            assert_true(++ticks < 100);
            assert_true(turn(0, ++t));
            assert_int_equal(hc_crdt_root_hash(engine(0)), root);
        }
        assert_true(bad == 0 ? ticks == 0 /* the request is not one term: refused at once */ : ticks >= 2);
        assert_true(reply_is_pair(30 + (uint64_t)bad, "error", "badarg", NULL));
    }

    /* a core freed with a merge in progress and requests parked frees them (ASan/LSan watch this) */
    merge_req(BIG, 1, false);
    call(0, 20, &CALLER, t);
    get_req(1);
    call(0, 21, &CALLER, t);
    turn(0, ++t);
}

/* ------------------------------------------------------------------ snapshots */

#define SNAPK 20000u

static void fill(int which, uint32_t n, uint64_t *t)
{
    for (uint32_t from = 0; from < n; from += 4000) {
        merge_req(from + 4000 <= n ? from + 4000 : n, 0, false); /* keys [0, from + 4000), value = key */
        call(which, 9999, &CALLER, *t);
        while (turn(which, ++*t))
            ;
    }
    assert_int_equal(hc_crdt_size(engine(which)), n);
    log_clear();
}

static void test_big_snapshot_sent_over_ticks(void **state)
{
    (void)state;
    static stream_view sub, live;
    static uint64_t at_subscribe[MAXK];
    uint64_t t = 1, epoch;
    fill(0, SNAPK, &t);
    stream_req("stream_subscribe", &LIVE);
    call(0, 1, &LIVE, t);
    while (turn(0, ++t))
        ;
    assert_true(reply_is_pair(1, "ok", NULL, &epoch)); /* (a big snapshot too: see below) */
    view_init(&live, epoch);
    view_catch_up(&live, &LIVE);
    assert_true(live.snapshot_done);
    assert_int_equal(live.snap_n, SNAPK);
    for (uint32_t k = 0; k < MAXK; k++)
        at_subscribe[k] = value_of(0, k);

    size_t mark = L.n;
    stream_req("stream_subscribe", &SUB);
    call(0, 2, &SUB, t);
    assert_true(reply_at(2) < 0); /* answered after the last part */
    assert_true(msgs_to(&SUB, mark) <= 1);
    assert_int_equal(hc_host_subscribers(H[0]), 2);

    view_init(&sub, epoch + 1); /* epochs count up */
    sub.last_msg = mark;
    int ticks = 0;
    uint32_t next = 0;
    while (reply_at(2) < 0) {
        assert_true(++ticks < 100);
        /* between the slices: writes from another caller, answered at once, reach the live subscriber at once */
        for (int op = 0; op < 50; op++, next = (next * 7919 + 13) % (SNAPK + 1000)) {
            if (op % 3 == 0)
                del_req(next);
            else
                put_req(next, 100000 + (uint64_t)ticks * 100 + (uint64_t)op);
            size_t before = L.n;
            call(0, 5000 + (uint64_t)ticks * 100 + (uint64_t)op, &OTHER, t);
            assert_true(reply_at(5000 + (uint64_t)ticks * 100 + (uint64_t)op) >= (long)before);
        }
        size_t before = sub.snap_n;
        assert_true(turn(0, ++t));
        view_catch_up(&sub, &SUB);
        assert_true(sub.snap_n - before <= HC_STREAM_SNAP_SLICE + 64); /* a bounded slice per turn */
        assert_true(sub.snapshot_done || sub.nchanged == 0);
    }
    assert_true(ticks >= 2);
    uint64_t sub_epoch;
    assert_true(reply_is_pair(2, "ok", NULL, &sub_epoch));
    assert_int_equal(sub_epoch, epoch + 1);
    assert_true(sub.snapshot_done);
    assert_true(sub.parts > 10);
    /* the snapshot is the map of the moment of the subscription */
    assert_memory_equal(sub.snap, at_subscribe, sizeof at_subscribe);
    /* the reply comes after the last stream message of the subscription */
    for (size_t i = (size_t)reply_at(2) + 1; i < L.n; i++)
        assert_false(L.evs[i].kind == EV_SEND_PID && hc_pid_eq(&L.evs[i].pid, &SUB));

    /* a few more writes once it is live; then both mirrors hold the map, and the new subscriber saw exactly the
     * changes the live one saw after the subscription, in the same order */
    for (uint32_t k = 0; k < 30; k++) {
        put_req(k, 7);
        call(0, 9000 + k, &OTHER, ++t);
    }
    view_catch_up(&live, &LIVE);
    view_catch_up(&sub, &SUB);
    for (uint32_t k = 0; k < MAXK; k++) {
        assert_true(sub.live[k] == value_of(0, k));
        assert_true(live.live[k] == value_of(0, k));
    }
    assert_true(sub.nchanged > 0 && sub.nchanged <= live.nchanged);
    assert_memory_equal(sub.changed, live.changed + (live.nchanged - sub.nchanged), sub.nchanged * sizeof *sub.changed);
    assert_true(sub.nchanged >= (size_t)ticks * 33); /* the puts between the slices, at least */
    free(sub.changed);
    free(live.changed);
}

static void test_big_snapshot_interrupted(void **state)
{
    (void)state;
    uint64_t t = 1, epoch;
    fill(0, SNAPK, &t);

    /* resubscribed before its snapshot is out: the first call is told, the second gets the whole snapshot */
    stream_req("stream_subscribe", &SUB);
    call(0, 1, &SUB, t);
    turn(0, ++t);
    call(0, 2, &SUB, t);
    assert_true(reply_is_pair(1, "error", "resubscribed", NULL));
    assert_true(reply_at(2) < 0);
    size_t mark = L.n;
    while (turn(0, ++t))
        ;
    assert_true(reply_is_pair(2, "ok", NULL, &epoch));
    static stream_view w;
    view_init(&w, epoch);
    w.last_msg = mark;
    view_catch_up(&w, &SUB);
    assert_true(w.snapshot_done);
    assert_int_equal(w.snap_n, SNAPK);
    assert_int_equal(wake[0], HC_NO_DEADLINE); /* nothing left to do */

    /* unsubscribed meanwhile: the subscribe call is answered, then the unsubscribe; nothing more is sent */
    call(0, 3, &SUB, t);
    turn(0, ++t);
    stream_req("stream_unsubscribe", &SUB);
    call(0, 4, &SUB, t);
    assert_true(reply_is_pair(3, "ok", NULL, &epoch));
    assert_true(reply_is_atom(4, "ok") && reply_at(3) < reply_at(4));
    assert_int_equal(hc_host_subscribers(H[0]), 0);
    mark = L.n;
    while (turn(0, ++t))
        ;
    assert_int_equal(msgs_to(&SUB, mark), 0);

    /* the subscriber dies meanwhile: the call is answered and the subscriber forgotten */
    stream_req("stream_subscribe", &SUB);
    call(0, 5, &SUB, t);
    uint64_t mon = 0;
    for (size_t i = 0; i < L.n; i++)
        if (L.evs[i].kind == EV_MONITOR && hc_pid_eq(&L.evs[i].pid, &SUB))
            mon = L.evs[i].id;
    assert_true(mon != 0);
    turn(0, ++t);
    static const uint8_t reason[] = {119, 6, 'n', 'o', 'p', 'r', 'o', 'c'};
    hc_host_monitor_down(H[0], mon, &SUB, reason, sizeof reason, T(t));
    assert_true(reply_is_pair(5, "ok", NULL, &epoch));
    assert_int_equal(hc_host_subscribers(H[0]), 0);
    assert_int_equal(wake[0], HC_NO_DEADLINE);

    /* a host freed with two snapshots in progress frees them (ASan/LSan watch this) */
    call(0, 6, &SUB, t);
    stream_req("stream_subscribe", &LIVE);
    call(0, 7, &LIVE, t);
    turn(0, ++t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_big_merge_applied_over_ticks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_big_merge_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_snapshot_sent_over_ticks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_snapshot_interrupted, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
