/* sim_registry.c — hordec-sim-registry: deterministic simulation of the registry (docs/registry.md).
 *
 *   hordec-sim-registry [--seed S] [--seeds K] [--replicas R|RMIN-RMAX] [--clients C] [--ops N] [--replay-check]
 *
 * The world is simnet.h's: one PRNG per seed, simulated clocks (skewed wall clocks for the HLC), a network that
 * drops, duplicates, delays, reorders and damages messages, partitions noticed late, node crashes. In it run:
 *   - R hordec nodes, each with a registry replica: the real host (c_src/host/host.c) around the real registry
 *     core, behind an env that is this file (peer sends on the network, the wake-up a simnet timer, monitors
 *     that fire noproc when their process is gone and noconnection when its node's connection is, exit
 *     signals that kill their (non-trapping) target if it can be reached). Membership is set by ONE
 *     set_members call at the first replica: the others learn it by being contacted (adopt_peers).
 *     A crashed replica restarts empty, under a new replica id; C processes of its node die with it.
 *   - C BEAM nodes, each with a client (as HordeC.Registry's): it attaches to the first reachable replica of
 *     its own failover order, re-asserts what its processes hold (Owned), reports its processes' deaths
 *     (pids_down, kept until it is attached again if need be), and fails over when it sees its replica's
 *     node go down. Its processes register and unregister keys through it; they die now and then, and a
 *     whole BEAM node dies now and then (client and processes: never to return).
 *   - C processes of the hordec nodes registering themselves with Owner hordec.
 * Registries are :unique (a small hot keyspace, so concurrent registrations across partitions conflict) or
 * :duplicate, drawn per seed.
 *
 * After the chaos, everything heals (faults off, partitions gone, replicas back) and the cluster must go
 * quiet. Then, per seed:
 *   - every replica shows the same observable map (so one winner per unique key, the same everywhere);
 *   - no entry names a dead process;
 *   - nothing is lost for a live process whose owner is alive: every key it holds (it registered it and was
 *     neither told it lost nor unregistered it) is in the map, under it;
 *   - every loser was exited: a live process holding a key is its winner (above); no more than one
 *     name_conflict exit per key reached a live process, and each named the key it held, the value it
 *     registered with and another process as the winner (a second one can reach a loser already dead of the
 *     first, when its client failed over while the first replica's delete was on its way: counted);
 *   - duplicate registries never exit anyone;
 *   - each core's indexes agree with its CRDT map (hc_registry_core_check), also now and then during chaos. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hordec/hc_log.h"
#include "hordec/hc_registry.h"
#include "host/host.h"
#include "simnet.h"

#define MAX_R 8
#define MAX_C 6
#define MAX_P 600
#define N_KEYS 24
#define HOT_KEYS 4
#define CLIENT_TIMER MAX_R /* timer ids: replica i's wake-up is i, client k's retry CLIENT_TIMER + k */
#define SWEEP_TIMER (MAX_R + MAX_C)
#define SWEEP_MS 100

static simnet net;
#define FAIL(...) return simnet_fail(&net, __VA_ARGS__)
static bool tracing; /* HORDEC_SIM_TRACE=1: what happens, one line per event (for debugging a seed) */
#define TRACE(...)                                                                                                     \
    do {                                                                                                               \
        if (tracing) {                                                                                                 \
            fprintf(stderr, "%8" PRIu64 " ", net.now);                                                                 \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fprintf(stderr, "\n");                                                                                     \
        }                                                                                                              \
    } while (0)

static hc_atom a_reg, a_rnode[MAX_R], a_cnode[MAX_C];

/* ------------------------------------------------------------------ the model */

typedef struct mon {
    uint64_t id;
    hc_pid pid;
} mon;

typedef struct down {
    int rep;
    uint64_t id;
    hc_pid pid;
    bool noconn;
} down;

typedef struct rep {
    int node;
    hc_host *host; /* NULL while down */
    hc_pid pid;    /* the replica process; serial counts its incarnations */
    mon *mons;
    size_t nmons, capmons;
    uint64_t next_token, call_token;
    int call_replies;
    hc_buf reply;
} rep;

typedef struct proc {
    hc_pid pid;
    int client; /* -1: a C process of replica `rep`'s node */
    int rep;
    bool alive;
    bool dying;            /* an exit signal reached it: it dies once the current step is over */
    uint8_t held[N_KEYS];  /* keys it holds as far as it knows */
    uint8_t exits[N_KEYS]; /* name_conflict exits that reached it alive, per key */
} proc;

typedef struct client {
    int node;
    hc_pid pid;
    bool alive;
    int attached; /* replica index, or -1 */
    int order[MAX_R];
    hc_pid pending[MAX_P]; /* deaths to report once attached */
    size_t npending;
} client;

static rep Rp[MAX_R];
static client Cl[MAX_C];
static proc P[MAX_P];
static int R, C, NP;
static bool unique;
static size_t slice; /* the replicas' hc_registry_config.slice: tiny in odd seeds, so that big work is sliced */
static hc_crdt_config base_cfg;
static uint64_t next_rid;
static down *downs; /* monitors to fire once the current host call is over */
static size_t ndowns, capdowns;
static int *kills; /* processes to kill likewise (exit signals) */
static size_t nkills, capkills;
/* Exit signals on a connection cut by a partition that neither end noticed yet: TCP holds them. They arrive if
 * the partition heals first, and are lost if the connection is torn down (both ends then see it go). */
typedef struct held {
    int proc, key, from_node, to_node;
} held;
static held *helds;
static size_t nhelds, caphelds;
static uint64_t steps;

typedef struct totals {
    uint64_t seeds, registers, taken, unregisters, deaths, client_deaths, crashes, attaches, failovers, exits,
        exits_lost, exits_late, downs, delivered, dropped, damaged, partitions;
} totals;
static totals T;

static hc_time now_at(int node) { return simnet_time(&net, node); }
static bool running(int i) { return Rp[i].host != NULL; }

static proc *proc_of(const hc_pid *pid)
{
    for (int k = 0; k < NP; k++)
        if (hc_pid_eq(&P[k].pid, pid))
            return &P[k];
    return NULL;
}

static client *client_of(const hc_pid *pid)
{
    for (int k = 0; k < C; k++)
        if (hc_pid_eq(&Cl[k].pid, pid))
            return &Cl[k];
    return NULL;
}

/* Is the process behind pid alive (a client or a user process)? */
/* A distribution connection between two nodes is up, or being set up (from either end). */
static bool linked(int a, int b) { return net.conn[a][b] || net.dialing[a][b] || net.dialing[b][a]; }

static bool pid_alive(const hc_pid *pid)
{
    proc *p = proc_of(pid);
    if (p)
        return p->alive;
    client *c = client_of(pid);
    return c && c->alive;
}

/* ------------------------------------------------------------------ terms */

static void enc_key(hc_buf *b, int k)
{
    hc_enc_tuple_header(b, 2);
    hc_enc_atom_cstr(b, "k");
    hc_enc_long(b, k);
}

static int64_t value_of(const proc *p, int k) { return (int64_t)p->pid.num * 100 + k; }

/* ------------------------------------------------------------------ the env of replica i */

static void env_send_name(void *ud, hc_atom node, hc_atom name, const uint8_t *msg, size_t len)
{
    rep *r = ud;
    int to = simnet_node_of(&net, node);
    if (to >= 0)
        simnet_send_name(&net, &r->pid, to, name, msg, len);
}

