/* kvstore — a key-value store with expiry running as a C process in a C node: an example of HordeC's
 * public API (include/hordec/), built against an installed libhordec (see README.md next to this file).
 *
 *   kvstore --name kv@127.0.0.1 --cookie SECRET [--connect NODE]... [--register NAME] [--port N]
 *           [--supervisor NAME]... [--quit-on-eof]
 *
 * starts a node, joins a cluster by connecting to every --connect node, and runs one process registered
 * as `kvstore` (or NAME) that answers GenServer calls:
 *
 *   {put, Key, Value, TtlMs}  -> ok             TtlMs: milliseconds > 0, or infinity
 *   {get, Key}                -> {ok, Value} | not_found
 *   {delete, Key}             -> ok
 *   keys                      -> [Key]
 *   subscribe                 -> ok             the caller then receives {kvstore_expired, Key} whenever a
 *                                               key expires, until it exits
 *   {start_worker, Type, Arg} -> {ok, Pid} | ignore | {error, Reason}
 *                                               starts a C worker of a type this program registered
 *   anything else             -> {error, badarg}
 *
 * e.g. from Elixir: GenServer.call({:kvstore, :"kv@127.0.0.1"}, {:put, "k", 42, 1000}).
 *
 * It also registers a worker type of its own (hc_worker.h), "counter", so that the node can run counters
 * as C workers (started with start_worker above, or by a supervisor):
 *
 *   init(N)  N an integer: the count starts at N; anything else: {error, {not_an_integer, Arg}}
 *   incr     -> N + 1, the new count
 *   get      -> N
 *   anything else -> {error, badarg}
 *
 * With --supervisor NAME (repeatable) the node also hosts a replica of the distributed dynamic supervisor
 * NAME (hc_supervisor.h), as `hordec --supervisor NAME` does: HordeC.DynamicSupervisor clients attach to it
 * like to a hordec node, placement can choose it for C workers of the types this program registered
 * ({HordeC.CWorker, type: "counter", arg: 5} runs here), and on SIGINT/SIGTERM it hands its workers over to
 * the other members before the node goes.
 *
 * Keys and values are any terms, kept as their external-format bytes; keys are compared by those bytes
 * (the BEAM encodes equal terms alike). Expiry uses the process's own timers, which the runtime cancels
 * when the process exits. The store is a plain array searched linearly: this is an example, not a
 * database. It prints "kvstore ready node=NAME port=PORT" on stdout once it listens, logs node events on
 * stderr, and stops on SIGINT or SIGTERM, or when stdin closes if --quit-on-eof is given (useful when
 * another program runs it). */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hordec/hc_common.h"
#include "hordec/hc_log.h"
#include "hordec/hc_runtime.h"
#include "hordec/hc_supervisor.h"
#include "hordec/hc_term.h"
#include "hordec/hc_worker.h"

#define MAX_TTL_MS (UINT64_C(1) << 40) /* about 35 years: anything longer is a mistake, not a TTL */
#define MAX_CONNECT 16
#define MAX_SUPERVISORS 8
#define SHUTDOWN_WAIT_MS 3000 /* how long the replicas may take to hand their workers over */

/* ------------------------------------------------------------------ the store */

typedef struct entry {
    uint8_t *key, *value; /* ETF bytes, owned */
    size_t klen, vlen;
    hc_timer_id timer; /* 0: never expires */
    uint64_t gen;      /* tells the expiry timer which put it belongs to */
} entry;

typedef struct subscriber {
    hc_pid pid;
    hc_ref monitor; /* so a subscriber that exits is forgotten */
} subscriber;

typedef struct store {
    entry *entries;
    size_t n, cap;
    subscriber *subs;
    size_t nsubs, capsubs;
    uint64_t next_gen;
} store;

static entry *find(store *s, const uint8_t *key, size_t klen)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->entries[i].klen == klen && memcmp(s->entries[i].key, key, klen) == 0)
            return &s->entries[i];
    return NULL;
}

static void entry_free(entry *e)
{
    free(e->key);
    free(e->value);
}

/* Removes *e (a pointer into s->entries) and cancels its timer. */
static void remove_entry(hc_rt *rt, hc_proc *self, store *s, entry *e)
{
    if (e->timer)
        hc_proc_timer_cancel(rt, self, e->timer);
    entry_free(e);
    *e = s->entries[--s->n];
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d)
        memcpy(d, p, n);
    return d;
}

