/* core.c — the registry as an hc_core (hc_core.h): requests, the event pump, conflicts and effects.
 *
 * Every input ends with process(): the engine's change events are drained into the index (index.c, owners.c),
 * dirty and contested keys are resolved (which may decide conflicts), and the deletions those steps asked for
 * are applied — their own events drained again — until nothing is left. Only then are effects handed out, in
 * this order: the engine's messages to peers, then the core's own effects (observable events, monitors, exits,
 * neighbour changes) in the order they arose, then replies; so a request's changes are on their way to
 * subscribers before its reply. */
#include <stdlib.h>
#include <string.h>

#include "common/etf.h"
#include "registry/reg.h"

static const uint8_t atom_true[] = {ETF_SMALL_ATOM_UTF8, 4, 't', 'r', 'u', 'e'};

/* ------------------------------------------------------------------ effects */

void reg_queue_event(reg_core *c, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
    if (hc_effect_queue_push_event(&c->effects, key, klen))
        hc_effect_queue_event_value(&c->effects, val, vlen);
}

void reg_queue_reg_event(reg_core *c, const reg_key *k, const hc_pid *pid, bool removed)
{
    hc_buf *e = hc_effect_queue_push_event(&c->effects, NULL, 0);
    if (!e)
        return;
    reg_enc_okey_reg(e, k->bytes, k->len, pid);
    if (removed)
        return;
    hc_buf *b = &c->scratch;
    hc_buf_reset(b);
    reg_enc_ckey_reg(b, k->bytes, k->len, pid);
    const uint8_t *v;
    size_t vl;
    if (!b->err && hc_crdt_get(c->crdt, b->data, b->len, &v, &vl))
        hc_effect_queue_event_value(&c->effects, v, vl);
}

void reg_queue_monitor(reg_core *c, const hc_pid *pid, uint64_t id)
{
    hc_effect_queue_push(&c->effects, HC_EFF_MONITOR, pid, id, 0, NULL);
}

void reg_queue_demonitor(reg_core *c, uint64_t id)
{
    hc_effect_queue_push(&c->effects, HC_EFF_DEMONITOR, NULL, id, 0, NULL);
}

void reg_queue_exit(reg_core *c, const hc_pid *pid, const uint8_t *reason, size_t len)
{
    hc_buf b = {0};
    hc_buf_append(&b, reason, len);
    hc_effect_queue_push(&c->effects, HC_EFF_EXIT, pid, 0, 0, &b);
}

/* Who this replica syncs with: every member, if it is one itself; nobody, if it is not (set_members left it
 * out), so a replica removed from its registry goes quiet instead of pulling the others back. */
static bool wanted(const reg_core *c, hc_atom name, hc_atom node)
{
    return reg_is_member(c, c->name, c->node) && reg_is_member(c, name, node);
}

static bool is_peer(const reg_core *c, hc_atom name, hc_atom node)
{
    for (size_t i = 0; i < c->npeers; i++)
        if (c->peers[i].name == name && c->peers[i].node == node)
            return true;
    return false;
}

/* Asks the host for the wanted neighbours. Peers that are no longer wanted stay until `evict` (a grace period
 * later, see core_set_peers), so that what made them unwanted — a membership change — still reaches them. */
static void queue_neighbours(reg_core *c, bool evict)
{
    hc_buf list = {0};
    bool member = reg_is_member(c, c->name, c->node);
    size_t n = member ? c->nmem : 0;
    for (size_t i = 0; !evict && i < c->npeers; i++)
        n += !wanted(c, c->peers[i].name, c->peers[i].node);
    if (n)
        hc_enc_list_header(&list, (uint32_t)n);
    for (size_t i = 0; member && i < c->nmem; i++)
        reg_enc_member(&list, c->members[i].name, c->members[i].node);
    for (size_t i = 0; !evict && i < c->npeers; i++)
        if (!wanted(c, c->peers[i].name, c->peers[i].node))
            reg_enc_member(&list, c->peers[i].name, c->peers[i].node);
    hc_enc_nil(&list);
    hc_effect_queue_push(&c->effects, HC_EFF_NEIGHBOURS, NULL, 0, 0, &list);
}

void reg_queue_delete(reg_core *c, const uint8_t *ckey, size_t len)
{
    hc_buf_put_be32(&c->deletes, (uint32_t)len);
    hc_buf_append(&c->deletes, ckey, len);
}

/* {name_conflict, {Key, LoserValue}, RegistryName, WinnerPid} */
static void enc_conflict(hc_buf *b, const reg_core *c, const uint8_t *key, size_t klen, const uint8_t *value,
                         size_t vlen, const hc_pid *winner)
{
    hc_enc_tuple_header(b, 4);
    hc_enc_atom_cstr(b, "name_conflict");
    hc_enc_tuple_header(b, 2);
    hc_buf_append(b, key, klen);
    hc_buf_append(b, value, vlen);
    hc_enc_atom(b, c->name);
    hc_enc_pid(b, winner);
}

void reg_conflict(reg_core *c, reg_entry *e, const hc_pid *winner)
{
    hc_buf *b = &c->scratch;
    hc_buf_reset(b);
    reg_enc_ckey_reg(b, e->key->bytes, e->key->len, &e->pid);
    const uint8_t *raw;
    size_t rl;
    reg_val v;
    if (b->err || !hc_crdt_get(c->crdt, b->data, b->len, &raw, &rl) || reg_parse_val(raw, rl, &v))
        return;
    hc_buf x = {0};
    enc_conflict(&x, c, e->key->bytes, e->key->len, v.value, v.value_len, winner);
    hc_effect_queue_push(&c->effects, HC_EFF_EXIT, &e->pid, 0, 0, &x);
    reg_queue_delete(c, b->data, b->len);
    e->exited = true;
    c->conflicts++;
}

