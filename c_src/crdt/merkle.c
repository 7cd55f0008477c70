/* merkle.c — range-sum hash tree over key hashes (see merkle.h for why sums). */
#include "crdt/merkle.h"

#include <stdlib.h>
#include <string.h>

#include "hordec/hc_common.h"

int crdt_merkle_init(crdt_merkle *t)
{
    t->sum = calloc(CRDT_MERKLE_NODES, sizeof *t->sum);
    t->count = calloc(CRDT_MERKLE_NODES, sizeof *t->count);
    if (!t->sum || !t->count) {
        crdt_merkle_free(t);
        return HC_ENOMEM;
    }
    return HC_OK;
}

void crdt_merkle_free(crdt_merkle *t)
{
    free(t->sum);
    free(t->count);
    t->sum = NULL;
    t->count = NULL;
}

void crdt_merkle_clear(crdt_merkle *t)
{
    memset(t->sum, 0, CRDT_MERKLE_NODES * sizeof *t->sum);
    memset(t->count, 0, CRDT_MERKLE_NODES * sizeof *t->count);
}

void crdt_merkle_update(crdt_merkle *t, uint64_t h, uint64_t digest, int sign)
{
    for (uint32_t l = 0; l <= CRDT_MERKLE_DEPTH; l++) {
        uint32_t k = crdt_merkle_index(l, l ? (uint32_t)(h >> (64 - l)) : 0);
        if (sign > 0) {
            t->sum[k] += digest;
            t->count[k]++;
        } else {
            t->sum[k] -= digest;
            t->count[k]--;
        }
    }
}
