/* core.c — the supervisor as an hc_core (hc_core.h): effects, the event pump, requests, and the rest of
 * hc_core_ops.
 *
 * Every input ends with process(): the engine's change events are drained into the indexes (members.c,
 * children.c), membership is settled (rings, quorum, monitors, self-healing), children are examined (orphans,
 * moves), and the deletions those steps asked for are applied — their events drained again — until nothing is
 * left. Effects then leave in order: the engine's messages to peers, the core's own effects as they arose, then
 * replies; so a request's changes are on their way to subscribers before its reply. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/etf.h"
#include "supervisor/sup.h"

static const uint8_t atom_true[] = {ETF_SMALL_ATOM_UTF8, 4, 't', 'r', 'u', 'e'};
static const uint8_t atom_auto[] = {ETF_SMALL_ATOM_UTF8, 4, 'a', 'u', 't', 'o'};
static const uint8_t atom_removed[] = {ETF_SMALL_ATOM_UTF8, 7, 'r', 'e', 'm', 'o', 'v', 'e', 'd'};

/* ------------------------------------------------------------------ effects */

/* Sends what is held for held[k] and forgets it: one start alone as {'$hordec_sup', start, ReplicaPid, Op, Id,
 * Spec}, several as {'$hordec_sup', starts, ReplicaPid, [{Op, Id, Spec}]} (docs/supervisor.md §4.1). */
static void flush_held(sup_core *c, size_t k)
{
    sup_held_starts *h = &c->held[k];
    hc_buf b = {0};
    if (h->n == 1) {
        hc_enc_tuple_header(&b, 6);
        hc_enc_atom_cstr(&b, "$hordec_sup");
        hc_enc_atom_cstr(&b, "start");
        hc_enc_pid(&b, &c->self);
        size_t i = 0;
        uint32_t a;
        hc_dec_tuple_header(h->items.data, h->items.len, &i, &a); /* {Op, Id, Spec}: its elements follow */
        hc_buf_append(&b, h->items.data + i, h->items.len - i);
    } else {
        hc_enc_tuple_header(&b, 4);
        hc_enc_atom_cstr(&b, "$hordec_sup");
        hc_enc_atom_cstr(&b, "starts");
        hc_enc_pid(&b, &c->self);
        hc_enc_list_header(&b, h->n);
        hc_buf_append(&b, h->items.data, h->items.len);
        hc_enc_nil(&b);
    }
    if (h->items.err && !b.err)
        b.err = h->items.err;
    hc_effect_queue_push(&c->effects, HC_EFF_SEND_PID, &h->to, 0, 0, &b);
    hc_buf_free(&h->items);
    c->held[k] = c->held[--c->nheld];
}

static size_t held_for(const sup_core *c, const hc_pid *to)
{
    for (size_t k = 0; k < c->nheld; k++)
        if (hc_pid_eq(&c->held[k].to, to))
            return k;
    return SIZE_MAX;
}

void sup_send_pid(sup_core *c, const hc_pid *to, hc_buf *msg)
{
    size_t k = held_for(c, to);
    if (k != SIZE_MAX)
        flush_held(c, k); /* what this member gets stays in order */
    hc_effect_queue_push(&c->effects, HC_EFF_SEND_PID, to, 0, 0, msg);
}

void sup_send_start(sup_core *c, const hc_pid *to, uint64_t op, uint64_t id, const hc_buf *spec)
{
    size_t k = held_for(c, to);
    if (k == SIZE_MAX) {
        if (hc_array_reserve((void **)&c->held, &c->capheld, c->nheld + 1, sizeof *c->held, 4)) {
            hc_buf b = {0}; /* out of memory for the list: this one goes alone */
            hc_enc_tuple_header(&b, 6);
            hc_enc_atom_cstr(&b, "$hordec_sup");
            hc_enc_atom_cstr(&b, "start");
            hc_enc_pid(&b, &c->self);
            hc_enc_ulong(&b, op);
            hc_enc_ulong(&b, id);
            hc_buf_append(&b, spec->data, spec->len);
            hc_effect_queue_push(&c->effects, HC_EFF_SEND_PID, to, 0, 0, &b);
            return;
        }
        k = c->nheld++;
        c->held[k] = (sup_held_starts){.to = *to};
    }
    sup_held_starts *h = &c->held[k];
    hc_enc_tuple_header(&h->items, 3);
    hc_enc_ulong(&h->items, op);
    hc_enc_ulong(&h->items, id);
    hc_buf_append(&h->items, spec->data, spec->len);
    if (++h->n >= SUP_STARTS_MAX)
        flush_held(c, k);
}

void sup_flush_starts(sup_core *c)
{
    while (c->nheld)
        flush_held(c, c->nheld - 1);
}

void sup_send_peer(sup_core *c, uint64_t peer, hc_buf *msg)
{
    hc_effect_queue_push(&c->effects, HC_EFF_SEND_PEER, NULL, 0, peer, msg);
}

void sup_local_action(sup_core *c, hc_buf *action)
{
    hc_effect_queue_push(&c->effects, HC_EFF_LOCAL, NULL, 0, 0, action);
}

void sup_monitor(sup_core *c, const hc_pid *pid, uint64_t id)
{
    hc_effect_queue_push(&c->effects, HC_EFF_MONITOR, pid, id, 0, NULL);
}

void sup_demonitor(sup_core *c, uint64_t id) { hc_effect_queue_push(&c->effects, HC_EFF_DEMONITOR, NULL, id, 0, NULL); }

static void queue_event(sup_core *c, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
    if (hc_effect_queue_push_event(&c->effects, key, klen))
        hc_effect_queue_event_value(&c->effects, val, vlen);
}

void sup_reply(sup_core *c, uint64_t token, hc_buf *body) { hc_reply_queue_push(&c->replies, token, body); }

void sup_reply_raw(sup_core *c, uint64_t token, const uint8_t *p, size_t len)
{
    hc_buf b = {0};
    hc_buf_append(&b, p, len);
    sup_reply(c, token, &b);
}

void sup_reply_error_msg(sup_core *c, uint64_t token, const char *reason, const char *msg)
{
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "error");
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, reason);
    hc_enc_binary(&b, msg, strlen(msg));
    sup_reply(c, token, &b);
}

uint64_t sup_peer_of(const sup_core *c, hc_atom name, hc_atom node)
{
    for (size_t i = 0; i < c->npeers; i++)
        if (c->peers[i].name == name && c->peers[i].node == node)
            return c->peers[i].handle;
    return 0;
}

/* Who this replica syncs with: the listed members that are replicas (or not yet known to be BEAM members), if
 * it is listed itself. */
