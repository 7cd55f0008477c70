/* map.c — key -> element-set hash table, with the Merkle tree kept in step. */
#include "crdt/map.h"

#include <stdlib.h>
#include <string.h>

#include "crdt/hash.h"
#include "hordec/hc_common.h"

#define MIN_BITS 4

int crdt_map_init(crdt_map *m)
{
    memset(m, 0, sizeof *m);
    m->bits = MIN_BITS;
    m->buckets = calloc(crdt_map_nbuckets(m), sizeof *m->buckets);
    if (!m->buckets || crdt_merkle_init(&m->tree)) {
        free(m->buckets);
        return HC_ENOMEM;
    }
    return HC_OK;
}

static void elems_release(crdt_elem *e, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        crdt_blob_unref(e[i].val);
}

static void entry_free(crdt_entry *e)
{
    elems_release(e->elems, e->n);
    if (e->elems != &e->one)
        free(e->elems);
    free(e);
}

void crdt_map_free(crdt_map *m)
{
    if (m->buckets)
        for (size_t i = 0; i < crdt_map_nbuckets(m); i++)
            for (crdt_entry *e = m->buckets[i], *next; e; e = next) {
                next = e->next;
                entry_free(e);
            }
    free(m->buckets);
    crdt_merkle_free(&m->tree);
    memset(m, 0, sizeof *m);
}

crdt_entry *crdt_map_find(const crdt_map *m, const uint8_t *key, size_t key_len, uint64_t hash)
{
    for (crdt_entry *e = m->buckets[crdt_map_bucket(m, hash)]; e; e = e->next)
        if (e->hash == hash && e->key_len == key_len && memcmp(e->key, key, key_len) == 0)
            return e;
    return NULL;
}

uint64_t crdt_entry_digest(const crdt_entry *e)
{
    uint64_t s = 0;
    for (uint32_t i = 0; i < e->n; i++)
        s += crdt_dot_hash(e->elems[i].rid, e->elems[i].ctr);
    return crdt_mix64(e->hash + s);
}

static void grow(crdt_map *m)
{
    uint32_t bits = m->bits + 1;
    crdt_entry **nb = calloc((size_t)1 << bits, sizeof *nb);
    if (!nb)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < crdt_map_nbuckets(m); i++)
        for (crdt_entry *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            size_t b = (size_t)(e->hash >> (64 - bits));
            e->next = nb[b];
            nb[b] = e;
        }
    free(m->buckets);
    m->buckets = nb;
    m->bits = bits;
}

static void sort_best_first(crdt_elem *a, uint32_t n)
{
    for (uint32_t i = 1; i < n; i++) { /* n is tiny: the number of concurrent writers */
        crdt_elem x = a[i];
        uint32_t j = i;
        for (; j > 0 && crdt_elem_newer(&x, &a[j - 1]); j--)
            a[j] = a[j - 1];
        a[j] = x;
    }
}

static size_t value_bytes(const crdt_elem *e, uint32_t n)
{
    size_t s = 0;
    for (uint32_t i = 0; i < n; i++)
        s += e[i].val ? e[i].val->len : 0;
    return s;
}

int crdt_map_set(crdt_map *m, const uint8_t *key, size_t key_len, uint64_t hash, crdt_elem *elems, uint32_t n)
{
    size_t b = crdt_map_bucket(m, hash);
    crdt_entry **link = &m->buckets[b], *e;
    for (; (e = *link); link = &e->next)
        if (e->hash == hash && e->key_len == key_len && memcmp(e->key, key, key_len) == 0)
            break;
    if (!e && n == 0)
        return HC_OK;
    crdt_elem *arr = NULL;
    if (n > 1) {
        arr = malloc(n * sizeof *arr);
        if (!arr)
            return HC_ENOMEM;
    }
    if (!e) {
        if (key_len > UINT32_MAX)
            return HC_ETOOBIG;
        e = malloc(sizeof *e + key_len);
        if (!e) {
            free(arr);
            return HC_ENOMEM;
        }
        e->hash = hash;
        e->key_len = (uint32_t)key_len;
        memcpy(e->key, key, key_len);
        e->n = 0;
        e->elems = &e->one;
        e->next = m->buckets[b];
        m->buckets[b] = e;
        link = &m->buckets[b];
        m->count++;
        m->key_bytes += key_len;
    } else {
        crdt_merkle_update(&m->tree, hash, crdt_entry_digest(e), -1);
        m->elems -= e->n;
        m->value_bytes -= value_bytes(e->elems, e->n);
        elems_release(e->elems, e->n);
        if (e->elems != &e->one)
            free(e->elems);
        e->elems = &e->one;
        e->n = 0;
    }
    if (n == 0) {
        *link = e->next;
        m->count--;
        m->key_bytes -= e->key_len;
        free(e);
        return HC_OK;
    }
    if (n > 1) {
        memcpy(arr, elems, n * sizeof *arr);
        sort_best_first(arr, n);
        e->elems = arr;
    } else {
        e->one = elems[0];
    }
    e->n = n;
    crdt_merkle_update(&m->tree, hash, crdt_entry_digest(e), +1);
    m->elems += n;
    m->value_bytes += value_bytes(e->elems, n);
    if (m->count > crdt_map_nbuckets(m))
        grow(m);
    return HC_OK;
}
