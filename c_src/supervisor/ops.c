/* ops.c — starts and terminates in flight (docs/supervisor.md §4.1). An operation asks the member placement
 * chose — this replica (a C worker, through an HC_EFF_LOCAL action), another replica (a peer message), or a
 * BEAM member (a message to its client) — and waits for the answer, a deadline, or the member's death. */
#include <stdlib.h>
#include <string.h>

#include "hordec/hc_log.h"
#include "supervisor/sup.h"

static const char dead_msg[] = "the node responsible for this process is shutting down or dead, try again soon";

sup_op *sup_op_new(sup_core *c, int type, uint64_t id, sup_member *m, hc_time now)
{
    sup_op *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->op = ++c->next_op;
    o->type = type;
    o->id = id;
    if (m) {
        o->m_name = m->name;
        o->m_node = m->node;
    }
    o->deadline = now.mono_ms + c->start_timeout_ms;
    if (hc_hmap_put(&c->ops, o->op, o)) {
        free(o);
        return NULL;
    }
    if (o->deadline < c->next_deadline)
        c->next_deadline = o->deadline;
    return o;
}

sup_op *sup_op_get(sup_core *c, uint64_t op) { return hc_hmap_get(&c->ops, op); }

void sup_op_free(sup_core *c, sup_op *o)
{
    sup_child *ch = sup_child_get(c, o->id, false);
    if (ch && ch->op == o->op) {
        ch->op = 0;
        sup_child_rescan(c, ch->id);
    }
    hc_hmap_del(&c->ops, o->op, o);
    hc_buf_free(&o->spec);
    free(o);
}

/* ------------------------------------------------------------------ starting */

static void enc_error(hc_buf *b, const char *reason)
{
    hc_enc_tuple_header(b, 2);
    hc_enc_atom_cstr(b, "error");
    hc_enc_atom_cstr(b, reason);
}

/* {error, {node_dead_or_shutting_down, Msg}} */
static void enc_dead(hc_buf *b)
{
    hc_enc_tuple_header(b, 2);
    hc_enc_atom_cstr(b, "error");
    hc_enc_tuple_header(b, 2);
    hc_enc_atom_cstr(b, "node_dead_or_shutting_down");
    hc_enc_binary(b, dead_msg, sizeof dead_msg - 1);
}

static void finish_with(sup_core *c, sup_op *o, hc_buf *result, hc_time now)
{
    if (!result->err)
        sup_op_started(c, o, result->data, result->len, now);
    else
        sup_op_free(c, o);
    hc_buf_free(result);
}

/* Asks for a C worker of this node: {start_worker, Op, Type, Arg}. */
static void start_local(sup_core *c, sup_op *o, const sup_child_val *v, hc_time now)
{
    if (c->n_running >= c->opt.max_children) {
        hc_buf r = {0};
        enc_error(&r, "max_children");
        finish_with(c, o, &r, now);
        return;
    }
    size_t j = 0;
    uint32_t arity;
    hc_span type, arg;
    hc_dec_tuple_header(v->body.p, v->body.len, &j, &arity); /* checked by sup_parse_spec */
    hc_dec_term(v->body.p, v->body.len, &j, &type);
    hc_dec_term(v->body.p, v->body.len, &j, &arg);
    o->local = true;
    hc_buf a = {0};
    hc_enc_tuple_header(&a, 4);
    hc_enc_atom_cstr(&a, "start_worker");
    hc_enc_ulong(&a, o->op);
    hc_buf_append(&a, type.p, type.len);
    hc_buf_append(&a, arg.p, arg.len);
    sup_local_action(c, &a);
}

void sup_start_on(sup_core *c, sup_member *m, uint64_t id, const sup_child_val *v, bool has_token, uint64_t token,
                  hc_time now)
{
    sup_child *ch = sup_child_get(c, id, true);
    sup_op *o = ch ? sup_op_new(c, SUP_OP_START, id, m, now) : NULL;
    if (!o) {
        if (has_token)
            hc_reply_queue_push_error(&c->replies, token, "enomem");
        if (ch)
            sup_child_rescan(c, id);
        return;
    }
    ch->op = o->op;
    o->has_token = has_token;
    o->token = token;
    sup_enc_spec(&o->spec, v);
    if (sup_is_self(c, m->name, m->node)) {
        start_local(c, o, v, now);
        return;
    }
    hc_buf b = {0};
    if (m->st.kind == SUP_KIND_C) {
        uint64_t peer = sup_peer_of(c, m->name, m->node);
        if (!peer) {
            enc_dead(&b);
            finish_with(c, o, &b, now);
            return;
        }
        hc_enc_tuple_header(&b, 4);
        hc_enc_atom_cstr(&b, "sup_start");
        hc_enc_ulong(&b, o->op);
        hc_enc_ulong(&b, id);
        hc_buf_append(&b, o->spec.data, o->spec.len);
        sup_send_peer(c, peer, &b);
        return;
    }
    sup_send_start(c, &m->st.pid, o->op, id, &o->spec);
}