static void queue_neighbours(sup_core *c)
{
    hc_buf list = {0};
    sup_member *self = sup_member_get(c, c->name, c->node, false);
    size_t n = 0;
    for (size_t pass = 0; pass < 2; pass++) {
        for (size_t i = 0; self && self->listed && i < c->nmem; i++) {
            sup_member *m = &c->members[i];
            if (!m->listed || sup_is_self(c, m->name, m->node) || (m->has_status && m->st.kind == SUP_KIND_BEAM))
                continue;
            if (pass)
                sup_enc_member(&list, m->name, m->node);
            else
                n++;
        }
        if (!pass && n)
            hc_enc_list_header(&list, (uint32_t)n);
    }
    hc_enc_nil(&list);
    hc_effect_queue_push(&c->effects, HC_EFF_NEIGHBOURS, NULL, 0, 0, &list);
}

/* ------------------------------------------------------------------ writes */

int sup_put(sup_core *c, hc_buf *key, hc_buf *val, hc_time now)
{
    if (key->err || val->err)
        return key->err ? key->err : val->err;
    return hc_crdt_put(c->crdt, key->data, key->len, val->data, val->len, now);
}

void sup_delete_child(sup_core *c, uint64_t id, hc_time now)
{
    hc_buf *k = &c->scratch;
    hc_buf_reset(k);
    sup_enc_key_child(k, id);
    if (!k->err)
        hc_crdt_delete(c->crdt, k->data, k->len, now);
    (void)now;
}

int sup_write_child(sup_core *c, uint64_t id, const sup_child_val *v, hc_time now)
{
    hc_buf k = {0}, b = {0};
    sup_enc_key_child(&k, id);
    sup_enc_child(&b, v);
    int rc = sup_put(c, &k, &b, now);
    hc_buf_free(&k);
    hc_buf_free(&b);
    return rc;
}

void sup_write_status(sup_core *c, sup_member *m, sup_status st, hc_time now)
{
    sup_status_val v = m->st;
    if (sup_is_self(c, m->name, m->node)) {
        v.kind = SUP_KIND_C;
        v.pid = c->self;
        v.via_name = c->name;
        v.via_node = c->node;
        v.types = (hc_span){c->my_types.data, c->my_types.len};
    } else if (m->attached && st != SUP_ST_DEAD) {
        v.kind = SUP_KIND_BEAM;
        v.pid = m->client;
        v.via_name = c->name;
        v.via_node = c->node;
        v.types = (hc_span){0}; /* [] */
    }
    if (!v.kind)
        return; /* nothing known to write */
    v.status = st;
    hc_buf k = {0}, b = {0};
    sup_enc_key_status(&k, m->name, m->node);
    sup_enc_status(&b, &v);
    sup_put(c, &k, &b, now);
    hc_buf_free(&k);
    hc_buf_free(&b);
}

void sup_put_member(sup_core *c, hc_atom name, hc_atom node, bool auto_join, hc_time now)
{
    hc_buf k = {0};
    sup_enc_key_member(&k, name, node);
    if (!k.err)
        hc_crdt_put(c->crdt, k.data, k.len, auto_join ? atom_auto : atom_true, sizeof atom_true, now);
    hc_buf_free(&k);
}

void sup_remove_member(sup_core *c, hc_atom name, hc_atom node, hc_time now)
{
    hc_buf k = {0};
    sup_enc_key_member(&k, name, node);
    if (!k.err)
        hc_crdt_put(c->crdt, k.data, k.len, atom_removed, sizeof atom_removed, now);
    hc_buf_free(&k);
}

/* ------------------------------------------------------------------ the event pump */

/* Only keys in our own encoding are ours (see the registry's reasons: a second encoding of one term would be a
 * second CRDT key our deletes never reach). */
static bool canonical(sup_core *c, const uint8_t *p, size_t len, const sup_ckey *k)
{
    hc_buf *b = &c->scratch;
    hc_buf_reset(b);
    switch (k->kind) {
    case SUP_K_MEMBER: sup_enc_key_member(b, k->name, k->node); break;
    case SUP_K_STATUS: sup_enc_key_status(b, k->name, k->node); break;
    case SUP_K_CHILD: sup_enc_key_child(b, k->id); break;
    default: return false;
    }
    return !b->err && b->len == len && memcmp(b->data, p, len) == 0;
}

static bool well_formed(const sup_ckey *k, const uint8_t *v, size_t len)
{
    size_t i = 0;
    sup_status_val s;
    sup_child_val ch;
    switch (k->kind) {
    case SUP_K_MEMBER:
        return (hc_dec_is_atom(v, len, &i, "true") || hc_dec_is_atom(v, len, &i, "auto") ||
                hc_dec_is_atom(v, len, &i, "removed")) &&
               i == len;
    case SUP_K_STATUS: return sup_parse_status(v, len, &s) == HC_OK;
    case SUP_K_CHILD: return sup_parse_child(v, len, &ch) == HC_OK;
    }
    return false;
}

static void handle_event(sup_core *c, const hc_crdt_event *ev, hc_time now)
{
    sup_ckey k;
    if (sup_parse_ckey(ev->key, ev->key_len, &k) || !canonical(c, ev->key, ev->key_len, &k)) {
        c->ignored++;
        return;
    }
    const uint8_t *nv = ev->new_value;
    size_t nl = ev->new_len;
    if (nv && !well_formed(&k, nv, nl)) {
        c->ignored++;
        nv = NULL; /* not ours: invisible, as if absent */
    }
    if (k.kind == SUP_K_CHILD)
        sup_child_event(c, k.id, nv, nl, now);
    else
        sup_member_event(c, &k, nv, nl);
    queue_event(c, ev->key, ev->key_len, nv, nl);
}

static void apply_deletes(sup_core *c, hc_time now)
{
    hc_buf d = c->deletes;
    c->deletes = (hc_buf){0};
    for (size_t o = 0; o + 4 <= d.len;) {
        uint32_t n = hc_get_be32(d.data + o);
        o += 4;
        hc_crdt_delete(c->crdt, d.data + o, n, now);
        o += n;
    }
    hc_buf_free(&d);
}

static void process(sup_core *c, hc_time now)
{
    sup_ops_expire(c, now);
    /* Each round acts on what the previous one changed; the bound only guards against a bug looping: what is
     * left waits for the next input. */
    for (int round = 0; round < 64; round++) {
        hc_crdt_event ev;
        bool any = false;
        while (hc_crdt_pop_event(c->crdt, &ev)) {
            handle_event(c, &ev, now);
            any = true;
        }
        bool members = c->members_changed;
        sup_members_settle(c, now);
        if (members)
            queue_neighbours(c);
        sup_children_settle(c, now);
        if (c->deletes.len)
            apply_deletes(c, now);
        else if (!any && !c->members_changed && !c->nrescan && !c->rescan_all)
            break;
    }
    sup_flush_starts(c);
}

/* ------------------------------------------------------------------ requests */

typedef struct rq {
    sup_core *c;
    uint64_t token;
    hc_time now;
    const hc_pid *from; /* the caller */
} rq;

