/* test_term_dec.c — every decoder of hc_term.h (common/term_dec.c, and hc_dec_term) on valid input the BEAM
 * produced (OTP 25, term_to_binary with the 131 removed), on every truncation of it, and on hostile input.
 * A decoder that fails must leave *idx and its output untouched; every read stays inside an exact-size
 * heap copy (ASan checks that in the sanitizer build). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>

#include "common/etf.h"
#include "hordec/hc_term.h"
#include "term_test_util.h"

/* One signature for the table below; each wrapper calls one decoder. */
typedef int (*dec_fn)(const uint8_t *p, size_t len, size_t *idx, void *out);

static int w_ulong(const uint8_t *p, size_t len, size_t *idx, void *o) { return hc_dec_ulong(p, len, idx, o); }
static int w_long(const uint8_t *p, size_t len, size_t *idx, void *o) { return hc_dec_long(p, len, idx, o); }
static int w_double(const uint8_t *p, size_t len, size_t *idx, void *o) { return hc_dec_double(p, len, idx, o); }
static int w_binary(const uint8_t *p, size_t len, size_t *idx, void *o) { return hc_dec_binary(p, len, idx, o); }
static int w_string(const uint8_t *p, size_t len, size_t *idx, void *o) { return hc_dec_string(p, len, idx, o); }
static int w_map(const uint8_t *p, size_t len, size_t *idx, void *o) { return hc_dec_map_header(p, len, idx, o); }
static int w_tuple(const uint8_t *p, size_t len, size_t *idx, void *o) { return hc_dec_tuple_header(p, len, idx, o); }
static int w_list(const uint8_t *p, size_t len, size_t *idx, void *o) { return hc_dec_list_header(p, len, idx, o); }
static int w_bool(const uint8_t *p, size_t len, size_t *idx, void *o) { return hc_dec_bool(p, len, idx, o); }
static int w_atom(const uint8_t *p, size_t len, size_t *idx, void *o) { return hc_dec_atom(p, len, idx, o); }
static int w_pid(const uint8_t *p, size_t len, size_t *idx, void *o) { return hc_dec_pid(p, len, idx, o); }
static int w_ref(const uint8_t *p, size_t len, size_t *idx, void *o) { return hc_dec_ref(p, len, idx, o); }
static int w_term(const uint8_t *p, size_t len, size_t *idx, void *o) { return hc_dec_term(p, len, idx, o); }
static int w_index(const uint8_t *p, size_t len, size_t *idx, void *o)
{
    static const char *const names[] = {"get", "put", "h\xC3\xA9"};
    return hc_dec_atom_index(p, len, idx, names, 3, o);
}

typedef struct sample {
    const char *what;
    dec_fn fn;
    size_t out_size;
    const char *hex;
} sample;

#define S(what, fn, type, hex)                                                                                         \
    {                                                                                                                  \
        what, fn, sizeof(type), hex                                                                                    \
    }

