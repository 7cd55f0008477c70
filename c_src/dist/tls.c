/* tls.c — see tls.h. */
#include "dist/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "hordec/hc_common.h"

#define READ_AHEAD_BYTES (64 * 1024) /* raw bytes OpenSSL takes per read(): fewer syscalls under load */
#define WRITE_MAX (1u << 20)         /* bytes handed to one SSL_write (it cuts them into 16 KB records) */

struct hc_tls_ctx {
    SSL_CTX *server, *client;
    hc_tls_side client_cfg; /* the strings are copies, owned below */
    char *server_name;
    char describe[256];
};

struct hc_tls {
    SSL *ssl;
    bool server;
    bool peeked; /* server: the first bytes were checked to be a TLS ClientHello */
    unsigned wants;
    /* The first certificate verification failure, by the verify callback (OpenSSL reports only one). */
    char bad_cert[160];
    char err[320];
};

static int ssl_index = -1; /* SSL ex_data slot holding the hc_tls, for the verify callback */

/* ------------------------------------------------------------------ contexts */

static const char *version_name(hc_tls_version v)
{
    return v == HC_TLS_V1_3 ? "TLSv1.3" : v == HC_TLS_V1_2 ? "TLSv1.2" : "default";
}

/* The last OpenSSL error in words (the queue's most specific entry), or `fallback`. */
static const char *ssl_reason(const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : fallback;
}

static int verify_cb(int ok, X509_STORE_CTX *x)
{
    if (ok)
        return ok;
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    hc_tls *t = ssl && ssl_index >= 0 ? SSL_get_ex_data(ssl, ssl_index) : NULL;
    if (t && !t->bad_cert[0]) {
        X509 *cert = X509_STORE_CTX_get_current_cert(x);
        char subject[96] = "?";
        if (cert)
            X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
        snprintf(t->bad_cert, sizeof t->bad_cert, "%s (certificate %s, depth %d)",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)), subject,
                 X509_STORE_CTX_get_error_depth(x));
    }
    return 0;
}

static int side_setup(SSL_CTX *ctx, const hc_tls_side *s, bool server, char *err, size_t errlen)
{
    const char *role = server ? "server" : "client";
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* BEAM nodes close the socket without close_notify: that is an end of stream, not an error. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    if (s->allow_legacy_renegotiation)
        SSL_CTX_set_options(ctx, SSL_OP_LEGACY_SERVER_CONNECT | SSL_OP_ALLOW_UNSAFE_LEGACY_RENEGOTIATION);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, READ_AHEAD_BYTES);
    if ((s->min_version && !SSL_CTX_set_min_proto_version(ctx, (int)s->min_version)) ||
        (s->max_version && !SSL_CTX_set_max_proto_version(ctx, (int)s->max_version))) {
        snprintf(err, errlen, "%s: unsupported TLS versions", role);
        return HC_EINVAL;
    }
    if (s->password)
        SSL_CTX_set_default_passwd_cb_userdata(ctx, (void *)s->password);
    if (s->certfile) {
        if (SSL_CTX_use_certificate_chain_file(ctx, s->certfile) != 1) {
            snprintf(err, errlen, "%s certfile %s: %s", role, s->certfile, ssl_reason("cannot load it"));
            return HC_EINVAL;
        }
        const char *key = s->keyfile ? s->keyfile : s->certfile;
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
            snprintf(err, errlen, "%s keyfile %s: %s", role, key, ssl_reason("cannot load it"));
            return HC_EINVAL;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            snprintf(err, errlen, "%s keyfile %s does not match certfile %s", role, key, s->certfile);
            return HC_EINVAL;
        }
    } else if (s->keyfile) {
        snprintf(err, errlen, "%s: keyfile without certfile", role);
        return HC_EINVAL;
    } else if (server) {
        snprintf(err, errlen, "server: a certfile (and keyfile) is required to accept TLS connections");
        return HC_EINVAL;
    }
    /* The password is only needed while loading the key: do not keep a pointer to the caller's string. */
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
    if (s->cacertfile && SSL_CTX_load_verify_locations(ctx, s->cacertfile, NULL) != 1) {
        snprintf(err, errlen, "%s cacertfile %s: %s", role, s->cacertfile, ssl_reason("cannot load it"));
        return HC_EINVAL;
    }
    if (s->verify_peer && !s->cacertfile) {
        snprintf(err, errlen, "%s: verify_peer needs a cacertfile to verify against", role);
        return HC_EINVAL;
    }
    if (s->fail_if_no_peer_cert && !s->verify_peer) {
        snprintf(err, errlen, "%s: fail_if_no_peer_cert needs verify_peer", role);
        return HC_EINVAL;
    }
    if (server && s->verify_peer && s->cacertfile) {
        /* Tell clients which CAs we accept, so one with several certificates picks the right one. */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(s->cacertfile);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
    }
    int mode = s->verify_peer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE;
    if (server && s->fail_if_no_peer_cert)
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, s->verify_peer ? verify_cb : NULL);
    if (s->depth_set)
        SSL_CTX_set_verify_depth(ctx, s->depth < 0 ? 0 : s->depth);
    if (server) {
        /* Every connection is a fresh session: no cache, no tickets (a BEAM does not resume dist links). */
        static const unsigned char sid[] = "hordec-dist";
        SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(ctx, 0);
    }
    return HC_OK;
}