static bool arg_pid(hc_req_args *a, hc_pid *p) { return hc_dec_pid(a->p, a->len, &a->i, p) == HC_OK; }
static bool arg_id(hc_req_args *a, uint64_t *id)
{
    return hc_dec_ulong(a->p, a->len, &a->i, id) == HC_OK && *id && *id < (1ull << 63);
}

static void reply_ok(rq *r) { hc_reply_queue_push_atom(&r->c->replies, r->token, "ok"); }

static const char shutting_msg[] = "this node is shutting down.";

/* {start_child, {Kind, Restart, Hash, Body}} and {start_child, {Kind, Restart, Hash, Body}, Id} */
static int start_child(rq *r, hc_req_args *a, bool with_id)
{
    sup_core *c = r->c;
    sup_child_val v;
    uint64_t id = 0;
    if (sup_parse_spec(a->p, a->len, &a->i, &v) || (with_id && !arg_id(a, &id)) || !hc_req_args_done(a) ||
        hc_term_check(v.body.p, v.body.len))
        return HC_EINVAL;
    sup_child *known = id ? sup_child_get(c, id, false) : NULL;
    if (known && (known->has_record || known->op)) {
        /* asked again (the caller's client failed over and sent it once more): this is the same child */
        if (known->has_record && known->m_name) {
            hc_buf b = {0};
            hc_enc_tuple_header(&b, 2);
            hc_enc_atom_cstr(&b, "ok");
            hc_enc_pid(&b, &known->pid);
            sup_reply(c, r->token, &b);
        } else {
            hc_reply_queue_push_error(&c->replies, r->token, "already_starting");
        }
        return HC_OK;
    }
    if (v.body.len + v.kind_restart_hash.len + 256 > c->max_message_bytes) {
        hc_reply_queue_push_error(&c->replies, r->token, "too_big");
        return HC_OK;
    }
    if (c->shutting_down) {
        sup_reply_error_msg(c, r->token, "shutting_down", shutting_msg);
        return HC_OK;
    }
    const char *why = "no_alive_nodes";
    sup_member *m = sup_place(c, v.kind, v.hash, v.type_hash, &why);
    if (!m && strcmp(why, "unknown_worker_type") == 0) { /* {error, {unknown_worker_type, Type}} */
        hc_buf b = {0};
        hc_enc_tuple_header(&b, 2);
        hc_enc_atom_cstr(&b, "error");
        hc_enc_tuple_header(&b, 2);
        hc_enc_atom_cstr(&b, why);
        hc_enc_binary(&b, v.type.p, v.type.len);
        sup_reply(c, r->token, &b);
        return HC_OK;
    }
    if (!m) {
        hc_reply_queue_push_error(&c->replies, r->token, why);
        return HC_OK;
    }
    sup_start_on(c, m, id ? id : sup_new_id(c), &v, true, r->token, r->now);
    return HC_OK;
}

static int do_start_child(void *ctx, hc_req_args *a) { return start_child(ctx, a, false); }
/* {start_child, Spec, Id}: the caller chose the id (so that asking twice is starting once). */
static int do_start_child_id(void *ctx, hc_req_args *a) { return start_child(ctx, a, true); }

/* {terminate_child, Pid} */
static int do_terminate_child(void *ctx, hc_req_args *a)
{
    rq *r = ctx;
    sup_core *c = r->c;
    hc_pid pid;
    if (!arg_pid(a, &pid) || !hc_req_args_done(a))
        return HC_EINVAL;
    sup_child *ch = sup_child_by_pid(c, &pid);
    if (!ch || !ch->has_record || !ch->m_name) {
        hc_reply_queue_push_error(&c->replies, r->token, "not_found");
        return HC_OK;
    }
    sup_member *m = sup_member_get(c, ch->m_name, ch->m_node, false);
    if (!m || !m->has_status || sup_member_status(c, m) == SUP_ST_DEAD) {
        /* Its member is gone, and so is the child; but a replica that saw the death may be taking it over right
         * now, a newer write than this delete: remembering the id terminates that copy when it shows up. */
        sup_delete_child(c, ch->id, r->now);
        sup_ended_add(c, ch->id, r->now);
        reply_ok(r);
        return HC_OK;
    }
    sup_terminate_on(c, m, ch, &r->token, r->now);
    return HC_OK;
}

/* The member a client speaks for: {Name, node(ClientPid)} — the client registered as the supervisor's name. */
static sup_member *client_member(sup_core *c, const hc_pid *client, bool create)
{
    return sup_member_get(c, c->name, client->node, create);
}

static bool from_member(sup_core *c, const hc_pid *client, const sup_child *ch)
{
    return ch && ch->has_record && ch->m_name == c->name && ch->m_node == client->node;
}

/* Reports about a member's children come from that member's node (its client, or a process it runs). */
static bool caller_on(const rq *r, const hc_pid *client) { return r->from && r->from->node == client->node; }

/* {child_restarted, ClientPid, Id, NewPid} */
static int do_child_restarted(void *ctx, hc_req_args *a)
{
    rq *r = ctx;
    hc_pid client, pid;
    uint64_t id;
    if (!arg_pid(a, &client) || !arg_id(a, &id) || !arg_pid(a, &pid) || !hc_req_args_done(a))
        return HC_EINVAL;
    sup_child_val v;
    if (caller_on(r, &client) && from_member(r->c, &client, sup_child_get(r->c, id, false)) &&
        sup_record_get(r->c, id, &v)) {
        v.pid = pid;
        sup_write_child(r->c, id, &v, r->now);
    }
    reply_ok(r);
    return HC_OK;
}

/* {child_exited, ClientPid, Id, delete | relinquish} */
static int do_child_exited(void *ctx, hc_req_args *a)
{
    rq *r = ctx;
    hc_pid client;
    uint64_t id;
    static const char *const hows[] = {"delete", "relinquish"};
    size_t how;
    if (!arg_pid(a, &client) || !arg_id(a, &id) || hc_dec_atom_index(a->p, a->len, &a->i, hows, 2, &how) ||
        !hc_req_args_done(a))
        return HC_EINVAL;
    sup_child_val v;
    if (caller_on(r, &client) && from_member(r->c, &client, sup_child_get(r->c, id, false))) {
        if (how == 0)
            sup_delete_child(r->c, id, r->now);
        else if (sup_record_get(r->c, id, &v)) {
            v.m_name = v.m_node = 0;
            sup_write_child(r->c, id, &v, r->now);
        }
    }
    reply_ok(r);
    return HC_OK;
}

/* Opts: #{auto, distribution, redistribution, max_restarts, max_seconds, max_children}; unknown keys are
 * ignored (a newer client), a bad value of a known key is an error. */
