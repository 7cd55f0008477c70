/* registry_harness.h — several registry cores wired by hand, no runtime and no host: the tests play the host.
 *
 * Replica i is {reg, hI@sim}. A replica's neighbours are what its HC_EFF_NEIGHBOURS effects say (the handle of
 * replica j is always j + 1, as a host keeps handles stable); messages go through one FIFO queue and, like the
 * host, a receiver adopts a replica of its own name that contacts it (hc_core_ops.adopt_peers). A partition drops messages
 * between the two sides. Everything a core emits is recorded: replies by token, exits, monitors, and each
 * replica's observable map as its events build it (compared with the core's snapshot by h_check). */
#ifndef REGISTRY_HARNESS_H
#define REGISTRY_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hordec/hc_registry.h"

#define H_MAXR 4
#define H_MAX 512

typedef struct h_kv {
    uint8_t *k, *v;
    size_t kl, vl;
} h_kv;

typedef struct h_rep {
    void *core;
    hc_atom name, node;
    bool up;
    bool nb[H_MAXR]; /* j is a neighbour */
    h_kv mirror[H_MAX];
    size_t nmirror;
    uint64_t incarnation;
} h_rep;

typedef struct h_msg {
    int from, to;
    uint8_t *data;
    size_t len;
} h_msg;

typedef struct h_exit {
    int by;
    hc_pid pid;
    uint8_t *reason;
    size_t len;
} h_exit;

typedef struct h_mon {
    int by;
    uint64_t id, incarnation;
    hc_pid pid;
    bool active;
} h_mon;

typedef struct h_world {
    h_rep r[H_MAXR];
    int n;
    hc_registry_keys keys;
    hc_time now;
    h_msg *q;
    size_t nq, capq;
    bool cut[H_MAXR][H_MAXR];
    uint64_t next_token;
    uint64_t reply_token;
    uint8_t *reply;
    size_t reply_len;
    int replies; /* replies seen for reply_token */
    h_exit exits[H_MAX];
    size_t nexits;
    h_mon mons[H_MAX];
    size_t nmons;
    uint64_t next_rid;
    bool no_mirror; /* count stream events instead of mirroring them (tests with more than H_MAX entries) */
    size_t events;
} h_world;

static inline hc_atom h_name(void) { return hc_atom_intern_cstr("reg"); }

static inline hc_atom h_node(int i)
{
    char n[32];
    snprintf(n, sizeof n, "h%d@sim", i + 1);
    return hc_atom_intern_cstr(n);
}

/* A BEAM process on node a@beam (or, with node 0..3, a C process of replica node i). */
static inline hc_pid h_beam(uint32_t num) { return (hc_pid){hc_atom_intern_cstr("a@beam"), num, 0, 1}; }
static inline hc_pid h_cproc(int i, uint32_t num) { return (hc_pid){h_node(i), num, 0, 2}; }

static inline void h_start(h_world *w, int i)
{
    h_rep *r = &w->r[i];
    hc_registry_config cfg;
    hc_registry_config_init(&cfg, h_name(), h_node(i), w->keys, ++w->next_rid * 0x1000 + (uint64_t)i + 1);
    cfg.self = (hc_pid){h_node(i), 1, 0, 1};
    assert_int_equal(hc_registry_core_new(&cfg, w->now, &r->core), HC_OK);
    r->name = h_name();
    r->node = h_node(i);
    r->up = true;
    r->incarnation++;
    memset(r->nb, 0, sizeof r->nb);
    for (size_t k = 0; k < r->nmirror; k++) {
        free(r->mirror[k].k);
        free(r->mirror[k].v);
    }
    r->nmirror = 0;
}

static inline void h_init(h_world *w, int n, hc_registry_keys keys)
{
    memset(w, 0, sizeof *w);
    w->n = n;
    w->keys = keys;
    w->now = (hc_time){1000, 1700000000000ull};
    for (int i = 0; i < n; i++)
        h_start(w, i);
}

static inline void h_stop(h_world *w, int i)
{
    h_rep *r = &w->r[i];
    hc_registry_core_ops.free(r->core);
    r->core = NULL;
    r->up = false;
    for (size_t m = 0; m < w->nmons; m++)
        if (w->mons[m].by == i)
            w->mons[m].active = false;
}

static inline void h_free(h_world *w)
{
    for (int i = 0; i < w->n; i++) {
        if (w->r[i].up)
            h_stop(w, i);
        for (size_t k = 0; k < w->r[i].nmirror; k++) {
            free(w->r[i].mirror[k].k);
            free(w->r[i].mirror[k].v);
        }
    }
    for (size_t k = 0; k < w->nq; k++)
        free(w->q[k].data);
    free(w->q);
    for (size_t k = 0; k < w->nexits; k++)
        free(w->exits[k].reason);
    free(w->reply);
}

