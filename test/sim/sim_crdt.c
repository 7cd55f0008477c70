/* sim_crdt.c — the CRDT scenario: many replicas of one map, each an hc_host running the CRDT core
 * (hc_crdt_core_ops) behind a simulated env (simhost.h), in a hostile simulated world (simnet.h).
 *
 * Everything a replica does in hordec it does here, through the same host code: peer mapping by the
 * {'$hordec_replica', Sender, Msg} envelope (which travels as bytes, so truncation hits it too), neighbour
 * filtering, the one wake-up timer, re-dialling, node up/down from real (simulated) connections, requests
 * answered by token, and the change stream. Local writes are client requests ({put, K, V}, {delete, K},
 * {merge, Map}, {drop, Keys}); neighbours are set with {set_neighbours, [{Name, Node}]}.
 *
 * One seed drives everything (simnet's PRNG). Each run:
 *   1. chaos: random puts/deletes/merges/drops on a hot and a cold keyspace (some values large enough to
 *      force chunking under a small max_message_bytes) and reads checked against the engine, while the
 *      network drops, duplicates, delays, reorders and damages messages, partitions cut connections
 *      (noticed late), replicas crash and restart (with their state or empty under a new replica id; with
 *      their node, or just the process), neighbour sets change (also with self entries, duplicates and
 *      invalid lists that must be refused), connections flap, hostile traffic arrives (no envelope, not a
 *      term, a non-neighbour, a wrong sender name, garbage inside a neighbour's envelope: each must be
 *      counted and change nothing), and change-stream mirrors (simstream.h) on a client node are fed
 *      through the same lossy network, killed, unsubscribed and resubscribed;
 *   2. heal: faults stop, full mesh, everything restarts and reconnects, the cluster must go quiet;
 *   3. verify: all replicas hold the same elements and resolved values, within the bounds of the
 *      reference model below;
 *   4. sequential: writes and deletes at random replicas (clocks skewed), each fully synced before the
 *      next: the last one must win everywhere;
 *   5. streams: every mirror, having noticed any loss by the next sequence number and resubscribed, holds
 *      exactly its replica's map, and each host has exactly the subscribers it should.
 * After every step the touched replica passes hc_crdt_check (indexes, range hashes, context covers
 * stored dots) now and then, its HLC never goes backwards, a local write immediately wins locally, every
 * request gets exactly one reply, and its change stream — read by a lossless "oracle" subscriber — names
 * only values really written to that key, each a real change, and a snapshot on (re)subscription that is
 * exactly the map.
 *
 * Reference model (add-wins observed-remove with LWW read): for each key, W = all writes (dots), R = dots
 * observed (hence removed) by some later operation on that key. With no state ever lost, the surviving
 * set must be exactly W \ R. A replica restarted empty loses whatever it had not passed on, so its
 * operations are "uncertain": the survivors S must satisfy  W_certain \ R_all  ⊆  S  ⊆  W \ R_certain. */
#include "sim_crdt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/replica.h" /* only for the failure dump */
#include "hordec/hc_crdt.h"
#include "simhost.h"
#include "simnet.h"
#include "simstream.h"

#define MAX_REPLICAS 16
#define MAX_MIRRORS 4
#define HOT_KEYS 8
#define SEQ_KEY 0x7fffffff
#define MAX_ELEMS 64
#define MIRROR_TIMER MAX_REPLICAS /* timer ids: replica i's wake-up is i, mirror k's resubscription this + k */
#define MIRROR_PID 100
#define ORACLE_PID 1000

static simnet net;
#define FAIL(...) return simnet_fail(&net, __VA_ARGS__)

/* ------------------------------------------------------------------ terms */

size_t sim_key_term(uint8_t *out, uint32_t k)
{
    uint8_t t[] = {104, 2, 119, 1, 'k', 98, (uint8_t)(k >> 24), (uint8_t)(k >> 16), (uint8_t)(k >> 8), (uint8_t)k};
    memcpy(out, t, sizeof t);
    return sizeof t;
}

static int key_index(const uint8_t *p, size_t len, uint32_t *k)
{
    if (len != 10 || p[0] != 104 || p[5] != 98)
        return -1;
    *k = (uint32_t)p[6] << 24 | (uint32_t)p[7] << 16 | (uint32_t)p[8] << 8 | p[9];
    return 0;
}

uint8_t *sim_value_term(uint64_t op, size_t pad, size_t *len)
{
    size_t n = 8 + pad;
    uint8_t *v = malloc(5 + n);
    if (!v)
        abort();
    v[0] = 109;
    v[1] = (uint8_t)(n >> 24), v[2] = (uint8_t)(n >> 16), v[3] = (uint8_t)(n >> 8), v[4] = (uint8_t)n;
    for (int i = 0; i < 8; i++)
        v[5 + i] = (uint8_t)(op >> (56 - 8 * i));
    for (size_t i = 0; i < pad; i++)
        v[13 + i] = (uint8_t)(op * 31 + i);
    *len = 5 + n;
    return v;
}

static uint64_t value_op(const uint8_t *v, size_t len)
{
    if (len < 13 || v[0] != 109)
        return 0;
    uint64_t op = 0;
    for (int i = 0; i < 8; i++)
        op = op << 8 | v[5 + i];
    return op;
}

/* ------------------------------------------------------------------ the reference log */

typedef struct write_rec {
    uint32_t key;
    uint64_t rid, ctr, hlc;
    int life;   /* the replica life that made it; lost lives make it uncertain */
    size_t len; /* value length, to check bytes */
} write_rec;
typedef struct removal {
    uint32_t key;
    uint64_t rid, ctr;
    int life;
} removal;

static write_rec *writes; /* indexed by op id; op 0 unused */
static size_t n_writes, cap_writes;
static removal *removals;
static size_t n_removals, cap_removals;
static unsigned char *life_lost;
static int n_lives;
static uint64_t next_op = 1;

/* ------------------------------------------------------------------ the world */

typedef struct replica {
    simhost sh;
    int life;
    uint64_t last_hlc;
    int nb[MAX_REPLICAS];    /* neighbour flags: what the host was last told */
    bool down[MAX_REPLICAS]; /* the host reported this neighbour's node down (and not up since) */
    void *kept;              /* the core of a replica that crashed with its state, until it restarts */
    size_t subs;             /* subscribers its host must have: the oracle and the mirrors attached */
    /* The oracle: a subscriber whose messages skip the network (lossless, in order), read after every
     * call into the host. Its map is the replica's map as the change stream tells it. */
    simmirror oracle;
    hc_pid oracle_pid;
    uint64_t *shadow; /* per key index: op id of the resolved value according to the oracle */
    struct inbox_msg {
        uint8_t *p;
        size_t len;
    } * inbox;
    size_t n_inbox, cap_inbox;
} replica;

/* A client process mirroring one replica's map over the lossy network, as a BEAM client would. */
typedef struct mirror {
    simmirror m;
    int replica;
    hc_pid pid;      /* on the client node; the serial changes when it is killed and started again */
    bool subscribed; /* the host has this pid as a subscriber */
    bool waiting;    /* a (re)subscription is scheduled */
} mirror;

static replica S[MAX_REPLICAS];
static mirror M[MAX_MIRRORS];
static int R, n_mirrors, n_keys, client_node;
static hc_pid client_pid, hostile_pid;
static hc_atom a_same_name, a_names[MAX_REPLICAS], a_nodes[MAX_REPLICAS], a_client, a_hostile, a_intruder;
static uint64_t next_rid, epoch_base;
static hc_crdt_config base_cfg;
static size_t batch_bytes;
static int check_every;
static uint64_t steps;
static int answering = -1; /* the node whose message is being delivered */
static sim_totals T;       /* this run's counters */
static hc_buf req, rep;

static hc_time now_at(int i) { return simnet_time(&net, i); }
static bool running(int i) { return simhost_running(&S[i].sh); }
static hc_crdt *engine(int i) { return hc_crdt_core_engine(hc_host_core(S[i].sh.host)); }

