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

/* A fresh timestamp for a local write, strictly greater than everything seen so far. */
static inline uint64_t crdt_hlc_next(crdt_hlc *c, uint64_t now_ms)
{
    uint64_t phys = crdt_hlc_pack(now_ms, 0);
    c->last = phys > c->last ? phys : c->last + 1;
    return c->last;
}

static inline void crdt_hlc_observe(crdt_hlc *c, uint64_t remote)
{
    if (remote > c->last)
        c->last = remote;
}

#endif
