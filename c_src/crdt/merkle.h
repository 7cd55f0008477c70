/* merkle.h — incrementally maintained hashes over key-hash ranges.
 *
 * A complete binary tree of fixed depth CRDT_MERKLE_DEPTH over the 64-bit key-hash space: node (level l,
 * index i) covers the key hashes whose top l bits equal i. Each node stores the wrapping sum of the
 * digests of the entries in its range and their count. Sums are order-independent, so a put or delete
 * updates one leaf and its ancestors in O(depth) without rehashing anything, and two replicas holding
 * the same entries in a range have the same node — whatever the order their writes arrived in.
 *
 * The depth is part of the wire protocol (both sides must agree on ranges). */
#ifndef HORDEC_CRDT_MERKLE_H
#define HORDEC_CRDT_MERKLE_H

#include <stdint.h>

#define CRDT_MERKLE_DEPTH 12
#define CRDT_MERKLE_NODES ((1u << (CRDT_MERKLE_DEPTH + 1)) - 1)

typedef struct crdt_merkle {
    uint64_t *sum; /* heap order: node (l, i) at (1 << l) - 1 + i */
    uint32_t *count;
} crdt_merkle;

int crdt_merkle_init(crdt_merkle *t);
void crdt_merkle_free(crdt_merkle *t);
void crdt_merkle_clear(crdt_merkle *t);
/* Adds (sign = +1) or removes (sign = -1) one entry's digest at key hash h. */
void crdt_merkle_update(crdt_merkle *t, uint64_t h, uint64_t digest, int sign);

static inline uint32_t crdt_merkle_index(uint32_t level, uint32_t i) { return (1u << level) - 1 + i; }
static inline uint64_t crdt_merkle_lo(uint32_t level, uint32_t i) { return level ? (uint64_t)i << (64 - level) : 0; }
static inline uint64_t crdt_merkle_hi(uint32_t level, uint32_t i)
{
    return level ? crdt_merkle_lo(level, i) + ((UINT64_C(1) << (64 - level)) - 1) : UINT64_MAX;
}

#endif