static const sample VALID[] = {
    S("ulong 0", w_ulong, uint64_t, "6100"),
    S("ulong int32 max", w_ulong, uint64_t, "627FFFFFFF"),
    S("ulong u64 max", w_ulong, uint64_t, "6E0800FFFFFFFFFFFFFFFF"),
    S("ulong ei-style 2^27", w_ulong, uint64_t, "6E040000000008"),
    S("long min", w_long, int64_t, "6E08010000000000000080"),
    S("double new", w_double, double, "463FF8000000000000"),
    S("double old", w_double, double, "63312E3530303030303030303030303030303030303030652B30300000000000"),
    S("binary", w_binary, hc_span, "6D00000003616263"),
    S("binary empty", w_binary, hc_span, "6D00000000"),
    S("string binary", w_string, hc_span, "6D00000003616263"),
    S("string charlist", w_string, hc_span, "6B0003616263"),
    S("string []", w_string, hc_span, "6A"),
    S("map header", w_map, uint32_t, "7400000002"),
    S("tuple small", w_tuple, uint32_t, "6802"),
    S("tuple large", w_tuple, uint32_t, "6900000100"),
    S("list header", w_list, uint32_t, "6C00000003"),
    S("list nil", w_list, uint32_t, "6A"),
    S("bool true", w_bool, bool, "770474727565"),
    S("bool latin1 false", w_bool, bool, "64000566616C7365"),
    S("atom", w_atom, hc_atom, "770568656C6C6F"),
    S("atom latin1", w_atom, hc_atom, "730268E9"),
    S("atom index", w_index, size_t, "7703707574"),
    S("pid", w_pid, hc_pid,
      "587703"
      "6E4068"
      "00000001"
      "00000002"
      "00000003"),
    S("pid old", w_pid, hc_pid,
      "677703"
      "6E4068"
      "00000001"
      "00000002"
      "03"),
    S("ref", w_ref, hc_ref,
      "5A0002"
      "7703"
      "6E4068"
      "00000003"
      "0000000100000002"),
    S("ref new", w_ref, hc_ref,
      "720001"
      "7703"
      "6E4068"
      "03"
      "00000001"),
    S("ref old", w_ref, hc_ref,
      "657703"
      "6E4068"
      "00000001"
      "03"),
    S("term", w_term, hc_span, "740000000277016161017701626C000000017701786A"),
};

static const sample HOSTILE[] = {
    S("ulong negative int", w_ulong, uint64_t, "62FFFFFFFF"),
    S("ulong negative big", w_ulong, uint64_t, "6E010105"),
    S("ulong 9 digits", w_ulong, uint64_t, "6E0900010000000000000000"),
    S("ulong sign 2", w_ulong, uint64_t, "6E0102FF"),
    S("ulong large big", w_ulong, uint64_t, "6F0000000100FF"),
    S("ulong a float", w_ulong, uint64_t, "463FF8000000000000"),
    S("ulong empty", w_ulong, uint64_t, ""),
    S("long 2^63", w_long, int64_t, "6E08000000000000000080"),
    S("double NaN", w_double, double, "467FF8000000000000"),
    S("double +inf", w_double, double, "467FF0000000000000"),
    S("double -inf", w_double, double, "46FFF0000000000000"),
    S("double integer", w_double, double, "6101"),
    S("double old junk", w_double, double, "6361626300000000000000000000000000000000000000000000000000000000"),
    S("double old no digits", w_double, double, "632E652B30300000000000000000000000000000000000000000000000000000"),
    S("double old trailing junk", w_double, double, "63312E35652B3030000000000000000000000000000000000000000000004100"),
    S("double old exponent only", w_double, double, "63312E3565000000000000000000000000000000000000000000000000000000"),
    S("binary bitstring", w_binary, hc_span, "4D000000010320"),
    S("binary charlist", w_binary, hc_span, "6B0003616263"),
    S("binary claims 4 GB", w_binary, hc_span, "6DFFFFFFFF00"),
    S("string latin1 charlist", w_string, hc_span, "6B000268E9"),
    S("string list of ints", w_string, hc_span, "6C00000002620000010061016A"),
    S("string atom", w_string, hc_span, "770161"),
    S("map header of a tuple", w_map, uint32_t, "6802"),
    S("list header of a string", w_list, uint32_t, "6B0003010203"),
    S("tuple header of a list", w_tuple, uint32_t, "6C00000001"),
    S("bool yes", w_bool, bool, "7703796573"),
    S("bool 1", w_bool, bool, "6101"),
    S("atom index unknown", w_index, size_t, "770364656C"),
    S("atom index prefix", w_index, size_t, "77026765"),
    S("atom index longer", w_index, size_t, "770467657474"),
    S("atom a binary", w_atom, hc_atom, "6D00000001 61"),
    S("atom cache ref", w_atom, hc_atom, "5200"),
    S("pid node not an atom", w_pid, hc_pid,
      "586101"
      "00000001"
      "00000002"
      "00000003"),
    S("ref 0 words", w_ref, hc_ref,
      "5A0000"
      "7703"
      "6E4068"
      "00000003"),
    S("ref 6 words", w_ref, hc_ref,
      "5A0006"
      "7703"
      "6E4068"
      "00000003"
      "000000000000000000000000000000000000000000000000"),
    S("term cache ref", w_term, hc_span, "5200"),
    S("term truncated", w_term, hc_span, "68026101"),
};

