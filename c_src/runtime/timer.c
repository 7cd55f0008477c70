/* timer.c — the public timers over the loop's timer heap: owner-less loop timers (hc_timer_*), and timers
 * owned by a process (hc_proc_timer_*, hc_proc_send_after), which the process's exit cancels so a
 * callback never meets a dead process. */
#include <stdlib.h>
#include <string.h>

#include "runtime/rt_internal.h"

/* ------------------------------------------------------------------ loop timers */

typedef struct rt_timer {
    hc_rt *rt;
    hc_timer_cb cb;
    void *ud;
} rt_timer;

static void rt_timer_fire(void *ud)
{
    rt_timer t = *(rt_timer *)ud;
    free(ud);
    t.cb(t.rt, t.ud);
}

int hc_timer_start(hc_rt *rt, uint64_t after_ms, hc_timer_cb cb, void *ud, hc_timer_id *out)
{
    if (out)
        *out = 0;
    if (!cb)
        return HC_EINVAL;
    rt_timer *t = malloc(sizeof *t);
    if (!t)
        return HC_ENOMEM;
    *t = (rt_timer){rt, cb, ud};
    /* An owned ud: the loop frees the wrapper if the timer is cancelled or never fires. */
    hc_timer_id id = hc_loop_timer_add_owned(rt->loop, after_ms, rt_timer_fire, t);
    if (!id) {
        free(t);
        return HC_ENOMEM;
    }
    if (out)
        *out = id;
    return HC_OK;
}

bool hc_timer_cancel(hc_rt *rt, hc_timer_id id) { return hc_loop_timer_cancel(rt->loop, id); }

/* ------------------------------------------------------------------ process timers */

static void detach(proc_timer *t)
{
    hc_proc *p = t->proc;
    p->timers[t->idx] = p->timers[--p->ntimers];
    p->timers[t->idx]->idx = t->idx;
}

static void proc_timer_fire(void *ud)
{
    proc_timer *t = ud; /* ours now: the loop has let go of it */
    hc_proc *p = t->proc;
    detach(t);
    /* The process is alive: its exit would have cancelled this timer. */
    if (t->cb)
        t->cb(t->rt, p, t->ud);
    else
        rt_deliver(t->rt, p, &p->pid, t->msg, t->len);
    free(t);
}

static int arm(hc_rt *rt, hc_proc *p, uint64_t after_ms, hc_proc_timer_cb cb, void *ud, const uint8_t *msg, size_t len,
               hc_timer_id *out)
{
    if (out)
        *out = 0;
    if (!p || p->dead)
        return HC_EINVAL;
    if (len > SIZE_MAX - sizeof(proc_timer))
        return HC_ETOOBIG;
    if (hc_array_reserve((void **)&p->timers, &p->captimers, p->ntimers + 1, sizeof *p->timers, 4))
        return HC_ENOMEM;
    proc_timer *t = malloc(sizeof *t + len);
    if (!t)
        return HC_ENOMEM;
    *t = (proc_timer){.rt = rt, .proc = p, .idx = p->ntimers, .cb = cb, .ud = ud, .len = len};
    if (len)
        memcpy(t->msg, msg, len);
    t->id = hc_loop_timer_add_owned(rt->loop, after_ms, proc_timer_fire, t);
    if (!t->id) {
        free(t);
        return HC_ENOMEM;
    }
    p->timers[p->ntimers++] = t;
    if (out)
        *out = t->id;
    return HC_OK;
}

int hc_proc_timer_start(hc_rt *rt, hc_proc *p, uint64_t after_ms, hc_proc_timer_cb cb, void *ud, hc_timer_id *out)
{
    if (!cb) {
        if (out)
            *out = 0;
        return HC_EINVAL;
    }
    return arm(rt, p, after_ms, cb, ud, NULL, 0, out);
}

int hc_proc_send_after(hc_rt *rt, hc_proc *p, uint64_t after_ms, const uint8_t *msg, size_t len, hc_timer_id *out)
{
    if (!msg && len) {
        if (out)
            *out = 0;
        return HC_EINVAL;
    }
    return arm(rt, p, after_ms, NULL, NULL, msg, len, out);
}

bool hc_proc_timer_cancel(hc_rt *rt, hc_proc *p, hc_timer_id id)
{
    if (!p || !id)
        return false;
    for (size_t i = 0; i < p->ntimers; i++) {
        proc_timer *t = p->timers[i];
        if (t->id == id) {
            detach(t);
            hc_loop_timer_cancel(rt->loop, id); /* frees t: an owned ud */
            return true;
        }
    }
    return false;
}

void rt_proc_timers_cancel_all(hc_rt *rt, hc_proc *p)
{
    while (p->ntimers) {
        proc_timer *t = p->timers[--p->ntimers];
        hc_loop_timer_cancel(rt->loop, t->id);
    }
}