/* ------------------------------------------------------------------ expiry */

static void notify_expired(hc_rt *rt, hc_proc *self, store *s, const entry *e)
{
    hc_buf msg = {0};
    hc_enc_tuple_header(&msg, 2);
    hc_enc_atom_cstr(&msg, "kvstore_expired");
    hc_enc_raw(&msg, e->key, e->klen);
    for (size_t i = 0; i < s->nsubs; i++)
        hc_send_buf(rt, self, &s->subs[i].pid, &msg); /* refuses a half-built message by itself */
    hc_buf_free(&msg);
}

/* A process timer: runs on the loop thread, only while the process is alive. `ud` carries the
 * generation of the put that armed it (a plain number, so there is nothing to free). */
static void on_expire(hc_rt *rt, hc_proc *self, void *ud)
{
    store *s = hc_proc_state(self);
    uint64_t gen = (uint64_t)(uintptr_t)ud;
    for (size_t i = 0; i < s->n; i++) {
        if (s->entries[i].gen == gen) {
            s->entries[i].timer = 0; /* it just fired: nothing to cancel */
            notify_expired(rt, self, s, &s->entries[i]);
            remove_entry(rt, self, s, &s->entries[i]);
            return;
        }
    }
}

/* ------------------------------------------------------------------ requests */

/* What a request handler gets: who we are, and the buffer its reply goes into. A handler returns HC_OK
 * with the reply built, or an error code, and the caller then replies {error, badarg}. */
typedef struct call_ctx {
    hc_rt *rt;
    hc_proc *self;
    store *s;
    const hc_gen_from *from;
    hc_buf reply;
} call_ctx;

static int do_put(void *ctxp, hc_req_args *a)
{
    call_ctx *c = ctxp;
    hc_span key, value;
    uint64_t ttl = 0; /* 0: infinity */
    if (hc_dec_term(a->p, a->len, &a->i, &key) || hc_dec_term(a->p, a->len, &a->i, &value))
        return HC_EDECODE;
    if (!hc_dec_is_atom(a->p, a->len, &a->i, "infinity") &&
        (hc_dec_ulong(a->p, a->len, &a->i, &ttl) || ttl == 0 || ttl > MAX_TTL_MS))
        return HC_EDECODE;
    if (!hc_req_args_done(a))
        return HC_EDECODE;

    store *s = c->s;
    uint8_t *v = dup_bytes(value.p, value.len);
    if (!v)
        return HC_ENOMEM;
    entry *e = find(s, key.p, key.len);
    if (e) { /* overwrite: the old value and its expiry go */
        free(e->value);
        if (e->timer)
            hc_proc_timer_cancel(c->rt, c->self, e->timer);
    } else {
        uint8_t *k = dup_bytes(key.p, key.len);
        if (!k || hc_array_reserve((void **)&s->entries, &s->cap, s->n + 1, sizeof *s->entries, 16)) {
            free(k);
            free(v);
            return HC_ENOMEM;
        }
        e = &s->entries[s->n++];
        *e = (entry){.key = k, .klen = key.len};
    }
    e->value = v;
    e->vlen = value.len;
    e->timer = 0;
    e->gen = ++s->next_gen;
    if (ttl && hc_proc_timer_start(c->rt, c->self, ttl, on_expire, (void *)(uintptr_t)e->gen, &e->timer)) {
        remove_entry(c->rt, c->self, s, e); /* a key that would never expire is worse than no key */
        return HC_ENOMEM;
    }
    return hc_enc_atom_cstr(&c->reply, "ok");
}

static int do_get(void *ctxp, hc_req_args *a)
{
    call_ctx *c = ctxp;
    hc_span key;
    if (hc_dec_term(a->p, a->len, &a->i, &key) || !hc_req_args_done(a))
        return HC_EDECODE;
    const entry *e = find(c->s, key.p, key.len);
    if (!e)
        return hc_enc_atom_cstr(&c->reply, "not_found");
    hc_enc_tuple_header(&c->reply, 2);
    hc_enc_atom_cstr(&c->reply, "ok");
    return hc_enc_raw(&c->reply, e->value, e->vlen);
}