static char *dup_or_null(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

int hc_tls_ctx_new(const hc_tls_config *cfg, hc_tls_ctx **out, char *err, size_t errlen)
{
    *out = NULL;
    if (ssl_index < 0) {
        OPENSSL_init_ssl(0, NULL);
        ssl_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
        if (ssl_index < 0) {
            snprintf(err, errlen, "out of memory");
            return HC_ENOMEM;
        }
    }
    hc_tls_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return HC_ENOMEM;
    }
    c->server = SSL_CTX_new(TLS_server_method());
    c->client = SSL_CTX_new(TLS_client_method());
    bool oom = !c->server || !c->client;
    c->server_name = dup_or_null(cfg->client.server_name, &oom);
    if (oom) {
        hc_tls_ctx_free(c);
        snprintf(err, errlen, "out of memory");
        return HC_ENOMEM;
    }
    int rc = side_setup(c->server, &cfg->server, true, err, errlen);
    if (rc == HC_OK)
        rc = side_setup(c->client, &cfg->client, false, err, errlen);
    if (rc) {
        ERR_clear_error();
        hc_tls_ctx_free(c);
        return rc;
    }
    c->client_cfg = cfg->client;
    c->client_cfg.server_name = c->server_name;
    c->client_cfg.certfile = c->client_cfg.keyfile = c->client_cfg.password = c->client_cfg.cacertfile = NULL;
    snprintf(c->describe, sizeof c->describe, "server: %s%s, client: %s%s%s, versions %s..%s",
             cfg->server.verify_peer ? "verify_peer" : "verify_none",
             cfg->server.fail_if_no_peer_cert ? " fail_if_no_peer_cert" : "",
             cfg->client.verify_peer ? "verify_peer" : "verify_none", cfg->client.certfile ? " with certificate" : "",
             cfg->client.verify_peer && cfg->client.no_host_check ? " no host check" : "",
             version_name(cfg->server.min_version), version_name(cfg->server.max_version));
    *out = c;
    return HC_OK;
}

void hc_tls_ctx_free(hc_tls_ctx *ctx)
{
    if (!ctx)
        return;
    SSL_CTX_free(ctx->server);
    SSL_CTX_free(ctx->client);
    free(ctx->server_name);
    free(ctx);
}

const char *hc_tls_ctx_describe(const hc_tls_ctx *ctx) { return ctx->describe; }

/* ------------------------------------------------------------------ sessions */

hc_tls *hc_tls_new(hc_tls_ctx *ctx, int fd, bool server, const char *peer_host)
{
    hc_tls *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->server = server;
    t->ssl = SSL_new(server ? ctx->server : ctx->client);
    if (!t->ssl || !SSL_set_fd(t->ssl, fd) || !SSL_set_ex_data(t->ssl, ssl_index, t)) {
        hc_tls_free(t);
        ERR_clear_error();
        return NULL;
    }
    if (server) {
        SSL_set_accept_state(t->ssl);
        return t;
    }
    SSL_set_connect_state(t->ssl);
    const hc_tls_side *s = &ctx->client_cfg;
    const char *name = s->server_name ? s->server_name : peer_host;
    if (!name || s->no_host_check)
        return t;
    unsigned char addr[16];
    bool is_ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
    if (!is_ip)
        SSL_set_tlsext_host_name(t->ssl, name); /* SNI is for host names only (RFC 6066) */
    if (s->verify_peer) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
        int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, name) : X509_VERIFY_PARAM_set1_host(vp, name, 0);
        if (!ok) {
            hc_tls_free(t);
            ERR_clear_error();
            return NULL;
        }
    }
    ERR_clear_error();
    return t;
}

void hc_tls_free(hc_tls *t)
{
    if (!t)
        return;
    if (t->ssl) {
        if (SSL_is_init_finished(t->ssl)) {
            ERR_clear_error();
            SSL_shutdown(t->ssl); /* one non-blocking try: close_notify if the socket takes it */
            ERR_clear_error();
        }
        SSL_free(t->ssl);
    }
    free(t);
}

