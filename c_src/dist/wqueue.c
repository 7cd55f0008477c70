/* wqueue.c — see wqueue.h. */
#include "dist/wqueue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hordec/hc_common.h"

#define CHUNK_SIZE (64 * 1024)
#define MAX_IOV 64

struct hc_wchunk {
    hc_wchunk *next;
    size_t len, off, cap;
    uint8_t data[];
};

void hc_wq_init(hc_wqueue *q) { memset(q, 0, sizeof *q); }

void hc_wq_free(hc_wqueue *q)
{
    for (hc_wchunk *c = q->head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    memset(q, 0, sizeof *q);
}

int hc_wq_append(hc_wqueue *q, const struct iovec *iov, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return HC_OK; /* an empty chunk would make flush report "bytes remain" forever (writev returns 0) */
    hc_wchunk *c = q->tail;
    if (!c || c->cap - c->len < total) {
        size_t cap = total > CHUNK_SIZE / 4 ? total : CHUNK_SIZE;
        c = malloc(sizeof *c + cap);
        if (!c)
            return HC_ENOMEM;
        c->next = NULL;
        c->len = c->off = 0;
        c->cap = cap;
        if (q->tail)
            q->tail->next = c;
        else
            q->head = c;
        q->tail = c;
    }
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len)
            memcpy(c->data + c->len, iov[i].iov_base, iov[i].iov_len);
        c->len += iov[i].iov_len;
    }
    q->bytes += total;
    return HC_OK;
}

void hc_wq_splice(hc_wqueue *dst, hc_wqueue *src)
{
    if (!src->head)
        return;
    if (dst->tail)
        dst->tail->next = src->head;
    else
        dst->head = src->head;
    dst->tail = src->tail;
    dst->bytes += src->bytes;
    hc_wq_init(src);
}

int hc_wq_visit(const hc_wqueue *q, int (*cb)(const uint8_t *p, size_t len, void *ud), void *ud)
{
    for (const hc_wchunk *c = q->head; c; c = c->next) {
        int rc = cb(c->data + c->off, c->len - c->off, ud);
        if (rc)
            return rc;
    }
    return 0;
}

static ssize_t fd_writev(void *ud, const struct iovec *iov, int n) { return writev(*(int *)ud, iov, n); }

int hc_wq_flush(hc_wqueue *q, int fd) { return hc_wq_flush_with(q, fd_writev, &fd); }

int hc_wq_flush_with(hc_wqueue *q, hc_wq_writer write_fn, void *ud)
{
    while (q->head) {
        struct iovec iov[MAX_IOV];
        int n = 0;
        for (hc_wchunk *c = q->head; c && n < MAX_IOV; c = c->next) {
            iov[n].iov_base = c->data + c->off;
            iov[n].iov_len = c->len - c->off;
            n++;
        }
        ssize_t w = write_fn(ud, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 1;
            return HC_EIO;
        }
        size_t left = (size_t)w;
        q->bytes -= left;
        while (left && q->head) {
            hc_wchunk *c = q->head;
            size_t avail = c->len - c->off;
            if (left < avail) {
                c->off += left;
                left = 0;
                break;
            }
            left -= avail;
            q->head = c->next;
            if (!q->head)
                q->tail = NULL;
            free(c);
        }
        if (q->head && (size_t)w == 0)
            return 1;
    }
    return 0;
}
