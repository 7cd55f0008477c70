/* term.c — compact pid/ref/atom codecs and a bounds-checked term skipper.
 *
 * We write these ourselves instead of using ei for three reasons: ei's erlang_pid/erlang_ref are ~1 KB
 * structs with the node name inline; ei_skip_term trusts its input and reads past the end of a
 * truncated buffer; and ei's atom encoder re-encodes UTF-8 as latin1 unless told otherwise. */
#include "hordec/hc_term.h"

#include <string.h>

#include "common/etf.h"

/* ------------------------------------------------------------------ hashing and equality */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

bool hc_ref_eq(const hc_ref *a, const hc_ref *b)
{
    if (a->node != b->node || a->creation != b->creation || a->len != b->len)
        return false;
    for (uint32_t i = 0; i < a->len && i < 5; i++)
        if (a->n[i] != b->n[i])
            return false;
    return true;
}

uint64_t hc_ref_hash(const hc_ref *r)
{
    uint64_t h = ((uint64_t)r->node << 32) ^ r->creation;
    for (uint32_t i = 0; i < r->len && i < 5; i++)
        h = mix64(h ^ r->n[i]);
    return mix64(h);
}

uint64_t hc_pid_hash(const hc_pid *p)
{
    return mix64(((uint64_t)p->num << 32 | p->serial) ^ ((uint64_t)p->node << 20) ^ p->creation);
}

/* ------------------------------------------------------------------ encoders */

int hc_enc_atom(hc_buf *b, hc_atom a)
{
    size_t n = hc_atom_len(a);
    int rc = n < 256 ? hc_buf_put_u8(b, ETF_SMALL_ATOM_UTF8) || hc_buf_put_u8(b, (uint8_t)n)
                     : hc_buf_put_u8(b, ETF_ATOM_UTF8) || hc_buf_put_be16(b, (uint16_t)n);
    return rc ? HC_ENOMEM : hc_buf_append(b, hc_atom_name(a), n);
}

int hc_enc_atom_cstr(hc_buf *b, const char *s)
{
    size_t n = strlen(s);
    if (n > HC_ATOM_MAX_BYTES)
        return HC_EINVAL;
    int rc = n < 256 ? hc_buf_put_u8(b, ETF_SMALL_ATOM_UTF8) || hc_buf_put_u8(b, (uint8_t)n)
                     : hc_buf_put_u8(b, ETF_ATOM_UTF8) || hc_buf_put_be16(b, (uint16_t)n);
    return rc ? HC_ENOMEM : hc_buf_append(b, s, n);
}

int hc_enc_pid(hc_buf *b, const hc_pid *p)
{
    if (hc_buf_put_u8(b, ETF_NEW_PID) || hc_enc_atom(b, p->node) || hc_buf_put_be32(b, p->num) ||
        hc_buf_put_be32(b, p->serial) || hc_buf_put_be32(b, p->creation))
        return HC_ENOMEM;
    return HC_OK;
}

int hc_enc_ref(hc_buf *b, const hc_ref *r)
{
    if (r->len < 1 || r->len > 5)
        return HC_EINVAL;
    if (hc_buf_put_u8(b, ETF_NEWER_REFERENCE) || hc_buf_put_be16(b, (uint16_t)r->len) || hc_enc_atom(b, r->node) ||
        hc_buf_put_be32(b, r->creation))
        return HC_ENOMEM;
    for (uint32_t i = 0; i < r->len; i++)
        if (hc_buf_put_be32(b, r->n[i]))
            return HC_ENOMEM;
    return HC_OK;
}

int hc_enc_tuple_header(hc_buf *b, uint32_t arity)
{
    if (arity < 256)
        return hc_buf_put_u8(b, ETF_SMALL_TUPLE) || hc_buf_put_u8(b, (uint8_t)arity) ? HC_ENOMEM : HC_OK;
    return hc_buf_put_u8(b, ETF_LARGE_TUPLE) || hc_buf_put_be32(b, arity) ? HC_ENOMEM : HC_OK;
}