static void env_send_pid(void *ud, const hc_pid *to, const uint8_t *msg, size_t len)
{
    rep *r = ud;
    simnet_send_pid(&net, &r->pid, to, msg, len); /* nobody subscribes here: lost on arrival */
}

static void env_reply(void *ud, uint64_t token, const uint8_t *reply, size_t len)
{
    rep *r = ud;
    if (!r->call_token || token != r->call_token) {
        simnet_fail(&net, "replica %d: a reply nobody waits for", (int)(r - Rp));
        return;
    }
    if (r->call_replies++) {
        simnet_fail(&net, "replica %d: a second reply to one request", (int)(r - Rp));
        return;
    }
    hc_buf_append(&r->reply, reply, len);
}

static void queue_down(int i, uint64_t id, const hc_pid *pid, bool noconn)
{
    if (hc_array_reserve((void **)&downs, &capdowns, ndowns + 1, sizeof *downs, 16))
        abort();
    downs[ndowns++] = (down){i, id, *pid, noconn};
}

/* A monitor holds while its process lives and (for another node's process) a connection to its node does:
 * a process that is gone fires noproc at once, an unreachable node noconnection. */
static int env_monitor(void *ud, const hc_pid *pid, uint64_t id)
{
    rep *r = ud;
    int i = (int)(r - Rp);
    for (size_t k = 0; k < r->nmons; k++)
        if (r->mons[k].id == id)
            return simnet_fail(&net, "replica %d: monitor id %" PRIu64 " already in use", i, id);
    if (hc_array_reserve((void **)&r->mons, &r->capmons, r->nmons + 1, sizeof *r->mons, 8))
        abort();
    r->mons[r->nmons++] = (mon){id, *pid};
    int pn = simnet_node_of(&net, pid->node);
    if (pn < 0)
        return simnet_fail(&net, "replica %d: monitors a pid of an unknown node", i);
    TRACE("replica %d monitors %s/%u (id %" PRIu64 ", reachable %d, linked %d, alive %d)", i, hc_atom_name(pid->node),
          pid->num, id, simnet_reachable(&net, r->node, pn), linked(r->node, pn), pid_alive(pid));
    if (pn != r->node && !simnet_reachable(&net, r->node, pn))
        queue_down(i, id, pid, true);
    else if (!pid_alive(pid))
        queue_down(i, id, pid, false);
    else if (pn != r->node)
        simnet_connect(&net, r->node, pn); /* a remote monitor travels on a connection */
    return HC_OK;
}

static void env_demonitor(void *ud, uint64_t id)
{
    rep *r = ud;
    for (size_t k = 0; k < r->nmons; k++)
        if (r->mons[k].id == id) {
            TRACE("replica %d demonitors %s/%u", (int)(r - Rp), hc_atom_name(r->mons[k].pid.node), r->mons[k].pid.num);
            r->mons[k] = r->mons[--r->nmons];
            return;
        }
    simnet_fail(&net, "replica %d: demonitor of %" PRIu64 ", not a live monitor", (int)(r - Rp), id);
}

/* A name_conflict exit reaches process k (it cannot trap exits: it dies). */
static void signal_arrives(int k, int key)
{
    proc *p = &P[k];
    if (!p->alive || p->dying) {
        T.exits_late++;
        return;
    }
    p->dying = true;
    if (p->exits[key] < 255)
        p->exits[key]++;
    if (hc_array_reserve((void **)&kills, &capkills, nkills + 1, sizeof *kills, 16))
        abort();
    kills[nkills++] = k;
}

/* Held signals: delivered once their nodes can talk again over the same connection, lost when it is torn. */
static void held_signals(void)
{
    size_t keep = 0;
    for (size_t h = 0; h < nhelds; h++) {
        held x = helds[h];
        if (!simnet_connected(&net, x.from_node, x.to_node)) {
            T.exits_lost++;
            continue;
        }
        if (simnet_reachable(&net, x.from_node, x.to_node)) {
            signal_arrives(x.proc, x.key);
            continue;
        }
        helds[keep++] = x;
    }
    nhelds = keep;
}

/* {name_conflict, {Key, Value}, reg, Winner} to a process that cannot trap exits: it dies when the signal
 * arrives (at once, or held by a connection a partition cut unnoticed: see held). */
static void env_exit(void *ud, const hc_pid *to, const uint8_t *reason, size_t len)
{
    rep *r = ud;
    int i = (int)(r - Rp);
    T.exits++;
    if (!unique) {
        simnet_fail(&net, "replica %d: an exit signal in a duplicate registry", i);
        return;
    }
    size_t x = 0;
    uint32_t arity;
    int64_t key, val;
    hc_pid winner;
    if (hc_dec_tuple_header(reason, len, &x, &arity) || arity != 4 ||
        !hc_dec_is_atom(reason, len, &x, "name_conflict") || hc_dec_tuple_header(reason, len, &x, &arity) ||
        arity != 2 || hc_dec_tuple_header(reason, len, &x, &arity) || arity != 2 ||
        !hc_dec_is_atom(reason, len, &x, "k") || hc_dec_long(reason, len, &x, &key) ||
        hc_dec_long(reason, len, &x, &val) || !hc_dec_is_atom(reason, len, &x, "reg") ||
        hc_dec_pid(reason, len, &x, &winner) || x != len || key < 0 || key >= N_KEYS) {
        simnet_fail(&net, "replica %d: a malformed name_conflict reason", i);
        return;
    }
    proc *p = proc_of(to);
    if (!p) {
        simnet_fail(&net, "replica %d: an exit signal to a process that never registered", i);
        return;
    }
    if (val != value_of(p, (int)key)) {
        simnet_fail(&net, "replica %d: a name_conflict exit names value %" PRId64 ", not the loser's", i, val);
        return;
    }
    if (hc_pid_eq(&winner, to)) {
        simnet_fail(&net, "replica %d: a process told it lost to itself", i);
        return;
    }
    TRACE("replica %d exits proc %u (key %d, winner %u)", i, to->num, (int)key, winner.num);
    int pn = simnet_node_of(&net, to->node);
    if (!p->alive) {
        /* the loser's client failed over while the first replica's delete was on its way: the new replica told
         * it again, after it died of the first signal (a no-op in Erlang; counted) */
        T.exits_late++;
        return;
    }
    if (pn != r->node && !simnet_reachable(&net, r->node, pn)) {
        if (!simnet_connected(&net, r->node, pn)) {
            T.exits_lost++; /* no connection to carry it: lost, as in Erlang */
            return;
        }
        if (hc_array_reserve((void **)&helds, &caphelds, nhelds + 1, sizeof *helds, 16))
            abort();
        helds[nhelds++] = (held){(int)(p - P), (int)key, r->node, pn};
        return;
    }
    signal_arrives((int)(p - P), (int)key);
}

static void env_wake_at(void *ud, uint64_t at)
{
    rep *r = ud;
    simnet_timer_set(&net, (int)(r - Rp), at == HC_NO_DEADLINE ? HC_NO_DEADLINE : simnet_global(&net, r->node, at));
}

static void env_connect(void *ud, hc_atom node)
{
    rep *r = ud;
    int to = simnet_node_of(&net, node);
    if (to >= 0)
        simnet_connect(&net, r->node, to);
}

