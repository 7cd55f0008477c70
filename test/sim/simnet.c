/* simnet.c — see simnet.h. */
#include "simnet.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EV_MSG, EV_DIAL, EV_DETECT };

struct simnet_event {
    uint64_t order;
    int kind;
    simnet_msg m; /* EV_MSG: the message; otherwise from_node/to_node name the connection */
};

/* ------------------------------------------------------------------ PRNG: splitmix64 */

uint64_t simnet_rnd(simnet *n)
{
    uint64_t z = (n->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t simnet_below(simnet *n, uint64_t k) { return k ? simnet_rnd(n) % k : 0; }
bool simnet_permille(simnet *n, unsigned p) { return simnet_below(n, 1000) < p; }

/* ------------------------------------------------------------------ life cycle */

void simnet_init(simnet *n, uint64_t seed, uint64_t start, const simnet_handler *h)
{
    memset(n, 0, sizeof *n);
    n->rng = seed * 0x2545F4914F6CDD1DULL + 1;
    n->now = start;
    n->h = *h;
    n->trace_hash = 1469598103934665603ULL;
}

void simnet_free(simnet *n)
{
    for (size_t i = 0; i < n->n_heap; i++)
        free(n->heap[i].m.data);
    free(n->heap);
    free(n->timers);
    n->heap = NULL;
    n->timers = NULL;
    n->n_heap = n->cap_heap = n->n_timers = n->in_flight = 0;
}

int simnet_fail(simnet *n, const char *fmt, ...)
{
    if (!n->failed) {
        n->failed = true;
        n->fail_t = n->now;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(n->fail_msg, sizeof n->fail_msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ------------------------------------------------------------------ nodes and clocks */

int simnet_add_node(simnet *n, const char *name, bool partitionable, uint64_t mono_origin, int64_t skew)
{
    if (n->n_nodes == SIMNET_MAX_NODES)
        abort(); /* a scenario bug, not a simulated fault */
    int i = n->n_nodes++;
    n->nodes[i] = (simnet_node){hc_atom_intern_cstr(name), true, partitionable, 0, mono_origin, skew};
    return i;
}

int simnet_node_of(const simnet *n, hc_atom node)
{
    for (int i = 0; i < n->n_nodes; i++)
        if (n->nodes[i].atom == node)
            return i;
    return -1;
}

hc_time simnet_time(const simnet *n, int node)
{
    const simnet_node *x = &n->nodes[node];
    return (hc_time){n->now + x->mono_origin, (uint64_t)((int64_t)n->now + x->skew)};
}

uint64_t simnet_global(const simnet *n, int node, uint64_t mono)
{
    if (mono == HC_NO_DEADLINE)
        return HC_NO_DEADLINE;
    uint64_t origin = n->nodes[node].mono_origin;
    return mono < n->now + origin ? n->now : mono - origin;
}

bool simnet_reachable(const simnet *n, int a, int b)
{
    const simnet_node *x = &n->nodes[a], *y = &n->nodes[b];
    return !x->partitionable || !y->partitionable || x->group == y->group;
}

void simnet_set_faults(simnet *n, bool on, const simnet_faults *f)
{
    n->faults_on = on;
    if (f)
        n->faults = *f;
}

/* ------------------------------------------------------------------ the event heap */

static bool before(const simnet_event *a, const simnet_event *b)
{
    return a->m.at != b->m.at ? a->m.at < b->m.at : a->order < b->order;
}

static void push(simnet *n, simnet_event e)
{
    if (n->n_heap == n->cap_heap) {
        n->cap_heap = n->cap_heap ? n->cap_heap * 2 : 256;
        n->heap = realloc(n->heap, n->cap_heap * sizeof *n->heap);
        if (!n->heap)
            abort();
    }
    e.order = n->order++;
    size_t i = n->n_heap++;
    n->heap[i] = e;
    while (i && before(&n->heap[i], &n->heap[(i - 1) / 2])) {
        simnet_event t = n->heap[i];
        n->heap[i] = n->heap[(i - 1) / 2];
        n->heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
    if (e.kind == EV_MSG)
        n->in_flight++;
}

static simnet_event pop(simnet *n)
{
    simnet_event top = n->heap[0];
    n->heap[0] = n->heap[--n->n_heap];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n->n_heap && before(&n->heap[l], &n->heap[m]))
            m = l;
        if (r < n->n_heap && before(&n->heap[r], &n->heap[m]))
            m = r;
        if (m == i)
            break;
        simnet_event t = n->heap[i];
        n->heap[i] = n->heap[m];
        n->heap[m] = t;
        i = m;
    }
    if (top.kind == EV_MSG)
        n->in_flight--;
    return top;
}

size_t simnet_in_flight(const simnet *n) { return n->in_flight; }

size_t simnet_in_flight_to(const simnet *n, int node)
{
    size_t k = 0;
    for (size_t i = 0; i < n->n_heap; i++)
        k += n->heap[i].kind == EV_MSG && n->heap[i].m.to_node == node;
    return k;
}

/* ------------------------------------------------------------------ connections */

bool simnet_connected(const simnet *n, int a, int b) { return a == b || n->conn[a][b]; }

void simnet_connect(simnet *n, int from, int to)
{
    if (from == to || n->conn[from][to] || n->dialing[from][to] || n->dialing[to][from])
        return;
    n->dialing[from][to] = true;
    n->dials++;
    uint64_t at = n->now + 1 + simnet_below(n, n->faults.dial_ms ? n->faults.dial_ms : 1);
    push(n, (simnet_event){.kind = EV_DIAL, .m = {.at = at, .from_node = from, .to_node = to}});
}

static int tell(simnet *n, int at, int about, bool up)
{
    if (!n->nodes[at].alive || !n->h.node_event)
        return 0;
    return n->h.node_event(n->h.ud, at, about, up);
}

int simnet_disconnect(simnet *n, int a, int b)
{
    if (a == b || !n->conn[a][b])
        return 0;
    n->conn[a][b] = n->conn[b][a] = false;
    n->disconnects++;
    int rc = tell(n, a, b, false);
    if (!rc)
        rc = tell(n, b, a, false);
    return rc;
}

static int dial_done(simnet *n, int a, int b)
{
    n->dialing[a][b] = false;
    if (n->conn[a][b] || !n->nodes[a].alive || !n->nodes[b].alive || !simnet_reachable(n, a, b))
        return 0; /* failed: whoever wanted it dials again */
    n->conn[a][b] = n->conn[b][a] = true;
    n->connects++;
    int rc = tell(n, a, b, true);
    if (!rc)
        rc = tell(n, b, a, true);
    return rc;
}

static void schedule_detection(simnet *n)
{
    for (int a = 0; a < n->n_nodes; a++)
        for (int b = a + 1; b < n->n_nodes; b++)
            if (n->conn[a][b] && !n->detecting[a][b] && !simnet_reachable(n, a, b)) {
                n->detecting[a][b] = true;
                uint64_t at = n->now + 1 + simnet_below(n, n->faults.detect_ms ? n->faults.detect_ms : 1);
                push(n, (simnet_event){.kind = EV_DETECT, .m = {.at = at, .from_node = a, .to_node = b}});
            }
}

void simnet_partition(simnet *n, const int *group)
{
    for (int i = 0; i < n->n_nodes; i++)
        if (n->nodes[i].partitionable)
            n->nodes[i].group = group[i];
    schedule_detection(n);
}

void simnet_crash(simnet *n, int node)
{
    n->nodes[node].alive = false;
    for (int j = 0; j < n->n_nodes; j++)
        if (n->conn[node][j]) {
            n->conn[node][j] = n->conn[j][node] = false;
            n->disconnects++;
            tell(n, j, node, false); /* a failure is recorded; the caller checks n->failed */
        }
}

void simnet_restart(simnet *n, int node) { n->nodes[node].alive = true; }

/* ------------------------------------------------------------------ messages */

static void send(simnet *n, const hc_pid *from, int to_node, hc_atom name, const hc_pid *to_pid, const uint8_t *data,
                 size_t len)
{
    int from_node = simnet_node_of(n, from->node);
    if (from_node < 0 || to_node < 0) {
        n->lost++; /* nobody by that name in this world */
        return;
    }
    if (!simnet_connected(n, from_node, to_node))
        simnet_connect(n, from_node, to_node);
    const simnet_faults *f = &n->faults;
    int copies = 1;
    if (n->faults_on) {
        if (simnet_permille(n, f->drop_pm))
            copies = 0, n->dropped++;
        else if (simnet_permille(n, f->dup_pm))
            copies = 2, n->duplicated++;
    }
    simnet_msg m = {.from_node = from_node, .to_node = to_node, .from = *from, .to_name = name};
    if (to_pid)
        m.to_pid = *to_pid;
    for (int c = 0; c < copies; c++) {
        uint64_t at = n->now + 1 + simnet_below(n, n->faults_on && f->max_delay_ms ? f->max_delay_ms : 3);
        bool reorder = n->faults_on && simnet_permille(n, f->reorder_pm);
        uint64_t *last = &n->last_at[from_node][to_node];
        if (reorder) {
            n->reordered++;
        } else {
            if (at < *last)
                at = *last;
            *last = at;
        }
        m.at = at;
        m.data = malloc(len ? len : 1);
        if (!m.data)
            abort();
        memcpy(m.data, data, len);
        m.len = len;
        push(n, (simnet_event){.kind = EV_MSG, .m = m});
    }
    if (n->faults_on && len > 2 && simnet_permille(n, f->corrupt_pm)) {
        /* a hostile extra copy that must be rejected without effect */
        m.at = n->now + 1 + simnet_below(n, f->max_delay_ms ? f->max_delay_ms : 3);
        m.data = malloc(len);
        if (!m.data)
            abort();
        memcpy(m.data, data, len);
        m.len = len;
        if (simnet_below(n, 2) || !n->h.corrupt || !n->h.corrupt(n->h.ud, &m))
            m.len = 1 + simnet_below(n, len - 1);
        n->damaged++;
        push(n, (simnet_event){.kind = EV_MSG, .m = m});
    }
}

void simnet_send_name(simnet *n, const hc_pid *from, int to_node, hc_atom name, const uint8_t *data, size_t len)
{
    send(n, from, to_node, name, NULL, data, len);
}

void simnet_send_pid(simnet *n, const hc_pid *from, const hc_pid *to, const uint8_t *data, size_t len)
{
    send(n, from, simnet_node_of(n, to->node), 0, to, data, len);
}

void simnet_timer_set(simnet *n, int id, uint64_t at)
{
    if ((size_t)id >= n->n_timers) {
        size_t cap = (size_t)id + 8;
        n->timers = realloc(n->timers, cap * sizeof *n->timers);
        if (!n->timers)
            abort();
        for (size_t i = n->n_timers; i < cap; i++)
            n->timers[i] = HC_NO_DEADLINE;
        n->n_timers = cap;
    }
    n->timers[id] = at != HC_NO_DEADLINE && at < n->now ? n->now : at;
}

/* ------------------------------------------------------------------ running */

static int arrive(simnet *n, simnet_msg *m)
{
    n->delivered++;
    n->bytes += m->len;
    n->trace_hash =
        (n->trace_hash ^ (m->at * 1315423911u + (uint64_t)m->from_node * 31 + (uint64_t)m->to_node)) * 0x100000001b3ULL;
    for (size_t k = 0; k < m->len; k += 64)
        n->trace_hash = (n->trace_hash ^ m->data[k]) * 0x100000001b3ULL;
    if (!n->nodes[m->to_node].alive || !simnet_reachable(n, m->from_node, m->to_node)) {
        n->lost++;
        return 0;
    }
    return n->h.deliver(n->h.ud, m);
}

static int handle(simnet *n, simnet_event *e)
{
    switch (e->kind) {
    case EV_MSG: return arrive(n, &e->m);
    case EV_DIAL: return dial_done(n, e->m.from_node, e->m.to_node);
    default:
        n->detecting[e->m.from_node][e->m.to_node] = false;
        if (!simnet_reachable(n, e->m.from_node, e->m.to_node))
            return simnet_disconnect(n, e->m.from_node, e->m.to_node);
        return 0;
    }
}

int simnet_run_until(simnet *n, uint64_t t)
{
    for (;;) {
        uint64_t next = t + 1;
        if (n->n_heap && n->heap[0].m.at < next)
            next = n->heap[0].m.at;
        for (size_t i = 0; i < n->n_timers; i++)
            if (n->timers[i] < next)
                next = n->timers[i];
        if (next > t)
            break;
        if (next > n->now)
            n->now = next;
        while (n->n_heap && n->heap[0].m.at <= n->now) {
            simnet_event e = pop(n);
            int rc = handle(n, &e);
            free(e.m.data);
            if (rc || n->failed)
                return -1;
        }
        for (size_t i = 0; i < n->n_timers; i++)
            if (n->timers[i] <= n->now) {
                n->timers[i] = HC_NO_DEADLINE;
                if (n->h.timer(n->h.ud, (int)i) || n->failed)
                    return -1;
            }
    }
    if (t > n->now)
        n->now = t;
    return n->failed ? -1 : 0;
}