void sim_crdt_atoms(void)
{
    char b[32];
    a_same_name = hc_atom_intern_cstr("sim_map");
    for (int i = 0; i < MAX_REPLICAS; i++) {
        snprintf(b, sizeof b, "r%d@sim", i);
        a_nodes[i] = hc_atom_intern_cstr(b);
        snprintf(b, sizeof b, "map%d", i);
        a_names[i] = hc_atom_intern_cstr(b);
    }
    a_client = hc_atom_intern_cstr("c@sim");
    a_hostile = hc_atom_intern_cstr("x@sim");
    a_intruder = hc_atom_intern_cstr("intruder");
}

/* ------------------------------------------------------------------ per-call checks */

static int check_hlc(int i)
{
    uint64_t h = hc_crdt_hlc_last(engine(i));
    if (h < S[i].last_hlc)
        FAIL("replica %d: HLC went backwards", i);
    S[i].last_hlc = h;
    return 0;
}

static int full_check(int i)
{
    char why[256];
    if (running(i) && hc_crdt_check(engine(i), why, sizeof why))
        FAIL("replica %d: invariant broken: %s", i, why);
    return 0;
}

/* Reads what the oracle received. */
static int oracle_read(int i)
{
    replica *r = &S[i];
    int rc = 0;
    char why[256];
    for (size_t k = 0; k < r->n_inbox; k++) {
        if (!rc && simmirror_receive(&r->oracle, r->inbox[k].p, r->inbox[k].len, why, sizeof why))
            rc = simnet_fail(&net, "replica %d: change stream: %s", i, why);
        if (!rc && r->oracle.doubt)
            rc = simnet_fail(&net, "replica %d: the lossless subscriber saw a gap or a damaged message", i);
        free(r->inbox[k].p);
    }
    r->n_inbox = 0;
    return rc;
}

/* After every call into replica i's host. */
static int after(int i)
{
    if (net.failed || oracle_read(i))
        return -1;
    return running(i) ? check_hlc(i) : 0;
}

static int oracle_change(void *ud, bool snap, const uint8_t *key, size_t klen, const uint8_t *old, size_t olen,
                         const uint8_t *val, size_t vlen)
{
    replica *r = ud;
    int i = (int)(r - S);
    uint32_t k;
    if (key_index(key, klen, &k) || (k >= (uint32_t)n_keys && k != SEQ_KEY))
        FAIL("replica %d: a change of a key never written", i);
    uint32_t slot = k == SEQ_KEY ? (uint32_t)n_keys : k;
    uint64_t old_op = old ? value_op(old, olen) : 0;
    uint64_t new_op = val ? value_op(val, vlen) : 0;
    if (!snap && old_op != r->shadow[slot])
        FAIL("replica %d: the stream's previous value (op %" PRIu64 ") is not the one it last sent (op %" PRIu64 ")", i,
             old_op, r->shadow[slot]);
    if (val && (!new_op || new_op >= n_writes || writes[new_op].key != k || writes[new_op].len != vlen))
        FAIL("replica %d: resolved value (op %" PRIu64 ") was never written to key %u", i, new_op, k);
    if (!snap && old_op == new_op)
        FAIL("replica %d: a change that changes nothing", i);
    r->shadow[slot] = new_op;
    return 0;
}

static int walk_engine(const void *src, hc_core_visit_fn fn, void *ud)
{
    return hc_crdt_foreach((const hc_crdt *)src, fn, ud);
}

/* ------------------------------------------------------------------ requests */

static bool reply_is(const char *atom)
{
    size_t i = 0;
    return hc_dec_is_atom(rep.data, rep.len, &i, atom) && i == rep.len;
}

static bool reply_is_error(const char *reason)
{
    size_t i = 0;
    uint32_t a;
    return !hc_dec_tuple_header(rep.data, rep.len, &i, &a) && a == 2 &&
           hc_dec_is_atom(rep.data, rep.len, &i, "error") && hc_dec_is_atom(rep.data, rep.len, &i, reason) &&
           i == rep.len;
}

/* Sends the request in `req` to replica i from `from`; the reply lands in `rep`. */
static int call(int i, const hc_pid *from)
{
    if (req.err)
        abort();
    T.requests++;
    if (simhost_call(&S[i].sh, from, req.data, req.len, &rep))
        return -1;
    return after(i);
}

static void enc_key(hc_buf *b, uint32_t k)
{
    uint8_t t[16];
    hc_enc_raw(b, t, sim_key_term(t, k));
}

/* The value of `field` in the stats map of replica i. */
static int stats_field(int i, const char *field, uint64_t *out)
{
    hc_buf_reset(&req);
    hc_enc_atom_cstr(&req, "stats");
    if (call(i, &client_pid))
        return -1;
    const uint8_t *p = rep.data;
    size_t len = rep.len, j = 5;
    if (len < 5 || p[0] != 116)
        FAIL("replica %d: the stats reply is not a map", i);
    for (uint32_t n = hc_get_be32(p + 1); n > 0; n--) {
        if (hc_dec_is_atom(p, len, &j, field)) {
            if (hc_dec_ulong(p, len, &j, out))
                FAIL("replica %d: stats %s is not a count", i, field);
            return 0;
        }
        if (hc_dec_skip(p, len, &j) || hc_dec_skip(p, len, &j))
            FAIL("replica %d: a malformed stats reply", i);
    }
    FAIL("replica %d: the stats reply has no %s", i, field);
}

static size_t count_nb(int i)
{
    size_t n = 0;
    for (int j = 0; j < R; j++)
        n += S[i].nb[j] != 0;
    return n;
}

static void enc_peer(hc_buf *b, int j)
{
    hc_enc_tuple_header(b, 2);
    hc_enc_atom(b, S[j].sh.name);
    hc_enc_atom(b, a_nodes[j]);
}

/* Tells replica i's host its neighbours (nb[i]) with {set_neighbours, [{Name, Node}]}, in random order,
 * sometimes listing itself too (as Horde lists every member) or an entry twice. */
static int set_neighbours(int i)
{
    int list[MAX_REPLICAS + 2], n = 0;
    for (int j = 0; j < R; j++)
        if (S[i].nb[j])
            list[n++] = j;
    for (int k = n - 1; k > 0; k--) {
        int s = (int)simnet_below(&net, (uint64_t)k + 1), t = list[k];
        list[k] = list[s];
        list[s] = t;
    }
    if (!simnet_below(&net, 4))
        list[n++] = i;
    if (n && !simnet_below(&net, 4)) {
        int again = list[simnet_below(&net, (uint64_t)n)];
        list[n++] = again;
    }
    hc_buf_reset(&req);
    hc_enc_tuple_header(&req, 2);
    hc_enc_atom_cstr(&req, "set_neighbours");
    if (n)
        hc_enc_list_header(&req, (uint32_t)n);
    for (int k = 0; k < n; k++)
        enc_peer(&req, list[k]);
    hc_enc_nil(&req);
    if (call(i, &client_pid))
        return -1;
    if (!reply_is("ok"))
        FAIL("replica %d: set_neighbours was refused", i);
    uint64_t have;
    if (!simnet_below(&net, 4)) {
        if (stats_field(i, "neighbours", &have))
            return -1;
        if (have != count_nb(i))
            FAIL("replica %d: %" PRIu64 " neighbours after set_neighbours of %zu", i, have, count_nb(i));
    }
    return 0;
}

/* An invalid neighbour list: refused with {error, badarg}, and the neighbours stay as they were. */
static int bad_set_neighbours(int i)
{
    uint64_t before, after_n;
    if (stats_field(i, "neighbours", &before))
        return -1;
    int bad = (int)simnet_below(&net, 4);
    hc_buf_reset(&req);
    hc_enc_tuple_header(&req, 2);
    hc_enc_atom_cstr(&req, "set_neighbours");
    hc_enc_list_header(&req, 2);
    enc_peer(&req, (i + 1) % R);
    switch (bad) {
    case 0: /* a node name without a host */
        hc_enc_tuple_header(&req, 2);
        hc_enc_atom(&req, S[i].sh.name);
        hc_enc_atom_cstr(&req, "nohost");
        break;
    case 1: /* not a pair */
        hc_enc_tuple_header(&req, 1);
        hc_enc_atom(&req, S[i].sh.name);
        break;
    case 2: hc_enc_long(&req, 42); break;
    default: enc_peer(&req, i); break; /* fine, but the list is improper: */
    }
    if (bad == 3)
        hc_enc_atom_cstr(&req, "tail");
    else
        hc_enc_nil(&req);
    if (call(i, &client_pid))
        return -1;
    if (!reply_is_error("badarg"))
        FAIL("replica %d: an invalid neighbour list (kind %d) was not refused with badarg", i, bad);
    if (stats_field(i, "neighbours", &after_n))
        return -1;
    if (after_n != before)
        FAIL("replica %d: a refused neighbour list changed the neighbours (%" PRIu64 " -> %" PRIu64 ")", i, before,
             after_n);
    return 0;
}

