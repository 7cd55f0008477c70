/* metrics.c — what a scrape of /metrics reports (hordec_metrics_render); the HTTP side is metrics_http.c.
 *
 * Everything is read on the loop thread at scrape time from what the runtime and the replicas already count:
 * hc_rt_stats, hc_rt_loop_stats, the peers' connection counters, and each replica's stats map (the reply to its
 * `stats` call), so a metric can never disagree with what `:info` and `stats` say. */
#include "daemon/metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "daemon/metrics_text.h"
#include "host/host_rt.h"
#include "hordec/hc_crdt.h"
#include "hordec/hc_registry.h"
#include "hordec/hc_supervisor.h"

/* ------------------------------------------------------------------ replicas: their stats maps */

/* The keys of the stats maps (hc_crdt.h, registry and supervisor cores) that become metrics. */
enum {
    ST_KEYS,
    ST_CRDT_KEYS,
    ST_NEIGHBOURS,
    ST_SUBSCRIBERS,
    ST_IDLE,
    ST_MSGS_SENT,
    ST_MSGS_RECEIVED,
    ST_BYTES_SENT,
    ST_BYTES_RECEIVED,
    ST_REJECTED,
    ST_RETRANSMITS,
    ST_REPAIRS,
    ST_NAMES,
    ST_ENTRIES,
    ST_MEMBERS,
    ST_CLIENTS,
    ST_CONFLICTS,
    ST_CHILDREN,
    ST_RUNNING_HERE,
    ST_QUORUM,
    ST_RESTARTED,
    ST_TAKEN_OVER,
    ST_GIVEN_UP,
    ST_UNACKED_BYTES,
    ST_SYNC_LAG_MS,
    ST_REPAIRING,
    ST_TERMINATED_AGAIN,
    ST__COUNT
};
static const char *const stat_keys[ST__COUNT] = {
    "keys",          "crdt_keys",  "neighbours",       "subscribers", "idle",        "msgs_sent",
    "msgs_received", "bytes_sent", "bytes_received",   "rejected",    "retransmits", "repairs_completed",
    "names",         "entries",    "members",          "clients",     "conflicts",   "children",
    "running_here",  "quorum",     "restarted",        "taken_over",  "given_up",    "unacked_bytes",
    "sync_lag_ms",   "repairing",  "terminated_again",
};

typedef enum { K_CRDT, K_REGISTRY, K_SUPERVISOR } replica_kind;
static const char *const kind_names[] = {"crdt", "registry", "supervisor"};

typedef struct replica_snap {
    const char *name; /* the replica's registered name (the atom table's) */
    replica_kind kind;
    uint64_t v[ST__COUNT];
    bool has[ST__COUNT];
} replica_snap;

typedef struct snap_list {
    replica_snap *v;
    size_t n, cap;
    hc_buf scratch;
    int err;
} snap_list;

/* Reads a stats map: integer and boolean values of the keys above; anything else is left out. */
static void read_stats(const uint8_t *p, size_t len, replica_snap *s)
{
    size_t i = 0;
    hc_iter it;
    hc_span k, v;
    if (hc_iter_map(&it, p, len, &i))
        return;
    while (hc_iter_next_pair(&it, &k, &v)) {
        size_t ki = 0, vi = 0, which;
        bool flag;
        if (hc_dec_atom_index(k.p, k.len, &ki, stat_keys, ST__COUNT, &which))
            continue;
        if (!hc_dec_ulong(v.p, v.len, &vi, &s->v[which])) {
            s->has[which] = true;
            continue;
        }
        vi = 0;
        if (!hc_dec_bool(v.p, v.len, &vi, &flag)) {
            s->v[which] = flag;
            s->has[which] = true;
        }
    }
}

