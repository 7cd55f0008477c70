/* hc_runtime.h — the HordeC runtime: one event loop, C processes with pids, names, monitors, links,
 * timers, GenServer-style calls, and node up/down events.
 *
 * Conventions (they hold for every function below unless its comment says otherwise):
 *
 *  - Threads. Everything runs on the loop thread, the thread that calls hc_rt_run()/hc_rt_run_once().
 *    Exactly two functions may be called from any thread: hc_rt_post() (run a function on the loop
 *    thread) and hc_rt_stop() (which is also async-signal-safe). Nothing here blocks.
 *  - Callbacks. Every callback runs on the loop thread, never inside another process's callback (signals
 *    between processes are delivered on a later pass of the loop, as in Erlang). A callback may call any
 *    function of this header except hc_rt_run(), hc_rt_run_once() and hc_rt_free().
 *  - Results. Fallible functions return HC_OK (0) or a negative HC_E* code (hc_common.h); predicates and
 *    "got one" functions return bool. Constructors are `int hc_<thing>_new/spawn(..., hc_<thing> **out)`:
 *    on failure *out is NULL and nothing was created.
 *  - Terms. Term spans (`const uint8_t *t, size_t len`, or an hc_span) are external term format
 *    without the 131 version byte. A span handed to a callback (a message, a reason, a reply) is only
 *    valid during that callback: copy what you keep. A span passed in by the caller is copied before the
 *    function returns, so the caller keeps ownership.
 *  - Pointers. An hc_proc pointer stays valid until the end of the loop turn in which its process exits
 *    (so a callback may still look at it); after that, ask by pid with hc_proc_lookup(). */
#ifndef HORDEC_HC_RUNTIME_H
#define HORDEC_HC_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hordec/hc_common.h"
#include "hordec/hc_export.h"
#include "hordec/hc_term.h"
#include "hordec/hc_tls.h"

HC_BEGIN_DECLS

typedef struct hc_rt hc_rt;
typedef struct hc_proc hc_proc;

/* ------------------------------------------------------------------ configuration and lifecycle */

typedef struct hc_rt_config {
    const char *node_name;    /* "name@host" (copied by hc_rt_new) */
    const char *cookie;       /* copied by hc_rt_new */
    uint16_t port;            /* 0 = any free port */
    uint32_t ticktime_s;      /* net_ticktime; 60 like the BEAM */
    size_t max_message_bytes; /* larger incoming packets drop the connection; default 256 MiB */
    size_t busy_limit_bytes;  /* per-peer queue above which hc_rt_peer_busy() is true; default 8 MiB */
    /* Per-peer output queue cap: a connected peer whose unwritten output would grow beyond it (it stopped
     * reading) is disconnected, with a log line naming it and the size; before its handshake ends, sends
     * beyond it fail with HC_EBUSY. One packet is always accepted on an empty queue, so the most a peer
     * costs is this plus its largest single message. Default 64 MiB. */
    size_t max_queue_bytes;
    bool register_epmd; /* false in tests that do not want epmd */
    /* Incoming connections (0 = the default). Nothing a peer sends before it has proved it knows the cookie
     * is kept beyond its connection; these bound how many such connections exist at once. */
    uint32_t max_handshakes;          /* pending incoming handshakes, in total; default 256 */
    uint32_t max_handshakes_per_addr; /* pending incoming handshakes from one IP address; default 32 */
    uint32_t max_connections;         /* distribution connections of any kind and state; default 4096 */
    const hc_tls_config *tls; /* NULL: plain TCP; else distribution over TLS only (hc_tls.h); read by hc_rt_new */
} hc_rt_config;

/* Fills *cfg with the defaults above (node_name and cookie NULL: the caller must set them). */
void hc_rt_config_defaults(hc_rt_config *cfg);

/* Creates the runtime: listens, registers with epmd (unless told not to), starts the built-in net_kernel
 * responder. On success *out is the runtime, to be freed with hc_rt_free(). On failure returns HC_EINVAL
 * (bad node name or cookie), HC_ENOMEM, HC_EIO (socket, epoll) or the epmd registration's code, sets
 * *out to NULL and writes a one-line message into err (err may be NULL when errlen is 0). The calling
 * thread becomes the loop thread. */
