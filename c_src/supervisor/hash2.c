/* hash2.c — erlang:phash2 in C: make_hash2 over ETF bytes (reference §5.3).
 *
 * make_hash2 is Bob Jenkins' 96-bit mix folded over the term depth-first, left to right, each kind of term
 * salted by its own multiple of the golden ratio. ETF lays a term out in that same order, so one forward pass
 * over the bytes computes it; the only state kept across elements is per open container: how many elements are
 * left, the run of byte-sized list elements being packed four to a word, and a map's saved hash (the pairs of a
 * map are hashed each from zero and xor-ed, so that key order does not matter).
 *
 * The BEAM hashes the term, not its encoding: 5 as INTEGER_EXT or SMALL_BIG_EXT is the small 5, an atom is its
 * text whatever its encoding, and a list is its cells however they are split between LIST_EXT, STRING_EXT and
 * tails. Every path below turns the encoding back into the term first. */
#include <stdlib.h>
#include <string.h>

#include "common/etf.h"
#include "supervisor/place.h"

#define HC1 0x9e3779b9u /* HCONST_n = n * the golden ratio, mod 2^32 */
#define HC2 0x3c6ef372u
#define HC3 0xdaa66d2bu
#define HC4 0x78dde6e4u
#define HC5 0x1715609du
#define HC6 0xb54cda56u
#define HC7 0x5384540fu
#define HC9 0x8ff34781u
#define HC10 0x2e2ac13au
#define HC11 0xcc623af3u
#define HC12 0x6a99b4acu
#define HC13 0x08d12e65u
#define HC14 0xa708a81eu
#define HC15 0x454021d7u
#define HC16 0xe3779b90u
#define HC19 0xbe1e08bbu

#define NIL_HASH_ALONE 3468870702u /* [] as the first thing hashed */
#define NIL_WORD 2u                /* [] compounded into a running hash: the BEAM's immediate NIL bits */

static inline void mix(uint32_t *pa, uint32_t *pb, uint32_t *pc)
{
    uint32_t a = *pa, b = *pb, c = *pc;
    a -= b, a -= c, a ^= c >> 13;
    b -= c, b -= a, b ^= a << 8;
    c -= a, c -= b, c ^= b >> 13;
    a -= b, a -= c, a ^= c >> 12;
    b -= c, b -= a, b ^= a << 16;
    c -= a, c -= b, c ^= b >> 5;
    a -= b, a -= c, a ^= c >> 3;
    b -= c, b -= a, b ^= a << 10;
    c -= a, c -= b, c ^= b >> 15;
    *pa = a, *pb = b, *pc = c;
}

/* Folds (x, y) into h under the salt k: the BEAM's UINT32_HASH_2; h2(h, x, 0, k) is UINT32_HASH. */
static inline void h2(uint32_t *h, uint32_t x, uint32_t y, uint32_t k)
{
    uint32_t a = k + x, b = k + y;
    mix(&a, &b, h);
}

static inline uint32_t le32(const uint8_t *k)
{
    return (uint32_t)k[0] | (uint32_t)k[1] << 8 | (uint32_t)k[2] << 16 | (uint32_t)k[3] << 24;
}

/* Jenkins' lookup2 over a binary's bytes, starting from c (the BEAM's block_hash). */
static uint32_t block_hash(const uint8_t *k, size_t length, uint32_t c)
{
    uint32_t a = HC1, b = HC1;
    size_t n = length;
    for (; n >= 12; k += 12, n -= 12) {
        a += le32(k), b += le32(k + 4), c += le32(k + 8);
        mix(&a, &b, &c);
    }
    c += (uint32_t)length; /* the BEAM takes the length as `unsigned`: a binary never reaches 4 GiB here */
    for (size_t i = 0; i < n; i++) {
        if (i < 4)
            a += (uint32_t)k[i] << (8 * i);
        else if (i < 8)
            b += (uint32_t)k[i] << (8 * (i - 4));
        else
            c += (uint32_t)k[i] << (8 * (i - 7)); /* c's low byte holds the length */
    }
    mix(&a, &b, &c);
    return c;
}