static int do_delete(void *ctxp, hc_req_args *a)
{
    call_ctx *c = ctxp;
    hc_span key;
    if (hc_dec_term(a->p, a->len, &a->i, &key) || !hc_req_args_done(a))
        return HC_EDECODE;
    entry *e = find(c->s, key.p, key.len);
    if (e)
        remove_entry(c->rt, c->self, c->s, e);
    return hc_enc_atom_cstr(&c->reply, "ok");
}

static int do_keys(void *ctxp, hc_req_args *a)
{
    call_ctx *c = ctxp;
    (void)a;
    if (c->s->n > 0)
        hc_enc_list_header(&c->reply, (uint32_t)c->s->n);
    for (size_t i = 0; i < c->s->n; i++)
        hc_enc_raw(&c->reply, c->s->entries[i].key, c->s->entries[i].klen);
    return hc_enc_nil(&c->reply); /* the buffer's sticky error covers every step above */
}

static int do_subscribe(void *ctxp, hc_req_args *a)
{
    call_ctx *c = ctxp;
    store *s = c->s;
    (void)a;
    for (size_t i = 0; i < s->nsubs; i++)
        if (hc_pid_eq(&s->subs[i].pid, &c->from->pid))
            return hc_enc_atom_cstr(&c->reply, "ok");
    if (hc_array_reserve((void **)&s->subs, &s->capsubs, s->nsubs + 1, sizeof *s->subs, 4))
        return HC_ENOMEM;
    subscriber *sub = &s->subs[s->nsubs];
    sub->pid = c->from->pid;
    int rc = hc_monitor(c->rt, c->self, &sub->pid, 0, 0, &sub->monitor);
    if (rc)
        return rc;
    s->nsubs++;
    return hc_enc_atom_cstr(&c->reply, "ok");
}

/* Starts a C worker; the caller gets what a supervisor would: the pid, ignore, or why not. */
static int do_start_worker(void *ctxp, hc_req_args *a)
{
    call_ctx *c = ctxp;
    hc_span type, arg;
    if (hc_dec_binary(a->p, a->len, &a->i, &type) || hc_dec_term(a->p, a->len, &a->i, &arg) || !hc_req_args_done(a))
        return HC_EDECODE;
    hc_proc *p;
    hc_buf why = {0};
    int rc = hc_worker_start(c->rt, (const char *)type.p, type.len, arg.p, arg.len, &p, &why);
    if (rc == HC_OK) {
        hc_enc_tuple_header(&c->reply, 2);
        hc_enc_atom_cstr(&c->reply, "ok");
        hc_enc_pid(&c->reply, hc_proc_pid(p));
    } else if (rc == HC_WORKER_IGNORE) {
        hc_enc_atom_cstr(&c->reply, "ignore");
    } else {
        hc_enc_tuple_header(&c->reply, 2);
        hc_enc_atom_cstr(&c->reply, "error");
        if (why.len && !why.err)
            hc_enc_raw(&c->reply, why.data, why.len);
        else
            hc_enc_atom_cstr(&c->reply, hc_err_atom(rc));
    }
    hc_buf_free(&why);
    return c->reply.err;
}

static const hc_req_entry requests[] = {
    {"put", 3, do_put},
    {"get", 1, do_get},
    {"delete", 1, do_delete},
    {"keys", 0, do_keys},
    {"subscribe", 0, do_subscribe},
    {"start_worker", 2, do_start_worker},
};

/* ------------------------------------------------------------------ the process */

static void kv_call(hc_rt *rt, hc_proc *self, const hc_gen_from *from, const uint8_t *req, size_t len)
{
    call_ctx c = {.rt = rt, .self = self, .s = hc_proc_state(self), .from = from};
    hc_req_args args;
    const hc_req_entry *e = hc_req_match(requests, sizeof requests / sizeof requests[0], req, len, &args);
    int rc = e ? e->fn(&c, &args) : HC_EDECODE;
    if (rc == HC_OK) {
        hc_gen_reply_buf(rt, from, &c.reply); /* an encoding failure still gets an answer */
    } else {
        /* Every request gets exactly one reply, and a bad one changes nothing. */
        hc_gen_reply_error(rt, from, rc == HC_ENOMEM ? "enomem" : "badarg");
    }
    hc_buf_free(&c.reply);
}

static void kv_message(hc_rt *rt, hc_proc *self, const hc_pid *from, const uint8_t *msg, size_t len)
{
    (void)rt, (void)self, (void)from, (void)msg;
    hc_log_warn("kvstore: ignored a plain message of %zu bytes (use GenServer.call)", len);
}