static bool env_is_connected(void *ud, hc_atom node)
{
    rep *r = ud;
    int to = simnet_node_of(&net, node);
    return to >= 0 && simnet_connected(&net, r->node, to);
}

/* ------------------------------------------------------------------ replicas */

static int replica_start(int i)
{
    rep *r = &Rp[i];
    r->pid.serial++;
    hc_registry_config cfg;
    hc_registry_config_init(&cfg, a_reg, a_rnode[i], unique ? HC_REGISTRY_UNIQUE : HC_REGISTRY_DUPLICATE, ++next_rid);
    uint64_t rid = cfg.crdt.replica_id;
    cfg.crdt = base_cfg;
    cfg.crdt.replica_id = rid;
    cfg.self = r->pid;
    cfg.slice = slice;
    void *core;
    int rc = hc_registry_core_new(&cfg, now_at(r->node), &core);
    if (rc)
        FAIL("replica %d: hc_registry_core_new: %s", i, hc_strerror(rc));
    hc_host_config hc = {.name = a_reg, .node = a_rnode[i], .epoch_base = (uint64_t)i << 40};
    hc_host_env env = {.ud = r,
                       .send_name = env_send_name,
                       .send_pid = env_send_pid,
                       .reply = env_reply,
                       .monitor = env_monitor,
                       .demonitor = env_demonitor,
                       .exit = env_exit,
                       .wake_at = env_wake_at,
                       .connect = env_connect,
                       .is_connected = env_is_connected};
    rc = hc_host_new(&hc, &env, &hc_registry_core_ops, core, &r->host);
    if (rc)
        FAIL("replica %d: hc_host_new: %s", i, hc_strerror(rc));
    /* the host drains the core's first effects (its own membership) with its first input */
    hc_host_tick(r->host, now_at(r->node));
    return net.failed ? -1 : 0;
}

static void die(int k);

/* The hordec node crashes: the replica's state is gone, and so are the C processes of that node. */
static int replica_crash(int i)
{
    rep *r = &Rp[i];
    if (!r->host)
        return 0;
    hc_host_free(r->host);
    r->host = NULL;
    r->nmons = 0;
    simnet_timer_set(&net, i, HC_NO_DEADLINE);
    simnet_crash(&net, r->node);
    T.crashes++;
    TRACE("replica %d crashes", i);
    for (int k = 0; k < NP; k++)
        if (P[k].client < 0 && P[k].rep == i && P[k].alive)
            die(k);
    return net.failed ? -1 : 0;
}

static int replica_restart(int i)
{
    if (running(i))
        return 0;
    simnet_restart(&net, Rp[i].node);
    TRACE("replica %d restarts", i);
    return replica_start(i);
}

/* Fires queued monitors and kills queued by exit signals, until none are left (each may queue more). */
static int settle_effects(void)
{
    while (ndowns || nkills) {
        if (nkills) {
            int k = kills[--nkills];
            if (P[k].alive)
                die(k);
            continue;
        }
        down d = downs[--ndowns];
        rep *r = &Rp[d.rep];
        bool live = false;
        for (size_t m = 0; m < r->nmons; m++)
            if (r->mons[m].id == d.id && hc_pid_eq(&r->mons[m].pid, &d.pid)) {
                r->mons[m] = r->mons[--r->nmons];
                live = true;
                break;
            }
        if (!live || !r->host)
            continue; /* demonitored meanwhile, or the replica went down */
        static const uint8_t noproc[] = {119, 6, 'n', 'o', 'p', 'r', 'o', 'c'};
        static const uint8_t noconn[] = {119, 12, 'n', 'o', 'c', 'o', 'n', 'n', 'e', 'c', 't', 'i', 'o', 'n'};
        T.downs++;
        TRACE("replica %d: monitor on %s/%u fires %s", d.rep, hc_atom_name(d.pid.node), d.pid.num,
              d.noconn ? "noconnection" : "noproc");
        hc_host_monitor_down(r->host, d.id, &d.pid, d.noconn ? noconn : noproc,
                             d.noconn ? sizeof noconn : sizeof noproc, now_at(r->node));
        if (net.failed)
            return -1;
    }
    return net.failed ? -1 : 0;
}

static int check_core(int i)
{
    char why[256] = "";
    if (running(i) && hc_registry_core_check(hc_host_core(Rp[i].host), why, sizeof why))
        FAIL("replica %d: %s", i, why);
    return 0;
}

/* After any input to replica i. */
static int after(int i)
{
    if (settle_effects())
        return -1;
    if (++steps % 13 == 0 && check_core(i))
        return -1;
    return net.failed ? -1 : 0;
}

/* A GenServer call to replica i: the reply (exactly one) into r->reply. */
static int call(int i, const hc_pid *from, const hc_buf *req)
{
    rep *r = &Rp[i];
    if (req->err)
        abort();
    hc_buf_reset(&r->reply);
    r->call_token = ++r->next_token;
    r->call_replies = 0;
    hc_host_request(r->host, r->call_token, from, req->data, req->len, now_at(r->node));
    /* a request that waits behind big work (a long attach, many deletes: tiny slices in odd seeds) is answered
     * once the replica's loop has done it: turn it until then, as the caller waits */
    for (int turn = 0; r->call_replies == 0 && turn < 1000000; turn++)
        hc_host_tick(r->host, now_at(r->node));
    int n = r->call_replies;
    r->call_token = 0;
    if (n != 1)
        FAIL("replica %d: a request got %d replies", i, n);
    if (tracing) {
        char t[80];
        size_t o = 0;
        for (size_t b = 0; b < req->len && o < sizeof t - 1; b++)
            t[o++] = req->data[b] >= 32 && req->data[b] < 127 ? (char)req->data[b] : '.';
        t[o] = 0;
        TRACE("  call replica %d: %s", i, t);
    }
    return after(i);
}

static bool reply_is_atom(int i, const char *a)
{
    size_t x = 0;
    return hc_dec_is_atom(Rp[i].reply.data, Rp[i].reply.len, &x, a) && x == Rp[i].reply.len;
}

/* {ok, _} */
static bool reply_ok(int i)
{
    size_t x = 0;
    uint32_t arity;
    return !hc_dec_tuple_header(Rp[i].reply.data, Rp[i].reply.len, &x, &arity) && arity == 2 &&
           hc_dec_is_atom(Rp[i].reply.data, Rp[i].reply.len, &x, "ok");
}

/* {set_members, [{reg, hI@sim} for every replica]} */
static int set_members(int i, const hc_pid *from)
{
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "set_members");
    hc_enc_list_header(&b, (uint32_t)R);
    for (int j = 0; j < R; j++) {
        hc_enc_tuple_header(&b, 2);
        hc_enc_atom(&b, a_reg);
        hc_enc_atom(&b, a_rnode[j]);
    }
    hc_enc_nil(&b);
    int rc = call(i, from, &b);
    hc_buf_free(&b);
    return rc ? -1 : reply_is_atom(i, "ok") ? 0 : simnet_fail(&net, "replica %d: set_members refused", i);
}

/* ------------------------------------------------------------------ clients and processes */

/* Can client k talk to replica i right now? (A call across a cut connection would fail or time out.) */
static bool can_call(const client *c, int i)
{
    return c->alive && running(i) && simnet_connected(&net, c->node, Rp[i].node) &&
           simnet_reachable(&net, c->node, Rp[i].node);
}

