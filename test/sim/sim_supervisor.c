/* sim_supervisor.c — hordec-sim-supervisor: deterministic simulation of the supervisor core's handoff
 * (docs/supervisor.md) under partitions, crashes and restarts.
 *
 *   hordec-sim-supervisor [--seed S] [--seeds K] [--replicas R|RMIN-RMAX] [--clients B|BMIN-BMAX] [--ops N]
 *                         [--replay-check]
 *
 * The world is simnet.h's (one PRNG per seed, skewed clocks, partitions noticed late, node crashes). In it run:
 *   - R hordec nodes, each with a replica `sup`: the real host around the real supervisor core, behind simhost.h's
 *     env, whose fake worker runtime (HC_EFF_LOCAL) starts the node's C workers (a fraction answer ignore or
 *     {error, boom}), stops them, and loses them all when the node goes down. Membership is set by ONE
 *     set_members call; the other replicas learn it by being contacted (adopt_peers). A crashed replica restarts
 *     empty under a new replica id; a graceful stop gives it `shutdown`, waits for the flush, then the node goes.
 *     Replica-to-replica traffic (the engine's sync, sup_start, sup_started, ...) rides the faulty network.
 *   - B BEAM nodes, each with a client following docs/supervisor.md as HordeC.DynamicSupervisor does: it attaches
 *     to the first reachable replica of its own failover order with Owned = the children it runs, subscribes to
 *     that replica's change stream and mirrors it (simstream.h), answers {'$hordec_sup', start, ...} by starting
 *     a child (a fraction fail), terminate, move, quorum_lost and reattach; restarts its crashed children by
 *     restart type and reports it (child_restarted, child_exited delete); stops a child whose record moves to
 *     another member or is deleted (only on that transition, as the real mirror does); fails over on nodedown;
 *     stops gracefully (set_status shutting_down, every child stopped and relinquished, detach) or dies for good.
 *     It has four rules beyond what the docs and HordeC.DynamicSupervisor say (see reconcile()), each one needed
 *     against a failure the simulator found.
 *     Between a client and a replica, messages are Erlang distribution's: in order and never lost while the
 *     connection lives, held while a partition nobody noticed yet cuts it, lost when it goes down. A client's
 *     GenServer calls block it (other messages wait in its mailbox), as the attachment's do.
 *   - the test itself, calling start_child (C and BEAM children, all three restart types; C workers of a type
 *     every replica has, or of one only some have) and terminate_child at random replicas, or through a client's
 *     attachment, and crashing children now and then (exits normal, shutdown, {shutdown, _} or a crash).
 * The strategy is UniformDistribution or UniformQuorumDistribution per seed, redistribution passive or active,
 * members listed by set_members or joining by attaching (auto), restart intensity high (1 seed in 8: 3 in 5 s).
 *
 * During the run: a start_child answered {ok, Pid} names a child that was started for that very request's spec
 * (and the replica that answered shows a record of it: read-your-writes); a temporary child is started again
 * only by a replica that saw its record relinquished (an adoption after a graceful stop or a move: see new_inst),
 * never to restart it after its exit or its member's death; every request gets one reply.
 * After the chaos, everything heals (faults off, partitions gone, every replica back) and the cluster must go
 * quiet. Then, per seed:
 *   - every replica shows the same observable map, and every client's mirror is exactly its replica's;
 *   - hc_supervisor_core_check passes on every replica (also now and then during the chaos);
 *   - every record names an alive member that runs exactly that child with that pid (a C worker of that node, a
 *     child of that client), or waits only while no alive member can run its kind;
 *   - nothing runs without its record: no orphan C worker on any node, no orphan BEAM child;
 *   - every permanent child whose start was acknowledged runs exactly once (transient: unless it exited
 *     normally), unless it was given up: its restart failed, terminate_child named it, intensity gave it up
 *     (seeds with a low max_restarts), or it was lost with the only replica that knew of it (crashed before
 *     passing it on: the ack does not wait for replication). Those are counted.
 *
 * Debugging a seed: HORDEC_SIM_TRACE=1 (one line per event), HORDEC_SIM_DUMP=1 (every replica's map and what runs,
 * on failure), HORDEC_SIM_WATCH=N (every change of child N's record), HORDEC_SIM_WATCH_MEMBER=node (its member and
 * status keys), HORDEC_SIM_PLAIN_CLIENT=all|confirm,orphan,rereport,reassert (the client without its extra rules).
 * A seed's run does not depend on the seeds run before it (the atom table is reset per run). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hordec/hc_log.h"
#include "hordec/hc_supervisor.h"
#include "simhost.h"
#include "simnet.h"
#include "simstream.h"
#include "supervisor/sup.h" /* SUP_ENDED_MS */

#define MAX_R 6
#define MAX_B 4
#define CLIENT_TIMER MAX_R /* timer ids: replica i's wake-up is i, client k's tick CLIENT_TIMER + k */
#define CHAN_TIMER (MAX_R + MAX_B)
#define SWEEP_TIMER (CHAN_TIMER + 1)
#define SWEEP_MS 100
#define CLIENT_TICK_MS 100
#define CALL_TIMEOUT_MS 5000
#define TOKEN_BASE (1ull << 40)
#define EPOCH_PENDING UINT64_MAX

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

static hc_atom a_sup, a_rnode[MAX_R], a_bnode[MAX_B];

enum { K_C = 1, K_BEAM = 2 };
enum { R_PERM = 0, R_TRANS, R_TEMP };
static const char *const restart_names[] = {"permanent", "transient", "temporary"};

/* ------------------------------------------------------------------ the model */

/* A child as the test knows it: one start_child request, whatever the core does with it. Its number N is in its
 * spec's Body ({<<"w">>, N} for a C worker, #{n => N} for a BEAM child), so every copy of it says whose it is. */
typedef struct lchild {
    int kind, restart;
    int ctype; /* C: worker type "w" (every replica has it) or "v" (some have it) */
    uint32_t hash;
    bool acked;   /* start_child answered {ok, Pid} */
    bool excused; /* may be gone for good (see the file comment); why: */
    const char *excuse;
    bool clean;           /* a copy ended normally (a transient child may be gone) */
    bool terminated;      /* terminate_child answered ok */
    int term_rep;         /* by this replica, */
    uint32_t term_serial; /* in this incarnation, */
    uint64_t term_at;     /* at this time */
    bool crashed;         /* a copy exited and was to be restarted (restart intensity may have given it up) */
    int adoptions;        /* starts a replica asked for while it saw the record relinquished (temporary children) */
    int starts;           /* copies started */
    int alive;            /* copies running */
} lchild;

/* One running (or once running) copy of a child: a C worker or a BEAM child process. */
typedef struct inst {
    hc_pid pid;
    int n;     /* lchild */
    int where; /* replica index (C) or client index (BEAM) */
    bool beam, alive;
} inst;

typedef struct rep {
    simhost sh;
    int node;
    bool has_v;    /* its runtime has worker type "v" as well as "w" */
    bool stopping; /* graceful stop: `shutdown` given, waiting for the flush */
    uint64_t stop_deadline;
} rep;

/* A monitor to fire after the current input. */
typedef struct down {
    int rep;
    uint64_t id;
    hc_pid pid;
    bool noconn;
} down;

/* Where the reply to a request goes. */
enum { RT_CLIENT = 1, RT_CAST, RT_DRIVER };
typedef struct route {
    int type;
    int rep;
    uint32_t serial; /* the replica's incarnation */
    int who;         /* client (RT_CLIENT) or driver call (RT_DRIVER) */
    uint64_t ref;    /* the client's call */
    int replies;
} route;

/* A call of the test's (start_child, terminate_child). */
enum { DC_START = 1, DC_TERMINATE };
typedef struct dcall {
    int type;
    int n;
} dcall;

/* Distribution between clients and replicas: per pair of nodes, in order. */
enum { DM_CALL = 1, DM_MSG, DM_REPLY, DM_EXIT };
typedef struct dmsg {
    uint64_t at, epoch;
    int kind;
    int from_node, to_node;
    hc_pid from, to; /* DM_CALL: to is the replica process */
    int rtype;       /* DM_CALL: RT_* */
    int who;
    uint64_t ref; /* DM_CALL: the caller's reference; DM_REPLY: the call's */
    int inst;     /* DM_EXIT: a child's exit in a client's mailbox */
    int reason;
    uint8_t *data;
    size_t len;
} dmsg;

typedef struct pairq {
    dmsg *q;
    size_t head, n, cap;
    uint64_t last_at;
    uint64_t retry_at; /* blocked by a partition nobody noticed yet: look again then */
} pairq;

/* A BEAM client's child record as its mirror shows it. */
typedef struct rec {
    uint64_t id;
    bool mine;
    bool temporary;
    hc_pid pid;
} rec;

typedef struct bchild {
    uint64_t id;
    int inst;
    int restart;
    bool confirmed; /* the mirror has shown its record naming this member (since a replica asked to start it) */
    uint64_t started_at;
    uint8_t *spec; /* {beam, Restart, Hash, Body} as the start request gave it */
    size_t spec_len;
} bchild;

typedef struct ended {
    uint64_t id;
    bool relinquish;
} ended;

enum { CS_ALIVE = 1, CS_STOPPING, CS_GONE };
enum { CW_NONE = 0, CW_ATTACH, CW_SUBSCRIBE, CW_SET_STATUS, CW_DETACH };

typedef struct client {
    int node, state;
    hc_pid pid, caller;
    int order[MAX_R];
    int attached; /* replica index, or -1 */
    bool ever_attached, reattach;
    int wait, wait_rep; /* a blocking call in progress */
    uint64_t wait_ref, wait_deadline;
    dmsg *inbox; /* what arrived meanwhile */
    size_t ninbox, capinbox;
    simmirror mirror;
    bool collecting, snap_status_ok;
    rec *snap, *tab; /* the snapshot being read; the records as last seen */
    size_t nsnap, capsnap, ntab, captab;
    bchild *run;
    size_t nrun, caprun;
    ended *end;
    size_t nend, capend;
} client;

static rep Rp[MAX_R];
static client Cl[MAX_B];
static int R, B;
static lchild *L;
static size_t NL, capL;
static inst *I;
static size_t NI, capI;
static hc_hmap by_pid; /* hc_pid_hash -> inst index + 1 */
static route *routes;
static size_t nroutes, caproutes;
static dcall *dcalls;
static size_t ndcalls, capdcalls;
static down *downs;
static size_t ndowns, capdowns;
static pairq Q[SIMNET_MAX_NODES][SIMNET_MAX_NODES];
static uint64_t epoch_of[SIMNET_MAX_NODES][SIMNET_MAX_NODES];
static uint64_t steps, next_rid, next_ref;

/* per seed */
static hc_sup_options opts;
static bool auto_join, low_intensity;
static unsigned fail_pm, ignore_pm;
static hc_crdt_config base_cfg;
static uint32_t start_timeout_ms;

typedef struct totals {
    uint64_t seeds, starts, acked, refused, terminates, terminated, c_crashes, b_crashes, b_restarts, crashes, graceful,
        client_deaths, client_stops, partitions, attaches, failovers, moves, dups, quorum_stops, handoffs, excused,
        excused_lost, excused_restart, excused_intensity, excused_terminate, waiting, delivered, dropped, damaged,
        chan_lost, uniform, quorum, active;
} totals;
static totals T;

static hc_time now_at(int node) { return simnet_time(&net, node); }
static bool running(int i) { return simhost_running(&Rp[i].sh); }
static void *core_of(int i) { return hc_host_core(Rp[i].sh.host); }
/* A distribution connection between two nodes is up, or being set up (from either end). */
static bool linked(int a, int b) { return a == b || net.conn[a][b] || net.dialing[a][b] || net.dialing[b][a]; }

static int rep_of_node(int node)
{
    for (int i = 0; i < R; i++)
        if (Rp[i].node == node)
            return i;
    return -1;
}

static int client_of_node(int node)
{
    for (int k = 0; k < B; k++)
        if (Cl[k].node == node)
            return k;
    return -1;
}

static inst *inst_of(const hc_pid *pid)
{
    size_t pos = 0;
    void *v;
    while ((v = hc_hmap_next(&by_pid, hc_pid_hash(pid), &pos))) {
        inst *x = &I[(uintptr_t)v - 1];
        if (hc_pid_eq(&x->pid, pid))
            return x;
    }
    return NULL;
}

static bool pid_alive(const hc_pid *pid)
{
    int node = simnet_node_of(&net, pid->node);
    if (node < 0 || !net.nodes[node].alive)
        return false;
    inst *x = inst_of(pid);
    if (x)
        return x->alive;
    int i = rep_of_node(node);
    if (i >= 0)
        return running(i) && hc_pid_eq(&Rp[i].sh.pid, pid);
    int k = client_of_node(node);
    return k >= 0 && Cl[k].state != CS_GONE && (hc_pid_eq(&Cl[k].pid, pid) || hc_pid_eq(&Cl[k].caller, pid));
}

static void excuse(int n, const char *why)
{
    if (L[n].excused)
        return;
    L[n].excused = true;
    L[n].excuse = why;
    T.excused++;
}

/* A copy of child n starts. A temporary child starts once, and again only to adopt it: the replica that asked for
 * the start saw its record relinquished (handed off by a graceful stop or a move). Two replicas whose views differ
 * for a moment may both adopt it, and one may adopt it after a copy died where it does not know yet: that is the
 * design (the record decides which copy stays). What must never happen is a start of it decided by a replica that
 * saw it recorded on a member, dead or alive, or saw it deleted. */
static void adoption_used(int n)
{
    lchild *c = &L[n];
    if (c->restart == R_TEMP && c->starts && c->adoptions)
        c->adoptions--;
}

static int new_inst(int n, bool beam, int where, const hc_pid *pid)
{
    lchild *c = &L[n];
    if (c->restart == R_TEMP && c->starts && !c->adoptions)
        return simnet_fail(&net, "temporary child %d (%s) started a second time, on %s %d, not to adopt it", n,
                           c->kind == K_C ? "C" : "BEAM", beam ? "client" : "replica", where);
    adoption_used(n);
    c->starts++;
    c->alive++;
    if (hc_array_reserve((void **)&I, &capI, NI + 1, sizeof *I, 256))
        abort();
    I[NI] = (inst){*pid, n, where, beam, true};
    if (hc_hmap_put(&by_pid, hc_pid_hash(pid), (void *)(uintptr_t)(NI + 1)))
        abort();
    NI++;
    TRACE("child %d (%s %s) starts as %s/%u", n, c->kind == K_C ? "C" : "BEAM", restart_names[c->restart],
          hc_atom_name(pid->node), pid->num);
    return 0;
}

/* How a copy ended: handed off (relinquished for another member to adopt), stopped as a duplicate (another copy
 * carries on), or dead (it exited, its member died, it was terminated or stopped for lack of quorum). */
enum { END_HANDOFF = 1, END_NEUTRAL, END_DEATH };

static void inst_dies(inst *x, int how)
{
    if (!x->alive)
        return;
    x->alive = false;
    L[x->n].alive--;
    if (how == END_HANDOFF)
        T.handoffs++;
}

/* ------------------------------------------------------------------ terms */

