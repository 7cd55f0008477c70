/* codec.c — encoders and validating decoders for the sync messages, on the common term codec. */
#include "crdt/codec.h"

#include <stdlib.h>
#include <string.h>

#include "common/etf.h"
#include "crdt/context.h"

#define TAG_ATOM "$hordec_crdt"

static const char *const type_names[HC_CRDT_MSG__COUNT] = {
    [HC_CRDT_MSG_HELLO] = "hello",   [HC_CRDT_MSG_DELTA] = "delta", [HC_CRDT_MSG_DELTA_ACK] = "delta_ack",
    [HC_CRDT_MSG_DIGEST] = "digest", [HC_CRDT_MSG_TREE] = "tree",   [HC_CRDT_MSG_TREE_DIFF] = "tree_diff",
    [HC_CRDT_MSG_CHUNK] = "chunk",   [HC_CRDT_MSG_ELEMS] = "elems", [HC_CRDT_MSG_CTX] = "ctx",
    [HC_CRDT_MSG_END] = "end",       [HC_CRDT_MSG_ACK] = "ack",
};

const char *crdt_msg_type_name(int type)
{
    return type >= 0 && type < HC_CRDT_MSG__COUNT ? type_names[type] : "unknown";
}

/* ---- encoding ---- */

int crdt_enc_list(hc_buf *b, uint32_t n) { return n ? hc_enc_list_header(b, n) : hc_enc_nil(b); }

int crdt_enc_header(hc_buf *b, int type, uint64_t from_rid, uint64_t from_inc, uint64_t to_rid, uint64_t to_inc)
{
    if (b->err)
        return b->err;
    if (type < 0 || type >= HC_CRDT_MSG__COUNT)
        return b->err = HC_EINVAL;
    hc_enc_tuple_header(b, 8);
    hc_enc_atom_cstr(b, TAG_ATOM);
    hc_enc_ulong(b, HC_CRDT_PROTOCOL_VERSION);
    hc_enc_atom_cstr(b, type_names[type]);
    hc_enc_ulong(b, from_rid);
    hc_enc_ulong(b, from_inc);
    hc_enc_ulong(b, to_rid);
    return hc_enc_ulong(b, to_inc);
}

int crdt_enc_elem(hc_buf *b, uint64_t rid, uint64_t ctr, uint64_t hlc, const uint8_t *val, size_t val_len)
{
    hc_enc_tuple_header(b, val ? 4 : 3);
    hc_enc_ulong(b, rid);
    hc_enc_ulong(b, ctr);
    hc_enc_ulong(b, hlc);
    return val ? hc_enc_raw(b, val, val_len) : b->err;
}

int crdt_enc_simple(hc_buf *b, int type, uint64_t from_rid, uint64_t from_inc, uint64_t to_rid, uint64_t to_inc,
                    const uint64_t *fields, int n)
{
    crdt_enc_header(b, type, from_rid, from_inc, to_rid, to_inc);
    hc_enc_tuple_header(b, (uint32_t)n);
    for (int i = 0; i < n; i++)
        hc_enc_ulong(b, fields[i]);
    return b->err;
}

/* ---- decoding: the buffer has passed hc_term_check, so every term below is whole ---- */

typedef struct dec {
    const uint8_t *p;
    size_t len, i;
} dec;

static int d_tuple(dec *d, uint32_t arity)
{
    uint32_t a;
    return hc_dec_tuple_header(d->p, d->len, &d->i, &a) || a != arity ? HC_EDECODE : HC_OK;
}

static int d_u64(dec *d, uint64_t *v) { return hc_dec_ulong(d->p, d->len, &d->i, v); }
static int d_binary(dec *d, hc_span *s) { return hc_dec_binary(d->p, d->len, &d->i, s); }
static int d_raw(dec *d, hc_span *s) { return hc_dec_term(d->p, d->len, &d->i, s); }

/* A list header; [] gives 0. STRING_EXT (a list of small integers) is never a valid list for us. */
static int d_list(dec *d, uint32_t *n) { return hc_dec_list_header(d->p, d->len, &d->i, n); }