/* {ok, Pid} | {ok, Pid, Info}: the pid; false for anything else (ignore, {error, _}). */
static bool started_pid(const uint8_t *r, size_t len, hc_pid *pid)
{
    size_t i = 0;
    uint32_t a;
    return hc_dec_tuple_header(r, len, &i, &a) == HC_OK && (a == 2 || a == 3) && hc_dec_is_atom(r, len, &i, "ok") &&
           hc_dec_pid(r, len, &i, pid) == HC_OK;
}

/* {error, {already_started, _}} */
static bool already_started(const uint8_t *r, size_t len)
{
    size_t i = 0;
    uint32_t a;
    return hc_dec_tuple_header(r, len, &i, &a) == HC_OK && a == 2 && hc_dec_is_atom(r, len, &i, "error") &&
           hc_dec_tuple_header(r, len, &i, &a) == HC_OK && a == 2 && hc_dec_is_atom(r, len, &i, "already_started");
}

void sup_op_started(sup_core *c, sup_op *o, const uint8_t *result, size_t len, hc_time now)
{
    hc_pid pid;
    bool ok = started_pid(result, len, &pid);
    sup_child *ch = sup_child_get(c, o->id, ok);
    if (ok && ch && o->local) {
        ch->running = true;
        ch->local_pid = pid;
        ch->mon = ++c->next_mon;
        c->n_running++;
        if (hc_hmap_put(&c->mons, ch->mon, ch))
            c->ignored++;
        sup_monitor(c, &pid, ch->mon);
    }
    sup_child_val v;
    size_t i = 0;
    bool had_record = ch && ch->has_record;
    if (ok && sup_parse_spec(o->spec.data, o->spec.len, &i, &v) == HC_OK) {
        v.m_name = o->m_name;
        v.m_node = o->m_node;
        v.pid = pid;
        if (sup_write_child(c, o->id, &v, now) && ch && ch->running)
            sup_worker_stop(c, ch, "shutdown", false); /* no record, no supervision: do not leave it running */
    } else if (!ok && had_record && !o->has_token && already_started(result, len)) {
        /* A takeover refused because the child runs already (its name is held, through HordeC.Registry, by the copy
         * on the far side of a partition): the record stays, so that after the heal the copy it names runs on. It
         * is tried again when the record or the membership changes (found by the partition tests). */
        ch->parked = true;
    } else if (!ok && had_record && !o->has_token) {
        /* a takeover or restart that failed to start (an error, or ignore): the child is gone for good */
        hc_log_warn("%s: child %llu could not be restarted", hc_atom_name(c->name), (unsigned long long)o->id);
        c->given_up++;
        sup_delete_child(c, o->id, now);
    }
    if (o->has_token)
        sup_reply_raw(c, o->token, result, len);
    if (o->type == SUP_OP_PEER_START) {
        hc_buf b = {0};
        hc_enc_tuple_header(&b, 4);
        hc_enc_atom_cstr(&b, "sup_started");
        hc_enc_ulong(&b, o->reply_op);
        hc_enc_ulong(&b, o->id);
        hc_buf_append(&b, result, len);
        sup_send_peer(c, o->reply_peer, &b);
    }
    sup_op_free(c, o);
}

/* ------------------------------------------------------------------ terminating */

/* Stops child ch where its record says it runs, then deletes the record. `token`: the caller waiting for the
 * outcome, or NULL for a terminate again of a child that came back (ended.c), which holds ch->op meanwhile. */
