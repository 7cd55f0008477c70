/* test_metrics_text.c — the Prometheus text encoder (metrics_text.h): HELP and TYPE lines, metric and label
 * name rules, escaping of \ " and newline in label values and of \ and newline in HELP text, number formats. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/metrics_text.h"

/* The buffer's bytes as a NUL-terminated string (the test's own copy). */
static char *text(const hc_buf *b)
{
    static char s[4096];
    assert_true(b->len < sizeof s);
    memcpy(s, b->data, b->len);
    s[b->len] = 0;
    return s;
}

static void metric_names(void **state)
{
    (void)state;
    const char *good[] = {"a", "_", ":", "hordec_peers", "a:b_c", "Z9", "_total:x9"};
    const char *bad[] = {"", "9a", "a-b", "a b", "a.b", "caf\xc3\xa9", "a{", "a\"", "a\n"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_true(hordec_prom_name_ok(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(hordec_prom_name_ok(bad[i]));
    assert_false(hordec_prom_name_ok(NULL));
}

static void label_names(void **state)
{
    (void)state;
    assert_true(hordec_prom_label_name_ok("node"));
    assert_true(hordec_prom_label_name_ok("_x1"));
    assert_false(hordec_prom_label_name_ok("a:b")); /* colons are for metric names only */
    assert_false(hordec_prom_label_name_ok("__name__"));
    assert_false(hordec_prom_label_name_ok("1a"));
    assert_false(hordec_prom_label_name_ok(""));
}

static void help_and_type(void **state)
{
    (void)state;
    hc_buf b = {0};
    assert_int_equal(hordec_prom_family(&b, "x_total", HORDEC_PROM_COUNTER, "counts \\ things\nand \"more\""), HC_OK);
    assert_int_equal(hordec_prom_family(&b, "y", HORDEC_PROM_GAUGE, NULL), HC_OK);
    assert_string_equal(text(&b), "# HELP x_total counts \\\\ things\\nand \"more\"\n"
                                  "# TYPE x_total counter\n"
                                  "# HELP y \n"
                                  "# TYPE y gauge\n");
    hc_buf_free(&b);
}

static void label_escaping(void **state)
{
    (void)state;
    hc_buf b = {0};
    hordec_prom_label l[3] = {{"node", "a@h"}, {"path", "c:\\dir\\\"q\"\nx"}, {"empty", ""}};
    assert_int_equal(hordec_prom_sample_u64(&b, "m", l, 3, 42), HC_OK);
    assert_string_equal(text(&b), "m{node=\"a@h\",path=\"c:\\\\dir\\\\\\\"q\\\"\\nx\",empty=\"\"} 42\n");
    hc_buf_free(&b);

    /* UTF-8 passes through as it is */
    hordec_prom_label u = {"replica", "Elixir.Caf\xc3\xa9"};
    assert_int_equal(hordec_prom_sample_u64(&b, "m", &u, 1, 0), HC_OK);
    assert_string_equal(text(&b), "m{replica=\"Elixir.Caf\xc3\xa9\"} 0\n");
    hc_buf_free(&b);
}

static void values(void **state)
{
    (void)state;
    hc_buf b = {0};
    hordec_prom_sample_u64(&b, "a", NULL, 0, UINT64_MAX);
    hordec_prom_sample_f64(&b, "b", NULL, 0, 0.25);
    hordec_prom_sample_f64(&b, "c", NULL, 0, NAN);
    hordec_prom_sample_f64(&b, "d", NULL, 0, INFINITY);
    hordec_prom_sample_f64(&b, "e", NULL, 0, -INFINITY);
    hordec_prom_sample_f64(&b, "f", NULL, 0, 1764770000.125); /* a Unix time keeps its digits */
    hordec_prom_sample_f64(&b, "g", NULL, 0, 0.1);
    assert_string_equal(text(&b), "a 18446744073709551615\nb 0.25\nc NaN\nd +Inf\ne -Inf\nf 1764770000.125\ng 0.1\n");
    hc_buf_free(&b);
}

static void bad_names_write_nothing(void **state)
{
    (void)state;
    hc_buf b = {0};
    hordec_prom_label bad_label = {"__reserved", "v"}, ok_label = {"ok", "v"};
    assert_int_equal(hordec_prom_family(&b, "bad-name", HORDEC_PROM_GAUGE, "h"), HC_EINVAL);
    assert_int_equal(hordec_prom_sample_u64(&b, "bad name", NULL, 0, 1), HC_EINVAL);
    assert_int_equal(hordec_prom_sample_u64(&b, "m", &bad_label, 1, 1), HC_EINVAL);
    assert_int_equal(hordec_prom_sample_f64(&b, "0m", &ok_label, 1, 1), HC_EINVAL);
    assert_int_equal(b.len, 0);
    hc_buf_free(&b);
}

/* A buffer that failed stays failed: the encoder reports the sticky error and never writes half a line. */
static void sticky_error(void **state)
{
    (void)state;
    hc_buf b = {0};
    b.err = HC_ENOMEM;
    assert_int_equal(hordec_prom_family(&b, "m", HORDEC_PROM_GAUGE, "h"), HC_ENOMEM);
    assert_int_equal(hordec_prom_sample_u64(&b, "m", NULL, 0, 1), HC_ENOMEM);
    assert_int_equal(b.len, 0);
    hc_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metric_names),   cmocka_unit_test(label_names), cmocka_unit_test(help_and_type),
        cmocka_unit_test(label_escaping), cmocka_unit_test(values),      cmocka_unit_test(bad_names_write_nothing),
        cmocka_unit_test(sticky_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
