/* hc_runtime.h — the HordeC runtime: one event loop, C processes with pids, names, monitors, links,
 * GenServer-style calls, and node up/down events. Everything runs on the loop thread; no function here
 * is thread-safe and none blocks.
 *
 * Term spans (`const uint8_t *t, size_t len`) are external term format without the 131 version byte.
 * Messages delivered to a process are only valid during the callback: copy what you keep. */
#ifndef HORDEC_HC_RUNTIME_H
#define HORDEC_HC_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hordec/hc_common.h"
#include "hordec/hc_term.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hc_rt hc_rt;
typedef struct hc_proc hc_proc;

/* ------------------------------------------------------------------ configuration and lifecycle */

typedef struct hc_rt_config {
    const char *node_name;      /* "name@host" */
    const char *cookie;
    uint16_t port;              /* 0 = any free port */
    uint32_t ticktime_s;        /* net_ticktime; 60 like the BEAM */
    size_t max_message_bytes;   /* larger incoming packets drop the connection; default 256 MiB */
    size_t busy_limit_bytes;    /* per-peer queue above which hc_rt_peer_busy() is true; default 8 MiB */
    size_t max_queue_bytes;     /* per-peer queue above which sends fail with HC_EBUSY; default 1 GiB */
    bool register_epmd;         /* false in tests that do not want epmd */
} hc_rt_config;

void hc_rt_config_defaults(hc_rt_config *cfg);
/* Creates the runtime: listens, registers with epmd, starts the built-in net_kernel responder.
 * On failure returns NULL and writes a message into err. */
hc_rt *hc_rt_new(const hc_rt_config *cfg, char *err, size_t errlen);
/* Runs the loop until hc_rt_stop(). Returns HC_OK or HC_EIO. */
int hc_rt_run(hc_rt *rt);
/* Runs one loop iteration, waiting at most timeout_ms. */
int hc_rt_run_once(hc_rt *rt, int timeout_ms);
void hc_rt_stop(hc_rt *rt); /* async-signal-safe */
/* Exits every process (reason shutdown), closes connections, frees everything. */
void hc_rt_free(hc_rt *rt);

hc_atom hc_rt_node(const hc_rt *rt);
uint16_t hc_rt_port(const hc_rt *rt);
uint32_t hc_rt_creation(const hc_rt *rt);
uint64_t hc_rt_now_ms(const hc_rt *rt); /* monotonic; the loop's notion of "now" */
const hc_rt_config *hc_rt_config_get(const hc_rt *rt);

typedef struct hc_rt_stats {
    uint64_t msgs_in, msgs_out;   /* messages delivered to / sent from C processes */
    uint64_t dropped_conns;       /* connections dropped for bad input */
    size_t processes;
    size_t peers;
} hc_rt_stats;
void hc_rt_stats_get(const hc_rt *rt, hc_rt_stats *out);

/* ------------------------------------------------------------------ timers and fds */

typedef uint64_t hc_timer_id;
typedef void (*hc_timer_cb)(hc_rt *rt, void *ud);
hc_timer_id hc_timer_start(hc_rt *rt, uint64_t after_ms, hc_timer_cb cb, void *ud); /* 0 on failure */
void hc_timer_cancel(hc_rt *rt, hc_timer_id id);

/* ------------------------------------------------------------------ nodes */

/* Connected peers (handshake done). Returns the count, writes at most max. */
size_t hc_rt_peers(const hc_rt *rt, hc_atom *out, size_t max);
bool hc_rt_is_connected(const hc_rt *rt, hc_atom node);
/* Starts connecting: a no-op if connected, connecting, or backing off after a failed attempt (up to a
 * second). HC_OK, HC_EINVAL (not a node name) or HC_ENOCONN (blocked). */
int hc_rt_connect(hc_rt *rt, hc_atom node);
/* Queue backpressure: true while the peer's write queue is above busy_limit_bytes. */
bool hc_rt_peer_busy(const hc_rt *rt, hc_atom node);
/* Fault injection: cut and refuse connections to `node` until unblocked. */
void hc_rt_block(hc_rt *rt, hc_atom node);
void hc_rt_unblock(hc_rt *rt, hc_atom node);

typedef void (*hc_node_event_cb)(hc_rt *rt, hc_atom node, bool up, const char *reason, void *ud);
/* Subscribes to node up/down; returns a handle for unsubscribe (0 on failure). */
uint64_t hc_rt_subscribe_nodes(hc_rt *rt, hc_node_event_cb cb, void *ud);
void hc_rt_unsubscribe_nodes(hc_rt *rt, uint64_t handle);
/* One-shot: called once when a connection attempt to `node` succeeds (up=true) or fails. */
int hc_rt_on_connect_result(hc_rt *rt, hc_atom node, hc_node_event_cb cb, void *ud);

/* ------------------------------------------------------------------ processes */

/* The caller of a $gen_call; pass it back to hc_gen_reply (now or later: it is self-contained). */
typedef struct hc_gen_from {
    hc_pid pid;
    uint16_t tag_len;
    uint8_t tag[256]; /* the caller's tag term, copied opaquely */
} hc_gen_from;

