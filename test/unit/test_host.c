/* test_host.c — the host layer (c_src/host/host.c, stream.c) driven directly, with a fake env that records
 * everything the host does and a fake core whose effects the tests script:
 *   - the envelope: peer messages go out wrapped as {'$hordec_replica', OurName, Msg}; incoming ones reach
 *     the core unwrapped, with the handle of the neighbour {SenderName, node of the sending pid}, and
 *     anything else (no envelope, not a term, a non-neighbour, a wrong name) is counted in dropped_in and
 *     never reaches the core;
 *   - set_neighbours: validated as a whole (a bad element is {error, badarg} and the old neighbours stay),
 *     a self entry skipped, duplicates collapsed, handles kept for neighbours that stay; node events go to
 *     the handles on that node; the wake-up is armed at the core's deadline and at the re-dial timer;
 *   - the change stream: an empty map's snapshot is one {snapshot, [], false}; a large map's snapshot
 *     comes in parts within the bound and only the last says false; diffs leave before the reply of the
 *     same pump and split at the bound (an entry over it travels alone); a subscriber's monitor firing
 *     removes it; unsubscribe demonitors; a resubscription gets a new epoch and seq starts at 1 again;
 *   - stats: a map (the real CRDT core's, with what the host knows in it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hordec/hc_crdt.h"
#include "hordec/hc_log.h"
#include "host/host.h"

/* ------------------------------------------------------------------ the fake env: a log of calls */

enum { EV_SEND_NAME = 1, EV_SEND_PID, EV_REPLY, EV_MONITOR, EV_DEMONITOR, EV_EXIT, EV_WAKE, EV_CONNECT };

typedef struct ev {
    int kind;
    hc_atom node, name;
    hc_pid pid;
    uint64_t token, id, at;
    uint8_t *data;
    size_t len;
} ev;

typedef struct env_log {
    ev *evs;
    size_t n, cap;
    hc_atom connected[8];
    size_t nconnected;
} env_log;

static env_log L;

static void record(ev e, const uint8_t *data, size_t len)
{
    if (L.n == L.cap) {
        L.cap = L.cap ? L.cap * 2 : 64;
        L.evs = realloc(L.evs, L.cap * sizeof *L.evs);
        assert_non_null(L.evs);
    }
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
    record((ev){.kind = EV_SEND_NAME, .node = node, .name = name}, msg, len);
}
static void env_send_pid(void *ud, const hc_pid *to, const uint8_t *msg, size_t len)
{
    record((ev){.kind = EV_SEND_PID, .pid = *to}, msg, len);
}
static void env_reply(void *ud, uint64_t token, const uint8_t *msg, size_t len)
{
    record((ev){.kind = EV_REPLY, .token = token}, msg, len);
}
static int env_monitor(void *ud, const hc_pid *pid, uint64_t id)
{
    record((ev){.kind = EV_MONITOR, .pid = *pid, .id = id}, NULL, 0);
    return HC_OK;
}
static void env_demonitor(void *ud, uint64_t id) { record((ev){.kind = EV_DEMONITOR, .id = id}, NULL, 0); }
static void env_exit(void *ud, const hc_pid *to, const uint8_t *reason, size_t len)
{
    record((ev){.kind = EV_EXIT, .pid = *to}, reason, len);
}
static void env_wake_at(void *ud, uint64_t at) { record((ev){.kind = EV_WAKE, .at = at}, NULL, 0); }
static void env_connect(void *ud, hc_atom node) { record((ev){.kind = EV_CONNECT, .node = node}, NULL, 0); }
static bool env_is_connected(void *ud, hc_atom node)
{
    for (size_t i = 0; i < L.nconnected; i++)
        if (L.connected[i] == node)
            return true;
    return false;
}

static const hc_host_env ENV = {.send_name = env_send_name,
                                .send_pid = env_send_pid,
                                .reply = env_reply,
                                .monitor = env_monitor,
                                .demonitor = env_demonitor,
                                .exit = env_exit,
                                .wake_at = env_wake_at,
                                .connect = env_connect,
                                .is_connected = env_is_connected};

static size_t count(int kind)
{
    size_t n = 0;
    for (size_t i = 0; i < L.n; i++)
        n += L.evs[i].kind == kind;
    return n;
}

static const ev *nth(int kind, size_t k)
{
    for (size_t i = 0; i < L.n; i++)
        if (L.evs[i].kind == kind && k-- == 0)
            return &L.evs[i];
    fail_msg("no event %d #%zu", kind, k);
    return NULL;
}

static const ev *last(int kind)
{
    for (size_t i = L.n; i-- > 0;)
        if (L.evs[i].kind == kind)
            return &L.evs[i];
    fail_msg("no event %d", kind);
    return NULL;
}

/* ------------------------------------------------------------------ the fake core */

typedef struct fake_eff {
    hc_effect e;
    hc_buf data, value;
} fake_eff;

typedef struct kv {
    hc_buf k, v;
} kv;

typedef struct fake_core {
    fake_eff *q;
    size_t nq, headq, capq;
    hc_buf popped, popped_value;
    kv *map;
    size_t nmap, capmap;
    uint64_t deadline;
    int receive_rc;
    size_t received;
    uint64_t recv_peer;
    hc_buf recv_msg;
    hc_core_peer peers[8];
    size_t npeers, set_peers_calls;
    uint64_t ups[16], downs[16];
    size_t nups, ndowns, ticks;
    bool freed;
} fake_core;

static fake_core *FC;

