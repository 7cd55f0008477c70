/* conn.c — see conn.h. */
#include "dist/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/etf.h"
#include "dist/epmd.h"
#include "dist/flags.h"

#define READ_BUDGET (4u << 20) /* bytes read per wake-up, so one flooding peer cannot starve the others */

void hc_conn_close(hc_conn *c, int code, const char *fmt, ...)
{
    if (c->state == HC_CONN_CLOSED)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->close_reason, sizeof c->close_reason, fmt, ap);
    va_end(ap);
    c->close_code = code;
    c->state = HC_CONN_CLOSED;
    hc_tls_free(c->tls); /* before the socket closes: it may still send close_notify */
    c->tls = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

void hc_conn_free(hc_conn *c)
{
    if (!c)
        return;
    hc_tls_free(c->tls);
    if (c->fd >= 0)
        close(c->fd);
    hc_rbuf_free(&c->rb);
    hc_wq_free(&c->wq);
    hc_ac_free(c->ac);
    free(c);
}

static hc_conn *conn_new(const hc_conn_config *cfg, const hc_conn_hooks *hooks, void *ud, uint64_t now)
{
    hc_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = -1;
    c->cfg = cfg;
    c->hooks = hooks;
    c->ud = ud;
    c->setup_deadline_ms = now + cfg->setup_timeout_ms;
    c->last_rx_ms = c->last_tx_ms = now;
    hc_rbuf_init(&c->rb, 2, 0xFFFF);
    hc_wq_init(&c->wq);
    return c;
}

static void set_sockopts(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

hc_conn *hc_conn_accept(int fd, const hc_conn_config *cfg, const hc_conn_hooks *hooks, void *ud, uint32_t challenge,
                        uint64_t now_ms)
{
    hc_conn *c = conn_new(cfg, hooks, ud, now_ms);
    if (!c)
        return NULL;
    c->fd = fd;
    set_sockopts(fd);
    c->state = HC_CONN_HANDSHAKE;
    hc_hs_start_accept(&c->hs, cfg->our_name, cfg->cookie, cfg->flags, cfg->creation, challenge);
    if (cfg->tls) {
        /* TLS first; the distribution handshake then runs inside it with 4-byte packet lengths. */
        c->tls = hc_tls_new(cfg->tls, fd, true, NULL);
        if (!c->tls) {
            c->fd = -1; /* the caller closes it */
            hc_conn_free(c);
            return NULL;
        }
        c->state = HC_CONN_TLS_HANDSHAKE;
        c->rb.header = 4;
    }
    return c;
}

static int start_tcp(hc_conn *c, uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = c->addr};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    set_sockopts(fd);
    c->fd = fd;
    c->fd_gen++;
    return 0;
}

static int epmd_port_number(void)
{
    const char *s = getenv("ERL_EPMD_PORT");
    int p = s ? atoi(s) : 0;
    return p > 0 && p < 65536 ? p : HC_EPMD_PORT;
}

