/* owners.c — who vouches for whom (docs/registry.md §5): client attach records, the pids this replica monitors,
 * and membership.
 *
 * One reg_watch per pid that matters here: a client that owns entries or has a {client, C} record, or a
 * process of this node registered with Owner hordec. The replica monitors
 *   - a client whose record names this replica (it acts on that client's DOWN: the client is gone, so are its
 *     entries and its record);
 *   - a client that owns entries but has no record anywhere (an entry can outlive the record that vouched for
 *     it when a delete and a write crossed; if the client is dead — noproc — nobody else would remove them);
 *   - a process of this node registered with Owner hordec.
 * Everything else is another replica's business. After a DOWN the pid is not monitored again ("gone") unless a
 * record naming this replica appears, so an unreachable node cannot make the monitor loop. */
#include <stdlib.h>
#include <string.h>

#include "hordec/hc_crdt_winner.h"
#include "registry/reg.h"

reg_watch *reg_watch_get(reg_core *c, const hc_pid *pid, bool create)
{
    uint64_t h = hc_pid_hash(pid);
    size_t pos = 0;
    reg_watch *w;
    while ((w = hc_hmap_next(&c->watches, h, &pos)))
        if (hc_pid_eq(&w->pid, pid))
            return w;
    if (!create)
        return NULL;
    w = calloc(1, sizeof *w);
    if (!w || hc_hmap_put(&c->watches, h, w)) {
        free(w);
        return NULL;
    }
    w->pid = *pid;
    return w;
}

bool reg_watch_is_ours(const reg_core *c, const reg_watch *w)
{
    return w->has_record && w->rec_name == c->name && w->rec_node == c->node;
}

static bool needs_monitor(const reg_core *c, const reg_watch *w)
{
    if (w->gone || w->dead)
        return false;
    return reg_watch_is_ours(c, w) || (!w->has_record && w->n_owned) || w->n_local;
}

void reg_watch_sync(reg_core *c, reg_watch *w)
{
    bool need = needs_monitor(c, w);
    if (need && !w->mon) {
        uint64_t id = ++c->next_mon;
        if (hc_hmap_put(&c->mons, id, w))
            return; /* out of memory: not watched; the next change of this pid tries again */
        w->mon = id;
        reg_queue_monitor(c, &w->pid, id);
    } else if (!need && w->mon) {
        reg_queue_demonitor(c, w->mon);
        hc_hmap_del(&c->mons, w->mon, w);
        w->mon = 0;
    }
    if (!w->mon && !w->has_record && !w->n_owned && !w->n_local) {
        hc_hmap_del(&c->watches, hc_pid_hash(&w->pid), w);
        free(w->locals);
        free(w);
    }
}

bool reg_responsible(reg_core *c, const reg_entry *e)
{
    if (e->local)
        return e->pid.node == c->node;
    reg_watch *w = reg_watch_get(c, &e->owner, false);
    return w && reg_watch_is_ours(c, w);
}

void reg_record_set(reg_core *c, const hc_pid *client, bool present, hc_atom name, hc_atom node)
{
    reg_watch *w = reg_watch_get(c, client, present);
    if (!w)
        return;
    bool was_ours = reg_watch_is_ours(c, w);
    w->has_record = present;
    w->rec_name = present ? name : 0;
    w->rec_node = present ? node : 0;
    if (reg_watch_is_ours(c, w) && !was_ours)
        w->gone = false;      /* attached (again) here: watch it */
    if (present && w->dead) { /* the record of a client known dead, handed back late: it goes too */
        hc_buf *b = &c->scratch;
        hc_buf_reset(b);
        reg_enc_key_client(b, client);
        if (!b->err)
            reg_queue_delete(c, b->data, b->len);
    }
    c->recheck = true; /* who answers for this client's conflicts may have changed */
    reg_watch_sync(c, w);
}

/* ------------------------------------------------------------------ dropping entries */

/* Calls fn for every entry the client `owner` vouches for (not a local one) or, with owner NULL, for every local
 * entry of a process of `node` (0: of any node); until fn returns true (returned). */
static bool each_entry(reg_core *c, const hc_pid *owner, hc_atom node,
                       bool (*fn)(reg_core *, const reg_entry *, void *), void *ud)
{
    for (size_t i = 0; i < c->keys.cap; i++) {
        if (!hc_hmap_live(&c->keys, i))
            continue;
        reg_key *k = c->keys.vals[i];
        for (uint32_t j = 0; j < k->n; j++) {
            const reg_entry *e = reg_key_at(k, j);
            bool match = owner ? !e->local && hc_pid_eq(&e->owner, owner) : e->local && (!node || e->pid.node == node);
            if (match && fn(c, e, ud))
                return true;
        }
    }
    return false;
}

