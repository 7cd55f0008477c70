/* term_dec.c — the decoders of hc_term.h: one value at p[*idx], every length checked against len, *idx
 * advanced only on success. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/etf.h"
#include "common/term_priv.h"
#include "hordec/hc_term.h"

/* True when n more bytes are there at p[i] (i <= len always holds for the callers' indexes). */
static bool have(size_t len, size_t i, uint64_t n) { return i <= len && n <= len - i; }

int hc_peek_type(const uint8_t *p, size_t len, size_t idx) { return idx < len ? p[idx] : -1; }

/* The tag at p[*i], stepping over it; -1 past the end. */
static int next_tag(const uint8_t *p, size_t len, size_t *i) { return *i < len ? p[(*i)++] : -1; }

hc_type hc_term_type(const uint8_t *p, size_t len, size_t idx)
{
    switch (hc_peek_type(p, len, idx)) {
    case ETF_SMALL_INTEGER:
    case ETF_INTEGER:
    case ETF_SMALL_BIG:
    case ETF_LARGE_BIG: return HC_TYPE_INTEGER;
    case ETF_NEW_FLOAT:
    case ETF_FLOAT: return HC_TYPE_FLOAT;
    case ETF_ATOM:
    case ETF_ATOM_UTF8:
    case ETF_SMALL_ATOM:
    case ETF_SMALL_ATOM_UTF8: return HC_TYPE_ATOM;
    case ETF_BINARY: return HC_TYPE_BINARY;
    case ETF_BIT_BINARY: return HC_TYPE_BITSTRING;
    case ETF_NIL:
    case ETF_STRING:
    case ETF_LIST: return HC_TYPE_LIST;
    case ETF_SMALL_TUPLE:
    case ETF_LARGE_TUPLE: return HC_TYPE_TUPLE;
    case ETF_MAP: return HC_TYPE_MAP;
    case ETF_PID:
    case ETF_NEW_PID: return HC_TYPE_PID;
    case ETF_PORT:
    case ETF_NEW_PORT:
    case ETF_V4_PORT: return HC_TYPE_PORT;
    case ETF_REFERENCE:
    case ETF_NEW_REFERENCE:
    case ETF_NEWER_REFERENCE: return HC_TYPE_REF;
    case ETF_NEW_FUN:
    case ETF_EXPORT: return HC_TYPE_FUN;
    default: return HC_TYPE_NONE;
    }
}

/* ------------------------------------------------------------------ atoms */

/* What the BEAM accepts as an atom's text: well-formed UTF-8 (no overlongs, no surrogates) of at most
 * 255 characters. */
bool term_atom_utf8_ok(const uint8_t *s, size_t n)
{
    /* Nearly every atom is ASCII (node names in every pid): those are checked 8 bytes at a time. */
    size_t i = 0;
    for (uint64_t w; i + 8 <= n; i += 8) {
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull)
            break;
    }
    while (i < n && s[i] < 0x80)
        i++;
    if (i == n)
        return n <= 255;
    size_t chars = i;
    for (; i < n; chars++) {
        uint8_t c = s[i];
        size_t more;
        uint8_t lo = 0x80, hi = 0xBF; /* the allowed range of the second byte */
        if (c < 0x80) {
            more = 0;
        } else if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return false;
        }
        if (n - i - 1 < more)
            return false;
        for (size_t k = 1; k <= more; k++) {
            uint8_t d = s[i + k];
            if (k == 1 ? d < lo || d > hi : d < 0x80 || d > 0xBF)
                return false;
        }
        i += 1 + more;
    }
    return chars <= 255;
}

int term_atom_at(const uint8_t *p, size_t len, size_t *idx, term_atom *out)
{
    size_t i = *idx;
    int tag = next_tag(p, len, &i);
    size_t n;
    if (tag == ETF_SMALL_ATOM_UTF8 || tag == ETF_SMALL_ATOM) {
        if (!have(len, i, 1))
            return HC_EDECODE;
        n = p[i++];
    } else if (tag == ETF_ATOM_UTF8 || tag == ETF_ATOM) {
        if (!have(len, i, 2))
            return HC_EDECODE;
        n = hc_get_be16(p + i);
        i += 2;
    } else {
        return HC_EDECODE;
    }
    if (!have(len, i, n))
        return HC_EDECODE;
    bool latin1 = tag == ETF_ATOM || tag == ETF_SMALL_ATOM;
    /* Only what the BEAM itself accepts (erts refuses the rest as badarg): an atom that no BEAM could decode
     * must not be interned, stored or passed on, or the node it reaches drops the connection. */
    if (latin1 ? n > 255 : !term_atom_utf8_ok(p + i, n))
        return HC_EDECODE;
    *out = (term_atom){p + i, n, latin1};
    *idx = i + n;
    return HC_OK;
}