static void queue(fake_core *c, hc_effect e, const uint8_t *data, size_t len, const uint8_t *val, size_t vlen)
{
    if (c->nq == c->capq) {
        c->capq = c->capq ? c->capq * 2 : 16;
        c->q = realloc(c->q, c->capq * sizeof *c->q);
        assert_non_null(c->q);
    }
    fake_eff *f = &c->q[c->nq++];
    *f = (fake_eff){.e = e};
    hc_buf_append(&f->data, data, len);
    if (val)
        hc_buf_append(&f->value, val, vlen);
}

static void map_set(fake_core *c, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    for (size_t i = 0; i < c->nmap; i++)
        if (c->map[i].k.len == kl && !memcmp(c->map[i].k.data, k, kl)) {
            if (v) {
                hc_buf_reset(&c->map[i].v);
                hc_buf_append(&c->map[i].v, v, vl);
            } else {
                hc_buf_free(&c->map[i].k);
                hc_buf_free(&c->map[i].v);
                c->map[i] = c->map[--c->nmap];
            }
            return;
        }
    if (!v)
        return;
    assert_int_equal(hc_array_reserve((void **)&c->map, &c->capmap, c->nmap + 1, sizeof *c->map, 8), HC_OK);
    kv *e = &c->map[c->nmap++];
    *e = (kv){0};
    hc_buf_append(&e->k, k, kl);
    hc_buf_append(&e->v, v, vl);
}

/* A change to the map, as the core reports it (an HC_EFF_EVENT). */
static void change(fake_core *c, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    map_set(c, k, kl, v, vl);
    queue(c, (hc_effect){.kind = HC_EFF_EVENT}, k, kl, v, vl);
}

static int fc_receive(void *core, uint64_t peer, const uint8_t *msg, size_t len, hc_time now)
{
    fake_core *c = core;
    c->received++;
    c->recv_peer = peer;
    hc_buf_reset(&c->recv_msg);
    hc_buf_append(&c->recv_msg, msg, len);
    return c->receive_rc;
}

/* {put, K, V}: a change, then the reply ok (the CRDT core's order: events, then replies). Anything else:
 * {error, badarg}. */
static void fc_request(void *core, uint64_t token, const hc_pid *from, const uint8_t *req, size_t len, hc_time now)
{
    fake_core *c = core;
    size_t i = 0, k0, k1;
    uint32_t arity;
    hc_buf r = {0};
    if (!hc_dec_tuple_header(req, len, &i, &arity) && arity == 3 && hc_dec_is_atom(req, len, &i, "put") &&
        (k0 = i, !hc_dec_skip(req, len, &i)) && (k1 = i, !hc_dec_skip(req, len, &i)) && i == len) {
        change(c, req + k0, k1 - k0, req + k1, len - k1);
        hc_enc_atom_cstr(&r, "ok");
    } else {
        hc_enc_tuple_header(&r, 2);
        hc_enc_atom_cstr(&r, "error");
        hc_enc_atom_cstr(&r, "badarg");
    }
    queue(c, (hc_effect){.kind = HC_EFF_REPLY, .token = token}, r.data, r.len, NULL, 0);
    hc_buf_free(&r);
}

static int fc_tick(void *core, hc_time now)
{
    fake_core *c = core;
    c->ticks++;
    c->deadline = HC_NO_DEADLINE;
    return HC_OK;
}

static uint64_t fc_deadline(const void *core) { return ((const fake_core *)core)->deadline; }

static int fc_set_peers(void *core, const hc_core_peer *peers, size_t n, hc_time now)
{
    fake_core *c = core;
    assert_true(n <= 8);
    memcpy(c->peers, peers, n * sizeof *peers);
    c->npeers = n;
    c->set_peers_calls++;
    return HC_OK;
}

static int fc_peer_up(void *core, uint64_t peer, hc_time now)
{
    fake_core *c = core;
    c->ups[c->nups++ % 16] = peer;
    return HC_OK;
}

static int fc_peer_down(void *core, uint64_t peer, hc_time now)
{
    fake_core *c = core;
    c->downs[c->ndowns++ % 16] = peer;
    return HC_OK;
}

static bool fc_pop(void *core, hc_effect *out)
{
    fake_core *c = core;
    hc_buf_free(&c->popped);
    hc_buf_free(&c->popped_value);
    if (c->headq == c->nq) {
        c->headq = c->nq = 0;
        return false;
    }
    fake_eff *f = &c->q[c->headq++];
    c->popped = f->data;
    c->popped_value = f->value;
    *out = f->e;
    out->data = c->popped.data;
    out->len = c->popped.len;
    out->value = f->e.kind == HC_EFF_EVENT && c->popped_value.data ? c->popped_value.data : NULL;
    out->value_len = c->popped_value.len;
    return true;
}

static int fc_snapshot(const void *core, hc_core_visit_fn fn, void *ud)
{
    const fake_core *c = core;
    for (size_t i = 0; i < c->nmap; i++) {
        int rc = fn(ud, c->map[i].k.data, c->map[i].k.len, c->map[i].v.data, c->map[i].v.len);
        if (rc)
            return rc;
    }
    return HC_OK;
}

static int fc_stats(const void *core, const hc_host_stats *hs, hc_buf *out)
{
    hc_enc_map_header(out, 1);
    hc_enc_atom_cstr(out, "dropped_in");
    hc_enc_ulong(out, hs->dropped_in);
    return out->err;
}

static void fc_free(void *core)
{
    fake_core *c = core;
    c->freed = true; /* the struct itself belongs to the test */
}

