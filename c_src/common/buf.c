/* buf.c — hc_buf: the growable byte buffer, and hc_strerror. */
#include "hordec/hc_common.h"

#include <stdlib.h>
#include <string.h>

const char *hc_strerror(int code)
{
    switch (code) {
    case HC_OK: return "ok";
    case HC_ENOMEM: return "out of memory";
    case HC_EINVAL: return "invalid argument";
    case HC_EDECODE: return "malformed input";
    case HC_ETOOBIG: return "message or value too large";
    case HC_ENOPROC: return "no such process";
    case HC_ENOCONN: return "no connection to node";
    case HC_EBUSY: return "queue full";
    case HC_EIO: return "i/o error";
    case HC_EAUTH: return "authentication failed";
    case HC_EEXIST: return "already exists";
    case HC_EVERSION: return "unsupported protocol version";
    case HC_ESTATE: return "unexpected in current state";
    case HC_ETIMEOUT: return "timed out";
    default: return "unknown error";
    }
}

int hc_buf_reserve(hc_buf *b, size_t extra)
{
    if (b->err)
        return b->err;
    if (extra > SIZE_MAX - b->len)
        return b->err = HC_ETOOBIG;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return HC_OK;
    /* Doubling keeps appends amortised O(1); start at 256 so tiny buffers do not realloc per byte. */
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return b->err = HC_ENOMEM;
    b->data = p;
    b->cap = cap;
    return HC_OK;
}

int hc_array_reserve(void **arr, size_t *cap, size_t need, size_t elem, size_t first)
{
    if (need <= *cap)
        return HC_OK;
    size_t c = *cap ? *cap : first;
    while (c < need)
        c *= 2;
    if (c > SIZE_MAX / elem)
        return HC_ENOMEM;
    void *p = realloc(*arr, c * elem);
    if (!p)
        return HC_ENOMEM;
    *arr = p;
    *cap = c;
    return HC_OK;
}

int hc_buf_append(hc_buf *b, const void *p, size_t n)
{
    int rc = hc_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return HC_OK;
}

int hc_buf_put_u8(hc_buf *b, uint8_t v) { return hc_buf_append(b, &v, 1); }

int hc_buf_put_be16(hc_buf *b, uint16_t v)
{
    uint8_t p[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return hc_buf_append(b, p, 2);
}

int hc_buf_put_be32(hc_buf *b, uint32_t v)
{
    uint8_t p[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return hc_buf_append(b, p, 4);
}

int hc_buf_put_be64(hc_buf *b, uint64_t v)
{
    int rc = hc_buf_put_be32(b, (uint32_t)(v >> 32));
    return rc ? rc : hc_buf_put_be32(b, (uint32_t)v);
}

void hc_buf_reset(hc_buf *b)
{
    b->len = 0;
    b->err = HC_OK;
}

void hc_buf_free(hc_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->err = HC_OK;
}
