/* test_dist_atom_cache.c — the distribution header with atom cache: what we send decodes back to the
 * same 'p' packet (cache references everywhere an atom can hide: control tuples, pids, refs, ports,
 * maps, lists, exports), entries are reused across packets and replaced on slot collisions, packets
 * without references are normalised in place, and hostile headers are errors with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/etf.h"
#include "dist/atom_cache.h"
#include "dist/control.h"

/* Concatenates what hc_ac_encode produced (4-byte length included), then commits. */
static void encode(hc_atom_cache *ac, const hc_buf *ctrl, const hc_buf *msg, hc_buf *wire)
{
    const struct iovec *iov;
    int n;
    hc_buf_reset(wire);
    assert_int_equal(hc_ac_encode(ac, ctrl->data, ctrl->len, msg ? msg->data : NULL, msg ? msg->len : 0, &iov, &n),
                     HC_OK);
    for (int k = 0; k < n; k++)
        hc_buf_append(wire, iov[k].iov_base, iov[k].iov_len);
    hc_ac_commit(ac);
    assert_int_equal(hc_get_be32(wire->data), wire->len - 4);
}

/* The 'p' form the rest of hordec sees. */
static void pform(const hc_buf *ctrl, const hc_buf *msg, hc_buf *out)
{
    hc_buf_reset(out);
    hc_buf_append(out, ctrl->data, ctrl->len);
    if (msg) {
        hc_buf_put_u8(out, ETF_VERSION);
        hc_buf_append(out, msg->data, msg->len);
    }
}

/* Decodes a wire packet (4-byte length first) with the receiver's cache and checks it equals `want`. */
static void expect_decodes_to(hc_atom_cache *rx, hc_buf *wire, const hc_buf *want)
{
    const uint8_t *out;
    size_t outlen;
    const char *why = NULL;
    int rc = hc_ac_normalize(rx, wire->data + 4, wire->len - 4, &out, &outlen, &why);
    if (rc)
        fail_msg("normalize failed: %s", why);
    assert_int_equal(outlen, want->len);
    assert_memory_equal(out, want->data, want->len);
    hc_ctrl m;
    assert_int_equal(hc_ctrl_decode(out, outlen, &m), HC_OK);
}

static hc_pid mkpid(const char *node, uint32_t num) { return (hc_pid){hc_atom_intern_cstr(node), num, 0, 0x12345678}; }

static hc_ref mkref(const char *node) { return (hc_ref){hc_atom_intern_cstr(node), 0x12345678, 3, {1, 2, 3, 0, 0}}; }

/* A GenServer.call as a BEAM sends it: REG_SEND + {'$gen_call', {From, [alias | Ref]}, {req, 42, "abc"}}. */
static void gen_call(hc_buf *ctrl, hc_buf *msg, const char *client_node)
{
    hc_pid from = mkpid(client_node, 101);
    hc_ref ref = mkref(client_node);
    hc_buf_reset(ctrl);
    hc_buf_reset(msg);
    assert_int_equal(hc_ctrl_enc_reg_send(ctrl, &from, hc_atom_intern_cstr("echo")), HC_OK);
    hc_enc_tuple_header(msg, 3);
    hc_enc_atom_cstr(msg, "$gen_call");
    hc_enc_tuple_header(msg, 2);
    hc_enc_pid(msg, &from);
    hc_enc_list_header(msg, 1);
    hc_enc_atom_cstr(msg, "alias");
    hc_enc_ref(msg, &ref);
    hc_enc_tuple_header(msg, 3);
    hc_enc_atom_cstr(msg, "req");
    hc_enc_long(msg, 42);
    hc_enc_string(msg, "abc");
}

static unsigned nrefs_of(const hc_buf *wire) { return wire->data[6]; }

static unsigned new_entries_of(const hc_buf *wire)
{
    unsigned n = nrefs_of(wire), k, count = 0;
    for (k = 0; k < n; k++)
        if ((wire->data[7 + k / 2] >> ((k % 2) * 4)) & 8)
            count++;
    return count;
}

