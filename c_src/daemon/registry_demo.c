/* registry_demo.c — see registry_demo.h. Also the smallest example of a C process using hc_registry.h: keep
 * an hc_registry_req in the process state, start a call, answer in the callback. */
#include "daemon/registry_demo.h"

#include <stdlib.h>
#include <string.h>

#include "hordec/hc_registry.h"

typedef struct demo {
    hc_atom registry;
    hc_registry_req req; /* one registry call at a time */
    hc_gen_from caller;  /* who waits for that call's outcome */
    bool busy, registered;
} demo;

static void reply_status(hc_rt *rt, const hc_gen_from *to, const hc_registry_result *res)
{
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "error");
    if (res->status == HC_EEXIST) {
        hc_enc_tuple_header(&b, 2);
        hc_enc_atom_cstr(&b, "already_registered");
        hc_enc_pid(&b, &res->pid);
    } else {
        hc_enc_atom_cstr(&b, res->status == HC_ENOPROC ? "noproc" : hc_err_atom(res->status));
    }
    hc_gen_reply_buf(rt, to, &b);
    hc_buf_free(&b);
}

static void done(demo *d)
{
    hc_gen_from_release(&d->caller);
    d->busy = false;
}

static void on_registered(hc_rt *rt, hc_proc *self, const hc_registry_result *res, void *ud)
{
    demo *d = ud;
    bool first = !d->registered;
    if (res->status == HC_OK) {
        d->registered = true;
        hc_buf b = {0};
        if (first) {
            hc_enc_tuple_header(&b, 2);
            hc_enc_atom_cstr(&b, "ok");
            hc_enc_pid(&b, hc_proc_pid(self));
        } else {
            hc_enc_atom_cstr(&b, "ok");
        }
        hc_gen_reply_buf(rt, &d->caller, &b);
        hc_buf_free(&b);
    } else {
        reply_status(rt, &d->caller, res);
    }
    done(d);
    if (first && res->status != HC_OK) {
        hc_span r = hc_reason_normal();
        hc_proc_exit(rt, self, r.p, r.len);
    }
}

static void on_looked_up(hc_rt *rt, hc_proc *self, const hc_registry_result *res, void *ud)
{
    demo *d = ud;
    if (res->status != HC_OK) {
        reply_status(rt, &d->caller, res);
    } else {
        hc_buf b = {0};
        if (res->n_matches)
            hc_enc_list_header(&b, (uint32_t)res->n_matches);
        for (size_t i = 0; i < res->n_matches; i++) {
            hc_enc_tuple_header(&b, 2);
            hc_enc_pid(&b, &res->matches[i].pid);
            hc_enc_raw(&b, res->matches[i].value, res->matches[i].value_len);
        }
        hc_enc_nil(&b);
        hc_gen_reply_buf(rt, &d->caller, &b);
        hc_buf_free(&b);
    }
    done(d);
    (void)self;
}

static void on_unregistered(hc_rt *rt, hc_proc *self, const hc_registry_result *res, void *ud)
{
    demo *d = ud;
    if (res->status == HC_OK)
        hc_gen_reply_atom(rt, &d->caller, "ok");
    else
        reply_status(rt, &d->caller, res);
    done(d);
    (void)self;
}

/* The value a demo process registers with: {hordec_demo, Node}. */
static void demo_value(hc_rt *rt, hc_buf *v)
{
    hc_enc_tuple_header(v, 2);
    hc_enc_atom_cstr(v, "hordec_demo");
    hc_enc_atom(v, hc_rt_node(rt));
}

static void on_call(hc_rt *rt, hc_proc *self, const hc_gen_from *from, const uint8_t *req, size_t len)
{
    demo *d = hc_proc_state(self);
    size_t i = 0;
    uint32_t arity;
    hc_span t;
    if (hc_dec_is_atom(req, len, &i, "ping") && i == len) {
        hc_gen_reply_atom(rt, from, "pong");
        return;
    }
    i = 0;
    if (hc_dec_is_atom(req, len, &i, "stop") && i == len) {
        hc_gen_reply_atom(rt, from, "ok");
        hc_span r = hc_reason_normal();
        hc_proc_exit(rt, self, r.p, r.len);
        return;
    }
    i = 0;
    if (hc_dec_tuple_header(req, len, &i, &arity) || arity != 2) {
        hc_gen_reply_error(rt, from, "badarg");
        return;
    }
    size_t a = i;
    if (hc_dec_is_atom(req, len, &i, "echo")) {
        hc_gen_reply(rt, from, req + i, len - i);
        return;
    }
    if (d->busy) {
        hc_gen_reply_error(rt, from, "busy");
        return;
    }
    int rc = HC_EINVAL;
    bool known = true;
    i = a;
    if (hc_dec_is_atom(req, len, &i, "lookup") && !hc_dec_term(req, len, &i, &t) && i == len)
        rc = hc_registry_lookup(rt, self, &d->req, d->registry, t.p, t.len, on_looked_up, d);
    else if ((i = a, hc_dec_is_atom(req, len, &i, "unregister")) && !hc_dec_term(req, len, &i, &t) && i == len)
        rc = hc_registry_unregister(rt, self, &d->req, d->registry, t.p, t.len, on_unregistered, d);
    else if ((i = a, hc_dec_is_atom(req, len, &i, "register")) && !hc_dec_term(req, len, &i, &t) && i == len) {
        hc_buf v = {0};
        demo_value(rt, &v);
        rc = v.err ? v.err
                   : hc_registry_register(rt, self, &d->req, d->registry, t.p, t.len, v.data, v.len, on_registered, d);
        hc_buf_free(&v);
    } else
        known = false;
    if (rc == HC_OK && !hc_gen_from_copy(&d->caller, from)) {
        d->busy = true;
        return;
    }
    hc_gen_reply_error(rt, from, known ? hc_err_atom(rc ? rc : HC_ENOMEM) : "badarg");
}

static void on_terminate(hc_rt *rt, hc_proc *self, const uint8_t *reason, size_t rlen)
{
    demo *d = hc_proc_state(self);
    hc_gen_from_release(&d->caller); /* a call in flight dies with us: its caller sees our exit */
    free(d);
    (void)rt, (void)reason, (void)rlen;
}

static const hc_proc_ops demo_ops = {.on_call = on_call, .on_terminate = on_terminate};

int hordec_registry_demo(hc_rt *rt, hc_atom registry, const uint8_t *key, size_t klen, const hc_gen_from *from)
{
    demo *d = calloc(1, sizeof *d);
    if (!d)
        return HC_ENOMEM;
    d->registry = registry;
    hc_proc *p;
    int rc = hc_proc_spawn(rt, &demo_ops, d, 0, &p);
    if (rc) {
        free(d);
        return rc;
    }
    hc_buf v = {0};
    demo_value(rt, &v);
    rc = v.err ? v.err : hc_gen_from_copy(&d->caller, from);
    if (!rc)
        rc = hc_registry_register(rt, p, &d->req, registry, key, klen, v.data, v.len, on_registered, d);
    hc_buf_free(&v);
    if (rc) {
        hc_span r = hc_reason_normal();
        hc_proc_exit(rt, p, r.p, r.len); /* frees d */
        return rc;
    }
    d->busy = true;
    return HC_OK;
}
