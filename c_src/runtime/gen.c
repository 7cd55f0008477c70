/* gen.c — GenServer-style calls: serving '$gen_call' requests with opaque caller tags, and making
 * calls from C processes (monitor + request + reply matched by the monitor's ref, as gen:call does). */
#include <stdlib.h>
#include <string.h>

#include "common/etf.h"
#include "hordec/hc_log.h"
#include "runtime/rt_internal.h"

/* ------------------------------------------------------------------ the caller's tag */

/* How an hc_gen_from holds its tag (kind_). The zero value is empty. */
enum { FROM_EMPTY, FROM_REF, FROM_ALIAS, FROM_INLINE, FROM_HEAP, FROM_NOREPLY };

/* A caller that wants no reply tags its call with this atom (docs/protocol.md §1): the request is served as
 * any call (so it may be batched in '$gen_calls' and the server knows the caller's pid), and its reply is
 * dropped here instead of crossing the network to be thrown away. */
static bool tag_is_noreply(const uint8_t *t, size_t n)
{
    size_t i = 0;
    return hc_dec_is_atom(t, n, &i, "$hordec_noreply") && i == n;
}

/* gen:call's own tags are held as a compact ref and re-encoded on reply. Only NEWER_REFERENCE_EXT (what
 * OTP 23+ sends, and what hc_enc_ref writes) takes this path, so the reply's tag is the very same term;
 * the node atom may come in any atom encoding, they all decode to the same atom. */
static bool tag_is_ref(const uint8_t *t, size_t n, hc_ref *ref)
{
    size_t i = 0;
    return n && t[0] == ETF_NEWER_REFERENCE && hc_dec_ref(t, n, &i, ref) == HC_OK && i == n;
}

/* [alias | Ref] (OTP 24+): the improper list gen:call uses when the reply may go to an alias, so that a
 * reply arriving after the caller gave up is dropped by the caller's node instead of reaching its
 * mailbox. */
static bool tag_is_alias(const uint8_t *t, size_t n, hc_ref *ref)
{
    size_t i = 0;
    uint32_t elems;
    if (hc_dec_list_header(t, n, &i, &elems) || elems != 1 || !hc_dec_is_atom(t, n, &i, "alias"))
        return false;
    return tag_is_ref(t + i, n - i, ref);
}

/* Captures the tag of a call into *f (which the caller releases). HC_OK or HC_ENOMEM. */
static int from_capture(hc_gen_from *f, const hc_pid *pid, const uint8_t *tag, size_t n)
{
    memset(f, 0, sizeof *f);
    f->pid = *pid;
    if (tag_is_noreply(tag, n)) {
        f->kind_ = FROM_NOREPLY;
    } else if (tag_is_ref(tag, n, &f->in_.ref)) {
        f->kind_ = FROM_REF;
    } else if (tag_is_alias(tag, n, &f->in_.ref)) {
        f->kind_ = FROM_ALIAS;
    } else if (n <= sizeof f->in_.bytes) {
        memcpy(f->in_.bytes, tag, n);
        f->len_ = (uint32_t)n;
        f->kind_ = FROM_INLINE;
    } else {
        if (n > UINT32_MAX || !(f->heap_ = malloc(n)))
            return HC_ENOMEM;
        memcpy(f->heap_, tag, n);
        f->len_ = (uint32_t)n;
        f->kind_ = FROM_HEAP;
    }
    return HC_OK;
}

/* Appends the tag term. */
static int from_enc_tag(hc_buf *b, const hc_gen_from *f)
{
    switch (f->kind_) {
    case FROM_REF: return hc_enc_ref(b, &f->in_.ref);
    case FROM_ALIAS:
        /* [alias | Ref]: one element, then the ref as the tail */
        if (hc_enc_list_header(b, 1) || hc_enc_atom_cstr(b, "alias"))
            return b->err ? b->err : HC_ENOMEM;
        return hc_enc_ref(b, &f->in_.ref);
    case FROM_INLINE: return hc_buf_append(b, f->in_.bytes, f->len_);
    case FROM_HEAP: return hc_buf_append(b, f->heap_, f->len_);
    default: return HC_EINVAL;
    }
}

