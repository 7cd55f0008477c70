/* simhost.h — one replica process of a simulation: an hc_host (c_src/host/host.h) with its core, behind
 * an hc_host_env that is the simulated world (simnet.h). Any core runs in it; the CRDT simulation uses it
 * today, the registry and supervisor simulations next.
 *
 * The env: peer sends (the whole envelope, as bytes) and pid sends go on the simulated network; connect /
 * is_connected are the simulated distribution connections; the host's one wake-up is a simnet timer;
 * monitors are kept in a table (simhost_kill fires them when a watched process dies); replies go back to
 * the simulated caller of simhost_call. It also checks the host keeps its side of the contract: every
 * request answered exactly once, every envelope names this replica as sender, monitor ids unique while
 * live, demonitor only of a live monitor. A broken rule fails the run (simnet_fail). */
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
} simhost_hooks;

typedef struct simhost_mon {
    uint64_t id;
    hc_pid pid;
} simhost_mon;

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
    /* counters */
    uint64_t peer_sends, pid_sends, replies, monitors, demonitors, exits, wakeups;
    uint64_t pid_sends_at_reply; /* pid_sends when the last reply left (what went out before it) */
};

/* Prepares a (not yet running) replica named `name` on `node`, with pid number `pid_num`. */
void simhost_init(simhost *sh, simnet *net, int node, int timer, hc_atom name, uint32_t pid_num,
                  const simhost_hooks *hooks);
/* Starts a new incarnation around `core` (owned from now on, also on failure). 0 or -1. */
int simhost_start(simhost *sh, const hc_core_ops *ops, void *core, size_t stream_batch_bytes, uint64_t epoch_base);
/* The process dies: its monitors and wake-up go with it. With keep_core the core is handed back (to model
 * a restart with state), otherwise it is freed and NULL is returned. */
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
bool simhost_monitoring(const simhost *sh, const hc_pid *pid);

#endif
