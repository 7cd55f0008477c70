/* stream.c — see stream.h. */
#include "host/stream.h"

#include <stdlib.h>

#include "hordec/hc_log.h"

void hc_stream_init(hc_stream *s, hc_atom name, size_t batch_bytes, uint64_t epoch_base)
{
    *s =
        (hc_stream){.name = name, .batch_bytes = batch_bytes, .next_epoch = epoch_base ? epoch_base : 1, .next_mon = 1};
}

struct hc_stream_snap {
    const hc_core_ops *ops;
    void *reader;   /* the core's reader of the map of the moment of the subscription */
    uint64_t token; /* the subscribe call, answered after the last part */
    hc_buf part;    /* encoded {K, V} entries of the part being filled */
    uint32_t n;
    hc_buf held; /* diff batches made since the subscription, each [be32 entries][be32 bytes][entries] */
};

static void snap_free(hc_stream *s, hc_stream_snap *sn)
{
    if (!sn)
        return;
    sn->ops->snapshot_close(sn->reader);
    hc_buf_free(&sn->part);
    hc_buf_free(&sn->held);
    free(sn);
    s->nsnaps--;
}

void hc_stream_free(hc_stream *s)
{
    for (size_t i = 0; i < s->nsubs; i++)
        snap_free(s, s->subs[i].snap); /* their calls go unanswered: the host is going away */
    free(s->subs);
    hc_buf_free(&s->items);
    hc_buf_free(&s->msg);
    *s = (hc_stream){0};
}

/* {hordec_stream, Name, Epoch, Seq, {Tag, [Items] ...}: everything up to the list's elements. */
static void begin_msg(hc_stream *s, hc_stream_sub *sub, const char *tag, uint32_t body_arity, uint32_t n)
{
    hc_buf *b = &s->msg;
    hc_buf_reset(b);
    hc_enc_tuple_header(b, 5);
    hc_enc_atom_cstr(b, "hordec_stream");
    hc_enc_atom(b, s->name);
    hc_enc_ulong(b, sub->epoch);
    hc_enc_ulong(b, ++sub->seq);
    hc_enc_tuple_header(b, body_arity);
    hc_enc_atom_cstr(b, tag);
    if (n)
        hc_enc_list_header(b, n);
}

/* Sends s->msg, or drops the subscriber's stream position when encoding failed: the subscriber then sees a
 * gap at the next message and resubscribes, which is the stream's answer to every doubt. */
static void send_msg(hc_stream *s, const hc_host_env *env, const hc_stream_sub *sub)
{
    if (s->msg.err) {
        hc_log_warn("stream %s: could not encode a message (%s); the subscriber will resync", hc_atom_name(s->name),
                    hc_strerror(s->msg.err));
        return;
    }
    env->send_pid(env->ud, &sub->pid, s->msg.data, s->msg.len);
}

static void reply_term(const hc_host_env *env, uint64_t token, const char *tag, const char *reason, uint64_t n)
{
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, tag);
    if (reason)
        hc_enc_atom_cstr(&b, reason);
    else
        hc_enc_ulong(&b, n);
    /* {error, enomem} when even that could not be built: every call gets its one reply */
    static const uint8_t enomem[] = {104, 2, 119, 5, 'e', 'r', 'r', 'o', 'r', 119, 6, 'e', 'n', 'o', 'm', 'e', 'm'};
    if (!b.err)
        env->reply(env->ud, token, b.data, b.len);
    else
        env->reply(env->ud, token, enomem, sizeof enomem);
    hc_buf_free(&b);
}

static void reply_ok(const hc_host_env *env, uint64_t token, uint64_t epoch)
{
    reply_term(env, token, "ok", NULL, epoch);
}

/* A subscriber whose snapshot is still being sent keeps the batch for later (a batch it cannot keep makes its
 * snapshot fail, so that it never misses a change unknowingly). */
