/* test_dist_control.c — every distribution control message through its encoder and hc_ctrl_decode,
 * exact bytes for a few against hand-built ETF, and hostile input: wrong arity and element types for
 * each op, every truncation, trailing garbage, missing/unexpected payloads, unknown ops, and thousands
 * of seeded random buffers and mutations (meant to run under ASan/UBSan too). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/etf.h"
#include "dist/control.h"

static hc_pid P1, P2;
static hc_ref R1, R5;
static hc_atom A_ECHO;

static int setup(void **state)
{
    (void)state;
    P1 = (hc_pid){hc_atom_intern_cstr("alpha@host"), 1, 2, 3};
    P2 = (hc_pid){hc_atom_intern_cstr("beta@127.0.0.1"), 40000, 8191, 0xDEADBEEFu};
    R1 = (hc_ref){hc_atom_intern_cstr("alpha@host"), 7, 3, {11, 22, 33, 0, 0}};
    R5 = (hc_ref){hc_atom_intern_cstr("beta@127.0.0.1"), 0xFFFFFFFFu, 5, {1, 2, 3, 4, 0xFFFFFFFFu}};
    A_ECHO = hc_atom_intern_cstr("echo");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hc_atom_table_reset();
    return 0;
}

/* ------------------------------------------------------------------ helpers */

static hc_buf term_atom(const char *s)
{
    hc_buf b = {0};
    assert_int_equal(hc_enc_atom_cstr(&b, s), HC_OK);
    return b;
}

static hc_buf term_pid(const hc_pid *p)
{
    hc_buf b = {0};
    assert_int_equal(hc_enc_pid(&b, p), HC_OK);
    return b;
}

/* {shutdown, <<"bye">>} */
static hc_buf term_reason(void)
{
    hc_buf b = {0};
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "shutdown");
    hc_enc_binary(&b, "bye", 3);
    return b;
}

/* [1, <<"x">>, {ok, -5}] */
static hc_buf term_msg(void)
{
    hc_buf b = {0};
    hc_enc_list_header(&b, 3);
    hc_enc_long(&b, 1);
    hc_enc_binary(&b, "x", 1);
    hc_enc_tuple_header(&b, 2);
    hc_enc_atom_cstr(&b, "ok");
    hc_enc_long(&b, -5);
    hc_enc_nil(&b);
    return b;
}

static void add_payload(hc_buf *pkt, const hc_buf *msg)
{
    assert_int_equal(hc_buf_put_u8(pkt, ETF_VERSION), HC_OK);
    assert_int_equal(hc_buf_append(pkt, msg->data, msg->len), HC_OK);
}

static void assert_span(hc_span s, const hc_buf *want)
{
    assert_int_equal(s.len, want->len);
    assert_memory_equal(s.p, want->data, want->len);
}

static void assert_pid(const hc_pid *got, const hc_pid *want) { assert_true(hc_pid_eq(got, want)); }

/* Decodes an exact-size heap copy so ASan sees any over-read. */
static int decode_copy(const uint8_t *p, size_t n, hc_ctrl *m)
{
    uint8_t *c = malloc(n ? n : 1);
    if (n)
        memcpy(c, p, n);
    int rc = hc_ctrl_decode(c, n, m);
    free(c);
    return rc;
}

/* Every strict prefix of a valid packet must be rejected; so must one extra byte of garbage. */
static void assert_truncations_fail(const hc_buf *pkt)
{
    for (size_t n = 0; n < pkt->len; n++) {
        hc_ctrl m;
        if (decode_copy(pkt->data, n, &m) != HC_EDECODE)
            fail_msg("prefix of %zu/%zu bytes was accepted", n, pkt->len);
    }
    static const uint8_t junk[] = {0, ETF_VERSION, ETF_NIL, 'p'};
    for (size_t k = 0; k < sizeof junk; k++) {
        hc_buf t = {0};
        hc_buf_append(&t, pkt->data, pkt->len);
        hc_buf_put_u8(&t, junk[k]);
        hc_ctrl m;
        if (decode_copy(t.data, t.len, &m) != HC_EDECODE)
            fail_msg("trailing byte %u was accepted", junk[k]);
        hc_buf_free(&t);
    }
}

/* The packet with its control tuple's arity changed by delta must be rejected. */
static void assert_wrong_arity_fails(const hc_buf *pkt)
{
    assert_int_equal(pkt->data[2], ETF_SMALL_TUPLE);
    int arity = pkt->data[3];
    for (int d = -3; d <= 3; d++) {
        if (d == 0 || arity + d < 0)
            continue;
        hc_buf t = {0};
        hc_buf_append(&t, pkt->data, pkt->len);
        t.data[3] = (uint8_t)(arity + d);
        hc_ctrl m;
        if (decode_copy(t.data, t.len, &m) != HC_EDECODE)
            fail_msg("op %d with arity %d (want %d) was accepted", pkt->data[5], arity + d, arity);
        hc_buf_free(&t);
    }
    /* the same tuple as LARGE_TUPLE_EXT with the right arity is still the same term */
    hc_buf t = {0};
    hc_buf_append(&t, pkt->data, 2);
    hc_buf_put_u8(&t, ETF_LARGE_TUPLE);
    hc_buf_put_be32(&t, (uint32_t)arity);
    hc_buf_append(&t, pkt->data + 4, pkt->len - 4);
    hc_ctrl m;
    assert_int_equal(decode_copy(t.data, t.len, &m), HC_OK);
    assert_true(m.known);
    hc_buf_free(&t);
}

