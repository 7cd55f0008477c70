/* test_config_file.c — `hordec --config FILE` (config_file.h through hordec_parse_args): comments, quoting and
 * escapes, `name value` / `name = value` / `--name value`, repeatable options, command-line precedence by
 * position, and errors that name the file, the line and the option: unknown options, missing or unexpected
 * values, bad values, unterminated quotes, nesting, a readable cookie, binary and oversized files. */
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
#include "daemon/config_file.h"
#include "hordec/hc_common.h"

#include "cli_test_util.h"

/* Writes `body` (len bytes, or strlen) to tmpdir/name with `mode`; returns the path (static storage per name). */
static const char *write_file(const char *name, const char *body, size_t len, mode_t mode)
{
    static char paths[8][512];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, 512, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(body, 1, len ? len : strlen(body), f), len ? len : strlen(body));
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static const char *conf(const char *body) { return write_file("hordec.conf", body, 0, 0600); }

static int parse(hordec_options *o, char *err, size_t errlen, ...)
{
    va_list ap;
    va_start(ap, errlen);
    int rc = parse_va(o, err, errlen, ap);
    va_end(ap);
    return rc;
}

#define PARSE(o, err, ...) parse(o, err, sizeof err, __VA_ARGS__, (char *)NULL)

static void expect_error(int rc, const char *err, const char *want1, const char *want2)
{
    assert_int_equal(rc, -1);
    if (!strstr(err, want1) || (want2 && !strstr(err, want2)))
        fail_msg("error \"%s\" does not mention \"%s\"%s%s", err, want1, want2 ? " and " : "", want2 ? want2 : "");
}

/* "PATH:LINE" for the config file of conf(). */
static const char *at_line(int line)
{
    static char s[600];
    snprintf(s, sizeof s, "%s/hordec.conf:%d:", tmpdir, line);
    return s;
}

static void every_form(void **state)
{
    (void)state;
    char cookie_path[512];
    snprintf(cookie_path, sizeof cookie_path, "%s/my cookie", tmpdir);
    write_file("my cookie", "sekrit\n", 0, 0400);
    char body[4096];
    snprintf(body, sizeof body,
             "# hordec.conf: one option per line\n"
             "\n"
             "   name   o11@127.0.0.1   # the node\n"
             "cookie-file \"%s\"\n"
             "port=4370\r\n"
             "--ticktime = 15\n"
             "connect a@h1\n"
             "connect b@h2 # two of them\n"
             "registry MyApp.Reg:duplicate\n"
             "supervisor \"MyApp.Sup\"   \n"
             "\t# indented comment\n"
             "metrics-port 9568\n"
             "metrics-bind ::1\n"
             "watch-stdin\n"
             "log-level debug",
             cookie_path); /* no newline at the end of the last line */
    const char *path = conf(body);
    hordec_options o;
    char err[512];
    assert_int_equal(PARSE(&o, err, "--config", (char *)path), 0);
    assert_string_equal(o.node_name, "o11@127.0.0.1");
    assert_string_equal(o.cookie, "sekrit");
    assert_int_equal(o.port, 4370);
    assert_int_equal(o.ticktime_s, 15);
    assert_int_equal(o.nconnect, 2);
    assert_string_equal(o.connect[0], "a@h1");
    assert_string_equal(o.connect[1], "b@h2");
    assert_int_equal(o.nregistries, 1);
    assert_string_equal(o.registries[0].name, "MyApp.Reg");
    assert_true(o.registries[0].duplicate);
    assert_int_equal(o.nsupervisors, 1);
    assert_string_equal(o.supervisors[0], "MyApp.Sup");
    assert_int_equal(o.metrics_port, 9568);
    assert_string_equal(o.metrics_bind, "::1");
    assert_true(o.watch_stdin);
    assert_int_equal(o.log_level, HC_LOG_DEBUG);
    hordec_options_free(&o);
}

static void quoting(void **state)
{
    (void)state;
    const char *path = conf("name q@h\n"
                            "cookie \"a b # not a comment \\\"quoted\\\" back\\\\slash\"  # a comment\n"
                            "connect x@h#still-the-value\n");
    hordec_options o;
    char err[512];
    assert_int_equal(PARSE(&o, err, "--config", (char *)path), 0);
    assert_string_equal(o.cookie, "a b # not a comment \"quoted\" back\\slash");
    assert_string_equal(o.connect[0], "x@h#still-the-value"); /* '#' starts a comment only after white space */
    hordec_options_free(&o);
}

/* Options take effect in order, the file's where --config stands: later ones win, repeatable ones add up. */
static void command_line_precedence(void **state)
{
    (void)state;
    const char *path = conf("sname n\ncookie c\nport 1111\nconnect a@h\n");
    hordec_options o;
    char err[512];
    assert_int_equal(PARSE(&o, err, "--config", (char *)path, "--port", "2222", "--connect", "b@h"), 0);
    assert_int_equal(o.port, 2222);
    assert_int_equal(o.nconnect, 2);
    hordec_options_free(&o);
    char eq[600];
    snprintf(eq, sizeof eq, "--config=%s", path);
    assert_int_equal(PARSE(&o, err, "--port", "2222", eq), 0);
    assert_int_equal(o.port, 1111);
    hordec_options_free(&o);
    /* a whole-command rule still holds across file and command line */
    expect_error(PARSE(&o, err, "--config", (char *)path, "--name", "x@h"), err, "exactly one of", NULL);
}

