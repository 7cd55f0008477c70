/* registry_rt.c — C processes as users of a registry replica running in their own runtime (hc_registry.h).
 *
 * Each call is a GenServer call from the calling process to the replica registered as `registry` on this node;
 * the replica's reply is decoded into an hc_registry_result for the caller's callback. The calling process
 * registers itself with Owner hordec, so the replica (same node) monitors it and drops its names when it exits.
 * This layer sits on the runtime and the registry core's public header; the core itself knows nothing of it. */
#include <stdlib.h>
#include <string.h>

#include "hordec/hc_registry.h"
#include "hordec/hc_runtime.h"

enum { OP_REGISTER = 1, OP_UNREGISTER, OP_LOOKUP };

/* {error, Reason} with an atom Reason, as a status. */
static int error_status(const uint8_t *p, size_t len, size_t i)
{
    if (hc_dec_is_atom(p, len, &i, "badarg") && i == len)
        return HC_EINVAL;
    if (hc_dec_is_atom(p, len, &i, "too_big") && i == len)
        return HC_ETOOBIG;
    if (hc_dec_is_atom(p, len, &i, "enomem") && i == len)
        return HC_ENOMEM;
    return HC_EDECODE;
}

/* {ok, Pid} | {error, {already_registered, Pid}} | {error, Reason} */
static int decode_register(const uint8_t *p, size_t len, hc_pid *pid)
{
    size_t i = 0;
    uint32_t arity;
    if (hc_dec_tuple_header(p, len, &i, &arity) || arity != 2)
        return HC_EDECODE;
    if (hc_dec_is_atom(p, len, &i, "ok"))
        return hc_dec_pid(p, len, &i, pid) || i != len ? HC_EDECODE : HC_OK;
    if (!hc_dec_is_atom(p, len, &i, "error"))
        return HC_EDECODE;
    size_t j = i;
    if (!hc_dec_tuple_header(p, len, &j, &arity) && arity == 2 && hc_dec_is_atom(p, len, &j, "already_registered"))
        return hc_dec_pid(p, len, &j, pid) || j != len ? HC_EDECODE : HC_EEXIST;
    return error_status(p, len, i);
}

/* ok | {error, Reason} */
static int decode_ok(const uint8_t *p, size_t len)
{
    size_t i = 0;
    uint32_t arity;
    if (hc_dec_is_atom(p, len, &i, "ok") && i == len)
        return HC_OK;
    i = 0;
    if (hc_dec_tuple_header(p, len, &i, &arity) || arity != 2 || !hc_dec_is_atom(p, len, &i, "error"))
        return HC_EDECODE;
    return error_status(p, len, i);
}

/* [{Pid, Value}] into a new array (*out, owned by the caller), or {error, Reason}. */
static int decode_lookup(const uint8_t *p, size_t len, hc_registry_match **out, size_t *n)
{
    hc_iter it;
    size_t i = 0;
    *out = NULL;
    *n = 0;
    if (hc_iter_list(&it, p, len, &i) || i != len) {
        i = 0;
        uint32_t arity;
        if (hc_dec_tuple_header(p, len, &i, &arity) || arity != 2 || !hc_dec_is_atom(p, len, &i, "error"))
            return HC_EDECODE;
        return error_status(p, len, i);
    }
    hc_registry_match *m = calloc(it.left ? it.left : 1, sizeof *m);
    if (!m)
        return HC_ENOMEM;
    hc_span e;
    while (hc_iter_next(&it, &e)) {
        size_t j = 0;
        uint32_t arity;
        hc_span v;
        if (hc_dec_tuple_header(e.p, e.len, &j, &arity) || arity != 2 || hc_dec_pid(e.p, e.len, &j, &m[*n].pid) ||
            hc_dec_term(e.p, e.len, &j, &v) || j != e.len) {
            free(m);
            *n = 0;
            return HC_EDECODE;
        }
        m[*n].value = v.p;
        m[*n].value_len = v.len;
        (*n)++;
    }
    *out = m;
    return HC_OK;
}

static void on_reply(hc_rt *rt, hc_proc *caller, const hc_call_result *res, void *ud)
{
    hc_registry_req *req = ud;
    hc_registry_cb cb = req->cb_; /* read first: the callback may reuse req for its next call */
    void *cud = req->ud_;
    int op = req->op_;
    req->op_ = 0;
    hc_registry_result out = {.status = res->status};
    hc_registry_match *m = NULL;
    if (res->status == HC_OK) {
        const uint8_t *p = res->reply.p;
        size_t len = res->reply.len;
        if (op == OP_REGISTER)
            out.status = decode_register(p, len, &out.pid);
        else if (op == OP_UNREGISTER)
            out.status = decode_ok(p, len);
        else
            out.status = decode_lookup(p, len, &m, &out.n_matches);
        out.matches = m;
    }
    cb(rt, caller, &out, cud);
    free(m);
}

static int call(hc_rt *rt, hc_proc *caller, hc_registry_req *req, int op, hc_atom registry, hc_buf *b,
                hc_registry_cb cb, void *ud)
{
    int rc = b->err;
    if (!rc) {
        req->cb_ = cb;
        req->ud_ = ud;
        req->op_ = op;
        rc = hc_gen_call(rt, caller, NULL, registry, 0, b->data, b->len, HC_REGISTRY_CALL_TIMEOUT_MS, on_reply, req);
        if (rc)
            req->op_ = 0;
    }
    hc_buf_free(b);
    return rc;
}

static bool usable(hc_proc *caller, hc_registry_req *req, hc_atom registry, hc_registry_cb cb)
{
    return caller && req && registry && cb && hc_proc_alive(caller);
}

int hc_registry_register(hc_rt *rt, hc_proc *caller, hc_registry_req *req, hc_atom registry, const uint8_t *key,
                         size_t klen, const uint8_t *value, size_t vlen, hc_registry_cb cb, void *ud)
{
    if (!usable(caller, req, registry, cb) || hc_term_check(key, klen) || hc_term_check(value, vlen))
        return HC_EINVAL;
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 5);
    hc_enc_atom_cstr(&b, "register");
    hc_enc_raw(&b, key, klen);
    hc_enc_pid(&b, hc_proc_pid(caller));
    hc_enc_raw(&b, value, vlen);
    hc_enc_atom_cstr(&b, "hordec");
    return call(rt, caller, req, OP_REGISTER, registry, &b, cb, ud);
}

int hc_registry_unregister(hc_rt *rt, hc_proc *caller, hc_registry_req *req, hc_atom registry, const uint8_t *key,
                           size_t klen, hc_registry_cb cb, void *ud)
{
    if (!usable(caller, req, registry, cb) || hc_term_check(key, klen))
        return HC_EINVAL;
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 3);
    hc_enc_atom_cstr(&b, "unregister");
    hc_enc_raw(&b, key, klen);
    hc_enc_pid(&b, hc_proc_pid(caller));
    return call(rt, caller, req, OP_UNREGISTER, registry, &b, cb, ud);
}

int hc_registry_lookup(hc_rt *rt, hc_proc *caller, hc_registry_req *req, hc_atom registry, const uint8_t *key,
                       size_t klen, hc_registry_cb cb, void *ud)
{
    if (!usable(caller, req, registry, cb) || hc_term_check(key, klen))
        return HC_EINVAL;
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "lookup");
    hc_enc_raw(&b, key, klen);
    return call(rt, caller, req, OP_LOOKUP, registry, &b, cb, ud);
}
