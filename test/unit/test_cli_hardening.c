/* test_cli_hardening.c — the hordec flags of issue 9 (distribution side): a --cookie-file that group or others
 * may read is refused as ~/.erlang.cookie is, and the connection, handshake and queue limits parse with their
 * ranges checked. */
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

static int parse(hordec_options *o, char *err, size_t errlen, ...)
{
    va_list ap;
    va_start(ap, errlen);
    int rc = parse_va(o, err, errlen, ap);
    va_end(ap);
    if (rc == 0)
        hordec_options_free(o);
    return rc;
}

#define PARSE(o, err, ...) parse(o, err, sizeof err, __VA_ARGS__, (char *)NULL)

static void expect_error(const char *want, int rc, const char *err)
{
    assert_int_equal(rc, -1);
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not mention \"%s\"", err, want);
}

static void test_cookie_file_readable_by_others_is_refused(void **state)
{
    (void)state;
    hordec_options o;
    char err[512], path[512];
    snprintf(path, sizeof path, "%s/cookie", tmpdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("SECRET\n", f);
    fclose(f);
    static const mode_t refused[] = {0644, 0640, 0604, 0660, 0606};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        assert_int_equal(chmod(path, refused[i]), 0);
        expect_error("accessible by owner only", PARSE(&o, err, "--name", "a@h", "--cookie-file", path), err);
        assert_non_null(strstr(err, path));
    }
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(PARSE(&o, err, "--name", "a@h", "--cookie-file", path), 0);
    assert_string_equal(o.cookie, "SECRET");
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(PARSE(&o, err, "--name", "a@h", "--cookie-file", path), 0);
}

static void test_limits(void **state)
{
    (void)state;
    hordec_options o;
    char err[512];
    assert_int_equal(PARSE(&o, err, "--name", "a@h", "--cookie", "c"), 0);
    /* 0: the runtime's defaults (hc_rt_config_defaults) */
    assert_int_equal(o.max_connections + o.max_handshakes + o.max_handshakes_per_addr, 0);
    assert_int_equal(o.max_peer_queue_bytes, 0);
    assert_int_equal(PARSE(&o, err, "--name", "a@h", "--cookie", "c", "--max-connections", "10", "--max-handshakes",
                           "20", "--max-handshakes-per-addr", "3", "--max-peer-queue-bytes", "1048576"),
                     0);
    assert_int_equal(o.max_connections, 10);
    assert_int_equal(o.max_handshakes, 20);
    assert_int_equal(o.max_handshakes_per_addr, 3);
    assert_int_equal(o.max_peer_queue_bytes, 1048576);
    expect_error("--max-connections wants", PARSE(&o, err, "--name", "a@h", "--max-connections", "0"), err);
    expect_error("--max-handshakes wants", PARSE(&o, err, "--name", "a@h", "--max-handshakes", "-1"), err);
    expect_error("--max-handshakes-per-addr wants",
                 PARSE(&o, err, "--name", "a@h", "--max-handshakes-per-addr", "many"), err);
    expect_error("--max-peer-queue-bytes wants", PARSE(&o, err, "--name", "a@h", "--max-peer-queue-bytes", "100"), err);
    expect_error("needs a value", PARSE(&o, err, "--name", "a@h", "--max-connections"), err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cookie_file_readable_by_others_is_refused),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