static const hc_core_ops FAKE_OPS = {.kind = "fake",
                                     .receive = fc_receive,
                                     .request = fc_request,
                                     .tick = fc_tick,
                                     .next_deadline = fc_deadline,
                                     .set_peers = fc_set_peers,
                                     .peer_up = fc_peer_up,
                                     .peer_down = fc_peer_down,
                                     .pop_effect = fc_pop,
                                     .snapshot = fc_snapshot,
                                     .stats = fc_stats,
                                     .free = fc_free};

static void fake_free(fake_core *c)
{
    for (size_t i = c->headq; i < c->nq; i++) {
        hc_buf_free(&c->q[i].data);
        hc_buf_free(&c->q[i].value);
    }
    free(c->q);
    hc_buf_free(&c->popped);
    hc_buf_free(&c->popped_value);
    for (size_t i = 0; i < c->nmap; i++) {
        hc_buf_free(&c->map[i].k);
        hc_buf_free(&c->map[i].v);
    }
    free(c->map);
    hc_buf_free(&c->recv_msg);
    free(c);
}

/* ------------------------------------------------------------------ fixture */

static hc_atom ME, MY_NODE, N1, N2, A, B;
static const hc_time T0 = {1000, 5000};
static hc_host *H;
static hc_buf REQ;

static hc_host *new_host(size_t batch)
{
    FC = calloc(1, sizeof *FC);
    assert_non_null(FC);
    FC->deadline = HC_NO_DEADLINE;
    hc_host_config cfg = {.name = ME, .node = MY_NODE, .stream_batch_bytes = batch, .epoch_base = 100};
    hc_host *h = NULL;
    assert_int_equal(hc_host_new(&cfg, &ENV, &FAKE_OPS, FC, &h), HC_OK);
    return h;
}

static int setup(void **state)
{
    ME = hc_atom_intern_cstr("map");
    MY_NODE = hc_atom_intern_cstr("me@host");
    N1 = hc_atom_intern_cstr("n1@host");
    N2 = hc_atom_intern_cstr("n2@host");
    A = hc_atom_intern_cstr("a");
    B = hc_atom_intern_cstr("b");
    L.nconnected = 0;
    H = new_host(0);
    return 0;
}

static int teardown(void **state)
{
    if (H)
        hc_host_free(H);
    H = NULL;
    if (FC) {
        assert_true(FC->freed);
        fake_free(FC);
    }
    FC = NULL;
    log_clear();
    free(L.evs);
    L = (env_log){0};
    hc_buf_free(&REQ);
    hc_atom_table_reset();
    return 0;
}

static hc_pid pid_on(hc_atom node, uint32_t num) { return (hc_pid){node, num, 0, 1}; }

/* ------------------------------------------------------------------ term helpers */

static void peer_term(hc_buf *b, hc_atom name, hc_atom node)
{
    hc_enc_tuple_header(b, 2);
    hc_enc_atom(b, name);
    hc_enc_atom(b, node);
}