static const uint8_t atom_normal[] = {119, 6, 'n', 'o', 'r', 'm', 'a', 'l'};
static const uint8_t atom_shutdown[] = {119, 8, 's', 'h', 'u', 't', 'd', 'o', 'w', 'n'};
static const uint8_t atom_boom[] = {119, 4, 'b', 'o', 'o', 'm'};
static const uint8_t atom_noproc[] = {119, 6, 'n', 'o', 'p', 'r', 'o', 'c'};
static const uint8_t atom_noconn[] = {119, 12, 'n', 'o', 'c', 'o', 'n', 'n', 'e', 'c', 't', 'i', 'o', 'n'};
/* {shutdown, whatever} */
static const uint8_t shutdown_tuple[] = {104, 2,   119, 8,   's', 'h', 'u', 't', 'd', 'o', 'w',
                                         'n', 119, 8,   'w', 'h', 'a', 't', 'e', 'v', 'e', 'r'};

enum { EXIT_NORMAL = 0, EXIT_SHUTDOWN, EXIT_SHUTDOWN_TUPLE, EXIT_CRASH };
static bool exit_clean(int reason) { return reason != EXIT_CRASH; }

static void enc_reason(hc_buf *b, int reason)
{
    switch (reason) {
    case EXIT_NORMAL: hc_buf_append(b, atom_normal, sizeof atom_normal); break;
    case EXIT_SHUTDOWN: hc_buf_append(b, atom_shutdown, sizeof atom_shutdown); break;
    case EXIT_SHUTDOWN_TUPLE: hc_buf_append(b, shutdown_tuple, sizeof shutdown_tuple); break;
    default: hc_buf_append(b, atom_boom, sizeof atom_boom);
    }
}

static void enc_member(hc_buf *b, hc_atom node)
{
    hc_enc_tuple_header(b, 2);
    hc_enc_atom(b, a_sup);
    hc_enc_atom(b, node);
}

/* {Kind, Restart, Hash, Body} of child n */
static void enc_spec(hc_buf *b, int n)
{
    const lchild *c = &L[n];
    hc_enc_tuple_header(b, 4);
    hc_enc_atom_cstr(b, c->kind == K_C ? "c" : "beam");
    hc_enc_atom_cstr(b, restart_names[c->restart]);
    hc_enc_ulong(b, c->hash);
    if (c->kind == K_C) {
        hc_enc_tuple_header(b, 2);
        hc_enc_binary(b, c->ctype ? "v" : "w", 1);
        hc_enc_long(b, n);
    } else {
        hc_enc_map_header(b, 1);
        hc_enc_atom_cstr(b, "n");
        hc_enc_long(b, n);
    }
}

/* N of a C worker's Arg (an integer), or -1. */
static int n_of_arg(const uint8_t *p, size_t len)
{
    size_t i = 0;
    int64_t n;
    if (hc_dec_long(p, len, &i, &n) || i != len || n < 0 || (size_t)n >= NL)
        return -1;
    return (int)n;
}

/* N of a Body: {<<"w">>, N} or #{n => N}; -1 if it is neither. */
static int n_of_body(const uint8_t *p, size_t len)
{
    size_t i = 0;
    uint32_t arity;
    hc_span t;
    if (!hc_dec_tuple_header(p, len, &i, &arity)) {
        if (arity != 2 || hc_dec_binary(p, len, &i, &t) || hc_dec_term(p, len, &i, &t) || i != len)
            return -1;
        return n_of_arg(t.p, t.len);
    }
    i = 0;
    if (hc_dec_map_header(p, len, &i, &arity) || arity != 1 || !hc_dec_is_atom(p, len, &i, "n") ||
        hc_dec_term(p, len, &i, &t) || i != len)
        return -1;
    return n_of_arg(t.p, t.len);
}

/* A child record {Kind, Restart, Hash, Body, Member, Pid}, read as the test needs it. */
typedef struct recval {
    int n;
    bool has_member;
    hc_atom m_name, m_node;
    hc_pid pid;
} recval;

static int parse_record(const uint8_t *p, size_t len, recval *v)
{
    size_t i = 0;
    uint32_t arity;
    hc_span body;
    memset(v, 0, sizeof *v);
    if (hc_dec_tuple_header(p, len, &i, &arity) || arity != 6 || hc_dec_skip(p, len, &i) || hc_dec_skip(p, len, &i) ||
        hc_dec_skip(p, len, &i) || hc_dec_term(p, len, &i, &body))
        return -1;
    v->n = n_of_body(body.p, body.len);
    size_t j = i;
    if (hc_dec_is_atom(p, len, &j, "nil"))
        return hc_dec_is_atom(p, len, &j, "nil") && j == len && v->n >= 0 ? 0 : -1;
    if (hc_dec_tuple_header(p, len, &i, &arity) || arity != 2 || hc_dec_atom(p, len, &i, &v->m_name) ||
        hc_dec_atom(p, len, &i, &v->m_node) || hc_dec_pid(p, len, &i, &v->pid) || i != len || v->n < 0)
        return -1;
    v->has_member = true;
    return 0;
}

/* {child, Id} -> Id; {status, {Name, Node}} -> 0 with *node set; else -1. */
static int parse_key(const uint8_t *p, size_t len, uint64_t *id, hc_atom *node)
{
    size_t i = 0;
    uint32_t arity;
    hc_atom name;
    *id = 0;
    *node = 0;
    if (hc_dec_tuple_header(p, len, &i, &arity) || arity != 2)
        return -1;
    size_t j = i;
    if (hc_dec_is_atom(p, len, &j, "child"))
        return hc_dec_ulong(p, len, &j, id) || j != len ? -1 : 0;
    j = i;
    if (hc_dec_is_atom(p, len, &j, "status"))
        return hc_dec_tuple_header(p, len, &j, &arity) || arity != 2 || hc_dec_atom(p, len, &j, &name) ||
                       hc_dec_atom(p, len, &j, node) || j != len || name != a_sup
                   ? -1
                   : 0;
    return -1;
}

/* {Kind, Status, Pid, Via, Types}: Status and Pid. */
static int parse_status(const uint8_t *p, size_t len, bool *alive, bool *dead, hc_pid *pid)
{
    size_t i = 0;
    uint32_t arity;
    *alive = *dead = false;
    memset(pid, 0, sizeof *pid);
    if (hc_dec_tuple_header(p, len, &i, &arity) || arity != 5 || hc_dec_skip(p, len, &i))
        return -1;
    size_t j = i;
    *alive = hc_dec_is_atom(p, len, &j, "alive");
    j = i;
    *dead = hc_dec_is_atom(p, len, &j, "dead");
    if (hc_dec_skip(p, len, &i) || hc_dec_pid(p, len, &i, pid))
        return -1;
    return 0;
}

/* ------------------------------------------------------------------ distribution between clients and replicas */

static int chan_rearm(void)
{
    uint64_t next = HC_NO_DEADLINE;
    for (int a = 0; a < net.n_nodes; a++)
        for (int b = 0; b < net.n_nodes; b++) {
            pairq *q = &Q[a][b];
            if (q->head == q->n)
                continue;
            uint64_t t = q->q[q->head].at;
            if (q->retry_at > t)
                t = q->retry_at;
            if (t < next)
                next = t;
        }
    simnet_timer_set(&net, CHAN_TIMER, next);
    return 0;
}

/* Puts m on the connection from m->from_node to m->to_node (dialling it if need be). Takes m->data. */
static void chan_send(dmsg *m)
{
    int a = m->from_node, b = m->to_node;
    if (a < 0 || b < 0 || a == b || !net.nodes[a].alive) {
        free(m->data);
        T.chan_lost++;
        return;
    }
    pairq *q = &Q[a][b];
    if (simnet_connected(&net, a, b)) {
        m->epoch = epoch_of[a][b];
    } else {
        m->epoch = EPOCH_PENDING; /* sent once the connection is up, lost if it cannot be made */
        simnet_connect(&net, a, b);
    }
    m->at = net.now + 1 + simnet_below(&net, 3);
    if (m->at < q->last_at)
        m->at = q->last_at;
    q->last_at = m->at;
    if (q->head == q->n)
        q->head = q->n = 0;
    if (hc_array_reserve((void **)&q->q, &q->cap, q->n + 1, sizeof *q->q, 16))
        abort();
    q->q[q->n++] = *m;
    chan_rearm();
}

static uint8_t *copy_bytes(const uint8_t *p, size_t len)
{
    uint8_t *d = malloc(len ? len : 1);
    if (!d)
        abort();
    if (len)
        memcpy(d, p, len);
    return d;
}

/* A message from process `from` to process `to` (DM_MSG or DM_REPLY). */
static void chan_msg(int kind, const hc_pid *from, const hc_pid *to, uint64_t ref, const uint8_t *p, size_t len)
{
    dmsg m = {.kind = kind,
              .from_node = simnet_node_of(&net, from->node),
              .to_node = simnet_node_of(&net, to->node),
              .from = *from,
              .to = *to,
              .ref = ref,
              .data = copy_bytes(p, len),
              .len = len};
    chan_send(&m);
}

/* A request to replica process `to` (a call with reference ref, or a cast). */
static void chan_call(const hc_pid *from, const hc_pid *to, int rtype, int who, uint64_t ref, const hc_buf *req)
{
    if (req->err)
        abort();
    dmsg m = {.kind = DM_CALL,
              .from_node = simnet_node_of(&net, from->node),
              .to_node = simnet_node_of(&net, to->node),
              .from = *from,
              .to = *to,
              .rtype = rtype,
              .who = who,
              .ref = ref,
              .data = copy_bytes(req->data, req->len),
              .len = req->len};
    chan_send(&m);
}

static int deliver_dmsg(dmsg *m);

/* Delivers what is due, pair by pair in order. */
static int chan_run(void)
{
    bool again = true;
    while (again && !net.failed) {
        again = false;
        for (int a = 0; a < net.n_nodes; a++)
            for (int b = 0; b < net.n_nodes; b++) {
                pairq *q = &Q[a][b];
                while (q->head < q->n && q->q[q->head].at <= net.now && q->retry_at <= net.now) {
                    dmsg *h = &q->q[q->head];
                    bool lost = !net.nodes[b].alive || !net.nodes[a].alive;
                    if (!lost && h->epoch == EPOCH_PENDING) {
                        if (simnet_connected(&net, a, b))
                            h->epoch = epoch_of[a][b];
                        else if (net.dialing[a][b] || net.dialing[b][a]) {
                            q->retry_at = net.now + 5;
                            break;
                        } else
                            lost = true;
                    }
                    if (!lost && (h->epoch != epoch_of[a][b] || !simnet_connected(&net, a, b)))
                        lost = true;
                    if (!lost && !simnet_reachable(&net, a, b)) {
                        q->retry_at = net.now + 10; /* TCP holds it: through if the partition heals first */
                        break;
                    }
                    dmsg m = *h;
                    q->head++;
                    q->retry_at = 0;
                    if (lost) {
                        TRACE("lost on the way from node %d to node %d: a %s", a, b,
                              h->kind == DM_CALL    ? "request"
                              : h->kind == DM_REPLY ? "reply"
                                                    : "message");
                        T.chan_lost++;
                        free(m.data);
                        continue;
                    }
                    int rc = deliver_dmsg(&m);
                    free(m.data);
                    if (rc)
                        return -1;
                    again = true;
                    q = &Q[a][b]; /* delivering may have appended to this queue */
                }
            }
    }
    chan_rearm();
    return net.failed ? -1 : 0;
}

static bool chan_empty(void)
{
    for (int a = 0; a < net.n_nodes; a++)
        for (int b = 0; b < net.n_nodes; b++)
            if (Q[a][b].head < Q[a][b].n)
                return false;
    return true;
}

/* ------------------------------------------------------------------ replicas: monitors, effects */

/* What replica i's map says of child n: 0 absent, 1 relinquished, 2 recorded on a member. */
typedef struct state_scan {
    int n, state;
} state_scan;

static int state_visit(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    state_scan *s = ud;
    uint64_t id;
    hc_atom node;
    recval rv;
    if (!parse_key(k, kl, &id, &node) && id && !parse_record(v, vl, &rv) && rv.n == s->n)
        s->state = rv.has_member ? 2 : 1;
    return 0;
}

/* Replica i asks for a start of child n (a worker of its own, another replica's, a client's): an adoption when it
 * sees the record relinquished (see new_inst). */
static void judge_start(int i, int n)
{
    if (n < 0 || L[n].restart != R_TEMP || !L[n].starts)
        return;
    state_scan s = {n, 0};
    hc_supervisor_core_ops.snapshot(core_of(i), state_visit, &s);
    if (s.state == 1)
        L[n].adoptions++;
    TRACE("replica %d asks for a start of temporary child %d, which it sees %s", i, n,
          s.state == 1   ? "relinquished"
          : s.state == 2 ? "recorded on a member"
                         : "nowhere");
}

/* N of the Spec in {.., Spec} at p[i..] (a {Kind, Restart, Hash, Body} tuple), or -1. */
static int n_of_spec(const uint8_t *p, size_t len, size_t i)
{
    uint32_t arity;
    hc_span body;
    if (hc_dec_tuple_header(p, len, &i, &arity) || arity != 4 || hc_dec_skip(p, len, &i) || hc_dec_skip(p, len, &i) ||
        hc_dec_skip(p, len, &i) || hc_dec_term(p, len, &i, &body))
        return -1;
    return n_of_body(body.p, body.len);
}

/* {sup_start, Op, Id, Spec}: N, or -1 for any other peer message. */
static int n_of_sup_start(const uint8_t *p, size_t len)
{
    size_t i = 0;
    uint32_t arity;
    if (hc_dec_tuple_header(p, len, &i, &arity) || arity != 4 || !hc_dec_is_atom(p, len, &i, "sup_start") ||
        hc_dec_skip(p, len, &i) || hc_dec_skip(p, len, &i))
        return -1;
    return n_of_spec(p, len, i);
}

static int peer_start_n = -1; /* a sup_start for this child is being delivered: its starts were judged already */

static void queue_down(int i, uint64_t id, const hc_pid *pid, bool noconn)
{
    if (hc_array_reserve((void **)&downs, &capdowns, ndowns + 1, sizeof *downs, 16))
        abort();
    downs[ndowns++] = (down){i, id, *pid, noconn};
}

/* A monitor holds while its process lives and (for another node's process) a connection to its node does: one
 * on a connection a partition cut unnoticed holds until the cut is noticed (or the partition heals first). */
static void hook_monitor(void *ud, simhost *sh, const hc_pid *pid, uint64_t id)
{
    rep *r = ud;
    int i = (int)(r - Rp);
    int pn = simnet_node_of(&net, pid->node);
    if (pn < 0) {
        simnet_fail(&net, "replica %d: monitors a pid of an unknown node", i);
        return;
    }
    if (pn != r->node && !simnet_connected(&net, r->node, pn) && !simnet_reachable(&net, r->node, pn))
        queue_down(i, id, pid, true);
    else if (!pid_alive(pid))
        queue_down(i, id, pid, false);
    else if (pn != r->node)
        simnet_connect(&net, r->node, pn); /* a remote monitor travels on a connection */
    (void)sh;
}