static int client_retry(int k, uint64_t ms)
{
    simnet_timer_set(&net, CLIENT_TIMER + k, net.now + ms);
    return 0;
}

static int client_attach(int k);
static int flush_pending(int k, int i);

/* What a client's mirror shows (docs/registry.md §5): an entry it owns for a process of its node that is dead —
 * one whose removal was lost with a replica that crashed before passing it on, and that an older replica
 * handed back — makes its monitor fire (noproc, at once), and it reports the death again. Modelled by reading
 * the attached replica's observable map, which is what the client's mirror holds once the stream caught up. */
typedef struct stale_scan {
    client *c;
    bool own_record; /* its {client, C} record is there... */
    bool elsewhere;  /* ...naming another replica than the one it is attached to */
} stale_scan;

static int stale_visit(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    stale_scan *sc = ud;
    client *c = sc->c;
    size_t x = 0, y = 0;
    uint32_t arity;
    hc_pid pid, owner;
    if (!hc_dec_tuple_header(k, kl, &x, &arity) && arity == 2 && hc_dec_is_atom(k, kl, &x, "client") &&
        !hc_dec_pid(k, kl, &x, &pid) && hc_pid_eq(&pid, &c->pid)) {
        hc_atom name, node;
        sc->own_record = true;
        sc->elsewhere = hc_dec_tuple_header(v, vl, &y, &arity) || arity != 2 || hc_dec_atom(v, vl, &y, &name) ||
                        hc_dec_atom(v, vl, &y, &node) || name != a_reg || node != a_rnode[c->attached];
        return 0;
    }
    x = 0;
    if (hc_dec_tuple_header(k, kl, &x, &arity) || arity != 3 || !hc_dec_is_atom(k, kl, &x, "reg") ||
        hc_dec_skip(k, kl, &x) || hc_dec_pid(k, kl, &x, &pid))
        return 0;
    if (hc_dec_tuple_header(v, vl, &y, &arity) || arity != 2 || hc_dec_skip(v, vl, &y) ||
        hc_dec_pid(v, vl, &y, &owner) || !hc_pid_eq(&owner, &c->pid) || pid_alive(&pid))
        return 0;
    for (size_t q = 0; q < c->npending; q++)
        if (hc_pid_eq(&c->pending[q], &pid))
            return 0;
    if (c->npending < MAX_P)
        c->pending[c->npending++] = pid;
    return 0;
}

/* The client's periodic check (every 100 ms, or sooner after a nodedown): attach when it is not; a replica
 * it has no connection to (none was ever made, or it was cut unnoticed) counts as down, as a node monitor
 * would say; deaths it could not report are reported once it can. */
static int client_tick(int k)
{
    client *c = &Cl[k];
    if (!c->alive)
        return 0;
    int i = c->attached;
    if (i < -1)
        i = -1;
    if (i >= 0 && (!running(i) || !linked(c->node, Rp[i].node))) {
        TRACE("client %d: no connection to replica %d", k, i);
        c->attached = i = -1;
    }
    if (i < 0)
        client_retry(k, 100); /* client_attach may ask for sooner */
    if (i >= 0 && can_call(c, i)) {
        stale_scan sc = {c, false, false};
        hc_registry_core_ops.snapshot(hc_host_core(Rp[i].host), stale_visit, &sc);
        /* its record gone, or naming another replica (writes ordered by skewed clocks): attach again, which
         * writes a record stamped after everything this replica has seen (docs/registry.md §5) */
        if (!sc.own_record || sc.elsewhere) {
            TRACE("client %d: its record at replica %d is %s: attaching again", k, i,
                  sc.own_record ? "elsewhere" : "gone");
            c->attached = i = -1;
            client_retry(k, 100); /* client_attach may ask for sooner */
        }
    }
    int rc = i < 0 ? client_attach(k) : c->npending && can_call(c, i) ? flush_pending(k, i) : 0;
    if (!rc && c->alive && i >= 0)
        client_retry(k, 100);
    return rc;
}

/* Attaches to the first reachable replica of its order, with what its processes hold, then reports the
 * deaths it could not report before. */
static int client_attach(int k)
{
    client *c = &Cl[k];
    if (!c->alive)
        return 0;
    /* the first replica of its order that it can reach; a call needs a connection, so dial first */
    int i = -1;
    for (int j = 0; j < R && i < 0; j++)
        if (running(c->order[j]) && simnet_reachable(&net, c->node, Rp[c->order[j]].node))
            i = c->order[j];
    if (i < 0)
        return 0; /* client_tick tries again */
    if (!can_call(c, i)) {
        simnet_connect(&net, c->node, Rp[i].node);
        return client_retry(k, 5);
    }
    /* as HordeC.Registry does (members: :auto): the membership is asserted where the client attaches, so it
     * survives every replica having restarted empty */
    if (set_members(i, &c->pid))
        return -1;
    hc_buf b = {0};
    uint32_t n = 0;
    for (int q = 0; q < NP; q++)
        if (P[q].client == k && P[q].alive)
            for (int key = 0; key < N_KEYS; key++)
                n += P[q].held[key];
    hc_enc_tuple_header(&b, 3);
    hc_enc_atom_cstr(&b, "attach");
    hc_enc_pid(&b, &c->pid);
    if (n)
        hc_enc_list_header(&b, n);
    for (int q = 0; q < NP; q++)
        if (P[q].client == k && P[q].alive)
            for (int key = 0; key < N_KEYS; key++)
                if (P[q].held[key]) {
                    hc_enc_tuple_header(&b, 3);
                    enc_key(&b, key);
                    hc_enc_pid(&b, &P[q].pid);
                    hc_enc_long(&b, value_of(&P[q], key));
                }
    hc_enc_nil(&b);
    int rc = call(i, &c->pid, &b);
    hc_buf_free(&b);
    if (rc)
        return -1;
    if (!reply_ok(i))
        FAIL("client %d: attach to replica %d refused", k, i);
    TRACE("client %d attaches to replica %d", k, i);
    T.attaches += 1;
    T.failovers += c->attached != -2; /* -2: never attached */
    c->attached = i;
    simnet_connect(&net, c->node, Rp[i].node);
    return flush_pending(k, i);
}

static int flush_pending(int k, int i)
{
    client *c = &Cl[k];
    if (!c->npending || !c->alive)
        return 0;
    hc_buf d = {0};
    hc_enc_tuple_header(&d, 3);
    hc_enc_atom_cstr(&d, "pids_down");
    hc_enc_pid(&d, &c->pid);
    hc_enc_list_header(&d, (uint32_t)c->npending);
    for (size_t q = 0; q < c->npending; q++)
        hc_enc_pid(&d, &c->pending[q]);
    hc_enc_nil(&d);
    int rc = call(i, &c->pid, &d);
    hc_buf_free(&d);
    if (rc)
        return -1;
    if (!reply_is_atom(i, "ok"))
        FAIL("client %d: pids_down refused", k);
    c->npending = 0;
    return 0;
}

/* The client is attached and can reach its replica (else it fails over first). */
static int usable_replica(int k)
{
    client *c = &Cl[k];
    if (!c->alive)
        return -1;
    if (c->attached >= 0 && can_call(c, c->attached))
        return c->attached;
    return -1;
}

/* Process k dies: its client notices at once (it monitors it on its own node) and reports it; a C process's
 * replica is told by its monitor. */