static void hostile_checks(const hc_buf *pkt)
{
    assert_truncations_fail(pkt);
    assert_wrong_arity_fails(pkt);
}

/* ------------------------------------------------------------------ round trips */

static void test_send(void **state)
{
    (void)state;
    hc_buf pkt = {0}, msg = term_msg();
    assert_int_equal(hc_ctrl_enc_send(&pkt, &P2), HC_OK);
    /* control alone: a SEND without its message is rejected */
    hc_ctrl m;
    assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_EDECODE);
    add_payload(&pkt, &msg);
    assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_OK);
    assert_true(m.known);
    assert_int_equal(m.op, HC_DOP_SEND);
    assert_false(m.to.is_name);
    assert_pid(&m.to.pid, &P2);
    assert_span(m.msg, &msg);
    hostile_checks(&pkt);
    hc_buf_free(&pkt);
    hc_buf_free(&msg);
}

static void test_reg_send(void **state)
{
    (void)state;
    hc_buf pkt = {0}, msg = term_msg();
    assert_int_equal(hc_ctrl_enc_reg_send(&pkt, &P1, A_ECHO), HC_OK);
    add_payload(&pkt, &msg);
    hc_ctrl m;
    assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_OK);
    assert_true(m.known);
    assert_int_equal(m.op, HC_DOP_REG_SEND);
    assert_pid(&m.from, &P1);
    assert_true(m.to.is_name);
    assert_int_equal(m.to.name, A_ECHO);
    assert_span(m.msg, &msg);
    hostile_checks(&pkt);
    hc_buf_free(&pkt);
    hc_buf_free(&msg);
}

static void test_link_exact_bytes(void **state)
{
    (void)state;
    hc_pid a = {hc_atom_intern_cstr("a@b"), 1, 2, 3};
    hc_pid z = {hc_atom_intern_cstr("z@y"), 0x01020304u, 0, 0xFFFFFFFFu};
    hc_buf pkt = {0};
    assert_int_equal(hc_ctrl_enc_link(&pkt, &a, &z), HC_OK);
    static const uint8_t want[] = {'p', 131, 104, 3, 97, 1, 88, 119, 3, 'a', '@',  'b',  0,    0,
                                   0,   1,   0,   0, 0,  2, 0,  0,   0, 3,   88,   119,  3,    'z',
                                   '@', 'y', 1,   2, 3,  4, 0,  0,   0, 0,   0xFF, 0xFF, 0xFF, 0xFF};
    assert_int_equal(pkt.len, sizeof want);
    assert_memory_equal(pkt.data, want, sizeof want);
    hc_ctrl m;
    assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_OK);
    assert_int_equal(m.op, HC_DOP_LINK);
    assert_pid(&m.from, &a);
    assert_pid(&m.to.pid, &z);
    assert_int_equal(m.msg.len, 0);
    hostile_checks(&pkt);
    /* a LINK carries no message */
    hc_buf msg = term_msg();
    add_payload(&pkt, &msg);
    assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_EDECODE);
    hc_buf_free(&pkt);
    hc_buf_free(&msg);
}

static void exit_like(int op)
{
    hc_buf pkt = {0}, reason = term_reason();
    if (op == HC_DOP_EXIT)
        assert_int_equal(hc_ctrl_enc_exit(&pkt, &P1, &P2, reason.data, reason.len), HC_OK);
    else
        assert_int_equal(hc_ctrl_enc_exit2(&pkt, &P1, &P2, reason.data, reason.len), HC_OK);
    hc_ctrl m;
    assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_OK);
    assert_true(m.known);
    assert_int_equal(m.op, op);
    assert_pid(&m.from, &P1);
    assert_pid(&m.to.pid, &P2);
    assert_span(m.reason, &reason);
    assert_int_equal(m.msg.len, 0);
    hostile_checks(&pkt);
    hc_buf_free(&pkt);
    hc_buf_free(&reason);
}

static void test_exit(void **state)
{
    (void)state;
    exit_like(HC_DOP_EXIT);
}

static void test_exit2(void **state)
{
    (void)state;
    exit_like(HC_DOP_EXIT2);
}

