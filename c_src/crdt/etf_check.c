/* etf_check.c — walk one ETF term with every length checked against the buffer. */
#include "crdt/etf_check.h"

#include "hordec/hc_common.h"

enum {
    T_NEW_FLOAT = 70, T_BIT_BINARY = 77, T_NEW_PID = 88, T_NEW_PORT = 89, T_NEWER_REF = 90,
    T_SMALL_INT = 97, T_INT = 98, T_FLOAT = 99, T_ATOM = 100, T_REF = 101, T_PORT = 102, T_PID = 103,
    T_SMALL_TUPLE = 104, T_LARGE_TUPLE = 105, T_NIL = 106, T_STRING = 107, T_LIST = 108, T_BINARY = 109,
    T_SMALL_BIG = 110, T_LARGE_BIG = 111, T_NEW_FUN = 112, T_EXPORT = 113, T_NEW_REF = 114,
    T_SMALL_ATOM = 115, T_MAP = 116, T_ATOM_UTF8 = 118, T_SMALL_ATOM_UTF8 = 119, T_V4_PORT = 120,
};

static int need(size_t len, size_t idx, uint64_t n) { return n <= len && idx <= len - n; }

static int skip_atom(const uint8_t *p, size_t len, size_t *idx)
{
    if (!need(len, *idx, 1))
        return HC_EDECODE;
    uint8_t tag = p[*idx];
    size_t n;
    if (tag == T_SMALL_ATOM || tag == T_SMALL_ATOM_UTF8) {
        if (!need(len, *idx, 2))
            return HC_EDECODE;
        n = 2 + (size_t)p[*idx + 1];
    } else if (tag == T_ATOM || tag == T_ATOM_UTF8) {
        if (!need(len, *idx, 3))
            return HC_EDECODE;
        n = 3 + (size_t)hc_get_be16(p + *idx + 1);
    } else {
        return HC_EDECODE;
    }
    if (!need(len, *idx, n))
        return HC_EDECODE;
    *idx += n;
    return HC_OK;
}

static int skip(const uint8_t *p, size_t len, size_t *idx, int depth)
{
    if (depth > CRDT_ETF_MAX_DEPTH || !need(len, *idx, 1))
        return HC_EDECODE;
    size_t i = *idx;
    uint8_t tag = p[i];
    uint64_t n, count;
    switch (tag) {
    case T_SMALL_INT: n = 2; break;
    case T_INT: n = 5; break;
    case T_NEW_FLOAT: n = 9; break;
    case T_FLOAT: n = 32; break;
    case T_NIL: n = 1; break;
    case T_ATOM: case T_ATOM_UTF8: case T_SMALL_ATOM: case T_SMALL_ATOM_UTF8:
        return skip_atom(p, len, idx);
    case T_STRING:
        if (!need(len, i, 3))
            return HC_EDECODE;
        n = 3 + (uint64_t)hc_get_be16(p + i + 1);
        break;
    case T_BINARY:
        if (!need(len, i, 5))
            return HC_EDECODE;
        n = 5 + (uint64_t)hc_get_be32(p + i + 1);
        break;
    case T_BIT_BINARY:
        if (!need(len, i, 6))
            return HC_EDECODE;
        n = 6 + (uint64_t)hc_get_be32(p + i + 1);
        if (p[i + 5] < 1 || p[i + 5] > 8 || n == 6)
            return HC_EDECODE;
        break;
    case T_SMALL_BIG:
        if (!need(len, i, 2))
            return HC_EDECODE;
        n = 3 + (uint64_t)p[i + 1];
        break;
    case T_LARGE_BIG:
        if (!need(len, i, 5))
            return HC_EDECODE;
        n = 6 + (uint64_t)hc_get_be32(p + i + 1);
        break;
    case T_NEW_FUN: /* Size counts itself and everything after the tag */
        if (!need(len, i, 5))
            return HC_EDECODE;
        n = 1 + (uint64_t)hc_get_be32(p + i + 1);
        if (n < 5)
            return HC_EDECODE;
        break;
    case T_PID: case T_NEW_PID: case T_PORT: case T_NEW_PORT: case T_V4_PORT: case T_REF: {
        size_t j = i + 1;
        if (skip_atom(p, len, &j))
            return HC_EDECODE;
        uint64_t rest = tag == T_PID ? 9 : tag == T_NEW_PID ? 12 : tag == T_PORT ? 5
                      : tag == T_NEW_PORT ? 8 : tag == T_V4_PORT ? 12 : 5;
        if (!need(len, j, rest))
            return HC_EDECODE;
        *idx = j + rest;
        return HC_OK;
    }
    case T_NEW_REF: case T_NEWER_REF: {
        if (!need(len, i, 3))
            return HC_EDECODE;
        uint64_t words = hc_get_be16(p + i + 1);
        size_t j = i + 3;
        if (words > 5 || skip_atom(p, len, &j))
            return HC_EDECODE;
        uint64_t rest = (tag == T_NEW_REF ? 1 : 4) + 4 * words;
        if (!need(len, j, rest))
            return HC_EDECODE;
        *idx = j + rest;
        return HC_OK;
    }
    case T_EXPORT: {
        size_t j = i + 1;
        if (skip_atom(p, len, &j) || skip_atom(p, len, &j) || !need(len, j, 2) || p[j] != T_SMALL_INT)
            return HC_EDECODE;
        *idx = j + 2;
        return HC_OK;
    }
    case T_SMALL_TUPLE: case T_LARGE_TUPLE: case T_LIST: case T_MAP: {
        size_t head = tag == T_SMALL_TUPLE ? 2 : 5;
        if (!need(len, i, head))
            return HC_EDECODE;
        count = tag == T_SMALL_TUPLE ? p[i + 1] : hc_get_be32(p + i + 1);
        if (tag == T_MAP)
            count *= 2;
        if (tag == T_LIST)
            count += 1; /* the tail */
        /* every element takes at least one byte: reject absurd counts before looping */
        if (count > len - i - head)
            return HC_EDECODE;
        size_t j = i + head;
        for (uint64_t k = 0; k < count; k++)
            if (skip(p, len, &j, depth + 1))
                return HC_EDECODE;
        *idx = j;
        return HC_OK;
    }
    default:
        return HC_EDECODE;
    }
    if (!need(len, i, n))
        return HC_EDECODE;
    *idx = i + n;
    return HC_OK;
}

int crdt_etf_skip(const uint8_t *p, size_t len, size_t *idx) { return skip(p, len, idx, 0); }

int crdt_etf_check_term(const uint8_t *p, size_t len)
{
    size_t idx = 0;
    if (!p || crdt_etf_skip(p, len, &idx) || idx != len)
        return HC_EDECODE;
    return HC_OK;
}
