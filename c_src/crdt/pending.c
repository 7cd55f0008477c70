/* pending.c — the coalescing set of keys changed since the last flush. */
#include "crdt/pending.h"

#include <stdlib.h>
#include <string.h>

static int grow(crdt_pending *p)
{
    uint32_t nb = p->nbuckets ? p->nbuckets * 2 : 64;
    crdt_pend_rec **b = calloc(nb, sizeof *b);
    if (!b)
        return HC_ENOMEM;
    for (size_t i = 0; i < p->n; i++) {
        crdt_pend_rec *r = p->recs[p->head + i];
        r->next = b[r->hash & (nb - 1)];
        b[r->hash & (nb - 1)] = r;
    }
    free(p->buckets);
    p->buckets = b;
    p->nbuckets = nb;
    return HC_OK;
}

crdt_pend_rec *crdt_pending_touch(crdt_pending *p, const uint8_t *key, size_t key_len, uint64_t hash)
{
    if (p->nbuckets)
        for (crdt_pend_rec *r = p->buckets[hash & (p->nbuckets - 1)]; r; r = r->next)
            if (r->hash == hash && r->key_len == key_len && memcmp(r->key, key, key_len) == 0)
                return r;
    if (p->n >= p->nbuckets && grow(p))
        return NULL;
    if (p->head && p->head + p->n == p->cap) { /* room at the front, left by partial flushes: use it */
        memmove(p->recs, p->recs + p->head, p->n * sizeof *p->recs);
        p->head = 0;
    }
    if (hc_array_reserve((void **)&p->recs, &p->cap, p->head + p->n + 1, sizeof *p->recs, 64))
        return NULL;
    crdt_pend_rec *r = malloc(sizeof *r + key_len);
    if (!r)
        return NULL;
    r->hash = hash;
    r->removed = (hc_buf){0};
    r->key_len = (uint32_t)key_len;
    memcpy(r->key, key, key_len);
    r->next = p->buckets[hash & (p->nbuckets - 1)];
    p->buckets[hash & (p->nbuckets - 1)] = r;
    p->recs[p->head + p->n++] = r;
    return r;
}

int crdt_pending_add_removed(crdt_pend_rec *rec, uint64_t rid, uint64_t ctr)
{
    int rc = hc_buf_put_be64(&rec->removed, rid);
    return rc ? rc : hc_buf_put_be64(&rec->removed, ctr);
}

void crdt_pending_drop_first(crdt_pending *p, size_t k)
{
    if (k >= p->n) {
        crdt_pending_clear(p);
        return;
    }
    for (size_t i = 0; i < k; i++) {
        crdt_pend_rec *r = p->recs[p->head + i], **link = &p->buckets[r->hash & (p->nbuckets - 1)];
        while (*link != r)
            link = &(*link)->next;
        *link = r->next;
        hc_buf_free(&r->removed);
        free(r);
    }
    p->head += k;
    p->n -= k;
}

void crdt_pending_clear(crdt_pending *p)
{
    for (size_t i = 0; i < p->n; i++) {
        hc_buf_free(&p->recs[p->head + i]->removed);
        free(p->recs[p->head + i]);
    }
    free(p->recs);
    free(p->buckets);
    memset(p, 0, sizeof *p);
}