/* Runs fn on hex placed after `pad` junk bytes, in an exact-size copy. HC_OK or HC_EDECODE; on failure
 * asserts that idx and the output were left alone. */
static int run(const sample *s, const hc_buf *in, size_t len, size_t pad, size_t *end)
{
    uint8_t *c = malloc(pad + len + 1);
    memset(c, 0x83, pad);
    if (len)
        memcpy(c + pad, in->data, len);
    uint8_t *exact = exact_copy(c, pad + len);
    free(c);
    uint8_t out[sizeof(hc_ref) + 16], before[sizeof out];
    memset(out, 0xA5, sizeof out);
    memcpy(before, out, sizeof out);
    size_t idx = pad;
    int rc = s->fn(exact, pad + len, &idx, out);
    if (rc != HC_OK && rc != HC_EDECODE)
        fail_msg("%s: returned %d", s->what, rc);
    if (rc) {
        if (idx != pad)
            fail_msg("%s: failed but moved idx", s->what);
        if (memcmp(out, before, sizeof out) != 0)
            fail_msg("%s: failed but wrote its output", s->what);
    } else if (memcmp(out + s->out_size, before + s->out_size, sizeof out - s->out_size) != 0) {
        fail_msg("%s: wrote past its output", s->what);
    }
    *end = idx - pad;
    free(exact);
    return rc;
}

static void test_valid_and_every_truncation(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof VALID / sizeof VALID[0]; k++) {
        const sample *s = &VALID[k];
        hc_buf in = from_hex(s->hex);
        for (size_t pad = 0; pad < 3; pad += 2) {
            size_t end;
            if (run(s, &in, in.len, pad, &end) != HC_OK || end != in.len)
                fail_msg("%s (pad %zu): not decoded whole", s->what, pad);
            for (size_t n = 0; n < in.len; n++)
                if (run(s, &in, n, pad, &end) != HC_EDECODE)
                    fail_msg("%s truncated to %zu bytes: accepted", s->what, n);
        }
        hc_buf_free(&in);
    }
}

static void test_hostile(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof HOSTILE / sizeof HOSTILE[0]; k++) {
        hc_buf in = from_hex(HOSTILE[k].hex);
        size_t end;
        if (run(&HOSTILE[k], &in, in.len, 0, &end) != HC_EDECODE)
            fail_msg("%s: accepted", HOSTILE[k].what);
        hc_buf_free(&in);
    }
}

/* ------------------------------------------------------------------ the values */