/* ------------------------------------------------------------------ the event pump */

/* Only keys in our own encoding are ours: a peer that wrote another encoding of the same term would make a
 * second CRDT key that our deletes (built in our encoding) could never reach. */
static bool canonical(reg_core *c, const uint8_t *p, size_t len, const reg_ckey *k)
{
    hc_buf *b = &c->scratch;
    hc_buf_reset(b);
    switch (k->kind) {
    case REG_K_REG: reg_enc_ckey_reg(b, k->key, k->key_len, &k->pid); break;
    case REG_K_META: reg_enc_ckey_meta(b, k->key, k->key_len); break;
    case REG_K_MEMBER: reg_enc_key_member(b, k->name, k->node); break;
    case REG_K_CLIENT: reg_enc_key_client(b, &k->pid); break;
    default: return false;
    }
    return !b->err && b->len == len && memcmp(b->data, p, len) == 0;
}

static void handle_event(reg_core *c, const hc_crdt_event *ev)
{
    reg_ckey k;
    if (reg_parse_ckey(ev->key, ev->key_len, &k) || !canonical(c, ev->key, ev->key_len, &k)) {
        c->ignored++;
        return;
    }
    const uint8_t *nv = ev->new_value;
    size_t nl = ev->new_len;
    hc_buf *b = &c->scratch;
    switch (k.kind) {
    case REG_K_REG: {
        reg_val v;
        if (nv && reg_parse_val(nv, nl, &v)) {
            c->ignored++;
            nv = NULL; /* not a registration: invisible, as if absent */
        }
        if (nv)
            reg_index_put(c, k.key, k.key_len, &k.pid, &v, nv, nl);
        else
            reg_index_remove(c, k.key, k.key_len, &k.pid);
        break;
    }
    case REG_K_META:
        hc_buf_reset(b);
        reg_enc_okey_meta(b, k.key, k.key_len);
        if (!b->err)
            reg_queue_event(c, b->data, b->len, nv, nl);
        break;
    case REG_K_MEMBER:
        reg_member_event(c, k.name, k.node, nv != NULL);
        reg_queue_event(c, ev->key, ev->key_len, nv ? atom_true : NULL, sizeof atom_true);
        break;
    case REG_K_CLIENT: {
        hc_atom name = 0, node = 0;
        size_t i = 0;
        if (nv && (reg_parse_member(nv, nl, &i, &name, &node) || i != nl)) {
            c->ignored++;
            nv = NULL;
        }
        reg_record_set(c, &k.pid, nv != NULL, name, node);
        reg_queue_event(c, ev->key, ev->key_len, nv, nl);
        break;
    }
    }
}

/* Applies up to `max` queued deletes; returns how many. Deleting only queues engine events, so nothing appends
 * to the list meanwhile. */
static size_t apply_deletes(reg_core *c, hc_time now, size_t max)
{
    size_t n = 0;
    while (n < max && c->deletes_off + 4 <= c->deletes.len) {
        uint32_t len = hc_get_be32(c->deletes.data + c->deletes_off);
        hc_crdt_delete(c->crdt, c->deletes.data + c->deletes_off + 4, len, now);
        c->deletes_off += 4 + (size_t)len;
        n++;
    }
    if (c->deletes_off + 4 > c->deletes.len) {
        hc_buf_reset(&c->deletes);
        c->deletes_off = 0;
    }
    return n;
}

static void process(reg_core *c, hc_time now)
{
    /* Each round deletes what the previous one decided; conflicts and drops settle in a round or two. At most
     * c->slice deletes a call (a client with 100k entries dies): the rest are due at once (core_deadline), and
     * requests wait for them (core_busy). */
    size_t budget = c->slice;
    for (int round = 0; round < 64; round++) {
        hc_crdt_event ev;
        while (hc_crdt_pop_event(c->crdt, &ev))
            handle_event(c, &ev);
        reg_index_resolve(c, c->recheck);
        c->recheck = false;
        if (!c->deletes.len || !budget)
            break;
        budget -= apply_deletes(c, now, budget);
    }
    if (c->members_changed || c->evict_now) {
        queue_neighbours(c, c->evict_now);
        c->members_changed = c->evict_now = false;
    }
}

/* ------------------------------------------------------------------ replies */

static void queue_reply(reg_core *c, uint64_t token, hc_buf *body) { hc_reply_queue_push(&c->replies, token, body); }

static void reply_atom(reg_core *c, uint64_t token, const char *a) { hc_reply_queue_push_atom(&c->replies, token, a); }

static void reply_error(reg_core *c, uint64_t token, const char *reason)
{
    hc_reply_queue_push_error(&c->replies, token, reason);
}

static void reply_rc(reg_core *c, uint64_t token, int rc)
{
    if (rc == HC_OK)
        reply_atom(c, token, "ok");
    else
        reply_error(c, token, rc == HC_ETOOBIG ? "too_big" : rc == HC_ENOMEM ? "enomem" : "badarg");
}

/* {error, {already_registered, Pid}} */
static void reply_taken(reg_core *c, uint64_t token, const hc_pid *holder)
{
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "error");
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "already_registered");
    hc_enc_pid(&b, holder);
    queue_reply(c, token, &b);
}

/* ------------------------------------------------------------------ request arguments
 *
 * Handlers read their arguments from the matcher's cursor and return HC_OK once they queued a reply, or an
 * error code without replying when the request is malformed: the caller answers {error, badarg} then, and
 * nothing has changed, because every handler validates all of its input before it writes anything. */

typedef struct rq {
    reg_core *c;
    uint64_t token;
    hc_time now;
} rq;

/* A term the engine will store: one whole term, nested no deeper than HC_TERM_MAX_DEPTH. */
static bool arg_term(hc_req_args *a, hc_span *t)
{
    return hc_dec_term(a->p, a->len, &a->i, t) == HC_OK && hc_term_check(t->p, t->len) == HC_OK;
}