static void hold_batch(hc_stream *s, hc_stream_snap *sn)
{
    hc_buf_put_be32(&sn->held, s->n_items);
    hc_buf_put_be32(&sn->held, (uint32_t)s->items.len);
    hc_buf_append(&sn->held, s->items.data, s->items.len);
    if (s->items.err && !sn->held.err)
        sn->held.err = s->items.err;
}

void hc_stream_flush(hc_stream *s, const hc_host_env *env)
{
    if (!s->n_items)
        return;
    for (size_t i = 0; i < s->nsubs; i++) {
        if (s->subs[i].snap) {
            hold_batch(s, s->subs[i].snap);
            continue;
        }
        begin_msg(s, &s->subs[i], "diffs", 2, s->n_items);
        hc_buf_append(&s->msg, s->items.data, s->items.len);
        hc_enc_nil(&s->msg);
        if (s->items.err && !s->msg.err)
            s->msg.err = s->items.err;
        send_msg(s, env, &s->subs[i]);
    }
    hc_buf_reset(&s->items);
    s->n_items = 0;
}

void hc_stream_change(hc_stream *s, const hc_host_env *env, const uint8_t *key, size_t klen, const uint8_t *val,
                      size_t vlen)
{
    if (!s->nsubs)
        return;
    size_t item = 8 + klen + (val ? vlen + 4 : 7); /* {add, K, V} | {remove, K}, tags included */
    if (s->n_items && s->items.len + item > s->batch_bytes)
        hc_stream_flush(s, env);
    hc_buf *b = &s->items;
    hc_enc_tuple_header(b, val ? 3 : 2);
    hc_enc_atom_cstr(b, val ? "add" : "remove");
    hc_buf_append(b, key, klen);
    if (val)
        hc_buf_append(b, val, vlen);
    s->n_items++;
    if (s->items.len >= s->batch_bytes)
        hc_stream_flush(s, env); /* an entry at or over the bound travels alone */
}

typedef struct snap_ctx {
    hc_stream *s;
    hc_buf part; /* encoded {K, V} entries of the part being filled */
    uint32_t n;
    hc_buf *parts; /* finished parts; sent once the last one is known, so each can say More */
    uint32_t *counts;
    size_t nparts, capparts, capcounts;
    int rc;
} snap_ctx;

static int close_part(snap_ctx *c)
{
    if (hc_array_reserve((void **)&c->parts, &c->capparts, c->nparts + 1, sizeof *c->parts, 4) ||
        hc_array_reserve((void **)&c->counts, &c->capcounts, c->nparts + 1, sizeof *c->counts, 4))
        return HC_ENOMEM;
    c->parts[c->nparts] = c->part;
    c->counts[c->nparts++] = c->n;
    c->part = (hc_buf){0};
    c->n = 0;
    return HC_OK;
}

static int snap_entry(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    snap_ctx *c = ud;
    if (c->n && c->part.len + kl + vl + 2 > c->s->batch_bytes && (c->rc = close_part(c)))
        return c->rc;
    hc_enc_tuple_header(&c->part, 2);
    hc_buf_append(&c->part, k, kl);
    hc_buf_append(&c->part, v, vl);
    c->n++;
    return c->rc = c->part.err;
}

static void snap_ctx_free(snap_ctx *c)
{
    for (size_t i = 0; i < c->nparts; i++)
        hc_buf_free(&c->parts[i]);
    free(c->parts);
    free(c->counts);
    hc_buf_free(&c->part);
}

static hc_stream_sub *find_sub(hc_stream *s, const hc_pid *pid)
{
    for (size_t i = 0; i < s->nsubs; i++)
        if (hc_pid_eq(&s->subs[i].pid, pid))
            return &s->subs[i];
    return NULL;
}

/* The subscriber's state for a new epoch; a snapshot of its previous subscription still being sent is abandoned
 * and that call answered. */