int hc_gen_from_copy(hc_gen_from *dst, const hc_gen_from *src)
{
    *dst = *src;
    if (src->kind_ != FROM_HEAP)
        return HC_OK;
    dst->heap_ = malloc(src->len_);
    if (!dst->heap_) {
        memset(dst, 0, sizeof *dst);
        return HC_ENOMEM;
    }
    memcpy(dst->heap_, src->heap_, src->len_);
    return HC_OK;
}

void hc_gen_from_release(hc_gen_from *from)
{
    if (from->kind_ == FROM_HEAP)
        free(from->heap_);
    memset(from, 0, sizeof *from);
}

/* ------------------------------------------------------------------ serving calls */

bool rt_gen_try_call(hc_rt *rt, hc_proc *p, const uint8_t *msg, size_t len)
{
    size_t i = 0;
    uint32_t arity;
    if (hc_dec_tuple_header(msg, len, &i, &arity) || arity != 3 || !hc_dec_is_atom(msg, len, &i, "$gen_call"))
        return false;
    hc_pid pid;
    if (hc_dec_tuple_header(msg, len, &i, &arity) || arity != 2 || hc_dec_pid(msg, len, &i, &pid))
        return false;
    size_t tag_start = i;
    if (hc_dec_skip(msg, len, &i))
        return false;
    size_t tag_end = i;
    if (hc_dec_skip(msg, len, &i) || i != len)
        return false;
    hc_gen_from from;
    if (from_capture(&from, &pid, msg + tag_start, tag_end - tag_start)) {
        hc_log_warn("out of memory: dropped a call with a %zu-byte tag", tag_end - tag_start);
        return true;
    }
    p->ops->on_call(rt, p, &from, msg + tag_end, len - tag_end);
    hc_gen_from_release(&from);
    return true;
}

/* ------------------------------------------------------------------ batches of calls */

/* Replies held for a batch are sent once they reach this size, so one huge batch cannot hold a huge reply. */
#define GEN_BATCH_REPLY_BYTES 65536u

/* Sends the replies collected for the batch's caller as {'$gen_replies', [{Tag, Reply}, ...]}. */
static void batch_send_replies(hc_rt *rt)
{
    if (!rt->batch.n)
        return;
    hc_buf msg = {0};
    hc_enc_tuple_header(&msg, 2);
    hc_enc_atom_cstr(&msg, "$gen_replies");
    hc_enc_list_header(&msg, rt->batch.n);
    hc_buf_append(&msg, rt->batch.replies.data, rt->batch.replies.len);
    hc_enc_nil(&msg);
    if (msg.err || rt->batch.replies.err)
        hc_log_warn("out of memory: %u replies to a batch of calls were lost", (unsigned)rt->batch.n);
    else
        hc_send(rt, NULL, &rt->batch.pid, msg.data, msg.len);
    hc_buf_free(&msg);
    hc_buf_reset(&rt->batch.replies);
    rt->batch.n = 0;
}

/* Walks the calls of a batch; with p NULL it only validates them. False on a malformed element. */
static bool batch_walk(hc_rt *rt, hc_proc *p, const hc_pid *pid, const uint8_t *msg, size_t len, size_t *i, uint32_t n)
{
    for (uint32_t k = 0; k < n; k++) {
        uint32_t arity;
        if (hc_dec_tuple_header(msg, len, i, &arity) || arity != 2)
            return false;
        size_t tag = *i;
        if (hc_dec_skip(msg, len, i))
            return false;
        size_t req = *i;
        if (hc_dec_skip(msg, len, i))
            return false;
        if (!p)
            continue;
        hc_gen_from from;
        if (from_capture(&from, pid, msg + tag, req - tag)) {
            hc_log_warn("out of memory: dropped a call with a %zu-byte tag", req - tag);
            continue;
        }
        p->ops->on_call(rt, p, &from, msg + req, *i - req);
        hc_gen_from_release(&from);
        if (p->dead)
            return true; /* the rest has no one to go to */
    }
    return true;
}

