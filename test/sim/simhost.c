/* simhost.c — see simhost.h. */
#include "simhost.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ the env */

static void env_send_name(void *ud, hc_atom node, hc_atom name, const uint8_t *msg, size_t len)
{
    simhost *sh = ud;
    simnet *n = sh->net;
    sh->peer_sends++;
    /* every peer message leaves in the envelope {'$hordec_replica', OurName, Msg} */
    size_t i = 0;
    uint32_t arity;
    hc_atom sender;
    if (hc_dec_tuple_header(msg, len, &i, &arity) || arity != 3 || !hc_dec_is_atom(msg, len, &i, "$hordec_replica") ||
        hc_dec_atom(msg, len, &i, &sender) || sender != sh->name) {
        simnet_fail(n, "%s: a peer message left without its envelope", hc_atom_name(sh->name));
        return;
    }
    int to = simnet_node_of(n, node);
    if (sh->hooks.send_peer && sh->hooks.send_peer(sh->hooks.ud, sh, to, name, msg + i, len - i))
        return;
    simnet_send_name(n, &sh->pid, to, name, msg, len);
}

static void env_send_pid(void *ud, const hc_pid *to, const uint8_t *msg, size_t len)
{
    simhost *sh = ud;
    sh->pid_sends++;
    if (sh->hooks.send_pid && sh->hooks.send_pid(sh->hooks.ud, sh, to, msg, len))
        return;
    simnet_send_pid(sh->net, &sh->pid, to, msg, len);
}

static void env_reply(void *ud, uint64_t token, const uint8_t *reply, size_t len)
{
    simhost *sh = ud;
    sh->replies++;
    if ((!sh->call_token || token != sh->call_token) && sh->hooks.reply) {
        sh->hooks.reply(sh->hooks.ud, sh, token, reply, len);
        return;
    }
    if (!sh->call_token || token != sh->call_token) {
        simnet_fail(sh->net, "%s: a reply to token %llu, which no caller is waiting for", hc_atom_name(sh->name),
                    (unsigned long long)token);
        return;
    }
    if (sh->call_replies++) {
        simnet_fail(sh->net, "%s: a second reply to one request", hc_atom_name(sh->name));
        return;
    }
    sh->pid_sends_at_reply = sh->pid_sends;
    hc_buf_append(sh->call_reply, reply, len);
}

static int env_monitor(void *ud, const hc_pid *pid, uint64_t id)
{
    simhost *sh = ud;
    sh->monitors++;
    for (size_t i = 0; i < sh->nmons; i++)
        if (sh->mons[i].id == id)
            return simnet_fail(sh->net, "%s: monitor id %llu is already in use", hc_atom_name(sh->name),
                               (unsigned long long)id);
    if (hc_array_reserve((void **)&sh->mons, &sh->capmons, sh->nmons + 1, sizeof *sh->mons, 8))
        abort();
    sh->mons[sh->nmons++] = (simhost_mon){id, *pid};
    if (sh->hooks.monitor)
        sh->hooks.monitor(sh->hooks.ud, sh, pid, id);
    return HC_OK;
}

static void env_demonitor(void *ud, uint64_t id)
{
    simhost *sh = ud;
    sh->demonitors++;
    for (size_t i = 0; i < sh->nmons; i++)
        if (sh->mons[i].id == id) {
            sh->mons[i] = sh->mons[--sh->nmons];
            return;
        }
    simnet_fail(sh->net, "%s: demonitor of %llu, which is not a live monitor", hc_atom_name(sh->name),
                (unsigned long long)id);
}

static void env_exit(void *ud, const hc_pid *to, const uint8_t *reason, size_t len)
{
    simhost *sh = ud;
    sh->exits++; /* no core of today sends exit signals */
    (void)to, (void)reason, (void)len;
}

/* ------------------------------------------------------------------ the fake worker runtime */

static const uint8_t atom_killed[] = {119, 6, 'k', 'i', 'l', 'l', 'e', 'd'};

static void due_push(simhost *sh, uint64_t id, const hc_pid *pid, const uint8_t *reason, size_t len)
{
    if (hc_array_reserve((void **)&sh->due, &sh->capdue, sh->ndue + 1, sizeof *sh->due, 8))
        abort();
    simhost_due *d = &sh->due[sh->ndue++];
    d->id = id;
    d->pid = *pid;
    if (len > sizeof d->reason) { /* only the reason's kind matters to a core here: keep it whole or say killed */
        reason = atom_killed;
        len = sizeof atom_killed;
    }
    memcpy(d->reason, reason, len);
    d->len = len;
}