/* ------------------------------------------------------------------ operations */

static void log_write(uint32_t k, uint64_t rid, uint64_t ctr, uint64_t hlc, int life, size_t len, uint64_t op)
{
    if (op >= cap_writes) {
        cap_writes = cap_writes ? cap_writes * 2 : 1024;
        while (cap_writes <= op)
            cap_writes *= 2;
        writes = realloc(writes, cap_writes * sizeof *writes);
        if (!writes)
            abort();
    }
    writes[op] = (write_rec){k, rid, ctr, hlc, life, len};
    if (op >= n_writes)
        n_writes = op + 1;
}

static void log_removals(int i, uint32_t k, const hc_crdt_elem_info *el, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        if (n_removals == cap_removals) {
            cap_removals = cap_removals ? cap_removals * 2 : 1024;
            removals = realloc(removals, cap_removals * sizeof *removals);
            if (!removals)
                abort();
        }
        removals[n_removals++] = (removal){k, el[j].replica_id, el[j].counter, S[i].life};
    }
}

static uint32_t pick_key(void)
{
    return simnet_below(&net, 2) ? (uint32_t)simnet_below(&net, HOT_KEYS)
                                 : (uint32_t)simnet_below(&net, (uint64_t)n_keys);
}

static size_t pick_pad(void)
{
    size_t big = base_cfg.max_message_bytes - HC_CRDT_VALUE_OVERHEAD - 10 - 13;
    if (simnet_permille(&net, 30))
        return big / 2 + simnet_below(&net, big / 2); /* forces chunking and oversize records */
    if (simnet_permille(&net, 100))
        return simnet_below(&net, 1024);
    return simnet_below(&net, 24);
}

static size_t elements(int i, uint32_t k, hc_crdt_elem_info *el)
{
    uint8_t key[16];
    size_t n = hc_crdt_elements(engine(i), key, sim_key_term(key, k), el, MAX_ELEMS);
    return n < MAX_ELEMS ? n : MAX_ELEMS;
}

/* Records what a put of key k at replica i did, and checks a local write wins locally. */
static int after_put(int i, uint32_t k, uint64_t op, size_t len)
{
    hc_crdt_elem_info el[MAX_ELEMS];
    uint8_t key[16];
    size_t n = hc_crdt_elements(engine(i), key, sim_key_term(key, k), el, MAX_ELEMS);
    if (n != 1 || value_op(el[0].value, el[0].value_len) != op)
        FAIL("replica %d: a local put of key %u is not the only element right after it", i, k);
    log_write(k, el[0].replica_id, el[0].counter, el[0].hlc, S[i].life, len, op);
    return 0;
}

static int do_put(int i, uint32_t k, size_t pad)
{
    hc_crdt_elem_info el[MAX_ELEMS];
    size_t n = elements(i, k, el), vl;
    uint64_t op = next_op++;
    uint8_t *v = sim_value_term(op, pad, &vl);
    log_write(k, 0, 0, 0, S[i].life, vl, op); /* the stream may name it during the call; the dot comes after */
    hc_buf_reset(&req);
    hc_enc_tuple_header(&req, 3);
    hc_enc_atom_cstr(&req, "put");
    enc_key(&req, k);
    hc_enc_raw(&req, v, vl);
    free(v);
    uint64_t sent = S[i].sh.pid_sends;
    if (call(i, &client_pid))
        return -1;
    if (!reply_is("ok"))
        FAIL("replica %d: a put was refused", i);
    if (S[i].sh.pid_sends_at_reply == sent) /* the oracle is always subscribed */
        FAIL("replica %d: the reply to a put left before the change went to subscribers", i);
    log_removals(i, k, el, n);
    return after_put(i, k, op, vl);
}

static int do_delete(int i, uint32_t k)
{
    hc_crdt_elem_info el[MAX_ELEMS];
    size_t n = elements(i, k, el);
    hc_buf_reset(&req);
    hc_enc_tuple_header(&req, 2);
    hc_enc_atom_cstr(&req, "delete");
    enc_key(&req, k);
    if (call(i, &client_pid))
        return -1;
    if (!reply_is("ok"))
        FAIL("replica %d: a delete was refused", i);
    log_removals(i, k, el, n);
    if (elements(i, k, el))
        FAIL("replica %d: key %u still present after a local delete", i, k);
    return 0;
}

/* {merge, #{K => V}} (several puts as one batch) or {drop, [K]} (several deletes). */
static int do_bulk(int i)
{
    enum { MAXB = 8 };
    uint32_t ks[MAXB];
    int n = 1 + (int)simnet_below(&net, MAXB), m = 0;
    for (int j = 0; j < n; j++) { /* distinct keys: each op then observes exactly the pre-bulk state */
        uint32_t k = pick_key();
        int dup = 0;
        for (int q = 0; q < m; q++)
            dup |= ks[q] == k;
        if (!dup)
            ks[m++] = k;
    }
    bool merge = simnet_below(&net, 4) != 0;
    uint64_t opids[MAXB];
    size_t vlens[MAXB];
    hc_crdt_elem_info el[MAX_ELEMS];
    hc_buf_reset(&req);
    hc_enc_tuple_header(&req, 2);
    hc_enc_atom_cstr(&req, merge ? "merge" : "drop");
    if (merge)
        hc_enc_map_header(&req, (uint32_t)m);
    else
        hc_enc_list_header(&req, (uint32_t)m);
    for (int j = 0; j < m; j++) {
        log_removals(i, ks[j], el, elements(i, ks[j], el));
        enc_key(&req, ks[j]);
        if (merge) {
            opids[j] = next_op++;
            uint8_t *v = sim_value_term(opids[j], pick_pad() % 200, &vlens[j]);
            log_write(ks[j], 0, 0, 0, S[i].life, vlens[j], opids[j]);
            hc_enc_raw(&req, v, vlens[j]);
            free(v);
        }
    }
    if (!merge)
        hc_enc_nil(&req);
    if (call(i, &client_pid))
        return -1;
    if (!reply_is("ok"))
        FAIL("replica %d: a %s was refused", i, merge ? "merge" : "drop");
    for (int j = 0; j < m; j++)
        if (merge ? after_put(i, ks[j], opids[j], vlens[j]) : elements(i, ks[j], el) != 0)
            FAIL("replica %d: a %s did not apply to key %u", i, merge ? "merge" : "drop", ks[j]);
    return 0;
}

static int do_too_big(int i)
{
    size_t vl;
    uint8_t *v = sim_value_term(0, base_cfg.max_message_bytes, &vl);
    hc_buf_reset(&req);
    hc_enc_tuple_header(&req, 3);
    hc_enc_atom_cstr(&req, "put");
    enc_key(&req, pick_key());
    hc_enc_raw(&req, v, vl);
    free(v);
    if (call(i, &client_pid))
        return -1;
    if (!reply_is_error("too_big"))
        FAIL("replica %d: an oversized value was not refused with too_big", i);
    return 0;
}

/* The pairs of the map term in `rep` must be exactly what the engine of replica i holds for them, and
 * there must be `want` of them. */
static int check_map_reply(int i, size_t want, const char *what)
{
    const uint8_t *p = rep.data;
    size_t len = rep.len, j = 5;
    if (len < 5 || p[0] != 116 || hc_get_be32(p + 1) != want)
        FAIL("replica %d: %s: not a map of %zu pairs", i, what, want);
    for (size_t n = 0; n < want; n++) {
        size_t k0 = j, v0, vl;
        const uint8_t *v;
        if (hc_dec_skip(p, len, &j))
            FAIL("replica %d: %s: a malformed map", i, what);
        v0 = j;
        if (hc_dec_skip(p, len, &j))
            FAIL("replica %d: %s: a malformed map", i, what);
        if (!hc_crdt_get(engine(i), p + k0, v0 - k0, &v, &vl) || vl != j - v0 || memcmp(v, p + v0, vl))
            FAIL("replica %d: %s: a pair the map does not have", i, what);
    }
    if (j != len)
        FAIL("replica %d: %s: bytes after the map", i, what);
    return 0;
}

