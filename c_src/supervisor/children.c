/* children.c — the children index and what this replica does about each child (docs/supervisor.md §5):
 * restarting its own C workers by restart type and intensity, taking over orphans (records whose member died,
 * left or relinquished them, or that name this replica without it running them), moving children when
 * placement changed under active redistribution, and stopping duplicates (a worker we run whose record now
 * names another member). */
#include <stdlib.h>
#include <string.h>

#include "hordec/hc_log.h"
#include "supervisor/sup.h"

sup_child *sup_child_get(sup_core *c, uint64_t id, bool create)
{
    sup_child *ch = hc_hmap_get(&c->children, id);
    if (ch || !create)
        return ch;
    ch = calloc(1, sizeof *ch);
    if (!ch)
        return NULL;
    ch->id = id;
    if (hc_hmap_put(&c->children, id, ch)) {
        free(ch);
        return NULL;
    }
    return ch;
}

sup_child *sup_child_by_pid(const sup_core *c, const hc_pid *pid)
{
    size_t pos = 0;
    sup_child *ch;
    while ((ch = hc_hmap_next(&c->by_pid, hc_pid_hash(pid), &pos)))
        if (hc_pid_eq(&ch->pid, pid))
            return ch;
    return NULL;
}

/* Forgets a child nothing refers to any more. */
static void maybe_forget(sup_core *c, sup_child *ch)
{
    if (ch->has_record || ch->running || ch->op)
        return;
    hc_hmap_del(&c->children, ch->id, ch);
    free(ch);
}

void sup_child_rescan(sup_core *c, uint64_t id)
{
    if (hc_array_reserve((void **)&c->rescan, &c->caprescan, c->nrescan + 1, sizeof *c->rescan, 16))
        c->rescan_all = true; /* out of memory for the list: look at everything instead */
    else
        c->rescan[c->nrescan++] = id;
}

uint64_t sup_new_id(sup_core *c)
{
    for (;;) {
        /* splitmix64 of (replica id, counter): unique per replica, spread across replicas */
        uint64_t z = c->replica_id + 0x9E3779B97F4A7C15ull * ++c->next_id;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z = (z ^ (z >> 31)) & ((1ull << 63) - 1);
        if (z && !hc_hmap_get(&c->children, z))
            return z;
    }
}

void sup_child_event(sup_core *c, uint64_t id, const uint8_t *val, size_t len, hc_time now)
{
    sup_child_val v;
    if (val && sup_parse_child(val, len, &v)) {
        c->ignored++;
        val = NULL;
    }
    sup_child *ch = sup_child_get(c, id, val != NULL);
    if (!ch)
        return;
    if (ch->has_record && ch->m_name)
        hc_hmap_del(&c->by_pid, hc_pid_hash(&ch->pid), ch);
    bool moved = !val || v.m_name != ch->m_name || v.m_node != ch->m_node;
    if (val) {
        if (!ch->has_record)
            c->n_children++;
        ch->has_record = true;
        ch->kind = v.kind;
        ch->restart = v.restart;
        ch->hash = v.hash;
        ch->type_hash = v.type_hash;
        ch->m_name = v.m_name;
        ch->m_node = v.m_node;
        ch->pid = v.pid;
        if (ch->m_name && hc_hmap_put(&c->by_pid, hc_pid_hash(&ch->pid), ch))
            c->ignored++; /* out of memory: terminate_child cannot find it by pid */
    } else if (ch->has_record) {
        ch->has_record = false;
        c->n_children--;
    }
    if (moved)
        ch->moving = false;
    ch->parked = false; /* the record changed: worth another look */
    /* A duplicate: the record no longer says this replica runs it (another member took it over while we were
     * cut off, or it was deleted). The record decides; our copy stops. */
    if (ch->running && (!ch->has_record || !sup_is_self(c, ch->m_name, ch->m_node))) {
        sup_worker_stop(c, ch, "shutdown", false);
        c->dup_stopped++;
    }
    sup_child_rescan(c, id);
    maybe_forget(c, ch);
    (void)now;
}

/* ------------------------------------------------------------------ our C workers */

