/* sup_harness.h — several supervisor cores wired by hand, no runtime and no host: the tests play the host, the
 * network, the worker runtime of each hordec node, and the BEAM clients.
 *
 * Replica i is {sup, hI@sim} with self pid <hI@sim.1.0>. A replica's neighbours are what its HC_EFF_NEIGHBOURS
 * effects say (the handle of replica j is always j + 1, as a host keeps handles stable); peer messages go
 * through one FIFO queue and, like the host, a receiver adopts a replica of its own name that contacts it
 * (hc_core_ops.adopt_peers). A partition drops messages between its two sides.
 *
 * Everything a core emits is recorded: replies by token (exactly one per request is checked), messages to
 * pids (the BEAM clients read theirs from there), monitors (the test fires downs with ops->monitor_down), exits,
 * and each replica's observable map as its events build it (compared with the core's snapshot by s_check).
 * HC_EFF_LOCAL actions are carried out by a fake worker runtime, fed back with ops->local once the effects that
 * asked for them are drained, as the host does: {start_worker, Op, Type, Arg} allocates a worker pid on the
 * replica's node and answers {worker_started, Op, {ok, Pid}} (type "nope": {error, {unknown_worker_type, T}};
 * type "ignore": ignore; while w->refuse_starts > 0: {error, refused}); {stop_worker, Pid, Reason} marks the worker
 * stopped. Time is simulated (hc_time):
 * s_run delivers messages and runs the engines' timers. */
#ifndef SUP_HARNESS_H
#define SUP_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hordec/hc_supervisor.h"
#include "supervisor/place.h"

#define S_MAXR 4
#define S_OPS (&hc_supervisor_core_ops)

typedef struct s_kv {
    uint8_t *k, *v;
    size_t kl, vl;
} s_kv;

typedef struct s_rep {
    void *core;
    hc_atom node;
    hc_pid self;
    bool up;
    bool nb[S_MAXR]; /* j is a neighbour */
    s_kv *mirror;
    size_t nmirror, capmirror;
    uint64_t incarnation;
} s_rep;

typedef struct s_msg {
    int from, to;
    uint8_t *data;
    size_t len;
} s_msg;

typedef struct s_mon {
    int by;
    uint64_t id, incarnation;
    hc_pid pid;
    bool active;
} s_mon;

typedef struct s_answer {
    uint64_t token;
    int by;
    int count;  /* replies seen for this token: must end at exactly 1 */
    bool shown; /* {ok, Pid, ...}: the replica's map held a child record with Pid when the reply left */
    uint8_t *data;
    size_t len;
} s_answer;

/* A message to a pid (HC_EFF_SEND_PID), or an exit signal (HC_EFF_EXIT, `exit` set). */
typedef struct s_sent {
    int by;
    bool exit;
    hc_pid to;
    uint8_t *data;
    size_t len;
} s_sent;

typedef struct s_worker {
    int rep; /* the replica (node) it runs on */
    hc_pid pid;
    char type[32];
    uint8_t *arg;
    size_t arg_len;
    bool alive;
    int stops; /* stop_worker actions that named it */
    uint8_t *stop_reason;
    size_t stop_len;
} s_worker;

typedef struct s_world {
    s_rep r[S_MAXR];
    int n;
    hc_time now;
    uint32_t start_timeout_ms; /* the replicas' (0: the core's default) */
    /* the C worker types replica i advertises when it (re)starts; none set: S_TYPES */
    const char *const *types[S_MAXR];
    size_t ntypes[S_MAXR];
    s_msg *q;
    size_t nq, capq;
    bool cut[S_MAXR][S_MAXR];
    uint64_t next_token;
    s_answer *replies;
    size_t nreplies, capreplies;
    s_sent *sent;
    size_t nsent, capsent;
    s_mon *mons;
    size_t nmons, capmons;
    s_worker *workers;
    size_t nworkers, capworkers;
    size_t start_actions, stop_actions; /* LOCAL actions seen */
    int refuse_starts;                  /* the next this many start_worker actions fail with {error, refused} */
    size_t peer_sup_msgs;               /* peer messages whose tag starts with sup_ (the core's, not the engine's) */
    uint64_t next_rid;
} s_world;

/* The worker types a replica's runtime has unless a test says otherwise: "nope" is one the fake runtime then
 * refuses to start (as if unregistered since), {error, {unknown_worker_type, <<"nope">>}}. */
static const char *const S_TYPES[] = {"echo", "ignore", "nope"};

static inline hc_atom s_name(void) { return hc_atom_intern_cstr("sup"); }

static inline hc_atom s_node(int i)
{
    char n[32];
    snprintf(n, sizeof n, "h%d@sim", i);
    return hc_atom_intern_cstr(n);
}

static inline hc_pid s_self(int i) { return (hc_pid){s_node(i), 1, 0, 1}; }