int hc_rt_new(const hc_rt_config *cfg, hc_rt **out, char *err, size_t errlen);
/* Runs the loop until hc_rt_stop(). Returns HC_OK after a stop, HC_EIO if epoll failed. */
int hc_rt_run(hc_rt *rt);
/* Runs one loop iteration, waiting at most timeout_ms (-1: until something happens). HC_OK or HC_EIO. */
int hc_rt_run_once(hc_rt *rt, int timeout_ms);
/* Makes hc_rt_run() return after the current iteration, and wakes the loop if it is waiting.
 * THREAD-SAFE and ASYNC-SIGNAL-SAFE: callable from any thread and from a signal handler. */
void hc_rt_stop(hc_rt *rt);
/* Stops accepting posts and runs those still pending (see hc_rt_post), exits every process (reason
 * shutdown, so monitors and links on other nodes see it), flushes what it can, closes every connection
 * and frees everything, including timers that never fired (their `ud` is not freed: it is the caller's).
 * Call it on the loop thread, outside any callback, after every other thread has stopped posting. */
void hc_rt_free(hc_rt *rt);

/* Runs fn(rt, ud) on the loop thread, soon, in the order posts were made (FIFO). THREAD-SAFE: this is
 * how another thread hands work to the loop (the fn may then call anything in this header). Returns
 * HC_OK (fn will run exactly once: during a later loop iteration, or at the latest during hc_rt_free),
 * HC_ENOMEM (fn will not run), or HC_ESTATE once hc_rt_free has begun (fn will not run). `ud` stays the
 * caller's: the runtime never frees it, so fn usually does. Also callable from the loop thread and from
 * callbacks: the fn then runs on a later iteration, never inside the call. */
typedef void (*hc_post_fn)(hc_rt *rt, void *ud);
int hc_rt_post(hc_rt *rt, hc_post_fn fn, void *ud);

hc_atom hc_rt_node(const hc_rt *rt);
uint16_t hc_rt_port(const hc_rt *rt);
uint32_t hc_rt_creation(const hc_rt *rt);
uint64_t hc_rt_now_ms(const hc_rt *rt); /* monotonic; the loop's notion of "now", sampled once per iteration */
const hc_rt_config *hc_rt_config_get(const hc_rt *rt); /* owned by the runtime */

typedef struct hc_rt_stats {
    uint64_t msgs_in, msgs_out; /* messages delivered to / sent from C processes */
    uint64_t dropped_conns;     /* connections dropped for bad input */
    size_t processes;
    size_t peers;
    uint64_t refused_conns;   /* incoming connections closed at once: a cap reached or descriptors exhausted */
    uint64_t queue_overflows; /* peers disconnected because their output queue exceeded max_queue_bytes */
    size_t handshakes;        /* incoming connections still in their handshake */
    size_t connections;       /* distribution connections open (any state) */
} hc_rt_stats;
void hc_rt_stats_get(const hc_rt *rt, hc_rt_stats *out);

/* How long single iterations of the loop took: the work done between two waits (callbacks, timers,
 * local signals, flushing), not the waiting. A long one delays every peer and timer at once. */
typedef struct hc_rt_loop_stats {
    uint64_t iterations;    /* loop iterations since the start or the last reset */
    uint64_t max_iter_us;   /* the longest single iteration, in microseconds */
    uint64_t slow_iters;    /* iterations that took longer than HC_RT_SLOW_ITER_US */
    uint64_t total_busy_us; /* time spent working, summed */
} hc_rt_loop_stats;
#define HC_RT_SLOW_ITER_US 10000
void hc_rt_loop_stats_get(const hc_rt *rt, hc_rt_loop_stats *out);
/* Starts a new measurement window (every field back to 0), e.g. around one operation to measure. */
void hc_rt_loop_stats_reset(hc_rt *rt);

/* ------------------------------------------------------------------ loop timers (no owner) */