void sup_terminate_on(sup_core *c, sup_member *m, sup_child *ch, const uint64_t *token, hc_time now)
{
    if (sup_is_self(c, m->name, m->node)) {
        sup_worker_stop(c, ch, "shutdown", false);
        sup_delete_child(c, ch->id, now);
        sup_ended_add(c, ch->id, now);
        if (token)
            hc_reply_queue_push_atom(&c->replies, *token, "ok");
        return;
    }
    uint64_t peer = m->st.kind == SUP_KIND_C ? sup_peer_of(c, m->name, m->node) : 0;
    sup_op *o = (m->st.kind == SUP_KIND_BEAM || peer) ? sup_op_new(c, SUP_OP_TERMINATE, ch->id, m, now) : NULL;
    if (!o) {
        if (token) {
            hc_buf b = {0};
            enc_dead(&b);
            sup_reply(c, *token, &b);
        }
        return;
    }
    if (token) {
        o->has_token = true;
        o->token = *token;
    } else {
        ch->op = o->op;
    }
    hc_buf b = {0};
    if (peer) {
        hc_enc_tuple_header(&b, 3);
        hc_enc_atom_cstr(&b, "sup_terminate");
        hc_enc_ulong(&b, o->op);
        hc_enc_ulong(&b, ch->id);
        sup_send_peer(c, peer, &b);
        return;
    }
    /* {'$hordec_sup', terminate, ReplicaPid, Op, Id} */
    hc_enc_tuple_header(&b, 5);
    hc_enc_atom_cstr(&b, "$hordec_sup");
    hc_enc_atom_cstr(&b, "terminate");
    hc_enc_pid(&b, &c->self);
    hc_enc_ulong(&b, o->op);
    hc_enc_ulong(&b, ch->id);
    sup_send_pid(c, &m->st.pid, &b);
}

/* The member answered a terminate. A terminate again that the member could not carry out (it does not run the
 * child: not yet, or no longer) deletes the record all the same: the caller was told the child is gone. */
void sup_op_terminated(sup_core *c, sup_op *o, const uint8_t *result, size_t len, hc_time now)
{
    size_t i = 0;
    bool ok = hc_dec_is_atom(result, len, &i, "ok") && i == len;
    if (ok || !o->has_token)
        sup_delete_child(c, o->id, now);
    if (ok)
        sup_ended_add(c, o->id, now);
    if (o->has_token)
        sup_reply_raw(c, o->token, result, len);
    sup_op_free(c, o);
}

/* ------------------------------------------------------------------ failures, deadlines */

/* An op whose member cannot answer any more: its caller gets node_dead_or_shutting_down. A start stays known
 * for a while without its caller (a late answer still writes the record: the child runs, so it must be
 * supervised), a terminate goes. */
static void fail(sup_core *c, sup_op *o, hc_time now, bool expired)
{
    if (o->has_token) {
        hc_buf b = {0};
        enc_dead(&b);
        sup_reply(c, o->token, &b);
        o->has_token = false;
    }
    /* Also when the member is only seen dead or gone: it may just be cut off, have started the child, and answer
     * once it can (found by the simulator: the answer was dropped and the child ran with no record). Called from
     * the event pump without a time: the zombie lasts a minute past the op's own deadline then. */
    if (o->type == SUP_OP_START && !o->zombie) {
        o->zombie = true;
        sup_child *ch = sup_child_get(c, o->id, false);
        if (ch && ch->op == o->op) { /* let the child be placed again meanwhile */
            ch->op = 0;
            sup_child_rescan(c, ch->id);
        }
        o->deadline = (expired ? now.mono_ms : o->deadline) + 60000;
        return;
    }
    if (o->type == SUP_OP_START && !expired)
        return; /* a zombie already: its member failing again changes nothing, its own deadline ends it */
    sup_op_free(c, o);
}

void sup_ops_fail_member(sup_core *c, hc_atom name, hc_atom node, hc_time now)
{
    for (size_t i = 0; i < c->ops.cap; i++) {
        if (!hc_hmap_live(&c->ops, i))
            continue;
        sup_op *o = c->ops.vals[i];
        if (o->m_name == name && o->m_node == node && !o->local &&
            (o->type == SUP_OP_START || o->type == SUP_OP_TERMINATE))
            fail(c, o, now, false);
    }
}

void sup_ops_expire(sup_core *c, hc_time now)
{
    if (now.mono_ms < c->next_deadline)
        return;
    uint64_t next = HC_NO_DEADLINE;
    for (size_t i = 0; i < c->ops.cap; i++) {
        if (!hc_hmap_live(&c->ops, i))
            continue;
        sup_op *o = c->ops.vals[i];
        if (o->deadline <= now.mono_ms) { /* a local start answers at once; one that did not never will */
            fail(c, o, now, true);
            if (!hc_hmap_live(&c->ops, i) || c->ops.vals[i] != o)
                continue;
        }
        if (o->deadline < next)
            next = o->deadline;
    }
    c->next_deadline = next;
}

void sup_ops_free(sup_core *c)
{
    for (size_t i = 0; i < c->ops.cap; i++)
        if (hc_hmap_live(&c->ops, i)) {
            sup_op *o = c->ops.vals[i];
            hc_buf_free(&o->spec);
            free(o);
        }
    hc_hmap_free(&c->ops);
}