static inline uint8_t *h_dup(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    assert_non_null(d);
    if (n)
        memcpy(d, p, n);
    return d;
}

static inline void h_mirror(h_rep *r, const hc_effect *e)
{
    size_t k = 0;
    while (k < r->nmirror && !(r->mirror[k].kl == e->len && !memcmp(r->mirror[k].k, e->data, e->len)))
        k++;
    if (!e->value) {
        assert_true(k < r->nmirror); /* a removal names a key the stream showed */
        free(r->mirror[k].k);
        free(r->mirror[k].v);
        r->mirror[k] = r->mirror[--r->nmirror];
        return;
    }
    if (k == r->nmirror) {
        assert_true(r->nmirror < H_MAX);
        r->mirror[r->nmirror++] = (h_kv){h_dup(e->data, e->len), NULL, e->len, 0};
    } else {
        free(r->mirror[k].v);
    }
    r->mirror[k].v = h_dup(e->value, e->value_len);
    r->mirror[k].vl = e->value_len;
}

static inline int h_index(const h_world *w, hc_atom name, hc_atom node)
{
    for (int j = 0; j < w->n; j++)
        if (w->r[j].name == name && w->r[j].node == node)
            return j;
    return -1;
}

static inline void h_neighbours(h_world *w, int i, const uint8_t *p, size_t len)
{
    hc_iter it;
    size_t idx = 0;
    assert_int_equal(hc_iter_list(&it, p, len, &idx), HC_OK);
    hc_core_peer peers[H_MAXR];
    size_t n = 0;
    bool nb[H_MAXR] = {0};
    hc_span t;
    while (hc_iter_next(&it, &t)) {
        size_t k = 0;
        uint32_t ar;
        hc_atom name, node;
        assert_int_equal(hc_dec_tuple_header(t.p, t.len, &k, &ar), HC_OK);
        assert_int_equal(hc_dec_atom(t.p, t.len, &k, &name), HC_OK);
        assert_int_equal(hc_dec_atom(t.p, t.len, &k, &node), HC_OK);
        int j = h_index(w, name, node);
        if (j < 0 || j == i || nb[j])
            continue;
        nb[j] = true;
        peers[n++] = (hc_core_peer){(uint64_t)j + 1, name, node};
    }
    assert_int_equal(hc_registry_core_ops.set_peers(w->r[i].core, peers, n, w->now), HC_OK);
    memcpy(w->r[i].nb, nb, sizeof nb);
}

/* Replica j (same registry name) contacted i, which did not know it: it becomes a neighbour. */
static inline void h_adopt(h_world *w, int i, int j)
{
    hc_core_peer peers[H_MAXR];
    size_t n = 0;
    for (int k = 0; k < w->n; k++)
        if (w->r[i].nb[k] || k == j)
            peers[n++] = (hc_core_peer){(uint64_t)k + 1, w->r[k].name, w->r[k].node};
    if (hc_registry_core_ops.set_peers(w->r[i].core, peers, n, w->now) == HC_OK) /* else refused: dropped */
        w->r[i].nb[j] = true;
}

/* Drains replica i's effects (as a host's pump does). */
static inline void h_pump(h_world *w, int i)
{
    h_rep *r = &w->r[i];
    hc_effect e;
    while (r->up && hc_registry_core_ops.pop_effect(r->core, &e)) {
        switch (e.kind) {
        case HC_EFF_SEND_PEER:
            assert_true(e.peer >= 1 && e.peer <= (uint64_t)w->n);
            if (hc_array_reserve((void **)&w->q, &w->capq, w->nq + 1, sizeof *w->q, 16) == HC_OK)
                w->q[w->nq++] = (h_msg){i, (int)e.peer - 1, h_dup(e.data, e.len), e.len};
            break;
        case HC_EFF_REPLY:
            if (e.token == w->reply_token) {
                w->replies++;
                free(w->reply);
                w->reply = h_dup(e.data, e.len);
                w->reply_len = e.len;
            }
            break;
        case HC_EFF_MONITOR:
            assert_true(w->nmons < H_MAX);
            for (size_t m = 0; m < w->nmons; m++) /* ids are unique among a core's live monitors */
                assert_false(w->mons[m].active && w->mons[m].by == i && w->mons[m].id == e.id);
            w->mons[w->nmons++] = (h_mon){i, e.id, r->incarnation, e.pid, true};
            break;
        case HC_EFF_DEMONITOR:
            for (size_t m = 0; m < w->nmons; m++)
                if (w->mons[m].by == i && w->mons[m].id == e.id && w->mons[m].active)
                    w->mons[m].active = false;
            break;
        case HC_EFF_EXIT:
            assert_true(w->nexits < H_MAX);
            w->exits[w->nexits++] = (h_exit){i, e.pid, h_dup(e.data, e.len), e.len};
            break;
        case HC_EFF_EVENT:
            if (w->no_mirror)
                w->events++;
            else
                h_mirror(r, &e);
            break;
        case HC_EFF_SEND_PID: fail_msg("the registry core sends no plain messages"); break;
        case HC_EFF_LOCAL: fail_msg("the registry core has no local actions"); break;
        case HC_EFF_NEIGHBOURS: h_neighbours(w, i, e.data, e.len); break;
        }
    }
}

