/* fuzz_core.h — a tiny host for the sans-I/O cores (the CRDT map, the registry, the supervisor), shared by their
 * fuzz targets and by the seed writer (seeds.c).
 *
 * Replica j is {Name, hJ@fz} (J = j + 1) and the host's handle for it is j + 1, as a real host keeps handles
 * stable. The fuzzed replica is B (index 1); A (index 0) is the peer whose messages the seeds carry, C (index 2)
 * a second peer the fuzzer may impersonate. The host does what hordec's does and nothing more: it adopts a replica
 * of the core's name that contacts it when the core asks for that (adopt_peers), replaces the neighbour set when
 * the core says so (HC_EFF_NEIGHBOURS), feeds the result of a local action back (a C worker always starts), and
 * otherwise drops what a core sends (the fuzz target) or delivers it to the other replica (the seed writer).
 *
 * A fuzz input for a core target: one setup byte (the core's variant), then records (fuzz_util.h):
 *   FZ_OP_PEER_A / FZ_OP_PEER_C  <len><msg>   a replica message from A or C
 *   FZ_OP_REQ     <len><term>                 a client request from a BEAM process
 *   FZ_OP_TICK    <n>                         time passes ((n + 1) * 4 ms), due timers run
 *   FZ_OP_DOWN / FZ_OP_UP  <j>                A or C goes down / comes back (nodedown, nodeup)
 *   FZ_OP_MONDOWN <k>                         the k-th monitor the core holds fires (noproc)
 *   FZ_OP_LOCAL   <len><term>                 a term from the hosting process (ops->local)
 *
 * What is checked after every record: the core's own invariant check (hc_crdt_check and the cores' *_check),
 * every effect's data is one whole term (a malformed term makes a BEAM drop the whole connection), every request
 * is answered at most once and only requests are answered, and the neighbour sets a core asks for are lists of
 * {Name, Node}. With HORDEC_FUZZ_STRICT=1 in the environment also hc_core.h's promise that a rejected peer
 * message changes nothing: the engine's root hash and size and the observable map stay as they were. */
#ifndef HORDEC_FUZZ_CORE_H
#define HORDEC_FUZZ_CORE_H

#include <string.h>

#include "fuzz_util.h"
#include "hordec/hc_core.h"
#include "hordec/hc_crdt.h"
#include "hordec/hc_registry.h"
#include "hordec/hc_supervisor.h"
#include "hordec/hc_term.h"

enum { FZ_OP_PEER_A, FZ_OP_REQ, FZ_OP_TICK, FZ_OP_DOWN, FZ_OP_UP, FZ_OP_MONDOWN, FZ_OP_LOCAL, FZ_OP_PEER_C };

#define FZ_R 3
#define FZ_B 1
#define FZ_MAX_MON 64
#define FZ_MAX_TOKENS 4096

typedef struct fz_kind {
    const char *name; /* the replicas' registered name */
    const hc_core_ops *ops;
    int (*create)(int j, uint8_t variant, hc_time now, void **core);
    int (*check)(void *core, char *why, size_t n);
    hc_crdt *(*engine)(void *core);
} fz_kind;

typedef struct fz_msg {
    int from, to;
    uint8_t *d;
    size_t n;
} fz_msg;

typedef struct fz_world {
    const fz_kind *k;
    uint8_t variant;
    void *core[FZ_R];
    bool nb[FZ_R][FZ_R];
    hc_time now;
    bool route; /* deliver replica messages (seeds) instead of dropping them */
    fz_msg *q;  /* replica messages in flight (route) */
    size_t nq, capq;
    hc_buf *rec; /* when set, every input to B is recorded here as a fuzz record */
    uint64_t mon[FZ_MAX_MON];
    hc_pid monpid[FZ_MAX_MON];
    size_t nmon;
    uint64_t next_token;
    uint8_t answered[FZ_MAX_TOKENS]; /* replies seen per token */
    uint32_t next_worker;
    bool strict;
} fz_world;

static inline hc_atom fz_node(int j)
{
    char n[16];
    snprintf(n, sizeof n, "h%d@fz", j + 1);
    return hc_atom_intern_cstr(n);
}

static inline hc_pid fz_client(uint32_t num) { return (hc_pid){hc_atom_intern_cstr("b1@fz"), num, 0, 1}; }

