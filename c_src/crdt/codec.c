/* codec.c — ei-based encoders and validating decoders for the sync messages. */
#include "crdt/codec.h"

#include <ei.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/context.h"
#include "crdt/etf_check.h"

#define TAG_ATOM "$hordec_crdt"

static const char *const type_names[HC_CRDT_MSG__COUNT] = {
    [HC_CRDT_MSG_HELLO] = "hello",       [HC_CRDT_MSG_DELTA] = "delta",
    [HC_CRDT_MSG_DELTA_ACK] = "delta_ack", [HC_CRDT_MSG_DIGEST] = "digest",
    [HC_CRDT_MSG_TREE] = "tree",         [HC_CRDT_MSG_TREE_DIFF] = "tree_diff",
    [HC_CRDT_MSG_CHUNK] = "chunk",       [HC_CRDT_MSG_ELEMS] = "elems",
    [HC_CRDT_MSG_CTX] = "ctx",           [HC_CRDT_MSG_END] = "end",
    [HC_CRDT_MSG_ACK] = "ack",
};

const char *crdt_msg_type_name(int type)
{
    return type >= 0 && type < HC_CRDT_MSG__COUNT ? type_names[type] : "unknown";
}

/* ---- encoding: ei sizes with a NULL buffer first, then writes in place ---- */

#define EI_APPEND(b, CALL)                                                                             \
    do {                                                                                               \
        int sz_ = 0;                                                                                   \
        {                                                                                              \
            char *buf_ = NULL;                                                                         \
            int *idx_ = &sz_;                                                                          \
            if (CALL < 0)                                                                              \
                return HC_EINVAL;                                                                      \
        }                                                                                              \
        int rc_ = hc_buf_reserve(b, (size_t)sz_);                                                      \
        if (rc_)                                                                                       \
            return rc_;                                                                                \
        if ((b)->len > (size_t)INT32_MAX - (size_t)sz_)                                                \
            return HC_ETOOBIG;                                                                         \
        int at_ = (int)(b)->len;                                                                       \
        {                                                                                              \
            char *buf_ = (char *)(b)->data;                                                            \
            int *idx_ = &at_;                                                                          \
            if (CALL < 0)                                                                              \
                return HC_EINVAL;                                                                      \
        }                                                                                              \
        (b)->len = (size_t)at_;                                                                        \
    } while (0)

int crdt_enc_tuple(hc_buf *b, int arity)
{
    EI_APPEND(b, ei_encode_tuple_header(buf_, idx_, arity));
    return HC_OK;
}

int crdt_enc_list(hc_buf *b, uint32_t n)
{
    if (n == 0)
        return crdt_enc_nil(b);
    EI_APPEND(b, ei_encode_list_header(buf_, idx_, (int)n));
    return HC_OK;
}

int crdt_enc_nil(hc_buf *b)
{
    EI_APPEND(b, ei_encode_empty_list(buf_, idx_));
    return HC_OK;
}

int crdt_enc_u64(hc_buf *b, uint64_t v)
{
    EI_APPEND(b, ei_encode_ulonglong(buf_, idx_, (EI_ULONGLONG)v));
    return HC_OK;
}

int crdt_enc_binary(hc_buf *b, const void *p, size_t n)
{
    if (n > INT32_MAX)
        return HC_ETOOBIG;
    EI_APPEND(b, ei_encode_binary(buf_, idx_, p, (long)n));
    return HC_OK;
}

static int enc_atom(hc_buf *b, const char *s)
{
    EI_APPEND(b, ei_encode_atom_as(buf_, idx_, s, ERLANG_UTF8, ERLANG_UTF8));
    return HC_OK;
}

int crdt_enc_raw(hc_buf *b, const void *p, size_t n) { return hc_buf_append(b, p, n); }