static int settle_effects(void)
{
    for (;;) {
        for (int i = 0; i < R; i++)
            if (running(i) && simhost_settle(&Rp[i].sh))
                return -1;
        if (!ndowns)
            return net.failed ? -1 : 0;
        down d = downs[0];
        memmove(&downs[0], &downs[1], (ndowns - 1) * sizeof *downs);
        ndowns--;
        if (!running(d.rep))
            continue;
        int rc = d.noconn ? simhost_fire(&Rp[d.rep].sh, d.id, &d.pid, atom_noconn, sizeof atom_noconn)
                          : simhost_fire(&Rp[d.rep].sh, d.id, &d.pid, atom_noproc, sizeof atom_noproc);
        if (rc < 0)
            return -1;
        if (rc)
            TRACE("replica %d: monitor on %s/%u fires %s", d.rep, hc_atom_name(d.pid.node), d.pid.num,
                  d.noconn ? "noconnection" : "noproc");
    }
}

static int check_core(int i)
{
    char why[256] = "";
    if (running(i) && hc_supervisor_core_check(core_of(i), why, sizeof why))
        FAIL("replica %d: hc_supervisor_core_check: %s", i, why);
    return 0;
}

/* HORDEC_SIM_WATCH=N: trace every change of child N's record on every replica (debugging a seed). */
static int watch_n = -1;
static char watch_last[MAX_R][128];

typedef struct watch_scan {
    char *out;
    size_t len;
} watch_scan;

static int watch_visit(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl);

static bool listed_on(int i, hc_atom node);
static bool status_on(int i, hc_atom node);
static char watchm_last[MAX_R];
static hc_atom watch_member; /* HORDEC_SIM_WATCH_MEMBER=node: its {member, ...} key on every replica */

static void watch(int i)
{
    if (watch_member && running(i)) {
        char now = (char)('a' + listed_on(i, watch_member) + 2 * status_on(i, watch_member));
        if (now != watchm_last[i]) {
            TRACE("watch: replica %d: %s %s listed, status %s", i, hc_atom_name(watch_member),
                  (now - 'a') & 1 ? "is" : "is not", (now - 'a') >= 2 ? "present" : "absent");
            watchm_last[i] = now;
        }
    }
    if (watch_n < 0 || !running(i))
        return;
    char now[128] = "absent";
    watch_scan s = {now, sizeof now};
    hc_supervisor_core_ops.snapshot(core_of(i), watch_visit, &s);
    if (strcmp(now, watch_last[i])) {
        TRACE("watch: replica %d: child %d %s", i, watch_n, now);
        snprintf(watch_last[i], sizeof watch_last[i], "%s", now);
    }
}

/* After any input to a replica. */
static int after(int i)
{
    watch(i);
    if (settle_effects())
        return -1;
    if (++steps % 17 == 0 && check_core(i))
        return -1;
    return net.failed ? -1 : 0;
}

/* The fake runtime's starts: a fraction fail; a copy of child N that starts is a new instance. */
static int hook_worker_start(void *ud, simhost *sh, const hc_span *type, const hc_span *arg, const hc_pid *pid)
{
    rep *r = ud;
    int n = n_of_arg(arg->p, arg->len);
    if (n < 0 || L[n].kind != K_C) {
        simnet_fail(&net, "replica %d: a worker start for an Arg the test never gave", (int)(r - Rp));
        return -1;
    }
    size_t t = 0;
    hc_span tb;
    if (hc_dec_binary(type->p, type->len, &t, &tb) || tb.len != 1 || tb.p[0] != (L[n].ctype ? 'v' : 'w')) {
        simnet_fail(&net, "replica %d: a worker start of child %d with another type than its spec's", (int)(r - Rp), n);
        return -1;
    }
    if (L[n].ctype && !r->has_v) {
        simnet_fail(&net, "replica %d: asked to start child %d, of worker type v, which its runtime does not have",
                    (int)(r - Rp), n);
        return -1;
    }
    if (n != peer_start_n)
        judge_start((int)(r - Rp), n);
    unsigned x = (unsigned)simnet_below(&net, 1000);
    if (x < fail_pm + ignore_pm) {
        if (L[n].starts)
            excuse(n, "restart failed"), T.excused_restart++;
        adoption_used(n);
        TRACE("replica %d: worker start of child %d fails (%s)", (int)(r - Rp), n, x < fail_pm ? "error" : "ignore");
        return x < fail_pm ? -1 : 1;
    }
    new_inst(n, false, (int)(r - Rp), pid);
    (void)sh, (void)type;
    return 0;
}

static void hook_worker_exit(void *ud, simhost *sh, const hc_pid *pid, const uint8_t *reason, size_t len)
{
    rep *r = ud;
    inst *x = inst_of(pid);
    if (!x)
        return;
    size_t i = 0;
    uint32_t arity;
    bool redistribution = !hc_dec_tuple_header(reason, len, &i, &arity) && arity == 2 &&
                          hc_dec_is_atom(reason, len, &i, "shutdown") &&
                          hc_dec_is_atom(reason, len, &i, "process_redistribution");
    i = 0;
    bool shutdown = hc_dec_is_atom(reason, len, &i, "shutdown") && i == len;
    if (redistribution)
        T.moves++;
    TRACE("replica %d: worker %u of child %d exits (%s)", (int)(r - Rp), pid->num, x->n,
          redistribution ? "redistribution"
          : shutdown     ? "shutdown"
                         : "other");
    /* a worker stopped with shutdown outside a graceful stop: a duplicate, quorum lost, or terminate_child */
    inst_dies(x, redistribution || (r->stopping && shutdown) ? END_HANDOFF : shutdown ? END_NEUTRAL : END_DEATH);
    (void)sh;
}

static void driver_reply(int i, int d, const uint8_t *p, size_t len);
static int client_deliver(int k, dmsg *m);

static void hook_reply(void *ud, simhost *sh, uint64_t token, const uint8_t *p, size_t len)
{
    rep *r = ud;
    int i = (int)(r - Rp);
    if (token < TOKEN_BASE || token - TOKEN_BASE >= nroutes) {
        simnet_fail(&net, "replica %d: a reply to token %" PRIu64 ", which it was never given", i, token);
        return;
    }
    route *rt = &routes[token - TOKEN_BASE];
    if (rt->rep != i || rt->serial != sh->pid.serial) {
        simnet_fail(&net, "replica %d: a reply to a request another replica (or incarnation) got", i);
        return;
    }
    if (rt->replies++) {
        simnet_fail(&net, "replica %d: a second reply to one request", i);
        return;
    }
    if (rt->type == RT_CLIENT)
        chan_msg(DM_REPLY, &sh->pid, &Cl[rt->who].pid, rt->ref, p, len);
    else if (rt->type == RT_DRIVER)
        driver_reply(i, rt->who, p, len);
}

/* Messages a replica sends to processes: to the clients, over distribution. */
static bool hook_send_pid(void *ud, simhost *sh, const hc_pid *to, const uint8_t *msg, size_t len)
{
    rep *r = ud;
    size_t i = 0;
    uint32_t arity;
    if (!hc_dec_tuple_header(msg, len, &i, &arity) && arity == 6 && hc_dec_is_atom(msg, len, &i, "$hordec_sup") &&
        hc_dec_is_atom(msg, len, &i, "start") && !hc_dec_skip(msg, len, &i) && !hc_dec_skip(msg, len, &i) &&
        !hc_dec_skip(msg, len, &i))
        judge_start((int)(r - Rp), n_of_spec(msg, len, i));
    i = 0;
    hc_iter it;
    hc_span t;
    if (!hc_dec_tuple_header(msg, len, &i, &arity) && arity == 4 && hc_dec_is_atom(msg, len, &i, "$hordec_sup") &&
        hc_dec_is_atom(msg, len, &i, "starts") && !hc_dec_skip(msg, len, &i) && !hc_iter_list(&it, msg, len, &i))
        while (hc_iter_next(&it, &t)) { /* {Op, Id, Spec} */
            size_t j = 0;
            if (!hc_dec_tuple_header(t.p, t.len, &j, &arity) && arity == 3 && !hc_dec_skip(t.p, t.len, &j) &&
                !hc_dec_skip(t.p, t.len, &j))
                judge_start((int)(r - Rp), n_of_spec(t.p, t.len, j));
        }
    int tn = simnet_node_of(&net, to->node);
    if (tn >= 0 && tn != r->node)
        chan_msg(DM_MSG, &sh->pid, to, 0, msg, len);
    return true;
}

static int hook_send_peer(void *ud, simhost *sh, int to_node, hc_atom name, const uint8_t *msg, size_t len)
{
    rep *r = ud;
    int n = n_of_sup_start(msg, len);
    if (n >= 0)
        judge_start((int)(r - Rp), n);
    (void)sh, (void)to_node, (void)name;
    return 0;
}

static uint64_t new_token(int type, int i, int who, uint64_t ref)
{
    if (hc_array_reserve((void **)&routes, &caproutes, nroutes + 1, sizeof *routes, 256))
        abort();
    routes[nroutes] = (route){type, i, Rp[i].sh.pid.serial, who, ref, 0};
    return TOKEN_BASE + nroutes++;
}

/* A request reaches replica i (from a process of its own node, or over distribution). */
static int replica_request(int i, const hc_pid *from, int rtype, int who, uint64_t ref, const uint8_t *req, size_t len)
{
    if (tracing) {
        size_t x = 0;
        uint32_t arity;
        hc_atom tag = 0;
        if (!hc_dec_tuple_header(req, len, &x, &arity))
            hc_dec_atom(req, len, &x, &tag);
        TRACE("  replica %d gets %s from %s/%u", i, tag ? hc_atom_name(tag) : "?", hc_atom_name(from->node), from->num);
    }
    uint64_t token = new_token(rtype, i, who, ref);
    if (simhost_request(&Rp[i].sh, token, from, req, len))
        return -1;
    return after(i);
}

static int watch_visit(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    watch_scan *s = ud;
    uint64_t id;
    hc_atom node;
    recval rv;
    if (!parse_key(k, kl, &id, &node) && id && !parse_record(v, vl, &rv) && rv.n == watch_n)
        snprintf(s->out, s->len, "id %" PRIu64 " on %s as %s/%u", id, rv.has_member ? hc_atom_name(rv.m_node) : "nil",
                 rv.has_member ? hc_atom_name(rv.pid.node) : "-", rv.pid.num);
    return 0;
}

typedef struct listed_scan {
    hc_atom node;
    bool found;
} listed_scan;

static int listed_visit(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    listed_scan *s = ud;
    size_t x = 0;
    uint32_t arity;
    hc_atom name, node;
    if (!hc_dec_tuple_header(k, kl, &x, &arity) && arity == 2 && hc_dec_is_atom(k, kl, &x, "member") &&
        !hc_dec_tuple_header(k, kl, &x, &arity) && arity == 2 && !hc_dec_atom(k, kl, &x, &name) &&
        !hc_dec_atom(k, kl, &x, &node) && name == a_sup && node == s->node)
        s->found = true;
    (void)v, (void)vl;
    return 0;
}

typedef struct status_scan {
    hc_atom node;
    bool found;
} status_scan;

static int status_visit(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    status_scan *s = ud;
    uint64_t id;
    hc_atom node;
    if (!parse_key(k, kl, &id, &node) && !id && node == s->node)
        s->found = true;
    (void)v, (void)vl;
    return 0;
}

static bool status_on(int i, hc_atom node)
{
    status_scan s = {node, false};
    hc_supervisor_core_ops.snapshot(core_of(i), status_visit, &s);
    return s.found;
}

static bool listed_on(int i, hc_atom node)
{
    listed_scan s = {node, false};
    hc_supervisor_core_ops.snapshot(core_of(i), listed_visit, &s);
    return s.found;
}

/* ------------------------------------------------------------------ replicas: life */

static int replica_start(int i)
{
    rep *r = &Rp[i];
    hc_supervisor_config cfg;
    hc_supervisor_config_init(&cfg, a_sup, a_rnode[i], ++next_rid);
    uint64_t rid = cfg.crdt.replica_id;
    cfg.crdt = base_cfg;
    cfg.crdt.replica_id = rid;
    cfg.opt = opts;
    cfg.start_timeout_ms = start_timeout_ms;
    static const char *const types[] = {"w", "v"};
    cfg.worker_types = types;
    cfg.n_worker_types = r->has_v ? 2 : 1;
    void *core;
    int rc = hc_supervisor_core_new(&cfg, now_at(r->node), &core);
    if (rc)
        FAIL("replica %d: hc_supervisor_core_new: %s", i, hc_strerror(rc));
    if (simhost_start(&r->sh, &hc_supervisor_core_ops, core, 0,
                      (uint64_t)(i + 1) << 40 | (uint64_t)r->sh.pid.serial << 20))
        return -1;
    hc_supervisor_core_set_self(core_of(i), &r->sh.pid);
    r->stopping = false;
    TRACE("replica %d starts (serial %u, rid %" PRIu64 ")", i, r->sh.pid.serial, rid);
    if (simhost_tick(&r->sh)) /* drains the core's first effects (its own membership and status) */
        return -1;
    return after(i);
}

/* Child records replica i shows, by N (into `known`, which must hold NL flags). */
typedef struct known_scan {
    uint8_t *known;
} known_scan;

static int known_visit(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    known_scan *s = ud;
    uint64_t id;
    hc_atom node;
    recval rv;
    if (parse_key(k, kl, &id, &node) || !id || parse_record(v, vl, &rv))
        return 0;
    s->known[rv.n] = 1;
    return 0;
}

static void known_by(int i, uint8_t *known)
{
    known_scan s = {known};
    hc_supervisor_core_ops.snapshot(core_of(i), known_visit, &s);
}

/* Replica i (its node with it) or client k goes down for good: what only it knew is gone with it. A child is
 * excused when the dying member knew it (its record, or a copy it ran) and no other running replica has its
 * record, nor runs an alive client a copy of it (a client re-asserts what it runs when it attaches). */
static void excuse_lost(int dying_rep, int dying_client)
{
    if (!NL)
        return;
    uint8_t *mine = calloc(NL, 1), *kept = calloc(NL, 1);
    if (!mine || !kept)
        abort();
    if (dying_rep >= 0)
        known_by(dying_rep, mine);
    for (size_t x = 0; x < NI; x++) {
        if (!I[x].alive)
            continue;
        if (I[x].beam ? I[x].where == dying_client : I[x].where == dying_rep)
            mine[I[x].n] = 1;
        else if (I[x].beam && Cl[I[x].where].state == CS_ALIVE) /* a client stopping re-asserts nothing */
            kept[I[x].n] = 1;
    }
    for (int j = 0; j < R; j++)
        if (j != dying_rep && running(j))
            known_by(j, kept);
    for (size_t n = 0; n < NL; n++)
        if (mine[n] && !kept[n] && !L[n].excused) {
            excuse((int)n, "lost with the only member that knew it");
            T.excused_lost++;
        }
    free(mine);
    free(kept);
}

/* The hordec node goes down (crash, or the end of a graceful stop): the replica, its workers, its connections. */
static int replica_crash(int i)
{
    rep *r = &Rp[i];
    if (!running(i))
        return 0;
    excuse_lost(i, -1);
    TRACE("replica %d %s", i, r->stopping ? "stops (its node goes down)" : "crashes");
    simhost_stop(&r->sh, false);
    r->stopping = false;
    watch_last[i][0] = 0;
    watchm_last[i] = 0;
    simnet_crash(&net, r->node);
    T.crashes++;
    return net.failed ? -1 : 0;
}

static int replica_restart(int i)
{
    if (running(i))
        return 0;
    simnet_restart(&net, Rp[i].node);
    return replica_start(i);
}

