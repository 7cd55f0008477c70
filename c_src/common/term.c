/* term.c — equality and hashing of the compact identifiers (hc_pid, hc_ref) of hc_term.h. The rest of
 * the term codec: term_enc.c (encoders), term_dec.c (decoders), term_skip.c (skipper and checker),
 * term_iter.c (list and map iterators), term_req.c (request matcher). */
#include "hordec/hc_term.h"

/* ------------------------------------------------------------------ hashing and equality */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

bool hc_ref_eq(const hc_ref *a, const hc_ref *b)
{
    if (a->node != b->node || a->creation != b->creation || a->len != b->len)
        return false;
    for (uint32_t i = 0; i < a->len && i < 5; i++)
        if (a->n[i] != b->n[i])
            return false;
    return true;
}

uint64_t hc_ref_hash(const hc_ref *r)
{
    uint64_t h = ((uint64_t)r->node << 32) ^ r->creation;
    for (uint32_t i = 0; i < r->len && i < 5; i++)
        h = mix64(h ^ r->n[i]);
    return mix64(h);
}

uint64_t hc_pid_hash(const hc_pid *p)
{
    return mix64(((uint64_t)p->num << 32 | p->serial) ^ ((uint64_t)p->node << 20) ^ p->creation);
}
