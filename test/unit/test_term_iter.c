/* test_term_iter.c — hc_iter (common/term_iter.c): proper lists, [], lists the BEAM sends as STRING_EXT,
 * maps, improper lists (an error unless asked for), and hostile containers, which must be rejected before
 * a single element is handed out. Inputs are the BEAM's bytes (OTP 25, term_to_binary minus the 131). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/etf.h"
#include "hordec/hc_term.h"
#include "term_test_util.h"

/* The elements of a list as one hex string of their term bytes; HC_EDECODE if the list is refused. */
static int list_hex(const char *hex, bool improper, char *out, size_t cap, char *tail, size_t tcap)
{
    hc_buf b = from_hex(hex);
    uint8_t *c = exact_copy(b.data, b.len);
    hc_iter it;
    size_t idx = 0;
    int rc = improper ? hc_iter_improper_list(&it, c, b.len, &idx) : hc_iter_list(&it, c, b.len, &idx);
    out[0] = 0;
    if (tail)
        tail[0] = 0;
    if (rc == HC_OK) {
        assert_int_equal(idx, b.len);
        uint32_t announced = it.left, seen = 0;
        hc_span e;
        size_t o = 0;
        while (hc_iter_next(&it, &e)) {
            for (size_t k = 0; k < e.len && o + 3 < cap; k++)
                o += (size_t)snprintf(out + o, cap - o, "%02X", e.p[k]);
            if (o + 2 < cap)
                out[o++] = '|', out[o] = 0;
            seen++;
        }
        assert_int_equal(seen, announced);
        assert_false(hc_iter_next(&it, &e)); /* stays at the end */
        if (tail)
            for (size_t k = 0, t = 0; k < it.tail.len && t + 3 < tcap; k++)
                t += (size_t)snprintf(tail + t, tcap - t, "%02X", it.tail.p[k]);
    } else {
        assert_int_equal(idx, 0);
    }
    free(c);
    hc_buf_free(&b);
    return rc;
}

static void test_lists(void **state)
{
    (void)state;
    char out[256];
    /* [] */
    assert_int_equal(list_hex("6A", false, out, sizeof out, NULL, 0), HC_OK);
    assert_string_equal(out, "");
    /* [1, 2, 3] arrives as a STRING: each element comes out as a SMALL_INTEGER term */
    assert_int_equal(list_hex("6B0003010203", false, out, sizeof out, NULL, 0), HC_OK);
    assert_string_equal(out, "6101|6102|6103|");
    /* "" as a charlist is [] on the wire; a 0-length STRING is not what the BEAM sends, but is a list */
    assert_int_equal(list_hex("6B0000", false, out, sizeof out, NULL, 0), HC_OK);
    assert_string_equal(out, "");
    /* [256, 1] is a LIST */
    assert_int_equal(list_hex("6C00000002620000010061016A", false, out, sizeof out, NULL, 0), HC_OK);
    assert_string_equal(out, "6200000100|6101|");
    /* [{a, 1}, [x], #{}] */
    assert_int_equal(list_hex("6C00000003"
                              "68027701616101"
                              "6C000000017701786A"
                              "7400000000"
                              "6A",
                              false, out, sizeof out, NULL, 0),
                     HC_OK);
    assert_string_equal(out, "68027701616101|6C000000017701786A|7400000000|");
}

static void test_improper_lists(void **state)
{
    (void)state;
    char out[256], tail[64];
    /* [1 | 2]: refused by hc_iter_list, walked by hc_iter_improper_list with the tail left over */
    assert_int_equal(list_hex("6C0000000161016102", false, out, sizeof out, NULL, 0), HC_EDECODE);
    assert_int_equal(list_hex("6C0000000161016102", true, out, sizeof out, tail, sizeof tail), HC_OK);
    assert_string_equal(out, "6101|");
    assert_string_equal(tail, "6102");
    /* a proper list through the improper walker: no tail */
    assert_int_equal(list_hex("6C0000000161016A", true, out, sizeof out, tail, sizeof tail), HC_OK);
    assert_string_equal(tail, "");
    /* a tail that is itself a list ([1 | [2]] as ei could write it) is not a proper list */
    assert_int_equal(list_hex("6C000000016101"
                              "6C0000000161026A",
                              false, out, sizeof out, NULL, 0),
                     HC_EDECODE);
    assert_int_equal(list_hex("6C000000016101"
                              "6C0000000161026A",
                              true, out, sizeof out, tail, sizeof tail),
                     HC_OK);
    assert_string_equal(tail, "6C0000000161026A");
}