/* The ring holds the times of the latest max_restarts restarts: one more is allowed unless all of them fall
 * within the last max_seconds (as a supervisor's intensity counts). */
static bool restarts_exhausted(sup_core *c, uint64_t now_ms)
{
    uint64_t window = (uint64_t)c->opt.max_seconds * 1000;
    size_t max = c->opt.max_restarts;
    if (!max)
        return true;
    if (c->caprestarts != max) { /* the option changed: start counting afresh */
        uint64_t *r = realloc(c->restarts, max * sizeof *r);
        if (!r)
            return false; /* out of memory: restart rather than lose the child */
        c->restarts = r;
        c->caprestarts = max;
        c->nrestarts = 0;
    }
    if (c->nrestarts < max)
        return false;
    uint64_t oldest = c->restarts[c->nrestarts % max]; /* the slot the next restart overwrites */
    return now_ms - oldest < window;
}

static void note_restart(sup_core *c, uint64_t now_ms)
{
    if (c->caprestarts)
        c->restarts[c->nrestarts++ % c->caprestarts] = now_ms;
}

void sup_worker_stop(sup_core *c, sup_child *ch, const char *reason_atom, bool redistribution)
{
    if (!ch->running)
        return;
    sup_demonitor(c, ch->mon);
    hc_hmap_del(&c->mons, ch->mon, ch);
    ch->running = false;
    ch->mon = 0;
    c->n_running--;
    hc_buf a = {0};
    hc_enc_tuple_header(&a, 3);
    hc_enc_atom_cstr(&a, "stop_worker");
    hc_enc_pid(&a, &ch->local_pid);
    if (redistribution) {
        hc_enc_tuple_header(&a, 2);
        hc_enc_atom_cstr(&a, "shutdown");
        hc_enc_atom_cstr(&a, "process_redistribution");
    } else {
        hc_enc_atom_cstr(&a, reason_atom);
    }
    sup_local_action(c, &a);
}

/* normal, shutdown and {shutdown, _} end a transient child for good. */
static bool clean_exit(const uint8_t *r, size_t len)
{
    size_t i = 0;
    uint32_t a;
    if ((hc_dec_is_atom(r, len, &i, "normal") || hc_dec_is_atom(r, len, &i, "shutdown")) && i == len)
        return true;
    i = 0;
    return hc_dec_tuple_header(r, len, &i, &a) == HC_OK && a == 2 && hc_dec_is_atom(r, len, &i, "shutdown");
}

bool sup_record_get(sup_core *c, uint64_t id, sup_child_val *v)
{
    hc_buf *k = &c->scratch;
    hc_buf_reset(k);
    sup_enc_key_child(k, id);
    const uint8_t *raw;
    size_t rl;
    return !k->err && hc_crdt_get(c->crdt, k->data, k->len, &raw, &rl) && sup_parse_child(raw, rl, v) == HC_OK;
}

void sup_worker_down(sup_core *c, sup_child *ch, const uint8_t *reason, size_t len, hc_time now)
{
    hc_hmap_del(&c->mons, ch->mon, ch);
    ch->running = false;
    ch->mon = 0;
    c->n_running--;
    if (!ch->has_record || !sup_is_self(c, ch->m_name, ch->m_node) || c->shutting_down) {
        maybe_forget(c, ch);
        return;
    }
    bool restart = ch->restart == SUP_PERMANENT || (ch->restart == SUP_TRANSIENT && !clean_exit(reason, len));
    if (!restart) {
        sup_delete_child(c, ch->id, now);
        return;
    }
    if (restarts_exhausted(c, now.mono_ms)) {
        /* Docs §5: past the intensity this child is given up; the others keep running (Horde #269). */
        hc_log_warn("%s: child %llu exceeded max_restarts %u in %u s: not restarted", hc_atom_name(c->name),
                    (unsigned long long)ch->id, c->opt.max_restarts, c->opt.max_seconds);
        c->given_up++;
        sup_delete_child(c, ch->id, now);
        return;
    }
    note_restart(c, now.mono_ms);
    c->restarted_local++;
    sup_child_val v;
    sup_member *self = sup_member_self(c);
    if (self && sup_record_get(c, ch->id, &v))
        sup_start_on(c, self, ch->id, &v, false, 0, now);
}

