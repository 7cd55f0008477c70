/* term_iter.c — hc_iter: the elements of a list, or the pairs of a map, as term spans. Starting validates
 * the whole container, so the walk itself cannot fail. */
#include "common/etf.h"
#include "hordec/hc_term.h"

enum { KIND_LIST, KIND_STRING, KIND_MAP }; /* hc_iter.kind */

static int begin_list(hc_iter *it, const uint8_t *p, size_t len, size_t *idx, bool any_tail)
{
    size_t i = *idx;
    hc_iter t = {.p = p, .len = len, .kind = KIND_LIST};
    if (hc_peek_type(p, len, i) == ETF_STRING) { /* a list of small integers: elements are bytes */
        if (len - i < 3 || len - i - 3 < hc_get_be16(p + i + 1))
            return HC_EDECODE;
        t.left = hc_get_be16(p + i + 1);
        t.kind = KIND_STRING;
        t.i = i + 3;
        *it = t;
        *idx = t.i + t.left;
        return HC_OK;
    }
    uint32_t n;
    if (hc_dec_list_header(p, len, &i, &n) || n > len - i)
        return HC_EDECODE;
    t.left = n;
    t.i = i;
    for (uint32_t k = 0; k < n; k++)
        if (hc_dec_skip(p, len, &i))
            return HC_EDECODE;
    if (n) { /* the tail */
        if (hc_peek_type(p, len, i) == ETF_NIL)
            i++;
        else if (!any_tail || hc_dec_term(p, len, &i, &t.tail))
            return HC_EDECODE;
    }
    *it = t;
    *idx = i;
    return HC_OK;
}

int hc_iter_list(hc_iter *it, const uint8_t *p, size_t len, size_t *idx) { return begin_list(it, p, len, idx, false); }

int hc_iter_improper_list(hc_iter *it, const uint8_t *p, size_t len, size_t *idx)
{
    return begin_list(it, p, len, idx, true);
}

int hc_iter_map(hc_iter *it, const uint8_t *p, size_t len, size_t *idx)
{
    size_t i = *idx;
    uint32_t n;
    if (hc_dec_map_header(p, len, &i, &n) || n > (len - i) / 2)
        return HC_EDECODE;
    hc_iter t = {.p = p, .len = len, .i = i, .left = n, .kind = KIND_MAP};
    for (uint64_t k = 0; k < 2 * (uint64_t)n; k++)
        if (hc_dec_skip(p, len, &i))
            return HC_EDECODE;
    *it = t;
    *idx = i;
    return HC_OK;
}

bool hc_iter_next(hc_iter *it, hc_span *elem)
{
    if (!it->left || it->kind == KIND_MAP)
        return false;
    if (it->kind == KIND_STRING) {
        it->small[0] = ETF_SMALL_INTEGER;
        it->small[1] = it->p[it->i++];
        *elem = (hc_span){it->small, 2};
    } else if (hc_dec_term(it->p, it->len, &it->i, elem)) {
        it->left = 0; /* validated at the start: cannot happen unless the input changed under us */
        return false;
    }
    it->left--;
    return true;
}

bool hc_iter_next_pair(hc_iter *it, hc_span *key, hc_span *value)
{
    if (!it->left || it->kind != KIND_MAP)
        return false;
    if (hc_dec_term(it->p, it->len, &it->i, key) || hc_dec_term(it->p, it->len, &it->i, value)) {
        it->left = 0;
        return false;
    }
    it->left--;
    return true;
}
