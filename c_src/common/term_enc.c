/* term_enc.c — the encoders of hc_term.h. Each writes exactly what term_to_binary/2 (minor_version 2)
 * writes, refuses what the BEAM could not decode, and shares the buffer's sticky error: once b->err is set
 * every encoder returns it without appending, so a caller checks once after building a whole term. */
#include <math.h>
#include <string.h>

#include "common/etf.h"
#include "common/term_priv.h"
#include "hordec/hc_term.h"

/* Records a failure of our own (the buffer's appends record theirs) and returns the sticky error. */
static int fail(hc_buf *b, int rc)
{
    if (!b->err)
        b->err = rc;
    return b->err;
}

static int put_u8_u8(hc_buf *b, uint8_t tag, uint8_t v)
{
    uint8_t q[2] = {tag, v};
    return hc_buf_append(b, q, 2);
}

static int put_u8_be32(hc_buf *b, uint8_t tag, uint32_t v)
{
    uint8_t q[5] = {tag, (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return hc_buf_append(b, q, 5);
}

/* ------------------------------------------------------------------ atoms */

int hc_enc_atom_bytes(hc_buf *b, const char *utf8, size_t n)
{
    if (b->err)
        return b->err;
    if ((!utf8 && n) || n > HC_ATOM_MAX_BYTES || !term_atom_utf8_ok((const uint8_t *)utf8, n))
        return fail(b, HC_EINVAL);
    if (n < 256) {
        put_u8_u8(b, ETF_SMALL_ATOM_UTF8, (uint8_t)n);
    } else {
        hc_buf_put_u8(b, ETF_ATOM_UTF8);
        hc_buf_put_be16(b, (uint16_t)n);
    }
    return hc_buf_append(b, utf8, n);
}

int hc_enc_atom(hc_buf *b, hc_atom a) { return hc_enc_atom_bytes(b, hc_atom_name(a), hc_atom_len(a)); }

int hc_enc_atom_cstr(hc_buf *b, const char *s)
{
    if (!s)
        return b->err ? b->err : fail(b, HC_EINVAL);
    return hc_enc_atom_bytes(b, s, strlen(s));
}

int hc_enc_bool(hc_buf *b, bool v) { return v ? hc_enc_atom_bytes(b, "true", 4) : hc_enc_atom_bytes(b, "false", 5); }

/* ------------------------------------------------------------------ pids and refs */

int hc_enc_pid(hc_buf *b, const hc_pid *p)
{
    if (b->err)
        return b->err;
    if (!p)
        return fail(b, HC_EINVAL);
    hc_buf_put_u8(b, ETF_NEW_PID);
    hc_enc_atom(b, p->node);
    hc_buf_put_be32(b, p->num);
    hc_buf_put_be32(b, p->serial);
    return hc_buf_put_be32(b, p->creation);
}

int hc_enc_ref(hc_buf *b, const hc_ref *r)
{
    if (b->err)
        return b->err;
    if (!r || r->len < 1 || r->len > 5)
        return fail(b, HC_EINVAL);
    hc_buf_put_u8(b, ETF_NEWER_REFERENCE);
    hc_buf_put_be16(b, (uint16_t)r->len);
    hc_enc_atom(b, r->node);
    hc_buf_put_be32(b, r->creation);
    for (uint32_t i = 0; i < r->len; i++)
        hc_buf_put_be32(b, r->n[i]);
    return b->err;
}

/* ------------------------------------------------------------------ numbers */

/* SMALL_BIG of a magnitude, digits little-endian. */
static int put_small_big(hc_buf *b, uint64_t mag, bool neg)
{
    uint8_t q[3 + 8] = {ETF_SMALL_BIG, 0, neg};
    uint8_t n = 0;
    for (uint64_t x = mag; x; x >>= 8)
        q[3 + n++] = (uint8_t)x;
    q[1] = n;
    return hc_buf_append(b, q, 3 + (size_t)n);
}

int hc_enc_ulong(hc_buf *b, uint64_t v)
{
    if (b->err)
        return b->err;
    if (v < 256)
        return put_u8_u8(b, ETF_SMALL_INTEGER, (uint8_t)v);
    if (v <= INT32_MAX)
        return put_u8_be32(b, ETF_INTEGER, (uint32_t)v);
    return put_small_big(b, v, false);
}

int hc_enc_long(hc_buf *b, int64_t v)
{
    if (b->err)
        return b->err;
    if (v >= 0)
        return hc_enc_ulong(b, (uint64_t)v);
    if (v >= INT32_MIN)
        return put_u8_be32(b, ETF_INTEGER, (uint32_t)(int32_t)v);
    return put_small_big(b, (uint64_t)(-(v + 1)) + 1, true); /* no overflow for INT64_MIN */
}

int hc_enc_double(hc_buf *b, double v)
{
    if (b->err)
        return b->err;
    if (!isfinite(v))
        return fail(b, HC_EINVAL);
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    hc_buf_put_u8(b, ETF_NEW_FLOAT);
    return hc_buf_put_be64(b, bits);
}

/* ------------------------------------------------------------------ binaries */

int hc_enc_binary(hc_buf *b, const void *p, size_t n)
{
    if (b->err)
        return b->err;
    if (!p && n)
        return fail(b, HC_EINVAL);
    if (n > UINT32_MAX)
        return fail(b, HC_ETOOBIG);
    put_u8_be32(b, ETF_BINARY, (uint32_t)n);
    return hc_buf_append(b, p, n);
}

int hc_enc_string(hc_buf *b, const char *s)
{
    if (!s)
        return b->err ? b->err : fail(b, HC_EINVAL);
    return hc_enc_binary(b, s, strlen(s));
}

int hc_enc_raw(hc_buf *b, const void *p, size_t n)
{
    if (b->err)
        return b->err;
    if (!p && n)
        return fail(b, HC_EINVAL);
    return hc_buf_append(b, p, n);
}

/* ------------------------------------------------------------------ containers */

int hc_enc_tuple_header(hc_buf *b, uint32_t arity)
{
    if (b->err)
        return b->err;
    return arity < 256 ? put_u8_u8(b, ETF_SMALL_TUPLE, (uint8_t)arity) : put_u8_be32(b, ETF_LARGE_TUPLE, arity);
}

int hc_enc_map_header(hc_buf *b, uint32_t arity)
{
    if (b->err)
        return b->err;
    return put_u8_be32(b, ETF_MAP, arity);
}

int hc_enc_list_header(hc_buf *b, uint32_t n)
{
    if (b->err)
        return b->err;
    if (n == 0)
        return fail(b, HC_EINVAL);
    return put_u8_be32(b, ETF_LIST, n);
}

int hc_enc_nil(hc_buf *b) { return hc_buf_put_u8(b, ETF_NIL); }
