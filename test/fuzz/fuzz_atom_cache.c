/* fuzz_atom_cache.c — the distribution header with its atom cache (DFLAG_DIST_HDR_ATOM_CACHE), as a connection
 * receives it: a sequence of data packets on one connection, so a hostile peer can fill slots in one packet and
 * name them in the next.
 *
 * Input: packets, each a 2-byte length and its bytes (fuzz_util.h), normalised one after the other with one
 * cache. A packet that normalises is decoded as a control message, and if that succeeds it is sent back through
 * our own encoder (hc_ac_encode, a fresh cache pair) and normalised again: the round trip must give the same
 * bytes, which is what a BEAM peer relies on when hordec forwards a term it received. */
#include <string.h>

#include "dist/atom_cache.h"
#include "dist/control.h"
#include "fuzz_util.h"

static hc_atom_cache *tx, *rx2;

/* Our encoder and a second receiver agree on `pk` ('p' form, a valid control message). */
static void round_trip(const uint8_t *pk, size_t len)
{
    size_t c = 2;
    FZ_ASSERT(hc_dec_skip(pk, len, &c) == HC_OK, "a decoded packet whose control does not skip");
    const uint8_t *msg = NULL;
    size_t mlen = 0;
    if (c < len) {
        FZ_ASSERT(pk[c] == 131, "no version byte before the message");
        msg = pk + c + 1;
        mlen = len - c - 1;
    }
    const struct iovec *iov;
    int niov;
    int rc = hc_ac_encode(tx, pk, c, msg, mlen, &iov, &niov);
    if (rc == HC_ETOOBIG || rc == HC_ENOMEM)
        return;
    FZ_ASSERT(rc == HC_OK, "hc_ac_encode refused a packet hc_ctrl_decode accepted: %d", rc);
    hc_buf wire = {0};
    for (int k = 0; k < niov; k++)
        hc_buf_append(&wire, iov[k].iov_base, iov[k].iov_len);
    hc_ac_commit(tx);
    FZ_ASSERT(wire.len >= 4 && hc_get_be32(wire.data) == wire.len - 4, "bad length prefix");
    const uint8_t *out;
    size_t outlen;
    const char *why = NULL;
    rc = hc_ac_normalize(rx2, wire.data + 4, wire.len - 4, &out, &outlen, &why);
    FZ_ASSERT(rc == HC_OK, "our own packet does not normalise: %s", why ? why : "?");
    FZ_ASSERT(outlen == len && !memcmp(out, pk, len), "round trip changed the packet (%zu -> %zu bytes)", len, outlen);
    hc_buf_free(&wire);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size, 0};
    hc_atom_cache *rx = hc_ac_new();
    tx = hc_ac_new();
    rx2 = hc_ac_new();
    if (!rx || !tx || !rx2)
        abort();
    while (fz_more(&in)) {
        const uint8_t *p;
        size_t n;
        fz_piece(&in, &p, &n);
        uint8_t *pkt = fz_dup(p, n);
        const uint8_t *out;
        size_t outlen;
        const char *why = NULL;
        int rc = hc_ac_normalize(rx, pkt, n, &out, &outlen, &why);
        if (rc == HC_OK) {
            hc_ctrl m;
            /* The result lives in the packet or in the cache: copy it so ASan sees its exact bounds. */
            uint8_t *norm = fz_dup(out, outlen);
            if (hc_ctrl_decode(norm, outlen, &m) == HC_OK)
                round_trip(norm, outlen);
            free(norm);
        } else {
            FZ_ASSERT(rc == HC_EDECODE || rc == HC_ENOMEM, "normalize returned %d", rc);
            FZ_ASSERT(rc != HC_EDECODE || why, "HC_EDECODE without a reason");
        }
        free(pkt);
    }
    hc_ac_free(rx);
    hc_ac_free(tx);
    hc_ac_free(rx2);
    hc_atom_table_reset();
    return 0;
}
