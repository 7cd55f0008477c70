/* signal.c — messages, monitors and links between processes, local and remote, and the dispatch of
 * incoming control messages. Local signals go through a queue drained once per loop turn, so a
 * callback never runs inside another process's callback (as in Erlang, signals are asynchronous). */
#include <stdlib.h>
#include <string.h>

#include "hordec/hc_log.h"
#include "runtime/rt_internal.h"

/* ------------------------------------------------------------------ local signal queue */

static local_sig *sig_new(local_kind kind, const hc_pid *to, const hc_pid *from, const uint8_t *data, size_t len)
{
    local_sig *s = malloc(sizeof *s + len);
    if (!s)
        return NULL;
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->to = *to;
    if (from) {
        s->from = *from;
        s->has_from = true;
    }
    s->len = len;
    if (len)
        memcpy(s->data, data, len);
    return s;
}

static void sig_push(hc_rt *rt, local_sig *s)
{
    if (rt->lq_tail)
        rt->lq_tail->next = s;
    else
        rt->lq_head = s;
    rt->lq_tail = s;
}

void rt_local_enqueue(hc_rt *rt, local_kind kind, const hc_pid *to, const hc_pid *from, const uint8_t *data, size_t len)
{
    local_sig *s = sig_new(kind, to, from, data, len);
    if (s)
        sig_push(rt, s);
    else
        hc_log_error("out of memory: a local signal was lost");
}

void rt_local_enqueue_down(hc_rt *rt, const hc_pid *to, const hc_ref *ref, const hc_pid *target, bool by_name,
                           hc_atom name, hc_atom node, const uint8_t *reason, size_t len)
{
    local_sig *s = sig_new(LS_DOWN, to, target, reason, len);
    if (!s) {
        hc_log_error("out of memory: a DOWN was lost");
        return;
    }
    s->ref = *ref;
    s->by_name = by_name;
    s->name = name;
    s->node = node;
    sig_push(rt, s);
}

void rt_local_run(hc_rt *rt)
{
    rt->lq_run = rt->lq_head;
    rt->lq_head = rt->lq_tail = NULL;
    local_sig *s;
    while ((s = rt->lq_run)) {
        rt->lq_run = s->next;
        hc_proc *p = rt_proc_by_pid(rt, &s->to);
        if (p) {
            switch (s->kind) {
            case LS_MSG: rt_deliver(rt, p, s->has_from ? &s->from : NULL, s->data, s->len); break;
            case LS_EXIT: rt_deliver_exit(rt, p, &s->from, s->data, s->len, false); break;
            case LS_EXIT2: rt_deliver_exit(rt, p, &s->from, s->data, s->len, true); break;
            case LS_DOWN: {
                bool handled = false;
                rt_gen_on_down(rt, p, &s->ref, s->data, s->len, &handled);
                if (!handled && p->ops->on_down && !p->dead) {
                    hc_down d = {.ref = s->ref,
                                 .pid = s->by_name ? NULL : &s->from,
                                 .name = s->by_name ? s->name : 0,
                                 .node = s->node,
                                 .reason = {s->data, s->len}};
                    p->ops->on_down(rt, p, &d);
                }
                break;
            }
            }
        }
        free(s);
    }
}

void rt_local_free(hc_rt *rt)
{
    for (local_sig *s = rt->lq_run, *n; s; s = n) {
        n = s->next;
        free(s);
    }
    rt->lq_run = NULL;
    for (local_sig *s = rt->lq_head, *n; s; s = n) {
        n = s->next;
        free(s);
    }
    rt->lq_head = rt->lq_tail = NULL;
}

/* ------------------------------------------------------------------ monitor bookkeeping */

int mon_vec_push(mon_vec *v, hc_mon *m, size_t *idx)
{
    if (hc_array_reserve((void **)&v->v, &v->cap, v->n + 1, sizeof *v->v, 4))
        return HC_ENOMEM;
    *idx = v->n;
    v->v[v->n++] = m;
    return HC_OK;
}

