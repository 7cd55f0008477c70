/* test_ssl_optfile.c — the ssl_dist_optfile reader: the file a BEAM reads for -ssl_dist_optfile gives the
 * same settings to hordec; every unsupported or malformed option is an error that names it; the term text
 * parser under it rejects what it does not understand, saying where. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/ssl_optfile.h"
#include "daemon/term_text.h"
#include "hordec/hc_term.h"

static int parse(const char *text, hordec_tls_opts *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    err[0] = 0;
    return hordec_ssl_optfile_parse(text, strlen(text), "opts.conf", o, err, errlen);
}

static void test_full_file(void **state)
{
    (void)state;
    const char *text = "% the BEAM's ssl_dist_optfile\n"
                       "[{server, [{certfile, \"/c/node.pem\"}, {keyfile, \"/c/node.key\"},\n"
                       "           {cacertfile, \"/c/ca.pem\"}, {verify, verify_peer},\n"
                       "           {fail_if_no_peer_cert, true}, {versions, ['tlsv1.2', 'tlsv1.3']},\n"
                       "           {secure_renegotiate, true}, {depth, 3}, {password, <<\"pw\">>}]},\n"
                       " {client, [{certfile, \"/c/node.pem\"}, {keyfile, \"/c/node.key\"},\n"
                       "           {cacertfile, \"/c/ca.pem\"}, {verify, verify_peer},\n"
                       "           {server_name_indication, \"db.example.org\"}, {versions, ['tlsv1.3']},\n"
                       "           {secure_renegotiate, false}]}].\n";
    hordec_tls_opts o;
    char err[512];
    assert_int_equal(parse(text, &o, err, sizeof err), HC_OK);
    const hc_tls_side *s = &o.cfg.server, *c = &o.cfg.client;
    assert_string_equal(s->certfile, "/c/node.pem");
    assert_string_equal(s->keyfile, "/c/node.key");
    assert_string_equal(s->cacertfile, "/c/ca.pem");
    assert_string_equal(s->password, "pw");
    assert_true(s->verify_peer);
    assert_true(s->fail_if_no_peer_cert);
    assert_int_equal(s->min_version, HC_TLS_V1_2);
    assert_int_equal(s->max_version, HC_TLS_V1_3);
    assert_false(s->allow_legacy_renegotiation);
    assert_true(s->depth_set);
    assert_int_equal(s->depth, 3);
    assert_true(c->verify_peer);
    assert_string_equal(c->server_name, "db.example.org");
    assert_false(c->no_host_check);
    assert_int_equal(c->min_version, HC_TLS_V1_3);
    assert_int_equal(c->max_version, HC_TLS_V1_3);
    assert_true(c->allow_legacy_renegotiation);
    hordec_tls_opts_free(&o);
}

static void test_defaults_and_disable(void **state)
{
    (void)state;
    hordec_tls_opts o;
    char err[512];
    assert_int_equal(
        parse("[{server,[{certfile,\"a.pem\"}]},{client,[{server_name_indication,disable}]}]", &o, err, sizeof err),
        HC_OK);
    assert_false(o.cfg.server.verify_peer); /* as the BEAM: verify_none unless asked */
    assert_false(o.cfg.server.depth_set);
    assert_null(o.cfg.server.keyfile);
    assert_true(o.cfg.client.no_host_check);
    assert_null(o.cfg.client.certfile);
    hordec_tls_opts_free(&o);
}

/* Each bad file fails, and the message contains `want`. */
static void expect_error(const char *text, const char *want)
{
    hordec_tls_opts o;
    char err[512];
    int rc = parse(text, &o, err, sizeof err);
    if (rc == HC_OK || !strstr(err, want))
        fail_msg("for %s\nwanted an error containing '%s', got rc %d: '%s'", text, want, rc, err);
    assert_non_null(strstr(err, "opts.conf"));
    hordec_tls_opts_free(&o);
}

