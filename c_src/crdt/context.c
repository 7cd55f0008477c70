/* context.c — exact causal context: per replica a contiguous base plus a hash set of counters above it. */
#include "crdt/context.h"

#include <stdlib.h>
#include <string.h>

#include "crdt/hash.h"

/* ---- cloud: open addressing with linear probing and backward-shift deletion (no tombstones) ---- */

static uint32_t cloud_slot(const crdt_cloud *s, uint64_t v) { return (uint32_t)crdt_mix64(v) & (s->cap - 1); }

static int cloud_has(const crdt_cloud *s, uint64_t v)
{
    if (!s->n)
        return 0;
    for (uint32_t i = cloud_slot(s, v);; i = (i + 1) & (s->cap - 1)) {
        if (s->slots[i] == v)
            return 1;
        if (s->slots[i] == 0)
            return 0;
    }
}

static int cloud_insert(crdt_cloud *s, uint64_t v);

static int cloud_grow(crdt_cloud *s)
{
    uint32_t cap = s->cap ? s->cap * 2 : 8;
    if (cap < s->cap)
        return HC_ENOMEM;
    crdt_cloud bigger = {calloc(cap, sizeof(uint64_t)), cap, 0};
    if (!bigger.slots)
        return HC_ENOMEM;
    for (uint32_t i = 0; i < s->cap; i++)
        if (s->slots[i])
            cloud_insert(&bigger, s->slots[i]);
    free(s->slots);
    *s = bigger;
    return HC_OK;
}

static int cloud_insert(crdt_cloud *s, uint64_t v)
{
    /* keep the load factor at or under 1/2 so probes stay short */
    if ((s->n + 1) * 2 > s->cap) {
        int rc = cloud_grow(s);
        if (rc)
            return rc;
    }
    for (uint32_t i = cloud_slot(s, v);; i = (i + 1) & (s->cap - 1)) {
        if (s->slots[i] == v)
            return HC_OK;
        if (s->slots[i] == 0) {
            s->slots[i] = v;
            s->n++;
            return HC_OK;
        }
    }
}

static void cloud_remove(crdt_cloud *s, uint64_t v)
{
    if (!s->n)
        return;
    uint32_t mask = s->cap - 1, i = cloud_slot(s, v);
    while (s->slots[i] != v) {
        if (s->slots[i] == 0)
            return;
        i = (i + 1) & mask;
    }
    /* shift back later members of the probe run that would otherwise become unreachable */
    for (uint32_t j = (i + 1) & mask; s->slots[j]; j = (j + 1) & mask) {
        uint32_t home = cloud_slot(s, s->slots[j]);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            s->slots[i] = s->slots[j];
            i = j;
        }
    }
    s->slots[i] = 0;
    s->n--;
}

/* ---- replicas ---- */