/* Swap-remove; fixes the moved monitor's stored index for the side this vector belongs to. */
void mon_vec_remove(mon_vec *v, size_t idx, bool target_side)
{
    if (idx >= v->n)
        return;
    v->v[idx] = v->v[--v->n];
    if (idx < v->n) {
        if (target_side)
            v->v[idx]->tidx = idx;
        else
            v->v[idx]->widx = idx;
    }
}

hc_mon *rt_mon_find(const hc_rt *rt, const hc_ref *ref)
{
    uint64_t h = hc_ref_hash(ref);
    size_t pos = 0;
    hc_mon *m;
    while ((m = hc_hmap_next(&rt->monitors, h, &pos)))
        if (hc_ref_eq(&m->ref, ref))
            return m;
    return NULL;
}

static hc_mon *mon_new(hc_rt *rt, mon_kind kind, const hc_ref *ref)
{
    hc_mon *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->kind = kind;
    m->ref = *ref;
    if (hc_hmap_put(&rt->monitors, hc_ref_hash(ref), m)) {
        free(m);
        return NULL;
    }
    return m;
}

void rt_mon_unlink(hc_rt *rt, hc_mon *m)
{
    hc_hmap_del(&rt->monitors, hc_ref_hash(&m->ref), m);
    if (m->kind == MON_IN || m->kind == MON_LOCAL) {
        hc_proc *t = hc_hmap_get(&rt->procs, (m->target.num & 0x7FFF) | (m->target.serial & 0x1FFF) << 15);
        if (t && t->watchers.n > m->tidx && t->watchers.v[m->tidx] == m)
            mon_vec_remove(&t->watchers, m->tidx, true);
    }
    if (m->kind == MON_OUT || m->kind == MON_LOCAL) {
        hc_proc *w = hc_hmap_get(&rt->procs, (m->watcher.num & 0x7FFF) | (m->watcher.serial & 0x1FFF) << 15);
        if (w && w->watching.n > m->widx && w->watching.v[m->widx] == m)
            mon_vec_remove(&w->watching, m->widx, false);
    }
    free(m);
}

/* Our process `p` exited: every monitor on it fires. */
void rt_mon_fire_target(hc_rt *rt, hc_proc *p, const uint8_t *reason, size_t rlen)
{
    hc_buf *b = &rt->scratch;
    while (p->watchers.n) {
        hc_mon *m = p->watchers.v[p->watchers.n - 1];
        if (m->kind == MON_IN) {
            hc_buf raw = {0};
            int rc = m->by_name ? hc_enc_atom(&raw, m->name) : hc_enc_pid(&raw, &p->pid);
            hc_buf_reset(b);
            if (!rc && !hc_ctrl_enc_monitor_p_exit(b, raw.data, raw.len, &m->watcher, &m->ref, reason, rlen))
                rt_send_packet(rt, m->watcher.node, b, NULL, 0);
            hc_buf_free(&raw);
        } else {
            rt_local_enqueue_down(rt, &m->watcher, &m->ref, &p->pid, m->by_name, m->name, rt->node, reason, rlen);
        }
        rt_mon_unlink(rt, m);
    }
}

/* Our process `p` exited: the monitors it held are cancelled (remote ones with DEMONITOR_P). */
void rt_mon_drop_watching(hc_rt *rt, hc_proc *p)
{
    hc_buf *b = &rt->scratch;
    while (p->watching.n) {
        hc_mon *m = p->watching.v[p->watching.n - 1];
        if (m->kind == MON_OUT) {
            hc_procref to = {.is_name = m->by_name, .pid = m->target, .name = m->name};
            hc_buf_reset(b);
            if (!hc_ctrl_enc_demonitor_p(b, &p->pid, &to, &m->ref)) {
                hc_peer *peer = rt_peer_get(rt, m->node);
                if (peer && peer->up)
                    rt_send_packet(rt, m->node, b, NULL, 0);
            }
        }
        rt_mon_unlink(rt, m);
    }
}