/* A timer that belongs to no process. It fires once, cb(rt, ud), after_ms from now (0: on the next
 * iteration). The caller must cancel it when `ud` goes away: nothing cancels it automatically. A C
 * process should use hc_proc_timer_start() instead, which is cancelled when the process exits.
 * Timer ids are unique for the life of the runtime and never 0. */
typedef uint64_t hc_timer_id;
typedef void (*hc_timer_cb)(hc_rt *rt, void *ud);
/* HC_OK with the id in *out (out may be NULL), or HC_ENOMEM with *out = 0. */
int hc_timer_start(hc_rt *rt, uint64_t after_ms, hc_timer_cb cb, void *ud, hc_timer_id *out);
/* True if the timer was pending and now never fires; false if it already fired, was cancelled, or is 0. */
bool hc_timer_cancel(hc_rt *rt, hc_timer_id id);

/* ------------------------------------------------------------------ file descriptors (a program's own I/O) */

/* A descriptor of the program's own (a listening socket, a pipe) watched by the loop, so its I/O runs on the loop
 * thread like everything else. Level-triggered: cb runs on every iteration while the descriptor is ready. */
typedef struct hc_fd_watch hc_fd_watch;
#define HC_FD_READ 1u  /* readable (also set, with HC_FD_ERROR, when the peer hung up or an error is pending) */
#define HC_FD_WRITE 2u /* writable */
#define HC_FD_ERROR 4u /* reported only: an error or hang-up (a read or write will say which) */
typedef void (*hc_fd_cb)(hc_rt *rt, hc_fd_watch *w, int fd, unsigned events, void *ud);
/* Watches fd for `events` (HC_FD_READ | HC_FD_WRITE, or 0 for none yet). The descriptor stays the caller's: close
 * it after hc_fd_watch_stop. HC_OK with the watch in *out, HC_EINVAL (fd < 0 or cb NULL), HC_EIO (epoll refused
 * the descriptor) or HC_ENOMEM; then *out is NULL. */
int hc_fd_watch_start(hc_rt *rt, int fd, unsigned events, hc_fd_cb cb, void *ud, hc_fd_watch **out);
/* Changes the events watched (0: none for now). HC_OK or HC_EIO. */
int hc_fd_watch_set(hc_rt *rt, hc_fd_watch *w, unsigned events);
/* Stops the watch: cb never runs again, not even for events the current iteration already collected, so this
 * is safe from any callback, w's own included (its memory goes at the end of the iteration). NULL is fine. Stop
 * every watch before hc_rt_free. */
void hc_fd_watch_stop(hc_rt *rt, hc_fd_watch *w);

/* ------------------------------------------------------------------ introspection (metrics) */

/* Traffic with one connected peer, counted since its current connection was set up (a reconnect starts again
 * from 0, as a counter that resets). Messages are distribution packets (ticks excluded); bytes are what went
 * through the socket, handshake included. */
typedef struct hc_rt_peer_stats {
    hc_atom node;
    uint64_t msgs_in, msgs_out;
    uint64_t bytes_in, bytes_out;
    size_t queued_bytes; /* written by us but not yet taken by the socket */
} hc_rt_peer_stats;
/* The connected peers' counters. Returns how many peers are connected; writes at most max of them. */
size_t hc_rt_peer_stats_get(const hc_rt *rt, hc_rt_peer_stats *out, size_t max);

/* Calls fn for every live process, in no particular order, until fn returns non-zero (returned). fn must not
 * spawn processes or make any exit. Returns 0 when every process was visited. */
typedef int (*hc_proc_visit_fn)(hc_rt *rt, hc_proc *p, void *ud);
int hc_rt_foreach_proc(hc_rt *rt, hc_proc_visit_fn fn, void *ud);

/* ------------------------------------------------------------------ nodes */

/* Connected peers (handshake done). Returns the count, writes at most max. */
size_t hc_rt_peers(const hc_rt *rt, hc_atom *out, size_t max);
bool hc_rt_is_connected(const hc_rt *rt, hc_atom node);
/* Starts connecting: a no-op if connected, connecting, or backing off after a failed attempt (up to a
 * second). HC_OK, HC_EINVAL (not a node name), HC_ENOMEM or HC_ENOCONN (blocked). */
