/* metrics_http.c — the HTTP side of the metrics endpoint (metrics.h): a listener and a few connections, all
 * non-blocking on the runtime's loop. One request is handled at a time per connection: while a response is being
 * written nothing more is read, so a client that pipelines requests and never reads costs one response at most. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon/metrics.h"
#include "daemon/metrics_text.h"
#include "hordec/hc_log.h"

#define SWEEP_MS 1000u
#define ACCEPT_PAUSE_MS 1000u

typedef struct mconn {
    hordec_metrics *m;
    int fd;
    hc_fd_watch *w;
    size_t in_len;
    hc_buf out;
    size_t out_off;
    uint64_t last_ms;    /* the last progress either way */
    uint64_t request_ms; /* when the request being read began (0: none yet) */
    bool close_after;    /* close once the response is written */
    char in[HORDEC_METRICS_MAX_REQUEST];
} mconn;

struct hordec_metrics {
    hc_rt *rt;
    int lfd;
    hc_fd_watch *lw;
    uint16_t port;
    mconn *conns[HORDEC_METRICS_MAX_CONNS];
    size_t nconns;
    hc_timer_id sweep, resume;
    double start_unix_s;
    uint64_t refused_logged_at;
};

static void conn_close(mconn *c)
{
    hordec_metrics *m = c->m;
    for (size_t i = 0; i < m->nconns; i++)
        if (m->conns[i] == c) {
            m->conns[i] = m->conns[--m->nconns];
            break;
        }
    hc_fd_watch_stop(m->rt, c->w); /* safe from c's own callback: the watch goes after this iteration */
    close(c->fd);
    hc_buf_free(&c->out);
    free(c);
}

/* ------------------------------------------------------------------ responses */

static void respond(mconn *c, int status, const char *reason, const char *extra_headers, const char *ctype,
                    const hc_buf *body, const char *text, bool head)
{
    size_t blen = body ? body->len : text ? strlen(text) : 0;
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: %s\r\n\r\n", status,
                     reason, ctype, blen, extra_headers ? extra_headers : "", c->close_after ? "close" : "keep-alive");
    hc_buf_reset(&c->out);
    c->out_off = 0;
    hc_buf_append(&c->out, hdr, (size_t)n);
    if (!head && body)
        hc_buf_append(&c->out, body->data, body->len);
    else if (!head && text)
        hc_buf_append(&c->out, text, blen);
    if (c->out.err) { /* out of memory: nothing sensible can be sent */
        hc_buf_reset(&c->out);
        c->close_after = true;
    }
}

static void respond_text(mconn *c, int status, const char *reason, const char *extra, const char *text, bool head)
{
    respond(c, status, reason, extra, "text/plain; charset=utf-8", NULL, text, head);
}

/* ------------------------------------------------------------------ requests */

/* Case-insensitive: does the header line `line` (len bytes) have the name `name`? Sets *value to what follows
 * the colon, without leading blanks. */
static bool header_is(const char *line, size_t len, const char *name, const char **value, size_t *vlen)
{
    size_t n = strlen(name);
    if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
        return false;
    size_t i = n + 1;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    *value = line + i;
    *vlen = len - i;
    while (*vlen && (line[i + *vlen - 1] == ' ' || line[i + *vlen - 1] == '\t'))
        (*vlen)--;
    return true;
}

static bool token_in(const char *v, size_t vlen, const char *tok)
{
    size_t n = strlen(tok);
    for (size_t i = 0; i + n <= vlen; i++)
        if (strncasecmp(v + i, tok, n) == 0 && (i == 0 || v[i - 1] == ',' || v[i - 1] == ' ') &&
            (i + n == vlen || v[i + n] == ',' || v[i + n] == ' '))
            return true;
    return false;
}