static void test_round_trip_and_reuse(void **state)
{
    (void)state;
    hc_atom_cache *tx = hc_ac_new(), *rx = hc_ac_new();
    hc_buf ctrl = {0}, msg = {0}, wire = {0}, want = {0};
    gen_call(&ctrl, &msg, "a_rather_long_client_node_name@some.host.example");
    pform(&ctrl, &msg, &want);

    encode(tx, &ctrl, &msg, &wire);
    assert_int_equal(wire.data[4], 131);
    assert_int_equal(wire.data[5], ETF_DIST_HEADER);
    /* '' echo node $gen_call alias req: six distinct atoms, all new the first time */
    assert_int_equal(nrefs_of(&wire), 6);
    assert_int_equal(new_entries_of(&wire), 6);
    size_t first_len = wire.len;
    expect_decodes_to(rx, &wire, &want);

    /* same packet again: the same references, none new, and much shorter */
    encode(tx, &ctrl, &msg, &wire);
    assert_int_equal(nrefs_of(&wire), 6);
    assert_int_equal(new_entries_of(&wire), 0);
    assert_true(wire.len + 60 < first_len);
    assert_true(wire.len < want.len);
    expect_decodes_to(rx, &wire, &want);

    /* control only (no message) */
    hc_pid a = mkpid("a_rather_long_client_node_name@some.host.example", 1), b = mkpid("hordec@h", 2);
    hc_buf_reset(&ctrl);
    hc_ctrl_enc_link(&ctrl, &a, &b);
    pform(&ctrl, NULL, &want);
    encode(tx, &ctrl, NULL, &wire);
    assert_int_equal(new_entries_of(&wire), 1); /* hordec@h */
    expect_decodes_to(rx, &wire, &want);

    hc_buf_free(&ctrl);
    hc_buf_free(&msg);
    hc_buf_free(&wire);
    hc_buf_free(&want);
    hc_ac_free(tx);
    hc_ac_free(rx);
}

/* Two atoms whose hashes pick the same slot. */
static void colliding_atoms(hc_atom *x, hc_atom *y)
{
    hc_atom first[HC_AC_SIZE + 1];
    memset(first, 0, sizeof first);
    for (unsigned k = 0;; k++) {
        char name[32];
        snprintf(name, sizeof name, "collide_%u", k);
        hc_atom a = hc_atom_intern_cstr(name);
        /* find the slot the sender would pick by encoding the atom alone */
        hc_atom_cache *ac = hc_ac_new();
        hc_buf ctrl = {0}, wire = {0};
        hc_pid to = {a, 1, 0, 1};
        hc_ctrl_enc_send(&ctrl, &to);
        encode(ac, &ctrl, NULL, &wire);
        if (nrefs_of(&wire) != 2) { /* the name took the slot of '' itself: try the next */
            hc_buf_free(&ctrl);
            hc_buf_free(&wire);
            hc_ac_free(ac);
            continue;
        }
        /* refs: '' then the node name; the second reference's slot */
        unsigned seg = (wire.data[7] >> 4) & 7;
        unsigned ix = wire.data[7 + 2 /* flag bytes for 2 refs */ + 1 + 1 /* '' entry: ix + len(0) */];
        unsigned slot = seg << 8 | ix;
        hc_buf_free(&ctrl);
        hc_buf_free(&wire);
        hc_ac_free(ac);
        if (first[slot] && first[slot] != a) {
            *x = first[slot];
            *y = a;
            return;
        }
        first[slot] = a;
    }
}