static void test_errors_name_the_option(void **state)
{
    (void)state;
    expect_error("[{server, [{certfile, \"a\"}, {ciphers, [\"AES\"]}]}].", "unsupported option ciphers in the server");
    expect_error("[{server, [{certfile, \"a\"}]}, {client, [{reuse_sessions, true}]}].",
                 "unsupported option reuse_sessions in the client");
    expect_error("[{server, [{verify, maybe}]}].", "option verify in the server options: wants verify_peer");
    expect_error("[{server, [{depth, -1}]}].", "option depth");
    expect_error("[{server, [{depth, many}]}].", "option depth");
    expect_error("[{server, [{versions, ['tlsv1.1']}]}].", "'tlsv1.2' and 'tlsv1.3' only");
    expect_error("[{server, [{versions, []}]}].", "option versions");
    expect_error("[{server, [{fail_if_no_peer_cert, yes}]}].", "wants true or false");
    expect_error("[{server, [{server_name_indication, \"x\"}]}].", "is a client option");
    expect_error("[{server, [{certfile, \"a\"}]}, {client, [{fail_if_no_peer_cert, true}]}].", "is a server option");
    expect_error("[{server, [{certfile, \"a\"}, {certfile, \"b\"}]}].", "given twice");
    expect_error("[{server, [{certfile, \"\"}]}].", "non-empty string");
    expect_error("[{server, [{certfile, 42}]}].", "non-empty string");
    expect_error("[{server, [certfile]}].", "{Option, Value}");
    expect_error("[{server, []}, {server, []}].", "given twice");
    expect_error("[{client, []}].", "no {server, [...]} section");
    expect_error("[{peer, []}].", "{server, [...]} and {client, [...]} only");
    expect_error("{server, []}.", "want a list");
    /* The term text itself. */
    expect_error("[{server, [{certfile, \"a\"}]}", "line 1, column 29: expected ',' or ']'");
    expect_error("[{server, [{certfile, \"a}]}].", "unterminated string");
    expect_error("[{server, [{depth, 1.5}]}].", "floats are not supported");
    expect_error("[{server, [{certfile, File}]}].", "variables are not allowed");
    expect_error("[{server, #{}}].", "maps and records");
    expect_error("[{server, []} | []].", "improper lists");
    expect_error("[{server, []}]. [].", "more than one term");
    expect_error("", "unexpected end of file");
    expect_error("\n\n  [{server, [{certfile, ~s}]}].", "line 3, column 25: unexpected character");
}

static void test_term_text_depth_and_escapes(void **state)
{
    (void)state;
    char text[200], err[256];
    memset(text, '[', 100);
    memset(text + 100, ']', 100);
    hc_buf b = {0};
    assert_int_equal(hordec_term_text_parse(text, 200, &b, err, sizeof err), HC_EDECODE);
    assert_non_null(strstr(err, "nested too deeply"));
    hc_buf_reset(&b);
    const char *esc = "{'quoted atom', \"a\\\"b\\\\c\\n\", -7, <<>>}.";
    assert_int_equal(hordec_term_text_parse(esc, strlen(esc), &b, err, sizeof err), HC_OK);
    size_t i = 0;
    uint32_t arity;
    hc_span s;
    int64_t v;
    assert_int_equal(hc_dec_tuple_header(b.data, b.len, &i, &arity), HC_OK);
    assert_int_equal(arity, 4);
    assert_true(hc_dec_is_atom(b.data, b.len, &i, "quoted atom"));
    assert_int_equal(hc_dec_binary(b.data, b.len, &i, &s), HC_OK);
    assert_int_equal(s.len, 6);
    assert_memory_equal(s.p, "a\"b\\c\n", 6);
    assert_int_equal(hc_dec_long(b.data, b.len, &i, &v), HC_OK);
    assert_int_equal(v, -7);
    assert_int_equal(hc_dec_binary(b.data, b.len, &i, &s), HC_OK);
    assert_int_equal(s.len, 0);
    assert_int_equal(i, b.len);
    hc_buf_free(&b);
}

static void test_flags(void **state)
{
    (void)state;
    hordec_tls_opts o = {0};
    char err[256];
    assert_int_equal(hordec_tls_from_flags("n.pem", "n.key", "ca.pem", NULL, &o, err, sizeof err), HC_OK);
    assert_true(o.cfg.server.verify_peer && o.cfg.server.fail_if_no_peer_cert && o.cfg.client.verify_peer);
    assert_string_equal(o.cfg.client.cacertfile, "ca.pem");
    assert_int_equal(hordec_tls_from_flags("n.pem", NULL, NULL, NULL, &o, err, sizeof err), HC_OK);
    assert_false(o.cfg.server.verify_peer); /* no CA: nothing to verify against */
    assert_int_equal(hordec_tls_from_flags("n.pem", NULL, "ca.pem", "none", &o, err, sizeof err), HC_OK);
    assert_false(o.cfg.client.verify_peer);
    assert_int_equal(hordec_tls_from_flags("n.pem", NULL, NULL, "peer", &o, err, sizeof err), HC_EINVAL);
    assert_non_null(strstr(err, "--tls-ca"));
    assert_int_equal(hordec_tls_from_flags(NULL, "n.key", NULL, NULL, &o, err, sizeof err), HC_EINVAL);
    assert_int_equal(hordec_tls_from_flags("n.pem", NULL, NULL, "sometimes", &o, err, sizeof err), HC_EINVAL);
    hordec_tls_opts_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_defaults_and_disable),
        cmocka_unit_test(test_errors_name_the_option),
        cmocka_unit_test(test_term_text_depth_and_escapes),
        cmocka_unit_test(test_flags),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    hc_atom_table_reset();
    return rc;
}
