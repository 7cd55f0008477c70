/* proc.c — C processes: the pid table, registered names, message delivery, exit signals and exit. */
#include <stdlib.h>
#include <string.h>

#include "hordec/hc_log.h"
#include "runtime/rt_internal.h"

#define PID_ID_LIMIT (1u << 28) /* 15-bit number + 13-bit serial, as ei and old BEAMs expect */

static uint32_t pid_id(const hc_pid *p) { return (p->num & 0x7FFF) | (p->serial & 0x1FFF) << 15; }

hc_proc *rt_proc_by_pid(const hc_rt *rt, const hc_pid *pid)
{
    if (pid->node != rt->node || pid->creation != rt->creation || pid->num > 0x7FFF || pid->serial > 0x1FFF)
        return NULL;
    hc_proc *p = hc_hmap_get(&rt->procs, pid_id(pid));
    return p && !p->dead ? p : NULL;
}

hc_proc *hc_proc_lookup(const hc_rt *rt, const hc_pid *pid) { return rt_proc_by_pid(rt, pid); }

int hc_proc_spawn(hc_rt *rt, const hc_proc_ops *ops, void *state, hc_atom name, hc_proc **out)
{
    if (out)
        *out = NULL;
    if (!ops)
        return HC_EINVAL;
    /* Everything that can fail is checked before the process exists, so a failure leaves nothing behind
     * and the caller still owns `state`. */
    if (name && hc_hmap_get(&rt->names, name))
        return HC_EEXIST;
    if (rt->procs.count >= PID_ID_LIMIT / 2)
        return HC_EBUSY;
    hc_proc *p = calloc(1, sizeof *p);
    if (!p)
        return HC_ENOMEM;
    uint32_t id;
    do { /* ids wrap; skip those still in use */
        id = rt->next_proc_id++ % PID_ID_LIMIT;
    } while (hc_hmap_get(&rt->procs, id));
    p->id = id;
    p->pid = (hc_pid){.node = rt->node, .num = id & 0x7FFF, .serial = id >> 15, .creation = rt->creation};
    p->ops = ops;
    p->state = state;
    if (hc_hmap_put(&rt->procs, id, p)) {
        free(p);
        return HC_ENOMEM;
    }
    if (name) {
        if (hc_hmap_put(&rt->names, name, p)) {
            hc_hmap_del(&rt->procs, id, p);
            free(p);
            return HC_ENOMEM;
        }
        p->name = name;
    }
    if (out)
        *out = p;
    return HC_OK;
}

int hc_proc_register(hc_rt *rt, hc_proc *p, hc_atom name)
{
    if (!name || p->dead)
        return HC_EINVAL;
    if (hc_hmap_get(&rt->names, name))
        return HC_EEXIST;
    if (p->name)
        hc_proc_unregister(rt, p);
    if (hc_hmap_put(&rt->names, name, p))
        return HC_ENOMEM;
    p->name = name;
    return HC_OK;
}

void hc_proc_unregister(hc_rt *rt, hc_proc *p)
{
    if (p->name) {
        hc_hmap_del(&rt->names, p->name, p);
        p->name = 0;
    }
}

hc_proc *hc_proc_whereis(const hc_rt *rt, hc_atom name) { return name ? hc_hmap_get(&rt->names, name) : NULL; }
const hc_pid *hc_proc_pid(const hc_proc *p) { return &p->pid; }
hc_atom hc_proc_name(const hc_proc *p) { return p->name; }
void *hc_proc_state(const hc_proc *p) { return p->state; }
const hc_proc_ops *hc_proc_get_ops(const hc_proc *p) { return p->ops; }
void hc_proc_set_trap_exit(hc_proc *p, bool on) { p->trap_exit = on; }
bool hc_proc_alive(const hc_proc *p) { return p && !p->dead; }

/* ------------------------------------------------------------------ links */