static void test_slot_replacement(void **state)
{
    (void)state;
    hc_atom x, y;
    colliding_atoms(&x, &y);
    hc_atom_cache *tx = hc_ac_new(), *rx = hc_ac_new();
    hc_buf ctrl = {0}, msg = {0}, wire = {0}, want = {0};
    hc_pid to = mkpid("hordec@h", 1);
    hc_ctrl_enc_send(&ctrl, &to);

    hc_atom seq[] = {x, y, x, x};
    unsigned want_new[] = {1, 1, 1, 0}; /* y evicts x, x evicts y, then x is known */
    for (unsigned k = 0; k < 4; k++) {
        hc_buf_reset(&msg);
        hc_enc_atom(&msg, seq[k]);
        pform(&ctrl, &msg, &want);
        encode(tx, &ctrl, &msg, &wire);
        unsigned fresh = new_entries_of(&wire) - (k == 0 ? 2 : 0); /* '' and hordec@h the first time */
        assert_int_equal(fresh, want_new[k]);
        expect_decodes_to(rx, &wire, &want);
    }

    /* both in one packet: one gets the slot, the other travels in full */
    hc_buf_reset(&msg);
    hc_enc_tuple_header(&msg, 3);
    hc_enc_atom(&msg, x);
    hc_enc_atom(&msg, y);
    hc_enc_atom(&msg, x);
    pform(&ctrl, &msg, &want);
    encode(tx, &ctrl, &msg, &wire);
    assert_int_equal(nrefs_of(&wire), 3);
    expect_decodes_to(rx, &wire, &want);
    assert_non_null(memmem(wire.data, wire.len, hc_atom_name(y), hc_atom_len(y)));

    hc_buf_free(&ctrl);
    hc_buf_free(&msg);
    hc_buf_free(&wire);
    hc_buf_free(&want);
    hc_ac_free(tx);
    hc_ac_free(rx);
}

/* Atoms in every place a term can hold one, plus bytes that only look like atoms inside a binary. */
static void test_nested_terms(void **state)
{
    (void)state;
    hc_atom_cache *tx = hc_ac_new(), *rx = hc_ac_new();
    hc_buf ctrl = {0}, msg = {0}, wire = {0}, want = {0};
    hc_pid to = mkpid("hordec@h", 1), other = mkpid("third@node", 9);
    hc_ref r = mkref("third@node");
    hc_ctrl_enc_send(&ctrl, &to);
    hc_enc_map_header(&msg, 3);
    hc_enc_atom_cstr(&msg, "pid");
    hc_enc_pid(&msg, &other);
    hc_enc_atom_cstr(&msg, "things");
    hc_enc_list_header(&msg, 3);
    hc_enc_ref(&msg, &r);
    /* V4_PORT_EXT: node atom, 8-byte id, 4-byte creation */
    hc_buf_put_u8(&msg, ETF_V4_PORT);
    hc_enc_atom_cstr(&msg, "third@node");
    hc_buf_put_be64(&msg, 77);
    hc_buf_put_be32(&msg, 5);
    /* fun lists:reverse/1 (EXPORT_EXT) */
    hc_buf_put_u8(&msg, ETF_EXPORT);
    hc_enc_atom_cstr(&msg, "lists");
    hc_enc_atom_cstr(&msg, "reverse");
    hc_enc_ulong(&msg, 1);
    hc_enc_nil(&msg);
    hc_enc_atom_cstr(&msg, "blob");
    static const uint8_t fake[] = {119, 4, 'f', 'a', 'k', 'e', 82, 0};
    hc_enc_binary(&msg, fake, sizeof fake);
    pform(&ctrl, &msg, &want);
    encode(tx, &ctrl, &msg, &wire);
    /* '' hordec@h pid third@node things lists reverse blob */
    assert_int_equal(nrefs_of(&wire), 8);
    assert_non_null(memmem(wire.data, wire.len, fake, sizeof fake)); /* the binary went out untouched */
    expect_decodes_to(rx, &wire, &want);
    encode(tx, &ctrl, &msg, &wire);
    expect_decodes_to(rx, &wire, &want);

    /* long atoms (more than 255 bytes of UTF-8) set LongAtoms and use 2-byte lengths */
    char longname[2 * 200 + 1];
    for (int k = 0; k < 200; k++)
        memcpy(longname + 2 * k, "\xc3\xa9", 2); /* é */
    longname[400] = 0;
    hc_buf_reset(&msg);
    hc_enc_atom_cstr(&msg, longname);
    pform(&ctrl, &msg, &want);
    encode(tx, &ctrl, &msg, &wire);
    assert_int_equal(nrefs_of(&wire), 3);
    assert_true(wire.data[7 + 1] & 0x10); /* 3 refs (odd): the flag is the high half of the last flag byte */
    expect_decodes_to(rx, &wire, &want);

    /* more than 255 distinct atoms: 255 references, the rest in full */
    hc_buf_reset(&msg);
    hc_enc_list_header(&msg, 300);
    for (int k = 0; k < 300; k++) {
        char name[32];
        snprintf(name, sizeof name, "many_%d", k);
        hc_enc_atom(&msg, hc_atom_intern_cstr(name));
    }
    hc_enc_nil(&msg);
    pform(&ctrl, &msg, &want);
    encode(tx, &ctrl, &msg, &wire);
    assert_int_equal(nrefs_of(&wire), 255);
    expect_decodes_to(rx, &wire, &want);

    hc_buf_free(&ctrl);
    hc_buf_free(&msg);
    hc_buf_free(&wire);
    hc_buf_free(&want);
    hc_ac_free(tx);
    hc_ac_free(rx);
}