static void test_unlink_id_and_ack(void **state)
{
    (void)state;
    static const uint64_t ids[] = {
        0, 1, 255, 256, 0x7FFFFFFFull, 0x80000000ull, 0xFFFFFFFFull, 0x123456789ABCull, UINT64_MAX};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        hc_buf pkt = {0}, idterm = {0};
        assert_int_equal(hc_enc_ulong(&idterm, ids[i]), HC_OK);
        assert_int_equal(hc_ctrl_enc_unlink_id(&pkt, ids[i], &P1, &P2), HC_OK);
        hc_ctrl m;
        assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_OK);
        assert_int_equal(m.op, HC_DOP_UNLINK_ID);
        assert_pid(&m.from, &P1);
        assert_pid(&m.to.pid, &P2);
        assert_span(m.id, &idterm);
        hostile_checks(&pkt);

        /* the ack echoes the id bytes as received, with from/to swapped */
        hc_buf ack = {0};
        assert_int_equal(hc_ctrl_enc_unlink_id_ack(&ack, m.id.p, m.id.len, &P2, &P1), HC_OK);
        hc_ctrl a;
        assert_int_equal(hc_ctrl_decode(ack.data, ack.len, &a), HC_OK);
        assert_int_equal(a.op, HC_DOP_UNLINK_ID_ACK);
        assert_pid(&a.from, &P2);
        assert_pid(&a.to.pid, &P1);
        assert_span(a.id, &idterm);
        if (ids[i] <= 0x7FFFFFFF && ids[i] > 1) {
            int64_t v;
            size_t k = 0;
            assert_int_equal(hc_dec_long(a.id.p, a.id.len, &k, &v), HC_OK);
            assert_int_equal(v, (int64_t)ids[i]);
        }
        hostile_checks(&ack);
        hc_buf_free(&pkt);
        hc_buf_free(&ack);
        hc_buf_free(&idterm);
    }
}

static void monitor_like(int op, bool by_name)
{
    hc_procref to = {.is_name = by_name, .pid = P2, .name = A_ECHO};
    hc_buf pkt = {0};
    const hc_ref *ref = by_name ? &R1 : &R5;
    if (op == HC_DOP_MONITOR_P)
        assert_int_equal(hc_ctrl_enc_monitor_p(&pkt, &P1, &to, ref), HC_OK);
    else
        assert_int_equal(hc_ctrl_enc_demonitor_p(&pkt, &P1, &to, ref), HC_OK);
    hc_ctrl m;
    assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_OK);
    assert_true(m.known);
    assert_int_equal(m.op, op);
    assert_pid(&m.from, &P1);
    assert_int_equal(m.to.is_name, by_name);
    hc_buf raw = by_name ? term_atom("echo") : term_pid(&P2);
    assert_span(m.to_raw, &raw);
    if (by_name)
        assert_int_equal(m.to.name, A_ECHO);
    else
        assert_pid(&m.to.pid, &P2);
    assert_true(hc_ref_eq(&m.ref, ref));
    hostile_checks(&pkt);
    hc_buf_free(&pkt);
    hc_buf_free(&raw);
}

static void test_monitor_p(void **state)
{
    (void)state;
    monitor_like(HC_DOP_MONITOR_P, false);
    monitor_like(HC_DOP_MONITOR_P, true);
}

static void test_demonitor_p(void **state)
{
    (void)state;
    monitor_like(HC_DOP_DEMONITOR_P, false);
    monitor_like(HC_DOP_DEMONITOR_P, true);
}

static void test_monitor_p_exit(void **state)
{
    (void)state;
    for (int by_name = 0; by_name < 2; by_name++) {
        hc_buf watched = by_name ? term_atom("echo") : term_pid(&P2);
        hc_buf reason = term_atom("noproc");
        hc_buf pkt = {0};
        assert_int_equal(hc_ctrl_enc_monitor_p_exit(&pkt, watched.data, watched.len, &P1, &R1, reason.data, reason.len),
                         HC_OK);
        hc_ctrl m;
        assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_OK);
        assert_true(m.known);
        assert_int_equal(m.op, HC_DOP_MONITOR_P_EXIT);
        assert_int_equal(m.watched.is_name, by_name);
        assert_span(m.to_raw, &watched);
        assert_false(m.to.is_name);
        assert_pid(&m.to.pid, &P1);
        assert_true(hc_ref_eq(&m.ref, &R1));
        assert_span(m.reason, &reason);
        hostile_checks(&pkt);
        hc_buf_free(&pkt);
        hc_buf_free(&watched);
        hc_buf_free(&reason);
    }
}

static void test_alias_send(void **state)
{
    (void)state;
    hc_buf pkt = {0}, msg = term_msg();
    assert_int_equal(hc_ctrl_enc_alias_send(&pkt, &P1, &R5), HC_OK);
    hc_ctrl m;
    assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_EDECODE); /* payload missing */
    add_payload(&pkt, &msg);
    assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_OK);
    assert_int_equal(m.op, HC_DOP_ALIAS_SEND);
    assert_pid(&m.from, &P1);
    assert_true(hc_ref_eq(&m.ref, &R5));
    assert_span(m.msg, &msg);
    hostile_checks(&pkt);
    hc_buf_free(&pkt);
    hc_buf_free(&msg);
}