/* A process on BEAM node `node` (e.g. "b1@sim"). */
static inline hc_pid s_bpid(const char *node, uint32_t num) { return (hc_pid){hc_atom_intern_cstr(node), num, 0, 1}; }

static inline uint8_t *s_dup(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    assert_non_null(d);
    if (n)
        memcpy(d, p, n);
    return d;
}

#define S_PUSH(arr, n, cap)                                                                                            \
    assert_int_equal(hc_array_reserve((void **)&(arr), &(cap), (n) + 1, sizeof *(arr), 16), HC_OK)

static inline void s_clear_mirror(s_rep *r)
{
    for (size_t k = 0; k < r->nmirror; k++) {
        free(r->mirror[k].k);
        free(r->mirror[k].v);
    }
    r->nmirror = 0;
}

static inline void s_start(s_world *w, int i)
{
    s_rep *r = &w->r[i];
    hc_supervisor_config cfg;
    hc_supervisor_config_init(&cfg, s_name(), s_node(i), ++w->next_rid * 0x1000 + (uint64_t)i + 1);
    r->incarnation++;
    /* a restarted node is a new creation: its first replica's pid is s_self(i) */
    cfg.self = (hc_pid){s_node(i), 1, 0, (uint32_t)r->incarnation};
    cfg.start_timeout_ms = w->start_timeout_ms;
    if (!w->ntypes[i]) {
        w->types[i] = S_TYPES;
        w->ntypes[i] = sizeof S_TYPES / sizeof S_TYPES[0];
    }
    cfg.worker_types = w->types[i];
    cfg.n_worker_types = w->ntypes[i];
    s_clear_mirror(r);
    r->node = s_node(i);
    r->self = cfg.self;
    r->up = true;
    memset(r->nb, 0, sizeof r->nb);
    assert_int_equal(hc_supervisor_core_new(&cfg, w->now, &r->core), HC_OK);
}

static void s_pump(s_world *w, int i);

/* The world a test is running (set by s_init, cleared by s_free): a test that fails midway leaves it to
 * s_teardown. Worlds must not live on the stack of a test that can fail (cmocka leaves it by longjmp). */
static s_world *s_live;

/* n replicas, each its own only member; start_timeout_ms 0 is the core's default. */
static inline void s_init_timeout(s_world *w, int n, uint32_t start_timeout_ms)
{
    assert_null(s_live); /* one world at a time */
    s_live = w;
    memset(w, 0, sizeof *w);
    w->n = n;
    w->start_timeout_ms = start_timeout_ms;
    w->now = (hc_time){1000, 1700000000000ull};
    for (int i = 0; i < n; i++) {
        s_start(w, i);
        s_pump(w, i);
    }
}

static inline void s_init(s_world *w, int n) { s_init_timeout(w, n, 0); }

/* The node of replica i goes away: its core, its monitors and its workers with it. */
static inline void s_stop(s_world *w, int i)
{
    s_rep *r = &w->r[i];
    S_OPS->free(r->core);
    r->core = NULL;
    r->up = false;
    for (size_t m = 0; m < w->nmons; m++)
        if (w->mons[m].by == i)
            w->mons[m].active = false;
    for (size_t k = 0; k < w->nworkers; k++)
        if (w->workers[k].rep == i)
            w->workers[k].alive = false;
}

/* Replica i restarts empty (a new node creation), advertising `types` (NULL: S_TYPES). Not a node death: nobody's
 * monitor fires (s_kill is that). */
static inline void s_restart(s_world *w, int i, const char *const *types, size_t ntypes)
{
    s_stop(w, i);
    w->types[i] = types;
    w->ntypes[i] = types ? ntypes : 0;
    s_start(w, i);
    s_pump(w, i);
}

static inline void s_free(s_world *w)
{
    if (s_live == w)
        s_live = NULL;
    for (int i = 0; i < w->n; i++) {
        if (w->r[i].up)
            s_stop(w, i);
        s_clear_mirror(&w->r[i]);
        free(w->r[i].mirror);
    }
    for (size_t k = 0; k < w->nq; k++)
        free(w->q[k].data);
    free(w->q);
    for (size_t k = 0; k < w->nreplies; k++)
        free(w->replies[k].data);
    free(w->replies);
    for (size_t k = 0; k < w->nsent; k++)
        free(w->sent[k].data);
    free(w->sent);
    free(w->mons);
    for (size_t k = 0; k < w->nworkers; k++) {
        free(w->workers[k].arg);
        free(w->workers[k].stop_reason);
    }
    free(w->workers);
}

/* cmocka teardown: frees the world of a test that failed before its s_free. */
static inline int s_teardown(void **state)
{
    (void)state;
    if (s_live)
        s_free(s_live);
    return 0;
}

/* ------------------------------------------------------------------ the observable map */