/* Hand-built headers, as a BEAM writes them: refs inside a fun (whose size must be fixed up), a packet
 * without references normalised in place, and 'p' packets passing through. */
static void test_receive_shapes(void **state)
{
    (void)state;
    hc_atom_cache *rx = hc_ac_new();
    const uint8_t *out;
    size_t outlen;
    const char *why;

    /* 131,68,2, flags {new seg0, new seg1}, entries: slot 0x005 'mod', slot 0x107 'n@h';
     * ctrl {2, '', Pid} with Pid's node = ref 1; message: a fun with module = ref 0 and pid node = ref 1 */
    uint8_t pk[] = {131, 68, 2,   0x98, 0x00, /* flags: ref0 = 8|0, ref1 = 8|1; LongAtoms off */
                    5,   3,  'm', 'o',  'd',  7,  3,  'n', '@', 'h', 104, 3,
                    97,  2,  119, 0,    88,   82, 1,  0,   0,   0,   1,   0,
                    0,   0,  0,   0,    0,    0,  1,  112, 0,   0,   0,   29 + 2 + 2 + 2 + 15 + 2, /* Size */
                    0,                                                                             /* arity */
                    1,   2,  3,   4,    5,    6,  7,  8,   9,   10,  11,  12,
                    13,  14, 15,  16,   0,    0,  0,  1, /* uniq, index */
                    0,   0,  0,   1,                     /* numfree */
                    82,  0,  97,  1,    97,   2,  88, 82,  1,   0,   0,   0,
                    1,   0,  0,   0,    0,    0,  0,  0,   1, /* mod, olds, pid */
                    97,  42};                                 /* free var */
    assert_int_equal(hc_ac_normalize(rx, pk, sizeof pk, &out, &outlen, &why), HC_OK);
    static const uint8_t want[] = {
        'p', 131, 104, 3,   97, 2,   119, 0,   88, 119, 3,   'n', '@', 'h', 0,  0,
        0,   1,   0,   0,   0,  0,   0,   0,   0,  1,   131, 112, 0,   0,   0,  29 + 5 + 2 + 2 + 18 + 2,
        0,   1,   2,   3,   4,  5,   6,   7,   8,  9,   10,  11,  12,  13,  14, 15,
        16,  0,   0,   0,   1,  0,   0,   0,   1,  119, 3,   'm', 'o', 'd', 97, 1,
        97,  2,   88,  119, 3,  'n', '@', 'h', 0,  0,   0,   1,   0,   0,   0,  0,
        0,   0,   0,   1,   97, 42};
    assert_int_equal(outlen, sizeof want);
    assert_memory_equal(out, want, sizeof want);
    hc_ctrl m;
    assert_int_equal(hc_ctrl_decode(out, outlen, &m), HC_OK);

    /* the slots persist: a later packet names them with one byte each */
    uint8_t again[] = {131, 68, 1, 0x01, 7, 104, 3, 97, 2, 119, 0, 88, 82, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 106};
    assert_int_equal(hc_ac_normalize(rx, again, sizeof again, &out, &outlen, &why), HC_OK);
    assert_int_equal(hc_ctrl_decode(out, outlen, &m), HC_OK);
    assert_string_equal(hc_atom_name(m.to.pid.node), "n@h");

    /* no references: rewritten in place, the message not moved */
    uint8_t plain[] = {131, 68, 0, 104, 3, 97, 2, 119, 0, 88, 119, 3, 'n', '@', 'h', 0,   0,
                       0,   1,  0, 0,   0, 0,  0, 0,   0, 1,  109, 0, 0,   0,   2,   'h', 'i'};
    assert_int_equal(hc_ac_normalize(rx, plain, sizeof plain, &out, &outlen, &why), HC_OK);
    assert_ptr_equal(out, plain);
    assert_int_equal(outlen, sizeof plain);
    static const uint8_t plain_want[] = {'p', 131, 104, 3, 97, 2, 119, 0, 88, 119, 3,   'n', '@', 'h', 0, 0,   0,
                                         1,   0,   0,   0, 0,  0, 0,   0, 1,  131, 109, 0,   0,   0,   2, 'h', 'i'};
    assert_memory_equal(out, plain_want, sizeof plain_want);
    uint8_t plain_noms[] = {131, 68, 0, 104, 1, 97, 5};
    assert_int_equal(hc_ac_normalize(rx, plain_noms, sizeof plain_noms, &out, &outlen, &why), HC_OK);
    static const uint8_t noms_want[] = {'p', 131, 104, 1, 97, 5};
    assert_int_equal(outlen, sizeof noms_want);
    assert_memory_equal(out, noms_want, sizeof noms_want);

    /* 'p' passes through */
    uint8_t p[] = {'p', 131, 104, 1, 97, 5};
    assert_int_equal(hc_ac_normalize(rx, p, sizeof p, &out, &outlen, &why), HC_OK);
    assert_ptr_equal(out, p);
    assert_int_equal(outlen, sizeof p);
    hc_ac_free(rx);
}

