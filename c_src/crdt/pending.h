/* pending.h — local changes not yet shipped: the set of keys touched since the last flush, each with the
 * dots its operations removed. At flush time each key becomes one delta record carrying its *current*
 * elements plus those removed dots, which coalesces any number of writes to a key into one record. */
#ifndef HORDEC_CRDT_PENDING_H
#define HORDEC_CRDT_PENDING_H

#include <stddef.h>
#include <stdint.h>

#include "hordec/hc_common.h"

typedef struct crdt_pend_rec {
    struct crdt_pend_rec *next; /* hash chain */
    uint64_t hash;
    hc_buf removed; /* CRDT_DOT_BYTES-byte dots */
    uint32_t key_len;
    uint8_t key[];
} crdt_pend_rec;

typedef struct crdt_pending {
    crdt_pend_rec **buckets;
    uint32_t nbuckets;    /* power of two or 0 */
    crdt_pend_rec **recs; /* insertion order, for deterministic batches: the live ones are recs[head .. head + n) */
    size_t head, n, cap;
} crdt_pending;

/* Finds or adds the record for key. NULL on allocation failure. */
crdt_pend_rec *crdt_pending_touch(crdt_pending *p, const uint8_t *key, size_t key_len, uint64_t hash);
int crdt_pending_add_removed(crdt_pend_rec *rec, uint64_t rid, uint64_t ctr);
void crdt_pending_clear(crdt_pending *p); /* frees the records, keeps nothing */
/* Forgets the k oldest records (a flush that shipped only part of the set). */
void crdt_pending_drop_first(crdt_pending *p, size_t k);

#endif
