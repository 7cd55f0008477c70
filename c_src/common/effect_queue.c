/* effect_queue.c — see hc_effect_queue in hc_core.h. */
#include <stdlib.h>
#include <string.h>

#include "hordec/hc_core.h"

struct hc_queued_effect {
    hc_effect_kind kind;
    uint64_t id, peer;
    hc_pid pid;
    hc_buf data;  /* EVENT: key, then value */
    size_t split; /* EVENT: where the value starts */
    bool removed; /* EVENT: the key was removed */
};

static struct hc_queued_effect *push(hc_effect_queue *q, hc_effect_kind kind)
{
    if (q->head && q->head == q->n)
        q->head = q->n = 0;
    if (hc_array_reserve((void **)&q->q, &q->cap, q->n + 1, sizeof *q->q, 8)) {
        q->lost++;
        return NULL;
    }
    struct hc_queued_effect *e = &q->q[q->n++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    return e;
}

void hc_effect_queue_push(hc_effect_queue *q, hc_effect_kind kind, const hc_pid *pid, uint64_t id, uint64_t peer,
                          hc_buf *data)
{
    struct hc_queued_effect *e = push(q, kind);
    if (!e) {
        if (data)
            hc_buf_free(data);
        return;
    }
    if (pid)
        e->pid = *pid;
    e->id = id;
    e->peer = peer;
    if (data) {
        e->data = *data;
        *data = (hc_buf){0};
    }
}

hc_buf *hc_effect_queue_push_event(hc_effect_queue *q, const uint8_t *key, size_t klen)
{
    struct hc_queued_effect *e = push(q, HC_EFF_EVENT);
    if (!e)
        return NULL;
    if (key)
        hc_buf_append(&e->data, key, klen);
    e->removed = true;
    return &e->data;
}

void hc_effect_queue_event_value(hc_effect_queue *q, const uint8_t *val, size_t vlen)
{
    struct hc_queued_effect *e = q->n > q->head ? &q->q[q->n - 1] : NULL;
    if (!e || e->kind != HC_EFF_EVENT)
        return;
    e->split = e->data.len;
    e->removed = !val;
    if (val)
        hc_buf_append(&e->data, val, vlen);
}

bool hc_effect_queue_pop(hc_effect_queue *q, hc_effect *out)
{
    hc_buf_free(&q->popped);
    while (q->head < q->n) {
        struct hc_queued_effect *e = &q->q[q->head++];
        q->popped = e->data;
        e->data = (hc_buf){0};
        if (q->popped.err)
            continue; /* a term that failed to encode never leaves */
        *out = (hc_effect){
            .kind = e->kind, .id = e->id, .peer = e->peer, .pid = e->pid, .data = q->popped.data, .len = q->popped.len};
        if (e->kind == HC_EFF_EVENT) {
            size_t split = e->removed ? q->popped.len : e->split;
            out->len = split;
            out->value = e->removed ? NULL : q->popped.data + split;
            out->value_len = e->removed ? 0 : q->popped.len - split;
        }
        return true;
    }
    return false;
}

void hc_effect_queue_free(hc_effect_queue *q)
{
    for (size_t i = q->head; i < q->n; i++)
        hc_buf_free(&q->q[i].data);
    free(q->q);
    hc_buf_free(&q->popped);
    *q = (hc_effect_queue){0};
}
