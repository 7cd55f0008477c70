/* test_cli.c — hordec_parse_args: valid and invalid flag combinations, --sname host expansion, cookie
 * sources (flag, file, ~/.erlang.cookie created like erl does), and that every error says what was wrong. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/cli.h"

#include "cli_test_util.h"

/* Parses a NULL-terminated list of arguments (argv[0] added). */
static int parse(hordec_options *o, char *err, size_t errlen, ...)
{
    va_list ap;
    va_start(ap, errlen);
    int rc = parse_va(o, err, errlen, ap);
    va_end(ap);
    return rc;
}

#define PARSE(o, err, ...) parse(o, err, sizeof err, __VA_ARGS__, (char *)NULL)

static void expect_error(const char *want_substring, int rc, const char *err)
{
    assert_int_equal(rc, -1);
    if (!strstr(err, want_substring))
        fail_msg("error \"%s\" does not mention \"%s\"", err, want_substring);
}

static void write_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    assert_int_equal(chmod(path, 0600), 0); /* a cookie file others may read is refused */
}

static void short_host(char *out, size_t n)
{
    assert_int_equal(gethostname(out, n), 0);
    out[n - 1] = 0;
    char *dot = strchr(out, '.');
    if (dot)
        *dot = 0;
}

static void test_valid_name_and_defaults(void **state)
{
    (void)state;
    hordec_options o;
    char err[256];
    assert_int_equal(PARSE(&o, err, "--name", "hc1@127.0.0.1", "--cookie", "monster"), 0);
    assert_string_equal(o.node_name, "hc1@127.0.0.1");
    assert_string_equal(o.cookie, "monster");
    assert_int_equal(o.port, 0);
    assert_int_equal(o.ticktime_s, 60);
    assert_int_equal(o.max_message_bytes, 256u << 20);
    assert_int_equal(o.log_level, HC_LOG_INFO);
    assert_int_equal(o.nconnect, 0);
    assert_false(o.help);
    assert_false(o.version);

    assert_int_equal(PARSE(&o, err, "--name", "My_node-2@host.example.com", "--cookie", "c", "--port", "65535",
                           "--ticktime", "4", "--max-message-bytes", "1024", "--log-level", "debug", "--connect", "a@h",
                           "--connect", "b@h"),
                     0);
    assert_string_equal(o.node_name, "My_node-2@host.example.com");
    assert_int_equal(o.port, 65535);
    assert_int_equal(o.ticktime_s, 4);
    assert_int_equal(o.max_message_bytes, 1024);
    assert_int_equal(o.log_level, HC_LOG_DEBUG);
    assert_int_equal(o.nconnect, 2);
    assert_string_equal(o.connect[0], "a@h");
    assert_string_equal(o.connect[1], "b@h");

    /* "--opt=value" spelling and the limits of each range */
    assert_int_equal(PARSE(&o, err, "--name=x@h", "--cookie=c", "--port=0", "--ticktime=86400",
                           "--max-message-bytes=2147483648", "--log-level=error"),
                     0);
    assert_string_equal(o.node_name, "x@h");
    assert_int_equal(o.ticktime_s, 86400);
    assert_int_equal(o.max_message_bytes, 2147483648ULL);
    assert_int_equal(o.log_level, HC_LOG_ERROR);
}

static void test_sname_expansion(void **state)
{
    (void)state;
    char host[256], want[600];
    short_host(host, sizeof host);
    snprintf(want, sizeof want, "worker@%s", host);
    hordec_options o;
    char err[256];
    assert_int_equal(PARSE(&o, err, "--sname", "worker", "--cookie", "c"), 0);
    assert_string_equal(o.node_name, want);
    assert_null(strchr(strchr(o.node_name, '@'), '.')); /* short host: no domain */

    expect_error("--sname", PARSE(&o, err, "--sname", "w@host", "--cookie", "c"), err);
    expect_error("--sname", PARSE(&o, err, "--sname", "", "--cookie", "c"), err);
    expect_error("letters", PARSE(&o, err, "--sname", "bad.name", "--cookie", "c"), err);
}