static size_t worker_index(const simhost *sh, const hc_pid *pid)
{
    for (size_t i = 0; i < sh->nworkers; i++)
        if (hc_pid_eq(&sh->workers[i].pid, pid))
            return i;
    return SIZE_MAX;
}

/* Worker w is gone: out of the table (order kept: a scenario may rely on start order), the hook told. */
static void worker_remove(simhost *sh, size_t w, const uint8_t *reason, size_t len)
{
    simhost_worker dead = sh->workers[w];
    memmove(&sh->workers[w], &sh->workers[w + 1], (sh->nworkers - w - 1) * sizeof *sh->workers);
    sh->nworkers--;
    sh->workers_stopped++;
    if (sh->hooks.worker_exit)
        sh->hooks.worker_exit(sh->hooks.ud, sh, &dead.pid, reason, len);
    free(dead.arg);
}

/* {start_worker, Op, Type, Arg} -> {worker_started, Op, {ok, Pid} | ignore | {error, boom}} */
static void local_start(simhost *sh, const uint8_t *a, size_t len, size_t i, hc_buf *result)
{
    uint64_t op;
    hc_span type, arg;
    if (hc_dec_ulong(a, len, &i, &op) || hc_dec_term(a, len, &i, &type) || hc_dec_term(a, len, &i, &arg) || i != len) {
        simnet_fail(sh->net, "%s: a malformed start_worker action", hc_atom_name(sh->name));
        return;
    }
    size_t t = 0;
    hc_span tb;
    if (hc_dec_binary(type.p, type.len, &t, &tb) || t != type.len || !tb.len) {
        simnet_fail(sh->net, "%s: start_worker names a type that is not a non-empty binary", hc_atom_name(sh->name));
        return;
    }
    hc_pid pid = {sh->net->nodes[sh->node].atom, SIMHOST_WORKER_PID + sh->next_worker, 0, 1};
    int outcome = sh->hooks.worker_start ? sh->hooks.worker_start(sh->hooks.ud, sh, &type, &arg, &pid) : 0;
    hc_enc_tuple_header(result, 3);
    hc_enc_atom_cstr(result, "worker_started");
    hc_enc_ulong(result, op);
    if (outcome > 0) {
        sh->workers_refused++;
        hc_enc_atom_cstr(result, "ignore");
        return;
    }
    if (outcome < 0) {
        sh->workers_refused++;
        hc_enc_tuple_header(result, 2);
        hc_enc_atom_cstr(result, "error");
        hc_enc_atom_cstr(result, "boom");
        return;
    }
    sh->next_worker++;
    sh->workers_started++;
    if (hc_array_reserve((void **)&sh->workers, &sh->capworkers, sh->nworkers + 1, sizeof *sh->workers, 16))
        abort();
    simhost_worker *w = &sh->workers[sh->nworkers++];
    w->pid = pid;
    w->arg = malloc(arg.len ? arg.len : 1);
    if (!w->arg)
        abort();
    memcpy(w->arg, arg.p, arg.len);
    w->arg_len = arg.len;
    hc_enc_tuple_header(result, 2);
    hc_enc_atom_cstr(result, "ok");
    hc_enc_pid(result, &pid);
}

/* {stop_worker, Pid, Reason}: the worker dies now; monitors still held on it fire after the call. */
static void local_stop(simhost *sh, const uint8_t *a, size_t len, size_t i)
{
    hc_pid pid;
    hc_span reason;
    if (hc_dec_pid(a, len, &i, &pid) || hc_dec_term(a, len, &i, &reason) || i != len) {
        simnet_fail(sh->net, "%s: a malformed stop_worker action", hc_atom_name(sh->name));
        return;
    }
    size_t w = worker_index(sh, &pid);
    if (w == SIZE_MAX)
        return; /* dead already: stopping it is a no-op, as in the runtime */
    worker_remove(sh, w, reason.p, reason.len);
    for (size_t m = 0; m < sh->nmons; m++)
        if (hc_pid_eq(&sh->mons[m].pid, &pid))
            due_push(sh, sh->mons[m].id, &pid, reason.p, reason.len);
}

