/* hordec_vectors.c — prints what our encoders produce, one "name<TAB>hex" line each, so the real BEAM
 * can judge the bytes (elixir_client/test/control_codec_test.exs, test/interop/check_vectors.escript).
 *
 * Every line is a distribution data packet without its 4-byte length: 'p', 131, Term, and for messages
 * that carry one, 131, Message. Term-encoder vectors (names starting with "term_") use the same shape
 * with no message, so one reader handles all lines.
 *
 * The fixed identities below are mirrored in the ExUnit test — keep them in sync:
 *   P1 = <vec1@host.1.2.3>   (NEW_PID_EXT node 'vec1@host', num 1, serial 2, creation 3)
 *   P2 = <vec2@host.32767.8191.0xDEADBEEF>
 *   R1 = NEWER_REFERENCE node 'vec1@host', creation 3, words [0x3FFFF, 0xFFFFFFFF, 7]
 *   R2 = NEWER_REFERENCE node 'vec2@host', creation 0xDEADBEEF, words [1, 2, 3, 4, 5]
 *   MSG = [1, <<"x">>, {ok, -5}]      REASON = {shutdown, <<"bye">>}
 *
 * `hordec-vectors --check` instead verifies every vector with our own decoders (hc_ctrl_decode,
 * hc_term_check) and prints nothing on success: the ctest self-check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/etf.h"
#include "dist/control.h"
#include "hordec/hc_term.h"

static int check_mode;
static int failures;

static hc_pid P1, P2;
static hc_ref R1, R2;

static void emit(const char *name, const hc_buf *b, int rc, bool is_ctrl)
{
    if (rc != HC_OK) {
        fprintf(stderr, "hordec-vectors: encoder for %s failed: %s\n", name, hc_strerror(rc));
        failures++;
        return;
    }
    if (check_mode) {
        if (is_ctrl) {
            hc_ctrl m;
            if (hc_ctrl_decode(b->data, b->len, &m) != HC_OK || !m.known) {
                fprintf(stderr, "hordec-vectors: %s does not decode as a known control message\n", name);
                failures++;
            }
        } else {
            if (b->len < 2 || b->data[0] != 'p' || b->data[1] != ETF_VERSION ||
                hc_term_check(b->data + 2, b->len - 2) != HC_OK) {
                fprintf(stderr, "hordec-vectors: %s is not exactly one term\n", name);
                failures++;
            }
        }
        return;
    }
    printf("%s\t", name);
    for (size_t i = 0; i < b->len; i++)
        printf("%02x", b->data[i]);
    printf("\n");
}

static void start_term(hc_buf *b)
{
    hc_buf_reset(b);
    hc_buf_put_u8(b, 'p');
    hc_buf_put_u8(b, ETF_VERSION);
}

static void put_msg(hc_buf *b)
{
    hc_buf_put_u8(b, ETF_VERSION);
    hc_enc_list_header(b, 3);
    hc_enc_long(b, 1);
    hc_enc_binary(b, "x", 1);
    hc_enc_tuple_header(b, 2);
    hc_enc_atom_cstr(b, "ok");
    hc_enc_long(b, -5);
    hc_enc_nil(b);
}

static hc_buf reason(void)
{
    hc_buf r = {0};
    hc_enc_tuple_header(&r, 2);
    hc_enc_atom_cstr(&r, "shutdown");
    hc_enc_binary(&r, "bye", 3);
    return r;
}

static void term_vectors(void)
{
    hc_buf b = {0};
#define TERM(nm, expr)                                                                                                 \
    do {                                                                                                               \
        start_term(&b);                                                                                                \
        int rc_ = (expr);                                                                                              \
        emit(nm, &b, rc_, false);                                                                                      \
    } while (0)

    TERM("term_atom", hc_enc_atom_cstr(&b, "hello"));
    TERM("term_atom_utf8", hc_enc_atom_cstr(&b, "h\xC3\xA9llo"));
    TERM("term_atom_empty", hc_enc_atom(&b, 0));
    TERM("term_atom_interned", hc_enc_atom(&b, hc_atom_intern_cstr("interned_atom")));
    {
        char s[600];
        memset(s, 'a', 255);
        s[255] = 0;
        TERM("term_atom_255", hc_enc_atom_cstr(&b, s));
        for (int i = 0; i < 255; i++) { /* 255 characters, 510 bytes: ATOM_UTF8_EXT */
            s[2 * i] = (char)0xC3;
            s[2 * i + 1] = (char)0xA9;
        }
        s[510] = 0;
        TERM("term_atom_255_utf8", hc_enc_atom_cstr(&b, s));
    }
    static const struct {
        const char *name;
        int64_t v;
    } longs[] = {
        {"term_long_0", 0},
        {"term_long_255", 255},
        {"term_long_256", 256},
        {"term_long_m1", -1},
        {"term_long_int32_min", INT32_MIN},
        {"term_long_int32_max", INT32_MAX},
        {"term_long_2p31", 2147483648LL},
        {"term_long_m2p31_m1", -2147483649LL},
        {"term_long_int64_max", INT64_MAX},
        {"term_long_int64_min", INT64_MIN},
    };
    for (size_t i = 0; i < sizeof longs / sizeof longs[0]; i++)
        TERM(longs[i].name, hc_enc_long(&b, longs[i].v));
    TERM("term_ulong_max", hc_enc_ulong(&b, UINT64_MAX));
    TERM("term_ulong_2p40", hc_enc_ulong(&b, 1ULL << 40));
    TERM("term_ulong_2p27", hc_enc_ulong(&b, 1ULL << 27)); /* INTEGER_EXT, as the BEAM writes it (ei would not) */
    TERM("term_bool_true", hc_enc_bool(&b, true));
    TERM("term_bool_false", hc_enc_bool(&b, false));
    TERM("term_double", hc_enc_double(&b, 1.5));
    TERM("term_double_neg_big", hc_enc_double(&b, -1.0e300));
    TERM("term_binary", hc_enc_binary(&b, "abc", 3));
    TERM("term_binary_empty", hc_enc_binary(&b, NULL, 0));
    TERM("term_string_utf8", hc_enc_string(&b, "h\xC3\xA9llo"));
    TERM("term_nil", hc_enc_nil(&b));
    TERM("term_pid", hc_enc_pid(&b, &P1));
    TERM("term_pid_max", hc_enc_pid(&b, &P2));
    TERM("term_ref", hc_enc_ref(&b, &R1));
    TERM("term_ref_5", hc_enc_ref(&b, &R2));
    /* #{a => 1, <<"k">> => [1, 2]} */
    TERM("term_map", hc_enc_map_header(&b, 2) || hc_enc_atom_cstr(&b, "a") || hc_enc_long(&b, 1) ||
                         hc_enc_binary(&b, "k", 1) || hc_enc_list_header(&b, 2) || hc_enc_long(&b, 1) ||
                         hc_enc_long(&b, 2) || hc_enc_nil(&b));
    TERM("term_map_empty", hc_enc_map_header(&b, 0));
    /* [1 | 2] */
    TERM("term_list_improper", hc_enc_list_header(&b, 1) || hc_enc_long(&b, 1) || hc_enc_long(&b, 2));
    /* {} and a 300-tuple of 1..300 */
    TERM("term_tuple_empty", hc_enc_tuple_header(&b, 0));
    start_term(&b);
    int rc = hc_enc_tuple_header(&b, 300);
    for (int i = 1; i <= 300 && !rc; i++)
        rc = hc_enc_long(&b, i);
    emit("term_tuple_300", &b, rc, false);
    TERM("term_tuple_pid_ref", hc_enc_tuple_header(&b, 2) || hc_enc_pid(&b, &P2) || hc_enc_ref(&b, &R1));
    {
        /* {raw, {a, 1}}: the inner tuple spliced from already-encoded bytes */
        static const uint8_t a1[] = {ETF_SMALL_TUPLE, 2, ETF_SMALL_ATOM_UTF8, 1, 'a', ETF_SMALL_INTEGER, 1};
        TERM("term_raw", hc_enc_tuple_header(&b, 2) || hc_enc_atom_cstr(&b, "raw") || hc_enc_raw(&b, a1, sizeof a1));
    }