int hc_enc_list_header(hc_buf *b, uint32_t n)
{
    if (n == 0)
        return HC_EINVAL;
    return hc_buf_put_u8(b, ETF_LIST) || hc_buf_put_be32(b, n) ? HC_ENOMEM : HC_OK;
}

int hc_enc_nil(hc_buf *b) { return hc_buf_put_u8(b, ETF_NIL); }

int hc_enc_map_header(hc_buf *b, uint32_t arity)
{
    return hc_buf_put_u8(b, ETF_MAP) || hc_buf_put_be32(b, arity) ? HC_ENOMEM : HC_OK;
}

int hc_enc_ulong(hc_buf *b, uint64_t v)
{
    if (v < 256)
        return hc_buf_put_u8(b, ETF_SMALL_INTEGER) || hc_buf_put_u8(b, (uint8_t)v) ? HC_ENOMEM : HC_OK;
    if (v <= INT32_MAX)
        return hc_buf_put_u8(b, ETF_INTEGER) || hc_buf_put_be32(b, (uint32_t)v) ? HC_ENOMEM : HC_OK;
    uint8_t digits[8];
    int n = 0;
    for (uint64_t x = v; x; x >>= 8)
        digits[n++] = (uint8_t)x; /* SMALL_BIG digits are little-endian */
    if (hc_buf_put_u8(b, ETF_SMALL_BIG) || hc_buf_put_u8(b, (uint8_t)n) || hc_buf_put_u8(b, 0))
        return HC_ENOMEM;
    return hc_buf_append(b, digits, (size_t)n);
}

int hc_enc_long(hc_buf *b, int64_t v)
{
    if (v >= 0)
        return hc_enc_ulong(b, (uint64_t)v);
    if (v >= INT32_MIN)
        return hc_buf_put_u8(b, ETF_INTEGER) || hc_buf_put_be32(b, (uint32_t)(int32_t)v) ? HC_ENOMEM : HC_OK;
    uint64_t mag = (uint64_t)(-(v + 1)) + 1; /* no overflow for INT64_MIN */
    uint8_t digits[8];
    int n = 0;
    for (uint64_t x = mag; x; x >>= 8)
        digits[n++] = (uint8_t)x;
    if (hc_buf_put_u8(b, ETF_SMALL_BIG) || hc_buf_put_u8(b, (uint8_t)n) || hc_buf_put_u8(b, 1))
        return HC_ENOMEM;
    return hc_buf_append(b, digits, (size_t)n);
}

int hc_enc_binary(hc_buf *b, const void *p, size_t n)
{
    if (n > UINT32_MAX)
        return HC_ETOOBIG;
    if (hc_buf_put_u8(b, ETF_BINARY) || hc_buf_put_be32(b, (uint32_t)n))
        return HC_ENOMEM;
    return hc_buf_append(b, p, n);
}

int hc_enc_string(hc_buf *b, const char *s) { return hc_enc_binary(b, s, strlen(s)); }

int hc_enc_double(hc_buf *b, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return hc_buf_put_u8(b, ETF_NEW_FLOAT) || hc_buf_put_be64(b, bits) ? HC_ENOMEM : HC_OK;
}

/* ------------------------------------------------------------------ decoders */

#define NEED(n)                                                                                                        \
    do {                                                                                                               \
        if (len - *idx < (size_t)(n))                                                                                  \
            return HC_EDECODE;                                                                                         \
    } while (0)

int hc_peek_type(const uint8_t *p, size_t len, size_t idx) { return idx < len ? p[idx] : -1; }

/* Reads an atom's bytes without interning; latin1 atoms (ATOM_EXT, SMALL_ATOM_EXT) are converted to UTF-8
 * into `tmp` (which must hold 2 * 65535 bytes) because OTP compares atoms by their characters. */
