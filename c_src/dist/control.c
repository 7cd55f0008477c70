/* control.c — see control.h. Tuple shapes are those of OTP's dist.c for the flags we negotiate. */
#include "dist/control.h"

#include <string.h>

#include "common/etf.h"

/* ------------------------------------------------------------------ encoding */

static int start(hc_buf *b, uint32_t arity, int op)
{
    if (hc_buf_put_u8(b, 'p') || hc_buf_put_u8(b, ETF_VERSION) || hc_enc_tuple_header(b, arity) ||
        hc_enc_ulong(b, (uint64_t)op))
        return HC_ENOMEM;
    return HC_OK;
}

static int enc_procref(hc_buf *b, const hc_procref *r)
{
    return r->is_name ? hc_enc_atom(b, r->name) : hc_enc_pid(b, &r->pid);
}

int hc_ctrl_enc_send(hc_buf *b, const hc_pid *to)
{
    return start(b, 3, HC_DOP_SEND) || hc_enc_atom(b, 0) || hc_enc_pid(b, to) ? HC_ENOMEM : HC_OK;
}

int hc_ctrl_enc_reg_send(hc_buf *b, const hc_pid *from, hc_atom to_name)
{
    return start(b, 4, HC_DOP_REG_SEND) || hc_enc_pid(b, from) || hc_enc_atom(b, 0) || hc_enc_atom(b, to_name)
               ? HC_ENOMEM
               : HC_OK;
}

int hc_ctrl_enc_link(hc_buf *b, const hc_pid *from, const hc_pid *to)
{
    return start(b, 3, HC_DOP_LINK) || hc_enc_pid(b, from) || hc_enc_pid(b, to) ? HC_ENOMEM : HC_OK;
}

static int enc_exit(hc_buf *b, int op, const hc_pid *from, const hc_pid *to, const uint8_t *r, size_t rlen)
{
    return start(b, 4, op) || hc_enc_pid(b, from) || hc_enc_pid(b, to) || hc_buf_append(b, r, rlen) ? HC_ENOMEM : HC_OK;
}

int hc_ctrl_enc_exit(hc_buf *b, const hc_pid *from, const hc_pid *to, const uint8_t *reason, size_t rlen)
{
    return enc_exit(b, HC_DOP_EXIT, from, to, reason, rlen);
}

int hc_ctrl_enc_exit2(hc_buf *b, const hc_pid *from, const hc_pid *to, const uint8_t *reason, size_t rlen)
{
    return enc_exit(b, HC_DOP_EXIT2, from, to, reason, rlen);
}

static int enc_monitor(hc_buf *b, int op, const hc_pid *from, const hc_procref *to, const hc_ref *ref)
{
    return start(b, 4, op) || hc_enc_pid(b, from) || enc_procref(b, to) || hc_enc_ref(b, ref) ? HC_ENOMEM : HC_OK;
}

int hc_ctrl_enc_monitor_p(hc_buf *b, const hc_pid *from, const hc_procref *to, const hc_ref *ref)
{
    return enc_monitor(b, HC_DOP_MONITOR_P, from, to, ref);
}

int hc_ctrl_enc_demonitor_p(hc_buf *b, const hc_pid *from, const hc_procref *to, const hc_ref *ref)
{
    return enc_monitor(b, HC_DOP_DEMONITOR_P, from, to, ref);
}

int hc_ctrl_enc_monitor_p_exit(hc_buf *b, const uint8_t *watched_raw, size_t wlen, const hc_pid *watcher,
                               const hc_ref *ref, const uint8_t *reason, size_t rlen)
{
    return start(b, 5, HC_DOP_MONITOR_P_EXIT) || hc_buf_append(b, watched_raw, wlen) || hc_enc_pid(b, watcher) ||
                   hc_enc_ref(b, ref) || hc_buf_append(b, reason, rlen)
               ? HC_ENOMEM
               : HC_OK;
}

int hc_ctrl_enc_unlink_id(hc_buf *b, uint64_t id, const hc_pid *from, const hc_pid *to)
{
    return start(b, 4, HC_DOP_UNLINK_ID) || hc_enc_ulong(b, id) || hc_enc_pid(b, from) || hc_enc_pid(b, to) ? HC_ENOMEM
                                                                                                            : HC_OK;
}

int hc_ctrl_enc_unlink_id_ack(hc_buf *b, const uint8_t *id_raw, size_t idlen, const hc_pid *from, const hc_pid *to)
{
    return start(b, 4, HC_DOP_UNLINK_ID_ACK) || hc_buf_append(b, id_raw, idlen) || hc_enc_pid(b, from) ||
                   hc_enc_pid(b, to)
               ? HC_ENOMEM
               : HC_OK;
}

int hc_ctrl_enc_alias_send(hc_buf *b, const hc_pid *from, const hc_ref *alias)
{
    return start(b, 3, HC_DOP_ALIAS_SEND) || hc_enc_pid(b, from) || hc_enc_ref(b, alias) ? HC_ENOMEM : HC_OK;
}