bool term_atom_eq(const term_atom *a, const char *name, size_t n)
{
    if (!a->latin1)
        return a->n == n && memcmp(a->s, name, n) == 0;
    /* latin1 character c is UTF-8 c (below 0x80) or the two bytes 0xC0|c>>6, 0x80|c&0x3F */
    const uint8_t *u = (const uint8_t *)name;
    size_t j = 0;
    for (size_t k = 0; k < a->n; k++) {
        uint8_t c = a->s[k];
        if (c < 0x80) {
            if (j + 1 > n || u[j] != c)
                return false;
            j++;
        } else {
            if (j + 2 > n || u[j] != (0xC0 | (c >> 6)) || u[j + 1] != (0x80 | (c & 0x3F)))
                return false;
            j += 2;
        }
    }
    return j == n;
}

int hc_dec_atom(const uint8_t *p, size_t len, size_t *idx, hc_atom *out)
{
    size_t i = *idx;
    term_atom a;
    if (term_atom_at(p, len, &i, &a))
        return HC_EDECODE;
    const char *text = (const char *)a.s;
    size_t n = a.n;
    char utf8[HC_ATOM_MAX_BYTES];
    if (a.latin1) { /* OTP compares atoms by their characters: intern the UTF-8 spelling */
        n = 0;
        for (size_t k = 0; k < a.n; k++) {
            uint8_t c = a.s[k];
            if (n + (c < 0x80 ? 1 : 2) > sizeof utf8)
                return HC_EDECODE;
            if (c < 0x80) {
                utf8[n++] = (char)c;
            } else {
                utf8[n++] = (char)(0xC0 | (c >> 6));
                utf8[n++] = (char)(0x80 | (c & 0x3F));
            }
        }
        text = utf8;
    }
    if (n > HC_ATOM_MAX_BYTES)
        return HC_EDECODE;
    int rc = HC_OK;
    hc_atom at = hc_atom_intern(text, n, &rc);
    if (rc)
        return HC_EDECODE;
    *out = at;
    *idx = i;
    return HC_OK;
}

bool hc_dec_is_atom(const uint8_t *p, size_t len, size_t *idx, const char *s)
{
    size_t i = *idx;
    term_atom a;
    if (!s || term_atom_at(p, len, &i, &a) || !term_atom_eq(&a, s, strlen(s)))
        return false;
    *idx = i;
    return true;
}

int hc_dec_atom_index(const uint8_t *p, size_t len, size_t *idx, const char *const *names, size_t n, size_t *out)
{
    size_t i = *idx;
    term_atom a;
    if (term_atom_at(p, len, &i, &a))
        return HC_EDECODE;
    for (size_t k = 0; k < n; k++) {
        if (names[k] && term_atom_eq(&a, names[k], strlen(names[k]))) {
            *out = k;
            *idx = i;
            return HC_OK;
        }
    }
    return HC_EDECODE;
}

int hc_dec_bool(const uint8_t *p, size_t len, size_t *idx, bool *out)
{
    static const char *const names[] = {"false", "true"};
    size_t k;
    if (hc_dec_atom_index(p, len, idx, names, 2, &k))
        return HC_EDECODE;
    *out = k == 1;
    return HC_OK;
}

/* ------------------------------------------------------------------ pids and refs */

int hc_dec_pid(const uint8_t *p, size_t len, size_t *idx, hc_pid *out)
{
    size_t i = *idx;
    int tag = next_tag(p, len, &i);
    if (tag != ETF_NEW_PID && tag != ETF_PID)
        return HC_EDECODE;
    size_t node_at = i;
    term_atom a;
    size_t need = tag == ETF_NEW_PID ? 12 : 9;
    /* the whole pid must be there before its node is interned */
    if (term_atom_at(p, len, &i, &a) || !have(len, i, need))
        return HC_EDECODE;
    hc_pid pid;
    if (hc_dec_atom(p, len, &node_at, &pid.node))
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
    int tag = next_tag(p, len, &i);
    hc_ref r = {0};
    size_t cre; /* bytes of creation */
    if (tag == ETF_NEWER_REFERENCE || tag == ETF_NEW_REFERENCE) {
        if (!have(len, i, 2))
            return HC_EDECODE;
        r.len = hc_get_be16(p + i);
        i += 2;
        if (r.len < 1 || r.len > 5)
            return HC_EDECODE;
        cre = tag == ETF_NEWER_REFERENCE ? 4 : 1;
    } else if (tag == ETF_REFERENCE) {
        r.len = 1;
        cre = 1;
    } else {
        return HC_EDECODE;
    }
    size_t node_at = i;
    term_atom a;
    if (term_atom_at(p, len, &i, &a) || !have(len, i, cre + 4 * (size_t)r.len))
        return HC_EDECODE;
    if (hc_dec_atom(p, len, &node_at, &r.node))
        return HC_EDECODE;
    if (tag == ETF_REFERENCE) { /* ID word, then creation */
        r.n[0] = hc_get_be32(p + i);
        r.creation = p[i + 4];
    } else {
        r.creation = cre == 4 ? hc_get_be32(p + i) : p[i];
        for (uint32_t k = 0; k < r.len; k++)
            r.n[k] = hc_get_be32(p + i + cre + 4 * k);
    }
    *idx = i + cre + 4 * (size_t)r.len;
    *out = r;
    return HC_OK;
}