/* SIGTERM to hordec: the core hands its children over; the node goes once the engine has flushed. */
static int replica_graceful(int i)
{
    rep *r = &Rp[i];
    if (!running(i) || r->stopping)
        return 0;
    TRACE("replica %d: graceful stop", i);
    r->stopping = true;
    r->stop_deadline = net.now + 3000;
    T.graceful++;
    if (simhost_local(&r->sh, atom_shutdown, sizeof atom_shutdown))
        return -1;
    return after(i);
}

/* {set_members, [{sup, hI} for every replica] ++ [{sup, bK} for every client unless they join by attaching]} */
static int set_members(int i)
{
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "set_members");
    hc_enc_list_header(&b, (uint32_t)(R + (auto_join ? 0 : B)));
    for (int j = 0; j < R; j++)
        enc_member(&b, a_rnode[j]);
    for (int k = 0; !auto_join && k < B; k++)
        enc_member(&b, a_bnode[k]);
    hc_enc_nil(&b);
    hc_pid caller = {a_rnode[i], 2, 0, 1};
    int rc = replica_request(i, &caller, RT_CAST, 0, 0, b.data, b.len);
    hc_buf_free(&b);
    return rc;
}

/* ------------------------------------------------------------------ the test's calls */

static int new_dcall(int type, int n)
{
    if (hc_array_reserve((void **)&dcalls, &capdcalls, ndcalls + 1, sizeof *dcalls, 64))
        abort();
    dcalls[ndcalls] = (dcall){type, n};
    return (int)ndcalls++;
}

typedef struct pid_scan {
    hc_pid pid;
    bool found;
} pid_scan;

static int pid_visit(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    pid_scan *s = ud;
    uint64_t id;
    hc_atom node;
    recval rv;
    if (!parse_key(k, kl, &id, &node) && id && !parse_record(v, vl, &rv) && rv.has_member &&
        hc_pid_eq(&rv.pid, &s->pid))
        s->found = true;
    return 0;
}

static void driver_reply(int i, int d, const uint8_t *p, size_t len)
{
    dcall *c = &dcalls[d];
    size_t x = 0;
    uint32_t arity;
    hc_pid pid;
    bool ok =
        !hc_dec_tuple_header(p, len, &x, &arity) && (arity == 2 || arity == 3) && hc_dec_is_atom(p, len, &x, "ok");
    if (c->type == DC_TERMINATE) {
        x = 0;
        if (hc_dec_is_atom(p, len, &x, "ok") && x == len) {
            L[c->n].terminated = true;
            L[c->n].term_rep = i;
            L[c->n].term_serial = Rp[i].sh.pid.serial;
            L[c->n].term_at = net.now;
            T.terminated++;
        }
        return;
    }
    if (!ok) {
        T.refused++;
        if (tracing) {
            char t[96];
            size_t o = 0;
            for (size_t b = 0; b < len && o < sizeof t - 1; b++)
                t[o++] = p[b] >= 32 && p[b] < 127 ? (char)p[b] : '.';
            t[o] = 0;
            TRACE("replica %d: start_child of child %d refused: %s", i, c->n, t);
        }
        return;
    }
    if (hc_dec_pid(p, len, &x, &pid)) {
        simnet_fail(&net, "replica %d: start_child answered {ok, _} without a pid", i);
        return;
    }
    inst *s = inst_of(&pid);
    if (!s) {
        simnet_fail(&net, "replica %d: start_child of child %d answered {ok, %s/%u}, a process never started", i, c->n,
                    hc_atom_name(pid.node), pid.num);
        return;
    }
    if (s->n != c->n) {
        simnet_fail(&net, "replica %d: start_child of child %d answered the pid of child %d", i, c->n, s->n);
        return;
    }
    pid_scan ps = {pid, false};
    hc_supervisor_core_ops.snapshot(core_of(i), pid_visit, &ps);
    if (!ps.found) {
        simnet_fail(&net, "replica %d: start_child of child %d answered {ok, %s/%u} with no record of it", i, c->n,
                    hc_atom_name(pid.node), pid.num);
        return;
    }
    L[c->n].acked = true;
    T.acked++;
    TRACE("replica %d: start_child of child %d answered ok (%s/%u)", i, c->n, hc_atom_name(pid.node), pid.num);
}

static int pick_replica(void)
{
    int up[MAX_R], n = 0;
    for (int i = 0; i < R; i++)
        if (running(i))
            up[n++] = i;
    return n ? up[simnet_below(&net, (uint64_t)n)] : -1;
}

/* The request goes to a random replica from its own node, or through a client's attachment (from the client's
 * node to the replica it is attached to). */
static int driver_call(int dc, const hc_buf *req)
{
    int k = B ? (int)simnet_below(&net, (uint64_t)B) : -1;
    if (k >= 0 && simnet_below(&net, 2) && Cl[k].state == CS_ALIVE && Cl[k].attached >= 0) {
        chan_call(&Cl[k].caller, &Rp[Cl[k].attached].sh.pid, RT_DRIVER, dc, 0, req);
        return 0;
    }
    int i = pick_replica();
    if (i < 0)
        return 0;
    hc_pid caller = {a_rnode[i], 2, 0, 1};
    return replica_request(i, &caller, RT_DRIVER, dc, 0, req->data, req->len);
}

static int driver_start(void)
{
    int kind = !B ? K_C : (R && simnet_below(&net, 2)) ? K_C : K_BEAM;
    unsigned r = (unsigned)simnet_below(&net, 4);
    if (hc_array_reserve((void **)&L, &capL, NL + 1, sizeof *L, 256))
        abort();
    int n = (int)NL++;
    memset(&L[n], 0, sizeof L[n]);
    L[n].kind = kind;
    L[n].restart = r < 2 ? R_PERM : r == 2 ? R_TRANS : R_TEMP;
    L[n].ctype = kind == K_C && simnet_below(&net, 4) == 0;
    L[n].hash = (uint32_t)simnet_rnd(&net);
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "start_child");
    enc_spec(&b, n);
    T.starts++;
    TRACE("start_child of child %d (%s %s)", n, kind == K_C ? "C" : "BEAM", restart_names[L[n].restart]);
    int rc = driver_call(new_dcall(DC_START, n), &b);
    hc_buf_free(&b);
    return rc;
}

static int driver_terminate(void)
{
    if (!NI)
        return 0;
    inst *x = &I[simnet_below(&net, NI)];
    for (int t = 0; t < 4 && !x->alive; t++)
        x = &I[simnet_below(&net, NI)];
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "terminate_child");
    hc_enc_pid(&b, &x->pid);
    if (!L[x->n].excused)
        T.excused_terminate++;
    excuse(x->n, "terminate_child named it");
    T.terminates++;
    TRACE("terminate_child of child %d (%s/%u)", x->n, hc_atom_name(x->pid.node), x->pid.num);
    int rc = driver_call(new_dcall(DC_TERMINATE, x->n), &b);
    hc_buf_free(&b);
    return rc;
}

/* ------------------------------------------------------------------ clients */

static bchild *run_find(client *c, uint64_t id)
{
    for (size_t x = 0; x < c->nrun; x++)
        if (c->run[x].id == id)
            return &c->run[x];
    return NULL;
}

static void run_remove(client *c, bchild *b)
{
    free(b->spec);
    *b = c->run[--c->nrun];
}

static ended *end_find(client *c, uint64_t id)
{
    for (size_t x = 0; x < c->nend; x++)
        if (c->end[x].id == id)
            return &c->end[x];
    return NULL;
}

static void end_put(client *c, uint64_t id, bool relinquish)
{
    ended *e = end_find(c, id);
    if (!e) {
        if (hc_array_reserve((void **)&c->end, &c->capend, c->nend + 1, sizeof *c->end, 16))
            abort();
        e = &c->end[c->nend++];
    }
    *e = (ended){id, relinquish};
}

static void end_del(client *c, uint64_t id)
{
    ended *e = end_find(c, id);
    if (e)
        *e = c->end[--c->nend];
}

static rec *rec_find(rec *t, size_t n, uint64_t id)
{
    for (size_t x = 0; x < n; x++)
        if (t[x].id == id)
            return &t[x];
    return NULL;
}

static void rec_put(rec **t, size_t *n, size_t *cap, const rec *r)
{
    rec *e = rec_find(*t, *n, r->id);
    if (!e) {
        if (hc_array_reserve((void **)t, cap, *n + 1, sizeof **t, 64))
            abort();
        e = &(*t)[(*n)++];
    }
    *e = *r;
}

static void rec_del(rec *t, size_t *n, uint64_t id)
{
    rec *e = rec_find(t, *n, id);
    if (e)
        *e = t[--*n];
}

static bool attached_ok(const client *c) { return c->attached >= 0 && running(c->attached); }

/* A cast to the replica the client is attached to (dropped when it is not: the report waits in `end`). */
static void client_cast(int k, const hc_buf *req)
{
    client *c = &Cl[k];
    if (attached_ok(c))
        chan_call(&c->pid, &Rp[c->attached].sh.pid, RT_CAST, k, 0, req);
}

static void cast_exited(int k, uint64_t id, bool relinquish)
{
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 4);
    hc_enc_atom_cstr(&b, "child_exited");
    hc_enc_pid(&b, &Cl[k].pid);
    hc_enc_ulong(&b, id);
    hc_enc_atom_cstr(&b, relinquish ? "relinquish" : "delete");
    client_cast(k, &b);
    hc_buf_free(&b);
}

static void cast_restarted(int k, uint64_t id, const hc_pid *pid)
{
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 4);
    hc_enc_atom_cstr(&b, "child_restarted");
    hc_enc_pid(&b, &Cl[k].pid);
    hc_enc_ulong(&b, id);
    hc_enc_pid(&b, pid);
    client_cast(k, &b);
    hc_buf_free(&b);
}

/* {started | terminated, Op, Id, Result} to the replica process that asked. */
static void answer(int k, const hc_pid *rpid, const char *tag, uint64_t op, uint64_t id, const hc_buf *result)
{
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 4);
    hc_enc_atom_cstr(&b, tag);
    hc_enc_ulong(&b, op);
    hc_enc_ulong(&b, id);
    hc_buf_append(&b, result->data, result->len);
    chan_call(&Cl[k].pid, rpid, RT_CAST, k, 0, &b);
    hc_buf_free(&b);
}

/* A blocking call: the client waits for its reply (other messages wait in its mailbox). */
static void client_call(int k, int i, int what, const hc_buf *req)
{
    client *c = &Cl[k];
    c->wait = what;
    c->wait_rep = i;
    c->wait_ref = ++next_ref;
    c->wait_deadline = net.now + CALL_TIMEOUT_MS;
    chan_call(&c->pid, &Rp[i].sh.pid, RT_CLIENT, k, c->wait_ref, req);
}

enum { STOP_DUP = 1, STOP_QUORUM, STOP_MOVE, STOP_TERMINATE, STOP_SHUTDOWN };

/* Stops child b of client k (it is down at once). */
static void client_stop_child(int k, bchild *b, int why)
{
    client *c = &Cl[k];
    uint64_t id = b->id;
    inst *x = &I[b->inst];
    bool report = attached_ok(c);
    bool handoff = (why == STOP_MOVE || why == STOP_SHUTDOWN) && report;
    TRACE("client %d stops child %d (id %" PRIu64 ", %s)", k, x->n, id,
          why == STOP_DUP         ? "duplicate"
          : why == STOP_QUORUM    ? "quorum lost"
          : why == STOP_MOVE      ? "move"
          : why == STOP_TERMINATE ? "terminate"
                                  : "shutdown");
    inst_dies(x, handoff ? END_HANDOFF : why == STOP_DUP ? END_NEUTRAL : END_DEATH);
    run_remove(c, b);
    if (why == STOP_DUP)
        T.dups++;
    if (why == STOP_QUORUM) { /* the majority takes it over from its record: if a running replica has one */
        T.quorum_stops++;
        bool known = false;
        for (int j = 0; j < R && !known; j++)
            if (running(j)) {
                state_scan st = {x->n, 0};
                hc_supervisor_core_ops.snapshot(core_of(j), state_visit, &st);
                known = st.state != 0;
            }
        if (!known && !L[x->n].excused) {
            excuse(x->n, "lost with the only member that knew it");
            T.excused_lost++;
        }
    }
    if (why == STOP_MOVE || why == STOP_SHUTDOWN) {
        if (why == STOP_MOVE)
            T.moves++;
        end_put(c, id, true);
        cast_exited(k, id, true);
    }
    if (why == STOP_TERMINATE)
        end_put(c, id, false);
}

static int start_beam(int k, int n, uint64_t id, const uint8_t *spec, size_t spec_len, int restart, bool confirmed,
                      hc_pid *pid)
{
    client *c = &Cl[k];
    unsigned x = (unsigned)simnet_below(&net, 1000);
    if (x < fail_pm + ignore_pm) {
        if (L[n].starts)
            excuse(n, "restart failed"), T.excused_restart++;
        adoption_used(n);
        return x < fail_pm ? -1 : 1;
    }
    *pid = (hc_pid){a_bnode[k], 1000 + (uint32_t)NI, 0, 1};
    if (new_inst(n, true, k, pid))
        return -2;
    if (hc_array_reserve((void **)&c->run, &c->caprun, c->nrun + 1, sizeof *c->run, 16))
        abort();
    c->run[c->nrun++] = (bchild){id, (int)NI - 1, restart, confirmed, net.now, copy_bytes(spec, spec_len), spec_len};
    return 0;
}

/* {'$hordec_sup', start, ReplicaPid, Op, Id, {beam, Restart, Hash, Body}} */
static int client_start_one(int k, const hc_pid *from, uint64_t op, uint64_t id, hc_span spec);

/* {'$hordec_sup', start, ReplicaPid, Op, Id, Spec}, from ReplicaPid on (at i). */
static int client_start_request(int k, const uint8_t *p, size_t len, size_t i)
{
    hc_pid rpid;
    uint64_t op, id;
    hc_span spec;
    if (hc_dec_pid(p, len, &i, &rpid) || hc_dec_ulong(p, len, &i, &op) || hc_dec_ulong(p, len, &i, &id) ||
        hc_dec_term(p, len, &i, &spec) || i != len)
        FAIL("client %d: a malformed start request", k);
    return client_start_one(k, &rpid, op, id, spec);
}

/* {'$hordec_sup', starts, ReplicaPid, [{Op, Id, Spec}]}, from ReplicaPid on (at i): each as a start request. */
static int client_starts_request(int k, const uint8_t *p, size_t len, size_t i)
{
    hc_pid rpid;
    hc_iter it;
    hc_span t;
    if (hc_dec_pid(p, len, &i, &rpid) || hc_iter_list(&it, p, len, &i) || i != len)
        FAIL("client %d: a malformed starts request", k);
    while (hc_iter_next(&it, &t)) {
        size_t j = 0;
        uint32_t arity;
        uint64_t op, id;
        hc_span spec;
        if (hc_dec_tuple_header(t.p, t.len, &j, &arity) || arity != 3 || hc_dec_ulong(t.p, t.len, &j, &op) ||
            hc_dec_ulong(t.p, t.len, &j, &id) || hc_dec_term(t.p, t.len, &j, &spec) || j != t.len)
            FAIL("client %d: a malformed element of a starts request", k);
        int rc = client_start_one(k, &rpid, op, id, spec);
        if (rc)
            return rc;
    }
    return 0;
}