static int dec_atom_bytes(const uint8_t *p, size_t len, size_t *idx, const char **out, size_t *out_len, char *tmp)
{
    if (*idx >= len)
        return HC_EDECODE;
    uint8_t tag = p[(*idx)++];
    size_t n;
    if (tag == ETF_SMALL_ATOM_UTF8 || tag == ETF_SMALL_ATOM) {
        NEED(1);
        n = p[(*idx)++];
    } else if (tag == ETF_ATOM_UTF8 || tag == ETF_ATOM) {
        NEED(2);
        n = hc_get_be16(p + *idx);
        *idx += 2;
    } else {
        return HC_EDECODE;
    }
    NEED(n);
    const uint8_t *s = p + *idx;
    *idx += n;
    if (tag == ETF_SMALL_ATOM_UTF8 || tag == ETF_ATOM_UTF8) {
        *out = (const char *)s;
        *out_len = n;
        return HC_OK;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x80) {
            tmp[o++] = (char)s[i];
        } else {
            tmp[o++] = (char)(0xC0 | (s[i] >> 6));
            tmp[o++] = (char)(0x80 | (s[i] & 0x3F));
        }
    }
    *out = tmp;
    *out_len = o;
    return HC_OK;
}

int hc_dec_atom(const uint8_t *p, size_t len, size_t *idx, hc_atom *out)
{
    static char tmp[2 * 65536];
    const char *s;
    size_t n;
    size_t i = *idx;
    int rc = dec_atom_bytes(p, len, &i, &s, &n, tmp);
    if (rc)
        return rc;
    if (n > HC_ATOM_MAX_BYTES)
        return HC_EDECODE;
    rc = HC_OK;
    hc_atom a = hc_atom_intern(s, n, &rc);
    if (rc)
        return HC_EDECODE;
    *out = a;
    *idx = i;
    return HC_OK;
}

bool hc_dec_is_atom(const uint8_t *p, size_t len, size_t *idx, const char *want)
{
    static char tmp[2 * 65536];
    const char *s;
    size_t n, i = *idx;
    if (dec_atom_bytes(p, len, &i, &s, &n, tmp))
        return false;
    if (n != strlen(want) || memcmp(s, want, n) != 0)
        return false;
    *idx = i;
    return true;
}

int hc_dec_pid(const uint8_t *p, size_t len, size_t *idx, hc_pid *out)
{
    size_t i = *idx;
    if (i >= len)
        return HC_EDECODE;
    uint8_t tag = p[i++];
    if (tag != ETF_NEW_PID && tag != ETF_PID)
        return HC_EDECODE;
    hc_pid pid;
    if (hc_dec_atom(p, len, &i, &pid.node))
        return HC_EDECODE;
    size_t need = tag == ETF_NEW_PID ? 12 : 9;
    if (len - i < need)
        return HC_EDECODE;
    pid.num = hc_get_be32(p + i);
    pid.serial = hc_get_be32(p + i + 4);
    pid.creation = tag == ETF_NEW_PID ? hc_get_be32(p + i + 8) : p[i + 8];
    *idx = i + need;
    *out = pid;
    return HC_OK;
}

int hc_dec_ref(const uint8_t *p, size_t len, size_t *idx, hc_ref *out)
{
    size_t i = *idx;
    if (i >= len)
        return HC_EDECODE;
    uint8_t tag = p[i++];
    hc_ref r = {0};
    if (tag == ETF_NEWER_REFERENCE || tag == ETF_NEW_REFERENCE) {
        if (len - i < 2)
            return HC_EDECODE;
        r.len = hc_get_be16(p + i);
        i += 2;
        if (r.len < 1 || r.len > 5)
            return HC_EDECODE;
        if (hc_dec_atom(p, len, &i, &r.node))
            return HC_EDECODE;
        size_t cre = tag == ETF_NEWER_REFERENCE ? 4 : 1;
        if (len - i < cre + 4 * (size_t)r.len)
            return HC_EDECODE;
        r.creation = cre == 4 ? hc_get_be32(p + i) : p[i];
        i += cre;
        for (uint32_t k = 0; k < r.len; k++, i += 4)
            r.n[k] = hc_get_be32(p + i);
    } else if (tag == ETF_REFERENCE) {
        if (hc_dec_atom(p, len, &i, &r.node) || len - i < 5)
            return HC_EDECODE;
        r.len = 1;
        r.n[0] = hc_get_be32(p + i);
        r.creation = p[i + 4];
        i += 5;
    } else {
        return HC_EDECODE;
    }
    *idx = i;
    *out = r;
    return HC_OK;
}

