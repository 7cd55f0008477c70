/* host.h — the one adapter between the outside world and any sans-I/O core (hc_core.h).
 *
 * A host runs one replica of one named core: it owns the peer table ({name, node} <-> handle), wraps and
 * unwraps peer messages in the {'$hordec_replica', SenderName, Msg} envelope and drops those that do not
 * come from a neighbour, keeps one wake-up armed at the earliest of the core's deadline and its own
 * re-dial timer, re-dials neighbours whose node is down, serves subscribers a change stream (stream.h),
 * answers the requests every core shares (set_neighbours, stream_subscribe, stream_unsubscribe, stats)
 * and passes the rest to the core, then turns the core's effects into sends, replies, monitors and exits.
 *
 * The host itself does no I/O either: it talks to the world through hc_host_env, which the runtime
 * binding (host_rt.c, a C process in hordec) and the simulator each implement. So everything here runs
 * under seeded faults in the simulator exactly as it runs in hordec. */
#ifndef HORDEC_HOST_HOST_H
#define HORDEC_HOST_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hordec/hc_core.h"

typedef struct hc_host hc_host;

/* The world as the host sees it. Every function is called from inside an hc_host_* call. */
typedef struct hc_host_env {
    void *ud;
    /* Sends `msg` to the process registered as `name` on `node` (ours included). A failed send is a lost
     * message: cores re-send what matters. */
    void (*send_name)(void *ud, hc_atom node, hc_atom name, const uint8_t *msg, size_t len);
    void (*send_pid)(void *ud, const hc_pid *to, const uint8_t *msg, size_t len);
    /* Answers the call behind `token` (the token the env passed to hc_host_request). */
    void (*reply)(void *ud, uint64_t token, const uint8_t *reply, size_t len);
    /* Monitors `pid` under the host's `id`; when it fires, the env calls hc_host_monitor_down with that id
     * (also for noproc / noconnection). HC_OK or an error (then no down will come). */
    int (*monitor)(void *ud, const hc_pid *pid, uint64_t id);
    void (*demonitor)(void *ud, uint64_t id);
    void (*exit)(void *ud, const hc_pid *to, const uint8_t *reason, size_t len);
    /* Arms the host's single wake-up for monotonic time `at` (replacing any earlier one); HC_NO_DEADLINE
     * disarms it. When it fires the env calls hc_host_tick. */
    void (*wake_at)(void *ud, uint64_t at);
    /* Starts connecting to `node` if it is not connected (never blocks). */
    void (*connect)(void *ud, hc_atom node);
    bool (*is_connected)(void *ud, hc_atom node);
    /* Carries out an HC_EFF_LOCAL action (may be NULL: such actions are dropped). A term appended to `result`
     * is fed back to the core (ops->local) once the current effects are drained. */
    void (*local)(void *ud, const uint8_t *action, size_t len, hc_buf *result);
} hc_host_env;

#define HC_HOST_STREAM_BATCH_BYTES 65536u
#define HC_HOST_REDIAL_MS 200u

typedef struct hc_host_config {
    hc_atom name;              /* this replica's registered name, sent as the sender in envelopes */
    hc_atom node;              /* this node (a neighbour on it with our name is ourselves) */
    size_t stream_batch_bytes; /* bound on a change-stream message's payload (0: HC_HOST_STREAM_BATCH_BYTES) */
    uint64_t epoch_base;       /* stream epochs count up from here: make it differ per host instance */
} hc_host_config;

/* Creates a host around `core` (the host owns it from now on, also on failure: ops->free is called).
 * HC_OK, HC_EINVAL or HC_ENOMEM. */
int hc_host_new(const hc_host_config *cfg, const hc_host_env *env, const hc_core_ops *ops, void *core, hc_host **out);
/* Frees the host and its core. Subscriber monitors are left to the env (a dying process drops them). */
void hc_host_free(hc_host *h);
/* Frees the host but not its core, which it hands back (the caller owns it again, e.g. to run it in a new
 * host: the simulator restarts a replica with its state this way). Monitors are left to the env, as above. */
void *hc_host_release(hc_host *h);

/* Inputs, each followed by the effects it caused. */
void hc_host_message(hc_host *h, const hc_pid *from, const uint8_t *msg, size_t len, hc_time now);
void hc_host_request(hc_host *h, uint64_t token, const hc_pid *from, const uint8_t *req, size_t len, hc_time now);
void hc_host_tick(hc_host *h, hc_time now);
void hc_host_node_event(hc_host *h, hc_atom node, bool up, hc_time now);
void hc_host_monitor_down(hc_host *h, uint64_t id, const hc_pid *pid, const uint8_t *reason, size_t len, hc_time now);
/* A term for the core from the process hosting it (ops->local; ignored by cores without one). */
void hc_host_local(hc_host *h, const uint8_t *msg, size_t len, hc_time now);

/* While held, change-stream diffs collect instead of leaving before each reply and after each input; releasing
 * sends them. For a batch of requests whose replies the env also holds until the batch ends (so the diffs
 * still precede them): N requests then cost each subscriber one stream message instead of N. */
void hc_host_hold_stream(hc_host *h, bool hold);

/* Introspection for tests and the simulator. */
void *hc_host_core(const hc_host *h);
size_t hc_host_subscribers(const hc_host *h);
uint64_t hc_host_dropped_in(const hc_host *h);
/* Appends the replica's stats map (what a `stats` request answers) to out. HC_OK or the encoder's error. */
int hc_host_enc_stats(const hc_host *h, hc_buf *out);

#endif