static bool arg_pid(hc_req_args *a, hc_pid *pid) { return hc_dec_pid(a->p, a->len, &a->i, pid) == HC_OK; }

/* Owner: a pid, or the atom hordec. */
static bool arg_owner(hc_req_args *a, bool *local, hc_pid *owner)
{
    *local = hc_dec_is_atom(a->p, a->len, &a->i, "hordec");
    *owner = (hc_pid){0};
    return *local || arg_pid(a, owner);
}

static bool arg_list(hc_req_args *a, hc_iter *it) { return hc_iter_list(it, a->p, a->len, &a->i) == HC_OK; }

static size_t pid_len(const hc_pid *p)
{
    size_t n = hc_atom_len(p->node);
    return 1 + (n < 256 ? 2 : 3) + n + 12;
}

/* Whether {r, Key, Pid} => {Value, Owner} fits one engine message (hc_crdt_put's own rule), so that a batch
 * can be validated before anything is written. */
static bool fits(const reg_core *c, size_t klen, const hc_pid *pid, size_t vlen, const hc_pid *owner)
{
    size_t ckey = 2 + 3 + klen + pid_len(pid), val = 2 + vlen + (owner ? pid_len(owner) : 8);
    return ckey + val + HC_CRDT_VALUE_OVERHEAD <= c->max_message_bytes;
}

static int put_reg(rq *r, hc_span key, const hc_pid *pid, hc_span val, bool local, const hc_pid *owner)
{
    reg_core *c = r->c;
    hc_buf k = {0}, v = {0};
    reg_enc_ckey_reg(&k, key.p, key.len, pid);
    reg_enc_val(&v, val.p, val.len, local, owner);
    int rc = k.err ? k.err : v.err ? v.err : hc_crdt_put(c->crdt, k.data, k.len, v.data, v.len, r->now);
    hc_buf_free(&k);
    hc_buf_free(&v);
    return rc;
}

static void delete_reg(rq *r, hc_span key, const hc_pid *pid)
{
    hc_buf *b = &r->c->scratch;
    hc_buf_reset(b);
    reg_enc_ckey_reg(b, key.p, key.len, pid);
    if (!b->err)
        hc_crdt_delete(r->c->crdt, b->data, b->len, r->now);
}

/* ------------------------------------------------------------------ requests */

/* {register, Key, Pid, Value, Owner} -> {ok, ReplicaPid} | {error, {already_registered, Pid}} |
 * {error, not_attached} | {error, badarg}
 * The check and the write are one step: nothing runs between them. Owner hordec vouches only for processes of
 * this node (this replica monitors them); a client Owner must be attached (have a {client, Owner} record), or
 * nobody would watch it: a replica that saw the client's node go dropped its record and entries, and the
 * client must attach again (re-asserting what it owns) before it registers more. */
static int do_register(void *ctx, hc_req_args *a)
{
    rq *r = ctx;
    reg_core *c = r->c;
    hc_span key, val;
    hc_pid pid, owner;
    bool local;
    if (!arg_term(a, &key) || !arg_pid(a, &pid) || !arg_term(a, &val) || !arg_owner(a, &local, &owner) ||
        !hc_req_args_done(a) || (local && pid.node != c->node))
        return HC_EINVAL;
    if (!local) { /* an owner this replica no longer knows (it saw the client's node go): re-attach first */
        reg_watch *w = reg_watch_get(c, &owner, false);
        if (!w || !w->has_record) {
            reply_error(c, r->token, "not_attached");
            return HC_OK;
        }
    }
    reg_key *k = reg_key_find(c, key.p, key.len);
    reg_entry *holder = c->unique && k ? reg_key_winner(k) : NULL;
    if (holder) {
        reply_taken(c, r->token, &holder->pid);
        return HC_OK;
    }
    if (!c->unique && k && reg_entry_find(c, key.p, key.len, &pid)) {
        reply_taken(c, r->token, &pid); /* one registration per (Key, Pid): see docs/registry.md §4 */
        return HC_OK;
    }
    int rc = put_reg(r, key, &pid, val, local, &owner);
    if (rc) {
        reply_rc(c, r->token, rc);
        return HC_OK;
    }
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "ok");
    hc_enc_pid(&b, &c->self);
    queue_reply(c, r->token, &b);
    return HC_OK;
}

/* {unregister, Key, Pid} -> ok */
static int do_unregister(void *ctx, hc_req_args *a)
{
    rq *r = ctx;
    hc_span key;
    hc_pid pid;
    if (!arg_term(a, &key) || !arg_pid(a, &pid) || !hc_req_args_done(a))
        return HC_EINVAL;
    delete_reg(r, key, &pid);
    reply_rc(r->c, r->token, HC_OK);
    return HC_OK;
}

/* {unregister_keys, Pid, [Key]} -> ok */
static int do_unregister_keys(void *ctx, hc_req_args *a)
{
    rq *r = ctx;
    hc_pid pid;
    hc_iter it;
    if (!arg_pid(a, &pid) || !arg_list(a, &it) || !hc_req_args_done(a))
        return HC_EINVAL;
    hc_span key;
    while (hc_iter_next(&it, &key))
        delete_reg(r, key, &pid);
    reply_rc(r->c, r->token, HC_OK);
    return HC_OK;
}

/* {update_value, Key, Pid, Value} -> ok | error (Pid does not hold Key here) */
static int do_update_value(void *ctx, hc_req_args *a)
{
    rq *r = ctx;
    reg_core *c = r->c;
    hc_span key, val;
    hc_pid pid;
    if (!arg_term(a, &key) || !arg_pid(a, &pid) || !arg_term(a, &val) || !hc_req_args_done(a))
        return HC_EINVAL;
    reg_entry *e = reg_entry_find(c, key.p, key.len, &pid);
    if (!e || (c->unique && !e->shown))
        reply_atom(c, r->token, "error");
    else
        reply_rc(c, r->token, put_reg(r, key, &pid, val, e->local, &e->owner));
    return HC_OK;
}