static inline s_kv *s_lookup(s_rep *r, const uint8_t *k, size_t kl)
{
    for (size_t m = 0; m < r->nmirror; m++)
        if (r->mirror[m].kl == kl && !memcmp(r->mirror[m].k, k, kl))
            return &r->mirror[m];
    return NULL;
}

static inline void s_mirror(s_rep *r, const hc_effect *e)
{
    s_kv *kv = s_lookup(r, e->data, e->len);
    if (!e->value) {
        assert_non_null(kv); /* a removal names a key the stream showed */
        free(kv->k);
        free(kv->v);
        *kv = r->mirror[--r->nmirror];
        return;
    }
    if (!kv) {
        S_PUSH(r->mirror, r->nmirror, r->capmirror);
        kv = &r->mirror[r->nmirror++];
        *kv = (s_kv){s_dup(e->data, e->len), NULL, e->len, 0};
    } else {
        free(kv->v);
    }
    kv->v = s_dup(e->value, e->value_len);
    kv->vl = e->value_len;
}

/* Is this mirror key {child, Id}? Sets *id. */
static inline bool s_is_child_key(const uint8_t *k, size_t kl, uint64_t *id)
{
    size_t i = 0;
    uint32_t a;
    return hc_dec_tuple_header(k, kl, &i, &a) == HC_OK && a == 2 && hc_dec_is_atom(k, kl, &i, "child") &&
           hc_dec_ulong(k, kl, &i, id) == HC_OK && i == kl;
}

/* The pid element (the last) of a child record, false when the record is relinquished (nil). */
static inline bool s_record_pid(const uint8_t *v, size_t vl, hc_pid *pid)
{
    size_t i = 0;
    uint32_t a;
    if (hc_dec_tuple_header(v, vl, &i, &a) || a != 6)
        return false;
    for (int e = 0; e < 5; e++)
        if (hc_dec_skip(v, vl, &i))
            return false;
    return hc_dec_pid(v, vl, &i, pid) == HC_OK && i == vl;
}

static inline size_t s_child_count(s_world *w, int i)
{
    size_t n = 0;
    uint64_t id;
    for (size_t m = 0; m < w->r[i].nmirror; m++)
        n += s_is_child_key(w->r[i].mirror[m].k, w->r[i].mirror[m].kl, &id);
    return n;
}

/* The record of replica i's map whose pid is `pid`: its Id, or 0. */
static inline uint64_t s_child_by_pid(s_world *w, int i, const hc_pid *pid)
{
    uint64_t id, found = 0;
    hc_pid p;
    for (size_t m = 0; m < w->r[i].nmirror; m++) {
        s_kv *kv = &w->r[i].mirror[m];
        if (s_is_child_key(kv->k, kv->kl, &id) && s_record_pid(kv->v, kv->vl, &p) && hc_pid_eq(&p, pid)) {
            assert_int_equal(found, 0); /* one record per pid */
            found = id;
        }
    }
    return found;
}

/* The value of {child, Id} in replica i's map, or NULL. */
static inline s_kv *s_child(s_world *w, int i, uint64_t id)
{
    hc_buf k = {0};
    hc_enc_tuple_header(&k, 2);
    hc_enc_atom_cstr(&k, "child");
    hc_enc_ulong(&k, id);
    s_kv *kv = s_lookup(&w->r[i], k.data, k.len);
    hc_buf_free(&k);
    return kv;
}

/* The pid a record names now (false: no record, or relinquished). */
static inline bool s_child_pid(s_world *w, int i, uint64_t id, hc_pid *pid)
{
    s_kv *kv = s_child(w, i, id);
    return kv && s_record_pid(kv->v, kv->vl, pid);
}

/* ------------------------------------------------------------------ the fake worker runtime */

static inline s_worker *s_worker_of(s_world *w, const hc_pid *pid)
{
    for (size_t k = 0; k < w->nworkers; k++)
        if (hc_pid_eq(&w->workers[k].pid, pid))
            return &w->workers[k];
    return NULL;
}

static inline size_t s_alive_workers(s_world *w, int i)
{
    size_t n = 0;
    for (size_t k = 0; k < w->nworkers; k++)
        n += w->workers[k].rep == i && w->workers[k].alive;
    return n;
}

