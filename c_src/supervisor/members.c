/* members.c — members and their statuses (docs/supervisor.md §1, §3): the index built from the engine's
 * events, the monitors this replica keeps on every live member, self-healing of statuses, quorum, and the two
 * placement rings (members able to run C workers, members able to run BEAM children), rebuilt only when
 * membership or a status changes. */
#include <stdlib.h>
#include <string.h>

#include "supervisor/sup.h"

bool sup_is_self(const sup_core *c, hc_atom name, hc_atom node) { return name == c->name && node == c->node; }

sup_member *sup_member_get(sup_core *c, hc_atom name, hc_atom node, bool create)
{
    for (size_t i = 0; i < c->nmem; i++)
        if (c->members[i].name == name && c->members[i].node == node)
            return &c->members[i];
    if (!create || hc_array_reserve((void **)&c->members, &c->capmem, c->nmem + 1, sizeof *c->members, 8))
        return NULL;
    sup_member *m = &c->members[c->nmem++];
    memset(m, 0, sizeof *m);
    m->name = name;
    m->node = node;
    c->members_changed = true;
    return m;
}

sup_member *sup_member_self(sup_core *c) { return sup_member_get(c, c->name, c->node, true); }

void sup_member_event(sup_core *c, const sup_ckey *k, const uint8_t *val, size_t len)
{
    sup_member *m = sup_member_get(c, k->name, k->node, val != NULL);
    if (!m)
        return;
    c->members_changed = true;
    if (val)
        m->unknown_since = 0;
    if (k->kind == SUP_K_MEMBER) {
        size_t i = 0;
        m->auto_join = val && hc_dec_is_atom(val, len, &i, "auto");
        i = 0;
        m->removed = val && hc_dec_is_atom(val, len, &i, "removed");
        m->listed = val && !m->removed;
        if (!m->listed)
            sup_ops_fail_member(c, m->name, m->node, (hc_time){0, 0});
        return;
    }
    sup_status_val v;
    if (val && sup_parse_status(val, len, &v)) {
        c->ignored++;
        val = NULL;
    }
    bool was_usable = m->has_status && m->st.status == SUP_ST_ALIVE;
    m->has_status = val != NULL;
    if (val) {
        hc_buf_reset(&m->types_raw);
        hc_buf_append(&m->types_raw, v.types.p, v.types.len);
        if (m->types_raw.err) { /* out of memory: keep the member, as a replica without types */
            hc_buf_reset(&m->types_raw);
            hc_enc_nil(&m->types_raw);
            v.ntypes = 0;
        }
        m->st = v;
        m->st.types = (hc_span){m->types_raw.data, m->types_raw.len};
    }
    if (was_usable && (!m->has_status || m->st.status != SUP_ST_ALIVE))
        sup_ops_fail_member(c, m->name, m->node, (hc_time){0, 0});
}

sup_status sup_member_status(const sup_core *c, const sup_member *m)
{
    if (sup_is_self(c, m->name, m->node))
        return c->shutting_down ? SUP_ST_SHUTTING_DOWN : SUP_ST_ALIVE;
    if (!m->has_status)
        return SUP_ST_UNINIT;
    if (m->st.status == SUP_ST_DEAD && m->mon && hc_pid_eq(&m->mon_pid, &m->st.pid))
        return SUP_ST_ALIVE;
    return m->st.status;
}

void sup_members_node_up(sup_core *c, hc_atom node)
{
    /* A member lost to noconnection may only have been on the far side of a partition: when any node comes back
     * (a healing partition brings back our neighbours first), check those again too. Their own nodes may stay
     * unconnected until something connects to them, and a replica that regains quorum must not act on their old
     * deaths meanwhile: it would delete their temporary children and restart the rest on its side. */
    for (size_t i = 0; i < c->nmem; i++) {
        sup_member *m = &c->members[i];
        if (m->has_down_pid && (m->down_pid.node == node || m->down_cut_off)) {
            m->has_down_pid = false;
            c->members_changed = true; /* monitor it again (sup_members_settle) */
        }
    }
}

bool sup_member_usable(const sup_core *c, const sup_member *m, int kind)
{
    return m->listed && m->has_status && sup_member_status(c, m) == SUP_ST_ALIVE && m->st.kind == kind;
}

