/* fuzz_handshake.c — the distribution handshake state machine, both roles, fed hostile packets.
 *
 * Input: one byte of setup (bit 0: acceptor or connector; bits 1-3: the status the acceptor's host decides),
 * then packets, each a 2-byte length and its bytes (fuzz_util.h). Every packet goes through hc_hs_feed until the
 * handshake fails, aborts or is up. Checked: no crash or sanitizer report, a failure always says why, and a
 * handshake only comes up through the states that lead there. */
#include <string.h>

#include "dist/handshake.h"
#include "fuzz_util.h"
#include "hordec/hc_term.h"

#define FZ_COOKIE "fuzzcookie"
#define FZ_FLAGS 0x3f7fffdull

static const char *const statuses[] = {"ok", "ok_simultaneous", "nok", "not_allowed", "alive", "ok", "nok", "alive"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size, 0};
    uint8_t setup = fz_u8(&in);
    bool acceptor = setup & 1;
    const char *status = statuses[(setup >> 1) & 7];

    hc_hs hs;
    hc_buf out = {0};
    memset(&hs, 0, sizeof hs);
    if (acceptor) {
        hc_hs_start_accept(&hs, "fuzz@127.0.0.1", FZ_COOKIE, FZ_FLAGS, 7, 0x01020304u);
    } else if (hc_hs_start_connect(&hs, "fuzz@127.0.0.1", "peer@127.0.0.1", FZ_COOKIE, FZ_FLAGS, 7, 0x01020304u,
                                   &out) != HC_OK) {
        abort();
    }
    while (fz_more(&in)) {
        const uint8_t *p;
        size_t n;
        fz_piece(&in, &p, &n);
        uint8_t *pkt = fz_dup(p, n);
        hc_hs_state before = hs.state;
        hc_buf_reset(&out);
        int rc = hc_hs_feed(&hs, pkt, n, &out);
        free(pkt);
        if (rc == HC_HS_DECIDE) {
            FZ_ASSERT(acceptor && hs.state == HC_HS_ST_DECIDE, "DECIDE in state %d", (int)hs.state);
            FZ_ASSERT(memchr(hs.peer_name, '\0', sizeof hs.peer_name) && strchr(hs.peer_name, '@'),
                      "a named peer without a valid name");
            rc = hc_hs_decide(&hs, status, &out);
        }
        if (rc < 0) {
            FZ_ASSERT(hs.error != NULL, "an error without a reason (rc %d)", rc);
            break;
        }
        if (rc == HC_HS_UP) {
            FZ_ASSERT(hs.state == HC_HS_ST_UP, "UP in state %d", (int)hs.state);
            FZ_ASSERT(before == HC_HS_ST_WAIT_ACK || before == HC_HS_ST_WAIT_REPLY, "up straight from state %d",
                      (int)before);
            break;
        }
        if (rc == HC_HS_ABORTED)
            break;
    }
    hc_buf_free(&out);
    hc_atom_table_reset();
    return 0;
}