/* ------------------------------------------------------------------ numbers */

/* An integer that fits 64 bits of magnitude: SMALL_INTEGER, INTEGER, SMALL_BIG with up to 8 digits. */
static int dec_int(const uint8_t *p, size_t len, size_t *idx, uint64_t *mag, bool *neg)
{
    size_t i = *idx;
    int tag = next_tag(p, len, &i);
    if (tag == ETF_SMALL_INTEGER) {
        if (!have(len, i, 1))
            return HC_EDECODE;
        *mag = p[i];
        *neg = false;
        *idx = i + 1;
        return HC_OK;
    }
    if (tag == ETF_INTEGER) {
        if (!have(len, i, 4))
            return HC_EDECODE;
        int32_t v = (int32_t)hc_get_be32(p + i);
        *neg = v < 0;
        *mag = v < 0 ? (uint64_t)(-(int64_t)v) : (uint64_t)v;
        *idx = i + 4;
        return HC_OK;
    }
    if (tag == ETF_SMALL_BIG) {
        if (!have(len, i, 2))
            return HC_EDECODE;
        size_t n = p[i], sign = p[i + 1];
        i += 2;
        if (n > 8 || sign > 1 || !have(len, i, n))
            return HC_EDECODE;
        uint64_t m = 0;
        for (size_t k = n; k-- > 0;)
            m = m << 8 | p[i + k]; /* digits are little-endian */
        *mag = m;
        *neg = sign && m; /* -0 is 0 */
        *idx = i + n;
        return HC_OK;
    }
    return HC_EDECODE;
}

int hc_dec_long(const uint8_t *p, size_t len, size_t *idx, int64_t *out)
{
    size_t i = *idx;
    uint64_t mag;
    bool neg;
    if (dec_int(p, len, &i, &mag, &neg) || mag > (uint64_t)INT64_MAX + neg)
        return HC_EDECODE;
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    *idx = i;
    return HC_OK;
}

int hc_dec_ulong(const uint8_t *p, size_t len, size_t *idx, uint64_t *out)
{
    size_t i = *idx;
    uint64_t mag;
    bool neg;
    if (dec_int(p, len, &i, &mag, &neg) || neg)
        return HC_EDECODE;
    *out = mag;
    *idx = i;
    return HC_OK;
}

/* FLOAT_EXT's text ("%.20e", NUL-padded to 31 bytes). Parsed by hand into a form without a decimal point
 * ("15000000000000000000e-20"), because strtod reads the point in the caller's locale. */
static int parse_float_text(const uint8_t *s, double *out)
{
    char buf[64];
    size_t o = 0, k = 0, frac = 0;
    if (s[k] == '-' || s[k] == '+')
        buf[o++] = (char)s[k++];
    size_t digits = 0;
    for (; k < 31 && s[k] >= '0' && s[k] <= '9'; k++, digits++)
        buf[o++] = (char)s[k];
    if (k < 31 && s[k] == '.')
        for (k++; k < 31 && s[k] >= '0' && s[k] <= '9'; k++, digits++, frac++)
            buf[o++] = (char)s[k];
    if (!digits)
        return HC_EDECODE;
    long exp = 0;
    if (k < 31 && (s[k] == 'e' || s[k] == 'E')) {
        k++;
        bool eneg = k < 31 && s[k] == '-';
        if (k < 31 && (s[k] == '-' || s[k] == '+'))
            k++;
        size_t ed = 0;
        for (; k < 31 && s[k] >= '0' && s[k] <= '9'; k++, ed++)
            if (exp < 100000)
                exp = exp * 10 + (s[k] - '0');
        if (!ed)
            return HC_EDECODE;
        if (eneg)
            exp = -exp;
    }
    for (; k < 31; k++) /* only padding may follow */
        if (s[k])
            return HC_EDECODE;
    snprintf(buf + o, sizeof buf - o, "e%ld", exp - (long)frac);
    char *end;
    double v = strtod(buf, &end);
    if (*end || !isfinite(v))
        return HC_EDECODE;
    *out = v;
    return HC_OK;
}