static void test_spawn_request(void **state)
{
    (void)state;
    /* with options [link, {monitor, []}] and with none; the arg list is the payload */
    hc_buf opts = {0};
    hc_enc_list_header(&opts, 2);
    hc_enc_atom_cstr(&opts, "link");
    hc_enc_tuple_header(&opts, 2);
    hc_enc_atom_cstr(&opts, "monitor");
    hc_enc_nil(&opts);
    hc_enc_nil(&opts);
    hc_buf args = {0};
    hc_enc_list_header(&args, 2);
    hc_enc_long(&args, 42);
    hc_enc_string(&args, "hello");
    hc_enc_nil(&args);
    for (int with_opts = 0; with_opts < 2; with_opts++) {
        hc_buf pkt = {0};
        assert_int_equal(hc_ctrl_enc_spawn_request(&pkt, &R1, &P1, &P2, "erlang", "apply", 2,
                                                   with_opts ? opts.data : NULL, with_opts ? opts.len : 0),
                         HC_OK);
        hc_ctrl m;
        assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_EDECODE); /* arg list missing */
        add_payload(&pkt, &args);
        assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_OK);
        assert_true(m.known);
        assert_int_equal(m.op, HC_DOP_SPAWN_REQUEST);
        assert_true(hc_ref_eq(&m.ref, &R1));
        assert_pid(&m.from, &P1);
        assert_span(m.msg, &args);
        /* the MFA tuple and the options are where we put them */
        size_t i = 2;
        uint32_t ar;
        assert_int_equal(hc_dec_tuple_header(pkt.data, pkt.len, &i, &ar), HC_OK);
        assert_int_equal(ar, 6);
        for (int k = 0; k < 4; k++)
            assert_int_equal(hc_dec_skip(pkt.data, pkt.len, &i), HC_OK);
        assert_int_equal(hc_dec_tuple_header(pkt.data, pkt.len, &i, &ar), HC_OK);
        assert_int_equal(ar, 3);
        assert_true(hc_dec_is_atom(pkt.data, pkt.len, &i, "erlang"));
        assert_true(hc_dec_is_atom(pkt.data, pkt.len, &i, "apply"));
        int64_t v;
        assert_int_equal(hc_dec_long(pkt.data, pkt.len, &i, &v), HC_OK);
        assert_int_equal(v, 2);
        if (with_opts) {
            assert_memory_equal(pkt.data + i, opts.data, opts.len);
            i += opts.len;
        } else {
            assert_int_equal(pkt.data[i], ETF_NIL);
            i++;
        }
        assert_int_equal(pkt.data[i], ETF_VERSION);
        hostile_checks(&pkt);
        hc_buf_free(&pkt);
    }
    hc_buf_free(&opts);
    hc_buf_free(&args);
}

static void test_spawn_reply(void **state)
{
    (void)state;
    for (int ok = 0; ok < 2; ok++) {
        hc_buf result = ok ? term_pid(&P2) : term_atom("badarg");
        static const int64_t flags[] = {0, 1, 2, 3, 255, 70000};
        for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++) {
            hc_buf pkt = {0};
            assert_int_equal(hc_ctrl_enc_spawn_reply(&pkt, &R5, &P1, flags[f], result.data, result.len), HC_OK);
            hc_ctrl m;
            assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_OK);
            assert_true(m.known);
            assert_int_equal(m.op, HC_DOP_SPAWN_REPLY);
            assert_true(hc_ref_eq(&m.ref, &R5));
            assert_pid(&m.to.pid, &P1);
            assert_int_equal(m.flags, flags[f]);
            assert_span(m.result, &result);
            assert_int_equal(m.msg.len, 0);
            hostile_checks(&pkt);
            hc_buf_free(&pkt);
        }
        hc_buf_free(&result);
    }
}

/* ------------------------------------------------------------------ hand-built hostile packets */

/* Builds 'p' 131 {Op, elements...} from pre-encoded element terms. */
static hc_buf build(uint32_t arity, int64_t op, const hc_buf *elems, int n)
{
    hc_buf b = {0};
    hc_buf_put_u8(&b, 'p');
    hc_buf_put_u8(&b, ETF_VERSION);
    hc_enc_tuple_header(&b, arity);
    hc_enc_long(&b, op);
    for (int i = 0; i < n; i++)
        hc_buf_append(&b, elems[i].data, elems[i].len);
    return b;
}

