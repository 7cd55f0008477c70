/* cursor.c — reading the map a slice at a time, as it was when the read began.
 *
 * A reply that holds the whole map (to_map of 100k keys) is built over several loop turns so that one
 * request never holds the loop for long; meanwhile the map keeps changing (local writes, joins). A cursor
 * walks the buckets in key-hash order: `pos` is the first key hash it has not visited. Before any change to
 * a key at or past `pos`, the replica calls crdt_cursors_note, and the cursor keeps the key's value as it
 * was at open time (a "pre-image"; NULL when the key did not exist then). When the walk reaches the key it
 * hands out the pre-image instead of the current value; pre-images of keys deleted since are handed out at
 * the end. So the reader sees exactly the map of the moment it opened the cursor, at the cost of one copy
 * per key changed ahead of the walk. Keys behind `pos` are done: their changes are not the cursor's
 * business. Buckets only ever split (the map never shrinks), so a position on a bucket boundary stays one. */
#include <stdlib.h>
#include <string.h>

#include "common/hmap.h"
#include "crdt/replica.h"

typedef struct crdt_pre {
    struct crdt_pre *next;
    uint64_t hash;
    crdt_blob *val; /* the value at open time, or NULL: the key did not exist then */
    int used;       /* handed out when the walk passed its key */
    uint32_t key_len;
    uint8_t key[];
} crdt_pre;

struct hc_crdt_cursor {
    hc_crdt *r; /* NULL once the replica is gone */
    hc_crdt_cursor *next;
    uint64_t pos;
    int done, tail_started, tail_done, err;
    const crdt_pre *tail; /* the next pre-image to look at once the walk is done */
    size_t count;
    hc_hmap pre; /* key hash -> crdt_pre */
    crdt_pre *all;
};

static crdt_pre *pre_find(const hc_crdt_cursor *c, const uint8_t *key, size_t key_len, uint64_t hash)
{
    size_t at = 0;
    for (crdt_pre *p; (p = hc_hmap_next(&c->pre, hash, &at));)
        if (p->key_len == key_len && memcmp(p->key, key, key_len) == 0)
            return p;
    return NULL;
}

void crdt_cursors_note(hc_crdt *r, const uint8_t *key, size_t key_len, uint64_t hash)
{
    for (hc_crdt_cursor *c = r->cursors; c; c = c->next) {
        if (c->done || c->err || hash < c->pos || pre_find(c, key, key_len, hash))
            continue;
        const crdt_entry *e = crdt_map_find(&r->map, key, key_len, hash);
        crdt_pre *p = malloc(sizeof *p + key_len);
        if (!p || hc_hmap_put(&c->pre, hash, p)) {
            free(p);
            c->err = HC_ENOMEM; /* it can no longer tell the old map: its reader gets an error */
            continue;
        }
        p->hash = hash;
        p->val = e ? crdt_blob_ref(e->elems[0].val) : NULL;
        p->used = 0;
        p->key_len = (uint32_t)key_len;
        memcpy(p->key, key, key_len);
        p->next = c->all;
        c->all = p;
    }
}

int hc_crdt_cursor_open(hc_crdt *r, hc_crdt_cursor **out)
{
    hc_crdt_cursor *c = calloc(1, sizeof *c);
    *out = c;
    if (!c)
        return HC_ENOMEM;
    c->r = r;
    c->count = r->map.count;
    c->next = r->cursors;
    r->cursors = c;
    return HC_OK;
}

size_t hc_crdt_cursor_count(const hc_crdt_cursor *c) { return c->count; }

int hc_crdt_cursor_next(hc_crdt_cursor *c, size_t max, size_t *visited, hc_crdt_visit_fn fn, void *ud)
{
    size_t n = 0;
    int rc = c->err;
    const crdt_map *m = c->r ? &c->r->map : NULL;
    if (!rc && !m)
        rc = c->err = HC_ESTATE;
    while (!rc && !c->done && n < max) {
        size_t b = crdt_map_bucket(m, c->pos);
        for (const crdt_entry *e = m->buckets[b]; e && !rc; e = e->next) {
            if (e->hash < c->pos)
                continue;
            const crdt_pre *p = pre_find(c, e->key, e->key_len, e->hash);
            const crdt_blob *v = p ? p->val : e->elems[0].val;
            if (p)
                ((crdt_pre *)p)->used = 1;
            if (v) {
                rc = fn(ud, e->key, e->key_len, v->data, v->len);
                n++;
            }
        }
        if (b + 1 == crdt_map_nbuckets(m))
            c->done = 1;
        else
            c->pos = (uint64_t)(b + 1) << (64 - m->bits);
    }
    if (!rc && c->done && !c->tail_done) {
        /* keys that existed at open time and were deleted before the walk reached them, a slice at a time too */
        if (!c->tail_started) {
            c->tail = c->all;
            c->tail_started = 1;
        }
        for (; c->tail && !rc && n < max; c->tail = c->tail->next)
            if (!c->tail->used && c->tail->val) {
                rc = fn(ud, c->tail->key, c->tail->key_len, c->tail->val->data, c->tail->val->len);
                n++;
            }
        c->tail_done = !rc && !c->tail;
    }
    if (visited)
        *visited = n;
    return rc ? rc : c->tail_done ? HC_OK : 1;
}

void hc_crdt_cursor_close(hc_crdt_cursor *c)
{
    if (!c)
        return;
    if (c->r) {
        hc_crdt_cursor **link = &c->r->cursors;
        while (*link != c)
            link = &(*link)->next;
        *link = c->next;
    }
    for (crdt_pre *p = c->all, *next; p; p = next) {
        next = p->next;
        crdt_blob_unref(p->val);
        free(p);
    }
    hc_hmap_free(&c->pre);
    free(c);
}

void crdt_cursors_detach(hc_crdt *r)
{
    for (hc_crdt_cursor *c = r->cursors; c; c = c->next)
        c->r = NULL;
    r->cursors = NULL;
}