/* A node went down (or could not be reached): everything that involved it is resolved. */
void rt_node_down_signals(hc_rt *rt, hc_atom node)
{
    for (size_t i = 0; i < rt->monitors.cap; i++) {
        if (!hc_hmap_live(&rt->monitors, i))
            continue;
        hc_mon *m = rt->monitors.vals[i];
        if (m->kind == MON_IN && m->watcher.node == node) {
            rt_mon_unlink(rt, m);
        } else if (m->kind == MON_OUT && m->node == node) {
            rt_local_enqueue_down(rt, &m->watcher, &m->ref, &m->target, m->by_name, m->name, m->node,
                                  rt_atom_noconnection, rt_atom_noconnection_len);
            rt_mon_unlink(rt, m);
        }
    }
    for (size_t i = 0; i < rt->procs.cap; i++) {
        if (!hc_hmap_live(&rt->procs, i))
            continue;
        hc_proc *p = rt->procs.vals[i];
        for (size_t k = 0; k < p->nlinks; k++)
            if (p->links[k].node == node) /* the link goes when the signal is delivered */
                rt_local_enqueue(rt, LS_EXIT, &p->pid, &p->links[k], rt_atom_noconnection, rt_atom_noconnection_len);
    }
}

/* ------------------------------------------------------------------ public signal API */

int hc_send(hc_rt *rt, hc_proc *from, const hc_pid *to, const uint8_t *msg, size_t len)
{
    rt->stats.msgs_out++;
    if (to->node == rt->node) {
        if (rt_proc_by_pid(rt, to))
            rt_local_enqueue(rt, LS_MSG, to, from ? &from->pid : NULL, msg, len);
        return HC_OK;
    }
    hc_buf *b = &rt->scratch;
    hc_buf_reset(b);
    if (hc_ctrl_enc_send(b, to))
        return HC_ENOMEM;
    return rt_send_packet(rt, to->node, b, msg, len);
}

int hc_send_buf(hc_rt *rt, hc_proc *from, const hc_pid *to, const hc_buf *b)
{
    if (b->err)
        return b->err; /* a half-built term never reaches the wire */
    return hc_send(rt, from, to, b->data, b->len);
}

int hc_send_name(hc_rt *rt, hc_proc *from, hc_atom node, hc_atom name, const uint8_t *msg, size_t len)
{
    rt->stats.msgs_out++;
    if (node == rt->node || node == 0) {
        hc_proc *p = hc_proc_whereis(rt, name);
        if (p)
            rt_local_enqueue(rt, LS_MSG, &p->pid, from ? &from->pid : NULL, msg, len);
        return p ? HC_OK : HC_ENOPROC;
    }
    if (!from)
        return HC_EINVAL; /* REG_SEND carries the sender */
    hc_buf *b = &rt->scratch;
    hc_buf_reset(b);
    if (hc_ctrl_enc_reg_send(b, &from->pid, name))
        return HC_ENOMEM;
    return rt_send_packet(rt, node, b, msg, len);
}

int hc_monitor(hc_rt *rt, hc_proc *w, const hc_pid *pid, hc_atom name, hc_atom node, hc_ref *out)
{
    if (!w || w->dead)
        return HC_EINVAL;
    hc_ref ref;
    hc_make_ref(rt, &ref);
    bool by_name = pid == NULL;
    hc_atom tnode = by_name ? (node ? node : rt->node) : pid->node;
    if (tnode == rt->node) {
        hc_proc *t = by_name ? hc_proc_whereis(rt, name) : rt_proc_by_pid(rt, pid);
        if (!t) {
            hc_pid none = {0};
            rt_local_enqueue_down(rt, &w->pid, &ref, pid ? pid : &none, by_name, name, rt->node, rt_atom_noproc,
                                  rt_atom_noproc_len);
        } else {
            hc_mon *m = mon_new(rt, MON_LOCAL, &ref);
            if (!m)
                return HC_ENOMEM;
            m->watcher = w->pid;
            m->target = t->pid;
            m->by_name = by_name;
            m->name = name;
            m->node = rt->node;
            if (mon_vec_push(&t->watchers, m, &m->tidx) || mon_vec_push(&w->watching, m, &m->widx)) {
                rt_mon_unlink(rt, m);
                return HC_ENOMEM;
            }
        }
        *out = ref;
        return HC_OK;
    }
    hc_mon *m = mon_new(rt, MON_OUT, &ref);
    if (!m)
        return HC_ENOMEM;
    m->watcher = w->pid;
    if (pid)
        m->target = *pid;
    m->by_name = by_name;
    m->name = name;
    m->node = tnode;
    m->tidx = (size_t)-1;
    if (mon_vec_push(&w->watching, m, &m->widx)) {
        rt_mon_unlink(rt, m);
        return HC_ENOMEM;
    }
    hc_procref to = {.is_name = by_name, .pid = m->target, .name = name};
    hc_buf *b = &rt->scratch;
    hc_buf_reset(b);
    int rc = hc_ctrl_enc_monitor_p(b, &w->pid, &to, &ref);
    if (!rc)
        rc = rt_send_packet(rt, tnode, b, NULL, 0);
    if (rc) {
        /* Unreachable: the DOWN comes at once, as the BEAM does for a monitor on a dead node. */
        rt_local_enqueue_down(rt, &w->pid, &ref, &m->target, by_name, name, tnode, rt_atom_noconnection,
                              rt_atom_noconnection_len);
        rt_mon_unlink(rt, m);
    }
    *out = ref;
    return HC_OK;
}

