/* test_crdt_codec.c — every sync message round-trips through ei, and hostile bytes (truncated, garbled,
 * random, wrong arity / version / types, huge lengths) are rejected cleanly, including by a live replica. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crdt/codec.h"
#include "crdt/replica.h"

static const uint8_t KEY[] = {104, 2, 100, 0, 1, 'k', 97, 7};  /* {k, 7} */
static const uint8_t VAL[] = {109, 0, 0, 0, 3, 'a', 'b', 'c'}; /* <<"abc">> */

/* Builds one message of each type; returns its type. */
static int build(hc_buf *b, int type)
{
    hc_buf_reset(b);
    assert_int_equal(crdt_enc_header(b, type, 11, 2, 22, 3), HC_OK);
    uint8_t bin[16] = {0, 0, 0, 1, 0, 0, 0, 5, 1, 2, 3, 4, 5, 6, 7, 8};
    switch (type) {
    case HC_CRDT_MSG_HELLO:
    case HC_CRDT_MSG_DIGEST:
    case HC_CRDT_MSG_END:
    case HC_CRDT_MSG_ACK: {
        uint64_t f[4] = {12, 4096, 77, 1};
        int n = type == HC_CRDT_MSG_DIGEST ? 4 : 2;
        hc_buf_reset(b);
        assert_int_equal(crdt_enc_simple(b, type, 11, 2, 22, 3, f, n), HC_OK);
        break;
    }
    case HC_CRDT_MSG_DELTA_ACK:
        hc_enc_tuple_header(b, 1);
        crdt_enc_list(b, 3);
        hc_enc_ulong(b, 1);
        hc_enc_ulong(b, UINT64_MAX);
        hc_enc_ulong(b, 300);
        hc_enc_nil(b);
        break;
    case HC_CRDT_MSG_TREE:
    case HC_CRDT_MSG_TREE_DIFF:
        hc_enc_tuple_header(b, 4);
        hc_enc_ulong(b, 5);
        hc_enc_ulong(b, 6);
        hc_enc_ulong(b, 4);
        hc_enc_binary(b, bin, sizeof bin);
        break;
    case HC_CRDT_MSG_CTX:
        hc_enc_tuple_header(b, 5);
        hc_enc_ulong(b, 5);
        hc_enc_ulong(b, 6);
        hc_enc_ulong(b, 0);
        hc_enc_ulong(b, 1);
        hc_enc_binary(b, bin, sizeof bin);
        break;
    case HC_CRDT_MSG_DELTA:
    case HC_CRDT_MSG_CHUNK:
    case HC_CRDT_MSG_ELEMS:
        if (type == HC_CRDT_MSG_DELTA) {
            hc_enc_tuple_header(b, 2);
            hc_enc_ulong(b, 99);
        } else if (type == HC_CRDT_MSG_CHUNK) {
            hc_enc_tuple_header(b, 5);
            hc_enc_ulong(b, 5);
            hc_enc_ulong(b, 6);
            hc_enc_ulong(b, 0);
            hc_enc_ulong(b, UINT64_MAX);
        } else {
            hc_enc_tuple_header(b, 3);
            hc_enc_ulong(b, 5);
            hc_enc_ulong(b, 6);
        }
        crdt_enc_list(b, 2);
        for (int r = 0; r < 2; r++) {
            hc_enc_tuple_header(b, 3);
            hc_enc_raw(b, KEY, sizeof KEY);
            crdt_enc_list(b, 2);
            crdt_enc_elem(b, 1, 2, 3, VAL, sizeof VAL);
            crdt_enc_elem(b, UINT64_MAX, 1ull << 40, 5, NULL, 0);
            hc_enc_nil(b);
            uint8_t dots[16] = {0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 4};
            hc_enc_binary(b, dots, type == HC_CRDT_MSG_DELTA ? 16 : 0);
        }
        hc_enc_nil(b);
        break;
    }
    return type;
}