int hc_dec_tuple_header(const uint8_t *p, size_t len, size_t *idx, uint32_t *arity)
{
    size_t i = *idx;
    if (i >= len)
        return HC_EDECODE;
    if (p[i] == ETF_SMALL_TUPLE) {
        if (len - i < 2)
            return HC_EDECODE;
        *arity = p[i + 1];
        *idx = i + 2;
        return HC_OK;
    }
    if (p[i] == ETF_LARGE_TUPLE) {
        if (len - i < 5)
            return HC_EDECODE;
        *arity = hc_get_be32(p + i + 1);
        *idx = i + 5;
        return HC_OK;
    }
    return HC_EDECODE;
}

int hc_dec_list_header(const uint8_t *p, size_t len, size_t *idx, uint32_t *n)
{
    size_t i = *idx;
    if (i >= len)
        return HC_EDECODE;
    if (p[i] == ETF_NIL) {
        *n = 0;
        *idx = i + 1;
        return HC_OK;
    }
    if (p[i] == ETF_LIST) {
        if (len - i < 5)
            return HC_EDECODE;
        *n = hc_get_be32(p + i + 1);
        *idx = i + 5;
        return HC_OK;
    }
    return HC_EDECODE;
}

int hc_dec_long(const uint8_t *p, size_t len, size_t *idx, int64_t *out)
{
    size_t i = *idx;
    if (i >= len)
        return HC_EDECODE;
    uint8_t tag = p[i++];
    if (tag == ETF_SMALL_INTEGER) {
        if (i >= len)
            return HC_EDECODE;
        *out = p[i];
        *idx = i + 1;
        return HC_OK;
    }
    if (tag == ETF_INTEGER) {
        if (len - i < 4)
            return HC_EDECODE;
        *out = (int32_t)hc_get_be32(p + i);
        *idx = i + 4;
        return HC_OK;
    }
    if (tag == ETF_SMALL_BIG) {
        if (len - i < 2)
            return HC_EDECODE;
        size_t n = p[i], sign = p[i + 1];
        i += 2;
        if (n > 8 || len - i < n || sign > 1)
            return HC_EDECODE;
        uint64_t mag = 0;
        for (size_t k = n; k-- > 0;)
            mag = mag << 8 | p[i + k];
        if ((!sign && mag > (uint64_t)INT64_MAX) || (sign && mag > (uint64_t)INT64_MAX + 1))
            return HC_EDECODE;
        *out = sign ? (int64_t)(0 - mag) : (int64_t)mag;
        *idx = i + n;
        return HC_OK;
    }
    return HC_EDECODE;
}

/* Skips an atom, checking only its tag and length (no conversion, no interning). */
static int skip_atom(const uint8_t *p, size_t len, size_t *idx)
{
    size_t i = *idx;
    if (i >= len)
        return HC_EDECODE;
    uint8_t tag = p[i++];
    size_t n;
    if (tag == ETF_SMALL_ATOM_UTF8 || tag == ETF_SMALL_ATOM) {
        if (i >= len)
            return HC_EDECODE;
        n = p[i++];
    } else if (tag == ETF_ATOM_UTF8 || tag == ETF_ATOM) {
        if (len - i < 2)
            return HC_EDECODE;
        n = hc_get_be16(p + i);
        i += 2;
    } else {
        return HC_EDECODE;
    }
    if (len - i < n)
        return HC_EDECODE;
    *idx = i + n;
    return HC_OK;
}

/* Skips one whole term. Iterative (a counter of terms still to skip) so that deeply nested input
 * cannot overflow the C stack; every length is checked against the bytes that remain, and the pending
 * count can never exceed the remaining bytes (each term takes at least one), so a huge claimed arity
 * fails at once instead of spinning. */
