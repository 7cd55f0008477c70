/* node.c — peers: the listening socket, accepting and dialling, duplicate and simultaneous connections,
 * queueing until a handshake completes, node up/down, blocking for fault injection. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dist/epmd.h"
#include "hordec/hc_log.h"
#include "runtime/rt_internal.h"

#define SETUP_TIMEOUT_MS 7000   /* the BEAM's net_setuptime */
#define ACCEPT_PAUSE_MS 100     /* out of descriptors: how long the listening socket is left alone */
#define SHED_LOG_MS 10000       /* refused incoming connections are logged at most once per this */
#define NODE_NAME_MAX_CHARS 255 /* a node name is an atom */

typedef struct watch_owner {
    hc_rt *rt;
    hc_peer *peer;   /* or */
    anon_conn *anon; /* one of the two */
} watch_owner;

static uint32_t random_u32(void)
{
    uint32_t v = 0;
    if (RAND_bytes((unsigned char *)&v, sizeof v) != 1)
        v = (uint32_t)rand();
    return v;
}

/* Every hc_conn the runtime creates is counted (rt->nconns, for --max-connections) until freed here. */
static void conn_free(hc_rt *rt, hc_conn *c)
{
    if (!c)
        return;
    hc_conn_free(c);
    rt->nconns--;
}

static void graveyard_add(hc_rt *rt, hc_conn *c)
{
    if (hc_array_reserve((void **)&rt->graveyard, &rt->capgrave, rt->ngrave + 1, sizeof *rt->graveyard, 16)) {
        conn_free(rt, c); /* cannot defer: free now (only reached on OOM) */
        return;
    }
    rt->graveyard[rt->ngrave++] = c;
}

void rt_reap_conns(hc_rt *rt)
{
    for (size_t i = 0; i < rt->ngrave; i++)
        conn_free(rt, rt->graveyard[i]);
    rt->ngrave = 0;
}

hc_peer *rt_peer_get(const hc_rt *rt, hc_atom node) { return hc_hmap_get(&rt->peers, node); }

static hc_peer *peer_get_or_create(hc_rt *rt, hc_atom node)
{
    hc_peer *p = rt_peer_get(rt, node);
    if (p)
        return p;
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->node = node;
    p->watch.fd = -1;
    hc_wq_init(&p->pending);
    if (hc_hmap_put(&rt->peers, node, p)) {
        free(p);
        return NULL;
    }
    return p;
}

/* Keeps epoll in step with what a connection wants, re-registering when its socket changed. */
static void sync_watch(hc_rt *rt, hc_watch *w, unsigned *gen, hc_conn *c)
{
    if (c->state == HC_CONN_CLOSED || c->fd < 0) {
        w->events = 0; /* closing the fd already removed it from epoll */
        w->fd = -1;
        return;
    }
    if (w->fd != c->fd || *gen != c->fd_gen) {
        w->events = 0;
        w->fd = c->fd;
        *gen = c->fd_gen;
    }
    if (hc_loop_watch(rt->loop, w, hc_conn_wanted_events(c)))
        hc_conn_close(c, HC_EIO, "epoll_ctl failed: %s", strerror(errno));
}

/* Subscribers may unsubscribe (themselves or others) from inside their callback: while we walk the list
 * an unsubscribe only clears `cb`, and the entries are freed after the walk. Subscriptions made during the
 * walk go to the head of the list, before where the walk started, so they see the next event. */
static void notify_subs(hc_rt *rt, hc_atom node, bool up, int code, const char *detail)
{
    hc_node_event ev = {.node = node, .up = up, .reason = up ? HC_OK : code, .detail = detail};
    rt->notifying++;
    for (node_sub *s = rt->subs; s; s = s->next)
        if (s->cb)
            s->cb(rt, &ev, s->ud);
    if (--rt->notifying)
        return;
    for (node_sub **pp = &rt->subs; *pp;) {
        node_sub *s = *pp;
        if (s->cb) {
            pp = &s->next;
        } else {
            *pp = s->next;
            free(s);
        }
    }
}

static void fire_connect_results(hc_rt *rt, hc_peer *p, bool up, int code, const char *detail)
{
    hc_node_event ev = {.node = p->node, .up = up, .reason = up ? HC_OK : code, .detail = detail};
    conn_cb *list = p->on_result;
    p->on_result = NULL;
    while (list) {
        conn_cb *n = list->next;
        list->cb(rt, &ev, list->ud);
        free(list);
        list = n;
    }
}

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000