static void errors_name_file_line_and_option(void **state)
{
    (void)state;
    hordec_options o;
    char err[1024];
    const char *path;

    path = conf("name a@h\n\n# c\nbogus-option 1\n");
    expect_error(PARSE(&o, err, "--config", (char *)path), err, at_line(4), "unknown option 'bogus-option'");

    path = conf("name a@h\ncookie c\nport\n");
    expect_error(PARSE(&o, err, "--config", (char *)path), err, at_line(3), "option 'port' needs a value");

    path = conf("watch-stdin yes\n");
    expect_error(PARSE(&o, err, "--config", (char *)path), err, at_line(1), "option 'watch-stdin' takes no value");

    /* a value the option itself refuses: the option's own message, with the line */
    path = conf("name a@h\ncookie c\nport abc\n");
    expect_error(PARSE(&o, err, "--config", (char *)path), err, at_line(3), "--port wants a number");

    path = conf("name a@h\ncookie \"abc\n");
    expect_error(PARSE(&o, err, "--config", (char *)path), err, at_line(2), "unterminated quote");

    path = conf("cookie \"a\\qb\"\n");
    expect_error(PARSE(&o, err, "--config", (char *)path), err, at_line(1), "unknown escape");

    path = conf("cookie \"ab\" trailing\n");
    expect_error(PARSE(&o, err, "--config", (char *)path), err, at_line(1), "after the quoted value");

    path = conf("name a@h\nconfig other.conf\n");
    expect_error(PARSE(&o, err, "--config", (char *)path), err, at_line(2), "cannot include another");

    path = conf("port: 5\n");
    expect_error(PARSE(&o, err, "--config", (char *)path), err, at_line(1), "expected an option name");

    path = conf("name a@h\ncookie c\nregistry R\nregistry R\n");
    expect_error(PARSE(&o, err, "--config", (char *)path), err, at_line(4), "given twice");

    expect_error(PARSE(&o, err, "--config", "/nonexistent/hordec.conf"), err, "/nonexistent/hordec.conf", NULL);
    expect_error(PARSE(&o, err, "--config"), err, "'--config' needs a value", NULL);
    expect_error(PARSE(&o, err, "--config="), err, "wants a file name", NULL);
    expect_error(PARSE(&o, err, "--config", tmpdir), err, "not a regular file", NULL);
}

/* A cookie in a file others may read is no secret (as erl says of ~/.erlang.cookie). */
static void cookie_needs_a_private_file(void **state)
{
    (void)state;
    const char *path = write_file("shared.conf", "sname n\ncookie topsecret\n", 0, 0644);
    hordec_options o;
    char err[1024];
    expect_error(PARSE(&o, err, "--config", (char *)path), err, ":2:", "chmod 600");
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(PARSE(&o, err, "--config", (char *)path), 0);
    assert_string_equal(o.cookie, "topsecret");
    hordec_options_free(&o);
    /* without a cookie line a shared file is fine */
    path = write_file("shared2.conf", "sname n\nport 7\n", 0, 0644);
    assert_int_equal(PARSE(&o, err, "--config", (char *)path, "--cookie", "c"), 0);
    hordec_options_free(&o);
}

static void not_text_and_too_big(void **state)
{
    (void)state;
    hordec_options o;
    char err[1024];
    const char *path = write_file("bin.conf", "sname n\nport 5\0\n", 16, 0600);
    expect_error(PARSE(&o, err, "--config", (char *)path), err, ":2:", "NUL byte");

    size_t big = HORDEC_CONFIG_MAX_BYTES + 1;
    char *body = malloc(big);
    assert_non_null(body);
    memset(body, '#', big);
    path = write_file("big.conf", body, big, 0600);
    free(body);
    expect_error(PARSE(&o, err, "--config", (char *)path), err, "larger than", NULL);
}

/* The reader on its own: elements "--name=value" / "--name", each with its origin; a failed read adds nothing. */
static void reader_elements(void **state)
{
    (void)state;
    const char *path = conf("port 5\nwatch-stdin\nname =\n");
    hordec_args a = {0};
    char err[512];
    assert_int_equal(hordec_config_read(path, &a, err, sizeof err), HC_OK);
    assert_int_equal(a.argc, 3);
    assert_string_equal(a.argv[0], "--port=5");
    assert_string_equal(a.argv[1], "--watch-stdin");
    assert_string_equal(a.argv[2], "--name="); /* an explicit empty value, for the option to judge */
    assert_null(a.argv[3]);
    char want[600];
    snprintf(want, sizeof want, "%s/hordec.conf:2", tmpdir);
    assert_string_equal(hordec_args_origin(&a, a.argv[1]), want);
    assert_null(hordec_args_origin(&a, "--port=5")); /* by address: a string that is not an element has none */
    const char *bad = conf("port 5\nnope\n");
    assert_int_not_equal(hordec_config_read(bad, &a, err, sizeof err), HC_OK);
    assert_int_equal(a.argc, 3);
    hordec_args_free(&a);
    assert_int_equal(a.argc, 0);

    assert_int_equal(hordec_option_arity("port"), 1);
    assert_int_equal(hordec_option_arity("watch-stdin"), 0);
    assert_int_equal(hordec_option_arity("metrics-port"), 1);
    assert_int_equal(hordec_option_arity("no-such-option"), -1);
    assert_int_equal(hordec_option_arity("por"), -1); /* no abbreviations in files */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_form),
        cmocka_unit_test(quoting),
        cmocka_unit_test(command_line_precedence),
        cmocka_unit_test(errors_name_file_line_and_option),
        cmocka_unit_test(cookie_needs_a_private_file),
        cmocka_unit_test(not_text_and_too_big),
        cmocka_unit_test(reader_elements),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