static void kv_down(hc_rt *rt, hc_proc *self, const hc_down *d)
{
    store *s = hc_proc_state(self);
    (void)rt;
    for (size_t i = 0; i < s->nsubs; i++) {
        if (hc_ref_eq(&s->subs[i].monitor, &d->ref)) {
            s->subs[i] = s->subs[--s->nsubs];
            return;
        }
    }
}

/* The runtime cancels the process's timers after this returns; we only free our memory. */
static void kv_terminate(hc_rt *rt, hc_proc *self, const uint8_t *reason, size_t rlen)
{
    store *s = hc_proc_state(self);
    (void)rt, (void)reason, (void)rlen;
    for (size_t i = 0; i < s->n; i++)
        entry_free(&s->entries[i]);
    free(s->entries);
    free(s->subs);
    free(s);
}

static const hc_proc_ops kv_ops = {
    .on_call = kv_call,
    .on_message = kv_message,
    .on_down = kv_down,
    .on_terminate = kv_terminate,
};

/* ------------------------------------------------------------------ the "counter" worker type */

/* A worker's state is whatever init hands back; here one integer on the heap. */
static int counter_init(hc_worker *w, const uint8_t *arg, size_t len, void **state, hc_buf *reason)
{
    (void)w;
    size_t i = 0;
    int64_t n;
    if (hc_dec_long(arg, len, &i, &n) || i != len) {
        /* start_worker (or the supervisor) answers {error, {not_an_integer, Arg}} */
        hc_enc_tuple_header(reason, 2);
        hc_enc_atom_cstr(reason, "not_an_integer");
        hc_enc_raw(reason, arg, len);
        return HC_EINVAL;
    }
    int64_t *count = malloc(sizeof *count);
    if (!count)
        return HC_ENOMEM;
    *count = n;
    *state = count;
    return HC_OK;
}

/* Exactly the atom `name`. */
static bool is_request(const uint8_t *req, size_t len, const char *name)
{
    size_t i = 0;
    return hc_dec_is_atom(req, len, &i, name) && i == len;
}

static void counter_call(hc_worker *w, void *state, const hc_gen_from *from, const uint8_t *req, size_t len)
{
    int64_t *count = state;
    hc_rt *rt = hc_worker_rt(w);
    if (is_request(req, len, "incr") && *count < INT64_MAX) {
        ++*count;
    } else if (!is_request(req, len, "get")) { /* an incr past INT64_MAX lands here too */
        hc_gen_reply_error(rt, from, "badarg");
        return;
    }
    hc_buf b = {0};
    hc_enc_long(&b, *count);
    hc_gen_reply_buf(rt, from, &b);
    hc_buf_free(&b);
}

/* Called once however the worker ends (an exit, a kill, a supervisor stopping it, the node stopping). */
static void counter_terminate(hc_worker *w, void *state, const uint8_t *reason, size_t len)
{
    (void)w, (void)reason, (void)len;
    free(state);
}

static const hc_worker_type counter_type = {
    .name = "counter",
    .init = counter_init,
    .handle_call = counter_call,
    .terminate = counter_terminate,
};

/* ------------------------------------------------------------------ the node */

static void on_node_event(hc_rt *rt, const hc_node_event *ev, void *ud)
{
    (void)rt, (void)ud;
    if (ev->up)
        hc_log_info("kvstore: node %s up", hc_atom_name(ev->node));
    else
        hc_log_info("kvstore: node %s down (%s: %s)", hc_atom_name(ev->node), hc_err_atom(ev->reason),
                    ev->detail ? ev->detail : "");
}

static hc_rt *the_rt;

static void on_signal(int sig)
{
    (void)sig;
    if (the_rt)
        hc_rt_stop(the_rt); /* async-signal-safe */
}

/* --quit-on-eof: a thread that waits for stdin to close, then stops the loop from outside it. */
static void *stdin_watch(void *arg)
{
    char buf[256];
    while (read(STDIN_FILENO, buf, sizeof buf) > 0)
        ;
    hc_rt_stop(arg); /* thread-safe */
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: kvstore --name NAME@HOST --cookie COOKIE [--connect NODE]... [--register NAME]\n"
               "               [--port N] [--supervisor NAME]... [--quit-on-eof]\n");
}