hc_conn *hc_conn_connect(const char *peer, const hc_conn_config *cfg, const hc_conn_hooks *hooks, void *ud,
                         uint32_t challenge, uint64_t now_ms, char *err, size_t errlen)
{
    const char *at = strchr(peer, '@');
    if (!at || at == peer || !at[1] || strlen(peer) >= HC_NODE_NAME_MAX) {
        snprintf(err, errlen, "'%s' is not a node name (want name@host)", peer);
        return NULL;
    }
    /* Resolving a host name can block (DNS); numeric addresses and /etc/hosts entries, the normal case
     * for cluster nodes, return at once. */
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int gai = getaddrinfo(at + 1, NULL, &hints, &res);
    if (gai != 0 || !res) {
        snprintf(err, errlen, "cannot resolve host of %s: %s", peer, gai_strerror(gai));
        return NULL;
    }
    hc_conn *c = conn_new(cfg, hooks, ud, now_ms);
    if (!c) {
        freeaddrinfo(res);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr.s_addr;
    freeaddrinfo(res);
    c->connector = true;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->hs.our_challenge = challenge;
    if (start_tcp(c, (uint16_t)epmd_port_number()) < 0) {
        snprintf(err, errlen, "cannot reach epmd of %s: %s", peer, strerror(errno));
        hc_conn_free(c);
        return NULL;
    }
    c->state = HC_CONN_EPMD_CONNECTING;
    return c;
}

uint32_t hc_conn_wanted_events(const hc_conn *c)
{
    switch (c->state) {
    case HC_CONN_EPMD_CONNECTING:
    case HC_CONN_TCP_CONNECTING: return EPOLLOUT;
    case HC_CONN_CLOSED: return 0;
    case HC_CONN_TLS_HANDSHAKE: return hc_tls_wants(c->tls) == HC_TLS_WANT_WRITE ? EPOLLOUT : EPOLLIN;
    default: return EPOLLIN | (c->wq.bytes || (c->tls && hc_tls_wants(c->tls) == HC_TLS_WANT_WRITE) ? EPOLLOUT : 0);
    }
}

/* 'p', 131, Control, [131, Message]: the framing of a connection without the atom cache. */
static int send_pass_through(hc_conn *c, const uint8_t *ctrl, size_t clen, const uint8_t *msg, size_t mlen)
{
    size_t total = clen + (msg ? 1 + mlen : 0);
    if (total > UINT32_MAX)
        return HC_ETOOBIG;
    uint8_t hdr[4] = {(uint8_t)(total >> 24), (uint8_t)(total >> 16), (uint8_t)(total >> 8), (uint8_t)total};
    uint8_t ver = 131;
    struct iovec iov[4] = {{hdr, 4}, {(void *)ctrl, clen}, {&ver, 1}, {(void *)msg, mlen}};
    int rc = hc_wq_append(&c->wq, iov, msg ? 4 : 2);
    if (rc == HC_OK)
        c->packets_out++;
    return rc;
}

int hc_conn_send(hc_conn *c, const uint8_t *ctrl, size_t clen, const uint8_t *msg, size_t mlen)
{
    if (c->state == HC_CONN_CLOSED)
        return HC_ENOCONN;
    if (!c->ac)
        return send_pass_through(c, ctrl, clen, msg, mlen);
    const struct iovec *iov;
    int n;
    int rc = hc_ac_encode(c->ac, ctrl, clen, msg, mlen, &iov, &n);
    if (rc == HC_OK)
        rc = hc_wq_append(&c->wq, iov, n);
    if (rc != HC_OK)
        return rc;
    hc_ac_commit(c->ac); /* queued: the peer will see the new cache entries, in this order */
    c->packets_out++;
    return HC_OK;
}

typedef struct adopt_ctx {
    hc_conn *c;
    size_t dropped;
} adopt_ctx;

/* One chunk of a pending queue: whole packets, each re-sent through hc_conn_send. */
static int adopt_chunk(const uint8_t *p, size_t len, void *ud)
{
    adopt_ctx *a = ud;
    size_t i = 0;
    while (len - i >= 4) {
        size_t n = hc_get_be32(p + i);
        i += 4;
        if (n > len - i) { /* cannot happen (one append, one chunk): the rest is unusable */
            a->dropped++;
            return HC_OK;
        }
        const uint8_t *pk = p + i;
        i += n;
        if (n == 0)
            continue; /* a tick: pointless once the link is up */
        size_t j = 2;
        if (n < 3 || pk[0] != 'p' || pk[1] != ETF_VERSION || hc_dec_skip(pk, n, &j) ||
            (j < n && (pk[j] != ETF_VERSION || j + 1 == n))) {
            a->dropped++;
            continue;
        }
        int rc = j < n ? hc_conn_send(a->c, pk, j, pk + j + 1, n - j - 1) : hc_conn_send(a->c, pk, j, NULL, 0);
        if (rc)
            return rc;
    }
    if (i != len)
        a->dropped++;
    return HC_OK;
}

int hc_conn_adopt(hc_conn *c, hc_wqueue *pending, size_t *dropped)
{
    *dropped = 0;
    if (!c->ac) {
        hc_wq_splice(&c->wq, pending);
        return HC_OK;
    }
    adopt_ctx a = {c, 0};
    int rc = hc_wq_visit(pending, adopt_chunk, &a);
    hc_wq_free(pending);
    hc_wq_init(pending);
    *dropped = a.dropped;
    return rc;
}

/* Handshake packets come from hc_hs_* with 2-byte lengths; inside TLS they travel with 4-byte ones, as
 * inet_tls_dist sends them ({packet, 4} from the start). */
static int queue_raw(hc_conn *c, const hc_buf *b)
{
    if (!c->tls) {
        struct iovec iov = {b->data, b->len};
        return hc_wq_append(&c->wq, &iov, 1);
    }
    for (size_t i = 0; i + 2 <= b->len;) {
        size_t n = hc_get_be16(b->data + i);
        if (n > b->len - i - 2)
            return HC_EINVAL;
        uint8_t hdr[4] = {0, 0, (uint8_t)(n >> 8), (uint8_t)n};
        struct iovec iov[2] = {{hdr, 4}, {b->data + i + 2, n}};
        int rc = hc_wq_append(&c->wq, iov, 2);
        if (rc)
            return rc;
        i += 2 + n;
    }
    return HC_OK;
}

static ssize_t tls_writev(void *ud, const struct iovec *iov, int n) { return hc_tls_writev(ud, iov, n); }

void hc_conn_flush(hc_conn *c, uint64_t now_ms)
{
    if (c->state == HC_CONN_CLOSED || c->fd < 0 || !c->wq.bytes)
        return;
    if (c->state == HC_CONN_EPMD_CONNECTING || c->state == HC_CONN_TCP_CONNECTING || c->state == HC_CONN_TLS_HANDSHAKE)
        return;
    size_t before = c->wq.bytes;
    int rc = c->tls ? hc_wq_flush_with(&c->wq, tls_writev, c->tls) : hc_wq_flush(&c->wq, c->fd);
    if (before != c->wq.bytes) {
        c->bytes_out += before - c->wq.bytes;
        c->last_tx_ms = now_ms;
    }
    if (rc < 0)
        hc_conn_close(c, HC_EIO, "write failed: %s", c->tls ? hc_tls_error(c->tls) : strerror(errno));
}

/* ------------------------------------------------------------------ dialling */

static int socket_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno;
    return err;
}

