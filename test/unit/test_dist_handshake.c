/* test_dist_handshake.c — the sans-I/O OTP 23+ handshake, both roles.
 *
 * The two roles are driven against each other in memory (bytes out of one, 2-byte prefix stripped, fed
 * into the other), every status path is exercised, the exact bytes of each message are compared with
 * hand-built ones (digests from BEAM-computed vectors, see test_dist_digest.c), and malformed packets
 * are fed in every state: they must fail with an error code, never crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dist/flags.h"
#include "dist/handshake.h"

#define COOKIE "secret"
#define CONN_NAME "alpha@host1"
#define ACC_NAME "beta@host2"
#define CONN_CHALLENGE 4294967295u /* digest("secret", 4294967295) = 5DFD18... (BEAM-computed) */
#define ACC_CHALLENGE 123456789u   /* digest("secret", 123456789) = B2DC76... (BEAM-computed) */
#define CONN_CREATION 0x11223344u
#define ACC_CREATION 0x55667788u
#define CONN_FLAGS (HC_DFLAGS_OURS)
#define ACC_FLAGS (HC_DFLAGS_OURS | DFLAG_PUBLISHED | 0x1000000000ULL)

static const uint8_t DIGEST_CONN_CH[16] = {0x5D, 0xFD, 0x18, 0x1E, 0x69, 0xAA, 0x58, 0x7C,
                                           0xC8, 0x12, 0xEB, 0x33, 0x3E, 0x65, 0x36, 0xB6};
static const uint8_t DIGEST_ACC_CH[16] = {0xB2, 0xDC, 0x76, 0xA3, 0x53, 0x0C, 0xD9, 0x19,
                                          0x62, 0xBA, 0x57, 0x2D, 0x5C, 0x52, 0xF4, 0x76};

/* ------------------------------------------------------------------ helpers */

/* Splits `out` (a run of 2-byte-prefixed packets) into its packets; returns how many. */
static int split(const hc_buf *out, const uint8_t **pkts, size_t *lens, int max)
{
    size_t i = 0;
    int n = 0;
    while (i < out->len) {
        assert_true(out->len - i >= 2);
        size_t l = hc_get_be16(out->data + i);
        assert_true(out->len - i - 2 >= l);
        assert_true(n < max);
        pkts[n] = out->data + i + 2;
        lens[n] = l;
        n++;
        i += 2 + l;
    }
    return n;
}

/* Feeds every packet of `from` into `to`; returns the result of the last feed; `from` is emptied. */
static int deliver(hc_buf *from, hc_hs *to, hc_buf *to_out)
{
    const uint8_t *pkts[8];
    size_t lens[8];
    hc_buf copy = {0};
    assert_int_equal(hc_buf_append(&copy, from->data, from->len), HC_OK);
    hc_buf_reset(from);
    int n = split(&copy, pkts, lens, 8);
    int rc = HC_HS_MORE;
    for (int k = 0; k < n; k++) {
        rc = hc_hs_feed(to, pkts[k], lens[k], to_out);
        if (rc < 0 || rc == HC_HS_ABORTED)
            break;
    }
    hc_buf_free(&copy);
    return rc;
}

typedef struct pair {
    hc_hs c, a;
    hc_buf cout, aout;
} pair;

static void pair_start(pair *p, const char *ccookie, const char *acookie)
{
    memset(p, 0, sizeof *p);
    assert_int_equal(
        hc_hs_start_connect(&p->c, CONN_NAME, ACC_NAME, ccookie, CONN_FLAGS, CONN_CREATION, CONN_CHALLENGE, &p->cout),
        HC_OK);
    assert_int_equal(p->c.state, HC_HS_ST_WAIT_STATUS);
    hc_hs_start_accept(&p->a, ACC_NAME, acookie, ACC_FLAGS, ACC_CREATION, ACC_CHALLENGE);
    assert_int_equal(p->a.state, HC_HS_ST_WAIT_NAME);
    assert_int_equal(deliver(&p->cout, &p->a, &p->aout), HC_HS_DECIDE);
    assert_int_equal(p->a.state, HC_HS_ST_DECIDE);
    assert_int_equal(p->aout.len, 0);
}

static void pair_free(pair *p)
{
    hc_buf_free(&p->cout);
    hc_buf_free(&p->aout);
}

static void put_name_pkt(hc_buf *b, uint64_t flags, uint32_t creation, const char *name, size_t nlen_claimed)
{
    hc_buf_put_u8(b, 'N');
    hc_buf_put_be64(b, flags);
    hc_buf_put_be32(b, creation);
    hc_buf_put_be16(b, (uint16_t)nlen_claimed);
    hc_buf_append(b, name, strlen(name));
}

