/* atom_cache.c — see atom_cache.h. Wire format: erl_ext_dist "Distribution Header"; the receiver's
 * checks mirror erts_prepare_dist_ext() (external.c), the sender's slot choice mirrors erts (a hash of
 * the atom, so an atom keeps its slot and a collision just replaces the entry). */
#include "dist/atom_cache.h"

#include <stdlib.h>
#include <string.h>

#include "common/etf.h"

#define LONG_ATOMS_FLAG 1u /* in the half byte after the last reference's flags */
#define NEW_ENTRY_FLAG 8u  /* per reference: the entry carries its atom text */
#define MAX_FUN_NESTING 32 /* funs nested in funs' free variables (each level recurses once) */

hc_atom_cache *hc_ac_new(void)
{
    hc_atom_cache *ac = calloc(1, sizeof *ac);
    if (ac)
        ac->tx.gen = ac->rx.gen = 1; /* stamp 0 = never used in any packet */
    return ac;
}

void hc_ac_free(hc_atom_cache *ac)
{
    if (!ac)
        return;
    for (size_t k = 0; k < HC_AC_SIZE; k++) {
        free(ac->in[k].text);
        free(ac->out[k].text);
    }
    hc_buf_free(&ac->hdr);
    hc_buf_free(&ac->norm);
    free(ac->iov);
    free(ac);
}

static int set_text(hc_ac_text *t, const uint8_t *s, size_t n)
{
    if (n == 0) {
        free(t->text);
        t->text = NULL;
    } else {
        uint8_t *q = realloc(t->text, n);
        if (!q)
            return HC_ENOMEM;
        memcpy(q, s, n);
        t->text = q;
    }
    t->len = (uint16_t)n;
    t->used = true;
    return HC_OK;
}