/* One element of pids_down's list: Pid, or {Pid, [Key]} (the keys its client knows it holds: no scan). */
static bool down_elem(hc_span t, hc_pid *pid, hc_iter *keys, bool *has_keys)
{
    size_t i = 0;
    uint32_t arity;
    *has_keys = hc_dec_tuple_header(t.p, t.len, &i, &arity) == HC_OK;
    if (!*has_keys)
        return hc_dec_pid(t.p, t.len, &(size_t){0}, pid) == HC_OK;
    return arity == 2 && hc_dec_pid(t.p, t.len, &i, pid) == HC_OK && hc_iter_list(keys, t.p, t.len, &i) == HC_OK &&
           i == t.len;
}

/* {pids_down, Owner, [Pid | {Pid, [Key]}]} -> ok: every entry of those pids (of those keys) that Owner vouches
 * for goes. A bare Pid costs a scan of the whole index unless it is a process of this node with Owner hordec. */
static int do_pids_down(void *ctx, hc_req_args *a)
{
    rq *r = ctx;
    hc_pid owner, pid;
    bool local, has_keys;
    hc_iter it, keys;
    if (!arg_owner(a, &local, &owner) || !arg_list(a, &it) || !hc_req_args_done(a))
        return HC_EINVAL;
    hc_iter chk = it;
    hc_span t;
    while (hc_iter_next(&chk, &t)) /* all well-formed, or nothing happens */
        if (!down_elem(t, &pid, &keys, &has_keys))
            return HC_EINVAL;
    /* bare pids that need a scan are gathered, so that the whole request costs one scan at most */
    hc_pid *scan = NULL;
    size_t nscan = 0;
    if (it.left && hc_array_reserve((void **)&scan, &(size_t){0}, it.left, sizeof *scan, 1))
        return HC_ENOMEM;
    while (hc_iter_next(&it, &t)) {
        down_elem(t, &pid, &keys, &has_keys);
        if (has_keys || (local && pid.node == r->c->node))
            reg_drop_pid(r->c, &pid, local, &owner, has_keys ? &keys : NULL);
        else
            scan[nscan++] = pid;
    }
    int rc = nscan ? reg_drop_pids_scan(r->c, scan, nscan, local, &owner) : HC_OK;
    free(scan);
    reply_rc(r->c, r->token, rc);
    return HC_OK;
}

/* {put_meta, K, V} -> ok */
static int do_put_meta(void *ctx, hc_req_args *a)
{
    rq *r = ctx;
    hc_span key, val;
    if (!arg_term(a, &key) || !arg_term(a, &val) || !hc_req_args_done(a))
        return HC_EINVAL;
    hc_buf k = {0};
    reg_enc_ckey_meta(&k, key.p, key.len);
    int rc = k.err ? k.err : hc_crdt_put(r->c->crdt, k.data, k.len, val.p, val.len, r->now);
    hc_buf_free(&k);
    reply_rc(r->c, r->token, rc);
    return HC_OK;
}

/* {delete_meta, K} -> ok */
static int do_delete_meta(void *ctx, hc_req_args *a)
{
    rq *r = ctx;
    hc_span key;
    if (!arg_term(a, &key) || !hc_req_args_done(a))
        return HC_EINVAL;
    hc_buf *b = &r->c->scratch;
    hc_buf_reset(b);
    reg_enc_ckey_meta(b, key.p, key.len);
    reply_rc(r->c, r->token, b->err ? b->err : hc_crdt_delete(r->c->crdt, b->data, b->len, r->now));
    return HC_OK;
}

/* {set_members, [{Name, Node}]} -> ok: members not listed are removed, listed ones added (existing ones are
 * left alone). Replicated data: every replica that syncs with this one follows. */
/* {set_members, [{Name, Node}]} replaces the membership; {add_members, [{Name, Node}]} only adds (a client with
 * members: :auto adds its nodes' replicas without removing what its view may not show yet). */
static int members_request(void *ctx, hc_req_args *a, bool replace)
{
    rq *r = ctx;
    reg_core *c = r->c;
    hc_iter it;
    if (!arg_list(a, &it) || !hc_req_args_done(a))
        return HC_EINVAL;
    reg_member *want = calloc(it.left ? it.left : 1, sizeof *want);
    if (!want)
        return HC_ENOMEM;
    size_t n = 0;
    hc_span t;
    while (hc_iter_next(&it, &t)) {
        size_t i = 0;
        if (reg_parse_member(t.p, t.len, &i, &want[n].name, &want[n].node) || i != t.len) {
            free(want);
            return HC_EINVAL;
        }
        n++;
    }
    hc_buf k = {0};
    for (size_t m = 0; replace && m < c->nmem; m++) {
        bool keep = false;
        for (size_t j = 0; j < n && !keep; j++)
            keep = want[j].name == c->members[m].name && want[j].node == c->members[m].node;
        if (keep)
            continue;
        hc_buf_reset(&k);
        reg_enc_key_member(&k, c->members[m].name, c->members[m].node);
        if (!k.err)
            hc_crdt_delete(c->crdt, k.data, k.len, r->now);
    }
    for (size_t j = 0; j < n; j++) {
        if (reg_is_member(c, want[j].name, want[j].node))
            continue;
        hc_buf_reset(&k);
        reg_enc_key_member(&k, want[j].name, want[j].node);
        if (!k.err)
            hc_crdt_put(c->crdt, k.data, k.len, atom_true, sizeof atom_true, r->now);
    }
    hc_buf_free(&k);
    free(want);
    reply_rc(c, r->token, HC_OK);
    return HC_OK;
}