static void epmd_connected(hc_conn *c)
{
    int err = socket_error(c->fd);
    if (err) {
        hc_conn_close(c, HC_ENOCONN, "cannot reach epmd on the host of %s: %s", c->peer, strerror(err));
        return;
    }
    char alive[HC_NODE_NAME_MAX];
    size_t n = (size_t)(strchr(c->peer, '@') - c->peer);
    memcpy(alive, c->peer, n);
    alive[n] = 0;
    hc_buf req = {0};
    if (hc_epmd_port_request(&req, alive) || write(c->fd, req.data, req.len) != (ssize_t)req.len) {
        hc_buf_free(&req);
        hc_conn_close(c, HC_ENOCONN, "cannot query epmd for %s", c->peer);
        return;
    }
    hc_buf_free(&req);
    c->rb.header = 0; /* raw bytes: the reply is not length-prefixed */
    c->state = HC_CONN_EPMD_WAIT;
}

static void epmd_readable(hc_conn *c)
{
    uint8_t *dst;
    size_t room;
    if (hc_rbuf_prepare(&c->rb, 64, &dst, &room)) {
        hc_conn_close(c, HC_ENOMEM, "out of memory");
        return;
    }
    ssize_t k = read(c->fd, dst, room);
    if (k < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (k > 0)
        hc_rbuf_commit(&c->rb, (size_t)k);
    uint16_t port = 0;
    int rc = hc_epmd_port_reply(c->rb.data + c->rb.start, hc_rbuf_pending(&c->rb), &port);
    if (rc == 0 && k > 0)
        return; /* need more */
    if (rc != 1) {
        hc_conn_close(c, HC_ENOCONN, "%s is not registered with epmd on its host", c->peer);
        return;
    }
    close(c->fd);
    c->fd = -1;
    c->rb.start = c->rb.end = 0;
    c->rb.header = 2;
    if (start_tcp(c, port) < 0) {
        hc_conn_close(c, HC_ENOCONN, "cannot connect to %s: %s", c->peer, strerror(errno));
        return;
    }
    c->state = HC_CONN_TCP_CONNECTING;
}

static void read_packets(hc_conn *c, uint64_t now);

/* Connector: the distribution handshake starts with send_name. */
static void start_dist_handshake(hc_conn *c)
{
    hc_buf out = {0};
    uint32_t challenge = c->hs.our_challenge;
    int rc = hc_hs_start_connect(&c->hs, c->cfg->our_name, c->peer, c->cfg->cookie, c->cfg->flags, c->cfg->creation,
                                 challenge, &out);
    if (rc || queue_raw(c, &out)) {
        hc_buf_free(&out);
        hc_conn_close(c, HC_ENOMEM, "cannot start handshake");
        return;
    }
    hc_buf_free(&out);
    c->state = HC_CONN_HANDSHAKE;
}

/* "1.2.3.4:5678" of the peer's socket, for log lines about connections that have no node name yet. */
static const char *peer_addr(const hc_conn *c, char *buf, size_t len)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    if (c->fd < 0 || getpeername(c->fd, (struct sockaddr *)&a, &alen) < 0 || a.sin_family != AF_INET)
        return "unknown address";
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
    snprintf(buf, len, "%s:%u", ip, ntohs(a.sin_port));
    return buf;
}

