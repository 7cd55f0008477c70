/* stream.h — a change stream that a subscriber can mirror exactly.
 *
 * Each subscriber gets, as plain messages {hordec_stream, Name, Epoch, Seq, Body}:
 *   first a snapshot of the core's observable map in parts, Body = {snapshot, [{K, V}], More}, More true on
 *   every part but the last (an empty map is one part []);
 *   then diff batches, Body = {diffs, [{add, K, V} | {remove, K}]}, in the order the changes happened.
 * Seq counts 1, 2, 3... per subscription and Epoch is new for every (re)subscription, so a subscriber that
 * sees a gap, or doubts anything, subscribes again and converges from a fresh snapshot. Every payload
 * (the list) is at most `batch_bytes` of encoded entries, except that a single entry larger than that
 * travels alone. Diffs are flushed before any reply leaves the host, so a caller whose request changed the
 * map finds the change already on its way to subscribers when the reply arrives.
 *
 * A big snapshot (over HC_STREAM_SNAP_AT_ONCE entries, from a core that can hand out its map a slice at a time:
 * hc_core_ops.snapshot_open) is sent over several loop turns, HC_STREAM_SNAP_SLICE entries per hc_stream_run for
 * all subscribers together, so that one subscription never holds the loop. It is still the map of the moment of
 * the subscription: the core's reader keeps what changes ahead of it, and the diffs made meanwhile wait, for that
 * subscriber only, until its last snapshot part is out. The subscribe call is answered after that, as it is when
 * the snapshot goes out at once: on the wire nothing differs but the time it takes. */
#ifndef HORDEC_HOST_STREAM_H
#define HORDEC_HOST_STREAM_H

#include "host/host.h"

#define HC_STREAM_SNAP_AT_ONCE 4096
#define HC_STREAM_SNAP_SLICE 8192

typedef struct hc_stream_snap hc_stream_snap; /* a snapshot being sent a slice at a time (stream.c) */

typedef struct hc_stream_sub {
    hc_pid pid;
    uint64_t mon_id; /* the env monitor watching the subscriber */
    uint64_t epoch;
    uint64_t seq;         /* of the last message sent */
    hc_stream_snap *snap; /* while its snapshot is still being sent; NULL once it is live */
} hc_stream_sub;

typedef struct hc_stream {
    hc_atom name;
    size_t batch_bytes;
    uint64_t next_epoch;
    uint64_t next_mon;
    hc_stream_sub *subs;
    size_t nsubs, capsubs;
    hc_buf items; /* encoded diff entries not yet sent */
    uint32_t n_items;
    hc_buf msg;    /* scratch for one outgoing message */
    size_t nsnaps; /* subscribers whose snapshot is still being sent */
} hc_stream;

void hc_stream_init(hc_stream *s, hc_atom name, size_t batch_bytes, uint64_t epoch_base);
void hc_stream_free(hc_stream *s);

/* (Re)subscribes `pid` for the call behind `token` and sends it the snapshot of `core`'s observable map, then
 * answers the call {ok, Epoch} (env->reply) — now, or after the last part of a big snapshot (hc_stream_run).
 * Pending diffs go to the existing subscribers first. A resubscription while the pid's previous snapshot is still
 * being sent abandons that one and answers its call {error, resubscribed}. HC_OK, or HC_ENOMEM: nothing changed
 * and nothing was answered (the caller answers {error, enomem}). */
int hc_stream_subscribe(hc_stream *s, const hc_host_env *env, uint64_t token, const hc_pid *pid, const hc_core_ops *ops,
                        void *core);
/* True while some subscriber's snapshot is still being sent: call hc_stream_run at the next loop turn. */
static inline bool hc_stream_busy(const hc_stream *s) { return s->nsnaps != 0; }
/* Sends the next slice of the snapshots in progress (HC_STREAM_SNAP_SLICE entries in all, oldest subscription
 * first); a finished one is followed by the diffs made since its subscription, then its call is answered. A
 * snapshot that fails (out of memory) ends that subscription: its call is answered {error, enomem}. */
void hc_stream_run(hc_stream *s, const hc_host_env *env);
/* Forgets `pid` (and its monitor when demonitor is true). True if it was subscribed. A subscribe call still
 * waiting for its snapshot is answered {ok, Epoch} first (it subscribed, then left). */
bool hc_stream_unsubscribe(hc_stream *s, const hc_host_env *env, const hc_pid *pid, bool demonitor);
/* A subscriber's monitor fired: forget it (answering a waiting subscribe call as above). True if the id was one of
 * ours. */
bool hc_stream_down(hc_stream *s, const hc_host_env *env, uint64_t mon_id);
/* Queues one change (value NULL: removed); sends a batch when the bound would be exceeded. */
void hc_stream_change(hc_stream *s, const hc_host_env *env, const uint8_t *key, size_t klen, const uint8_t *val,
                      size_t vlen);
/* Sends the pending diffs, if any, to every subscriber. */
void hc_stream_flush(hc_stream *s, const hc_host_env *env);

/* Monitor ids of subscribers are odd; the host gives the core even ids. */
static inline bool hc_stream_is_mon(uint64_t id) { return id & 1; }

#endif