static void env_local(void *ud, const uint8_t *a, size_t len, hc_buf *result)
{
    simhost *sh = ud;
    sh->local_actions++;
    size_t i = 0;
    uint32_t arity;
    if (!hc_dec_tuple_header(a, len, &i, &arity)) {
        if (arity == 4 && hc_dec_is_atom(a, len, &i, "start_worker")) {
            local_start(sh, a, len, i, result);
            return;
        }
        if (arity == 3 && hc_dec_is_atom(a, len, &i, "stop_worker")) {
            local_stop(sh, a, len, i);
            return;
        }
    }
    simnet_fail(sh->net, "%s: an unknown local action", hc_atom_name(sh->name));
}

static void env_wake_at(void *ud, uint64_t at)
{
    simhost *sh = ud;
    simnet_timer_set(sh->net, sh->timer, simnet_global(sh->net, sh->node, at));
}

static void env_connect(void *ud, hc_atom node)
{
    simhost *sh = ud;
    int to = simnet_node_of(sh->net, node);
    if (to >= 0)
        simnet_connect(sh->net, sh->node, to);
}

static bool env_is_connected(void *ud, hc_atom node)
{
    simhost *sh = ud;
    int to = simnet_node_of(sh->net, node);
    return to >= 0 && simnet_connected(sh->net, sh->node, to);
}

/* ------------------------------------------------------------------ life cycle */

void simhost_init(simhost *sh, simnet *net, int node, int timer, hc_atom name, uint32_t pid_num,
                  const simhost_hooks *hooks)
{
    memset(sh, 0, sizeof *sh);
    sh->net = net;
    sh->node = node;
    sh->timer = timer;
    sh->name = name;
    sh->pid = (hc_pid){net->nodes[node].atom, pid_num, 0, 1};
    if (hooks)
        sh->hooks = *hooks;
}

int simhost_start(simhost *sh, const hc_core_ops *ops, void *core, size_t stream_batch_bytes, uint64_t epoch_base)
{
    if (sh->host)
        return simnet_fail(sh->net, "%s: started twice", hc_atom_name(sh->name));
    sh->pid.serial++; /* a new process */
    hc_host_config cfg = {.name = sh->name,
                          .node = sh->net->nodes[sh->node].atom,
                          .stream_batch_bytes = stream_batch_bytes,
                          .epoch_base = epoch_base};
    hc_host_env env = {.ud = sh,
                       .send_name = env_send_name,
                       .send_pid = env_send_pid,
                       .reply = env_reply,
                       .monitor = env_monitor,
                       .demonitor = env_demonitor,
                       .exit = env_exit,
                       .wake_at = env_wake_at,
                       .connect = env_connect,
                       .is_connected = env_is_connected,
                       .local = env_local};
    int rc = hc_host_new(&cfg, &env, ops, core, &sh->host);
    if (rc)
        return simnet_fail(sh->net, "%s: hc_host_new: %s", hc_atom_name(sh->name), hc_strerror(rc));
    return 0;
}

void *simhost_stop(simhost *sh, bool keep_core)
{
    void *core = NULL;
    if (!sh->host)
        return NULL;
    if (keep_core)
        core = hc_host_release(sh->host);
    else
        hc_host_free(sh->host);
    sh->host = NULL;
    sh->nmons = 0; /* monitors die with the process that holds them */
    sh->ndue = 0;
    simnet_timer_set(sh->net, sh->timer, HC_NO_DEADLINE);
    while (sh->nworkers) /* the node's C workers live in the same OS process */
        worker_remove(sh, sh->nworkers - 1, atom_killed, sizeof atom_killed);
    return core;
}

void simhost_free(simhost *sh)
{
    simhost_stop(sh, false);
    free(sh->mons);
    free(sh->workers);
    free(sh->due);
    sh->mons = NULL;
    sh->workers = NULL;
    sh->due = NULL;
    sh->capmons = sh->capworkers = sh->capdue = 0;
}

/* ------------------------------------------------------------------ inputs */

static int status(simhost *sh) { return sh->net->failed ? -1 : 0; }

int simhost_call(simhost *sh, const hc_pid *from, const uint8_t *req, size_t len, hc_buf *reply)
{
    if (!sh->host)
        return simnet_fail(sh->net, "%s: called while not running", hc_atom_name(sh->name));
    hc_buf_reset(reply);
    sh->call_token = ++sh->next_token;
    sh->call_replies = 0;
    sh->call_reply = reply;
    hc_host_request(sh->host, sh->call_token, from, req, len, simnet_time(sh->net, sh->node));
    int replies = sh->call_replies;
    sh->call_token = 0;
    sh->call_reply = NULL;
    if (replies != 1)
        return simnet_fail(sh->net, "%s: a request got %d replies", hc_atom_name(sh->name), replies);
    if (reply->err)
        abort();
    return status(sh);
}