/* A local monitor that fired is gone from the table, but its DOWN may still wait in the local queue (delivered on
 * the next loop turn): demonitor promises that no DOWN arrives afterwards, so it takes that one out too. */
static bool drop_down_in(local_sig **head, local_sig **tail, const hc_pid *watcher, const hc_ref *ref)
{
    local_sig *prev = NULL;
    for (local_sig *s = *head; s; prev = s, s = s->next) {
        if (s->kind != LS_DOWN || !hc_pid_eq(&s->to, watcher) || !hc_ref_eq(&s->ref, ref))
            continue;
        if (prev)
            prev->next = s->next;
        else
            *head = s->next;
        if (tail && *tail == s)
            *tail = prev;
        free(s);
        return true;
    }
    return false;
}

static void drop_queued_down(hc_rt *rt, const hc_pid *watcher, const hc_ref *ref)
{
    if (!drop_down_in(&rt->lq_run, NULL, watcher, ref)) /* the batch being delivered right now, then the next */
        drop_down_in(&rt->lq_head, &rt->lq_tail, watcher, ref);
}

int hc_demonitor(hc_rt *rt, hc_proc *w, const hc_ref *ref)
{
    hc_mon *m = rt_mon_find(rt, ref);
    if (!m) {
        drop_queued_down(rt, &w->pid, ref);
        return HC_OK;
    }
    if (!hc_pid_eq(&m->watcher, &w->pid) || m->kind == MON_IN)
        return HC_OK;
    if (m->kind == MON_OUT) {
        hc_procref to = {.is_name = m->by_name, .pid = m->target, .name = m->name};
        hc_buf *b = &rt->scratch;
        hc_buf_reset(b);
        if (!hc_ctrl_enc_demonitor_p(b, &w->pid, &to, ref))
            rt_send_packet(rt, m->node, b, NULL, 0);
    }
    rt_mon_unlink(rt, m);
    return HC_OK;
}

int hc_link(hc_rt *rt, hc_proc *p, const hc_pid *other)
{
    if (!p || p->dead)
        return HC_EINVAL;
    if (hc_pid_eq(other, &p->pid))
        return HC_OK;
    if (other->node == rt->node) {
        hc_proc *o = rt_proc_by_pid(rt, other);
        if (!o) {
            /* Linking to a dead process: an exit signal noproc, as link/1 does under trap_exit. */
            if (!rt_link_add(p, other))
                return HC_ENOMEM;
            rt_local_enqueue(rt, LS_EXIT, &p->pid, other, rt_atom_noproc, rt_atom_noproc_len);
            return HC_OK;
        }
        if (!rt_link_add(p, other) || !rt_link_add(o, &p->pid))
            return HC_ENOMEM;
        return HC_OK;
    }
    if (!rt_link_add(p, other))
        return HC_ENOMEM;
    hc_buf *b = &rt->scratch;
    hc_buf_reset(b);
    int rc = hc_ctrl_enc_link(b, &p->pid, other);
    if (!rc)
        rc = rt_send_packet(rt, other->node, b, NULL, 0);
    if (rc) /* unreachable node: the link breaks at once with noconnection */
        rt_local_enqueue(rt, LS_EXIT, &p->pid, other, rt_atom_noconnection, rt_atom_noconnection_len);
    return HC_OK;
}

