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
    sh->exits++; /* no core of today sends exit signals; the supervisor simulation will act on them */
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
                       .is_connected = env_is_connected};
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
    simnet_timer_set(sh->net, sh->timer, HC_NO_DEADLINE);
    return core;
}

void simhost_free(simhost *sh)
{
    simhost_stop(sh, false);
    free(sh->mons);
    sh->mons = NULL;
    sh->capmons = 0;
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

int simhost_kill(simhost *sh, const hc_pid *pid)
{
    static const uint8_t killed[] = {119, 6, 'k', 'i', 'l', 'l', 'e', 'd'};
    int fired = 0;
    for (size_t i = 0; sh->host && i < sh->nmons;) {
        if (!hc_pid_eq(&sh->mons[i].pid, pid)) {
            i++;
            continue;
        }
        uint64_t id = sh->mons[i].id; /* a monitor fires once: gone before the host hears of it */
        sh->mons[i] = sh->mons[--sh->nmons];
        hc_host_monitor_down(sh->host, id, pid, killed, sizeof killed, simnet_time(sh->net, sh->node));
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
