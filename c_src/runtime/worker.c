/* worker.c — C workers (hc_worker.h): the per-runtime table of worker types, and a worker process that turns
 * the runtime's process callbacks into gen_server-like ones.
 *
 * The one subtle part is the lifetime of the worker's state. The runtime runs on_terminate synchronously
 * inside hc_proc_exit, and a callback could trigger that on its own process (hc_worker_stop on itself,
 * hc_proc_exit). Running the type's terminate there would free the state under the callback still using it,
 * so every call into the type goes through enter()/leave(): an exit asked for, or a termination that happened,
 * while inside a callback is only recorded, and carried out by leave() once the callback has returned. */
#include <stdlib.h>
#include <string.h>

#include "hordec/hc_worker.h"
#include "runtime/rt_internal.h"

struct hc_worker {
    hc_rt *rt;
    hc_proc *proc;
    hc_pid pid; /* a copy: valid through terminate and the observer */
    const hc_worker_type *type;
    void *state;
    hc_worker_exit_cb on_exit;
    void *ud;
    bool started;     /* init succeeded: terminate is owed */
    bool in_callback; /* inside one of the type's callbacks (or init) */
    bool exit_asked;  /* hc_worker_exit during a callback: exit with `pending` when it returns */
    bool ended;       /* the process has exited during a callback: finish with `pending` when it returns */
    hc_buf pending;   /* the reason for exit_asked / ended */
};

/* The reason used when a reason could not be copied: the atom enomem. */
static const uint8_t atom_enomem[] = {119, 6, 'e', 'n', 'o', 'm', 'e', 'm'};

/* ------------------------------------------------------------------ types */

int hc_worker_type_register(hc_rt *rt, const hc_worker_type *t)
{
    if (!t || !t->name)
        return HC_EINVAL;
    size_t len = strlen(t->name);
    if (len == 0 || len > HC_WORKER_TYPE_NAME_MAX)
        return HC_EINVAL;
    if (hc_worker_type_find(rt, t->name, len))
        return HC_EEXIST;
    if (hc_array_reserve((void **)&rt->wtypes, &rt->capwtypes, rt->nwtypes + 1, sizeof *rt->wtypes, 8))
        return HC_ENOMEM;
    rt->wtypes[rt->nwtypes++] = t;
    return HC_OK;
}

/* A linear search: a runtime has a handful of types, and a start costs far more than this. */
const hc_worker_type *hc_worker_type_find(const hc_rt *rt, const char *name, size_t len)
{
    if (!name && len)
        return NULL;
    for (size_t i = 0; i < rt->nwtypes; i++) {
        const char *n = rt->wtypes[i]->name;
        if (strlen(n) == len && memcmp(n, name, len) == 0)
            return rt->wtypes[i];
    }
    return NULL;
}

size_t hc_worker_types(const hc_rt *rt, const hc_worker_type **out, size_t max)
{
    for (size_t i = 0; i < rt->nwtypes && i < max; i++)
        out[i] = rt->wtypes[i];
    return rt->nwtypes;
}

/* ------------------------------------------------------------------ ending */

/* The worker's process has exited with `reason`: terminate, tell the observer, free. */
static void finish(hc_worker *w, const uint8_t *reason, size_t len)
{
    if (w->started && w->type->terminate)
        w->type->terminate(w, w->state, reason, len);
    if (w->started && w->on_exit)
        w->on_exit(w->rt, &w->pid, reason, len, w->ud);
    hc_buf_free(&w->pending);
    free(w);
}

static void set_pending(hc_worker *w, const uint8_t *reason, size_t len)
{
    hc_buf_reset(&w->pending);
    hc_buf_append(&w->pending, reason, len);
}

/* The pending reason, moved out of the worker: finish() frees the worker while hc_proc_exit still uses it. */
static hc_buf take_pending(hc_worker *w)
{
    hc_buf b = w->pending;
    w->pending = (hc_buf){0};
    return b;
}

/* What a pending reason says, or the atom enomem if it could not be kept. */
static hc_span pending_span(const hc_buf *b)
{
    if (b->err || !b->len)
        return (hc_span){atom_enomem, sizeof atom_enomem};
    return (hc_span){b->data, b->len};
}

static void enter(hc_worker *w) { w->in_callback = true; }

/* After a callback: carry out the exit it asked for, or finish the ending that happened under it. Either way
 * the worker is freed; nothing may touch it after this returns. */
static void leave(hc_worker *w)
{
    w->in_callback = false;
    if (!w->ended && !w->exit_asked)
        return;
    bool ended = w->ended;
    hc_buf pending = take_pending(w);
    hc_span r = pending_span(&pending);
    w->exit_asked = w->ended = false;
    if (ended)
        finish(w, r.p, r.len);
    else
        hc_proc_exit(w->rt, w->proc, r.p, r.len); /* on_terminate -> finish(), synchronously */
    hc_buf_free(&pending);
}

/* ------------------------------------------------------------------ the process */