int hc_ctrl_enc_spawn_request(hc_buf *b, const hc_ref *req, const hc_pid *from, const hc_pid *group_leader,
                              const char *mod, const char *fun, uint32_t arity, const uint8_t *opts, size_t olen)
{
    if (start(b, 6, HC_DOP_SPAWN_REQUEST) || hc_enc_ref(b, req) || hc_enc_pid(b, from) || hc_enc_pid(b, group_leader) ||
        hc_enc_tuple_header(b, 3) || hc_enc_atom_cstr(b, mod) || hc_enc_atom_cstr(b, fun) || hc_enc_ulong(b, arity))
        return HC_ENOMEM;
    if (olen)
        return hc_buf_append(b, opts, olen);
    return hc_enc_nil(b);
}

int hc_ctrl_enc_spawn_reply(hc_buf *b, const hc_ref *req, const hc_pid *to, int64_t flags, const uint8_t *result,
                            size_t rlen)
{
    return start(b, 5, HC_DOP_SPAWN_REPLY) || hc_enc_ref(b, req) || hc_enc_pid(b, to) || hc_enc_long(b, flags) ||
                   hc_buf_append(b, result, rlen)
               ? HC_ENOMEM
               : HC_OK;
}

/* ------------------------------------------------------------------ decoding */

typedef struct cursor {
    const uint8_t *p;
    size_t len, i;
} cursor;

static int span(cursor *c, hc_span *out)
{
    size_t s = c->i;
    if (hc_dec_skip(c->p, c->len, &c->i))
        return HC_EDECODE;
    out->p = c->p + s;
    out->len = c->i - s;
    return HC_OK;
}

static int pid(cursor *c, hc_pid *out) { return hc_dec_pid(c->p, c->len, &c->i, out); }
static int ref(cursor *c, hc_ref *out) { return hc_dec_ref(c->p, c->len, &c->i, out); }

static int procref(cursor *c, hc_procref *out, hc_span *raw)
{
    size_t s = c->i;
    int t = hc_peek_type(c->p, c->len, c->i);
    memset(out, 0, sizeof *out);
    int rc;
    if (t == ETF_NEW_PID || t == ETF_PID) {
        rc = pid(c, &out->pid);
    } else {
        out->is_name = true;
        rc = hc_dec_atom(c->p, c->len, &c->i, &out->name);
    }
    if (rc)
        return HC_EDECODE;
    if (raw) {
        raw->p = c->p + s;
        raw->len = c->i - s;
    }
    return HC_OK;
}

static int skip(cursor *c) { return hc_dec_skip(c->p, c->len, &c->i); }

/* The arity each op we handle must have; 0 = not handled. */
static uint32_t expected_arity(int op)
{
    switch (op) {
    case HC_DOP_LINK: return 3;
    case HC_DOP_SEND: return 3;
    case HC_DOP_EXIT: return 4;
    case HC_DOP_UNLINK: return 3;
    case HC_DOP_REG_SEND: return 4;
    case HC_DOP_GROUP_LEADER: return 3;
    case HC_DOP_EXIT2: return 4;
    case HC_DOP_MONITOR_P: return 4;
    case HC_DOP_DEMONITOR_P: return 4;
    case HC_DOP_MONITOR_P_EXIT: return 5;
    case HC_DOP_SEND_SENDER: return 3;
    case HC_DOP_SPAWN_REQUEST: return 6;
    case HC_DOP_SPAWN_REPLY: return 5;
    case HC_DOP_ALIAS_SEND: return 3;
    case HC_DOP_UNLINK_ID: return 4;
    case HC_DOP_UNLINK_ID_ACK: return 4;
    default: return 0;
    }
}

static bool has_payload(int op)
{
    return op == HC_DOP_SEND || op == HC_DOP_REG_SEND || op == HC_DOP_SEND_SENDER || op == HC_DOP_ALIAS_SEND ||
           op == HC_DOP_SPAWN_REQUEST;
}

/* `tt`: the trace-token variant. Its token trails the tuple, except for EXIT_TT and EXIT2_TT, where it
 * sits before the reason. */