/* ------------------------------------------------------------------ orphans, moves */

/* Whether this replica may act now on an orphan (SUP_QUORUM_SETTLE_MS): always, except under
 * UniformQuorumDistribution until it has had quorum for the settle time, and, for an orphan of a dead member,
 * until it has seen that member dead for the settle time as well. A partition's connections fail one at a time:
 * if quorum goes meanwhile the minority side never acts, the majority acts a moment later. And a replica that has
 * just regained quorum holds its view of before the heal: the majority's takeovers reach it within the settle
 * time, instead of it restarting what it sees as its own children a moment before. */
bool sup_settled(sup_core *c, sup_member *dead, hc_time now)
{
    if (c->opt.distribution != HC_SUP_QUORUM)
        return true;
    uint64_t from = c->quorum_since;
    if (dead) {
        if (!dead->dead_seen)
            dead->dead_seen = now.mono_ms ? now.mono_ms : 1;
        if (dead->dead_seen > from)
            from = dead->dead_seen;
    }
    uint64_t due = from + SUP_QUORUM_SETTLE_MS;
    if (now.mono_ms >= due)
        return true;
    if (due < c->settle_deadline)
        c->settle_deadline = due;
    return false;
}

/* A record of a child this replica terminated came back (ended.c): stop the copy it names, delete the record. */
static void terminate_again(sup_core *c, sup_child *ch, hc_time now)
{
    sup_member *m = ch->m_name ? sup_member_get(c, ch->m_name, ch->m_node, false) : NULL;
    c->terminated_again++;
    if (m && m->has_status && !m->removed && sup_member_status(c, m) != SUP_ST_DEAD) {
        /* The member answers (ch->op waits for it); one that cannot be asked now (no connection to its replica)
         * is asked when a change to the record or the membership brings the child here again. */
        sup_terminate_on(c, m, ch, NULL, now);
        return;
    }
    sup_delete_child(c, ch->id, now); /* relinquished, or its member is gone: nothing runs it */
}

