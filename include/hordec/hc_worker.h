/* hc_worker.h — C workers: C processes with a gen_server-like behaviour, started by worker TYPE name.
 *
 * A worker type is a named set of callbacks registered with a runtime ("echo", "kv", a program's own). A
 * worker is a C process (hc_runtime.h) running one type: it has a pid, answers GenServer.call/cast and plain
 * messages from any node, can be monitored, linked and registered, and is what the distributed supervisor
 * (hc_supervisor.h) starts on a hordec node when an Elixir client asks for {HordeC.CWorker, type: ..., arg: ...}.
 *
 *     static int counter_init(hc_worker *w, const uint8_t *arg, size_t len, void **state, hc_buf *reason);
 *     static void counter_call(hc_worker *w, void *state, const hc_gen_from *from, const uint8_t *req, size_t len);
 *     static void counter_terminate(hc_worker *w, void *state, const uint8_t *reason, size_t len);
 *     static const hc_worker_type counter = {.name = "counter", .init = counter_init,
 *                                            .handle_call = counter_call, .terminate = counter_terminate};
 *     hc_worker_type_register(rt, &counter);
 *     ...
 *     hc_proc *p;
 *     hc_buf why = {0};
 *     int rc = hc_worker_start(rt, "counter", 7, arg, arg_len, &p, &why); // HC_OK: p runs; else see `why`
 *
 * The conventions of hc_runtime.h hold here too (loop thread only, terms are ETF without the version byte,
 * spans handed to a callback are valid during it, spans passed in are copied). In particular a worker's
 * callbacks never run inside another process's callback, except where a function below says it runs them
 * synchronously (hc_worker_stop).
 *
 * Life of a worker, as gen_server's:
 *   - init runs inside hc_worker_start. Success: the worker runs. Failure or "ignore": the process exits
 *     (with init's reason, or normal for ignore), terminate is NOT called and no exit observer is told;
 *     init must free whatever it allocated.
 *   - handle_call / handle_cast / handle_info for each request ({'$gen_call', ...}), cast ({'$gen_cast', Msg})
 *     and other message. A monitor the worker holds arrives in handle_info as {'DOWN', Ref, process, Pid, Reason}
 *     ({Name, Node} instead of Pid when monitored by name); while trapping exits (hc_worker_set_trap_exit), an
 *     exit signal arrives as {'EXIT', From, Reason}.
 *   - Workers do NOT trap exits by default: an exit signal (a broken link, or exit/2 from any node) with a reason
 *     other than normal ends the worker with that reason, and `kill` always ends it with `killed`.
 *   - terminate runs exactly once for a worker whose init succeeded, however it ends: a return from a callback
 *     after hc_worker_exit, an exit signal, hc_worker_stop, hc_proc_exit, or hc_rt_free (reason shutdown). It
 *     frees the state. Links and monitors see the same reason; an exit observer (hc_worker_opts, hc_worker_watch)
 *     is then told, once.
 *   - An exit asked for during a callback takes effect when the callback returns, so a callback never sees its
 *     own state freed under it. */
#ifndef HORDEC_HC_WORKER_H
#define HORDEC_HC_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hordec/hc_common.h"
#include "hordec/hc_export.h"
#include "hordec/hc_runtime.h"
#include "hordec/hc_term.h"

HC_BEGIN_DECLS

/* A running worker: what its callbacks get. Valid from init until its terminate returns (the exit observer gets
 * the pid, not the worker); hc_worker_of() finds it from its process. */
typedef struct hc_worker hc_worker;

/* What an init callback returns to say "do not start, and this is not an error" (gen_server's `ignore`), and
 * what hc_worker_start then returns. Positive: it is not an HC_E* code. */
#define HC_WORKER_IGNORE 1

/* The longest worker type name, in bytes. */
#define HC_WORKER_TYPE_NAME_MAX 255

typedef struct hc_worker_type {
    /* The type's name, unique per runtime: 1..HC_WORKER_TYPE_NAME_MAX bytes (UTF-8 by convention; clients name
     * it with a binary). */
    const char *name;
    /* Starts a worker with argument `arg` (a term). Returns HC_OK with the worker's state in *state; or
     * HC_WORKER_IGNORE; or an HC_E* code after appending the error reason term to `reason` (left empty, the
     * reason is the code's atom, see hc_err_atom). On anything but HC_OK, init has freed what it allocated.
     * NULL: the state is NULL. */
    int (*init)(hc_worker *w, const uint8_t *arg, size_t len, void **state, hc_buf *reason);
    /* A GenServer.call. Reply with hc_gen_reply(hc_worker_rt(w), from, ...), now or later (then keep a copy
     * made with hc_gen_from_copy). NULL: every call is answered {error, {unknown_call, Request}}. */
    void (*handle_call)(hc_worker *w, void *state, const hc_gen_from *from, const uint8_t *req, size_t len);
    /* A GenServer.cast: `msg` is Msg of {'$gen_cast', Msg}. NULL: casts are dropped. */
    void (*handle_cast)(hc_worker *w, void *state, const uint8_t *msg, size_t len);
    /* Any other message (see above for DOWN and EXIT). NULL: dropped. */
    void (*handle_info)(hc_worker *w, void *state, const uint8_t *msg, size_t len);
    /* The worker is ending with `reason`: free the state. Always called once for a started worker. The worker
     * can still send and reply from here; timers it owned and further exits are no longer possible. */
    void (*terminate)(hc_worker *w, void *state, const uint8_t *reason, size_t len);
} hc_worker_type;

