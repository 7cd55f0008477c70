/* supervisor_rt.c — supervisor replicas as C processes of a runtime (hc_supervisor.h, "Running a replica"): the
 * host around the core, the C-worker actions carried out with the runtime's worker types (hc_worker.h), and the
 * graceful stop that hands C workers over when the node goes. */
#include "hordec/hc_supervisor.h"

#include <openssl/rand.h>
#include <string.h>

#include "hordec/hc_log.h"
#include "hordec/hc_worker.h"
#include "host/host_rt.h"

#define MAX_SUPERVISORS 256

/* The term a replica's core takes as "stop gracefully" (hc_supervisor_core_shutdown): the atom shutdown. */
static const uint8_t shutdown[] = {119, 8, 's', 'h', 'u', 't', 'd', 'o', 'w', 'n'};

/* The replicas started in this process, per runtime (by pid: a name can be reused by a later replica). Loop
 * thread only, like everything that touches a runtime. */
static struct {
    const hc_rt *rt;
    hc_atom name;
    hc_pid pid;
} sups[MAX_SUPERVISORS];

bool hc_supervisor_replica_is(const hc_proc *p) { return hc_host_rt_kind(p) == &hc_supervisor_core_ops; }

static uint64_t fresh_id(void)
{
    uint64_t id = 0;
    while (!id && RAND_bytes((unsigned char *)&id, sizeof id) == 1)
        ;
    return id;
}

/* {worker_started, Op, Result} */
static void enc_result_head(hc_buf *r, uint64_t op)
{
    hc_enc_tuple_header(r, 3);
    hc_enc_atom_cstr(r, "worker_started");
    hc_enc_ulong(r, op);
}

/* {start_worker, Op, Type, Arg} -> {worker_started, Op, {ok, Pid} | ignore | {error, Reason}} */
static void start_worker(hc_rt *rt, const uint8_t *a, size_t len, size_t i, hc_buf *result)
{
    uint64_t op;
    hc_span type, arg;
    if (hc_dec_ulong(a, len, &i, &op) || hc_dec_binary(a, len, &i, &type) || hc_dec_term(a, len, &i, &arg) || i != len)
        return;
    hc_proc *p = NULL;
    hc_buf reason = {0};
    int rc = hc_worker_start(rt, (const char *)type.p, type.len, arg.p, arg.len, &p, &reason);
    enc_result_head(result, op);
    if (rc == HC_OK && p) {
        hc_enc_tuple_header(result, 2);
        hc_enc_atom_cstr(result, "ok");
        hc_enc_pid(result, hc_proc_pid(p));
    } else if (rc == HC_WORKER_IGNORE) {
        hc_enc_atom_cstr(result, "ignore");
    } else {
        hc_enc_tuple_header(result, 2);
        hc_enc_atom_cstr(result, "error");
        if (reason.len && !reason.err)
            hc_buf_append(result, reason.data, reason.len);
        else
            hc_enc_atom_cstr(result, hc_err_atom(rc));
    }
    hc_buf_free(&reason);
}

/* {stop_worker, Pid, Reason} */
static void stop_worker(hc_rt *rt, const uint8_t *a, size_t len, size_t i)
{
    hc_pid pid;
    hc_span reason;
    if (hc_dec_pid(a, len, &i, &pid) || hc_dec_term(a, len, &i, &reason) || i != len)
        return;
    hc_proc *p = hc_proc_lookup(rt, &pid);
    if (p)
        hc_worker_stop(rt, p, reason.p, reason.len);
}

static void on_local(hc_rt *rt, hc_proc *self, const uint8_t *a, size_t len, hc_buf *result, void *ud)
{
    size_t i = 0;
    uint32_t arity;
    if (hc_dec_tuple_header(a, len, &i, &arity))
        return;
    if (arity == 4 && hc_dec_is_atom(a, len, &i, "start_worker"))
        start_worker(rt, a, len, i, result);
    else if (arity == 3 && hc_dec_is_atom(a, len, &i, "stop_worker"))
        stop_worker(rt, a, len, i);
    (void)self, (void)ud;
}