/* {get, K}, {take, [K]} or to_map, checked against the engine. */
static int do_read(int i)
{
    int kind = (int)simnet_below(&net, 3);
    hc_buf_reset(&req);
    if (kind == 0) {
        uint32_t k = pick_key();
        hc_enc_tuple_header(&req, 2);
        hc_enc_atom_cstr(&req, "get");
        enc_key(&req, k);
        if (call(i, &client_pid))
            return -1;
        uint8_t key[16];
        const uint8_t *v;
        size_t vl, j = 0;
        uint32_t a;
        if (!hc_crdt_get(engine(i), key, sim_key_term(key, k), &v, &vl)) {
            if (!reply_is("error"))
                FAIL("replica %d: get of an absent key did not answer error", i);
        } else if (hc_dec_tuple_header(rep.data, rep.len, &j, &a) || a != 2 ||
                   !hc_dec_is_atom(rep.data, rep.len, &j, "ok") || rep.len - j != vl || memcmp(rep.data + j, v, vl)) {
            FAIL("replica %d: get did not answer {ok, V} with the resolved value", i);
        }
        return 0;
    }
    if (kind == 1) {
        int n = 1 + (int)simnet_below(&net, 6);
        uint32_t ks[6];
        size_t found = 0;
        hc_enc_tuple_header(&req, 2);
        hc_enc_atom_cstr(&req, "take");
        hc_enc_list_header(&req, (uint32_t)n);
        for (int j = 0; j < n; j++) {
            int dup = 0;
            ks[j] = pick_key();
            for (int q = 0; q < j; q++)
                dup |= ks[q] == ks[j];
            if (dup)
                ks[j] = (uint32_t)n_keys + 1 + (uint32_t)j; /* never written */
            enc_key(&req, ks[j]);
            uint8_t key[16];
            const uint8_t *v;
            size_t vl;
            found += hc_crdt_get(engine(i), key, sim_key_term(key, ks[j]), &v, &vl);
        }
        hc_enc_nil(&req);
        if (call(i, &client_pid))
            return -1;
        return check_map_reply(i, found, "take");
    }
    hc_enc_atom_cstr(&req, "to_map");
    if (call(i, &client_pid))
        return -1;
    return check_map_reply(i, hc_crdt_size(engine(i)), "to_map");
}

static uint64_t rejected_total(int i)
{
    hc_crdt_stats st;
    hc_crdt_get_stats(engine(i), &st);
    uint64_t n = 0;
    for (int k = 0; k < HC_CRDT_REJ__COUNT; k++)
        n += st.rejected[k];
    return n;
}

static void enc_envelope(hc_buf *b, hc_atom sender)
{
    hc_enc_tuple_header(b, 3);
    hc_enc_atom_cstr(b, "$hordec_replica");
    hc_enc_atom(b, sender);
}

/* A well-formed delta from neighbour j, under the identities i has recorded, that lies: a write stamped a year
 * ahead of every clock, a claim that one of i's own writes it has not made yet was removed, or one write named
 * twice. False (b untouched) while i does not know j's current identity: the lie would only be stale. */
static bool enc_lying_delta(hc_buf *b, int i, int j)
{
    if (!S[j].sh.host) /* j is down */
        return false;
    hc_crdt *ei = engine(i), *ej = engine(j);
    const crdt_peer *p = NULL;
    for (size_t k = 0; k < ei->n_peers && !p; k++)
        if (ei->peers[k].rid == hc_crdt_replica_id(ej) && ei->peers[k].inc == hc_crdt_incarnation(ej))
            p = &ei->peers[k];
    if (!p)
        return false;
    uint64_t rid = hc_crdt_replica_id(ej), year = UINT64_C(365) * 24 * 3600 * 1000;
    uint64_t hlc = (net.now + year) << 16, ctr = 1000000 + simnet_below(&net, 1000);
    uint8_t dots[CRDT_DOT_BYTES];
    int lie = (int)simnet_below(&net, 3);
    enc_envelope(b, S[j].sh.name);
    crdt_enc_header(b, HC_CRDT_MSG_DELTA, rid, p->inc, hc_crdt_replica_id(ei), hc_crdt_incarnation(ei));
    hc_enc_tuple_header(b, 2);
    hc_enc_ulong(b, 1000000 + simnet_below(&net, 1000));
    crdt_enc_list(b, 1);
    hc_enc_tuple_header(b, 3);
    hc_enc_binary(b, "lie", 3); /* the key */
    crdt_enc_list(b, lie == 1 ? 0 : 1);
    if (lie != 1) {
        crdt_enc_elem(b, rid, ctr, lie == 0 ? hlc : 1, (const uint8_t[]){97, 1}, 2);
        hc_enc_nil(b);
    }
    uint64_t dot[2] = {lie == 1 ? hc_crdt_replica_id(ei) : rid,
                       lie == 1 ? ei->counter + 1 + simnet_below(&net, 10) : ctr};
    for (int k = 0; k < CRDT_DOT_BYTES; k++)
        dots[k] = (uint8_t)(dot[k / 8] >> (56 - 8 * (k % 8)));
    hc_enc_binary(b, dots, lie == 0 ? 0 : CRDT_DOT_BYTES); /* the removed dots */
    hc_enc_nil(b);
    return true;
}

/* Hostile traffic straight into replica i's host: it must be counted (the host's dropped_in, or the core's
 * rejected for garbage inside a neighbour's envelope, or for a well-formed lie), and change nothing: no send,
 * same map. */
static int inject(int i)
{
    replica *r = &S[i];
    int nbs[MAX_REPLICAS], others[MAX_REPLICAS], n_nb = 0, n_other = 0;
    for (int j = 0; j < R; j++) {
        if (j == i)
            continue;
        if (r->nb[j])
            nbs[n_nb++] = j;
        else
            others[n_other++] = j;
    }
    int j = n_nb ? nbs[simnet_below(&net, (uint64_t)n_nb)] : -1;
    int kind = (int)simnet_below(&net, 6);
    if (kind >= 4 && j < 0)
        kind = 0;
    hc_pid from = j >= 0 ? S[j].sh.pid : hostile_pid;
    hc_buf b = {0};
    switch (kind) {
    case 0: /* a term, but no envelope */
        hc_enc_tuple_header(&b, 2);
        hc_enc_atom_cstr(&b, "$hordec_crdt");
        hc_enc_long(&b, 1);
        break;
    case 1: { /* not a term at all */
        size_t n = 1 + simnet_below(&net, 40);
        hc_buf_put_u8(&b, 131); /* a version byte: never the start of a term here */
        for (size_t k = 1; k < n; k++)
            hc_buf_put_u8(&b, (uint8_t)simnet_rnd(&net));
        break;
    }
    case 2: /* an envelope from a replica that is not a neighbour (or from a node outside the cluster) */
        if (n_other) {
            int o = others[simnet_below(&net, (uint64_t)n_other)];
            from = S[o].sh.pid;
            enc_envelope(&b, S[o].sh.name);
        } else {
            from = hostile_pid;
            enc_envelope(&b, r->sh.name);
        }
        hc_enc_atom_cstr(&b, "junk");
        break;
    case 3: /* a neighbour's node, but a name that is not the neighbour's */
        enc_envelope(&b, a_intruder);
        hc_enc_atom_cstr(&b, "junk");
        break;
    case 5: /* a neighbour's envelope around a well-formed lie */
        if (enc_lying_delta(&b, i, j))
            break;
        kind = 4;
        /* fall through */
    default: /* a neighbour's envelope around garbage */
        enc_envelope(&b, S[j].sh.name);
        if (simnet_below(&net, 2)) {
            hc_enc_tuple_header(&b, 3);
            hc_enc_atom_cstr(&b, "junk");
            hc_enc_long(&b, 1);
            hc_enc_long(&b, 2);
        } else {
            /* the start of a sync message, cut short after its version tag */
            hc_enc_tuple_header(&b, 8);
            hc_enc_atom_cstr(&b, "$hordec_crdt");
            hc_buf_put_u8(&b, 97);
        }
        break;
    }
    if (b.err)
        abort();
    hc_crdt *e = engine(i);
    uint64_t root = hc_crdt_root_hash(e), size = hc_crdt_size(e), rej = rejected_total(i);
    uint64_t dropped = hc_host_dropped_in(r->sh.host), sends = r->sh.peer_sends + r->sh.pid_sends;
    simnet_msg m = {.at = net.now, .from = from, .to_node = i, .to_name = r->sh.name, .data = b.data, .len = b.len};
    int rc = simhost_deliver(&r->sh, &m) || after(i);
    hc_buf_free(&b);
    if (rc)
        return -1;
    T.injected++;
    bool to_core = kind >= 4;
    if (hc_host_dropped_in(r->sh.host) != dropped + !to_core || rejected_total(i) != rej + to_core)
        FAIL("replica %d: hostile message (kind %d) not counted once where it belongs", i, kind);
    if (hc_crdt_root_hash(engine(i)) != root || hc_crdt_size(engine(i)) != size ||
        r->sh.peer_sends + r->sh.pid_sends != sends)
        FAIL("replica %d: a hostile message (kind %d) changed something", i, kind);
    return 0;
}

