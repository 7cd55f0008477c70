/* wqueue.h — a per-connection write queue: small messages are coalesced into shared chunks so one
 * writev() carries many of them; large ones get a chunk of their own. The queued byte count is what
 * higher layers read as backpressure. */
#ifndef HORDEC_DIST_WQUEUE_H
#define HORDEC_DIST_WQUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct hc_wchunk hc_wchunk;

typedef struct hc_wqueue {
    hc_wchunk *head, *tail;
    size_t bytes; /* queued and not yet written */
} hc_wqueue;

void hc_wq_init(hc_wqueue *q);
void hc_wq_free(hc_wqueue *q);
/* Copies the iovecs, in order, contiguously into the queue. HC_OK or HC_ENOMEM (nothing queued). */
int hc_wq_append(hc_wqueue *q, const struct iovec *iov, int n);
/* Moves everything queued in `src` to the end of `dst` (no copy); src ends empty. */
void hc_wq_splice(hc_wqueue *dst, hc_wqueue *src);
/* Calls cb on the unwritten bytes of each chunk, in order, until it returns non-zero (returned). One
 * hc_wq_append lands in one chunk, so whole packets appended one per call never straddle two. */
int hc_wq_visit(const hc_wqueue *q, int (*cb)(const uint8_t *p, size_t len, void *ud), void *ud);
/* Writes as much as the socket takes. Returns 0 when the queue is empty, 1 if bytes remain (the socket
 * would block), or HC_EIO with errno set. */
int hc_wq_flush(hc_wqueue *q, int fd);
/* The same through another transport (TLS): write_fn behaves as writev, -1 with errno EAGAIN when it
 * would block. The bytes it was offered and did not take are offered again, first, next time. */
typedef ssize_t (*hc_wq_writer)(void *ud, const struct iovec *iov, int n);
int hc_wq_flush_with(hc_wqueue *q, hc_wq_writer write_fn, void *ud);

#endif
