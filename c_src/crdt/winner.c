/* winner.c — hc_crdt_winner.h: the writer and stamp of a key's winning element. */
#include "hordec/hc_crdt_winner.h"

#include "crdt/hash.h"
#include "crdt/replica.h"

bool hc_crdt_get_winner(const hc_crdt *r, const uint8_t *key, size_t key_len, uint64_t *rid, uint64_t *hlc)
{
    if (!key)
        return false;
    const crdt_entry *e = crdt_map_find(&r->map, key, key_len, crdt_hash_bytes(key, key_len));
    if (!e)
        return false;
    *rid = e->elems[0].rid;
    *hlc = e->elems[0].hlc;
    return true;
}
