/* host_rt.c — see host_rt.h. */
#include "host/host_rt.h"

#include <openssl/rand.h>
#include <stdlib.h>
#include <time.h>

#include "common/hmap.h"
#include "hordec/hc_log.h"

typedef struct mon_entry {
    uint64_t id; /* the host's id */
    hc_ref ref;  /* the runtime's */
} mon_entry;

typedef struct binding {
    hc_rt *rt;
    hc_proc *self;
    hc_host *host;
    const hc_core_ops *ops;
    hc_timer_id wake;
    uint64_t node_sub;
    uint64_t next_token;
    /* The call being handled right now: replied to directly when the core answers at once (the common
     * case), copied into `calls` only when it does not. */
    const hc_gen_from *cur_from;
    uint64_t cur_token;
    bool cur_replied;
    hc_hmap calls;    /* token -> hc_gen_from (heap copy) */
    hc_hmap mon_ids;  /* host id -> mon_entry */
    hc_hmap mon_refs; /* ref hash -> mon_entry */
    hc_host_rt_local_fn local;
    void *local_ud;
} binding;

static const hc_proc_ops host_proc_ops;

const hc_core_ops *hc_host_rt_kind(const hc_proc *p)
{
    if (!p || hc_proc_get_ops(p) != &host_proc_ops)
        return NULL;
    return ((const binding *)hc_proc_state(p))->ops;
}

void *hc_host_rt_core(const hc_proc *p)
{
    if (!p || hc_proc_get_ops(p) != &host_proc_ops)
        return NULL;
    return hc_host_core(((const binding *)hc_proc_state(p))->host);
}

int hc_host_rt_stats(const hc_proc *p, hc_buf *out)
{
    if (!p || hc_proc_get_ops(p) != &host_proc_ops)
        return HC_EINVAL;
    return hc_host_enc_stats(((const binding *)hc_proc_state(p))->host, out);
}

void hc_host_rt_local(hc_rt *rt, hc_proc *p, const uint8_t *msg, size_t len)
{
    if (!p || hc_proc_get_ops(p) != &host_proc_ops || !hc_proc_alive(p))
        return;
    hc_host_local(((binding *)hc_proc_state(p))->host, msg, len, hc_host_rt_now(rt));
}

/* Deadlines are the loop's monotonic clock; the wall clock only stamps HLC timestamps. */
hc_time hc_host_rt_now(const hc_rt *rt)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (hc_time){hc_rt_now_ms(rt), (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000};
}

/* ------------------------------------------------------------------ the env */

static void env_send_name(void *ud, hc_atom node, hc_atom name, const uint8_t *msg, size_t len)
{
    binding *b = ud;
    hc_send_name(b->rt, b->self, node, name, msg, len);
}

static void env_send_pid(void *ud, const hc_pid *to, const uint8_t *msg, size_t len)
{
    binding *b = ud;
    hc_send(b->rt, b->self, to, msg, len);
}

static void env_reply(void *ud, uint64_t token, const uint8_t *reply, size_t len)
{
    binding *b = ud;
    if (b->cur_from && token == b->cur_token && !b->cur_replied) {
        b->cur_replied = true;
        hc_gen_reply(b->rt, b->cur_from, reply, len);
        return;
    }
    hc_gen_from *f = hc_hmap_get(&b->calls, token);
    if (!f)
        return; /* answered already: a core bug, but the caller only takes one reply anyway */
    hc_gen_reply(b->rt, f, reply, len);
    hc_hmap_del(&b->calls, token, f);
    hc_gen_from_release(f);
    free(f);
}

static int env_monitor(void *ud, const hc_pid *pid, uint64_t id)
{
    binding *b = ud;
    mon_entry *m = malloc(sizeof *m);
    if (!m)
        return HC_ENOMEM;
    m->id = id;
    int rc = hc_monitor(b->rt, b->self, pid, 0, 0, &m->ref);
    if (!rc && hc_hmap_put(&b->mon_ids, id, m)) {
        hc_demonitor(b->rt, b->self, &m->ref);
        rc = HC_ENOMEM;
    }
    if (!rc && hc_hmap_put(&b->mon_refs, hc_ref_hash(&m->ref), m)) {
        hc_hmap_del(&b->mon_ids, id, m);
        hc_demonitor(b->rt, b->self, &m->ref);
        rc = HC_ENOMEM;
    }
    if (rc)
        free(m);
    return rc;
}

