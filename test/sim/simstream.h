/* simstream.h — a subscriber of a host's change stream (c_src/host/stream.h) that mirrors the map exactly,
 * as a BEAM client's ETS mirror does: any core's stream, so the registry and supervisor simulations can
 * reuse it.
 *
 * It reads every message with the public decoders and sorts what it sees into three kinds:
 *   - fine: the next message of its subscription (applied), a duplicate (seq already seen) or a message
 *     of an older subscription (epoch not ours): the last two are ignored;
 *   - doubtful: a gap in the sequence, or bytes that are not one whole term (a damaged copy: ETF is
 *     prefix-free, so a truncated term never reads as a whole one): m->doubt is set and the owner
 *     resubscribes, which is the stream's answer to every doubt;
 *   - impossible: a whole term of the right subscription that breaks the protocol (wrong shape, diffs
 *     before the snapshot ended, a payload over the bound with more than one entry, a removal of an absent
 *     key, an "add" that changes nothing, a key twice in one snapshot): a bug in the host or core, so
 *     simmirror_receive fails with a description. */
#ifndef HORDEC_SIM_SIMSTREAM_H
#define HORDEC_SIM_SIMSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/hmap.h"
#include "hordec/hc_core.h"

/* Called for every entry applied: a snapshot entry (snapshot true, old NULL) or a change (val NULL: the key
 * was removed; old NULL: it was absent). Non-zero makes the message a protocol violation. */
typedef int (*simmirror_change_fn)(void *ud, bool snapshot, const uint8_t *key, size_t klen, const uint8_t *old,
                                   size_t olen, const uint8_t *val, size_t vlen);

typedef struct simmirror_item {
    bool remove;
    const uint8_t *key, *val;
    size_t klen, vlen;
} simmirror_item;

typedef struct simmirror {
    hc_atom stream; /* the Name the stream's messages carry */
    size_t bound;   /* the host's stream_batch_bytes */
    uint64_t epoch; /* 0: no subscription */
    uint64_t seq;   /* the last message applied */
    bool snapshotting, doubt;
    hc_hmap map; /* key hash -> entry */
    size_t size;
    simmirror_change_fn on_change;
    void *ud;
    simmirror_item *items; /* scratch: the entries of the message being read */
    size_t capitems;
    /* what it saw */
    uint64_t msgs, applied, dups, stale, gaps, damaged, subscriptions, max_payload;
} simmirror;

void simmirror_init(simmirror *m, hc_atom stream, size_t bound, simmirror_change_fn fn, void *ud);
void simmirror_free(simmirror *m);
/* A new subscription whose reply was `reply` ({ok, Epoch}): forgets the map and expects a snapshot.
 * HC_OK, or HC_EDECODE for any other reply. */
int simmirror_subscribed(simmirror *m, const uint8_t *reply, size_t len);
/* The subscription is gone (unsubscribed, or the replica died): everything is ignored until the next. */
void simmirror_detach(simmirror *m);
/* One message that arrived. HC_OK (applied, ignored, or m->doubt set), or HC_ESTATE with `why` filled for
 * a protocol violation. */
int simmirror_receive(simmirror *m, const uint8_t *msg, size_t len, char *why, size_t why_len);
/* Subscribed, the snapshot complete and nothing in doubt. */
static inline bool simmirror_synced(const simmirror *m) { return m->epoch && !m->snapshotting && !m->doubt; }
/* The mirror's value for key (borrowed), or NULL. */
const uint8_t *simmirror_get(const simmirror *m, const uint8_t *key, size_t klen, size_t *vlen);
/* Compares the mirror with the map `walk` visits: HC_OK when they are exactly equal, else HC_ESTATE with
 * the first difference in `why`. */
typedef int (*simmirror_walk_fn)(const void *src, hc_core_visit_fn fn, void *ud);
int simmirror_compare(const simmirror *m, simmirror_walk_fn walk, const void *src, char *why, size_t why_len);

#endif