static void test_roundtrip_every_message(void **state)
{
    (void)state;
    hc_buf b = {0};
    for (int t = 0; t < HC_CRDT_MSG__COUNT; t++) {
        build(&b, t);
        assert_int_equal(hc_term_check(b.data, b.len), HC_OK);
        crdt_msg m;
        assert_int_equal(crdt_msg_decode(b.data, b.len, &m), HC_OK);
        assert_int_equal(m.type, t);
        assert_true(m.from_rid == 11 && m.from_inc == 2 && m.to_rid == 22 && m.to_inc == 3);
        switch (t) {
        case HC_CRDT_MSG_HELLO: assert_true(m.depth == 12 && m.max_msg == 4096); break;
        case HC_CRDT_MSG_DIGEST:
            assert_true(m.root == 12 && m.count == 4096 && m.ctx_hash == 77 && m.want_reply == 1);
            break;
        case HC_CRDT_MSG_DELTA_ACK:
            assert_int_equal(m.n_seqs, 3);
            assert_true(m.seqs[1] == UINT64_MAX);
            break;
        case HC_CRDT_MSG_TREE:
        case HC_CRDT_MSG_TREE_DIFF:
        case HC_CRDT_MSG_CTX: assert_true(m.sid == 5 && m.req == 6 && m.bin.len == 16); break;
        case HC_CRDT_MSG_DELTA:
        case HC_CRDT_MSG_CHUNK:
        case HC_CRDT_MSG_ELEMS:
            assert_int_equal(m.n_recs, 2);
            assert_int_equal(m.recs[1].n, 2);
            assert_memory_equal(m.recs[1].key.p, KEY, sizeof KEY);
            assert_true(m.recs[1].elems[0].has_val && m.recs[1].elems[0].val.len == sizeof VAL);
            assert_memory_equal(m.recs[1].elems[0].val.p, VAL, sizeof VAL);
            assert_false(m.recs[1].elems[1].has_val);
            assert_true(m.recs[1].elems[1].rid == UINT64_MAX && m.recs[1].elems[1].ctr == 1ull << 40);
            if (t == HC_CRDT_MSG_CHUNK)
                assert_true(m.lo == 0 && m.hi == UINT64_MAX);
            break;
        }
        crdt_msg_free(&m);
        /* with the version byte the host may leave on */
        uint8_t *v = malloc(b.len + 1);
        v[0] = 131;
        memcpy(v + 1, b.data, b.len);
        assert_int_equal(crdt_msg_decode(v, b.len + 1, &m), HC_OK);
        crdt_msg_free(&m);
        free(v);
    }
    hc_buf_free(&b);
}

static void test_truncated_and_garbled(void **state)
{
    (void)state;
    hc_buf b = {0};
    uint64_t s = 99;
    for (int t = 0; t < HC_CRDT_MSG__COUNT; t++) {
        build(&b, t);
        crdt_msg m;
        for (size_t cut = 0; cut < b.len; cut++) /* every strict prefix is incomplete */
            assert_int_not_equal(crdt_msg_decode(b.data, cut, &m), HC_OK);
        /* a trailing byte makes it two things */
        hc_buf_put_u8(&b, 106);
        assert_int_equal(crdt_msg_decode(b.data, b.len, &m), HC_EDECODE);
        b.len--;
        uint8_t *g = malloc(b.len);
        for (int round = 0; round < 3000; round++) { /* random byte flips: never crash, never read out of bounds */
            memcpy(g, b.data, b.len);
            for (int f = 0; f < 1 + round % 4; f++) {
                s = s * 6364136223846793005ULL + 1442695040888963407ULL;
                g[(s >> 33) % b.len] = (uint8_t)(s >> 20);
            }
            if (crdt_msg_decode(g, b.len, &m) == HC_OK)
                crdt_msg_free(&m);
        }
        free(g);
    }
    for (int round = 0; round < 20000; round++) { /* pure noise, with a plausible first byte sometimes */
        uint8_t buf[64];
        size_t n = 1 + (size_t)(round % 64);
        for (size_t i = 0; i < n; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            buf[i] = (uint8_t)(s >> 40);
        }
        if (round % 2)
            buf[0] = 104;
        crdt_msg m;
        if (crdt_msg_decode(buf, n, &m) == HC_OK)
            crdt_msg_free(&m);
    }
    hc_buf_free(&b);
}