static void put_challenge_pkt(hc_buf *b, uint64_t flags, uint32_t challenge, uint32_t creation, const char *name,
                              size_t nlen_claimed)
{
    hc_buf_put_u8(b, 'N');
    hc_buf_put_be64(b, flags);
    hc_buf_put_be32(b, challenge);
    hc_buf_put_be32(b, creation);
    hc_buf_put_be16(b, (uint16_t)nlen_claimed);
    hc_buf_append(b, name, strlen(name));
}

/* Builds the connector in state WAIT_CHALLENGE (status "ok" already received). */
static void connector_waiting_challenge(hc_hs *c, hc_buf *out)
{
    assert_int_equal(
        hc_hs_start_connect(c, CONN_NAME, ACC_NAME, COOKIE, CONN_FLAGS, CONN_CREATION, CONN_CHALLENGE, out), HC_OK);
    assert_int_equal(hc_hs_feed(c, (const uint8_t *)"sok", 3, out), HC_HS_MORE);
    assert_int_equal(c->state, HC_HS_ST_WAIT_CHALLENGE);
    hc_buf_reset(out);
}

/* Builds the acceptor in state WAIT_REPLY (name received, "ok" decided). */
static void acceptor_waiting_reply(hc_hs *a, hc_buf *out)
{
    hc_hs_start_accept(a, ACC_NAME, COOKIE, ACC_FLAGS, ACC_CREATION, ACC_CHALLENGE);
    hc_buf b = {0};
    put_name_pkt(&b, CONN_FLAGS, CONN_CREATION, CONN_NAME, strlen(CONN_NAME));
    assert_int_equal(hc_hs_feed(a, b.data, b.len, out), HC_HS_DECIDE);
    assert_int_equal(hc_hs_decide(a, "ok", out), HC_HS_MORE);
    assert_int_equal(a->state, HC_HS_ST_WAIT_REPLY);
    hc_buf_reset(out);
    hc_buf_free(&b);
}

/* Connector that has sent its reply and waits for the ack. */
static void connector_waiting_ack(hc_hs *c, hc_buf *out)
{
    connector_waiting_challenge(c, out);
    hc_buf b = {0};
    put_challenge_pkt(&b, ACC_FLAGS, ACC_CHALLENGE, ACC_CREATION, ACC_NAME, strlen(ACC_NAME));
    assert_int_equal(hc_hs_feed(c, b.data, b.len, out), HC_HS_MORE);
    assert_int_equal(c->state, HC_HS_ST_WAIT_ACK);
    hc_buf_reset(out);
    hc_buf_free(&b);
}

static void assert_failed(const hc_hs *hs, int rc)
{
    assert_true(rc < 0);
    assert_int_equal(hs->state, HC_HS_ST_FAILED);
    assert_non_null(hs->error);
    assert_true(strlen(hs->error) > 0);
}

/* ------------------------------------------------------------------ full runs */

static void run_to_up(const char *status)
{
    pair p;
    pair_start(&p, COOKIE, COOKIE);
    assert_string_equal(p.a.peer_name, CONN_NAME);
    assert_true(p.a.peer_flags == CONN_FLAGS);
    assert_int_equal(p.a.peer_creation, CONN_CREATION);

    assert_int_equal(hc_hs_decide(&p.a, status, &p.aout), HC_HS_MORE);
    assert_int_equal(p.a.state, HC_HS_ST_WAIT_REPLY);
    /* status and challenge: two packets in one output */
    assert_int_equal(deliver(&p.aout, &p.c, &p.cout), HC_HS_MORE);
    assert_string_equal(p.c.status, status);
    assert_int_equal(p.c.state, HC_HS_ST_WAIT_ACK);
    assert_int_equal(p.c.peer_challenge, ACC_CHALLENGE);
    assert_int_equal(p.c.peer_creation, ACC_CREATION);
    assert_true(p.c.peer_flags == ACC_FLAGS);

    assert_int_equal(deliver(&p.cout, &p.a, &p.aout), HC_HS_UP);
    assert_int_equal(p.a.state, HC_HS_ST_UP);
    assert_int_equal(p.a.peer_challenge, CONN_CHALLENGE);

    assert_int_equal(deliver(&p.aout, &p.c, &p.cout), HC_HS_UP);
    assert_int_equal(p.c.state, HC_HS_ST_UP);
    assert_int_equal(p.cout.len, 0);
    assert_string_equal(p.c.peer_name, ACC_NAME);
    assert_string_equal(p.c.our_name, CONN_NAME);
    assert_string_equal(p.a.our_name, ACC_NAME);

    /* Nothing more is accepted once up. */
    assert_int_equal(hc_hs_feed(&p.c, (const uint8_t *)"a", 1, &p.cout), HC_ESTATE);
    assert_int_equal(hc_hs_feed(&p.a, (const uint8_t *)"a", 1, &p.aout), HC_ESTATE);
    pair_free(&p);
}