int hc_rt_connect(hc_rt *rt, hc_atom node);
/* Queue backpressure: true while the peer's write queue is above busy_limit_bytes. */
bool hc_rt_peer_busy(const hc_rt *rt, hc_atom node);
/* Fault injection: cut and refuse connections to `node` until unblocked. HC_OK or HC_ENOMEM. */
int hc_rt_block(hc_rt *rt, hc_atom node);
void hc_rt_unblock(hc_rt *rt, hc_atom node);

/* A node came up, went down, or a connection attempt to it failed. */
typedef struct hc_node_event {
    hc_atom node;
    bool up;
    /* HC_OK when up. Otherwise why, as a code a program can act on:
     *   HC_EAUTH    the handshake was refused: another cookie, not allowed, wrong node name or flags;
     *   HC_ENOCONN  unreachable (no epmd, not registered, TCP refused), closed by the peer, blocked by
     *               hc_rt_block, or replaced by a newer connection;
     *   HC_ETIMEOUT the connection setup took too long, or the peer was silent for a whole ticktime;
     *   HC_EDECODE / HC_ETOOBIG  we dropped the peer for malformed or oversized input;
     *   HC_EBUSY    we dropped the peer because it stopped reading: its output queue passed max_queue_bytes;
     *   HC_EIO      a socket error; HC_ENOMEM  we ran out of memory;
     *   rarely another HC_E* code (a handshake that broke the protocol's rules: HC_ESTATE). */
    int reason;
    const char *detail; /* the same in words, for logs; valid during the callback */
} hc_node_event;
typedef void (*hc_node_event_cb)(hc_rt *rt, const hc_node_event *ev, void *ud);

/* Calls cb for every node up/down from now on (also for nodes no process talks to). HC_OK with a
 * handle in *handle for hc_rt_unsubscribe_nodes (never 0), or HC_ENOMEM. */
int hc_rt_subscribe_nodes(hc_rt *rt, hc_node_event_cb cb, void *ud, uint64_t *handle);
/* Stops the callbacks of `handle` at once (also from inside one of them). Unknown handles are ignored. */
void hc_rt_unsubscribe_nodes(hc_rt *rt, uint64_t handle);
/* One-shot: cb runs once, when a connection attempt to `node` succeeds (up) or fails (reason as above),
 * starting one if needed. If the node is already up, or blocked, cb runs before this returns. HC_OK
 * (cb will run) or HC_ENOMEM (it will not). */
int hc_rt_on_connect_result(hc_rt *rt, hc_atom node, hc_node_event_cb cb, void *ud);

/* ------------------------------------------------------------------ processes */

/* The caller of a $gen_call; pass it to hc_gen_reply. Read `pid` freely; everything else is private.
 *
 * The tags gen:call uses ([alias | Ref] since OTP 24, a bare Ref before) are held as a compact ref; any
 * other tag is copied byte for byte (inline when short, on the heap when long), so tags of any size can
 * be answered. The `from` given to on_call belongs to the runtime and is valid during the callback only.
 * To reply later, keep a copy made with hc_gen_from_copy() and release it with hc_gen_from_release()
 * (a plain struct assignment is NOT a copy: it would share, then lose, a heap tag). */
typedef struct hc_gen_from {
    hc_pid pid;
    uint8_t kind_; /* private: how the tag is held */
    uint32_t len_; /* private: raw tag length */
    union {
        hc_ref ref;                    /* compact tags */
        uint8_t bytes[sizeof(hc_ref)]; /* raw tags that fit */
    } in_;                             /* private */
    uint8_t *heap_;                    /* private: raw tags that do not fit, owned */
} hc_gen_from;

/* Makes *dst an independent copy of *src (HC_OK or HC_ENOMEM, then *dst is empty: releasing it is
 * harmless, replying to it fails with HC_EINVAL). *dst must later go to hc_gen_from_release. */
