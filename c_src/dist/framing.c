/* framing.c — see framing.h. */
#include "dist/framing.h"

#include <stdlib.h>
#include <string.h>

#include "hordec/hc_common.h"

void hc_rbuf_init(hc_rbuf *rb, unsigned header, size_t max_packet)
{
    memset(rb, 0, sizeof *rb);
    rb->header = header;
    rb->max_packet = max_packet;
}

void hc_rbuf_free(hc_rbuf *rb)
{
    free(rb->data);
    memset(rb, 0, sizeof *rb);
}

static size_t announced(const hc_rbuf *rb)
{
    const uint8_t *p = rb->data + rb->start;
    return rb->header == 2 ? hc_get_be16(p) : hc_get_be32(p);
}

int hc_rbuf_prepare(hc_rbuf *rb, size_t min_room, uint8_t **dst, size_t *room)
{
    if (rb->start == rb->end)
        rb->start = rb->end = 0; /* empty: rewind for free */
    size_t need = min_room;
    size_t pending = rb->end - rb->start;
    if (rb->header && pending >= rb->header) {
        size_t n = announced(rb);
        size_t want = rb->header + (n > rb->max_packet ? 0 : n); /* the whole packet must fit, if legal */
        if (want > pending && want - pending > need)
            need = want - pending;
    }
    if (rb->cap - rb->end < need) {
        if (rb->start > 0) {
            memmove(rb->data, rb->data + rb->start, pending);
            rb->start = 0;
            rb->end = pending;
        }
        if (rb->cap - rb->end < need) {
            size_t cap = rb->cap ? rb->cap : 64 * 1024;
            while (cap - rb->end < need)
                cap *= 2;
            uint8_t *p = realloc(rb->data, cap);
            if (!p)
                return HC_ENOMEM;
            rb->data = p;
            rb->cap = cap;
        }
    }
    *dst = rb->data + rb->end;
    *room = rb->cap - rb->end;
    return HC_OK;
}

void hc_rbuf_commit(hc_rbuf *rb, size_t n) { rb->end += n; }

int hc_rbuf_next(hc_rbuf *rb, const uint8_t **pkt, size_t *len)
{
    size_t pending = rb->end - rb->start;
    if (pending < rb->header)
        return 0;
    size_t n = announced(rb);
    if (n > rb->max_packet)
        return HC_ETOOBIG;
    if (pending - rb->header < n)
        return 0;
    *pkt = rb->data + rb->start + rb->header;
    *len = n;
    rb->start += rb->header + n;
    return 1;
}