/* Carries out one HC_EFF_LOCAL action of replica i; a result to feed back goes to *result. */
static inline void s_local_action(s_world *w, int i, const uint8_t *p, size_t len, hc_buf *result)
{
    size_t x = 0;
    uint32_t arity;
    assert_int_equal(hc_dec_tuple_header(p, len, &x, &arity), HC_OK);
    if (hc_dec_is_atom(p, len, &x, "start_worker")) {
        uint64_t op;
        hc_span type, arg;
        assert_int_equal(arity, 4);
        assert_int_equal(hc_dec_ulong(p, len, &x, &op), HC_OK);
        assert_int_equal(hc_dec_binary(p, len, &x, &type), HC_OK);
        assert_int_equal(hc_dec_term(p, len, &x, &arg), HC_OK);
        assert_int_equal(x, len);
        w->start_actions++;
        hc_enc_tuple_header(result, 3);
        hc_enc_atom_cstr(result, "worker_started");
        hc_enc_ulong(result, op);
        if (type.len == 4 && !memcmp(type.p, "nope", 4)) {
            hc_enc_tuple_header(result, 2);
            hc_enc_atom_cstr(result, "error");
            hc_enc_tuple_header(result, 2);
            hc_enc_atom_cstr(result, "unknown_worker_type");
            hc_enc_binary(result, type.p, type.len);
            return;
        }
        if (w->refuse_starts > 0) {
            w->refuse_starts--;
            hc_enc_tuple_header(result, 2);
            hc_enc_atom_cstr(result, "error");
            hc_enc_atom_cstr(result, "refused");
            return;
        }
        if (type.len == 6 && !memcmp(type.p, "ignore", 6)) {
            hc_enc_atom_cstr(result, "ignore");
            return;
        }
        S_PUSH(w->workers, w->nworkers, w->capworkers);
        s_worker *wk = &w->workers[w->nworkers];
        memset(wk, 0, sizeof *wk);
        wk->rep = i;
        wk->pid = (hc_pid){w->r[i].node, 1000 + (uint32_t)w->nworkers, 0, 1};
        snprintf(wk->type, sizeof wk->type, "%.*s", (int)type.len, (const char *)type.p);
        wk->arg = s_dup(arg.p, arg.len);
        wk->arg_len = arg.len;
        wk->alive = true;
        w->nworkers++;
        hc_enc_tuple_header(result, 2);
        hc_enc_atom_cstr(result, "ok");
        hc_enc_pid(result, &wk->pid);
        return;
    }
    assert_true(hc_dec_is_atom(p, len, &x, "stop_worker"));
    assert_int_equal(arity, 3);
    hc_pid pid;
    hc_span reason;
    assert_int_equal(hc_dec_pid(p, len, &x, &pid), HC_OK);
    assert_int_equal(hc_dec_term(p, len, &x, &reason), HC_OK);
    assert_int_equal(x, len);
    w->stop_actions++;
    s_worker *wk = s_worker_of(w, &pid);
    assert_non_null(wk);
    assert_int_equal(wk->rep, i); /* a replica stops only its own node's workers */
    assert_true(wk->alive);       /* ... and only running ones */
    wk->alive = false;
    wk->stops++;
    free(wk->stop_reason);
    wk->stop_reason = s_dup(reason.p, reason.len);
    wk->stop_len = reason.len;
}

/* ------------------------------------------------------------------ the host */

static inline int s_index(const s_world *w, hc_atom name, hc_atom node)
{
    for (int j = 0; j < w->n; j++)
        if (name == s_name() && w->r[j].node == node)
            return j;
    return -1;
}

static inline void s_neighbours(s_world *w, int i, const uint8_t *p, size_t len)
{
    hc_iter it;
    size_t idx = 0;
    assert_int_equal(hc_iter_list(&it, p, len, &idx), HC_OK);
    hc_core_peer peers[S_MAXR];
    size_t n = 0;
    bool nb[S_MAXR] = {0};
    hc_span t;
    while (hc_iter_next(&it, &t)) {
        size_t k = 0;
        uint32_t ar;
        hc_atom name, node;
        assert_int_equal(hc_dec_tuple_header(t.p, t.len, &k, &ar), HC_OK);
        assert_int_equal(ar, 2);
        assert_int_equal(hc_dec_atom(t.p, t.len, &k, &name), HC_OK);
        assert_int_equal(hc_dec_atom(t.p, t.len, &k, &node), HC_OK);
        int j = s_index(w, name, node);
        if (j < 0 || j == i || nb[j])
            continue; /* a member no replica of this world plays (a BEAM node, or one never started) */
        nb[j] = true;
        peers[n++] = (hc_core_peer){(uint64_t)j + 1, name, node};
    }
    assert_int_equal(S_OPS->set_peers(w->r[i].core, peers, n, w->now), HC_OK);
    memcpy(w->r[i].nb, nb, sizeof nb);
}

/* Replica j contacted i, which did not know it: it becomes a neighbour (hc_core_ops.adopt_peers). */
static inline void s_adopt(s_world *w, int i, int j)
{
    hc_core_peer peers[S_MAXR];
    size_t n = 0;
    for (int k = 0; k < w->n; k++)
        if (w->r[i].nb[k] || k == j)
            peers[n++] = (hc_core_peer){(uint64_t)k + 1, s_name(), w->r[k].node};
    if (S_OPS->set_peers(w->r[i].core, peers, n, w->now) == HC_OK)
        w->r[i].nb[j] = true;
}