/* Sends {set_neighbours, [{Name, Node}...]} (names[i] on nodes[i]) and returns the reply's event. */
static const ev *set_neighbours(const hc_atom *names, const hc_atom *nodes, size_t n)
{
    hc_buf_reset(&REQ);
    hc_enc_tuple_header(&REQ, 2);
    hc_enc_atom_cstr(&REQ, "set_neighbours");
    if (n)
        hc_enc_list_header(&REQ, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        peer_term(&REQ, names[i], nodes[i]);
    hc_enc_nil(&REQ);
    hc_pid caller = pid_on(MY_NODE, 1);
    hc_host_request(H, 7, &caller, REQ.data, REQ.len, T0);
    const ev *r = last(EV_REPLY);
    assert_int_equal(r->token, 7);
    return r;
}

static bool is_atom(const ev *e, const char *atom)
{
    size_t i = 0;
    return hc_dec_is_atom(e->data, e->len, &i, atom) && i == e->len;
}

static bool is_error(const ev *e, const char *reason)
{
    size_t i = 0;
    uint32_t a;
    return !hc_dec_tuple_header(e->data, e->len, &i, &a) && a == 2 && hc_dec_is_atom(e->data, e->len, &i, "error") &&
           hc_dec_is_atom(e->data, e->len, &i, reason) && i == e->len;
}

static void envelope(hc_buf *b, hc_atom sender, const char *payload_atom)
{
    hc_buf_reset(b);
    hc_enc_tuple_header(b, 3);
    hc_enc_atom_cstr(b, "$hordec_replica");
    hc_enc_atom(b, sender);
    hc_enc_atom_cstr(b, payload_atom);
}

/* Two neighbours: a on n1 (handle ha), b on n2 (handle hb). */
static void two_neighbours(uint64_t *ha, uint64_t *hb)
{
    hc_atom names[] = {A, B}, nodes[] = {N1, N2};
    assert_true(is_atom(set_neighbours(names, nodes, 2), "ok"));
    assert_int_equal(FC->npeers, 2);
    for (size_t i = 0; i < 2; i++) {
        if (FC->peers[i].name == A && FC->peers[i].node == N1)
            *ha = FC->peers[i].handle;
        else if (FC->peers[i].name == B && FC->peers[i].node == N2)
            *hb = FC->peers[i].handle;
        else
            fail_msg("an unexpected peer");
    }
    assert_int_not_equal(*ha, *hb);
}

/* ------------------------------------------------------------------ envelopes */

static void test_envelope_filtering(void **state)
{
    uint64_t ha = 0, hb = 0;
    two_neighbours(&ha, &hb);
    hc_buf m = {0};
    hc_pid on_n1 = pid_on(N1, 5), on_n2 = pid_on(N2, 5);

    /* a neighbour's envelope reaches the core unwrapped, with the neighbour's handle */
    envelope(&m, A, "hello");
    hc_host_message(H, &on_n1, m.data, m.len, T0);
    assert_int_equal(FC->received, 1);
    assert_int_equal(FC->recv_peer, ha);
    size_t i = 0;
    assert_true(hc_dec_is_atom(FC->recv_msg.data, FC->recv_msg.len, &i, "hello"));
    assert_int_equal(i, FC->recv_msg.len);
    assert_int_equal(hc_host_dropped_in(H), 0);

    /* each of these is counted and never reaches the core */
    envelope(&m, B, "hello"); /* b's name, but from a's node */
    hc_host_message(H, &on_n1, m.data, m.len, T0);
    envelope(&m, hc_atom_intern_cstr("c"), "hello"); /* nobody we know */
    hc_host_message(H, &on_n2, m.data, m.len, T0);
    hc_host_message(H, NULL, m.data, m.len, T0); /* no sender */
    hc_buf_reset(&m);
    hc_enc_tuple_header(&m, 2); /* no envelope */
    hc_enc_atom_cstr(&m, "hello");
    hc_enc_atom_cstr(&m, "a");
    hc_host_message(H, &on_n1, m.data, m.len, T0);
    static const uint8_t junk[] = {131, 104, 3, 119};
    hc_host_message(H, &on_n1, junk, sizeof junk, T0); /* not a term */
    hc_host_message(H, &on_n1, m.data, 0, T0);         /* empty */
    assert_int_equal(hc_host_dropped_in(H), 6);
    assert_int_equal(FC->received, 1);

    /* a message the core refuses is the core's to count */
    FC->receive_rc = HC_EDECODE;
    envelope(&m, B, "garbage");
    hc_host_message(H, &on_n2, m.data, m.len, T0);
    assert_int_equal(FC->received, 2);
    assert_int_equal(FC->recv_peer, hb);
    assert_int_equal(hc_host_dropped_in(H), 6);
    hc_buf_free(&m);
}

static void test_send_peer_wraps_in_envelope(void **state)
{
    uint64_t ha = 0, hb = 0;
    two_neighbours(&ha, &hb);
    log_clear();
    static const uint8_t payload[] = {119, 3, 'x', 'y', 'z'};
    queue(FC, (hc_effect){.kind = HC_EFF_SEND_PEER, .peer = hb}, payload, sizeof payload, NULL, 0);
    queue(FC, (hc_effect){.kind = HC_EFF_SEND_PEER, .peer = 999}, payload, sizeof payload, NULL, 0); /* gone */
    hc_host_tick(H, T0);
    assert_int_equal(count(EV_SEND_NAME), 1);
    const ev *s = nth(EV_SEND_NAME, 0);
    assert_int_equal(s->node, N2);
    assert_int_equal(s->name, B);
    size_t i = 0;
    uint32_t arity;
    hc_atom sender;
    assert_int_equal(hc_dec_tuple_header(s->data, s->len, &i, &arity), HC_OK);
    assert_int_equal(arity, 3);
    assert_true(hc_dec_is_atom(s->data, s->len, &i, "$hordec_replica"));
    assert_int_equal(hc_dec_atom(s->data, s->len, &i, &sender), HC_OK);
    assert_int_equal(sender, ME);
    assert_int_equal(s->len - i, sizeof payload);
    assert_memory_equal(s->data + i, payload, sizeof payload);
}

/* ------------------------------------------------------------------ neighbours */

static void test_set_neighbours_validation(void **state)
{
    uint64_t ha = 0, hb = 0;
    two_neighbours(&ha, &hb);
    size_t calls = FC->set_peers_calls;
    hc_pid caller = pid_on(MY_NODE, 1);
    for (int bad = 0; bad < 7; bad++) {
        hc_buf_reset(&REQ);
        hc_enc_tuple_header(&REQ, 2);
        hc_enc_atom_cstr(&REQ, "set_neighbours");
        if (bad == 5) {
            hc_enc_atom_cstr(&REQ, "not_a_list");
        } else {
            hc_enc_list_header(&REQ, 2);
            peer_term(&REQ, A, N1);
            switch (bad) {
            case 0: peer_term(&REQ, B, hc_atom_intern_cstr("nohost")); break; /* a node name needs a host */
            case 1: hc_enc_long(&REQ, 3); break;                              /* not a pair */
            case 2:
                hc_enc_tuple_header(&REQ, 3);
                hc_enc_atom(&REQ, B);
                hc_enc_atom(&REQ, N2);
                hc_enc_atom(&REQ, N2);
                break;
            case 3:
                hc_enc_tuple_header(&REQ, 2);
                hc_enc_string(&REQ, "b"); /* a name must be an atom */
                hc_enc_atom(&REQ, N2);
                break;
            default: peer_term(&REQ, B, N2); break;
            }
            if (bad == 4)
                hc_enc_atom_cstr(&REQ, "improper");
            else
                hc_enc_nil(&REQ);
        }
        if (bad == 6)
            hc_enc_nil(&REQ); /* trailing bytes */
        hc_host_request(H, 40 + (uint64_t)bad, &caller, REQ.data, REQ.len, T0);
        const ev *r = last(EV_REPLY);
        assert_int_equal(r->token, 40 + (uint64_t)bad);
        if (!is_error(r, "badarg"))
            fail_msg("bad neighbour list %d was not refused with {error, badarg}", bad);
    }
    /* nothing changed: the core was not told, and the old neighbours are still the neighbours */
    assert_int_equal(FC->set_peers_calls, calls);
    hc_buf m = {0};
    hc_pid on_n2 = pid_on(N2, 9);
    envelope(&m, B, "still_here");
    hc_host_message(H, &on_n2, m.data, m.len, T0);
    assert_int_equal(FC->recv_peer, hb);
    assert_int_equal(hc_host_dropped_in(H), 0);
    hc_buf_free(&m);
}

static void test_set_neighbours_self_and_duplicates(void **state)
{
    uint64_t ha = 0, hb = 0;
    two_neighbours(&ha, &hb);
    /* ourselves (Horde lists every member), a twice, b dropped: handles of those that stay are kept */
    hc_atom names[] = {ME, A, A}, nodes[] = {MY_NODE, N1, N1};
    assert_true(is_atom(set_neighbours(names, nodes, 3), "ok"));
    assert_int_equal(FC->npeers, 1);
    assert_int_equal(FC->peers[0].handle, ha);
    assert_int_equal(FC->peers[0].name, A);
    /* our name on another node is another replica, and our node with another name too */
    hc_atom names2[] = {ME, B}, nodes2[] = {N2, MY_NODE};
    assert_true(is_atom(set_neighbours(names2, nodes2, 2), "ok"));
    assert_int_equal(FC->npeers, 2);
    assert_int_not_equal(FC->peers[0].handle, ha);
    /* an empty list is fine */
    assert_true(is_atom(set_neighbours(NULL, NULL, 0), "ok"));
    assert_int_equal(FC->npeers, 0);
}

static void test_node_events_and_redial(void **state)
{
    L.connected[L.nconnected++] = N1; /* n1 is connected, n2 is not */
    log_clear();
    uint64_t ha = 0, hb = 0;
    two_neighbours(&ha, &hb);
    /* set_neighbours dials the unconnected neighbour and arms the re-dial timer */
    assert_int_equal(count(EV_CONNECT), 1);
    assert_int_equal(nth(EV_CONNECT, 0)->node, N2);
    assert_int_equal(last(EV_WAKE)->at, T0.mono_ms + HC_HOST_REDIAL_MS);

    hc_host_node_event(H, N2, false, T0);
    assert_int_equal(FC->ndowns, 1);
    assert_int_equal(FC->downs[0], hb);
    hc_host_node_event(H, N1, true, T0);
    assert_int_equal(FC->nups, 1);
    assert_int_equal(FC->ups[0], ha);
    hc_host_node_event(H, hc_atom_intern_cstr("other@host"), false, T0); /* not a neighbour's node */
    assert_int_equal(FC->ndowns, 1);

    /* the wake-up: the earlier of the core's deadline and the re-dial */
    FC->deadline = T0.mono_ms + 50;
    hc_host_tick(H, T0);
    assert_int_equal(last(EV_WAKE)->at, T0.mono_ms + 50);
    hc_time t1 = {T0.mono_ms + 50, T0.wall_ms};
    log_clear();
    hc_host_tick(H, t1);
    assert_int_equal(FC->ticks, 1);
    assert_int_equal(last(EV_WAKE)->at, T0.mono_ms + HC_HOST_REDIAL_MS);
    hc_time t2 = {T0.mono_ms + HC_HOST_REDIAL_MS, T0.wall_ms};
    log_clear();
    hc_host_tick(H, t2);
    assert_int_equal(count(EV_CONNECT), 1); /* re-dialled, still not connected */
    assert_int_equal(last(EV_WAKE)->at, t2.mono_ms + HC_HOST_REDIAL_MS);
    L.connected[L.nconnected++] = N2;
    hc_time t3 = {t2.mono_ms + HC_HOST_REDIAL_MS, T0.wall_ms};
    log_clear();
    hc_host_tick(H, t3);
    assert_int_equal(count(EV_CONNECT), 0);
    assert_int_equal(count(EV_WAKE), 0); /* nothing left to wait for: the spent wake-up stays unarmed */
}

/* ------------------------------------------------------------------ the change stream */

typedef struct smsg {
    uint64_t epoch, seq;
    bool snapshot, more;
    uint32_t n;
    size_t payload; /* bytes of the list's entries */
} smsg;

/* Decodes a stream message; the entries are checked to be {K, V} (snapshot) or {add, K, V} | {remove, K}. */
static smsg read_stream(const ev *e)
{
    smsg s = {0};
    const uint8_t *p = e->data;
    size_t len = e->len, i = 0;
    uint32_t arity, barity;
    hc_atom name;
    assert_int_equal(hc_dec_tuple_header(p, len, &i, &arity), HC_OK);
    assert_int_equal(arity, 5);
    assert_true(hc_dec_is_atom(p, len, &i, "hordec_stream"));
    assert_int_equal(hc_dec_atom(p, len, &i, &name), HC_OK);
    assert_int_equal(name, ME);
    assert_int_equal(hc_dec_ulong(p, len, &i, &s.epoch), HC_OK);
    assert_int_equal(hc_dec_ulong(p, len, &i, &s.seq), HC_OK);
    assert_int_equal(hc_dec_tuple_header(p, len, &i, &barity), HC_OK);
    s.snapshot = hc_dec_is_atom(p, len, &i, "snapshot");
    assert_true(s.snapshot ? barity == 3 : barity == 2 && hc_dec_is_atom(p, len, &i, "diffs"));
    assert_int_equal(hc_dec_list_header(p, len, &i, &s.n), HC_OK);
    size_t start = i;
    for (uint32_t k = 0; k < s.n; k++) {
        uint32_t a;
        assert_int_equal(hc_dec_tuple_header(p, len, &i, &a), HC_OK);
        if (!s.snapshot) {
            bool add = hc_dec_is_atom(p, len, &i, "add");
            assert_true(add ? a == 3 : a == 2 && hc_dec_is_atom(p, len, &i, "remove"));
            a--;
        }
        for (uint32_t q = 0; q < a; q++)
            assert_int_equal(hc_dec_skip(p, len, &i), HC_OK);
    }
    s.payload = i - start;
    if (s.n) {
        assert_int_equal(hc_peek_type(p, len, i), 106);
        i++;
    }
    if (s.snapshot) {
        s.more = hc_dec_is_atom(p, len, &i, "true");
        assert_true(s.more || hc_dec_is_atom(p, len, &i, "false"));
    }
    assert_int_equal(i, len);
    return s;
}

/* {stream_subscribe, Pid} (or unsubscribe); returns the epoch of {ok, Epoch} (0 for a plain ok). */
static uint64_t stream_call(const char *op, const hc_pid *pid, uint64_t token)
{
    hc_buf_reset(&REQ);
    hc_enc_tuple_header(&REQ, 2);
    hc_enc_atom_cstr(&REQ, op);
    hc_enc_pid(&REQ, pid);
    hc_host_request(H, token, pid, REQ.data, REQ.len, T0);
    const ev *r = last(EV_REPLY);
    assert_int_equal(r->token, token);
    if (is_atom(r, "ok"))
        return 0;
    size_t i = 0;
    uint32_t a;
    uint64_t epoch;
    assert_int_equal(hc_dec_tuple_header(r->data, r->len, &i, &a), HC_OK);
    assert_int_equal(a, 2);
    assert_true(hc_dec_is_atom(r->data, r->len, &i, "ok"));
    assert_int_equal(hc_dec_ulong(r->data, r->len, &i, &epoch), HC_OK);
    assert_int_equal(i, r->len);
    return epoch;
}

static void put_req(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, uint64_t token)
{
    hc_buf_reset(&REQ);
    hc_enc_tuple_header(&REQ, 3);
    hc_enc_atom_cstr(&REQ, "put");
    hc_buf_append(&REQ, k, kl);
    hc_buf_append(&REQ, v, vl);
    hc_pid caller = pid_on(MY_NODE, 1);
    hc_host_request(H, token, &caller, REQ.data, REQ.len, T0);
    assert_int_equal(last(EV_REPLY)->token, token);
    assert_true(is_atom(last(EV_REPLY), "ok"));
}

static void key_val(hc_buf *k, hc_buf *v, uint32_t i, size_t vbytes)
{
    hc_buf_reset(k);
    hc_buf_reset(v);
    hc_enc_tuple_header(k, 2);
    hc_enc_atom_cstr(k, "k");
    hc_enc_ulong(k, i);
    uint8_t *pad = calloc(1, vbytes ? vbytes : 1);
    assert_non_null(pad);
    hc_enc_binary(v, pad, vbytes);
    free(pad);
}

static void test_stream_empty_snapshot(void **state)
{
    hc_pid sub = pid_on(N1, 77);
    log_clear();
    uint64_t epoch = stream_call("stream_subscribe", &sub, 3);
    assert_true(epoch >= 100); /* counts up from the configured epoch_base */
    assert_int_equal(count(EV_SEND_PID), 1);
    const ev *e = nth(EV_SEND_PID, 0);
    assert_true(hc_pid_eq(&e->pid, &sub));
    smsg s = read_stream(e);
    assert_true(s.snapshot);
    assert_false(s.more);
    assert_int_equal(s.n, 0);
    assert_int_equal(s.epoch, epoch);
    assert_int_equal(s.seq, 1);
    /* exactly {hordec_stream, map, Epoch, 1, {snapshot, [], false}} */
    hc_buf want = {0};
    hc_enc_tuple_header(&want, 5);
    hc_enc_atom_cstr(&want, "hordec_stream");
    hc_enc_atom(&want, ME);
    hc_enc_ulong(&want, epoch);
    hc_enc_ulong(&want, 1);
    hc_enc_tuple_header(&want, 3);
    hc_enc_atom_cstr(&want, "snapshot");
    hc_enc_nil(&want);
    hc_enc_atom_cstr(&want, "false");
    assert_int_equal(e->len, want.len);
    assert_memory_equal(e->data, want.data, want.len);
    hc_buf_free(&want);
    /* the subscriber is monitored, with an id the host keeps apart from the core's (odd) */
    assert_int_equal(count(EV_MONITOR), 1);
    assert_true(hc_pid_eq(&nth(EV_MONITOR, 0)->pid, &sub));
    assert_true(nth(EV_MONITOR, 0)->id & 1);
    assert_int_equal(hc_host_subscribers(H), 1);
}

static void test_stream_snapshot_parts_within_bound(void **state)
{
    enum { BOUND = 200, KEYS = 60 };
    hc_host_free(H);
    fake_free(FC);
    H = new_host(BOUND);
    hc_buf k = {0}, v = {0};
    for (uint32_t i = 0; i < KEYS; i++) {
        key_val(&k, &v, i, i == 17 ? 3 * BOUND : i % 40); /* one entry larger than the bound */
        map_set(FC, k.data, k.len, v.data, v.len);
    }
    hc_pid sub = pid_on(N2, 3);
    log_clear();
    uint64_t epoch = stream_call("stream_subscribe", &sub, 9);
    size_t parts = count(EV_SEND_PID), entries = 0, big = 0;
    assert_true(parts > 5);
    for (size_t i = 0; i < parts; i++) {
        smsg s = read_stream(nth(EV_SEND_PID, i));
        assert_true(s.snapshot);
        assert_int_equal(s.epoch, epoch);
        assert_int_equal(s.seq, i + 1);
        assert_int_equal(s.more, i + 1 < parts); /* only the last part says false */
        assert_true(s.n >= 1);
        if (s.payload > BOUND) {
            assert_int_equal(s.n, 1); /* over the bound only alone */
            big++;
        }
        entries += s.n;
    }
    assert_int_equal(big, 1);
    assert_int_equal(entries, KEYS);
    /* the snapshot went out before the reply */
    assert_int_equal(L.evs[L.n - 1].kind, EV_REPLY);
    hc_buf_free(&k);
    hc_buf_free(&v);
}

static void test_stream_diffs_before_reply_and_bound(void **state)
{
    enum { BOUND = 120 };
    hc_host_free(H);
    fake_free(FC);
    H = new_host(BOUND);
    hc_pid sub = pid_on(N1, 4);
    uint64_t epoch = stream_call("stream_subscribe", &sub, 1);

    /* a request that changes the map: its diff leaves before its reply */
    hc_buf k = {0}, v = {0};
    key_val(&k, &v, 1, 10);
    log_clear();
    put_req(k.data, k.len, v.data, v.len, 2);
    assert_int_equal(L.n, 2);
    assert_int_equal(L.evs[0].kind, EV_SEND_PID);
    assert_int_equal(L.evs[1].kind, EV_REPLY);
    smsg s = read_stream(&L.evs[0]);
    assert_false(s.snapshot);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.seq, 2);
    assert_int_equal(s.epoch, epoch);

    /* many changes in one pump: batches within the bound, in order, an oversized entry alone */
    log_clear();
    for (uint32_t i = 0; i < 30; i++) {
        key_val(&k, &v, 100 + i, i == 11 ? 2 * BOUND : 8);
        change(FC, k.data, k.len, i % 7 == 6 ? NULL : v.data, v.len);
    }
    hc_host_tick(H, T0);
    size_t n = count(EV_SEND_PID), total = 0;
    assert_true(n > 3);
    for (size_t i = 0; i < n; i++) {
        smsg d = read_stream(nth(EV_SEND_PID, i));
        assert_false(d.snapshot);
        assert_int_equal(d.seq, 3 + i);
        assert_true(d.n >= 1);
        assert_true(d.payload <= BOUND || d.n == 1);
        total += d.n;
    }
    assert_int_equal(total, 30);
    hc_buf_free(&k);
    hc_buf_free(&v);
}

