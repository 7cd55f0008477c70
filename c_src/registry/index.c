/* index.c — Key -> registrations over the CRDT map, and :unique winner resolution.
 *
 * Every {r, Key, Pid} the engine holds is one reg_entry, listed under its Key (a reg_key, found by a hash of
 * the Key's bytes); a local entry of a process of this node is also listed in that pid's watch. For a :duplicate registry every entry is observable, so entry changes
 * become events at once. For a :unique registry a Key shows one winner: the entry whose CRDT element has the
 * greatest hybrid-logical-clock stamp (then the writing replica's id, then its counter — the engine's own
 * order, so every replica ranks the same elements the same way). Changed keys are marked dirty and resolved
 * once the engine's events are drained; keys with two or more entries stay "contested" until the losers are
 * gone, and are re-resolved whenever remote data arrived, because a remote write can raise an entry's stamp
 * without changing its value (the engine reports no event then). */
#include <stdlib.h>
#include <string.h>

#include "registry/reg.h"

static int list_add(reg_key ***arr, size_t *n, size_t *cap, reg_key *k)
{
    if (hc_array_reserve((void **)arr, cap, *n + 1, sizeof **arr, 8))
        return HC_ENOMEM;
    (*arr)[(*n)++] = k;
    return HC_OK;
}

reg_key *reg_key_find(const reg_core *c, const uint8_t *key, size_t klen)
{
    uint64_t h = reg_hash_bytes(key, klen);
    size_t pos = 0;
    reg_key *k;
    while ((k = hc_hmap_next(&c->keys, h, &pos)))
        if (k->len == klen && memcmp(k->bytes, key, klen) == 0)
            return k;
    return NULL;
}

static reg_entry *key_entry(reg_key *k, const hc_pid *pid)
{
    for (uint32_t i = 0; i < k->n; i++) {
        reg_entry *e = reg_key_at(k, i);
        if (hc_pid_eq(&e->pid, pid))
            return e;
    }
    return NULL;
}

reg_entry *reg_entry_find(const reg_core *c, const uint8_t *key, size_t klen, const hc_pid *pid)
{
    reg_key *k = reg_key_find(c, key, klen);
    return k ? key_entry(k, pid) : NULL;
}

static void key_free(reg_core *c, reg_key *k)
{
    hc_hmap_del(&c->keys, reg_hash_bytes(k->bytes, k->len), k);
    c->n_keys--;
    free(k->more); /* empty: the key has no entry left */
    free(k);
}

static void mark_dirty(reg_core *c, reg_key *k)
{
    if (!k->dirty && !list_add(&c->dirty, &c->ndirty, &c->capdirty, k))
        k->dirty = true;
}

/* Lists a local entry of a process of this node in its pid's watch, or takes it out. */
static void list_local(reg_watch *w, reg_entry *e, bool add)
{
    if (add) {
        if (w->n_local == w->cap_local) {
            uint32_t cap = w->cap_local ? w->cap_local * 2 : 1;
            reg_entry **grown = realloc(w->locals, cap * sizeof *grown);
            if (!grown)
                return; /* out of memory: unlisted, so its pid's death leaves it to the next change (as unwatched) */
            w->locals = grown;
            w->cap_local = cap;
        }
        e->lslot = w->n_local;
        w->locals[w->n_local++] = e;
    } else if (e->lslot < w->n_local && w->locals[e->lslot] == e) {
        reg_entry *last = w->locals[--w->n_local];
        w->locals[e->lslot] = last;
        last->lslot = e->lslot;
    }
}

/* Moves an entry's vouching counts from one owner to another (either may be "none"). */
static void count_owner(reg_core *c, reg_entry *e, int delta)
{
    reg_watch *w;
    if (e->local) {
        if (e->pid.node != c->node)
            return; /* another node's process: its own node's replica watches it */
        w = reg_watch_get(c, &e->pid, delta > 0);
        if (!w)
            return;
        list_local(w, e, delta > 0);
    } else {
        w = reg_watch_get(c, &e->owner, delta > 0);
        if (!w)
            return;
        w->n_owned += (uint32_t)delta;
    }
    if (delta > 0 && w->dead) /* an entry of a process, or owned by a client, known dead: it goes again */
        reg_queue_entry_delete(c, e);
    reg_watch_sync(c, w);
}

int reg_index_put(reg_core *c, const uint8_t *key, size_t klen, const hc_pid *pid, const reg_val *v, const uint8_t *raw,
                  size_t raw_len)
{
    reg_key *k = reg_key_find(c, key, klen);
    bool new_key = !k;
    if (!k) {
        k = calloc(1, sizeof *k + klen);
        if (!k)
            return HC_ENOMEM;
        k->len = (uint32_t)klen;
        memcpy(k->bytes, key, klen);
        if (hc_hmap_put(&c->keys, reg_hash_bytes(key, klen), k)) {
            free(k);
            return HC_ENOMEM;
        }
        c->n_keys++;
    }
    reg_entry *e = key_entry(k, pid);
    if (!e) {
        if (!k->has_one) {
            e = &k->one;
            memset(e, 0, sizeof *e);
            k->has_one = true;
        } else {
            if (!k->more || k->more->n == k->more->cap) {
                uint32_t n = k->more ? k->more->n : 0, cap = k->more ? k->more->cap * 2 : 1;
                reg_more *grown = realloc(k->more, sizeof *grown + cap * sizeof grown->v[0]);
                if (!grown)
                    goto nomem;
                grown->n = n;
                grown->cap = cap;
                k->more = grown;
            }
            e = calloc(1, sizeof *e);
            if (!e)
                goto nomem;
            k->more->v[k->more->n++] = e;
        }
        e->key = k;
        e->pid = *pid;
        k->n++;
        c->n_entries++;
    } else {
        count_owner(c, e, -1);
    }
    e->local = v->local;
    e->owner = v->local ? (hc_pid){0} : v->owner;
    e->changed = true;
    count_owner(c, e, +1);
    if (!c->unique) {
        hc_buf *b = &c->scratch;
        hc_buf_reset(b);
        reg_enc_okey_reg(b, key, klen, pid);
        reg_queue_event(c, b->data, b->len, raw, raw_len);
        e->changed = false;
        return HC_OK;
    }
    mark_dirty(c, k);
    if (k->n >= 2 && !k->contested && !list_add(&c->contested, &c->ncont, &c->capcont, k))
        k->contested = true;
    return HC_OK;
nomem:
    if (new_key)
        key_free(c, k);
    return HC_ENOMEM;
}