static int parse_opts(const uint8_t *p, size_t len, size_t *i, hc_sup_options *o, bool *auto_join)
{
    hc_iter it;
    hc_span k, v;
    if (hc_iter_map(&it, p, len, i))
        return HC_EINVAL;
    static const char *const dists[] = {"uniform", "quorum", "random"};
    static const char *const redist[] = {"passive", "active"};
    while (hc_iter_next_pair(&it, &k, &v)) {
        size_t ki = 0, vi = 0, x;
        uint64_t n;
        int rc = HC_OK;
        if (hc_dec_is_atom(k.p, k.len, &ki, "auto"))
            rc = hc_dec_bool(v.p, v.len, &vi, auto_join);
        else if (hc_dec_is_atom(k.p, k.len, &ki, "distribution")) {
            rc = hc_dec_atom_index(v.p, v.len, &vi, dists, 3, &x);
            o->distribution = (hc_sup_distribution)x;
        } else if (hc_dec_is_atom(k.p, k.len, &ki, "redistribution")) {
            rc = hc_dec_atom_index(v.p, v.len, &vi, redist, 2, &x);
            o->active_redistribution = x == 1;
        } else if (hc_dec_is_atom(k.p, k.len, &ki, "max_restarts")) {
            rc = hc_dec_ulong(v.p, v.len, &vi, &n);
            o->max_restarts = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
        } else if (hc_dec_is_atom(k.p, k.len, &ki, "max_seconds")) {
            rc = hc_dec_ulong(v.p, v.len, &vi, &n);
            o->max_seconds = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
        } else if (hc_dec_is_atom(k.p, k.len, &ki, "max_children")) {
            if (hc_dec_is_atom(v.p, v.len, &vi, "infinity"))
                o->max_children = HC_SUP_INFINITY;
            else if (!(rc = hc_dec_ulong(v.p, v.len, &vi, &n)))
                o->max_children = n;
        } else {
            continue;
        }
        if (rc || vi != v.len)
            return HC_EINVAL;
    }
    return HC_OK;
}

static void set_options(sup_core *c, const hc_sup_options *o)
{
    bool dist_changed =
        o->distribution != c->opt.distribution || o->active_redistribution != c->opt.active_redistribution;
    c->opt = *o;
    if (dist_changed)
        c->members_changed = true; /* quorum and placement are the strategy's */
}

/* Whether child ch is an orphan of member m: its record names m, m's client did not list it among the children
 * it runs (`owned`, the ids of its attach), and nothing is in flight for it. *v gets the record. */
static bool orphan_of(sup_core *c, const sup_member *m, sup_child *ch, const uint64_t *owned, size_t k,
                      sup_child_val *v)
{
    if (!ch->has_record || ch->m_name != m->name || ch->m_node != m->node || ch->op)
        return false;
    for (size_t j = 0; j < k; j++)
        if (owned[j] == ch->id)
            return false;
    /* a client is never its own child */
    return sup_record_get(c, ch->id, v) && !hc_pid_eq(&v->pid, &m->client);
}

/* An orphan is relinquished, so that placement starts it again, or deleted when temporary. */
static void relinquish(sup_core *c, sup_child *ch, sup_child_val *v, hc_time now)
{
    if (ch->restart == SUP_TEMPORARY) {
        sup_delete_child(c, ch->id, now);
    } else {
        v->m_name = v->m_node = 0;
        sup_write_child(c, ch->id, v, now);
    }
}

/* The orphans of member m at its attach: relinquished now, or, while quorum settles (sup_settled), remembered
 * as they are (id and pid), to be relinquished once it has if their records have not changed meanwhile. */
static void attach_orphans(sup_core *c, sup_member *m, const uint64_t *owned, size_t k, hc_time now)
{
    free(m->held_owned);
    m->held_owned = NULL;
    m->n_held_owned = 0;
    m->orphans_held = false;
    bool hold = !sup_settled(c, NULL, now);
    for (size_t i = 0; i < c->children.cap; i++) {
        if (!hc_hmap_live(&c->children, i))
            continue;
        sup_child *ch = c->children.vals[i];
        sup_child_val v;
        if (!orphan_of(c, m, ch, owned, k, &v))
            continue;
        if (!hold) {
            relinquish(c, ch, &v, now);
            continue;
        }
        /* held as pairs: the id, then the record's pid as it is now */
        uint64_t *grown = realloc(m->held_owned, (m->n_held_owned + 2) * sizeof *grown);
        if (!grown)
            continue; /* out of memory: this one waits for the client's own orphan rule */
        m->held_owned = grown;
        m->held_owned[m->n_held_owned++] = ch->id;
        m->held_owned[m->n_held_owned++] = hc_pid_hash(&v.pid);
        m->orphans_held = true;
    }
}

/* The orphans held by attaches made while quorum was settling, now that it has (core_tick): each whose record
 * still names the same pid of the same member goes as at attach; one the majority's records replaced stays. */
static void release_orphans(sup_core *c, hc_time now)
{
    for (size_t i = 0; i < c->nmem; i++) {
        sup_member *m = &c->members[i];
        if (!m->orphans_held || !c->quorum || !sup_settled(c, NULL, now))
            continue;
        for (size_t j = 0; m->attached && j + 1 < m->n_held_owned; j += 2) {
            sup_child *ch = sup_child_get(c, m->held_owned[j], false);
            sup_child_val v;
            if (ch && orphan_of(c, m, ch, NULL, 0, &v) && hc_pid_hash(&v.pid) == m->held_owned[j + 1])
                relinquish(c, ch, &v, now);
        }
        free(m->held_owned);
        m->held_owned = NULL;
        m->n_held_owned = 0;
        m->orphans_held = false;
    }
}

