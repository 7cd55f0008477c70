/* strategy.c — Horde's three distribution strategies (reference §3.1-§3.3).
 *
 * Uniform: libring over the alive members, at phash2(identifier, 2^32-1). Quorum: the same while has_quorum?
 * holds, else quorum_not_met. Random: Horde shuffles the alive members and takes the first, i.e. a uniform
 * draw; here the core's random number picks it, so a seeded simulation replays the same choices. */
#include "supervisor/place.h"

bool sup_has_quorum(sup_dist d, const sup_member_ref *m, const sup_status *st, size_t n)
{
    if (d != SUP_DIST_QUORUM)
        return true;
    /* Horde: active = members not shutting down, sorted by name; an even count drops the first (the smallest);
     * quorum = alive / length(active) > 0.5, where uninitialized and dead members count in the length. Dropping
     * the smallest needs only a minimum, not a sort. */
    size_t active = 0, alive = 0, smallest = n;
    for (size_t i = 0; i < n; i++) {
        if (st[i] == SUP_ST_SHUTTING_DOWN)
            continue;
        active++;
        alive += st[i] == SUP_ST_ALIVE;
        if (smallest == n || sup_member_cmp(&m[i], &m[smallest]) < 0)
            smallest = i;
    }
    if (active == 0)
        return false; /* Horde: has_quorum?([]) is false, and an empty active list is nil (falsy) */
    if (active % 2 == 0) {
        active--;
        alive -= st[smallest] == SUP_ST_ALIVE;
    }
    return 2 * alive > active; /* alive / active > 0.5, exactly */
}

int sup_choose(sup_dist d, const sup_ring *alive, bool quorum, uint64_t identifier, uint64_t random, size_t *out)
{
    if (d == SUP_DIST_QUORUM && !quorum)
        return SUP_ENOQUORUM;
    if (d == SUP_DIST_UNIFORM || d == SUP_DIST_QUORUM) { /* Horde's quorum strategy delegates to the uniform one */
        int o = sup_ring_owner(alive, sup_phash2_uint(identifier));
        if (o < 0)
            return SUP_ENOALIVE;
        *out = (size_t)o;
        return HC_OK;
    }
    if (d != SUP_DIST_RANDOM)
        return HC_EINVAL;
    if (!alive->nmembers)
        return SUP_ENOALIVE;
    *out = (size_t)(random % alive->nmembers); /* the modulo bias is at most nmembers / 2^64 */
    return HC_OK;
}
