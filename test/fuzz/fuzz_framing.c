/* fuzz_framing.c — packet reassembly (hc_rbuf) over a byte stream cut into arbitrary reads.
 *
 * Input: byte 0 picks the header size (2 or 4) and the largest packet allowed; byte 1 seeds the read sizes;
 * the rest is the stream. The stream is fed in chunks of those sizes and every packet hc_rbuf hands out is
 * compared with what a straightforward reference parser finds in the same stream: same packets, same bytes,
 * same order, and HC_ETOOBIG exactly where a packet announces more than the limit. */
#include <string.h>

#include "dist/framing.h"
#include "fuzz_util.h"

static uint32_t next_rand(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned header = (data[0] & 1) ? 4 : 2;
    size_t max_packet = (size_t)1 << (4 + (data[0] >> 1) % 14);
    uint32_t seed = data[1];
    const uint8_t *s = data + 2;
    size_t n = size - 2;

    hc_rbuf rb;
    hc_rbuf_init(&rb, header, max_packet);
    size_t fed = 0, ref = 0; /* bytes fed so far; where the reference parser's next packet starts */
    bool done = false;
    while (!done) {
        /* Hand out every complete packet first. */
        for (;;) {
            const uint8_t *pkt;
            size_t len;
            int rc = hc_rbuf_next(&rb, &pkt, &len);
            /* What the reference parser expects at `ref` given the bytes fed so far. */
            size_t want = 0;
            bool have_hdr = fed - ref >= header;
            if (have_hdr)
                for (unsigned k = 0; k < header; k++)
                    want = want << 8 | s[ref + k];
            if (rc == HC_ETOOBIG) {
                FZ_ASSERT(have_hdr && want > max_packet, "ETOOBIG for a %zu-byte packet (limit %zu)", want, max_packet);
                done = true;
                break;
            }
            FZ_ASSERT(rc == 0 || rc == 1, "hc_rbuf_next returned %d", rc);
            if (rc == 0) {
                FZ_ASSERT(!have_hdr || (want <= max_packet && fed - ref - header < want),
                          "no packet although %zu bytes of a %zu-byte packet are there", fed - ref - header, want);
                break;
            }
            FZ_ASSERT(have_hdr && want <= max_packet && len == want, "packet of %zu bytes, expected %zu", len, want);
            FZ_ASSERT(len == 0 || !memcmp(pkt, s + ref + header, len), "packet bytes differ");
            ref += header + len;
            FZ_ASSERT(hc_rbuf_pending(&rb) == fed - ref, "pending %zu, expected %zu", hc_rbuf_pending(&rb), fed - ref);
        }
        if (done || fed == n)
            break;
        size_t chunk = 1 + next_rand(&seed) % 300;
        if (chunk > n - fed)
            chunk = n - fed;
        uint8_t *dst;
        size_t room;
        int rc = hc_rbuf_prepare(&rb, chunk, &dst, &room);
        FZ_ASSERT(rc == HC_OK, "prepare failed: %d", rc);
        FZ_ASSERT(room >= 1, "no room");
        if (chunk > room)
            chunk = room;
        memcpy(dst, s + fed, chunk);
        hc_rbuf_commit(&rb, chunk);
        fed += chunk;
    }
    hc_rbuf_free(&rb);
    return 0;
}