int crdt_enc_header(hc_buf *b, int type, uint64_t from_rid, uint64_t from_inc, uint64_t to_rid,
                    uint64_t to_inc)
{
    int rc;
    if (type < 0 || type >= HC_CRDT_MSG__COUNT)
        return HC_EINVAL;
    if ((rc = crdt_enc_tuple(b, 8)) || (rc = enc_atom(b, TAG_ATOM)) ||
        (rc = crdt_enc_u64(b, HC_CRDT_PROTOCOL_VERSION)) || (rc = enc_atom(b, type_names[type])) ||
        (rc = crdt_enc_u64(b, from_rid)) || (rc = crdt_enc_u64(b, from_inc)) ||
        (rc = crdt_enc_u64(b, to_rid)) || (rc = crdt_enc_u64(b, to_inc)))
        return rc;
    return HC_OK;
}

int crdt_enc_elem(hc_buf *b, uint64_t rid, uint64_t ctr, uint64_t hlc, const uint8_t *val, size_t val_len)
{
    int rc;
    if ((rc = crdt_enc_tuple(b, val ? 4 : 3)) || (rc = crdt_enc_u64(b, rid)) || (rc = crdt_enc_u64(b, ctr)) ||
        (rc = crdt_enc_u64(b, hlc)))
        return rc;
    return val ? crdt_enc_raw(b, val, val_len) : HC_OK;
}

int crdt_enc_simple(hc_buf *b, int type, uint64_t from_rid, uint64_t from_inc, uint64_t to_rid,
                    uint64_t to_inc, const uint64_t *fields, int n)
{
    int rc = crdt_enc_header(b, type, from_rid, from_inc, to_rid, to_inc);
    if (!rc)
        rc = crdt_enc_tuple(b, n);
    for (int i = 0; !rc && i < n; i++)
        rc = crdt_enc_u64(b, fields[i]);
    return rc;
}

/* ---- decoding: the buffer has passed crdt_etf_check_term, so ei reads stay in bounds ---- */

typedef struct dec {
    const char *buf;
    int idx;
    size_t len;
} dec;

static int d_tuple(dec *d, int arity)
{
    int a;
    if (ei_decode_tuple_header(d->buf, &d->idx, &a) < 0 || a != arity)
        return HC_EDECODE;
    return HC_OK;
}

static int d_u64(dec *d, uint64_t *v)
{
    EI_ULONGLONG x;
    if (ei_decode_ulonglong(d->buf, &d->idx, &x) < 0)
        return HC_EDECODE;
    *v = (uint64_t)x;
    return HC_OK;
}

static int d_binary(dec *d, crdt_slice *s)
{
    int type, size;
    long n;
    if (ei_get_type(d->buf, &d->idx, &type, &size) < 0 || type != ERL_BINARY_EXT)
        return HC_EDECODE;
    if (ei_decode_binary(d->buf, &d->idx, NULL, &n) < 0)
        return HC_EDECODE;
    s->p = (const uint8_t *)d->buf + d->idx - n;
    s->len = (size_t)n;
    return HC_OK;
}

static int d_raw(dec *d, crdt_slice *s)
{
    size_t at = (size_t)d->idx;
    if (crdt_etf_skip((const uint8_t *)d->buf, d->len, &at))
        return HC_EDECODE;
    s->p = (const uint8_t *)d->buf + d->idx;
    s->len = at - (size_t)d->idx;
    d->idx = (int)at;
    return HC_OK;
}

/* A list header; [] gives 0. STRING_EXT (a list of small integers) is never a valid list for us. */
static int d_list(dec *d, uint32_t *n)
{
    int type, size, arity;
    if (ei_get_type(d->buf, &d->idx, &type, &size) < 0)
        return HC_EDECODE;
    if (type != ERL_LIST_EXT && type != ERL_NIL_EXT)
        return HC_EDECODE;
    if (ei_decode_list_header(d->buf, &d->idx, &arity) < 0 || arity < 0)
        return HC_EDECODE;
    *n = (uint32_t)arity;
    return HC_OK;
}