static inline s_answer *s_reply_rec(s_world *w, uint64_t token)
{
    for (size_t k = 0; k < w->nreplies; k++)
        if (w->replies[k].token == token)
            return &w->replies[k];
    return NULL;
}

/* Does replica i's map hold a child record naming the pid of reply {ok, Pid} | {ok, Pid, Info}? */
static inline bool s_reply_shown(s_world *w, int i, const uint8_t *p, size_t len)
{
    size_t x = 0;
    uint32_t a;
    hc_pid pid;
    if (hc_dec_tuple_header(p, len, &x, &a) || (a != 2 && a != 3) || !hc_dec_is_atom(p, len, &x, "ok") ||
        hc_dec_pid(p, len, &x, &pid))
        return false;
    return s_child_by_pid(w, i, &pid) != 0;
}

/* Drains replica i's effects as the host's pump does: results of local actions are fed back once the effects
 * that asked for them are drained, and their own effects drained in turn. */
static void s_pump(s_world *w, int i)
{
    s_rep *r = &w->r[i];
    hc_effect e;
    hc_buf results = {0}; /* [u32 len][term]... */
again:
    while (r->up && S_OPS->pop_effect(r->core, &e)) {
        switch (e.kind) {
        case HC_EFF_SEND_PEER: {
            assert_true(e.peer >= 1 && e.peer <= (uint64_t)w->n);
            size_t x = 0;
            uint32_t a;
            if (hc_dec_tuple_header(e.data, e.len, &x, &a) == HC_OK && a >= 3 &&
                (hc_dec_is_atom(e.data, e.len, &x, "sup_start") || hc_dec_is_atom(e.data, e.len, &x, "sup_started") ||
                 hc_dec_is_atom(e.data, e.len, &x, "sup_terminate") ||
                 hc_dec_is_atom(e.data, e.len, &x, "sup_terminated")))
                w->peer_sup_msgs++;
            S_PUSH(w->q, w->nq, w->capq);
            w->q[w->nq++] = (s_msg){i, (int)e.peer - 1, s_dup(e.data, e.len), e.len};
            break;
        }
        case HC_EFF_SEND_PID:
        case HC_EFF_EXIT:
            S_PUSH(w->sent, w->nsent, w->capsent);
            w->sent[w->nsent++] = (s_sent){i, e.kind == HC_EFF_EXIT, e.pid, s_dup(e.data, e.len), e.len};
            break;
        case HC_EFF_REPLY: {
            s_answer *rp = s_reply_rec(w, e.token);
            assert_non_null(rp); /* a reply to a request nobody made */
            assert_int_equal(rp->by, i);
            rp->count++;
            free(rp->data);
            rp->data = s_dup(e.data, e.len);
            rp->len = e.len;
            rp->shown = s_reply_shown(w, i, e.data, e.len);
            break;
        }
        case HC_EFF_MONITOR:
            for (size_t m = 0; m < w->nmons; m++) /* ids are unique among a core's live monitors */
                assert_false(w->mons[m].active && w->mons[m].by == i && w->mons[m].id == e.id);
            S_PUSH(w->mons, w->nmons, w->capmons);
            w->mons[w->nmons++] = (s_mon){i, e.id, r->incarnation, e.pid, true};
            break;
        case HC_EFF_DEMONITOR:
            for (size_t m = 0; m < w->nmons; m++)
                if (w->mons[m].by == i && w->mons[m].id == e.id && w->mons[m].active)
                    w->mons[m].active = false;
            break;
        case HC_EFF_EVENT: s_mirror(r, &e); break;
        case HC_EFF_NEIGHBOURS: s_neighbours(w, i, e.data, e.len); break;
        case HC_EFF_LOCAL: {
            hc_buf res = {0};
            s_local_action(w, i, e.data, e.len, &res);
            assert_int_equal(res.err, HC_OK);
            if (res.len) {
                hc_buf_put_be32(&results, (uint32_t)res.len);
                hc_buf_append(&results, res.data, res.len);
            }
            hc_buf_free(&res);
            break;
        }
        }
    }
    if (r->up && results.len) {
        hc_buf todo = results;
        results = (hc_buf){0};
        for (size_t o = 0; o + 4 <= todo.len;) {
            uint32_t n = hc_get_be32(todo.data + o);
            assert_int_equal(S_OPS->local(r->core, todo.data + o + 4, n, w->now), HC_OK);
            o += 4 + n;
        }
        hc_buf_free(&todo);
        goto again;
    }
    hc_buf_free(&results);
}

static inline void s_pump_all(s_world *w)
{
    for (int i = 0; i < w->n; i++)
        s_pump(w, i);
}

