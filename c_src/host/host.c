/* host.c — see host.h. */
#include "host/host.h"

#include <stdlib.h>
#include <string.h>

#include "host/stream.h"
#include "hordec/hc_log.h"

typedef hc_core_peer host_peer; /* the host's peer table is exactly what it tells the core */

struct hc_host {
    hc_host_config cfg;
    hc_host_env env;
    const hc_core_ops *ops;
    void *core;
    host_peer *peers;
    size_t npeers;
    uint64_t next_handle;
    hc_stream stream;
    uint64_t dropped_in;
    uint64_t redial_at; /* monotonic; HC_NO_DEADLINE while every neighbour's node is connected */
    uint64_t armed_at;  /* what env->wake_at was last told */
    uint64_t last_warn_ms;
    hc_buf out;       /* scratch for envelopes */
    bool hold_stream; /* hc_host_hold_stream: diffs wait (the replies they precede are held too) */
};

int hc_host_new(const hc_host_config *cfg, const hc_host_env *env, const hc_core_ops *ops, void *core, hc_host **out)
{
    *out = NULL;
    hc_host *h = cfg && env && ops && core ? calloc(1, sizeof *h) : NULL;
    if (!h) {
        if (ops && core)
            ops->free(core);
        return cfg && env && ops && core ? HC_ENOMEM : HC_EINVAL;
    }
    h->cfg = *cfg;
    if (!h->cfg.stream_batch_bytes)
        h->cfg.stream_batch_bytes = HC_HOST_STREAM_BATCH_BYTES;
    h->env = *env;
    h->ops = ops;
    h->core = core;
    h->redial_at = HC_NO_DEADLINE;
    h->armed_at = HC_NO_DEADLINE;
    hc_stream_init(&h->stream, cfg->name, h->cfg.stream_batch_bytes, cfg->epoch_base);
    *out = h;
    return HC_OK;
}

void *hc_host_release(hc_host *h)
{
    if (!h)
        return NULL;
    void *core = h->core;
    hc_stream_free(&h->stream);
    free(h->peers);
    hc_buf_free(&h->out);
    free(h);
    return core;
}

void hc_host_free(hc_host *h)
{
    if (!h)
        return;
    const hc_core_ops *ops = h->ops;
    ops->free(hc_host_release(h));
}

void *hc_host_core(const hc_host *h) { return h->core; }
size_t hc_host_subscribers(const hc_host *h) { return h->stream.nsubs; }
uint64_t hc_host_dropped_in(const hc_host *h) { return h->dropped_in; }

int hc_host_enc_stats(const hc_host *h, hc_buf *out)
{
    hc_host_stats hs = {.neighbours = h->npeers, .subscribers = h->stream.nsubs, .dropped_in = h->dropped_in};
    return h->ops->stats(h->core, &hs, out);
}

/* ------------------------------------------------------------------ peers */

static host_peer *peer_by_handle(hc_host *h, uint64_t handle)
{
    for (size_t i = 0; i < h->npeers; i++)
        if (h->peers[i].handle == handle)
            return &h->peers[i];
    return NULL;
}

static host_peer *peer_by_id(hc_host *h, hc_atom name, hc_atom node)
{
    for (size_t i = 0; i < h->npeers; i++)
        if (h->peers[i].name == name && h->peers[i].node == node)
            return &h->peers[i];
    return NULL;
}

/* While a neighbour's node is unreachable the core sends it nothing, so nothing would dial it again: the
 * host keeps re-dialling (the runtime backs off between failed attempts), as DeltaCrdt re-monitors absent
 * neighbours every sync interval. */
static void redial(hc_host *h, hc_time now)
{
    bool missing = false;
    for (size_t i = 0; i < h->npeers; i++)
        if (!h->env.is_connected(h->env.ud, h->peers[i].node)) {
            h->env.connect(h->env.ud, h->peers[i].node);
            missing = true;
        }
    h->redial_at = missing ? now.mono_ms + HC_HOST_REDIAL_MS : HC_NO_DEADLINE;
}

/* ------------------------------------------------------------------ effects */