/* {attach, ClientPid, Opts, Owned}, Owned = [{Id, Kind, Restart, Hash, Body, Pid}] */
static int do_attach(void *ctx, hc_req_args *a)
{
    rq *r = ctx;
    sup_core *c = r->c;
    hc_pid client;
    hc_sup_options o = c->opt;
    bool auto_join = false;
    hc_iter it;
    hc_span t;
    if (!arg_pid(a, &client) || client.node == c->node || !caller_on(r, &client) ||
        parse_opts(a->p, a->len, &a->i, &o, &auto_join) || hc_iter_list(&it, a->p, a->len, &a->i) ||
        !hc_req_args_done(a))
        return HC_EINVAL;
    /* a pid on another replica's node is no BEAM client: its status would turn that replica into a BEAM member */
    sup_member *known = client_member(c, &client, false);
    if (known && known->has_status && known->st.kind == SUP_KIND_C)
        return HC_EINVAL;
    /* validate every owned child first: one bad element changes nothing */
    hc_iter chk = it;
    size_t n_owned = 0;
    while (hc_iter_next(&chk, &t)) {
        size_t i = 0;
        uint32_t arity;
        uint64_t id;
        hc_pid pid;
        sup_child_val v;
        hc_req_args e = {t.p, t.len, 0, 0};
        if (hc_dec_tuple_header(t.p, t.len, &i, &arity) || arity != 6)
            return HC_EINVAL;
        e.i = i;
        if (!arg_id(&e, &id))
            return HC_EINVAL;
        /* the rest is a record value minus Member: parse as a spec by hand */
        size_t start = e.i;
        static const char *const kinds[] = {"c", "beam"}, *const rs[] = {"permanent", "transient", "temporary"};
        size_t x;
        hc_span body;
        if (hc_dec_atom_index(t.p, t.len, &e.i, kinds, 2, &x) || hc_dec_atom_index(t.p, t.len, &e.i, rs, 3, &x) ||
            hc_dec_ulong(t.p, t.len, &e.i, &id) || hc_dec_term(t.p, t.len, &e.i, &body) ||
            hc_term_check(body.p, body.len) || !arg_pid(&e, &pid) || !hc_req_args_done(&e))
            return HC_EINVAL;
        /* and {Kind, Restart, Hash, Body} must be a spec (a C child's Body {Type, Arg} too): the writes below skip
         * what does not parse, and the client would be told ok */
        hc_buf spec = {0};
        hc_enc_tuple_header(&spec, 4);
        hc_buf_append(&spec, t.p + start, (size_t)(body.p + body.len - (t.p + start)));
        size_t j = 0;
        int rc = spec.err;
        if (!rc && (sup_parse_spec(spec.data, spec.len, &j, &v) || j != spec.len))
            rc = HC_EINVAL;
        hc_buf_free(&spec);
        if (rc)
            return rc;
        n_owned++;
    }
    set_options(c, &o);
    sup_member *m = client_member(c, &client, true);
    if (!m) {
        hc_reply_queue_push_error(&c->replies, r->token, "enomem");
        return HC_OK;
    }
    m->attached = true;
    m->attach_auto = auto_join;
    m->client = client;
    m->quorum_sent = false;
    if (auto_join && !m->listed)
        sup_put_member(c, m->name, m->node, true, r->now);
    sup_write_status(c, m, SUP_ST_ALIVE, r->now);
    /* the owned children, written again (fresh writes: a cut-off replica's deletes cannot take them) */
    uint64_t *owned = calloc(n_owned ? n_owned : 1, sizeof *owned);
    size_t k = 0;
    while (hc_iter_next(&it, &t)) {
        size_t i = 0;
        uint32_t arity;
        hc_dec_tuple_header(t.p, t.len, &i, &arity);
        uint64_t id;
        hc_dec_ulong(t.p, t.len, &i, &id);
        /* {Kind, Restart, Hash, Body, Member, Pid} from {Id, Kind, Restart, Hash, Body, Pid} */
        hc_buf spec = {0};
        hc_enc_tuple_header(&spec, 4);
        size_t s0 = i;
        for (int e = 0; e < 4; e++)
            hc_dec_skip(t.p, t.len, &i);
        hc_buf_append(&spec, t.p + s0, i - s0);
        hc_pid pid;
        hc_dec_pid(t.p, t.len, &i, &pid);
        sup_child_val v;
        size_t j = 0;
        if (!spec.err && sup_parse_spec(spec.data, spec.len, &j, &v) == HC_OK) {
            v.m_name = m->name;
            v.m_node = m->node;
            v.pid = pid;
            sup_write_child(c, id, &v, r->now);
            if (owned)
                owned[k++] = id;
        }
        hc_buf_free(&spec);
    }
    /* Records naming this member that it does not run are orphans. Under UniformQuorumDistribution, right after
     * quorum came back, this replica's records may be older than the majority's takeovers still on their way:
     * those orphans are looked at again once quorum has settled (release_orphans). */
    if (owned)
        attach_orphans(c, m, owned, k, r->now);
    free(owned);
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "ok");
    hc_enc_map_header(&b, 2);
    hc_enc_atom_cstr(&b, "replica");
    hc_enc_pid(&b, &c->self);
    hc_enc_atom_cstr(&b, "member");
    sup_enc_member(&b, m->name, m->node);
    sup_reply(c, r->token, &b);
    return HC_OK;
}

/* {set_status, ClientPid, shutting_down} */
static int do_set_status(void *ctx, hc_req_args *a)
{
    rq *r = ctx;
    hc_pid client;
    if (!arg_pid(a, &client) || !hc_dec_is_atom(a->p, a->len, &a->i, "shutting_down") || !hc_req_args_done(a))
        return HC_EINVAL;
    sup_member *m = client_member(r->c, &client, false);
    if (m && m->attached && hc_pid_eq(&m->client, &client) && caller_on(r, &client))
        sup_write_status(r->c, m, SUP_ST_SHUTTING_DOWN, r->now);
    reply_ok(r);
    return HC_OK;
}

/* {detach, ClientPid} */
static int do_detach(void *ctx, hc_req_args *a)
{
    rq *r = ctx;
    hc_pid client;
    if (!arg_pid(a, &client) || !hc_req_args_done(a))
        return HC_EINVAL;
    sup_member *m = client_member(r->c, &client, false);
    if (m && m->attached && hc_pid_eq(&m->client, &client) && caller_on(r, &client)) {
        sup_write_status(r->c, m, SUP_ST_DEAD, r->now);
        m->attached = false;
        if (m->auto_join)
            sup_remove_member(r->c, m->name, m->node, r->now);
    }
    reply_ok(r);
    return HC_OK;
}

/* {set_options, Opts} */
static int do_set_options(void *ctx, hc_req_args *a)
{
    rq *r = ctx;
    hc_sup_options o = r->c->opt;
    bool ignored;
    if (parse_opts(a->p, a->len, &a->i, &o, &ignored) || !hc_req_args_done(a))
        return HC_EINVAL;
    set_options(r->c, &o);
    reply_ok(r);
    return HC_OK;
}

/* {set_members, [{Name, Node}]} replaces the listed members (auto-joined BEAM members included);
 * {add_members, [{Name, Node}]} only adds (an :auto client adds its hordec nodes' replicas without removing what
 * its view may not show yet). */
static int members_request(void *ctx, hc_req_args *a, bool replace)
{
    rq *r = ctx;
    sup_core *c = r->c;
    hc_iter it, chk;
    hc_span t;
    if (hc_iter_list(&it, a->p, a->len, &a->i) || !hc_req_args_done(a))
        return HC_EINVAL;
    chk = it;
    size_t n = 0;
    while (hc_iter_next(&chk, &t)) {
        size_t i = 0;
        hc_atom name, node;
        if (sup_parse_member(t.p, t.len, &i, &name, &node) || i != t.len)
            return HC_EINVAL;
        n++;
    }
    sup_member_ref *want = malloc((n ? n : 1) * sizeof *want);
    if (!want)
        return HC_ENOMEM;
    n = 0;
    while (hc_iter_next(&it, &t)) {
        size_t i = 0;
        sup_parse_member(t.p, t.len, &i, &want[n].name, &want[n].node);
        n++;
    }
    for (size_t i = 0; i < c->nmem; i++) {
        sup_member *m = &c->members[i];
        bool keep = false;
        for (size_t j = 0; j < n && !keep; j++)
            keep = want[j].name == m->name && want[j].node == m->node;
        if (replace && m->listed && !keep)
            sup_remove_member(c, m->name, m->node, r->now);
    }
    for (size_t j = 0; j < n; j++) {
        sup_member *m = sup_member_get(c, want[j].name, want[j].node, false);
        if (!m || !m->listed) /* a member listed already keeps its value (auto stays auto) */
            sup_put_member(c, want[j].name, want[j].node, false, r->now);
    }
    free(want);
    reply_ok(r);
    return HC_OK;
}

