/* sim.c — hordec-sim: deterministic simulation of many CRDT replicas over a hostile network.
 *
 * One PRNG seeded by --seed drives everything (operations, faults, latencies, configuration), so a
 * failing seed replays bit for bit. Each run:
 *   1. chaos: random puts/deletes/bulk ops on a hot and a cold keyspace (some values large enough to force
 *      chunking under a small max_message_bytes) while the network drops, duplicates, delays, reorders
 *      and truncates messages, partitions split the cluster, replicas crash and restart (with their state,
 *      or empty under a new replica id) and neighbour sets change;
 *   2. heal: everything restarts and reconnects, faults stop, and the cluster must go quiet;
 *   3. verify: all replicas hold the same elements and resolved values, within the bounds of the
 *      reference model below, and every replica's event stream reproduces its map;
 *   4. sequential: writes and deletes at random replicas (clocks skewed), each fully synced before the
 *      next: the last one must win everywhere.
 * After every step the touched replicas pass hc_crdt_check (indexes, range hashes, context covers
 * stored dots), their HLC never goes backwards, every event names a value really written to that key,
 * and a local write immediately wins locally.
 *
 * Reference model (add-wins observed-remove with LWW read): for each key, W = all writes (dots), R = dots
 * observed (hence removed) by some later operation on that key. With no state ever lost, the surviving
 * set must be exactly W \ R. A replica restarted empty loses whatever it had not passed on, so its
 * operations are "uncertain": the survivors S must satisfy  W_certain \ R_all  ⊆  S  ⊆  W \ R_certain. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "hordec/hc_crdt.h"
#include "crdt/replica.h" /* only for the failure dump */

#define MAX_REPLICAS 16
#define HOT_KEYS 8
#define SEQ_KEY 0x7fffffff

/* ---- PRNG: splitmix64, the only source of randomness ---- */
static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static uint64_t below(uint64_t n) { return n ? rnd() % n : 0; }
static int permille(unsigned p) { return below(1000) < p; }

/* ---- failure reporting ---- */
static uint64_t cur_seed;
static uint64_t now_t;
static char fail_msg[512];
static int failed;
#define FAIL(...)                                                                                      \
    do {                                                                                               \
        if (!failed) {                                                                                 \
            failed = 1;                                                                                \
            snprintf(fail_msg, sizeof fail_msg, __VA_ARGS__);                                          \
        }                                                                                              \
        return -1;                                                                                     \
    } while (0)