int hc_dec_double(const uint8_t *p, size_t len, size_t *idx, double *out)
{
    size_t i = *idx;
    int tag = next_tag(p, len, &i);
    double v;
    if (tag == ETF_NEW_FLOAT) {
        if (!have(len, i, 8))
            return HC_EDECODE;
        uint64_t bits = hc_get_be64(p + i);
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v)) /* the BEAM refuses these too */
            return HC_EDECODE;
        i += 8;
    } else if (tag == ETF_FLOAT) {
        if (!have(len, i, 31) || parse_float_text(p + i, &v))
            return HC_EDECODE;
        i += 31;
    } else {
        return HC_EDECODE;
    }
    *out = v;
    *idx = i;
    return HC_OK;
}

/* ------------------------------------------------------------------ binaries and strings */

int hc_dec_binary(const uint8_t *p, size_t len, size_t *idx, hc_span *out)
{
    size_t i = *idx;
    if (!have(len, i, 5) || p[i] != ETF_BINARY)
        return HC_EDECODE;
    size_t n = hc_get_be32(p + i + 1);
    i += 5;
    if (!have(len, i, n))
        return HC_EDECODE;
    *out = (hc_span){p + i, n};
    *idx = i + n;
    return HC_OK;
}

int hc_dec_string(const uint8_t *p, size_t len, size_t *idx, hc_span *out)
{
    size_t i = *idx;
    int tag = hc_peek_type(p, len, i);
    if (tag == ETF_BINARY)
        return hc_dec_binary(p, len, idx, out);
    if (tag == ETF_NIL) {
        *out = (hc_span){p + i, 0};
        *idx = i + 1;
        return HC_OK;
    }
    if (tag != ETF_STRING || !have(len, i, 3))
        return HC_EDECODE;
    size_t n = hc_get_be16(p + i + 1);
    i += 3;
    if (!have(len, i, n))
        return HC_EDECODE;
    for (size_t k = 0; k < n; k++)
        if (p[i + k] >= 0x80) /* latin1, not UTF-8: a borrowed span cannot carry it */
            return HC_EDECODE;
    *out = (hc_span){p + i, n};
    *idx = i + n;
    return HC_OK;
}

/* ------------------------------------------------------------------ container headers */

/* The count in a container header at p[*idx]: tag `small` followed by a one-byte count (small < 0: there
 * is no such form), or tag `large` followed by a four-byte count. */
static int dec_count(const uint8_t *p, size_t len, size_t *idx, int small, int large, uint32_t *out)
{
    size_t i = *idx;
    if (small >= 0 && have(len, i, 2) && p[i] == small) {
        *out = p[i + 1];
        *idx = i + 2;
        return HC_OK;
    }
    if (!have(len, i, 5) || p[i] != large)
        return HC_EDECODE;
    *out = hc_get_be32(p + i + 1);
    *idx = i + 5;
    return HC_OK;
}

int hc_dec_tuple_header(const uint8_t *p, size_t len, size_t *idx, uint32_t *arity)
{
    return dec_count(p, len, idx, ETF_SMALL_TUPLE, ETF_LARGE_TUPLE, arity);
}

int hc_dec_map_header(const uint8_t *p, size_t len, size_t *idx, uint32_t *arity)
{
    return dec_count(p, len, idx, -1, ETF_MAP, arity);
}

int hc_dec_list_header(const uint8_t *p, size_t len, size_t *idx, uint32_t *n)
{
    if (hc_peek_type(p, len, *idx) == ETF_NIL) {
        *n = 0;
        (*idx)++;
        return HC_OK;
    }
    /* LIST with no elements is only its tail: binary_to_term reads it, term_to_binary never writes it (a BEAM
     * sends NIL). Accepting it would let a caller that reads "0 elements" stop before the tail, where the skipper
     * and hc_term_check count the tail in: two readings of one term. */
    size_t i = *idx;
    uint32_t k;
    if (dec_count(p, len, &i, -1, ETF_LIST, &k) || k == 0)
        return HC_EDECODE;
    *n = k;
    *idx = i;
    return HC_OK;
}