static void test_up_ok(void **state)
{
    (void)state;
    run_to_up("ok");
}

static void test_up_ok_simultaneous(void **state)
{
    (void)state;
    run_to_up("ok_simultaneous");
}

static void test_alive_true(void **state)
{
    (void)state;
    pair p;
    pair_start(&p, COOKIE, COOKIE);
    assert_int_equal(hc_hs_decide(&p.a, "alive", &p.aout), HC_HS_MORE);
    assert_int_equal(p.a.state, HC_HS_ST_WAIT_ALIVE);
    static const uint8_t alive[] = {0, 6, 's', 'a', 'l', 'i', 'v', 'e'};
    assert_int_equal(p.aout.len, sizeof alive); /* no challenge yet */
    assert_memory_equal(p.aout.data, alive, sizeof alive);

    assert_int_equal(deliver(&p.aout, &p.c, &p.cout), HC_HS_MORE);
    assert_int_equal(p.c.state, HC_HS_ST_WAIT_CHALLENGE);
    static const uint8_t strue[] = {0, 5, 's', 't', 'r', 'u', 'e'};
    assert_int_equal(p.cout.len, sizeof strue);
    assert_memory_equal(p.cout.data, strue, sizeof strue);

    assert_int_equal(deliver(&p.cout, &p.a, &p.aout), HC_HS_MORE);
    assert_int_equal(p.a.state, HC_HS_ST_WAIT_REPLY);
    assert_int_equal(deliver(&p.aout, &p.c, &p.cout), HC_HS_MORE);
    assert_int_equal(deliver(&p.cout, &p.a, &p.aout), HC_HS_UP);
    assert_int_equal(deliver(&p.aout, &p.c, &p.cout), HC_HS_UP);
    pair_free(&p);
}

static void test_alive_false(void **state)
{
    (void)state;
    pair p;
    pair_start(&p, COOKIE, COOKIE);
    assert_int_equal(hc_hs_decide(&p.a, "alive", &p.aout), HC_HS_MORE);
    hc_buf_reset(&p.aout);
    assert_int_equal(hc_hs_feed(&p.a, (const uint8_t *)"sfalse", 6, &p.aout), HC_HS_ABORTED);
    assert_int_equal(p.a.state, HC_HS_ST_FAILED);
    assert_int_equal(p.aout.len, 0); /* no challenge */
    pair_free(&p);
}

static void test_alive_garbage_answer(void **state)
{
    (void)state;
    static const char *bad[] = {"strue!", "sfals", "xtrue", "s", "", "sTRUE", "sok"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pair p;
        pair_start(&p, COOKIE, COOKIE);
        assert_int_equal(hc_hs_decide(&p.a, "alive", &p.aout), HC_HS_MORE);
        hc_buf_reset(&p.aout);
        int rc = hc_hs_feed(&p.a, (const uint8_t *)bad[i], strlen(bad[i]), &p.aout);
        assert_failed(&p.a, rc);
        assert_int_equal(p.aout.len, 0);
        pair_free(&p);
    }
}

static void test_nok(void **state)
{
    (void)state;
    pair p;
    pair_start(&p, COOKIE, COOKIE);
    assert_int_equal(hc_hs_decide(&p.a, "nok", &p.aout), HC_HS_ABORTED);
    assert_int_equal(p.a.state, HC_HS_ST_FAILED);
    static const uint8_t nok[] = {0, 4, 's', 'n', 'o', 'k'};
    assert_int_equal(p.aout.len, sizeof nok); /* the status goes out, no challenge */
    assert_memory_equal(p.aout.data, nok, sizeof nok);
    assert_int_equal(deliver(&p.aout, &p.c, &p.cout), HC_HS_ABORTED);
    assert_int_equal(p.c.state, HC_HS_ST_FAILED);
    assert_non_null(p.c.error);
    assert_int_equal(p.cout.len, 0);
    pair_free(&p);
}