static void test_wrong_element_types(void **state)
{
    (void)state;
    hc_buf pid = term_pid(&P1), atom = term_atom("echo"), empty = term_atom(""), reason = term_atom("normal");
    hc_buf ref = {0}, num = {0}, bin = {0}, msg = term_msg();
    hc_enc_ref(&ref, &R1);
    hc_enc_long(&num, 7);
    hc_enc_binary(&bin, "zz", 2);
    struct {
        const char *what;
        int op;
        uint32_t arity;
        hc_buf e[5];
        bool payload;
    } cases[] = {
        {"SEND to a name", HC_DOP_SEND, 3, {empty, atom}, true},
        {"SEND to a ref", HC_DOP_SEND, 3, {empty, ref}, true},
        {"REG_SEND from an atom", HC_DOP_REG_SEND, 4, {atom, empty, atom}, true},
        {"REG_SEND to a pid", HC_DOP_REG_SEND, 4, {pid, empty, pid}, true},
        {"REG_SEND to a binary", HC_DOP_REG_SEND, 4, {pid, empty, bin}, true},
        {"LINK from an atom", HC_DOP_LINK, 3, {atom, pid}, false},
        {"LINK to an atom", HC_DOP_LINK, 3, {pid, atom}, false},
        {"EXIT to an atom", HC_DOP_EXIT, 4, {pid, atom, reason}, false},
        {"EXIT2 from a number", HC_DOP_EXIT2, 4, {num, pid, reason}, false},
        {"MONITOR_P ref is a pid", HC_DOP_MONITOR_P, 4, {pid, atom, pid}, false},
        {"MONITOR_P to a number", HC_DOP_MONITOR_P, 4, {pid, num, ref}, false},
        {"DEMONITOR_P from a ref", HC_DOP_DEMONITOR_P, 4, {ref, pid, ref}, false},
        {"MONITOR_P_EXIT watcher is a name", HC_DOP_MONITOR_P_EXIT, 5, {pid, atom, ref, reason}, false},
        {"MONITOR_P_EXIT watched is a ref", HC_DOP_MONITOR_P_EXIT, 5, {ref, pid, ref, reason}, false},
        {"MONITOR_P_EXIT ref is an atom", HC_DOP_MONITOR_P_EXIT, 5, {pid, pid, atom, reason}, false},
        {"UNLINK_ID id is an atom", HC_DOP_UNLINK_ID, 4, {atom, pid, pid}, false},
        {"UNLINK_ID id is a binary", HC_DOP_UNLINK_ID, 4, {bin, pid, pid}, false},
        {"UNLINK_ID_ACK to a name", HC_DOP_UNLINK_ID_ACK, 4, {num, pid, atom}, false},
        {"ALIAS_SEND alias is a pid", HC_DOP_ALIAS_SEND, 3, {pid, pid}, true},
        {"ALIAS_SEND from a ref", HC_DOP_ALIAS_SEND, 3, {ref, ref}, true},
        {"SPAWN_REQUEST req is a pid", HC_DOP_SPAWN_REQUEST, 6, {pid, pid, pid, atom, empty}, true},
        {"SPAWN_REQUEST from an atom", HC_DOP_SPAWN_REQUEST, 6, {ref, atom, pid, atom, empty}, true},
        {"SPAWN_REPLY flags an atom", HC_DOP_SPAWN_REPLY, 5, {ref, pid, atom, pid}, false},
        {"SPAWN_REPLY to a name", HC_DOP_SPAWN_REPLY, 5, {ref, atom, num, pid}, false},
        {"SPAWN_REPLY req is a number", HC_DOP_SPAWN_REPLY, 5, {num, pid, num, pid}, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hc_buf pkt = build(cases[i].arity, cases[i].op, cases[i].e, (int)cases[i].arity - 1);
        if (cases[i].payload)
            add_payload(&pkt, &msg);
        hc_ctrl m;
        if (decode_copy(pkt.data, pkt.len, &m) != HC_EDECODE)
            fail_msg("accepted: %s", cases[i].what);
        hc_buf_free(&pkt);
    }
    /* and the shapes those cases were mutated from are accepted */
    hc_buf okcases[][4] = {{empty, pid}, {pid, pid}};
    hc_buf pkt = build(3, HC_DOP_SEND, okcases[0], 2);
    add_payload(&pkt, &msg);
    hc_ctrl m;
    assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_OK);
    hc_buf_free(&pkt);
    pkt = build(3, HC_DOP_LINK, okcases[1], 2);
    assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_OK);
    hc_buf_free(&pkt);

    hc_buf_free(&pid);
    hc_buf_free(&atom);
    hc_buf_free(&empty);
    hc_buf_free(&reason);
    hc_buf_free(&ref);
    hc_buf_free(&num);
    hc_buf_free(&bin);
    hc_buf_free(&msg);
}