/* Delivers every queued message (new ones included) that is not cut, in order. */
static inline void s_deliver(s_world *w)
{
    while (w->nq) {
        s_msg m = w->q[0];
        memmove(w->q, w->q + 1, (w->nq - 1) * sizeof *w->q);
        w->nq--;
        s_rep *to = &w->r[m.to];
        bool ok = to->up && w->r[m.from].up && !w->cut[m.from][m.to];
        if (ok && !to->nb[m.from] && S_OPS->adopt_peers)
            s_adopt(w, m.to, m.from); /* as the host does for a core with adopt_peers */
        if (ok && to->nb[m.from]) {
            S_OPS->receive(to->core, (uint64_t)m.from + 1, m.data, m.len, w->now);
            s_pump(w, m.to);
        }
        free(m.data);
    }
}

/* Runs the cluster for `ms` simulated milliseconds: messages, then timers. */
static inline void s_run(s_world *w, uint64_t ms)
{
    uint64_t end = w->now.mono_ms + ms;
    for (int guard = 0;; guard++) {
        assert_true(guard < 1000000); /* a core asking to be ticked forever */
        s_pump_all(w);
        s_deliver(w);
        uint64_t next = HC_NO_DEADLINE;
        for (int i = 0; i < w->n; i++)
            if (w->r[i].up) {
                uint64_t d = S_OPS->next_deadline(w->r[i].core);
                if (d < next)
                    next = d;
            }
        if (next <= w->now.mono_ms) {
            for (int i = 0; i < w->n; i++)
                if (w->r[i].up && S_OPS->next_deadline(w->r[i].core) <= w->now.mono_ms) {
                    S_OPS->tick(w->r[i].core, w->now);
                    s_pump(w, i);
                }
            continue;
        }
        if (next > end)
            break;
        w->now.wall_ms += next - w->now.mono_ms;
        w->now.mono_ms = next;
    }
    w->now.wall_ms += end - w->now.mono_ms;
    w->now.mono_ms = end;
}

static inline void s_partition(s_world *w, int a, int b, bool cut) { w->cut[a][b] = w->cut[b][a] = cut; }

/* ------------------------------------------------------------------ requests */

/* Sends a request to replica i from `from` and drains the replica; the reply may come later (s_reply). */
static inline uint64_t s_send(s_world *w, int i, const hc_pid *from, const hc_buf *req)
{
    assert_int_equal(req->err, HC_OK);
    uint64_t token = ++w->next_token;
    S_PUSH(w->replies, w->nreplies, w->capreplies);
    w->replies[w->nreplies++] = (s_answer){.token = token, .by = i};
    S_OPS->request(w->r[i].core, token, from, req->data, req->len, w->now);
    s_pump(w, i);
    return token;
}

/* The reply to `token` (exactly one), or NULL if none came yet. */
static inline const uint8_t *s_reply(s_world *w, uint64_t token, size_t *len)
{
    s_answer *rp = s_reply_rec(w, token);
    assert_non_null(rp);
    assert_true(rp->count <= 1);
    if (!rp->count)
        return NULL;
    *len = rp->len;
    return rp->data;
}

/* A request that is answered within `ms` simulated milliseconds (messages delivered, timers run meanwhile). */
static inline const uint8_t *s_call_within(s_world *w, int i, const hc_pid *from, const hc_buf *req, uint64_t ms,
                                           size_t *len)
{
    uint64_t token = s_send(w, i, from, req);
    const uint8_t *r;
    for (uint64_t t = 0; !(r = s_reply(w, token, len)) && t < ms; t += 10)
        s_run(w, 10);
    if (!r)
        fail_msg("no reply within %llu ms", (unsigned long long)ms);
    return r;
}

/* ---- building terms ---- */

/* A tiny format: a = atom (const char *), A = atom (hc_atom), p = pid (hc_pid *), t = tuple(N) header,
 * m = map(N) header, l = list(N) header (N > 0), n = nil, i = int, u = uint64_t, B = binary of a C string,
 * b = a buffer's bytes (hc_buf *), M = the member {sup, hI@sim} of replica I (int). */
static inline void s_vterm(hc_buf *b, const char *fmt, va_list ap)
{
    for (const char *f = fmt; *f; f++) {
        switch (*f) {
        case 'a': hc_enc_atom_cstr(b, va_arg(ap, const char *)); break;
        case 'A': hc_enc_atom(b, va_arg(ap, hc_atom)); break;
        case 'p': hc_enc_pid(b, va_arg(ap, const hc_pid *)); break;
        case 't': hc_enc_tuple_header(b, va_arg(ap, unsigned)); break;
        case 'm': hc_enc_map_header(b, va_arg(ap, unsigned)); break;
        case 'l': hc_enc_list_header(b, va_arg(ap, unsigned)); break;
        case 'n': hc_enc_nil(b); break;
        case 'i': hc_enc_long(b, va_arg(ap, int)); break;
        case 'u': hc_enc_ulong(b, va_arg(ap, uint64_t)); break;
        case 'B': hc_enc_string(b, va_arg(ap, const char *)); break;
        case 'b': {
            const hc_buf *o = va_arg(ap, const hc_buf *);
            hc_buf_append(b, o->data, o->len);
            break;
        }
        case 'M':
            hc_enc_tuple_header(b, 2);
            hc_enc_atom(b, s_name());
            hc_enc_atom(b, s_node(va_arg(ap, int)));
            break;
        default: fail_msg("bad format character %c", *f);
        }
    }
}