typedef struct hostile {
    const char *name;
    uint8_t bytes[64];
    size_t len;
    const char *why; /* substring of the reason, or NULL when any malformed-term reason will do */
} hostile;

static void test_hostile_headers(void **state)
{
    (void)state;
    static const hostile cases[] = {
        {"no header", {104, 1, 97, 1}, 4, "without a distribution header"},
        {"version only", {131}, 1, "without a distribution header"},
        {"fragment start", {131, 69, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 19, "fragments"},
        {"fragment cont", {131, 70, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}, 18, "fragments"},
        {"unknown type", {131, 99, 0}, 3, "unknown distribution header"},
        {"truncated count", {131, 68}, 2, "truncated distribution header"},
        {"truncated flags", {131, 68, 5, 0}, 4, "truncated atom cache flags"},
        {"missing ref", {131, 68, 1, 0x08}, 4, "truncated atom cache reference"},
        {"missing length", {131, 68, 1, 0x08, 3}, 5, "truncated atom cache entry"},
        {"missing long length", {131, 68, 1, 0x18, 3, 0}, 6, "truncated atom cache entry"},
        {"short atom text", {131, 68, 1, 0x08, 3, 10, 'a', 'b'}, 8, "truncated atom text"},
        {"atom too long", {131, 68, 1, 0x18, 3, 0x07, 0xD0, 'a'}, 8, "truncated atom text"},
        {"empty slot", {131, 68, 1, 0x07, 0xFF, 104, 1, 82, 0}, 9, "empty slot"},
        {"no control", {131, 68, 1, 0x08, 3, 1, 'a'}, 7, "without a control message"},
        {"ref out of range", {131, 68, 1, 0x08, 3, 1, 'a', 104, 2, 82, 0, 82, 1}, 13, NULL},
        {"ref without refs", {131, 68, 0, 104, 2, 97, 2, 82, 0}, 9, NULL},
        {"ref in message without refs", {131, 68, 0, 104, 1, 97, 2, 82, 0}, 9, NULL}, /* control.c rejects */
        {"truncated ref", {131, 68, 1, 0x08, 3, 1, 'a', 104, 1, 82}, 10, NULL},
        {"trailing bytes", {131, 68, 1, 0x08, 3, 1, 'a', 104, 1, 82, 0, 97, 1, 97}, 14, "after the message"},
        {"131 before control", {131, 68, 1, 0x08, 3, 1, 'a', 131, 104, 1, 82, 0}, 12, NULL},
        {"fun size lies", {131, 68, 1, 0x08, 3, 1, 'a', 112, 0, 0, 0, 29}, 12, NULL},
        {"huge tuple", {131, 68, 1, 0x08, 3, 1, 'a', 105, 0xFF, 0xFF, 0xFF, 0xFF, 82, 0}, 14, NULL},
    };
    hc_atom_cache *rx = hc_ac_new();
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint8_t copy[64];
        memcpy(copy, cases[k].bytes, cases[k].len);
        const uint8_t *out = NULL;
        size_t outlen = 0;
        const char *why = NULL;
        int rc = hc_ac_normalize(rx, copy, cases[k].len, &out, &outlen, &why);
        if (rc == HC_OK) {
            /* the only acceptable "success": control.c then rejects the normalised packet */
            hc_ctrl m;
            if (hc_ctrl_decode(out, outlen, &m) == HC_OK)
                fail_msg("case '%s' was accepted", cases[k].name);
            continue;
        }
        assert_int_equal(rc, HC_EDECODE);
        assert_non_null(why);
        if (cases[k].why && !strstr(why, cases[k].why))
            fail_msg("case '%s': reason '%s' lacks '%s'", cases[k].name, why, cases[k].why);
    }
    /* an over-long atom that is all there: refused, not interned */
    uint8_t big[3 + 1 + 1 + 2 + 2000];
    memset(big, 'x', sizeof big);
    big[0] = 131, big[1] = 68, big[2] = 1, big[3] = 0x18, big[4] = 3, big[5] = 0x07, big[6] = 0xD0;
    const uint8_t *out;
    size_t outlen;
    const char *why;
    assert_int_equal(hc_ac_normalize(rx, big, sizeof big, &out, &outlen, &why), HC_EDECODE);
    assert_non_null(strstr(why, "too long"));
    hc_ac_free(rx);
}