/* Advances the TLS handshake; once done, the distribution handshake starts inside it. */
static void tls_step(hc_conn *c, uint64_t now)
{
    int rc = hc_tls_handshake(c->tls);
    if (rc == 1)
        return;
    if (rc < 0) {
        char addr[64];
        if (c->connector)
            hc_conn_close(c, rc, "TLS with %s failed: %s", c->peer, hc_tls_error(c->tls));
        else
            hc_conn_close(c, rc, "TLS from %s failed: %s", peer_addr(c, addr, sizeof addr), hc_tls_error(c->tls));
        return;
    }
    if (c->connector) {
        start_dist_handshake(c);
        if (c->state == HC_CONN_HANDSHAKE)
            hc_conn_flush(c, now);
    } else {
        c->state = HC_CONN_HANDSHAKE;
    }
    /* The peer's first packets may have come with its last handshake flight: OpenSSL holds them now,
     * and epoll will not report them again. */
    if (c->state == HC_CONN_HANDSHAKE)
        read_packets(c, now);
}

static void tcp_connected(hc_conn *c, uint64_t now)
{
    int err = socket_error(c->fd);
    if (err) {
        hc_conn_close(c, HC_ENOCONN, "cannot connect to %s: %s", c->peer, strerror(err));
        return;
    }
    if (!c->cfg->tls) {
        start_dist_handshake(c);
        return;
    }
    c->tls = hc_tls_new(c->cfg->tls, c->fd, false, strchr(c->peer, '@') + 1);
    if (!c->tls) {
        hc_conn_close(c, HC_ENOMEM, "out of memory starting TLS with %s", c->peer);
        return;
    }
    c->state = HC_CONN_TLS_HANDSHAKE;
    c->rb.header = 4;
    tls_step(c, now);
}

/* ------------------------------------------------------------------ reading */

static void handshake_packet(hc_conn *c, const uint8_t *p, size_t n, uint64_t now)
{
    hc_buf out = {0};
    int rc = hc_hs_feed(&c->hs, p, n, &out);
    if (rc == HC_HS_DECIDE) {
        snprintf(c->peer, sizeof c->peer, "%s", c->hs.peer_name);
        const char *status = c->hooks->decide ? c->hooks->decide(c, c->ud) : "ok";
        if (c->state == HC_CONN_CLOSED) {
            hc_buf_free(&out);
            return;
        }
        rc = hc_hs_decide(&c->hs, status, &out);
    }
    if (out.len && queue_raw(c, &out))
        rc = HC_ENOMEM;
    hc_buf_free(&out);
    if (rc == HC_HS_ABORTED) {
        /* Status packets must still reach the peer before we close. */
        hc_conn_flush(c, now);
        c->aborted_quietly = true;
        hc_conn_close(c, HC_EAUTH, "handshake with %s ended: %s", c->peer[0] ? c->peer : "peer", c->hs.error);
        return;
    }
    if (rc < 0) {
        hc_conn_close(c, rc, "handshake with %s failed: %s", c->peer[0] ? c->peer : "unnamed peer",
                      c->hs.error ? c->hs.error : hc_strerror(rc));
        return;
    }
    if (rc == HC_HS_UP) {
        if (c->hs.peer_flags & c->cfg->flags & DFLAG_DIST_HDR_ATOM_CACHE) {
            c->ac = hc_ac_new();
            if (!c->ac) {
                hc_conn_close(c, HC_ENOMEM, "out of memory for the atom cache of %s", c->peer);
                return;
            }
        }
        c->state = HC_CONN_UP;
        c->rb.header = 4;
        c->rb.max_packet = c->cfg->max_packet;
        c->last_rx_ms = c->last_tx_ms = now;
        if (c->hooks->up)
            c->hooks->up(c, c->ud);
    }
}