int main(int argc, char **argv)
{
    const char *name = NULL, *cookie = NULL, *regname = "kvstore", *connect[MAX_CONNECT];
    const char *supervisors[MAX_SUPERVISORS];
    int nsupervisors = 0;
    int nconnect = 0, port = 0;
    bool quit_on_eof = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--quit-on-eof")) {
            quit_on_eof = true;
            continue;
        } else if (!v) {
            fprintf(stderr, "kvstore: %s needs a value\n", a);
            usage(stderr);
            return 2;
        } else if (!strcmp(a, "--name")) {
            name = v;
        } else if (!strcmp(a, "--cookie")) {
            cookie = v;
        } else if (!strcmp(a, "--register")) {
            regname = v;
        } else if (!strcmp(a, "--port")) {
            port = atoi(v);
        } else if (!strcmp(a, "--connect") && nconnect < MAX_CONNECT) {
            connect[nconnect++] = v;
        } else if (!strcmp(a, "--supervisor") && nsupervisors < MAX_SUPERVISORS && *v && strlen(v) < 256) {
            supervisors[nsupervisors++] = v;
        } else {
            fprintf(stderr, "kvstore: unknown or repeated option %s\n", a);
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (!name || !cookie || port < 0 || port > 65535) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    hc_rt_config cfg;
    hc_rt_config_defaults(&cfg);
    cfg.node_name = name;
    cfg.cookie = cookie;
    cfg.port = (uint16_t)port;
    hc_rt *rt;
    char err[256];
    if (hc_rt_new(&cfg, &rt, err, sizeof err)) {
        fprintf(stderr, "kvstore: %s\n", err);
        return 1;
    }

    store *s = calloc(1, sizeof *s);
    uint64_t nodes_handle;
    int rc = s ? hc_proc_spawn(rt, &kv_ops, s, hc_atom_intern_cstr(regname), NULL) : HC_ENOMEM;
    if (rc == HC_OK)
        rc = hc_rt_subscribe_nodes(rt, on_node_event, NULL, &nodes_handle);
    if (rc == HC_OK)
        rc = hc_worker_type_register(rt, &counter_type);
    if (rc) {
        fprintf(stderr, "kvstore: cannot start the %s process: %s\n", regname, hc_strerror(rc));
        if (!hc_proc_whereis(rt, hc_atom_intern_cstr(regname)))
            free(s); /* a failed spawn left the state with us */
        hc_rt_free(rt);
        return 1;
    }
    /* The replicas, after the worker type they may start. */
    for (int i = 0; i < nsupervisors; i++) {
        hc_proc *replica;
        rc = hc_supervisor_replica_start(rt, hc_atom_intern_cstr(supervisors[i]), NULL, &replica);
        if (rc) {
            fprintf(stderr, "kvstore: cannot start supervisor %s: %s\n", supervisors[i], hc_strerror(rc));
            hc_rt_free(rt);
            return 1;
        }
    }
    for (int i = 0; i < nconnect; i++)
        hc_rt_connect(rt, hc_atom_intern_cstr(connect[i])); /* joins in the background; see on_node_event */

    the_rt = rt;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    pthread_t watcher;
    bool watching = quit_on_eof && pthread_create(&watcher, NULL, stdin_watch, rt) == 0;

    printf("kvstore ready node=%s port=%u\n", name, hc_rt_port(rt));
    fflush(stdout);
    rc = hc_rt_run(rt);
    /* Stopped (a signal, or stdin closed): the supervisor replicas hand their workers over to the other
     * members first, running the loop until the others have it or SHUTDOWN_WAIT_MS passed. */
    if (rc == HC_OK && nsupervisors > 0)
        hc_supervisor_replicas_shutdown(rt, SHUTDOWN_WAIT_MS);

    /* Nothing may call into the runtime once it is being freed: not a signal, not the watcher. */
    sigset_t stop_sigs;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGINT);
    sigprocmask(SIG_BLOCK, &stop_sigs, NULL);
    the_rt = NULL;
    if (watching) {
        pthread_cancel(watcher); /* read() is a cancellation point */
        pthread_join(watcher, NULL);
    }
    hc_rt_free(rt); /* exits the store process: kv_terminate frees it */
    hc_atom_table_reset();
    hc_log_info("kvstore: stopped");
    return rc == HC_OK ? 0 : 1;
}
