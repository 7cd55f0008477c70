/* replica_host.c — see replica_host.h.
 *
 * Between replicas, every engine message travels wrapped as {'$hordec_replica', SenderName, Msg}: the
 * REG_SEND tells us the sender's node, the wrapper its registered name, and the pair is the neighbour
 * identity the engine knows as a peer handle. */
#include "replica/replica_host.h"

#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hordec/hc_log.h"
#include "replica/termlist.h"

typedef struct peer_slot {
    uint64_t handle;
    hc_atom name, node;
} peer_slot;

typedef struct subscriber {
    hc_pid pid;
    hc_ref mon;
} subscriber;

typedef struct replica {
    hc_rt *rt;
    hc_proc *self;
    hc_atom name;
    hc_crdt *crdt;
    peer_slot *peers;
    size_t npeers, cappeers;
    uint64_t next_handle;
    hc_timer_id timer;
    uint64_t timer_at; /* monotonic deadline the timer is armed for */
    subscriber *subs;
    size_t nsubs, capsubs;
    uint64_t node_sub;
    hc_timer_id reconnect_timer;
    uint64_t dropped_in; /* messages from processes that are not neighbours, or malformed wrappers */
    uint64_t last_warn_ms; /* rejections are logged at most once a second: a bad peer cannot flood the log */
} replica;

static const hc_proc_ops replica_ops;

bool hordec_is_replica(const hc_proc *p) { return p && hc_proc_get_ops(p) == &replica_ops; }

/* Deadlines are the loop's monotonic time; wall-clock time only stamps HLC timestamps, which must be
 * comparable across nodes. */
static hc_time host_now(const hc_rt *rt)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (hc_time){hc_rt_now_ms(rt), (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000};
}

/* ------------------------------------------------------------------ effects */

static void on_timer(hc_rt *rt, void *ud);

static void arm_timer(replica *r)
{
    uint64_t d = hc_crdt_next_deadline(r->crdt);
    if (d == HC_CRDT_NO_DEADLINE)
        return;
    if (r->timer && r->timer_at <= d)
        return;
    if (r->timer)
        hc_timer_cancel(r->rt, r->timer);
    uint64_t now = hc_rt_now_ms(r->rt);
    r->timer_at = d;
    hc_timer_start(r->rt, d > now ? d - now : 0, on_timer, r, &r->timer);
}

static peer_slot *peer_by_handle(replica *r, uint64_t h)
{
    for (size_t i = 0; i < r->npeers; i++)
        if (r->peers[i].handle == h)
            return &r->peers[i];
    return NULL;
}

static peer_slot *peer_by_id(replica *r, hc_atom name, hc_atom node)
{
    for (size_t i = 0; i < r->npeers; i++)
        if (r->peers[i].name == name && r->peers[i].node == node)
            return &r->peers[i];
    return NULL;
}

static void send_messages(replica *r)
{
    hc_crdt_msg m;
    hc_buf b = {0};
    while (hc_crdt_pop_message(r->crdt, &m)) {
        peer_slot *p = peer_by_handle(r, m.peer);
        if (!p)
            continue;
        hc_buf_reset(&b);
        if (hc_enc_tuple_header(&b, 3) || hc_enc_atom_cstr(&b, "$hordec_replica") || hc_enc_atom(&b, r->name) ||
            hc_buf_append(&b, m.data, m.len))
            break;
        /* A failed send (queue full, node blocked) is a lost message: the engine re-sends what is not
         * acknowledged, so nothing is lost for good. */
        hc_send_name(r->rt, r->self, p->node, p->name, b.data, b.len);
    }
    hc_buf_free(&b);
}