static int snap_replica(hc_rt *rt, hc_proc *p, void *ud)
{
    (void)rt;
    snap_list *l = ud;
    const hc_core_ops *ops = hc_host_rt_kind(p);
    replica_kind kind;
    if (ops == &hc_crdt_core_ops)
        kind = K_CRDT;
    else if (ops == &hc_registry_core_ops)
        kind = K_REGISTRY;
    else if (ops == &hc_supervisor_core_ops)
        kind = K_SUPERVISOR;
    else
        return 0;
    if (!hc_proc_name(p))
        return 0;
    if (hc_array_reserve((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v, 8)) {
        l->err = HC_ENOMEM;
        return 1;
    }
    replica_snap *s = &l->v[l->n];
    memset(s, 0, sizeof *s);
    s->name = hc_atom_name(hc_proc_name(p));
    s->kind = kind;
    hc_buf_reset(&l->scratch);
    if (hc_host_rt_stats(p, &l->scratch) == HC_OK)
        read_stats(l->scratch.data, l->scratch.len, s);
    l->n++;
    return 0;
}

static int by_kind_then_name(const void *a, const void *b)
{
    const replica_snap *x = a, *y = b;
    if (x->kind != y->kind)
        return (int)x->kind - (int)y->kind;
    return strcmp(x->name, y->name);
}

/* ------------------------------------------------------------------ emitting families */

typedef struct metric {
    const char *name;
    hordec_prom_type type;
    const char *help;
} metric;

/* One family with a single unlabelled sample. */
static void one_u64(hc_buf *b, const char *name, hordec_prom_type t, const char *help, uint64_t v)
{
    hordec_prom_family(b, name, t, help);
    hordec_prom_sample_u64(b, name, NULL, 0, v);
}

static void one_f64(hc_buf *b, const char *name, hordec_prom_type t, const char *help, double v)
{
    hordec_prom_family(b, name, t, help);
    hordec_prom_sample_f64(b, name, NULL, 0, v);
}

/* A replica metric: one sample per replica of the kinds `kinds` (a bit set of 1 << replica_kind) that reports
 * `stat`, labelled with the replica's name (under `label`) and, for node-wide replica families, its kind. */
static void replica_family(hc_buf *b, const snap_list *l, const metric *m, unsigned kinds, int stat, int alt_stat,
                           const char *label)
{
    bool opened = false;
    for (size_t i = 0; i < l->n; i++) {
        const replica_snap *s = &l->v[i];
        int st = s->has[stat] ? stat : alt_stat >= 0 && s->has[alt_stat] ? alt_stat : -1;
        if (!(kinds & (1u << s->kind)) || st < 0)
            continue;
        if (!opened)
            hordec_prom_family(b, m->name, m->type, m->help);
        opened = true;
        hordec_prom_label lab[2] = {{label, s->name}, {"kind", kind_names[s->kind]}};
        size_t nlab = strcmp(label, "replica") == 0 ? 2 : 1;
        if (st == ST_SYNC_LAG_MS) /* reported in ms, exported in the base unit */
            hordec_prom_sample_f64(b, m->name, lab, nlab, (double)s->v[st] / 1000.0);
        else
            hordec_prom_sample_u64(b, m->name, lab, nlab, s->v[st]);
    }
}

#define ALL_KINDS 7u

static const struct {
    metric m;
    int stat, alt;
} replica_metrics[] = {
    {{"hordec_replica_keys", HORDEC_PROM_GAUGE,
      "Keys in the replica's CRDT map (for a registry or supervisor: its records, names and members included)"},
     ST_KEYS,
     ST_CRDT_KEYS},
    {{"hordec_replica_neighbours", HORDEC_PROM_GAUGE, "Replicas this one syncs with"}, ST_NEIGHBOURS, -1},
    {{"hordec_replica_subscribers", HORDEC_PROM_GAUGE, "Clients mirroring the replica through its change stream"},
     ST_SUBSCRIBERS,
     -1},
    {{"hordec_replica_in_sync", HORDEC_PROM_GAUGE,
      "1 when nothing is queued, unacknowledged or being repaired for any neighbour, else 0"},
     ST_IDLE,
     -1},
    {{"hordec_replica_sync_messages_sent_total", HORDEC_PROM_COUNTER, "Sync messages sent to neighbours"},
     ST_MSGS_SENT,
     -1},
    {{"hordec_replica_sync_messages_received_total", HORDEC_PROM_COUNTER, "Sync messages received from neighbours"},
     ST_MSGS_RECEIVED,
     -1},
    {{"hordec_replica_sync_bytes_sent_total", HORDEC_PROM_COUNTER, "Bytes of sync messages sent to neighbours"},
     ST_BYTES_SENT,
     -1},
    {{"hordec_replica_sync_bytes_received_total", HORDEC_PROM_COUNTER, "Bytes of sync messages received"},
     ST_BYTES_RECEIVED,
     -1},
    {{"hordec_replica_rejected_messages_total", HORDEC_PROM_COUNTER,
      "Peer messages the replica rejected (malformed, wrong version, not from a neighbour, stale, invalid)"},
     ST_REJECTED,
     -1},
    {{"hordec_replica_retransmits_total", HORDEC_PROM_COUNTER, "Deltas and repair requests sent again"},
     ST_RETRANSMITS,
     -1},
    {{"hordec_replica_repairs_total", HORDEC_PROM_COUNTER, "Repair sessions (Merkle-range catch-up) completed"},
     ST_REPAIRS,
     -1},
    {{"hordec_replica_sync_lag_seconds", HORDEC_PROM_GAUGE,
      "Age of the oldest delta a neighbour has not acknowledged (0 when all are): how far the slowest neighbour "
      "is behind"},
     ST_SYNC_LAG_MS,
     -1},
    {{"hordec_replica_unacked_bytes", HORDEC_PROM_GAUGE,
      "Bytes of deltas sent and not yet acknowledged, all neighbours"},
     ST_UNACKED_BYTES,
     -1},
    {{"hordec_replica_repairing_neighbours", HORDEC_PROM_GAUGE,
      "Neighbours being caught up by a repair (after a restart, a partition or a queue overflow)"},
     ST_REPAIRING,
     -1},
};

static const struct {
    metric m;
    int stat;
} registry_metrics[] =
    {
        {{"hordec_registry_names", HORDEC_PROM_GAUGE, "Distinct keys registered"}, ST_NAMES},
        {{"hordec_registry_entries", HORDEC_PROM_GAUGE, "Registrations (key, process) in the registry"}, ST_ENTRIES},
        {{"hordec_registry_members", HORDEC_PROM_GAUGE, "Replicas in the registry's membership"}, ST_MEMBERS},
        {{"hordec_registry_clients", HORDEC_PROM_GAUGE, "BEAM clients attached to this replica"}, ST_CLIENTS},
        {{"hordec_registry_conflicts_total", HORDEC_PROM_COUNTER, "Name conflicts resolved (a loser told)"},
         ST_CONFLICTS},
},
  supervisor_metrics[] = {
      {{"hordec_supervisor_children", HORDEC_PROM_GAUGE, "Children of the supervisor, cluster-wide"}, ST_CHILDREN},
      {{"hordec_supervisor_children_running_here", HORDEC_PROM_GAUGE, "C workers this replica runs"}, ST_RUNNING_HERE},
      {{"hordec_supervisor_members", HORDEC_PROM_GAUGE, "Members (hordec replicas and BEAM nodes) listed"}, ST_MEMBERS},
      {{"hordec_supervisor_quorum", HORDEC_PROM_GAUGE, "1 when this replica sees a quorum of the members"}, ST_QUORUM},
      {{"hordec_supervisor_restarts_total", HORDEC_PROM_COUNTER, "Children restarted by this replica"}, ST_RESTARTED},
      {{"hordec_supervisor_takeovers_total", HORDEC_PROM_COUNTER, "Children taken over from a member that went away"},
       ST_TAKEN_OVER},
      {{"hordec_supervisor_given_up_total", HORDEC_PROM_COUNTER,
        "Children given up after exceeding max_restarts in max_seconds"},
       ST_GIVEN_UP},
      {{"hordec_supervisor_terminated_again_total", HORDEC_PROM_COUNTER,
        "Copies of terminated children that a concurrent write brought back, terminated again"},
       ST_TERMINATED_AGAIN},
};

/* ------------------------------------------------------------------ peers */

static int by_node_name(const void *a, const void *b)
{
    return strcmp(hc_atom_name(((const hc_rt_peer_stats *)a)->node), hc_atom_name(((const hc_rt_peer_stats *)b)->node));
}

enum { P_MSGS_IN, P_MSGS_OUT, P_BYTES_IN, P_BYTES_OUT, P_QUEUED };

static uint64_t peer_value(const hc_rt_peer_stats *p, int which)
{
    switch (which) {
    case P_MSGS_IN: return p->msgs_in;
    case P_MSGS_OUT: return p->msgs_out;
    case P_BYTES_IN: return p->bytes_in;
    case P_BYTES_OUT: return p->bytes_out;
    default: return p->queued_bytes;
    }
}

static void peer_family(hc_buf *b, const hc_rt_peer_stats *ps, size_t n, const metric *m, int which)
{
    hordec_prom_family(b, m->name, m->type, m->help);
    for (size_t i = 0; i < n; i++) {
        hordec_prom_label lab = {"node", hc_atom_name(ps[i].node)};
        hordec_prom_sample_u64(b, m->name, &lab, 1, peer_value(&ps[i], which));
    }
}

/* ------------------------------------------------------------------ the process */

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

static uint64_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    uint64_t n = 0;
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n ? n - 1 : 0; /* the directory's own descriptor */
}