static bool same_text(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* Starts a packet: no references yet. */
static void begin_refs(hc_ac_packet *pk)
{
    if (++pk->gen == 0) { /* wrapped: old stamps could look current */
        memset(pk->stamp, 0, sizeof pk->stamp);
        pk->gen = 1;
    }
    pk->nrefs = 0;
}

/* ------------------------------------------------------------------ term shapes */

/* What follows a tag byte, for the tags the walkers share. ATOM: the tag starts an atom. NODE: `pre`
 * bytes, then a node-name atom, then `post` bytes (pids, ports, refs). RAW: `pre` bytes then `kids`
 * whole terms. FUN and CACHE_REF are handled by each walker. */
typedef enum { SHAPE_RAW, SHAPE_ATOM, SHAPE_NODE, SHAPE_FUN, SHAPE_CACHE_REF } shape_kind;

typedef struct shape {
    shape_kind kind;
    size_t pre, post;
    uint64_t kids;
} shape;

/* `i` is the index just after the tag. HC_EDECODE for tags no peer may send us (old funs, compressed
 * terms, unknown) and for lengths that run past the end. */
static int shape_of(const uint8_t *p, size_t len, size_t i, uint8_t tag, shape *s)
{
    size_t left = len - i;
    memset(s, 0, sizeof *s);
    switch (tag) {
    case ETF_SMALL_INTEGER: s->pre = 1; break;
    case ETF_INTEGER: s->pre = 4; break;
    case ETF_FLOAT: s->pre = 31; break;
    case ETF_NEW_FLOAT: s->pre = 8; break;
    case ETF_NIL: break;
    case ETF_ATOM:
    case ETF_ATOM_UTF8:
    case ETF_SMALL_ATOM:
    case ETF_SMALL_ATOM_UTF8: s->kind = SHAPE_ATOM; return HC_OK;
    case ETF_ATOM_CACHE_REF: s->kind = SHAPE_CACHE_REF; return HC_OK;
    case ETF_STRING:
        if (left < 2)
            return HC_EDECODE;
        s->pre = 2 + (size_t)hc_get_be16(p + i);
        break;
    case ETF_BINARY:
        if (left < 4)
            return HC_EDECODE;
        s->pre = 4 + (size_t)hc_get_be32(p + i);
        break;
    case ETF_BIT_BINARY:
        if (left < 5 || p[i + 4] < 1 || p[i + 4] > 8 || hc_get_be32(p + i) == 0)
            return HC_EDECODE;
        s->pre = 5 + (size_t)hc_get_be32(p + i);
        break;
    case ETF_SMALL_BIG:
        if (left < 1)
            return HC_EDECODE;
        s->pre = 2 + (size_t)p[i];
        break;
    case ETF_LARGE_BIG:
        if (left < 4)
            return HC_EDECODE;
        s->pre = 5 + (size_t)hc_get_be32(p + i);
        break;
    case ETF_SMALL_TUPLE:
        if (left < 1)
            return HC_EDECODE;
        s->pre = 1;
        s->kids = p[i];
        break;
    case ETF_LARGE_TUPLE:
        if (left < 4)
            return HC_EDECODE;
        s->pre = 4;
        s->kids = hc_get_be32(p + i);
        break;
    case ETF_MAP:
        if (left < 4)
            return HC_EDECODE;
        s->pre = 4;
        s->kids = 2 * (uint64_t)hc_get_be32(p + i);
        break;
    case ETF_LIST:
        if (left < 4)
            return HC_EDECODE;
        s->pre = 4;
        s->kids = (uint64_t)hc_get_be32(p + i) + 1; /* elements and the tail */
        break;
    case ETF_EXPORT: s->kids = 3; break; /* module, function, arity */
    case ETF_PID:
        s->kind = SHAPE_NODE;
        s->post = 9;
        return HC_OK;
    case ETF_NEW_PID:
        s->kind = SHAPE_NODE;
        s->post = 12;
        return HC_OK;
    case ETF_PORT:
        s->kind = SHAPE_NODE;
        s->post = 5;
        return HC_OK;
    case ETF_NEW_PORT:
        s->kind = SHAPE_NODE;
        s->post = 8;
        return HC_OK;
    case ETF_V4_PORT:
        s->kind = SHAPE_NODE;
        s->post = 12;
        return HC_OK;
    case ETF_REFERENCE:
        s->kind = SHAPE_NODE;
        s->post = 5;
        return HC_OK;
    case ETF_NEW_REFERENCE:
    case ETF_NEWER_REFERENCE: {
        if (left < 2)
            return HC_EDECODE;
        size_t words = hc_get_be16(p + i);
        if (words < 1 || words > 5)
            return HC_EDECODE;
        s->kind = SHAPE_NODE;
        s->pre = 2;
        s->post = (tag == ETF_NEWER_REFERENCE ? 4 : 1) + 4 * words;
        return HC_OK;
    }
    case ETF_NEW_FUN: s->kind = SHAPE_FUN; return HC_OK;
    default: return HC_EDECODE;
    }
    return s->pre > left ? HC_EDECODE : HC_OK;
}

/* The atom at p[i] (tag included): its text, and the index after it. */
static int atom_at(const uint8_t *p, size_t len, size_t i, const uint8_t **text, size_t *n, size_t *end)
{
    if (i >= len)
        return HC_EDECODE;
    uint8_t tag = p[i++];
    size_t k;
    if (tag == ETF_SMALL_ATOM_UTF8 || tag == ETF_SMALL_ATOM) {
        if (i >= len)
            return HC_EDECODE;
        k = p[i++];
    } else if (tag == ETF_ATOM_UTF8 || tag == ETF_ATOM) {
        if (len - i < 2)
            return HC_EDECODE;
        k = hc_get_be16(p + i);
        i += 2;
    } else {
        return HC_EDECODE;
    }
    if (len - i < k)
        return HC_EDECODE;
    *text = p + i;
    *n = k;
    *end = i + k;
    return HC_OK;
}

/* ------------------------------------------------------------------ receiving */

typedef struct expander {
    const uint8_t *p;
    size_t len, i;
    size_t copied; /* p[copied .. i) is still to be appended to out */
    hc_buf *out;
    const hc_ac_ref *refs; /* the header's references, resolved to text */
    unsigned nrefs;
} expander;

static int flush_in(expander *x, size_t upto)
{
    int rc = hc_buf_append(x->out, x->p + x->copied, upto - x->copied);
    x->copied = upto;
    return rc;
}

static int put_atom(hc_buf *b, const uint8_t *t, size_t n)
{
    int rc = n < 256 ? hc_buf_put_u8(b, ETF_SMALL_ATOM_UTF8) || hc_buf_put_u8(b, (uint8_t)n)
                     : hc_buf_put_u8(b, ETF_ATOM_UTF8) || hc_buf_put_be16(b, (uint16_t)n);
    return rc ? HC_ENOMEM : hc_buf_append(b, t, n);
}

/* The atom at x->i (a node name too): a real atom (copied lazily) or a cache ref (replaced). */
static int expand_atom(expander *x)
{
    if (x->i >= x->len)
        return HC_EDECODE;
    if (x->p[x->i] == ETF_ATOM_CACHE_REF) {
        if (x->len - x->i < 2 || x->p[x->i + 1] >= x->nrefs)
            return HC_EDECODE;
        const hc_ac_ref *r = &x->refs[x->p[x->i + 1]];
        int rc = flush_in(x, x->i);
        if (rc || (rc = put_atom(x->out, r->text, r->len)))
            return rc;
        x->i += 2;
        x->copied = x->i;
        return HC_OK;
    }
    const uint8_t *t;
    size_t n;
    return atom_at(x->p, x->len, x->i, &t, &n, &x->i);
}

/* Copies `count` whole terms, replacing cache refs. Containers are a counter of terms still due (no
 * recursion, so deep nesting cannot exhaust the stack); only funs recurse, bounded by `depth`, because
 * their byte size must be rewritten once their contents are. */
static int expand_terms(expander *x, uint64_t count, int depth)
{
    uint64_t pending = count;
    while (pending) {
        pending--;
        if (x->i >= x->len)
            return HC_EDECODE;
        uint8_t tag = x->p[x->i++];
        shape s;
        int rc = shape_of(x->p, x->len, x->i, tag, &s);
        if (rc)
            return rc;
        switch (s.kind) {
        case SHAPE_RAW:
            x->i += s.pre;
            pending += s.kids;
            break;
        case SHAPE_ATOM:
        case SHAPE_CACHE_REF:
            x->i--; /* expand_atom reads the tag itself */
            if ((rc = expand_atom(x)))
                return rc;
            break;
        case SHAPE_NODE:
            x->i += s.pre;
            if ((rc = expand_atom(x)))
                return rc;
            if (x->len - x->i < s.post)
                return HC_EDECODE;
            x->i += s.post;
            break;
        case SHAPE_FUN: {
            /* Size(4) Arity(1) Uniq(16) Index(4) NumFree(4), then Module, OldIndex, OldUniq, Pid and
             * NumFree free variables. Size counts itself and everything after the tag. */
            size_t start = x->i;
            if (depth >= MAX_FUN_NESTING || x->len - start < 29)
                return HC_EDECODE;
            size_t size = hc_get_be32(x->p + start);
            uint64_t nfree = hc_get_be32(x->p + start + 25);
            if (size < 29 || size > x->len - start || nfree > x->len - start)
                return HC_EDECODE;
            x->i = start + 29;
            if ((rc = flush_in(x, x->i)))
                return rc;
            size_t out_start = x->out->len - 29;
            if ((rc = expand_terms(x, 4 + nfree, depth + 1)))
                return rc;
            if (x->i - start != size)
                return HC_EDECODE;
            if ((rc = flush_in(x, x->i)))
                return rc;
            size_t out_size = x->out->len - out_start;
            if (out_size > UINT32_MAX)
                return HC_ETOOBIG;
            uint8_t *q = x->out->data + out_start;
            q[0] = (uint8_t)(out_size >> 24);
            q[1] = (uint8_t)(out_size >> 16);
            q[2] = (uint8_t)(out_size >> 8);
            q[3] = (uint8_t)out_size;
            break;
        }
        }
        if (x->i > x->len || pending > x->len - x->i)
            return HC_EDECODE;
    }
    return HC_OK;
}

/* Parses the header at p[0..len) (131, 68 already checked) into ac->rx.refs and *hdr_end. New entries
 * are not stored yet (store_new_entries does that once the packet is through): their text stays in
 * the packet, and a later reference in the same header to the same slot sees it, as in erts. */
static int parse_header(hc_atom_cache *ac, const uint8_t *p, size_t len, size_t *hdr_end, const char **why)
{
    hc_ac_packet *pk = &ac->rx;
    begin_refs(pk);
    if (len < 3) {
        *why = "truncated distribution header";
        return HC_EDECODE;
    }
    unsigned n = p[2];
    size_t i = 3;
    if (n == 0) {
        *hdr_end = i;
        return HC_OK;
    }
    size_t flag_bytes = n / 2 + 1;
    if (len - i < flag_bytes) {
        *why = "truncated atom cache flags";
        return HC_EDECODE;
    }
    const uint8_t *flags = p + i;
    i += flag_bytes;
    bool long_atoms = (flags[n / 2] >> ((n % 2) * 4)) & LONG_ATOMS_FLAG;
    for (unsigned k = 0; k < n; k++) {
        unsigned f = (flags[k / 2] >> ((k % 2) * 4)) & 0xF;
        if (i >= len) {
            *why = "truncated atom cache reference";
            return HC_EDECODE;
        }
        unsigned slot = (f & 7u) << 8 | p[i++]; /* segment index is 3 bits: always < HC_AC_SIZE */
        hc_ac_ref *r = &pk->refs[k];
        r->slot = (uint16_t)slot;
        r->is_new = f & NEW_ENTRY_FLAG;
        if (!r->is_new) {
            if (pk->stamp[slot] == pk->gen) { /* filled earlier in this header */
                const hc_ac_ref *e = &pk->refs[pk->ref_of[slot]];
                r->text = e->text;
                r->len = e->len;
            } else if (ac->in[slot].used) {
                r->text = ac->in[slot].text;
                r->len = ac->in[slot].len;
            } else {
                *why = "atom cache reference to an empty slot";
                return HC_EDECODE;
            }
            pk->nrefs = k + 1;
            continue;
        }
        size_t alen;
        if (long_atoms) {
            if (len - i < 2) {
                *why = "truncated atom cache entry";
                return HC_EDECODE;
            }
            alen = hc_get_be16(p + i);
            i += 2;
        } else {
            if (i >= len) {
                *why = "truncated atom cache entry";
                return HC_EDECODE;
            }
            alen = p[i++];
        }
        if (len - i < alen) {
            *why = "truncated atom text in atom cache entry";
            return HC_EDECODE;
        }
        if (alen > HC_ATOM_MAX_BYTES) {
            *why = "atom text in atom cache entry is too long";
            return HC_EDECODE;
        }
        r->text = p + i;
        r->len = (uint16_t)alen;
        i += alen;
        pk->stamp[slot] = pk->gen;
        pk->ref_of[slot] = (uint8_t)k;
        pk->nrefs = k + 1;
    }
    *hdr_end = i;
    return HC_OK;
}

/* The header's new entries go into their slots, in order (a later one for the same slot wins). */
static int store_new_entries(hc_atom_cache *ac)
{
    for (unsigned k = 0; k < ac->rx.nrefs; k++) {
        const hc_ac_ref *r = &ac->rx.refs[k];
        if (r->is_new && set_text(&ac->in[r->slot], r->text, r->len))
            return HC_ENOMEM;
    }
    return HC_OK;
}

int hc_ac_normalize(hc_atom_cache *ac, uint8_t *p, size_t len, const uint8_t **out, size_t *outlen, const char **why)
{
    *why = "malformed term after the distribution header";
    if (len >= 1 && p[0] == 'p') { /* erts never mixes forms, but 'p' is one we understand anyway */
        *out = p;
        *outlen = len;
        return HC_OK;
    }
    if (len < 2 || p[0] != ETF_VERSION) {
        *why = "data packet without a distribution header";
        return HC_EDECODE;
    }
    if (p[1] == ETF_DIST_FRAG_HEADER || p[1] == ETF_DIST_FRAG_CONT) {
        *why = "fragmented message, but fragments were not negotiated";
        return HC_EDECODE;
    }
    if (p[1] != ETF_DIST_HEADER) {
        *why = "unknown distribution header type";
        return HC_EDECODE;
    }
    size_t i;
    int rc = parse_header(ac, p, len, &i, why);
    if (rc)
        return rc;
    if (i >= len) {
        *why = "distribution header without a control message";
        return HC_EDECODE;
    }
    if (ac->rx.nrefs == 0) {
        /* No references: 131,68,0,Ctrl,Msg becomes 'p',131,Ctrl,131,Msg in place by moving the control
         * tuple (small) one byte to the left; the message (possibly large) stays where it is. */
        size_t j = i;
        if (hc_dec_skip(p, len, &j))
            return HC_EDECODE;
        size_t clen = j - i;
        p[0] = 'p';
        p[1] = ETF_VERSION;
        memmove(p + 2, p + i, clen);
        *out = p;
        if (j == len) {
            *outlen = 2 + clen;
            return HC_OK;
        }
        p[2 + clen] = ETF_VERSION; /* the byte just before the message (i == 3) */
        *outlen = len;
        return HC_OK;
    }
    hc_buf_reset(&ac->norm);
    expander x = {
        .p = p, .len = len, .i = i, .copied = i, .out = &ac->norm, .refs = ac->rx.refs, .nrefs = ac->rx.nrefs};
    if ((rc = hc_buf_put_u8(x.out, 'p')) || (rc = hc_buf_put_u8(x.out, ETF_VERSION)))
        return rc;
    if ((rc = expand_terms(&x, 1, 0)) || (rc = flush_in(&x, x.i)))
        return rc;
    if (x.i < len) {
        if ((rc = hc_buf_put_u8(x.out, ETF_VERSION)))
            return rc;
        if ((rc = expand_terms(&x, 1, 0)) || (rc = flush_in(&x, x.i)))
            return rc;
        if (x.i != len) {
            *why = "bytes after the message";
            return HC_EDECODE;
        }
    }
    if ((rc = store_new_entries(ac)))
        return rc;
    *out = ac->norm.data;
    *outlen = ac->norm.len;
    return HC_OK;
}

/* ------------------------------------------------------------------ sending */

/* The two bytes of ATOM_CACHE_REF n, for every n, so a reference is an iovec into static memory. */
static uint8_t ref_bytes[HC_AC_MAX_REFS][2];
static bool ref_bytes_ready;

static void init_ref_bytes(void)
{
    if (ref_bytes_ready)
        return;
    for (unsigned k = 0; k < HC_AC_MAX_REFS; k++) {
        ref_bytes[k][0] = ETF_ATOM_CACHE_REF;
        ref_bytes[k][1] = (uint8_t)k;
    }
    ref_bytes_ready = true;
}

/* The slot for an atom: a hash of its text, so an atom keeps its slot. FNV-1a, then a final mix
 * (murmur3's), because FNV alone spreads names that differ only in their last bytes ("key_1",
 * "key_2", ...) badly over the top bits. */
static uint16_t slot_of(const uint8_t *t, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t k = 0; k < n; k++)
        h = (h ^ t[k]) * 16777619u;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return (uint16_t)(h & (HC_AC_SIZE - 1));
}