/* Change events go to subscribers as {hordec_crdt_diffs, Name, [{add, K, V} | {remove, K}]}. */
static void send_events(replica *r)
{
    hc_crdt_event e;
    hc_buf body = {0}, msg = {0};
    uint32_t n = 0;
    while (hc_crdt_pop_event(r->crdt, &e)) {
        if (!r->nsubs)
            continue;
        int rc = e.kind == HC_CRDT_REMOVED
                     ? hc_enc_tuple_header(&body, 2) || hc_enc_atom_cstr(&body, "remove") ||
                           hc_buf_append(&body, e.key, e.key_len)
                     : hc_enc_tuple_header(&body, 3) || hc_enc_atom_cstr(&body, "add") ||
                           hc_buf_append(&body, e.key, e.key_len) || hc_buf_append(&body, e.new_value, e.new_len);
        if (rc)
            break;
        n++;
    }
    if (n && !hc_enc_tuple_header(&msg, 3) && !hc_enc_atom_cstr(&msg, "hordec_crdt_diffs") &&
        !hc_enc_atom(&msg, r->name) && !hc_enc_list_header(&msg, n) && !hc_buf_append(&msg, body.data, body.len) &&
        !hc_enc_nil(&msg)) {
        for (size_t i = 0; i < r->nsubs; i++)
            hc_send(r->rt, r->self, &r->subs[i].pid, msg.data, msg.len);
    }
    hc_buf_free(&body);
    hc_buf_free(&msg);
}

static void pump(replica *r)
{
    send_messages(r);
    send_events(r);
    arm_timer(r);
}

static void on_timer(hc_rt *rt, void *ud)
{
    replica *r = ud;
    r->timer = 0;
    hc_crdt_tick(r->crdt, host_now(rt));
    pump(r);
    (void)rt;
}

/* While a neighbour's node is unreachable the engine sends it nothing, so nothing would ever dial it
 * again: we keep trying to reconnect (the runtime backs off between failed attempts), as DeltaCrdt
 * re-monitors absent neighbours every sync interval. */
#define RECONNECT_MS 200

static void reconnect_tick(hc_rt *rt, void *ud)
{
    replica *r = ud;
    r->reconnect_timer = 0;
    bool missing = false;
    for (size_t i = 0; i < r->npeers; i++) {
        if (!hc_rt_is_connected(rt, r->peers[i].node)) {
            hc_rt_connect(rt, r->peers[i].node);
            missing = true;
        }
    }
    if (missing)
        hc_timer_start(rt, RECONNECT_MS, reconnect_tick, r, &r->reconnect_timer);
}

static void on_node_event(hc_rt *rt, const hc_node_event *ev, void *ud)
{
    replica *r = ud;
    hc_atom node = ev->node;
    bool up = ev->up;
    hc_time now = host_now(rt);
    bool ours = false;
    for (size_t i = 0; i < r->npeers; i++)
        if (r->peers[i].node == node) {
            (up ? hc_crdt_peer_up : hc_crdt_peer_down)(r->crdt, r->peers[i].handle, now);
            ours = true;
        }
    if (ours && !up && !r->reconnect_timer)
        hc_timer_start(rt, RECONNECT_MS, reconnect_tick, r, &r->reconnect_timer);
    pump(r);
}

/* ------------------------------------------------------------------ replies */

static void reply_status(hc_rt *rt, const hc_gen_from *from, int rc)
{
    if (rc == HC_OK)
        hc_gen_reply_atom(rt, from, "ok");
    else
        hc_gen_reply_error(rt, from, rc == HC_ETOOBIG ? "too_big" : rc == HC_ENOMEM ? "enomem" : "badarg");
}

typedef struct map_builder {
    hc_buf *b;
    int rc;
} map_builder;

static int add_pair(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    map_builder *mb = ud;
    mb->rc = hc_buf_append(mb->b, k, kl) || hc_buf_append(mb->b, v, vl) ? HC_ENOMEM : HC_OK;
    return mb->rc;
}

static void reply_to_map(replica *r, const hc_gen_from *from)
{
    hc_buf b = {0};
    map_builder mb = {&b, HC_OK};
    if (!hc_enc_map_header(&b, (uint32_t)hc_crdt_size(r->crdt)) && !hc_crdt_foreach(r->crdt, add_pair, &mb))
        hc_gen_reply(r->rt, from, b.data, b.len);
    else
        hc_gen_reply_error(r->rt, from, "enomem");
    hc_buf_free(&b);
}