int hordec_metrics_render(hc_rt *rt, double start_unix_s, hc_buf *b)
{
    hc_rt_stats s;
    hc_rt_stats_get(rt, &s);
    hc_rt_loop_stats ls;
    hc_rt_loop_stats_get(rt, &ls);

    hordec_prom_label info[2] = {{"version", HORDEC_VERSION}, {"node", hc_atom_name(hc_rt_node(rt))}};
    hordec_prom_family(b, "hordec_info", HORDEC_PROM_GAUGE, "Always 1; labels: this node's name and version");
    hordec_prom_sample_u64(b, "hordec_info", info, 2, 1);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                 ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
    one_f64(b, "process_cpu_seconds_total", HORDEC_PROM_COUNTER, "User and system CPU time spent, in seconds", cpu);
    one_u64(b, "process_resident_memory_bytes", HORDEC_PROM_GAUGE, "Resident memory size in bytes", rss_bytes());
    one_u64(b, "process_open_fds", HORDEC_PROM_GAUGE, "Open file descriptors", open_fds());
    one_f64(b, "process_start_time_seconds", HORDEC_PROM_GAUGE, "Start time of the process since the Unix epoch",
            start_unix_s);

    one_u64(b, "hordec_atoms", HORDEC_PROM_GAUGE, "Atoms in the atom table", hc_atom_count());
    one_u64(b, "hordec_processes", HORDEC_PROM_GAUGE, "C processes alive", s.processes);
    one_u64(b, "hordec_process_messages_received_total", HORDEC_PROM_COUNTER, "Messages delivered to C processes",
            s.msgs_in);
    one_u64(b, "hordec_process_messages_sent_total", HORDEC_PROM_COUNTER, "Messages sent by C processes", s.msgs_out);

    one_u64(b, "hordec_peers", HORDEC_PROM_GAUGE, "Connected peers (handshake done)", s.peers);
    one_u64(b, "hordec_connections", HORDEC_PROM_GAUGE, "Distribution connections open, in any state", s.connections);
    one_u64(b, "hordec_handshakes", HORDEC_PROM_GAUGE, "Incoming connections still in their handshake", s.handshakes);
    one_u64(b, "hordec_connections_refused_total", HORDEC_PROM_COUNTER,
            "Incoming connections closed at once: a connection cap reached or descriptors exhausted", s.refused_conns);
    hordec_prom_family(b, "hordec_peer_disconnects_total", HORDEC_PROM_COUNTER,
                       "Peers this node disconnected: for malformed or oversized input (bad_input) or for not "
                       "reading their output (queue_overflow)");
    hordec_prom_label why = {"reason", "bad_input"};
    hordec_prom_sample_u64(b, "hordec_peer_disconnects_total", &why, 1, s.dropped_conns);
    why.value = "queue_overflow";
    hordec_prom_sample_u64(b, "hordec_peer_disconnects_total", &why, 1, s.queue_overflows);

    size_t np = hc_rt_peer_stats_get(rt, NULL, 0);
    hc_rt_peer_stats *ps = np ? calloc(np, sizeof *ps) : NULL;
    if (np && !ps)
        return HC_ENOMEM;
    np = ps ? hc_rt_peer_stats_get(rt, ps, np) : 0;
    if (np)
        qsort(ps, np, sizeof *ps, by_node_name);
    static const struct {
        metric m;
        int which;
    } peer_metrics[] = {
        {{"hordec_peer_messages_received_total", HORDEC_PROM_COUNTER,
          "Distribution messages received from the peer on its current connection (ticks excluded)"},
         P_MSGS_IN},
        {{"hordec_peer_messages_sent_total", HORDEC_PROM_COUNTER,
          "Distribution messages queued to the peer on its current connection"},
         P_MSGS_OUT},
        {{"hordec_peer_bytes_received_total", HORDEC_PROM_COUNTER,
          "Bytes read from the peer's current connection, handshake included"},
         P_BYTES_IN},
        {{"hordec_peer_bytes_sent_total", HORDEC_PROM_COUNTER,
          "Bytes written to the peer's current connection, handshake included"},
         P_BYTES_OUT},
        {{"hordec_peer_queued_bytes", HORDEC_PROM_GAUGE, "Bytes waiting to be written to the peer"}, P_QUEUED},
    };
    for (size_t i = 0; i < sizeof peer_metrics / sizeof *peer_metrics; i++)
        peer_family(b, ps, np, &peer_metrics[i].m, peer_metrics[i].which);
    free(ps);

    one_u64(b, "hordec_loop_iterations_total", HORDEC_PROM_COUNTER, "Event loop iterations", ls.iterations);
    one_f64(b, "hordec_loop_busy_seconds_total", HORDEC_PROM_COUNTER,
            "Time the event loop spent working (not waiting), in seconds", (double)ls.total_busy_us / 1e6);
    one_u64(b, "hordec_loop_slow_iterations_total", HORDEC_PROM_COUNTER,
            "Event loop iterations that took longer than 10 ms (each one delays every peer and timer)", ls.slow_iters);
    one_f64(b, "hordec_loop_longest_iteration_seconds", HORDEC_PROM_GAUGE,
            "The longest single event loop iteration since the start, in seconds", (double)ls.max_iter_us / 1e6);

    snap_list l = {0};
    hc_rt_foreach_proc(rt, snap_replica, &l);
    hc_buf_free(&l.scratch);
    if (l.err) {
        free(l.v);
        return l.err;
    }
    if (l.n)
        qsort(l.v, l.n, sizeof *l.v, by_kind_then_name);
    hordec_prom_family(b, "hordec_replicas", HORDEC_PROM_GAUGE, "Replicas this node hosts, by kind");
    for (int k = K_CRDT; k <= K_SUPERVISOR; k++) {
        uint64_t n = 0;
        for (size_t i = 0; i < l.n; i++)
            n += l.v[i].kind == (replica_kind)k;
        hordec_prom_label lab = {"kind", kind_names[k]};
        hordec_prom_sample_u64(b, "hordec_replicas", &lab, 1, n);
    }
    for (size_t i = 0; i < sizeof replica_metrics / sizeof *replica_metrics; i++)
        replica_family(b, &l, &replica_metrics[i].m, ALL_KINDS, replica_metrics[i].stat, replica_metrics[i].alt,
                       "replica");
    for (size_t i = 0; i < sizeof registry_metrics / sizeof *registry_metrics; i++)
        replica_family(b, &l, &registry_metrics[i].m, 1u << K_REGISTRY, registry_metrics[i].stat, -1, "registry");
    for (size_t i = 0; i < sizeof supervisor_metrics / sizeof *supervisor_metrics; i++)
        replica_family(b, &l, &supervisor_metrics[i].m, 1u << K_SUPERVISOR, supervisor_metrics[i].stat, -1,
                       "supervisor");
    free(l.v);
    return b->err;
}
