/* control_workers.c — the control process's C-worker requests (hc_worker.h), so clients and tests can start a
 * worker of any type this node has without a supervisor:
 *
 *   {start_worker, TypeBinary, Arg}  -> {ok, Pid} | ignore | {error, Reason}
 *
 * Reason is {unknown_worker_type, TypeBinary} for a type this node does not have, or the type's own init
 * error. The worker is nobody's child: it runs until it exits (or the node stops). */
#include "daemon/control_req.h"
#include "hordec/hc_worker.h"

int control_start_worker(void *ctx, hc_req_args *a)
{
    const control_req *c = ctx;
    hc_span type, arg;
    if (hc_dec_binary(a->p, a->len, &a->i, &type) || hc_dec_term(a->p, a->len, &a->i, &arg) || !hc_req_args_done(a))
        return HC_EDECODE;
    hc_proc *p = NULL;
    hc_buf reason = {0};
    int rc = hc_worker_start(c->rt, (const char *)type.p, type.len, arg.p, arg.len, &p, &reason);
    if (rc == HC_OK) {
        control_reply_ok_pid(c, p);
    } else if (rc == HC_WORKER_IGNORE) {
        hc_gen_reply_atom(c->rt, c->from, "ignore");
    } else {
        hc_buf b = {0};
        hc_enc_tuple_header(&b, 2);
        hc_enc_atom_cstr(&b, "error");
        if (reason.len && !reason.err)
            hc_enc_raw(&b, reason.data, reason.len);
        else
            hc_enc_atom_cstr(&b, hc_err_atom(rc));
        hc_gen_reply_buf(c->rt, c->from, &b);
        hc_buf_free(&b);
    }
    hc_buf_free(&reason);
    return HC_OK;
}