bool sup_responsible_here(const sup_core *c, const sup_member *m)
{
    if (!m->has_status)
        return false;
    if (m->st.kind == SUP_KIND_C)
        return sup_is_self(c, m->name, m->node);
    return sup_is_self(c, m->st.via_name, m->st.via_node);
}

/* ------------------------------------------------------------------ rings and quorum */

static int cmp_ref(const void *a, const void *b) { return sup_member_cmp(a, b); }

/* Rebuilds the ring of the alive members eligible for `kind`, in Erlang term order of {Name, Node} (the order
 * Horde hands members to libring, which decides who keeps a colliding point). */
static void build_ring(sup_core *c, int kind, sup_ring *ring, size_t **idx)
{
    sup_ring_free(ring);
    free(*idx);
    *idx = NULL;
    size_t n = 0;
    for (size_t i = 0; i < c->nmem; i++)
        n += sup_member_usable(c, &c->members[i], kind);
    if (!n)
        return;
    sup_member_ref *refs = malloc(n * sizeof *refs);
    size_t *map = malloc(n * sizeof *map);
    if (!refs || !map) {
        free(refs);
        free(map);
        return; /* out of memory: no ring, placement answers no_alive_nodes until the next change */
    }
    n = 0;
    for (size_t i = 0; i < c->nmem; i++)
        if (sup_member_usable(c, &c->members[i], kind))
            refs[n++] = (sup_member_ref){c->members[i].name, c->members[i].node};
    qsort(refs, n, sizeof *refs, cmp_ref);
    for (size_t j = 0; j < n; j++)
        map[j] = (size_t)(sup_member_get(c, refs[j].name, refs[j].node, false) - c->members);
    if (sup_ring_build(ring, refs, n)) {
        free(map);
        map = NULL;
    }
    free(refs);
    *idx = map;
}

static bool compute_quorum(sup_core *c)
{
    if (c->opt.distribution != HC_SUP_QUORUM)
        return true;
    size_t n = 0;
    for (size_t i = 0; i < c->nmem; i++)
        n += c->members[i].listed;
    if (!n)
        return false;
    sup_member_ref *refs = malloc(n * sizeof *refs);
    sup_status *st = malloc(n * sizeof *st);
    bool q = false;
    if (refs && st) {
        n = 0;
        for (size_t i = 0; i < c->nmem; i++) {
            sup_member *m = &c->members[i];
            if (!m->listed)
                continue;
            refs[n] = (sup_member_ref){m->name, m->node};
            st[n++] = sup_member_status(c, m);
        }
        q = sup_has_quorum(SUP_DIST_QUORUM, refs, st, n);
    }
    free(refs);
    free(st);
    return q;
}

/* The first member clockwise from the ring position of `hash` that has worker type `type` (libring's
 * key_to_nodes walk, restricted to the members that can run the child). -1 if none has it. */