static void test_name_combinations(void **state)
{
    (void)state;
    hordec_options o;
    char err[256];
    expect_error("exactly one", PARSE(&o, err, "--cookie", "c"), err);
    expect_error("exactly one", PARSE(&o, err, "--sname", "a", "--name", "a@h", "--cookie", "c"), err);
    static const char *bad_names[] = {"nohost", "@host", "name@", "a@b@c", ""};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++)
        expect_error("--name wants NAME@HOST", PARSE(&o, err, "--name", bad_names[i], "--cookie", "c"), err);
    static const char *bad_chars[] = {"a.b@h", "a b@h", "ä@h", "a/b@h", "a:b@h"};
    for (size_t i = 0; i < sizeof bad_chars / sizeof bad_chars[0]; i++)
        expect_error("may only use letters", PARSE(&o, err, "--name", bad_chars[i], "--cookie", "c"), err);

    /* a node name is an atom: 255 characters at most, never silently cut */
    char name[2100];
    memset(name, 'n', sizeof name);
    name[0] = 'a';
    name[1] = '@';
    name[255] = 0;
    assert_int_equal(PARSE(&o, err, "--name", name, "--cookie", "c"), 0);
    assert_string_equal(o.node_name, name);
    memset(name, 'n', sizeof name);
    name[256] = 0;
    name[100] = '@';
    expect_error("too long", PARSE(&o, err, "--name", name, "--cookie", "c"), err);
    memset(name, 'n', sizeof name);
    name[1] = '@';
    name[2000] = 0; /* more than node_name[] holds: must be an error, not a shorter host */
    expect_error("too long", PARSE(&o, err, "--name", name, "--cookie", "c"), err);
    memset(name, 'n', sizeof name);
    name[2000] = 0;
    expect_error("too long", PARSE(&o, err, "--sname", name, "--cookie", "c"), err);
}

static void test_number_ranges(void **state)
{
    (void)state;
    hordec_options o;
    char err[256];
    static const char *bad_ports[] = {"65536", "-1", "abc", "", "12x", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad_ports / sizeof bad_ports[0]; i++) {
        expect_error("--port", PARSE(&o, err, "--name", "a@h", "--cookie", "c", "--port", bad_ports[i]), err);
        assert_non_null(strstr(err, bad_ports[i])); /* the bad value is quoted back */
    }
    static const char *bad_tick[] = {"0", "86401", "-3", "1.5"};
    for (size_t i = 0; i < sizeof bad_tick / sizeof bad_tick[0]; i++)
        expect_error("--ticktime", PARSE(&o, err, "--name", "a@h", "--cookie", "c", "--ticktime", bad_tick[i]), err);
    static const char *bad_max[] = {"1023", "0", "2147483649", "lots"};
    for (size_t i = 0; i < sizeof bad_max / sizeof bad_max[0]; i++)
        expect_error("--max-message-bytes",
                     PARSE(&o, err, "--name", "a@h", "--cookie", "c", "--max-message-bytes", bad_max[i]), err);
    expect_error("--log-level", PARSE(&o, err, "--name", "a@h", "--cookie", "c", "--log-level", "loud"), err);
    expect_error("--log-level", PARSE(&o, err, "--name", "a@h", "--cookie", "c", "--log-level", "INFO"), err);
}

static void test_connect(void **state)
{
    (void)state;
    hordec_options o;
    char err[256];
    expect_error("--connect", PARSE(&o, err, "--name", "a@h", "--cookie", "c", "--connect", "peer"), err);
    char *argv[3 + 2 * (HORDEC_MAX_CONNECT + 1) + 4];
    int argc = 0;
    argv[argc++] = "hordec";
    argv[argc++] = "--name";
    argv[argc++] = "a@h";
    argv[argc++] = "--cookie";
    argv[argc++] = "c";
    for (int i = 0; i < HORDEC_MAX_CONNECT; i++) {
        argv[argc++] = "--connect";
        argv[argc++] = "p@h";
    }
    argv[argc] = NULL;
    assert_int_equal(hordec_parse_args(argc, argv, &o, err, sizeof err), 0);
    assert_int_equal(o.nconnect, HORDEC_MAX_CONNECT);
    argv[argc++] = "--connect";
    argv[argc++] = "p@h";
    argv[argc] = NULL;
    expect_error("at most", hordec_parse_args(argc, argv, &o, err, sizeof err), err);
}

static void test_unknown_and_missing(void **state)
{
    (void)state;
    hordec_options o;
    char err[256];
    expect_error("unknown option '--bogus'", PARSE(&o, err, "--name", "a@h", "--cookie", "c", "--bogus"), err);
    expect_error("unknown option '--bogus=1'", PARSE(&o, err, "--bogus=1", "--name", "a@h"), err);
    expect_error("unknown option '-x'", PARSE(&o, err, "-x", "--name", "a@h", "--cookie", "c"), err);
    expect_error("unknown option '-x'", PARSE(&o, err, "-xy", "--name", "a@h", "--cookie", "c"), err);
    expect_error("option '--cookie' needs a value", PARSE(&o, err, "--name", "a@h", "--cookie"), err);
    expect_error("option '--name' needs a value", PARSE(&o, err, "--name"), err);
    expect_error("option '--help=yes' takes no value", PARSE(&o, err, "--help=yes"), err);
    expect_error("unexpected argument 'extra'", PARSE(&o, err, "--name", "a@h", "--cookie", "c", "extra"), err);
    /* a stopped parse leaves no state behind: the next one starts clean */
    assert_int_equal(PARSE(&o, err, "--name", "a@h", "--cookie", "c"), 0);
    assert_string_equal(o.node_name, "a@h");
}