void reg_index_remove(reg_core *c, const uint8_t *key, size_t klen, const hc_pid *pid)
{
    reg_key *k = reg_key_find(c, key, klen);
    reg_entry *e = k ? key_entry(k, pid) : NULL;
    if (!e)
        return;
    if (e == &k->one) {
        k->has_one = false;
    } else {
        reg_more *m = k->more; /* e is not `one`, so it is here */
        for (uint32_t i = 0; i < m->n; i++)
            if (m->v[i] == e) {
                m->v[i] = m->v[--m->n];
                break;
            }
    }
    k->n--;
    c->n_entries--;
    count_owner(c, e, -1);
    if (!c->unique || e->shown) /* the observable entry goes now; a new winner is shown on resolution */
        reg_queue_reg_event(c, k, pid, true);
    if (e != &k->one)
        free(e);
    if (c->unique)
        mark_dirty(c, k);
    else if (!k->n)
        key_free(c, k);
}

/* Ranks entries as the engine ranks elements: greater HLC, then greater replica id, then counter. */
static bool elem_newer(const hc_crdt_elem_info *a, const hc_crdt_elem_info *b)
{
    if (a->hlc != b->hlc)
        return a->hlc > b->hlc;
    if (a->replica_id != b->replica_id)
        return a->replica_id > b->replica_id;
    return a->counter > b->counter;
}

reg_entry *reg_index_best(reg_core *c, reg_key *k)
{
    if (k->n == 1) /* nothing to rank (the index holds only what the engine holds): no key to build, no lookup */
        return reg_key_at(k, 0);
    reg_entry *best = NULL;
    hc_crdt_elem_info bi = {0}, ei;
    hc_buf *b = &c->scratch;
    for (uint32_t i = 0; i < k->n; i++) {
        reg_entry *e = reg_key_at(k, i);
        hc_buf_reset(b);
        reg_enc_ckey_reg(b, k->bytes, k->len, &e->pid);
        if (b->err || !hc_crdt_elements(c->crdt, b->data, b->len, &ei, 1))
            continue;
        if (!best || elem_newer(&ei, &bi)) {
            best = e;
            bi = ei;
        }
    }
    return best;
}

/* Shows the current winner of k, then acts on the losers this replica answers for. */
static void resolve(reg_core *c, reg_key *k)
{
    reg_entry *best = reg_index_best(c, k), *shown = reg_key_winner(k);
    if (best != shown) {
        if (shown) {
            reg_queue_reg_event(c, k, &shown->pid, true);
            shown->shown = false;
        }
        if (best) {
            best->shown = true;
            reg_queue_reg_event(c, k, &best->pid, false);
        }
    } else if (best && best->changed) {
        reg_queue_reg_event(c, k, &best->pid, false);
    }
    for (uint32_t i = 0; i < k->n; i++)
        reg_key_at(k, i)->changed = false;
    if (!best || k->n < 2)
        return;
    /* Losers are final: the winner is the maximum over a set that only grows until the losers are deleted,
     * so a loser here never wins later. The replica its owner is attached to tells it, once. */
    for (uint32_t i = 0; i < k->n; i++) {
        reg_entry *e = reg_key_at(k, i);
        if (e != best && !e->exited && reg_responsible(c, e))
            reg_conflict(c, e, &best->pid);
    }
}

void reg_index_resolve(reg_core *c, bool all_contested)
{
    /* Dirty keys first: their entries just changed. A key is freed once nothing refers to it. */
    for (size_t i = 0; i < c->ndirty; i++) {
        reg_key *k = c->dirty[i];
        k->dirty = false;
        resolve(c, k);
        if (!k->n && !k->contested)
            key_free(c, k);
    }
    c->ndirty = 0;
    size_t keep = 0;
    for (size_t i = 0; i < c->ncont; i++) {
        reg_key *k = c->contested[i];
        if (k->n < 2) {
            k->contested = false;
            if (!k->n && !k->dirty)
                key_free(c, k);
            continue;
        }
        if (all_contested)
            resolve(c, k);
        c->contested[keep++] = k;
    }
    c->ncont = keep;
}

void reg_index_free(reg_core *c)
{
    for (size_t i = 0; i < c->keys.cap; i++) {
        if (!hc_hmap_live(&c->keys, i))
            continue;
        reg_key *k = c->keys.vals[i];
        for (uint32_t j = 0; k->more && j < k->more->n; j++)
            free(k->more->v[j]);
        free(k->more);
        free(k);
    }
    hc_hmap_free(&c->keys);
    free(c->dirty);
    free(c->contested);
}
