/* reply_queue.c — see hc_reply_queue in hc_core.h. */
#include <stdlib.h>

#include "hordec/hc_core.h"

struct hc_queued_reply {
    uint64_t token;
    hc_buf body;
};

void hc_reply_queue_push(hc_reply_queue *q, uint64_t token, hc_buf *body)
{
    if (body->err) { /* whatever failed, the caller still gets an answer */
        hc_buf_reset(body);
        hc_enc_tuple_header(body, 2);
        hc_enc_atom_cstr(body, "error");
        hc_enc_atom_cstr(body, "enomem");
    }
    if (q->head && q->head == q->n)
        q->head = q->n = 0;
    if (hc_array_reserve((void **)&q->q, &q->cap, q->n + 1, sizeof *q->q, 4)) {
        hc_buf_free(body);
        return;
    }
    q->q[q->n++] = (struct hc_queued_reply){token, *body};
    *body = (hc_buf){0};
}

void hc_reply_queue_push_atom(hc_reply_queue *q, uint64_t token, const char *atom)
{
    hc_buf b = {0};
    hc_enc_atom_cstr(&b, atom);
    hc_reply_queue_push(q, token, &b);
}

void hc_reply_queue_push_error(hc_reply_queue *q, uint64_t token, const char *reason)
{
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "error");
    hc_enc_atom_cstr(&b, reason);
    hc_reply_queue_push(q, token, &b);
}

bool hc_reply_queue_pop(hc_reply_queue *q, hc_effect *out)
{
    hc_buf_free(&q->popped);
    if (q->head >= q->n)
        return false;
    struct hc_queued_reply *r = &q->q[q->head++];
    q->popped = r->body;
    *out = (hc_effect){.kind = HC_EFF_REPLY, .token = r->token, .data = r->body.data, .len = r->body.len};
    return true;
}

void hc_reply_queue_free(hc_reply_queue *q)
{
    for (size_t i = q->head; i < q->n; i++)
        hc_buf_free(&q->q[i].body);
    free(q->q);
    hc_buf_free(&q->popped);
    *q = (hc_reply_queue){0};
}