/* {'$gen_calls', Pid, [{Tag, Request}, ...]}: many calls of one caller in one message (HordeC's clients send
 * concurrent writes this way). Each reaches on_call as if it had come alone, in order; the replies made
 * meanwhile return together, so N calls cost the caller's node two packets instead of 2N. Replies made later
 * go one by one, as any reply. A malformed batch is not one: it is left to on_message, whole. */
bool rt_gen_try_calls(hc_rt *rt, hc_proc *p, const uint8_t *msg, size_t len)
{
    size_t i = 0;
    uint32_t arity, n;
    hc_pid pid;
    if (hc_dec_tuple_header(msg, len, &i, &arity) || arity != 3 || !hc_dec_is_atom(msg, len, &i, "$gen_calls") ||
        hc_dec_pid(msg, len, &i, &pid) || hc_dec_list_header(msg, len, &i, &n))
        return false;
    size_t first = i;
    if (!batch_walk(rt, NULL, &pid, msg, len, &i, n) ||
        (n ? hc_peek_type(msg, len, i) != ETF_NIL || i + 1 != len : i != len))
        return false;
    if (rt->batch.proc) {
        /* Nested (a call handler delivering to another process synchronously): the outer batch keeps
         * collecting; these replies go one by one. */
        i = first;
        batch_walk(rt, p, &pid, msg, len, &i, n);
        return true;
    }
    rt->batch.proc = p;
    rt->batch.pid = pid;
    if (p->ops->on_batch)
        p->ops->on_batch(rt, p, true);
    i = first;
    batch_walk(rt, p, &pid, msg, len, &i, n);
    if (p->ops->on_batch && !p->dead)
        p->ops->on_batch(rt, p, false);
    rt->batch.proc = NULL;
    batch_send_replies(rt);
    return true;
}

/* Holds a reply to the current batch's caller. False if this reply is not one to hold. */
static bool batch_hold(hc_rt *rt, const hc_gen_from *from, const uint8_t *reply, size_t len)
{
    /* An alias tag to another node needs its own ALIAS_SEND; anything not for the batch's caller goes alone. */
    if (!rt->batch.proc || from->kind_ == FROM_ALIAS || !hc_pid_eq(&from->pid, &rt->batch.pid))
        return false;
    hc_buf *b = &rt->batch.replies;
    hc_enc_tuple_header(b, 2);
    from_enc_tag(b, from);
    hc_buf_append(b, reply, len);
    rt->batch.n++;
    if (b->len >= GEN_BATCH_REPLY_BYTES) {
        /* A boundary inside the batch: what the process held for the replies so far goes first. */
        hc_proc *p = rt->batch.proc;
        if (p->ops->on_batch && !p->dead)
            p->ops->on_batch(rt, p, false);
        batch_send_replies(rt);
        if (p->ops->on_batch && !p->dead)
            p->ops->on_batch(rt, p, true);
    }
    return true;
}

int hc_gen_reply(hc_rt *rt, const hc_gen_from *from, const uint8_t *reply, size_t len)
{
    if (from->kind_ == FROM_EMPTY)
        return HC_EINVAL;
    if (from->kind_ == FROM_NOREPLY)
        return HC_OK;
    if (batch_hold(rt, from, reply, len))
        return rt->batch.replies.err;
    hc_buf msg = {0};
    hc_enc_tuple_header(&msg, 2);
    int rc = from_enc_tag(&msg, from);
    if (!rc)
        rc = hc_buf_append(&msg, reply, len);
    if (!rc)
        rc = msg.err;
    if (rc) {
        hc_buf_free(&msg);
        return rc;
    }
    if (from->kind_ == FROM_ALIAS && from->pid.node != rt->node) {
        /* ALIAS_SEND carries a sender pid; any pid of ours will do, the receiver does not use it. */
        hc_pid me = {.node = rt->node, .num = 0, .serial = 0, .creation = rt->creation};
        hc_buf *b = &rt->scratch;
        hc_buf_reset(b);
        rc = hc_ctrl_enc_alias_send(b, &me, &from->in_.ref);
        if (!rc)
            rc = rt_send_packet(rt, from->pid.node, b, msg.data, msg.len);
        rt->stats.msgs_out++;
    } else {
        rc = hc_send(rt, NULL, &from->pid, msg.data, msg.len);
    }
    hc_buf_free(&msg);
    return rc;
}