static int client_start_one(int k, const hc_pid *from, uint64_t op, uint64_t id, hc_span spec)
{
    client *c = &Cl[k];
    hc_pid rpid = *from;
    size_t s = 0;
    uint32_t arity;
    size_t restart;
    uint64_t hash;
    hc_span body;
    static const char *const rs[] = {"permanent", "transient", "temporary"};
    if (hc_dec_tuple_header(spec.p, spec.len, &s, &arity) || arity != 4 ||
        !hc_dec_is_atom(spec.p, spec.len, &s, "beam") || hc_dec_atom_index(spec.p, spec.len, &s, rs, 3, &restart) ||
        hc_dec_ulong(spec.p, spec.len, &s, &hash) || hc_dec_term(spec.p, spec.len, &s, &body) || s != spec.len)
        FAIL("client %d: a start request whose spec is not a BEAM child's", k);
    int n = n_of_body(body.p, body.len);
    if (n < 0 || L[n].kind != K_BEAM || L[n].hash != hash || (int)restart != L[n].restart)
        FAIL("client %d: a start request for a spec the test never gave", k);
    hc_buf r = {0};
    bchild *b = run_find(c, id);
    if (b) { /* asked again: it runs already */
        hc_enc_tuple_header(&r, 2);
        hc_enc_atom_cstr(&r, "ok");
        hc_enc_pid(&r, &I[b->inst].pid);
    } else if (c->state != CS_ALIVE) {
        hc_enc_tuple_header(&r, 2);
        hc_enc_atom_cstr(&r, "error");
        hc_enc_tuple_header(&r, 2);
        hc_enc_atom_cstr(&r, "node_dead_or_shutting_down");
        hc_enc_binary(&r, "shutting down", 13);
    } else {
        hc_pid pid;
        end_del(c, id);
        int rc = start_beam(k, n, id, spec.p, spec.len, (int)restart, false, &pid);
        if (rc == -2)
            return -1;
        if (rc == 0) {
            hc_enc_tuple_header(&r, 2);
            hc_enc_atom_cstr(&r, "ok");
            hc_enc_pid(&r, &pid);
        } else if (rc > 0) {
            hc_enc_atom_cstr(&r, "ignore");
        } else {
            hc_enc_tuple_header(&r, 2);
            hc_enc_atom_cstr(&r, "error");
            hc_enc_atom_cstr(&r, "boom");
        }
        TRACE("client %d: start of child %d (id %" PRIu64 ") from %s: %s", k, n, id, hc_atom_name(rpid.node),
              rc == 0  ? "ok"
              : rc > 0 ? "ignore"
                       : "error");
    }
    answer(k, &rpid, "started", op, id, &r);
    hc_buf_free(&r);
    return 0;
}

/* A child of client k exits: restart it by its type, or report it gone. */
static int client_child_exit(int k, int xi, int reason)
{
    client *c = &Cl[k];
    inst *x = &I[xi];
    bchild *b = NULL;
    for (size_t j = 0; j < c->nrun && !b; j++)
        if (c->run[j].inst == xi)
            b = &c->run[j];
    if (!b || !x->alive)
        return 0; /* stopped meanwhile */
    lchild *l = &L[x->n];
    inst_dies(x, END_DEATH);
    bool restart = l->restart == R_PERM || (l->restart == R_TRANS && !exit_clean(reason));
    if (exit_clean(reason) && l->restart == R_TRANS)
        l->clean = true;
    if (!exit_clean(reason))
        l->crashed = true;
    uint64_t id = b->id;
    if (!restart) {
        TRACE("client %d: child %d exits for good", k, x->n);
        run_remove(c, b);
        end_put(c, id, false);
        cast_exited(k, id, false);
        return 0;
    }
    T.b_restarts++;
    uint8_t *spec = b->spec;
    size_t spec_len = b->spec_len;
    int rs = b->restart, n = x->n;
    bool confirmed = b->confirmed;
    b->spec = NULL;
    run_remove(c, b);
    hc_pid pid;
    int rc = start_beam(k, n, id, spec, spec_len, rs, confirmed, &pid);
    free(spec);
    if (rc == -2)
        return -1;
    if (rc) {
        TRACE("client %d: restart of child %d failed: given up", k, n);
        end_put(c, id, false);
        cast_exited(k, id, false);
        return 0;
    }
    cast_restarted(k, id, &pid);
    return 0;
}

/* The mirror: one child's local state against its record changing from old to new (Mirror.reconcile).
 *
 * Four rules of this client go beyond what docs/supervisor.md says and what HordeC.DynamicSupervisor's Mirror and
 * Local do. HORDEC_SIM_PLAIN_CLIENT drops them (a comma-separated list of their names, or `all`), and the
 * simulator then finds each one's failure (seeds in the comments, with every core fix in):
 *   confirm   the duplicate rule (a child whose record moves to another member or is deleted is stopped, only on
 *             such a transition) applies only to a copy whose record the mirror has shown naming this member since
 *             a replica asked for it. Otherwise a copy a replica's start request has just started is stopped when
 *             the mirror's previous value of its record (from before a quorum loss or a failover) named this member
 *             and the fresh snapshot shows it relinquished, waiting for that very start; the replica then records
 *             the stopped pid and nobody restarts the child;
 *   orphan    a record naming this member, for a child it does not run and has nothing to report about, is an
 *             orphan: the client says so (child_exited: relinquish, or delete for a temporary child), as the core
 *             does with such records at attach. Otherwise a terminate_child's delete that a concurrent write of the
 *             same record from another replica undoes (add-wins: the write survives) leaves the record naming this
 *             member with the stopped pid for good, the client having settled its report when it saw the delete;
 *   rereport  a report waiting in `end` is sent again every tick while the mirror shows the record naming this
 *             member. Otherwise, when the replica that got the report (the terminate's `terminated ok`, from a
 *             replica other than the attached one) dies before passing on its delete, nothing changes in the
 *             mirror, nothing triggers the report, and the record names the stopped pid for good;
 *   reassert  a child started at a replica's request whose record the mirror has not shown naming this member a
 *             while (start_timeout + 3 s) later makes the client attach again (Owned re-asserts it). Otherwise a
 *             start the replica failed early (it saw the member dead, across a partition) but that the member
 *             carried out when the message got through runs with no record: the late answer writes it and, the
 *             member being dead in that replica's view, a temporary child's record is deleted at once, and the
 *             mirror never shows a transition for the duplicate rule to act on. */
static bool plain_confirm, plain_orphan, plain_rereport, plain_reassert;

static void plain_rules(void)
{
    const char *v = getenv("HORDEC_SIM_PLAIN_CLIENT");
    bool all = v && (!strcmp(v, "all") || !strcmp(v, "1"));
    plain_confirm = all || (v && strstr(v, "confirm"));
    plain_orphan = all || (v && strstr(v, "orphan"));
    plain_rereport = all || (v && strstr(v, "rereport"));
    plain_reassert = all || (v && strstr(v, "reassert"));
}

static void reconcile(int k, uint64_t id, const rec *old, const rec *nw)
{
    client *c = &Cl[k];
    bchild *b = run_find(c, id);
    if (nw && nw->mine) {
        if (b)
            b->confirmed = true;
        if (b && hc_pid_eq(&I[b->inst].pid, &nw->pid)) {
            end_del(c, id);
            return;
        }
        ended *e = end_find(c, id);
        if (e)
            cast_exited(k, id, e->relinquish);
        else if (b)
            cast_restarted(k, id, &I[b->inst].pid);
        else if (!plain_orphan) {
            TRACE("client %d: child id %" PRIu64 " is recorded here and does not run here: orphan", k, id);
            cast_exited(k, id, !nw->temporary);
        }
        return;
    }
    if (old && old->mine && b && (b->confirmed || plain_confirm)) {
        client_stop_child(k, b, STOP_DUP);
        end_del(c, id);
        return;
    }
    end_del(c, id);
}

static bool rec_of(int k, const uint8_t *v, size_t vl, uint64_t id, rec *out)
{
    recval rv;
    if (parse_record(v, vl, &rv))
        return false;
    *out = (rec){id, rv.has_member && rv.m_name == a_sup && rv.m_node == a_bnode[k], L[rv.n].restart == R_TEMP, rv.pid};
    return true;
}

static int on_mirror_change(void *ud, bool snapshot, const uint8_t *key, size_t klen, const uint8_t *old, size_t olen,
                            const uint8_t *val, size_t vlen)
{
    int k = (int)(uintptr_t)ud;
    client *c = &Cl[k];
    uint64_t id;
    hc_atom node;
    (void)old, (void)olen;
    if (parse_key(key, klen, &id, &node))
        return 0;
    if (!id) { /* a status */
        if (node != a_bnode[k])
            return 0;
        bool alive, dead;
        hc_pid pid;
        if (snapshot) {
            if (!parse_status(val, vlen, &alive, &dead, &pid) && hc_pid_eq(&pid, &c->pid) && !dead)
                c->snap_status_ok = true;
        } else if (!val) {
            TRACE("client %d: its status was removed: attaching again", k);
            c->reattach = true;
        }
        return 0;
    }
    rec r;
    if (snapshot) {
        if (rec_of(k, val, vlen, id, &r))
            rec_put(&c->snap, &c->nsnap, &c->capsnap, &r);
        return 0;
    }
    rec *o = rec_find(c->tab, c->ntab, id);
    rec oc = o ? *o : (rec){0};
    if (val && rec_of(k, val, vlen, id, &r)) {
        reconcile(k, id, o ? &oc : NULL, &r);
        rec_put(&c->tab, &c->ntab, &c->captab, &r);
    } else {
        reconcile(k, id, o ? &oc : NULL, NULL);
        rec_del(c->tab, &c->ntab, id);
    }
    return 0;
}

/* The snapshot is complete: reconcile what runs or ended here against it, then it is the table. */
static void snapshot_done(int k)
{
    client *c = &Cl[k];
    c->collecting = false;
    size_t nids = c->nrun + c->nend + c->nsnap;
    uint64_t *ids = malloc((nids ? nids : 1) * sizeof *ids);
    if (!ids)
        abort();
    size_t m = 0;
    for (size_t x = 0; x < c->nrun; x++)
        ids[m++] = c->run[x].id;
    for (size_t x = 0; x < c->nend; x++)
        if (!run_find(c, c->end[x].id))
            ids[m++] = c->end[x].id;
    for (size_t x = 0; !plain_orphan && x < c->nsnap; x++)
        if (c->snap[x].mine && !run_find(c, c->snap[x].id) && !end_find(c, c->snap[x].id))
            ids[m++] = c->snap[x].id;
    for (size_t x = 0; x < m; x++) {
        rec *o = rec_find(c->tab, c->ntab, ids[x]), *nw = rec_find(c->snap, c->nsnap, ids[x]);
        rec oc = o ? *o : (rec){0}, nc = nw ? *nw : (rec){0};
        reconcile(k, ids[x], o ? &oc : NULL, nw ? &nc : NULL);
    }
    free(ids);
    rec *t = c->tab;
    size_t tc = c->captab;
    c->tab = c->snap;
    c->ntab = c->nsnap;
    c->captab = c->capsnap;
    c->snap = t;
    c->capsnap = tc;
    c->nsnap = 0;
    if (!c->snap_status_ok) {
        TRACE("client %d: the snapshot does not show it attached: attaching again", k);
        c->reattach = true;
    }
}

static int client_subscribe(int k)
{
    client *c = &Cl[k];
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "stream_subscribe");
    hc_enc_pid(&b, &c->pid);
    client_call(k, c->attached, CW_SUBSCRIBE, &b);
    hc_buf_free(&b);
    return 0;
}

static int client_retry(int k, uint64_t ms)
{
    simnet_timer_set(&net, CLIENT_TIMER + k, net.now + ms);
    return 0;
}

/* Attaches to replica i: reports the replica may have missed first, then the attach call with Owned. */
static int client_attach_to(int k, int i)
{
    client *c = &Cl[k];
    c->attached = i; /* casts go there from now on */
    c->reattach = false;
    simmirror_detach(&c->mirror);
    c->collecting = false;
    for (size_t x = 0; x < c->nend; x++)
        cast_exited(k, c->end[x].id, c->end[x].relinquish);
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 4);
    hc_enc_atom_cstr(&b, "attach");
    hc_enc_pid(&b, &c->pid);
    hc_enc_map_header(&b, 5);
    hc_enc_atom_cstr(&b, "auto");
    hc_enc_bool(&b, auto_join);
    hc_enc_atom_cstr(&b, "distribution");
    hc_enc_atom_cstr(&b, opts.distribution == HC_SUP_QUORUM ? "quorum" : "uniform");
    hc_enc_atom_cstr(&b, "redistribution");
    hc_enc_atom_cstr(&b, opts.active_redistribution ? "active" : "passive");
    hc_enc_atom_cstr(&b, "max_restarts");
    hc_enc_ulong(&b, opts.max_restarts);
    hc_enc_atom_cstr(&b, "max_seconds");
    hc_enc_ulong(&b, opts.max_seconds);
    if (c->nrun)
        hc_enc_list_header(&b, (uint32_t)c->nrun);
    for (size_t x = 0; x < c->nrun; x++) {
        bchild *r = &c->run[x];
        size_t s = 0;
        uint32_t arity;
        hc_dec_tuple_header(r->spec, r->spec_len, &s, &arity);
        hc_enc_tuple_header(&b, 6);
        hc_enc_ulong(&b, r->id);
        hc_buf_append(&b, r->spec + s, r->spec_len - s);
        hc_enc_pid(&b, &I[r->inst].pid);
    }
    hc_enc_nil(&b);
    TRACE("client %d attaches to replica %d (%zu owned)", k, i, c->nrun);
    client_call(k, i, CW_ATTACH, &b);
    hc_buf_free(&b);
    return 0;
}

static int client_attach(int k)
{
    client *c = &Cl[k];
    int i = -1;
    for (int j = 0; j < R && i < 0; j++)
        if (running(c->order[j]) && !Rp[c->order[j]].stopping && simnet_reachable(&net, c->node, Rp[c->order[j]].node))
            i = c->order[j];
    if (i < 0)
        return 0; /* the tick tries again */
    if (!simnet_connected(&net, c->node, Rp[i].node)) {
        simnet_connect(&net, c->node, Rp[i].node);
        return client_retry(k, 5);
    }
    T.attaches++;
    T.failovers += c->ever_attached;
    return client_attach_to(k, i);
}

static int client_drain(int k);
static int client_gone(int k);
static int client_stop_all(int k, int why);

/* The blocking call ended: with its reply, or without (reply NULL: timeout or nodedown). */
static int client_call_done(int k, const uint8_t *p, size_t len)
{
    client *c = &Cl[k];
    int what = c->wait;
    c->wait = CW_NONE;
    size_t x = 0;
    uint32_t arity;
    switch (what) {
    case CW_ATTACH:
        if (p && !hc_dec_tuple_header(p, len, &x, &arity) && arity == 2 && hc_dec_is_atom(p, len, &x, "ok")) {
            c->ever_attached = true;
            client_subscribe(k);
        } else {
            TRACE("client %d: attach to replica %d failed", k, c->attached);
            c->attached = -1;
            client_retry(k, 20);
        }
        break;
    case CW_SUBSCRIBE:
        if (p && !simmirror_subscribed(&c->mirror, p, len)) {
            c->collecting = true;
            c->nsnap = 0;
            c->snap_status_ok = false;
        } else {
            c->attached = -1;
            client_retry(k, 20);
        }
        break;
    case CW_SET_STATUS:
        if (client_stop_all(k, STOP_SHUTDOWN))
            return -1;
        if (attached_ok(c)) {
            hc_buf b = {0};
            hc_enc_tuple_header(&b, 2);
            hc_enc_atom_cstr(&b, "detach");
            hc_enc_pid(&b, &c->pid);
            client_call(k, c->attached, CW_DETACH, &b);
            hc_buf_free(&b);
            return 0;
        }
        return client_gone(k);
    case CW_DETACH: return client_gone(k);
    default: break;
    }
    return client_drain(k);
}