/* A held stream (a batch of calls whose replies the env holds until it ends): the diffs of several requests
 * collect and leave together on release, one message per subscriber, in order. */
static void test_stream_held_for_a_batch(void **state)
{
    hc_pid sub = pid_on(N1, 4);
    stream_call("stream_subscribe", &sub, 1);
    hc_buf k = {0}, v = {0};
    log_clear();
    hc_host_hold_stream(H, true);
    for (uint32_t i = 0; i < 3; i++) {
        key_val(&k, &v, 1 + i, 10);
        put_req(k.data, k.len, v.data, v.len, 2 + i);
    }
    assert_int_equal(count(EV_SEND_PID), 0);
    assert_int_equal(count(EV_REPLY), 3);
    hc_host_hold_stream(H, false);
    assert_int_equal(count(EV_SEND_PID), 1);
    smsg s = read_stream(last(EV_SEND_PID));
    assert_false(s.snapshot);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.seq, 2);
    /* released: back to a diff before each reply */
    log_clear();
    key_val(&k, &v, 9, 10);
    put_req(k.data, k.len, v.data, v.len, 9);
    assert_int_equal(L.n, 2);
    assert_int_equal(L.evs[0].kind, EV_SEND_PID);
    assert_int_equal(L.evs[1].kind, EV_REPLY);
    hc_buf_free(&k);
    hc_buf_free(&v);
    (void)state;
}