uint32_t sup_atom_hash(const uint8_t *p, size_t len)
{
    /* hashpjw. OTP 16 hashed atoms as latin-1; since atoms became UTF-8, a character U+0080..U+00FF (two bytes,
     * C2/C3 then a continuation byte) is folded back to its latin-1 byte first, so those hashes did not move. */
    uint32_t h = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t v = p[i];
        if (i + 1 < len && (v & 0xFE) == 0xC2 && (p[i + 1] & 0xC0) == 0x80) {
            v = (uint8_t)((v << 6) | (p[i + 1] & 0x3F));
            i++;
        }
        h = (h << 4) + v;
        uint32_t g = h & 0xF0000000u;
        if (g)
            h ^= g ^ (g >> 24);
    }
    return h;
}

/* Latin-1 atom text (ATOM_EXT, SMALL_ATOM_EXT): the BEAM stores it as UTF-8, and the folding above maps each
 * of its two-byte characters back to the latin-1 byte, so hashing the latin-1 bytes directly is the same. */
static uint32_t atom_hash_latin1(const uint8_t *p, size_t len)
{
    uint32_t h = 0;
    for (size_t i = 0; i < len; i++) {
        h = (h << 4) + p[i];
        uint32_t g = h & 0xF0000000u;
        if (g)
            h ^= g ^ (g >> 24);
    }
    return h;
}

static inline void hash_atom(uint32_t *h, uint32_t ah)
{
    if (*h == 0)
        *h = ah; /* the BEAM's shortcut: an atom hashed first is taken unmixed */
    else
        h2(h, ah, 0, HC3);
}

static inline void hash_nil(uint32_t *h)
{
    if (*h == 0)
        *h = NIL_HASH_ALONE;
    else
        h2(h, NIL_WORD, 0, HC2);
}

/* An integer in [-2^27, 2^27): the BEAM's SINT32_HASH (a negative one is mixed twice). */
static inline void hash_small(uint32_t *h, int32_t x)
{
    if (x < 0)
        h2(h, (uint32_t)-x, 0, HC1);
    h2(h, (uint32_t)x, 0, HC1);
}

/* Any other integer: its magnitude as 64-bit digits, least significant first (what a 64-bit BEAM's bignum
 * holds; a 32-bit one pairs its 32-bit digits to the same words). mag: little-endian, no high zero bytes. */
static void hash_big(uint32_t *h, bool neg, const uint8_t *mag, size_t n)
{
    uint32_t k = neg ? HC10 : HC11;
    for (size_t i = 0; i < n; i += 8) {
        uint8_t d[8] = {0};
        memcpy(d, mag + i, n - i < 8 ? n - i : 8);
        h2(h, le32(d), le32(d + 4), k);
    }
}

/* An integer given as sign and little-endian magnitude, normalised as the BEAM's decoder would. */
static void hash_int(uint32_t *h, bool neg, const uint8_t *mag, size_t n)
{
    while (n && mag[n - 1] == 0)
        n--;
    if (n <= 4) {
        uint32_t m = 0;
        for (size_t i = 0; i < n; i++)
            m |= (uint32_t)mag[i] << (8 * i);
        if (m < (1u << 27) || (neg && m == (1u << 27))) {
            hash_small(h, neg ? -(int32_t)m : (int32_t)m);
            return;
        }
    }
    hash_big(h, neg && n, mag, n);
}

static void hash_i64(uint32_t *h, int64_t v)
{
    uint64_t m = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    uint8_t mag[8];
    for (int i = 0; i < 8; i++)
        mag[i] = (uint8_t)(m >> (8 * i));
    hash_int(h, v < 0, mag, 8);
}

/* ------------------------------------------------------------------ the walk */

typedef struct rd {
    const uint8_t *p;
    size_t len, i;
} rd;

static inline bool need(const rd *r, size_t n) { return r->len - r->i >= n; }

enum { F_ROOT, F_TUPLE, F_LIST, F_MAP };

/* An open container. LIST: `left` elements remain in the current LIST_EXT, then its tail; `sh`/`nb` the pending
 * run of byte elements. MAP: `left` pairs remain, `phase` 0 before a key, 1 before a value, 2 after it; the hash
 * and pair-xor of the enclosing term are saved here while the pairs are hashed from zero. */
