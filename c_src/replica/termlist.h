/* termlist.h — walking the elements of an Erlang list term given as ETF bytes. The BEAM encodes a list
 * of small integers (0..255) as STRING_EXT, so [1, 2, 3] arrives as a string: the walker hands out
 * each element as a term either way. */
#ifndef HORDEC_REPLICA_TERMLIST_H
#define HORDEC_REPLICA_TERMLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hc_list_iter {
    const uint8_t *p;
    size_t len, i;
    uint32_t left;
    bool string;       /* STRING_EXT: elements are bytes */
    uint8_t small[2];  /* the current element re-encoded as SMALL_INTEGER_EXT */
} hc_list_iter;

/* Starts at the list at p[*idx]. HC_OK or HC_EDECODE (not a proper list). On success *idx is past the
 * whole list. */
int hc_list_begin(hc_list_iter *it, const uint8_t *p, size_t len, size_t *idx);
/* Next element as a term span: 1 and sets *t and *tlen, 0 at the end, HC_EDECODE on malformed input. */
int hc_list_next(hc_list_iter *it, const uint8_t **t, size_t *tlen);

#endif
