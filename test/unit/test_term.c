/* test_term.c — the term encoders (common/term_enc.c), the skipper and checker (common/term_skip.c), pid
 * and ref codecs and the atom table (common/atom.c). Decoders: test_term_dec.c; iterators:
 * test_term_iter.c; the request matcher: test_term_req.c.
 *
 * Encoders are compared with bytes the BEAM produced (OTP 25, `term_to_binary(T, [{minor_version, 2}])`
 * with the leading 131 removed, pasted as constants), refuse what the BEAM would refuse, and keep the
 * buffer's error sticky. hc_dec_skip is fed hostile input: 1e5 and 1e6 nested tuples/lists/maps (must
 * not recurse), huge claimed lengths and arities, every tag truncated at every byte, unknown tags.
 * hc_term_check enforces HC_TERM_MAX_DEPTH exactly, also on a million-deep input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "common/etf.h"
#include "hordec/hc_term.h"
#include "term_test_util.h"

/* Copies into an exact-size heap block so ASan flags any read past the end. */
static int skip_copy(const uint8_t *p, size_t n, size_t *idx)
{
    uint8_t *c = malloc(n ? n : 1);
    if (n)
        memcpy(c, p, n);
    int rc = hc_dec_skip(c, n, idx);
    free(c);
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    hc_atom_table_reset();
    return 0;
}

/* ------------------------------------------------------------------ encoders vs BEAM bytes */

static void test_enc_integers(void **state)
{
    (void)state;
    static const struct {
        int64_t v;
        const char *hex;
    } longs[] = {
        {0, "6100"},
        {255, "61FF"},
        {256, "6200000100"},
        {-1, "62FFFFFFFF"},
        {-256, "62FFFFFF00"},
        {INT32_MIN, "6280000000"},
        {INT32_MAX, "627FFFFFFF"},
        {2147483648LL, "6E040000000080"},
        {-2147483649LL, "6E040101000080"},
        {INT64_MAX, "6E0800FFFFFFFFFFFFFF7F"},
        {INT64_MIN, "6E08010000000000000080"},
    };
    for (size_t i = 0; i < sizeof longs / sizeof longs[0]; i++) {
        hc_buf b = {0};
        assert_int_equal(hc_enc_long(&b, longs[i].v), HC_OK);
        assert_bytes_hex(&b, longs[i].hex);
        size_t idx = 0;
        int64_t back;
        assert_int_equal(hc_dec_long(b.data, b.len, &idx, &back), HC_OK);
        assert_true(back == longs[i].v);
        assert_int_equal(idx, b.len);
        idx = 0;
        assert_int_equal(hc_dec_skip(b.data, b.len, &idx), HC_OK);
        assert_int_equal(idx, b.len);
        hc_buf_free(&b);
    }
    hc_buf b = {0};
    assert_int_equal(hc_enc_ulong(&b, UINT64_MAX), HC_OK);
    assert_bytes_hex(&b, "6E0800FFFFFFFFFFFFFFFF");
    size_t idx = 0;
    int64_t back;
    assert_int_equal(hc_dec_long(b.data, b.len, &idx, &back), HC_EDECODE); /* does not fit int64 */
    hc_buf_free(&b);
    assert_int_equal(hc_enc_ulong(&b, 2147483648ULL), HC_OK);
    assert_bytes_hex(&b, "6E040000000080");
    hc_buf_free(&b);
}

static void test_dec_long_hostile(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",                         /* nothing */
        "61",                       /* SMALL_INTEGER without its byte */
        "62000001",                 /* INTEGER short */
        "6E",                       /* SMALL_BIG without n */
        "6E04",                     /* without sign */
        "6E040000",                 /* digits missing */
        "6E0900010000000000000000", /* 9 digits */
        "6E0802FFFFFFFFFFFFFFFF7F", /* sign 2 */
        "6E08010100000000000080",   /* -(2^63 + 1) */
        "6F0000000100FF",           /* LARGE_BIG not supported as a long */
        "64000161",                 /* an atom */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hc_buf b = from_hex(bad[i]);
        size_t idx = 0;
        int64_t v = 77;
        uint8_t *c = malloc(b.len ? b.len : 1);
        if (b.len)
            memcpy(c, b.data, b.len);
        if (hc_dec_long(c, b.len, &idx, &v) != HC_EDECODE)
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(idx, 0);
        free(c);
        hc_buf_free(&b);
    }
    /* SMALL_BIG with zero digits is 0 */
    hc_buf z = from_hex("6E0000");
    size_t idx = 0;
    int64_t v = 5;
    assert_int_equal(hc_dec_long(z.data, z.len, &idx, &v), HC_OK);
    assert_int_equal(v, 0);
    hc_buf_free(&z);
}

static void test_enc_atoms(void **state)
{
    (void)state;
    hc_buf b = {0};
    assert_int_equal(hc_enc_atom_cstr(&b, "hello"), HC_OK);
    assert_bytes_hex(&b, "770568656C6C6F");
    hc_buf_reset(&b);
    assert_int_equal(hc_enc_atom(&b, hc_atom_intern_cstr("h\xC3\xA9llo")), HC_OK);
    assert_bytes_hex(&b, "770668C3A96C6C6F");
    hc_buf_reset(&b);
    assert_int_equal(hc_enc_atom(&b, 0), HC_OK); /* '' */
    assert_bytes_hex(&b, "7700");
    hc_buf_reset(&b);
    /* 255 bytes still fit SMALL_ATOM_UTF8; 256..1020 bytes use ATOM_UTF8 with a 2-byte length */
    char s[1100];
    memset(s, 'a', sizeof s);
    s[255] = 0;
    assert_int_equal(hc_enc_atom_cstr(&b, s), HC_OK);
    assert_int_equal(b.len, 2 + 255);
    assert_int_equal(b.data[0], ETF_SMALL_ATOM_UTF8);
    assert_int_equal(b.data[1], 255);
    hc_buf_reset(&b);
    /* 200 two-byte characters: 400 bytes, still 200 characters, legal in OTP */
    for (int i = 0; i < 200; i++) {
        s[2 * i] = (char)0xC3;
        s[2 * i + 1] = (char)0xA9;
    }
    s[400] = 0;
    assert_int_equal(hc_enc_atom_cstr(&b, s), HC_OK);
    assert_int_equal(b.len, 3 + 400);
    assert_int_equal(b.data[0], ETF_ATOM_UTF8);
    assert_int_equal(hc_get_be16(b.data + 1), 400);
    size_t idx = 0;
    hc_atom a;
    assert_int_equal(hc_dec_atom(b.data, b.len, &idx, &a), HC_OK);
    assert_int_equal(hc_atom_len(a), 400);
    hc_buf_reset(&b);
    memset(s, 'a', sizeof s);
    s[HC_ATOM_MAX_BYTES + 1] = 0;
    assert_int_equal(hc_enc_atom_cstr(&b, s), HC_EINVAL);
    hc_buf_free(&b);
}

