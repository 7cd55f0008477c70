/* map.h — the replica's storage: key bytes -> the set of concurrent elements (dot, HLC, value).
 *
 * A chained hash table whose bucket index is the TOP bits of the key hash, so bucket i holds exactly the
 * key-hash range [i << (64 - bits), (i + 1) << (64 - bits)): the Merkle repair can walk any key-hash
 * range by walking consecutive buckets, with no extra index. Growing doubles the table and splits each
 * bucket into two neighbours.
 *
 * Almost every key has one element, so it lives inside the entry (`one`); `elems` points at it, or at a
 * heap array when writes were concurrent. Elements are kept sorted best-first, so elems[0] is the
 * resolved value. The entry digest (sum of the element dot hashes, mixed with the key hash) feeds the
 * Merkle tree; the map keeps tree, digests and counts consistent on every change. */
#ifndef HORDEC_CRDT_MAP_H
#define HORDEC_CRDT_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/blob.h"
#include "crdt/merkle.h"

typedef struct crdt_elem {
    uint64_t rid, ctr; /* the dot */
    uint64_t hlc;
    crdt_blob *val;
} crdt_elem;

typedef struct crdt_entry {
    struct crdt_entry *next;
    uint64_t hash;
    crdt_elem *elems;
    uint32_t n;
    uint32_t key_len;
    crdt_elem one;
    uint8_t key[];
} crdt_entry;

typedef struct crdt_map {
    crdt_entry **buckets;
    uint32_t bits; /* 1 << bits buckets */
    size_t count, elems, key_bytes, value_bytes;
    crdt_merkle tree;
} crdt_map;

/* 1 when a is the better (winning) element: greater HLC, then greater replica id, then counter. */
static inline int crdt_elem_newer(const crdt_elem *a, const crdt_elem *b)
{
    if (a->hlc != b->hlc)
        return a->hlc > b->hlc;
    if (a->rid != b->rid)
        return a->rid > b->rid;
    return a->ctr > b->ctr;
}

int crdt_map_init(crdt_map *m);
void crdt_map_free(crdt_map *m);
static inline size_t crdt_map_nbuckets(const crdt_map *m) { return (size_t)1 << m->bits; }
static inline size_t crdt_map_bucket(const crdt_map *m, uint64_t h) { return (size_t)(h >> (64 - m->bits)); }
crdt_entry *crdt_map_find(const crdt_map *m, const uint8_t *key, size_t key_len, uint64_t hash);
/* Replaces the element set of key with elems[0..n) (any order; n == 0 deletes the key). References to the
 * blobs in elems are transferred to the map; the old elements' references are released. */
int crdt_map_set(crdt_map *m, const uint8_t *key, size_t key_len, uint64_t hash, crdt_elem *elems, uint32_t n);
/* An entry's digest, from its key hash and its dots: computed when needed rather than stored (8 bytes an entry;
 * only crdt_map_set changes elements, and it takes the old digest out of the tree before it does). */
uint64_t crdt_entry_digest(const crdt_entry *e);

#endif