static int add_iov(hc_atom_cache *ac, const void *base, size_t n)
{
    if (!n)
        return HC_OK;
    if (hc_array_reserve((void **)&ac->iov, &ac->capiov, ac->niov + 1, sizeof *ac->iov, 32))
        return HC_ENOMEM;
    ac->iov[ac->niov++] = (struct iovec){(void *)base, n};
    return HC_OK;
}

/* The reference index for atom text t[0..n) in this packet, or -1 to send the atom in full (longer
 * than any real atom, its slot already taken by another atom in this packet, or 255 references made). */
static int ref_for(hc_atom_cache *ac, const uint8_t *t, size_t n)
{
    hc_ac_packet *pk = &ac->tx;
    if (n > HC_ATOM_MAX_BYTES)
        return -1;
    uint16_t slot = slot_of(t, n);
    if (pk->stamp[slot] == pk->gen) {
        const hc_ac_ref *r = &pk->refs[pk->ref_of[slot]];
        return same_text(r->text, r->len, t, n) ? pk->ref_of[slot] : -1;
    }
    if (pk->nrefs == HC_AC_MAX_REFS)
        return -1;
    unsigned k = pk->nrefs++;
    const hc_ac_text *o = &ac->out[slot];
    pk->refs[k] = (hc_ac_ref){t, (uint16_t)n, slot, !(o->used && same_text(o->text, o->len, t, n))};
    pk->stamp[slot] = pk->gen;
    pk->ref_of[slot] = (uint8_t)k;
    return (int)k;
}