static int decode_fields(cursor *c, hc_ctrl *m, bool tt)
{
    hc_span ignore;
    switch (m->op) {
    case HC_DOP_SEND: /* {2, Unused, ToPid} */ return skip(c) || procref(c, &m->to, NULL) || m->to.is_name;
    case HC_DOP_SEND_SENDER: /* {22, FromPid, ToPid} */
        return pid(c, &m->from) || procref(c, &m->to, NULL) || m->to.is_name;
    case HC_DOP_REG_SEND: /* {6, FromPid, Unused, ToName} */
        return pid(c, &m->from) || skip(c) || procref(c, &m->to, NULL) || !m->to.is_name;
    case HC_DOP_LINK:
    case HC_DOP_UNLINK:
    case HC_DOP_GROUP_LEADER: return pid(c, &m->from) || procref(c, &m->to, NULL) || m->to.is_name;
    case HC_DOP_EXIT:
    case HC_DOP_EXIT2: /* {Op, FromPid, ToPid, Reason}; _TT: {Op, FromPid, ToPid, Token, Reason} */
        return pid(c, &m->from) || procref(c, &m->to, NULL) || m->to.is_name || (tt && skip(c)) || span(c, &m->reason);
    case HC_DOP_MONITOR_P:
    case HC_DOP_DEMONITOR_P: /* {Op, FromPid, ToProc, Ref} */
        return pid(c, &m->from) || procref(c, &m->to, &m->to_raw) || ref(c, &m->ref);
    case HC_DOP_MONITOR_P_EXIT: /* {21, FromProc, ToPid, Ref, Reason} */
        return procref(c, &m->watched, &m->to_raw) || procref(c, &m->to, NULL) || m->to.is_name || ref(c, &m->ref) ||
               span(c, &m->reason);
    case HC_DOP_UNLINK_ID:
    case HC_DOP_UNLINK_ID_ACK: { /* {Op, Id, FromPid, ToPid} */
        size_t s = c->i;
        int t = hc_peek_type(c->p, c->len, c->i);
        if (t != ETF_SMALL_INTEGER && t != ETF_INTEGER && t != ETF_SMALL_BIG)
            return HC_EDECODE;
        if (skip(c))
            return HC_EDECODE;
        m->id.p = c->p + s;
        m->id.len = c->i - s;
        return pid(c, &m->from) || procref(c, &m->to, NULL) || m->to.is_name;
    }
    case HC_DOP_ALIAS_SEND: /* {33, FromPid, Alias} */ return pid(c, &m->from) || ref(c, &m->ref);
    case HC_DOP_SPAWN_REQUEST: /* {29, ReqId, From, GroupLeader, {M, F, Arity}, OptList} */
        return ref(c, &m->ref) || pid(c, &m->from) || skip(c) || span(c, &ignore) || span(c, &ignore);
    case HC_DOP_SPAWN_REPLY: /* {31, ReqId, To, Flags, Result} */
        return ref(c, &m->ref) || procref(c, &m->to, NULL) || m->to.is_name ||
               hc_dec_long(c->p, c->len, &c->i, &m->flags) || span(c, &m->result);
    default: return HC_EDECODE;
    }
}

/* Maps a trace-token variant to its base op; 0 if `op` is not one. */
static int base_of_tt(int op)
{
    switch (op) {
    case HC_DOP_SEND_TT: return HC_DOP_SEND;
    case HC_DOP_EXIT_TT: return HC_DOP_EXIT;
    case HC_DOP_REG_SEND_TT: return HC_DOP_REG_SEND;
    case HC_DOP_EXIT2_TT: return HC_DOP_EXIT2;
    case HC_DOP_SEND_SENDER_TT: return HC_DOP_SEND_SENDER;
    case HC_DOP_ALIAS_SEND_TT: return HC_DOP_ALIAS_SEND;
    default: return 0;
    }
}

/* Ops OTP defines that we have no use for (node link, payload exits and monitors for flags we do not
 * negotiate, spawn variants): well-formed ones are ignored, as a peer may legitimately send them. */
static bool known_but_unhandled(int op) { return op == 5 || (op >= 24 && op <= 28) || op == 30 || op == 32; }

int hc_ctrl_decode(const uint8_t *p, size_t len, hc_ctrl *m)
{
    memset(m, 0, sizeof *m);
    if (len < 2 || p[0] != 'p' || p[1] != ETF_VERSION)
        return HC_EDECODE;
    cursor c = {p, len, 2};
    uint32_t arity;
    int64_t op;
    if (hc_dec_tuple_header(p, len, &c.i, &arity) || arity < 1 || hc_dec_long(p, len, &c.i, &op) || op < 0 || op > 255)
        return HC_EDECODE;
    m->op = (int)op;
    int base = base_of_tt(m->op);
    if (base)
        m->op = base;
    uint32_t want = expected_arity(m->op);
    if (want) {
        if (arity != want + (base ? 1 : 0) || decode_fields(&c, m, base != 0))
            return HC_EDECODE;
        if (base && m->op != HC_DOP_EXIT && m->op != HC_DOP_EXIT2 && skip(&c)) /* the trailing token */
            return HC_EDECODE;
        m->known = true;
    } else if (known_but_unhandled(m->op)) {
        for (uint32_t k = 1; k < arity; k++)
            if (skip(&c))
                return HC_EDECODE;
    } else {
        return HC_EDECODE; /* not an operation of the protocol: erts drops such a connection too */
    }
    if (c.i == len) {
        if (m->known && has_payload(m->op))
            return HC_EDECODE; /* a send without its message */
        return HC_OK;
    }
    if (p[c.i] != ETF_VERSION)
        return HC_EDECODE;
    c.i++;
    if (span(&c, &m->msg) || c.i != len)
        return HC_EDECODE;
    if (m->known && !has_payload(m->op))
        return HC_EDECODE;
    return HC_OK;
}