static void test_numbers(void **state)
{
    (void)state;
    static const struct {
        const char *hex;
        uint64_t v;
    } u[] = {
        {"6100", 0},
        {"61FF", 255},
        {"6200000100", 256},
        {"627FFFFFFF", INT32_MAX},
        {"6E0400FFFFFFFF", UINT32_MAX},
        {"6E0800FFFFFFFFFFFFFFFF", UINT64_MAX},
        {"6E08000000000000000080", 1ULL << 63},
        {"6E040000000008", 1u << 27},
        {"6E0000", 0},
        {"6E0001", 0}, /* -0 */
    };
    for (size_t k = 0; k < sizeof u / sizeof u[0]; k++) {
        hc_buf b = from_hex(u[k].hex);
        size_t idx = 0;
        uint64_t v = 1;
        assert_int_equal(hc_dec_ulong(b.data, b.len, &idx, &v), HC_OK);
        assert_true(v == u[k].v);
        assert_int_equal(idx, b.len);
        hc_buf_free(&b);
    }
    /* every value hc_enc_ulong / hc_enc_long writes comes back */
    static const uint64_t us[] = {0,         1,          255,        256,        65535,      (1u << 27) - 1,
                                  1u << 27,  INT32_MAX,  1ULL << 31, UINT32_MAX, 1ULL << 32, 1ULL << 40,
                                  INT64_MAX, 1ULL << 63, UINT64_MAX};
    for (size_t k = 0; k < sizeof us / sizeof us[0]; k++) {
        hc_buf b = {0};
        hc_enc_ulong(&b, us[k]);
        size_t idx = 0;
        uint64_t v;
        assert_int_equal(hc_dec_ulong(b.data, b.len, &idx, &v), HC_OK);
        assert_true(v == us[k]);
        hc_buf_reset(&b);
        int64_t sv = -(int64_t)(us[k] >> 1), back;
        hc_enc_long(&b, sv);
        idx = 0;
        assert_int_equal(hc_dec_long(b.data, b.len, &idx, &back), HC_OK);
        assert_true(back == sv);
        idx = 0;
        assert_int_equal(hc_dec_ulong(b.data, b.len, &idx, &v), sv < 0 ? HC_EDECODE : HC_OK);
        hc_buf_free(&b);
    }
}

static void test_doubles(void **state)
{
    (void)state;
    /* FLOAT_EXT as term_to_binary(X, [{minor_version, 0}]) writes it: "%.20e", NUL-padded to 31 bytes */
    static const struct {
        const char *hex;
        double v;
    } old[] = {
        {"63312E3530303030303030303030303030303030303030652B30300000000000", 1.5},
        {"632D312E3030303030303030303030303030303035323530652B333030000000", -1.0e300},
        {"63312E3030303030303030303030303030303035353531652D30310000000000", 0.1},
        {"63312E3233343536373839303030303030303034333037652B30350000000000", 123456.789},
        {"63342E3934303635363435383431323436353434313737652D33323400000000", 5.0e-324},
        {"63312E3739373639333133343836323331353730383135652B33303800000000", 1.7976931348623157e308},
        {"63302E3030303030303030303030303030303030303030652B30300000000000", 0.0},
    };
    for (size_t k = 0; k < sizeof old / sizeof old[0]; k++) {
        hc_buf b = from_hex(old[k].hex);
        size_t idx = 0;
        double v = -7;
        assert_int_equal(b.len, 32);
        assert_int_equal(hc_dec_double(b.data, b.len, &idx, &v), HC_OK);
        assert_true(v == old[k].v);
        assert_int_equal(idx, 32);
        hc_buf_free(&b);
    }
    static const double vs[] = {0.0, -0.0, 1.5, 0.1, -1.0e300, 5.0e-324, 1.7976931348623157e308, -3.25};
    for (size_t k = 0; k < sizeof vs / sizeof vs[0]; k++) {
        hc_buf b = {0};
        assert_int_equal(hc_enc_double(&b, vs[k]), HC_OK);
        size_t idx = 0;
        double v;
        assert_int_equal(hc_dec_double(b.data, b.len, &idx, &v), HC_OK);
        assert_memory_equal(&v, &vs[k], sizeof v); /* bit for bit, sign of zero included */
        hc_buf_free(&b);
    }
}

