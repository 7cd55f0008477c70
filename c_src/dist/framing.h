/* framing.h — length-prefixed packet reassembly over a byte stream, with a read offset.
 *
 * Bytes are appended at `end`; packets are consumed from `start` without moving memory. The buffer is
 * compacted only when a partial packet needs room at the end (at most once per fill), so a flood of
 * small packets costs O(n), not the O(n²) of a memmove after every packet. */
#ifndef HORDEC_DIST_FRAMING_H
#define HORDEC_DIST_FRAMING_H

#include <stddef.h>
#include <stdint.h>

typedef struct hc_rbuf {
    uint8_t *data;
    size_t cap, start, end;
    unsigned header;   /* 2 during the handshake, 4 afterwards */
    size_t max_packet; /* a larger announced length is a protocol error */
} hc_rbuf;

void hc_rbuf_init(hc_rbuf *rb, unsigned header, size_t max_packet);
void hc_rbuf_free(hc_rbuf *rb);

/* Where to read into and how much fits; grows or compacts as needed so at least `min_room` bytes
 * (or the rest of the current packet) fit. Returns HC_OK or HC_ENOMEM. */
int hc_rbuf_prepare(hc_rbuf *rb, size_t min_room, uint8_t **dst, size_t *room);
void hc_rbuf_commit(hc_rbuf *rb, size_t n); /* n bytes were written at the prepared pointer */

/* Next complete packet. Returns 1 and sets *pkt and *len (a zero-length packet is a tick), 0 if more bytes
 * are needed, HC_ETOOBIG if the announced length exceeds max_packet. The packet stays valid until the
 * next prepare. */
int hc_rbuf_next(hc_rbuf *rb, const uint8_t **pkt, size_t *len);

static inline size_t hc_rbuf_pending(const hc_rbuf *rb) { return rb->end - rb->start; }

#endif