static void reply_take(replica *r, const hc_gen_from *from, const uint8_t *req, size_t len, size_t i)
{
    hc_list_iter it;
    if (hc_list_begin(&it, req, len, &i) || i != len) {
        hc_gen_reply_error(r->rt, from, "badarg");
        return;
    }
    hc_buf body = {0}, b = {0};
    uint32_t n = 0;
    const uint8_t *k, *v;
    size_t kl, vl;
    int more;
    while ((more = hc_list_next(&it, &k, &kl)) == 1) {
        if (hc_crdt_get(r->crdt, k, kl, &v, &vl)) {
            hc_buf_append(&body, k, kl);
            hc_buf_append(&body, v, vl);
            n++;
        }
    }
    if (!hc_enc_map_header(&b, n) && !hc_buf_append(&b, body.data, body.len))
        hc_gen_reply(r->rt, from, b.data, b.len);
    hc_buf_free(&body);
    hc_buf_free(&b);
}

static int put_stat(hc_buf *b, const char *k, uint64_t v) { return hc_enc_atom_cstr(b, k) || hc_enc_ulong(b, v); }

static void reply_stats(replica *r, const hc_gen_from *from)
{
    hc_crdt_stats s;
    hc_crdt_get_stats(r->crdt, &s);
    uint64_t sent = 0, recv = 0, sentb = 0, recvb = 0, rej = 0;
    for (int i = 0; i < HC_CRDT_MSG__COUNT; i++) {
        sent += s.sent_msgs[i];
        recv += s.recv_msgs[i];
        sentb += s.sent_bytes[i];
        recvb += s.recv_bytes[i];
    }
    for (int i = 0; i < HC_CRDT_REJ__COUNT; i++)
        rej += s.rejected[i];
    hc_buf b = {0};
    if (!hc_enc_map_header(&b, 14) && !put_stat(&b, "keys", s.keys) && !put_stat(&b, "elements", s.elements) &&
        !put_stat(&b, "key_bytes", s.key_bytes) && !put_stat(&b, "value_bytes", s.value_bytes) &&
        !put_stat(&b, "replica_id", hc_crdt_replica_id(r->crdt)) && !put_stat(&b, "neighbours", r->npeers) &&
        !put_stat(&b, "msgs_sent", sent) && !put_stat(&b, "msgs_received", recv) &&
        !put_stat(&b, "bytes_sent", sentb) && !put_stat(&b, "bytes_received", recvb) &&
        !put_stat(&b, "rejected", rej + r->dropped_in) && !put_stat(&b, "repairs_completed", s.repairs_completed) &&
        !put_stat(&b, "retransmits", s.retransmits) && !hc_enc_atom_cstr(&b, "idle") &&
        !hc_enc_atom_cstr(&b, hc_crdt_idle(r->crdt) ? "true" : "false"))
        hc_gen_reply(r->rt, from, b.data, b.len);
    hc_buf_free(&b);
}

/* ------------------------------------------------------------------ requests */

static int set_neighbours(replica *r, const uint8_t *req, size_t len, size_t i)
{
    hc_list_iter it;
    if (hc_list_begin(&it, req, len, &i) || i != len)
        return HC_EINVAL;
    size_t n = it.left;
    peer_slot *next = calloc(n ? n : 1, sizeof *next);
    uint64_t *handles = calloc(n ? n : 1, sizeof *handles);
    if (!next || !handles) {
        free(next);
        free(handles);
        return HC_ENOMEM;
    }
    const uint8_t *t;
    size_t tl, k = 0;
    int rc = HC_OK;
    while (rc == HC_OK && hc_list_next(&it, &t, &tl) == 1) {
        size_t j = 0;
        uint32_t arity;
        hc_atom name, node;
        if (hc_dec_tuple_header(t, tl, &j, &arity) || arity != 2 || hc_dec_atom(t, tl, &j, &name) ||
            hc_dec_atom(t, tl, &j, &node) || j != tl || !strchr(hc_atom_name(node), '@')) {
            rc = HC_EINVAL;
            break;
        }
        if (node == hc_rt_node(r->rt) && name == r->name)
            continue; /* ourselves: Horde lists every member, self included */
        bool dup = false;
        for (size_t q = 0; q < k; q++)
            dup |= next[q].name == name && next[q].node == node;
        if (dup)
            continue;
        peer_slot *old = peer_by_id(r, name, node);
        next[k] = (peer_slot){old ? old->handle : ++r->next_handle, name, node};
        handles[k] = next[k].handle;
        k++;
    }
    if (rc == HC_OK)
        rc = hc_crdt_set_neighbours(r->crdt, handles, k, host_now(r->rt));
    if (rc == HC_OK) {
        free(r->peers);
        r->peers = next;
        r->npeers = k;
        r->cappeers = n;
        for (size_t q = 0; q < k; q++)
            hc_rt_connect(r->rt, next[q].node);
    } else {
        free(next);
    }
    free(handles);
    return rc;
}

