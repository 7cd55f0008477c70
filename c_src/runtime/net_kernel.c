/* net_kernel.c — the one thing of net_kernel a peer asks a hidden node: {is_auth, Node} → yes, which
 * is what makes Node.ping/1 answer :pong. Other requests get an error reply rather than silence. */
#include "runtime/net_kernel.h"

#include "hordec/hc_log.h"

static void on_call(hc_rt *rt, hc_proc *self, const hc_gen_from *from, const uint8_t *req, size_t len)
{
    size_t i = 0;
    uint32_t arity;
    static const uint8_t yes[] = "\x77\x03yes";
    if (!hc_dec_tuple_header(req, len, &i, &arity) && arity == 2 && hc_dec_is_atom(req, len, &i, "is_auth")) {
        hc_gen_reply(rt, from, yes, sizeof yes - 1);
        return;
    }
    hc_gen_reply_error(rt, from, "not_supported");
    (void)self;
}

static const hc_proc_ops net_kernel_ops = {.on_call = on_call};

int hc_net_kernel_start(hc_rt *rt)
{
    return hc_proc_spawn(rt, &net_kernel_ops, NULL, hc_atom_intern_cstr("net_kernel"), NULL);
}
