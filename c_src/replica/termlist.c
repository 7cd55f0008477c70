/* termlist.c — see termlist.h. */
#include "replica/termlist.h"

#include "common/etf.h"
#include "hordec/hc_term.h"

int hc_list_begin(hc_list_iter *it, const uint8_t *p, size_t len, size_t *idx)
{
    size_t i = *idx;
    *it = (hc_list_iter){.p = p, .len = len};
    if (i >= len)
        return HC_EDECODE;
    if (p[i] == ETF_STRING) {
        if (len - i < 3)
            return HC_EDECODE;
        it->left = hc_get_be16(p + i + 1);
        it->string = true;
        it->i = i + 3;
        if (len - it->i < it->left)
            return HC_EDECODE;
        *idx = it->i + it->left;
        return HC_OK;
    }
    uint32_t n;
    if (hc_dec_list_header(p, len, &i, &n))
        return HC_EDECODE;
    it->left = n;
    it->i = i;
    /* Validate all elements and the tail now, so a bad list is rejected before anything acts on it. */
    for (uint32_t k = 0; k < n; k++)
        if (hc_dec_skip(p, len, &i))
            return HC_EDECODE;
    if (n && (i >= len || p[i++] != ETF_NIL))
        return HC_EDECODE; /* improper list */
    *idx = i;
    return HC_OK;
}

int hc_list_next(hc_list_iter *it, const uint8_t **t, size_t *tlen)
{
    if (!it->left)
        return 0;
    it->left--;
    if (it->string) {
        it->small[0] = ETF_SMALL_INTEGER;
        it->small[1] = it->p[it->i++];
        *t = it->small;
        *tlen = 2;
        return 1;
    }
    size_t s = it->i;
    if (hc_dec_skip(it->p, it->len, &it->i))
        return HC_EDECODE;
    *t = it->p + s;
    *tlen = it->i - s;
    return 1;
}