static int do_set_members(void *ctx, hc_req_args *a) { return members_request(ctx, a, true); }
static int do_add_members(void *ctx, hc_req_args *a) { return members_request(ctx, a, false); }

/* members -> [{Name, Node}] in term order (the engine's events keep c->members sorted). */
static int do_members(void *ctx, hc_req_args *a)
{
    rq *r = ctx;
    reg_core *c = r->c;
    hc_buf b = {0};
    if (c->nmem)
        hc_enc_list_header(&b, (uint32_t)c->nmem);
    for (size_t i = 0; i < c->nmem; i++)
        reg_enc_member(&b, c->members[i].name, c->members[i].node);
    hc_enc_nil(&b);
    queue_reply(c, r->token, &b);
    (void)a;
    return HC_OK;
}

static void enc_match(reg_core *c, hc_buf *b, const reg_entry *e)
{
    hc_buf *k = &c->scratch;
    hc_buf_reset(k);
    reg_enc_ckey_reg(k, e->key->bytes, e->key->len, &e->pid);
    const uint8_t *raw;
    size_t rl;
    reg_val v = {0};
    if (k->err || !hc_crdt_get(c->crdt, k->data, k->len, &raw, &rl) || reg_parse_val(raw, rl, &v)) {
        b->err = b->err ? b->err : HC_ESTATE; /* cannot happen: the index follows the engine */
        return;
    }
    hc_enc_tuple_header(b, 2);
    hc_enc_pid(b, &e->pid);
    hc_buf_append(b, v.value, v.value_len);
}

/* {lookup, Key} -> [{Pid, Value}] */
static int do_lookup(void *ctx, hc_req_args *a)
{
    rq *r = ctx;
    reg_core *c = r->c;
    hc_span key;
    if (!arg_term(a, &key) || !hc_req_args_done(a))
        return HC_EINVAL;
    reg_key *k = reg_key_find(c, key.p, key.len);
    hc_buf b = {0};
    reg_entry *w = k && c->unique ? reg_key_winner(k) : NULL;
    uint32_t n = !k ? 0 : c->unique ? (w != NULL) : k->n;
    if (n)
        hc_enc_list_header(&b, n);
    if (n && c->unique)
        enc_match(c, &b, w);
    else
        for (uint32_t i = 0; i < n; i++)
            enc_match(c, &b, reg_key_at(k, i));
    hc_enc_nil(&b);
    queue_reply(c, r->token, &b);
    return HC_OK;
}

/* One element of Owned: {Key, Pid, Value}. */
static bool owned_elem(const reg_core *c, hc_span t, const hc_pid *client, hc_span *key, hc_pid *pid, hc_span *val)
{
    hc_req_args e = {t.p, t.len, 0, 0};
    uint32_t arity;
    return hc_dec_tuple_header(t.p, t.len, &e.i, &arity) == HC_OK && arity == 3 && arg_term(&e, key) &&
           arg_pid(&e, pid) && arg_term(&e, val) && hc_req_args_done(&e) && fits(c, key->len, pid, val->len, client);
}

/* One element of an attach's Owned list (validated already): written again, unless a unique Key resolves here to
 * another process, which then won: the owned one is told (name_conflict) and not written. */
static void attach_one(rq *r, const hc_pid *client, hc_span t)
{
    reg_core *c = r->c;
    hc_span key, val;
    hc_pid pid;
    owned_elem(c, t, client, &key, &pid, &val);
    reg_key *k = c->unique ? reg_key_find(c, key.p, key.len) : NULL;
    reg_entry *w = k ? reg_key_winner(k) : NULL;
    if (!w || hc_pid_eq(&w->pid, &pid)) {
        put_reg(r, key, &pid, val, false, client);
    } else if (!reg_entry_find(c, key.p, key.len, &pid)) {
        hc_buf x = {0};
        enc_conflict(&x, c, key.p, key.len, val.p, val.len, &w->pid);
        if (!x.err)
            reg_queue_exit(c, &pid, x.data, x.len);
        hc_buf_free(&x);
        c->conflicts++;
    }
}

static void attach_reply(reg_core *c, uint64_t token)
{
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "ok");
    hc_enc_map_header(&b, 2);
    hc_enc_atom_cstr(&b, "keys");
    hc_enc_atom_cstr(&b, c->unique ? "unique" : "duplicate");
    hc_enc_atom_cstr(&b, "replica");
    hc_enc_pid(&b, &c->self);
    queue_reply(c, token, &b);
}

/* {client, ClientPid} => {Name, Node}: the client is attached here. */
static int put_record(reg_core *c, const hc_pid *client, hc_time now)
{
    hc_buf b = {0}, v = {0};
    reg_enc_key_client(&b, client);
    reg_enc_member(&v, c->name, c->node);
    int rc = b.err ? b.err : v.err ? v.err : hc_crdt_put(c->crdt, b.data, b.len, v.data, v.len, now);
    hc_buf_free(&v);
    hc_buf_free(&b);
    return rc;
}

static void attach_end(reg_core *c)
{
    hc_buf_free(&c->attach.req);
    c->attach.active = false;
}

/* The next slice of a big attach: c->slice elements validated (the whole list is, before anything is written),
 * or written; the reply once the last one is. */