/* ---- terms: keys {k, N} and values <<OpId:64, Padding/binary>> ---- */
static size_t key_term(uint8_t *out, uint32_t k)
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
static uint8_t *value_term(uint64_t op, size_t pad, size_t *len)
{
    size_t n = 8 + pad;
    uint8_t *v = malloc(5 + n);
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

/* ---- the reference log ---- */
typedef struct write_rec {
    uint32_t key;
    uint64_t rid, ctr, hlc;
    int life;       /* the replica life that made it; lost lives make it uncertain */
    size_t len;     /* value length, to check bytes */
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

/* ---- replicas ---- */
typedef struct slot {
    hc_crdt *r;
    int alive;
    int life;
    uint64_t last_hlc;
    int64_t skew;
    uint64_t mono_origin; /* where its monotonic clock started */
    uint64_t *shadow; /* per key index: op id of the resolved value according to the event stream */
    int nb[MAX_REPLICAS]; /* neighbour flags */
} slot;

static slot S[MAX_REPLICAS];
static int R, n_keys;
static uint64_t next_rid;
static hc_crdt_config base_cfg;

/* ---- network ---- */
typedef struct msg {
    uint64_t at, order;
    int from, to;
    uint8_t *data;
    size_t len;
} msg;
static msg *heap;
static size_t n_heap, cap_heap;
static uint64_t msg_order;
static int partition_group[MAX_REPLICAS];
static int faults_on;
static unsigned drop_pm, dup_pm, corrupt_pm, max_delay;
static uint64_t trace_hash, delivered, bytes_moved;

static int msg_before(const msg *a, const msg *b) { return a->at != b->at ? a->at < b->at : a->order < b->order; }
static void heap_push(msg m)
{
    if (n_heap == cap_heap) {
        cap_heap = cap_heap ? cap_heap * 2 : 256;
        heap = realloc(heap, cap_heap * sizeof *heap);
    }
    size_t i = n_heap++;
    heap[i] = m;
    while (i && msg_before(&heap[i], &heap[(i - 1) / 2])) {
        msg t = heap[i];
        heap[i] = heap[(i - 1) / 2];
        heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}
static msg heap_pop(void)
{
    msg top = heap[0];
    heap[0] = heap[--n_heap];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n_heap && msg_before(&heap[l], &heap[m]))
            m = l;
        if (r < n_heap && msg_before(&heap[r], &heap[m]))
            m = r;
        if (m == i)
            break;
        msg t = heap[i];
        heap[i] = heap[m];
        heap[m] = t;
        i = m;
    }
    return top;
}

static uint64_t local_time(int i) { return (uint64_t)((int64_t)now_t + S[i].skew); }
/* A replica's monotonic clock starts at its own origin (as after a boot) and never jumps; its wall clock
 * is skewed. Deadlines use the first, HLC stamps the second: the engine must never mix them. */
static uint64_t mono_time(int i) { return now_t + S[i].mono_origin; }
static hc_time sim_time(int i) { return (hc_time){mono_time(i), local_time(i)}; }

static void net_send(int from, int to, const uint8_t *data, size_t len)
{
    int copies = 1;
    if (faults_on) {
        if (permille(drop_pm))
            copies = 0;
        else if (permille(dup_pm))
            copies = 2;
    }
    for (int c = 0; c < copies; c++) {
        msg m = {now_t + 1 + below(faults_on ? max_delay : 3), msg_order++, from, to, malloc(len ? len : 1), len};
        memcpy(m.data, data, len);
        heap_push(m);
    }
    if (faults_on && permille(corrupt_pm) && len > 2) {
        /* hostile copies that must be rejected without effect: a truncation, or a future version */
        msg m = {now_t + 1 + below(max_delay), msg_order++, from, to, malloc(len), len};
        memcpy(m.data, data, len);
        if (below(2))
            m.len = below(len - 1) + 1;
        else if (len > 17 && m.data[16] == 97)
            m.data[17] = 99;
        else
            m.len = 1;
        heap_push(m);
    }
}

/* ---- per-call checks and effect draining ---- */

static int check_hlc(int i)
{
    uint64_t h = hc_crdt_hlc_last(S[i].r);
    if (h < S[i].last_hlc)
        FAIL("replica %d: HLC went backwards", i);
    S[i].last_hlc = h;
    return 0;
}

static int drain(int i)
{
    hc_crdt_msg m;
    while (hc_crdt_pop_message(S[i].r, &m)) {
        if (m.peer >= (uint64_t)R)
            FAIL("replica %d: message to unknown peer %" PRIu64, i, m.peer);
        if (m.len > base_cfg.max_message_bytes)
            FAIL("replica %d: %zu-byte message over max_message_bytes", i, m.len);
        net_send(i, (int)m.peer, m.data, m.len);
    }
    hc_crdt_event ev;
    while (hc_crdt_pop_event(S[i].r, &ev)) {
        uint32_t k;
        if (key_index(ev.key, ev.key_len, &k) || (k >= (uint32_t)n_keys && k != SEQ_KEY))
            FAIL("replica %d: event for a key never written", i);
        uint32_t slot_k = k == SEQ_KEY ? (uint32_t)n_keys : k;
        uint64_t old_op = ev.old_value ? value_op(ev.old_value, ev.old_len) : 0;
        uint64_t new_op = ev.new_value ? value_op(ev.new_value, ev.new_len) : 0;
        if (old_op != S[i].shadow[slot_k])
            FAIL("replica %d: event old value (op %" PRIu64 ") is not the previous resolved value (op %" PRIu64 ")",
                 i, old_op, S[i].shadow[slot_k]);
        if ((ev.kind == HC_CRDT_ADDED) != (old_op == 0) || (ev.kind == HC_CRDT_REMOVED) != (new_op == 0))
            FAIL("replica %d: event kind does not match its values", i);
        if (new_op && (new_op >= n_writes || writes[new_op].key != k || writes[new_op].len != ev.new_len))
            FAIL("replica %d: resolved value (op %" PRIu64 ") was never written to key %u", i, new_op, k);
        if (old_op == new_op)
            FAIL("replica %d: event without a change", i);
        S[i].shadow[slot_k] = new_op;
    }
    return check_hlc(i);
}

static int full_check(int i)
{
    char why[256];
    if (hc_crdt_check(S[i].r, why, sizeof why))
        FAIL("replica %d: invariant broken: %s", i, why);
    return 0;
}

/* ---- operations ---- */

static void log_write(uint32_t k, uint64_t rid, uint64_t ctr, uint64_t hlc, int life, size_t len, uint64_t op)
{
    if (op >= cap_writes) {
        cap_writes = cap_writes ? cap_writes * 2 : 1024;
        while (cap_writes <= op)
            cap_writes *= 2;
        writes = realloc(writes, cap_writes * sizeof *writes);
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
        }
        removals[n_removals++] = (removal){k, el[j].replica_id, el[j].counter, S[i].life};
    }
}

#define MAX_ELEMS 64
static uint64_t next_op = 1;

static uint32_t pick_key(void) { return below(2) ? (uint32_t)below(HOT_KEYS) : (uint32_t)below((uint64_t)n_keys); }

static size_t pick_pad(void)
{
    size_t big = base_cfg.max_message_bytes - HC_CRDT_VALUE_OVERHEAD - 10 - 13;
    if (permille(30))
        return big / 2 + below(big / 2); /* forces chunking and oversize records */
    if (permille(100))
        return below(1024);
    return below(24);
}

