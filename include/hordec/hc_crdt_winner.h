/* hc_crdt_winner.h — who wrote the value a key resolves to.
 *
 * The cores built on the engine sometimes need to know which replica wrote a key's winning element, and when:
 * the registry uses it to tell a stale record from a newer one that has not reached it yet (a replica that
 * restarted and repairs keys in hash order can hold a client's newer entries before the client's newer attach
 * record, docs/registry.md §5). */
#ifndef HORDEC_HC_CRDT_WINNER_H
#define HORDEC_HC_CRDT_WINNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hordec/hc_crdt.h"
#include "hordec/hc_export.h"

HC_BEGIN_DECLS

/* The winning element of `key`: the id of the replica (incarnation) that wrote it and its hybrid logical clock.
 * False when the key is absent. */
bool hc_crdt_get_winner(const hc_crdt *r, const uint8_t *key, size_t key_len, uint64_t *rid, uint64_t *hlc);

HC_END_DECLS

#endif