typedef struct frame {
    uint8_t kind, phase;
    uint8_t nb;
    uint32_t sh;
    uint32_t saved_hash, saved_xor;
    uint64_t left;
} frame;

typedef struct walk {
    rd r;
    uint32_t hash, xr; /* xr: the pair-xor of the innermost open map */
    frame *st;
    size_t depth, cap;
    frame inl[32];
} walk;

static int push(walk *w, frame f)
{
    if (w->depth == w->cap) {
        size_t cap = w->cap * 2;
        frame *n = malloc(cap * sizeof *n);
        if (!n)
            return HC_ENOMEM;
        memcpy(n, w->st, w->depth * sizeof *n);
        if (w->st != w->inl)
            free(w->st);
        w->st = n;
        w->cap = cap;
    }
    w->st[w->depth++] = f;
    return HC_OK;
}

static inline void run_byte(walk *w, frame *f, uint8_t b)
{
    f->sh = (f->sh << 8) + b;
    if (++f->nb == 4) {
        h2(&w->hash, f->sh, 0, HC4);
        f->sh = 0, f->nb = 0;
    }
}

static inline void run_flush(walk *w, frame *f)
{
    if (f->nb)
        h2(&w->hash, f->sh, 0, HC4);
    f->sh = 0, f->nb = 0;
}

/* If the term at the cursor is an integer 0..255 (in any encoding), consumes it and returns its value; else -1
 * and the cursor stays. Malformed integers are left for the full decoder to reject. */
static int peek_byte(rd *r)
{
    if (!need(r, 1))
        return -1;
    const uint8_t *q = r->p + r->i;
    switch (q[0]) {
    case ETF_SMALL_INTEGER:
        if (!need(r, 2))
            return -1;
        r->i += 2;
        return q[1];
    case ETF_INTEGER: {
        if (!need(r, 5))
            return -1;
        uint32_t v = hc_get_be32(q + 1);
        if (v > 255)
            return -1;
        r->i += 5;
        return (int)v;
    }
    case ETF_SMALL_BIG:
    case ETF_LARGE_BIG: {
        size_t hdr = q[0] == ETF_SMALL_BIG ? 3 : 6;
        if (!need(r, hdr))
            return -1;
        size_t n = q[0] == ETF_SMALL_BIG ? q[1] : hc_get_be32(q + 1);
        uint8_t sign = q[hdr - 1];
        if (sign > 1 || !need(r, hdr + n))
            return -1;
        const uint8_t *m = q + hdr;
        size_t top = n;
        while (top && m[top - 1] == 0)
            top--;
        if (top > 1 || (sign && top)) /* too big, or negative (-0 is 0) */
            return -1;
        r->i += hdr + n;
        return top ? m[0] : 0;
    }
    default: return -1;
    }
}

/* Reads an atom (any of the four encodings) and returns its hash. */
static int read_atom(rd *r, uint32_t *out)
{
    if (!need(r, 1))
        return HC_EDECODE;
    uint8_t tag = r->p[r->i];
    size_t hdr, n;
    if (tag == ETF_SMALL_ATOM || tag == ETF_SMALL_ATOM_UTF8) {
        if (!need(r, 2))
            return HC_EDECODE;
        hdr = 2, n = r->p[r->i + 1];
    } else if (tag == ETF_ATOM || tag == ETF_ATOM_UTF8) {
        if (!need(r, 3))
            return HC_EDECODE;
        hdr = 3, n = hc_get_be16(r->p + r->i + 1);
    } else {
        return HC_EDECODE;
    }
    if (!need(r, hdr + n))
        return HC_EDECODE;
    const uint8_t *s = r->p + r->i + hdr;
    *out = (tag == ETF_ATOM || tag == ETF_SMALL_ATOM) ? atom_hash_latin1(s, n) : sup_atom_hash(s, n);
    r->i += hdr + n;
    return HC_OK;
}

/* Reads an export fun's arity: SMALL_INTEGER (what the BEAM sends) or INTEGER. */
static int read_u32(rd *r, uint32_t *out)
{
    if (need(r, 2) && r->p[r->i] == ETF_SMALL_INTEGER) {
        *out = r->p[r->i + 1];
        r->i += 2;
        return HC_OK;
    }
    if (need(r, 5) && r->p[r->i] == ETF_INTEGER) {
        *out = hc_get_be32(r->p + r->i + 1);
        r->i += 5;
        return HC_OK;
    }
    return HC_EDECODE;
}