/* Records what a put of key k at replica i did, and checks a local write wins locally. */
static int after_put(int i, uint32_t k, uint64_t op, size_t len)
{
    uint8_t key[16];
    size_t kl = key_term(key, k);
    hc_crdt_elem_info el[MAX_ELEMS];
    size_t n = hc_crdt_elements(S[i].r, key, kl, el, MAX_ELEMS);
    if (n != 1 || value_op(el[0].value, el[0].value_len) != op)
        FAIL("replica %d: a local put of key %u is not the only element right after it", i, k);
    log_write(k == SEQ_KEY ? SEQ_KEY : k, el[0].replica_id, el[0].counter, el[0].hlc, S[i].life, len, op);
    return 0;
}

static int do_put(int i, uint32_t k, size_t pad)
{
    uint8_t key[16];
    size_t kl = key_term(key, k), vl;
    hc_crdt_elem_info el[MAX_ELEMS];
    size_t n = hc_crdt_elements(S[i].r, key, kl, el, MAX_ELEMS);
    uint64_t op = next_op++;
    uint8_t *v = value_term(op, pad, &vl);
    int rc = hc_crdt_put(S[i].r, key, kl, v, vl, sim_time(i));
    free(v);
    if (rc)
        FAIL("replica %d: put failed: %s", i, hc_strerror(rc));
    log_removals(i, k, el, n < MAX_ELEMS ? n : MAX_ELEMS);
    return after_put(i, k, op, vl);
}

static int do_delete(int i, uint32_t k)
{
    uint8_t key[16];
    size_t kl = key_term(key, k);
    hc_crdt_elem_info el[MAX_ELEMS];
    size_t n = hc_crdt_elements(S[i].r, key, kl, el, MAX_ELEMS);
    int rc = hc_crdt_delete(S[i].r, key, kl, sim_time(i));
    if (rc)
        FAIL("replica %d: delete failed: %s", i, hc_strerror(rc));
    log_removals(i, k, el, n < MAX_ELEMS ? n : MAX_ELEMS);
    if (hc_crdt_elements(S[i].r, key, kl, el, MAX_ELEMS))
        FAIL("replica %d: key %u still present after a local delete", i, k);
    return 0;
}

static int do_bulk(int i)
{
    enum { MAXB = 8 };
    uint32_t ks[MAXB];
    int n = 1 + (int)below(MAXB), m = 0;
    for (int j = 0; j < n; j++) { /* distinct keys: each op then observes exactly the pre-bulk state */
        uint32_t k = pick_key();
        int dup = 0;
        for (int q = 0; q < m; q++)
            dup |= ks[q] == k;
        if (!dup)
            ks[m++] = k;
    }
    hc_crdt_kv ops[MAXB];
    uint8_t keys[MAXB][16], *vals[MAXB];
    uint64_t opids[MAXB];
    size_t vlens[MAXB];
    hc_crdt_elem_info el[MAX_ELEMS];
    for (int j = 0; j < m; j++) {
        size_t kl = key_term(keys[j], ks[j]);
        size_t n_el = hc_crdt_elements(S[i].r, keys[j], kl, el, MAX_ELEMS);
        log_removals(i, ks[j], el, n_el < MAX_ELEMS ? n_el : MAX_ELEMS);
        vals[j] = NULL;
        opids[j] = 0;
        if (below(4)) {
            opids[j] = next_op++;
            vals[j] = value_term(opids[j], pick_pad() % 200, &vlens[j]);
        }
        ops[j] = (hc_crdt_kv){keys[j], kl, vals[j], vals[j] ? vlens[j] : 0};
    }
    int rc = hc_crdt_bulk(S[i].r, ops, (size_t)m, sim_time(i));
    for (int j = 0; j < m; j++)
        if (!rc && vals[j] && after_put(i, ks[j], opids[j], vlens[j]))
            rc = -1;
    for (int j = 0; j < m; j++)
        free(vals[j]);
    if (rc > 0 || (rc < 0 && !failed))
        FAIL("replica %d: bulk failed: %s", i, hc_strerror(rc));
    return rc ? -1 : 0;
}

static int do_too_big(int i)
{
    uint8_t key[16];
    size_t kl = key_term(key, pick_key()), vl;
    uint8_t *v = value_term(0, base_cfg.max_message_bytes, &vl);
    int rc = hc_crdt_put(S[i].r, key, kl, v, vl, sim_time(i));
    free(v);
    if (rc != HC_ETOOBIG)
        FAIL("replica %d: an oversized value was not rejected with HC_ETOOBIG (rc %d)", i, rc);
    return 0;
}

/* ---- lifecycle ---- */

static int replica_new(int i)
{
    hc_crdt_config cfg = base_cfg;
    cfg.replica_id = ++next_rid * 0x10001 + 7; /* arbitrary, distinct ids */
    if (hc_crdt_new(&cfg, sim_time(i), &S[i].r))
        FAIL("hc_crdt_new failed");
    S[i].life = n_lives++;
    life_lost = realloc(life_lost, (size_t)n_lives);
    life_lost[S[i].life] = 0;
    S[i].last_hlc = 0;
    memset(S[i].shadow, 0, (size_t)(n_keys + 1) * sizeof *S[i].shadow);
    uint64_t peers[MAX_REPLICAS];
    size_t np = 0;
    for (int j = 0; j < R; j++)
        if (S[i].nb[j])
            peers[np++] = (uint64_t)j;
    if (hc_crdt_set_neighbours(S[i].r, peers, np, sim_time(i)))
        FAIL("set_neighbours failed");
    S[i].alive = 1;
    return 0;
}