/* Queues the delete of e's CRDT key (applied once the events are drained, so the index can be walked meanwhile). */
void reg_queue_entry_delete(reg_core *c, const reg_entry *e)
{
    hc_buf *b = &c->scratch;
    hc_buf_reset(b);
    reg_enc_ckey_reg(b, e->key->bytes, e->key->len, &e->pid);
    if (!b->err)
        reg_queue_delete(c, b->data, b->len);
}

static bool delete_reg(reg_core *c, const reg_entry *e, void *ud)
{
    (void)ud;
    reg_queue_entry_delete(c, e);
    return false;
}

void reg_drop_owned(reg_core *c, const hc_pid *owner, bool record)
{
    each_entry(c, owner, 0, delete_reg, NULL);
    if (record) {
        hc_buf *b = &c->scratch;
        hc_buf_reset(b);
        reg_enc_key_client(b, owner);
        if (!b->err)
            reg_queue_delete(c, b->data, b->len);
    }
}

static bool vouched(const reg_entry *e, bool local, const hc_pid *owner)
{
    return local ? e->local : !e->local && hc_pid_eq(&e->owner, owner);
}

void reg_drop_pid(reg_core *c, const hc_pid *pid, bool local, const hc_pid *owner, hc_iter *keys)
{
    if (keys) {
        hc_span key;
        while (hc_iter_next(keys, &key)) {
            const reg_entry *e = reg_entry_find(c, key.p, key.len, pid);
            if (e && vouched(e, local, owner))
                delete_reg(c, e, NULL);
        }
    } else if (local && pid->node == c->node) {
        reg_watch *w = reg_watch_get(c, pid, false);
        for (uint32_t i = 0; w && i < w->n_local; i++) /* deletes are queued: the list stays as it is meanwhile */
            delete_reg(c, w->locals[i], NULL);
    } else {
        reg_drop_pids_scan(c, pid, 1, local, owner);
    }
}

/* Deletes e if its pid is in the set (an hc_hmap of pids by hash). */
static bool delete_if_listed(reg_core *c, const reg_entry *e, void *ud)
{
    const hc_hmap *set = ud;
    size_t pos = 0;
    const hc_pid *p;
    while ((p = hc_hmap_next(set, hc_pid_hash(&e->pid), &pos)))
        if (hc_pid_eq(p, &e->pid)) {
            delete_reg(c, e, NULL);
            break;
        }
    return false;
}

int reg_drop_pids_scan(reg_core *c, const hc_pid *pids, size_t n, bool local, const hc_pid *owner)
{
    hc_hmap set = {0};
    for (size_t i = 0; i < n; i++)
        if (hc_hmap_put(&set, hc_pid_hash(&pids[i]), (void *)&pids[i])) {
            hc_hmap_free(&set);
            return HC_ENOMEM;
        }
    each_entry(c, local ? NULL : owner, 0, delete_if_listed, &set);
    hc_hmap_free(&set);
    return HC_OK;
}

/* Whether this replica's {client, C} record is stale: an entry of C's was written by another replica after it
 * (the element that wins there has another writer and a later stamp). A client writes only through the replica
 * it is attached to, so it has attached elsewhere since, and that replica's newer record has not reached us yet
 * — a replica that restarted repairs keys in hash order, not in the order they were written (the simulator found
 * a restarted replica deleting the live entries a client had just written through another one). A later stamp
 * is no proof, though: two writes made by replicas that had not seen each other's are ordered by their clocks,
 * which differ. So a DOWN not acted on for this reason is looked at again later (reg_core.suspects). */
typedef struct rec_stamp {
    uint64_t rid, hlc;
} rec_stamp;

static bool written_since(reg_core *c, const reg_entry *e, void *ud)
{
    const rec_stamp *r = ud;
    hc_buf *b = &c->scratch;
    hc_buf_reset(b);
    reg_enc_ckey_reg(b, e->key->bytes, e->key->len, &e->pid);
    uint64_t rid, hlc;
    return !b->err && hc_crdt_get_winner(c->crdt, b->data, b->len, &rid, &hlc) && rid != r->rid && hlc > r->hlc;
}

static bool record_superseded(reg_core *c, const hc_pid *client)
{
    hc_buf *b = &c->scratch;
    hc_buf_reset(b);
    reg_enc_key_client(b, client);
    rec_stamp r;
    if (b->err || !hc_crdt_get_winner(c->crdt, b->data, b->len, &r.rid, &r.hlc))
        return false;
    return each_entry(c, client, 0, written_since, &r);
}