static void peer_failed(hc_rt *rt, hc_peer *p, int code, const char *reason)
{
    p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (p->backoff_ms > BACKOFF_MAX_MS)
        p->backoff_ms = BACKOFF_MAX_MS;
    p->retry_at = hc_loop_now(rt->loop) + p->backoff_ms;
    hc_wq_free(&p->pending);
    hc_wq_init(&p->pending);
    p->waiting_incoming = false;
    fire_connect_results(rt, p, false, code, reason);
    rt_node_down_signals(rt, p->node); /* monitors and links requested meanwhile get noconnection */
}

static void peer_down(hc_rt *rt, hc_peer *p, int code, const char *reason)
{
    p->up = false;
    hc_log_info("node %s down: %s", hc_atom_name(p->node), reason);
    hc_wq_free(&p->pending);
    hc_wq_init(&p->pending);
    rt_node_down_signals(rt, p->node);
    notify_subs(rt, p->node, false, code, reason);
}

/* Why a connection closed, as a node event reports it. */
static int close_code(const hc_conn *c) { return c->close_code ? c->close_code : HC_ENOCONN; }

/* After any I/O on a peer's connection: re-arm epoll, or handle its closing. */
static void peer_after_io(hc_rt *rt, hc_peer *p)
{
    hc_conn *c = p->conn;
    if (!c)
        return;
    if (c->state != HC_CONN_CLOSED) {
        sync_watch(rt, &p->watch, &p->watch_gen, c);
        if (c->state != HC_CONN_CLOSED)
            return;
    }
    p->watch.events = 0;
    p->watch.fd = -1;
    p->conn = NULL;
    graveyard_add(rt, c);
    if (p->up) {
        if (c->close_code == HC_EDECODE || c->close_code == HC_ETOOBIG) {
            rt->stats.dropped_conns++;
            hc_log_warn("dropped connection to %s: %s", hc_atom_name(p->node), c->close_reason);
        }
        peer_down(rt, p, close_code(c), c->close_reason);
    } else if (c->aborted_quietly) {
        /* A connection we dialled ends quietly only when the peer answered "nok": a simultaneous connect
         * that its own attempt wins, so its connection is on the way in. */
        hc_log_debug("%s", c->close_reason);
        p->waiting_incoming = true;
        p->wait_deadline = hc_loop_now(rt->loop) + SETUP_TIMEOUT_MS;
    } else {
        /* Repeated failures are logged once per backoff cycle reaching its cap, not per attempt. */
        if (p->backoff_ms < BACKOFF_MAX_MS)
            hc_log_warn("cannot connect to %s: %s", hc_atom_name(p->node), c->close_reason);
        peer_failed(rt, p, close_code(c), c->close_reason);
    }
}

static void peer_watch_cb(hc_watch *w, uint32_t events, void *ud)
{
    watch_owner *o = ud;
    hc_peer *p = o->peer;
    if (!p->conn)
        return;
    hc_conn_handle(p->conn, events, hc_loop_now(o->rt->loop));
    if (p->conn && p->conn->state != HC_CONN_CLOSED)
        hc_conn_flush(p->conn, hc_loop_now(o->rt->loop));
    peer_after_io(o->rt, p);
    (void)w;
}

static void peer_up_hook(hc_conn *c, void *ud)
{
    watch_owner *o = ud;
    hc_rt *rt = o->rt;
    hc_peer *p = o->peer;
    /* Everything queued while connecting goes out after the handshake, in order, in the framing the
     * handshake chose (it was queued in 'p' form before the flags were known). On failure the peer
     * stays down, so peer_after_io reports a failed connect. */
    size_t dropped = 0;
    if (hc_conn_adopt(c, &p->pending, &dropped)) {
        hc_conn_close(c, HC_ENOMEM, "out of memory re-framing the packets queued for %s", hc_atom_name(p->node));
        return;
    }
    if (dropped)
        hc_log_warn("%zu packets queued for %s could not be re-framed and were dropped", dropped,
                    hc_atom_name(p->node));
    p->up = true;
    p->waiting_incoming = false;
    p->backoff_ms = 0;
    p->retry_at = 0;
    p->flags = c->hs.peer_flags & rt->conn_cfg.flags;
    hc_log_info("node %s up (%s%s)", hc_atom_name(p->node), c->connector ? "we connected" : "it connected",
                c->ac ? ", atom cache" : "");
    fire_connect_results(rt, p, true, HC_OK, "connected");
    notify_subs(rt, p->node, true, HC_OK, "connected");
}