static void mon_forget(binding *b, mon_entry *m)
{
    hc_hmap_del(&b->mon_ids, m->id, m);
    hc_hmap_del(&b->mon_refs, hc_ref_hash(&m->ref), m);
    free(m);
}

static void env_demonitor(void *ud, uint64_t id)
{
    binding *b = ud;
    mon_entry *m = hc_hmap_get(&b->mon_ids, id);
    if (!m)
        return;
    hc_demonitor(b->rt, b->self, &m->ref);
    mon_forget(b, m);
}

static void env_exit(void *ud, const hc_pid *to, const uint8_t *reason, size_t len)
{
    binding *b = ud;
    hc_exit_signal(b->rt, b->self, to, reason, len);
}

static void on_wake(hc_rt *rt, hc_proc *self, void *ud)
{
    binding *b = ud;
    b->wake = 0;
    hc_host_tick(b->host, hc_host_rt_now(rt));
    (void)self;
}

static void env_wake_at(void *ud, uint64_t at)
{
    binding *b = ud;
    if (b->wake)
        hc_proc_timer_cancel(b->rt, b->self, b->wake);
    b->wake = 0;
    if (at == HC_NO_DEADLINE)
        return;
    uint64_t now = hc_rt_now_ms(b->rt);
    if (hc_proc_timer_start(b->rt, b->self, at > now ? at - now : 0, on_wake, b, &b->wake))
        hc_log_error("%s: cannot arm its timer (out of memory): sync stalls until the next message",
                     hc_atom_name(hc_proc_name(b->self)));
}

static void env_connect(void *ud, hc_atom node)
{
    binding *b = ud;
    hc_rt_connect(b->rt, node);
}

static bool env_is_connected(void *ud, hc_atom node)
{
    binding *b = ud;
    return hc_rt_is_connected(b->rt, node);
}

static void env_local(void *ud, const uint8_t *action, size_t len, hc_buf *result)
{
    binding *b = ud;
    if (b->local)
        b->local(b->rt, b->self, action, len, result, b->local_ud);
}

/* ------------------------------------------------------------------ the process */

static void on_call(hc_rt *rt, hc_proc *self, const hc_gen_from *from, const uint8_t *req, size_t len)
{
    binding *b = hc_proc_state(self);
    b->cur_from = from;
    b->cur_token = ++b->next_token;
    b->cur_replied = false;
    hc_host_request(b->host, b->cur_token, &from->pid, req, len, hc_host_rt_now(rt));
    b->cur_from = NULL;
    if (b->cur_replied)
        return;
    /* The core answers later: keep the caller behind its token. */
    hc_gen_from *f = calloc(1, sizeof *f);
    if (!f || hc_gen_from_copy(f, from) || hc_hmap_put(&b->calls, b->cur_token, f)) {
        if (f)
            hc_gen_from_release(f);
        free(f);
        hc_gen_reply_error(rt, from, "enomem");
    }
}

/* A batch of calls: its replies leave together at the end (the runtime holds them), so its stream diffs wait
 * too, and go just before them. */
static void on_batch(hc_rt *rt, hc_proc *self, bool begin)
{
    (void)rt;
    binding *b = hc_proc_state(self);
    hc_host_hold_stream(b->host, begin);
}

static void on_message(hc_rt *rt, hc_proc *self, const hc_pid *from, const uint8_t *msg, size_t len)
{
    binding *b = hc_proc_state(self);
    hc_host_message(b->host, from, msg, len, hc_host_rt_now(rt));
}