static void w_call(hc_rt *rt, hc_proc *self, const hc_gen_from *from, const uint8_t *req, size_t len)
{
    hc_worker *w = hc_proc_state(self);
    if (!w->type->handle_call) {
        hc_buf b = {0};
        hc_enc_tuple_header(&b, 2);
        hc_enc_atom_cstr(&b, "error");
        hc_enc_tuple_header(&b, 2);
        hc_enc_atom_cstr(&b, "unknown_call");
        hc_enc_raw(&b, req, len);
        hc_gen_reply_buf(rt, from, &b);
        hc_buf_free(&b);
        return;
    }
    enter(w);
    w->type->handle_call(w, w->state, from, req, len);
    leave(w);
}

static void info(hc_worker *w, const uint8_t *msg, size_t len)
{
    if (!w->type->handle_info)
        return;
    enter(w);
    w->type->handle_info(w, w->state, msg, len);
    leave(w);
}

static void w_message(hc_rt *rt, hc_proc *self, const hc_pid *from, const uint8_t *msg, size_t len)
{
    hc_worker *w = hc_proc_state(self);
    size_t i = 0;
    uint32_t arity;
    hc_span cast;
    /* {'$gen_cast', Msg} is a cast only when it is exactly that: anything else is info, as in gen_server. */
    if (!hc_dec_tuple_header(msg, len, &i, &arity) && arity == 2 && hc_dec_is_atom(msg, len, &i, "$gen_cast") &&
        !hc_dec_term(msg, len, &i, &cast) && i == len) {
        if (w->type->handle_cast) {
            enter(w);
            w->type->handle_cast(w, w->state, cast.p, cast.len);
            leave(w);
        }
    } else {
        info(w, msg, len);
    }
    (void)rt, (void)from;
}

/* {'DOWN', Ref, process, Pid | {Name, Node}, Reason} */
static void w_down(hc_rt *rt, hc_proc *self, const hc_down *d)
{
    hc_worker *w = hc_proc_state(self);
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 5);
    hc_enc_atom_cstr(&b, "DOWN");
    hc_enc_ref(&b, &d->ref);
    hc_enc_atom_cstr(&b, "process");
    if (d->pid) {
        hc_enc_pid(&b, d->pid);
    } else {
        hc_enc_tuple_header(&b, 2);
        hc_enc_atom(&b, d->name);
        hc_enc_atom(&b, d->node);
    }
    hc_enc_raw(&b, d->reason.p, d->reason.len);
    if (!b.err)
        info(w, b.data, b.len);
    hc_buf_free(&b);
    (void)rt;
}

/* {'EXIT', From, Reason}: only while trapping exits. */
static void w_exit_signal(hc_rt *rt, hc_proc *self, const hc_exit_info *e)
{
    hc_worker *w = hc_proc_state(self);
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 3);
    hc_enc_atom_cstr(&b, "EXIT");
    hc_enc_pid(&b, &e->from);
    hc_enc_raw(&b, e->reason.p, e->reason.len);
    if (!b.err)
        info(w, b.data, b.len);
    hc_buf_free(&b);
    (void)rt;
}

static void w_terminate(hc_rt *rt, hc_proc *self, const uint8_t *reason, size_t len)
{
    hc_worker *w = hc_proc_state(self);
    if (w->in_callback) { /* ended under a callback of ours: leave() finishes */
        w->ended = true;
        set_pending(w, reason, len);
        return;
    }
    finish(w, reason, len);
    (void)rt;
}

static const hc_proc_ops worker_ops = {
    .on_message = w_message,
    .on_call = w_call,
    .on_down = w_down,
    .on_exit_signal = w_exit_signal,
    .on_terminate = w_terminate,
};

/* ------------------------------------------------------------------ starting and stopping */

/* A reason that is an atom (reason may be NULL: the caller does not want one). */
static void put_atom(hc_buf *reason, const char *name)
{
    if (reason)
        hc_enc_atom_cstr(reason, name);
}

int hc_worker_start(hc_rt *rt, const char *type, size_t type_len, const uint8_t *arg, size_t arg_len, hc_proc **out,
                    hc_buf *reason)
{
    return hc_worker_start_with(rt, type, type_len, arg, arg_len, NULL, out, reason);
}