static int peer_packet_hook(hc_conn *c, const uint8_t *pkt, size_t len, void *ud)
{
    watch_owner *o = ud;
    int rc = rt_dispatch_packet(o->rt, o->peer, pkt, len);
    if (rc < 0)
        hc_conn_close(c, HC_EDECODE, "malformed input: undecodable control message (%zu bytes, first byte %u)", len,
                      len ? pkt[0] : 0);
    return rc;
}

/* ------------------------------------------------------------------ dialling */

static void start_dial(hc_rt *rt, hc_peer *p)
{
    if (p->conn || p->blocked || p->waiting_incoming)
        return;
    char err[256];
    watch_owner *o = p->watch.ud;
    if (!o) {
        o = calloc(1, sizeof *o);
        if (!o) {
            peer_failed(rt, p, HC_ENOMEM, "out of memory");
            return;
        }
        o->rt = rt;
        o->peer = p;
        p->watch.ud = o;
        p->watch.cb = peer_watch_cb;
    }
    hc_conn *c = hc_conn_connect(hc_atom_name(p->node), &rt->conn_cfg, &rt->peer_hooks, o, random_u32(),
                                 hc_loop_now(rt->loop), err, sizeof err);
    if (!c) {
        hc_log_warn("cannot connect to %s: %s", hc_atom_name(p->node), err);
        peer_failed(rt, p, HC_ENOCONN, err);
        return;
    }
    hc_log_debug("connecting to %s", hc_atom_name(p->node));
    rt->nconns++;
    p->conn = c;
    peer_after_io(rt, p);
}

int hc_rt_connect(hc_rt *rt, hc_atom node)
{
    if (node == rt->node)
        return HC_OK;
    if (!strchr(hc_atom_name(node), '@'))
        return HC_EINVAL;
    hc_peer *p = peer_get_or_create(rt, node);
    if (!p)
        return HC_ENOMEM;
    if (p->blocked)
        return HC_ENOCONN;
    if (hc_loop_now(rt->loop) >= p->retry_at)
        start_dial(rt, p);
    return HC_OK;
}

int hc_rt_on_connect_result(hc_rt *rt, hc_atom node, hc_node_event_cb cb, void *ud)
{
    if (!cb)
        return HC_EINVAL;
    hc_peer *p = peer_get_or_create(rt, node);
    if (!p)
        return HC_ENOMEM;
    if (p->up || p->blocked) {
        hc_node_event ev = {.node = node,
                            .up = p->up,
                            .reason = p->up ? HC_OK : HC_ENOCONN,
                            .detail = p->up ? "connected" : "blocked by fault injection"};
        cb(rt, &ev, ud);
        return HC_OK;
    }
    conn_cb *e = malloc(sizeof *e);
    if (!e)
        return HC_ENOMEM;
    *e = (conn_cb){p->on_result, cb, ud};
    p->on_result = e;
    start_dial(rt, p);
    return HC_OK;
}

/* A peer that stops reading must not make us buffer without bound (the BEAM's dist_buf_busy_limit only
 * suspends senders; we have no senders to suspend, so we drop the peer): it gets a nodedown like any broken
 * link, and everything it held here is cleaned up. The connection is only marked closed here, as this runs
 * inside callbacks; rt_flush_all reports the node down at the end of the turn. */
static void queue_overflow(hc_rt *rt, hc_peer *p, size_t would_be)
{
    rt->stats.queue_overflows++;
    hc_log_warn("disconnecting %s: its output queue would reach %zu bytes, over the %zu byte cap "
                "(--max-peer-queue-bytes); it is not reading what we send",
                hc_atom_name(p->node), would_be, rt->cfg.max_queue_bytes);
    hc_conn_close(p->conn, HC_EBUSY, "output queue over %zu bytes (the peer stopped reading)", rt->cfg.max_queue_bytes);
}