/* Hashes one term that starts at the cursor. Scalars are hashed whole; a container is entered: its header is
 * hashed and a frame pushed, and its elements come through the main loop. */
static int term_start(walk *w)
{
    rd *r = &w->r;
    if (!need(r, 1))
        return HC_EDECODE;
    const uint8_t *q = r->p + r->i;
    uint32_t *h = &w->hash;
    switch (q[0]) {
    case ETF_ATOM:
    case ETF_SMALL_ATOM:
    case ETF_ATOM_UTF8:
    case ETF_SMALL_ATOM_UTF8: {
        uint32_t ah;
        int rc = read_atom(r, &ah);
        if (rc)
            return rc;
        hash_atom(h, ah);
        return HC_OK;
    }
    case ETF_NIL:
        r->i++;
        hash_nil(h);
        return HC_OK;
    case ETF_SMALL_INTEGER:
        if (!need(r, 2))
            return HC_EDECODE;
        hash_small(h, q[1]);
        r->i += 2;
        return HC_OK;
    case ETF_INTEGER:
        if (!need(r, 5))
            return HC_EDECODE;
        hash_i64(h, (int32_t)hc_get_be32(q + 1));
        r->i += 5;
        return HC_OK;
    case ETF_SMALL_BIG:
    case ETF_LARGE_BIG: {
        size_t hdr = q[0] == ETF_SMALL_BIG ? 3 : 6;
        if (!need(r, hdr))
            return HC_EDECODE;
        size_t n = q[0] == ETF_SMALL_BIG ? q[1] : hc_get_be32(q + 1);
        if (q[hdr - 1] > 1 || !need(r, hdr + n))
            return HC_EDECODE;
        hash_int(h, q[hdr - 1] == 1, q + hdr, n);
        r->i += hdr + n;
        return HC_OK;
    }
    case ETF_NEW_FLOAT:
    case ETF_FLOAT: {
        double d;
        if (hc_dec_double(r->p, r->len, &r->i, &d))
            return HC_EDECODE;
        if (d == 0.0)
            d = 0.0; /* -0.0 hashes as +0.0 */
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        h2(h, (uint32_t)(bits >> 32), (uint32_t)bits, HC12);
        return HC_OK;
    }
    case ETF_BINARY:
    case ETF_BIT_BINARY: {
        size_t hdr = q[0] == ETF_BINARY ? 5 : 6;
        if (!need(r, hdr))
            return HC_EDECODE;
        size_t n = hc_get_be32(q + 1);
        unsigned bits = 0; /* bits used in a trailing partial byte */
        if (q[0] == ETF_BIT_BINARY) {
            unsigned used = q[5];
            if (used > 8 || (used == 0) != (n == 0))
                return HC_EDECODE;
            bits = used == 8 ? 0 : used;
        }
        if (!need(r, hdr + n))
            return HC_EDECODE;
        size_t whole = bits ? n - 1 : n;
        const uint8_t *b = q + hdr;
        uint32_t c = HC13 + *h;
        if (n == 0) {
            *h = c;
        } else {
            *h = block_hash(b, whole, c);
            if (bits)
                h2(h, bits, (uint32_t)(b[whole] >> (8 - bits)), HC15);
        }
        r->i += hdr + n;
        return HC_OK;
    }
    case ETF_NEW_PID:
    case ETF_PID: {
        /* Only the ID word: node, serial and creation are not hashed. */
        r->i++;
        uint32_t ignored;
        if (read_atom(r, &ignored) || !need(r, q[0] == ETF_NEW_PID ? 12 : 9))
            return HC_EDECODE;
        h2(h, hc_get_be32(r->p + r->i), 0, HC5);
        r->i += q[0] == ETF_NEW_PID ? 12 : 9;
        return HC_OK;
    }
    case ETF_NEW_PORT:
    case ETF_V4_PORT:
    case ETF_PORT: {
        r->i++;
        uint32_t ignored;
        size_t rest = q[0] == ETF_V4_PORT ? 12 : q[0] == ETF_NEW_PORT ? 8 : 5;
        if (read_atom(r, &ignored) || !need(r, rest))
            return HC_EDECODE;
        const uint8_t *id = r->p + r->i;
        uint64_t num = q[0] == ETF_V4_PORT ? hc_get_be64(id) : hc_get_be32(id);
        h2(h, (uint32_t)num, (uint32_t)(num >> 32), HC6);
        r->i += rest;
        return HC_OK;
    }
    case ETF_NEWER_REFERENCE:
    case ETF_NEW_REFERENCE: {
        /* Only the first ID word. */
        if (!need(r, 3))
            return HC_EDECODE;
        size_t words = hc_get_be16(q + 1);
        r->i += 3;
        uint32_t ignored;
        size_t cre = q[0] == ETF_NEWER_REFERENCE ? 4 : 1;
        if (words < 1 || words > 5 || read_atom(r, &ignored) || !need(r, cre + 4 * words))
            return HC_EDECODE;
        h2(h, hc_get_be32(r->p + r->i + cre), 0, HC7);
        r->i += cre + 4 * words;
        return HC_OK;
    }
    case ETF_REFERENCE: {
        r->i++;
        uint32_t ignored;
        if (read_atom(r, &ignored) || !need(r, 5))
            return HC_EDECODE;
        h2(h, hc_get_be32(r->p + r->i), 0, HC7);
        r->i += 5;
        return HC_OK;
    }
    case ETF_EXPORT: {
        r->i++;
        uint32_t mh, fh, arity;
        if (read_atom(r, &mh) || read_atom(r, &fh) || read_u32(r, &arity) || arity > 255)
            return HC_EDECODE;
        h2(h, arity, mh, HC1);
        h2(h, fh, 0, HC14);
        return HC_OK;
    }
    case ETF_SMALL_TUPLE:
    case ETF_LARGE_TUPLE: {
        size_t hdr = q[0] == ETF_SMALL_TUPLE ? 2 : 5;
        if (!need(r, hdr))
            return HC_EDECODE;
        uint32_t arity = q[0] == ETF_SMALL_TUPLE ? q[1] : hc_get_be32(q + 1);
        r->i += hdr;
        h2(h, arity, 0, HC9);
        return arity ? push(w, (frame){.kind = F_TUPLE, .left = arity}) : HC_OK;
    }
    case ETF_MAP: {
        if (!need(r, 5))
            return HC_EDECODE;
        uint32_t size = hc_get_be32(q + 1);
        r->i += 5;
        h2(h, size, 0, HC16);
        if (!size)
            return HC_OK;
        int rc = push(w, (frame){.kind = F_MAP, .left = size, .saved_hash = *h, .saved_xor = w->xr});
        w->xr = 0;
        return rc;
    }
    case ETF_LIST: {
        if (!need(r, 5))
            return HC_EDECODE;
        uint32_t n = hc_get_be32(q + 1);
        r->i += 5;
        return push(w, (frame){.kind = F_LIST, .left = n});
    }
    case ETF_STRING: {
        /* A list of bytes with a [] tail. */
        if (!need(r, 3))
            return HC_EDECODE;
        size_t n = hc_get_be16(q + 1);
        if (!need(r, 3 + n))
            return HC_EDECODE;
        frame f = {.kind = F_LIST};
        for (size_t k = 0; k < n; k++)
            run_byte(w, &f, q[3 + k]);
        run_flush(w, &f);
        hash_nil(h);
        r->i += 3 + n;
        return HC_OK;
    }
    case ETF_NEW_FUN:
    case ETF_FUN: return HC_EINVAL; /* a local fun's hash depends on the module's compiled code */
    default: return HC_EDECODE;     /* including ATOM_CACHE_REF: atom cache references never reach a core */
    }
}

