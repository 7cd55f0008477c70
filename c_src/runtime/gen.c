/* gen.c — GenServer-style calls: serving '$gen_call' requests with opaque caller tags, and making
 * calls from C processes (monitor + request + reply matched by the monitor's ref, as gen:call does). */
#include <stdlib.h>
#include <string.h>

#include "common/etf.h"
#include "hordec/hc_log.h"
#include "runtime/rt_internal.h"

/* ------------------------------------------------------------------ serving calls */

bool rt_gen_try_call(hc_rt *rt, hc_proc *p, const uint8_t *msg, size_t len)
{
    size_t i = 0;
    uint32_t arity;
    if (hc_dec_tuple_header(msg, len, &i, &arity) || arity != 3 || !hc_dec_is_atom(msg, len, &i, "$gen_call"))
        return false;
    hc_gen_from from;
    if (hc_dec_tuple_header(msg, len, &i, &arity) || arity != 2 || hc_dec_pid(msg, len, &i, &from.pid))
        return false;
    size_t tag_start = i;
    if (hc_dec_skip(msg, len, &i))
        return false;
    size_t tag_len = i - tag_start;
    if (tag_len > sizeof from.tag) {
        hc_log_warn("dropped a call with an oversized tag (%zu bytes)", tag_len);
        return true;
    }
    memcpy(from.tag, msg + tag_start, tag_len);
    from.tag_len = (uint16_t)tag_len;
    size_t req_start = i;
    if (hc_dec_skip(msg, len, &i) || i != len)
        return false;
    p->ops->on_call(rt, p, &from, msg + req_start, len - req_start);
    (void)rt;
    return true;
}

/* A tag of the form [alias | Ref] (OTP 24+): the reply may go to the alias, so a reply arriving after
 * the caller gave up is dropped by the caller's node instead of landing in its mailbox. */
static bool tag_alias(const hc_gen_from *from, hc_ref *alias)
{
    const uint8_t *t = from->tag;
    size_t n = from->tag_len, i = 0;
    uint32_t elems;
    if (hc_dec_list_header(t, n, &i, &elems) || elems != 1 || !hc_dec_is_atom(t, n, &i, "alias"))
        return false;
    return hc_dec_ref(t, n, &i, alias) == HC_OK && i == n;
}

int hc_gen_reply(hc_rt *rt, const hc_gen_from *from, const uint8_t *reply, size_t len)
{
    hc_buf msg = {0};
    if (hc_enc_tuple_header(&msg, 2) || hc_buf_append(&msg, from->tag, from->tag_len) ||
        hc_buf_append(&msg, reply, len)) {
        hc_buf_free(&msg);
        return HC_ENOMEM;
    }
    int rc;
    hc_ref alias;
    if (from->pid.node != rt->node && tag_alias(from, &alias)) {
        /* ALIAS_SEND carries a sender pid; any pid of ours will do, the receiver does not use it. */
        hc_pid me = {.node = rt->node, .num = 0, .serial = 0, .creation = rt->creation};
        hc_buf *b = &rt->scratch;
        hc_buf_reset(b);
        rc = hc_ctrl_enc_alias_send(b, &me, &alias);
        if (!rc)
            rc = rt_send_packet(rt, from->pid.node, b, msg.data, msg.len);
        rt->stats.msgs_out++;
    } else {
        rc = hc_send(rt, NULL, &from->pid, msg.data, msg.len);
    }
    hc_buf_free(&msg);
    return rc;
}

int hc_gen_reply_atom(hc_rt *rt, const hc_gen_from *from, const char *name)
{
    hc_buf b = {0};
    int rc = hc_enc_atom_cstr(&b, name);
    if (!rc)
        rc = hc_gen_reply(rt, from, b.data, b.len);
    hc_buf_free(&b);
    return rc;
}

int hc_gen_reply_error(hc_rt *rt, const hc_gen_from *from, const char *reason)
{
    hc_buf b = {0};
    int rc = hc_enc_tuple_header(&b, 2) || hc_enc_atom_cstr(&b, "error") || hc_enc_atom_cstr(&b, reason) ? HC_ENOMEM
                                                                                                      : HC_OK;
    if (!rc)
        rc = hc_gen_reply(rt, from, b.data, b.len);
    hc_buf_free(&b);
    return rc;
}

int hc_gen_reply_ok(hc_rt *rt, const hc_gen_from *from, const uint8_t *term, size_t len)
{
    hc_buf b = {0};
    int rc = hc_enc_tuple_header(&b, 2) || hc_enc_atom_cstr(&b, "ok") || hc_buf_append(&b, term, len) ? HC_ENOMEM
                                                                                                     : HC_OK;
    if (!rc)
        rc = hc_gen_reply(rt, from, b.data, b.len);
    hc_buf_free(&b);
    return rc;
}

/* ------------------------------------------------------------------ making calls */