/* Handles the request in c->in[0..hlen) (its line and headers, up to and including the blank line). */
static void handle_request(mconn *c, size_t hlen)
{
    /* Split into lines; the first is "METHOD SP TARGET SP VERSION". */
    char *p = c->in, *end = c->in + hlen;
    char *eol = memchr(p, '\n', (size_t)(end - p));
    size_t llen = (size_t)(eol - p);
    if (llen && p[llen - 1] == '\r')
        llen--;
    char line[1024];
    if (llen >= sizeof line) {
        c->close_after = true;
        respond_text(c, 414, "URI Too Long", NULL, "request line too long\n", false);
        return;
    }
    memcpy(line, p, llen);
    line[llen] = 0;
    char *method = line, *target = strchr(line, ' '), *version = NULL;
    if (target) {
        *target++ = 0;
        version = strchr(target, ' ');
        if (version)
            *version++ = 0;
    }
    bool v11 = version && strcmp(version, "HTTP/1.1") == 0, v10 = version && strcmp(version, "HTTP/1.0") == 0;
    if (!target || !*method || !*target || (!v11 && !v10)) {
        c->close_after = true;
        respond_text(c, 400, "Bad Request", NULL, "malformed request line\n", false);
        return;
    }
    c->close_after = v10; /* HTTP/1.0: close unless asked to keep alive */
    bool body = false;
    for (p = eol + 1; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)(nl - p);
        if (len && p[len - 1] == '\r')
            len--;
        const char *v;
        size_t vlen;
        if (header_is(p, len, "Connection", &v, &vlen)) {
            if (token_in(v, vlen, "close"))
                c->close_after = true;
            else if (token_in(v, vlen, "keep-alive"))
                c->close_after = false;
        } else if (header_is(p, len, "Transfer-Encoding", &v, &vlen) ||
                   (header_is(p, len, "Content-Length", &v, &vlen) && !(vlen == 1 && v[0] == '0'))) {
            body = true;
        }
        p = nl + 1;
    }
    bool head = strcmp(method, "HEAD") == 0;
    if (body) { /* nothing here takes a body: refuse rather than read it */
        c->close_after = true;
        respond_text(c, 400, "Bad Request", NULL, "a request body is not accepted here\n", false);
    } else if (!head && strcmp(method, "GET") != 0) {
        respond_text(c, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n", "only GET and HEAD\n", false);
    } else {
        size_t plen = strcspn(target, "?#");
        if (plen != 8 || strncmp(target, "/metrics", 8) != 0) {
            respond_text(c, 404, "Not Found", NULL, "not found: the metrics are at /metrics\n", head);
            return;
        }
        hc_buf b = {0};
        if (hordec_metrics_render(c->m->rt, c->m->start_unix_s, &b)) {
            respond_text(c, 500, "Internal Server Error", NULL, "out of memory\n", head);
        } else
            respond(c, 200, "OK", NULL, HORDEC_PROM_CONTENT_TYPE, &b, NULL, head);
        hc_buf_free(&b);
    }
}