#undef TERM
    hc_buf_free(&b);
}

static void control_vectors(void)
{
    hc_buf b = {0}, r = reason(), noproc = {0}, watched_pid = {0}, watched_name = {0}, opts = {0}, pid2 = {0},
           badarg = {0};
    hc_enc_atom_cstr(&noproc, "noproc");
    hc_enc_pid(&watched_pid, &P2);
    hc_enc_atom_cstr(&watched_name, "echo");
    hc_enc_pid(&pid2, &P2);
    hc_enc_atom_cstr(&badarg, "badarg");
    /* [link, {monitor, []}] */
    hc_enc_list_header(&opts, 2);
    hc_enc_atom_cstr(&opts, "link");
    hc_enc_tuple_header(&opts, 2);
    hc_enc_atom_cstr(&opts, "monitor");
    hc_enc_nil(&opts);
    hc_enc_nil(&opts);
    hc_atom echo = hc_atom_intern_cstr("echo");
    hc_procref to_pid = {.pid = P2}, to_name = {.is_name = true, .name = echo};
    int rc;

#define CTRL(nm, expr, with_msg)                                                                                       \
    do {                                                                                                               \
        hc_buf_reset(&b);                                                                                              \
        rc = (expr);                                                                                                   \
        if (with_msg)                                                                                                  \
            put_msg(&b);                                                                                               \
        emit(nm, &b, rc, true);                                                                                        \
    } while (0)

    CTRL("ctrl_send", hc_ctrl_enc_send(&b, &P2), 1);
    CTRL("ctrl_reg_send", hc_ctrl_enc_reg_send(&b, &P1, echo), 1);
    CTRL("ctrl_link", hc_ctrl_enc_link(&b, &P1, &P2), 0);
    CTRL("ctrl_exit", hc_ctrl_enc_exit(&b, &P1, &P2, r.data, r.len), 0);
    CTRL("ctrl_exit2", hc_ctrl_enc_exit2(&b, &P1, &P2, r.data, r.len), 0);
    CTRL("ctrl_monitor_p_pid", hc_ctrl_enc_monitor_p(&b, &P1, &to_pid, &R1), 0);
    CTRL("ctrl_monitor_p_name", hc_ctrl_enc_monitor_p(&b, &P1, &to_name, &R1), 0);
    CTRL("ctrl_demonitor_p_pid", hc_ctrl_enc_demonitor_p(&b, &P1, &to_pid, &R1), 0);
    CTRL("ctrl_demonitor_p_name", hc_ctrl_enc_demonitor_p(&b, &P1, &to_name, &R1), 0);
    CTRL("ctrl_monitor_p_exit_pid",
         hc_ctrl_enc_monitor_p_exit(&b, watched_pid.data, watched_pid.len, &P1, &R1, noproc.data, noproc.len), 0);
    CTRL("ctrl_monitor_p_exit_name",
         hc_ctrl_enc_monitor_p_exit(&b, watched_name.data, watched_name.len, &P1, &R1, r.data, r.len), 0);
    CTRL("ctrl_unlink_id", hc_ctrl_enc_unlink_id(&b, 1, &P1, &P2), 0);
    CTRL("ctrl_unlink_id_2p40", hc_ctrl_enc_unlink_id(&b, 1ULL << 40, &P1, &P2), 0);
    CTRL("ctrl_unlink_id_max", hc_ctrl_enc_unlink_id(&b, UINT64_MAX, &P1, &P2), 0);
    {
        hc_buf id = {0};
        hc_enc_ulong(&id, 1ULL << 40);
        CTRL("ctrl_unlink_id_ack", hc_ctrl_enc_unlink_id_ack(&b, id.data, id.len, &P2, &P1), 0);
        hc_buf_free(&id);
    }
    CTRL("ctrl_alias_send", hc_ctrl_enc_alias_send(&b, &P1, &R1), 1);
    {
        /* the arg list [42, <<"hello">>] is the payload */
        hc_buf_reset(&b);
        rc = hc_ctrl_enc_spawn_request(&b, &R1, &P1, &P2, "erlang", "apply", 2, opts.data, opts.len);
        hc_buf_put_u8(&b, ETF_VERSION);
        hc_enc_list_header(&b, 2);
        hc_enc_long(&b, 42);
        hc_enc_string(&b, "hello");
        hc_enc_nil(&b);
        emit("ctrl_spawn_request", &b, rc, true);
        hc_buf_reset(&b);
        rc = hc_ctrl_enc_spawn_request(&b, &R2, &P1, &P2, "m", "f", 0, NULL, 0);
        hc_buf_put_u8(&b, ETF_VERSION);
        hc_enc_nil(&b);
        emit("ctrl_spawn_request_no_opts", &b, rc, true);
    }
    CTRL("ctrl_spawn_reply_ok", hc_ctrl_enc_spawn_reply(&b, &R1, &P1, 2, pid2.data, pid2.len), 0);
    CTRL("ctrl_spawn_reply_error", hc_ctrl_enc_spawn_reply(&b, &R1, &P1, 0, badarg.data, badarg.len), 0);
#undef CTRL
    hc_buf_free(&b);
    hc_buf_free(&r);
    hc_buf_free(&noproc);
    hc_buf_free(&watched_pid);
    hc_buf_free(&watched_name);
    hc_buf_free(&opts);
    hc_buf_free(&pid2);
    hc_buf_free(&badarg);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--check") == 0) {
        check_mode = 1;
    } else if (argc != 1) {
        fprintf(stderr, "usage: hordec-vectors [--check]\n");
        return 2;
    }
    hc_atom n1 = hc_atom_intern_cstr("vec1@host"), n2 = hc_atom_intern_cstr("vec2@host");
    P1 = (hc_pid){n1, 1, 2, 3};
    P2 = (hc_pid){n2, 0x7FFF, 0x1FFF, 0xDEADBEEFu};
    R1 = (hc_ref){n1, 3, 3, {0x3FFFF, 0xFFFFFFFFu, 7, 0, 0}};
    R2 = (hc_ref){n2, 0xDEADBEEFu, 5, {1, 2, 3, 4, 5}};
    term_vectors();
    control_vectors();
    hc_atom_table_reset();
    if (failures) {
        fprintf(stderr, "hordec-vectors: %d failure(s)\n", failures);
        return 1;
    }
    return 0;
}