static int owner_with_type(const sup_core *c, const sup_ring *r, const size_t *map, uint64_t hash, uint64_t type)
{
    if (!r->n)
        return -1;
    uint32_t h = sup_phash2_uint(hash);
    size_t lo = 0, hi = r->n;
    while (lo < hi) { /* the first point >= h */
        size_t mid = lo + (hi - lo) / 2;
        if (r->points[mid] < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t k = 0; k < r->n; k++) {
        uint32_t o = r->owner[(lo + k) % r->n];
        if (sup_status_has_type(&c->members[map[o]].st, type))
            return (int)o;
    }
    return -1;
}

sup_member *sup_place(sup_core *c, int kind, uint64_t hash, uint64_t type_hash, const char **why)
{
    const sup_ring *ring = kind == SUP_KIND_C ? &c->ring_c : &c->ring_beam;
    const size_t *map = kind == SUP_KIND_C ? c->ring_c_idx : c->ring_beam_idx;
    uint64_t rnd = 0;
    if (c->opt.distribution == HC_SUP_RANDOM) {
        c->rng ^= c->rng << 13; /* xorshift64: deterministic per seed, which the simulator needs */
        c->rng ^= c->rng >> 7;
        c->rng ^= c->rng << 17;
        rnd = c->rng;
    }
    size_t o;
    int rc = sup_choose((sup_dist)c->opt.distribution, ring, c->quorum, hash, rnd, &o);
    if (rc == SUP_ENOQUORUM) {
        *why = "quorum_not_met";
        return NULL;
    }
    if (rc || !map) {
        *why = "no_alive_nodes";
        return NULL;
    }
    if (kind != SUP_KIND_C || sup_status_has_type(&c->members[map[o]].st, type_hash))
        return &c->members[map[o]];
    if (c->opt.distribution == HC_SUP_RANDOM) { /* a random one of those that have the type */
        size_t n = 0, k = 0;
        for (size_t i = 0; i < ring->nmembers; i++)
            n += sup_status_has_type(&c->members[map[i]].st, type_hash);
        for (size_t i = 0; n && i < ring->nmembers; i++)
            if (sup_status_has_type(&c->members[map[i]].st, type_hash) && k++ == rnd % n)
                return &c->members[map[i]];
    } else {
        int t = owner_with_type(c, ring, map, hash, type_hash);
        if (t >= 0)
            return &c->members[map[t]];
    }
    *why = "unknown_worker_type";
    return NULL;
}

/* ------------------------------------------------------------------ monitors and self-healing */

/* True when our own monitor saw the pid of m's status die, since its node (or any node, for a noconnection) last
 * came back. */
static bool seen_dead(const sup_member *m) { return m->has_down_pid && hc_pid_eq(&m->down_pid, &m->st.pid); }

static void monitor_member(sup_core *c, sup_member *m)
{
    /* A member another replica marked dead stays monitored while our monitor of that pid is up: our own DOWN,
     * not somebody else's, decides that it is gone for us (sup_member_status). A dead mark we have not seen for
     * ourselves — another replica's, or ours from before a partition healed — is checked by monitoring the pid:
     * a live member is alive for us at once, a dead one answers noproc. Without this, both sides' marks from a
     * partition outlive the heal until each member rewrites itself alive, and meanwhile each side restarts the
     * children the other side took over: a third copy of each (found by the partition tests). */
    bool mine_up = m->mon && hc_pid_eq(&m->mon_pid, &m->st.pid);
    bool want =
        m->has_status && (m->st.status != SUP_ST_DEAD || mine_up || !seen_dead(m)) && !sup_is_self(c, m->name, m->node);
    if (m->mon && (!want || !hc_pid_eq(&m->mon_pid, &m->st.pid))) {
        sup_demonitor(c, m->mon);
        m->mon = 0;
    }
    if (want && !m->mon) {
        m->mon = ++c->next_mon;
        m->mon_pid = m->st.pid;
        sup_monitor(c, &m->st.pid, m->mon);
    }
}

void sup_member_down(sup_core *c, uint64_t mon, bool cut_off, hc_time now)
{
    for (size_t i = 0; i < c->nmem; i++) {
        sup_member *m = &c->members[i];
        if (m->mon != mon)
            continue;
        m->mon = 0;
        m->has_down_pid = true;
        m->down_cut_off = cut_off;
        m->down_pid = m->mon_pid;
        if (m->attached && hc_pid_eq(&m->client, &m->mon_pid))
            m->attached = false;
        /* Any replica that sees a member go marks it dead (Horde does the same); a member that is only cut
         * off from us rewrites itself alive when it sees this (sup_members_settle). */
        if (m->has_status && m->st.status != SUP_ST_DEAD && hc_pid_eq(&m->st.pid, &m->mon_pid)) {
            sup_write_status(c, m, SUP_ST_DEAD, now);
            if (m->listed && m->auto_join) /* an auto member leaves with its death, as Horde's :auto does */
                sup_remove_member(c, m->name, m->node, now);
        } else
            c->members_changed = true; /* re-monitor if its pid moved on */
        return;
    }
}

/* Rewrites the statuses this replica speaks for when they are not what it knows: its own, and those of the
 * BEAM members attached to it (another replica that lost sight of them wrote them dead). */
static void heal(sup_core *c, hc_time now)
{
    sup_member *self = sup_member_self(c);
    if (!self)
        return;
    sup_status want = c->shutting_down ? SUP_ST_SHUTTING_DOWN : SUP_ST_ALIVE;
    if (self->listed && (!self->has_status || self->st.status != want || !hc_pid_eq(&self->st.pid, &c->self) ||
                         self->st.kind != SUP_KIND_C))
        sup_write_status(c, self, want, now);
    for (size_t i = 0; i < c->nmem; i++) {
        sup_member *m = &c->members[i];
        if (!m->attached || sup_is_self(c, m->name, m->node))
            continue;
        bool ours = m->has_status && hc_pid_eq(&m->st.pid, &m->client);
        bool marked_dead = ours && m->st.status == SUP_ST_DEAD;
        if (!m->has_status || marked_dead || (ours && !sup_is_self(c, m->st.via_name, m->st.via_node)))
            sup_write_status(c, m,
                             m->has_status && ours && m->st.status == SUP_ST_SHUTTING_DOWN ? SUP_ST_SHUTTING_DOWN
                                                                                           : SUP_ST_ALIVE,
                             now);
        /* It was only cut off from whoever wrote it dead and dropped it. Not only while the status says dead: the
         * delete of its {member, M} may arrive after that status was healed (found by the simulator: the member
         * stayed alive and unlisted, out of placement, for good). */
        if (ours && m->attach_auto && !m->listed)
            sup_put_member(c, m->name, m->node, true, now);
    }
}

/* Forgets members nothing refers to any more (not listed, no status, not attached, not monitored). */
static void compact(sup_core *c)
{
    size_t j = 0;
    for (size_t i = 0; i < c->nmem; i++) {
        sup_member *m = &c->members[i];
        if (!m->listed && !m->removed && !m->has_status && !m->attached && !m->mon && !m->unknown_since) {
            hc_buf_free(&m->types_raw);
            free(m->held_owned);
            continue;
        }
        if (j != i)
            c->members[j] = *m;
        j++;
    }
    c->nmem = j;
}

static void tell_attached(sup_core *c, const char *what)
{
    for (size_t i = 0; i < c->nmem; i++) {
        sup_member *m = &c->members[i];
        if (!m->attached)
            continue;
        hc_buf b = {0};
        hc_enc_tuple_header(&b, 2);
        hc_enc_atom_cstr(&b, "$hordec_sup");
        hc_enc_atom_cstr(&b, what);
        sup_send_pid(c, &m->client, &b);
    }
}

void sup_members_settle(sup_core *c, hc_time now)
{
    if (!c->members_changed)
        return;
    c->members_changed = false;
    heal(c, now);
    compact(c);
    for (size_t i = 0; i < c->nmem; i++) {
        sup_member *m = &c->members[i];
        monitor_member(c, m);
        if (!m->has_status || sup_member_status(c, m) != SUP_ST_DEAD)
            m->dead_seen = 0; /* alive again (or never dead): a later death settles from scratch */
    }
    for (size_t i = 0; i < c->children.cap; i++) /* a membership change is worth another try */
        if (hc_hmap_live(&c->children, i))
            ((sup_child *)c->children.vals[i])->parked = false;
    build_ring(c, SUP_KIND_C, &c->ring_c, &c->ring_c_idx);
    build_ring(c, SUP_KIND_BEAM, &c->ring_beam, &c->ring_beam_idx);
    bool q = compute_quorum(c);
    if (c->quorum && !q) {
        /* The minority stops what runs through it; the records stay, for the majority to take over. */
        void *it;
        for (size_t i = 0; i < c->children.cap; i++)
            if (hc_hmap_live(&c->children, i) && (it = c->children.vals[i]) && ((sup_child *)it)->running)
                sup_worker_stop(c, it, "shutdown", false);
        tell_attached(c, "quorum_lost");
    } else if (!c->quorum && q) {
        tell_attached(c, "reattach"); /* they stopped everything: attaching again re-places their records */
        c->quorum_since = now.mono_ms;
    }
    c->quorum = q;
    c->rescan_all = true;
}

void sup_members_free(sup_core *c)
{
    sup_ring_free(&c->ring_c);
    sup_ring_free(&c->ring_beam);
    free(c->ring_c_idx);
    free(c->ring_beam_idx);
    for (size_t i = 0; i < c->nmem; i++) {
        hc_buf_free(&c->members[i].types_raw);
        free(c->members[i].held_owned);
    }
    free(c->members);
}
