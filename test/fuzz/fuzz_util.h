/* fuzz_util.h — how the fuzz targets cut one libFuzzer input into the pieces they feed a decoder, and how the
 * seed writer (seeds.c) builds inputs in the same shape.
 *
 * Most targets take a stream of records: a one-byte op (what to do), then for ops that carry bytes a 2-byte
 * big-endian length and that many bytes. A record cut short by the end of the input carries what is left,
 * so every input means something and the fuzzer never wastes runs on a framing it cannot guess. */
#ifndef HORDEC_FUZZ_UTIL_H
#define HORDEC_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "hordec/hc_common.h"

typedef struct fz_in {
    const uint8_t *p;
    size_t len, i;
} fz_in;

static inline bool fz_more(const fz_in *in) { return in->i < in->len; }

static inline uint8_t fz_u8(fz_in *in) { return in->i < in->len ? in->p[in->i++] : 0; }

/* The next length-prefixed piece (possibly shorter than announced at the end of the input). */
static inline void fz_piece(fz_in *in, const uint8_t **p, size_t *n)
{
    size_t want = (size_t)fz_u8(in) << 8;
    want |= fz_u8(in);
    size_t left = in->len - in->i;
    *n = want < left ? want : left;
    *p = in->p + in->i;
    in->i += *n;
}

/* A copy of a piece in its own allocation, so ASan sees reads one past its end (the input buffer is larger). */
static inline uint8_t *fz_dup(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (!d)
        abort();
    for (size_t k = 0; k < n; k++)
        d[k] = p[k];
    return d;
}

/* A broken invariant: say which and crash, so libFuzzer saves the input. */
#define FZ_ASSERT(cond, ...)                                                                                           \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "fuzz invariant broken at %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

/* Writers, for seeds.c. */
static inline void fz_put_piece(hc_buf *b, const void *p, size_t n)
{
    hc_buf_put_be16(b, (uint16_t)n);
    hc_buf_append(b, p, n);
}

static inline void fz_put_op(hc_buf *b, uint8_t op, const void *p, size_t n)
{
    hc_buf_put_u8(b, op);
    fz_put_piece(b, p, n);
}

#endif
