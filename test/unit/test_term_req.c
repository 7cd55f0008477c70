/* test_term_req.c — hc_req_match (common/term_req.c): a request handler as a table of {atom, arity,
 * handler}. Bare atoms, tuples, wrong arity, unknown atoms, latin1 atoms, truncated and trailing bytes,
 * and a handler reading its arguments through the cursor with the decoders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hordec/hc_term.h"
#include "term_test_util.h"

typedef struct ctx {
    int calls;
    uint64_t key;
    hc_span value;
} ctx;

static int do_ping(void *c, hc_req_args *a)
{
    ((ctx *)c)->calls++;
    return hc_req_args_done(a) ? HC_OK : HC_EDECODE;
}

static int do_get(void *c, hc_req_args *a)
{
    ctx *x = c;
    x->calls++;
    if (hc_dec_ulong(a->p, a->len, &a->i, &x->key) || !hc_req_args_done(a))
        return HC_EDECODE;
    return HC_OK;
}

static int do_put(void *c, hc_req_args *a)
{
    ctx *x = c;
    x->calls++;
    if (hc_dec_ulong(a->p, a->len, &a->i, &x->key) || hc_dec_term(a->p, a->len, &a->i, &x->value) ||
        !hc_req_args_done(a))
        return HC_EDECODE;
    return HC_OK;
}

static const hc_req_entry TABLE[] = {
    {"ping", 0, do_ping}, {"get", 1, do_get},       {"put", 2, do_put},
    {"get", 2, do_put},   {"h\xC3\xA9", 1, do_get}, /* 'hé', a UTF-8 name */
    {"stop", 0, do_ping},
};
#define N (sizeof TABLE / sizeof TABLE[0])

static uint8_t *last; /* the copy behind the last match's args */

/* The entry a request (hex) matches, after an exact-size copy; NULL if none. */
static const hc_req_entry *match(const char *hex, hc_req_args *a)
{
    free(last);
    hc_buf b = from_hex(hex);
    last = exact_copy(b.data, b.len);
    const hc_req_entry *e = hc_req_match(TABLE, N, last, b.len, a);
    hc_buf_free(&b);
    return e;
}

static void test_bare_atom(void **state)
{
    (void)state;
    hc_req_args a;
    ctx c = {0};
    const hc_req_entry *e = match("770470696E67", &a); /* ping */
    assert_ptr_equal(e, &TABLE[0]);
    assert_int_equal(a.arity, 0);
    assert_int_equal(a.i, a.len);
    assert_int_equal(e->fn(&c, &a), HC_OK);
    assert_int_equal(c.calls, 1);
    assert_ptr_equal(match("770473746F70", &a), &TABLE[5]); /* stop */
    assert_null(match("6801770470696E67", &a));             /* {ping}: a 1-tuple is not the bare atom */
    assert_null(match("770470696E", &a));                   /* pin: truncated */
    assert_null(match("770470696E67"
                      "6A",
                      &a));                   /* ping, then a trailing [] */
    assert_null(match("77057061696E67", &a)); /* paing */
    assert_null(match("7703676574", &a));     /* get: no bare-atom entry */
}

static void test_tuples(void **state)
{
    (void)state;
    hc_req_args a;
    ctx c = {0};
    /* {get, 42} */
    const hc_req_entry *e = match("6802"
                                  "7703676574"
                                  "612A",
                                  &a);
    assert_ptr_equal(e, &TABLE[1]);
    assert_int_equal(a.arity, 1);
    assert_int_equal(a.i, 7); /* at A1 */
    assert_int_equal(e->fn(&c, &a), HC_OK);
    assert_int_equal(c.key, 42);
    /* {get, 1, <<"v">>}: same name, other arity, other entry */
    e = match("6803"
              "7703676574"
              "6101"
              "6D0000000176",
              &a);
    assert_ptr_equal(e, &TABLE[3]);
    assert_int_equal(e->fn(&c, &a), HC_OK);
    assert_int_equal(c.value.len, 6);
    /* {put, 7, {a, [b]}} */
    e = match("6803"
              "7703707574"
              "6107"
              "68027701616C0000000177016 26A",
              &a);
    assert_ptr_equal(e, &TABLE[2]);
    assert_int_equal(a.arity, 2);
    assert_int_equal(e->fn(&c, &a), HC_OK);
    assert_int_equal(c.key, 7);
    assert_int_equal(c.value.len, 14);
    /* a LARGE_TUPLE spelling is a tuple too */
    assert_ptr_equal(match("6900000002"
                           "7703676574"
                           "612A",
                           &a),
                     &TABLE[1]);
    /* wrong arity: {put, 1}, {get, 1, 2, 3}; {} and {get} */
    assert_null(match("6802"
                      "7703707574"
                      "6101",
                      &a));
    assert_null(match("6804"
                      "7703676574"
                      "610161026103",
                      &a));
    assert_null(match("6800", &a));
    assert_null(match("6801"
                      "7703676574",
                      &a));
    /* unknown name; first element not an atom; not an atom or tuple at all */
    assert_null(match("6802"
                      "7703646F6F"
                      "6101",
                      &a));
    assert_null(match("6802"
                      "6101"
                      "6101",
                      &a));
    assert_null(match("6D00000003676574", &a));
    assert_null(match("6B0003676574", &a));
    /* a handler finds arguments it does not want: it fails, the cursor says where */
    e = match("6802"
              "7703676574"
              "770178",
              &a); /* {get, x} */
    assert_ptr_equal(e, &TABLE[1]);
    assert_int_equal(e->fn(&c, &a), HC_EDECODE);
}