/* ------------------------------------------------------------------ subscribers */

static void enc_subscribe(const char *op, const hc_pid *pid)
{
    hc_buf_reset(&req);
    hc_enc_tuple_header(&req, 2);
    hc_enc_atom_cstr(&req, op);
    hc_enc_pid(&req, pid);
}

static int check_subscribers(int i)
{
    size_t have = hc_host_subscribers(S[i].sh.host);
    if (have != S[i].subs)
        FAIL("replica %d: the host has %zu subscribers, %zu expected", i, have, S[i].subs);
    return 0;
}

/* The oracle subscribes to a freshly started host: its snapshot (all parts sent during the call) must be
 * exactly the map. */
static int oracle_subscribe(int i)
{
    replica *r = &S[i];
    memset(r->shadow, 0, ((size_t)n_keys + 1) * sizeof *r->shadow);
    enc_subscribe("stream_subscribe", &r->oracle_pid);
    T.requests++;
    if (simhost_call(&r->sh, &r->oracle_pid, req.data, req.len, &rep))
        return -1;
    if (simmirror_subscribed(&r->oracle, rep.data, rep.len))
        FAIL("replica %d: stream_subscribe did not answer {ok, Epoch}", i);
    if (after(i))
        return -1;
    if (!simmirror_synced(&r->oracle))
        FAIL("replica %d: the snapshot was not complete when the subscription was answered", i);
    char why[256];
    if (simmirror_compare(&r->oracle, walk_engine, engine(i), why, sizeof why))
        FAIL("replica %d: the snapshot is not the map: %s", i, why);
    r->subs = 1;
    return check_subscribers(i);
}

static int mirror_later(int k, uint64_t ms)
{
    M[k].waiting = true;
    simnet_timer_set(&net, MIRROR_TIMER + k, net.now + ms);
    return 0;
}

/* Mirror k (re)subscribes to its replica, or tries again later while the replica is down. */
static int mirror_subscribe(int k)
{
    mirror *c = &M[k];
    int i = c->replica;
    if (!running(i))
        return mirror_later(k, 100);
    c->m.stream = S[i].sh.name;
    enc_subscribe("stream_subscribe", &c->pid);
    if (call(i, &c->pid))
        return -1;
    if (simmirror_subscribed(&c->m, rep.data, rep.len))
        FAIL("replica %d: stream_subscribe did not answer {ok, Epoch}", i);
    T.subscriptions++;
    if (!c->subscribed)
        S[i].subs++;
    c->subscribed = true;
    if (!simhost_monitoring(&S[i].sh, &c->pid))
        FAIL("replica %d: a subscriber is not monitored", i);
    return check_subscribers(i);
}

static int mirror_timer(int k)
{
    M[k].waiting = false;
    return !M[k].subscribed || M[k].m.doubt ? mirror_subscribe(k) : 0;
}

static int mirror_doubt(int k)
{
    return M[k].waiting ? 0 : mirror_later(k, 50 + simnet_below(&net, 300)); /* backs off, as a client would */
}

static int mirror_receive(const simnet_msg *m)
{
    for (int k = 0; k < n_mirrors; k++) {
        mirror *c = &M[k];
        if (!hc_pid_eq(&c->pid, &m->to_pid))
            continue;
        char why[256];
        if (simmirror_receive(&c->m, m->data, m->len, why, sizeof why))
            FAIL("mirror %d of replica %d: %s", k, c->replica, why);
        return c->m.doubt ? mirror_doubt(k) : 0;
    }
    return 0; /* a process that is gone */
}

/* The replica of every mirror attached to i is gone (its monitor would fire): resubscribe later. */
static int mirrors_lost(int i)
{
    for (int k = 0; k < n_mirrors; k++)
        if (M[k].replica == i && M[k].subscribed) {
            M[k].subscribed = false;
            simmirror_detach(&M[k].m);
            if (mirror_doubt(k))
                return -1;
        }
    return 0;
}

/* Kill, unsubscribe or resubscribe a mirror. */
static int mirror_step(void)
{
    if (!n_mirrors)
        return 0;
    int k = (int)simnet_below(&net, (uint64_t)n_mirrors);
    mirror *c = &M[k];
    int i = c->replica, what = (int)simnet_below(&net, 3);
    if (!c->subscribed || !running(i))
        return 0;
    if (what == 2)
        return mirror_subscribe(k); /* again, with the same pid: a new epoch, no second monitor */
    if (what == 0) {
        /* killed: the host's monitor fires and it must forget the subscriber */
        T.kills++;
        int fired = simhost_kill(&S[i].sh, &c->pid);
        if (fired < 0 || after(i))
            return -1;
        if (fired != 1)
            FAIL("replica %d: %d monitors fired for one dead subscriber", i, fired);
        c->pid.serial++; /* a new process takes its place, maybe watching another replica */
        if (simnet_below(&net, 2))
            c->replica = (int)simnet_below(&net, (uint64_t)R);
    } else { /* unsubscribed: the host demonitors and forgets it */
        T.unsubscribes++;
        enc_subscribe("stream_unsubscribe", &c->pid);
        if (call(i, &c->pid))
            return -1;
        if (!reply_is("ok"))
            FAIL("replica %d: stream_unsubscribe did not answer ok", i);
        if (simhost_monitoring(&S[i].sh, &c->pid))
            FAIL("replica %d: an unsubscribed subscriber is still monitored", i);
    }
    S[i].subs--;
    c->subscribed = false;
    simmirror_detach(&c->m);
    if (check_subscribers(i))
        return -1;
    return mirror_doubt(k);
}

/* ------------------------------------------------------------------ lifecycle */

static int replica_start(int i, void *core)
{
    replica *r = &S[i];
    epoch_base += 1u << 24; /* epochs of different host instances never meet (hordec draws the base at random) */
    if (simhost_start(&r->sh, &hc_crdt_core_ops, core, batch_bytes, epoch_base))
        return -1;
    memset(r->down, 0, sizeof r->down); /* a new process knows nothing of nodedowns */
    if (set_neighbours(i) || oracle_subscribe(i))
        return -1;
    return 0;
}

static int replica_new(int i)
{
    hc_crdt_config cfg = base_cfg;
    cfg.replica_id = ++next_rid * 0x10001 + 7; /* arbitrary, distinct ids */
    void *core;
    if (hc_crdt_core_new(&cfg, now_at(i), &core))
        FAIL("hc_crdt_core_new failed");
    S[i].life = n_lives++;
    S[i].last_hlc = 0; /* a new replica id starts a new clock; a restart with state keeps checking the old */
    life_lost = realloc(life_lost, (size_t)n_lives);
    if (!life_lost)
        abort();
    life_lost[S[i].life] = 0;
    return replica_start(i, core);
}

/* The replica's process dies (with its node, or alone), keeping its state or not. */
static int crash(int i, bool keep_state, bool node)
{
    replica *r = &S[i];
    T.dropped_in += hc_host_dropped_in(r->sh.host); /* the counters of this incarnation */
    if (!keep_state)
        T.rejected += rejected_total(i); /* a kept engine keeps counting */
    r->kept = simhost_stop(&r->sh, keep_state);
    if (!keep_state)
        life_lost[r->life] = 1;
    r->subs = 0;
    simmirror_detach(&r->oracle);
    if (mirrors_lost(i))
        return -1;
    if (node)
        simnet_crash(&net, i);
    return net.failed ? -1 : 0;
}

