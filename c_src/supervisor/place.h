/* place.h — placement for the supervisor core: erlang:phash2 in C, libring's hash ring, the three strategies.
 *
 *   hash2.c     make_hash2 (the function behind erlang:phash2) over ETF bytes, and shortcuts for the two terms
 *               placement hashes all the time ({{Name, Node}, I} and a non-negative integer);
 *   ring.c      a consistent hash ring identical to libring 1.7.0 (Horde's HashRing), and Erlang term order
 *               of members;
 *   strategy.c  Horde's UniformDistribution, UniformQuorumDistribution and UniformRandomDistribution.
 *
 * Reference: ../shared/reference/horde-0.10-semantics.md §3 and §5.3. Nothing here reads a clock or a random
 * source: the core supplies the random number Random placement draws with, so a simulation replays exactly.
 * Functions taking hc_atom read the atom table, which belongs to the loop thread (hc_term.h). */
#ifndef HORDEC_SUPERVISOR_PLACE_H
#define HORDEC_SUPERVISOR_PLACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hordec/hc_common.h"
#include "hordec/hc_term.h"

/* ------------------------------------------------------------------ phash2 (hash2.c) */

enum { SUP_RING_WEIGHT = 128 }; /* points per ring member: libring's default weight, the one Horde uses */

/* make_hash2 of the ETF term etf[0..len) (no version byte): the full 32-bit value, erlang:phash2(T, 1 bsl 32).
 * Exactly what the BEAM computes, for atoms (all four encodings), integers (any size, any encoding: a
 * non-canonical one hashes as the integer it denotes), floats, tuples, lists (STRING, improper tails, a tail that
 * is itself a LIST), binaries and bitstrings, maps, pids, references, ports and external funs (fun M:F/A).
 * Local funs (their hash depends on the compiled module) are HC_EINVAL. Malformed bytes, or bytes after the
 * term, are HC_EDECODE. On error it returns 0 and sets *rc (rc may be NULL); on success *rc = HC_OK. Any depth
 * of nesting is fine: it walks the term with its own stack, not the C stack (it allocates only past 32 levels).
 * It reads no atom table, so any thread may call it. */
uint32_t sup_phash2_term(const uint8_t *etf, size_t len, int *rc);

/* The BEAM's ranges over a make_hash2 value h:
 *   phash2(T)             = h band (2^27 - 1)       -> sup_phash2_27(h)
 *   phash2(T, 4294967295) = h rem (2^32 - 1), i.e. h, except 0xFFFFFFFF gives 0   -> sup_phash2_max(h)
 * (erts bif.c phash2_2: `hash % range`; checked against the BEAM in test_sup_ring.c with a term whose make_hash2
 * is 0xFFFFFFFF). libring hashes with the range 2^32 - 1. */
static inline uint32_t sup_phash2_27(uint32_t h) { return h & 0x7FFFFFFu; }
static inline uint32_t sup_phash2_max(uint32_t h) { return h == 0xFFFFFFFFu ? 0 : h; }

/* phash2({{Name, Node}, I}, 4294967295): libring's point I of the ring node {Name, Node}. */
uint32_t sup_phash2_member_point(hc_atom name, hc_atom node, uint32_t i);
/* Points 1..SUP_RING_WEIGHT of that member at once: out[I - 1] = sup_phash2_member_point(name, node, I). */
void sup_member_points(hc_atom name, hc_atom node, uint32_t out[SUP_RING_WEIGHT]);
/* phash2(V, 4294967295) for a non-negative integer V: the ring position of a child whose identifier is V. */
uint32_t sup_phash2_uint(uint64_t v);
/* The BEAM's hash of an atom's name (hashpjw over its UTF-8 with OTP's latin-1 folding): phash2(A, 1 bsl 32). */
uint32_t sup_atom_hash(const uint8_t *utf8, size_t len);

/* ------------------------------------------------------------------ members and the ring (ring.c) */

typedef struct sup_member_ref {
    hc_atom name, node;
} sup_member_ref;

