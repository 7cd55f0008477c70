/* rt_internal.h — the runtime's private state, shared by the files of c_src/runtime/. */
#ifndef HORDEC_RUNTIME_RT_INTERNAL_H
#define HORDEC_RUNTIME_RT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "common/hmap.h"
#include "dist/conn.h"
#include "dist/control.h"
#include "hordec/hc_runtime.h"
#include "runtime/loop.h"

/* A monitor. One struct per monitor, indexed by ref in rt->monitors. */
typedef enum {
    MON_OUT,   /* local watcher, remote target */
    MON_IN,    /* remote watcher, local target */
    MON_LOCAL, /* local watcher, local target */
} mon_kind;

typedef struct hc_mon {
    hc_ref ref;
    mon_kind kind;
    hc_pid watcher;
    hc_pid target; /* the target pid when known (MON_IN/LOCAL always; MON_OUT by pid) */
    bool by_name;  /* target named by registered name */
    hc_atom name;  /* with by_name */
    hc_atom node;  /* the target's node */
    size_t tidx;   /* index in the target process's `watchers` (MON_IN/MON_LOCAL) */
    size_t widx;   /* index in the watcher process's `watching` (MON_OUT/MON_LOCAL) */
} hc_mon;

typedef struct mon_vec {
    hc_mon **v;
    size_t n, cap;
} mon_vec;

struct hc_proc {
    hc_pid pid;
    uint32_t id; /* key in rt->procs: num | serial << 15 */
    hc_atom name;
    const hc_proc_ops *ops;
    void *state;
    bool trap_exit;
    bool dead;
    hc_pid *links;
    size_t nlinks, caplinks;
    mon_vec watchers;           /* monitors on this process */
    mon_vec watching;           /* monitors this process holds */
    struct proc_timer **timers; /* pending timers this process owns, cancelled when it exits */
    size_t ntimers, captimers;
    hc_proc *next_dead;
};

/* A timer owned by a process (hc_proc_timer_start / hc_proc_send_after). The loop owns the struct while
 * it is armed (an owned ud): cancelling it, or freeing the loop, frees it. */
typedef struct proc_timer {
    hc_rt *rt;
    hc_proc *proc;
    hc_timer_id id;
    size_t idx;          /* in proc->timers */
    hc_proc_timer_cb cb; /* NULL: deliver msg[] as a message (send_after) */
    void *ud;
    size_t len;
    uint8_t msg[];
} proc_timer;

typedef struct conn_cb {
    struct conn_cb *next;
    hc_node_event_cb cb;
    void *ud;
} conn_cb;

/* A remote node we know of: connected, connecting, or blocked. */
typedef struct hc_peer {
    hc_atom node;
    hc_conn *conn; /* connecting or up; NULL if none */
    hc_watch watch;
    unsigned watch_gen;
    bool up;
    bool blocked;
    bool waiting_incoming; /* our dial lost a simultaneous connect: the peer's will come in */
    uint64_t wait_deadline;
    uint64_t retry_at;   /* after a failed dial, sends fail fast until then (no dial storm) */
    uint32_t backoff_ms; /* doubles per failure up to a second; reset on success */
    hc_wqueue pending;   /* packets queued before the handshake finished */
    uint64_t flags;      /* negotiated */
    conn_cb *on_result;
} hc_peer;

/* A connection accepted but not yet attached to a peer (the handshake has not named it yet). */
typedef struct anon_conn {
    struct anon_conn *next;
    hc_conn *conn;
    hc_watch watch;
    unsigned watch_gen;
    hc_rt *rt;
    uint32_t addr; /* the peer's IPv4 address, network order: pending handshakes are capped per address */
} anon_conn;

/* A signal between local processes, delivered on the next loop turn so callbacks never re-enter. */
typedef enum { LS_MSG, LS_EXIT, LS_EXIT2, LS_DOWN } local_kind;
typedef struct local_sig {
    struct local_sig *next;
    local_kind kind;
    hc_pid to, from;
    bool has_from;
    hc_ref ref;         /* LS_DOWN */
    bool by_name;       /* LS_DOWN */
    hc_atom name, node; /* LS_DOWN */
    size_t len;
    uint8_t data[]; /* message or reason */
} local_sig;