/* The next thing inside a list frame: an element (a byte joins the run; anything else ends it and is hashed as
 * a term), or, when the LIST_EXT is exhausted, its tail. A tail that is another LIST_EXT or a STRING_EXT
 * continues the same list (the BEAM sees cells, not how they were sent); any other tail ends it. */
static int list_step(walk *w, frame *f)
{
    rd *r = &w->r;
    if (f->left) {
        f->left--;
        int b = peek_byte(r);
        if (b >= 0) {
            run_byte(w, f, (uint8_t)b);
            return HC_OK;
        }
        run_flush(w, f);
        return term_start(w); /* may push, and so move the frame array: f is not used after this */
    }
    if (!need(r, 1))
        return HC_EDECODE;
    const uint8_t *q = r->p + r->i;
    if (q[0] == ETF_LIST) {
        if (!need(r, 5))
            return HC_EDECODE;
        f->left = hc_get_be32(q + 1);
        r->i += 5;
        return HC_OK;
    }
    if (q[0] == ETF_STRING) {
        if (!need(r, 3) || !need(r, 3 + (size_t)hc_get_be16(q + 1)))
            return HC_EDECODE;
        size_t n = hc_get_be16(q + 1);
        for (size_t k = 0; k < n; k++)
            run_byte(w, f, q[3 + k]);
        r->i += 3 + n;
        run_flush(w, f);
        w->depth--;
        hash_nil(&w->hash);
        return HC_OK;
    }
    run_flush(w, f);
    w->depth--;
    return term_start(w); /* the tail, hashed as a term of its own */
}