static void examine(sup_core *c, sup_child *ch, hc_time now)
{
    if (!ch->has_record) {
        maybe_forget(c, ch); /* a start that failed or was refused: nothing refers to it any more */
        return;
    }
    if (ch->op || ch->parked || c->shutting_down || !c->quorum)
        return;
    if (sup_ended_has(c, ch->id, now)) {
        terminate_again(c, ch, now);
        return;
    }
    if (ch->running && ch->m_name && sup_is_self(c, ch->m_name, ch->m_node) && !hc_pid_eq(&ch->pid, &ch->local_pid)) {
        /* Our worker runs it but the record names another pid of ours: the replica that asked us to start it wrote
         * the first pid when our answer reached it, after we had restarted the worker (found by the simulator).
         * What runs here is the truth, as a BEAM member's child_restarted is for its children. */
        sup_child_val v;
        if (sup_record_get(c, ch->id, &v)) {
            v.pid = ch->local_pid;
            sup_write_child(c, ch->id, &v, now);
        }
        return;
    }
    sup_member *m = ch->m_name ? sup_member_get(c, ch->m_name, ch->m_node, false) : NULL;
    bool relinquished = !ch->m_name;
    /* Left: its {member, M} says removed. A record naming a member we know nothing of yet (or only its status)
     * is not ours to judge: sync and repair deliver keys in no particular order, and the replica that knows the
     * member acts for it. */
    bool gone = ch->m_name && m && m->removed;
    if (ch->m_name && (!m || (!m->listed && !m->removed && !m->has_status))) {
        /* known only from records: after SUP_UNKNOWN_MEMBER_MS it is gone (its own keys were lost) */
        if (!m && (m = sup_member_get(c, ch->m_name, ch->m_node, true)))
            c->members_changed = false; /* a stub: nothing about placement changed */
        if (m && !m->unknown_since)
            m->unknown_since = now.mono_ms ? now.mono_ms : 1;
        uint64_t due = m ? m->unknown_since + SUP_UNKNOWN_MEMBER_MS : HC_NO_DEADLINE;
        if (m && now.mono_ms >= due)
            gone = true;
        else if (due < c->unknown_deadline)
            c->unknown_deadline = due;
    }
    bool dead = m && m->has_status && sup_member_status(c, m) == SUP_ST_DEAD;
    bool lost_here = ch->m_name && sup_is_self(c, ch->m_name, ch->m_node) && !ch->running;
    if (relinquished || gone || dead || lost_here) {
        if (!sup_settled(c, dead ? m : NULL, now))
            return; /* looked at again when it has settled (core_tick) */
        if (!relinquished && ch->restart == SUP_TEMPORARY) {
            sup_delete_child(c, ch->id, now); /* its member died: a temporary child is not restarted */
            return;
        }
        const char *why;
        sup_member *to = sup_place(c, ch->kind, ch->hash, ch->type_hash, &why);
        sup_child_val v;
        if (!to || !sup_responsible_here(c, to) || !sup_record_get(c, ch->id, &v)) {
            /* A record naming this replica, which does not run it (it restarted, or lost quorum and stopped it):
             * only this replica knows, every other one sees it running here. Hand it to the member placement
             * chooses (found by the simulator: nobody restarted such a child). */
            if (to && lost_here && sup_record_get(c, ch->id, &v)) {
                v.m_name = v.m_node = 0;
                sup_write_child(c, ch->id, &v, now);
            }
            return; /* no member can take it now (it waits), or another replica acts */
        }
        c->taken_over++;
        sup_start_on(c, to, ch->id, &v, false, 0, now);
        return;
    }
    if (!c->opt.active_redistribution || !m || sup_member_status(c, m) != SUP_ST_ALIVE || !sup_responsible_here(c, m))
        return;
    const char *why;
    sup_member *to = sup_place(c, ch->kind, ch->hash, ch->type_hash, &why);
    if (!to || to == m)
        return;
    if (sup_is_self(c, m->name, m->node)) {
        sup_child_val v;
        if (!ch->running || !sup_record_get(c, ch->id, &v))
            return;
        sup_worker_stop(c, ch, NULL, true);
        v.m_name = v.m_node = 0;
        sup_write_child(c, ch->id, &v, now); /* relinquished: its new member adopts it */
    } else if (!ch->moving) {
        hc_buf b = {0};
        hc_enc_tuple_header(&b, 3);
        hc_enc_atom_cstr(&b, "$hordec_sup");
        hc_enc_atom_cstr(&b, "move");
        hc_enc_ulong(&b, ch->id);
        sup_send_pid(c, &m->st.pid, &b);
        ch->moving = true;
    }
}

void sup_children_settle(sup_core *c, hc_time now)
{
    if (c->rescan_all) {
        c->rescan_all = false;
        c->nrescan = 0;
        /* examine() may add or forget children: walk a copy of the ids */
        size_t n = 0, k = 0;
        for (size_t i = 0; i < c->children.cap; i++)
            n += hc_hmap_live(&c->children, i);
        uint64_t *ids = malloc((n ? n : 1) * sizeof *ids);
        if (!ids)
            return;
        for (size_t i = 0; i < c->children.cap; i++)
            if (hc_hmap_live(&c->children, i))
                ids[k++] = ((sup_child *)c->children.vals[i])->id;
        for (size_t i = 0; i < k; i++) {
            sup_child *ch = sup_child_get(c, ids[i], false);
            if (ch)
                examine(c, ch, now);
        }
        free(ids);
        return;
    }
    while (c->nrescan) {
        uint64_t *ids = c->rescan;
        size_t n = c->nrescan;
        c->rescan = NULL;
        c->nrescan = c->caprescan = 0;
        for (size_t i = 0; i < n; i++) {
            sup_child *ch = sup_child_get(c, ids[i], false);
            if (ch)
                examine(c, ch, now);
        }
        free(ids);
        if (c->rescan_all)
            break;
    }
}

void sup_children_free(sup_core *c)
{
    for (size_t i = 0; i < c->children.cap; i++)
        if (hc_hmap_live(&c->children, i))
            free(c->children.vals[i]);
    hc_hmap_free(&c->children);
    hc_hmap_free(&c->by_pid);
    hc_hmap_free(&c->mons);
    free(c->rescan);
    free(c->restarts);
}