static int restart(int i)
{
    replica *r = &S[i];
    if (!net.nodes[i].alive)
        simnet_restart(&net, i);
    if (!r->kept)
        return replica_new(i);
    void *core = r->kept;
    r->kept = NULL;
    if (hc_crdt_restart(hc_crdt_core_engine(core), now_at(i)))
        FAIL("restart failed");
    return replica_start(i, core);
}

static int set_nb(int i, int j, int on)
{
    if (S[i].nb[j] == on)
        return 0;
    S[i].nb[j] = on;
    S[i].down[j] = false; /* a new neighbour starts up: the core greets it */
    return running(i) ? set_neighbours(i) : 0;
}

/* ------------------------------------------------------------------ the world's callbacks */

static int on_deliver(void *ud, const simnet_msg *m)
{
    if (m->to_node == client_node)
        return mirror_receive(m);
    int i = m->to_node;
    if (!running(i) || m->to_name != S[i].sh.name)
        return 0; /* nobody registered under that name: lost */
    answering = m->from_node;
    int rc = simhost_deliver(&S[i].sh, m) || after(i) ? -1 : 0;
    answering = -1;
    return rc;
}

static int on_timer(void *ud, int id)
{
    if (id >= MIRROR_TIMER)
        return mirror_timer(id - MIRROR_TIMER);
    if (!running(id))
        return 0;
    if (simhost_tick(&S[id].sh) || after(id))
        return -1;
    return ++steps % (uint64_t)check_every == 0 ? full_check(id) : 0;
}

static int on_node_event(void *ud, int at, int about, bool up)
{
    if (at >= R || !running(at))
        return 0;
    if (about < R && S[at].nb[about])
        S[at].down[about] = !up;
    return simhost_node_event(&S[at].sh, about, up) || after(at) ? -1 : 0;
}

/* A damaged copy of a sync message: a future protocol version, which must be refused as such. */
static bool on_corrupt(void *ud, simnet_msg *m)
{
    size_t i = 0;
    uint32_t arity;
    hc_atom sender;
    if (!m->to_name || hc_dec_tuple_header(m->data, m->len, &i, &arity) ||
        !hc_dec_is_atom(m->data, m->len, &i, "$hordec_replica") || hc_dec_atom(m->data, m->len, &i, &sender))
        return false;
    if (m->len > i + 17 && m->data[i + 16] == 97) {
        m->data[i + 17] = 99;
        return true;
    }
    return false;
}

static bool hook_send_pid(void *ud, simhost *sh, const hc_pid *to, const uint8_t *msg, size_t len)
{
    replica *r = ud;
    if (!hc_pid_eq(to, &r->oracle_pid))
        return false;
    if (hc_array_reserve((void **)&r->inbox, &r->cap_inbox, r->n_inbox + 1, sizeof *r->inbox, 8))
        abort();
    uint8_t *p = malloc(len ? len : 1);
    if (!p)
        abort();
    memcpy(p, msg, len);
    r->inbox[r->n_inbox++] = (struct inbox_msg){p, len};
    return true;
}

static int hook_send_peer(void *ud, simhost *sh, int to, hc_atom name, const uint8_t *msg, size_t len)
{
    replica *r = ud;
    int i = (int)(r - S);
    if (to < 0 || to >= R || !r->nb[to] || name != S[to].sh.name)
        FAIL("replica %d: a message to {%s, %s}, which is not a neighbour", i, hc_atom_name(name),
             to >= 0 ? hc_atom_name(net.nodes[to].atom) : "?");
    if (len > base_cfg.max_message_bytes)
        FAIL("replica %d: %zu-byte message over max_message_bytes", i, len);
    if (r->down[to] && to != answering) /* answering what a peer just sent is fine: it got through */
        FAIL("replica %d: a message to replica %d, whose node it was told is down", i, to);
    return 0;
}

/* ------------------------------------------------------------------ verification */

static int quiet(void)
{
    for (int i = 0; i < R; i++)
        if (running(i) && !hc_crdt_idle(engine(i)))
            return 0;
    return 1; /* digests may still be on the wire: that is the steady state */
}

static uint64_t repairs_started(void)
{
    uint64_t n = 0;
    hc_crdt_stats st;
    for (int i = 0; i < R; i++)
        if (running(i)) {
            hc_crdt_get_stats(engine(i), &st);
            n += st.repairs_started;
        }
    return n;
}

static int converged(void)
{
    for (int i = 1; i < R; i++)
        if (hc_crdt_root_hash(engine(i)) != hc_crdt_root_hash(engine(0)) ||
            hc_crdt_size(engine(i)) != hc_crdt_size(engine(0)))
            return 0;
    return 1;
}

static void dump_state(void)
{
    if (!getenv("HORDEC_SIM_DUMP"))
        return;
    for (int i = 0; i < R; i++) {
        if (!running(i))
            continue;
        hc_crdt *r = engine(i);
        fprintf(stderr, "replica %d rid %llu inc %llu pending %zu keys %zu\n", i, (unsigned long long)r->rid,
                (unsigned long long)r->inc, r->pending.n, r->map.count);
        for (size_t k = 0; k < r->n_peers; k++) {
            crdt_peer *p = &r->peers[k];
            fprintf(stderr,
                    "  peer %llu up %d rid %llu inc %llu heard %d qn %zu acks %zu needs %d push %s phase %d "
                    "reqs %zu front %zu ship %zu in.sid %llu\n",
                    (unsigned long long)p->handle, p->up, (unsigned long long)p->rid, (unsigned long long)p->inc,
                    p->heard_me, p->qn, p->n_acks, p->needs_repair, p->push ? "yes" : "no",
                    p->push ? p->push->phase : -1, p->push ? p->push->n_reqs : 0, p->push ? p->push->n_front : 0,
                    p->push ? p->push->n_ship : 0, (unsigned long long)p->in.sid);
        }
    }
}

static int settle(uint64_t max_ms, uint64_t digest_ms)
{
    uint64_t deadline = net.now + max_ms, quiet_since = 0, repairs = 0;
    int was_quiet = 0;
    while (net.now < deadline) {
        if (simnet_run_until(&net, net.now + 10))
            return -1;
        if (quiet() && converged() && (!was_quiet || repairs == repairs_started())) {
            if (!was_quiet) {
                quiet_since = net.now;
                repairs = repairs_started();
            }
            was_quiet = 1;
            /* stay quiet for two digest rounds: a hidden difference would start a repair */
            if (net.now - quiet_since > 2 * digest_ms + 100)
                return 0;
        } else {
            was_quiet = 0;
        }
    }
    dump_state();
    FAIL("no convergence %" PRIu64 " ms after healing (quiet %d, converged %d)", max_ms, quiet(), converged());
}

static int removed_by(uint32_t k, uint64_t rid, uint64_t ctr, int certain_only)
{
    /* removals are few per key; a linear scan per check is fine at simulation sizes */
    for (size_t j = 0; j < n_removals; j++)
        if (removals[j].key == k && removals[j].rid == rid && removals[j].ctr == ctr &&
            (!certain_only || !life_lost[removals[j].life]))
            return 1;
    return 0;
}