static void test_stream_monitor_down_and_unsubscribe(void **state)
{
    hc_pid s1 = pid_on(N1, 1), s2 = pid_on(N2, 2);
    log_clear();
    stream_call("stream_subscribe", &s1, 1);
    stream_call("stream_subscribe", &s2, 2);
    assert_int_equal(hc_host_subscribers(H), 2);
    uint64_t mon1 = nth(EV_MONITOR, 0)->id, mon2 = nth(EV_MONITOR, 1)->id;
    assert_int_not_equal(mon1, mon2);

    /* s1 dies: its monitor fires and the host forgets it */
    static const uint8_t noproc[] = {119, 6, 'n', 'o', 'p', 'r', 'o', 'c'};
    hc_host_monitor_down(H, mon1, &s1, noproc, sizeof noproc, T0);
    assert_int_equal(hc_host_subscribers(H), 1);
    hc_buf k = {0}, v = {0};
    key_val(&k, &v, 5, 4);
    log_clear();
    put_req(k.data, k.len, v.data, v.len, 3);
    assert_int_equal(count(EV_SEND_PID), 1);
    assert_true(hc_pid_eq(&nth(EV_SEND_PID, 0)->pid, &s2));

    /* s2 unsubscribes: demonitored and forgotten; a second unsubscribe is still ok */
    log_clear();
    assert_int_equal(stream_call("stream_unsubscribe", &s2, 4), 0);
    assert_int_equal(count(EV_DEMONITOR), 1);
    assert_int_equal(nth(EV_DEMONITOR, 0)->id, mon2);
    assert_int_equal(hc_host_subscribers(H), 0);
    assert_int_equal(stream_call("stream_unsubscribe", &s2, 5), 0);
    assert_int_equal(count(EV_DEMONITOR), 1);
    log_clear();
    key_val(&k, &v, 5, 9);
    put_req(k.data, k.len, v.data, v.len, 6);
    assert_true(is_atom(last(EV_REPLY), "ok"));
    assert_int_equal(count(EV_SEND_PID), 0);
    hc_buf_free(&k);
    hc_buf_free(&v);
}