const char *hc_err_atom(int code)
{
    switch (code) {
    case HC_ENOMEM: return "enomem";
    case HC_EINVAL: return "einval";
    case HC_EDECODE: return "edecode";
    case HC_ETOOBIG: return "etoobig";
    case HC_ENOPROC: return "enoproc";
    case HC_ENOCONN: return "enoconn";
    case HC_EBUSY: return "ebusy";
    case HC_EIO: return "eio";
    case HC_EAUTH: return "eauth";
    case HC_EEXIST: return "eexist";
    case HC_EVERSION: return "eversion";
    case HC_ESTATE: return "estate";
    case HC_ETIMEOUT: return "etimeout";
    default: return "unknown";
    }
}

int hc_gen_reply_buf(hc_rt *rt, const hc_gen_from *from, const hc_buf *b)
{
    if (!b->err)
        return hc_gen_reply(rt, from, b->data, b->len);
    /* {error, {encode_failed, Code}}: the request is answered even though its reply could not be built. */
    hc_buf e = {0};
    hc_enc_tuple_header(&e, 2);
    hc_enc_atom_cstr(&e, "error");
    hc_enc_tuple_header(&e, 2);
    hc_enc_atom_cstr(&e, "encode_failed");
    hc_enc_atom_cstr(&e, hc_err_atom(b->err));
    if (!e.err)
        hc_gen_reply(rt, from, e.data, e.len);
    hc_buf_free(&e);
    return b->err;
}

static int reply_pair(hc_rt *rt, const hc_gen_from *from, const char *atom, const char *atom2, const uint8_t *term,
                      size_t len)
{
    hc_buf b = {0};
    int rc = hc_enc_tuple_header(&b, 2) || hc_enc_atom_cstr(&b, atom) ||
                     (atom2 ? hc_enc_atom_cstr(&b, atom2) : hc_buf_append(&b, term, len))
                 ? (b.err ? b.err : HC_ENOMEM)
                 : HC_OK;
    if (!rc)
        rc = hc_gen_reply(rt, from, b.data, b.len);
    hc_buf_free(&b);
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
    return reply_pair(rt, from, "error", reason, NULL, 0);
}

int hc_gen_reply_ok(hc_rt *rt, const hc_gen_from *from, const uint8_t *term, size_t len)
{
    return reply_pair(rt, from, "ok", NULL, term, len);
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
    if (caller) {
        hc_call_result res = {.status = HC_ETIMEOUT};
        cb(rt, caller, &res, cud);
    }
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
    hc_call_result res = {.status = HC_OK, .reply = {msg + i, len - i}};
    cb(rt, p, &res, ud);
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
    hc_call_result res = {
        .status = rt_term_is(reason, rlen, rt_atom_noconnection, rt_atom_noconnection_len) ? HC_ENOCONN : HC_ENOPROC};
    cb(rt, p, &res, ud);
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
    rc = hc_timer_start(rt, timeout_ms, call_timeout, c, &c->timer);
    hc_buf msg = {0};
    if (!rc) {
        hc_enc_tuple_header(&msg, 3);
        hc_enc_atom_cstr(&msg, "$gen_call");
        hc_enc_tuple_header(&msg, 2);
        hc_enc_pid(&msg, &caller->pid);
        hc_enc_ref(&msg, &c->ref);
        hc_buf_append(&msg, req, len);
        rc = msg.err;
    }
    if (!rc)
        rc = pid ? hc_send(rt, caller, pid, msg.data, msg.len)
                 : hc_send_name(rt, caller, node ? node : rt->node, name, msg.data, msg.len);
    hc_buf_free(&msg);
    /* A monitor that is already gone has queued its DOWN (noproc: the target is missing; noconnection: its
     * node is unreachable). That DOWN answers the call, so the call stands whatever the send said; failing
     * here instead would leave the DOWN to reach the caller's on_down with a ref it never saw. */
    if (rc && !rt_mon_find(rt, &c->ref))
        rc = HC_OK;
    if (rc) {
        hc_demonitor(rt, caller, &c->ref);
        call_remove(rt, c);
    }
    return rc;
}