/* ---- the three cores ---- */

static inline int fz_crdt_create(int j, uint8_t variant, hc_time now, void **core)
{
    (void)variant;
    hc_crdt_config cfg;
    hc_crdt_config_init(&cfg, 0x1000 + (uint64_t)j + 1);
    cfg.max_message_bytes = HC_CRDT_MIN_MESSAGE_BYTES * 4;
    return hc_crdt_core_new(&cfg, now, core);
}
static inline int fz_crdt_check(void *core, char *why, size_t n)
{
    return hc_crdt_check(hc_crdt_core_engine(core), why, n);
}

static inline int fz_reg_create(int j, uint8_t variant, hc_time now, void **core)
{
    hc_registry_config cfg;
    hc_registry_config_init(&cfg, hc_atom_intern_cstr("reg"), fz_node(j),
                            (variant & 1) ? HC_REGISTRY_DUPLICATE : HC_REGISTRY_UNIQUE, 0x2000 + (uint64_t)j + 1);
    cfg.self = (hc_pid){fz_node(j), 1, 0, 1};
    cfg.crdt.max_message_bytes = HC_CRDT_MIN_MESSAGE_BYTES * 4;
    return hc_registry_core_new(&cfg, now, core);
}

static const char *const fz_worker_types[] = {"echo", "kv"};

static inline int fz_sup_create(int j, uint8_t variant, hc_time now, void **core)
{
    hc_supervisor_config cfg;
    hc_supervisor_config_init(&cfg, hc_atom_intern_cstr("sup"), fz_node(j), 0x3000 + (uint64_t)j + 1);
    cfg.self = (hc_pid){fz_node(j), 1, 0, 1};
    cfg.opt.distribution = (hc_sup_distribution)(variant % 3);
    cfg.worker_types = fz_worker_types;
    cfg.n_worker_types = 2;
    cfg.crdt.max_message_bytes = HC_CRDT_MIN_MESSAGE_BYTES * 4;
    return hc_supervisor_core_new(&cfg, now, core);
}

static const fz_kind fz_crdt_kind = {"m", &hc_crdt_core_ops, fz_crdt_create, fz_crdt_check, hc_crdt_core_engine};
static const fz_kind fz_reg_kind = {"reg", &hc_registry_core_ops, fz_reg_create, hc_registry_core_check,
                                    hc_registry_core_engine};
static const fz_kind fz_sup_kind = {"sup", &hc_supervisor_core_ops, fz_sup_create, hc_supervisor_core_check,
                                    hc_supervisor_core_engine};

/* ---- the host ---- */

static inline void fz_set_peers(fz_world *w, int i, const bool *nb)
{
    hc_core_peer peers[FZ_R];
    size_t n = 0;
    for (int j = 0; j < FZ_R; j++)
        if (nb[j] && j != i)
            peers[n++] = (hc_core_peer){(uint64_t)j + 1, hc_atom_intern_cstr(w->k->name), fz_node(j)};
    if (w->k->ops->set_peers(w->core[i], peers, n, w->now) == HC_OK)
        for (int j = 0; j < FZ_R; j++)
            w->nb[i][j] = nb[j] && j != i;
}

static inline void fz_whole_term(const uint8_t *p, size_t n, const char *what)
{
    size_t i = 0;
    FZ_ASSERT(p && hc_dec_skip(p, n, &i) == HC_OK && i == n, "the core emitted a malformed %s (%zu bytes)", what, n);
}

static inline void fz_neighbours(fz_world *w, int i, const uint8_t *p, size_t n)
{
    hc_iter it;
    size_t idx = 0;
    FZ_ASSERT(hc_iter_list(&it, p, n, &idx) == HC_OK && idx == n, "a neighbour set that is not a list");
    bool nb[FZ_R] = {0};
    hc_span t;
    while (hc_iter_next(&it, &t)) {
        size_t k = 0;
        uint32_t ar;
        hc_atom name, node;
        FZ_ASSERT(hc_dec_tuple_header(t.p, t.len, &k, &ar) == HC_OK && ar == 2 &&
                      hc_dec_atom(t.p, t.len, &k, &name) == HC_OK && hc_dec_atom(t.p, t.len, &k, &node) == HC_OK,
                  "a neighbour that is not {Name, Node}");
        if (name != hc_atom_intern_cstr(w->k->name))
            continue;
        for (int j = 0; j < FZ_R; j++)
            if (node == fz_node(j))
                nb[j] = true;
    }
    fz_set_peers(w, i, nb);
}