static int merge_map(replica *r, const uint8_t *req, size_t len, size_t i)
{
    if (i >= len || req[i] != 116 || len - i < 5)
        return HC_EINVAL;
    uint32_t n = hc_get_be32(req + i + 1);
    i += 5;
    if (n > (len - i) / 2)
        return HC_EINVAL;
    hc_crdt_kv *ops = calloc(n ? n : 1, sizeof *ops);
    if (!ops)
        return HC_ENOMEM;
    int rc = HC_OK;
    for (uint32_t k = 0; k < n && rc == HC_OK; k++) {
        size_t s = i;
        if (hc_dec_skip(req, len, &i)) {
            rc = HC_EINVAL;
            break;
        }
        ops[k].key = req + s;
        ops[k].key_len = i - s;
        s = i;
        if (hc_dec_skip(req, len, &i)) {
            rc = HC_EINVAL;
            break;
        }
        ops[k].value = req + s;
        ops[k].value_len = i - s;
    }
    if (rc == HC_OK && i != len)
        rc = HC_EINVAL;
    if (rc == HC_OK)
        rc = hc_crdt_bulk(r->crdt, ops, n, host_now(r->rt));
    free(ops);
    return rc;
}

static int drop_keys(replica *r, const uint8_t *req, size_t len, size_t i)
{
    hc_list_iter it;
    if (hc_list_begin(&it, req, len, &i) || i != len)
        return HC_EINVAL;
    size_t n = it.left;
    hc_crdt_kv *ops = calloc(n ? n : 1, sizeof *ops);
    if (!ops)
        return HC_ENOMEM;
    size_t k = 0;
    const uint8_t *t;
    size_t tl;
    /* STRING_EXT elements live in the iterator's scratch: copy them out first. */
    uint8_t (*small)[2] = calloc(n ? n : 1, 2);
    if (!small) {
        free(ops);
        return HC_ENOMEM;
    }
    while (hc_list_next(&it, &t, &tl) == 1) {
        if (it.string) {
            memcpy(small[k], t, 2);
            t = small[k];
        }
        ops[k].key = t;
        ops[k].key_len = tl;
        k++;
    }
    int rc = hc_crdt_bulk(r->crdt, ops, k, host_now(r->rt));
    free(small);
    free(ops);
    return rc;
}

static int subscribe(replica *r, const hc_pid *pid)
{
    for (size_t i = 0; i < r->nsubs; i++)
        if (hc_pid_eq(&r->subs[i].pid, pid))
            return HC_OK;
    if (hc_array_reserve((void **)&r->subs, &r->capsubs, r->nsubs + 1, sizeof *r->subs, 4))
        return HC_ENOMEM;
    subscriber *s = &r->subs[r->nsubs];
    if (hc_monitor(r->rt, r->self, pid, 0, 0, &s->mon))
        return HC_ENOMEM;
    s->pid = *pid;
    r->nsubs++;
    return HC_OK;
}

static void unsubscribe_at(replica *r, size_t i, bool demonitor)
{
    if (demonitor)
        hc_demonitor(r->rt, r->self, &r->subs[i].mon);
    r->subs[i] = r->subs[--r->nsubs];
}