static void test_enc_misc(void **state)
{
    (void)state;
    hc_buf b = {0};
    assert_int_equal(hc_enc_double(&b, 1.5), HC_OK);
    assert_bytes_hex(&b, "463FF8000000000000");
    hc_buf_reset(&b);
    assert_int_equal(hc_enc_double(&b, -1.0e300), HC_OK);
    assert_bytes_hex(&b, "46FE37E43C8800759C");
    hc_buf_reset(&b);
    assert_int_equal(hc_enc_binary(&b, "abc", 3), HC_OK);
    assert_bytes_hex(&b, "6D00000003616263");
    hc_buf_reset(&b);
    assert_int_equal(hc_enc_binary(&b, NULL, 0), HC_OK);
    assert_bytes_hex(&b, "6D00000000");
    hc_buf_reset(&b);
    assert_int_equal(hc_enc_string(&b, "abc"), HC_OK);
    assert_bytes_hex(&b, "6D00000003616263");
    hc_buf_reset(&b);
    /* #{a => 1} */
    assert_int_equal(hc_enc_map_header(&b, 1), HC_OK);
    assert_int_equal(hc_enc_atom_cstr(&b, "a"), HC_OK);
    assert_int_equal(hc_enc_long(&b, 1), HC_OK);
    assert_bytes_hex(&b, "74000000017701616101");
    hc_buf_reset(&b);
    assert_int_equal(hc_enc_tuple_header(&b, 255), HC_OK);
    assert_bytes_hex(&b, "68FF");
    hc_buf_reset(&b);
    assert_int_equal(hc_enc_tuple_header(&b, 256), HC_OK);
    assert_bytes_hex(&b, "6900000100");
    hc_buf_reset(&b);
    assert_int_equal(hc_enc_list_header(&b, 0), HC_EINVAL);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.err, HC_EINVAL); /* sticky until reset */
    assert_int_equal(hc_enc_list_header(&b, 2), HC_EINVAL);
    hc_buf_reset(&b);
    assert_int_equal(hc_enc_list_header(&b, 2), HC_OK);
    assert_int_equal(hc_enc_nil(&b), HC_OK);
    assert_bytes_hex(&b, "6C000000026A");
    hc_buf_free(&b);
}

static void test_pid_ref_roundtrip(void **state)
{
    (void)state;
    hc_pid p = {hc_atom_intern_cstr("node@host"), 0x7FFF, 0x1FFF, 0xFFFFFFFFu};
    hc_buf b = {0};
    assert_int_equal(hc_enc_pid(&b, &p), HC_OK);
    assert_bytes_hex(&b, "587709"
                         "6E6F646540686F7374"
                         "00007FFF"
                         "00001FFF"
                         "FFFFFFFF");
    hc_buf_free(&b);
    b = (hc_buf){0};
    hc_pid p2 = {hc_atom_intern_cstr("n@h"), 1, 2, 3};
    assert_int_equal(hc_enc_pid(&b, &p2), HC_OK);
    assert_bytes_hex(&b, "587703"
                         "6E4068"
                         "00000001"
                         "00000002"
                         "00000003");
    size_t idx = 0;
    hc_pid back;
    assert_int_equal(hc_dec_pid(b.data, b.len, &idx, &back), HC_OK);
    assert_true(hc_pid_eq(&back, &p2));
    assert_int_equal(idx, b.len);
    hc_buf_free(&b);

    /* old PID_EXT (8-bit creation) and a latin1 ATOM_EXT node name decode to the same node */
    hc_buf old = from_hex("67640003"
                          "68E940"
                          "00000001"
                          "00000002"
                          "03"); /* node 'hé@' in latin1 */
    idx = 0;
    assert_int_equal(hc_dec_pid(old.data, old.len, &idx, &back), HC_OK);
    assert_string_equal(hc_atom_name(back.node), "h\xC3\xA9@");
    assert_int_equal(back.creation, 3);
    hc_buf_free(&old);

    hc_ref r = {hc_atom_intern_cstr("n@h"), 9, 3, {1, 2, 3, 0, 0}};
    assert_int_equal(hc_enc_ref(&b, &r), HC_OK);
    assert_bytes_hex(&b, "5A0003"
                         "7703"
                         "6E4068"
                         "00000009"
                         "00000001"
                         "00000002"
                         "00000003");
    idx = 0;
    hc_ref rb;
    assert_int_equal(hc_dec_ref(b.data, b.len, &idx, &rb), HC_OK);
    assert_true(hc_ref_eq(&rb, &r));
    assert_int_equal(hc_ref_hash(&rb), hc_ref_hash(&r));
    hc_buf_free(&b);
    r.len = 0;
    assert_int_equal(hc_enc_ref(&b, &r), HC_EINVAL);
    assert_int_equal(b.len, 0);
    hc_buf_reset(&b);
    r.len = 6;
    assert_int_equal(hc_enc_ref(&b, &r), HC_EINVAL);
    assert_int_equal(b.len, 0);
    hc_buf_free(&b);

    /* hostile refs: 0 or 6 words, truncated */
    static const char *bad[] = {"5A0000770168000000000000000000",
                                "5A0006770168"
                                "00000000"
                                "0000000100000002000000030000000400000005000000060000",
                                "5A00017701",
                                "5A000177016800000000",
                                "72000177016800",
                                "65770168000000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hc_buf h = from_hex(bad[i]);
        idx = 0;
        if (hc_dec_ref(h.data, h.len, &idx, &rb) != HC_EDECODE)
            fail_msg("accepted ref %s", bad[i]);
        hc_buf_free(&h);
    }
}