int rt_send_packet(hc_rt *rt, hc_atom node, const hc_buf *ctrl, const uint8_t *msg, size_t mlen)
{
    hc_peer *p = peer_get_or_create(rt, node);
    if (!p)
        return HC_ENOMEM;
    if (p->blocked)
        return HC_ENOCONN;
    if (p->up && p->conn) {
        size_t queued = hc_conn_backlog(p->conn), add = 4 + ctrl->len + (msg ? 1 + mlen : 0);
        if (queued && queued + add > rt->cfg.max_queue_bytes) {
            queue_overflow(rt, p, queued + add);
            return HC_ENOCONN;
        }
        return hc_conn_send(p->conn, ctrl->data, ctrl->len, msg, mlen);
    }
    if (!p->conn && !p->waiting_incoming && hc_loop_now(rt->loop) < p->retry_at)
        return HC_ENOCONN; /* it failed a moment ago: drop, as a send to an unreachable node is */
    if (p->pending.bytes > rt->cfg.max_queue_bytes)
        return HC_EBUSY;
    size_t total = ctrl->len + (msg ? 1 + mlen : 0);
    uint8_t hdr[4] = {(uint8_t)(total >> 24), (uint8_t)(total >> 16), (uint8_t)(total >> 8), (uint8_t)total};
    uint8_t ver = 131;
    struct iovec iov[4] = {{hdr, 4}, {ctrl->data, ctrl->len}, {&ver, 1}, {(void *)msg, mlen}};
    int rc = hc_wq_append(&p->pending, iov, msg ? 4 : 2);
    if (rc)
        return rc;
    start_dial(rt, p);
    return HC_OK;
}

void rt_flush_all(hc_rt *rt)
{
    uint64_t now = hc_loop_now(rt->loop);
    for (size_t i = 0; i < rt->peers.cap; i++) {
        if (!hc_hmap_live(&rt->peers, i))
            continue;
        hc_peer *p = rt->peers.vals[i];
        if (p->conn && p->up && (p->conn->wq.bytes || p->conn->state == HC_CONN_CLOSED)) {
            hc_conn_flush(p->conn, now);
            peer_after_io(rt, p); /* also reports a connection closed during the turn (queue_overflow) */
        }
    }
}

/* ------------------------------------------------------------------ accepting */