static void new_epoch(hc_stream *s, const hc_host_env *env, hc_stream_sub *sub)
{
    if (sub->snap) {
        reply_term(env, sub->snap->token, "error", "resubscribed", 0);
        snap_free(s, sub->snap);
        sub->snap = NULL;
    }
    sub->epoch = s->next_epoch++;
    sub->seq = 0;
}

/* The subscriber `pid`, found or added (monitored); NULL when out of memory. */
static hc_stream_sub *get_sub(hc_stream *s, const hc_host_env *env, const hc_pid *pid)
{
    hc_stream_sub *sub = find_sub(s, pid);
    if (sub)
        return sub;
    if (hc_array_reserve((void **)&s->subs, &s->capsubs, s->nsubs + 1, sizeof *s->subs, 4))
        return NULL;
    uint64_t mon = (s->next_mon++ << 1) | 1;
    if (env->monitor(env->ud, pid, mon))
        return NULL;
    sub = &s->subs[s->nsubs++];
    *sub = (hc_stream_sub){.pid = *pid, .mon_id = mon};
    return sub;
}

/* A snapshot small enough (or a core without a reader): walked, encoded and sent now. */
static int subscribe_at_once(hc_stream *s, const hc_host_env *env, uint64_t token, const hc_pid *pid,
                             const hc_core_ops *ops, const void *core)
{
    snap_ctx c = {.s = s};
    hc_stream_sub *sub = NULL;
    if (ops->snapshot(core, snap_entry, &c) || c.rc || close_part(&c) || !(sub = get_sub(s, env, pid))) {
        snap_ctx_free(&c);
        return HC_ENOMEM;
    }
    new_epoch(s, env, sub);
    for (size_t i = 0; i < c.nparts; i++) {
        begin_msg(s, sub, "snapshot", 3, c.counts[i]);
        hc_buf_append(&s->msg, c.parts[i].data, c.parts[i].len);
        hc_enc_nil(&s->msg);
        hc_enc_atom_cstr(&s->msg, i + 1 < c.nparts ? "true" : "false");
        send_msg(s, env, sub);
    }
    snap_ctx_free(&c);
    reply_ok(env, token, sub->epoch);
    return HC_OK;
}

int hc_stream_subscribe(hc_stream *s, const hc_host_env *env, uint64_t token, const hc_pid *pid, const hc_core_ops *ops,
                        void *core)
{
    hc_stream_flush(s, env); /* what is pending is already in the snapshot the new subscriber gets */
    void *reader = NULL;
    size_t count = 0;
    if (!ops->snapshot_open || !ops->snapshot_next || !ops->snapshot_close)
        return subscribe_at_once(s, env, token, pid, ops, core);
    if (ops->snapshot_open(core, &reader, &count))
        return HC_ENOMEM;
    if (count <= HC_STREAM_SNAP_AT_ONCE) {
        ops->snapshot_close(reader);
        return subscribe_at_once(s, env, token, pid, ops, core);
    }
    hc_stream_snap *sn = calloc(1, sizeof *sn);
    hc_stream_sub *sub = sn ? get_sub(s, env, pid) : NULL;
    if (!sub) {
        free(sn);
        ops->snapshot_close(reader);
        return HC_ENOMEM;
    }
    new_epoch(s, env, sub);
    *sn = (hc_stream_snap){.ops = ops, .reader = reader, .token = token};
    sub->snap = sn;
    s->nsnaps++;
    return HC_OK;
}

/* {hordec_stream, Name, Epoch, Seq, {snapshot, [Entries], More}} with the part filled so far. */
static void send_part(hc_stream *s, const hc_host_env *env, hc_stream_sub *sub, bool more)
{
    hc_stream_snap *sn = sub->snap;
    begin_msg(s, sub, "snapshot", 3, sn->n);
    hc_buf_append(&s->msg, sn->part.data, sn->part.len);
    hc_enc_nil(&s->msg);
    hc_enc_atom_cstr(&s->msg, more ? "true" : "false");
    if (sn->part.err && !s->msg.err)
        s->msg.err = sn->part.err;
    send_msg(s, env, sub);
    hc_buf_reset(&sn->part);
    sn->n = 0;
}