static void attach_continue(reg_core *c, hc_time now)
{
    hc_span t, key, val;
    hc_pid pid;
    if (!c->attach.validated) {
        for (size_t n = 0; n < c->slice && hc_iter_next(&c->attach.chk, &t); n++)
            if (!owned_elem(c, t, &c->attach.client, &key, &pid, &val)) {
                reply_rc(c, c->attach.token, HC_EINVAL);
                attach_end(c);
                return;
            }
        if (c->attach.chk.left)
            return;
        int rc = put_record(c, &c->attach.client, now);
        if (rc) {
            reply_rc(c, c->attach.token, rc);
            attach_end(c);
            return;
        }
        c->attach.validated = true;
        return;
    }
    /* The client's death (its monitor fired: its entries and record are being dropped) or its attaching elsewhere
     * since ends the attach here: what is left would be entries nobody vouches for. */
    reg_watch *w = reg_watch_get(c, &c->attach.client, false);
    if (!w || !reg_watch_is_ours(c, w)) {
        reply_error(c, c->attach.token, "not_attached");
        attach_end(c);
        return;
    }
    rq r = {c, c->attach.token, now};
    for (size_t n = 0; n < c->slice && hc_iter_next(&c->attach.it, &t); n++)
        attach_one(&r, &c->attach.client, t);
    if (c->attach.it.left)
        return;
    attach_reply(c, c->attach.token);
    attach_end(c);
}

/* {attach, ClientPid, Owned}, Owned = [{Key, Pid, Value}] -> {ok, #{keys => Kind, replica => ReplicaPid}}
 *
 * Records {client, ClientPid} naming this replica and writes every owned entry again, also those present: both
 * are fresh writes, so the deletes of a replica the client left (it saw the client's node go) cannot take them
 * along, because a delete only removes the writes it has seen. For a :unique Key that resolves here to another
 * process the owned one lost: if its entry is here, the conflict pass tells it (its owner is attached here
 * now); if not, it is told now. The whole list is validated before anything is written. More than c->slice
 * owned entries are validated, then written, over several turns of the loop (reg_core.attach). */
static int do_attach(void *ctx, hc_req_args *a)
{
    rq *r = ctx;
    reg_core *c = r->c;
    hc_pid client;
    hc_iter it;
    hc_span t, key, val;
    hc_pid pid;
    if (!arg_pid(a, &client) || !arg_list(a, &it) || !hc_req_args_done(a))
        return HC_EINVAL;
    if (it.left > c->slice) {
        /* the iterators walk a copy of the request (their positions are offsets into the whole request), which
         * outlives this call; without memory for it, the attach is done in one go */
        hc_buf_reset(&c->attach.req);
        hc_buf_append(&c->attach.req, a->p, a->len);
        if (!c->attach.req.err) {
            c->attach.it = it;
            c->attach.it.p = c->attach.req.data;
            c->attach.chk = c->attach.it;
            c->attach.validated = false;
            c->attach.client = client;
            c->attach.token = r->token;
            c->attach.active = true;
            attach_continue(c, r->now);
            return HC_OK;
        }
        hc_buf_free(&c->attach.req);
    }
    hc_iter chk = it;
    while (hc_iter_next(&chk, &t)) /* everything first: a bad element changes nothing */
        if (!owned_elem(c, t, &client, &key, &pid, &val))
            return HC_EINVAL;
    int rc = put_record(c, &client, r->now);
    if (rc) {
        reply_rc(c, r->token, rc);
        return HC_OK;
    }
    while (hc_iter_next(&it, &t))
        attach_one(r, &client, t);
    attach_reply(c, r->token);
    return HC_OK;
}

static const hc_req_entry requests[] = {
    {"register", 4, do_register},
    {"unregister", 2, do_unregister},
    {"unregister_keys", 2, do_unregister_keys},
    {"update_value", 3, do_update_value},
    {"pids_down", 2, do_pids_down},
    {"put_meta", 2, do_put_meta},
    {"delete_meta", 1, do_delete_meta},
    {"set_members", 1, do_set_members},
    {"add_members", 1, do_add_members},
    {"members", 0, do_members},
    {"lookup", 1, do_lookup},
    {"attach", 2, do_attach},
};

/* ------------------------------------------------------------------ big work (reg_core.attach) */

static bool core_busy(const reg_core *c) { return c->attach.active || c->deletes.len; }

/* Holds a request until the big work is done (false: no memory to hold it). */
static bool hold(reg_core *c, uint64_t token, const uint8_t *p, size_t len)
{
    size_t was = c->held.len;
    hc_buf_put_be64(&c->held, token);
    hc_buf_put_be32(&c->held, (uint32_t)len);
    hc_buf_append(&c->held, p, len);
    if (!c->held.err)
        return true;
    c->held.err = HC_OK;
    c->held.len = was;
    return false;
}

static void handle_request(reg_core *c, uint64_t token, const uint8_t *p, size_t len, hc_time now)
{
    rq r = {c, token, now};
    hc_req_args a;
    const hc_req_entry *e = hc_req_match(requests, sizeof requests / sizeof requests[0], p, len, &a);
    int rc = e ? e->fn(&r, &a) : HC_EINVAL;
    if (rc)
        reply_rc(c, token, rc == HC_ENOMEM ? HC_ENOMEM : HC_EINVAL);
    process(c, now);
}

/* Goes on with the big work, then hands the held requests over in order, until one of them starts big work again. */
static void continue_work(reg_core *c, hc_time now)
{
    if (c->attach.active) {
        attach_continue(c, now);
        process(c, now);
    }
    while (!core_busy(c) && c->held_off < c->held.len) {
        const uint8_t *h = c->held.data + c->held_off;
        uint64_t token = hc_get_be64(h);
        uint32_t len = hc_get_be32(h + 8);
        c->held_off += 12 + (size_t)len;
        /* copied out, so that the request stays valid whatever handling it does to the held list */
        hc_buf req = {0};
        hc_buf_append(&req, h + 12, len);
        if (req.err)
            reply_rc(c, token, HC_ENOMEM);
        else
            handle_request(c, token, req.data, req.len, now);
        hc_buf_free(&req);
    }
    if (c->held_off >= c->held.len) {
        hc_buf_reset(&c->held);
        c->held_off = 0;
    }
}

