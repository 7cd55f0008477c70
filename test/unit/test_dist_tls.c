/* test_dist_tls.c — the TLS transport (dist/tls.c) over a socket pair, both ends non-blocking: mutual
 * authentication, bulk data through partial writes, and each refusal with the reason it reports (expired
 * certificate, another CA, no client certificate, host name mismatch, a plain-TCP or garbage client).
 * Certificates are made here with OpenSSL, in a temporary directory. */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "dist/tls.h"
#include "hordec/hc_common.h"

static char dir[64];

static char *path(const char *name)
{
    static char buf[8][160];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(e);
    X509_add_ext(cert, e, -1);
    X509_EXTENSION_free(e);
}

/* A P-256 certificate `name` (name.pem, name.key) signed by the issuer (NULL: self-signed CA), valid from
 * `from_days` to `to_days` around now. */
static void make_cert(const char *name, const char *cn, EVP_PKEY **key_out, X509 **cert_out, EVP_PKEY *ikey,
                      X509 *icert, long from_days, long to_days)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    assert_non_null(key);
    X509_set_version(x, 2);
    static long serial = 1;
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), from_days * 86400);
    X509_gmtime_adj(X509_getm_notAfter(x), to_days * 86400);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, icert ? X509_get_subject_name(icert) : n);
    if (!icert) {
        add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x, icert, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
    }
    assert_true(X509_sign(x, ikey ? ikey : key, EVP_sha256()) > 0);
    char file[64];
    snprintf(file, sizeof file, "%s.pem", name);
    FILE *f = fopen(path(file), "w");
    PEM_write_X509(f, x);
    fclose(f);
    snprintf(file, sizeof file, "%s.key", name);
    f = fopen(path(file), "w");
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    if (key_out)
        *key_out = key;
    else
        EVP_PKEY_free(key);
    if (cert_out)
        *cert_out = x;
    else
        X509_free(x);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/hordec-test-tls-XXXXXX");
    assert_non_null(mkdtemp(dir));
    EVP_PKEY *ca_key, *other_key;
    X509 *ca, *other;
    make_cert("ca", "test CA", &ca_key, &ca, NULL, NULL, -1, 10);
    make_cert("node", "node", NULL, NULL, ca_key, ca, -1, 10);
    make_cert("expired", "expired node", NULL, NULL, ca_key, ca, -3, -1);
    make_cert("other_ca", "other CA", &other_key, &other, NULL, NULL, -1, 10);
    make_cert("other", "other node", NULL, NULL, other_key, other, -1, 10);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(other_key);
    X509_free(ca);
    X509_free(other);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Mutual verify_peer with `client_cert` ("node", "expired", "other" or NULL) on the client side. */
static hc_tls_ctx *make_ctx(const char *client_cert, const char *server_name)
{
    char cert[64], key[64];
    hc_tls_config cfg = {0};
    cfg.server = (hc_tls_side){.certfile = path("node.pem"),
                               .keyfile = path("node.key"),
                               .cacertfile = path("ca.pem"),
                               .verify_peer = true,
                               .fail_if_no_peer_cert = true};
    cfg.client = (hc_tls_side){.cacertfile = path("ca.pem"), .verify_peer = true, .server_name = server_name};
    if (client_cert) {
        snprintf(cert, sizeof cert, "%s.pem", client_cert);
        snprintf(key, sizeof key, "%s.key", client_cert);
        cfg.client.certfile = path(cert);
        cfg.client.keyfile = path(key);
    }
    hc_tls_ctx *ctx;
    char err[256];
    int rc = hc_tls_ctx_new(&cfg, &ctx, err, sizeof err);
    if (rc)
        fail_msg("hc_tls_ctx_new: %s", err);
    return ctx;
}

typedef struct pair {
    int fds[2];
    hc_tls *srv, *cli;
    int srv_rc, cli_rc;
} pair;

static void pair_open(pair *p, hc_tls_ctx *ctx)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fds), 0);
    p->srv = hc_tls_new(ctx, p->fds[0], true, NULL);
    p->cli = hc_tls_new(ctx, p->fds[1], false, "127.0.0.1");
    assert_non_null(p->srv);
    assert_non_null(p->cli);
    p->srv_rc = p->cli_rc = 1;
}

static void pair_close(pair *p)
{
    hc_tls_free(p->srv);
    hc_tls_free(p->cli);
    close(p->fds[0]);
    close(p->fds[1]);
}

/* Steps both handshakes until each is done or failed (or nothing moves any more). */
static void handshake(pair *p)
{
    for (int i = 0; i < 50 && (p->srv_rc == 1 || p->cli_rc == 1); i++) {
        if (p->cli_rc == 1)
            p->cli_rc = hc_tls_handshake(p->cli);
        if (p->srv_rc == 1)
            p->srv_rc = hc_tls_handshake(p->srv);
    }
}