int hc_gen_from_copy(hc_gen_from *dst, const hc_gen_from *src);
/* Frees what a copy owns and empties it. Safe on an empty or zeroed hc_gen_from, and twice. */
void hc_gen_from_release(hc_gen_from *from);

/* A monitor this process holds fired (see hc_monitor). */
typedef struct hc_down {
    hc_ref ref;        /* as hc_monitor returned it */
    const hc_pid *pid; /* the target when monitored by pid; NULL when monitored by name */
    hc_atom name;      /* the target's name when monitored by name, else 0 */
    hc_atom node;      /* the target's node */
    hc_span reason;    /* noproc if it never existed, noconnection if its node went away */
} hc_down;

/* An exit signal reached a process that traps exits. */
typedef struct hc_exit_info {
    hc_pid from; /* the linked process that exited, or the sender of exit/2 */
    bool linked; /* true: a link broke; false: an exit/2 (hc_exit_signal) */
    hc_span reason;
} hc_exit_info;

/* What a process does. Every member may be NULL. */
typedef struct hc_proc_ops {
    /* A plain message. `from` is the sender when the protocol carries one (REG_SEND, local sends,
     * hc_proc_send_after: the process itself), else NULL. */
    void (*on_message)(hc_rt *rt, hc_proc *self, const hc_pid *from, const uint8_t *msg, size_t len);
    /* A {'$gen_call', From, Request}. Reply with hc_gen_reply, now or later (then copy `from`).
     * NULL: such requests are delivered to on_message as plain messages. */
    void (*on_call)(hc_rt *rt, hc_proc *self, const hc_gen_from *from, const uint8_t *req, size_t len);
    /* A monitor this process holds fired. */
    void (*on_down)(hc_rt *rt, hc_proc *self, const hc_down *d);
    /* An exit signal (link or exit/2) while trapping exits (hc_proc_set_trap_exit). */
    void (*on_exit_signal)(hc_rt *rt, hc_proc *self, const hc_exit_info *e);
    /* The process is terminating with `reason`: release the state. Links and monitors fire, and the
     * process's timers are cancelled, after this returns. */
    void (*on_terminate)(hc_rt *rt, hc_proc *self, const uint8_t *reason, size_t rlen);
    /* A batch of calls, {'$gen_calls', Pid, [{Tag, Request}, ...]}, is about to be delivered to on_call one by
     * one (begin true), or has been (begin false). The replies to Pid made in between travel together, as one
     * {'$gen_replies', [{Tag, Reply}, ...]} message, after on_batch(false) returns; a process that sends
     * other messages caused by those calls may hold them until then, so that they still precede the replies. */
    void (*on_batch)(hc_rt *rt, hc_proc *self, bool begin);
} hc_proc_ops;

/* Creates a process running `ops` (which must outlive it) with `state` (the caller's; hand it back in
 * on_terminate). If `name` is not 0 the process is registered under it in the same step.
 * Returns HC_OK with the process in *out (out may be NULL), HC_EINVAL (ops NULL), HC_EEXIST (the name
 * is taken), HC_EBUSY (the process table is full) or HC_ENOMEM. On failure nothing was created and
 * on_terminate is not called: the caller still owns `state`. */
int hc_proc_spawn(hc_rt *rt, const hc_proc_ops *ops, void *state, hc_atom name, hc_proc **out);
/* Late registration, or renaming a registered process: HC_OK, HC_EEXIST (taken by another process),
 * HC_EINVAL (name 0 or process dead) or HC_ENOMEM. Most code names its process in hc_proc_spawn. */
int hc_proc_register(hc_rt *rt, hc_proc *p, hc_atom name);
void hc_proc_unregister(hc_rt *rt, hc_proc *p);
hc_proc *hc_proc_whereis(const hc_rt *rt, hc_atom name);     /* NULL if no process has that name */
hc_proc *hc_proc_lookup(const hc_rt *rt, const hc_pid *pid); /* NULL unless a live local process */
const hc_pid *hc_proc_pid(const hc_proc *p);                 /* owned by the process */
hc_atom hc_proc_name(const hc_proc *p);                      /* 0 if unregistered */
void *hc_proc_state(const hc_proc *p);
const hc_proc_ops *hc_proc_get_ops(const hc_proc *p); /* tells what kind of process this is */
void hc_proc_set_trap_exit(hc_proc *p, bool on);
/* Terminates the process with `reason` (copied). Safe to call from the process's own callbacks: the
 * memory is released after the current loop turn. A no-op on a process that already exited. */