static int do_set_members(void *ctx, hc_req_args *a) { return members_request(ctx, a, true); }
static int do_add_members(void *ctx, hc_req_args *a) { return members_request(ctx, a, false); }

static int do_members(void *ctx, hc_req_args *a)
{
    rq *r = ctx;
    sup_core *c = r->c;
    size_t n = 0;
    for (size_t i = 0; i < c->nmem; i++)
        n += c->members[i].listed;
    sup_member_ref *refs = malloc((n ? n : 1) * sizeof *refs);
    if (!refs)
        return HC_ENOMEM;
    n = 0;
    for (size_t i = 0; i < c->nmem; i++)
        if (c->members[i].listed)
            refs[n++] = (sup_member_ref){c->members[i].name, c->members[i].node};
    sup_members_sort(refs, n);
    hc_buf b = {0};
    if (n)
        hc_enc_list_header(&b, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        sup_enc_member(&b, refs[i].name, refs[i].node);
    hc_enc_nil(&b);
    free(refs);
    sup_reply(c, r->token, &b);
    (void)a;
    return HC_OK;
}

/* A BEAM child spec map's type (worker unless it says supervisor) and modules (its own, or [M] of start). */
static bool is_supervisor_spec(const sup_child_val *v, hc_span *modules, hc_span *start_mod)
{
    bool sup = false;
    *modules = (hc_span){0};
    *start_mod = (hc_span){0};
    hc_iter it;
    hc_span k, val;
    size_t i = 0;
    if (v->kind != SUP_KIND_BEAM || hc_iter_map(&it, v->body.p, v->body.len, &i))
        return false;
    while (hc_iter_next_pair(&it, &k, &val)) {
        size_t ki = 0, vi = 0;
        uint32_t arity;
        if (hc_dec_is_atom(k.p, k.len, &ki, "type"))
            sup = hc_dec_is_atom(val.p, val.len, &vi, "supervisor");
        else if (hc_dec_is_atom(k.p, k.len, &ki, "modules"))
            *modules = val;
        else if (hc_dec_is_atom(k.p, k.len, &ki, "start") && !hc_dec_tuple_header(val.p, val.len, &vi, &arity) &&
                 arity == 3)
            hc_dec_term(val.p, val.len, &vi, start_mod);
    }
    return sup;
}

static int do_which_children(void *ctx, hc_req_args *a)
{
    rq *r = ctx;
    sup_core *c = r->c;
    hc_buf b = {0};
    if (c->n_children)
        hc_enc_list_header(&b, (uint32_t)c->n_children);
    for (size_t i = 0; i < c->children.cap; i++) {
        if (!hc_hmap_live(&c->children, i))
            continue;
        sup_child *ch = c->children.vals[i];
        sup_child_val v;
        if (!ch->has_record || !sup_record_get(c, ch->id, &v)) {
            if (ch->has_record)
                b.err = HC_ESTATE;
            continue;
        }
        hc_span mods, mod;
        bool sup = is_supervisor_spec(&v, &mods, &mod);
        hc_enc_tuple_header(&b, 4);
        hc_enc_atom_cstr(&b, "undefined");
        if (ch->m_name)
            hc_enc_pid(&b, &ch->pid);
        else
            hc_enc_atom_cstr(&b, "restarting");
        hc_enc_atom_cstr(&b, sup ? "supervisor" : "worker");
        if (mods.len)
            hc_buf_append(&b, mods.p, mods.len);
        else {
            hc_enc_list_header(&b, 1);
            if (mod.len)
                hc_buf_append(&b, mod.p, mod.len);
            else
                hc_enc_atom_cstr(&b, "Elixir.HordeC.CWorker");
            hc_enc_nil(&b);
        }
    }
    hc_enc_nil(&b);
    sup_reply(c, r->token, &b);
    (void)a;
    return HC_OK;
}

static void put_count(hc_buf *b, const char *k, uint64_t v)
{
    hc_enc_atom_cstr(b, k);
    hc_enc_ulong(b, v);
}

static int do_count_children(void *ctx, hc_req_args *a)
{
    rq *r = ctx;
    sup_core *c = r->c;
    uint64_t active = 0, sups = 0;
    for (size_t i = 0; i < c->children.cap; i++) {
        if (!hc_hmap_live(&c->children, i))
            continue;
        sup_child *ch = c->children.vals[i];
        sup_child_val v;
        hc_span mods, mod;
        if (!ch->has_record)
            continue;
        active += ch->m_name != 0;
        sups += sup_record_get(c, ch->id, &v) && is_supervisor_spec(&v, &mods, &mod);
    }
    hc_buf b = {0};
    hc_enc_map_header(&b, 4);
    put_count(&b, "active", active);
    put_count(&b, "specs", c->n_children);
    put_count(&b, "supervisors", sups);
    put_count(&b, "workers", c->n_children - sups);
    sup_reply(c, r->token, &b);
    (void)a;
    return HC_OK;
}

/* {started, Op, Id, Result} and {terminated, Op, Id, Result}: a BEAM member answers. */
static int member_answer(rq *r, hc_req_args *a, int type)
{
    uint64_t op, id;
    hc_span res;
    if (hc_dec_ulong(a->p, a->len, &a->i, &op) || !arg_id(a, &id) || hc_dec_term(a->p, a->len, &a->i, &res) ||
        !hc_req_args_done(a) || hc_term_check(res.p, res.len))
        return HC_EINVAL;
    sup_op *o = sup_op_get(r->c, op);
    /* only the member asked answers: a call from its node (its client, or a process it started for the job) */
    if (o && o->id == id && o->type == type && !o->local && r->from && r->from->node == o->m_node) {
        if (type == SUP_OP_START)
            sup_op_started(r->c, o, res.p, res.len, r->now);
        else
            sup_op_terminated(r->c, o, res.p, res.len, r->now);
    }
    reply_ok(r);
    return HC_OK;
}

static int do_started(void *ctx, hc_req_args *a) { return member_answer(ctx, a, SUP_OP_START); }
static int do_terminated(void *ctx, hc_req_args *a) { return member_answer(ctx, a, SUP_OP_TERMINATE); }

static const hc_req_entry requests[] = {
    {"attach", 3, do_attach},
    {"start_child", 1, do_start_child},
    {"start_child", 2, do_start_child_id},
    {"terminate_child", 1, do_terminate_child},
    {"child_restarted", 3, do_child_restarted},
    {"child_exited", 3, do_child_exited},
    {"started", 3, do_started},
    {"terminated", 3, do_terminated},
    {"set_status", 2, do_set_status},
    {"detach", 1, do_detach},
    {"set_options", 1, do_set_options},
    {"set_members", 1, do_set_members},
    {"add_members", 1, do_add_members},
    {"members", 0, do_members},
    {"which_children", 0, do_which_children},
    {"count_children", 0, do_count_children},
};

static void core_request(void *core, uint64_t token, const hc_pid *from, const uint8_t *p, size_t len, hc_time now)
{
    sup_core *c = core;
    rq r = {c, token, now, from};
    hc_req_args a;
    const hc_req_entry *e = hc_req_match(requests, sizeof requests / sizeof requests[0], p, len, &a);
    int rc = e ? e->fn(&r, &a) : HC_EINVAL;
    if (rc)
        hc_reply_queue_push_error(&c->replies, token, rc == HC_ENOMEM ? "enomem" : "badarg");
    process(c, now);
}

/* ------------------------------------------------------------------ the rest of hc_core_ops */

static int core_receive(void *core, uint64_t peer, const uint8_t *msg, size_t len, hc_time now)
{
    sup_core *c = core;
    int rc = sup_peer_message(c, peer, msg, len, now);
    if (rc == SUP_NOT_OURS)
        rc = hc_crdt_receive(c->crdt, peer, msg, len, now);
    else if (rc)
        c->ignored++;
    process(c, now);
    return rc;
}

static int core_tick(void *core, hc_time now)
{
    sup_core *c = core;
    int rc = hc_crdt_tick(c->crdt, now);
    if (now.mono_ms >= c->unknown_deadline) { /* records naming members nobody knows: look again */
        c->unknown_deadline = HC_NO_DEADLINE;
        c->rescan_all = true;
    }
    if (now.mono_ms >= c->settle_deadline) { /* deaths and orphans that have settled: act on them */
        c->settle_deadline = HC_NO_DEADLINE;
        c->rescan_all = true;
        release_orphans(c, now);
    }
    process(c, now);
    return rc;
}

static uint64_t core_deadline(const void *core)
{
    const sup_core *c = core;
    if (hc_effect_queue_pending(&c->effects) || hc_reply_queue_pending(&c->replies))
        return 0;
    uint64_t d = hc_crdt_next_deadline(c->crdt);
    if (c->unknown_deadline < d)
        d = c->unknown_deadline;
    if (c->settle_deadline < d)
        d = c->settle_deadline;
    return c->next_deadline < d ? c->next_deadline : d;
}

static int core_set_peers(void *core, const hc_core_peer *peers, size_t n, hc_time now)
{
    sup_core *c = core;
    return hc_crdt_set_peers(c->crdt, peers, n, &c->peers, &c->npeers, now);
}

static int core_peer_up(void *core, uint64_t peer, hc_time now)
{
    return hc_crdt_peer_up(((sup_core *)core)->crdt, peer, now);
}

static int core_peer_down(void *core, uint64_t peer, hc_time now)
{
    return hc_crdt_peer_down(((sup_core *)core)->crdt, peer, now);
}

static void core_monitor_down(void *core, uint64_t id, const hc_pid *pid, const uint8_t *reason, size_t len,
                              hc_time now)
{
    sup_core *c = core;
    sup_child *ch = hc_hmap_get(&c->mons, id);
    if (ch && ch->mon == id)
        sup_worker_down(c, ch, reason, len, now);
    else {
        size_t i = 0;
        sup_member_down(c, id, hc_dec_is_atom(reason, len, &i, "noconnection") && i == len, now);
    }
    process(c, now);
    (void)pid;
}

static void core_node_up(void *core, hc_atom node, hc_time now)
{
    sup_core *c = core;
    sup_members_node_up(c, node);
    process(c, now);
}

/* {worker_started, Op, Result}, or the atom shutdown (the node stops: hc_supervisor_core_shutdown). */
static int core_local(void *core, const uint8_t *msg, size_t len, hc_time now)
{
    sup_core *c = core;
    size_t i = 0;
    if (hc_dec_is_atom(msg, len, &i, "shutdown") && i == len) {
        hc_supervisor_core_shutdown(c, now);
        return HC_OK;
    }
    sup_local_result(c, msg, len, now);
    process(c, now);
    return HC_OK;
}

static bool core_pop(void *core, hc_effect *out)
{
    sup_core *c = core;
    hc_crdt_msg m;
    if (hc_crdt_pop_message(c->crdt, &m)) {
        *out = (hc_effect){.kind = HC_EFF_SEND_PEER, .peer = m.peer, .data = m.data, .len = m.len};
        return true;
    }
    return hc_effect_queue_pop(&c->effects, out) || hc_reply_queue_pop(&c->replies, out);
}

static int snap_visit(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
    hc_crdt_snap_ctx *s = ud;
    sup_core *c = (sup_core *)s->core; /* canonical() only uses the scratch buffer */
    sup_ckey k;
    if (sup_parse_ckey(key, klen, &k) || !canonical(c, key, klen, &k) || !well_formed(&k, val, vlen))
        return 0;
    return s->fn(s->ud, key, klen, val, vlen);
}

static int core_snapshot(const void *core, hc_core_visit_fn fn, void *ud)
{
    hc_crdt_snap_ctx s = {core, fn, ud, {0}};
    return hc_crdt_foreach(((const sup_core *)core)->crdt, snap_visit, &s);
}

/* A big snapshot, a slice at a time (the host's change stream): the engine's map as it was when opened. */
static int core_snapshot_open(void *core, void **reader, size_t *count)
{
    return hc_crdt_snap_open(((sup_core *)core)->crdt, core, snap_visit, reader, count);
}

static void put_stat(hc_buf *b, const char *k, uint64_t v)
{
    hc_enc_atom_cstr(b, k);
    hc_enc_ulong(b, v);
}

static int core_stats(const void *core, const hc_host_stats *hs, hc_buf *b)
{
    const sup_core *c = core;
    size_t listed = 0, ops = 0;
    for (size_t i = 0; i < c->nmem; i++)
        listed += c->members[i].listed;
    for (size_t i = 0; i < c->ops.cap; i++)
        ops += hc_hmap_live(&c->ops, i);
    hc_enc_map_header(b, 13 + HC_CRDT_SYNC_STATS);
    put_stat(b, "children", c->n_children);
    put_stat(b, "running_here", c->n_running);
    put_stat(b, "members", listed);
    hc_enc_atom_cstr(b, "quorum");
    hc_enc_bool(b, c->quorum);
    put_stat(b, "ops", ops);
    put_stat(b, "restarted", c->restarted_local);
    put_stat(b, "taken_over", c->taken_over);
    put_stat(b, "given_up", c->given_up);
    put_stat(b, "duplicates_stopped", c->dup_stopped);
    put_stat(b, "terminated_again", c->terminated_again);
    put_stat(b, "ignored", c->ignored);
    put_stat(b, "crdt_keys", hc_crdt_size(c->crdt));
    hc_enc_atom_cstr(b, "shutting_down");
    hc_enc_bool(b, c->shutting_down);
    return hc_crdt_enc_sync_stats(c->crdt, hs, b);
}

static void core_free(void *core)
{
    sup_core *c = core;
    if (!c)
        return;
    hc_crdt_free(c->crdt);
    sup_children_free(c);
    sup_ended_free(c);
    for (size_t k = 0; k < c->nheld; k++)
        hc_buf_free(&c->held[k].items);
    free(c->held);
    sup_ops_free(c);
    sup_members_free(c);
    hc_effect_queue_free(&c->effects);
    hc_reply_queue_free(&c->replies);
    hc_buf_free(&c->scratch);
    hc_buf_free(&c->deletes);
    hc_buf_free(&c->my_types);
    free(c->peers);
    free(c);
}

const hc_core_ops hc_supervisor_core_ops = {
    .kind = "supervisor",
    .receive = core_receive,
    .request = core_request,
    .tick = core_tick,
    .next_deadline = core_deadline,
    .set_peers = core_set_peers,
    .peer_up = core_peer_up,
    .peer_down = core_peer_down,
    .monitor_down = core_monitor_down,
    .pop_effect = core_pop,
    .snapshot = core_snapshot,
    .stats = core_stats,
    .free = core_free,
    .local = core_local,
    .adopt_peers = true, /* membership is replicated data: see hc_core.h */
    .node_up = core_node_up,
    .snapshot_open = core_snapshot_open,
    .snapshot_next = hc_crdt_snap_next,
    .snapshot_close = hc_crdt_snap_close,
};

/* ------------------------------------------------------------------ construction, shutdown */

void hc_supervisor_config_init(hc_supervisor_config *cfg, hc_atom name, hc_atom node, uint64_t replica_id)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->name = name;
    cfg->node = node;
    cfg->opt.distribution = HC_SUP_UNIFORM;
    cfg->opt.max_restarts = 3;
    cfg->opt.max_seconds = 5;
    cfg->opt.max_children = HC_SUP_INFINITY;
    hc_crdt_config_init(&cfg->crdt, replica_id);
}