static void die(int k)
{
    proc *p = &P[k];
    if (!p->alive)
        return;
    p->alive = false;
    T.deaths++;
    TRACE("proc %u (client %d) dies", p->pid.num, p->client);
    if (p->client < 0) {
        rep *r = &Rp[p->rep];
        for (size_t m = 0; r->host && m < r->nmons; m++)
            if (hc_pid_eq(&r->mons[m].pid, &p->pid))
                queue_down(p->rep, r->mons[m].id, &p->pid, false);
        return;
    }
    client *c = &Cl[p->client];
    if (!c->alive)
        return;
    int i = usable_replica(p->client);
    if (i >= 0) {
        hc_buf d = {0};
        hc_enc_tuple_header(&d, 3);
        hc_enc_atom_cstr(&d, "pids_down");
        hc_enc_pid(&d, &c->pid);
        hc_enc_list_header(&d, 1);
        /* {Pid, Keys}, as the Elixir client reports a death, naming every key (it may hold one it does not know
         * of yet: a write whose reply it has not seen); a pending one is reported bare (flush_pending) */
        hc_enc_tuple_header(&d, 2);
        hc_enc_pid(&d, &p->pid);
        hc_enc_list_header(&d, N_KEYS);
        for (int key = 0; key < N_KEYS; key++)
            enc_key(&d, key);
        hc_enc_nil(&d);
        hc_enc_nil(&d);
        int rc = call(i, &c->pid, &d);
        hc_buf_free(&d);
        if (!rc && !reply_is_atom(i, "ok"))
            simnet_fail(&net, "pids_down refused");
    } else if (c->npending < MAX_P) {
        c->pending[c->npending++] = p->pid;
    }
}

static int new_proc(int cl, int rep_i)
{
    if (NP == MAX_P)
        return -1;
    proc *p = &P[NP];
    memset(p, 0, sizeof *p);
    p->client = cl;
    p->rep = rep_i;
    p->alive = true;
    hc_atom node = cl >= 0 ? a_cnode[cl] : a_rnode[rep_i];
    p->pid = (hc_pid){node, 1000 + (uint32_t)NP, 0, 1};
    return NP++;
}

static int pick_key(void)
{
    return simnet_below(&net, 2) ? (int)simnet_below(&net, HOT_KEYS) : (int)simnet_below(&net, N_KEYS);
}

/* A process registers a key: through its client's replica, or (a C process) its own node's. */
static int do_register(int k, int key)
{
    proc *p = &P[k];
    int i = p->client >= 0 ? usable_replica(p->client) : p->rep;
    if (i < 0 || !running(i) || !p->alive || p->held[key])
        return 0;
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 5);
    hc_enc_atom_cstr(&b, "register");
    enc_key(&b, key);
    hc_enc_pid(&b, &p->pid);
    hc_enc_long(&b, value_of(p, key));
    if (p->client >= 0)
        hc_enc_pid(&b, &Cl[p->client].pid);
    else
        hc_enc_atom_cstr(&b, "hordec");
    int rc = call(i, &p->pid, &b);
    hc_buf_free(&b);
    if (rc)
        return -1;
    T.registers++;
    TRACE("proc %u (client %d) registers key %d at replica %d: %s", p->pid.num, p->client, key, i,
          reply_ok(i) ? "ok" : "taken");
    if (reply_ok(i)) {
        if (p->alive) /* a monitor may have fired meanwhile (a C process is registered once it lives) */
            p->held[key] = 1;
        return 0;
    }
    size_t x = 0;
    uint32_t arity;
    const uint8_t *d = Rp[i].reply.data;
    size_t len = Rp[i].reply.len;
    if (hc_dec_tuple_header(d, len, &x, &arity) || arity != 2 || !hc_dec_is_atom(d, len, &x, "error"))
        FAIL("replica %d: register answered neither ok nor an error", i);
    size_t y = x;
    if (p->client >= 0 && hc_dec_is_atom(d, len, &y, "not_attached") && y == len) {
        TRACE("client %d: not attached any more at replica %d", p->client, i);
        Cl[p->client].attached = -1; /* attach again (re-asserting), soon */
        return client_retry(p->client, 1);
    }
    if (hc_dec_tuple_header(d, len, &x, &arity) || arity != 2 || !hc_dec_is_atom(d, len, &x, "already_registered"))
        FAIL("replica %d: register answered %s", i, "an unexpected error");
    T.taken++;
    return 0;
}

static int do_unregister(int k)
{
    proc *p = &P[k];
    int key = -1;
    for (int q = 0; q < N_KEYS && key < 0; q++)
        if (p->held[q])
            key = q;
    int i = p->client >= 0 ? usable_replica(p->client) : p->rep;
    if (key < 0 || i < 0 || !running(i) || !p->alive)
        return 0;
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 3);
    hc_enc_atom_cstr(&b, "unregister");
    enc_key(&b, key);
    hc_enc_pid(&b, &p->pid);
    int rc = call(i, &p->pid, &b);
    hc_buf_free(&b);
    if (rc)
        return -1;
    if (!reply_is_atom(i, "ok"))
        FAIL("replica %d: unregister answered something else than ok", i);
    p->held[key] = 0;
    T.unregisters++;
    TRACE("proc %u unregisters key %d at replica %d", p->pid.num, key, i);
    return 0;
}

/* A whole BEAM node dies, never to return: its client and processes with it. */
static int client_death(int k)
{
    client *c = &Cl[k];
    if (!c->alive)
        return 0;
    c->alive = false;
    T.client_deaths++;
    TRACE("client %d's node dies", k);
    for (int q = 0; q < NP; q++)
        if (P[q].client == k && P[q].alive) {
            P[q].alive = false;
            T.deaths++;
        }
    simnet_timer_set(&net, CLIENT_TIMER + k, HC_NO_DEADLINE);
    simnet_crash(&net, c->node);
    return net.failed ? -1 : 0;
}

/* ------------------------------------------------------------------ the world's events */

static int on_deliver(void *ud, const simnet_msg *m)
{
    (void)ud;
    if (!m->to_name)
        return 0; /* to a pid: nobody here takes plain messages */
    for (int i = 0; i < R; i++)
        if (Rp[i].node == m->to_node && m->to_name == a_reg && running(i)) {
            hc_host_message(Rp[i].host, &m->from, m->data, m->len, now_at(Rp[i].node));
            return after(i);
        }
    return 0;
}

/* Monitors need connections: every SWEEP_MS, a monitor on a process of a node this replica is neither
 * connected nor dialling to fires noconnection (as the runtime fails a monitor whose connection fails). */
static int sweep(void)
{
    held_signals();
    for (int i = 0; i < R; i++) {
        rep *r = &Rp[i];
        for (size_t m = 0; r->host && m < r->nmons; m++) {
            int pn = simnet_node_of(&net, r->mons[m].pid.node);
            if (pn != r->node && !linked(r->node, pn))
                queue_down(i, r->mons[m].id, &r->mons[m].pid, true);
        }
    }
    simnet_timer_set(&net, SWEEP_TIMER, net.now + SWEEP_MS);
    return settle_effects();
}

static int on_timer(void *ud, int id)
{
    (void)ud;
    if (id < MAX_R) {
        if (!running(id))
            return 0;
        hc_host_tick(Rp[id].host, now_at(Rp[id].node));
        return after(id);
    }
    if (id == SWEEP_TIMER)
        return sweep();
    return client_tick(id - CLIENT_TIMER);
}

