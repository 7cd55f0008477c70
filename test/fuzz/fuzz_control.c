/* fuzz_control.c — distribution control messages: a data packet ('p', 131, Control, [131, Message]) decoded by
 * hc_ctrl_decode, as a connection does for every packet a peer sends.
 *
 * Checked beyond "no crash": every span the decoder hands out lies inside the packet and is one whole term
 * (what the runtime later decodes again or forwards), and a decoded message is the exact rest of the packet. */
#include <string.h>

#include "dist/control.h"
#include "fuzz_util.h"

static void check_span(const uint8_t *p, size_t len, hc_span s, const char *what)
{
    if (!s.len)
        return;
    FZ_ASSERT(s.p >= p && s.p + s.len <= p + len, "%s lies outside the packet", what);
    size_t i = 0;
    FZ_ASSERT(hc_dec_skip(s.p, s.len, &i) == HC_OK && i == s.len, "%s is not one whole term", what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = fz_dup(data, size);
    hc_ctrl m;
    if (hc_ctrl_decode(p, size, &m) == HC_OK) {
        check_span(p, size, m.to_raw, "to_raw");
        check_span(p, size, m.reason, "reason");
        check_span(p, size, m.id, "id");
        check_span(p, size, m.result, "result");
        check_span(p, size, m.msg, "msg");
        if (m.msg.len)
            FZ_ASSERT(m.msg.p + m.msg.len == p + size, "the message is not the rest of the packet");
        if (m.known && m.ref.len)
            FZ_ASSERT(m.ref.len >= 1 && m.ref.len <= 5, "a ref of %u words", m.ref.len);
    }
    free(p);
    hc_atom_table_reset();
    return 0;
}
