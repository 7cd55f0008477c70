/* test_registry_cli.c — hordec --registry NAME[:unique|:duplicate]: parsing, and what it refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/cli.h"

/* Parses "--name x@h --cookie c" plus the given arguments (NULL-terminated). */
static int parse(hordec_options *o, char *err, size_t errlen, ...)
{
    char *argv[64] = {"hordec", "--name", "x@h", "--cookie", "c"};
    int argc = 5;
    va_list ap;
    va_start(ap, errlen);
    for (char *a; (a = va_arg(ap, char *)) && argc < 63;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    err[0] = 0;
    return hordec_parse_args(argc, argv, o, err, errlen);
}

static void test_registries(void **state)
{
    hordec_options o;
    char err[256];
    assert_int_equal(parse(&o, err, sizeof err, NULL), 0);
    assert_int_equal(o.nregistries, 0);
    assert_int_equal(parse(&o, err, sizeof err, "--registry", "reg", "--registry", "Elixir.My.Dup:duplicate",
                           "--registry", "a:b:unique", NULL),
                     0);
    assert_int_equal(o.nregistries, 3);
    assert_string_equal(o.registries[0].name, "reg");
    assert_false(o.registries[0].duplicate);
    assert_string_equal(o.registries[1].name, "Elixir.My.Dup");
    assert_true(o.registries[1].duplicate);
    assert_string_equal(o.registries[2].name, "a:b"); /* the kind follows the last ':' */
    assert_false(o.registries[2].duplicate);
    (void)state;
}

static void test_bad_registries(void **state)
{
    hordec_options o;
    char err[256];
    assert_int_equal(parse(&o, err, sizeof err, "--registry", "reg:sometimes", NULL), -1);
    assert_non_null(strstr(err, "NAME, NAME:unique or NAME:duplicate"));
    assert_int_equal(parse(&o, err, sizeof err, "--registry", ":unique", NULL), -1);
    assert_non_null(strstr(err, "1 to 255 characters"));
    assert_int_equal(parse(&o, err, sizeof err, "--registry", "", NULL), -1);
    char big[300];
    memset(big, 'r', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(parse(&o, err, sizeof err, "--registry", big, NULL), -1);
    assert_int_equal(parse(&o, err, sizeof err, "--registry", "reg", "--registry", "reg:duplicate", NULL), -1);
    assert_non_null(strstr(err, "given twice"));
    assert_int_equal(parse(&o, err, sizeof err, "--registry", NULL), -1);
    assert_non_null(strstr(err, "needs a value"));
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registries),
        cmocka_unit_test(test_bad_registries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