static int d_list_end(dec *d, uint32_t n)
{
    if (n == 0)
        return HC_OK;
    int type, size;
    if (ei_get_type(d->buf, &d->idx, &type, &size) < 0 || type != ERL_NIL_EXT)
        return HC_EDECODE; /* improper list */
    d->idx++;
    return HC_OK;
}

static int d_dots(crdt_slice s)
{
    if (s.len % CRDT_DOT_BYTES)
        return HC_EDECODE;
    for (size_t o = 0; o < s.len; o += CRDT_DOT_BYTES)
        if (!hc_get_be64(s.p + o) || !hc_get_be64(s.p + o + 8))
            return HC_EDECODE;
    return HC_OK;
}

static int d_elem(dec *d, crdt_wire_elem *e)
{
    int arity;
    if (ei_decode_tuple_header(d->buf, &d->idx, &arity) < 0 || (arity != 3 && arity != 4))
        return HC_EDECODE;
    if (d_u64(d, &e->rid) || d_u64(d, &e->ctr) || d_u64(d, &e->hlc) || !e->rid || !e->ctr)
        return HC_EDECODE;
    e->has_val = arity == 4;
    if (e->has_val)
        return d_raw(d, &e->val);
    e->val = (crdt_slice){0};
    return HC_OK;
}

static int d_recs(dec *d, crdt_msg *m)
{
    uint32_t n;
    if (d_list(d, &n))
        return HC_EDECODE;
    /* each record is at least a few bytes, and the term already fits in len: n is bounded by len */
    m->recs = calloc(n ? n : 1, sizeof *m->recs);
    if (!m->recs)
        return HC_ENOMEM;
    m->n_recs = n;
    size_t pool_cap = 0, pool_n = 0;
    for (uint32_t i = 0; i < n; i++) {
        crdt_wire_rec *r = &m->recs[i];
        uint32_t ne;
        if (d_tuple(d, 3) || d_raw(d, &r->key) || d_list(d, &ne))
            return HC_EDECODE;
        if (hc_array_reserve((void **)&m->pool, &pool_cap, pool_n + ne, sizeof *m->pool, 16))
            return HC_ENOMEM;
        r->elems = (crdt_wire_elem *)(uintptr_t)pool_n; /* an index until the pool stops moving */
        r->n = ne;
        for (uint32_t k = 0; k < ne; k++)
            if (d_elem(d, &m->pool[pool_n++]))
                return HC_EDECODE;
        if (d_list_end(d, ne) || d_binary(d, &r->removed) || d_dots(r->removed))
            return HC_EDECODE;
    }
    for (uint32_t i = 0; i < n; i++)
        m->recs[i].elems = m->pool + (uintptr_t)m->recs[i].elems;
    return d_list_end(d, n);
}