typedef struct compressor {
    hc_atom_cache *ac;
    const uint8_t *p;
    size_t len, i, sent; /* p[sent .. i) still to be added as a span */
} compressor;

/* The atom at c->i: if it gets a reference, the span before it and the reference go out, and the
 * atom's bytes are skipped. Latin-1 atoms (which we never produce) are left as they are. */
static int compress_atom(compressor *c)
{
    size_t start = c->i;
    uint8_t tag = start < c->len ? c->p[start] : 0;
    const uint8_t *t;
    size_t n;
    if (atom_at(c->p, c->len, start, &t, &n, &c->i))
        return HC_EDECODE;
    if (tag != ETF_SMALL_ATOM_UTF8 && tag != ETF_ATOM_UTF8)
        return HC_OK;
    int k = ref_for(c->ac, t, n);
    if (k < 0)
        return HC_OK;
    int rc = add_iov(c->ac, c->p + c->sent, start - c->sent);
    if (rc || (rc = add_iov(c->ac, ref_bytes[k], 2)))
        return rc;
    c->sent = c->i;
    return HC_OK;
}

/* Walks every term in p[0..len) (a control tuple, or a message), turning atoms into references. Funs
 * are passed through whole: full atoms are always allowed, and their size field stays right. */
static int compress_terms(hc_atom_cache *ac, const uint8_t *p, size_t len)
{
    compressor c = {ac, p, len, 0, 0};
    uint64_t pending = 0;
    while (c.i < len || pending) {
        if (!pending)
            pending = 1; /* the next top-level term */
        pending--;
        if (c.i >= len)
            return HC_EDECODE;
        uint8_t tag = p[c.i++];
        shape s;
        int rc = shape_of(p, len, c.i, tag, &s);
        if (rc)
            return rc;
        switch (s.kind) {
        case SHAPE_RAW:
            c.i += s.pre;
            pending += s.kids;
            break;
        case SHAPE_ATOM:
            c.i--;
            if ((rc = compress_atom(&c)))
                return rc;
            break;
        case SHAPE_NODE:
            c.i += s.pre;
            if ((rc = compress_atom(&c)))
                return rc;
            if (len - c.i < s.post)
                return HC_EDECODE;
            c.i += s.post;
            break;
        case SHAPE_FUN:
            if (len - c.i < 4 || hc_get_be32(p + c.i) < 4 || hc_get_be32(p + c.i) > len - c.i)
                return HC_EDECODE;
            c.i += hc_get_be32(p + c.i);
            break;
        case SHAPE_CACHE_REF: return HC_EDECODE; /* our own terms never hold one */
        }
        if (c.i > len || pending > len - c.i)
            return HC_EDECODE;
    }
    return add_iov(ac, p + c.sent, len - c.sent);
}