static int verify_key(uint32_t k, const uint64_t *ops_of_key, size_t nk)
{
    uint8_t key[16];
    size_t kl = sim_key_term(key, k);
    hc_crdt_elem_info el0[MAX_ELEMS], el[MAX_ELEMS];
    size_t n0 = hc_crdt_elements(engine(0), key, kl, el0, MAX_ELEMS);
    uint64_t ops0[MAX_ELEMS];
    for (size_t j = 0; j < n0; j++)
        ops0[j] = value_op(el0[j].value, el0[j].value_len);
    for (int i = 1; i < R; i++) {
        size_t n = hc_crdt_elements(engine(i), key, kl, el, MAX_ELEMS);
        if (n != n0)
            FAIL("replicas 0 and %d disagree on key %u (%zu vs %zu elements)", i, k, n0, n);
        for (size_t j = 0; j < n; j++)
            if (value_op(el[j].value, el[j].value_len) != ops0[j] || el[j].hlc != el0[j].hlc)
                FAIL("replicas 0 and %d disagree on key %u", i, k);
    }
    /* the model: every survivor really written here, nothing removed by a surviving op, nothing lost */
    for (size_t j = 0; j < n0; j++) {
        uint64_t op = ops0[j];
        if (!op || op >= n_writes || writes[op].key != k || writes[op].rid != el0[j].replica_id ||
            writes[op].ctr != el0[j].counter || writes[op].hlc != el0[j].hlc)
            FAIL("key %u holds an element that was never written there", k);
        if (removed_by(k, el0[j].replica_id, el0[j].counter, 1))
            FAIL("key %u: op %" PRIu64 " survives although an operation that observed it survived", k, op);
        if (j && el0[j].hlc > el0[0].hlc)
            FAIL("key %u: resolved value is not the latest write", k);
    }
    for (size_t w = 0; w < nk; w++) {
        write_rec *wr = &writes[ops_of_key[w]];
        if (life_lost[wr->life] || removed_by(k, wr->rid, wr->ctr, 0))
            continue;
        int found = 0;
        for (size_t j = 0; j < n0; j++)
            found |= ops0[j] == ops_of_key[w];
        if (!found)
            FAIL("key %u: write op %" PRIu64 " was lost (never removed)", k, ops_of_key[w]);
    }
    const uint8_t *v;
    size_t vl;
    for (int i = 0; i < R; i++) {
        int has = hc_crdt_get(engine(i), key, kl, &v, &vl);
        uint64_t want = n0 ? ops0[0] : 0;
        if ((has ? value_op(v, vl) : 0) != want || S[i].shadow[k] != want)
            FAIL("replica %d key %u: get/change stream disagree with the elements", i, k);
    }
    return 0;
}

static int verify_model(void)
{
    /* index writes per key */
    uint64_t **per_key = calloc((size_t)n_keys, sizeof *per_key);
    size_t *nk = calloc((size_t)n_keys, sizeof *nk), *ck = calloc((size_t)n_keys, sizeof *ck);
    if (!per_key || !nk || !ck)
        abort();
    for (uint64_t op = 1; op < n_writes; op++) {
        if (!writes[op].rid || writes[op].key >= (uint32_t)n_keys)
            continue;
        uint32_t k = writes[op].key;
        if (nk[k] == ck[k]) {
            ck[k] = ck[k] ? ck[k] * 2 : 8;
            per_key[k] = realloc(per_key[k], ck[k] * sizeof **per_key);
            if (!per_key[k])
                abort();
        }
        per_key[k][nk[k]++] = op;
    }
    int rc = 0;
    for (uint32_t k = 0; k < (uint32_t)n_keys && !rc; k++)
        rc = verify_key(k, per_key[k], nk[k]);
    for (int k = 0; k < n_keys; k++)
        free(per_key[k]);
    free(per_key);
    free(nk);
    free(ck);
    return rc;
}

static int sequential_phase(uint64_t digest_ms)
{
    uint8_t key[16];
    size_t kl = sim_key_term(key, SEQ_KEY);
    for (int round = 0; round < 12; round++) {
        int i = (int)simnet_below(&net, (uint64_t)R);
        uint64_t want = 0;
        if (round % 4 == 3) {
            if (do_delete(i, SEQ_KEY))
                return -1;
        } else {
            want = next_op;
            if (do_put(i, SEQ_KEY, simnet_below(&net, 40)))
                return -1;
        }
        if (settle(60000, digest_ms))
            return -1;
        for (int j = 0; j < R; j++) {
            const uint8_t *v;
            size_t vl;
            int has = hc_crdt_get(engine(j), key, kl, &v, &vl);
            if ((has ? value_op(v, vl) : 0) != want)
                FAIL("sequential phase: replica %d does not see the last write (round %d)", j, round);
        }
    }
    return 0;
}

/* The sequential phase changed every replica's map with faults off, so a mirror that had lost the end of
 * its stream has seen the next sequence number by now and resubscribed. Wait for the last snapshots to
 * land, then every mirror must hold exactly its replica's map. */