int hc_unlink(hc_rt *rt, hc_proc *p, const hc_pid *other)
{
    if (!rt_link_del(p, other))
        return HC_OK;
    if (other->node == rt->node) {
        hc_proc *o = rt_proc_by_pid(rt, other);
        if (o)
            rt_link_del(o, &p->pid);
        return HC_OK;
    }
    hc_buf *b = &rt->scratch;
    hc_buf_reset(b);
    if (!hc_ctrl_enc_unlink_id(b, rt->next_unlink_id++, &p->pid, other))
        rt_send_packet(rt, other->node, b, NULL, 0);
    return HC_OK;
}

int hc_exit_signal(hc_rt *rt, hc_proc *from, const hc_pid *to, const uint8_t *reason, size_t rlen)
{
    if (!from)
        return HC_EINVAL;
    if (to->node == rt->node) {
        rt_local_enqueue(rt, LS_EXIT2, to, &from->pid, reason, rlen);
        return HC_OK;
    }
    hc_buf *b = &rt->scratch;
    hc_buf_reset(b);
    if (hc_ctrl_enc_exit2(b, &from->pid, to, reason, rlen))
        return HC_ENOMEM;
    return rt_send_packet(rt, to->node, b, NULL, 0);
}

/* ------------------------------------------------------------------ incoming control messages */

static hc_proc *resolve_to(hc_rt *rt, const hc_procref *to)
{
    return to->is_name ? hc_proc_whereis(rt, to->name) : rt_proc_by_pid(rt, &to->pid);
}

static void reply_noproc_monitor(hc_rt *rt, const hc_ctrl *m)
{
    hc_buf *b = &rt->scratch;
    hc_buf_reset(b);
    if (!hc_ctrl_enc_monitor_p_exit(b, m->to_raw.p, m->to_raw.len, &m->from, &m->ref, rt_atom_noproc,
                                    rt_atom_noproc_len))
        rt_send_packet(rt, m->from.node, b, NULL, 0);
}

static void on_monitor_p(hc_rt *rt, hc_peer *peer, const hc_ctrl *m)
{
    hc_proc *t = resolve_to(rt, &m->to);
    if (!t || m->from.node != peer->node) {
        reply_noproc_monitor(rt, m);
        return;
    }
    hc_mon *mon = mon_new(rt, MON_IN, &m->ref);
    if (!mon) {
        reply_noproc_monitor(rt, m);
        return;
    }
    mon->watcher = m->from;
    mon->target = t->pid;
    mon->by_name = m->to.is_name;
    mon->name = m->to.name;
    mon->node = rt->node;
    mon->widx = (size_t)-1;
    if (mon_vec_push(&t->watchers, mon, &mon->tidx)) {
        rt_mon_unlink(rt, mon);
        reply_noproc_monitor(rt, m);
    }
}

static void on_demonitor_p(hc_rt *rt, const hc_ctrl *m)
{
    hc_mon *mon = rt_mon_find(rt, &m->ref);
    if (mon && mon->kind == MON_IN && hc_pid_eq(&mon->watcher, &m->from))
        rt_mon_unlink(rt, mon);
}

static void on_monitor_p_exit(hc_rt *rt, hc_peer *peer, const hc_ctrl *m)
{
    hc_mon *mon = rt_mon_find(rt, &m->ref);
    if (!mon || mon->kind != MON_OUT || mon->node != peer->node)
        return;
    rt_local_enqueue_down(rt, &mon->watcher, &mon->ref, &mon->target, mon->by_name, mon->name, mon->node, m->reason.p,
                          m->reason.len);
    rt_mon_unlink(rt, mon);
}