static void test_stream_resubscribe_new_epoch(void **state)
{
    hc_pid sub = pid_on(N1, 8);
    uint64_t e1 = stream_call("stream_subscribe", &sub, 1);
    hc_buf k = {0}, v = {0};
    key_val(&k, &v, 1, 3);
    put_req(k.data, k.len, v.data, v.len, 2);
    assert_int_equal(read_stream(last(EV_SEND_PID)).seq, 2);
    log_clear();
    uint64_t e2 = stream_call("stream_subscribe", &sub, 3);
    assert_true(e2 > e1);
    smsg s = read_stream(nth(EV_SEND_PID, 0));
    assert_true(s.snapshot);
    assert_int_equal(s.epoch, e2);
    assert_int_equal(s.seq, 1); /* seq restarts */
    assert_int_equal(s.n, 1);
    assert_int_equal(count(EV_MONITOR), 0); /* already monitored */
    assert_int_equal(hc_host_subscribers(H), 1);
    key_val(&k, &v, 1, 4);
    put_req(k.data, k.len, v.data, v.len, 4);
    s = read_stream(last(EV_SEND_PID));
    assert_int_equal(s.epoch, e2);
    assert_int_equal(s.seq, 2);
    /* a bad pid argument is refused */
    hc_buf_reset(&REQ);
    hc_enc_tuple_header(&REQ, 2);
    hc_enc_atom_cstr(&REQ, "stream_subscribe");
    hc_enc_atom_cstr(&REQ, "nopid");
    hc_host_request(H, 5, &sub, REQ.data, REQ.len, T0);
    assert_true(is_error(last(EV_REPLY), "badarg"));
    hc_buf_free(&k);
    hc_buf_free(&v);
}