typedef struct pending_call {
    hc_ref ref; /* also the monitor ref */
    hc_pid caller;
    hc_call_cb cb;
    void *ud;
    hc_timer_id timer;
    hc_rt *rt;
} pending_call;

typedef struct node_sub {
    struct node_sub *next;
    uint64_t handle;
    hc_node_event_cb cb;
    void *ud;
} node_sub;

#define RT_COOKIE_MAX 1024 /* bytes, with the terminating NUL */

struct hc_rt {
    hc_rt_config cfg;
    char node_name[HC_NODE_NAME_MAX];
    char cookie[RT_COOKIE_MAX];
    hc_atom node;
    uint32_t creation;
    uint16_t port;
    hc_loop *loop;
    hc_conn_config conn_cfg;
    hc_conn_hooks peer_hooks, anon_hooks;
    int listen_fd;
    hc_watch listen_watch;
    int epmd_fd;
    atomic_int stopping; /* set by hc_rt_stop from any thread or a signal handler */

    hc_hmap procs;    /* id -> hc_proc */
    hc_hmap names;    /* atom -> hc_proc */
    hc_hmap peers;    /* atom -> hc_peer */
    hc_hmap monitors; /* ref hash -> hc_mon */
    hc_hmap calls;    /* ref hash -> pending_call */
    uint32_t next_proc_id;
    uint32_t ref_counter[3];
    uint64_t next_unlink_id;

    anon_conn *anon;
    local_sig *lq_head, *lq_tail;
    local_sig *lq_run; /* the rest of the batch rt_local_run is delivering */
    hc_proc *dead;     /* exited, freed after the current turn */
    hc_conn *closed;   /* graveyard of connections, freed after the current turn (chained via ud) */
    hc_conn **graveyard;
    size_t ngrave, capgrave;
    node_sub *subs;
    uint64_t next_sub;
    hc_timer_id tick_timer;

    /* hc_rt_post: the only state other threads touch, behind post_lock. */
    pthread_mutex_t post_lock;
    struct post_item *post_head, *post_tail;
    bool post_closed; /* hc_rt_free has begun */
    bool post_lock_ready;
    int wake_fd; /* eventfd: a post or a stop wakes the loop */
    hc_watch wake_watch;
    unsigned notifying; /* > 0 while node subscribers are being called (unsubscribe then only marks) */

    hc_buf scratch; /* reused control-message encoding buffer */
    hc_rt_stats stats;
    hc_rt_loop_stats loop_stats;

    /* Accepting under pressure (node.c). */
    size_t nanon;             /* connections in rt->anon (pending incoming handshakes) */
    size_t nconns;            /* hc_conn objects alive: anon, peers', and the graveyard until reaped */
    hc_timer_id accept_timer; /* set while accepting is paused after EMFILE/ENFILE */
    uint64_t shed_log_at;     /* refused incoming connections are logged once per interval, with a count */
    uint64_t shed_count;
    const char *shed_why;
    uint64_t anon_log_window_end; /* failed handshakes: log lines in the current window, and those held back */
    uint64_t anon_log_lines, anon_log_suppressed;

    /* gen.c: the {'$gen_calls', Pid, Calls} batch being delivered (proc NULL when none) and the replies to
     * Pid made meanwhile, encoded {Tag, Reply} elements sent together when the batch ends. */
    struct {
        hc_proc *proc;
        hc_pid pid;
        hc_buf replies;
        uint32_t n;
    } batch;

    const struct hc_worker_type **wtypes; /* worker.c: registered worker types (borrowed), in order */
    size_t nwtypes, capwtypes;
};