static void test_is_atom_and_peek(void **state)
{
    (void)state;
    hc_buf b = from_hex("770568656C6C6F"
                        "64000568656C6C6F"
                        "73026869");
    size_t idx = 0;
    assert_false(hc_dec_is_atom(b.data, b.len, &idx, "hell"));
    assert_false(hc_dec_is_atom(b.data, b.len, &idx, "helloo"));
    assert_int_equal(idx, 0);
    assert_true(hc_dec_is_atom(b.data, b.len, &idx, "hello"));
    assert_true(hc_dec_is_atom(b.data, b.len, &idx, "hello")); /* ATOM_EXT spelling */
    assert_true(hc_dec_is_atom(b.data, b.len, &idx, "hi"));    /* SMALL_ATOM_EXT */
    assert_int_equal(idx, b.len);
    assert_false(hc_dec_is_atom(b.data, b.len, &idx, "hi"));
    assert_int_equal(hc_peek_type(b.data, b.len, 0), ETF_SMALL_ATOM_UTF8);
    assert_int_equal(hc_peek_type(b.data, b.len, b.len), -1);
    hc_buf_free(&b);
    hc_buf t = from_hex("6802");
    idx = 0;
    uint32_t ar;
    assert_int_equal(hc_dec_tuple_header(t.data, 1, &idx, &ar), HC_EDECODE);
    assert_int_equal(hc_dec_tuple_header(t.data, t.len, &idx, &ar), HC_OK);
    assert_int_equal(ar, 2);
    hc_buf_free(&t);
    hc_buf l = from_hex("6A6C000000");
    idx = 0;
    uint32_t n;
    assert_int_equal(hc_dec_list_header(l.data, l.len, &idx, &n), HC_OK);
    assert_int_equal(n, 0);
    assert_int_equal(hc_dec_list_header(l.data, l.len, &idx, &n), HC_EDECODE); /* LIST short */
    hc_buf_free(&l);
}

/* ------------------------------------------------------------------ atom table */

static void test_atom_table(void **state)
{
    (void)state;
    hc_atom_table_reset();
    assert_int_equal(hc_atom_find("x", 1), 0);
    int rc = HC_OK;
    hc_atom e = hc_atom_intern("", 0, &rc);
    assert_int_equal(e, 0);
    assert_int_equal(rc, HC_OK);
    assert_string_equal(hc_atom_name(0), "");
    hc_atom a = hc_atom_intern_cstr("alpha");
    hc_atom b = hc_atom_intern("beta\0x", 6, &rc); /* NUL inside is just a byte */
    assert_int_equal(rc, HC_OK);
    assert_true(a != 0 && b != 0 && a != b);
    assert_int_equal(hc_atom_intern_cstr("alpha"), a);
    assert_int_equal(hc_atom_find("alpha", 5), a);
    assert_int_equal(hc_atom_find("beta\0x", 6), b);
    assert_int_equal(hc_atom_find("beta", 4), 0);
    assert_int_equal(hc_atom_len(b), 6);
    /* unknown ids are harmless */
    assert_string_equal(hc_atom_name(0xFFFFFFu), "");
    assert_int_equal(hc_atom_len(0xFFFFFFu), 0);
    /* too long */
    char big[HC_ATOM_MAX_BYTES + 2];
    memset(big, 'z', sizeof big);
    rc = HC_OK;
    assert_int_equal(hc_atom_intern(big, HC_ATOM_MAX_BYTES + 1, &rc), 0);
    assert_int_equal(rc, HC_ETOOBIG);
    rc = HC_OK;
    assert_true(hc_atom_intern(big, HC_ATOM_MAX_BYTES, &rc) != 0);
    assert_int_equal(rc, HC_OK);
    /* many atoms: growth keeps every id stable and findable */
    size_t before = hc_atom_count();
    char name[32];
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(name, sizeof name, "atom_%d", i);
        hc_atom x = hc_atom_intern(name, (size_t)n, &rc);
        assert_int_equal(rc, HC_OK);
        assert_int_equal(x, (hc_atom)(before + (size_t)i));
    }
    for (int i = 0; i < 20000; i += 97) {
        int n = snprintf(name, sizeof name, "atom_%d", i);
        assert_int_equal(hc_atom_find(name, (size_t)n), (hc_atom)(before + (size_t)i));
    }
    assert_int_equal(hc_atom_find("alpha", 5), a);
    hc_atom_table_reset();
    assert_int_equal(hc_atom_count(), 0);
}

