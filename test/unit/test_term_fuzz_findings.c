/* test_term_fuzz_findings.c — what fuzz_term found in the term codec, each fixed and pinned here.
 *
 * 1. Atoms whose text no BEAM accepts are refused by every decoder (found by fuzz_term: a
 * pid whose node was SMALL_ATOM_UTF8 with bytes that are not UTF-8 decoded, was interned, and then could not be
 * encoded back; as part of a CRDT key it would have been stored and streamed to BEAM nodes, which drop the
 * connection on such a term). erts refuses, as badarg: UTF-8 atoms that are not well-formed UTF-8 or longer than
 * 255 characters, and latin1 atoms longer than 255 characters.
 * 2. A LIST of no elements (5 bytes, then only a tail) was read by hc_dec_list_header and hc_iter_list as a complete
 *    empty list, while hc_dec_skip and hc_term_check counted the tail in: a decoder stopped where the skipper did
 *    not, so one message had two readings. No BEAM writes it (term_to_binary gives NIL): it is refused everywhere. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/etf.h"
#include "hordec/hc_term.h"

/* An exact-size heap copy of `tag, len, text` (len one byte for the SMALL tags, two otherwise). */
static uint8_t *atom_term(uint8_t tag, const uint8_t *text, size_t n, size_t *len)
{
    bool small = tag == ETF_SMALL_ATOM_UTF8 || tag == ETF_SMALL_ATOM;
    *len = 1 + (small ? 1 : 2) + n;
    uint8_t *p = malloc(*len);
    assert_non_null(p);
    p[0] = tag;
    if (small) {
        p[1] = (uint8_t)n;
    } else {
        p[1] = (uint8_t)(n >> 8);
        p[2] = (uint8_t)n;
    }
    memcpy(p + (small ? 2 : 3), text, n);
    return p;
}

static void expect(uint8_t tag, const uint8_t *text, size_t n, bool ok)
{
    size_t len, i = 0;
    uint8_t *p = atom_term(tag, text, n, &len);
    hc_atom a = 0;
    assert_int_equal(hc_dec_atom(p, len, &i, &a), ok ? HC_OK : HC_EDECODE);
    assert_int_equal(i, ok ? len : 0);
    i = 0;
    assert_int_equal(hc_dec_skip(p, len, &i), ok ? HC_OK : HC_EDECODE);
    assert_int_equal(hc_term_check(p, len), ok ? HC_OK : HC_EDECODE);
    i = 0;
    assert_false(!ok && hc_dec_is_atom(p, len, &i, "x"));
    free(p);
}

static void test_utf8_atoms(void **state)
{
    (void)state;
    static const uint8_t good[] = {'a', 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80};
    expect(ETF_SMALL_ATOM_UTF8, good, sizeof good, true);
    expect(ETF_ATOM_UTF8, good, sizeof good, true);
    static const uint8_t stray[] = {'a', '{', '@', 'f', 0xA5, 0xA5}; /* the fuzzer's input */
    static const uint8_t overlong[] = {'a', 0xC0, 0x80};             /* NUL, spelled in two bytes */
    static const uint8_t surrogate[] = {0xED, 0xA0, 0x80};           /* U+D800 */
    static const uint8_t too_high[] = {0xF4, 0x90, 0x80, 0x80};      /* U+110000 */
    static const uint8_t cut[] = {'a', 0xE2, 0x82};                  /* a character cut short */
    const struct {
        const uint8_t *p;
        size_t n;
    } bad[] = {{stray, sizeof stray},
               {overlong, sizeof overlong},
               {surrogate, sizeof surrogate},
               {too_high, sizeof too_high},
               {cut, sizeof cut}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        expect(ETF_SMALL_ATOM_UTF8, bad[k].p, bad[k].n, false);
        expect(ETF_ATOM_UTF8, bad[k].p, bad[k].n, false);
    }
}