void hc_proc_exit(hc_rt *rt, hc_proc *p, const uint8_t *reason, size_t rlen);
bool hc_proc_alive(const hc_proc *p);

/* ------------------------------------------------------------------ process timers */

/* A timer owned by process p: cb(rt, p, ud) runs once after_ms from now, unless cancelled first. It is
 * cancelled automatically when p exits (after on_terminate), so cb never sees a dead process. `ud` is the
 * caller's: nothing frees it (a process that gives its timers heap data frees it in on_terminate, or uses
 * hc_proc_send_after, whose message the runtime owns). HC_OK with the id in *out (out may be NULL),
 * HC_EINVAL (p has exited) or HC_ENOMEM (then *out = 0). */
typedef void (*hc_proc_timer_cb)(hc_rt *rt, hc_proc *self, void *ud);
int hc_proc_timer_start(hc_rt *rt, hc_proc *p, uint64_t after_ms, hc_proc_timer_cb cb, void *ud, hc_timer_id *out);
/* erlang:send_after(After, self(), Msg): after after_ms, `msg` (copied now) is delivered to p as a message
 * from itself, through on_message (or on_call if it is a '$gen_call', as any message would be). Cancel
 * it with hc_proc_timer_cancel. Same results as hc_proc_timer_start. */
int hc_proc_send_after(hc_rt *rt, hc_proc *p, uint64_t after_ms, const uint8_t *msg, size_t len, hc_timer_id *out);
/* True if p's timer `id` was pending and now never fires; false if it fired already, was cancelled, or
 * is not one of p's timers (one process cannot cancel another's). */
bool hc_proc_timer_cancel(hc_rt *rt, hc_proc *p, hc_timer_id id);

/* ------------------------------------------------------------------ signals */

/* Sends `msg` (copied) to a pid, local or remote. `from` may be NULL (then a local receiver sees no
 * sender). Remote sends to unconnected nodes connect first and are queued meanwhile. HC_OK (delivery is
 * never confirmed, as in Erlang; a local pid that is gone drops it), HC_EBUSY if the peer's queue is
 * full, HC_ENOCONN if the node is blocked or unreachable, HC_ENOMEM. */
int hc_send(hc_rt *rt, hc_proc *from, const hc_pid *to, const uint8_t *msg, size_t len);
/* As hc_send with a message built in an hc_buf: if the buffer carries an encoding error (b->err) nothing
 * is sent and that error is returned, so a half-built term never reaches the wire. */
int hc_send_buf(hc_rt *rt, hc_proc *from, const hc_pid *to, const hc_buf *b);
/* Sends to a registered name on `node` (this node if node is 0 or hc_rt_node(rt)). HC_ENOPROC if the
 * name is local and unregistered; HC_EINVAL for a remote name without `from` (REG_SEND needs a sender). */
int hc_send_name(hc_rt *rt, hc_proc *from, hc_atom node, hc_atom name, const uint8_t *msg, size_t len);
/* Monitors a pid, or a name on a node (pid NULL; node 0 = this node). The DOWN arrives through on_down
 * with the ref written to *out, with reason noproc at once if the target does not exist and
 * noconnection if its node goes away. HC_OK, HC_EINVAL (watcher dead) or HC_ENOMEM. */
int hc_monitor(hc_rt *rt, hc_proc *watcher, const hc_pid *pid, hc_atom name, hc_atom node, hc_ref *out);
/* Cancels a monitor: no DOWN will arrive for it. Always HC_OK (unknown refs are ignored). */
int hc_demonitor(hc_rt *rt, hc_proc *watcher, const hc_ref *ref);
/* link/1 and unlink/1. A link to a process that does not exist breaks at once with noproc (and to an
 * unreachable node with noconnection). HC_OK, HC_EINVAL (p dead) or HC_ENOMEM. */
