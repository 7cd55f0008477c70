/* term_test_util.h — helpers shared by the term codec tests (test_term*.c). Header-only: every test file
 * is its own executable. */
#ifndef HORDEC_TEST_TERM_TEST_UTIL_H
#define HORDEC_TEST_TERM_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hordec/hc_term.h"

/* Hex digits (spaces ignored) into a buffer. */
static inline hc_buf from_hex(const char *hex)
{
    hc_buf b = {0};
    unsigned hi = 0;
    int half = 0;
    for (const char *c = hex; *c; c++) {
        unsigned v;
        if (*c >= '0' && *c <= '9')
            v = (unsigned)(*c - '0');
        else if (*c >= 'a' && *c <= 'f')
            v = (unsigned)(*c - 'a' + 10);
        else if (*c >= 'A' && *c <= 'F')
            v = (unsigned)(*c - 'A' + 10);
        else
            continue;
        if (half)
            hc_buf_put_u8(&b, (uint8_t)(hi << 4 | v));
        else
            hi = v;
        half = !half;
    }
    return b;
}

static inline void assert_bytes_hex(const hc_buf *b, const char *hex)
{
    hc_buf want = from_hex(hex);
    if (b->len != want.len || memcmp(b->data, want.data, want.len) != 0) {
        char got[512] = {0};
        for (size_t i = 0; i < b->len && i < 200; i++)
            sprintf(got + 2 * i, "%02X", b->data[i]);
        fail_msg("got %s want %s", got, hex);
    }
    hc_buf_free(&want);
}

/* An exact-size heap copy of p[0..n), so ASan flags any read past its end. Free it. */
static inline uint8_t *exact_copy(const void *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    if (n)
        memcpy(c, p, n);
    return c;
}

#endif