static void send_peer(hc_host *h, uint64_t handle, const uint8_t *msg, size_t len)
{
    host_peer *p = peer_by_handle(h, handle);
    if (!p)
        return; /* a neighbour removed since the core queued this */
    hc_buf *b = &h->out;
    hc_buf_reset(b);
    hc_enc_tuple_header(b, 3);
    hc_enc_atom_cstr(b, "$hordec_replica");
    hc_enc_atom(b, h->cfg.name);
    hc_buf_append(b, msg, len);
    if (!b->err)
        h->env.send_name(h->env.ud, p->node, p->name, b->data, b->len);
}

static void rearm(hc_host *h)
{
    uint64_t at = hc_stream_busy(&h->stream) ? 0 : h->ops->next_deadline(h->core); /* a snapshot in progress: now */
    if (h->redial_at < at)
        at = h->redial_at;
    if (at != h->armed_at) {
        h->armed_at = at;
        h->env.wake_at(h->env.ud, at);
    }
}

static int set_neighbours(hc_host *h, const uint8_t *p, size_t len, size_t i, hc_time now);

/* Drains the core's effects, then sends pending stream diffs and re-arms the wake-up. Results of local
 * actions are fed back once the effects that asked for them are drained (an effect's data is only valid until
 * the next call into the core), and their own effects drained in turn. */
static void pump(hc_host *h, hc_time now)
{
    hc_effect e;
    hc_buf results = {0}; /* [u32 len][term]... */
again:
    while (h->ops->pop_effect(h->core, &e)) {
        switch (e.kind) {
        case HC_EFF_SEND_PEER: send_peer(h, e.peer, e.data, e.len); break;
        case HC_EFF_SEND_PID: h->env.send_pid(h->env.ud, &e.pid, e.data, e.len); break;
        case HC_EFF_REPLY:
            if (!h->hold_stream)
                hc_stream_flush(&h->stream, &h->env); /* changes travel before the reply that caused them */
            h->env.reply(h->env.ud, e.token, e.data, e.len);
            break;
        case HC_EFF_MONITOR: h->env.monitor(h->env.ud, &e.pid, e.id << 1); break;
        case HC_EFF_DEMONITOR: h->env.demonitor(h->env.ud, e.id << 1); break;
        case HC_EFF_EXIT: h->env.exit(h->env.ud, &e.pid, e.data, e.len); break;
        case HC_EFF_EVENT: hc_stream_change(&h->stream, &h->env, e.data, e.len, e.value, e.value_len); break;
        case HC_EFF_NEIGHBOURS:
            if (set_neighbours(h, e.data, e.len, 0, now))
                hc_log_error("%s: the core asked for an invalid neighbour list (ignored)", hc_atom_name(h->cfg.name));
            break;
        case HC_EFF_LOCAL:
            if (h->env.local) {
                hc_buf r = {0};
                h->env.local(h->env.ud, e.data, e.len, &r);
                if (r.len && !r.err && h->ops->local) {
                    hc_buf_put_be32(&results, (uint32_t)r.len);
                    hc_buf_append(&results, r.data, r.len);
                }
                hc_buf_free(&r);
            }
            break;
        }
    }
    if (results.len && !results.err) {
        hc_buf todo = results;
        results = (hc_buf){0};
        for (size_t o = 0; o + 4 <= todo.len;) {
            uint32_t n = hc_get_be32(todo.data + o);
            h->ops->local(h->core, todo.data + o + 4, n, now);
            o += 4 + n;
        }
        hc_buf_free(&todo);
        goto again;
    }
    hc_buf_free(&results);
    if (!h->hold_stream)
        hc_stream_flush(&h->stream, &h->env);
    rearm(h);
}

void hc_host_hold_stream(hc_host *h, bool hold)
{
    h->hold_stream = hold;
    if (!hold)
        hc_stream_flush(&h->stream, &h->env);
}

/* ------------------------------------------------------------------ inputs */

/* A replica of our own name that is not a neighbour contacted us (cores with adopt_peers: their membership is
 * replicated data, and the member that knows it is how a new replica learns it). It becomes a neighbour until
 * the core's next HC_EFF_NEIGHBOURS says otherwise. */
