/* stream.c — see stream.h. */
#include "host/stream.h"

#include <stdlib.h>

#include "hordec/hc_log.h"

void hc_stream_init(hc_stream *s, hc_atom name, size_t batch_bytes, uint64_t epoch_base)
{
    *s =
        (hc_stream){.name = name, .batch_bytes = batch_bytes, .next_epoch = epoch_base ? epoch_base : 1, .next_mon = 1};
}

void hc_stream_free(hc_stream *s)
{
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

void hc_stream_flush(hc_stream *s, const hc_host_env *env)
{
    if (!s->n_items)
        return;
    for (size_t i = 0; i < s->nsubs; i++) {
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

static void snap_free(snap_ctx *c)
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

int hc_stream_subscribe(hc_stream *s, const hc_host_env *env, const hc_pid *pid, const hc_core_ops *ops,
                        const void *core, uint64_t *epoch)
{
    hc_stream_flush(s, env); /* what is pending is already in the snapshot the new subscriber gets */
    snap_ctx c = {.s = s};
    if (ops->snapshot(core, snap_entry, &c) || c.rc || close_part(&c)) {
        snap_free(&c);
        return HC_ENOMEM;
    }
    hc_stream_sub *sub = find_sub(s, pid);
    if (!sub) {
        if (hc_array_reserve((void **)&s->subs, &s->capsubs, s->nsubs + 1, sizeof *s->subs, 4)) {
            snap_free(&c);
            return HC_ENOMEM;
        }
        uint64_t mon = (s->next_mon++ << 1) | 1;
        if (env->monitor(env->ud, pid, mon)) {
            snap_free(&c);
            return HC_ENOMEM;
        }
        sub = &s->subs[s->nsubs++];
        *sub = (hc_stream_sub){.pid = *pid, .mon_id = mon};
    }
    sub->epoch = s->next_epoch++;
    sub->seq = 0;
    for (size_t i = 0; i < c.nparts; i++) {
        begin_msg(s, sub, "snapshot", 3, c.counts[i]);
        hc_buf_append(&s->msg, c.parts[i].data, c.parts[i].len);
        hc_enc_nil(&s->msg);
        hc_enc_atom_cstr(&s->msg, i + 1 < c.nparts ? "true" : "false");
        send_msg(s, env, sub);
    }
    snap_free(&c);
    *epoch = sub->epoch;
    return HC_OK;
}

static void remove_at(hc_stream *s, size_t i) { s->subs[i] = s->subs[--s->nsubs]; }

bool hc_stream_unsubscribe(hc_stream *s, const hc_host_env *env, const hc_pid *pid, bool demonitor)
{
    hc_stream_sub *sub = find_sub(s, pid);
    if (!sub)
        return false;
    if (demonitor)
        env->demonitor(env->ud, sub->mon_id);
    remove_at(s, (size_t)(sub - s->subs));
    return true;
}

bool hc_stream_down(hc_stream *s, uint64_t mon_id)
{
    for (size_t i = 0; i < s->nsubs; i++)
        if (s->subs[i].mon_id == mon_id) {
            remove_at(s, i);
            return true;
        }
    return false;
}