/* The end of the request's header block in c->in (just past the blank line), or 0 if it has not all arrived. */
static size_t header_end(const mconn *c)
{
    for (size_t i = 0; i < c->in_len; i++) {
        if (c->in[i] != '\n')
            continue;
        if (i + 1 < c->in_len && c->in[i + 1] == '\n')
            return i + 2;
        if (i + 2 < c->in_len && c->in[i + 1] == '\r' && c->in[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* Writes what the socket takes. Returns 1 when the response is all written, 0 if the socket is full, -1 when
 * the connection must close. */
static int flush_out(mconn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            return -1;
        c->out_off += (size_t)n;
        c->last_ms = hc_rt_now_ms(c->m->rt);
    }
    hc_buf_reset(&c->out);
    c->out_off = 0;
    return 1;
}

/* Runs the connection as far as it goes: write what is pending, then answer whole requests already read. */
static void conn_run(mconn *c)
{
    for (;;) {
        if (c->out.len) {
            int r = flush_out(c);
            if (r < 0 || (r > 0 && c->close_after)) {
                conn_close(c);
                return;
            }
            if (r == 0) {
                hc_fd_watch_set(c->m->rt, c->w, HC_FD_WRITE);
                return;
            }
        }
        size_t hlen = header_end(c);
        if (!hlen) {
            if (c->in_len == sizeof c->in) {
                c->close_after = true;
                respond_text(c, 431, "Request Header Fields Too Large", NULL, "request too large\n", false);
                c->in_len = 0;
                continue;
            }
            hc_fd_watch_set(c->m->rt, c->w, HC_FD_READ);
            return;
        }
        handle_request(c, hlen);
        memmove(c->in, c->in + hlen, c->in_len - hlen); /* a pipelined next request, if any */
        c->in_len -= hlen;
        c->request_ms = c->in_len ? hc_rt_now_ms(c->m->rt) : 0;
    }
}

static void on_conn(hc_rt *rt, hc_fd_watch *w, int fd, unsigned events, void *ud)
{
    (void)w;
    mconn *c = ud;
    if (events & HC_FD_READ && !c->out.len) {
        ssize_t n = recv(fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (n <= 0) { /* closed by the client, or an error */
            conn_close(c);
            return;
        }
        if (!c->in_len)
            c->request_ms = hc_rt_now_ms(rt);
        c->in_len += (size_t)n;
        c->last_ms = hc_rt_now_ms(rt);
    } else if (events & HC_FD_ERROR && !(events & HC_FD_WRITE)) {
        conn_close(c);
        return;
    }
    conn_run(c);
}

/* ------------------------------------------------------------------ the listener and the sweep */

static void sweep(hc_rt *rt, void *ud)
{
    hordec_metrics *m = ud;
    m->sweep = 0;
    uint64_t now = hc_rt_now_ms(rt);
    for (size_t i = m->nconns; i-- > 0;) {
        mconn *c = m->conns[i];
        bool idle = now - c->last_ms >= HORDEC_METRICS_IDLE_MS;
        bool slow = c->request_ms && now - c->request_ms >= HORDEC_METRICS_IDLE_MS; /* dribbling a request */
        if (idle || slow)
            conn_close(c);
    }
    if (m->nconns)
        hc_timer_start(rt, SWEEP_MS, sweep, m, &m->sweep);
}

static void on_listen(hc_rt *rt, hc_fd_watch *w, int fd, unsigned events, void *ud);

static void resume_accept(hc_rt *rt, void *ud)
{
    hordec_metrics *m = ud;
    m->resume = 0;
    hc_fd_watch_set(rt, m->lw, HC_FD_READ);
}

static void on_listen(hc_rt *rt, hc_fd_watch *w, int fd, unsigned events, void *ud)
{
    (void)events;
    hordec_metrics *m = ud;
    for (int k = 0; k < 64; k++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Level-triggered: retrying at once would spin. Leave the queue to the kernel for a moment. */
                hc_log_warn("metrics: cannot accept (%s); pausing for %u ms", strerror(errno), ACCEPT_PAUSE_MS);
                hc_fd_watch_set(rt, w, 0);
                hc_timer_start(rt, ACCEPT_PAUSE_MS, resume_accept, m, &m->resume);
            }
            return;
        }
        mconn *c = m->nconns < HORDEC_METRICS_MAX_CONNS ? malloc(sizeof *c) : NULL;
        if (!c) {
            uint64_t now = hc_rt_now_ms(rt);
            if (!m->refused_logged_at || now - m->refused_logged_at >= 10000) {
                hc_log_warn("metrics: refused a connection (%zu open, at most %d)", m->nconns,
                            HORDEC_METRICS_MAX_CONNS);
                m->refused_logged_at = now;
            }
            close(cfd);
            continue;
        }
        c->m = m;
        c->fd = cfd;
        c->in_len = 0;
        c->out = (hc_buf){0};
        c->out_off = 0;
        c->last_ms = hc_rt_now_ms(rt);
        c->request_ms = 0;
        c->close_after = false;
        if (hc_fd_watch_start(rt, cfd, HC_FD_READ, on_conn, c, &c->w)) {
            close(cfd);
            free(c);
            continue;
        }
        m->conns[m->nconns++] = c;
        if (!m->sweep)
            hc_timer_start(rt, SWEEP_MS, sweep, m, &m->sweep);
    }
}

int hordec_metrics_start(hc_rt *rt, const char *bind_addr, uint16_t port, hordec_metrics **out, char *err,
                         size_t errlen)
{
    *out = NULL;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t slen;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, bind_addr, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        slen = sizeof *v4;
    } else if (inet_pton(AF_INET6, bind_addr, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        slen = sizeof *v6;
    } else {
        snprintf(err, errlen, "--metrics-bind wants an IPv4 or IPv6 address, got '%s'", bind_addr);
        return HC_EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&ss, slen) < 0 || listen(fd, 16) < 0) {
        snprintf(err, errlen, "cannot serve metrics on %s port %u: %s", bind_addr, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return HC_EIO;
    }
    slen = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &slen);
    hordec_metrics *m = calloc(1, sizeof *m);
    if (!m) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return HC_ENOMEM;
    }
    m->rt = rt;
    m->lfd = fd;
    m->port = ntohs(ss.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    m->start_unix_s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    int rc = hc_fd_watch_start(rt, fd, HC_FD_READ, on_listen, m, &m->lw);
    if (rc) {
        snprintf(err, errlen, "cannot watch the metrics socket: %s", hc_strerror(rc));
        close(fd);
        free(m);
        return rc;
    }
    *out = m;
    return HC_OK;
}

uint16_t hordec_metrics_port(const hordec_metrics *m) { return m->port; }

void hordec_metrics_stop(hc_rt *rt, hordec_metrics *m)
{
    if (!m)
        return;
    while (m->nconns)
        conn_close(m->conns[m->nconns - 1]);
    hc_timer_cancel(rt, m->sweep);
    hc_timer_cancel(rt, m->resume);
    hc_fd_watch_stop(rt, m->lw);
    close(m->lfd);
    free(m);
}