/* ------------------------------------------------------------------ types */

/* Registers a worker type with the runtime. `t` is borrowed, not copied: it (and its name) must outlive the
 * runtime, as a static const does. HC_OK; HC_EEXIST if a type of that name is registered; HC_EINVAL for a
 * NULL type or a name that is NULL, empty or longer than HC_WORKER_TYPE_NAME_MAX; HC_ENOMEM. */
int hc_worker_type_register(hc_rt *rt, const hc_worker_type *t);
/* The type named by `len` bytes at `name`, or NULL. */
const hc_worker_type *hc_worker_type_find(const hc_rt *rt, const char *name, size_t len);
/* The registered types, in registration order: returns how many there are and writes at most `max`. */
size_t hc_worker_types(const hc_rt *rt, const hc_worker_type **out, size_t max);

/* ------------------------------------------------------------------ starting and stopping */

/* Told when a worker has ended and why: once, after terminate, for every ending of a started worker. `pid` and
 * `reason` are valid during the call. It runs on the loop thread: inside hc_worker_stop when that stopped the
 * worker, else when the ending was processed (after the callback that asked for it, on the loop turn that
 * delivered the exit signal, inside hc_proc_exit or hc_rt_free). It may call anything of the runtime, start
 * workers included. */
typedef void (*hc_worker_exit_cb)(hc_rt *rt, const hc_pid *pid, const uint8_t *reason, size_t len, void *ud);

typedef struct hc_worker_opts {
    hc_worker_exit_cb on_exit; /* NULL: nobody is told (links and monitors still are) */
    void *ud;                  /* given to on_exit; the caller's, never freed here */
    hc_atom name;              /* not 0: the worker is registered under this name before init runs */
} hc_worker_opts;

/* Starts a worker of the type named by `type_len` bytes at `type`, giving init `arg` (exactly one term,
 * valid during init only: init copies what it keeps). init runs before this returns. Results:
 *   HC_OK             *out is the running worker's process (its pid: hc_proc_pid);
 *   HC_WORKER_IGNORE  init said ignore: *out is NULL, nothing runs;
 *   an HC_E* code     *out is NULL, and when `reason` is not NULL the reason term is appended to it:
 *                     {unknown_worker_type, TypeBinary} (HC_EINVAL) for a type not registered; badarg (HC_EINVAL)
 *                     when `arg` is not exactly one well-formed term; {already_started, Pid} (HC_EEXIST) when
 *                     opts->name is taken; init's reason (init's code) when init failed; the exit reason
 *                     (HC_ESTATE) when init succeeded but asked to exit (terminate then ran); the code's atom
 *                     (hc_err_atom) for HC_ENOMEM, HC_EBUSY (the process table is full) and HC_ESTATE (called
 *                     once hc_rt_free has begun, from a terminate or an observer).
 * `reason` may be NULL. `out` may be NULL. opts may be NULL (hc_worker_start is this with NULL opts). */
int hc_worker_start(hc_rt *rt, const char *type, size_t type_len, const uint8_t *arg, size_t arg_len, hc_proc **out,
                    hc_buf *reason);
int hc_worker_start_with(hc_rt *rt, const char *type, size_t type_len, const uint8_t *arg, size_t arg_len,
                         const hc_worker_opts *opts, hc_proc **out, hc_buf *reason);

/* Stops a worker as a supervisor does: terminate(reason) runs, then the process exits with `reason` (links and
 * monitors see it), then the exit observer is told, all before this returns. Called from inside one of the
 * worker's own callbacks it acts as hc_worker_exit (the stop happens when the callback returns). HC_OK, or
 * HC_EINVAL (nothing done) when p is NULL, has exited, or is not a worker. `reason` is copied; an empty one
 * (NULL or 0 bytes) means normal. */
int hc_worker_stop(hc_rt *rt, hc_proc *p, const uint8_t *reason, size_t len);

/* Sets (cb not NULL) or clears (cb NULL) the exit observer of worker process p, replacing any set before, e.g.
 * when whoever watches goes away before the worker does. HC_OK, or HC_EINVAL when p is not a live worker. */
int hc_worker_watch(hc_proc *p, hc_worker_exit_cb cb, void *ud);

/* ------------------------------------------------------------------ inside callbacks */

/* The worker's runtime, process, pid (the pid stays valid through terminate and the exit observer), and type. */
hc_rt *hc_worker_rt(const hc_worker *w);
hc_proc *hc_worker_proc(const hc_worker *w);
const hc_pid *hc_worker_pid(const hc_worker *w);
const hc_worker_type *hc_worker_get_type(const hc_worker *w);
/* The worker running in process p, or NULL when p is NULL, has exited or is not a worker. */
hc_worker *hc_worker_of(const hc_proc *p);

/* Ends the worker with `reason` (copied; empty means normal): from inside one of its callbacks (init included),
 * when that callback returns, so a handle_call can reply first, then stop; from anywhere else (a timer of its
 * process, another process), at once, as hc_worker_stop. A second request before the first takes effect
 * replaces its reason. A no-op once the worker has ended (from terminate, say). */
void hc_worker_exit(hc_worker *w, const uint8_t *reason, size_t len);

/* Turns exit trapping on or off (off at start): while on, exit signals other than `kill` become
 * {'EXIT', From, Reason} messages for handle_info instead of ending the worker. */
void hc_worker_set_trap_exit(hc_worker *w, bool on);

HC_END_DECLS
#endif