static int d_list_end(dec *d, uint32_t n)
{
    if (n == 0)
        return HC_OK;
    if (hc_peek_type(d->p, d->len, d->i) != ETF_NIL)
        return HC_EDECODE; /* improper list */
    d->i++;
    return HC_OK;
}

static int d_dots(hc_span s)
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
    uint32_t arity;
    if (hc_dec_tuple_header(d->p, d->len, &d->i, &arity) || (arity != 3 && arity != 4))
        return HC_EDECODE;
    if (d_u64(d, &e->rid) || d_u64(d, &e->ctr) || d_u64(d, &e->hlc) || !e->rid || !e->ctr)
        return HC_EDECODE;
    e->has_val = arity == 4;
    if (e->has_val)
        return d_raw(d, &e->val);
    e->val = (hc_span){0};
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
    /* Indexes become pointers; with no element at all (a delete-only delta) the pool is NULL, and even a zero offset
     * from a null pointer is undefined: those records keep NULL (they have n == 0; found by the fuzz target). */
    for (uint32_t i = 0; i < n; i++)
        m->recs[i].elems = m->pool ? m->pool + (uintptr_t)m->recs[i].elems : NULL;
    return d_list_end(d, n);
}

static int decode_body(dec *d, crdt_msg *m)
{
    uint32_t n;
    switch (m->type) {
    case HC_CRDT_MSG_HELLO: return d_tuple(d, 2) || d_u64(d, &m->depth) || d_u64(d, &m->max_msg) ? HC_EDECODE : HC_OK;
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
        if (d_tuple(d, 4) || d_u64(d, &m->sid) || d_u64(d, &m->req) || d_u64(d, &m->level) || d_binary(d, &m->bin))
            return HC_EDECODE;
        return HC_OK;
    case HC_CRDT_MSG_CHUNK:
        if (d_tuple(d, 5) || d_u64(d, &m->sid) || d_u64(d, &m->req) || d_u64(d, &m->lo) || d_u64(d, &m->hi) ||
            m->lo > m->hi)
            return HC_EDECODE;
        return d_recs(d, m);
    case HC_CRDT_MSG_ELEMS:
        if (d_tuple(d, 3) || d_u64(d, &m->sid) || d_u64(d, &m->req))
            return HC_EDECODE;
        return d_recs(d, m);
    case HC_CRDT_MSG_CTX:
        if (d_tuple(d, 5) || d_u64(d, &m->sid) || d_u64(d, &m->req) || d_u64(d, &m->piece) || d_u64(d, &m->pieces) ||
            d_binary(d, &m->bin) || m->piece >= m->pieces)
            return HC_EDECODE;
        return HC_OK;
    case HC_CRDT_MSG_END:
    case HC_CRDT_MSG_ACK: return d_tuple(d, 2) || d_u64(d, &m->sid) || d_u64(d, &m->req) ? HC_EDECODE : HC_OK;
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
    if (hc_term_check(buf, len))
        return HC_EDECODE;
    dec d = {buf, len, 0};
    uint32_t arity;
    uint64_t version;
    size_t type;
    if (hc_dec_tuple_header(d.p, d.len, &d.i, &arity) || arity < 2 || !hc_dec_is_atom(d.p, d.len, &d.i, TAG_ATOM))
        return HC_EDECODE;
    if (d_u64(&d, &version))
        return HC_EDECODE;
    if (version != HC_CRDT_PROTOCOL_VERSION)
        return HC_EVERSION;
    if (arity != 8 || hc_dec_atom_index(d.p, d.len, &d.i, type_names, HC_CRDT_MSG__COUNT, &type))
        return HC_EDECODE;
    out->type = (int)type;
    if (d_u64(&d, &out->from_rid) || d_u64(&d, &out->from_inc) || d_u64(&d, &out->to_rid) || d_u64(&d, &out->to_inc) ||
        !out->from_rid)
        return HC_EDECODE;
    int rc = decode_body(&d, out);
    if (!rc && d.i != len)
        rc = HC_EDECODE;
    if (rc)
        crdt_msg_free(out);
    return rc;
}
