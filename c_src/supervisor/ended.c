/* ended.c — children a caller terminated, remembered for a while (docs/supervisor.md §5).
 *
 * terminate_child deletes a record, but a write made concurrently elsewhere can bring it back: a replica that saw
 * the child's member die takes the child over at the moment another one answers the terminate (the chaos run
 * found it), or the far side of a partition restarts it. That newer write wins the merge, and the child would
 * run again after its caller was told `ok`. A replica that carried out a terminate keeps the child's id for
 * SUP_ENDED_MS; a record for it that shows up meanwhile is terminated again (children.c). Ids are never reused
 * for another child (a caller-chosen id names one start), so acting on a remembered id is always right. */
#include <stdlib.h>

#include "supervisor/sup.h"

/* Drops the oldest entry: its pair leaves the map, its slot the ring. */
static void drop_oldest(sup_core *c)
{
    sup_ended *e = &c->ended;
    size_t at = e->head;
    hc_hmap_del(&e->ids, e->ring[at].id, (void *)(uintptr_t)e->ring[at].until);
    e->head = (at + 1) % e->cap;
    e->n--;
}

static void prune(sup_core *c, uint64_t now_ms)
{
    sup_ended *e = &c->ended;
    while (e->n && e->ring[e->head].until <= now_ms)
        drop_oldest(c);
}

/* Room for one more: the ring doubles up to SUP_ENDED_MAX, then the oldest goes. */
static bool make_room(sup_core *c)
{
    sup_ended *e = &c->ended;
    if (e->n < e->cap)
        return true;
    if (e->cap >= SUP_ENDED_MAX) {
        drop_oldest(c);
        return true;
    }
    size_t cap = e->cap ? e->cap * 2 : 64;
    sup_ended_entry *ring = malloc(cap * sizeof *ring);
    if (!ring)
        return false;
    for (size_t i = 0; i < e->n; i++)
        ring[i] = e->ring[(e->head + i) % e->cap];
    free(e->ring);
    e->ring = ring;
    e->cap = cap;
    e->head = 0;
    return true;
}

void sup_ended_add(sup_core *c, uint64_t id, hc_time now)
{
    sup_ended *e = &c->ended;
    prune(c, now.mono_ms);
    if (hc_hmap_get(&e->ids, id) || !make_room(c))
        return; /* already remembered (from the first terminate on), or out of memory: best effort */
    uint64_t until = now.mono_ms + SUP_ENDED_MS;
    if (hc_hmap_put(&e->ids, id, (void *)(uintptr_t)until))
        return;
    e->ring[(e->head + e->n) % e->cap] = (sup_ended_entry){id, until};
    e->n++;
}

bool sup_ended_has(sup_core *c, uint64_t id, hc_time now)
{
    prune(c, now.mono_ms);
    return hc_hmap_get(&c->ended.ids, id) != NULL;
}

void sup_ended_free(sup_core *c)
{
    hc_hmap_free(&c->ended.ids);
    free(c->ended.ring);
    c->ended = (sup_ended){0};
}