static void anon_remove(hc_rt *rt, anon_conn *a)
{
    for (anon_conn **pp = &rt->anon; *pp; pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            rt->nanon--;
            break;
        }
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* The peer has named itself but not yet proved it knows the cookie, so its name is only looked up: it
 * becomes an atom and a peer entry in anon_up, after the challenge was answered. Otherwise every forged
 * name would stay in the (bounded) atom table for good, until no new node could connect. */
static const char *anon_decide(hc_conn *c, void *ud)
{
    anon_conn *a = ud;
    hc_rt *rt = a->rt;
    if (strcmp(c->peer, rt->node_name) == 0 || utf8_chars(c->peer) > NODE_NAME_MAX_CHARS)
        return "not_allowed";
    hc_atom node = hc_atom_find(c->peer, strlen(c->peer));
    hc_peer *p = node ? rt_peer_get(rt, node) : NULL;
    if (!p)
        return "ok"; /* a node we know nothing of: not blocked, not connected, not being dialled */
    if (p->blocked) {
        hc_log_info("refused connection from %s: blocked", c->peer);
        return "not_allowed";
    }
    if (p->up)
        return "alive"; /* the peer believes our link is gone (it restarted?): it answers true to replace it */
    if (p->conn) {
        /* Simultaneous connect. The node with the greater name keeps its own attempt. */
        if (strcmp(c->peer, rt->node_name) > 0) {
            hc_conn *ours = p->conn;
            hc_conn_close(ours, HC_EAUTH, "simultaneous connect: the peer's own attempt wins");
            p->conn = NULL;
            p->watch.events = 0;
            p->watch.fd = -1;
            graveyard_add(rt, ours);
            return "ok_simultaneous";
        }
        return "nok";
    }
    return "ok";
}

static void anon_up(hc_conn *c, void *ud)
{
    anon_conn *a = ud;
    hc_rt *rt = a->rt;
    int rc = HC_OK;
    hc_atom node = hc_atom_intern(c->peer, strlen(c->peer), &rc);
    hc_peer *p = rc ? NULL : peer_get_or_create(rt, node);
    if (!p) {
        hc_conn_close(c, rc == HC_ETOOBIG ? HC_ETOOBIG : HC_ENOMEM, "no room for the node name of %s: %s", c->peer,
                      rc == HC_ETOOBIG ? "the atom table is full" : "out of memory");
        return;
    }
    if (p->blocked) { /* blocked while it was authenticating */
        hc_conn_close(c, HC_EAUTH, "blocked by fault injection");
        return;
    }
    if (p->conn && p->conn != c) {
        hc_conn *old = p->conn;
        if (p->up) {
            /* The peer restarted (or lost its side): the old link is dead, nodedown for it first. */
            hc_conn_close(old, HC_ENOCONN, "replaced by a new connection from the same node");
            peer_after_io(rt, p);
        } else {
            /* Our own dial was still in flight: this connection supersedes it. Not a failure —
             * what was queued for the node goes out on the new link. */
            hc_conn_close(old, HC_ENOCONN, "superseded by the peer's connection");
            p->conn = NULL;
            p->watch.events = 0;
            p->watch.fd = -1;
            graveyard_add(rt, old);
        }
    }
    /* Hand the connection over to the peer: new watch owner, same socket. */
    hc_loop_unwatch(rt->loop, &a->watch);
    watch_owner *o = p->watch.ud;
    if (!o) {
        o = calloc(1, sizeof *o);
        if (!o) {
            hc_conn_close(c, HC_ENOMEM, "out of memory");
            return;
        }
        o->rt = rt;
        o->peer = p;
        p->watch.ud = o;
        p->watch.cb = peer_watch_cb;
    }
    c->hooks = &rt->peer_hooks;
    c->ud = o;
    p->conn = c;
    p->watch.fd = -1;
    p->watch.events = 0;
    a->conn = NULL; /* ownership moved */
    peer_up_hook(c, o);
}

/* Handshakes that fail are logged, but at most ANON_LOG_BURST lines per SHED_LOG_MS: anyone can open
 * connections and fail handshakes, and must not be able to fill the log doing so. */
#define ANON_LOG_BURST 20
static bool anon_log_allowed(hc_rt *rt)
{
    uint64_t now = hc_loop_now(rt->loop);
    if (now >= rt->anon_log_window_end) {
        if (rt->anon_log_suppressed)
            hc_log_warn("%llu more failed incoming handshakes were not logged",
                        (unsigned long long)rt->anon_log_suppressed);
        rt->anon_log_window_end = now + SHED_LOG_MS;
        rt->anon_log_lines = 0;
        rt->anon_log_suppressed = 0;
    }
    if (rt->anon_log_lines < ANON_LOG_BURST) {
        rt->anon_log_lines++;
        return true;
    }
    rt->anon_log_suppressed++;
    return false;
}

static void anon_watch_cb(hc_watch *w, uint32_t events, void *ud)
{
    anon_conn *a = ud;
    hc_rt *rt = a->rt;
    hc_conn *c = a->conn;
    hc_conn_handle(c, events, hc_loop_now(rt->loop));
    if (!a->conn) {
        /* now owned by a peer */
        hc_peer *p = rt_peer_get(rt, hc_atom_find(c->peer, strlen(c->peer)));
        anon_remove(rt, a);
        free(a);
        if (p && p->conn == c) {
            hc_conn_flush(c, hc_loop_now(rt->loop));
            peer_after_io(rt, p);
        }
        return;
    }
    if (c->state != HC_CONN_CLOSED) {
        hc_conn_flush(c, hc_loop_now(rt->loop));
        sync_watch(rt, w, &a->watch_gen, c);
    }
    if (c->state == HC_CONN_CLOSED) {
        bool log = anon_log_allowed(rt);
        if (c->close_code == HC_EDECODE || c->close_code == HC_ETOOBIG)
            rt->stats.dropped_conns++;
        if (!log) {
            /* counted in anon_log_allowed, reported when its window ends */
        } else if (c->aborted_quietly) {
            hc_log_info("%s", c->close_reason);
        } else if (c->close_code == HC_EAUTH) {
            hc_log_warn("rejected connection from %s: %s", c->peer[0] ? c->peer : "unnamed peer", c->close_reason);
        } else if (c->close_code == HC_EDECODE || c->close_code == HC_ETOOBIG) {
            hc_log_warn("dropped incoming connection%s%s: %s", c->peer[0] ? " from " : "", c->peer, c->close_reason);
        } else { /* the peer went away mid-handshake, e.g. it lost a simultaneous connect, or never had the cookie */
            hc_log_debug("incoming connection%s%s closed during the handshake: %s", c->peer[0] ? " from " : "", c->peer,
                         c->close_reason);
        }
        anon_remove(rt, a);
        graveyard_add(rt, c);
        free(a);
    }
}

/* Incoming connections we close at once are counted, and logged once per SHED_LOG_MS with how many: a
 * flood of them must not become a flood of log lines. */
static void shed_note(hc_rt *rt, const char *why)
{
    rt->stats.refused_conns++;
    rt->shed_count++;
    rt->shed_why = why;
    uint64_t now = hc_loop_now(rt->loop);
    if (now < rt->shed_log_at)
        return;
    hc_log_warn("refused %llu incoming connection%s since the last report; the last one because %s",
                (unsigned long long)rt->shed_count, rt->shed_count == 1 ? "" : "s", why);
    rt->shed_count = 0;
    rt->shed_log_at = now + SHED_LOG_MS;
}

static void accept_resume(void *ud)
{
    hc_rt *rt = ud;
    rt->accept_timer = 0;
    if (hc_loop_watch(rt->loop, &rt->listen_watch, EPOLLIN))
        hc_log_error("cannot watch the listening socket again: %s", strerror(errno));
}

/* accept() failed for want of descriptors (or kernel memory). The listening socket stays readable while
 * connections wait in its backlog, so retrying at once would spin at a full core; instead we stop watching
 * it for ACCEPT_PAUSE_MS, as event-loop servers do, and those connections wait in the backlog (or time out
 * on their side) until descriptors free up. */
static void accept_pause(hc_rt *rt, int err)
{
    rt->stats.refused_conns++;
    uint64_t now = hc_loop_now(rt->loop);
    if (now >= rt->shed_log_at) {
        hc_log_warn("cannot accept connections: %s (%zu distribution connections open); pausing accepts for %d ms "
                    "at a time until descriptors free up",
                    strerror(err), rt->nconns, ACCEPT_PAUSE_MS);
        rt->shed_log_at = now + SHED_LOG_MS;
    }
    if (rt->accept_timer)
        return;
    hc_loop_watch(rt->loop, &rt->listen_watch, 0);
    rt->accept_timer = hc_loop_timer_add(rt->loop, ACCEPT_PAUSE_MS, accept_resume, rt);
    if (!rt->accept_timer) /* no memory for the timer: keep accepting rather than stop for good */
        hc_loop_watch(rt->loop, &rt->listen_watch, EPOLLIN);
}

/* Why a new connection must be closed at once, or NULL: the caps on connections and on handshakes in
 * flight (in total, and from one address, so that one host cannot hold every slot). */
static const char *over_cap(const hc_rt *rt, uint32_t addr)
{
    if (rt->nconns >= rt->cfg.max_connections)
        return "--max-connections was reached";
    if (rt->nanon >= rt->cfg.max_handshakes)
        return "--max-handshakes handshakes were in progress";
    uint32_t from_addr = 0;
    for (const anon_conn *a = rt->anon; a; a = a->next)
        from_addr += a->addr == addr;
    if (from_addr >= rt->cfg.max_handshakes_per_addr)
        return "--max-handshakes-per-addr handshakes from its address were in progress";
    return NULL;
}

static void listen_cb(hc_watch *w, uint32_t events, void *ud)
{
    hc_rt *rt = ud;
    (void)w;
    (void)events;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_in sa;
        socklen_t salen = sizeof sa;
        int fd = accept4(rt->listen_fd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                accept_pause(rt, errno);
            else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                hc_log_warn("accept failed: %s", strerror(errno));
            return;
        }
        uint32_t addr = sa.sin_family == AF_INET ? sa.sin_addr.s_addr : 0;
        const char *why = over_cap(rt, addr);
        if (why) {
            close(fd);
            shed_note(rt, why);
            continue;
        }
        anon_conn *a = calloc(1, sizeof *a);
        if (!a) {
            close(fd);
            continue;
        }
        a->rt = rt;
        a->addr = addr;
        a->conn = hc_conn_accept(fd, &rt->conn_cfg, &rt->anon_hooks, a, random_u32(), hc_loop_now(rt->loop));
        if (!a->conn) {
            close(fd);
            free(a);
            continue;
        }
        rt->nconns++;
        a->watch = (hc_watch){.fd = fd, .cb = anon_watch_cb, .ud = a};
        a->watch_gen = a->conn->fd_gen;
        if (hc_loop_watch(rt->loop, &a->watch, EPOLLIN)) {
            conn_free(rt, a->conn);
            free(a);
            continue;
        }
        a->next = rt->anon;
        rt->anon = a;
        rt->nanon++;
    }
}