static void on_link(hc_rt *rt, const hc_ctrl *m)
{
    hc_proc *p = rt_proc_by_pid(rt, &m->to.pid);
    if (p && rt_link_add(p, &m->from))
        return;
    hc_buf *b = &rt->scratch;
    hc_buf_reset(b);
    if (!hc_ctrl_enc_exit(b, &m->to.pid, &m->from, rt_atom_noproc, rt_atom_noproc_len))
        rt_send_packet(rt, m->from.node, b, NULL, 0);
}

static void on_unlink_id(hc_rt *rt, const hc_ctrl *m)
{
    hc_proc *p = rt_proc_by_pid(rt, &m->to.pid);
    if (p)
        rt_link_del(p, &m->from);
    hc_buf *b = &rt->scratch;
    hc_buf_reset(b);
    if (!hc_ctrl_enc_unlink_id_ack(b, m->id.p, m->id.len, &m->to.pid, &m->from))
        rt_send_packet(rt, m->from.node, b, NULL, 0);
}

static void on_exit_ctrl(hc_rt *rt, const hc_ctrl *m, bool is_exit2)
{
    hc_proc *p = rt_proc_by_pid(rt, &m->to.pid);
    if (p) /* a link EXIT whose link we already dropped (an unlink crossed it) is ignored there */
        rt_deliver_exit(rt, p, &m->from, m->reason.p, m->reason.len, is_exit2);
}

int rt_dispatch_packet(hc_rt *rt, hc_peer *peer, const uint8_t *p, size_t len)
{
    hc_ctrl m;
    if (hc_ctrl_decode(p, len, &m))
        return HC_EDECODE;
    if (!m.known) {
        hc_log_debug("ignored control message op %d from %s", m.op, hc_atom_name(peer->node));
        return HC_OK;
    }
    /* A peer speaks only for its own processes. */
    bool has_from = m.op != HC_DOP_SEND && m.op != HC_DOP_MONITOR_P_EXIT && m.op != HC_DOP_SPAWN_REPLY;
    if (has_from && m.from.node != peer->node) {
        hc_log_warn("dropped a control message from %s claiming to be from a process on %s", hc_atom_name(peer->node),
                    hc_atom_name(m.from.node));
        return HC_OK;
    }
    switch (m.op) {
    case HC_DOP_SEND:
    case HC_DOP_SEND_SENDER:
    case HC_DOP_REG_SEND: {
        hc_proc *t = resolve_to(rt, &m.to);
        if (t)
            rt_deliver(rt, t, m.op == HC_DOP_SEND ? NULL : &m.from, m.msg.p, m.msg.len);
        break; /* to an unknown process: dropped, as the BEAM does */
    }
    case HC_DOP_LINK: on_link(rt, &m); break;
    case HC_DOP_UNLINK_ID: on_unlink_id(rt, &m); break;
    case HC_DOP_EXIT: on_exit_ctrl(rt, &m, false); break;
    case HC_DOP_EXIT2: on_exit_ctrl(rt, &m, true); break;
    case HC_DOP_MONITOR_P: on_monitor_p(rt, peer, &m); break;
    case HC_DOP_DEMONITOR_P: on_demonitor_p(rt, &m); break;
    case HC_DOP_MONITOR_P_EXIT: on_monitor_p_exit(rt, peer, &m); break;
    case HC_DOP_SPAWN_REQUEST: {
        /* We never advertise DFLAG_SPAWN; answer a stray request instead of leaving the caller waiting. */
        static const uint8_t notsup[] = "\x77\x06notsup";
        hc_buf *b = &rt->scratch;
        hc_buf_reset(b);
        if (!hc_ctrl_enc_spawn_reply(b, &m.ref, &m.from, 0, notsup, sizeof notsup - 1))
            rt_send_packet(rt, m.from.node, b, NULL, 0);
        break;
    }
    default: break; /* UNLINK (old), UNLINK_ID_ACK, GROUP_LEADER, ALIAS_SEND, SPAWN_REPLY: nothing to do */
    }
    return HC_OK;
}
