/* hash.h — the 64-bit hashes the replica depends on.
 *
 * Key hashes decide which Merkle range a key lives in, so every replica of every build must compute the
 * same value: the byte order is fixed (little-endian loads, done byte by byte) and nothing is seeded per
 * process. The mixer is the splitmix64 finaliser; the key hash is a simple multiply-rotate over 8-byte
 * words with that finaliser, fast for the short keys a registry holds and good enough to spread them. */
#ifndef HORDEC_CRDT_HASH_H
#define HORDEC_CRDT_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t crdt_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static inline uint64_t crdt_load_le64(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 |
           (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

static inline uint64_t crdt_hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (n * 0xff51afd7ed558ccdULL);
    while (n >= 8) {
        uint64_t w = crdt_load_le64(p) * 0x87c37b91114253d5ULL;
        w = (w << 31) | (w >> 33);
        h = ((h ^ w) << 27 | (h ^ w) >> 37) * 5 + 0x52dce729;
        p += 8;
        n -= 8;
    }
    uint64_t tail = 0;
    for (size_t i = 0; i < n; i++)
        tail |= (uint64_t)p[i] << (8 * i);
    h ^= tail * 0x4cf5ad432745937fULL;
    return crdt_mix64(h);
}

/* One element's contribution to its entry digest: identified by its dot alone, because a dot names one
 * write, and that write has exactly one value and timestamp. */
static inline uint64_t crdt_dot_hash(uint64_t rid, uint64_t ctr)
{
    return crdt_mix64(rid * 0x9e3779b97f4a7c15ULL + crdt_mix64(ctr));
}

#endif