/* Classifies a failed handshake: who refused what, in words, as an HC_E* code. */
static int handshake_failed(hc_tls *t, int sslerr)
{
    long vr = SSL_get_verify_result(t->ssl);
    if (t->bad_cert[0] || vr != X509_V_OK) {
        snprintf(t->err, sizeof t->err, "the peer's certificate was refused: %s",
                 t->bad_cert[0] ? t->bad_cert : X509_verify_cert_error_string(vr));
        return HC_EAUTH;
    }
    unsigned long e = ERR_peek_last_error();
    if (sslerr == SSL_ERROR_ZERO_RETURN || (sslerr == SSL_ERROR_SYSCALL && !e)) {
        snprintf(t->err, sizeof t->err, "the peer closed the connection during the TLS handshake%s",
                 t->server ? "" : " (it may run plain-TCP distribution, or have refused our certificate)");
        return HC_ENOCONN;
    }
    if (sslerr == SSL_ERROR_SYSCALL) {
        snprintf(t->err, sizeof t->err, "TLS handshake: %s", strerror(errno));
        return HC_ENOCONN;
    }
    const char *why = ssl_reason("TLS handshake failed");
    int reason = ERR_GET_REASON(e);
    if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        snprintf(t->err, sizeof t->err, "the peer sent no certificate (fail_if_no_peer_cert)");
        return HC_EAUTH;
    }
    /* Alerts the peer sent us: it refused our certificate, or could not agree on parameters. */
    if (strstr(why, "alert")) {
        snprintf(t->err, sizeof t->err, "the peer ended the TLS handshake: %s", why);
        return HC_EAUTH;
    }
    snprintf(t->err, sizeof t->err, "TLS handshake failed: %s", why);
    return HC_EDECODE;
}

/* Server, before OpenSSL reads anything: a plain-TCP distribution peer starts with a 2-byte length and
 * 'N' (or 'n'), a TLS one with a handshake record (0x16). Telling them apart makes the refusal clear. */
static int check_client_hello(hc_tls *t)
{
    uint8_t b[3];
    ssize_t k = recv(SSL_get_fd(t->ssl), b, sizeof b, MSG_PEEK);
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        t->wants = HC_TLS_WANT_READ;
        return 1;
    }
    if (k <= 0)
        return HC_OK; /* let OpenSSL see the end of stream or the error */
    if (b[0] == 0x16) {
        t->peeked = true;
        return HC_OK;
    }
    if (k < 3 && b[0] == 0) {
        t->wants = HC_TLS_WANT_READ; /* could still be a 2-byte length: wait for the third byte */
        return 1;
    }
    if (k == 3 && (b[2] == 'N' || b[2] == 'n'))
        snprintf(t->err, sizeof t->err,
                 "refused a plain-TCP distribution handshake: this node speaks distribution over TLS only");
    else
        snprintf(t->err, sizeof t->err, "malformed input: not a TLS ClientHello (first byte 0x%02x)", b[0]);
    return HC_EDECODE;
}

int hc_tls_handshake(hc_tls *t)
{
    t->wants = 0;
    if (t->server && !t->peeked) {
        int rc = check_client_hello(t);
        if (rc)
            return rc;
    }
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1)
        return HC_OK;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        t->wants = e == SSL_ERROR_WANT_READ ? HC_TLS_WANT_READ : HC_TLS_WANT_WRITE;
        return 1;
    }
    int rc = handshake_failed(t, e);
    ERR_clear_error();
    return rc;
}

/* After a failed SSL_read/SSL_write: -1 with errno EAGAIN (wait), 0 (end of stream) or -1 with EPROTO. */
static ssize_t io_failed(hc_tls *t, int r, const char *what)
{
    int saved = errno;
    int e = SSL_get_error(t->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        t->wants = e == SSL_ERROR_WANT_READ ? HC_TLS_WANT_READ : HC_TLS_WANT_WRITE;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN: return 0;
    case SSL_ERROR_SYSCALL:
        if (!ERR_peek_error()) {
            if (saved == 0)
                return 0; /* EOF without close_notify (older OpenSSL) */
            errno = saved;
            snprintf(t->err, sizeof t->err, "%s: %s", what, strerror(saved));
            return -1;
        }
        /* fall through */
    default:
        snprintf(t->err, sizeof t->err, "TLS %s failed: %s", what, ssl_reason("protocol error"));
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

ssize_t hc_tls_read(hc_tls *t, void *buf, size_t n)
{
    t->wants = 0;
    ERR_clear_error();
    errno = 0;
    int r = SSL_read(t->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
    return r > 0 ? r : io_failed(t, r, "read");
}

ssize_t hc_tls_writev(hc_tls *t, const struct iovec *iov, int n)
{
    t->wants = 0;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (!iov[i].iov_len)
            continue;
        size_t len = iov[i].iov_len > WRITE_MAX ? WRITE_MAX : iov[i].iov_len;
        ERR_clear_error();
        errno = 0;
        int r = SSL_write(t->ssl, iov[i].iov_base, (int)len);
        if (r <= 0) {
            ssize_t f = io_failed(t, r, "write");
            if (total && f < 0 && errno == EAGAIN)
                return (ssize_t)total; /* what went out; the rest is retried from the queue */
            if (f == 0) {
                errno = EPIPE;
                snprintf(t->err, sizeof t->err, "write: the peer closed the TLS session");
                return -1;
            }
            return f;
        }
        total += (size_t)r;
        if ((size_t)r < iov[i].iov_len)
            break;
    }
    return (ssize_t)total;
}

bool hc_tls_pending(const hc_tls *t) { return SSL_has_pending(t->ssl); }
unsigned hc_tls_wants(const hc_tls *t) { return t->wants; }
const char *hc_tls_error(const hc_tls *t) { return t->err[0] ? t->err : "TLS error"; }
const char *hc_tls_version_name(const hc_tls *t) { return SSL_get_version(t->ssl); }