static void test_wrong_shapes(void **state)
{
    (void)state;
    hc_buf b = {0};
    crdt_msg m;
    /* wrong version: rejected as such, even with a different arity */
    hc_enc_tuple_header(&b, 3);
    hc_enc_raw(&b, (const uint8_t[]){119, 12, '$', 'h', 'o', 'r', 'd', 'e', 'c', '_', 'c', 'r', 'd', 't'}, 14);
    hc_enc_ulong(&b, 2);
    hc_enc_nil(&b);
    assert_int_equal(crdt_msg_decode(b.data, b.len, &m), HC_EVERSION);
    /* wrong tag atom */
    hc_buf_reset(&b);
    hc_enc_tuple_header(&b, 8);
    hc_enc_raw(&b, (const uint8_t[]){119, 3, 'f', 'o', 'o'}, 5);
    for (int i = 0; i < 7; i++)
        hc_enc_ulong(&b, 1);
    assert_int_equal(crdt_msg_decode(b.data, b.len, &m), HC_EDECODE);
    /* right header, wrong body arity / types */
    hc_buf_reset(&b);
    crdt_enc_header(&b, HC_CRDT_MSG_ACK, 1, 1, 1, 1);
    hc_enc_tuple_header(&b, 3);
    hc_enc_ulong(&b, 1);
    hc_enc_ulong(&b, 1);
    hc_enc_ulong(&b, 1);
    assert_int_equal(crdt_msg_decode(b.data, b.len, &m), HC_EDECODE);
    hc_buf_reset(&b);
    crdt_enc_header(&b, HC_CRDT_MSG_ACK, 1, 1, 1, 1);
    hc_enc_tuple_header(&b, 2);
    hc_enc_binary(&b, "x", 1);
    hc_enc_ulong(&b, 1);
    assert_int_equal(crdt_msg_decode(b.data, b.len, &m), HC_EDECODE);
    /* zero replica id, zero dot counter, dots binary of the wrong size, chunk lo > hi */
    hc_buf_reset(&b);
    crdt_enc_simple(&b, HC_CRDT_MSG_END, 0, 1, 1, 1, (const uint64_t[]){1, 1}, 2);
    assert_int_equal(crdt_msg_decode(b.data, b.len, &m), HC_EDECODE);
    hc_buf_reset(&b);
    crdt_enc_header(&b, HC_CRDT_MSG_DELTA, 1, 1, 1, 1);
    hc_enc_tuple_header(&b, 2);
    hc_enc_ulong(&b, 1);
    crdt_enc_list(&b, 1);
    hc_enc_tuple_header(&b, 3);
    hc_enc_raw(&b, KEY, sizeof KEY);
    crdt_enc_list(&b, 1);
    crdt_enc_elem(&b, 1, 0, 1, VAL, sizeof VAL);
    hc_enc_nil(&b);
    hc_enc_binary(&b, "", 0);
    hc_enc_nil(&b);
    assert_int_equal(crdt_msg_decode(b.data, b.len, &m), HC_EDECODE);
    hc_buf_reset(&b);
    crdt_enc_header(&b, HC_CRDT_MSG_CHUNK, 1, 1, 1, 1);
    hc_enc_tuple_header(&b, 5);
    hc_enc_ulong(&b, 1);
    hc_enc_ulong(&b, 1);
    hc_enc_ulong(&b, 10);
    hc_enc_ulong(&b, 9);
    hc_enc_nil(&b);
    assert_int_equal(crdt_msg_decode(b.data, b.len, &m), HC_EDECODE);
    /* huge claimed lengths: list of 2^32-1 elements, binary of 4 GB, in a 20-byte buffer */
    const uint8_t huge_list[] = {108, 255, 255, 255, 255, 106};
    const uint8_t huge_bin[] = {109, 255, 255, 255, 250, 1, 2};
    const uint8_t huge_tuple[] = {105, 255, 255, 255, 255, 97, 1};
    const uint8_t huge_map[] = {116, 128, 0, 0, 0, 97, 1};
    const uint8_t deep[400] = {0};
    assert_int_equal(hc_term_check(huge_list, sizeof huge_list), HC_EDECODE);
    assert_int_equal(hc_term_check(huge_bin, sizeof huge_bin), HC_EDECODE);
    assert_int_equal(hc_term_check(huge_tuple, sizeof huge_tuple), HC_EDECODE);
    assert_int_equal(hc_term_check(huge_map, sizeof huge_map), HC_EDECODE);
    uint8_t nest[600];
    for (size_t i = 0; i + 1 < sizeof nest; i += 2)
        nest[i] = 104, nest[i + 1] = 1;
    assert_int_equal(hc_term_check(nest, sizeof nest), HC_EDECODE); /* too deep, and incomplete */
    assert_int_equal(hc_term_check(deep, sizeof deep), HC_EDECODE);
    assert_int_equal(crdt_msg_decode(huge_list, sizeof huge_list, &m), HC_EDECODE);
    hc_buf_free(&b);
}