int hc_supervisor_core_new(const hc_supervisor_config *cfg, hc_time now, void **out)
{
    *out = NULL;
    if (!cfg || !cfg->name || !cfg->node)
        return HC_EINVAL;
    sup_core *c = calloc(1, sizeof *c);
    if (!c)
        return HC_ENOMEM;
    c->name = cfg->name;
    c->node = cfg->node;
    c->self = cfg->self;
    c->opt = cfg->opt;
    c->start_timeout_ms = cfg->start_timeout_ms ? cfg->start_timeout_ms : 10000;
    c->replica_id = cfg->crdt.replica_id;
    c->max_message_bytes = cfg->crdt.max_message_bytes;
    c->rng = cfg->crdt.replica_id | 1;
    c->next_deadline = HC_NO_DEADLINE;
    c->unknown_deadline = HC_NO_DEADLINE;
    c->settle_deadline = HC_NO_DEADLINE;
    c->quorum = true;
    size_t ntypes = 0;
    for (size_t i = 0; i < cfg->n_worker_types; i++) {
        size_t l = cfg->worker_types[i] ? strlen(cfg->worker_types[i]) : 0;
        ntypes += l && l <= 255;
    }
    if (ntypes > SUP_MAX_TYPES) {
        free(c);
        return HC_EINVAL;
    }
    if (ntypes)
        hc_enc_list_header(&c->my_types, (uint32_t)ntypes);
    for (size_t i = 0; i < cfg->n_worker_types; i++) {
        size_t l = cfg->worker_types[i] ? strlen(cfg->worker_types[i]) : 0;
        if (l && l <= 255)
            hc_enc_binary(&c->my_types, cfg->worker_types[i], l);
    }
    hc_enc_nil(&c->my_types);
    int rc = c->my_types.err ? c->my_types.err : hc_crdt_new(&cfg->crdt, now, &c->crdt);
    if (rc) {
        hc_buf_free(&c->my_types);
        free(c);
        return rc;
    }
    /* a replica is a member of its own supervisor from the start, as Horde's is (set_members may drop it) */
    sup_put_member(c, c->name, c->node, false, now);
    process(c, now);
    *out = c;
    return HC_OK;
}