static host_peer *adopt(hc_host *h, hc_atom name, hc_atom node, hc_time now)
{
    if (!strchr(hc_atom_name(node), '@'))
        return NULL;
    host_peer *next = malloc((h->npeers + 1) * sizeof *next);
    if (!next)
        return NULL;
    if (h->npeers)
        memcpy(next, h->peers, h->npeers * sizeof *next);
    next[h->npeers] = (host_peer){++h->next_handle, name, node};
    if (h->ops->set_peers(h->core, next, h->npeers + 1, now)) {
        free(next);
        return NULL;
    }
    free(h->peers);
    h->peers = next;
    h->npeers++;
    redial(h, now);
    return &h->peers[h->npeers - 1];
}

void hc_host_message(hc_host *h, const hc_pid *from, const uint8_t *msg, size_t len, hc_time now)
{
    size_t i = 0;
    uint32_t arity;
    hc_atom sender;
    if (!from || hc_dec_tuple_header(msg, len, &i, &arity) || arity != 3 ||
        !hc_dec_is_atom(msg, len, &i, "$hordec_replica") || hc_dec_atom(msg, len, &i, &sender)) {
        h->dropped_in++;
        hc_log_debug("%s: dropped a message that is not a replica message", hc_atom_name(h->cfg.name));
        return;
    }
    host_peer *p = peer_by_id(h, sender, from->node);
    if (!p && h->ops->adopt_peers && sender == h->cfg.name && from->node != h->cfg.node)
        p = adopt(h, sender, from->node, now);
    if (!p) {
        h->dropped_in++;
        return;
    }
    int rc = h->ops->receive(h->core, p->handle, msg + i, len - i, now);
    if (rc && rc != HC_ESTATE && (!h->last_warn_ms || now.mono_ms - h->last_warn_ms >= 1000)) {
        h->last_warn_ms = now.mono_ms; /* at most one line a second: a bad peer cannot flood the log */
        hc_log_warn("%s: rejected a message from %s on %s: %s (counted in stats)", hc_atom_name(h->cfg.name),
                    hc_atom_name(sender), hc_atom_name(from->node), hc_strerror(rc));
    }
    pump(h, now);
}

void hc_host_tick(hc_host *h, hc_time now)
{
    h->armed_at = HC_NO_DEADLINE; /* the wake-up that brought us here is spent */
    if (now.mono_ms >= h->redial_at)
        redial(h, now);
    if (now.mono_ms >= h->ops->next_deadline(h->core))
        h->ops->tick(h->core, now);
    if (hc_stream_busy(&h->stream))
        hc_stream_run(&h->stream, &h->env); /* the next slice of the big snapshots being sent */
    pump(h, now);
}

void hc_host_node_event(hc_host *h, hc_atom node, bool up, hc_time now)
{
    bool ours = false;
    for (size_t i = 0; i < h->npeers; i++)
        if (h->peers[i].node == node) {
            (up ? h->ops->peer_up : h->ops->peer_down)(h->core, h->peers[i].handle, now);
            ours = true;
        }
    if (ours && !up && h->redial_at == HC_NO_DEADLINE)
        h->redial_at = now.mono_ms + HC_HOST_REDIAL_MS;
    if (up && h->ops->node_up)
        h->ops->node_up(h->core, node, now);
    pump(h, now);
}

void hc_host_monitor_down(hc_host *h, uint64_t id, const hc_pid *pid, const uint8_t *reason, size_t len, hc_time now)
{
    if (hc_stream_is_mon(id))
        hc_stream_down(&h->stream, &h->env, id);
    else if (h->ops->monitor_down)
        h->ops->monitor_down(h->core, id >> 1, pid, reason, len, now);
    pump(h, now);
}

void hc_host_local(hc_host *h, const uint8_t *msg, size_t len, hc_time now)
{
    if (h->ops->local)
        h->ops->local(h->core, msg, len, now);
    pump(h, now);
}

/* ------------------------------------------------------------------ requests every core shares */

static void reply_buf(hc_host *h, uint64_t token, hc_buf *b)
{
    if (b->err) {
        hc_buf_reset(b);
        hc_enc_tuple_header(b, 2);
        hc_enc_atom_cstr(b, "error");
        hc_enc_atom_cstr(b, "enomem");
    }
    h->env.reply(h->env.ud, token, b->data, b->len);
}

static void reply_atom(hc_host *h, uint64_t token, const char *atom)
{
    hc_buf b = {0};
    hc_enc_atom_cstr(&b, atom);
    reply_buf(h, token, &b);
    hc_buf_free(&b);
}