static void test_lengths(void **state)
{
    (void)state;
    uint8_t text[600];
    memset(text, 'a', sizeof text);
    expect(ETF_SMALL_ATOM_UTF8, text, 255, true);
    expect(ETF_ATOM_UTF8, text, 255, true);
    expect(ETF_ATOM_UTF8, text, 256, false); /* 256 characters */
    expect(ETF_ATOM_UTF8, text, 600, false);
    expect(ETF_SMALL_ATOM, text, 255, true);
    expect(ETF_ATOM, text, 255, true);
    expect(ETF_ATOM, text, 256, false);
    /* 255 two-byte characters are 510 bytes and fine */
    uint8_t wide[510];
    for (size_t k = 0; k < sizeof wide; k += 2) {
        wide[k] = 0xC3;
        wide[k + 1] = 0xA9;
    }
    expect(ETF_ATOM_UTF8, wide, sizeof wide, true);
    /* latin1 bytes of any value are characters */
    uint8_t l1[3] = {0xE9, 0xFF, 0x80};
    expect(ETF_SMALL_ATOM, l1, sizeof l1, true);
}

/* Inside a larger term: a pid's node, a tuple element. */
static void test_nested(void **state)
{
    (void)state;
    static const uint8_t pid[] = {
        ETF_NEW_PID, ETF_SMALL_ATOM_UTF8, 3, 'a', '@', 0xA5, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
    uint8_t *p = malloc(sizeof pid);
    assert_non_null(p);
    memcpy(p, pid, sizeof pid);
    size_t i = 0;
    hc_pid out;
    assert_int_equal(hc_dec_pid(p, sizeof pid, &i, &out), HC_EDECODE);
    assert_int_equal(hc_dec_skip(p, sizeof pid, &i), HC_EDECODE);
    assert_int_equal(hc_term_check(p, sizeof pid), HC_EDECODE);
    p[5] = 'b'; /* the same pid with a valid node */
    i = 0;
    assert_int_equal(hc_dec_pid(p, sizeof pid, &i, &out), HC_OK);
    free(p);
    static const uint8_t tup[] = {ETF_SMALL_TUPLE, 2, ETF_SMALL_INTEGER, 1, ETF_SMALL_ATOM_UTF8, 2, 0xC0, 0x80};
    assert_int_equal(hc_term_check(tup, sizeof tup), HC_EDECODE);
}

static void test_empty_list_ext(void **state)
{
    (void)state;
    /* [] as LIST(0) + NIL, and LIST(0) with the tail 1; then the fuzzer's: LIST(0) followed by junk */
    static const uint8_t nil_tail[] = {ETF_LIST, 0, 0, 0, 0, ETF_NIL};
    static const uint8_t int_tail[] = {ETF_LIST, 0, 0, 0, 0, ETF_SMALL_INTEGER, 1};
    static const uint8_t in_tuple[] = {ETF_SMALL_TUPLE, 2, ETF_LIST, 0, 0, 0, 0, ETF_NIL, ETF_SMALL_INTEGER, 7};
    const struct {
        const uint8_t *p;
        size_t n;
    } cases[] = {{nil_tail, sizeof nil_tail}, {int_tail, sizeof int_tail}};
    for (size_t k = 0; k < 2; k++) {
        size_t i = 0;
        uint32_t n = 99;
        hc_iter it;
        assert_int_equal(hc_dec_list_header(cases[k].p, cases[k].n, &i, &n), HC_EDECODE);
        assert_int_equal(i, 0);
        assert_int_equal(hc_iter_list(&it, cases[k].p, cases[k].n, &i), HC_EDECODE);
        assert_int_equal(hc_iter_improper_list(&it, cases[k].p, cases[k].n, &i), HC_EDECODE);
        assert_int_equal(hc_dec_skip(cases[k].p, cases[k].n, &i), HC_EDECODE);
        assert_int_equal(hc_term_check(cases[k].p, cases[k].n), HC_EDECODE);
    }
    assert_int_equal(hc_term_check(in_tuple, sizeof in_tuple), HC_EDECODE);
    /* NIL and a one-element LIST still read as before */
    static const uint8_t one[] = {ETF_LIST, 0, 0, 0, 1, ETF_SMALL_INTEGER, 5, ETF_NIL};
    size_t i = 0;
    uint32_t n;
    assert_int_equal(hc_dec_list_header(one, sizeof one, &i, &n), HC_OK);
    assert_int_equal(n, 1);
    static const uint8_t nil[] = {ETF_NIL};
    i = 0;
    assert_int_equal(hc_dec_list_header(nil, 1, &i, &n), HC_OK);
    assert_int_equal(n, 0);
    assert_int_equal(hc_term_check(one, sizeof one), HC_OK);
}

static int teardown(void **state)
{
    (void)state;
    hc_atom_table_reset();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_atoms),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_nested),
        cmocka_unit_test(test_empty_list_ext),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
