/* hmap.h — an open-addressing multimap from a 64-bit key to pointers. Callers hash their own keys
 * (atoms, pid ids, ref hashes) and compare the full key on the values they get back, so one small map
 * serves every table in the runtime. Duplicate keys are allowed. */
#ifndef HORDEC_HMAP_H
#define HORDEC_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hc_hmap {
    uint64_t *keys;
    void **vals;             /* NULL = empty slot, HC_HMAP_TOMB = deleted */
    size_t cap, count, used; /* used = live + tombstones */
} hc_hmap;

extern char hc_hmap_tomb_;
#define HC_HMAP_TOMB ((void *)&hc_hmap_tomb_)

int hc_hmap_put(hc_hmap *m, uint64_t key, void *val);  /* HC_OK or HC_ENOMEM */
bool hc_hmap_del(hc_hmap *m, uint64_t key, void *val); /* removes that exact pair */
/* Iterates the values stored under `key`: start with *pos = 0; returns NULL when done. */
void *hc_hmap_next(const hc_hmap *m, uint64_t key, size_t *pos);
void *hc_hmap_get(const hc_hmap *m, uint64_t key); /* first value under key, or NULL */
void hc_hmap_free(hc_hmap *m);

/* Whole-table iteration: for (size_t i = 0; i < m->cap; i++) if (hc_hmap_live(m, i)) use m->vals[i]. */
static inline bool hc_hmap_live(const hc_hmap *m, size_t i) { return m->vals[i] && m->vals[i] != HC_HMAP_TOMB; }

#endif
