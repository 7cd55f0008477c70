/* codec.h — the sync messages on the wire, encoded and decoded with the common term codec (hc_term.h).
 *
 * Every message is {'$hordec_crdt', Version, Type, FromRid, FromInc, ToRid, ToInc, Body} (docs/crdt.md
 * has each Body). Keys and values are spliced in as the raw ETF the user gave us. Encoders are the hc_enc_*
 * functions plus the few message-shaped helpers below; they share the buffer's sticky error. Decoding
 * first checks the whole buffer with hc_term_check (bounds, tags, nesting), then reads it with the hc_dec_*
 * decoders; the decoded message borrows slices of the input buffer, so the buffer must outlive it. */
#ifndef HORDEC_CRDT_CODEC_H
#define HORDEC_CRDT_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "hordec/hc_common.h"
#include "hordec/hc_crdt.h"
#include "hordec/hc_term.h"

/* Upper bounds of encoded sizes, used to pack messages under max_message_bytes without encoding twice. */
#define CRDT_MSG_OVERHEAD 256u /* outer tuple, header fields, body tuple and its small fields */
#define CRDT_REC_OVERHEAD 16u  /* {Key, [..], <<Removed>>} around the key bytes */
#define CRDT_ELEM_OVERHEAD 40u /* {Rid, Ctr, Hlc, Value} around the value bytes */
/* At most this many key records in one delta batch or repair chunk, whatever their bytes: the receiver joins
 * a message in one go, so this bounds the time a message of small records holds its event loop (a 1 MiB
 * message of tiny records would otherwise be ~25k joins in one turn). */
#define CRDT_MAX_RECS_PER_MSG 1024u

typedef struct crdt_wire_elem {
    uint64_t rid, ctr, hlc;
    hc_span val;
    int has_val; /* 0: dot listed without its value (the value travels in an `elems` message) */
} crdt_wire_elem;

typedef struct crdt_wire_rec {
    hc_span key;
    crdt_wire_elem *elems;
    uint32_t n;
    hc_span removed; /* CRDT_DOT_BYTES-byte dots */
} crdt_wire_rec;

typedef struct crdt_msg {
    int type; /* HC_CRDT_MSG_* */
    uint64_t from_rid, from_inc, to_rid, to_inc;
    uint64_t seq;                               /* delta */
    uint64_t sid, req;                          /* repair messages */
    uint64_t level;                             /* tree, tree_diff */
    uint64_t lo, hi;                            /* chunk: the key-hash range it speaks for, inclusive */
    uint64_t root, count, ctx_hash, want_reply; /* digest */
    uint64_t piece, pieces;                     /* ctx */
    uint64_t depth, max_msg;                    /* hello */
    hc_span bin;                                /* tree, tree_diff, ctx */
    crdt_wire_rec *recs;                        /* delta, chunk, elems */
    uint32_t n_recs;
    uint64_t *seqs; /* delta_ack */
    uint32_t n_seqs;
    crdt_wire_elem *pool; /* storage behind recs[i].elems */
} crdt_msg;

/* Decodes and validates one message. HC_OK, HC_EDECODE, HC_EVERSION or HC_ENOMEM; on error nothing needs
 * freeing. On success free with crdt_msg_free. */
int crdt_msg_decode(const uint8_t *buf, size_t len, crdt_msg *out);
void crdt_msg_free(crdt_msg *m);

/* Encoders append to b (the body's integers, binaries, tuples and spliced terms are plain hc_enc_* calls).
 * The header starts a message; the caller then appends the body. */
int crdt_enc_header(hc_buf *b, int type, uint64_t from_rid, uint64_t from_inc, uint64_t to_rid, uint64_t to_inc);
/* A list of n elements: n == 0 encodes [] and nothing more follows; otherwise the caller appends the n
 * elements and then hc_enc_nil. */
int crdt_enc_list(hc_buf *b, uint32_t n);
/* {Rid, Ctr, Hlc, Value} or, with val == NULL, {Rid, Ctr, Hlc}. */
int crdt_enc_elem(hc_buf *b, uint64_t rid, uint64_t ctr, uint64_t hlc, const uint8_t *val, size_t val_len);

/* Convenience for the small fixed-shape messages: the header plus a body tuple of n integers. */
int crdt_enc_simple(hc_buf *b, int type, uint64_t from_rid, uint64_t from_inc, uint64_t to_rid, uint64_t to_inc,
                    const uint64_t *fields, int n);

const char *crdt_msg_type_name(int type);

#endif