static void test_not_allowed(void **state)
{
    (void)state;
    pair p;
    pair_start(&p, COOKIE, COOKIE);
    assert_int_equal(hc_hs_decide(&p.a, "not_allowed", &p.aout), HC_HS_ABORTED);
    assert_int_equal(p.a.state, HC_HS_ST_FAILED);
    int rc = deliver(&p.aout, &p.c, &p.cout);
    assert_int_equal(rc, HC_EAUTH);
    assert_failed(&p.c, rc);
    pair_free(&p);
}

static void test_unknown_status_on_connector(void **state)
{
    (void)state;
    static const char *bad[] = {
        "sbogus", "sOK", "s", "", "xok", "sok_simultaneousX", "s0123456789012345678901234567890123456789"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hc_hs c;
        hc_buf out = {0};
        assert_int_equal(
            hc_hs_start_connect(&c, CONN_NAME, ACC_NAME, COOKIE, CONN_FLAGS, CONN_CREATION, CONN_CHALLENGE, &out),
            HC_OK);
        hc_buf_reset(&out);
        int rc = hc_hs_feed(&c, (const uint8_t *)bad[i], strlen(bad[i]), &out);
        assert_failed(&c, rc);
        assert_int_equal(out.len, 0);
        hc_buf_free(&out);
    }
}

static void test_wrong_cookie_acceptor(void **state)
{
    (void)state;
    pair p;
    pair_start(&p, "cookie-one", "cookie-two");
    assert_int_equal(hc_hs_decide(&p.a, "ok", &p.aout), HC_HS_MORE);
    assert_int_equal(deliver(&p.aout, &p.c, &p.cout), HC_HS_MORE);
    int rc = deliver(&p.cout, &p.a, &p.aout);
    assert_int_equal(rc, HC_EAUTH);
    assert_failed(&p.a, rc);
    assert_int_equal(p.aout.len, 0); /* no ack for a wrong digest */
    pair_free(&p);
}

static void test_wrong_ack_connector(void **state)
{
    (void)state;
    /* correct ack first, as the control */
    {
        hc_hs c;
        hc_buf out = {0};
        connector_waiting_ack(&c, &out);
        uint8_t ack[17] = {'a'};
        memcpy(ack + 1, DIGEST_CONN_CH, 16);
        assert_int_equal(hc_hs_feed(&c, ack, sizeof ack, &out), HC_HS_UP);
        hc_buf_free(&out);
    }
    /* one flipped bit anywhere in the digest */
    for (int bit = 0; bit < 128; bit += 7) {
        hc_hs c;
        hc_buf out = {0};
        connector_waiting_ack(&c, &out);
        uint8_t ack[17] = {'a'};
        memcpy(ack + 1, DIGEST_CONN_CH, 16);
        ack[1 + bit / 8] ^= (uint8_t)(1u << (bit % 8));
        int rc = hc_hs_feed(&c, ack, sizeof ack, &out);
        assert_int_equal(rc, HC_EAUTH);
        assert_failed(&c, rc);
        hc_buf_free(&out);
    }
    /* the digest of the wrong challenge (the acceptor's own) */
    {
        hc_hs c;
        hc_buf out = {0};
        connector_waiting_ack(&c, &out);
        uint8_t ack[17] = {'a'};
        memcpy(ack + 1, DIGEST_ACC_CH, 16);
        assert_int_equal(hc_hs_feed(&c, ack, sizeof ack, &out), HC_EAUTH);
        hc_buf_free(&out);
    }
    /* wrong length / tag */
    static const size_t lens[] = {0, 1, 16, 18};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        hc_hs c;
        hc_buf out = {0};
        connector_waiting_ack(&c, &out);
        uint8_t ack[18] = {'a'};
        memcpy(ack + 1, DIGEST_CONN_CH, 16);
        assert_failed(&c, hc_hs_feed(&c, ack, lens[i], &out));
        hc_buf_free(&out);
    }
    {
        hc_hs c;
        hc_buf out = {0};
        connector_waiting_ack(&c, &out);
        uint8_t ack[17] = {'A'};
        memcpy(ack + 1, DIGEST_CONN_CH, 16);
        assert_failed(&c, hc_hs_feed(&c, ack, sizeof ack, &out));
        hc_buf_free(&out);
    }
}

/* ------------------------------------------------------------------ exact bytes */

static void test_bytes_send_name(void **state)
{
    (void)state;
    hc_hs c;
    hc_buf out = {0};
    assert_int_equal(hc_hs_start_connect(&c, "ab@c", "x@y", COOKIE, 0x0102030405060708ULL, 0xA1B2C3D4u, 9, &out),
                     HC_OK);
    static const uint8_t want[] = {0,    19,   'N',  0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                                   0xA1, 0xB2, 0xC3, 0xD4, 0,    4,    'a',  'b',  '@',  'c'};
    assert_int_equal(out.len, sizeof want);
    assert_memory_equal(out.data, want, sizeof want);
    hc_buf_free(&out);
}