static int decode_body(dec *d, crdt_msg *m)
{
    uint32_t n;
    switch (m->type) {
    case HC_CRDT_MSG_HELLO:
        return d_tuple(d, 2) || d_u64(d, &m->depth) || d_u64(d, &m->max_msg) ? HC_EDECODE : HC_OK;
    case HC_CRDT_MSG_DELTA:
        if (d_tuple(d, 2) || d_u64(d, &m->seq))
            return HC_EDECODE;
        return d_recs(d, m);
    case HC_CRDT_MSG_DELTA_ACK:
        if (d_tuple(d, 1) || d_list(d, &n))
            return HC_EDECODE;
        m->seqs = calloc(n ? n : 1, sizeof *m->seqs);
        if (!m->seqs)
            return HC_ENOMEM;
        m->n_seqs = n;
        for (uint32_t i = 0; i < n; i++)
            if (d_u64(d, &m->seqs[i]))
                return HC_EDECODE;
        return d_list_end(d, n);
    case HC_CRDT_MSG_DIGEST:
        if (d_tuple(d, 4) || d_u64(d, &m->root) || d_u64(d, &m->count) || d_u64(d, &m->ctx_hash) ||
            d_u64(d, &m->want_reply) || m->want_reply > 1)
            return HC_EDECODE;
        return HC_OK;
    case HC_CRDT_MSG_TREE:
    case HC_CRDT_MSG_TREE_DIFF:
        if (d_tuple(d, 4) || d_u64(d, &m->sid) || d_u64(d, &m->req) || d_u64(d, &m->level) ||
            d_binary(d, &m->bin))
            return HC_EDECODE;
        return HC_OK;
    case HC_CRDT_MSG_CHUNK:
        if (d_tuple(d, 5) || d_u64(d, &m->sid) || d_u64(d, &m->req) || d_u64(d, &m->lo) ||
            d_u64(d, &m->hi) || m->lo > m->hi)
            return HC_EDECODE;
        return d_recs(d, m);
    case HC_CRDT_MSG_ELEMS:
        if (d_tuple(d, 3) || d_u64(d, &m->sid) || d_u64(d, &m->req))
            return HC_EDECODE;
        return d_recs(d, m);
    case HC_CRDT_MSG_CTX:
        if (d_tuple(d, 5) || d_u64(d, &m->sid) || d_u64(d, &m->req) || d_u64(d, &m->piece) ||
            d_u64(d, &m->pieces) || d_binary(d, &m->bin) || m->piece >= m->pieces)
            return HC_EDECODE;
        return HC_OK;
    case HC_CRDT_MSG_END:
    case HC_CRDT_MSG_ACK:
        return d_tuple(d, 2) || d_u64(d, &m->sid) || d_u64(d, &m->req) ? HC_EDECODE : HC_OK;
    }
    return HC_EDECODE;
}

void crdt_msg_free(crdt_msg *m)
{
    free(m->recs);
    free(m->pool);
    free(m->seqs);
    m->recs = NULL;
    m->pool = NULL;
    m->seqs = NULL;
}

int crdt_msg_decode(const uint8_t *buf, size_t len, crdt_msg *out)
{
    memset(out, 0, sizeof *out);
    if (!buf)
        return HC_EDECODE;
    if (len && buf[0] == 131) { /* tolerate the version byte the host may have left on */
        buf++;
        len--;
    }
    if (len > INT32_MAX || crdt_etf_check_term(buf, len))
        return HC_EDECODE;
    dec d = {(const char *)buf, 0, len};
    int arity;
    char atom[MAXATOMLEN_UTF8];
    uint64_t version;
    if (ei_decode_tuple_header(d.buf, &d.idx, &arity) < 0 || arity < 2)
        return HC_EDECODE;
    if (ei_decode_atom_as(d.buf, &d.idx, atom, sizeof atom, ERLANG_UTF8, NULL, NULL) < 0 ||
        strcmp(atom, TAG_ATOM) != 0)
        return HC_EDECODE;
    if (d_u64(&d, &version))
        return HC_EDECODE;
    if (version != HC_CRDT_PROTOCOL_VERSION)
        return HC_EVERSION;
    if (arity != 8)
        return HC_EDECODE;
    if (ei_decode_atom_as(d.buf, &d.idx, atom, sizeof atom, ERLANG_UTF8, NULL, NULL) < 0)
        return HC_EDECODE;
    out->type = -1;
    for (int t = 0; t < HC_CRDT_MSG__COUNT; t++)
        if (strcmp(atom, type_names[t]) == 0)
            out->type = t;
    if (out->type < 0)
        return HC_EDECODE;
    if (d_u64(&d, &out->from_rid) || d_u64(&d, &out->from_inc) || d_u64(&d, &out->to_rid) ||
        d_u64(&d, &out->to_inc) || !out->from_rid)
        return HC_EDECODE;
    int rc = decode_body(&d, out);
    if (!rc && (size_t)d.idx != len)
        rc = HC_EDECODE;
    if (rc)
        crdt_msg_free(out);
    return rc;
}