static void on_down(hc_rt *rt, hc_proc *self, const hc_down *d)
{
    binding *b = hc_proc_state(self);
    size_t pos = 0;
    mon_entry *m;
    while ((m = hc_hmap_next(&b->mon_refs, hc_ref_hash(&d->ref), &pos)))
        if (hc_ref_eq(&m->ref, &d->ref))
            break;
    if (!m)
        return;
    uint64_t id = m->id;
    mon_forget(b, m);
    hc_host_monitor_down(b->host, id, d->pid, d->reason.p, d->reason.len, hc_host_rt_now(rt));
}

static void on_node(hc_rt *rt, const hc_node_event *ev, void *ud)
{
    binding *b = ud;
    hc_host_node_event(b->host, ev->node, ev->up, hc_host_rt_now(rt));
}

static void free_maps(binding *b)
{
    for (size_t i = 0; i < b->calls.cap; i++)
        if (hc_hmap_live(&b->calls, i)) {
            hc_gen_from_release(b->calls.vals[i]);
            free(b->calls.vals[i]);
        }
    for (size_t i = 0; i < b->mon_ids.cap; i++)
        if (hc_hmap_live(&b->mon_ids, i))
            free(b->mon_ids.vals[i]);
    hc_hmap_free(&b->calls);
    hc_hmap_free(&b->mon_ids);
    hc_hmap_free(&b->mon_refs);
}

static void on_terminate(hc_rt *rt, hc_proc *self, const uint8_t *reason, size_t rlen)
{
    binding *b = hc_proc_state(self);
    hc_rt_unsubscribe_nodes(rt, b->node_sub);
    hc_host_free(b->host);
    free_maps(b); /* callers still waiting get noproc from their monitor on this process */
    free(b);
    (void)reason, (void)rlen;
}

static const hc_proc_ops host_proc_ops = {.on_call = on_call,
                                          .on_message = on_message,
                                          .on_down = on_down,
                                          .on_terminate = on_terminate,
                                          .on_batch = on_batch};

int hc_host_rt_start(hc_rt *rt, hc_atom name, const hc_core_ops *ops, void *core, const hc_host_rt_opts *opts,
                     hc_proc **out)
{
    if (out)
        *out = NULL;
    binding *b = calloc(1, sizeof *b);
    if (!b) {
        ops->free(core);
        return HC_ENOMEM;
    }
    b->rt = rt;
    b->ops = ops;
    b->local = opts ? opts->local : NULL;
    b->local_ud = opts ? opts->local_ud : NULL;
    uint64_t epoch_base = 0;
    if (RAND_bytes((unsigned char *)&epoch_base, sizeof epoch_base) != 1)
        epoch_base = hc_rt_now_ms(rt);
    hc_host_config cfg = {.name = name,
                          .node = hc_rt_node(rt),
                          .stream_batch_bytes = opts ? opts->stream_batch_bytes : 0,
                          .epoch_base = (epoch_base >> 24) + 1}; /* well below 2^63: room to count up */
    hc_host_env env = {.ud = b,
                       .send_name = env_send_name,
                       .send_pid = env_send_pid,
                       .reply = env_reply,
                       .monitor = env_monitor,
                       .demonitor = env_demonitor,
                       .exit = env_exit,
                       .wake_at = env_wake_at,
                       .connect = env_connect,
                       .is_connected = env_is_connected,
                       .local = env_local};
    int rc = hc_host_new(&cfg, &env, ops, core, &b->host); /* owns core from here, also on failure */
    if (!rc)
        rc = hc_proc_spawn(rt, &host_proc_ops, b, name, &b->self);
    if (!rc && hc_rt_subscribe_nodes(rt, on_node, b, &b->node_sub)) {
        hc_span reason = hc_reason_normal();
        hc_proc_exit(rt, b->self, reason.p, reason.len); /* frees b through on_terminate */
        return HC_ENOMEM;
    }
    if (rc) {
        hc_host_free(b->host);
        free(b);
        return rc;
    }
    hc_log_info("%s replica %s started", ops->kind, hc_atom_name(name));
    if (out)
        *out = b->self;
    return HC_OK;
}