static pending_call *call_find(const hc_rt *rt, const hc_ref *ref)
{
    uint64_t h = hc_ref_hash(ref);
    size_t pos = 0;
    pending_call *c;
    while ((c = hc_hmap_next(&rt->calls, h, &pos)))
        if (hc_ref_eq(&c->ref, ref))
            return c;
    return NULL;
}

static void call_remove(hc_rt *rt, pending_call *c)
{
    hc_hmap_del(&rt->calls, hc_ref_hash(&c->ref), c);
    if (c->timer)
        hc_timer_cancel(rt, c->timer);
    free(c);
}

static void call_timeout(hc_rt *rt, void *ud)
{
    pending_call *c = ud;
    c->timer = 0; /* fired: nothing to cancel */
    hc_proc *caller = rt_proc_by_pid(rt, &c->caller);
    hc_call_cb cb = c->cb;
    void *cud = c->ud;
    if (caller)
        hc_demonitor(rt, caller, &c->ref);
    call_remove(rt, c);
    if (caller)
        cb(rt, caller, HC_CALL_TIMEOUT, NULL, 0, cud);
}

bool rt_gen_try_reply(hc_rt *rt, hc_proc *p, const uint8_t *msg, size_t len)
{
    if (!rt->calls.count || len < 3 || msg[0] != ETF_SMALL_TUPLE || msg[1] != 2)
        return false;
    size_t i = 2;
    hc_ref ref;
    if (hc_dec_ref(msg, len, &i, &ref))
        return false;
    pending_call *c = call_find(rt, &ref);
    if (!c || !hc_pid_eq(&c->caller, &p->pid))
        return false;
    hc_call_cb cb = c->cb;
    void *ud = c->ud;
    hc_demonitor(rt, p, &ref);
    call_remove(rt, c);
    cb(rt, p, HC_OK, msg + i, len - i, ud);
    return true;
}

void rt_gen_on_down(hc_rt *rt, hc_proc *p, const hc_ref *ref, const uint8_t *reason, size_t rlen, bool *handled)
{
    pending_call *c = rt->calls.count ? call_find(rt, ref) : NULL;
    if (!c || !hc_pid_eq(&c->caller, &p->pid))
        return;
    *handled = true;
    hc_call_cb cb = c->cb;
    void *ud = c->ud;
    call_remove(rt, c);
    int status = rt_term_is(reason, rlen, rt_atom_noconnection, rt_atom_noconnection_len) ? HC_ENOCONN : HC_ENOPROC;
    cb(rt, p, status, NULL, 0, ud);
}

void rt_gen_drop_caller(hc_rt *rt, hc_proc *p)
{
    if (!rt->calls.count)
        return;
    for (size_t i = 0; i < rt->calls.cap; i++) {
        if (!hc_hmap_live(&rt->calls, i))
            continue;
        pending_call *c = rt->calls.vals[i];
        if (hc_pid_eq(&c->caller, &p->pid))
            call_remove(rt, c);
    }
}

int hc_gen_call(hc_rt *rt, hc_proc *caller, const hc_pid *pid, hc_atom name, hc_atom node, const uint8_t *req,
                size_t len, uint32_t timeout_ms, hc_call_cb cb, void *ud)
{
    if (!caller || caller->dead || !cb)
        return HC_EINVAL;
    pending_call *c = calloc(1, sizeof *c);
    if (!c)
        return HC_ENOMEM;
    int rc = hc_monitor(rt, caller, pid, name, node, &c->ref);
    if (rc) {
        free(c);
        return rc;
    }
    c->caller = caller->pid;
    c->cb = cb;
    c->ud = ud;
    c->rt = rt;
    if (hc_hmap_put(&rt->calls, hc_ref_hash(&c->ref), c)) {
        hc_demonitor(rt, caller, &c->ref);
        free(c);
        return HC_ENOMEM;
    }
    c->timer = hc_timer_start(rt, timeout_ms, call_timeout, c);
    hc_buf msg = {0};
    rc = hc_enc_tuple_header(&msg, 3) || hc_enc_atom_cstr(&msg, "$gen_call") || hc_enc_tuple_header(&msg, 2) ||
                 hc_enc_pid(&msg, &caller->pid) || hc_enc_ref(&msg, &c->ref) || hc_buf_append(&msg, req, len)
             ? HC_ENOMEM
             : HC_OK;
    if (!rc)
        rc = pid ? hc_send(rt, caller, pid, msg.data, msg.len)
                 : hc_send_name(rt, caller, node ? node : rt->node, name, msg.data, msg.len);
    hc_buf_free(&msg);
    if (rc == HC_ENOPROC)
        rc = HC_OK; /* local name missing: the monitor's noproc DOWN answers the call */
    if (rc) {
        hc_demonitor(rt, caller, &c->ref);
        call_remove(rt, c);
    }
    return rc;
}
