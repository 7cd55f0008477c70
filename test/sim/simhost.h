/* simhost.h — one replica process of a simulation: an hc_host (c_src/host/host.h) with its core, behind
 * an hc_host_env that is the simulated world (simnet.h). Any core runs in it; the CRDT simulation uses it
 * today, the registry and supervisor simulations next.
 *
 * The env: peer sends (the whole envelope, as bytes) and pid sends go on the simulated network; connect /
 * is_connected are the simulated distribution connections; the host's one wake-up is a simnet timer;
 * monitors are kept in a table (simhost_kill fires them when a watched process dies); replies go back to
 * the simulated caller of simhost_call. It also checks the host keeps its side of the contract: every
 * request answered exactly once, every envelope names this replica as sender, monitor ids unique while
 * live, demonitor only of a live monitor. A broken rule fails the run (simnet_fail).
 *
 * HC_EFF_LOCAL (the supervisor's C workers): the env's `local` hook is a fake worker runtime of the simulated
 * hordec node. {start_worker, Op, Type, Arg} makes a worker with a fresh pid of the node (or, as the scenario's
 * worker_start hook decides, answers ignore or {error, boom}) and feeds {worker_started, Op, Result} back;
 * {stop_worker, Pid, Reason} kills that worker. A worker that dies (stopped, simhost_worker_exit, or its node
 * going down with simhost_stop: a hordec node is one OS process) fires the monitors held on it: at once when
 * the death comes from outside, or from simhost_settle when it happened inside a host call. Any other local
 * action breaks the contract and fails the run.
 *
 * Requests whose reply may come later (a core that answers once a member did something, as the supervisor
 * does) go through simhost_request: its replies, whenever they come, go to the reply hook. */
#ifndef HORDEC_SIM_SIMHOST_H
#define HORDEC_SIM_SIMHOST_H

#include "host/host.h"
#include "simnet.h"

typedef struct simhost simhost;

/* Optional observers; `ud` is simhost_hooks.ud. */
typedef struct simhost_hooks {
    void *ud;
    /* A message the host sends to a pid: return true to consume it here (a lossless observer) instead of
     * putting it on the network. */
    bool (*send_pid)(void *ud, simhost *sh, const hc_pid *to, const uint8_t *msg, size_t len);
    /* A peer message (the envelope's payload) about to go on the wire; non-zero fails the run. */
    int (*send_peer)(void *ud, simhost *sh, int to_node, hc_atom name, const uint8_t *msg, size_t len);
    /* The reply to a request made with simhost_request (during that call or any later one). */
    void (*reply)(void *ud, simhost *sh, uint64_t token, const uint8_t *reply, size_t len);
    /* The host just set up monitor `id` on `pid` (recorded already): the scenario decides when it fires
     * (simhost_fire), e.g. at once with noproc for a process that is gone. Called inside a host call. */
    void (*monitor)(void *ud, simhost *sh, const hc_pid *pid, uint64_t id);
    /* The fake worker runtime asks how a start of worker type `type` with argument `arg` (terms) ends: 0 it
     * runs, as `pid`; 1 ignore; -1 {error, boom}. NULL: every start succeeds. Called inside a host call. */
    int (*worker_start)(void *ud, simhost *sh, const hc_span *type, const hc_span *arg, const hc_pid *pid);
    /* A worker died (stopped by the core, simhost_worker_exit, or simhost_stop) with `reason` (a term). */
    void (*worker_exit)(void *ud, simhost *sh, const hc_pid *pid, const uint8_t *reason, size_t len);
} simhost_hooks;

typedef struct simhost_mon {
    uint64_t id;
    hc_pid pid;
} simhost_mon;

/* A C worker of the node (fake runtime). */
typedef struct simhost_worker {
    hc_pid pid;
    uint8_t *arg; /* the Arg it was started with (a copy) */
    size_t arg_len;
} simhost_worker;

/* A monitor to fire once the current host call is over (its process died inside the call). */
typedef struct simhost_due {
    uint64_t id;
    hc_pid pid;
    uint8_t reason[32];
    size_t len;
} simhost_due;