/* Index of the first replica whose id is >= rid (reps are sorted by id). */
static uint32_t rep_lower_bound(const crdt_ctx *c, uint64_t rid)
{
    uint32_t lo = 0, hi = c->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (c->reps[mid].rid < rid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static crdt_ctx_rep *rep_find(const crdt_ctx *c, uint64_t rid)
{
    uint32_t lo = rep_lower_bound(c, rid);
    return lo < c->n && c->reps[lo].rid == rid ? &c->reps[lo] : NULL;
}

static crdt_ctx_rep *rep_get(crdt_ctx *c, uint64_t rid)
{
    uint32_t lo = rep_lower_bound(c, rid);
    if (lo < c->n && c->reps[lo].rid == rid)
        return &c->reps[lo];
    if (c->n == c->cap) {
        uint32_t cap = c->cap ? c->cap * 2 : 4;
        crdt_ctx_rep *p = realloc(c->reps, cap * sizeof *p);
        if (!p)
            return NULL;
        c->reps = p;
        c->cap = cap;
    }
    memmove(&c->reps[lo + 1], &c->reps[lo], (c->n - lo) * sizeof *c->reps);
    memset(&c->reps[lo], 0, sizeof *c->reps);
    c->reps[lo].rid = rid;
    c->n++;
    return &c->reps[lo];
}

/* Moves counters that became contiguous with base out of the cloud. */
static void rep_compact(crdt_ctx_rep *r)
{
    while (r->cloud.n && cloud_has(&r->cloud, r->base + 1)) {
        cloud_remove(&r->cloud, r->base + 1);
        r->base++;
    }
}

/* Raises base to at least `base`, dropping cloud members it now covers. */
static int rep_raise(crdt_ctx_rep *r, uint64_t base)
{
    if (base <= r->base)
        return HC_OK;
    r->base = base;
    if (r->cloud.n) {
        crdt_cloud old = r->cloud;
        r->cloud = (crdt_cloud){0};
        for (uint32_t i = 0; i < old.cap; i++)
            if (old.slots[i] > base) {
                int rc = cloud_insert(&r->cloud, old.slots[i]);
                if (rc) {
                    free(r->cloud.slots);
                    r->cloud = old;
                    return rc;
                }
            }
        free(old.slots);
    }
    rep_compact(r);
    return HC_OK;
}

static int rep_add(crdt_ctx_rep *r, uint64_t ctr)
{
    if (ctr <= r->base)
        return HC_OK;
    if (ctr == r->base + 1) {
        r->base++;
        rep_compact(r);
        return HC_OK;
    }
    return cloud_insert(&r->cloud, ctr);
}

void crdt_ctx_init(crdt_ctx *c) { memset(c, 0, sizeof *c); }

void crdt_ctx_free(crdt_ctx *c)
{
    for (uint32_t i = 0; i < c->n; i++)
        free(c->reps[i].cloud.slots);
    free(c->reps);
    memset(c, 0, sizeof *c);
}

int crdt_ctx_has(const crdt_ctx *c, uint64_t rid, uint64_t ctr)
{
    const crdt_ctx_rep *r = rep_find(c, rid);
    return r && (ctr <= r->base || cloud_has(&r->cloud, ctr));
}

int crdt_ctx_add(crdt_ctx *c, uint64_t rid, uint64_t ctr)
{
    if (!ctr)
        return HC_OK;
    crdt_ctx_rep *r = rep_get(c, rid);
    return r ? rep_add(r, ctr) : HC_ENOMEM;
}

uint64_t crdt_ctx_base(const crdt_ctx *c, uint64_t rid)
{
    const crdt_ctx_rep *r = rep_find(c, rid);
    return r ? r->base : 0;
}

int crdt_ctx_merge(crdt_ctx *dst, const crdt_ctx *src)
{
    for (uint32_t i = 0; i < src->n; i++) {
        const crdt_ctx_rep *s = &src->reps[i];
        crdt_ctx_rep *d = rep_get(dst, s->rid);
        if (!d)
            return HC_ENOMEM;
        int rc = rep_raise(d, s->base);
        for (uint32_t j = 0; !rc && j < s->cloud.cap; j++)
            if (s->cloud.slots[j])
                rc = rep_add(d, s->cloud.slots[j]);
        if (rc)
            return rc;
    }
    return HC_OK;
}

int crdt_ctx_copy(crdt_ctx *dst, const crdt_ctx *src)
{
    crdt_ctx_init(dst);
    int rc = crdt_ctx_merge(dst, src);
    if (rc)
        crdt_ctx_free(dst);
    return rc;
}

uint64_t crdt_ctx_hash(const crdt_ctx *c)
{
    /* a sum of per-replica terms is independent of how the cloud set happens to be laid out */
    uint64_t h = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        const crdt_ctx_rep *r = &c->reps[i];
        uint64_t cloud = 0;
        for (uint32_t j = 0; j < r->cloud.cap; j++)
            if (r->cloud.slots[j])
                cloud += crdt_mix64(r->cloud.slots[j] ^ 0x5bd1e995);
        if (r->base || r->cloud.n)
            h += crdt_mix64(r->rid ^ crdt_mix64(r->base + crdt_mix64(cloud)));
    }
    return h;
}

size_t crdt_ctx_cloud_size(const crdt_ctx *c)
{
    size_t n = 0;
    for (uint32_t i = 0; i < c->n; i++)
        n += c->reps[i].cloud.n;
    return n;
}

/* ---- serialisation: records of rid:64 base:64 count:32 counter:64*count, big-endian ---- */

#define REC_HEAD 20u

int crdt_ctx_encode_pieces(const crdt_ctx *c, size_t max_piece, hc_buf **pieces, size_t *n_pieces)
{
    *pieces = NULL;
    *n_pieces = 0;
    if (max_piece < REC_HEAD + 8)
        return HC_EINVAL;
    size_t n = 0, cap = 0;
    hc_buf *out = NULL;
    int rc = HC_OK;
#define NEW_PIECE()                                                                                                    \
    do {                                                                                                               \
        if (n == cap) {                                                                                                \
            size_t nc = cap ? cap * 2 : 2;                                                                             \
            hc_buf *p = realloc(out, nc * sizeof *p);                                                                  \
            if (!p) {                                                                                                  \
                rc = HC_ENOMEM;                                                                                        \
                goto fail;                                                                                             \
            }                                                                                                          \
            out = p;                                                                                                   \
            cap = nc;                                                                                                  \
        }                                                                                                              \
        out[n++] = (hc_buf){0};                                                                                        \
    } while (0)
    NEW_PIECE();
    for (uint32_t i = 0; i < c->n; i++) {
        const crdt_ctx_rep *r = &c->reps[i];
        uint32_t j = 0, left = r->cloud.n;
        uint64_t base = r->base;
        do {
            if (out[n - 1].len + REC_HEAD + (left ? 8 : 0) > max_piece)
                NEW_PIECE();
            hc_buf *b = &out[n - 1];
            size_t room = (max_piece - b->len - REC_HEAD) / 8;
            uint32_t take = left < room ? left : (uint32_t)room;
            if ((rc = hc_buf_put_be64(b, r->rid)) || (rc = hc_buf_put_be64(b, base)) || (rc = hc_buf_put_be32(b, take)))
                goto fail;
            for (uint32_t t = 0; t < take; j++) {
                if (!r->cloud.slots[j])
                    continue;
                if ((rc = hc_buf_put_be64(b, r->cloud.slots[j])))
                    goto fail;
                t++;
            }
            left -= take;
            base = 0; /* a continuation record only carries more cloud members */
        } while (left);
    }
#undef NEW_PIECE
    *pieces = out;
    *n_pieces = n;
    return HC_OK;
fail:
    for (size_t k = 0; k < n; k++)
        hc_buf_free(&out[k]);
    free(out);
    return rc;
}

int crdt_ctx_check_piece(const uint8_t *p, size_t len, uint64_t rid, uint64_t *max_ctr)
{
    uint64_t max = 0;
    for (size_t off = 0; off < len;) {
        if (len - off < REC_HEAD)
            return HC_EDECODE;
        uint64_t r = hc_get_be64(p + off), base = hc_get_be64(p + off + 8);
        uint32_t cnt = hc_get_be32(p + off + 16);
        off += REC_HEAD;
        if (!r || cnt > (len - off) / 8)
            return HC_EDECODE;
        if (r == rid && base > max)
            max = base;
        for (uint32_t k = 0; k < cnt; k++, off += 8) {
            uint64_t ctr = hc_get_be64(p + off);
            if (!ctr)
                return HC_EDECODE;
            if (r == rid && ctr > max)
                max = ctr;
        }
    }
    if (max_ctr)
        *max_ctr = max;
    return HC_OK;
}

int crdt_ctx_merge_piece(crdt_ctx *c, const uint8_t *p, size_t len)
{
    /* validate the whole piece before touching c, so a bad piece changes nothing */
    int vrc = crdt_ctx_check_piece(p, len, 0, NULL);
    if (vrc)
        return vrc;
    for (size_t off = 0; off < len;) {
        uint64_t rid = hc_get_be64(p + off), base = hc_get_be64(p + off + 8);
        uint32_t cnt = hc_get_be32(p + off + 16);
        off += REC_HEAD;
        crdt_ctx_rep *r = rep_get(c, rid);
        if (!r)
            return HC_ENOMEM;
        int rc = rep_raise(r, base);
        for (uint32_t k = 0; !rc && k < cnt; k++, off += 8)
            rc = rep_add(r, hc_get_be64(p + off));
        if (rc)
            return rc;
    }
    return HC_OK;
}