static void test_envelope(void **state)
{
    (void)state;
    hc_buf pid = term_pid(&P1);
    hc_buf e[2] = {pid, pid};
    hc_buf good = build(3, HC_DOP_LINK, e, 2);
    hc_ctrl m;
    assert_int_equal(hc_ctrl_decode(good.data, good.len, &m), HC_OK);

    /* no 'p', no version byte, a tick */
    hc_buf t = {0};
    hc_buf_append(&t, good.data, good.len);
    t.data[0] = 'q';
    assert_int_equal(hc_ctrl_decode(t.data, t.len, &m), HC_EDECODE);
    t.data[0] = 'p';
    t.data[1] = 130;
    assert_int_equal(hc_ctrl_decode(t.data, t.len, &m), HC_EDECODE);
    assert_int_equal(hc_ctrl_decode(t.data, 0, &m), HC_EDECODE);
    hc_buf_free(&t);

    /* control is not a tuple; empty tuple; op not an integer; op negative or > 255 */
    static const uint8_t not_tuple[] = {'p', 131, ETF_NIL};
    static const uint8_t empty_tuple[] = {'p', 131, ETF_SMALL_TUPLE, 0};
    static const uint8_t op_atom[] = {'p', 131, ETF_SMALL_TUPLE, 1, ETF_SMALL_ATOM_UTF8, 1, 'x'};
    static const uint8_t op_neg[] = {'p', 131, ETF_SMALL_TUPLE, 1, ETF_INTEGER, 0xFF, 0xFF, 0xFF, 0xFF};
    static const uint8_t op_big[] = {'p', 131, ETF_SMALL_TUPLE, 1, ETF_INTEGER, 0, 0, 1, 1};
    static const uint8_t op_huge[] = {'p', 131, ETF_SMALL_TUPLE, 1, ETF_SMALL_BIG, 8, 0, 1, 0, 0, 0, 0, 0, 0, 0x80};
    static const uint8_t op_float[] = {'p', 131, ETF_SMALL_TUPLE, 1, ETF_NEW_FLOAT, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0};
    const struct {
        const uint8_t *p;
        size_t n;
    } bad[] = {{not_tuple, sizeof not_tuple}, {empty_tuple, sizeof empty_tuple}, {op_atom, sizeof op_atom},
               {op_neg, sizeof op_neg},       {op_big, sizeof op_big},           {op_huge, sizeof op_huge},
               {op_float, sizeof op_float}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (decode_copy(bad[i].p, bad[i].n, &m) != HC_EDECODE)
            fail_msg("bad envelope %zu accepted", i);

    /* the op as INTEGER_EXT instead of SMALL_INTEGER_EXT is the same term */
    hc_buf alt = {0};
    hc_buf_append(&alt, good.data, 4);
    hc_buf_put_u8(&alt, ETF_INTEGER);
    hc_buf_put_be32(&alt, HC_DOP_LINK);
    hc_buf_append(&alt, good.data + 6, good.len - 6);
    assert_int_equal(hc_ctrl_decode(alt.data, alt.len, &m), HC_OK);
    assert_int_equal(m.op, HC_DOP_LINK);
    hc_buf_free(&alt);

    /* payload: version byte but no term, term followed by garbage, two payloads */
    hc_buf msg = term_msg();
    hc_buf s = {0};
    hc_ctrl_enc_send(&s, &P2);
    hc_buf_put_u8(&s, ETF_VERSION);
    assert_int_equal(hc_ctrl_decode(s.data, s.len, &m), HC_EDECODE);
    hc_buf_append(&s, msg.data, msg.len);
    assert_int_equal(hc_ctrl_decode(s.data, s.len, &m), HC_OK);
    add_payload(&s, &msg);
    assert_int_equal(hc_ctrl_decode(s.data, s.len, &m), HC_EDECODE);
    hc_buf_free(&s);
    /* payload without its version byte */
    hc_ctrl_enc_send(&s, &P2);
    hc_buf_append(&s, msg.data, msg.len);
    assert_int_equal(hc_ctrl_decode(s.data, s.len, &m), HC_EDECODE);
    hc_buf_free(&s);

    hc_buf_free(&msg);
    hc_buf_free(&good);
    hc_buf_free(&pid);
}

static void test_unknown_ops(void **state)
{
    (void)state;
    hc_buf pid = term_pid(&P1), atom = term_atom("x"), msg = term_msg();
    hc_buf e[3] = {pid, atom, pid};
    /* op numbers the protocol does not define: rejected, as erts rejects them */
    static const int undefined[] = {0, 9, 10, 11, 14, 15, 17, 37, 99, 255};
    for (size_t i = 0; i < sizeof undefined / sizeof undefined[0]; i++) {
        hc_buf pkt = build(3, undefined[i], e, 2);
        hc_ctrl m;
        assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_EDECODE);
        hc_buf_free(&pkt);
    }
    /* ops OTP defines that we do not handle, with and without payload: accepted with known = false */
    static const int ops[] = {5, 24, 25, 26, 27, 28, 30, 32};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        for (int arity = 1; arity <= 4; arity++) {
            hc_buf pkt = build((uint32_t)arity, ops[i], e, arity - 1);
            hc_ctrl m;
            assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_OK);
            assert_false(m.known);
            assert_int_equal(m.op, ops[i]);
            assert_int_equal(m.msg.len, 0);
            assert_truncations_fail(&pkt);
            add_payload(&pkt, &msg);
            assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_OK);
            assert_false(m.known);
            assert_span(m.msg, &msg);
            hc_buf_free(&pkt);
        }
    }
    /* an unhandled op whose tuple claims more elements than there are */
    hc_buf pkt = build(200, 24, e, 3);
    hc_ctrl m;
    assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_EDECODE);
    hc_buf_free(&pkt);
    pkt = build(0xFFFFFFFFu, 24, e, 3);
    assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_EDECODE);
    hc_buf_free(&pkt);
    hc_buf_free(&pid);
    hc_buf_free(&atom);
    hc_buf_free(&msg);
}