/* ------------------------------------------------------------------ setup and teardown */

int rt_nodes_init(hc_rt *rt, char *err, size_t errlen)
{
    rt->conn_cfg = (hc_conn_config){
        .our_name = rt->node_name,
        .cookie = rt->cookie,
        .flags = HC_DFLAGS_OURS,
        .max_packet = rt->cfg.max_message_bytes,
        .setup_timeout_ms = SETUP_TIMEOUT_MS,
    };
    rt->peer_hooks = (hc_conn_hooks){.up = peer_up_hook, .packet = peer_packet_hook};
    rt->anon_hooks = (hc_conn_hooks){.decide = anon_decide, .up = anon_up, .packet = NULL};
    if (rt->cfg.tls) {
        /* Certificates are loaded now, so a bad file fails the start, not the first connection. The
         * caller's configuration is not kept (hc_rt_config_get shows tls as NULL). */
        int trc = hc_tls_ctx_new(rt->cfg.tls, &rt->conn_cfg.tls, err, errlen);
        rt->cfg.tls = NULL;
        if (trc)
            return trc;
        hc_log_info("distribution over TLS (%s)", hc_tls_ctx_describe(rt->conn_cfg.tls));
    }

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return HC_EIO;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(rt->cfg.port)};
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 128) < 0) {
        snprintf(err, errlen, "cannot listen on port %u: %s", rt->cfg.port, strerror(errno));
        close(fd);
        return HC_EIO;
    }
    socklen_t alen = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &alen);
    rt->listen_fd = fd;
    rt->port = ntohs(a.sin_port);
    rt->listen_watch = (hc_watch){.fd = fd, .cb = listen_cb, .ud = rt};
    if (hc_loop_watch(rt->loop, &rt->listen_watch, EPOLLIN)) {
        snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
        return HC_EIO;
    }
    if (rt->cfg.register_epmd) {
        char alive[HC_NODE_NAME_MAX];
        size_t n = (size_t)(strchr(rt->node_name, '@') - rt->node_name);
        memcpy(alive, rt->node_name, n);
        alive[n] = 0;
        int rc = hc_epmd_register(alive, rt->port, &rt->epmd_fd, &rt->creation, err, errlen);
        if (rc)
            return rc;
    } else {
        rt->creation = random_u32() | 4; /* creations 0..3 are reserved by old protocol versions */
    }
    rt->conn_cfg.creation = rt->creation;
    return HC_OK;
}