/* The transport's read: -1 with errno EAGAIN when nothing is there yet, 0 at the end of the stream. */
static ssize_t conn_read(hc_conn *c, void *dst, size_t room)
{
    return c->tls ? hc_tls_read(c->tls, dst, room) : read(c->fd, dst, room);
}

/* The first bytes of a plain-TCP connection tell a peer that speaks TLS: a ClientHello (0x16) or, to our
 * handshake, an alert (0x15), each followed by major version 3. Read as a 2-byte length they would make
 * us wait for bytes that never come, so say at once what is wrong. */
static bool refuse_tls_peer(hc_conn *c)
{
    if (c->tls || c->state != HC_CONN_HANDSHAKE || hc_rbuf_pending(&c->rb) < 2 ||
        (c->hs.state != HC_HS_ST_WAIT_NAME && c->hs.state != HC_HS_ST_WAIT_STATUS))
        return false;
    const uint8_t *p = c->rb.data + c->rb.start;
    if ((p[0] != 0x16 && p[0] != 0x15) || p[1] != 0x03)
        return false;
    if (c->connector)
        hc_conn_close(c, HC_ENOCONN,
                      "%s answered with TLS: it runs distribution over TLS (-proto_dist inet_tls) and this node "
                      "runs plain TCP (give hordec --ssl-dist-optfile)",
                      c->peer);
    else
        hc_conn_close(c, HC_EDECODE,
                      "refused a TLS connection: this node runs plain-TCP distribution (start it with "
                      "--ssl-dist-optfile to accept TLS)");
    return true;
}

static void read_packets(hc_conn *c, uint64_t now)
{
    size_t budget = READ_BUDGET;
    while (c->state == HC_CONN_HANDSHAKE || c->state == HC_CONN_UP) {
        uint8_t *dst;
        size_t room;
        if (hc_rbuf_prepare(&c->rb, 16 * 1024, &dst, &room)) {
            hc_conn_close(c, HC_ENOMEM, "out of memory reading from %s", c->peer);
            return;
        }
        ssize_t k = conn_read(c, dst, room);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            hc_conn_close(c, HC_EIO, "read error: %s", c->tls ? hc_tls_error(c->tls) : strerror(errno));
            return;
        }
        if (k == 0) {
            /* A BEAM that finds our challenge reply's digest wrong (another cookie) just closes, so a close
             * while we wait for the challenge ack is an authentication failure. */
            if (c->state == HC_CONN_HANDSHAKE && c->hs.state == HC_HS_ST_WAIT_ACK)
                hc_conn_close(c, HC_EAUTH,
                              "%s closed the connection instead of acknowledging our challenge reply "
                              "(it probably has another cookie)",
                              c->peer);
            else
                hc_conn_close(c, HC_ENOCONN, "connection closed by peer");
            return;
        }
        hc_rbuf_commit(&c->rb, (size_t)k);
        c->bytes_in += (size_t)k;
        c->last_rx_ms = now;
        if (refuse_tls_peer(c))
            return;
        for (;;) {
            const uint8_t *p;
            size_t n;
            int r = hc_rbuf_next(&c->rb, &p, &n);
            if (r == 0)
                break;
            if (r < 0) {
                hc_conn_close(c, HC_ETOOBIG, "malformed input: packet of %u bytes exceeds the %zu byte limit",
                              c->rb.header == 2 ? hc_get_be16(c->rb.data + c->rb.start)
                                                : hc_get_be32(c->rb.data + c->rb.start),
                              c->rb.max_packet);
                return;
            }
            if (c->state == HC_CONN_HANDSHAKE) {
                handshake_packet(c, p, n, now);
            } else if (n > 0) { /* zero length = tick: receiving it is all it is for */
                c->packets_in++;
                if (c->ac) {
                    /* The packet lies in our own read buffer, so it may be rewritten in place. */
                    const char *why;
                    int arc = hc_ac_normalize(c->ac, (uint8_t *)p, n, &p, &n, &why);
                    if (arc) {
                        hc_conn_close(c, arc == HC_ENOMEM ? HC_ENOMEM : HC_EDECODE,
                                      "malformed input: %s (packet of %zu bytes)",
                                      arc == HC_ENOMEM ? "out of memory" : why, n);
                        return;
                    }
                }
                if (c->hooks->packet(c, p, n, c->ud) < 0 && c->state != HC_CONN_CLOSED)
                    hc_conn_close(c, HC_EDECODE, "malformed input");
            }
            if (c->state == HC_CONN_CLOSED)
                return;
        }
        /* A short read drained the socket: don't spend a syscall to hear EAGAIN. Level-triggered
         * epoll brings us back when more arrives, and after the budget, so one peer cannot starve
         * the others. */
        if (c->tls) {
            /* TLS hands out one record per read, so a short read means nothing. What OpenSSL holds
             * (at most its read-ahead buffer) is drained even past the budget: epoll cannot see it. */
            if ((size_t)k >= budget && !hc_tls_pending(c->tls))
                return;
            budget -= (size_t)k < budget ? (size_t)k : budget;
            continue;
        }
        if ((size_t)k < room || (size_t)k >= budget)
            return;
        budget -= (size_t)k;
    }
}