static void notify(int about, int up)
{
    for (int j = 0; j < R; j++)
        if (j != about && S[j].alive && S[j].nb[about])
            (up ? hc_crdt_peer_up : hc_crdt_peer_down)(S[j].r, (uint64_t)about, sim_time(j));
}

static int crash(int i, int keep_state)
{
    S[i].alive = 0;
    if (!keep_state) {
        hc_crdt_free(S[i].r);
        S[i].r = NULL;
        life_lost[S[i].life] = 1;
    }
    notify(i, 0);
    return 0;
}

static int restart(int i)
{
    if (S[i].r) {
        if (hc_crdt_restart(S[i].r, sim_time(i)))
            FAIL("restart failed");
        S[i].alive = 1;
    } else if (replica_new(i)) {
        return -1;
    }
    notify(i, 1);
    return drain(i);
}

static int set_nb(int i, int j, int on)
{
    if (S[i].nb[j] == on)
        return 0;
    S[i].nb[j] = on;
    if (!S[i].r)
        return 0;
    int rc = on ? hc_crdt_add_neighbour(S[i].r, (uint64_t)j, sim_time(i))
                : hc_crdt_remove_neighbour(S[i].r, (uint64_t)j, sim_time(i));
    if (rc)
        FAIL("replica %d: neighbour change failed: %s", i, hc_strerror(rc));
    return 0;
}

/* ---- time ---- */

static int deliver(msg *m)
{
    delivered++;
    bytes_moved += m->len;
    trace_hash = (trace_hash ^ (m->at * 1315423911u + (uint64_t)m->from * 31 + (uint64_t)m->to)) * 0x100000001b3ULL;
    for (size_t k = 0; k < m->len; k += 64)
        trace_hash = (trace_hash ^ m->data[k]) * 0x100000001b3ULL;
    int to = m->to;
    if (!S[to].alive || (faults_on && partition_group[to] != partition_group[m->from]))
        return 0;
    int rc = hc_crdt_receive(S[to].r, (uint64_t)m->from, m->data, m->len, sim_time(to));
    if (rc == HC_ENOMEM)
        FAIL("replica %d: out of memory on receive", to);
    if (rc && rc != HC_ESTATE && rc != HC_EDECODE && rc != HC_EVERSION)
        FAIL("replica %d: receive returned %s", to, hc_strerror(rc));
    return drain(to);
}

static int check_every;
static uint64_t steps;

/* Runs the world up to time t: deliveries and timers in time order. */
static int advance(uint64_t t)
{
    for (;;) {
        uint64_t next = t + 1;
        if (n_heap && heap[0].at < next)
            next = heap[0].at;
        for (int i = 0; i < R; i++)
            if (S[i].alive) {
                uint64_t d = hc_crdt_next_deadline(S[i].r);
                if (d != HC_CRDT_NO_DEADLINE) {
                    uint64_t gd = d < mono_time(i) ? now_t : d - S[i].mono_origin;
                    if (gd < next)
                        next = gd;
                }
            }
        if (next > t)
            break;
        now_t = next;
        while (n_heap && heap[0].at <= now_t) {
            msg m = heap_pop();
            int rc = deliver(&m);
            free(m.data);
            if (rc)
                return rc;
        }
        for (int i = 0; i < R; i++)
            if (S[i].alive && hc_crdt_next_deadline(S[i].r) <= mono_time(i)) {
                int rc = hc_crdt_tick(S[i].r, sim_time(i));
                if (rc)
                    FAIL("replica %d: tick failed: %s", i, hc_strerror(rc));
                if (drain(i))
                    return -1;
                if (++steps % (uint64_t)check_every == 0 && full_check(i))
                    return -1;
            }
    }
    now_t = t;
    return 0;
}

/* ---- verification ---- */

static int quiet(void)
{
    for (int i = 0; i < R; i++)
        if (S[i].alive && !hc_crdt_idle(S[i].r))
            return 0;
    return 1; /* digests may still be on the wire: that is the steady state */
}

static uint64_t repairs_started(void)
{
    uint64_t n = 0;
    hc_crdt_stats st;
    for (int i = 0; i < R; i++)
        if (S[i].r) {
            hc_crdt_get_stats(S[i].r, &st);
            n += st.repairs_started;
        }
    return n;
}

static int converged(void)
{
    for (int i = 1; i < R; i++)
        if (hc_crdt_root_hash(S[i].r) != hc_crdt_root_hash(S[0].r) || hc_crdt_size(S[i].r) != hc_crdt_size(S[0].r))
            return 0;
    return 1;
}

