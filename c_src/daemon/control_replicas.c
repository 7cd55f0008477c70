/* control_replicas.c — starting and stopping replicas from the control process:
 *   {crdt_start, Name, Opts}      -> {ok, Pid} (also when it runs already) | {error, name_taken}
 *   {registry_start, Name, Opts}  -> {ok, Pid} | {error, {keys_mismatch, Kind}} | {error, name_taken}
 *   {supervisor_start, Name, Opts} -> {ok, Pid} | {error, name_taken}
 *   {crdt_stop, Name} | {registry_stop, Name} | {supervisor_stop, Name} -> ok | {error, not_found}
 *   {registry_demo, Reg, Key}     -> see registry_demo.h
 * Opts is a keyword list; an option that is unknown, of the wrong type or out of range is answered
 * {error, {bad_option, Opt}}, naming it, and nothing starts; a Name that is not a non-empty atom is answered
 * {error, {bad_name, Name}}. */
#include <string.h>

#include "daemon/control_req.h"
#include "hordec/hc_crdt.h"
#include "daemon/registry_demo.h"
#include "daemon/replicas.h"
#include "hordec/hc_supervisor.h"

/* The options both kinds of replica take, and the registry's `keys`. */
typedef struct replica_opts {
    uint32_t flush_interval_ms;
    size_t max_message_bytes;
    size_t stream_batch_bytes;
    uint64_t max_clock_offset_ms; /* 0: the daemon's --max-clock-offset-ms */
    hc_registry_keys keys;
} replica_opts;

typedef enum { OPT_FLUSH, OPT_MAX_MSG, OPT_BATCH, OPT_CLOCK, OPT_KEYS } opt_id;

static const struct {
    const char *name;
    int64_t min, max; /* integer options */
} opt_specs[] = {
    [OPT_FLUSH] = {"flush_interval_ms", 1, 60000},
    [OPT_MAX_MSG] = {"max_message_bytes", HC_CRDT_MIN_MESSAGE_BYTES, 1 << 30},
    [OPT_BATCH] = {"stream_batch_bytes", 256, 1 << 30},
    [OPT_CLOCK] = {"max_clock_offset_ms", 1, HORDEC_MAX_CLOCK_OFFSET_MS},
    [OPT_KEYS] = {"keys", 0, 0},
};

/* One {Name, Value} option into *o; false if it is not one this replica kind takes, with a valid value. */
static bool parse_opt(hc_span e, bool registry, replica_opts *o)
{
    static const char *const names[] = {"flush_interval_ms", "max_message_bytes", "stream_batch_bytes",
                                        "max_clock_offset_ms", "keys"};
    static const char *const kinds[] = {"unique", "duplicate"};
    size_t i = 0, which, kind;
    uint32_t arity;
    int64_t v;
    if (hc_dec_tuple_header(e.p, e.len, &i, &arity) || arity != 2 ||
        hc_dec_atom_index(e.p, e.len, &i, names, registry ? 5 : 4, &which))
        return false;
    if (which == OPT_KEYS) {
        if (hc_dec_atom_index(e.p, e.len, &i, kinds, 2, &kind) || i != e.len)
            return false;
        o->keys = kind ? HC_REGISTRY_DUPLICATE : HC_REGISTRY_UNIQUE;
        return true;
    }
    if (hc_dec_long(e.p, e.len, &i, &v) || i != e.len || v < opt_specs[which].min || v > opt_specs[which].max)
        return false;
    if (which == OPT_FLUSH)
        o->flush_interval_ms = (uint32_t)v;
    else if (which == OPT_MAX_MSG)
        o->max_message_bytes = (size_t)v;
    else if (which == OPT_CLOCK)
        o->max_clock_offset_ms = (uint64_t)v;
    else
        o->stream_batch_bytes = (size_t)v;
    return true;
}

static void reply_error_term(const control_req *c, const char *tag, const uint8_t *t, size_t len)
{
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "error");
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, tag);
    hc_enc_raw(&b, t, len);
    hc_gen_reply_buf(c->rt, c->from, &b);
    hc_buf_free(&b);
}

/* Name and Opts of a *_start request. HC_OK; HC_EDECODE (not a start request at all); or HC_EINVAL after
 * replying {error, {bad_option, Opt}}. */
static int start_args(const control_req *c, hc_req_args *a, bool registry, hc_atom *name, replica_opts *o)
{
    size_t at = a->i;
    if (hc_dec_atom(a->p, a->len, &a->i, name) || !*name) {
        hc_span bad;
        a->i = at;
        if (hc_dec_term(a->p, a->len, &a->i, &bad))
            return HC_EDECODE;
        reply_error_term(c, "bad_name", bad.p, bad.len); /* a replica's name is a non-empty atom */
        return HC_EINVAL;
    }
    at = a->i;
    hc_iter it;
    if (hc_iter_list(&it, a->p, a->len, &a->i) || !hc_req_args_done(a)) {
        reply_error_term(c, "bad_option", a->p + at, a->len - at); /* not a proper list: all of it is bad */
        return HC_EINVAL;
    }
    hc_span e;
    while (hc_iter_next(&it, &e))
        if (!parse_opt(e, registry, o)) {
            reply_error_term(c, "bad_option", e.p, e.len);
            return HC_EINVAL;
        }
    return HC_OK;
}