static int verify_streams(void)
{
    char why[256];
    for (int round = 0;; round++) {
        bool done = true;
        for (int k = 0; k < n_mirrors; k++)
            done &= M[k].subscribed && !M[k].waiting && simmirror_synced(&M[k].m);
        if (done && !simnet_in_flight_to(&net, client_node))
            break;
        if (round == 100)
            FAIL("a mirror did not settle after healing");
        if (simnet_run_until(&net, net.now + 50))
            return -1;
    }
    if (simnet_run_until(&net, net.now + 20)) /* faults are off: 1..3 ms latency */
        return -1;
    for (int k = 0; k < n_mirrors; k++) {
        mirror *c = &M[k];
        if (!simmirror_synced(&c->m))
            FAIL("mirror %d lost its subscription at the end", k);
        if (simmirror_compare(&c->m, walk_engine, engine(c->replica), why, sizeof why))
            FAIL("mirror %d of replica %d does not hold the replica's map: %s", k, c->replica, why);
        T.max_payload = c->m.max_payload > T.max_payload ? c->m.max_payload : T.max_payload;
    }
    for (int i = 0; i < R; i++) {
        if (simmirror_compare(&S[i].oracle, walk_engine, engine(i), why, sizeof why))
            FAIL("replica %d: its change stream does not add up to its map: %s", i, why);
        if (check_subscribers(i))
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ one run */

static void cleanup(void)
{
    for (int i = 0; i < MAX_REPLICAS; i++) {
        replica *r = &S[i];
        simhost_free(&r->sh);
        if (r->kept)
            hc_crdt_core_ops.free(r->kept);
        simmirror_free(&r->oracle);
        for (size_t k = 0; k < r->n_inbox; k++)
            free(r->inbox[k].p);
        free(r->inbox);
        free(r->shadow);
    }
    memset(S, 0, sizeof S);
    for (int k = 0; k < MAX_MIRRORS; k++)
        simmirror_free(&M[k].m);
    memset(M, 0, sizeof M);
    simnet_free(&net);
    free(writes);
    free(removals);
    free(life_lost);
    writes = NULL;
    removals = NULL;
    life_lost = NULL;
    n_writes = cap_writes = n_removals = cap_removals = 0;
    n_lives = 0;
    hc_buf_free(&req);
    hc_buf_free(&rep);
}

static void add_totals(sim_totals *tot)
{
    T.delivered = net.delivered, T.bytes = net.bytes, T.lost = net.lost, T.dropped = net.dropped;
    T.duplicated = net.duplicated, T.damaged = net.damaged, T.reordered = net.reordered;
    T.connects = net.connects, T.disconnects = net.disconnects;
    for (int i = 0; i < R; i++)
        if (running(i)) {
            T.dropped_in += hc_host_dropped_in(S[i].sh.host);
            T.rejected += rejected_total(i);
        }
    T.mirrors = (uint64_t)n_mirrors;
    for (int k = 0; k < n_mirrors; k++) {
        T.stream_msgs += M[k].m.msgs;
        T.gaps += M[k].m.gaps;
        T.stream_dups += M[k].m.dups;
        T.stream_stale += M[k].m.stale;
        T.stream_damaged += M[k].m.damaged;
    }
    tot->delivered += T.delivered, tot->bytes += T.bytes, tot->lost += T.lost, tot->dropped += T.dropped;
    tot->duplicated += T.duplicated, tot->damaged += T.damaged, tot->reordered += T.reordered;
    tot->connects += T.connects, tot->disconnects += T.disconnects;
    tot->requests += T.requests, tot->injected += T.injected, tot->dropped_in += T.dropped_in;
    tot->rejected += T.rejected, tot->mirrors += T.mirrors, tot->subscriptions += T.subscriptions;
    tot->kills += T.kills, tot->unsubscribes += T.unsubscribes, tot->stream_msgs += T.stream_msgs;
    tot->gaps += T.gaps, tot->stream_dups += T.stream_dups, tot->stream_stale += T.stream_stale;
    tot->stream_damaged += T.stream_damaged;
    if (T.max_payload > tot->max_payload)
        tot->max_payload = T.max_payload;
}

static int chaos_step(int i)
{
    unsigned a = (unsigned)simnet_below(&net, 1000);
    if (a < 880) {
        if (!running(i))
            return 0;
        unsigned b = (unsigned)simnet_below(&net, 100);
        int rc = b < 60   ? do_put(i, pick_key(), pick_pad())
                 : b < 82 ? do_delete(i, pick_key())
                 : b < 95 ? do_bulk(i)
                 : b < 97 ? do_too_big(i)
                          : do_read(i);
        if (!rc && ++steps % (uint64_t)check_every == 0)
            rc = full_check(i);
        return rc;
    }
    if (a < 895)
        return mirror_step();
    if (a < 910)
        return running(i) ? inject(i) : 0;
    if (a < 930) { /* partition, or heal */
        int group[SIMNET_MAX_NODES] = {0};
        int split = (int)simnet_below(&net, 2);
        for (int j = 0; j < R; j++)
            group[j] = split ? (int)simnet_below(&net, 2) : 0;
        simnet_partition(&net, group);
        return 0;
    }
    if (a < 955) {
        if (!running(i))
            return restart(i);
        int alive = 0;
        for (int j = 0; j < R; j++)
            alive += running(j);
        return alive > 1 ? crash(i, simnet_below(&net, 2), simnet_below(&net, 3) != 0) : 0;
    }
    if (a < 980) { /* membership change, symmetric or not, sometimes after a list that must be refused */
        int j = (int)simnet_below(&net, (uint64_t)R);
        if (j == i)
            return 0;
        if (running(i) && !simnet_below(&net, 8) && bad_set_neighbours(i))
            return -1;
        int on = !S[i].nb[j];
        if (set_nb(i, j, on))
            return -1;
        return simnet_below(&net, 2) ? set_nb(j, i, on) : 0;
    }
    /* a connection flaps (both ends see it go down; the hosts re-dial), or a repeated nodeup */
    int j = (int)simnet_below(&net, (uint64_t)R);
    if (j == i || !simnet_connected(&net, i, j))
        return 0;
    if (simnet_below(&net, 2))
        return simnet_disconnect(&net, i, j);
    return running(i) ? simhost_node_event(&S[i].sh, j, true) || after(i) : 0;
}

int sim_crdt_run(uint64_t seed, const sim_crdt_opts *o, sim_totals *tot, sim_result *res)
{
    simnet_handler h = {.deliver = on_deliver, .timer = on_timer, .node_event = on_node_event, .corrupt = on_corrupt};
    simnet_init(&net, seed, 1000000, &h);
    memset(&T, 0, sizeof T);
    next_op = 1;
    next_rid = seed << 8;
    epoch_base = 0;
    steps = 0;
    check_every = 7;
    R = o->rmin + (int)simnet_below(&net, (uint64_t)(o->rmax - o->rmin + 1));
    n_keys = HOT_KEYS + 50 + (int)simnet_below(&net, 300);
    static const size_t msg_sizes[] = {4096, 6000, 16384, 65536};
    hc_crdt_config_init(&base_cfg, 1);
    base_cfg.max_message_bytes = msg_sizes[simnet_below(&net, 4)];
    base_cfg.flush_interval_ms = (uint32_t)simnet_below(&net, 10);
    base_cfg.retransmit_ms = 20 + (uint32_t)simnet_below(&net, 40);
    base_cfg.hello_interval_ms = 50;
    base_cfg.digest_interval_ms = 200 + (uint32_t)simnet_below(&net, 400);
    base_cfg.max_unacked_batches = simnet_below(&net, 3) ? 4096 : 4 + (uint32_t)simnet_below(&net, 20);
    base_cfg.max_unacked_bytes = simnet_below(&net, 3) ? (8u << 20) : 20000;
    base_cfg.repair_window = 1 + (uint32_t)simnet_below(&net, 4);
    simnet_faults f = {
        .drop_pm = (unsigned)simnet_below(&net, 150),
        .dup_pm = (unsigned)simnet_below(&net, 50),
        .corrupt_pm = (unsigned)simnet_below(&net, 20),
        .reorder_pm = simnet_below(&net, 4) ? (unsigned)simnet_below(&net, 400) : 1000,
        .max_delay_ms = 2 + (unsigned)simnet_below(&net, 60),
        .dial_ms = 1 + (unsigned)simnet_below(&net, 30),
        .detect_ms = 1 + (unsigned)simnet_below(&net, 1500),
    };
    static const size_t batch_sizes[] = {256, 1024, 4096, HC_HOST_STREAM_BATCH_BYTES};
    batch_bytes = batch_sizes[simnet_below(&net, 4)];
    bool same_name = simnet_below(&net, 2); /* Horde's layout: one name on every node; or a name each */
    for (int i = 0; i < R; i++) {
        int64_t skew = (int64_t)simnet_below(&net, 300) - 150;
        /* a replica's monotonic clock starts at its own origin (as after a boot) and never jumps; its wall
         * clock is skewed: deadlines use the first, HLC stamps the second, and nothing may mix them */
        simnet_add_node(&net, hc_atom_name(a_nodes[i]), true, 1000003u * (uint64_t)(i + 1), skew);
    }
    client_node = simnet_add_node(&net, hc_atom_name(a_client), false, 7, 0);
    client_pid = (hc_pid){a_client, 1, 1, 1};
    hostile_pid = (hc_pid){a_hostile, 66, 6, 1};
    for (int i = 0; i < R; i++) {
        replica *r = &S[i];
        simhost_hooks hooks = {.ud = r, .send_pid = hook_send_pid, .send_peer = hook_send_peer};
        simhost_init(&r->sh, &net, i, i, same_name ? a_same_name : a_names[i], 1, &hooks);
        r->shadow = calloc((size_t)n_keys + 1, sizeof *r->shadow);
        if (!r->shadow)
            abort();
        r->oracle_pid = (hc_pid){a_client, ORACLE_PID + (uint32_t)i, 1, 1};
        simmirror_init(&r->oracle, r->sh.name, batch_bytes, oracle_change, r);
        for (int j = 0; j < R; j++)
            r->nb[j] = i != j;
    }
    n_mirrors = 1 + (int)simnet_below(&net, MAX_MIRRORS);
    for (int k = 0; k < n_mirrors; k++) {
        M[k].replica = (int)simnet_below(&net, (uint64_t)R);
        M[k].pid = (hc_pid){a_client, MIRROR_PID + (uint32_t)k, 1, 1};
        simmirror_init(&M[k].m, S[M[k].replica].sh.name, batch_bytes, NULL, NULL);
    }
    simnet_set_faults(&net, true, &f);
    int rc = 0;
    for (int i = 0; i < R && !rc; i++)
        rc = replica_new(i);
    for (int k = 0; k < n_mirrors && !rc; k++)
        rc = mirror_subscribe(k);
    for (int step = 0; step < o->ops && !rc; step++) {
        if ((rc = simnet_run_until(&net, net.now + simnet_below(&net, 4))))
            break;
        rc = chaos_step((int)simnet_below(&net, (uint64_t)R));
    }
    /* heal: everything back, full mesh, no faults */
    if (!rc) {
        int group[SIMNET_MAX_NODES] = {0};
        simnet_set_faults(&net, false, NULL);
        simnet_partition(&net, group);
        for (int i = 0; i < R && !rc; i++)
            for (int j = 0; j < R && !rc; j++)
                if (i != j)
                    rc = set_nb(i, j, 1);
        for (int i = 0; i < R && !rc; i++)
            if (!running(i))
                rc = restart(i);
    }
    if (!rc)
        rc = settle(120000, base_cfg.digest_interval_ms);
    for (int i = 0; i < R && !rc; i++)
        rc = full_check(i);
    if (!rc)
        rc = verify_model();
    if (!rc)
        rc = sequential_phase(base_cfg.digest_interval_ms);
    if (!rc)
        rc = verify_streams();
    if (rc && !net.failed)
        simnet_fail(&net, "a check failed without saying why");
    res->trace_hash = net.trace_hash;
    res->delivered = net.delivered;
    res->fail_t = net.fail_t;
    snprintf(res->why, sizeof res->why, "%s", net.failed ? net.fail_msg : "");
    add_totals(tot);
    cleanup();
    return rc ? -1 : 0;
}