static void core_request(void *core, uint64_t token, const hc_pid *from, const uint8_t *p, size_t len, hc_time now)
{
    reg_core *c = core;
    (void)from;
    if (core_busy(c) || c->held_off < c->held.len) {
        if (!hold(c, token, p, len))
            reply_rc(c, token, HC_ENOMEM);
        return;
    }
    handle_request(c, token, p, len, now);
}

/* ------------------------------------------------------------------ the rest of hc_core_ops */

static int core_receive(void *core, uint64_t peer, const uint8_t *msg, size_t len, hc_time now)
{
    reg_core *c = core;
    int rc = hc_crdt_receive(c->crdt, peer, msg, len, now);
    c->recheck = true; /* a join may raise an element's stamp without an event */
    process(c, now);
    return rc;
}

static bool unwanted_peers(const reg_core *c)
{
    for (size_t i = 0; i < c->npeers; i++)
        if (!wanted(c, c->peers[i].name, c->peers[i].node))
            return true;
    return false;
}

static int core_tick(void *core, hc_time now)
{
    reg_core *c = core;
    int rc = hc_crdt_tick(c->crdt, now);
    if (c->nsuspects && now.mono_ms >= c->suspects[0].at)
        reg_suspects_due(c, now.mono_ms);
    if (now.mono_ms >= c->evict_at) {
        c->evict_at = HC_NO_DEADLINE;
        c->evict_now = unwanted_peers(c); /* process() asks the host for the wanted ones only */
    }
    process(c, now);
    continue_work(c, now);
    return rc;
}

static uint64_t core_deadline(const void *core)
{
    const reg_core *c = core;
    /* queued effects and replies are due now, so the host drains them even if no input follows */
    if (hc_effect_queue_pending(&c->effects) || hc_reply_queue_pending(&c->replies))
        return 0;
    if (core_busy(c) || c->held_off < c->held.len) /* big work, or inputs held for it: the next slice is due */
        return 0;
    uint64_t d = hc_crdt_next_deadline(c->crdt);
    if (c->nsuspects && c->suspects[0].at < d)
        d = c->suspects[0].at;
    return c->evict_at < d ? c->evict_at : d;
}

/* The host's neighbour set: the members we asked for, plus any replica of our name it adopted because it
 * contacted us (hc_core_ops.adopt_peers) — unless this replica is no member of its registry: it refuses new
 * neighbours then (HC_ESTATE), or two replicas that each think the other is out would keep adopting and
 * dropping each other. Peers that are not wanted are dropped REG_ADOPT_GRACE_MS after they appear. */
static int core_set_peers(void *core, const hc_core_peer *peers, size_t n, hc_time now)
{
    reg_core *c = core;
    if (!reg_is_member(c, c->name, c->node))
        for (size_t i = 0; i < n; i++)
            if (!is_peer(c, peers[i].name, peers[i].node) && !wanted(c, peers[i].name, peers[i].node))
                return HC_ESTATE;
    int rc = hc_crdt_set_peers(c->crdt, peers, n, &c->peers, &c->npeers, now);
    if (rc)
        return rc;
    if (!unwanted_peers(c))
        c->evict_at = HC_NO_DEADLINE;
    else if (c->evict_at == HC_NO_DEADLINE)
        c->evict_at = now.mono_ms + REG_ADOPT_GRACE_MS;
    return HC_OK;
}

static int core_peer_up(void *core, uint64_t peer, hc_time now)
{
    return hc_crdt_peer_up(((reg_core *)core)->crdt, peer, now);
}

static int core_peer_down(void *core, uint64_t peer, hc_time now)
{
    return hc_crdt_peer_down(((reg_core *)core)->crdt, peer, now);
}

static void core_monitor_down(void *core, uint64_t id, const hc_pid *pid, const uint8_t *reason, size_t len,
                              hc_time now)
{
    reg_core *c = core;
    size_t i = 0;
    bool noconn = hc_dec_is_atom(reason, len, &i, "noconnection") && i == len;
    (void)pid;
    /* handled at once, also during big work: a monitor the core still counted as live would be demonitored */
    reg_watch_down(c, id, noconn, now.mono_ms);
    process(c, now);
}

static bool core_pop(void *core, hc_effect *out)
{
    reg_core *c = core;
    hc_crdt_msg m;
    if (hc_crdt_pop_message(c->crdt, &m)) {
        *out = (hc_effect){.kind = HC_EFF_SEND_PEER, .peer = m.peer, .data = m.data, .len = m.len};
        return true;
    }
    return hc_effect_queue_pop(&c->effects, out) || hc_reply_queue_pop(&c->replies, out);
}

/* ---- snapshot: the observable map, translated from the engine's map through the index ---- */

static int snap_visit(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
    hc_crdt_snap_ctx *s = ud;
    const reg_core *c = s->core;
    reg_ckey k;
    if (reg_parse_ckey(key, klen, &k))
        return 0;
    hc_buf *b = &s->scratch;
    hc_buf_reset(b);
    switch (k.kind) {
    case REG_K_REG: {
        reg_key *rk = reg_key_find(c, k.key, k.key_len);
        reg_entry *e = NULL;
        for (uint32_t i = 0; rk && i < rk->n && !e; i++)
            if (hc_pid_eq(&reg_key_at(rk, i)->pid, &k.pid))
                e = reg_key_at(rk, i);
        if (!e || (c->unique && !e->shown))
            return 0;
        reg_enc_okey_reg(b, k.key, k.key_len, &k.pid);
        return b->err ? 0 : s->fn(s->ud, b->data, b->len, val, vlen);
    }
    case REG_K_META:
        reg_enc_okey_meta(b, k.key, k.key_len);
        return b->err ? 0 : s->fn(s->ud, b->data, b->len, val, vlen);
    case REG_K_MEMBER:
        reg_enc_key_member(b, k.name, k.node);
        if (b->err || b->len != klen || memcmp(b->data, key, klen))
            return 0;
        return s->fn(s->ud, key, klen, atom_true, sizeof atom_true);
    case REG_K_CLIENT: {
        size_t i = 0;
        hc_atom name, node;
        reg_enc_key_client(b, &k.pid);
        if (b->err || b->len != klen || memcmp(b->data, key, klen) || reg_parse_member(val, vlen, &i, &name, &node) ||
            i != vlen)
            return 0;
        return s->fn(s->ud, key, klen, val, vlen);
    }
    }
    return 0;
}