static inline void fz_queue(fz_world *w, int from, int to, const uint8_t *d, size_t n)
{
    if (w->nq == w->capq) {
        w->capq = w->capq ? w->capq * 2 : 64;
        w->q = realloc(w->q, w->capq * sizeof *w->q);
        if (!w->q)
            abort();
    }
    w->q[w->nq++] = (fz_msg){from, to, fz_dup(d, n), n};
}

/* {start_worker, Op, Type, Arg} -> {worker_started, Op, {ok, Pid}}; anything else: no result. */
static inline bool fz_local_result(fz_world *w, int i, const uint8_t *p, size_t n, hc_buf *res)
{
    size_t x = 0;
    uint32_t ar;
    uint64_t op;
    if (hc_dec_tuple_header(p, n, &x, &ar) || ar != 4 || !hc_dec_is_atom(p, n, &x, "start_worker") ||
        hc_dec_ulong(p, n, &x, &op))
        return false;
    hc_pid pid = {fz_node(i), 1000 + w->next_worker++, 0, 1};
    hc_enc_tuple_header(res, 3);
    hc_enc_atom_cstr(res, "worker_started");
    hc_enc_ulong(res, op);
    hc_enc_tuple_header(res, 2);
    hc_enc_atom_cstr(res, "ok");
    hc_enc_pid(res, &pid);
    return res->err == HC_OK;
}

static inline void fz_check(fz_world *w, int i)
{
    char why[256] = "";
    int rc = w->k->check(w->core[i], why, sizeof why);
    FZ_ASSERT(rc == HC_OK, "%s core check failed: %s", w->k->ops->kind, why);
}

/* Drains replica i's effects (and feeds back local results, as the host does). */
static inline void fz_drain(fz_world *w, int i)
{
    for (int round = 0; round < 64; round++) {
        hc_buf locals[8];
        size_t nlocal = 0;
        hc_effect e;
        while (w->k->ops->pop_effect(w->core[i], &e)) {
            switch (e.kind) {
            case HC_EFF_SEND_PEER:
                fz_whole_term(e.data, e.len, "replica message");
                FZ_ASSERT(e.peer >= 1 && e.peer <= FZ_R && w->nb[i][e.peer - 1], "a send to handle %llu, no neighbour",
                          (unsigned long long)e.peer);
                if (w->route && w->core[e.peer - 1])
                    fz_queue(w, i, (int)e.peer - 1, e.data, e.len);
                break;
            case HC_EFF_REPLY:
                fz_whole_term(e.data, e.len, "reply");
                if (i == FZ_B) {
                    FZ_ASSERT(e.token >= 1 && e.token <= w->next_token, "a reply to token %llu, never asked",
                              (unsigned long long)e.token);
                    if (e.token < FZ_MAX_TOKENS)
                        FZ_ASSERT(w->answered[e.token]++ == 0, "request %llu answered twice",
                                  (unsigned long long)e.token);
                }
                break;
            case HC_EFF_SEND_PID: fz_whole_term(e.data, e.len, "message to a pid"); break;
            case HC_EFF_EXIT: fz_whole_term(e.data, e.len, "exit reason"); break;
            case HC_EFF_EVENT:
                fz_whole_term(e.data, e.len, "event key");
                if (e.value)
                    fz_whole_term(e.value, e.value_len, "event value");
                break;
            case HC_EFF_MONITOR:
                if (i == FZ_B && w->nmon < FZ_MAX_MON) {
                    w->monpid[w->nmon] = e.pid;
                    w->mon[w->nmon++] = e.id;
                }
                break;
            case HC_EFF_DEMONITOR:
                for (size_t m = 0; i == FZ_B && m < w->nmon; m++)
                    if (w->mon[m] == e.id) {
                        w->nmon--;
                        w->mon[m] = w->mon[w->nmon];
                        w->monpid[m] = w->monpid[w->nmon];
                        break;
                    }
                break;
            case HC_EFF_NEIGHBOURS: fz_neighbours(w, i, e.data, e.len); break;
            case HC_EFF_LOCAL:
                fz_whole_term(e.data, e.len, "local action");
                if (nlocal < 8) {
                    locals[nlocal] = (hc_buf){0};
                    if (fz_local_result(w, i, e.data, e.len, &locals[nlocal]))
                        nlocal++;
                    else
                        hc_buf_free(&locals[nlocal]);
                }
                break;
            default: FZ_ASSERT(0, "unknown effect kind %d", (int)e.kind);
            }
        }
        for (size_t k = 0; k < nlocal; k++) {
            if (w->k->ops->local)
                (void)w->k->ops->local(w->core[i], locals[k].data, locals[k].len, w->now);
            hc_buf_free(&locals[k]);
        }
        if (!nlocal)
            return;
    }
}