struct simhost {
    simnet *net;
    int node;  /* simnet node it runs on */
    int timer; /* simnet timer id of its wake-up */
    hc_atom name;
    hc_pid pid;    /* the replica process (serial counts its incarnations) */
    hc_host *host; /* NULL while not running */
    simhost_hooks hooks;
    simhost_mon *mons;
    size_t nmons, capmons;
    uint64_t next_token;
    uint64_t call_token; /* the request simhost_call is waiting on, 0 if none */
    int call_replies;
    hc_buf *call_reply;
    /* the fake worker runtime: the node's workers (they outlive replica incarnations only if the node does) */
    simhost_worker *workers;
    size_t nworkers, capworkers;
    uint32_t next_worker; /* worker pid numbers count up from SIMHOST_WORKER_PID, never reused on the node */
    simhost_due *due;
    size_t ndue, capdue;
    /* counters */
    uint64_t peer_sends, pid_sends, replies, monitors, demonitors, exits, wakeups;
    uint64_t local_actions, workers_started, workers_refused, workers_stopped;
    uint64_t pid_sends_at_reply; /* pid_sends when the last reply left (what went out before it) */
};

#define SIMHOST_WORKER_PID 100000u

/* Prepares a (not yet running) replica named `name` on `node`, with pid number `pid_num`. */
void simhost_init(simhost *sh, simnet *net, int node, int timer, hc_atom name, uint32_t pid_num,
                  const simhost_hooks *hooks);
/* Starts a new incarnation around `core` (owned from now on, also on failure). 0 or -1. */
int simhost_start(simhost *sh, const hc_core_ops *ops, void *core, size_t stream_batch_bytes, uint64_t epoch_base);
/* The process dies: its monitors and wake-up go with it, and so do the node's workers (each reported to the
 * worker_exit hook with reason `killed`; no monitor fires: their holder is gone). With keep_core the core is
 * handed back (to model a restart with state), otherwise it is freed and NULL is returned. */
void *simhost_stop(simhost *sh, bool keep_core);
void simhost_free(simhost *sh);
static inline bool simhost_running(const simhost *sh) { return sh->host != NULL; }

/* A GenServer call from `from`: the reply (exactly one, during the call, as every core answers at once)
 * is copied into *reply (reset first). 0, or -1 with a failure recorded. */
int simhost_call(simhost *sh, const hc_pid *from, const uint8_t *req, size_t len, hc_buf *reply);
/* Inputs from the simulated world; each returns -1 when the run has failed (here or in a hook). */
int simhost_deliver(simhost *sh, const simnet_msg *m);
int simhost_tick(simhost *sh);
int simhost_node_event(simhost *sh, int about, bool up);
/* Process `pid` died: every monitor the host holds on it fires. Returns how many did, or -1. */
int simhost_kill(simhost *sh, const hc_pid *pid);
/* The same with the exit reason `reason` (a term). */
int simhost_exit(simhost *sh, const hc_pid *pid, const uint8_t *reason, size_t len);
bool simhost_monitoring(const simhost *sh, const hc_pid *pid);

/* A request whose reply the reply hook gets, now or later. `token` is the caller's (unique among the
 * requests it has made to this host; keep it clear of the small numbers simhost_call uses, e.g. >= 2^32).
 * 0, or -1 with a failure recorded. */
int simhost_request(simhost *sh, uint64_t token, const hc_pid *from, const uint8_t *req, size_t len);
/* A term for the core from the process hosting it (hc_host_local): e.g. the supervisor's `shutdown`. */
int simhost_local(simhost *sh, const uint8_t *msg, size_t len);
/* Fires monitor `id` if it is live and on `pid`: 1 if it fired, 0 if not, -1 if the run failed. */
int simhost_fire(simhost *sh, uint64_t id, const hc_pid *pid, const uint8_t *reason, size_t len);
/* Fires the monitors due since deaths inside host calls (they may cause more). 0 or -1. */
int simhost_settle(simhost *sh);

/* The fake worker runtime. */
const simhost_worker *simhost_worker_find(const simhost *sh, const hc_pid *pid);
/* Worker `pid` of this node exits with `reason` (a term): gone, its monitors fire. 1 if it was a live worker,
 * 0 if not, -1 if the run failed. */
int simhost_worker_exit(simhost *sh, const hc_pid *pid, const uint8_t *reason, size_t len);

#endif
