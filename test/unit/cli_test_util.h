/* cli_test_util.h — what the hordec command-line tests share: a temporary $HOME for each test (so that no test
 * touches the real ~/.erlang.cookie; `tmpdir` names it) and parsing an argument list as main() would.
 * Include after <cmocka.h> and "daemon/cli.h". */
#ifndef HORDEC_TEST_CLI_TEST_UTIL_H
#define HORDEC_TEST_CLI_TEST_UTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hordec-test-cli-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    setenv("HOME", tmpdir, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Parses the NULL-terminated arguments `ap` after an argv[0] of "hordec". */
static int parse_va(hordec_options *o, char *err, size_t errlen, va_list ap)
{
    char *argv[200];
    int argc = 0;
    argv[argc++] = "hordec";
    for (char *a; argc < 199 && (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    argv[argc] = NULL;
    err[0] = 0;
    return hordec_parse_args(argc, argv, o, err, errlen);
}

#endif
