/* simstream.c — see simstream.h. */
#include "simstream.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    size_t klen, vlen;
    uint8_t b[]; /* the key, then the value */
} entry;

static uint64_t hash(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static entry *find(const simmirror *m, const uint8_t *k, size_t kl, uint64_t h)
{
    size_t pos = 0;
    entry *e;
    while ((e = hc_hmap_next(&m->map, h, &pos)))
        if (e->klen == kl && !memcmp(e->b, k, kl))
            return e;
    return NULL;
}

static void put(simmirror *m, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, uint64_t h)
{
    entry *e = malloc(sizeof *e + kl + vl);
    if (!e || hc_hmap_put(&m->map, h, e))
        abort(); /* the simulator's own memory: not a simulated fault */
    e->klen = kl;
    e->vlen = vl;
    memcpy(e->b, k, kl);
    memcpy(e->b + kl, v, vl);
    m->size++;
}

static void del(simmirror *m, entry *e, uint64_t h)
{
    hc_hmap_del(&m->map, h, e);
    free(e);
    m->size--;
}

static void clear(simmirror *m)
{
    for (size_t i = 0; i < m->map.cap; i++)
        if (hc_hmap_live(&m->map, i))
            free(m->map.vals[i]);
    hc_hmap_free(&m->map);
    memset(&m->map, 0, sizeof m->map);
    m->size = 0;
}

void simmirror_init(simmirror *m, hc_atom stream, size_t bound, simmirror_change_fn fn, void *ud)
{
    memset(m, 0, sizeof *m);
    m->stream = stream;
    m->bound = bound;
    m->on_change = fn;
    m->ud = ud;
}

void simmirror_free(simmirror *m)
{
    clear(m);
    free(m->items);
    m->items = NULL;
    m->capitems = 0;
}

int simmirror_subscribed(simmirror *m, const uint8_t *reply, size_t len)
{
    size_t i = 0;
    uint32_t arity;
    uint64_t epoch;
    if (hc_dec_tuple_header(reply, len, &i, &arity) || arity != 2 || !hc_dec_is_atom(reply, len, &i, "ok") ||
        hc_dec_ulong(reply, len, &i, &epoch) || i != len || !epoch)
        return HC_EDECODE;
    clear(m);
    m->epoch = epoch;
    m->seq = 0;
    m->snapshotting = true;
    m->doubt = false;
    m->subscriptions++;
    return HC_OK;
}

void simmirror_detach(simmirror *m)
{
    m->epoch = 0;
    m->snapshotting = m->doubt = false;
}

const uint8_t *simmirror_get(const simmirror *m, const uint8_t *key, size_t klen, size_t *vlen)
{
    entry *e = find(m, key, klen, hash(key, klen));
    if (!e)
        return NULL;
    *vlen = e->vlen;
    return e->b + e->klen;
}

static int violation(char *why, size_t why_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int violation(char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    return HC_ESTATE;
}

/* The span of the next whole term. */
static bool term(const uint8_t *p, size_t len, size_t *i, const uint8_t **t, size_t *tl)
{
    size_t s = *i;
    if (hc_dec_skip(p, len, i))
        return false;
    *t = p + s;
    *tl = *i - s;
    return true;
}

/* Reads the entries of a body's list into m->items; *payload is the bytes of the entries. */
static bool read_items(simmirror *m, const uint8_t *p, size_t len, size_t *i, bool snap, uint32_t *n, size_t *payload)
{
    if (hc_dec_list_header(p, len, i, n) || *n > len - *i)
        return false;
    if (hc_array_reserve((void **)&m->items, &m->capitems, *n ? *n : 1, sizeof *m->items, 16))
        abort();
    size_t start = *i;
    for (uint32_t k = 0; k < *n; k++) {
        simmirror_item *it = &m->items[k];
        uint32_t arity;
        *it = (simmirror_item){0};
        if (hc_dec_tuple_header(p, len, i, &arity))
            return false;
        if (snap) {
            if (arity != 2 || !term(p, len, i, &it->key, &it->klen) || !term(p, len, i, &it->val, &it->vlen))
                return false;
        } else if (arity == 3 && hc_dec_is_atom(p, len, i, "add")) {
            if (!term(p, len, i, &it->key, &it->klen) || !term(p, len, i, &it->val, &it->vlen))
                return false;
        } else if (arity == 2 && hc_dec_is_atom(p, len, i, "remove")) {
            it->remove = true;
            if (!term(p, len, i, &it->key, &it->klen))
                return false;
        } else {
            return false;
        }
    }
    *payload = *i - start;
    if (*n && (hc_peek_type(p, len, *i) != 106 || ++*i > len)) /* the tail must be [] */
        return false;
    return true;
}

static int apply(simmirror *m, bool snap, uint32_t n, char *why, size_t why_len)
{
    for (uint32_t k = 0; k < n; k++) {
        const simmirror_item *it = &m->items[k];
        uint64_t h = hash(it->key, it->klen);
        entry *e = find(m, it->key, it->klen, h);
        if (snap && e)
            return violation(why, why_len, "a snapshot lists a key twice");
        if (it->remove && !e)
            return violation(why, why_len, "a diff removes a key the map does not have");
        if (!snap && !it->remove && e && e->vlen == it->vlen && !memcmp(e->b + e->klen, it->val, it->vlen))
            return violation(why, why_len, "a diff adds the value the key already has");
        if (m->on_change && m->on_change(m->ud, snap, it->key, it->klen, e ? e->b + e->klen : NULL, e ? e->vlen : 0,
                                         it->remove ? NULL : it->val, it->vlen))
            return violation(why, why_len, "the observer rejected a change");
        if (e)
            del(m, e, h);
        if (!it->remove)
            put(m, it->key, it->klen, it->val, it->vlen, h);
        m->applied++;
    }
    return HC_OK;
}

int simmirror_receive(simmirror *m, const uint8_t *msg, size_t len, char *why, size_t why_len)
{
    m->msgs++;
    size_t i = 0;
    if (hc_dec_skip(msg, len, &i) || i != len) {
        m->damaged++; /* not one whole term: damaged on the way, so anything may be missing */
        if (m->epoch)
            m->doubt = true;
        return HC_OK;
    }
    i = 0;
    uint32_t arity, barity, n;
    hc_atom name;
    uint64_t epoch, seq;
    if (hc_dec_tuple_header(msg, len, &i, &arity) || arity != 5 || !hc_dec_is_atom(msg, len, &i, "hordec_stream") ||
        hc_dec_atom(msg, len, &i, &name) || hc_dec_ulong(msg, len, &i, &epoch) || hc_dec_ulong(msg, len, &i, &seq) ||
        hc_dec_tuple_header(msg, len, &i, &barity))
        return violation(why, why_len, "not a stream message");
    if (name != m->stream)
        return violation(why, why_len, "a message of stream %s, not %s", hc_atom_name(name), hc_atom_name(m->stream));
    if (!epoch || !seq)
        return violation(why, why_len, "epoch %llu seq %llu", (unsigned long long)epoch, (unsigned long long)seq);
    bool snap, more = false;
    size_t payload = 0;
    if (barity == 3 && hc_dec_is_atom(msg, len, &i, "snapshot"))
        snap = true;
    else if (barity == 2 && hc_dec_is_atom(msg, len, &i, "diffs"))
        snap = false;
    else
        return violation(why, why_len, "a body that is neither a snapshot part nor diffs");
    if (!read_items(m, msg, len, &i, snap, &n, &payload))
        return violation(why, why_len, "a malformed %s list", snap ? "snapshot" : "diffs");
    if (snap) {
        if (hc_dec_is_atom(msg, len, &i, "true"))
            more = true;
        else if (!hc_dec_is_atom(msg, len, &i, "false"))
            return violation(why, why_len, "a snapshot part without a More flag");
    }
    if (i != len)
        return violation(why, why_len, "bytes after the body");
    if (payload > m->max_payload)
        m->max_payload = payload;
    if (n > 1 && payload > m->bound)
        return violation(why, why_len, "a %s payload of %zu bytes (%u entries) over the bound of %zu",
                         snap ? "snapshot" : "diffs", payload, n, m->bound);
    if (snap ? n == 0 && (more || seq != 1) : n == 0)
        return violation(why, why_len, "an empty %s message (seq %llu)", snap ? "snapshot" : "diffs",
                         (unsigned long long)seq);
    if (!m->epoch || epoch != m->epoch || m->doubt) {
        m->stale++; /* an older subscription's, or we are about to resubscribe anyway */
        return HC_OK;
    }
    if (seq <= m->seq) {
        m->dups++;
        return HC_OK;
    }
    if (seq != m->seq + 1) {
        m->gaps++;
        m->doubt = true;
        return HC_OK;
    }
    if (snap != m->snapshotting)
        return violation(why, why_len,
                         snap ? "a snapshot part after the snapshot ended (seq %llu)"
                              : "diffs before the snapshot ended (seq %llu)",
                         (unsigned long long)seq);
    int rc = apply(m, snap, n, why, why_len);
    if (rc)
        return rc;
    m->seq = seq;
    if (snap && !more)
        m->snapshotting = false;
    return HC_OK;
}

typedef struct cmp_ctx {
    const simmirror *m;
    size_t seen;
    char *why;
    size_t why_len;
} cmp_ctx;

static void describe(char *out, size_t n, const uint8_t *k, size_t kl)
{
    size_t o = 0;
    for (size_t i = 0; i < kl && i < 16 && o + 3 < n; i++)
        o += (size_t)snprintf(out + o, n - o, "%02x", k[i]);
    if (n)
        out[o < n ? o : n - 1] = 0;
}

static int cmp_entry(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    cmp_ctx *c = ud;
    char key[40];
    entry *e = find(c->m, k, kl, hash(k, kl));
    if (!e || e->vlen != vl || memcmp(e->b + e->klen, v, vl)) {
        describe(key, sizeof key, k, kl);
        return violation(c->why, c->why_len, e ? "the mirror has another value for key %s" : "the mirror lacks key %s",
                         key);
    }
    c->seen++;
    return HC_OK;
}

int simmirror_compare(const simmirror *m, simmirror_walk_fn walk, const void *src, char *why, size_t why_len)
{
    cmp_ctx c = {m, 0, why, why_len};
    int rc = walk(src, cmp_entry, &c);
    if (rc)
        return HC_ESTATE;
    if (c.seen != m->size)
        return violation(why, why_len, "the mirror has %zu keys, the map %zu", m->size, c.seen);
    return HC_OK;
}