static void test_bytes_status_and_challenge(void **state)
{
    (void)state;
    hc_hs a;
    hc_buf out = {0};
    hc_hs_start_accept(&a, "zz@q", COOKIE, 0x1122334455667788ULL, 0x0A0B0C0Du, 0xDEADBEEFu);
    hc_buf b = {0};
    put_name_pkt(&b, HC_DFLAGS_MANDATORY, 1, "ab@c", 4);
    assert_int_equal(hc_hs_feed(&a, b.data, b.len, &out), HC_HS_DECIDE);
    assert_int_equal(hc_hs_decide(&a, "ok", &out), HC_HS_MORE);
    static const uint8_t want[] = {0,    3,    's',  'o',  'k',                                      /* status */
                                   0,    23,   'N',  0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, /* flags */
                                   0xDE, 0xAD, 0xBE, 0xEF,                                           /* challenge */
                                   0x0A, 0x0B, 0x0C, 0x0D,                                           /* creation */
                                   0,    4,    'z',  'z',  '@',  'q'};
    assert_int_equal(out.len, sizeof want);
    assert_memory_equal(out.data, want, sizeof want);
    hc_buf_free(&out);
    hc_buf_free(&b);
}

static void test_bytes_reply_and_ack(void **state)
{
    (void)state;
    /* connector: reply = 'r', our challenge, digest(cookie, acceptor's challenge) */
    hc_hs c;
    hc_buf out = {0};
    connector_waiting_challenge(&c, &out);
    hc_buf b = {0};
    put_challenge_pkt(&b, ACC_FLAGS, ACC_CHALLENGE, ACC_CREATION, ACC_NAME, strlen(ACC_NAME));
    assert_int_equal(hc_hs_feed(&c, b.data, b.len, &out), HC_HS_MORE);
    uint8_t want_reply[2 + 21] = {0, 21, 'r', 0xFF, 0xFF, 0xFF, 0xFF};
    memcpy(want_reply + 7, DIGEST_ACC_CH, 16);
    assert_int_equal(out.len, sizeof want_reply);
    assert_memory_equal(out.data, want_reply, sizeof want_reply);

    /* acceptor: fed that reply, answers 'a' + digest(cookie, connector's challenge) */
    hc_hs a;
    hc_buf aout = {0};
    acceptor_waiting_reply(&a, &aout);
    assert_int_equal(hc_hs_feed(&a, want_reply + 2, 21, &aout), HC_HS_UP);
    uint8_t want_ack[2 + 17] = {0, 17, 'a'};
    memcpy(want_ack + 3, DIGEST_CONN_CH, 16);
    assert_int_equal(aout.len, sizeof want_ack);
    assert_memory_equal(aout.data, want_ack, sizeof want_ack);
    assert_int_equal(a.peer_challenge, CONN_CHALLENGE);

    hc_buf_free(&out);
    hc_buf_free(&aout);
    hc_buf_free(&b);
}

/* ------------------------------------------------------------------ malformed input */