int hc_dec_skip(const uint8_t *p, size_t len, size_t *idx)
{
    size_t i = *idx;
    uint64_t pending = 1;
    while (pending) {
        pending--;
        if (i >= len)
            return HC_EDECODE;
        uint8_t tag = p[i++];
        size_t n;
        switch (tag) {
        case ETF_SMALL_INTEGER: n = 1; break;
        case ETF_INTEGER: n = 4; break;
        case ETF_FLOAT: n = 31; break;
        case ETF_NEW_FLOAT: n = 8; break;
        case ETF_NIL: n = 0; break;
        case ETF_ATOM:
        case ETF_ATOM_UTF8:
            if (len - i < 2)
                return HC_EDECODE;
            n = 2 + (size_t)hc_get_be16(p + i);
            break;
        case ETF_SMALL_ATOM:
        case ETF_SMALL_ATOM_UTF8:
            if (len - i < 1)
                return HC_EDECODE;
            n = 1 + (size_t)p[i];
            break;
        case ETF_STRING:
            if (len - i < 2)
                return HC_EDECODE;
            n = 2 + (size_t)hc_get_be16(p + i);
            break;
        case ETF_BINARY:
            if (len - i < 4)
                return HC_EDECODE;
            n = 4 + (size_t)hc_get_be32(p + i);
            break;
        case ETF_BIT_BINARY:
            if (len - i < 5)
                return HC_EDECODE;
            if (p[i + 4] < 1 || p[i + 4] > 8 || hc_get_be32(p + i) == 0)
                return HC_EDECODE;
            n = 5 + (size_t)hc_get_be32(p + i);
            break;
        case ETF_SMALL_BIG:
            if (len - i < 2)
                return HC_EDECODE;
            n = 2 + (size_t)p[i];
            break;
        case ETF_LARGE_BIG:
            if (len - i < 5)
                return HC_EDECODE;
            n = 5 + (size_t)hc_get_be32(p + i);
            break;
        case ETF_SMALL_TUPLE:
            if (len - i < 1)
                return HC_EDECODE;
            pending += p[i];
            n = 1;
            break;
        case ETF_LARGE_TUPLE:
            if (len - i < 4)
                return HC_EDECODE;
            pending += hc_get_be32(p + i);
            n = 4;
            break;
        case ETF_MAP:
            if (len - i < 4)
                return HC_EDECODE;
            pending += 2 * (uint64_t)hc_get_be32(p + i);
            n = 4;
            break;
        case ETF_LIST:
            if (len - i < 4)
                return HC_EDECODE;
            pending += (uint64_t)hc_get_be32(p + i) + 1; /* elements and the tail */
            n = 4;
            break;
        case ETF_PID:
        case ETF_NEW_PID:
        case ETF_PORT:
        case ETF_NEW_PORT:
        case ETF_V4_PORT:
        case ETF_REFERENCE: {
            size_t j = i;
            if (skip_atom(p, len, &j))
                return HC_EDECODE;
            size_t rest = tag == ETF_PID ? 9 : tag == ETF_NEW_PID ? 12 : tag == ETF_PORT ? 5
                        : tag == ETF_NEW_PORT ? 8 : tag == ETF_V4_PORT ? 12 : 5;
            n = (j - i) + rest;
            break;
        }
        case ETF_NEW_REFERENCE:
        case ETF_NEWER_REFERENCE: {
            if (len - i < 2)
                return HC_EDECODE;
            size_t words = hc_get_be16(p + i);
            size_t j = i + 2;
            if (words < 1 || words > 5 || skip_atom(p, len, &j))
                return HC_EDECODE;
            n = (j - i) + (tag == ETF_NEWER_REFERENCE ? 4 : 1) + 4 * words;
            break;
        }
        case ETF_NEW_FUN:
            /* Size counts itself (4 bytes) and everything after the tag. */
            if (len - i < 4 || hc_get_be32(p + i) < 4)
                return HC_EDECODE;
            n = hc_get_be32(p + i);
            break;
        case ETF_EXPORT:
            pending += 3; /* module atom, function atom, arity */
            n = 0;
            break;
        default:
            return HC_EDECODE; /* atom cache refs, compressed and old-style funs are never negotiated */
        }
        if (len - i < n)
            return HC_EDECODE;
        i += n;
        if (pending > len - i)
            return HC_EDECODE;
    }
    *idx = i;
    return HC_OK;
}