static void test_dec_atom_limits(void **state)
{
    (void)state;
    /* 1021-byte UTF-8 atom: over the limit, rejected without interning */
    hc_buf b = {0};
    hc_buf_put_u8(&b, ETF_ATOM_UTF8);
    hc_buf_put_be16(&b, HC_ATOM_MAX_BYTES + 1);
    for (int i = 0; i < HC_ATOM_MAX_BYTES + 1; i++)
        hc_buf_put_u8(&b, 'q');
    size_t idx = 0, before = hc_atom_count();
    hc_atom a;
    assert_int_equal(hc_dec_atom(b.data, b.len, &idx, &a), HC_EDECODE);
    assert_int_equal(idx, 0);
    assert_int_equal(hc_atom_count(), before);
    hc_buf_free(&b);
    /* 65535 latin1 bytes, all >= 0x80: expands to 131070 UTF-8 bytes internally, still rejected cleanly */
    hc_buf_put_u8(&b, ETF_ATOM);
    hc_buf_put_be16(&b, 0xFFFF);
    for (int i = 0; i < 0xFFFF; i++)
        hc_buf_put_u8(&b, 0xFF);
    idx = 0;
    assert_int_equal(hc_dec_atom(b.data, b.len, &idx, &a), HC_EDECODE);
    idx = 0;
    assert_false(hc_dec_is_atom(b.data, b.len, &idx, "x"));
    idx = 0; /* more than 255 characters: the BEAM refuses it (badarg), so the skipper does too */
    assert_int_equal(hc_dec_skip(b.data, b.len, &idx), HC_EDECODE);
    assert_int_equal(idx, 0);
    hc_buf_free(&b);
    /* 255 latin1 bytes >= 0x80 are 510 bytes of UTF-8: accepted; one more character is not */
    hc_buf_put_u8(&b, ETF_ATOM);
    hc_buf_put_be16(&b, 255);
    for (int i = 0; i < 255; i++)
        hc_buf_put_u8(&b, 0xE9);
    idx = 0;
    assert_int_equal(hc_dec_atom(b.data, b.len, &idx, &a), HC_OK);
    assert_int_equal(hc_atom_len(a), 510);
    hc_buf_reset(&b);
    hc_buf_put_u8(&b, ETF_ATOM);
    hc_buf_put_be16(&b, 256);
    for (int i = 0; i < 256; i++)
        hc_buf_put_u8(&b, 0xE9);
    idx = 0;
    assert_int_equal(hc_dec_atom(b.data, b.len, &idx, &a), HC_EDECODE);
    hc_buf_free(&b);
}

/* ------------------------------------------------------------------ hc_dec_skip */

/* A term the BEAM produced holding most tags: {1, 300, -5, 1.5, [], atom, "str", <<1,2>>, <<1:3>>,
 * 1 bsl 70, -(1 bsl 2000), {a,b}, #{k => v, 1 => [x]}, [1|2], self(), make_ref(), fun lists:map/2,
 * fun() -> ok end, Port, 'hé', list_to_tuple(lists:seq(1,300)), "", <<>>}, from term_to_binary/1 (latin1
 * ATOM_EXT atoms, as a BEAM without UTF8 atom negotiation would send). */
static const char *COMPLEX_HEX =
    "68176101620000012C62FFFFFFFB463FF80000000000006A64000461746F6D6B00037374726D0000000201024D0000000103"
    "206E09000000000000000000406EFB0100000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000168026400016164000162740000000261016C00000001640001786A6400016B6400"
    "01766C00000001610161025864000D6E6F6E6F6465406E6F686F73740000000900000000000000005A000364000D6E6F6E6F"
    "6465406E6F686F7374000000000003783BC95000024A8BA688716400056C697374736400036D617061027000000047009263"
    "E2C6A6F7D24C72F703F17CA9F54C000000000000000064000376656361006204931F165864000D6E6F6E6F6465406E6F686F"
    "73740000000900000000000000005964000D6E6F6E6F6465406E6F686F7374000000000000000064000268E9690000012C61"
    "0161026103610461056106610761086109610A610B610C610D610E610F611061116112611361146115611661176118611961"
    "1A611B611C611D611E611F6120612161226123612461256126612761286129612A612B612C612D612E612F61306131613261"
    "33613461356136613761386139613A613B613C613D613E613F6140614161426143614461456146614761486149614A614B61"
    "4C614D614E614F6150615161526153615461556156615761586159615A615B615C615D615E615F6160616161626163616461"
    "656166616761686169616A616B616C616D616E616F6170617161726173617461756176617761786179617A617B617C617D61"
    "7E617F6180618161826183618461856186618761886189618A618B618C618D618E618F619061916192619361946195619661"
    "9761986199619A619B619C619D619E619F61A061A161A261A361A461A561A661A761A861A961AA61AB61AC61AD61AE61AF61"
    "B061B161B261B361B461B561B661B761B861B961BA61BB61BC61BD61BE61BF61C061C161C261C361C461C561C661C761C861"
    "C961CA61CB61CC61CD61CE61CF61D061D161D261D361D461D561D661D761D861D961DA61DB61DC61DD61DE61DF61E061E161"
    "E261E361E461E561E661E761E861E961EA61EB61EC61ED61EE61EF61F061F161F261F361F461F561F661F761F861F961FA61"
    "FB61FC61FD61FE61FF6200000100620000010162000001026200000103620000010462000001056200000106620000010762"
    "000001086200000109620000010A620000010B620000010C620000010D620000010E620000010F6200000110620000011162"
    "000001126200000113620000011462000001156200000116620000011762000001186200000119620000011A620000011B62"
    "0000011C620000011D620000011E620000011F62000001206200000121620000012262000001236200000124620000012562"
    "00000126620000012762000001286200000129620000012A620000012B620000012C6A6D00000000";

static hc_buf complex_term(void) { return from_hex(COMPLEX_HEX); }

static void test_skip_beam_term(void **state)
{
    (void)state;
    hc_buf b = complex_term();
    size_t idx = 0;
    assert_int_equal(skip_copy(b.data, b.len, &idx), HC_OK);
    assert_int_equal(idx, b.len);
    /* every strict prefix fails (and never reads past its end under ASan) */
    for (size_t n = 0; n < b.len; n++) {
        idx = 0;
        if (skip_copy(b.data, n, &idx) != HC_EDECODE)
            fail_msg("prefix %zu of %zu accepted", n, b.len);
        assert_int_equal(idx, 0);
    }
    hc_buf_free(&b);
}