static void reply_error(hc_host *h, uint64_t token, const char *reason)
{
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "error");
    hc_enc_atom_cstr(&b, reason);
    reply_buf(h, token, &b);
    hc_buf_free(&b);
}

/* Replaces the neighbour set with the list term [{Name, Node}] that starts at p[i] and ends the input.
 * The whole list is validated before anything changes. Horde lists every member, this replica included,
 * so an entry naming ourselves is skipped; duplicates collapse. Used by the set_neighbours request and by
 * cores that steer their own membership (HC_EFF_NEIGHBOURS). */
static int set_neighbours(hc_host *h, const uint8_t *p, size_t len, size_t i, hc_time now)
{
    uint32_t n;
    if (hc_dec_list_header(p, len, &i, &n) || n > (len - i) / 3)
        return HC_EINVAL;
    host_peer *next = calloc(n ? n : 1, sizeof *next);
    if (!next)
        return HC_ENOMEM;
    int rc = HC_OK;
    size_t k = 0;
    for (uint32_t e = 0; e < n; e++) {
        uint32_t arity;
        hc_atom name, node;
        if (hc_dec_tuple_header(p, len, &i, &arity) || arity != 2 || hc_dec_atom(p, len, &i, &name) ||
            hc_dec_atom(p, len, &i, &node) || !name || !strchr(hc_atom_name(node), '@')) {
            rc = HC_EINVAL;
            break;
        }
        if (node == h->cfg.node && name == h->cfg.name)
            continue;
        bool dup = false;
        for (size_t q = 0; q < k; q++)
            dup |= next[q].name == name && next[q].node == node;
        if (dup)
            continue;
        host_peer *old = peer_by_id(h, name, node);
        next[k++] = (host_peer){old ? old->handle : ++h->next_handle, name, node};
    }
    if (rc == HC_OK && (n ? hc_peek_type(p, len, i) != 106 || i + 1 != len : i != len))
        rc = HC_EINVAL; /* improper list or trailing bytes */
    if (rc == HC_OK)
        rc = h->ops->set_peers(h->core, next, k, now);
    if (rc == HC_OK) {
        free(h->peers);
        h->peers = next;
        h->npeers = k;
        redial(h, now);
    } else {
        free(next);
    }
    return rc;
}

static bool is_call(const uint8_t *req, size_t len, size_t *i, uint32_t arity, const char *op)
{
    size_t j = 0;
    uint32_t a;
    if (hc_dec_tuple_header(req, len, &j, &a) || a != arity || !hc_dec_is_atom(req, len, &j, op))
        return false;
    *i = j;
    return true;
}

void hc_host_request(hc_host *h, uint64_t token, const hc_pid *from, const uint8_t *req, size_t len, hc_time now)
{
    size_t i = 0;
    hc_pid pid;
    if (hc_dec_is_atom(req, len, &i, "stats") && i == len) {
        hc_buf b = {0};
        hc_host_enc_stats(h, &b);
        reply_buf(h, token, &b);
        hc_buf_free(&b);
    } else if (is_call(req, len, &i, 2, "set_neighbours")) {
        int rc = set_neighbours(h, req, len, i, now);
        if (rc)
            reply_error(h, token, rc == HC_ENOMEM ? "enomem" : "badarg");
        else
            reply_atom(h, token, "ok");
    } else if (is_call(req, len, &i, 2, "stream_subscribe")) {
        /* answered by the stream: now, or once the last part of a big snapshot is out */
        if (hc_dec_pid(req, len, &i, &pid) || i != len)
            reply_error(h, token, "badarg");
        else if (hc_stream_subscribe(&h->stream, &h->env, token, &pid, h->ops, h->core))
            reply_error(h, token, "enomem");
    } else if (is_call(req, len, &i, 2, "stream_unsubscribe")) {
        if (hc_dec_pid(req, len, &i, &pid) || i != len) {
            reply_error(h, token, "badarg");
        } else {
            hc_stream_unsubscribe(&h->stream, &h->env, &pid, true);
            reply_atom(h, token, "ok");
        }
    } else {
        h->ops->request(h->core, token, from, req, len, now);
    }
    pump(h, now);
}