uint32_t sup_phash2_term(const uint8_t *etf, size_t len, int *rc)
{
    walk w = {.r = {etf, len, 0}, .cap = 32};
    w.st = w.inl;
    w.st[w.depth++] = (frame){.kind = F_ROOT, .left = 1};
    int err = HC_OK;
    if (!etf && len)
        err = HC_EINVAL;
    while (!err && w.depth) {
        frame *f = &w.st[w.depth - 1];
        switch (f->kind) {
        case F_ROOT:
        case F_TUPLE:
            if (!f->left) {
                w.depth--;
            } else {
                f->left--;
                err = term_start(&w);
            }
            break;
        case F_MAP:
            if (f->phase == 2) { /* a pair is done */
                w.xr ^= w.hash;
                f->phase = 0;
                f->left--;
            } else if (f->phase == 0 && !f->left) { /* all pairs done */
                w.hash = f->saved_hash;
                h2(&w.hash, w.xr, 0, HC19);
                w.xr = f->saved_xor;
                w.depth--;
            } else {
                if (f->phase == 0)
                    w.hash = 0; /* each pair is hashed on its own */
                f->phase++;
                err = term_start(&w);
            }
            break;
        default: err = list_step(&w, f); break;
        }
    }
    if (!err && w.r.i != len)
        err = HC_EDECODE; /* bytes after the term */
    if (w.st != w.inl)
        free(w.st);
    if (rc)
        *rc = err;
    return err ? 0 : w.hash;
}

/* ------------------------------------------------------------------ shortcuts for placement */

/* {{Name, Node}, I}: both tuples' arities and the two atoms (the same for every point), then I. */
static uint32_t member_prefix(hc_atom name, hc_atom node)
{
    uint32_t h = 0;
    h2(&h, 2, 0, HC9);
    h2(&h, 2, 0, HC9);
    hash_atom(&h, sup_atom_hash((const uint8_t *)hc_atom_name(name), hc_atom_len(name)));
    hash_atom(&h, sup_atom_hash((const uint8_t *)hc_atom_name(node), hc_atom_len(node)));
    return h;
}

uint32_t sup_phash2_member_point(hc_atom name, hc_atom node, uint32_t i)
{
    uint32_t h = member_prefix(name, node);
    hash_i64(&h, i);
    return sup_phash2_max(h);
}

void sup_member_points(hc_atom name, hc_atom node, uint32_t out[SUP_RING_WEIGHT])
{
    uint32_t prefix = member_prefix(name, node);
    for (uint32_t i = 1; i <= SUP_RING_WEIGHT; i++) {
        uint32_t h = prefix;
        hash_small(&h, (int32_t)i);
        out[i - 1] = sup_phash2_max(h);
    }
}

uint32_t sup_phash2_uint(uint64_t v)
{
    uint32_t h = 0;
    if (v < (1u << 27))
        hash_small(&h, (int32_t)v);
    else
        h2(&h, (uint32_t)v, (uint32_t)(v >> 32), HC11); /* one 64-bit bignum digit */
    return sup_phash2_max(h);
}