void reg_watch_down(reg_core *c, uint64_t mon, bool noconnection, uint64_t now_ms)
{
    reg_watch *w = hc_hmap_get(&c->mons, mon);
    if (!w)
        return; /* demonitored meanwhile */
    hc_hmap_del(&c->mons, mon, w);
    w->mon = 0;
    w->gone = true;
    w->dead = w->dead || !noconnection;
    if (w->n_local)
        reg_drop_pid(c, &w->pid, true, NULL, NULL);
    if (reg_watch_is_ours(c, w)) {
        /* also on noconnection (docs/registry.md §5), unless the record that makes it ours is stale: the replica
         * the client attached to since acts on its death (noproc: dead for sure, whoever vouches) */
        if (noconnection && record_superseded(c, &w->pid)) {
            c->stale_records++;
            if (!hc_array_reserve((void **)&c->suspects, &c->capsuspects, c->nsuspects + 1, sizeof *c->suspects, 4))
                c->suspects[c->nsuspects++] = (struct reg_suspect){w->pid, now_ms + REG_ADOPT_GRACE_MS};
        } else {
            reg_drop_owned(c, &w->pid, true);
        }
    } else if (!w->has_record && w->n_owned && !noconnection)
        reg_drop_owned(c, &w->pid, false); /* dead for sure, and nobody else vouches for it */
    reg_watch_sync(c, w);
}

void reg_suspects_due(reg_core *c, uint64_t now_ms)
{
    size_t n = 0; /* in the order they came, so by `at` */
    while (n < c->nsuspects && c->suspects[n].at <= now_ms)
        n++;
    for (size_t i = 0; i < n; i++) {
        reg_watch *w = reg_watch_get(c, &c->suspects[i].pid, false);
        if (w && w->gone && !w->mon && reg_watch_is_ours(c, w)) { /* still ours, and not watched again since */
            c->stale_acted++;
            reg_drop_owned(c, &w->pid, true);
        }
    }
    memmove(c->suspects, c->suspects + n, (c->nsuspects - n) * sizeof *c->suspects);
    c->nsuspects -= n;
}

/* ------------------------------------------------------------------ membership */

/* Erlang term order of {Name, Node}: atoms compare by their text. */
static int atom_cmp(hc_atom a, hc_atom b)
{
    size_t la = hc_atom_len(a), lb = hc_atom_len(b);
    int r = memcmp(hc_atom_name(a), hc_atom_name(b), la < lb ? la : lb);
    return r ? r : (la > lb) - (la < lb);
}

static int member_cmp(const reg_member *a, const reg_member *b)
{
    int r = atom_cmp(a->name, b->name);
    return r ? r : atom_cmp(a->node, b->node);
}

bool reg_is_member(const reg_core *c, hc_atom name, hc_atom node)
{
    for (size_t i = 0; i < c->nmem; i++)
        if (c->members[i].name == name && c->members[i].node == node)
            return true;
    return false;
}

/* A member left: drop what was attached through it — the entries of its clients and their records, and (if it
 * was this registry's replica on that node) the entries of that node's own processes — as Horde drops a
 * departed member's keys. Every replica does this when it sees the removal. */
static void member_left(reg_core *c, hc_atom name, hc_atom node)
{
    for (size_t i = 0; i < c->watches.cap; i++) {
        if (!hc_hmap_live(&c->watches, i))
            continue;
        reg_watch *w = c->watches.vals[i];
        if (w->has_record && w->rec_name == name && w->rec_node == node)
            reg_drop_owned(c, &w->pid, true);
    }
    if (name == c->name)
        each_entry(c, NULL, node, delete_reg, NULL);
}

void reg_member_event(reg_core *c, hc_atom name, hc_atom node, bool present)
{
    reg_member m = {name, node};
    size_t i = 0;
    while (i < c->nmem && member_cmp(&c->members[i], &m) < 0)
        i++;
    bool here = i < c->nmem && c->members[i].name == name && c->members[i].node == node;
    if (present && !here) {
        if (hc_array_reserve((void **)&c->members, &c->capmem, c->nmem + 1, sizeof *c->members, 4))
            return;
        memmove(&c->members[i + 1], &c->members[i], (c->nmem - i) * sizeof *c->members);
        c->members[i] = m;
        c->nmem++;
        c->members_changed = true;
    } else if (!present && here) {
        memmove(&c->members[i], &c->members[i + 1], (c->nmem - i - 1) * sizeof *c->members);
        c->nmem--;
        c->members_changed = true;
        member_left(c, name, node);
    }
}

void reg_owners_free(reg_core *c)
{
    for (size_t i = 0; i < c->watches.cap; i++)
        if (hc_hmap_live(&c->watches, i)) {
            reg_watch *w = c->watches.vals[i];
            free(w->locals);
            free(w);
        }
    hc_hmap_free(&c->watches);
    hc_hmap_free(&c->mons);
    free(c->suspects);
    free(c->members);
}