static int on_node_event(void *ud, int at, int about, bool up)
{
    (void)ud;
    for (int i = 0; i < R; i++)
        if (Rp[i].node == at && running(i)) {
            hc_host_node_event(Rp[i].host, net.nodes[about].atom, up, now_at(at));
            if (!up) /* the connection is gone: so are the monitors that travelled on it */
                for (size_t m = 0; m < Rp[i].nmons; m++)
                    if (Rp[i].mons[m].pid.node == net.nodes[about].atom)
                        queue_down(i, Rp[i].mons[m].id, &Rp[i].mons[m].pid, true);
            return after(i);
        }
    for (int k = 0; k < C; k++) {
        client *c = &Cl[k];
        if (c->node != at || !c->alive || c->attached < 0 || Rp[c->attached].node != about || up)
            continue;
        c->attached = -1; /* nodedown of its replica: fail over at its next tick, soon */
        TRACE("client %d sees replica %d's node go down", k, (int)(Rp - Rp) + about);
        return client_retry(k, 1 + simnet_below(&net, 20));
    }
    return 0;
}

/* ------------------------------------------------------------------ chaos */

static int chaos_step(void)
{
    unsigned a = (unsigned)simnet_below(&net, 1000);
    int k = (int)simnet_below(&net, (uint64_t)C);
    if (a < 420) { /* a BEAM process registers (often a new one) */
        if (!Cl[k].alive)
            return 0;
        int q = -1;
        if (simnet_below(&net, 3)) {
            for (int t = 0; t < 8 && q < 0; t++) {
                int c = (int)simnet_below(&net, (uint64_t)(NP ? NP : 1));
                if (NP && P[c].client == k && P[c].alive)
                    q = c;
            }
        }
        if (q < 0 && (q = new_proc(k, -1)) < 0)
            return 0;
        return do_register(q, pick_key());
    }
    if (a < 520) { /* a C process of a hordec node registers itself */
        int i = (int)simnet_below(&net, (uint64_t)R);
        if (!running(i))
            return 0;
        int q = new_proc(-1, i);
        return q < 0 ? 0 : do_register(q, pick_key());
    }
    if (a < 620) { /* someone unregisters */
        int q = NP ? (int)simnet_below(&net, (uint64_t)NP) : -1;
        return q < 0 ? 0 : do_unregister(q);
    }
    if (a < 760) { /* a process dies */
        int q = NP ? (int)simnet_below(&net, (uint64_t)NP) : -1;
        if (q >= 0 && P[q].alive && (P[q].client < 0 || Cl[P[q].client].alive))
            die(q);
        return settle_effects();
    }
    if (a < 800) { /* a hordec node crashes, or comes back */
        int i = (int)simnet_below(&net, (uint64_t)R);
        if (running(i)) {
            int up = 0;
            for (int j = 0; j < R; j++)
                up += running(j);
            return up > 1 ? replica_crash(i) : 0;
        }
        return replica_restart(i);
    }
    if (a < 808) { /* a BEAM node dies (keeping at least one) */
        int alive = 0;
        for (int j = 0; j < C; j++)
            alive += Cl[j].alive;
        return alive > 1 ? client_death(k) : 0;
    }
    if (a < 860) { /* a partition, or a heal */
        int group[SIMNET_MAX_NODES] = {0};
        if (simnet_below(&net, 3)) {
            for (int j = 0; j < net.n_nodes; j++)
                group[j] = (int)simnet_below(&net, 2);
            T.partitions++;
        }
        simnet_partition(&net, group);
        if (tracing) {
            char g[64] = "";
            for (int j = 0; j < net.n_nodes && j < 60; j++)
                g[j] = (char)('0' + group[j]);
            TRACE("partition %s", g);
        }
        return 0;
    }
    if (a < 880) { /* a connection flaps */
        int i = (int)simnet_below(&net, (uint64_t)R), j = (int)simnet_below(&net, (uint64_t)net.n_nodes);
        return i != j && simnet_connected(&net, Rp[i].node, j) ? simnet_disconnect(&net, Rp[i].node, j) : 0;
    }
    if (a < 890) { /* membership asserted again somewhere (nothing changes: every replica stays a member) */
        int i = (int)simnet_below(&net, (uint64_t)R);
        return running(i) ? set_members(i, &Cl[0].pid) : 0;
    }
    /* a core check, now and then */
    return check_core((int)simnet_below(&net, (uint64_t)R));
}

/* ------------------------------------------------------------------ quiescence and the invariants */

typedef struct snap_entry {
    uint8_t *k, *v;
    size_t kl, vl;
} snap_entry;

typedef struct snap {
    snap_entry *e;
    size_t n, cap;
} snap;

static int snap_visit(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    snap *s = ud;
    if (hc_array_reserve((void **)&s->e, &s->cap, s->n + 1, sizeof *s->e, 64))
        abort();
    snap_entry *e = &s->e[s->n++];
    e->k = malloc(kl);
    e->v = malloc(vl ? vl : 1);
    if (!e->k || !e->v)
        abort();
    memcpy(e->k, k, kl);
    memcpy(e->v, v, vl);
    e->kl = kl;
    e->vl = vl;
    return 0;
}

static int cmp_entry(const void *a, const void *b)
{
    const snap_entry *x = a, *y = b;
    size_t n = x->kl < y->kl ? x->kl : y->kl;
    int c = memcmp(x->k, y->k, n);
    return c ? c : (x->kl > y->kl) - (x->kl < y->kl);
}

static void snap_free(snap *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->e[i].k);
        free(s->e[i].v);
    }
    free(s->e);
}

static int take_snapshot(int i, snap *s)
{
    memset(s, 0, sizeof *s);
    hc_registry_core_ops.snapshot(hc_host_core(Rp[i].host), snap_visit, s);
    qsort(s->e, s->n, sizeof *s->e, cmp_entry);
    return 0;
}

/* Nothing to ship or repair anywhere (periodic digests may be in flight: they find nothing), and every live
 * client attached. */
static bool quiet(void)
{
    for (int i = 0; i < R; i++)
        if (!running(i) || !hc_crdt_idle(hc_registry_core_engine(hc_host_core(Rp[i].host))))
            return false;
    for (int k = 0; k < C; k++)
        if (Cl[k].alive && Cl[k].attached < 0)
            return false;
    return true;
}

/* Runs until the cluster is quiet for a while (past a digest round and the adoption grace), or fails. */
static int settle(uint64_t max_ms)
{
    uint64_t end = net.now + max_ms, quiet_since = 0;
    while (net.now < end) {
        if (simnet_run_until(&net, net.now + 20))
            return -1;
        if (!quiet()) {
            quiet_since = 0;
            continue;
        }
        if (!quiet_since)
            quiet_since = net.now;
        if (net.now - quiet_since >= 2 * base_cfg.digest_interval_ms + 6000)
            return 0;
    }
    char why[256] = "";
    size_t o = 0;
    for (int i = 0; i < R && o < sizeof why - 40; i++)
        if (running(i) && !hc_crdt_idle(hc_registry_core_engine(hc_host_core(Rp[i].host))))
            o += (size_t)snprintf(why + o, sizeof why - o, " replica %d busy;", i);
    for (int k = 0; k < C && o < sizeof why - 40; k++)
        if (Cl[k].alive && Cl[k].attached < 0)
            o += (size_t)snprintf(why + o, sizeof why - o, " client %d detached;", k);
    FAIL("the cluster did not go quiet within %" PRIu64 " ms (%zu in flight;%s)", max_ms, simnet_in_flight(&net), why);
}