typedef struct hc_proc_ops {
    /* A plain message. `from` is the sender when the protocol says (REG_SEND, local sends), else NULL. */
    void (*on_message)(hc_rt *rt, hc_proc *self, const hc_pid *from, const uint8_t *msg, size_t len);
    /* A {'$gen_call', From, Request}. Reply with hc_gen_reply, now or later. NULL: treated as a message. */
    void (*on_call)(hc_rt *rt, hc_proc *self, const hc_gen_from *from, const uint8_t *req, size_t len);
    /* A monitor this process holds fired: target was `pid`, or `name` on `node` when monitored by name. */
    void (*on_down)(hc_rt *rt, hc_proc *self, const hc_ref *ref, const hc_pid *pid, hc_atom name, hc_atom node,
                    const uint8_t *reason, size_t rlen);
    /* An exit signal from a linked process (or EXIT2) while trapping exits. */
    void (*on_exit_signal)(hc_rt *rt, hc_proc *self, const hc_pid *from, const uint8_t *reason, size_t rlen);
    /* The process is terminating with `reason`; release the state. Signals go out after this returns. */
    void (*on_terminate)(hc_rt *rt, hc_proc *self, const uint8_t *reason, size_t rlen);
} hc_proc_ops;

hc_proc *hc_proc_spawn(hc_rt *rt, const hc_proc_ops *ops, void *state);
int hc_proc_register(hc_rt *rt, hc_proc *p, hc_atom name);   /* HC_EEXIST if taken */
void hc_proc_unregister(hc_rt *rt, hc_proc *p);
hc_proc *hc_proc_whereis(const hc_rt *rt, hc_atom name);
hc_proc *hc_proc_lookup(const hc_rt *rt, const hc_pid *pid);  /* NULL unless a live local process */
const hc_pid *hc_proc_pid(const hc_proc *p);
hc_atom hc_proc_name(const hc_proc *p);
void *hc_proc_state(const hc_proc *p);
const hc_proc_ops *hc_proc_get_ops(const hc_proc *p); /* tells what kind of process this is */
void hc_proc_set_trap_exit(hc_proc *p, bool on);
/* Terminates the process with `reason` (a term). Safe to call from the process's own callbacks: the
 * memory is released after the current callback returns. */
void hc_proc_exit(hc_rt *rt, hc_proc *p, const uint8_t *reason, size_t rlen);
/* A process pointer stays valid until the end of the loop turn in which the process exits (so a
 * callback may still look at it); after that, ask by pid with hc_proc_lookup(). */
bool hc_proc_alive(const hc_proc *p);

/* ------------------------------------------------------------------ signals */

/* Sends `msg` to a pid (local or remote). Remote sends to unconnected nodes connect first and are
 * queued meanwhile. HC_OK (delivery is never confirmed, as in Erlang), HC_EBUSY if the peer's queue is
 * full, HC_ENOCONN if the node is blocked or unreachable. */
int hc_send(hc_rt *rt, hc_proc *from, const hc_pid *to, const uint8_t *msg, size_t len);
/* Sends to a registered name on `node` (this node if node is hc_rt_node(rt)). */
int hc_send_name(hc_rt *rt, hc_proc *from, hc_atom node, hc_atom name, const uint8_t *msg, size_t len);
/* Monitors a pid, or a name on a node (pid NULL). The DOWN arrives through on_down, with reason noproc
 * at once if the target does not exist and noconnection if its node goes away. */
int hc_monitor(hc_rt *rt, hc_proc *watcher, const hc_pid *pid, hc_atom name, hc_atom node, hc_ref *out);
int hc_demonitor(hc_rt *rt, hc_proc *watcher, const hc_ref *ref);
int hc_link(hc_rt *rt, hc_proc *p, const hc_pid *other);
int hc_unlink(hc_rt *rt, hc_proc *p, const hc_pid *other);
/* exit(Pid, Reason): an exit signal to any process. */
int hc_exit_signal(hc_rt *rt, hc_proc *from, const hc_pid *to, const uint8_t *reason, size_t rlen);
/* A fresh reference minted by this node. */
void hc_make_ref(hc_rt *rt, hc_ref *out);

/* ------------------------------------------------------------------ gen_server calls */

int hc_gen_reply(hc_rt *rt, const hc_gen_from *from, const uint8_t *reply, size_t len);
/* Shorthands for the most common replies: the atom `name`, and {error, Reason} with an atom reason. */
int hc_gen_reply_atom(hc_rt *rt, const hc_gen_from *from, const char *name);
int hc_gen_reply_error(hc_rt *rt, const hc_gen_from *from, const char *reason);
/* {ok, Term}, with Term given as ETF bytes. */
int hc_gen_reply_ok(hc_rt *rt, const hc_gen_from *from, const uint8_t *term, size_t len);

/* Outcome of a call made by a C process. */
#define HC_CALL_TIMEOUT (-100)
typedef void (*hc_call_cb)(hc_rt *rt, hc_proc *caller, int status, const uint8_t *reply, size_t len, void *ud);
/* GenServer.call from a C process to `pid`, or to `name` on `node` (pid NULL). The callback runs
 * exactly once: status HC_OK with the reply, HC_ENOPROC (no such process, or it died meanwhile),
 * HC_ENOCONN (its node is unreachable or went down) or HC_CALL_TIMEOUT (a late reply is dropped). It
 * does not run if the caller itself exits first. */
int hc_gen_call(hc_rt *rt, hc_proc *caller, const hc_pid *pid, hc_atom name, hc_atom node, const uint8_t *req,
                size_t len, uint32_t timeout_ms, hc_call_cb cb, void *ud);

/* Common reasons, pre-encoded. */
typedef struct hc_term_span {
    const uint8_t *p;
    size_t len;
} hc_term_span;
hc_term_span hc_reason_normal(void);
hc_term_span hc_reason_shutdown(void);
hc_term_span hc_reason_noproc(void);
hc_term_span hc_reason_noconnection(void);
hc_term_span hc_reason_killed(void);

#ifdef __cplusplus
}
#endif
#endif