/* An order-independent fingerprint of the observable map, for the strict check. */
static int fz_visit(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t x = 0; x < kl; x++)
        h = (h ^ k[x]) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (size_t x = 0; x < vl; x++)
        h = (h ^ v[x]) * 1099511628211ull;
    *(uint64_t *)ud += h * 0x9e3779b97f4a7c15ull;
    return 0;
}

static inline uint64_t fz_fingerprint(fz_world *w, int i)
{
    uint64_t fp = 0;
    (void)w->k->ops->snapshot(w->core[i], fz_visit, &fp);
    hc_crdt *e = w->k->engine(w->core[i]);
    return fp ^ hc_crdt_root_hash(e) ^ ((uint64_t)hc_crdt_size(e) << 40);
}

static inline void fz_world_init(fz_world *w, const fz_kind *k, uint8_t variant, bool all)
{
    memset(w, 0, sizeof *w);
    w->k = k;
    w->variant = variant;
    w->now = (hc_time){1000, 1700000000000ull};
    const char *strict = getenv("HORDEC_FUZZ_STRICT");
    w->strict = strict && strict[0] == '1';
    for (int j = 0; j < FZ_R; j++) {
        if (!all && j != FZ_B)
            continue;
        FZ_ASSERT(k->create(j, variant, w->now, &w->core[j]) == HC_OK, "cannot create replica %d", j);
    }
    /* Everyone starts knowing the others, as `--connect` or set_neighbours makes it. */
    for (int j = 0; j < FZ_R; j++)
        if (w->core[j]) {
            bool nb[FZ_R] = {true, true, true};
            fz_set_peers(w, j, nb);
            fz_drain(w, j);
        }
}

static inline void fz_world_free(fz_world *w)
{
    for (int j = 0; j < FZ_R; j++)
        if (w->core[j])
            w->k->ops->free(w->core[j]);
    for (size_t m = 0; m < w->nq; m++)
        free(w->q[m].d);
    free(w->q);
}

/* A replica message from j to i, as the host delivers it. */
static inline void fz_deliver(fz_world *w, int from, int to, const uint8_t *d, size_t n)
{
    if (!w->nb[to][from]) {
        if (!w->k->ops->adopt_peers)
            return; /* the host drops what a non-neighbour sends */
        bool nb[FZ_R];
        for (int j = 0; j < FZ_R; j++)
            nb[j] = w->nb[to][j] || j == from;
        fz_set_peers(w, to, nb);
        fz_drain(w, to);
    }
    if (to == FZ_B && w->rec) {
        hc_buf_put_u8(w->rec, from == 0 ? FZ_OP_PEER_A : FZ_OP_PEER_C);
        fz_put_piece(w->rec, d, n);
    }
    uint8_t *m = fz_dup(d, n);
    uint64_t before = w->strict ? fz_fingerprint(w, to) : 0;
    int rc = w->k->ops->receive(w->core[to], (uint64_t)from + 1, m, n, w->now);
    if (rc != HC_OK && w->strict)
        FZ_ASSERT(fz_fingerprint(w, to) == before, "a rejected message (rc %d) changed the replica", rc);
    free(m);
    fz_drain(w, to);
}