void rt_nodes_free(hc_rt *rt)
{
    for (anon_conn *a = rt->anon, *n; a; a = n) {
        n = a->next;
        conn_free(rt, a->conn);
        free(a);
    }
    rt->anon = NULL;
    rt->nanon = 0;
    if (rt->accept_timer)
        hc_loop_timer_cancel(rt->loop, rt->accept_timer);
    rt->accept_timer = 0;
    for (size_t i = 0; i < rt->peers.cap; i++) {
        if (!hc_hmap_live(&rt->peers, i))
            continue;
        hc_peer *p = rt->peers.vals[i];
        if (p->conn) {
            hc_conn_flush(p->conn, hc_loop_now(rt->loop)); /* best effort: exits and DOWNs on their way */
            conn_free(rt, p->conn);
        }
        hc_wq_free(&p->pending);
        for (conn_cb *c = p->on_result, *n; c; c = n) {
            n = c->next;
            free(c);
        }
        free(p->watch.ud);
        free(p);
    }
    hc_hmap_free(&rt->peers);
    if (rt->listen_fd >= 0)
        close(rt->listen_fd);
    if (rt->epmd_fd >= 0)
        close(rt->epmd_fd);
    hc_tls_ctx_free(rt->conn_cfg.tls); /* connections still in the graveyard hold their own reference */
    rt->conn_cfg.tls = NULL;
}