bool rt_link_add(hc_proc *p, const hc_pid *other)
{
    for (size_t i = 0; i < p->nlinks; i++)
        if (hc_pid_eq(&p->links[i], other))
            return true;
    if (hc_array_reserve((void **)&p->links, &p->caplinks, p->nlinks + 1, sizeof *p->links, 4))
        return false;
    p->links[p->nlinks++] = *other;
    return true;
}

bool rt_link_del(hc_proc *p, const hc_pid *other)
{
    for (size_t i = 0; i < p->nlinks; i++)
        if (hc_pid_eq(&p->links[i], other)) {
            p->links[i] = p->links[--p->nlinks];
            return true;
        }
    return false;
}

/* ------------------------------------------------------------------ delivery */

void rt_deliver(hc_rt *rt, hc_proc *p, const hc_pid *from, const uint8_t *msg, size_t len)
{
    if (p->dead)
        return;
    rt->stats.msgs_in++;
    if (rt_gen_try_reply(rt, p, msg, len))
        return;
    if (p->ops->on_call && (rt_gen_try_call(rt, p, msg, len) || rt_gen_try_calls(rt, p, msg, len)))
        return;
    if (p->ops->on_message)
        p->ops->on_message(rt, p, from, msg, len);
}

void rt_deliver_exit(hc_rt *rt, hc_proc *p, const hc_pid *from, const uint8_t *reason, size_t rlen, bool is_exit2)
{
    if (p->dead)
        return;
    /* A link's exit signal only counts while the link exists: after unlink/1 none may arrive. Links
     * therefore stay in place until their signal is delivered, and are removed here. */
    if (!is_exit2 && !rt_link_del(p, from))
        return;
    if (is_exit2 && rt_term_is(reason, rlen, rt_atom_kill, rt_atom_kill_len)) {
        hc_proc_exit(rt, p, rt_atom_killed, rt_atom_killed_len); /* untrappable */
        return;
    }
    if (p->trap_exit) {
        if (p->ops->on_exit_signal) {
            hc_exit_info e = {.from = *from, .linked = !is_exit2, .reason = {reason, rlen}};
            p->ops->on_exit_signal(rt, p, &e);
        }
        return;
    }
    if (rt_term_is(reason, rlen, rt_atom_normal, rt_atom_normal_len))
        return;
    hc_proc_exit(rt, p, reason, rlen);
}

/* ------------------------------------------------------------------ exit */

void hc_proc_exit(hc_rt *rt, hc_proc *p, const uint8_t *reason, size_t rlen)
{
    if (!p || p->dead)
        return;
    p->dead = true;
    if (p->ops->on_terminate)
        p->ops->on_terminate(rt, p, reason, rlen);
    hc_proc_unregister(rt, p);
    rt_proc_timers_cancel_all(rt, p);
    rt_gen_drop_caller(rt, p);
    /* Links: every linked process gets an exit signal with our reason. */
    hc_buf *b = &rt->scratch;
    for (size_t i = 0; i < p->nlinks; i++) {
        const hc_pid *other = &p->links[i];
        if (other->node == rt->node) {
            rt_local_enqueue(rt, LS_EXIT, other, &p->pid, reason, rlen);
        } else {
            hc_buf_reset(b);
            if (hc_ctrl_enc_exit(b, &p->pid, other, reason, rlen) == HC_OK)
                rt_send_packet(rt, other->node, b, NULL, 0);
        }
    }
    p->nlinks = 0;
    rt_mon_fire_target(rt, p, reason, rlen);
    rt_mon_drop_watching(rt, p);
    p->next_dead = rt->dead;
    rt->dead = p;
}

void rt_reap_procs(hc_rt *rt)
{
    while (rt->dead) {
        hc_proc *p = rt->dead;
        rt->dead = p->next_dead;
        hc_hmap_del(&rt->procs, p->id, p);
        free(p->links);
        free(p->timers);
        free(p->watchers.v);
        free(p->watching.v);
        free(p);
    }
}