static void test_malformed_send_name(void **state)
{
    (void)state;
    hc_buf good = {0};
    put_name_pkt(&good, CONN_FLAGS, CONN_CREATION, CONN_NAME, strlen(CONN_NAME));
    /* truncated at every length */
    for (size_t n = 0; n < good.len; n++) {
        hc_hs a;
        hc_buf out = {0};
        hc_hs_start_accept(&a, ACC_NAME, COOKIE, ACC_FLAGS, ACC_CREATION, ACC_CHALLENGE);
        uint8_t *copy = malloc(n ? n : 1); /* exact-size copy: ASan catches any over-read */
        memcpy(copy, good.data, n);
        int rc = hc_hs_feed(&a, copy, n, &out);
        assert_int_equal(rc, HC_EDECODE);
        assert_failed(&a, rc);
        assert_int_equal(out.len, 0);
        free(copy);
        hc_buf_free(&out);
    }
    /* trailing byte */
    {
        hc_hs a;
        hc_buf out = {0};
        hc_hs_start_accept(&a, ACC_NAME, COOKIE, ACC_FLAGS, ACC_CREATION, ACC_CHALLENGE);
        hc_buf b = {0};
        put_name_pkt(&b, CONN_FLAGS, CONN_CREATION, CONN_NAME, strlen(CONN_NAME));
        hc_buf_put_u8(&b, 'x');
        assert_failed(&a, hc_hs_feed(&a, b.data, b.len, &out));
        hc_buf_free(&b);
        hc_buf_free(&out);
    }
    struct {
        char tag;
        uint64_t flags;
        const char *name;
        int delta; /* claimed length minus actual */
        int want;
    } cases[] = {
        {'n', CONN_FLAGS, CONN_NAME, 0, HC_EDECODE},     /* old-style 'n' send_name */
        {'X', CONN_FLAGS, CONN_NAME, 0, HC_EDECODE},     /* wrong tag */
        {'N', CONN_FLAGS, "alphahost1", 0, HC_EDECODE},  /* no '@' */
        {'N', CONN_FLAGS, "", 0, HC_EDECODE},            /* empty name */
        {'N', CONN_FLAGS, CONN_NAME, 1, HC_EDECODE},     /* claims one byte more */
        {'N', CONN_FLAGS, CONN_NAME, -1, HC_EDECODE},    /* claims one byte less */
        {'N', CONN_FLAGS, CONN_NAME, 60000, HC_EDECODE}, /* claims far more */
        {'N', CONN_FLAGS & ~DFLAG_EXTENDED_REFERENCES, CONN_NAME, 0, HC_EAUTH},
        {'N', CONN_FLAGS & ~DFLAG_HANDSHAKE_23, CONN_NAME, 0, HC_EAUTH},
        {'N', CONN_FLAGS & ~DFLAG_UTF8_ATOMS, CONN_NAME, 0, HC_EAUTH},
        {'N', CONN_FLAGS & ~DFLAG_BIG_CREATION, CONN_NAME, 0, HC_EAUTH},
        {'N', 0, CONN_NAME, 0, HC_EAUTH},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hc_hs a;
        hc_buf out = {0};
        hc_buf b = {0};
        hc_hs_start_accept(&a, ACC_NAME, COOKIE, ACC_FLAGS, ACC_CREATION, ACC_CHALLENGE);
        put_name_pkt(&b, cases[i].flags, CONN_CREATION, cases[i].name,
                     (size_t)((int)strlen(cases[i].name) + cases[i].delta));
        b.data[0] = (uint8_t)cases[i].tag;
        int rc = hc_hs_feed(&a, b.data, b.len, &out);
        if (rc != cases[i].want)
            fail_msg("case %zu: got %d want %d", i, rc, cases[i].want);
        assert_failed(&a, rc);
        assert_int_equal(out.len, 0);
        hc_buf_free(&b);
        hc_buf_free(&out);
    }
    /* a name as long as the protocol allows but over our limit */
    {
        char *name = malloc(HC_NODE_NAME_MAX + 10);
        memset(name, 'n', HC_NODE_NAME_MAX + 9);
        name[0] = '@';
        name[HC_NODE_NAME_MAX + 9] = 0;
        hc_hs a;
        hc_buf out = {0};
        hc_buf b = {0};
        hc_hs_start_accept(&a, ACC_NAME, COOKIE, ACC_FLAGS, ACC_CREATION, ACC_CHALLENGE);
        put_name_pkt(&b, CONN_FLAGS, CONN_CREATION, name, strlen(name));
        assert_int_equal(hc_hs_feed(&a, b.data, b.len, &out), HC_EDECODE);
        hc_buf_free(&b);
        hc_buf_free(&out);
        free(name);
    }
    /* a NUL byte inside the name (found by the fuzz target): as a C string it would be another, shorter name */
    {
        static const char name[] = "evil\0alpha@host1";
        hc_hs a;
        hc_buf out = {0};
        hc_buf b = {0};
        hc_hs_start_accept(&a, ACC_NAME, COOKIE, ACC_FLAGS, ACC_CREATION, ACC_CHALLENGE);
        put_name_pkt(&b, CONN_FLAGS, CONN_CREATION, "", sizeof name - 1); /* the header, then the bytes */
        hc_buf_append(&b, name, sizeof name - 1);
        assert_int_equal(hc_hs_feed(&a, b.data, b.len, &out), HC_EDECODE);
        assert_int_equal(out.len, 0);
        hc_buf_free(&b);
        hc_buf_free(&out);
    }
    hc_buf_free(&good);
}