static void dump_state(void)
{
    if (!getenv("HORDEC_SIM_DUMP"))
        return;
    for (int i = 0; i < R; i++) {
        hc_crdt *r = S[i].r;
        if (!r)
            continue;
        fprintf(stderr, "replica %d alive %d rid %llu inc %llu pending %zu keys %zu\n", i, S[i].alive,
                (unsigned long long)r->rid, (unsigned long long)r->inc, r->pending.n, r->map.count);
        for (size_t k = 0; k < r->n_peers; k++) {
            crdt_peer *p = &r->peers[k];
            fprintf(stderr, "  peer %llu up %d rid %llu inc %llu heard %d qn %zu acks %zu needs %d push %s phase %d "
                    "reqs %zu front %zu ship %zu in.sid %llu\n", (unsigned long long)p->handle, p->up,
                    (unsigned long long)p->rid, (unsigned long long)p->inc, p->heard_me, p->qn, p->n_acks,
                    p->needs_repair, p->push ? "yes" : "no", p->push ? p->push->phase : -1,
                    p->push ? p->push->n_reqs : 0, p->push ? p->push->n_front : 0, p->push ? p->push->n_ship : 0,
                    (unsigned long long)p->in.sid);
        }
    }
}

static int settle(uint64_t max_ms, uint64_t digest_ms)
{
    uint64_t deadline = now_t + max_ms, quiet_since = 0, repairs = 0;
    int was_quiet = 0;
    while (now_t < deadline) {
        if (advance(now_t + 10))
            return -1;
        if (quiet() && converged() && (!was_quiet || repairs == repairs_started())) {
            if (!was_quiet) {
                quiet_since = now_t;
                repairs = repairs_started();
            }
            was_quiet = 1;
            /* stay quiet for two digest rounds: a hidden difference would start a repair */
            if (now_t - quiet_since > 2 * digest_ms + 100)
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

static int verify_model(void)
{
    /* index writes per key */
    uint64_t **per_key = calloc((size_t)n_keys, sizeof *per_key);
    size_t *nk = calloc((size_t)n_keys, sizeof *nk), *ck = calloc((size_t)n_keys, sizeof *ck);
    for (uint64_t op = 1; op < n_writes; op++) {
        if (!writes[op].rid || writes[op].key >= (uint32_t)n_keys)
            continue;
        uint32_t k = writes[op].key;
        if (nk[k] == ck[k]) {
            ck[k] = ck[k] ? ck[k] * 2 : 8;
            per_key[k] = realloc(per_key[k], ck[k] * sizeof **per_key);
        }
        per_key[k][nk[k]++] = op;
    }
    int rc = 0;
    for (uint32_t k = 0; k < (uint32_t)n_keys && !rc; k++) {
        uint8_t key[16];
        size_t kl = key_term(key, k);
        hc_crdt_elem_info el0[MAX_ELEMS], el[MAX_ELEMS];
        size_t n0 = hc_crdt_elements(S[0].r, key, kl, el0, MAX_ELEMS);
        uint64_t ops0[MAX_ELEMS];
        for (size_t j = 0; j < n0; j++)
            ops0[j] = value_op(el0[j].value, el0[j].value_len);
        for (int i = 1; i < R && !rc; i++) {
            size_t n = hc_crdt_elements(S[i].r, key, kl, el, MAX_ELEMS);
            if (n != n0) {
                failed = 0;
                snprintf(fail_msg, sizeof fail_msg, "replicas 0 and %d disagree on key %u (%zu vs %zu elements)",
                         i, k, n0, n);
                failed = 1;
                rc = -1;
            }
            for (size_t j = 0; j < n && !rc; j++)
                if (value_op(el[j].value, el[j].value_len) != ops0[j] || el[j].hlc != el0[j].hlc) {
                    snprintf(fail_msg, sizeof fail_msg, "replicas 0 and %d disagree on key %u", i, k);
                    failed = 1;
                    rc = -1;
                }
        }
        /* the model: every survivor really written here, nothing removed by a surviving op, nothing lost */
        for (size_t j = 0; j < n0 && !rc; j++) {
            uint64_t op = ops0[j];
            if (!op || op >= n_writes || writes[op].key != k || writes[op].rid != el0[j].replica_id ||
                writes[op].ctr != el0[j].counter || writes[op].hlc != el0[j].hlc) {
                snprintf(fail_msg, sizeof fail_msg, "key %u holds an element that was never written there", k);
                failed = rc = -1;
            } else if (removed_by(k, el0[j].replica_id, el0[j].counter, 1)) {
                snprintf(fail_msg, sizeof fail_msg,
                         "key %u: op %" PRIu64 " survives although an operation that observed it survived", k, op);
                failed = rc = -1;
            }
            if (j && el0[j].hlc > el0[0].hlc) {
                snprintf(fail_msg, sizeof fail_msg, "key %u: resolved value is not the latest write", k);
                failed = rc = -1;
            }
        }
        for (size_t w = 0; w < nk[k] && !rc; w++) {
            write_rec *wr = &writes[per_key[k][w]];
            if (life_lost[wr->life] || removed_by(k, wr->rid, wr->ctr, 0))
                continue;
            int found = 0;
            for (size_t j = 0; j < n0; j++)
                found |= ops0[j] == per_key[k][w];
            if (!found) {
                snprintf(fail_msg, sizeof fail_msg, "key %u: write op %" PRIu64 " was lost (never removed)", k,
                         per_key[k][w]);
                failed = rc = -1;
            }
        }
        const uint8_t *v;
        size_t vl;
        for (int i = 0; i < R && !rc; i++) {
            int has = hc_crdt_get(S[i].r, key, kl, &v, &vl);
            uint64_t want = n0 ? ops0[0] : 0;
            if ((has ? value_op(v, vl) : 0) != want || S[i].shadow[k] != want) {
                snprintf(fail_msg, sizeof fail_msg, "replica %d key %u: get/event stream disagree with the elements",
                         i, k);
                failed = rc = -1;
            }
        }
    }
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
    size_t kl = key_term(key, SEQ_KEY);
    for (int round = 0; round < 12; round++) {
        int i = (int)below((uint64_t)R);
        uint64_t want = 0;
        if (round % 4 == 3) {
            if (do_delete(i, SEQ_KEY))
                return -1;
        } else {
            want = next_op;
            if (do_put(i, SEQ_KEY, below(40)))
                return -1;
        }
        if (drain(i) || settle(60000, digest_ms))
            return -1;
        for (int j = 0; j < R; j++) {
            const uint8_t *v;
            size_t vl;
            int has = hc_crdt_get(S[j].r, key, kl, &v, &vl);
            if ((has ? value_op(v, vl) : 0) != want)
                FAIL("sequential phase: replica %d does not see the last write (round %d)", j, round);
        }
    }
    return 0;
}

/* ---- one run ---- */

typedef struct run_opts {
    int rmin, rmax, ops;
} run_opts;

static void cleanup(void)
{
    for (int i = 0; i < MAX_REPLICAS; i++) {
        hc_crdt_free(S[i].r);
        free(S[i].shadow);
    }
    memset(S, 0, sizeof S);
    while (n_heap)
        free(heap_pop().data);
    free(heap);
    heap = NULL;
    cap_heap = 0;
    free(writes);
    free(removals);
    free(life_lost);
    writes = NULL;
    removals = NULL;
    life_lost = NULL;
    n_writes = cap_writes = n_removals = cap_removals = 0;
    n_lives = 0;
}

static int run(uint64_t seed, const run_opts *o)
{
    cur_seed = seed;
    rng_state = seed * 0x2545F4914F6CDD1DULL + 1;
    failed = 0;
    now_t = 1000000;
    next_op = 1;
    next_rid = seed << 8;
    msg_order = 0;
    trace_hash = 1469598103934665603ULL;
    R = o->rmin + (int)below((uint64_t)(o->rmax - o->rmin + 1));
    n_keys = HOT_KEYS + 50 + (int)below(300);
    static const size_t msg_sizes[] = {4096, 6000, 16384, 65536};
    hc_crdt_config_init(&base_cfg, 1);
    base_cfg.max_message_bytes = msg_sizes[below(4)];
    base_cfg.flush_interval_ms = (uint32_t)below(10);
    base_cfg.retransmit_ms = 20 + (uint32_t)below(40);
    base_cfg.hello_interval_ms = 50;
    base_cfg.digest_interval_ms = 200 + (uint32_t)below(400);
    base_cfg.max_unacked_batches = below(3) ? 4096 : 4 + (uint32_t)below(20);
    base_cfg.max_unacked_bytes = below(3) ? (8u << 20) : 20000;
    base_cfg.repair_window = 1 + (uint32_t)below(4);
    drop_pm = (unsigned)below(150);
    dup_pm = (unsigned)below(50);
    corrupt_pm = (unsigned)below(20);
    max_delay = 2 + (unsigned)below(60);
    faults_on = 1;
    check_every = 7;
    memset(partition_group, 0, sizeof partition_group);
    for (int i = 0; i < R; i++) {
        S[i].shadow = calloc((size_t)n_keys + 1, sizeof *S[i].shadow);
        S[i].skew = (int64_t)below(300) - 150;
        S[i].mono_origin = 1000003u * (uint64_t)(i + 1); /* not from the PRNG: seeds replay as before */
        for (int j = 0; j < R; j++)
            S[i].nb[j] = i != j;
    }
    int rc = 0;
    for (int i = 0; i < R && !rc; i++)
        rc = replica_new(i);
    for (int step = 0; step < o->ops && !rc; step++) {
        if ((rc = advance(now_t + below(4))))
            break;
        int i = (int)below((uint64_t)R);
        unsigned a = (unsigned)below(1000);
        if (a < 900) {
            if (!S[i].alive)
                continue;
            unsigned b = (unsigned)below(100);
            rc = b < 62 ? do_put(i, pick_key(), pick_pad()) : b < 85 ? do_delete(i, pick_key())
               : b < 98 ? do_bulk(i) : do_too_big(i);
            if (!rc)
                rc = drain(i);
            if (!rc && step % check_every == 0)
                rc = full_check(i);
        } else if (a < 925) { /* partition, or heal */
            int split = below(2);
            for (int j = 0; j < R; j++) {
                int g = split ? (int)below(2) : 0;
                if (g != partition_group[j] && below(2))
                    notify(j, 0);
                partition_group[j] = g;
            }
        } else if (a < 950) {
            if (S[i].alive) {
                int alive = 0;
                for (int j = 0; j < R; j++)
                    alive += S[j].alive;
                if (alive > 1)
                    rc = crash(i, (int)below(2));
            } else {
                rc = restart(i);
            }
        } else if (a < 975) { /* membership change, symmetric or not */
            int j = (int)below((uint64_t)R);
            if (j != i) {
                int on = !S[i].nb[j];
                rc = set_nb(i, j, on);
                if (!rc && below(2))
                    rc = set_nb(j, i, on);
            }
        } else {
            if (S[i].alive)
                notify(i, (int)below(2)); /* spurious nodedown/nodeup reports */
        }
    }
    /* heal: everything back, full mesh, no faults */
    if (!rc) {
        faults_on = 0;
        memset(partition_group, 0, sizeof partition_group);
        for (int i = 0; i < R && !rc; i++)
            for (int j = 0; j < R && !rc; j++)
                if (i != j)
                    rc = set_nb(i, j, 1);
        for (int i = 0; i < R && !rc; i++)
            if (!S[i].alive)
                rc = restart(i);
        for (int i = 0; i < R && !rc; i++)
            notify(i, 1);
    }
    if (!rc)
        rc = settle(120000, base_cfg.digest_interval_ms);
    for (int i = 0; i < R && !rc; i++)
        rc = full_check(i);
    if (!rc)
        rc = verify_model();
    if (!rc)
        rc = sequential_phase(base_cfg.digest_interval_ms);
    cleanup();
    return rc;
}

/* ---- bench ---- */

static double secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t heap_used(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    return mallinfo2().uordblks;
#else
    return 0;
#endif
}

static void pump(hc_crdt **reps, int n, uint64_t *t, uint64_t *bytes)
{
    for (int round = 0; round < 100000; round++) {
        int any = 0;
        for (int i = 0; i < n; i++) {
            hc_crdt_tick(reps[i], (hc_time){*t, *t});
            hc_crdt_msg m;
            while (hc_crdt_pop_message(reps[i], &m)) {
                any = 1;
                *bytes += m.len;
                uint8_t *copy = malloc(m.len);
                memcpy(copy, m.data, m.len);
                size_t len = m.len;
                int to = (int)m.peer;
                hc_crdt_receive(reps[to], (uint64_t)i, copy, len, (hc_time){*t, *t});
                free(copy);
            }
            hc_crdt_event ev;
            while (hc_crdt_pop_event(reps[i], &ev))
                ;
        }
        if (!any) {
            int idle = 1;
            for (int i = 0; i < n; i++)
                idle &= hc_crdt_idle(reps[i]);
            if (idle)
                return;
            *t += 1;
        }
    }
}

static int bench(void)
{
    enum { N = 100000 };
    uint8_t key[16], val[64];
    hc_crdt_config cfg;
    hc_crdt_config_init(&cfg, 11);
    hc_crdt *a;
    size_t before = heap_used();
    hc_crdt_new(&cfg, (hc_time){1, 1}, &a);
    size_t val_len = 5 + 8;
    double t0 = secs();
    for (uint32_t k = 0; k < N; k++) {
        size_t kl = key_term(key, k), vl;
        uint8_t *v = value_term(k + 1, 0, &vl);
        memcpy(val, v, vl);
        free(v);
        hc_crdt_put(a, key, kl, val, vl, (hc_time){1000 + k / 1000, 1000 + k / 1000});
    }
    double t1 = secs();
    size_t after = heap_used();
    hc_crdt_event ev;
    while (hc_crdt_pop_event(a, &ev))
        ;
    double per_key = ((double)after - (double)before) / N - (10.0 + (double)val_len);
    /* overwrites: 1M puts on the same 100k keys */
    double t2 = secs();
    for (uint32_t i = 0; i < 10 * N; i++) {
        size_t kl = key_term(key, i % N);
        val[12] = (uint8_t)i;
        hc_crdt_put(a, key, kl, val, val_len, (hc_time){2000 + i / 1000, 2000 + i / 1000});
        if ((i & 1023) == 0)
            while (hc_crdt_pop_event(a, &ev))
                ;
    }
    double t3 = secs();
    while (hc_crdt_pop_event(a, &ev))
        ;
    printf("hordec-sim bench: %d keys; first puts %.2f M/s, overwrites %.2f M/s; memory %.0f bytes/key beyond "
           "key+value bytes (heap %zu -> %zu)\n",
           N, N / (t1 - t0) / 1e6, 10.0 * N / (t3 - t2) / 1e6, per_key, before, after);

    /* initial sync of 100k keys into an empty replica, over a lossless loopback */
    hc_crdt_config cb;
    hc_crdt_config_init(&cb, 12);
    hc_crdt *b;
    hc_crdt_new(&cb, (hc_time){1, 1}, &b);
    hc_crdt *reps[2] = {a, b};
    uint64_t t = 10000, bytes = 0;
    hc_crdt_add_neighbour(a, 1, (hc_time){t, t});
    hc_crdt_add_neighbour(b, 0, (hc_time){t, t});
    double t4 = secs();
    pump(reps, 2, &t, &bytes);
    double t5 = secs();
    printf("hordec-sim bench: initial sync %zu keys: %.1f bytes/key on the wire, %.0f ms, %.2f M keys/s merged, "
           "roots %s\n",
           hc_crdt_size(b), (double)bytes / N, (t5 - t4) * 1e3, N / (t5 - t4) / 1e6,
           hc_crdt_root_hash(a) == hc_crdt_root_hash(b) ? "equal" : "DIFFER");
    /* steady-state updates: one put, one flush, deltas + acks */
    bytes = 0;
    enum { U = 20000 };
    double t6 = secs();
    for (uint32_t i = 0; i < U; i++) {
        size_t kl = key_term(key, i * 7 % N);
        val[12] = (uint8_t)(i + 3);
        hc_crdt_put(a, key, kl, val, val_len, (hc_time){t, t});
        if (i % 100 == 99) {
            hc_crdt_flush(a, (hc_time){t, t});
            pump(reps, 2, &t, &bytes);
        }
    }
    double t7 = secs();
    printf("hordec-sim bench: updates batched 100 per flush: %.1f bytes/update on the wire (delta+ack), "
           "%.2f M updates/s replicated end to end\n",
           (double)bytes / U, U / (t7 - t6) / 1e6);
    bytes = 0;
    for (uint32_t i = 0; i < 2000; i++) {
        size_t kl = key_term(key, i * 13 % N);
        val[12] = (uint8_t)(i + 5);
        hc_crdt_put(a, key, kl, val, val_len, (hc_time){t, t});
        hc_crdt_flush(a, (hc_time){t, t});
        pump(reps, 2, &t, &bytes);
    }
    printf("hordec-sim bench: single updates: %.1f bytes/update on the wire (delta+ack)\n", (double)bytes / 2000);
    hc_crdt_free(a);
    hc_crdt_free(b);
    return 0;
}

/* ---- main ---- */

static void usage(void)
{
    fprintf(stderr, "usage: hordec-sim [--seed S] [--seeds K] [--replicas R|RMIN-RMAX] [--ops N] [--soak] "
                    "[--replay-check] [--bench]\n");
}

int main(int argc, char **argv)
{
    uint64_t seed = 1, seeds = 1;
    run_opts o = {3, 7, 1000};
    int soak = 0, replay = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--seed") && v)
            seed = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--seeds") && v)
            seeds = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--ops") && v)
            o.ops = atoi(v), i++;
        else if (!strcmp(a, "--replicas") && v) {
            if (sscanf(v, "%d-%d", &o.rmin, &o.rmax) != 2)
                o.rmin = o.rmax = atoi(v);
            i++;
        } else if (!strcmp(a, "--soak"))
            soak = 1;
        else if (!strcmp(a, "--replay-check"))
            replay = 1;
        else if (!strcmp(a, "--bench"))
            return bench();
        else {
            usage();
            return 2;
        }
    }
    if (o.rmin < 2 || o.rmax > MAX_REPLICAS || o.rmin > o.rmax || o.ops < 0) {
        usage();
        return 2;
    }
    if (soak)
        seeds = UINT64_MAX - seed;
    uint64_t passed = 0, nfail = 0;
    for (uint64_t s = seed; s - seed < seeds; s++) {
        uint64_t d0 = delivered;
        int rc = run(s, &o);
        if (!rc && replay) {
            uint64_t h1 = trace_hash, n1 = delivered - d0;
            uint64_t d1 = delivered;
            rc = run(s, &o);
            if (!rc && (trace_hash != h1 || delivered - d1 != n1)) {
                snprintf(fail_msg, sizeof fail_msg, "replay of the same seed diverged");
                rc = -1;
            }
        }
        if (rc) {
            nfail++;
            fprintf(stderr, "hordec-sim: seed %" PRIu64 " FAILED at t=%" PRIu64 ": %s\n", s, now_t, fail_msg);
            break;
        }
        passed++;
        if (soak && passed % 100 == 0)
            fprintf(stderr, "hordec-sim: %" PRIu64 " seeds passed\n", passed);
    }
    printf("hordec-sim: seeds %" PRIu64 "..%" PRIu64 " replicas %d-%d ops %d: %" PRIu64 " passed, %" PRIu64
           " failed (%" PRIu64 " messages, %" PRIu64 " bytes delivered)\n",
           seed, seed + passed + nfail - 1, o.rmin, o.rmax, o.ops, passed, nfail, delivered, bytes_moved);
    return nfail ? 1 : 0;
}