static int build_header(hc_atom_cache *ac, size_t body)
{
    hc_buf *h = &ac->hdr;
    const hc_ac_packet *pk = &ac->tx;
    hc_buf_reset(h);
    unsigned n = pk->nrefs;
    int rc = hc_buf_put_be32(h, 0) || hc_buf_put_u8(h, ETF_VERSION) || hc_buf_put_u8(h, ETF_DIST_HEADER) ||
                     hc_buf_put_u8(h, (uint8_t)n)
                 ? HC_ENOMEM
                 : HC_OK;
    if (rc)
        return rc;
    if (n) {
        bool long_atoms = false;
        for (unsigned k = 0; k < n; k++)
            if (pk->refs[k].is_new && pk->refs[k].len > 255)
                long_atoms = true;
        size_t fpos = h->len;
        if ((rc = hc_buf_reserve(h, n / 2 + 1)))
            return rc;
        memset(h->data + fpos, 0, n / 2 + 1);
        h->len += n / 2 + 1;
        for (unsigned k = 0; k < n; k++) {
            unsigned f = (pk->refs[k].is_new ? NEW_ENTRY_FLAG : 0) | (pk->refs[k].slot >> 8);
            h->data[fpos + k / 2] |= (uint8_t)(f << ((k % 2) * 4));
        }
        if (long_atoms)
            h->data[fpos + n / 2] |= (uint8_t)(LONG_ATOMS_FLAG << ((n % 2) * 4));
        for (unsigned k = 0; k < n; k++) {
            const hc_ac_ref *r = &pk->refs[k];
            if (hc_buf_put_u8(h, (uint8_t)(r->slot & 0xFF)))
                return HC_ENOMEM;
            if (!r->is_new)
                continue;
            rc = long_atoms ? hc_buf_put_be16(h, r->len) : hc_buf_put_u8(h, (uint8_t)r->len);
            if (rc || hc_buf_append(h, r->text, r->len))
                return HC_ENOMEM;
        }
    }
    size_t total = h->len - 4 + body;
    if (total > UINT32_MAX)
        return HC_ETOOBIG;
    h->data[0] = (uint8_t)(total >> 24);
    h->data[1] = (uint8_t)(total >> 16);
    h->data[2] = (uint8_t)(total >> 8);
    h->data[3] = (uint8_t)total;
    return HC_OK;
}