/* One valid sample per tag hc_dec_skip knows. */
static const char *TAG_SAMPLES[] = {
    "6105",                                                             /* SMALL_INTEGER */
    "62FFFFFFFB",                                                       /* INTEGER */
    "63312E3530303030303030303030303030303030303030652B30300000000000", /* FLOAT (31 bytes) */
    "463FF8000000000000",                                               /* NEW_FLOAT */
    "6A",                                                               /* NIL */
    "64000568656C6C6F",                                                 /* ATOM */
    "76000568656C6C6F",                                                 /* ATOM_UTF8 */
    "730568656C6C6F",                                                   /* SMALL_ATOM */
    "770568656C6C6F",                                                   /* SMALL_ATOM_UTF8 */
    "6B0003010203",                                                     /* STRING */
    "6D00000003616263",                                                 /* BINARY */
    "4D0000000103"
    "20",                     /* BIT_BINARY */
    "6E0201FFFF",             /* SMALL_BIG */
    "6F0000000201FFFF",       /* LARGE_BIG */
    "68026101770161",         /* SMALL_TUPLE */
    "69000000026101770161",   /* LARGE_TUPLE */
    "7400000001770161770162", /* MAP */
    "6C0000000261016102"
    "6A",                  /* LIST */
    "6C00000001610161 02", /* improper LIST */
    "677703"
    "6E4068"
    "00000001"
    "00000002"
    "03", /* PID */
    "587703"
    "6E4068"
    "00000001"
    "00000002"
    "00000003", /* NEW_PID */
    "667703"
    "6E4068"
    "00000001"
    "03", /* PORT */
    "597703"
    "6E4068"
    "00000001"
    "00000003", /* NEW_PORT */
    "787703"
    "6E4068"
    "0000000000000001"
    "00000003", /* V4_PORT */
    "657703"
    "6E4068"
    "00000001"
    "03", /* REFERENCE */
    "720001"
    "7703"
    "6E4068"
    "03"
    "00000001", /* NEW_REFERENCE */
    "5A0002"
    "7703"
    "6E4068"
    "00000003"
    "0000000100000002", /* NEWER_REFERENCE */
    "71"
    "7705"
    "6C69737473"
    "7703"
    "6D6170"
    "6102", /* EXPORT */
    "70"
    "00000010"
    "000102030405060708090A0B", /* NEW_FUN: size counts itself */
};

static void test_skip_every_tag_truncated(void **state)
{
    (void)state;
    for (size_t t = 0; t < sizeof TAG_SAMPLES / sizeof TAG_SAMPLES[0]; t++) {
        char clean[256] = {0};
        size_t k = 0;
        for (const char *c = TAG_SAMPLES[t]; *c; c++)
            if (*c != ' ')
                clean[k++] = *c;
        hc_buf b = from_hex(clean);
        size_t idx = 0;
        if (skip_copy(b.data, b.len, &idx) != HC_OK || idx != b.len)
            fail_msg("sample %zu (%s) not skipped whole", t, clean);
        for (size_t n = 0; n < b.len; n++) {
            idx = 0;
            if (skip_copy(b.data, n, &idx) != HC_EDECODE)
                fail_msg("sample %zu truncated to %zu accepted", t, n);
        }
        /* inside a tuple, followed by another element, the skip still lands exactly */
        hc_buf w = {0};
        hc_enc_tuple_header(&w, 2);
        hc_buf_append(&w, b.data, b.len);
        hc_enc_atom_cstr(&w, "end");
        idx = 0;
        assert_int_equal(skip_copy(w.data, w.len, &idx), HC_OK);
        assert_int_equal(idx, w.len);
        hc_buf_free(&w);
        hc_buf_free(&b);
    }
}

static void test_skip_unknown_and_bad_tags(void **state)
{
    (void)state;
    static const char *bad[] = {
        "52", /* ATOM_CACHE_REF: never negotiated */
        "75", /* old FUN */
        "50", /* compressed term */
        "83", /* a version byte where a term should be */
        "00",
        "FF",
        "",
        "4D0000000100"
        "20", /* BIT_BINARY with 0 bits in the last byte */
        "4D0000000109"
        "20",           /* 9 bits */
        "4D0000000003", /* empty BIT_BINARY */
        "5A0000"
        "7703"
        "6E4068"
        "00000003", /* NEWER_REFERENCE with 0 words */
        "5A0006"
        "7703"
        "6E4068"
        "00000003"
        "000000000000000000000000000000000000000000000000", /* 6 words */
        "5A0001"
        "6101"
        "00000003"
        "00000001", /* node is not an atom */
        "587703"
        "6E4068"
        "00000001"
        "00000002"
        "00000003"
        "FF", /* a whole pid, then junk */
        "70"
        "00000003"
        "00", /* NEW_FUN size < 4 */
        "71"
        "7705", /* EXPORT truncated */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hc_buf b = from_hex(bad[i]);
        size_t idx = 0;
        int rc = skip_copy(b.data, b.len, &idx);
        if (i == 13) { /* a valid NEW_PID followed by junk: the pid is skipped, the junk left */
            assert_int_equal(rc, HC_OK);
            assert_int_equal(idx, b.len - 1);
        } else if (rc != HC_EDECODE) {
            fail_msg("accepted bad term %zu (%s)", i, bad[i]);
        }
        hc_buf_free(&b);
    }
}

static void test_skip_huge_claims(void **state)
{
    (void)state;
    static const char *huge[] = {
        "69FFFFFFFF",     /* LARGE_TUPLE of 4 billion */
        "69FFFFFFFF6101", /* ... with one element present */
        "74FFFFFFFF",     /* MAP of 4 billion pairs (8 billion terms) */
        "74800000006101", /* 2^31 pairs: 2 * arity must not wrap */
        "6CFFFFFFFF6101", /* LIST */
        "6CFFFFFFFF",
        "6DFFFFFFFF00", /* BINARY of 4 GB */
        "6DFFFFFFF0",
        "4DFFFFFFFF0800", /* BIT_BINARY */
        "6FFFFFFFFF00",   /* LARGE_BIG */
        "6EFF00",         /* SMALL_BIG 255 digits, none there */
        "6BFFFF00",       /* STRING */
        "64FFFF61",       /* ATOM */
        "76FFFF61",       /* ATOM_UTF8 */
        "77FF61",         /* SMALL_ATOM_UTF8 */
        "70FFFFFFFF00",   /* NEW_FUN */
        "68FF",           /* SMALL_TUPLE of 255, nothing there */
        "58"
        "76FFFF", /* NEW_PID whose node atom claims 64 KiB */
        "5A0005"
        "77FF", /* NEWER_REFERENCE whose node claims 255 bytes */
    };
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        hc_buf b = from_hex(huge[i]);
        size_t idx = 0;
        if (skip_copy(b.data, b.len, &idx) != HC_EDECODE)
            fail_msg("accepted huge claim %zu (%s)", i, huge[i]);
        assert_int_equal(idx, 0);
        hc_buf_free(&b);
    }
    /* a tuple claiming 2^32-1 elements but followed by 1 MiB of SMALL_INTEGERs: rejected, and fast (the
     * pending count is bounded by the bytes left, so this does not loop 4 billion times) */
    hc_buf b = from_hex("69FFFFFFFF");
    for (int i = 0; i < (1 << 19); i++) {
        hc_buf_put_u8(&b, ETF_SMALL_INTEGER);
        hc_buf_put_u8(&b, 1);
    }
    size_t idx = 0;
    assert_int_equal(hc_dec_skip(b.data, b.len, &idx), HC_EDECODE);
    hc_buf_free(&b);
}