static void test_etf_checker_accepts_real_terms(void **state)
{
    (void)state;
    const uint8_t pid[] = {88, 119, 3, 'a', '@', 'b', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7};
    const uint8_t ref[] = {90, 0, 3, 119, 1, 'n', 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3};
    const uint8_t map[] = {116, 0, 0, 0, 1, 119, 1, 'a', 70, 0, 0, 0, 0, 0, 0, 0, 0};
    const uint8_t big[] = {110, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    const uint8_t str[] = {107, 0, 2, 'h', 'i'};
    const uint8_t bits[] = {77, 0, 0, 0, 1, 3, 0xe0};
    const uint8_t improper[] = {108, 0, 0, 0, 1, 97, 1, 97, 2};
    assert_int_equal(hc_term_check(pid, sizeof pid), HC_OK);
    assert_int_equal(hc_term_check(ref, sizeof ref), HC_OK);
    assert_int_equal(hc_term_check(map, sizeof map), HC_OK);
    assert_int_equal(hc_term_check(big, sizeof big), HC_OK);
    assert_int_equal(hc_term_check(str, sizeof str), HC_OK);
    assert_int_equal(hc_term_check(bits, sizeof bits), HC_OK);
    assert_int_equal(hc_term_check(improper, sizeof improper), HC_OK);
}

/* A replica fed garbage, stale and unexpected messages rejects them, counts them, and keeps its state. */
static void test_replica_rejects_hostile(void **state)
{
    (void)state;
    hc_crdt_config cfg;
    hc_crdt_config_init(&cfg, 5);
    hc_crdt *r;
    assert_int_equal(hc_crdt_new(&cfg, (hc_time){1, 1}, &r), HC_OK);
    hc_crdt_add_neighbour(r, 1, (hc_time){1, 1});
    assert_int_equal(hc_crdt_put(r, KEY, sizeof KEY, VAL, sizeof VAL, (hc_time){2, 2}), HC_OK);
    uint64_t root = hc_crdt_root_hash(r);
    hc_buf b = {0};
    for (int t = 0; t < HC_CRDT_MSG__COUNT; t++) {
        build(&b, t);
        /* from an unknown sender identity / to someone else: stale */
        int rc = hc_crdt_receive(r, 1, b.data, b.len, (hc_time){3, 3});
        assert_true(t == HC_CRDT_MSG_HELLO ? rc == HC_OK
                                           : rc == HC_ESTATE); /* a greeting is how identities are learnt */
        /* from a non-neighbour */
        assert_int_equal(hc_crdt_receive(r, 9, b.data, b.len, (hc_time){3, 3}), HC_ESTATE);
        assert_int_equal(hc_crdt_receive(r, 1, b.data, b.len / 2, (hc_time){3, 3}), HC_EDECODE);
    }
    assert_int_equal(hc_crdt_receive(r, 1, NULL, 0, (hc_time){3, 3}), HC_EDECODE);
    hc_crdt_stats st;
    hc_crdt_get_stats(r, &st);
    assert_true(st.rejected[HC_CRDT_REJ_NOT_NEIGHBOUR] == HC_CRDT_MSG__COUNT);
    assert_true(st.rejected[HC_CRDT_REJ_DECODE] >= HC_CRDT_MSG__COUNT);
    assert_true(st.rejected[HC_CRDT_REJ_STALE] > 0);
    assert_true(hc_crdt_root_hash(r) == root);
    assert_int_equal(hc_crdt_check(r, NULL, 0), HC_OK);
    hc_buf_free(&b);
    hc_crdt_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_every_message),
        cmocka_unit_test(test_truncated_and_garbled),
        cmocka_unit_test(test_wrong_shapes),
        cmocka_unit_test(test_etf_checker_accepts_real_terms),
        cmocka_unit_test(test_replica_rejects_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
