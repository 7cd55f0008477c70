/* atom.c — the process-wide atom intern table.
 *
 * Node names, registered names and atoms we decode from peers are interned once and then compared as
 * integers. The table is bounded (count and bytes) because peers choose the node names inside pids:
 * an unbounded table would let a hostile peer grow our memory forever, as the BEAM's atom table can. */
#include "hordec/hc_term.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ATOM_MAX_COUNT (1u << 20)
#define ATOM_MAX_BYTES (64u << 20)

typedef struct atom_entry {
    char *name;
    uint32_t len;
    uint32_t hash;
} atom_entry;

static struct {
    atom_entry *atoms; /* index = atom id; atoms[0] is '' */
    uint32_t count, cap;
    uint32_t *slots; /* open addressing: atom id + 1, 0 = empty */
    uint32_t nslots;
    size_t bytes;
} T;

static uint32_t name_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a: short keys, cheap, good enough spread for a power-of-two table */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static int grow_slots(void)
{
    uint32_t n = T.nslots ? T.nslots * 2 : 1024;
    uint32_t *s = calloc(n, sizeof *s);
    if (!s)
        return HC_ENOMEM;
    for (uint32_t i = 0; i < T.count; i++) {
        uint32_t j = T.atoms[i].hash & (n - 1);
        while (s[j])
            j = (j + 1) & (n - 1);
        s[j] = i + 1;
    }
    free(T.slots);
    T.slots = s;
    T.nslots = n;
    return HC_OK;
}

static int add_atom(const char *utf8, size_t len, uint32_t h, hc_atom *out)
{
    if (T.count >= ATOM_MAX_COUNT || T.bytes + len > ATOM_MAX_BYTES)
        return HC_ETOOBIG;
    if (T.count == T.cap) {
        uint32_t cap = T.cap ? T.cap * 2 : 256;
        atom_entry *a = realloc(T.atoms, cap * sizeof *a);
        if (!a)
            return HC_ENOMEM;
        T.atoms = a;
        T.cap = cap;
    }
    if ((T.count + 1) * 2 > T.nslots && grow_slots())
        return HC_ENOMEM;
    char *name = malloc(len + 1);
    if (!name)
        return HC_ENOMEM;
    memcpy(name, utf8, len);
    name[len] = 0;
    uint32_t id = T.count++;
    T.atoms[id] = (atom_entry){name, (uint32_t)len, h};
    T.bytes += len;
    uint32_t j = h & (T.nslots - 1);
    while (T.slots[j])
        j = (j + 1) & (T.nslots - 1);
    T.slots[j] = id + 1;
    *out = id;
    return HC_OK;
}

static int ensure_init(void)
{
    if (T.count)
        return HC_OK;
    hc_atom empty;
    return add_atom("", 0, name_hash("", 0), &empty);
}

hc_atom hc_atom_find(const char *utf8, size_t len)
{
    if (!T.nslots)
        return 0;
    uint32_t h = name_hash(utf8, len);
    for (uint32_t j = h & (T.nslots - 1); T.slots[j]; j = (j + 1) & (T.nslots - 1)) {
        atom_entry *e = &T.atoms[T.slots[j] - 1];
        if (e->hash == h && e->len == len && memcmp(e->name, utf8, len) == 0)
            return T.slots[j] - 1;
    }
    return 0;
}

hc_atom hc_atom_intern(const char *utf8, size_t len, int *rc)
{
    int r = ensure_init();
    if (!r && len > HC_ATOM_MAX_BYTES)
        r = HC_ETOOBIG;
    if (r) {
        if (rc)
            *rc = r;
        return 0;
    }
    if (len == 0)
        return 0;
    hc_atom a = hc_atom_find(utf8, len);
    if (a)
        return a;
    r = add_atom(utf8, len, name_hash(utf8, len), &a);
    if (rc)
        *rc = r;
    return r ? 0 : a;
}

hc_atom hc_atom_intern_cstr(const char *s)
{
    int rc = HC_OK;
    hc_atom a = hc_atom_intern(s, strlen(s), &rc);
    if (rc) {
        fprintf(stderr, "hordec: cannot intern atom '%s': %s\n", s, hc_strerror(rc));
        abort();
    }
    return a;
}

const char *hc_atom_name(hc_atom a) { return a < T.count ? T.atoms[a].name : ""; }
size_t hc_atom_len(hc_atom a) { return a < T.count ? T.atoms[a].len : 0; }
size_t hc_atom_count(void) { return T.count; }

void hc_atom_table_reset(void)
{
    for (uint32_t i = 0; i < T.count; i++)
        free(T.atoms[i].name);
    free(T.atoms);
    free(T.slots);
    memset(&T, 0, sizeof T);
}