static void test_binaries_and_strings(void **state)
{
    (void)state;
    hc_buf b = from_hex("6D00000003616263"
                        "6B0003616263"
                        "6A"
                        "6D00000000");
    size_t idx = 0;
    hc_span s;
    assert_int_equal(hc_dec_binary(b.data, b.len, &idx, &s), HC_OK);
    assert_ptr_equal(s.p, b.data + 5); /* borrowed, not copied */
    assert_int_equal(s.len, 3);
    assert_int_equal(hc_dec_binary(b.data, b.len, &idx, &s), HC_EDECODE); /* a charlist is not a binary */
    assert_int_equal(hc_dec_string(b.data, b.len, &idx, &s), HC_OK);
    assert_memory_equal(s.p, "abc", 3);
    assert_int_equal(s.len, 3);
    assert_int_equal(hc_dec_string(b.data, b.len, &idx, &s), HC_OK); /* '' */
    assert_int_equal(s.len, 0);
    assert_int_equal(hc_dec_string(b.data, b.len, &idx, &s), HC_OK); /* "" */
    assert_int_equal(s.len, 0);
    assert_int_equal(idx, b.len);
    hc_buf_free(&b);
    /* what hc_enc_string writes, hc_dec_string reads: UTF-8 bytes as they are */
    hc_enc_string(&b, "h\xC3\xA9llo");
    idx = 0;
    assert_int_equal(hc_dec_string(b.data, b.len, &idx, &s), HC_OK);
    assert_int_equal(s.len, 6);
    assert_memory_equal(s.p, "h\xC3\xA9llo", 6);
    hc_buf_free(&b);
}

static void test_atoms(void **state)
{
    (void)state;
    static const char *const names[] = {"get", "put", "h\xC3\xA9", NULL, "ok"};
    /* UTF-8 and latin1 spellings of the same atoms; 'hé' in latin1 is 68 E9 */
    hc_buf b = from_hex("7703676574"
                        "6400037075 74"
                        "730268E9"
                        "7702C3A9"
                        "7600026F6B"
                        "7703 786F6B");
    size_t idx = 0, k = 99, before = hc_atom_count();
    assert_int_equal(hc_dec_atom_index(b.data, b.len, &idx, names, 5, &k), HC_OK);
    assert_int_equal(k, 0);
    assert_int_equal(hc_dec_atom_index(b.data, b.len, &idx, names, 5, &k), HC_OK);
    assert_int_equal(k, 1);
    assert_int_equal(hc_dec_atom_index(b.data, b.len, &idx, names, 5, &k), HC_OK);
    assert_int_equal(k, 2);
    assert_int_equal(hc_dec_atom_index(b.data, b.len, &idx, names, 5, &k), HC_EDECODE); /* 'é' is not 'hé' */
    assert_true(hc_dec_is_atom(b.data, b.len, &idx, "\xC3\xA9"));
    assert_int_equal(hc_dec_atom_index(b.data, b.len, &idx, names, 5, &k), HC_OK); /* a NULL name is skipped */
    assert_int_equal(k, 4);
    assert_int_equal(hc_dec_atom_index(b.data, b.len, &idx, names, 5, &k), HC_EDECODE);
    assert_false(hc_dec_is_atom(b.data, b.len, &idx, "xo"));
    assert_false(hc_dec_is_atom(b.data, b.len, &idx, NULL));
    assert_true(hc_dec_is_atom(b.data, b.len, &idx, "xok"));
    assert_int_equal(idx, b.len);
    assert_int_equal(hc_atom_count(), before); /* none of that interned anything */
    /* hc_dec_atom interns the UTF-8 spelling of a latin1 atom */
    idx = 0;
    hc_buf_free(&b);
    b = from_hex("730268E9");
    hc_atom a;
    assert_int_equal(hc_dec_atom(b.data, b.len, &idx, &a), HC_OK);
    assert_string_equal(hc_atom_name(a), "h\xC3\xA9");
    hc_buf_free(&b);
    /* a pid cut short does not intern its node */
    b = from_hex("58770E"
                 "6E6F742D696E7465726E65644068"
                 "000000010000");
    before = hc_atom_count();
    idx = 0;
    hc_pid pid;
    assert_int_equal(hc_dec_pid(b.data, b.len, &idx, &pid), HC_EDECODE);
    assert_int_equal(hc_atom_count(), before);
    assert_int_equal(hc_atom_find("not-interned@h", 14), 0);
    hc_buf_free(&b);
}

