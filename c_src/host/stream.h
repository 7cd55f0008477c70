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
 * map finds the change already on its way to subscribers when the reply arrives. */
#ifndef HORDEC_HOST_STREAM_H
#define HORDEC_HOST_STREAM_H

#include "host/host.h"

typedef struct hc_stream_sub {
    hc_pid pid;
    uint64_t mon_id; /* the env monitor watching the subscriber */
    uint64_t epoch;
    uint64_t seq; /* of the last message sent */
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
    hc_buf msg; /* scratch for one outgoing message */
} hc_stream;

void hc_stream_init(hc_stream *s, hc_atom name, size_t batch_bytes, uint64_t epoch_base);
void hc_stream_free(hc_stream *s);

/* (Re)subscribes `pid`: sends the snapshot produced by `walk` and returns the new epoch in *epoch.
 * Pending diffs go to the existing subscribers first. HC_OK or HC_ENOMEM. */
int hc_stream_subscribe(hc_stream *s, const hc_host_env *env, const hc_pid *pid, const hc_core_ops *ops,
                        const void *core, uint64_t *epoch);
/* Forgets `pid` (and its monitor when demonitor is true). True if it was subscribed. */
bool hc_stream_unsubscribe(hc_stream *s, const hc_host_env *env, const hc_pid *pid, bool demonitor);
/* A subscriber's monitor fired: forget it. True if the id was one of ours. */
bool hc_stream_down(hc_stream *s, uint64_t mon_id);
/* Queues one change (value NULL: removed); sends a batch when the bound would be exceeded. */
void hc_stream_change(hc_stream *s, const hc_host_env *env, const uint8_t *key, size_t klen, const uint8_t *val,
                      size_t vlen);
/* Sends the pending diffs, if any, to every subscriber. */
void hc_stream_flush(hc_stream *s, const hc_host_env *env);

/* Monitor ids of subscribers are odd; the host gives the core even ids. */
static inline bool hc_stream_is_mon(uint64_t id) { return id & 1; }

#endif