static bool is_op(const uint8_t *req, size_t len, size_t *i, uint32_t arity, uint32_t want, const char *op)
{
    size_t j = *i;
    if (arity != want || !hc_dec_is_atom(req, len, &j, op))
        return false;
    *i = j;
    return true;
}

static void on_call(hc_rt *rt, hc_proc *self, const hc_gen_from *from, const uint8_t *req, size_t len)
{
    replica *r = hc_proc_state(self);
    hc_time now = host_now(rt);
    size_t i = 0;
    uint32_t arity = 0;
    if (hc_dec_is_atom(req, len, &i, "to_map") && i == len) {
        reply_to_map(r, from);
        return;
    }
    i = 0;
    if (hc_dec_is_atom(req, len, &i, "stats") && i == len) {
        reply_stats(r, from);
        return;
    }
    i = 0;
    if (hc_dec_tuple_header(req, len, &i, &arity) || arity < 2) {
        hc_gen_reply_error(rt, from, "badarg");
        return;
    }
    size_t a = i;
    int rc;
    if (is_op(req, len, &i, arity, 3, "put")) {
        size_t k0 = i, k1, v0;
        if (hc_dec_skip(req, len, &i) || (k1 = i, v0 = i, hc_dec_skip(req, len, &i)) || i != len) {
            hc_gen_reply_error(rt, from, "badarg");
            return;
        }
        rc = hc_crdt_put(r->crdt, req + k0, k1 - k0, req + v0, len - v0, now);
        reply_status(rt, from, rc);
    } else if ((i = a, is_op(req, len, &i, arity, 2, "delete"))) {
        size_t k0 = i;
        rc = hc_dec_skip(req, len, &i) || i != len ? HC_EINVAL : hc_crdt_delete(r->crdt, req + k0, len - k0, now);
        reply_status(rt, from, rc);
    } else if ((i = a, is_op(req, len, &i, arity, 2, "get"))) {
        size_t k0 = i;
        const uint8_t *v;
        size_t vl;
        if (hc_dec_skip(req, len, &i) || i != len) {
            hc_gen_reply_error(rt, from, "badarg");
        } else if (hc_crdt_get(r->crdt, req + k0, len - k0, &v, &vl)) {
            hc_gen_reply_ok(rt, from, v, vl);
        } else {
            hc_gen_reply_atom(rt, from, "error");
        }
    } else if ((i = a, is_op(req, len, &i, arity, 2, "take"))) {
        reply_take(r, from, req, len, i);
    } else if ((i = a, is_op(req, len, &i, arity, 2, "merge"))) {
        reply_status(rt, from, merge_map(r, req, len, i));
    } else if ((i = a, is_op(req, len, &i, arity, 2, "drop"))) {
        reply_status(rt, from, drop_keys(r, req, len, i));
    } else if ((i = a, is_op(req, len, &i, arity, 2, "set_neighbours"))) {
        reply_status(rt, from, set_neighbours(r, req, len, i));
    } else if ((i = a, is_op(req, len, &i, arity, 2, "subscribe"))) {
        hc_pid pid;
        rc = hc_dec_pid(req, len, &i, &pid) || i != len ? HC_EINVAL : subscribe(r, &pid);
        reply_status(rt, from, rc);
    } else if ((i = a, is_op(req, len, &i, arity, 2, "unsubscribe"))) {
        hc_pid pid;
        rc = hc_dec_pid(req, len, &i, &pid) || i != len ? HC_EINVAL : HC_OK;
        for (size_t s = 0; rc == HC_OK && s < r->nsubs; s++)
            if (hc_pid_eq(&r->subs[s].pid, &pid)) {
                unsubscribe_at(r, s, true);
                break;
            }
        reply_status(rt, from, rc);
    } else {
        hc_gen_reply_error(rt, from, "badarg");
    }
    pump(r);
}