void hc_conn_handle(hc_conn *c, uint32_t events, uint64_t now_ms)
{
    if (c->state == HC_CONN_CLOSED)
        return;
    if (c->state == HC_CONN_EPMD_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            epmd_connected(c);
        return;
    }
    if (c->state == HC_CONN_EPMD_WAIT) {
        if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            epmd_readable(c);
        return;
    }
    if (c->state == HC_CONN_TCP_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            tcp_connected(c, now_ms);
        if (c->state == HC_CONN_HANDSHAKE)
            hc_conn_flush(c, now_ms);
        return;
    }
    if (c->state == HC_CONN_TLS_HANDSHAKE) {
        tls_step(c, now_ms);
        return;
    }
    if (c->tls && hc_tls_wants(c->tls) == HC_TLS_WANT_WRITE && (events & EPOLLOUT))
        events |= EPOLLIN; /* a read that waited for the socket to take a TLS record: retry it */
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        read_packets(c, now_ms);
    if (c->state != HC_CONN_CLOSED && (events & EPOLLOUT))
        hc_conn_flush(c, now_ms);
}

void hc_conn_tick(hc_conn *c, uint64_t now, uint32_t ticktime_ms)
{
    if (c->state == HC_CONN_CLOSED)
        return;
    if (c->state != HC_CONN_UP) {
        if (now >= c->setup_deadline_ms && c->state == HC_CONN_TLS_HANDSHAKE) {
            char addr[64];
            hc_conn_close(c, HC_ETIMEOUT, "TLS handshake with %s did not complete in time%s",
                          c->connector ? c->peer : peer_addr(c, addr, sizeof addr),
                          c->connector ? " (does it run distribution over TLS?)" : "");
        } else if (now >= c->setup_deadline_ms)
            hc_conn_close(c, HC_ETIMEOUT, "connection setup with %s timed out", c->peer[0] ? c->peer : "peer");
        return;
    }
    if (now - c->last_rx_ms >= ticktime_ms) {
        hc_conn_close(c, HC_ETIMEOUT, "net_tick_timeout: nothing received from %s for %u ms", c->peer,
                      (unsigned)(now - c->last_rx_ms));
        return;
    }
    if (now - c->last_tx_ms >= ticktime_ms / 4 && !c->wq.bytes) {
        static const uint8_t tick[4] = {0, 0, 0, 0};
        struct iovec iov = {(void *)tick, 4};
        if (hc_wq_append(&c->wq, &iov, 1) == HC_OK)
            hc_conn_flush(c, now);
    }
}