static inline void s_term(hc_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vterm(b, fmt, ap);
    va_end(ap);
}

static inline bool s_equal(const uint8_t *got, size_t len, const hc_buf *want)
{
    return want->len == len && !memcmp(want->data, got, len);
}

static inline void s_dump(const char *what, const uint8_t *p, size_t len)
{
    fprintf(stderr, "%s (%zu bytes):", what, len);
    for (size_t i = 0; i < len && i < 96; i++)
        fprintf(stderr, " %u", p[i]);
    fprintf(stderr, "\n");
}

/* got equals the term described by fmt. */
static inline void s_expect(const uint8_t *got, size_t len, const char *fmt, ...)
{
    hc_buf b = {0};
    va_list ap;
    va_start(ap, fmt);
    s_vterm(&b, fmt, ap);
    va_end(ap);
    if (!s_equal(got, len, &b)) {
        s_dump("got", got, len);
        s_dump(fmt, b.data, b.len);
        hc_buf_free(&b);
        fail();
    }
    hc_buf_free(&b);
}

/* Calls replica i with the term described by fmt; the reply must come within 3 simulated seconds. */
static inline const uint8_t *s_req(s_world *w, int i, const hc_pid *from, size_t *len, const char *fmt, ...)
{
    hc_buf b = {0};
    va_list ap;
    va_start(ap, fmt);
    s_vterm(&b, fmt, ap);
    va_end(ap);
    const uint8_t *r = s_call_within(w, i, from, &b, 3000, len);
    hc_buf_free(&b);
    return r;
}

/* ------------------------------------------------------------------ monitors */

/* The live monitor replica i holds on pid, or NULL. */
static inline s_mon *s_monitor_of(s_world *w, int i, const hc_pid *pid)
{
    for (size_t m = 0; m < w->nmons; m++)
        if (w->mons[m].active && w->mons[m].by == i && hc_pid_eq(&w->mons[m].pid, pid) &&
            w->mons[m].incarnation == w->r[i].incarnation)
            return &w->mons[m];
    return NULL;
}

/* Fires monitor m with the reason term `reason`. */
static inline void s_fire(s_world *w, s_mon *m, const hc_buf *reason)
{
    m->active = false;
    int by = m->by;
    hc_pid pid = m->pid;
    S_OPS->monitor_down(w->r[by].core, m->id, &pid, reason->data, reason->len, w->now);
    s_pump(w, by);
}

/* Process `pid` exits with the reason described by fmt: every monitor on it fires (a worker is marked dead). */
static inline void s_exit(s_world *w, const hc_pid *pid, const char *fmt, ...)
{
    hc_buf b = {0};
    va_list ap;
    va_start(ap, fmt);
    s_vterm(&b, fmt, ap);
    va_end(ap);
    s_worker *wk = s_worker_of(w, pid);
    if (wk)
        wk->alive = false;
    for (size_t m = 0; m < w->nmons; m++)
        if (w->mons[m].active && hc_pid_eq(&w->mons[m].pid, pid) && w->r[w->mons[m].by].up &&
            w->mons[m].incarnation == w->r[w->mons[m].by].incarnation)
            s_fire(w, &w->mons[m], &b);
    hc_buf_free(&b);
}

/* Replica j's node dies: its core and workers go, and every monitor on its processes fires with noconnection. */
static inline void s_kill(s_world *w, int j)
{
    hc_pid self = w->r[j].self;
    hc_atom node = w->r[j].node;
    s_stop(w, j);
    hc_buf b = {0};
    hc_enc_atom_cstr(&b, "noconnection");
    for (size_t m = 0; m < w->nmons; m++)
        if (w->mons[m].active && w->mons[m].pid.node == node && w->r[w->mons[m].by].up &&
            w->mons[m].incarnation == w->r[w->mons[m].by].incarnation)
            s_fire(w, &w->mons[m], &b);
    hc_buf_free(&b);
    (void)self;
}

/* ------------------------------------------------------------------ messages to pids */

/* The index of the first message sent to `to` at or after index *from (advanced past it), or -1. */
static inline long s_next_sent(s_world *w, const hc_pid *to, size_t *from)
{
    for (size_t k = *from; k < w->nsent; k++)
        if (!w->sent[k].exit && hc_pid_eq(&w->sent[k].to, to)) {
            *from = k + 1;
            return (long)k;
        }
    *from = w->nsent;
    return -1;
}