/* The answer to a *_start request: {ok, Pid}, {error, name_taken} or {error, Reason}. */
static int reply_started(const control_req *c, int rc, const hc_proc *p)
{
    if (rc)
        hc_gen_reply_error(c->rt, c->from, rc == HC_EEXIST ? "name_taken" : hc_err_atom(rc));
    else
        control_reply_ok_pid(c, p);
    return HC_OK;
}

int control_crdt_start(void *ctx, hc_req_args *a)
{
    const control_req *c = ctx;
    hc_atom name;
    replica_opts o = {0};
    int rc = start_args(c, a, false, &name, &o);
    if (rc)
        return rc == HC_EINVAL ? HC_OK : rc;
    hordec_crdt_opts co = {o.flush_interval_ms, o.max_message_bytes, o.stream_batch_bytes, o.max_clock_offset_ms};
    hc_proc *p;
    rc = hordec_crdt_start(c->rt, name, &co, &p);
    return reply_started(c, rc, p);
}

int control_registry_start(void *ctx, hc_req_args *a)
{
    const control_req *c = ctx;
    hc_atom name;
    replica_opts o = {0};
    int rc = start_args(c, a, true, &name, &o);
    if (rc)
        return rc == HC_EINVAL ? HC_OK : rc;
    hordec_registry_opts ro = {o.keys, o.flush_interval_ms, o.max_message_bytes, o.stream_batch_bytes,
                               o.max_clock_offset_ms};
    hc_proc *p;
    hc_registry_keys running = 0;
    rc = hordec_registry_start(c->rt, name, &ro, &p, &running);
    if (rc == HC_ESTATE) {
        hc_buf k = {0};
        hc_enc_atom_cstr(&k, running == HC_REGISTRY_DUPLICATE ? "duplicate" : "unique");
        reply_error_term(c, "keys_mismatch", k.data, k.len);
        hc_buf_free(&k);
        return HC_OK;
    }
    return reply_started(c, rc, p);
}

int control_supervisor_start(void *ctx, hc_req_args *a)
{
    const control_req *c = ctx;
    hc_atom name;
    replica_opts o = {0};
    int rc = start_args(c, a, false, &name, &o);
    if (rc)
        return rc == HC_EINVAL ? HC_OK : rc;
    hc_supervisor_replica_opts so = {o.flush_interval_ms, o.max_message_bytes, o.stream_batch_bytes,
                                     hordec_clock_offset(o.max_clock_offset_ms)};
    hc_proc *p;
    rc = hc_supervisor_replica_start(c->rt, name, &so, &p);
    return reply_started(c, rc, p);
}

static void exit_shutdown(hc_rt *rt, hc_proc *p)
{
    hc_span reason = hc_reason_shutdown();
    hc_proc_exit(rt, p, reason.p, reason.len);
}

/* Stops the replica `Name` with stop(), if is(p) says it is of the right kind. */
static int stop_replica(void *ctx, hc_req_args *a, bool (*is)(const hc_proc *), void (*stop)(hc_rt *, hc_proc *))
{
    const control_req *c = ctx;
    hc_atom name;
    if (hc_dec_atom(a->p, a->len, &a->i, &name) || !hc_req_args_done(a))
        return HC_EDECODE;
    hc_proc *p = hc_proc_whereis(c->rt, name);
    if (!is(p)) {
        hc_gen_reply_error(c->rt, c->from, "not_found");
        return HC_OK;
    }
    stop(c->rt, p);
    hc_gen_reply_atom(c->rt, c->from, "ok");
    return HC_OK;
}

int control_crdt_stop(void *ctx, hc_req_args *a) { return stop_replica(ctx, a, hordec_is_crdt, exit_shutdown); }
int control_registry_stop(void *ctx, hc_req_args *a) { return stop_replica(ctx, a, hordec_is_registry, exit_shutdown); }
/* {supervisor_stop, Name}: its C workers are stopped and handed over first (hc_supervisor_replica_stop). */
int control_supervisor_stop(void *ctx, hc_req_args *a)
{
    return stop_replica(ctx, a, hc_supervisor_replica_is, hc_supervisor_replica_stop);
}

int control_registry_demo(void *ctx, hc_req_args *a)
{
    const control_req *c = ctx;
    hc_atom reg;
    hc_span key;
    if (hc_dec_atom(a->p, a->len, &a->i, &reg) || !reg || hc_dec_term(a->p, a->len, &a->i, &key) ||
        !hc_req_args_done(a))
        return HC_EDECODE;
    int rc = hordec_registry_demo(c->rt, reg, key.p, key.len, c->from); /* the demo process replies itself */
    if (rc)
        hc_gen_reply_error(c->rt, c->from, hc_err_atom(rc));
    return HC_OK;
}