int simhost_deliver(simhost *sh, const simnet_msg *m)
{
    hc_host_message(sh->host, &m->from, m->data, m->len, simnet_time(sh->net, sh->node));
    return status(sh);
}

int simhost_tick(simhost *sh)
{
    sh->wakeups++;
    hc_host_tick(sh->host, simnet_time(sh->net, sh->node));
    return status(sh);
}

int simhost_node_event(simhost *sh, int about, bool up)
{
    hc_host_node_event(sh->host, sh->net->nodes[about].atom, up, simnet_time(sh->net, sh->node));
    return status(sh);
}

int simhost_kill(simhost *sh, const hc_pid *pid) { return simhost_exit(sh, pid, atom_killed, sizeof atom_killed); }

int simhost_exit(simhost *sh, const hc_pid *who, const uint8_t *reason, size_t len)
{
    hc_pid copy = *who, *pid = &copy; /* the caller's may live in memory the host's calls move */
    int fired = 0;
    for (size_t i = 0; sh->host && i < sh->nmons;) {
        if (!hc_pid_eq(&sh->mons[i].pid, pid)) {
            i++;
            continue;
        }
        uint64_t id = sh->mons[i].id; /* a monitor fires once: gone before the host hears of it */
        sh->mons[i] = sh->mons[--sh->nmons];
        hc_host_monitor_down(sh->host, id, pid, reason, len, simnet_time(sh->net, sh->node));
        fired++;
        if (sh->net->failed)
            return -1;
    }
    return fired;
}

bool simhost_monitoring(const simhost *sh, const hc_pid *pid)
{
    for (size_t i = 0; i < sh->nmons; i++)
        if (hc_pid_eq(&sh->mons[i].pid, pid))
            return true;
    return false;
}

int simhost_request(simhost *sh, uint64_t token, const hc_pid *from, const uint8_t *req, size_t len)
{
    if (!sh->host)
        return simnet_fail(sh->net, "%s: a request while not running", hc_atom_name(sh->name));
    if (!sh->hooks.reply)
        return simnet_fail(sh->net, "%s: simhost_request without a reply hook", hc_atom_name(sh->name));
    if (sh->call_token == token)
        return simnet_fail(sh->net, "%s: simhost_request with a token simhost_call uses", hc_atom_name(sh->name));
    hc_host_request(sh->host, token, from, req, len, simnet_time(sh->net, sh->node));
    return status(sh);
}

int simhost_local(simhost *sh, const uint8_t *msg, size_t len)
{
    if (!sh->host)
        return simnet_fail(sh->net, "%s: a local message while not running", hc_atom_name(sh->name));
    hc_host_local(sh->host, msg, len, simnet_time(sh->net, sh->node));
    return status(sh);
}

int simhost_fire(simhost *sh, uint64_t id, const hc_pid *pid, const uint8_t *reason, size_t len)
{
    for (size_t i = 0; sh->host && i < sh->nmons; i++) {
        if (sh->mons[i].id != id || !hc_pid_eq(&sh->mons[i].pid, pid))
            continue;
        sh->mons[i] = sh->mons[--sh->nmons]; /* a monitor fires once: gone before the host hears of it */
        hc_host_monitor_down(sh->host, id, pid, reason, len, simnet_time(sh->net, sh->node));
        return sh->net->failed ? -1 : 1;
    }
    return 0;
}

int simhost_settle(simhost *sh)
{
    while (sh->ndue) {
        simhost_due d = sh->due[0];
        memmove(&sh->due[0], &sh->due[1], (sh->ndue - 1) * sizeof *sh->due);
        sh->ndue--;
        if (simhost_fire(sh, d.id, &d.pid, d.reason, d.len) < 0)
            return -1;
    }
    return status(sh);
}

const simhost_worker *simhost_worker_find(const simhost *sh, const hc_pid *pid)
{
    size_t w = worker_index(sh, pid);
    return w == SIZE_MAX ? NULL : &sh->workers[w];
}

int simhost_worker_exit(simhost *sh, const hc_pid *who, const uint8_t *reason, size_t len)
{
    hc_pid pid = *who; /* may be the table's own copy, which worker_remove moves */
    size_t w = worker_index(sh, &pid);
    if (w == SIZE_MAX)
        return 0;
    worker_remove(sh, w, reason, len);
    return simhost_exit(sh, &pid, reason, len) < 0 ? -1 : 1;
}