int hc_link(hc_rt *rt, hc_proc *p, const hc_pid *other);
int hc_unlink(hc_rt *rt, hc_proc *p, const hc_pid *other);
/* exit(Pid, Reason): an exit signal to any process. `reason` is copied. */
int hc_exit_signal(hc_rt *rt, hc_proc *from, const hc_pid *to, const uint8_t *reason, size_t rlen);
/* A fresh reference minted by this node. */
void hc_make_ref(hc_rt *rt, hc_ref *out);

/* ------------------------------------------------------------------ gen_server calls */

/* Replies {Tag, Reply} to a caller, by ALIAS_SEND when the caller's tag is an alias (so a reply after the
 * caller gave up is dropped by its node). `reply` is copied. Returns what the send returns (HC_OK,
 * HC_EBUSY, HC_ENOCONN, HC_ENOMEM), or HC_EINVAL for an empty `from`. A `from` can be answered more than
 * once; the caller only takes the first. */
int hc_gen_reply(hc_rt *rt, const hc_gen_from *from, const uint8_t *reply, size_t len);
/* Replies with the term built in `b`. If b->err is set (an encoder failed part-way), the caller gets
 * {error, {encode_failed, Code}} instead, Code being the atom of b->err (enomem, einval, etoobig, ...;
 * see hc_err_atom), so every request is answered. Returns b->err in that case (after replying), else
 * what hc_gen_reply returns. */
int hc_gen_reply_buf(hc_rt *rt, const hc_gen_from *from, const hc_buf *b);
/* Shorthands for the most common replies: the atom `name`, and {error, Reason} with an atom reason. */
int hc_gen_reply_atom(hc_rt *rt, const hc_gen_from *from, const char *name);
int hc_gen_reply_error(hc_rt *rt, const hc_gen_from *from, const char *reason);
/* {ok, Term}, with Term given as ETF bytes. */
int hc_gen_reply_ok(hc_rt *rt, const hc_gen_from *from, const uint8_t *term, size_t len);

/* The atom that names an HC_E* code in replies: "enomem", "einval", "edecode", "etoobig", "enoproc",
 * "enoconn", "ebusy", "eio", "eauth", "eexist", "eversion", "estate", "etimeout"; "unknown" otherwise. */
const char *hc_err_atom(int code);

/* Outcome of a call made by a C process. */
typedef struct hc_call_result {
    /* HC_OK with the reply; HC_ENOPROC (no such process, or it died meanwhile); HC_ENOCONN (its node is
     * unreachable or went down); HC_ETIMEOUT (no reply in time: a late reply is dropped). */
    int status;
    hc_span reply; /* with HC_OK: the reply term, valid during the callback; else {NULL, 0} */
} hc_call_result;
typedef void (*hc_call_cb)(hc_rt *rt, hc_proc *caller, const hc_call_result *res, void *ud);
/* GenServer.call from a C process to `pid`, or to `name` on `node` (pid NULL; node 0 = this node). `req`
 * is copied. The callback runs exactly once, on a later loop iteration, unless the caller exits first
 * (then never: free `ud` in on_terminate if it is yours). HC_OK (the callback will run), HC_EINVAL
 * (caller dead, cb NULL), HC_ENOMEM, HC_EBUSY or HC_ENOCONN (then it will not). */
int hc_gen_call(hc_rt *rt, hc_proc *caller, const hc_pid *pid, hc_atom name, hc_atom node, const uint8_t *req,
                size_t len, uint32_t timeout_ms, hc_call_cb cb, void *ud);

/* Common reasons, pre-encoded (static storage). */
hc_span hc_reason_normal(void);
hc_span hc_reason_shutdown(void);
hc_span hc_reason_noproc(void);
hc_span hc_reason_noconnection(void);
hc_span hc_reason_killed(void);

HC_END_DECLS
#endif