static void nested(uint8_t open_tag, size_t depth, bool truncate)
{
    hc_buf b = {0};
    for (size_t i = 0; i < depth; i++) {
        switch (open_tag) {
        case ETF_SMALL_TUPLE: hc_buf_put_u8(&b, ETF_SMALL_TUPLE), hc_buf_put_u8(&b, 1); break;
        case ETF_LARGE_TUPLE: hc_buf_put_u8(&b, ETF_LARGE_TUPLE), hc_buf_put_be32(&b, 1); break;
        case ETF_LIST: hc_buf_put_u8(&b, ETF_LIST), hc_buf_put_be32(&b, 1); break;
        case ETF_MAP: /* #{Key => Inner}: the key is an atom */
            hc_buf_put_u8(&b, ETF_MAP), hc_buf_put_be32(&b, 1), hc_enc_atom_cstr(&b, "k");
            break;
        }
    }
    hc_buf_put_u8(&b, ETF_NIL); /* innermost */
    if (open_tag == ETF_LIST)
        for (size_t i = 0; i < depth; i++)
            hc_buf_put_u8(&b, ETF_NIL); /* each list's tail */
    size_t len = truncate ? b.len - 1 : b.len;
    size_t idx = 0;
    int rc = skip_copy(b.data, len, &idx);
    if (truncate) {
        assert_int_equal(rc, HC_EDECODE);
    } else {
        assert_int_equal(rc, HC_OK);
        assert_int_equal(idx, b.len);
    }
    hc_buf_free(&b);
}

static void test_skip_deep_nesting(void **state)
{
    (void)state;
    /* 100 000 levels: a recursive skipper would need ~100k stack frames; this one must not recurse */
    static const uint8_t tags[] = {ETF_SMALL_TUPLE, ETF_LARGE_TUPLE, ETF_LIST, ETF_MAP};
    for (size_t t = 0; t < sizeof tags; t++) {
        nested(tags[t], 100000, false);
        nested(tags[t], 100000, true);
    }
    /* also a million-level tuple nest, cheap when iterative */
    nested(ETF_SMALL_TUPLE, 1000000, false);
}

static void test_skip_random(void **state)
{
    (void)state;
    /* random bytes biased toward tag values: only HC_OK (with idx inside) or HC_EDECODE */
    uint64_t s = 42;
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 0;
        uint8_t buf[64];
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        n = (size_t)(s >> 58); /* 0..63 */
        for (size_t k = 0; k < n; k++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            uint8_t r = (uint8_t)(s >> 40);
            buf[k] = (s >> 60) < 6 ? (uint8_t)(70 + r % 51) : (s >> 60) < 10 ? (uint8_t)(r % 4) : r;
        }
        size_t idx = 0;
        int rc = skip_copy(buf, n, &idx);
        assert_true(rc == HC_OK || rc == HC_EDECODE);
        if (rc == HC_OK)
            assert_true(idx > 0 && idx <= n);
        else
            assert_int_equal(idx, 0);
    }
}

/* ------------------------------------------------------------------ more encoders, and sticky errors */

static void test_enc_bool_raw_atom_bytes(void **state)
{
    (void)state;
    hc_buf b = {0};
    assert_int_equal(hc_enc_bool(&b, true), HC_OK);
    assert_int_equal(hc_enc_bool(&b, false), HC_OK);
    assert_bytes_hex(&b, "770474727565"
                         "770566616C7365");
    hc_buf_reset(&b);
    /* {a, 1} spliced whole into [_]: what a decoder's span gives back */
    static const uint8_t a1[] = {0x68, 0x02, 0x77, 0x01, 'a', 0x61, 0x01};
    assert_int_equal(hc_enc_list_header(&b, 1), HC_OK);
    assert_int_equal(hc_enc_raw(&b, a1, sizeof a1), HC_OK);
    assert_int_equal(hc_enc_raw(&b, NULL, 0), HC_OK); /* splicing nothing is fine */
    assert_int_equal(hc_enc_nil(&b), HC_OK);
    assert_bytes_hex(&b, "6C00000001"
                         "68027701616101"
                         "6A");
    assert_int_equal(hc_term_check(b.data, b.len), HC_OK);
    hc_buf_reset(&b);
    /* the atom encoder takes explicit lengths: a NUL inside the text is just a character */
    assert_int_equal(hc_enc_atom_bytes(&b, "a\0b", 3), HC_OK);
    assert_bytes_hex(&b, "7703610062");
    hc_buf_reset(&b);
    /* integers the BEAM encodes as INTEGER_EXT up to 2^31 - 1, not from 2^27 as ei does */
    assert_int_equal(hc_enc_ulong(&b, 1u << 27), HC_OK);
    assert_bytes_hex(&b, "6208000000");
    hc_buf_free(&b);
}

/* Each argument the BEAM could not decode is refused with HC_EINVAL, recorded in the buffer, and
 * nothing is appended. */