static inline void h_pump_all(h_world *w)
{
    for (int i = 0; i < w->n; i++)
        h_pump(w, i);
}

/* Delivers every queued message (new ones included) that is not cut, in order. */
static inline bool h_deliver(h_world *w)
{
    bool any = false;
    while (w->nq) {
        h_msg m = w->q[0];
        memmove(w->q, w->q + 1, (w->nq - 1) * sizeof *w->q);
        w->nq--;
        h_rep *to = &w->r[m.to];
        if (to->up && w->r[m.from].up && !w->cut[m.from][m.to] && !to->nb[m.from] && hc_registry_core_ops.adopt_peers)
            h_adopt(w, m.to, m.from); /* as the host does for a core with adopt_peers */
        if (to->up && w->r[m.from].up && !w->cut[m.from][m.to] && to->nb[m.from]) {
            hc_registry_core_ops.receive(to->core, (uint64_t)m.from + 1, m.data, m.len, w->now);
            h_pump(w, m.to);
            any = true;
        }
        free(m.data);
    }
    return any;
}

/* Runs the cluster for `ms` simulated milliseconds: messages, then timers. */
static inline void h_run(h_world *w, uint64_t ms)
{
    uint64_t end = w->now.mono_ms + ms;
    for (;;) {
        h_pump_all(w);
        h_deliver(w);
        uint64_t next = HC_NO_DEADLINE;
        for (int i = 0; i < w->n; i++)
            if (w->r[i].up) {
                uint64_t d = hc_registry_core_ops.next_deadline(w->r[i].core);
                if (d < next)
                    next = d;
            }
        if (next <= w->now.mono_ms) {
            for (int i = 0; i < w->n; i++)
                if (w->r[i].up && hc_registry_core_ops.next_deadline(w->r[i].core) <= w->now.mono_ms)
                    hc_registry_core_ops.tick(w->r[i].core, w->now);
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

static inline void h_partition(h_world *w, int a, int b, bool cut) { w->cut[a][b] = w->cut[b][a] = cut; }

/* A request to replica i from `from`: returns the reply (owned by w, valid until the next call). Exactly one. */
static inline const uint8_t *h_call(h_world *w, int i, const hc_pid *from, const hc_buf *req, size_t *len)
{
    assert_int_equal(req->err, HC_OK);
    w->reply_token = ++w->next_token;
    w->replies = 0;
    hc_registry_core_ops.request(w->r[i].core, w->reply_token, from, req->data, req->len, w->now);
    h_pump(w, i);
    assert_int_equal(w->replies, 1);
    *len = w->reply_len;
    return w->reply;
}

/* ---- building terms ---- */

/* A tiny format: a = atom, p = pid*, t = tuple(N) header, m = map(N) header, l = list(N) header (N > 0), n = nil, i = int,
 * r = raw (uint8_t*, size_t), b = a buffer's bytes (hc_buf*). */
static inline void h_vterm(hc_buf *b, const char *fmt, va_list ap)
{
    for (const char *f = fmt; *f; f++) {
        switch (*f) {
        case 'a': hc_enc_atom_cstr(b, va_arg(ap, const char *)); break;
        case 'p': hc_enc_pid(b, va_arg(ap, const hc_pid *)); break;
        case 't': hc_enc_tuple_header(b, va_arg(ap, unsigned)); break;
        case 'm': hc_enc_map_header(b, va_arg(ap, unsigned)); break;
        case 'l': hc_enc_list_header(b, va_arg(ap, unsigned)); break;
        case 'n': hc_enc_nil(b); break;
        case 'i': hc_enc_long(b, va_arg(ap, int)); break;
        case 'r': {
            const uint8_t *p = va_arg(ap, const uint8_t *);
            size_t n = va_arg(ap, size_t);
            hc_buf_append(b, p, n);
            break;
        }
        case 'b': {
            const hc_buf *o = va_arg(ap, const hc_buf *);
            hc_buf_append(b, o->data, o->len);
            break;
        }
        default: fail_msg("bad format character %c", *f);
        }
    }
}

static inline void h_term(hc_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    h_vterm(b, fmt, ap);
    va_end(ap);
}

/* The reply equals the term described by fmt. */
static inline void h_expect(const uint8_t *got, size_t len, const char *fmt, ...)
{
    hc_buf b = {0};
    va_list ap;
    va_start(ap, fmt);
    h_vterm(&b, fmt, ap);
    va_end(ap);
    if (b.len != len || memcmp(b.data, got, len)) {
        fprintf(stderr, "reply differs from %s (%zu vs %zu bytes):", fmt, len, b.len);
        for (size_t i = 0; i < len && i < 64; i++)
            fprintf(stderr, " %u", got[i]);
        fprintf(stderr, "\n");
        hc_buf_free(&b);
        fail();
    }
    hc_buf_free(&b);
}

/* Calls replica i with the term described by fmt and returns the reply. */
static inline const uint8_t *h_req(h_world *w, int i, const hc_pid *from, size_t *len, const char *fmt, ...)
{
    hc_buf b = {0};
    va_list ap;
    va_start(ap, fmt);
    h_vterm(&b, fmt, ap);
    va_end(ap);
    const uint8_t *r = h_call(w, i, from, &b, len);
    hc_buf_free(&b);
    return r;
}

/* ---- checks ---- */

typedef struct h_snap {
    h_rep *r;
    size_t seen;
} h_snap;

static inline int h_snap_visit(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    h_snap *s = ud;
    for (size_t i = 0; i < s->r->nmirror; i++)
        if (s->r->mirror[i].kl == kl && !memcmp(s->r->mirror[i].k, k, kl)) {
            if (s->r->mirror[i].vl != vl || memcmp(s->r->mirror[i].v, v, vl)) {
                fprintf(stderr, "snapshot value differs from the event stream's\n");
                fail();
            }
            s->seen++;
            return 0;
        }
    fprintf(stderr, "snapshot has a key the event stream never showed\n");
    fail();
    return 1;
}

/* The core's invariants hold, and its snapshot is exactly what its events built. */
static inline void h_check(h_world *w)
{
    for (int i = 0; i < w->n; i++) {
        if (!w->r[i].up)
            continue;
        char why[256] = "";
        int rc = hc_registry_core_check(w->r[i].core, why, sizeof why);
        if (rc)
            fprintf(stderr, "replica %d: %s\n", i, why);
        assert_int_equal(rc, HC_OK);
        if (w->no_mirror)
            continue;
        h_snap s = {&w->r[i], 0};
        hc_registry_core_ops.snapshot(w->r[i].core, h_snap_visit, &s);
        assert_int_equal(s.seen, w->r[i].nmirror);
    }
}

/* Does replica i's observable map hold {reg, Key, Pid} (Key given as ETF)? */
static inline bool h_shows(h_world *w, int i, const hc_buf *key, const hc_pid *pid)
{
    hc_buf k = {0};
    h_term(&k, "tab", 3u, "reg", key);
    hc_enc_pid(&k, pid);
    bool found = false;
    for (size_t m = 0; m < w->r[i].nmirror && !found; m++)
        found = w->r[i].mirror[m].kl == k.len && !memcmp(w->r[i].mirror[m].k, k.data, k.len);
    hc_buf_free(&k);
    return found;
}

static inline size_t h_count_reg(h_world *w, int i)
{
    size_t n = 0;
    for (size_t m = 0; m < w->r[i].nmirror; m++)
        n += w->r[i].mirror[m].kl > 5 && w->r[i].mirror[m].k[2] == 119 && w->r[i].mirror[m].k[3] == 3 &&
             !memcmp(w->r[i].mirror[m].k + 4, "reg", 3);
    return n;
}

/* The live monitor replica i holds on pid, or NULL. */
static inline h_mon *h_monitor_of(h_world *w, int i, const hc_pid *pid)
{
    for (size_t m = 0; m < w->nmons; m++)
        if (w->mons[m].active && w->mons[m].by == i && hc_pid_eq(&w->mons[m].pid, pid) &&
            w->mons[m].incarnation == w->r[i].incarnation)
            return &w->mons[m];
    return NULL;
}

/* Fires monitor m with reason (an atom). */
static inline void h_down(h_world *w, h_mon *m, const char *reason)
{
    hc_buf b = {0};
    hc_enc_atom_cstr(&b, reason);
    m->active = false;
    hc_registry_core_ops.monitor_down(w->r[m->by].core, m->id, &m->pid, b.data, b.len, w->now);
    hc_buf_free(&b);
    h_pump(w, m->by);
}

static inline size_t h_exits_to(h_world *w, const hc_pid *pid)
{
    size_t n = 0;
    for (size_t k = 0; k < w->nexits; k++)
        n += hc_pid_eq(&w->exits[k].pid, pid);
    return n;
}

#endif