void rt_nodes_tick(hc_rt *rt)
{
    uint64_t now = hc_loop_now(rt->loop);
    uint32_t tt = rt->cfg.ticktime_s * 1000;
    for (size_t i = 0; i < rt->peers.cap; i++) {
        if (!hc_hmap_live(&rt->peers, i))
            continue;
        hc_peer *p = rt->peers.vals[i];
        if (p->conn) {
            hc_conn_tick(p->conn, now, tt);
            peer_after_io(rt, p);
        } else if (p->waiting_incoming && now >= p->wait_deadline) {
            peer_failed(rt, p, HC_ETIMEOUT, "simultaneous connect: the peer's connection never came");
        }
    }
    for (anon_conn *a = rt->anon, *n; a; a = n) {
        n = a->next;
        hc_conn_tick(a->conn, now, tt);
        if (a->conn->state == HC_CONN_CLOSED)
            anon_watch_cb(&a->watch, 0, a);
    }
}

/* ------------------------------------------------------------------ queries */

size_t hc_rt_peers(const hc_rt *rt, hc_atom *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < rt->peers.cap; i++) {
        if (!hc_hmap_live(&rt->peers, i))
            continue;
        hc_peer *p = rt->peers.vals[i];
        if (p->up) {
            if (n < max)
                out[n] = p->node;
            n++;
        }
    }
    return n;
}

bool hc_rt_is_connected(const hc_rt *rt, hc_atom node)
{
    hc_peer *p = rt_peer_get(rt, node);
    return p && p->up;
}

bool hc_rt_peer_busy(const hc_rt *rt, hc_atom node)
{
    hc_peer *p = rt_peer_get(rt, node);
    if (!p)
        return false;
    size_t q = p->pending.bytes + (p->conn ? hc_conn_backlog(p->conn) : 0);
    return q > rt->cfg.busy_limit_bytes;
}

int hc_rt_block(hc_rt *rt, hc_atom node)
{
    if (node == rt->node)
        return HC_EINVAL; /* a node cannot cut itself off from itself */
    hc_peer *p = peer_get_or_create(rt, node);
    if (!p)
        return HC_ENOMEM;
    p->blocked = true;
    if (p->conn) {
        hc_conn_close(p->conn, HC_ENOCONN, "blocked by fault injection");
        peer_after_io(rt, p);
    }
    if (p->waiting_incoming)
        peer_failed(rt, p, HC_ENOCONN, "blocked by fault injection");
    hc_log_info("blocked %s", hc_atom_name(node));
    return HC_OK;
}

void hc_rt_unblock(hc_rt *rt, hc_atom node)
{
    hc_peer *p = rt_peer_get(rt, node);
    if (p && p->blocked) {
        p->blocked = false;
        p->retry_at = 0;
        p->backoff_ms = 0;
        hc_log_info("unblocked %s", hc_atom_name(node));
    }
}

int hc_rt_subscribe_nodes(hc_rt *rt, hc_node_event_cb cb, void *ud, uint64_t *handle)
{
    if (handle)
        *handle = 0;
    if (!cb)
        return HC_EINVAL;
    node_sub *s = malloc(sizeof *s);
    if (!s)
        return HC_ENOMEM;
    *s = (node_sub){rt->subs, rt->next_sub++, cb, ud};
    rt->subs = s;
    if (handle)
        *handle = s->handle;
    return HC_OK;
}

void hc_rt_unsubscribe_nodes(hc_rt *rt, uint64_t handle)
{
    for (node_sub **pp = &rt->subs; *pp; pp = &(*pp)->next)
        if ((*pp)->handle == handle && (*pp)->cb) {
            node_sub *s = *pp;
            if (rt->notifying) { /* notify_subs is walking the list: it frees the entry afterwards */
                s->cb = NULL;
                return;
            }
            *pp = s->next;
            free(s);
            return;
        }
}