void hc_supervisor_core_set_self(void *core, const hc_pid *self)
{
    sup_core *c = core;
    c->self = *self;
    c->members_changed = true; /* its status names the pid */
}

void hc_supervisor_core_shutdown(void *core, hc_time now)
{
    sup_core *c = core;
    if (c->shutting_down)
        return;
    c->shutting_down = true;
    sup_member *self = sup_member_self(c);
    if (self && self->listed)
        sup_write_status(c, self, SUP_ST_SHUTTING_DOWN, now);
    for (size_t i = 0; i < c->children.cap; i++) {
        if (!hc_hmap_live(&c->children, i))
            continue;
        sup_child *ch = c->children.vals[i];
        sup_child_val v;
        if (!ch->running)
            continue;
        sup_worker_stop(c, ch, "shutdown", false);
        if (ch->has_record && sup_record_get(c, ch->id, &v)) {
            v.m_name = v.m_node = 0; /* relinquished: another member adopts it */
            sup_write_child(c, ch->id, &v, now);
        }
    }
    hc_crdt_flush(c->crdt, now);
    process(c, now);
}

bool hc_supervisor_core_flushed(const void *core)
{
    const sup_core *c = core;
    return hc_crdt_idle_reachable(c->crdt);
}

bool hc_supervisor_core_settled(const void *core)
{
    const sup_core *c = core;
    for (size_t i = 0; i < c->ops.cap; i++)
        if (hc_hmap_live(&c->ops, i) && !((const sup_op *)c->ops.vals[i])->zombie)
            return false;
    return c->unknown_deadline == HC_NO_DEADLINE && c->settle_deadline == HC_NO_DEADLINE;
}

hc_crdt *hc_supervisor_core_engine(void *core) { return ((sup_core *)core)->crdt; }

int hc_supervisor_core_check(void *core, char *why, size_t why_len)
{
    sup_core *c = core;
    size_t n = 0;
    for (size_t i = 0; i < c->children.cap; i++)
        if (hc_hmap_live(&c->children, i))
            n += ((sup_child *)c->children.vals[i])->has_record;
    if (n != c->n_children) {
        if (why && why_len)
            snprintf(why, why_len, "%zu records indexed, counter says %zu", n, c->n_children);
        return HC_ESTATE;
    }
    return HC_OK;
}