/* The client's replica went away (nodedown, or a call that cannot be answered): fail over. */
static int client_lost_replica(int k)
{
    client *c = &Cl[k];
    TRACE("client %d loses replica %d", k, c->attached);
    if (c->state == CS_STOPPING) {
        c->attached = -1;
        c->wait = CW_NONE;
        if (client_stop_all(k, STOP_SHUTDOWN))
            return -1;
        return client_gone(k);
    }
    c->attached = -1;
    simmirror_detach(&c->mirror);
    c->collecting = false;
    if (c->wait) {
        c->wait = CW_NONE;
        if (client_drain(k))
            return -1;
    }
    return client_retry(k, 1 + simnet_below(&net, 20));
}

static int client_handle(int k, dmsg *m);

/* What waited in the mailbox during a blocking call. */
static int client_drain(int k)
{
    client *c = &Cl[k];
    while (c->ninbox && !c->wait && c->state != CS_GONE) {
        dmsg m = c->inbox[0];
        memmove(&c->inbox[0], &c->inbox[1], (c->ninbox - 1) * sizeof *c->inbox);
        c->ninbox--;
        int rc = client_handle(k, &m);
        free(m.data);
        if (rc)
            return -1;
    }
    return 0;
}

static int client_stream(int k, const dmsg *m)
{
    client *c = &Cl[k];
    if (!attached_ok(c) || !hc_pid_eq(&m->from, &Rp[c->attached].sh.pid))
        return 0; /* a replica it left */
    char why[256];
    if (simmirror_receive(&c->mirror, m->data, m->len, why, sizeof why))
        FAIL("client %d: the change stream of replica %d broke its protocol: %s", k, c->attached, why);
    if (c->collecting && c->mirror.epoch && !c->mirror.snapshotting && !c->mirror.doubt)
        snapshot_done(k);
    if (c->mirror.doubt && !c->wait) {
        TRACE("client %d: doubts its mirror: resubscribing", k);
        return client_subscribe(k);
    }
    return 0;
}

/* A message taken from the mailbox. */
static int client_handle(int k, dmsg *m)
{
    client *c = &Cl[k];
    if (c->state == CS_GONE)
        return 0;
    if (m->kind == DM_EXIT)
        return c->state == CS_ALIVE ? client_child_exit(k, m->inst, m->reason) : 0;
    if (m->kind == DM_REPLY)
        return 0; /* the reply to a cast, or to a call given up */
    const uint8_t *p = m->data;
    size_t len = m->len, i = 0;
    uint32_t arity;
    if (hc_dec_tuple_header(p, len, &i, &arity))
        FAIL("client %d: a message that is not a tuple", k);
    size_t at = i;
    if (hc_dec_is_atom(p, len, &i, "hordec_stream"))
        return c->state == CS_ALIVE ? client_stream(k, m) : 0;
    i = at;
    if (!hc_dec_is_atom(p, len, &i, "$hordec_sup"))
        FAIL("client %d: an unexpected message", k);
    if (c->state != CS_ALIVE) /* in its terminate: nothing else is handled */
        return 0;
    at = i;
    if (arity == 6 && hc_dec_is_atom(p, len, &i, "start"))
        return client_start_request(k, p, len, i);
    i = at;
    if (arity == 4 && hc_dec_is_atom(p, len, &i, "starts"))
        return client_starts_request(k, p, len, i);
    i = at;
    if (arity == 5 && hc_dec_is_atom(p, len, &i, "terminate")) {
        hc_pid rpid;
        uint64_t op, id;
        if (hc_dec_pid(p, len, &i, &rpid) || hc_dec_ulong(p, len, &i, &op) || hc_dec_ulong(p, len, &i, &id) || i != len)
            FAIL("client %d: a malformed terminate", k);
        bchild *b = run_find(c, id);
        hc_buf r = {0};
        if (b) {
            client_stop_child(k, b, STOP_TERMINATE);
            hc_enc_atom_cstr(&r, "ok");
        } else {
            hc_enc_tuple_header(&r, 2);
            hc_enc_atom_cstr(&r, "error");
            hc_enc_atom_cstr(&r, "not_found");
        }
        answer(k, &rpid, "terminated", op, id, &r);
        hc_buf_free(&r);
        return 0;
    }
    i = at;
    if (arity == 3 && hc_dec_is_atom(p, len, &i, "move")) {
        uint64_t id;
        if (hc_dec_ulong(p, len, &i, &id) || i != len)
            FAIL("client %d: a malformed move", k);
        bchild *b = run_find(c, id);
        if (b)
            client_stop_child(k, b, STOP_MOVE);
        return 0;
    }
    i = at;
    if (arity == 2 && hc_dec_is_atom(p, len, &i, "quorum_lost"))
        return client_stop_all(k, STOP_QUORUM);
    i = at;
    if (arity == 2 && hc_dec_is_atom(p, len, &i, "reattach")) {
        if (attached_ok(c) && hc_pid_eq(&m->from, &Rp[c->attached].sh.pid))
            c->reattach = true;
        return 0;
    }
    FAIL("client %d: an unknown $hordec_sup message", k);
}

static int client_after(int k)
{
    client *c = &Cl[k];
    if (c->state == CS_ALIVE && !c->wait && c->reattach && attached_ok(c))
        return client_attach_to(k, c->attached);
    return net.failed ? -1 : 0;
}

static int client_deliver(int k, dmsg *m)
{
    client *c = &Cl[k];
    if (c->state == CS_GONE)
        return 0;
    if (c->wait && m->kind == DM_REPLY && m->ref == c->wait_ref) {
        if (client_call_done(k, m->data, m->len))
            return -1;
        return client_after(k);
    }
    if (c->wait) {
        if (hc_array_reserve((void **)&c->inbox, &c->capinbox, c->ninbox + 1, sizeof *c->inbox, 16))
            abort();
        dmsg copy = *m;
        copy.data = copy_bytes(m->data, m->len);
        c->inbox[c->ninbox++] = copy;
        return 0;
    }
    if (client_handle(k, m))
        return -1;
    return client_after(k);
}

static int client_stop_all(int k, int why)
{
    client *c = &Cl[k];
    if (why == STOP_SHUTDOWN && !attached_ok(c))
        excuse_lost(-1, k); /* it hands its children to nobody: only their records can */
    while (c->nrun)
        client_stop_child(k, &c->run[c->nrun - 1], why);
    return net.failed ? -1 : 0;
}

/* The BEAM node goes for good (its client and children with it). */
static int client_gone(int k)
{
    client *c = &Cl[k];
    if (c->state == CS_GONE)
        return 0;
    excuse_lost(-1, k);
    TRACE("client %d: its node goes down for good", k);
    for (size_t x = 0; x < c->nrun; x++)
        inst_dies(&I[c->run[x].inst], END_DEATH);
    while (c->nrun)
        run_remove(c, &c->run[c->nrun - 1]);
    for (size_t x = 0; x < c->ninbox; x++)
        free(c->inbox[x].data);
    c->ninbox = 0;
    c->state = CS_GONE;
    c->attached = -1;
    c->wait = CW_NONE;
    simmirror_detach(&c->mirror);
    simnet_timer_set(&net, CLIENT_TIMER + k, HC_NO_DEADLINE);
    simnet_crash(&net, c->node);
    return net.failed ? -1 : 0;
}

/* stop/3 or :init.stop(): set_status shutting_down, stop and relinquish every child, detach, then the node goes. */
static int client_graceful(int k)
{
    client *c = &Cl[k];
    if (c->state != CS_ALIVE || c->wait)
        return 0;
    T.client_stops++;
    excuse_lost(-1, k); /* what it relinquishes needs a record somewhere to be adopted */
    c->state = CS_STOPPING;
    TRACE("client %d: graceful stop", k);
    if (!attached_ok(c)) {
        if (client_stop_all(k, STOP_SHUTDOWN))
            return -1;
        return client_gone(k);
    }
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 3);
    hc_enc_atom_cstr(&b, "set_status");
    hc_enc_pid(&b, &c->pid);
    hc_enc_atom_cstr(&b, "shutting_down");
    client_call(k, c->attached, CW_SET_STATUS, &b);
    hc_buf_free(&b);
    return 0;
}

static int client_tick(int k)
{
    client *c = &Cl[k];
    if (c->state == CS_GONE)
        return 0;
    client_retry(k, CLIENT_TICK_MS);
    if (c->wait && net.now >= c->wait_deadline) {
        TRACE("client %d: call to replica %d timed out", k, c->wait_rep);
        if (c->state == CS_STOPPING)
            return client_call_done(k, NULL, 0);
        return client_lost_replica(k);
    }
    if (c->state != CS_ALIVE || c->wait)
        return 0;
    if (c->attached >= 0 && (!running(c->attached) || !linked(c->node, Rp[c->attached].node)))
        return client_lost_replica(k);
    if (c->attached < 0)
        return client_attach(k);
    if (c->reattach)
        return client_attach_to(k, c->attached);
    if (c->mirror.doubt)
        return client_subscribe(k);
    for (size_t x = 0; !plain_reassert && simmirror_synced(&c->mirror) && x < c->nrun; x++)
        if (!c->run[x].confirmed && net.now - c->run[x].started_at > start_timeout_ms + 3000u) {
            TRACE("client %d: child id %" PRIu64 " still unrecorded here: attaching again", k, c->run[x].id);
            return client_attach_to(k, c->attached);
        }
    for (size_t x = 0; !plain_rereport && simmirror_synced(&c->mirror) && x < c->nend; x++) {
        rec *r = rec_find(c->tab, c->ntab, c->end[x].id);
        if (r && r->mine)
            cast_exited(k, c->end[x].id, c->end[x].relinquish);
    }
    return 0;
}

/* ------------------------------------------------------------------ the world's events */

static int deliver_dmsg(dmsg *m)
{
    if (m->kind == DM_CALL) {
        int i = rep_of_node(m->to_node);
        if (i < 0 || !running(i) || !hc_pid_eq(&Rp[i].sh.pid, &m->to)) {
            T.chan_lost++; /* to a replica process that is gone */
            return 0;
        }
        return replica_request(i, &m->from, m->rtype, m->who, m->ref, m->data, m->len);
    }
    int k = client_of_node(m->to_node);
    if (k < 0 || !hc_pid_eq(&Cl[k].pid, &m->to))
        return 0; /* to a caller: its replies were taken when the replica answered */
    return client_deliver(k, m);
}

static int on_deliver(void *ud, const simnet_msg *m)
{
    (void)ud;
    int i = rep_of_node(m->to_node);
    if (!m->to_name || i < 0 || m->to_name != a_sup || !running(i))
        return 0;
    size_t x = 0;
    uint32_t arity;
    peer_start_n = -1;
    if (!hc_dec_tuple_header(m->data, m->len, &x, &arity) && arity == 3 &&
        hc_dec_is_atom(m->data, m->len, &x, "$hordec_replica") && !hc_dec_skip(m->data, m->len, &x))
        peer_start_n = n_of_sup_start(m->data + x, m->len - x);
    int rc = simhost_deliver(&Rp[i].sh, m);
    peer_start_n = -1;
    if (rc)
        return -1;
    return after(i);
}

/* Monitors need connections: every SWEEP_MS, a monitor on a process of a node its replica is neither connected
 * nor dialling to fires noconnection. Replicas stopping gracefully go once flushed (or after 3 s). */