static void test_release_hands_back_the_core(void **state)
{
    void *core = hc_host_release(H);
    H = NULL;
    assert_ptr_equal(core, FC);
    assert_false(FC->freed);
    FC->freed = true; /* teardown frees it */
}

/* ------------------------------------------------------------------ stats, with the real CRDT core */

static void test_stats_reply_is_a_map(void **state)
{
    hc_host_free(H);
    fake_free(FC);
    FC = NULL;
    hc_crdt_config cfg;
    hc_crdt_config_init(&cfg, 42);
    void *core = NULL;
    assert_int_equal(hc_crdt_core_new(&cfg, T0, &core), HC_OK);
    hc_host_config hc = {.name = ME, .node = MY_NODE};
    assert_int_equal(hc_host_new(&hc, &ENV, &hc_crdt_core_ops, core, &H), HC_OK);
    hc_atom names[] = {A, B, ME}, nodes[] = {N1, N2, MY_NODE};
    assert_true(is_atom(set_neighbours(names, nodes, 3), "ok"));
    hc_pid sub = pid_on(N1, 1);
    stream_call("stream_subscribe", &sub, 2);
    static const uint8_t junk[] = {97, 1};
    hc_host_message(H, &sub, junk, sizeof junk, T0);

    hc_buf_reset(&REQ);
    hc_enc_atom_cstr(&REQ, "stats");
    hc_host_request(H, 3, &sub, REQ.data, REQ.len, T0);
    const ev *r = last(EV_REPLY);
    assert_int_equal(r->token, 3);
    const uint8_t *p = r->data;
    size_t len = r->len, i = 5;
    assert_true(len > 5 && p[0] == 116); /* MAP_EXT */
    uint32_t pairs = hc_get_be32(p + 1);
    uint64_t neighbours = 99, subscribers = 99, rejected = 99;
    for (uint32_t k = 0; k < pairs; k++) {
        uint64_t *want = hc_dec_is_atom(p, len, &i, "neighbours")    ? &neighbours
                         : hc_dec_is_atom(p, len, &i, "subscribers") ? &subscribers
                         : hc_dec_is_atom(p, len, &i, "rejected")    ? &rejected
                                                                     : NULL;
        if (want)
            assert_int_equal(hc_dec_ulong(p, len, &i, want), HC_OK);
        else
            assert_true(hc_dec_skip(p, len, &i) == HC_OK && hc_dec_skip(p, len, &i) == HC_OK);
    }
    assert_int_equal(i, len);
    assert_int_equal(neighbours, 2); /* the self entry is not a neighbour */
    assert_int_equal(subscribers, 1);
    assert_int_equal(rejected, 1); /* the message without an envelope */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_envelope_filtering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_peer_wraps_in_envelope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_neighbours_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_neighbours_self_and_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_events_and_redial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_empty_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_snapshot_parts_within_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_diffs_before_reply_and_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_held_for_a_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_monitor_down_and_unsubscribe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_resubscribe_new_epoch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_hands_back_the_core, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_reply_is_a_map, setup, teardown),
    };
    hc_log_set_level(HC_LOG_ERROR); /* the host warns about the garbage these tests feed it */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