int hc_worker_start_with(hc_rt *rt, const char *type, size_t type_len, const uint8_t *arg, size_t arg_len,
                         const hc_worker_opts *opts, hc_proc **out, hc_buf *reason)
{
    if (out)
        *out = NULL;
    if (rt->post_closed) { /* hc_rt_free has begun: a new worker would outlive the runtime */
        put_atom(reason, hc_err_atom(HC_ESTATE));
        return HC_ESTATE;
    }
    const hc_worker_type *t = hc_worker_type_find(rt, type, type_len);
    if (!t) {
        if (reason) {
            hc_enc_tuple_header(reason, 2);
            hc_enc_atom_cstr(reason, "unknown_worker_type");
            hc_enc_binary(reason, type, type ? type_len : 0);
        }
        return HC_EINVAL;
    }
    size_t i = 0;
    if (!arg || hc_dec_skip(arg, arg_len, &i) || i != arg_len) {
        put_atom(reason, "badarg");
        return HC_EINVAL;
    }

    hc_worker *w = calloc(1, sizeof *w);
    if (!w) {
        put_atom(reason, hc_err_atom(HC_ENOMEM));
        return HC_ENOMEM;
    }
    w->rt = rt;
    w->type = t;
    hc_atom name = opts ? opts->name : 0;
    int rc = hc_proc_spawn(rt, &worker_ops, w, name, &w->proc);
    if (rc) {
        free(w);
        hc_proc *holder = rc == HC_EEXIST ? hc_proc_whereis(rt, name) : NULL;
        if (holder && reason) {
            hc_enc_tuple_header(reason, 2);
            hc_enc_atom_cstr(reason, "already_started");
            hc_enc_pid(reason, hc_proc_pid(holder));
        } else {
            put_atom(reason, hc_err_atom(rc));
        }
        return rc;
    }
    w->pid = *hc_proc_pid(w->proc);

    /* init runs as a callback: an exit it asks for is carried out below, not under it. */
    hc_buf why = {0};
    void *state = NULL;
    enter(w);
    rc = t->init ? t->init(w, arg, arg_len, &state, &why) : HC_OK;
    w->in_callback = false;
    if (rc == HC_OK) {
        w->state = state;
        w->started = true;
    }
    if (rc == HC_OK && (w->exit_asked || w->ended)) {
        /* init succeeded but its worker was asked to end (or was ended) meanwhile: the start fails with that
         * reason, and terminate frees what init made (leave() carries the ending out). */
        hc_span r = pending_span(&w->pending);
        if (reason)
            hc_buf_append(reason, r.p, r.len);
        leave(w);
        hc_buf_free(&why);
        return HC_ESTATE;
    }
    if (rc != HC_OK) {
        /* Failed or ignored: the process exits (links init made see why), with no terminate and no observer. */
        bool ignore = rc == HC_WORKER_IGNORE;
        if (!ignore && rc > 0)
            rc = HC_EINVAL; /* not a code init may return */
        if (!ignore && !why.len && !why.err)
            hc_enc_atom_cstr(&why, hc_err_atom(rc));
        hc_span r = ignore ? hc_reason_normal() : pending_span(&why);
        if (!ignore && reason)
            hc_buf_append(reason, r.p, r.len);
        if (w->ended) { /* init ended its own process: its on_terminate was deferred to here */
            hc_buf_free(&w->pending);
            free(w);
        } else {
            hc_proc_exit(rt, w->proc, r.p, r.len); /* started is false: finish() only frees */
        }
        hc_buf_free(&why);
        return ignore ? HC_WORKER_IGNORE : rc;
    }
    hc_buf_free(&why);
    if (opts) {
        w->on_exit = opts->on_exit;
        w->ud = opts->ud;
    }
    if (out)
        *out = w->proc;
    return HC_OK;
}

hc_worker *hc_worker_of(const hc_proc *p)
{
    if (!hc_proc_alive(p) || hc_proc_get_ops(p) != &worker_ops)
        return NULL;
    return hc_proc_state(p);
}

/* An empty reason means normal. */
static hc_span reason_or_normal(const uint8_t *reason, size_t len)
{
    return reason && len ? (hc_span){reason, len} : hc_reason_normal();
}

int hc_worker_stop(hc_rt *rt, hc_proc *p, const uint8_t *reason, size_t len)
{
    hc_worker *w = hc_worker_of(p);
    if (!w)
        return HC_EINVAL;
    hc_span r = reason_or_normal(reason, len);
    reason = r.p;
    len = r.len;
    if (w->in_callback) { /* the worker stops itself: not under its own callback */
        hc_worker_exit(w, reason, len);
        return HC_OK;
    }
    hc_proc_exit(rt, p, reason, len); /* terminate and the observer run inside */
    return HC_OK;
}

int hc_worker_watch(hc_proc *p, hc_worker_exit_cb cb, void *ud)
{
    hc_worker *w = hc_worker_of(p);
    if (!w || !w->started)
        return HC_EINVAL;
    w->on_exit = cb;
    w->ud = cb ? ud : NULL;
    return HC_OK;
}

/* ------------------------------------------------------------------ inside callbacks */

hc_rt *hc_worker_rt(const hc_worker *w) { return w->rt; }
hc_proc *hc_worker_proc(const hc_worker *w) { return w->proc; }
const hc_pid *hc_worker_pid(const hc_worker *w) { return &w->pid; }
const hc_worker_type *hc_worker_get_type(const hc_worker *w) { return w->type; }

void hc_worker_exit(hc_worker *w, const uint8_t *reason, size_t len)
{
    if (!hc_proc_alive(w->proc) || w->ended)
        return;
    hc_span r = reason_or_normal(reason, len);
    reason = r.p;
    len = r.len;
    if (w->in_callback) {
        w->exit_asked = true;
        set_pending(w, reason, len);
        return;
    }
    hc_proc_exit(w->rt, w->proc, reason, len); /* terminate and the observer run inside */
}

void hc_worker_set_trap_exit(hc_worker *w, bool on) { hc_proc_set_trap_exit(w->proc, on); }