static inline uint64_t fz_request(fz_world *w, int i, const hc_pid *from, const uint8_t *d, size_t n)
{
    if (i == FZ_B && w->rec) {
        hc_buf_put_u8(w->rec, FZ_OP_REQ);
        fz_put_piece(w->rec, d, n);
    }
    uint64_t token = ++w->next_token;
    uint8_t *m = fz_dup(d, n);
    w->k->ops->request(w->core[i], token, from, m, n, w->now);
    free(m);
    fz_drain(w, i);
    return token;
}

/* Time passes for everyone by (n + 1) * 4 ms; due timers run. */
static inline void fz_advance(fz_world *w, uint8_t n)
{
    if (w->rec) {
        hc_buf_put_u8(w->rec, FZ_OP_TICK);
        hc_buf_put_u8(w->rec, n);
    }
    uint64_t ms = ((uint64_t)n + 1) * 4;
    w->now.mono_ms += ms;
    w->now.wall_ms += ms;
    for (int j = 0; j < FZ_R; j++)
        if (w->core[j] && w->k->ops->next_deadline(w->core[j]) <= w->now.mono_ms) {
            (void)w->k->ops->tick(w->core[j], w->now);
            fz_drain(w, j);
        }
}

/* Seeds: delivers everything in flight, with time passing, until nothing is left or `rounds` runs out. */
static inline void fz_settle(fz_world *w, int rounds)
{
    for (int r = 0; r < rounds; r++) {
        while (w->nq) {
            fz_msg m = w->q[0];
            memmove(w->q, w->q + 1, (w->nq - 1) * sizeof *w->q);
            w->nq--;
            if (w->core[m.to])
                fz_deliver(w, m.from, m.to, m.d, m.n);
            free(m.d);
        }
        fz_advance(w, 4);
    }
}

/* Runs one fuzz input against replica B alone. */
static inline void fz_run(const fz_kind *k, const uint8_t *data, size_t size)
{
    fz_in in = {data, size, 0};
    fz_world w;
    fz_world_init(&w, k, fz_u8(&in), false);
    hc_pid client = fz_client(1);
    while (fz_more(&in)) {
        uint8_t op = fz_u8(&in) % 8;
        const uint8_t *p;
        size_t n;
        switch (op) {
        case FZ_OP_PEER_A:
        case FZ_OP_PEER_C:
            fz_piece(&in, &p, &n);
            fz_deliver(&w, op == FZ_OP_PEER_A ? 0 : 2, FZ_B, p, n);
            break;
        case FZ_OP_REQ:
            fz_piece(&in, &p, &n);
            client.num = 1 + w.next_token % 3; /* a few distinct callers */
            (void)fz_request(&w, FZ_B, &client, p, n);
            break;
        case FZ_OP_TICK: fz_advance(&w, fz_u8(&in)); break;
        case FZ_OP_DOWN:
        case FZ_OP_UP: {
            uint64_t peer = (fz_u8(&in) & 1) ? 3 : 1;
            if (op == FZ_OP_DOWN)
                (void)k->ops->peer_down(w.core[FZ_B], peer, w.now);
            else
                (void)k->ops->peer_up(w.core[FZ_B], peer, w.now);
            fz_drain(&w, FZ_B);
            break;
        }
        case FZ_OP_MONDOWN: {
            uint8_t x = fz_u8(&in);
            if (w.nmon && k->ops->monitor_down) {
                size_t m = x % w.nmon;
                uint64_t id = w.mon[m];
                hc_pid gone = w.monpid[m];
                w.nmon--;
                w.mon[m] = w.mon[w.nmon];
                w.monpid[m] = w.monpid[w.nmon];
                static const uint8_t noproc[] = {119, 6, 'n', 'o', 'p', 'r', 'o', 'c'};
                k->ops->monitor_down(w.core[FZ_B], id, &gone, noproc, sizeof noproc, w.now);
                fz_drain(&w, FZ_B);
            }
            break;
        }
        case FZ_OP_LOCAL:
            fz_piece(&in, &p, &n);
            if (k->ops->local) {
                uint8_t *m = fz_dup(p, n);
                (void)k->ops->local(w.core[FZ_B], m, n, w.now);
                free(m);
                fz_drain(&w, FZ_B);
            }
            break;
        }
        fz_check(&w, FZ_B);
    }
    fz_world_free(&w);
    hc_atom_table_reset();
}

#endif