/* ------------------------------------------------------------------ peer messages */

static bool peer_ids(const uint8_t *p, size_t len, size_t *i, uint64_t *op, uint64_t *id)
{
    return hc_dec_ulong(p, len, i, op) == HC_OK && hc_dec_ulong(p, len, i, id) == HC_OK;
}

int sup_peer_message(sup_core *c, uint64_t peer, const uint8_t *msg, size_t len, hc_time now)
{
    size_t i = 0;
    uint32_t arity;
    uint64_t op, id;
    if (hc_dec_tuple_header(msg, len, &i, &arity) || arity < 3)
        return SUP_NOT_OURS;
    size_t at = i;
    if (hc_dec_is_atom(msg, len, &i, "sup_start") && arity == 4) {
        sup_child_val v;
        if (!peer_ids(msg, len, &i, &op, &id) || sup_parse_spec(msg, len, &i, &v) || i != len || !id ||
            id >= (1ull << 63))
            return HC_EDECODE;
        sup_child *ch = sup_child_get(c, id, true);
        sup_member *self = sup_member_self(c);
        sup_op *o = ch && self ? sup_op_new(c, SUP_OP_PEER_START, id, self, now) : NULL;
        if (!o)
            return HC_ENOMEM;
        o->reply_peer = peer;
        o->reply_op = op;
        sup_enc_spec(&o->spec, &v);
        if (c->shutting_down || ch->running) {
            hc_buf r = {0};
            if (ch->running) { /* asked twice (a retry): it runs already */
                hc_enc_tuple_header(&r, 2);
                hc_enc_atom_cstr(&r, "ok");
                hc_enc_pid(&r, &ch->local_pid);
            } else {
                enc_dead(&r);
            }
            o->local = false;
            finish_with(c, o, &r, now);
            return HC_OK;
        }
        ch->op = o->op;
        start_local(c, o, &v, now);
        return HC_OK;
    }
    i = at;
    if (hc_dec_is_atom(msg, len, &i, "sup_started") && arity == 4) {
        hc_span r;
        if (!peer_ids(msg, len, &i, &op, &id) || hc_dec_term(msg, len, &i, &r) || i != len)
            return HC_EDECODE;
        sup_op *o = sup_op_get(c, op);
        if (o && o->id == id && o->type == SUP_OP_START)
            sup_op_started(c, o, r.p, r.len, now);
        return HC_OK;
    }
    i = at;
    if (hc_dec_is_atom(msg, len, &i, "sup_terminate") && arity == 3) {
        if (!peer_ids(msg, len, &i, &op, &id) || i != len)
            return HC_EDECODE;
        sup_child *ch = sup_child_get(c, id, false);
        hc_buf b = {0};
        hc_enc_tuple_header(&b, 4);
        hc_enc_atom_cstr(&b, "sup_terminated");
        hc_enc_ulong(&b, op);
        hc_enc_ulong(&b, id);
        if (ch && ch->running) {
            sup_worker_stop(c, ch, "shutdown", false);
            sup_delete_child(c, id, now);
            sup_ended_add(c, id, now);
            hc_enc_atom_cstr(&b, "ok");
        } else {
            enc_error(&b, "not_found");
        }
        sup_send_peer(c, peer, &b);
        return HC_OK;
    }
    i = at;
    if (hc_dec_is_atom(msg, len, &i, "sup_terminated") && arity == 4) {
        hc_span r;
        if (!peer_ids(msg, len, &i, &op, &id) || hc_dec_term(msg, len, &i, &r) || i != len)
            return HC_EDECODE;
        sup_op *o = sup_op_get(c, op);
        if (o && o->id == id && o->type == SUP_OP_TERMINATE)
            sup_op_terminated(c, o, r.p, r.len, now);
        return HC_OK;
    }
    return SUP_NOT_OURS;
}

/* {worker_started, Op, Result}: the outcome of a {start_worker, ...} action. */
void sup_local_result(sup_core *c, const uint8_t *msg, size_t len, hc_time now)
{
    size_t i = 0;
    uint32_t arity;
    uint64_t op;
    hc_span r;
    if (hc_dec_tuple_header(msg, len, &i, &arity) || arity != 3 || !hc_dec_is_atom(msg, len, &i, "worker_started") ||
        hc_dec_ulong(msg, len, &i, &op) || hc_dec_term(msg, len, &i, &r) || i != len)
        return;
    sup_op *o = sup_op_get(c, op);
    if (o && o->local)
        sup_op_started(c, o, r.p, r.len, now);
}