static void test_help_version(void **state)
{
    (void)state;
    hordec_options o;
    char err[256];
    assert_int_equal(PARSE(&o, err, "--help"), 0);
    assert_true(o.help);
    assert_int_equal(PARSE(&o, err, "--version"), 0);
    assert_true(o.version);
    assert_false(o.help);
    /* help wins over missing names, but not over bad values */
    assert_int_equal(PARSE(&o, err, "--help", "--port", "1"), 0);
    expect_error("--port", PARSE(&o, err, "--help", "--port", "x"), err);
    FILE *f = tmpfile();
    hordec_print_usage(f);
    long n = ftell(f);
    fclose(f);
    assert_true(n > 200);
}

static void test_cookie_sources(void **state)
{
    (void)state;
    hordec_options o;
    char err[512], path[512];

    expect_error("--cookie must be", PARSE(&o, err, "--name", "a@h", "--cookie", ""), err);
    char longc[1100];
    memset(longc, 'c', sizeof longc);
    longc[1024] = 0;
    expect_error("--cookie must be", PARSE(&o, err, "--name", "a@h", "--cookie", longc), err);
    longc[1023] = 0;
    assert_int_equal(PARSE(&o, err, "--name", "a@h", "--cookie", longc), 0);
    assert_int_equal(strlen(o.cookie), 1023);

    snprintf(path, sizeof path, "%s/cookie1", tmpdir);
    write_file(path, "FILECOOKIE\n");
    assert_int_equal(PARSE(&o, err, "--name", "a@h", "--cookie-file", path), 0);
    assert_string_equal(o.cookie, "FILECOOKIE");
    write_file(path, "CRLF\r\n\r\n");
    assert_int_equal(PARSE(&o, err, "--name", "a@h", "--cookie-file", path), 0);
    assert_string_equal(o.cookie, "CRLF");
    write_file(path, "nonewline");
    assert_int_equal(PARSE(&o, err, "--name", "a@h", "--cookie-file", path), 0);
    assert_string_equal(o.cookie, "nonewline");
    /* --cookie beats --cookie-file */
    assert_int_equal(PARSE(&o, err, "--name", "a@h", "--cookie-file", path, "--cookie", "flag"), 0);
    assert_string_equal(o.cookie, "flag");

    write_file(path, "\n\n");
    expect_error("empty", PARSE(&o, err, "--name", "a@h", "--cookie-file", path), err);
    assert_non_null(strstr(err, path));
    snprintf(path, sizeof path, "%s/does-not-exist", tmpdir);
    expect_error("cannot read cookie file", PARSE(&o, err, "--name", "a@h", "--cookie-file", path), err);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, strerror(ENOENT)));
}

static void test_default_cookie_file(void **state)
{
    (void)state;
    hordec_options o;
    char err[512], path[512];
    snprintf(path, sizeof path, "%s/.erlang.cookie", tmpdir);
    unlink(path);
    /* no ~/.erlang.cookie: one is created, owner-read-only, 20 capital letters, like erl */
    assert_int_equal(PARSE(&o, err, "--name", "a@h"), 0);
    assert_int_equal(strlen(o.cookie), 20);
    for (int i = 0; i < 20; i++)
        assert_true(o.cookie[i] >= 'A' && o.cookie[i] <= 'Z');
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0400);
    char first[sizeof o.cookie];
    memcpy(first, o.cookie, sizeof first);
    /* the next start reads the same file */
    assert_int_equal(PARSE(&o, err, "--name", "a@h"), 0);
    assert_string_equal(o.cookie, first);
    unlink(path);

    /* no $HOME at all */
    unsetenv("HOME");
    expect_error("$HOME", PARSE(&o, err, "--name", "a@h"), err);
    setenv("HOME", tmpdir, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_name_and_defaults),
        cmocka_unit_test(test_sname_expansion),
        cmocka_unit_test(test_name_combinations),
        cmocka_unit_test(test_number_ranges),
        cmocka_unit_test(test_connect),
        cmocka_unit_test(test_unknown_and_missing),
        cmocka_unit_test(test_help_version),
        cmocka_unit_test(test_cookie_sources),
        cmocka_unit_test(test_default_cookie_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