static void test_types(void **state)
{
    (void)state;
    static const struct {
        const char *hex;
        hc_type t;
    } ts[] = {
        {"6101", HC_TYPE_INTEGER},
        {"62000000FF", HC_TYPE_INTEGER},
        {"6E0100FF", HC_TYPE_INTEGER},
        {"6F0000000100FF", HC_TYPE_INTEGER},
        {"463FF8000000000000", HC_TYPE_FLOAT},
        {"63", HC_TYPE_FLOAT},
        {"770161", HC_TYPE_ATOM},
        {"64000161", HC_TYPE_ATOM},
        {"730161", HC_TYPE_ATOM},
        {"76000161", HC_TYPE_ATOM},
        {"6D00000000", HC_TYPE_BINARY},
        {"4D000000010320", HC_TYPE_BITSTRING},
        {"6A", HC_TYPE_LIST},
        {"6B0001FF", HC_TYPE_LIST},
        {"6C00000001", HC_TYPE_LIST},
        {"6800", HC_TYPE_TUPLE},
        {"6900000000", HC_TYPE_TUPLE},
        {"7400000000", HC_TYPE_MAP},
        {"58", HC_TYPE_PID},
        {"67", HC_TYPE_PID},
        {"59", HC_TYPE_PORT},
        {"66", HC_TYPE_PORT},
        {"78", HC_TYPE_PORT},
        {"5A", HC_TYPE_REF},
        {"72", HC_TYPE_REF},
        {"65", HC_TYPE_REF},
        {"70", HC_TYPE_FUN},
        {"71", HC_TYPE_FUN},
        {"52", HC_TYPE_NONE},
        {"75", HC_TYPE_NONE},
        {"50", HC_TYPE_NONE},
        {"00", HC_TYPE_NONE},
    };
    for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
        hc_buf b = from_hex(ts[k].hex);
        if (hc_term_type(b.data, b.len, 0) != ts[k].t)
            fail_msg("%s: type %d, want %d", ts[k].hex, hc_term_type(b.data, b.len, 0), ts[k].t);
        assert_int_equal(hc_term_type(b.data, b.len, b.len), HC_TYPE_NONE);
        hc_buf_free(&b);
    }
}

/* hc_dec_term hands out exactly the bytes of one element, at any depth. */
static void test_dec_term_spans(void **state)
{
    (void)state;
    hc_buf b = from_hex("6803"
                        "6101"
                        "740000000277016161017701626C000000017701786A"
                        "6A");
    size_t idx = 0;
    uint32_t ar;
    hc_span t;
    assert_int_equal(hc_dec_tuple_header(b.data, b.len, &idx, &ar), HC_OK);
    assert_int_equal(hc_dec_term(b.data, b.len, &idx, &t), HC_OK);
    assert_true(t.p == b.data + 2 && t.len == 2);
    assert_int_equal(hc_dec_term(b.data, b.len, &idx, &t), HC_OK);
    assert_true(t.p == b.data + 4 && t.len == 22);
    assert_int_equal(hc_term_check(t.p, t.len), HC_OK);
    assert_int_equal(hc_dec_term(b.data, b.len, &idx, &t), HC_OK);
    assert_int_equal(t.len, 1);
    assert_int_equal(idx, b.len);
    assert_int_equal(hc_dec_term(b.data, b.len, &idx, &t), HC_EDECODE);
    assert_int_equal(hc_dec_term(NULL, 0, &idx, &t), HC_EDECODE);
    hc_buf_free(&b);
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
        cmocka_unit_test(test_valid_and_every_truncation),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_doubles),
        cmocka_unit_test(test_binaries_and_strings),
        cmocka_unit_test(test_atoms),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_dec_term_spans),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