static int sweep(void)
{
    for (int i = 0; i < R; i++) {
        rep *r = &Rp[i];
        if (!running(i))
            continue;
        if (r->stopping && (hc_supervisor_core_flushed(core_of(i)) || net.now >= r->stop_deadline)) {
            if (replica_crash(i))
                return -1;
            continue;
        }
        for (size_t m = 0; m < r->sh.nmons; m++) {
            int pn = simnet_node_of(&net, r->sh.mons[m].pid.node);
            if (pn != r->node && !linked(r->node, pn))
                queue_down(i, r->sh.mons[m].id, &r->sh.mons[m].pid, true);
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
        if (simhost_tick(&Rp[id].sh))
            return -1;
        return after(id);
    }
    if (id == CHAN_TIMER)
        return chan_run();
    if (id == SWEEP_TIMER)
        return sweep();
    int k = id - CLIENT_TIMER;
    if (client_tick(k))
        return -1;
    return client_after(k);
}

static int on_node_event(void *ud, int at, int about, bool up)
{
    (void)ud;
    TRACE("node %d sees node %d %s", at, about, up ? "up" : "down");
    if (!up) { /* that connection is gone: what was on it too */
        epoch_of[at][about]++;
        epoch_of[about][at]++;
    }
    int i = rep_of_node(at);
    if (i >= 0 && running(i)) {
        rep *r = &Rp[i];
        if (!up)
            for (size_t m = 0; m < r->sh.nmons; m++)
                if (r->sh.mons[m].pid.node == net.nodes[about].atom)
                    queue_down(i, r->sh.mons[m].id, &r->sh.mons[m].pid, true);
        if (simhost_node_event(&r->sh, about, up))
            return -1;
        return after(i);
    }
    int k = client_of_node(at);
    if (k < 0 || up || Cl[k].state == CS_GONE)
        return 0;
    client *c = &Cl[k];
    bool lost = c->attached >= 0 && Rp[c->attached].node == about;
    if (c->wait && Rp[c->wait_rep].node == about)
        lost = true;
    if (!lost)
        return 0;
    if (c->state == CS_STOPPING && c->wait)
        return client_call_done(k, NULL, 0);
    if (client_lost_replica(k))
        return -1;
    return client_after(k);
}

/* ------------------------------------------------------------------ chaos */

/* A random live copy of a child: a C worker (crash_c) or a BEAM child of an alive client. */
static int pick_inst(bool beam)
{
    if (!NI)
        return -1;
    for (int t = 0; t < 12; t++) { /* recent copies half the time: most old ones are dead */
        size_t x = simnet_below(&net, 2) ? NI - 1 - simnet_below(&net, NI < 64 ? NI : 64) : simnet_below(&net, NI);
        if (I[x].alive && I[x].beam == beam && (!beam || Cl[I[x].where].state == CS_ALIVE))
            return (int)x;
    }
    return -1;
}

static int pick_reason(void)
{
    unsigned r = (unsigned)simnet_below(&net, 10);
    return r < 6 ? EXIT_CRASH : r < 8 ? EXIT_NORMAL : r < 9 ? EXIT_SHUTDOWN : EXIT_SHUTDOWN_TUPLE;
}

static int crash_child(bool beam)
{
    int x = pick_inst(beam);
    if (x < 0)
        return 0;
    int reason = pick_reason();
    inst *s = &I[x];
    lchild *l = &L[s->n];
    TRACE("child %d's copy %s/%u exits (%s)", s->n, hc_atom_name(s->pid.node), s->pid.num,
          reason == EXIT_CRASH ? "crash" : "clean");
    if (!beam) {
        T.c_crashes++;
        if (l->restart == R_TRANS && exit_clean(reason))
            l->clean = true;
        if (l->restart == R_PERM || (l->restart == R_TRANS && !exit_clean(reason)))
            l->crashed = true;
        hc_buf b = {0};
        enc_reason(&b, reason);
        int i = s->where;
        hc_pid pid = s->pid; /* I moves when the restart adds a copy */
        int rc = simhost_worker_exit(&Rp[i].sh, &pid, b.data, b.len);
        hc_buf_free(&b);
        return rc < 0 ? -1 : after(i);
    }
    T.b_crashes++;
    int k = s->where;
    dmsg m = {.kind = DM_EXIT, .inst = x, .reason = reason};
    return client_deliver(k, &m);
}

static int partition(void)
{
    int group[SIMNET_MAX_NODES] = {0};
    if (simnet_below(&net, 3)) {
        for (int j = 0; j < net.n_nodes; j++)
            group[j] = (int)simnet_below(&net, 2);
        T.partitions++;
    }
    simnet_partition(&net, group);
    if (tracing) {
        char g[SIMNET_MAX_NODES + 1] = "";
        for (int j = 0; j < net.n_nodes; j++)
            g[j] = (char)('0' + group[j]);
        TRACE("partition %s", g);
    }
    return 0;
}

static int alive_clients(void)
{
    int n = 0;
    for (int k = 0; k < B; k++)
        n += Cl[k].state == CS_ALIVE;
    return n;
}

/* Does replica j list every member set_members listed? (Membership is set once: a crash must leave it
 * somewhere.) */
typedef struct member_scan {
    int n;
} member_scan;

static int member_visit(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    member_scan *s = ud;
    size_t x = 0;
    uint32_t arity;
    hc_atom name, node;
    if (!hc_dec_tuple_header(k, kl, &x, &arity) && arity == 2 && hc_dec_is_atom(k, kl, &x, "member") &&
        !hc_dec_tuple_header(k, kl, &x, &arity) && arity == 2 && !hc_dec_atom(k, kl, &x, &name) &&
        !hc_dec_atom(k, kl, &x, &node) && name == a_sup && simnet_node_of(&net, node) >= 0 &&
        (rep_of_node(simnet_node_of(&net, node)) >= 0 || !auto_join))
        s->n++;
    (void)v, (void)vl;
    return 0;
}

static bool knows_membership(int j)
{
    member_scan s = {0};
    if (!running(j) || Rp[j].stopping)
        return false;
    hc_supervisor_core_ops.snapshot(core_of(j), member_visit, &s);
    return s.n == R + (auto_join ? 0 : B); /* every member set_members listed */
}

/* Replica i may go down: another replica runs and knows the whole membership. */
static bool may_go(int i)
{
    for (int j = 0; j < R; j++)
        if (j != i && knows_membership(j))
            return true;
    return false;
}

static int chaos_step(void)
{
    unsigned a = (unsigned)simnet_below(&net, 1000);
    if (a < 300)
        return driver_start();
    if (a < 360)
        return driver_terminate();
    if (a < 470)
        return crash_child(false);
    if (a < 580)
        return crash_child(true);
    if (a < 595) { /* a hordec node crashes, or comes back */
        int i = (int)simnet_below(&net, (uint64_t)R);
        if (running(i))
            return may_go(i) ? replica_crash(i) : 0;
        return replica_restart(i);
    }
    if (a < 600) { /* a hordec node stops gracefully */
        int i = (int)simnet_below(&net, (uint64_t)R);
        return may_go(i) ? replica_graceful(i) : 0;
    }
    if (B && a < 603) { /* a BEAM node dies for good (one stays) */
        int k = (int)simnet_below(&net, (uint64_t)B);
        if (alive_clients() < 2 || Cl[k].state != CS_ALIVE)
            return 0;
        T.client_deaths++;
        return client_gone(k);
    }
    if (B && a < 606) { /* a BEAM member stops gracefully (one stays) */
        int k = (int)simnet_below(&net, (uint64_t)B);
        return alive_clients() > 1 ? client_graceful(k) : 0;
    }
    if (a < 636)
        return partition();
    if (a < 651) { /* a connection flaps */
        int i = (int)simnet_below(&net, (uint64_t)R), j = (int)simnet_below(&net, (uint64_t)net.n_nodes);
        return i != j && simnet_connected(&net, Rp[i].node, j) ? simnet_disconnect(&net, Rp[i].node, j) : 0;
    }
    if (a < 700)
        return check_core((int)simnet_below(&net, (uint64_t)R));
    return 0;
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
    e->k = copy_bytes(k, kl);
    e->v = copy_bytes(v, vl);
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

static void take_snapshot(int i, snap *s)
{
    memset(s, 0, sizeof *s);
    hc_supervisor_core_ops.snapshot(core_of(i), snap_visit, s);
    qsort(s->e, s->n, sizeof *s->e, cmp_entry);
}

static bool client_quiet(const client *c)
{
    return c->state == CS_GONE || (c->state == CS_ALIVE && attached_ok(c) && !c->wait && !c->reattach &&
                                   !c->collecting && simmirror_synced(&c->mirror));
}

static bool quiet(void)
{
    for (int i = 0; i < R; i++)
        if (!running(i) || Rp[i].stopping || !hc_crdt_idle(hc_supervisor_core_engine(core_of(i))) ||
            !hc_supervisor_core_settled(core_of(i)))
            return false;
    for (int k = 0; k < B; k++)
        if (!client_quiet(&Cl[k]))
            return false;
    return !ndowns && chan_empty();
}

static int settle(uint64_t max_ms)
{
    uint64_t end = net.now + max_ms, quiet_since = 0;
    uint64_t window = 2 * (uint64_t)base_cfg.digest_interval_ms + 6000;
    if (window < start_timeout_ms + 1000)
        window = start_timeout_ms + 1000;
    while (net.now < end) {
        if (simnet_run_until(&net, net.now + 20))
            return -1;
        if (!quiet()) {
            quiet_since = 0;
            continue;
        }
        if (!quiet_since)
            quiet_since = net.now;
        if (net.now - quiet_since >= window)
            return 0;
    }
    char why[400] = "";
    size_t o = 0;
    for (int i = 0; i < R && o < sizeof why - 60; i++)
        if (!running(i) || Rp[i].stopping || !hc_crdt_idle(hc_supervisor_core_engine(core_of(i))) ||
            !hc_supervisor_core_settled(core_of(i)))
            o += (size_t)snprintf(why + o, sizeof why - o, " replica %d busy;", i);
    for (int k = 0; k < B && o < sizeof why - 60; k++)
        if (!client_quiet(&Cl[k]))
            o += (size_t)snprintf(why + o, sizeof why - o, " client %d not settled (attached %d wait %d);", k,
                                  Cl[k].attached, Cl[k].wait);
    if (getenv("HORDEC_SIM_DUMP")) {
        for (int i = 0; i < R; i++)
            fprintf(stderr, "replica %d: timer %" PRIu64 " (now %" PRIu64 "), alive %d, conns:", i,
                    (uint64_t)net.timers[i], net.now, net.nodes[Rp[i].node].alive);
        for (int a = 0; a < net.n_nodes; a++) {
            fprintf(stderr, "\nnode %d:", a);
            for (int b = 0; b < net.n_nodes; b++)
                fprintf(stderr, " %d%d", net.conn[a][b], net.dialing[a][b]);
        }
        fprintf(stderr, "\n");
    }
    FAIL("the cluster did not go quiet within %" PRIu64 " ms (%zu in flight;%s%s)", max_ms, simnet_in_flight(&net), why,
         chan_empty() ? "" : " client traffic pending");
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
        fprintf(stderr, "replica %d (serial %u, idle %d): %zu entries\n", i, Rp[i].sh.pid.serial,
                hc_crdt_idle(hc_supervisor_core_engine(core_of(i))), s.n);
        for (size_t e = 0; e < s.n; e++) {
            uint64_t id;
            hc_atom node;
            recval rv;
            if (!parse_key(s.e[e].k, s.e[e].kl, &id, &node) && id && !parse_record(s.e[e].v, s.e[e].vl, &rv))
                fprintf(stderr, "   child %d id %" PRIu64 " -> %s %s/%u\n", rv.n, id,
                        rv.has_member ? hc_atom_name(rv.m_node) : "nil", rv.has_member ? hc_atom_name(rv.pid.node) : "",
                        rv.pid.num);
            else if (parse_key(s.e[e].k, s.e[e].kl, &id, &node)) {
                size_t x = 0;
                uint32_t arity;
                hc_atom name, mnode;
                if (!hc_dec_tuple_header(s.e[e].k, s.e[e].kl, &x, &arity) &&
                    hc_dec_is_atom(s.e[e].k, s.e[e].kl, &x, "member") &&
                    !hc_dec_tuple_header(s.e[e].k, s.e[e].kl, &x, &arity) &&
                    !hc_dec_atom(s.e[e].k, s.e[e].kl, &x, &name) && !hc_dec_atom(s.e[e].k, s.e[e].kl, &x, &mnode))
                    fprintf(stderr, "   member %s\n", hc_atom_name(mnode));
            } else if (node) {
                bool alive, dead;
                hc_pid pid;
                parse_status(s.e[e].v, s.e[e].vl, &alive, &dead, &pid);
                fprintf(stderr, "   status %s: %s %s/%u/%u\n", hc_atom_name(node),
                        alive  ? "alive"
                        : dead ? "dead"
                               : "shutting_down",
                        hc_atom_name(pid.node), pid.num, pid.serial);
            }
        }
        snap_free(&s);
        for (size_t w = 0; w < Rp[i].sh.nworkers; w++) {
            inst *x = inst_of(&Rp[i].sh.workers[w].pid);
            fprintf(stderr, "   runs worker %u (child %d)\n", Rp[i].sh.workers[w].pid.num, x ? x->n : -1);
        }
    }
    for (int k = 0; k < B; k++) {
        fprintf(stderr, "client %d: state %d attached %d, runs", k, Cl[k].state, Cl[k].attached);
        for (size_t x = 0; x < Cl[k].nrun; x++)
            fprintf(stderr, " %d(%u)", I[Cl[k].run[x].inst].n, I[Cl[k].run[x].inst].pid.num);
        fprintf(stderr, "\n");
    }
}

static int walk_core(const void *src, hc_core_visit_fn fn, void *ud)
{
    return hc_supervisor_core_ops.snapshot(src, fn, ud);
}

/* Is member node m alive in the map (its status alive, and it really is)? */
static bool member_alive(const snap *s, hc_atom node, bool *known)
{
    hc_buf k = {0};
    hc_enc_tuple_header(&k, 2);
    hc_enc_atom_cstr(&k, "status");
    enc_member(&k, node);
    *known = false;
    bool alive = false;
    for (size_t e = 0; e < s->n; e++)
        if (s->e[e].kl == k.len && !memcmp(s->e[e].k, k.data, k.len)) {
            bool dead;
            hc_pid pid;
            *known = true;
            alive = !parse_status(s->e[e].v, s->e[e].vl, &alive, &dead, &pid) && alive && pid_alive(&pid);
        }
    hc_buf_free(&k);
    return alive;
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
    for (int k = 0; k < B && !rc; k++) {
        char why[256];
        if (Cl[k].state == CS_ALIVE &&
            simmirror_compare(&Cl[k].mirror, walk_core, core_of(Cl[k].attached), why, sizeof why))
            rc = simnet_fail(&net, "client %d's mirror is not its replica's map: %s", k, why);
    }
    /* every member that lives is listed (set once, or joined by attaching) */
    for (int m = 0; m < R + B && !rc; m++) {
        if (m >= R && Cl[m - R].state != CS_ALIVE)
            continue;
        hc_buf k = {0};
        hc_enc_tuple_header(&k, 2);
        hc_enc_atom_cstr(&k, "member");
        enc_member(&k, m < R ? a_rnode[m] : a_bnode[m - R]);
        bool listed = false;
        for (size_t e = 0; e < s0.n && !listed; e++)
            listed = s0.e[e].kl == k.len && !memcmp(s0.e[e].k, k.data, k.len);
        hc_buf_free(&k);
        if (!listed)
            rc = simnet_fail(&net, "%s %d is alive and not a listed member", m < R ? "replica" : "client",
                             m < R ? m : m - R);
    }
    /* the records against what runs */
    int *rec_count = calloc(NL ? NL : 1, sizeof *rec_count);
    uint8_t *shown = calloc(NI ? NI : 1, 1);
    if (!rec_count || !shown)
        abort();
    bool beam_member = alive_clients() > 0;
    for (size_t e = 0; e < s0.n && !rc; e++) {
        uint64_t id;
        hc_atom node;
        recval v;
        if (parse_key(s0.e[e].k, s0.e[e].kl, &id, &node) || !id)
            continue;
        if (parse_record(s0.e[e].v, s0.e[e].vl, &v)) {
            rc = simnet_fail(&net, "child record %" PRIu64 " of an unexpected shape", id);
            break;
        }
        lchild *l = &L[v.n];
        if (++rec_count[v.n] > 1) {
            rc = simnet_fail(&net, "child %d has two records", v.n);
            break;
        }
        bool known = false;
        bool alive = v.has_member && v.m_name == a_sup && member_alive(&s0, v.m_node, &known);
        if (!alive) {
            if (l->kind == K_BEAM && !beam_member) {
                T.waiting++;
                continue;
            }
            rc = simnet_fail(&net,
                             "child %d (%s %s, id %" PRIu64 ") is recorded %s%s, and members that can run it are "
                             "alive",
                             v.n, l->kind == K_C ? "C" : "BEAM", restart_names[l->restart], id,
                             v.has_member ? "on dead member " : "relinquished",
                             v.has_member ? hc_atom_name(v.m_node) : "");
            break;
        }
        inst *x = inst_of(&v.pid);
        int pn = simnet_node_of(&net, v.m_node);
        if (!x || !x->alive || x->n != v.n || simnet_node_of(&net, x->pid.node) != pn) {
            rc = simnet_fail(&net, "child %d (%s %s, id %" PRIu64 ") is recorded on %s as %s/%u, which %s", v.n,
                             l->kind == K_C ? "C" : "BEAM", restart_names[l->restart], id, hc_atom_name(v.m_node),
                             hc_atom_name(v.pid.node), v.pid.num,
                             !x            ? "never ran"
                             : !x->alive   ? "is dead"
                             : x->n != v.n ? "is another child"
                                           : "runs elsewhere");
            break;
        }
        if (x->beam) {
            bchild *b = run_find(&Cl[x->where], id);
            if (!b || b->inst != (int)(x - I)) {
                rc = simnet_fail(&net,
                                 "child %d (id %" PRIu64 ") is recorded on client %d, which runs it under "
                                 "another id",
                                 v.n, id, x->where);
                break;
            }
        }
        shown[x - I] = 1;
    }
    /* nothing runs without its record */
    for (size_t x = 0; x < NI && !rc; x++)
        if (I[x].alive && !shown[x])
            rc = simnet_fail(&net, "child %d (%s %s) runs as %s/%u with no record of it", I[x].n,
                             I[x].beam ? "BEAM" : "C", restart_names[L[I[x].n].restart], hc_atom_name(I[x].pid.node),
                             I[x].pid.num);
    /* a terminate answered ok holds: the replica that answered remembers the child (for SUP_ENDED_MS) and
     * terminates a copy a concurrent write brings back — unless it crashed since (its delete may not have left) */
    for (size_t n = 0; n < NL && !rc; n++) {
        lchild *l = &L[n];
        if (!l->terminated || !running(l->term_rep) || Rp[l->term_rep].sh.pid.serial != l->term_serial ||
            net.now - l->term_at >= SUP_ENDED_MS)
            continue;
        if (rec_count[n] || l->alive)
            rc = simnet_fail(&net, "child %zu runs again after replica %d answered its terminate_child ok", n,
                             l->term_rep);
    }
    /* nothing lost */
    for (size_t n = 0; n < NL && !rc; n++) {
        lchild *l = &L[n];
        if (!l->acked || l->excused || l->restart == R_TEMP || (l->restart == R_TRANS && l->clean) || rec_count[n] ||
            (l->kind == K_BEAM && !beam_member))
            continue;
        if (low_intensity && l->crashed && l->kind == K_C) { /* clients here restart without a limit */
            T.excused_intensity++;
            continue;
        }
        rc = simnet_fail(&net, "%s %s child %zu was acknowledged and is gone (%d starts)",
                         l->kind == K_C ? "C" : "BEAM", restart_names[l->restart], n, l->starts);
    }
    /* every request answered, by every replica still running that got it */
    for (size_t t = 0; t < nroutes && !rc; t++) {
        route *r = &routes[t];
        if (r->replies != 1 && running(r->rep) && Rp[r->rep].sh.pid.serial == r->serial)
            rc = simnet_fail(&net, "replica %d never answered request %zu", r->rep, t);
    }
    free(rec_count);
    free(shown);
    snap_free(&s0);
    return rc;
}

/* ------------------------------------------------------------------ a run */

static void atoms(void)
{
    a_sup = hc_atom_intern_cstr("sup");
    char n[32];
    for (int i = 0; i < MAX_R; i++) {
        snprintf(n, sizeof n, "h%d@sim", i);
        a_rnode[i] = hc_atom_intern_cstr(n);
    }
    for (int k = 0; k < MAX_B; k++) {
        snprintf(n, sizeof n, "b%d@sim", k);
        a_bnode[k] = hc_atom_intern_cstr(n);
    }
    /* interned by decoding otherwise, at a seed-dependent moment (traced or not) */
    static const char *const more[] = {"attach",
                                       "start_child",
                                       "terminate_child",
                                       "child_restarted",
                                       "child_exited",
                                       "started",
                                       "terminated",
                                       "set_status",
                                       "detach",
                                       "set_members",
                                       "stream_subscribe",
                                       "stream_unsubscribe",
                                       "set_options",
                                       "members",
                                       "which_children",
                                       "count_children",
                                       "stats",
                                       "sup_start",
                                       "sup_started",
                                       "sup_terminate",
                                       "sup_terminated",
                                       "worker_started",
                                       "start_worker",
                                       "stop_worker",
                                       "hordec_stream",
                                       "$hordec_replica",
                                       "killed",
                                       "noproc",
                                       "noconnection",
                                       "normal",
                                       "shutdown",
                                       "whatever",
                                       "boom",
                                       "process_redistribution",
                                       "nil",
                                       "c",
                                       "beam",
                                       "permanent",
                                       "transient",
                                       "temporary",
                                       "alive",
                                       "dead",
                                       "shutting_down",
                                       "auto",
                                       "true",
                                       "false",
                                       "n",
                                       "member",
                                       "status",
                                       "child",
                                       "ok",
                                       "error",
                                       "ignore",
                                       "relinquish",
                                       "delete",
                                       "undefined",
                                       "restarting",
                                       "worker",
                                       "supervisor",
                                       "$hordec_sup"};
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
        hc_atom_intern_cstr(more[i]);
}

static void cleanup(void)
{
    for (int i = 0; i < R; i++)
        simhost_free(&Rp[i].sh);
    memset(Rp, 0, sizeof Rp);
    for (int k = 0; k < B; k++) {
        client *c = &Cl[k];
        for (size_t x = 0; x < c->nrun; x++)
            free(c->run[x].spec);
        for (size_t x = 0; x < c->ninbox; x++)
            free(c->inbox[x].data);
        free(c->run);
        free(c->end);
        free(c->inbox);
        free(c->snap);
        free(c->tab);
        simmirror_free(&c->mirror);
    }
    memset(Cl, 0, sizeof Cl);
    for (int a = 0; a < SIMNET_MAX_NODES; a++)
        for (int b = 0; b < SIMNET_MAX_NODES; b++) {
            pairq *q = &Q[a][b];
            for (size_t x = q->head; x < q->n; x++)
                free(q->q[x].data);
            free(q->q);
        }
    memset(Q, 0, sizeof Q);
    memset(epoch_of, 0, sizeof epoch_of);
    free(L);
    free(I);
    free(routes);
    free(dcalls);
    free(downs);
    L = NULL;
    I = NULL;
    routes = NULL;
    dcalls = NULL;
    downs = NULL;
    NL = capL = NI = capI = nroutes = caproutes = ndcalls = capdcalls = ndowns = capdowns = 0;
    hc_hmap_free(&by_pid);
    memset(&by_pid, 0, sizeof by_pid);
    simnet_free(&net);
}

typedef struct run_opts {
    int rmin, rmax, bmin, bmax, ops;
} run_opts;

static int run(uint64_t seed, const run_opts *o, uint64_t *trace)
{
    hc_atom_table_reset(); /* a seed's run never depends on the seeds run before it in this process */
    atoms();
    watch_member = getenv("HORDEC_SIM_WATCH_MEMBER") ? hc_atom_intern_cstr(getenv("HORDEC_SIM_WATCH_MEMBER")) : 0;
    memset(watchm_last, 0, sizeof watchm_last);
    simnet_handler h = {.deliver = on_deliver, .timer = on_timer, .node_event = on_node_event};
    simnet_init(&net, seed, 1000000, &h);
    steps = 0;
    next_ref = 0;
    next_rid = seed << 8;
    R = o->rmin + (int)simnet_below(&net, (uint64_t)(o->rmax - o->rmin + 1));
    B = o->bmin + (int)simnet_below(&net, (uint64_t)(o->bmax - o->bmin + 1));
    hc_supervisor_config defaults; /* the options a new API field gets its default from */
    hc_supervisor_config_init(&defaults, a_sup, a_rnode[0], 1);
    opts = defaults.opt;
    opts.distribution = simnet_below(&net, 2) ? HC_SUP_UNIFORM : HC_SUP_QUORUM;
    opts.active_redistribution = simnet_below(&net, 3) == 0;
    low_intensity = simnet_below(&net, 8) == 0;
    opts.max_restarts = low_intensity ? 3 : 1000000;
    opts.max_seconds = 5;
    auto_join = opts.distribution == HC_SUP_QUORUM || simnet_below(&net, 2);
    fail_pm = (unsigned)simnet_below(&net, 40);
    ignore_pm = (unsigned)simnet_below(&net, 20);
    start_timeout_ms = 500 + (uint32_t)simnet_below(&net, 3000);
    hc_crdt_config_init(&base_cfg, 1);
    base_cfg.max_message_bytes = simnet_below(&net, 2) ? 4096 : 65536;
    base_cfg.flush_interval_ms = (uint32_t)simnet_below(&net, 10);
    base_cfg.retransmit_ms = 20 + (uint32_t)simnet_below(&net, 40);
    base_cfg.hello_interval_ms = 50;
    base_cfg.digest_interval_ms = 200 + (uint32_t)simnet_below(&net, 400);
    simnet_faults f = {
        .drop_pm = (unsigned)simnet_below(&net, 60),
        .dup_pm = 0, /* distribution never duplicates; the engine's own resends do that */
        .corrupt_pm = (unsigned)simnet_below(&net, 10),
        .reorder_pm = (unsigned)simnet_below(&net, 200),
        .max_delay_ms = 2 + (unsigned)simnet_below(&net, 30),
        .dial_ms = 1 + (unsigned)simnet_below(&net, 20),
        .detect_ms = 1 + (unsigned)simnet_below(&net, 800),
    };
    TRACE("seed %" PRIu64 ": %d replicas, %d clients, %s, %s redistribution, max_restarts %u, auto %d, fail %u "
          "ignore %u permille, start timeout %u ms",
          seed, R, B, opts.distribution == HC_SUP_QUORUM ? "quorum" : "uniform",
          opts.active_redistribution ? "active" : "passive", opts.max_restarts, auto_join, fail_pm, ignore_pm,
          start_timeout_ms);
    int with_v = (int)simnet_below(&net, (uint64_t)R);
    for (int i = 0; i < R; i++) {
        Rp[i].has_v = i == with_v || simnet_below(&net, 2);
        int64_t skew = (int64_t)simnet_below(&net, 300) - 150;
        Rp[i].node = simnet_add_node(&net, hc_atom_name(a_rnode[i]), true, 1000003u * (uint64_t)(i + 1), skew);
        simhost_hooks hooks = {.ud = &Rp[i],
                               .send_pid = hook_send_pid,
                               .send_peer = hook_send_peer,
                               .reply = hook_reply,
                               .monitor = hook_monitor,
                               .worker_start = hook_worker_start,
                               .worker_exit = hook_worker_exit};
        simhost_init(&Rp[i].sh, &net, Rp[i].node, i, a_sup, 1, &hooks);
    }
    for (int k = 0; k < B; k++) {
        client *c = &Cl[k];
        c->node = simnet_add_node(&net, hc_atom_name(a_bnode[k]), true, 77u * (uint64_t)(k + 1), 0);
        c->pid = (hc_pid){a_bnode[k], 1, 0, 1};
        c->caller = (hc_pid){a_bnode[k], 2, 0, 1};
        c->state = CS_ALIVE;
        c->attached = -1;
        simmirror_init(&c->mirror, a_sup, HC_HOST_STREAM_BATCH_BYTES, on_mirror_change, (void *)(uintptr_t)k);
        for (int j = 0; j < R; j++)
            c->order[j] = j;
        for (int j = R - 1; j > 0; j--) { /* each client its own failover order */
            int s = (int)simnet_below(&net, (uint64_t)j + 1), t = c->order[j];
            c->order[j] = c->order[s];
            c->order[s] = t;
        }
    }
    int rc = 0;
    for (int i = 0; i < R && !rc; i++)
        rc = replica_start(i);
    if (!rc) /* ONE set_members call: the others learn the membership by being contacted */
        rc = set_members(0);
    for (int k = 0; k < B && !rc; k++)
        rc = client_retry(k, 1 + simnet_below(&net, 50));
    simnet_timer_set(&net, SWEEP_TIMER, net.now + SWEEP_MS);
    if (!rc)
        rc = simnet_run_until(&net, net.now + 1500);
    simnet_set_faults(&net, true, &f);
    for (int step = 0; step < o->ops && !rc; step++) {
        rc = simnet_run_until(&net, net.now + simnet_below(&net, 20));
        if (!rc)
            rc = chaos_step();
    }
    if (!rc) { /* heal: faults off, one partition group, every replica back */
        int group[SIMNET_MAX_NODES] = {0};
        simnet_set_faults(&net, false, NULL);
        simnet_partition(&net, group);
        rc = simnet_run_until(&net, net.now + 3500); /* graceful stops finish */
        for (int i = 0; i < R && !rc; i++)
            rc = replica_restart(i);
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

static int parse_range(const char *v, int *lo, int *hi)
{
    if (sscanf(v, "%d-%d", lo, hi) != 2)
        *lo = *hi = atoi(v);
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t seed = 1, seeds = 1;
    run_opts o = {2, 5, 0, 3, 1000};
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
            parse_range(v, &o.bmin, &o.bmax), i++;
        else if (!strcmp(a, "--replicas") && v)
            parse_range(v, &o.rmin, &o.rmax), i++;
        else if (!strcmp(a, "--replay-check"))
            replay = 1;
        else {
            fprintf(stderr, "usage: hordec-sim-supervisor [--seed S] [--seeds K] [--replicas R|RMIN-RMAX] "
                            "[--clients B|BMIN-BMAX] [--ops N] [--replay-check]\n");
            return 2;
        }
    }
    if (o.rmin < 1 || o.rmax > MAX_R || o.rmin > o.rmax || o.bmin < 0 || o.bmax > MAX_B || o.bmin > o.bmax ||
        o.ops < 0) {
        fprintf(stderr, "hordec-sim-supervisor: --replicas 1..%d, --clients 0..%d\n", MAX_R, MAX_B);
        return 2;
    }
    hc_log_set_level(HC_LOG_ERROR);
    tracing = getenv("HORDEC_SIM_TRACE") != NULL;
    plain_rules();
    watch_n = getenv("HORDEC_SIM_WATCH") ? atoi(getenv("HORDEC_SIM_WATCH")) : -1;
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
            fprintf(stderr, "hordec-sim-supervisor: seed %" PRIu64 " FAILED at t=%" PRIu64 ": %s\n", s, at, why);
            failed = 1;
            break;
        }
        passed++;
        T.seeds++;
        T.uniform += opts.distribution == HC_SUP_UNIFORM;
        T.quorum += opts.distribution == HC_SUP_QUORUM;
        T.active += opts.active_redistribution;
    }
    printf("hordec-sim-supervisor: seeds %" PRIu64 "..%" PRIu64 " replicas %d-%d clients %d-%d ops %d: %" PRIu64
           " passed, %d failed (%" PRIu64 " uniform, %" PRIu64 " quorum, %" PRIu64 " active redistribution)\n",
           seed, seed + passed + (uint64_t)failed - 1, o.rmin, o.rmax, o.bmin, o.bmax, o.ops, passed, failed, T.uniform,
           T.quorum, T.active);
    printf("hordec-sim-supervisor: %" PRIu64 " start_child (%" PRIu64 " ok, %" PRIu64 " refused), %" PRIu64
           " terminate_child (%" PRIu64 " ok); child exits: %" PRIu64 " C, %" PRIu64 " BEAM (%" PRIu64
           " restarts by clients); %" PRIu64 " hordec nodes down (%" PRIu64 " graceful), %" PRIu64
           " BEAM nodes lost, %" PRIu64 " BEAM members stopped, %" PRIu64 " partitions; %" PRIu64 " attaches (%" PRIu64
           " failovers); %" PRIu64 " moves, %" PRIu64 " handoffs, %" PRIu64 " duplicates stopped by clients, %" PRIu64
           " quorum stops\n",
           T.starts, T.acked, T.refused, T.terminates, T.terminated, T.c_crashes, T.b_crashes, T.b_restarts, T.crashes,
           T.graceful, T.client_deaths, T.client_stops, T.partitions, T.attaches, T.failovers, T.moves, T.handoffs,
           T.dups, T.quorum_stops);
    printf("hordec-sim-supervisor: may be gone (allowed): %" PRIu64 " children (%" PRIu64
           " named by terminate_child, %" PRIu64 " restart failed, %" PRIu64
           " lost with the only member that knew them, %" PRIu64 " by intensity), %" PRIu64
           " records waiting for a member; %" PRIu64 " messages delivered, %" PRIu64 " dropped, %" PRIu64
           " damaged; %" PRIu64 " client messages lost with their connection\n",
           T.excused + T.excused_intensity, T.excused_terminate, T.excused_restart, T.excused_lost, T.excused_intensity,
           T.waiting, T.delivered, T.dropped, T.damaged, T.chan_lost);
    hc_atom_table_reset();
    return failed;
}
