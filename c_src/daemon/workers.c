/* workers.c — see workers.h. */
#include "daemon/workers.h"

#include <stdlib.h>
#include <string.h>

/* ---- echo worker: {echo, T} -> T; {exit, R} -> ok, then exits with R; message {exit, R} -> exits ---- */

static bool is_exit_request(const uint8_t *t, size_t len, size_t *reason_at)
{
    size_t i = 0;
    uint32_t arity;
    if (hc_dec_tuple_header(t, len, &i, &arity) || arity != 2 || !hc_dec_is_atom(t, len, &i, "exit"))
        return false;
    *reason_at = i;
    return true;
}

static void worker_call(hc_rt *rt, hc_proc *self, const hc_gen_from *from, const uint8_t *req, size_t len)
{
    size_t i = 0, r;
    uint32_t arity;
    if (is_exit_request(req, len, &r)) {
        static const uint8_t ok[] = "\x77\x02ok";
        hc_gen_reply(rt, from, ok, sizeof ok - 1);
        hc_proc_exit(rt, self, req + r, len - r);
        return;
    }
    if (!hc_dec_tuple_header(req, len, &i, &arity) && arity == 2 && hc_dec_is_atom(req, len, &i, "echo")) {
        hc_gen_reply(rt, from, req + i, len - i);
        return;
    }
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "error");
    hc_buf_append(&b, req, len);
    hc_gen_reply_buf(rt, from, &b);
    hc_buf_free(&b);
}

static void worker_message(hc_rt *rt, hc_proc *self, const hc_pid *from, const uint8_t *msg, size_t len)
{
    size_t r;
    if (is_exit_request(msg, len, &r))
        hc_proc_exit(rt, self, msg + r, len - r);
    (void)from;
}

static const hc_proc_ops worker_ops = {.on_call = worker_call, .on_message = worker_message};

int hordec_worker_spawn(hc_rt *rt, hc_proc **out) { return hc_proc_spawn(rt, &worker_ops, NULL, 0, out); }

/* ---- watcher ---- */

typedef struct notify_state {
    hc_pid notify;
    hc_pid target;
} notify_state;

static void watcher_down(hc_rt *rt, hc_proc *self, const hc_down *d)
{
    notify_state *st = hc_proc_state(self);
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 4);
    hc_enc_atom_cstr(&b, "hordec_down");
    hc_enc_ref(&b, &d->ref);
    hc_enc_pid(&b, &st->target);
    hc_buf_append(&b, d->reason.p, d->reason.len);
    hc_send_buf(rt, self, &st->notify, &b);
    hc_buf_free(&b);
    hc_span normal = hc_reason_normal();
    hc_proc_exit(rt, self, normal.p, normal.len);
}

static void free_state(hc_rt *rt, hc_proc *self, const uint8_t *reason, size_t rlen)
{
    free(hc_proc_state(self));
    (void)rt;
    (void)reason;
    (void)rlen;
}

static const hc_proc_ops watcher_ops = {.on_down = watcher_down, .on_terminate = free_state};

int hordec_watch(hc_rt *rt, const hc_pid *target, const hc_pid *notify, hc_ref *ref_out)
{
    notify_state *st = malloc(sizeof *st);
    if (!st)
        return HC_ENOMEM;
    st->notify = *notify;
    st->target = *target;
    hc_proc *p;
    int rc = hc_proc_spawn(rt, &watcher_ops, st, 0, &p);
    if (rc) {
        free(st);
        return rc;
    }
    rc = hc_monitor(rt, p, target, 0, 0, ref_out);
    if (rc) {
        hc_span normal = hc_reason_normal();
        hc_proc_exit(rt, p, normal.p, normal.len);
    }
    return rc;
}

/* ---- linker ---- */

static void linker_exit(hc_rt *rt, hc_proc *self, const hc_exit_info *e)
{
    notify_state *st = hc_proc_state(self);
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 4);
    hc_enc_atom_cstr(&b, "hordec_exit");
    hc_enc_pid(&b, hc_proc_pid(self));
    hc_enc_pid(&b, &e->from);
    hc_buf_append(&b, e->reason.p, e->reason.len);
    hc_send_buf(rt, self, &st->notify, &b);
    hc_buf_free(&b);
    hc_span normal = hc_reason_normal();
    hc_proc_exit(rt, self, normal.p, normal.len);
}

static const hc_proc_ops linker_ops = {.on_exit_signal = linker_exit, .on_terminate = free_state};

int hordec_link(hc_rt *rt, const hc_pid *target, const hc_pid *notify, hc_proc **out)
{
    *out = NULL;
    notify_state *st = malloc(sizeof *st);
    if (!st)
        return HC_ENOMEM;
    st->notify = *notify;
    st->target = *target;
    hc_proc *p;
    int rc = hc_proc_spawn(rt, &linker_ops, st, 0, &p);
    if (rc) {
        free(st);
        return rc;
    }
    hc_proc_set_trap_exit(p, true);
    rc = hc_link(rt, p, target);
    if (rc) {
        hc_span normal = hc_reason_normal();
        hc_proc_exit(rt, p, normal.p, normal.len); /* frees st through on_terminate */
        return rc;
    }
    *out = p;
    return HC_OK;
}