static void test_latin1_and_utf8_names(void **state)
{
    (void)state;
    hc_req_args a;
    /* 'ping' as ATOM_EXT and SMALL_ATOM_EXT (latin1), and as ATOM_UTF8 */
    assert_ptr_equal(match("64000470696E67", &a), &TABLE[0]);
    assert_ptr_equal(match("730470696E67", &a), &TABLE[0]);
    assert_ptr_equal(match("76000470696E67", &a), &TABLE[0]);
    /* {'hé', 1}: latin1 E9 matches the UTF-8 name C3 A9, as the BEAM compares atoms by characters */
    assert_ptr_equal(match("6802"
                           "730268E9"
                           "6101",
                           &a),
                     &TABLE[4]);
    assert_ptr_equal(match("6802"
                           "770368C3A9"
                           "6101",
                           &a),
                     &TABLE[4]);
    assert_null(match("6802"
                      "730268E8"
                      "6101",
                      &a)); /* 'hè' */
    assert_null(match("6802"
                      "770268C3"
                      "6101",
                      &a)); /* half a character */
    /* matching interns nothing, so unknown requests cannot fill the atom table */
    size_t before = hc_atom_count();
    assert_null(match("6802"
                      "770E"
                      "6E657665722D696E7465726E6564"
                      "6101",
                      &a));
    assert_int_equal(hc_atom_count(), before);
}

/* Every truncation of a valid request matches nothing (the whole request is checked first). */
static void test_truncated(void **state)
{
    (void)state;
    hc_buf b = from_hex("6803"
                        "7703707574"
                        "6107"
                        "68027701616C00000001770162 6A");
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *c = exact_copy(b.data, n);
        hc_req_args a;
        assert_null(hc_req_match(TABLE, N, c, n, &a));
        free(c);
    }
    hc_req_args a;
    assert_non_null(hc_req_match(TABLE, N, b.data, b.len, &a));
    assert_null(hc_req_match(TABLE, N, NULL, 0, &a));
    assert_null(hc_req_match(NULL, 0, b.data, b.len, &a));
    assert_null(hc_req_match(TABLE, 0, b.data, b.len, &a));
    hc_buf_free(&b);
    /* any depth is a request: the matcher does not impose the storage limit (hc_term_check does) */
    hc_buf deep = {0};
    hc_enc_tuple_header(&deep, 2);
    hc_enc_atom_cstr(&deep, "get");
    for (int i = 0; i < 1000; i++)
        hc_enc_tuple_header(&deep, 1);
    hc_enc_nil(&deep);
    const hc_req_entry *e = hc_req_match(TABLE, N, deep.data, deep.len, &a);
    assert_ptr_equal(e, &TABLE[1]);
    hc_span arg;
    assert_int_equal(hc_dec_term(a.p, a.len, &a.i, &arg), HC_OK);
    assert_true(hc_req_args_done(&a));
    assert_int_equal(hc_term_check(arg.p, arg.len), HC_EDECODE);
    hc_buf_free(&deep);
}

static int teardown(void **state)
{
    (void)state;
    free(last);
    last = NULL;
    hc_atom_table_reset();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bare_atom),
        cmocka_unit_test(test_tuples),
        cmocka_unit_test(test_latin1_and_utf8_names),
        cmocka_unit_test(test_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