static void remember(const hc_rt *rt, hc_atom name, const hc_proc *p)
{
    size_t slot = MAX_SUPERVISORS;
    for (size_t i = 0; i < MAX_SUPERVISORS; i++) {
        if (sups[i].rt == rt && sups[i].name == name) {
            slot = i;
            break;
        }
        if (slot == MAX_SUPERVISORS && !sups[i].name)
            slot = i;
    }
    if (slot == MAX_SUPERVISORS) /* full: forget the oldest entry (its replica may be long gone) */
        slot = 0;
    sups[slot].rt = rt;
    sups[slot].name = name;
    sups[slot].pid = *hc_proc_pid(p);
}

int hc_supervisor_replica_start(hc_rt *rt, hc_atom name, const hc_supervisor_replica_opts *opts, hc_proc **out)
{
    hc_proc *existing = hc_proc_whereis(rt, name);
    if (existing) {
        if (!hc_supervisor_replica_is(existing))
            return HC_EEXIST;
        *out = existing;
        return HC_OK;
    }
    uint64_t id = fresh_id();
    if (!id)
        return HC_ENOMEM;
    hc_supervisor_config cfg;
    hc_supervisor_config_init(&cfg, name, hc_rt_node(rt), id);
    const hc_worker_type *types[64];
    const char *type_names[64];
    size_t nt = hc_worker_types(rt, types, 64);
    nt = nt < 64 ? nt : 64; /* at most 64 are advertised (the core's limit) */
    for (size_t i = 0; i < nt; i++)
        type_names[i] = types[i]->name;
    cfg.worker_types = type_names;
    cfg.n_worker_types = nt;
    if (opts && opts->flush_interval_ms)
        cfg.crdt.flush_interval_ms = opts->flush_interval_ms;
    if (opts && opts->max_message_bytes)
        cfg.crdt.max_message_bytes = opts->max_message_bytes;
    if (opts && opts->max_clock_offset_ms)
        cfg.crdt.max_clock_offset_ms = opts->max_clock_offset_ms;
    void *core;
    int rc = hc_supervisor_core_new(&cfg, hc_host_rt_now(rt), &core);
    if (rc)
        return rc;
    hc_host_rt_opts ho = {.stream_batch_bytes = opts ? opts->stream_batch_bytes : 0, .local = on_local};
    hc_proc *p;
    rc = hc_host_rt_start(rt, name, &hc_supervisor_core_ops, core, &ho, &p);
    if (rc)
        return rc;
    hc_supervisor_core_set_self(core, hc_proc_pid(p));
    remember(rt, name, p);
    *out = p;
    return HC_OK;
}

void hc_supervisor_replica_stop(hc_rt *rt, hc_proc *p)
{
    if (!hc_supervisor_replica_is(p) || !hc_proc_alive(p))
        return;
    hc_host_rt_local(rt, p, shutdown, sizeof shutdown); /* its workers stop; their records are handed over */
    hc_span reason = hc_reason_shutdown();
    hc_proc_exit(rt, p, reason.p, reason.len);
}

static bool all_flushed(hc_rt *rt)
{
    for (size_t i = 0; i < MAX_SUPERVISORS; i++) {
        hc_proc *p = sups[i].rt == rt && sups[i].name ? hc_proc_lookup(rt, &sups[i].pid) : NULL;
        void *core = hc_supervisor_replica_is(p) ? hc_host_rt_core(p) : NULL;
        if (core && !hc_supervisor_core_flushed(core))
            return false;
    }
    return true;
}

void hc_supervisor_replicas_shutdown(hc_rt *rt, uint32_t max_wait_ms)
{
    size_t n = 0;
    for (size_t i = 0; i < MAX_SUPERVISORS; i++) {
        hc_proc *p = sups[i].rt == rt && sups[i].name ? hc_proc_lookup(rt, &sups[i].pid) : NULL;
        if (hc_supervisor_replica_is(p)) {
            hc_host_rt_local(rt, p, shutdown, sizeof shutdown);
            n++;
        }
    }
    if (!n)
        return;
    uint64_t until = hc_rt_now_ms(rt) + max_wait_ms;
    while (hc_rt_now_ms(rt) < until && !all_flushed(rt))
        if (hc_rt_run_once(rt, 20) < 0)
            break;
    hc_log_info("%zu supervisor replica(s) handed their children over%s", n,
                all_flushed(rt) ? "" : " (not every peer acknowledged in time)");
}