static void test_malformed_challenge(void **state)
{
    (void)state;
    hc_buf good = {0};
    put_challenge_pkt(&good, ACC_FLAGS, ACC_CHALLENGE, ACC_CREATION, ACC_NAME, strlen(ACC_NAME));
    for (size_t n = 0; n < good.len; n++) {
        hc_hs c;
        hc_buf out = {0};
        connector_waiting_challenge(&c, &out);
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, good.data, n);
        int rc = hc_hs_feed(&c, copy, n, &out);
        assert_int_equal(rc, HC_EDECODE);
        assert_failed(&c, rc);
        assert_int_equal(out.len, 0);
        free(copy);
        hc_buf_free(&out);
    }
    struct {
        char tag;
        uint64_t flags;
        const char *name;
        int delta;
        int want;
    } cases[] = {
        {'n', ACC_FLAGS, ACC_NAME, 0, HC_EDECODE},
        {'r', ACC_FLAGS, ACC_NAME, 0, HC_EDECODE},
        {'N', ACC_FLAGS, "betahost2", 0, HC_EDECODE},
        {'N', ACC_FLAGS, ACC_NAME, 1, HC_EDECODE},
        {'N', ACC_FLAGS, ACC_NAME, -1, HC_EDECODE},
        {'N', ACC_FLAGS, "gamma@host2", 0, HC_EAUTH}, /* another node answered */
        {'N', ACC_FLAGS, "beta@host", 0, HC_EAUTH},
        {'N', ACC_FLAGS & ~DFLAG_MAP_TAG, ACC_NAME, 0, HC_EAUTH},
        {'N', DFLAG_PUBLISHED, ACC_NAME, 0, HC_EAUTH},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hc_hs c;
        hc_buf out = {0};
        hc_buf b = {0};
        connector_waiting_challenge(&c, &out);
        put_challenge_pkt(&b, cases[i].flags, ACC_CHALLENGE, ACC_CREATION, cases[i].name,
                          (size_t)((int)strlen(cases[i].name) + cases[i].delta));
        b.data[0] = (uint8_t)cases[i].tag;
        int rc = hc_hs_feed(&c, b.data, b.len, &out);
        if (rc != cases[i].want)
            fail_msg("case %zu: got %d want %d", i, rc, cases[i].want);
        assert_failed(&c, rc);
        assert_int_equal(out.len, 0); /* never a reply to a bad challenge */
        hc_buf_free(&b);
        hc_buf_free(&out);
    }
    hc_buf_free(&good);
}

static void test_malformed_reply(void **state)
{
    (void)state;
    uint8_t good[21] = {'r', 0xFF, 0xFF, 0xFF, 0xFF};
    memcpy(good + 5, DIGEST_ACC_CH, 16);
    for (size_t n = 0; n < sizeof good; n++) {
        hc_hs a;
        hc_buf out = {0};
        acceptor_waiting_reply(&a, &out);
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, good, n);
        assert_failed(&a, hc_hs_feed(&a, copy, n, &out));
        assert_int_equal(out.len, 0);
        free(copy);
        hc_buf_free(&out);
    }
    {
        hc_hs a;
        hc_buf out = {0};
        acceptor_waiting_reply(&a, &out);
        uint8_t longer[22];
        memcpy(longer, good, 21);
        longer[21] = 0;
        assert_int_equal(hc_hs_feed(&a, longer, sizeof longer, &out), HC_EDECODE);
        hc_buf_free(&out);
    }
    {
        hc_hs a;
        hc_buf out = {0};
        acceptor_waiting_reply(&a, &out);
        uint8_t bad[21];
        memcpy(bad, good, 21);
        bad[0] = 'a';
        assert_int_equal(hc_hs_feed(&a, bad, sizeof bad, &out), HC_EDECODE);
        hc_buf_free(&out);
    }
    {
        /* right tag and length, digest of the wrong challenge */
        hc_hs a;
        hc_buf out = {0};
        acceptor_waiting_reply(&a, &out);
        uint8_t bad[21];
        memcpy(bad, good, 21);
        memcpy(bad + 5, DIGEST_CONN_CH, 16);
        assert_int_equal(hc_hs_feed(&a, bad, sizeof bad, &out), HC_EAUTH);
        assert_int_equal(out.len, 0);
        hc_buf_free(&out);
    }
    {
        /* the control: the good reply gets us up */
        hc_hs a;
        hc_buf out = {0};
        acceptor_waiting_reply(&a, &out);
        assert_int_equal(hc_hs_feed(&a, good, sizeof good, &out), HC_HS_UP);
        hc_buf_free(&out);
    }
}