static void test_enc_refuses_bad_arguments(void **state)
{
    (void)state;
    char long_ascii[300], bad[8];
    memset(long_ascii, 'a', sizeof long_ascii);
    long_ascii[256] = 0; /* 256 characters: one too many, although only 256 bytes */
    hc_ref r0 = {hc_atom_intern_cstr("n@h"), 1, 0, {0}};
    hc_ref r6 = {hc_atom_intern_cstr("n@h"), 1, 6, {0}};
    for (int k = 0;; k++) {
        hc_buf b = {0};
        hc_buf_put_u8(&b, 0x68); /* something already there stays */
        int rc;
        switch (k) {
        case 0: rc = hc_enc_ref(&b, &r0); break;
        case 1: rc = hc_enc_ref(&b, &r6); break;
        case 2: rc = hc_enc_double(&b, NAN); break;
        case 3: rc = hc_enc_double(&b, INFINITY); break;
        case 4: rc = hc_enc_double(&b, -INFINITY); break;
        case 5: rc = hc_enc_atom_cstr(&b, long_ascii); break;
        case 6: rc = hc_enc_atom_cstr(&b, NULL); break;
        case 7:
            memcpy(bad, "a\xC3(", 4);
            rc = hc_enc_atom_cstr(&b, bad);
            break; /* truncated sequence */
        case 8:
            memcpy(bad, "\xC0\xAF", 3);
            rc = hc_enc_atom_cstr(&b, bad);
            break; /* overlong '/' */
        case 9:
            memcpy(bad, "\xED\xA0\x80", 4);
            rc = hc_enc_atom_cstr(&b, bad);
            break; /* a surrogate */
        case 10:
            memcpy(bad, "\xF4\x90\x80\x80", 5);
            rc = hc_enc_atom_cstr(&b, bad);
            break; /* > U+10FFFF */
        case 11:
            memcpy(bad, "\xE2\x82", 3);
            rc = hc_enc_atom_cstr(&b, bad);
            break; /* cut short */
        case 12: rc = hc_enc_atom_bytes(&b, NULL, 1); break;
        case 13: rc = hc_enc_binary(&b, NULL, 3); break;
        case 14: rc = hc_enc_string(&b, NULL); break;
        case 15: rc = hc_enc_raw(&b, NULL, 2); break;
        case 16: rc = hc_enc_list_header(&b, 0); break;
        case 17: rc = hc_enc_pid(&b, NULL); break;
        default: hc_buf_free(&b); return;
        }
        if (rc != HC_EINVAL || b.err != HC_EINVAL || b.len != 1)
            fail_msg("case %d: rc %d err %d len %zu", k, rc, b.err, b.len);
        hc_buf_free(&b);
    }
}

/* A whole term is built without checking each step; a bad ref in the middle poisons the buffer: every
 * later encoder returns the error and appends nothing, and hc_buf_reset starts afresh. */
static void test_enc_sticky_error(void **state)
{
    (void)state;
    hc_pid pid = {hc_atom_intern_cstr("n@h"), 1, 2, 3};
    hc_ref ok_ref = {hc_atom_intern_cstr("n@h"), 1, 1, {7}}, bad_ref = ok_ref;
    bad_ref.len = 0;
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 3);
    hc_enc_atom_cstr(&b, "reply");
    size_t before = b.len;
    assert_int_equal(hc_enc_ref(&b, &bad_ref), HC_EINVAL);
    assert_int_equal(b.len, before);
    int rcs[] = {
        hc_enc_atom(&b, pid.node),     hc_enc_atom_cstr(&b, "x"),
        hc_enc_atom_bytes(&b, "x", 1), hc_enc_bool(&b, true),
        hc_enc_pid(&b, &pid),          hc_enc_ref(&b, &ok_ref),
        hc_enc_long(&b, -5),           hc_enc_long(&b, 1LL << 40),
        hc_enc_ulong(&b, 7),           hc_enc_double(&b, 1.5),
        hc_enc_binary(&b, "ab", 2),    hc_enc_string(&b, "s"),
        hc_enc_tuple_header(&b, 2),    hc_enc_map_header(&b, 1),
        hc_enc_list_header(&b, 3),     hc_enc_nil(&b),
        hc_enc_raw(&b, "\x6A", 1),     hc_buf_put_u8(&b, 1),
        hc_buf_append(&b, "zz", 2),
    };
    for (size_t k = 0; k < sizeof rcs / sizeof rcs[0]; k++)
        if (rcs[k] != HC_EINVAL)
            fail_msg("encoder %zu after the error returned %d", k, rcs[k]);
    assert_int_equal(b.len, before);
    assert_int_equal(b.err, HC_EINVAL);
    /* a failure the buffer itself records (here: faked out-of-memory) stops encoders the same way */
    hc_buf_reset(&b);
    assert_int_equal(b.err, HC_OK);
    assert_int_equal(hc_enc_ref(&b, &ok_ref), HC_OK);
    b.err = HC_ENOMEM;
    size_t len = b.len;
    assert_int_equal(hc_enc_ref(&b, &bad_ref), HC_ENOMEM); /* the first error stays the error */
    assert_int_equal(hc_enc_long(&b, 1), HC_ENOMEM);
    assert_int_equal(b.len, len);
    assert_int_equal(b.err, HC_ENOMEM);
    hc_buf_free(&b);
}

/* ------------------------------------------------------------------ hc_term_check and the depth limit */

/* `levels` containers of kind `tag`, each holding the next, around the leaf `leaf` (hex). */
static hc_buf nest(uint8_t tag, size_t levels, const char *leaf)
{
    hc_buf b = {0};
    for (size_t i = 0; i < levels; i++) {
        if (tag == ETF_SMALL_TUPLE)
            hc_enc_tuple_header(&b, 1);
        else if (tag == ETF_LIST)
            hc_enc_list_header(&b, 1);
        else
            hc_enc_map_header(&b, 1), hc_enc_atom_cstr(&b, "k");
    }
    hc_buf l = from_hex(leaf);
    hc_enc_raw(&b, l.data, l.len);
    hc_buf_free(&l);
    if (tag == ETF_LIST)
        for (size_t i = 0; i < levels; i++)
            hc_enc_nil(&b);
    assert_int_equal(b.err, HC_OK);
    return b;
}

static int check_copy(const hc_buf *b)
{
    uint8_t *c = exact_copy(b->data, b->len);
    int rc = hc_term_check(c, b->len);
    free(c);
    return rc;
}