/* Erlang term order of the tuples {Name, Node}: Name first, then Node; atoms compare by their UTF-8 text,
 * bytewise, a prefix first. Returns <0, 0 or >0. */
int sup_atom_cmp(hc_atom a, hc_atom b);
int sup_member_cmp(const sup_member_ref *a, const sup_member_ref *b);
/* Sorts m in that order (Horde hands libring Map.keys of its members, which is this order for <= 32 members). */
void sup_members_sort(sup_member_ref *m, size_t n);

/* A ring over n members: their points, sorted, distinct (a point two members share belongs to the one added
 * first, as libring's gb_trees insert keeps it), each with the index of its member in the array the ring was
 * built from. A zeroed struct is an empty ring. */
typedef struct sup_ring {
    uint32_t *points; /* ascending */
    uint32_t *owner;  /* owner[i]: index into the members given to sup_ring_build */
    size_t n;         /* points */
    size_t nmembers;  /* members given (duplicates included) */
} sup_ring;

/* Builds r over members[0..n), added in that order (the order decides who keeps a shared point: sort with
 * sup_members_sort first to match Horde). A member listed twice is added once, at its first place, as libring
 * ignores adding a node it has. r must be zeroed or a ring from an earlier build; on success its old contents
 * are freed; on failure (HC_ENOMEM, HC_EINVAL for more members than a uint32 index holds) r is unchanged.
 * O(n log n), allocates. n == 0 builds an empty ring. */
int sup_ring_build(sup_ring *r, const sup_member_ref *members, size_t n);
/* The member owning key_hash (a phash2(Key, 4294967295) value): the one with the smallest point >= key_hash,
 * wrapping to the smallest point. An index into the members the ring was built from, or -1 for an empty ring.
 * O(log n), no allocation. */
int sup_ring_owner(const sup_ring *r, uint32_t key_hash);
void sup_ring_free(sup_ring *r); /* leaves r zeroed (an empty ring) */

/* ------------------------------------------------------------------ strategies (strategy.c) */

typedef enum { SUP_ST_UNINIT = 0, SUP_ST_ALIVE, SUP_ST_SHUTTING_DOWN, SUP_ST_DEAD } sup_status;
typedef enum { SUP_DIST_UNIFORM = 0, SUP_DIST_QUORUM, SUP_DIST_RANDOM } sup_dist;

/* sup_choose's refusals. */
enum {
    SUP_ENOALIVE = HC_ENOPROC, /* {error, no_alive_nodes}: no alive member eligible */
    SUP_ENOQUORUM = HC_ESTATE, /* {error, quorum_not_met} */
};

/* Horde's has_quorum? over ALL members (m[i] has status st[i]; names distinct; any order). Uniform and Random:
 * always true. Quorum (UniformQuorumDistribution): false for no members; else take the members not shutting
 * down, drop the smallest {Name, Node} when their number is even, and require more than half of the rest alive
 * (uninitialized and dead members count against). Nobody left (all shutting down) is false. O(n), no
 * allocation. */
bool sup_has_quorum(sup_dist d, const sup_member_ref *m, const sup_status *st, size_t n);

/* The member that gets a child, as Horde's strategy's choose_node does:
 *   alive     the ring over the alive members eligible for the child's kind (sup_ring_build order);
 *   quorum    sup_has_quorum(d, every member) as of the last membership change (read for SUP_DIST_QUORUM only:
 *             then placement is Uniform over the eligible alive members, as Horde's choose_node delegates);
 *   identifier the child's placement identifier (Horde: phash2/1 of its spec without id); Uniform/Quorum put it
 *             on the ring at sup_phash2_uint(identifier);
 *   random    Random only: any 64-bit value from the core's generator; the member is random mod the count.
 * HC_OK with *out = the index into the members `alive` was built from; SUP_ENOQUORUM (checked first, as Horde
 * does); SUP_ENOALIVE for an empty ring; HC_EINVAL for an unknown strategy. O(log n), no allocation. */
int sup_choose(sup_dist d, const sup_ring *alive, bool quorum, uint64_t identifier, uint64_t random, size_t *out);

#endif