/* Trace-token variants decode as their base op; the token trails, except for EXIT_TT and EXIT2_TT. */
static void test_trace_token_variants(void **state)
{
    (void)state;
    hc_buf pid1 = term_pid(&P1), pid2 = term_pid(&P2), name = term_atom("x"), empty = term_atom(""),
           token = term_atom("token"), reason = term_atom("boom"), msg = term_msg();
    hc_ctrl m;

    hc_buf send_tt[3] = {empty, pid2, token};
    hc_buf pkt = build(4, 12, send_tt, 3);
    add_payload(&pkt, &msg);
    assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_OK);
    assert_true(m.known);
    assert_int_equal(m.op, HC_DOP_SEND);
    assert_true(hc_pid_eq(&m.to.pid, &P2));
    assert_span(m.msg, &msg);
    hc_buf_free(&pkt);

    hc_buf reg_tt[4] = {pid1, empty, name, token};
    pkt = build(5, 16, reg_tt, 4);
    add_payload(&pkt, &msg);
    assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_OK);
    assert_int_equal(m.op, HC_DOP_REG_SEND);
    assert_true(m.to.is_name);
    hc_buf_free(&pkt);

    hc_buf exit_tt[4] = {pid1, pid2, token, reason};
    for (int op = 13; op <= 18; op += 5) {
        pkt = build(5, op, exit_tt, 4);
        assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_OK);
        assert_int_equal(m.op, op == 13 ? HC_DOP_EXIT : HC_DOP_EXIT2);
        assert_span(m.reason, &reason);
        hc_buf_free(&pkt);
    }

    /* the base op's arity under a _TT number is wrong */
    hc_buf short_tt[2] = {empty, pid2};
    pkt = build(3, 12, short_tt, 2);
    add_payload(&pkt, &msg);
    assert_int_equal(hc_ctrl_decode(pkt.data, pkt.len, &m), HC_EDECODE);
    hc_buf_free(&pkt);

    hc_buf *all[] = {&pid1, &pid2, &name, &empty, &token, &reason, &msg};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        hc_buf_free(all[i]);
}

/* ------------------------------------------------------------------ random input */

static uint64_t rng_state;
static uint32_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}

static void check_decoded(const uint8_t *p, size_t n, int rc, const hc_ctrl *m)
{
    assert_true(rc == HC_OK || rc == HC_EDECODE);
    if (rc != HC_OK)
        return;
    /* every span lies inside the input */
    const hc_span spans[] = {m->to_raw, m->reason, m->id, m->result, m->msg};
    for (size_t i = 0; i < sizeof spans / sizeof spans[0]; i++)
        if (spans[i].len)
            assert_true(spans[i].p >= p && spans[i].p + spans[i].len <= p + n);
}

static void all_valid_packets(hc_buf *out, int *count)
{
    hc_buf msg = term_msg(), reason = term_reason(), watched = term_pid(&P2), name = term_atom("echo");
    hc_procref to_pid = {.pid = P2}, to_name = {.is_name = true, .name = A_ECHO};
    int n = 0;
#define NEXT (&out[n++])
    hc_ctrl_enc_send(NEXT, &P2), add_payload(&out[n - 1], &msg);
    hc_ctrl_enc_reg_send(NEXT, &P1, A_ECHO), add_payload(&out[n - 1], &msg);
    hc_ctrl_enc_link(NEXT, &P1, &P2);
    hc_ctrl_enc_exit(NEXT, &P1, &P2, reason.data, reason.len);
    hc_ctrl_enc_exit2(NEXT, &P1, &P2, reason.data, reason.len);
    hc_ctrl_enc_monitor_p(NEXT, &P1, &to_pid, &R1);
    hc_ctrl_enc_monitor_p(NEXT, &P1, &to_name, &R5);
    hc_ctrl_enc_demonitor_p(NEXT, &P1, &to_name, &R1);
    hc_ctrl_enc_monitor_p_exit(NEXT, watched.data, watched.len, &P1, &R1, reason.data, reason.len);
    hc_ctrl_enc_monitor_p_exit(NEXT, name.data, name.len, &P1, &R1, reason.data, reason.len);
    hc_ctrl_enc_unlink_id(NEXT, 0x123456789ULL, &P1, &P2);
    hc_ctrl_enc_unlink_id_ack(NEXT, (const uint8_t *)"\x61\x05", 2, &P1, &P2);
    hc_ctrl_enc_alias_send(NEXT, &P1, &R5), add_payload(&out[n - 1], &msg);
    hc_ctrl_enc_spawn_request(NEXT, &R1, &P1, &P2, "m", "f", 1, NULL, 0), add_payload(&out[n - 1], &msg);
    hc_ctrl_enc_spawn_reply(NEXT, &R1, &P1, 2, watched.data, watched.len);
#undef NEXT
    *count = n;
    for (int i = 0; i < n; i++) {
        hc_ctrl m;
        assert_int_equal(hc_ctrl_decode(out[i].data, out[i].len, &m), HC_OK);
    }
    hc_buf_free(&msg);
    hc_buf_free(&reason);
    hc_buf_free(&watched);
    hc_buf_free(&name);
}

