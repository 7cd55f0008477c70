/* term_skip.c — the one term skipper (hc_dec_skip, hc_dec_term) and checker (hc_term_check).
 *
 * Iterative, so that no nesting can exhaust the C stack: a term is read as a head (its tag and fixed
 * bytes) plus a number of child terms still due. With a depth limit, each open container keeps its own
 * count of children still due, in a fixed array of HC_TERM_MAX_DEPTH + 1 levels; without one, a single
 * total is enough. Either way the total still due can never exceed the bytes left (every term takes at
 * least one byte), so a claimed arity of four billion fails at once instead of spinning. */
#include "common/etf.h"
#include "common/term_priv.h"
#include "hordec/hc_term.h"

/* The head of the term at p[i] (tag already read, i just after it): how many bytes follow before its
 * children (*n) and how many children it has (*kids). */
static int head(const uint8_t *p, size_t len, size_t i, uint8_t tag, uint64_t *n, uint64_t *kids)
{
    size_t left = len - i;
    *kids = 0;
    switch (tag) {
    case ETF_SMALL_INTEGER: *n = 1; return HC_OK;
    case ETF_INTEGER: *n = 4; return HC_OK;
    case ETF_FLOAT: *n = 31; return HC_OK;
    case ETF_NEW_FLOAT: *n = 8; return HC_OK;
    case ETF_NIL: *n = 0; return HC_OK;
    case ETF_STRING:
        if (left < 2)
            return HC_EDECODE;
        *n = 2 + (uint64_t)hc_get_be16(p + i);
        return HC_OK;
    case ETF_ATOM:
    case ETF_ATOM_UTF8:
    case ETF_SMALL_ATOM:
    case ETF_SMALL_ATOM_UTF8: {
        /* the text too: an atom no BEAM accepts must not pass as part of a well-formed term (term_atom_at) */
        size_t j = i - 1;
        term_atom a;
        if (term_atom_at(p, len, &j, &a))
            return HC_EDECODE;
        *n = j - i;
        return HC_OK;
    }
    case ETF_BINARY:
        if (left < 4)
            return HC_EDECODE;
        *n = 4 + (uint64_t)hc_get_be32(p + i);
        return HC_OK;
    case ETF_BIT_BINARY: /* Len(4) Bits(1): a non-empty payload whose last byte holds 1..8 bits */
        if (left < 5 || hc_get_be32(p + i) == 0 || p[i + 4] < 1 || p[i + 4] > 8)
            return HC_EDECODE;
        *n = 5 + (uint64_t)hc_get_be32(p + i);
        return HC_OK;
    case ETF_SMALL_BIG:
        if (left < 1)
            return HC_EDECODE;
        *n = 2 + (uint64_t)p[i]; /* n, sign, n digits */
        return HC_OK;
    case ETF_LARGE_BIG:
        if (left < 4)
            return HC_EDECODE;
        *n = 5 + (uint64_t)hc_get_be32(p + i);
        return HC_OK;
    case ETF_NEW_FUN: /* Size counts itself (4 bytes) and everything after the tag */
        if (left < 4 || hc_get_be32(p + i) < 4)
            return HC_EDECODE;
        *n = hc_get_be32(p + i);
        return HC_OK;
    case ETF_SMALL_TUPLE:
        if (left < 1)
            return HC_EDECODE;
        *n = 1;
        *kids = p[i];
        return HC_OK;
    case ETF_LARGE_TUPLE:
    case ETF_MAP:
    case ETF_LIST:
        if (left < 4)
            return HC_EDECODE;
        *n = 4;
        *kids = hc_get_be32(p + i);
        if (tag == ETF_MAP)
            *kids *= 2; /* keys and values; cannot wrap in 64 bits */
        else if (tag == ETF_LIST && *kids == 0)
            return HC_EDECODE; /* no BEAM writes an empty LIST (hc_dec_list_header says why) */
        else if (tag == ETF_LIST)
            *kids += 1; /* and the tail */
        return HC_OK;
    case ETF_PID:
    case ETF_NEW_PID:
    case ETF_PORT:
    case ETF_NEW_PORT:
    case ETF_V4_PORT:
    case ETF_REFERENCE: { /* a node atom, then fixed bytes */
        size_t j = i;
        term_atom a;
        if (term_atom_at(p, len, &j, &a))
            return HC_EDECODE;
        uint64_t rest = tag == ETF_PID        ? 9
                        : tag == ETF_NEW_PID  ? 12
                        : tag == ETF_PORT     ? 5
                        : tag == ETF_NEW_PORT ? 8
                        : tag == ETF_V4_PORT  ? 12
                                              : 5;
        *n = (j - i) + rest;
        return HC_OK;
    }
    case ETF_NEW_REFERENCE:
    case ETF_NEWER_REFERENCE: { /* Len(2), a node atom, Creation (1 or 4), Len ID words */
        if (left < 2)
            return HC_EDECODE;
        uint64_t words = hc_get_be16(p + i);
        size_t j = i + 2;
        term_atom a;
        if (words < 1 || words > 5 || term_atom_at(p, len, &j, &a))
            return HC_EDECODE;
        *n = (j - i) + (tag == ETF_NEWER_REFERENCE ? 4 : 1) + 4 * words;
        return HC_OK;
    }
    case ETF_EXPORT: { /* Module and Function atoms, and an Arity that must be a SMALL_INTEGER */
        size_t j = i;
        term_atom a;
        if (term_atom_at(p, len, &j, &a) || term_atom_at(p, len, &j, &a) || len - j < 2 || p[j] != ETF_SMALL_INTEGER)
            return HC_EDECODE;
        *n = (j - i) + 2;
        return HC_OK;
    }
    default: /* atom cache refs, compressed terms, old funs, LOCAL_EXT: never negotiated with us */ return HC_EDECODE;
    }
}

