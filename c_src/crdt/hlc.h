/* hlc.h — hybrid logical clock packed in one uint64_t: (physical_ms << 16) | logical.
 *
 * Packing makes the HLC rules collapse to two lines: a new local timestamp is max(now << 16, last + 1)
 * (so a logical overflow simply carries into the physical part), and observing a remote timestamp is
 * last = max(last, remote). Ties between replicas are broken by the writer's replica id (see
 * crdt_elem_newer), giving a total order in which a write made after observing another always wins. */
#ifndef HORDEC_CRDT_HLC_H
#define HORDEC_CRDT_HLC_H

#include <stdint.h>

#define CRDT_HLC_PHYS_MAX ((UINT64_C(1) << 48) - 1)

typedef struct crdt_hlc {
    uint64_t last; /* the greatest timestamp issued or observed */
} crdt_hlc;

static inline uint64_t crdt_hlc_pack(uint64_t phys_ms, uint64_t logical)
{
    if (phys_ms > CRDT_HLC_PHYS_MAX)
        phys_ms = CRDT_HLC_PHYS_MAX;
    return (phys_ms << 16) | (logical & 0xffff);
}

/* A fresh timestamp for a local write, strictly greater than everything seen so far — except at the very
 * top of the range, where it saturates: 2^64-1 must never wrap to 0 and lose to every earlier write. (Remote
 * stamps are bounded by the maximum clock offset before they are observed, so only a clock set to the year
 * 10889 gets here.) */
static inline uint64_t crdt_hlc_next(crdt_hlc *c, uint64_t now_ms)
{
    uint64_t phys = crdt_hlc_pack(now_ms, 0);
    c->last = phys > c->last ? phys : c->last == UINT64_MAX ? UINT64_MAX : c->last + 1;
    return c->last;
}

/* The greatest remote stamp a replica accepts when its wall clock reads now_ms: anything stamped more than
 * max_offset_ms ahead of it comes from a clock that is wrong (or from an attacker) and would pin every
 * replica's HLC in the future, so its message is rejected. Saturates instead of wrapping. */
static inline uint64_t crdt_hlc_bound(uint64_t now_ms, uint64_t max_offset_ms)
{
    uint64_t phys = now_ms > UINT64_MAX - max_offset_ms ? UINT64_MAX : now_ms + max_offset_ms;
    return crdt_hlc_pack(phys, 0xffff);
}

static inline void crdt_hlc_observe(crdt_hlc *c, uint64_t remote)
{
    if (remote > c->last)
        c->last = remote;
}

#endif