/* Sync messages from other replicas: {'$hordec_replica', SenderName, EngineMessage}. */
static void on_message(hc_rt *rt, hc_proc *self, const hc_pid *from, const uint8_t *msg, size_t len)
{
    replica *r = hc_proc_state(self);
    size_t i = 0;
    uint32_t arity;
    hc_atom sender;
    if (!from || hc_dec_tuple_header(msg, len, &i, &arity) || arity != 3 ||
        !hc_dec_is_atom(msg, len, &i, "$hordec_replica") || hc_dec_atom(msg, len, &i, &sender)) {
        r->dropped_in++;
        hc_log_debug("replica %s: dropped a message that is not a replica message", hc_atom_name(r->name));
        return;
    }
    peer_slot *p = peer_by_id(r, sender, from->node);
    if (!p) {
        r->dropped_in++;
        return;
    }
    hc_time now = host_now(rt);
    int rc = hc_crdt_receive(r->crdt, p->handle, msg + i, len - i, now);
    if (rc && rc != HC_ESTATE && (!r->last_warn_ms || now.mono_ms - r->last_warn_ms >= 1000)) {
        r->last_warn_ms = now.mono_ms;
        hc_log_warn("replica %s: rejected a message from %s on %s: %s (counted in stats)", hc_atom_name(r->name),
                    hc_atom_name(sender), hc_atom_name(from->node), hc_strerror(rc));
    }
    pump(r);
    (void)rt;
}

static void on_down(hc_rt *rt, hc_proc *self, const hc_down *d)
{
    replica *r = hc_proc_state(self);
    for (size_t i = 0; i < r->nsubs; i++)
        if (hc_ref_eq(&r->subs[i].mon, &d->ref)) {
            unsubscribe_at(r, i, false);
            return;
        }
    (void)rt;
}

static void on_terminate(hc_rt *rt, hc_proc *self, const uint8_t *reason, size_t rlen)
{
    replica *r = hc_proc_state(self);
    if (r->timer)
        hc_timer_cancel(rt, r->timer);
    if (r->reconnect_timer)
        hc_timer_cancel(rt, r->reconnect_timer);
    hc_rt_unsubscribe_nodes(rt, r->node_sub);
    hc_crdt_free(r->crdt);
    free(r->peers);
    free(r->subs);
    free(r);
    (void)reason, (void)rlen;
}

static const hc_proc_ops replica_ops = {
    .on_call = on_call, .on_message = on_message, .on_down = on_down, .on_terminate = on_terminate};

int hordec_replica_start(hc_rt *rt, hc_atom name, const hordec_replica_opts *opts, hc_proc **out)
{
    hc_proc *existing = hc_proc_whereis(rt, name);
    if (existing) {
        if (hordec_is_replica(existing)) {
            *out = existing;
            return HC_OK;
        }
        return HC_EEXIST;
    }
    uint64_t id = 0;
    while (!id && RAND_bytes((unsigned char *)&id, sizeof id) == 1)
        ;
    if (!id)
        return HC_ENOMEM;
    hc_crdt_config cfg;
    hc_crdt_config_init(&cfg, id);
    if (opts && opts->flush_interval_ms)
        cfg.flush_interval_ms = opts->flush_interval_ms;
    if (opts && opts->max_message_bytes)
        cfg.max_message_bytes = opts->max_message_bytes;
    replica *r = calloc(1, sizeof *r);
    if (!r)
        return HC_ENOMEM;
    int rc = hc_crdt_new(&cfg, host_now(rt), &r->crdt);
    if (rc) {
        free(r);
        return rc;
    }
    r->rt = rt;
    r->name = name;
    rc = hc_proc_spawn(rt, &replica_ops, r, name, &r->self);
    if (rc) { /* nothing was created: r is still ours */
        hc_crdt_free(r->crdt);
        free(r);
        return rc;
    }
    rc = hc_rt_subscribe_nodes(rt, on_node_event, r, &r->node_sub);
    if (rc) {
        hc_term_span n = hc_reason_normal();
        hc_proc_exit(rt, r->self, n.p, n.len); /* frees r through on_terminate */
        return rc;
    }
    hc_log_info("replica %s started (id %016llx)", hc_atom_name(name), (unsigned long long)id);
    *out = r->self;
    return HC_OK;
}