static void test_decide_wrong_state(void **state)
{
    (void)state;
    hc_hs a;
    hc_buf out = {0};
    hc_hs_start_accept(&a, ACC_NAME, COOKIE, ACC_FLAGS, ACC_CREATION, ACC_CHALLENGE);
    assert_int_equal(hc_hs_decide(&a, "ok", &out), HC_ESTATE);
    assert_int_equal(out.len, 0);

    /* after "alive" only the peer's true/false may move the state */
    pair p;
    pair_start(&p, COOKIE, COOKIE);
    assert_int_equal(hc_hs_decide(&p.a, "alive", &p.aout), HC_HS_MORE);
    hc_buf_reset(&p.aout);
    assert_int_equal(hc_hs_decide(&p.a, "ok", &p.aout), HC_ESTATE);
    assert_int_equal(p.aout.len, 0);
    pair_free(&p);

    hc_hs c;
    assert_int_equal(
        hc_hs_start_connect(&c, CONN_NAME, ACC_NAME, COOKIE, CONN_FLAGS, CONN_CREATION, CONN_CHALLENGE, &out), HC_OK);
    hc_buf_reset(&out);
    assert_int_equal(hc_hs_decide(&c, "ok", &out), HC_ESTATE);
    assert_int_equal(out.len, 0);
    hc_buf_free(&out);
}

static void test_start_connect_name_too_long(void **state)
{
    (void)state;
    char *name = malloc(HC_NODE_NAME_MAX + 1);
    memset(name, 'a', HC_NODE_NAME_MAX);
    name[10] = '@';
    name[HC_NODE_NAME_MAX] = 0;
    hc_hs c;
    hc_buf out = {0};
    assert_int_equal(hc_hs_start_connect(&c, name, ACC_NAME, COOKIE, CONN_FLAGS, 1, 1, &out), HC_EINVAL);
    assert_int_equal(c.state, HC_HS_ST_FAILED);
    assert_int_equal(out.len, 0);
    assert_int_equal(hc_hs_start_connect(&c, CONN_NAME, name, COOKIE, CONN_FLAGS, 1, 1, &out), HC_EINVAL);
    assert_int_equal(out.len, 0);
    hc_buf_free(&out);
    free(name);
}

/* Random packets into every state: only error codes or legal progress, never a crash (run under ASan). */
static void test_random_packets_every_state(void **state)
{
    (void)state;
    srand(12345);
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = (size_t)(rand() % 40);
        uint8_t *pkt = malloc(n ? n : 1);
        for (size_t k = 0; k < n; k++)
            pkt[k] = (uint8_t)rand();
        if (n && iter % 3 == 0)
            pkt[0] = (uint8_t) "Nsra"[rand() % 4]; /* plausible tags reach deeper */
        hc_hs hs;
        hc_buf out = {0};
        switch (iter % 5) {
        case 0: hc_hs_start_accept(&hs, ACC_NAME, COOKIE, ACC_FLAGS, 1, 2); break;
        case 1: acceptor_waiting_reply(&hs, &out); break;
        case 2:
            hc_hs_start_connect(&hs, CONN_NAME, ACC_NAME, COOKIE, CONN_FLAGS, 1, 2, &out);
            hc_buf_reset(&out);
            break;
        case 3: connector_waiting_challenge(&hs, &out); break;
        default: connector_waiting_ack(&hs, &out); break;
        }
        int rc = hc_hs_feed(&hs, pkt, n, &out);
        assert_true(rc <= HC_HS_ABORTED);
        if (rc < 0)
            assert_int_equal(hs.state, HC_HS_ST_FAILED);
        free(pkt);
        hc_buf_free(&out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_up_ok),
        cmocka_unit_test(test_up_ok_simultaneous),
        cmocka_unit_test(test_alive_true),
        cmocka_unit_test(test_alive_false),
        cmocka_unit_test(test_alive_garbage_answer),
        cmocka_unit_test(test_nok),
        cmocka_unit_test(test_not_allowed),
        cmocka_unit_test(test_unknown_status_on_connector),
        cmocka_unit_test(test_wrong_cookie_acceptor),
        cmocka_unit_test(test_wrong_ack_connector),
        cmocka_unit_test(test_bytes_send_name),
        cmocka_unit_test(test_bytes_status_and_challenge),
        cmocka_unit_test(test_bytes_reply_and_ack),
        cmocka_unit_test(test_malformed_send_name),
        cmocka_unit_test(test_malformed_challenge),
        cmocka_unit_test(test_malformed_reply),
        cmocka_unit_test(test_decide_wrong_state),
        cmocka_unit_test(test_start_connect_name_too_long),
        cmocka_unit_test(test_random_packets_every_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