static void test_mutual_auth_and_bulk_data(void **state)
{
    (void)state;
    hc_tls_ctx *ctx = make_ctx("node", NULL);
    pair p;
    pair_open(&p, ctx);
    handshake(&p);
    assert_int_equal(p.srv_rc, HC_OK);
    assert_int_equal(p.cli_rc, HC_OK);
    assert_string_equal(hc_tls_version_name(p.cli), "TLSv1.3");

    /* 1 MB one way through a socket pair that holds far less: partial writes, EAGAIN, retries with the
     * same bytes, and reads that drain what OpenSSL holds. */
    size_t total = 1 << 20, sent = 0, got = 0;
    uint8_t *out = malloc(total), *in = malloc(total);
    for (size_t i = 0; i < total; i++)
        out[i] = (uint8_t)(i * 7 + (i >> 11));
    int spins = 0;
    while (got < total && spins++ < 100000) {
        if (sent < total) {
            struct iovec iov[2] = {{out + sent, (total - sent) / 2}, {out + sent + (total - sent) / 2, 0}};
            iov[1].iov_len = total - sent - iov[0].iov_len;
            ssize_t w = hc_tls_writev(p.cli, iov, 2);
            if (w < 0)
                assert_int_equal(errno, EAGAIN);
            else
                sent += (size_t)w;
        }
        for (;;) {
            ssize_t r = hc_tls_read(p.srv, in + got, total - got);
            if (r < 0) {
                assert_int_equal(errno, EAGAIN);
                break;
            }
            assert_true(r > 0);
            got += (size_t)r;
        }
    }
    assert_int_equal(got, total);
    assert_memory_equal(in, out, total);
    assert_false(hc_tls_pending(p.srv));
    free(in);
    free(out);

    /* A close from one side is an end of stream on the other. */
    hc_tls_free(p.cli);
    p.cli = NULL;
    close(p.fds[1]);
    p.fds[1] = -1;
    uint8_t b[16];
    assert_int_equal(hc_tls_read(p.srv, b, sizeof b), 0);
    pair_close(&p);
    hc_tls_ctx_free(ctx);
}

/* The handshake with this client certificate (or server name) fails on side `srv_side` with `code`
 * and a reason containing `want`. */
static void expect_refused(const char *client_cert, const char *server_name, bool on_server, int code, const char *want)
{
    hc_tls_ctx *ctx = make_ctx(client_cert, server_name);
    pair p;
    pair_open(&p, ctx);
    handshake(&p);
    /* TLS 1.3: the client finishes before the server has checked its certificate; a read then fails. */
    if (on_server) {
        assert_int_equal(p.srv_rc, code);
        const char *why = hc_tls_error(p.srv);
        if (!strstr(why, want))
            fail_msg("server reason '%s' lacks '%s'", why, want);
    } else {
        assert_int_equal(p.cli_rc, code);
        const char *why = hc_tls_error(p.cli);
        if (!strstr(why, want))
            fail_msg("client reason '%s' lacks '%s'", why, want);
    }
    pair_close(&p);
    hc_tls_ctx_free(ctx);
}

static void test_refusals(void **state)
{
    (void)state;
    expect_refused("expired", NULL, true, HC_EAUTH, "certificate has expired");
    expect_refused("other", NULL, true, HC_EAUTH, "unable to get local issuer certificate");
    expect_refused(NULL, NULL, true, HC_EAUTH, "sent no certificate");
    expect_refused("node", "db.example.org", false, HC_EAUTH, "hostname mismatch");
}

/* A client that is not TLS at all: the server says what it is before OpenSSL reads a byte. */
static void expect_not_tls(const void *bytes, size_t n, const char *want)
{
    hc_tls_ctx *ctx = make_ctx("node", NULL);
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    hc_tls *srv = hc_tls_new(ctx, fds[0], true, NULL);
    assert_int_equal(hc_tls_handshake(srv), 1); /* nothing sent yet: wait */
    assert_int_equal(hc_tls_wants(srv), HC_TLS_WANT_READ);
    assert_int_equal(write(fds[1], bytes, n), (ssize_t)n);
    assert_int_equal(hc_tls_handshake(srv), HC_EDECODE);
    if (!strstr(hc_tls_error(srv), want))
        fail_msg("reason '%s' lacks '%s'", hc_tls_error(srv), want);
    hc_tls_free(srv);
    close(fds[0]);
    close(fds[1]);
    hc_tls_ctx_free(ctx);
}

static void test_plain_and_garbage_clients(void **state)
{
    (void)state;
    static const uint8_t plain[] = {0, 12, 'N', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    expect_not_tls(plain, sizeof plain, "plain-TCP distribution");
    expect_not_tls("GET / HTTP/1.0\r\n\r\n", 18, "not a TLS ClientHello (first byte 0x47)");
}

static void test_bad_configurations(void **state)
{
    (void)state;
    char err[256];
    hc_tls_ctx *ctx;
    hc_tls_config cfg = {0};
    cfg.server.certfile = path("missing.pem");
    assert_int_equal(hc_tls_ctx_new(&cfg, &ctx, err, sizeof err), HC_EINVAL);
    assert_non_null(strstr(err, "missing.pem"));
    cfg.server.certfile = path("node.pem");
    cfg.server.keyfile = path("other.key");
    assert_int_equal(hc_tls_ctx_new(&cfg, &ctx, err, sizeof err), HC_EINVAL);
    assert_non_null(strstr(err, "mismatch")); /* OpenSSL: "key values mismatch" */
    cfg.server.keyfile = path("node.key");
    cfg.server.verify_peer = true;
    assert_int_equal(hc_tls_ctx_new(&cfg, &ctx, err, sizeof err), HC_EINVAL);
    assert_non_null(strstr(err, "verify_peer needs a cacertfile"));
    cfg.server = (hc_tls_side){0};
    assert_int_equal(hc_tls_ctx_new(&cfg, &ctx, err, sizeof err), HC_EINVAL);
    assert_non_null(strstr(err, "certfile (and keyfile) is required"));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as hordec: a close_notify to a closed socket is EPIPE, not death */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutual_auth_and_bulk_data),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_plain_and_garbage_clients),
        cmocka_unit_test(test_bad_configurations),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