/* ------------------------------------------------------------------ stats and checks */

/* A counter of replica i's stats map (an atom key with an integer value); fails if absent. */
static inline uint64_t s_stat(s_world *w, int i, const char *key)
{
    hc_buf b = {0};
    hc_host_stats hs = {0};
    assert_int_equal(S_OPS->stats(w->r[i].core, &hs, &b), HC_OK);
    assert_int_equal(b.err, HC_OK);
    hc_iter it;
    size_t x = 0;
    hc_span k, v;
    assert_int_equal(hc_iter_map(&it, b.data, b.len, &x), HC_OK);
    while (hc_iter_next_pair(&it, &k, &v)) {
        size_t ki = 0, vi = 0;
        uint64_t n;
        if (hc_dec_is_atom(k.p, k.len, &ki, key)) {
            bool t;
            if (hc_dec_ulong(v.p, v.len, &vi, &n) != HC_OK) {
                vi = 0;
                assert_int_equal(hc_dec_bool(v.p, v.len, &vi, &t), HC_OK);
                n = t;
            }
            hc_buf_free(&b);
            return n;
        }
    }
    hc_buf_free(&b);
    fail_msg("no %s in the stats", key);
    return 0;
}

typedef struct s_snap {
    s_rep *r;
    size_t seen;
} s_snap;

static inline int s_snap_visit(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    s_snap *s = ud;
    s_kv *kv = s_lookup(s->r, k, kl);
    if (!kv) {
        s_dump("snapshot has a key the event stream never showed", k, kl);
        fail();
    }
    if (kv->vl != vl || memcmp(kv->v, v, vl)) {
        s_dump("snapshot value differs from the event stream's", k, kl);
        fail();
    }
    s->seen++;
    return 0;
}

/* The cores' own check; each snapshot is exactly what the events built; every request got at most one reply;
 * every worker a replica's node runs is watched by that replica, and the replica counts exactly those. */
static inline void s_check(s_world *w)
{
    for (int i = 0; i < w->n; i++) {
        if (!w->r[i].up)
            continue;
        char why[256] = "";
        int rc = hc_supervisor_core_check(w->r[i].core, why, sizeof why);
        if (rc)
            fprintf(stderr, "replica %d: %s\n", i, why);
        assert_int_equal(rc, HC_OK);
        s_snap s = {&w->r[i], 0};
        assert_int_equal(S_OPS->snapshot(w->r[i].core, s_snap_visit, &s), HC_OK);
        assert_int_equal(s.seen, w->r[i].nmirror);
        for (size_t k = 0; k < w->nworkers; k++)
            if (w->workers[k].rep == i && w->workers[k].alive && !s_monitor_of(w, i, &w->workers[k].pid))
                fail_msg("replica %d runs worker %u unwatched", i, w->workers[k].pid.num);
        assert_int_equal(s_stat(w, i, "running_here"), s_alive_workers(w, i));
    }
    for (size_t k = 0; k < w->nreplies; k++)
        assert_true(w->replies[k].count <= 1);
}

/* Every request made so far was answered exactly once. */
static inline void s_all_answered(s_world *w)
{
    for (size_t k = 0; k < w->nreplies; k++)
        if (w->replies[k].count != 1)
            fail_msg("request %llu got %d replies", (unsigned long long)w->replies[k].token, w->replies[k].count);
}

/* ------------------------------------------------------------------ placement */

/* The replica the uniform ring over the C replicas `members` (indexes) places `hash` on. */
static inline int s_owner(const int *members, size_t n, uint64_t hash)
{
    sup_member_ref refs[S_MAXR];
    for (size_t k = 0; k < n; k++)
        refs[k] = (sup_member_ref){s_name(), s_node(members[k])};
    sup_members_sort(refs, n);
    sup_ring ring = {0};
    assert_int_equal(sup_ring_build(&ring, refs, n), HC_OK);
    int o = sup_ring_owner(&ring, sup_phash2_uint(hash));
    assert_true(o >= 0);
    hc_atom node = refs[o].node;
    sup_ring_free(&ring);
    for (size_t k = 0; k < n; k++)
        if (s_node(members[k]) == node)
            return members[k];
    fail();
    return -1;
}

/* The smallest hash >= from that the ring over `members` places on replica `target`. */
static inline uint64_t s_hash_from(const int *members, size_t n, int target, uint64_t from)
{
    for (uint64_t h = from;; h++)
        if (s_owner(members, n, h) == target)
            return h;
}

static inline uint64_t s_hash_for(const int *members, size_t n, int target)
{
    return s_hash_from(members, n, target, 1);
}

#endif