static int core_snapshot(const void *core, hc_core_visit_fn fn, void *ud)
{
    hc_crdt_snap_ctx s = {core, fn, ud, {0}};
    int rc = hc_crdt_foreach(((const reg_core *)core)->crdt, snap_visit, &s);
    hc_buf_free(&s.scratch);
    return rc;
}

/* A big snapshot, a slice at a time (the host's change stream): the engine's map as it was when opened,
 * translated through the index of the moment each slice is read. */
static int core_snapshot_open(void *core, void **reader, size_t *count)
{
    return hc_crdt_snap_open(((reg_core *)core)->crdt, core, snap_visit, reader, count);
}

static void put_stat(hc_buf *b, const char *k, uint64_t v)
{
    hc_enc_atom_cstr(b, k);
    hc_enc_ulong(b, v);
}

static int core_stats(const void *core, const hc_host_stats *hs, hc_buf *b)
{
    const reg_core *c = core;
    size_t clients = 0;
    for (size_t i = 0; i < c->watches.cap; i++)
        if (hc_hmap_live(&c->watches, i) && ((reg_watch *)c->watches.vals[i])->has_record)
            clients++;
    hc_enc_map_header(b, 11 + HC_CRDT_SYNC_STATS);
    hc_enc_atom_cstr(b, "keys");
    hc_enc_atom_cstr(b, c->unique ? "unique" : "duplicate");
    put_stat(b, "names", c->n_keys);
    put_stat(b, "entries", c->n_entries);
    put_stat(b, "members", c->nmem);
    put_stat(b, "clients", clients);
    put_stat(b, "contested", c->ncont);
    put_stat(b, "conflicts", c->conflicts);
    put_stat(b, "stale_records", c->stale_records);
    put_stat(b, "stale_acted", c->stale_acted);
    put_stat(b, "ignored", c->ignored);
    put_stat(b, "crdt_keys", hc_crdt_size(c->crdt));
    hc_host_stats h = *hs;
    h.core_busy = core_busy(c) || c->held_off < c->held.len;
    return hc_crdt_enc_sync_stats(c->crdt, &h, b);
}

static void core_free(void *core)
{
    reg_core *c = core;
    if (!c)
        return;
    hc_crdt_free(c->crdt);
    reg_index_free(c);
    reg_owners_free(c);
    hc_effect_queue_free(&c->effects);
    hc_reply_queue_free(&c->replies);
    hc_buf_free(&c->scratch);
    hc_buf_free(&c->deletes);
    hc_buf_free(&c->attach.req);
    hc_buf_free(&c->held);
    free(c->peers);
    free(c);
}

const hc_core_ops hc_registry_core_ops = {
    .kind = "registry",
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
    .adopt_peers = true, /* membership is replicated data: see hc_core.h */
    .snapshot_open = core_snapshot_open,
    .snapshot_next = hc_crdt_snap_next,
    .snapshot_close = hc_crdt_snap_close,
};

/* ------------------------------------------------------------------ construction */

void hc_registry_config_init(hc_registry_config *cfg, hc_atom name, hc_atom node, hc_registry_keys keys,
                             uint64_t replica_id)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->name = name;
    cfg->node = node;
    cfg->keys = keys;
    hc_crdt_config_init(&cfg->crdt, replica_id);
}

int hc_registry_core_new(const hc_registry_config *cfg, hc_time now, void **out)
{
    *out = NULL;
    if (!cfg || !cfg->name || !cfg->node || (cfg->keys != HC_REGISTRY_UNIQUE && cfg->keys != HC_REGISTRY_DUPLICATE))
        return HC_EINVAL;
    reg_core *c = calloc(1, sizeof *c);
    if (!c)
        return HC_ENOMEM;
    c->name = cfg->name;
    c->node = cfg->node;
    c->self = cfg->self;
    c->unique = cfg->keys == HC_REGISTRY_UNIQUE;
    c->max_message_bytes = cfg->crdt.max_message_bytes;
    c->slice = cfg->slice ? cfg->slice : REG_SLICE;
    c->evict_at = HC_NO_DEADLINE;
    int rc = hc_crdt_new(&cfg->crdt, now, &c->crdt);
    if (rc) {
        free(c);
        return rc;
    }
    /* A replica is a member of its own registry from the start, as Horde's is (set_members may drop it). */
    hc_buf k = {0};
    reg_enc_key_member(&k, c->name, c->node);
    rc = k.err ? k.err : hc_crdt_put(c->crdt, k.data, k.len, atom_true, sizeof atom_true, now);
    hc_buf_free(&k);
    if (rc) {
        core_free(c);
        return rc;
    }
    process(c, now);
    *out = c;
    return HC_OK;
}

void hc_registry_core_set_self(void *core, const hc_pid *self) { ((reg_core *)core)->self = *self; }
hc_registry_keys hc_registry_core_keys(const void *core)
{
    return ((const reg_core *)core)->unique ? HC_REGISTRY_UNIQUE : HC_REGISTRY_DUPLICATE;
}
hc_crdt *hc_registry_core_engine(void *core) { return ((reg_core *)core)->crdt; }