/* node.c */
int rt_nodes_init(hc_rt *rt, char *err, size_t errlen);
void rt_nodes_free(hc_rt *rt);
hc_peer *rt_peer_get(const hc_rt *rt, hc_atom node);
/* Queues a control packet (+ optional message) for `node`, connecting first if needed. */
int rt_send_packet(hc_rt *rt, hc_atom node, const hc_buf *ctrl, const uint8_t *msg, size_t mlen);
void rt_flush_all(hc_rt *rt);
void rt_reap_conns(hc_rt *rt);
void rt_nodes_tick(hc_rt *rt); /* tick duty, rx timeouts, setup deadlines */

/* proc.c */
hc_proc *rt_proc_by_pid(const hc_rt *rt, const hc_pid *pid);
void rt_reap_procs(hc_rt *rt);
/* Delivers a message to a local process (gen_call dispatch, call replies, plain messages). */
void rt_deliver(hc_rt *rt, hc_proc *p, const hc_pid *from, const uint8_t *msg, size_t len);
void rt_deliver_exit(hc_rt *rt, hc_proc *p, const hc_pid *from, const uint8_t *reason, size_t rlen, bool is_exit2);
bool rt_link_add(hc_proc *p, const hc_pid *other);
bool rt_link_del(hc_proc *p, const hc_pid *other);

/* post.c */
int rt_post_init(hc_rt *rt, char *err, size_t errlen);
void rt_post_close(hc_rt *rt); /* refuses new posts and runs the pending ones */
void rt_post_free(hc_rt *rt);
void rt_wake(hc_rt *rt); /* async-signal-safe */

/* timer.c */
void rt_proc_timers_cancel_all(hc_rt *rt, hc_proc *p);

/* signal.c */
void rt_local_enqueue(hc_rt *rt, local_kind kind, const hc_pid *to, const hc_pid *from, const uint8_t *data,
                      size_t len);
void rt_local_enqueue_down(hc_rt *rt, const hc_pid *to, const hc_ref *ref, const hc_pid *target, bool by_name,
                           hc_atom name, hc_atom node, const uint8_t *reason, size_t len);
void rt_local_run(hc_rt *rt);
void rt_local_free(hc_rt *rt);
hc_mon *rt_mon_find(const hc_rt *rt, const hc_ref *ref);
void rt_mon_unlink(hc_rt *rt, hc_mon *m); /* removes from all indexes and frees */
void rt_mon_fire_target(hc_rt *rt, hc_proc *p, const uint8_t *reason, size_t rlen);
void rt_mon_drop_watching(hc_rt *rt, hc_proc *p);
void rt_node_down_signals(hc_rt *rt, hc_atom node);
int rt_dispatch_packet(hc_rt *rt, hc_peer *peer, const uint8_t *p, size_t len);
int mon_vec_push(mon_vec *v, hc_mon *m, size_t *idx);
void mon_vec_remove(mon_vec *v, size_t idx, bool target_side);

/* gen.c */
bool rt_gen_try_call(hc_rt *rt, hc_proc *p, const uint8_t *msg, size_t len);
bool rt_gen_try_calls(hc_rt *rt, hc_proc *p, const uint8_t *msg, size_t len);
bool rt_gen_try_reply(hc_rt *rt, hc_proc *p, const uint8_t *msg, size_t len);
void rt_gen_on_down(hc_rt *rt, hc_proc *p, const hc_ref *ref, const uint8_t *reason, size_t rlen, bool *handled);
void rt_gen_drop_caller(hc_rt *rt, hc_proc *p);

extern const uint8_t rt_atom_normal[], rt_atom_kill[], rt_atom_killed[], rt_atom_noproc[], rt_atom_noconnection[],
    rt_atom_shutdown[];
extern const size_t rt_atom_normal_len, rt_atom_kill_len, rt_atom_killed_len, rt_atom_noproc_len,
    rt_atom_noconnection_len, rt_atom_shutdown_len;
bool rt_term_is(const uint8_t *t, size_t len, const uint8_t *want, size_t wlen);

#endif