static void test_random_buffers(void **state)
{
    (void)state;
    rng_state = 0x5EED;
    static const uint8_t tags[] = {ETF_SMALL_TUPLE,
                                   ETF_LARGE_TUPLE,
                                   ETF_SMALL_INTEGER,
                                   ETF_INTEGER,
                                   ETF_NEW_PID,
                                   ETF_PID,
                                   ETF_NEWER_REFERENCE,
                                   ETF_SMALL_ATOM_UTF8,
                                   ETF_ATOM_UTF8,
                                   ETF_LIST,
                                   ETF_NIL,
                                   ETF_BINARY,
                                   ETF_MAP,
                                   ETF_VERSION,
                                   ETF_SMALL_BIG,
                                   ETF_NEW_REFERENCE};
    for (int iter = 0; iter < 5000; iter++) {
        size_t n = rnd() % 96;
        uint8_t *p = malloc(n ? n : 1);
        for (size_t k = 0; k < n; k++)
            p[k] = (rnd() % 3 == 0) ? tags[rnd() % sizeof tags] : (uint8_t)rnd();
        if (n >= 2 && iter % 2 == 0) {
            p[0] = 'p';
            p[1] = ETF_VERSION;
        }
        if (n >= 6 && iter % 4 == 0) {
            p[2] = ETF_SMALL_TUPLE;
            p[3] = (uint8_t)(1 + rnd() % 6);
            p[4] = ETF_SMALL_INTEGER;
            static const uint8_t ops[] = {1, 2, 3, 6, 8, 19, 20, 21, 29, 31, 33, 35, 36};
            p[5] = ops[rnd() % sizeof ops];
        }
        hc_ctrl m;
        int rc = hc_ctrl_decode(p, n, &m);
        check_decoded(p, n, rc, &m);
        free(p);
    }
}

static void test_mutations_of_valid_packets(void **state)
{
    (void)state;
    rng_state = 0xC0FFEE;
    hc_buf pk[32] = {{0}};
    int count = 0;
    all_valid_packets(pk, &count);
    int accepted = 0;
    for (int iter = 0; iter < 20000; iter++) {
        const hc_buf *src = &pk[iter % count];
        size_t n = src->len;
        uint8_t *p = malloc(n + 8);
        memcpy(p, src->data, n);
        int kind = (int)(rnd() % 5);
        int edits = 1 + (int)(rnd() % 3);
        for (int e = 0; e < edits; e++) {
            size_t at = n ? rnd() % n : 0;
            switch (kind) {
            case 0: p[at] = (uint8_t)rnd(); break;                     /* overwrite */
            case 1: p[at] ^= (uint8_t)(1u << (rnd() % 8)); break;      /* bit flip */
            case 2: p[at] = (uint8_t)(rnd() % 2 ? 0xFF : 0x00); break; /* extremes (lengths) */
            case 3:                                                    /* delete a byte */
                if (n) {
                    memmove(p + at, p + at + 1, n - at - 1);
                    n--;
                }
                break;
            default: /* insert a byte */
                memmove(p + at + 1, p + at, n - at);
                p[at] = (uint8_t)rnd();
                n++;
                break;
            }
        }
        uint8_t *exact = malloc(n ? n : 1);
        memcpy(exact, p, n);
        hc_ctrl m;
        int rc = hc_ctrl_decode(exact, n, &m);
        check_decoded(exact, n, rc, &m);
        accepted += rc == HC_OK;
        free(exact);
        free(p);
    }
    /* some mutations (a changed pid number, say) stay valid; most do not */
    assert_true(accepted > 0 && accepted < 20000);
    for (int i = 0; i < count; i++)
        hc_buf_free(&pk[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send),
        cmocka_unit_test(test_reg_send),
        cmocka_unit_test(test_link_exact_bytes),
        cmocka_unit_test(test_exit),
        cmocka_unit_test(test_exit2),
        cmocka_unit_test(test_unlink_id_and_ack),
        cmocka_unit_test(test_monitor_p),
        cmocka_unit_test(test_demonitor_p),
        cmocka_unit_test(test_monitor_p_exit),
        cmocka_unit_test(test_alias_send),
        cmocka_unit_test(test_spawn_request),
        cmocka_unit_test(test_spawn_reply),
        cmocka_unit_test(test_wrong_element_types),
        cmocka_unit_test(test_envelope),
        cmocka_unit_test(test_unknown_ops),
        cmocka_unit_test(test_trace_token_variants),
        cmocka_unit_test(test_random_buffers),
        cmocka_unit_test(test_mutations_of_valid_packets),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
