/* ring.c — libring 1.7.0's HashRing as Horde uses it (reference §3.4), and Erlang term order of members.
 *
 * libring keeps a gb_tree point -> node and inserts each node's 128 points in turn; inserting a point that is
 * already there raises and is ignored, so the node added first keeps it. Here the same ring is a sorted array:
 * every (point, member index) pair sorted by point then index, and only the first of each point kept, which is
 * the member added first. Lookup is a binary search for the smallest point >= the key's hash. Horde builds its
 * ring at every call; the core builds this one when membership changes, so only the build allocates. */
#include <stdlib.h>
#include <string.h>

#include "supervisor/place.h"

int sup_atom_cmp(hc_atom a, hc_atom b)
{
    if (a == b)
        return 0;
    size_t la = hc_atom_len(a), lb = hc_atom_len(b);
    int c = memcmp(hc_atom_name(a), hc_atom_name(b), la < lb ? la : lb);
    if (c)
        return c;
    return la < lb ? -1 : la > lb;
}

int sup_member_cmp(const sup_member_ref *a, const sup_member_ref *b)
{
    int c = sup_atom_cmp(a->name, b->name);
    return c ? c : sup_atom_cmp(a->node, b->node);
}

static int cmp_member(const void *a, const void *b) { return sup_member_cmp(a, b); }

void sup_members_sort(sup_member_ref *m, size_t n)
{
    if (n > 1)
        qsort(m, n, sizeof *m, cmp_member);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int sup_ring_build(sup_ring *r, const sup_member_ref *members, size_t n)
{
    if (n > UINT32_MAX / SUP_RING_WEIGHT)
        return HC_EINVAL;
    if (n == 0) {
        sup_ring_free(r);
        return HC_OK;
    }
    size_t total = n * SUP_RING_WEIGHT;
    /* point << 32 | member index: sorting the words sorts by point, then by who was added first. */
    uint64_t *all = malloc(total * sizeof *all);
    uint32_t *points = malloc(total * 2 * sizeof *points); /* points, then owners, in one block */
    if (!all || !points) {
        free(all);
        free(points);
        return HC_ENOMEM;
    }
    uint32_t pts[SUP_RING_WEIGHT];
    for (size_t m = 0; m < n; m++) {
        sup_member_points(members[m].name, members[m].node, pts);
        for (size_t i = 0; i < SUP_RING_WEIGHT; i++)
            all[m * SUP_RING_WEIGHT + i] = (uint64_t)pts[i] << 32 | (uint32_t)m;
    }
    qsort(all, total, sizeof *all, cmp_u64);
    uint32_t *owner = points + total;
    size_t k = 0;
    for (size_t i = 0; i < total; i++) {
        uint32_t p = (uint32_t)(all[i] >> 32);
        if (k && points[k - 1] == p)
            continue; /* taken by an earlier member (or by the first copy of a member listed twice) */
        points[k] = p;
        owner[k++] = (uint32_t)all[i];
    }
    free(all);
    sup_ring_free(r);
    r->points = points;
    r->owner = owner;
    r->n = k;
    r->nmembers = n;
    return HC_OK;
}

int sup_ring_owner(const sup_ring *r, uint32_t key_hash)
{
    if (!r->n)
        return -1;
    size_t lo = 0, hi = r->n; /* the first point >= key_hash is in [lo, hi] */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->points[mid] < key_hash)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (int)r->owner[lo == r->n ? 0 : lo];
}

void sup_ring_free(sup_ring *r)
{
    free(r->points); /* owner shares its block */
    memset(r, 0, sizeof *r);
}