static void test_check_depth_limit(void **state)
{
    (void)state;
    static const uint8_t tags[] = {ETF_SMALL_TUPLE, ETF_LIST, ETF_MAP};
    static const char *leaves[] = {"770161", "6A", "6800", "7400000000", "6B0003010203"};
    for (size_t t = 0; t < sizeof tags; t++) {
        for (size_t l = 0; l < sizeof leaves / sizeof leaves[0]; l++) {
            /* the leaf sits inside exactly HC_TERM_MAX_DEPTH containers: accepted */
            hc_buf ok = nest(tags[t], HC_TERM_MAX_DEPTH, leaves[l]);
            if (check_copy(&ok) != HC_OK)
                fail_msg("tag %u leaf %s at the limit rejected", tags[t], leaves[l]);
            size_t idx = 0;
            assert_int_equal(hc_dec_skip(ok.data, ok.len, &idx), HC_OK);
            assert_int_equal(idx, ok.len);
            hc_buf_free(&ok);
            /* one more level: rejected, while hc_dec_skip (any depth) still takes it */
            hc_buf over = nest(tags[t], HC_TERM_MAX_DEPTH + 1, leaves[l]);
            if (check_copy(&over) != HC_EDECODE)
                fail_msg("tag %u leaf %s one over the limit accepted", tags[t], leaves[l]);
            idx = 0;
            assert_int_equal(hc_dec_skip(over.data, over.len, &idx), HC_OK);
            assert_int_equal(idx, over.len);
            hc_buf_free(&over);
        }
    }
    /* a list's tail counts as an element: [x | [y | ... ]] built by hand (the BEAM would flatten it) */
    hc_buf tails = {0};
    for (int i = 0; i < HC_TERM_MAX_DEPTH; i++) {
        hc_enc_list_header(&tails, 1);
        hc_enc_long(&tails, i);
    }
    hc_enc_nil(&tails);
    assert_int_equal(check_copy(&tails), HC_OK);
    hc_buf_reset(&tails);
    for (int i = 0; i <= HC_TERM_MAX_DEPTH; i++) {
        hc_enc_list_header(&tails, 1);
        hc_enc_long(&tails, i);
    }
    hc_enc_nil(&tails);
    assert_int_equal(check_copy(&tails), HC_EDECODE);
    hc_buf_free(&tails);
}

/* Depth is per path, not a total: deep siblings one after another, and wide containers, are fine. */
static void test_check_depth_is_per_path(void **state)
{
    (void)state;
    hc_buf b = {0};
    /* {Deep, Deep, Deep}: each Deep holds a leaf at depth HC_TERM_MAX_DEPTH counting the outer tuple */
    hc_enc_tuple_header(&b, 3);
    for (int s = 0; s < 3; s++) {
        hc_buf d = nest(ETF_SMALL_TUPLE, HC_TERM_MAX_DEPTH - 1, "6101");
        hc_enc_raw(&b, d.data, d.len);
        hc_buf_free(&d);
    }
    assert_int_equal(check_copy(&b), HC_OK);
    /* {1, shallow, Deeper}: the third holds a leaf one level too deep, after two shallow siblings */
    hc_buf_reset(&b);
    hc_enc_tuple_header(&b, 3);
    hc_enc_long(&b, 1);
    hc_enc_atom_cstr(&b, "shallow");
    hc_buf d = nest(ETF_SMALL_TUPLE, HC_TERM_MAX_DEPTH, "6101");
    hc_enc_raw(&b, d.data, d.len);
    hc_buf_free(&d);
    assert_int_equal(check_copy(&b), HC_EDECODE);
    /* a 100 000-element list of small tuples: wide, shallow, fine */
    hc_buf_reset(&b);
    hc_enc_list_header(&b, 100000);
    for (int i = 0; i < 100000; i++) {
        hc_enc_tuple_header(&b, 1);
        hc_enc_long(&b, i);
    }
    hc_enc_nil(&b);
    assert_int_equal(check_copy(&b), HC_OK);
    /* exactly one term: trailing bytes, nothing, NULL */
    hc_enc_nil(&b);
    assert_int_equal(hc_term_check(b.data, b.len), HC_EDECODE);
    assert_int_equal(hc_term_check(b.data, 0), HC_EDECODE);
    assert_int_equal(hc_term_check(NULL, 0), HC_EDECODE);
    assert_int_equal(hc_term_check(NULL, 5), HC_EDECODE);
    hc_buf_free(&b);
}

/* A million levels: hc_term_check rejects it without recursing (and quickly: it stops at level 201). */
static void test_check_million_deep(void **state)
{
    (void)state;
    static const uint8_t tags[] = {ETF_SMALL_TUPLE, ETF_LIST, ETF_MAP};
    for (size_t t = 0; t < sizeof tags; t++) {
        hc_buf b = nest(tags[t], 1000000, "6A");
        assert_int_equal(check_copy(&b), HC_EDECODE);
        b.len--; /* truncated too */
        assert_int_equal(check_copy(&b), HC_EDECODE);
        hc_buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enc_integers),
        cmocka_unit_test(test_dec_long_hostile),
        cmocka_unit_test(test_enc_atoms),
        cmocka_unit_test(test_enc_misc),
        cmocka_unit_test(test_pid_ref_roundtrip),
        cmocka_unit_test(test_is_atom_and_peek),
        cmocka_unit_test(test_atom_table),
        cmocka_unit_test(test_dec_atom_limits),
        cmocka_unit_test(test_skip_beam_term),
        cmocka_unit_test(test_skip_every_tag_truncated),
        cmocka_unit_test(test_skip_unknown_and_bad_tags),
        cmocka_unit_test(test_skip_huge_claims),
        cmocka_unit_test(test_skip_deep_nesting),
        cmocka_unit_test(test_skip_random),
        cmocka_unit_test(test_enc_bool_raw_atom_bytes),
        cmocka_unit_test(test_enc_refuses_bad_arguments),
        cmocka_unit_test(test_enc_sticky_error),
        cmocka_unit_test(test_check_depth_limit),
        cmocka_unit_test(test_check_depth_is_per_path),
        cmocka_unit_test(test_check_million_deep),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