/* {reg, {k, Key}, Pid} */
static int parse_reg(const snap_entry *e, int *key, hc_pid *pid)
{
    size_t x = 0;
    uint32_t arity;
    int64_t k;
    if (hc_dec_tuple_header(e->k, e->kl, &x, &arity) || arity != 3 || !hc_dec_is_atom(e->k, e->kl, &x, "reg"))
        return 1; /* not a registration */
    if (hc_dec_tuple_header(e->k, e->kl, &x, &arity) || arity != 2 || !hc_dec_is_atom(e->k, e->kl, &x, "k") ||
        hc_dec_long(e->k, e->kl, &x, &k) || hc_dec_pid(e->k, e->kl, &x, pid) || x != e->kl || k < 0 || k >= N_KEYS)
        return -1;
    *key = (int)k;
    return 0;
}

/* HORDEC_SIM_DUMP=1: what every replica shows, when a run fails. */
static void dump(void)
{
    if (!getenv("HORDEC_SIM_DUMP"))
        return;
    for (int i = 0; i < R; i++) {
        if (!running(i)) {
            fprintf(stderr, "replica %d: down\n", i);
            continue;
        }
        snap s;
        take_snapshot(i, &s);
        void *core = hc_host_core(Rp[i].host);
        hc_crdt *e = hc_registry_core_engine(core);
        fprintf(stderr, "replica %d (node %d, rid %" PRIu64 ", idle %d, subs %zu): %zu entries\n", i, Rp[i].node,
                hc_crdt_replica_id(e), hc_crdt_idle(e), hc_host_subscribers(Rp[i].host), s.n);
        for (size_t k = 0; k < s.n; k++) {
            fprintf(stderr, "   ");
            for (size_t b = 0; b < s.e[k].kl && b < 40; b++)
                fprintf(stderr, "%c", s.e[k].k[b] >= 32 && s.e[k].k[b] < 127 ? s.e[k].k[b] : '.');
            fprintf(stderr, " => ");
            for (size_t b = 0; b < s.e[k].vl && b < 40; b++)
                fprintf(stderr, "%c", s.e[k].v[b] >= 32 && s.e[k].v[b] < 127 ? s.e[k].v[b] : '.');
            fprintf(stderr, "\n");
        }
        snap_free(&s);
    }
    for (int k = 0; k < C; k++)
        fprintf(stderr, "client %d: alive %d attached %d\n", k, Cl[k].alive, Cl[k].attached);
}

static int verify(void)
{
    for (int i = 0; i < R; i++)
        if (check_core(i))
            return -1;
    snap s0, s;
    take_snapshot(0, &s0);
    int rc = 0;
    for (int i = 1; i < R && !rc; i++) {
        take_snapshot(i, &s);
        if (s.n != s0.n)
            rc = simnet_fail(&net, "replicas 0 and %d show %zu and %zu entries", i, s0.n, s.n);
        for (size_t e = 0; e < s.n && !rc; e++)
            if (cmp_entry(&s.e[e], &s0.e[e]) || s.e[e].vl != s0.e[e].vl || memcmp(s.e[e].v, s0.e[e].v, s.e[e].vl))
                rc = simnet_fail(&net, "replicas 0 and %d show different maps", i);
        snap_free(&s);
    }
    /* the map against the model */
    int holder[N_KEYS];
    for (int k = 0; k < N_KEYS; k++)
        holder[k] = -1;
    static uint8_t shown[MAX_P][N_KEYS];
    memset(shown, 0, sizeof shown);
    for (size_t e = 0; e < s0.n && !rc; e++) {
        int key;
        hc_pid pid;
        int pr = parse_reg(&s0.e[e], &key, &pid);
        if (pr > 0)
            continue;
        if (pr < 0) {
            rc = simnet_fail(&net, "a registration key of an unexpected shape");
            break;
        }
        proc *p = proc_of(&pid);
        if (!p)
            rc = simnet_fail(&net, "an entry for a process that never registered");
        else if (!p->alive)
            rc = simnet_fail(&net, "an entry for dead process %u (%s, client %d, key %d)", p->pid.num,
                             p->client < 0 ? "C" : "BEAM", p->client, key);
        else if (unique && holder[key] >= 0)
            rc = simnet_fail(&net, "unique key %d shows two processes", key);
        else {
            holder[key] = (int)(p - P);
            shown[p - P][key] = 1;
        }
    }
    for (int q = 0; q < NP && !rc; q++) {
        proc *p = &P[q];
        bool owner_alive = p->client < 0 ? running(p->rep) : Cl[p->client].alive;
        if (!p->alive || !owner_alive)
            continue;
        for (int key = 0; key < N_KEYS && !rc; key++)
            if (p->held[key] && !shown[q][key])
                rc =
                    simnet_fail(&net, "live process %u lost key %d (%s, %s)%s", p->pid.num, key,
                                p->client < 0 ? "C" : "BEAM", unique && holder[key] >= 0 ? "held by another" : "absent",
                                p->exits[key] ? ", and was sent an exit it did not get" : "");
    }
    for (int q = 0; q < NP && !rc; q++)
        for (int key = 0; key < N_KEYS && !rc; key++)
            if (P[q].exits[key] > 1)
                rc = simnet_fail(&net, "a live loser got %u name_conflict exits for key %d", P[q].exits[key], key);
    snap_free(&s0);
    return rc;
}

/* ------------------------------------------------------------------ a run */

static void atoms(void)
{
    a_reg = hc_atom_intern_cstr("reg");
    char n[32];
    for (int i = 0; i < MAX_R; i++) {
        snprintf(n, sizeof n, "h%d@sim", i);
        a_rnode[i] = hc_atom_intern_cstr(n);
    }
    for (int k = 0; k < MAX_C; k++) {
        snprintf(n, sizeof n, "b%d@sim", k);
        a_cnode[k] = hc_atom_intern_cstr(n);
    }
    hc_atom_intern_cstr("hordec"); /* interned by decoding otherwise, at a seed-dependent moment */
    hc_atom_intern_cstr("noproc");
    hc_atom_intern_cstr("noconnection");
}

static void cleanup(void)
{
    for (int i = 0; i < R; i++) {
        if (Rp[i].host)
            hc_host_free(Rp[i].host);
        free(Rp[i].mons);
        hc_buf_free(&Rp[i].reply);
    }
    memset(Rp, 0, sizeof Rp);
    free(downs);
    free(kills);
    free(helds);
    downs = NULL;
    kills = NULL;
    helds = NULL;
    ndowns = capdowns = nkills = capkills = nhelds = caphelds = 0;
    simnet_free(&net);
}

typedef struct opts {
    int rmin, rmax, clients, ops;
} opts;