static void test_lists_hostile(void **state)
{
    (void)state;
    char out[64];
    static const char *bad[] = {
        "",                     /* nothing */
        "6C",                   /* header cut */
        "6C00000002610161",     /* one element short */
        "6C000000026101610261", /* tail cut */
        "6C0000000261016102",   /* no tail at all */
        "6CFFFFFFFF6A",         /* four billion elements claimed */
        "6C000000016101"
        "52", /* a tail that is no term */
        "6C00000001"
        "5200"
        "6A",     /* an element that is no term */
        "6B0003", /* STRING without its bytes */
        "6B00030102",
        "6B",
        "7400000000", /* a map */
        "6101",       /* an integer */
        "6D00000000", /* a binary */
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        if (list_hex(bad[k], false, out, sizeof out, NULL, 0) != HC_EDECODE)
            fail_msg("list %s accepted", bad[k]);
        if (list_hex(bad[k], true, out, sizeof out, NULL, 0) != HC_EDECODE)
            fail_msg("improper list %s accepted", bad[k]);
    }
}

static void test_maps(void **state)
{
    (void)state;
    /* #{a => 1, b => [x]} then a trailing atom the iterator must not touch */
    hc_buf b = from_hex("740000000277016161017701626C000000017701786A"
                        "770178");
    hc_iter it;
    size_t idx = 0;
    assert_int_equal(hc_iter_map(&it, b.data, b.len, &idx), HC_OK);
    assert_int_equal(idx, b.len - 3);
    assert_int_equal(it.left, 2);
    hc_span k, v;
    assert_false(hc_iter_next(&it, &k)); /* a map hands out pairs, not elements */
    assert_int_equal(it.left, 2);
    assert_true(hc_iter_next_pair(&it, &k, &v));
    assert_true(k.len == 3 && memcmp(k.p,
                                     "\x77\x01"
                                     "a",
                                     3) == 0);
    assert_true(v.len == 2 && v.p[1] == 1);
    assert_true(hc_iter_next_pair(&it, &k, &v));
    assert_true(hc_dec_is_atom(k.p, k.len, &(size_t){0}, "b"));
    assert_int_equal(v.len, 9);
    assert_false(hc_iter_next_pair(&it, &k, &v));
    hc_buf_free(&b);
    /* #{} */
    b = from_hex("7400000000");
    idx = 0;
    assert_int_equal(hc_iter_map(&it, b.data, b.len, &idx), HC_OK);
    assert_false(hc_iter_next_pair(&it, &k, &v));
    hc_buf_free(&b);
    /* a list is not a map, and pairs are not elements */
    b = from_hex("6C0000000161016A");
    idx = 0;
    assert_int_equal(hc_iter_map(&it, b.data, b.len, &idx), HC_EDECODE);
    assert_int_equal(hc_iter_list(&it, b.data, b.len, &idx), HC_OK);
    assert_false(hc_iter_next_pair(&it, &k, &v));
    hc_buf_free(&b);
    static const char *bad[] = {
        "74",
        "74000000",
        "7400000001770161",
        "740000000177016161",
        "74FFFFFFFF",
        "74800000006101",
        "7400000001"
        "5200"
        "6101",
    };
    for (size_t n = 0; n < sizeof bad / sizeof bad[0]; n++) {
        hc_buf h = from_hex(bad[n]);
        uint8_t *c = exact_copy(h.data, h.len);
        idx = 0;
        if (hc_iter_map(&it, c, h.len, &idx) != HC_EDECODE || idx != 0)
            fail_msg("map %s accepted", bad[n]);
        free(c);
        hc_buf_free(&h);
    }
}

/* Every truncation of a valid list or map is refused up front, never half-walked. */
static void test_truncations(void **state)
{
    (void)state;
    static const char *lists[] = {"6B0003010203", "6C00000002620000010061016A", "6C0000000161016102"};
    for (size_t k = 0; k < sizeof lists / sizeof lists[0]; k++) {
        hc_buf b = from_hex(lists[k]);
        for (size_t n = 0; n < b.len; n++) {
            uint8_t *c = exact_copy(b.data, n);
            hc_iter it;
            size_t idx = 0;
            assert_int_equal(hc_iter_improper_list(&it, c, n, &idx), HC_EDECODE);
            assert_int_equal(idx, 0);
            free(c);
        }
        hc_buf_free(&b);
    }
    hc_buf m = from_hex("740000000277016161017701626C000000017701786A");
    for (size_t n = 0; n < m.len; n++) {
        uint8_t *c = exact_copy(m.data, n);
        hc_iter it;
        size_t idx = 0;
        assert_int_equal(hc_iter_map(&it, c, n, &idx), HC_EDECODE);
        free(c);
    }
    hc_buf_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lists), cmocka_unit_test(test_improper_lists), cmocka_unit_test(test_lists_hostile),
        cmocka_unit_test(test_maps),  cmocka_unit_test(test_truncations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