/* Our own packets that fail to walk still go out (header with no references), never mangled. */
static void test_encode_edge_cases(void **state)
{
    (void)state;
    hc_atom_cache *tx = hc_ac_new();
    const struct iovec *iov;
    int n;
    static const uint8_t notp[] = {131, 104, 0};
    assert_int_equal(hc_ac_encode(tx, notp, sizeof notp, NULL, 0, &iov, &n), HC_EINVAL);
    static const uint8_t odd[] = {'p', 131, 104, 1, 200};
    hc_buf ctrl = {0}, wire = {0};
    hc_buf_append(&ctrl, odd, sizeof odd);
    encode(tx, &ctrl, NULL, &wire);
    static const uint8_t want[] = {0, 0, 0, 6, 131, 68, 0, 104, 1, 200};
    assert_int_equal(wire.len, sizeof want);
    assert_memory_equal(wire.data, want, sizeof want);
    hc_buf_free(&ctrl);
    hc_buf_free(&wire);
    hc_ac_free(tx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_reuse), cmocka_unit_test(test_slot_replacement),
        cmocka_unit_test(test_nested_terms),         cmocka_unit_test(test_receive_shapes),
        cmocka_unit_test(test_hostile_headers),      cmocka_unit_test(test_encode_edge_cases),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    hc_atom_table_reset();
    return rc;
}