typedef struct run_ctx {
    hc_stream *s;
    const hc_host_env *env;
    hc_stream_sub *sub;
    size_t visited;
} run_ctx;

/* An entry of a sliced snapshot: a part that is full leaves at once (more follow: this entry at least). */
static int run_entry(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    run_ctx *c = ud;
    hc_stream_snap *sn = c->sub->snap;
    c->visited++;
    if (sn->n && sn->part.len + kl + vl + 2 > c->s->batch_bytes)
        send_part(c->s, c->env, c->sub, true);
    hc_enc_tuple_header(&sn->part, 2);
    hc_buf_append(&sn->part, k, kl);
    hc_buf_append(&sn->part, v, vl);
    sn->n++;
    return sn->part.err;
}

/* The last part, then the diffs held since the subscription, then the answer to the subscribe call. */
static void finish_snap(hc_stream *s, const hc_host_env *env, hc_stream_sub *sub)
{
    hc_stream_snap *sn = sub->snap;
    send_part(s, env, sub, false);
    for (size_t o = 0; o + 8 <= sn->held.len;) {
        uint32_t n = hc_get_be32(sn->held.data + o), len = hc_get_be32(sn->held.data + o + 4);
        begin_msg(s, sub, "diffs", 2, n);
        hc_buf_append(&s->msg, sn->held.data + o + 8, len);
        hc_enc_nil(&s->msg);
        send_msg(s, env, sub);
        o += 8 + (size_t)len;
    }
    reply_ok(env, sn->token, sub->epoch);
    snap_free(s, sn);
    sub->snap = NULL;
}

void hc_stream_run(hc_stream *s, const hc_host_env *env)
{
    size_t budget = HC_STREAM_SNAP_SLICE;
    for (size_t i = 0; i < s->nsubs && budget;) {
        hc_stream_sub *sub = &s->subs[i];
        hc_stream_snap *sn = sub->snap;
        if (!sn) {
            i++;
            continue;
        }
        run_ctx c = {s, env, sub, 0};
        int rc = sn->held.err ? sn->held.err : sn->ops->snapshot_next(sn->reader, budget, run_entry, &c);
        budget -= c.visited < budget ? c.visited : budget;
        if (rc == 1) {
            i++;
        } else if (rc == HC_OK) {
            finish_snap(s, env, sub);
            i++;
        } else { /* out of memory: this subscription ends, and its caller is told */
            hc_log_warn("stream %s: could not send a snapshot (%s); the subscription is dropped", hc_atom_name(s->name),
                        hc_strerror(rc));
            reply_term(env, sn->token, "error", "enomem", 0);
            env->demonitor(env->ud, sub->mon_id);
            snap_free(s, sn);
            s->subs[i] = s->subs[--s->nsubs];
        }
    }
}

/* Forgets subscriber i; a subscribe call still waiting for its snapshot is answered: it subscribed, then left. */
static void remove_at(hc_stream *s, const hc_host_env *env, size_t i)
{
    hc_stream_sub *sub = &s->subs[i];
    if (sub->snap) {
        reply_ok(env, sub->snap->token, sub->epoch);
        snap_free(s, sub->snap);
    }
    s->subs[i] = s->subs[--s->nsubs];
}

bool hc_stream_unsubscribe(hc_stream *s, const hc_host_env *env, const hc_pid *pid, bool demonitor)
{
    hc_stream_sub *sub = find_sub(s, pid);
    if (!sub)
        return false;
    if (demonitor)
        env->demonitor(env->ud, sub->mon_id);
    remove_at(s, env, (size_t)(sub - s->subs));
    return true;
}

bool hc_stream_down(hc_stream *s, const hc_host_env *env, uint64_t mon_id)
{
    for (size_t i = 0; i < s->nsubs; i++)
        if (s->subs[i].mon_id == mon_id) {
            remove_at(s, env, i);
            return true;
        }
    return false;
}