/* Skips one whole term; with `limited`, its containers may nest at most HC_TERM_MAX_DEPTH deep. */
static int skip_term(const uint8_t *p, size_t len, size_t *idx, bool limited)
{
    uint64_t due[HC_TERM_MAX_DEPTH + 1]; /* with the limit: children still due in each open container */
    uint32_t depth = 0;
    uint64_t pending = 1; /* terms still due, over all levels */
    size_t i = *idx;
    if (!p || i > len)
        return HC_EDECODE;
    due[0] = 1;
    while (pending) {
        if (limited) {
            while (due[depth] == 0) /* containers whose last child is done */
                depth--;
            due[depth]--;
        }
        pending--;
        if (i >= len)
            return HC_EDECODE;
        uint8_t tag = p[i++];
        uint64_t n, kids;
        if (head(p, len, i, tag, &n, &kids) || n > len - i)
            return HC_EDECODE;
        i += n;
        if (kids) {
            if (limited) {
                if (depth == HC_TERM_MAX_DEPTH)
                    return HC_EDECODE; /* its children would sit one level too deep */
                due[++depth] = kids;
            }
            pending += kids;
        }
        if (pending > len - i)
            return HC_EDECODE;
    }
    *idx = i;
    return HC_OK;
}

int hc_dec_skip(const uint8_t *p, size_t len, size_t *idx) { return skip_term(p, len, idx, false); }

int hc_dec_term(const uint8_t *p, size_t len, size_t *idx, hc_span *out)
{
    size_t s = *idx;
    if (skip_term(p, len, idx, false))
        return HC_EDECODE;
    *out = (hc_span){p + s, *idx - s};
    return HC_OK;
}

int hc_term_check(const uint8_t *p, size_t len)
{
    size_t idx = 0;
    if (skip_term(p, len, &idx, true) || idx != len)
        return HC_EDECODE;
    return HC_OK;
}
