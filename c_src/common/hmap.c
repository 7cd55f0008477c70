/* hmap.c — see hmap.h. Linear probing over a power-of-two table, resized at 70% occupancy (counting
 * tombstones) to at most 50% live: probe runs stay short under the insert/delete churn of monitors and calls,
 * and a growing table doubles (35-70% full) rather than quadruples, which matters for the registry's indexes
 * (16 bytes a slot, one or two maps per entry). */
#include "common/hmap.h"

#include <stdlib.h>

#include "hordec/hc_common.h"

char hc_hmap_tomb_;

static size_t slot(uint64_t key, size_t cap)
{
    key ^= key >> 31;
    key *= 0x7fb5d329728ea185ULL;
    key ^= key >> 27;
    return (size_t)key & (cap - 1);
}

static int resize(hc_hmap *m, size_t cap)
{
    uint64_t *keys = calloc(cap, sizeof *keys);
    void **vals = calloc(cap, sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return HC_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!hc_hmap_live(m, i))
            continue;
        size_t j = slot(m->keys[i], cap);
        while (vals[j])
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    m->used = m->count;
    return HC_OK;
}

int hc_hmap_put(hc_hmap *m, uint64_t key, void *val)
{
    if ((m->used + 1) * 10 > m->cap * 7) {
        /* Rehash to at most 50% live: also sweeps tombstones, shrinking back when most slots are deleted. */
        size_t cap = 16;
        while ((m->count + 1) * 2 > cap)
            cap *= 2;
        if (resize(m, cap))
            return HC_ENOMEM;
    }
    size_t j = slot(key, m->cap);
    while (m->vals[j] && m->vals[j] != HC_HMAP_TOMB)
        j = (j + 1) & (m->cap - 1);
    if (!m->vals[j])
        m->used++;
    m->keys[j] = key;
    m->vals[j] = val;
    m->count++;
    return HC_OK;
}

bool hc_hmap_del(hc_hmap *m, uint64_t key, void *val)
{
    if (!m->cap)
        return false;
    for (size_t j = slot(key, m->cap); m->vals[j]; j = (j + 1) & (m->cap - 1)) {
        if (m->vals[j] == val && m->keys[j] == key) {
            m->vals[j] = HC_HMAP_TOMB;
            m->count--;
            return true;
        }
    }
    return false;
}

void *hc_hmap_next(const hc_hmap *m, uint64_t key, size_t *pos)
{
    if (!m->cap)
        return NULL;
    size_t start = slot(key, m->cap);
    for (size_t k = *pos; k < m->cap; k++) {
        size_t j = (start + k) & (m->cap - 1);
        if (!m->vals[j])
            return NULL;
        if (m->vals[j] != HC_HMAP_TOMB && m->keys[j] == key) {
            *pos = k + 1;
            return m->vals[j];
        }
    }
    return NULL;
}

void *hc_hmap_get(const hc_hmap *m, uint64_t key)
{
    size_t pos = 0;
    return hc_hmap_next(m, key, &pos);
}

void hc_hmap_free(hc_hmap *m)
{
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->count = m->used = 0;
}