static int run(uint64_t seed, const opts *o, uint64_t *trace)
{
    simnet_handler h = {.deliver = on_deliver, .timer = on_timer, .node_event = on_node_event};
    simnet_init(&net, seed, 1000000, &h);
    memset(Cl, 0, sizeof Cl);
    memset(P, 0, sizeof P);
    NP = 0;
    steps = 0;
    next_rid = seed << 8;
    R = o->rmin + (int)simnet_below(&net, (uint64_t)(o->rmax - o->rmin + 1));
    C = o->clients;
    unique = simnet_below(&net, 4) != 0;
    slice = seed % 2 ? 1 + seed % 5 : 0; /* from the seed alone: the random stream stays as it was */
    hc_crdt_config_init(&base_cfg, 1);
    base_cfg.max_message_bytes = simnet_below(&net, 2) ? 4096 : 65536;
    base_cfg.flush_interval_ms = (uint32_t)simnet_below(&net, 10);
    base_cfg.retransmit_ms = 20 + (uint32_t)simnet_below(&net, 40);
    base_cfg.hello_interval_ms = 50;
    base_cfg.digest_interval_ms = 200 + (uint32_t)simnet_below(&net, 400);
    simnet_faults f = {
        .drop_pm = (unsigned)simnet_below(&net, 100),
        .dup_pm = (unsigned)simnet_below(&net, 40),
        .corrupt_pm = (unsigned)simnet_below(&net, 15),
        .reorder_pm = (unsigned)simnet_below(&net, 300),
        .max_delay_ms = 2 + (unsigned)simnet_below(&net, 40),
        .dial_ms = 1 + (unsigned)simnet_below(&net, 20),
        .detect_ms = 1 + (unsigned)simnet_below(&net, 800),
    };
    for (int i = 0; i < R; i++) {
        int64_t skew = (int64_t)simnet_below(&net, 300) - 150;
        Rp[i].node = simnet_add_node(&net, hc_atom_name(a_rnode[i]), true, 1000003u * (uint64_t)(i + 1), skew);
        Rp[i].pid = (hc_pid){a_rnode[i], 1, 0, 1};
    }
    for (int k = 0; k < C; k++) {
        Cl[k].node = simnet_add_node(&net, hc_atom_name(a_cnode[k]), true, 77u * (uint64_t)(k + 1), 0);
        Cl[k].pid = (hc_pid){a_cnode[k], 1, 0, 1};
        Cl[k].alive = true;
        Cl[k].attached = -2;
        for (int j = 0; j < R; j++)
            Cl[k].order[j] = j;
        for (int j = R - 1; j > 0; j--) { /* each client its own failover order */
            int s = (int)simnet_below(&net, (uint64_t)j + 1), t = Cl[k].order[j];
            Cl[k].order[j] = Cl[k].order[s];
            Cl[k].order[s] = t;
        }
    }
    int rc = 0;
    for (int i = 0; i < R && !rc; i++)
        rc = replica_start(i);
    if (!rc) /* ONE set_members call: the others learn the membership by being contacted */
        rc = set_members(0, &Cl[0].pid);
    for (int k = 0; k < C && !rc; k++)
        rc = client_tick(k);
    simnet_timer_set(&net, SWEEP_TIMER, net.now + SWEEP_MS);
    if (!rc)
        rc = simnet_run_until(&net, net.now + 1000);
    simnet_set_faults(&net, true, &f);
    for (int step = 0; step < o->ops && !rc; step++) {
        rc = simnet_run_until(&net, net.now + simnet_below(&net, 6));
        if (!rc)
            rc = chaos_step();
    }
    if (!rc) { /* heal: faults off, one partition group, every replica back */
        int group[SIMNET_MAX_NODES] = {0};
        simnet_set_faults(&net, false, NULL);
        simnet_partition(&net, group);
        for (int i = 0; i < R && !rc; i++)
            rc = replica_restart(i);
        for (int k = 0; k < C && !rc; k++)
            if (Cl[k].alive && Cl[k].attached < 0)
                rc = client_retry(k, 1);
    }
    if (!rc)
        rc = settle(120000);
    if (!rc)
        rc = verify();
    if (rc)
        dump();
    T.delivered += net.delivered;
    T.dropped += net.dropped;
    T.damaged += net.damaged;
    *trace = net.trace_hash;
    if (rc && !net.failed)
        simnet_fail(&net, "a check failed without saying why");
    cleanup();
    return rc ? -1 : 0;
}

int main(int argc, char **argv)
{
    uint64_t seed = 1, seeds = 1;
    opts o = {2, 5, 3, 1500};
    int replay = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--seed") && v)
            seed = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--seeds") && v)
            seeds = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--ops") && v)
            o.ops = atoi(v), i++;
        else if (!strcmp(a, "--clients") && v)
            o.clients = atoi(v), i++;
        else if (!strcmp(a, "--replicas") && v) {
            if (sscanf(v, "%d-%d", &o.rmin, &o.rmax) != 2)
                o.rmin = o.rmax = atoi(v);
            i++;
        } else if (!strcmp(a, "--replay-check"))
            replay = 1;
        else {
            fprintf(stderr, "usage: hordec-sim-registry [--seed S] [--seeds K] [--replicas R|RMIN-RMAX] "
                            "[--clients C] [--ops N] [--replay-check]\n");
            return 2;
        }
    }
    if (o.rmin < 1 || o.rmax > MAX_R || o.rmin > o.rmax || o.clients < 1 || o.clients > MAX_C || o.ops < 0) {
        fprintf(stderr, "hordec-sim-registry: --replicas 1..%d, --clients 1..%d\n", MAX_R, MAX_C);
        return 2;
    }
    hc_log_set_level(HC_LOG_ERROR);
    tracing = getenv("HORDEC_SIM_TRACE") != NULL;
    atoms();
    uint64_t passed = 0;
    int failed = 0;
    for (uint64_t s = seed; s - seed < seeds; s++) {
        uint64_t t1, t2;
        int rc = run(s, &o, &t1);
        char why[512];
        snprintf(why, sizeof why, "%s", net.fail_msg);
        uint64_t at = net.fail_t;
        if (!rc && replay) {
            rc = run(s, &o, &t2);
            snprintf(why, sizeof why, "%s", rc ? net.fail_msg : "replay of the same seed diverged");
            at = net.fail_t;
            if (!rc && t1 != t2)
                rc = -1;
        }
        if (rc) {
            fprintf(stderr, "hordec-sim-registry: seed %" PRIu64 " FAILED at t=%" PRIu64 ": %s\n", s, at, why);
            failed = 1;
            break;
        }
        passed++;
    }
    printf("hordec-sim-registry: seeds %" PRIu64 "..%" PRIu64 " replicas %d-%d clients %d ops %d: %" PRIu64
           " passed, %d failed\n",
           seed, seed + passed + (uint64_t)failed - 1, o.rmin, o.rmax, o.clients, o.ops, passed, failed);
    printf("hordec-sim-registry: %" PRIu64 " registrations (%" PRIu64 " refused as taken), %" PRIu64
           " unregistrations, %" PRIu64 " process deaths, %" PRIu64 " BEAM nodes lost, %" PRIu64
           " hordec crashes, %" PRIu64 " partitions; %" PRIu64 " attaches (%" PRIu64 " failovers), %" PRIu64
           " monitors fired, %" PRIu64 " name_conflict exits (%" PRIu64 " lost to cut connections, %" PRIu64
           " to already dead losers); %" PRIu64 " messages delivered, %" PRIu64 " dropped, %" PRIu64 " damaged\n",
           T.registers, T.taken, T.unregisters, T.deaths, T.client_deaths, T.crashes, T.partitions, T.attaches,
           T.failovers, T.downs, T.exits, T.exits_lost, T.exits_late, T.delivered, T.dropped, T.damaged);
    hc_atom_table_reset();
    return failed;
}
