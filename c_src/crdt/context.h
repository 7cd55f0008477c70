/* context.h — the causal context: every dot (replica_id, counter) a replica has observed.
 *
 * Stored exactly, never lossily compressed (DeltaCrdt's per-node maximum assumed gap-free contexts and
 * could then "see" dots it never received). Per replica id: `base` = every counter 1..base observed, and
 * a `cloud` holding the observed counters above base+1 (gaps from out-of-order delivery or partial
 * repair). The cloud is an open-addressing set so out-of-order inserts stay O(1); it drains into base as
 * gaps fill. */
#ifndef HORDEC_CRDT_CONTEXT_H
#define HORDEC_CRDT_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "hordec/hc_common.h"

typedef struct crdt_cloud {
    uint64_t *slots; /* 0 = empty slot (counters start at 1) */
    uint32_t cap;    /* power of two, or 0 */
    uint32_t n;
} crdt_cloud;

typedef struct crdt_ctx_rep {
    uint64_t rid;
    uint64_t base;
    crdt_cloud cloud;
} crdt_ctx_rep;

typedef struct crdt_ctx {
    crdt_ctx_rep *reps; /* sorted by rid */
    uint32_t n, cap;
} crdt_ctx;

void crdt_ctx_init(crdt_ctx *c);
void crdt_ctx_free(crdt_ctx *c);
int crdt_ctx_has(const crdt_ctx *c, uint64_t rid, uint64_t ctr);
int crdt_ctx_add(crdt_ctx *c, uint64_t rid, uint64_t ctr);
int crdt_ctx_merge(crdt_ctx *dst, const crdt_ctx *src);
int crdt_ctx_copy(crdt_ctx *dst, const crdt_ctx *src);
/* Order-independent digest of the set of dots (equal sets, equal hashes). */
uint64_t crdt_ctx_hash(const crdt_ctx *c);
size_t crdt_ctx_cloud_size(const crdt_ctx *c);
/* The contiguous prefix observed from rid (0 if none). */
uint64_t crdt_ctx_base(const crdt_ctx *c, uint64_t rid);

/* Serialises the context into pieces of at most max_piece bytes each (binary, see docs/crdt.md). Every
 * piece is a valid subset of the context, so pieces can be absorbed independently. *pieces is a malloc'd
 * array of hc_buf the caller frees (each with hc_buf_free, then free()). */
int crdt_ctx_encode_pieces(const crdt_ctx *c, size_t max_piece, hc_buf **pieces, size_t *n_pieces);
/* Validates a piece (HC_EDECODE if malformed) and sets *max_ctr (may be NULL) to the greatest counter it
 * claims for replica `rid` (0 if none), so a replica can refuse claims about its own dots it never issued. */
int crdt_ctx_check_piece(const uint8_t *p, size_t len, uint64_t rid, uint64_t *max_ctr);
/* Validates a piece completely, then merges it into c. HC_EDECODE leaves c untouched. */
int crdt_ctx_merge_piece(crdt_ctx *c, const uint8_t *p, size_t len);

/* Dot sets as flat binaries of 16-byte big-endian (rid, counter) pairs, used for removed dots. */
#define CRDT_DOT_BYTES 16

#endif