/* Starts a packet: no references, no spans (slot 0 of the iovec list is kept for the header). */
static void begin_packet(hc_atom_cache *ac)
{
    begin_refs(&ac->tx);
    ac->niov = 1;
}

int hc_ac_encode(hc_atom_cache *ac, const uint8_t *ctrl, size_t clen, const uint8_t *msg, size_t mlen,
                 const struct iovec **iov, int *niov)
{
    if (clen < 3 || ctrl[0] != 'p' || ctrl[1] != ETF_VERSION)
        return HC_EINVAL;
    init_ref_bytes();
    if (hc_array_reserve((void **)&ac->iov, &ac->capiov, 1, sizeof *ac->iov, 32))
        return HC_ENOMEM;
    begin_packet(ac);
    int rc = compress_terms(ac, ctrl + 2, clen - 2);
    if (!rc && msg)
        rc = compress_terms(ac, msg, mlen);
    if (rc == HC_EDECODE) {
        /* Our own bytes failed to walk (a bug elsewhere): send them unchanged with an empty header
         * rather than guess. The peer will judge the term as it would have in 'p' form. */
        begin_packet(ac);
        rc = add_iov(ac, ctrl + 2, clen - 2);
        if (!rc && msg)
            rc = add_iov(ac, msg, mlen);
    }
    if (rc)
        return rc;
    size_t body = 0;
    for (size_t k = 1; k < ac->niov; k++)
        body += ac->iov[k].iov_len;
    if ((rc = build_header(ac, body)))
        return rc;
    ac->iov[0] = (struct iovec){ac->hdr.data, ac->hdr.len};
    if (ac->niov > INT32_MAX)
        return HC_ETOOBIG;
    *iov = ac->iov;
    *niov = (int)ac->niov;
    return HC_OK;
}

void hc_ac_commit(hc_atom_cache *ac)
{
    hc_ac_packet *pk = &ac->tx;
    for (unsigned k = 0; k < pk->nrefs; k++) {
        const hc_ac_ref *r = &pk->refs[k];
        /* Out of memory here would leave our table behind the peer's: forget the slot instead, so the
         * next use sends the atom text again (a new entry is always correct). */
        if (r->is_new && set_text(&ac->out[r->slot], r->text, r->len)) {
            free(ac->out[r->slot].text);
            ac->out[r->slot] = (hc_ac_text){0};
        }
    }
    pk->nrefs = 0;
}
