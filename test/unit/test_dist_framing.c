/* test_dist_framing.c — packet reassembly over a byte stream (hc_rbuf).
 *
 * Partial reads split at every byte (also inside the length header), many packets per read, ticks,
 * packets bigger than the first allocation, the max_packet limit, 2-byte handshake mode, and the
 * no-memmove-per-packet property: consumed packets advance `start`; memory moves only when a partial
 * packet needs room at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dist/framing.h"
#include "hordec/hc_common.h"

/* One "read" of n bytes: prepare room for all of them, copy, commit. */
static void feed(hc_rbuf *rb, const uint8_t *p, size_t n)
{
    uint8_t *dst;
    size_t room;
    assert_int_equal(hc_rbuf_prepare(rb, n ? n : 1, &dst, &room), HC_OK);
    assert_true(room >= n);
    if (n)
        memcpy(dst, p, n);
    hc_rbuf_commit(rb, n);
}

static void put_pkt(hc_buf *s, unsigned header, const uint8_t *body, size_t n)
{
    if (header == 2)
        hc_buf_put_be16(s, (uint16_t)n);
    else
        hc_buf_put_be32(s, (uint32_t)n);
    hc_buf_append(s, body, n);
}

/* A stream with ticks before, between and after packets of assorted sizes. */
typedef struct stream {
    hc_buf bytes;
    size_t count;
    size_t lens[16];
    uint8_t fill[16];
} stream;

static void make_stream(stream *st, unsigned header)
{
    static const size_t sizes[] = {0, 5, 0, 0, 1, 300, 0, 2, 1000, 0};
    memset(st, 0, sizeof *st);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t body[1000];
        memset(body, (int)(0x40 + i), sizeof body);
        put_pkt(&st->bytes, header, body, sizes[i]);
        st->lens[st->count] = sizes[i];
        st->fill[st->count] = (uint8_t)(0x40 + i);
        st->count++;
    }
}

/* Drains every complete packet and checks it against the stream; returns how many were taken. */
static size_t drain(hc_rbuf *rb, const stream *st, size_t *next)
{
    size_t got = 0;
    for (;;) {
        const uint8_t *p = NULL;
        size_t n = 12345;
        int r = hc_rbuf_next(rb, &p, &n);
        assert_true(r == 0 || r == 1);
        if (r == 0)
            return got;
        assert_true(*next < st->count);
        assert_int_equal(n, st->lens[*next]);
        for (size_t k = 0; k < n; k++)
            assert_int_equal(p[k], st->fill[*next]);
        (*next)++;
        got++;
    }
}

static void split_everywhere(unsigned header)
{
    stream st;
    make_stream(&st, header);
    for (size_t cut = 0; cut <= st.bytes.len; cut++) {
        hc_rbuf rb;
        hc_rbuf_init(&rb, header, 1 << 20);
        size_t next = 0;
        feed(&rb, st.bytes.data, cut);
        drain(&rb, &st, &next);
        feed(&rb, st.bytes.data + cut, st.bytes.len - cut);
        drain(&rb, &st, &next);
        assert_int_equal(next, st.count);
        assert_int_equal(hc_rbuf_pending(&rb), 0);
        hc_rbuf_free(&rb);
    }
    /* and one byte per read, draining after each (the length header arrives byte by byte) */
    hc_rbuf rb;
    hc_rbuf_init(&rb, header, 1 << 20);
    size_t next = 0;
    for (size_t i = 0; i < st.bytes.len; i++) {
        feed(&rb, st.bytes.data + i, 1);
        drain(&rb, &st, &next);
    }
    assert_int_equal(next, st.count);
    hc_rbuf_free(&rb);
    hc_buf_free(&st.bytes);
}

static void test_split_at_every_byte_4(void **state)
{
    (void)state;
    split_everywhere(4);
}

static void test_split_at_every_byte_2(void **state)
{
    (void)state;
    split_everywhere(2);
}

static void test_three_way_splits(void **state)
{
    (void)state;
    /* every pair of cut points over the first packets, header included */
    stream st;
    make_stream(&st, 4);
    size_t lim = 60 < st.bytes.len ? 60 : st.bytes.len;
    for (size_t a = 0; a <= lim; a++) {
        for (size_t b = a; b <= lim; b++) {
            hc_rbuf rb;
            hc_rbuf_init(&rb, 4, 1 << 20);
            size_t next = 0;
            feed(&rb, st.bytes.data, a);
            drain(&rb, &st, &next);
            feed(&rb, st.bytes.data + a, b - a);
            drain(&rb, &st, &next);
            feed(&rb, st.bytes.data + b, st.bytes.len - b);
            drain(&rb, &st, &next);
            assert_int_equal(next, st.count);
            hc_rbuf_free(&rb);
        }
    }
    hc_buf_free(&st.bytes);
}

static void test_many_packets_one_read_no_memmove(void **state)
{
    (void)state;
    enum { N = 2000 };
    hc_buf s = {0};
    for (uint32_t i = 0; i < N; i++) {
        if (i % 3 == 0)
            put_pkt(&s, 4, NULL, 0); /* tick */
        uint8_t body[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
        put_pkt(&s, 4, body, sizeof body);
    }
    hc_rbuf rb;
    hc_rbuf_init(&rb, 4, 1 << 20);
    feed(&rb, s.data, s.len);
    const uint8_t *base = rb.data;
    size_t expect_off = 0;
    uint32_t seen = 0, ticks = 0;
    for (;;) {
        const uint8_t *p;
        size_t n;
        int r = hc_rbuf_next(&rb, &p, &n);
        if (r == 0)
            break;
        assert_int_equal(r, 1);
        /* the packet is served in place: nothing moved, start just advanced */
        assert_ptr_equal(rb.data, base);
        assert_ptr_equal(p, base + expect_off + 4);
        expect_off += 4 + n;
        assert_int_equal(rb.start, expect_off);
        if (n == 0) {
            ticks++;
            continue;
        }
        assert_int_equal(n, 4);
        assert_int_equal(hc_get_be32(p), seen);
        seen++;
    }
    assert_int_equal(seen, N);
    assert_int_equal(ticks, (N + 2) / 3);
    assert_int_equal(rb.start, s.len);
    assert_int_equal(hc_rbuf_pending(&rb), 0);
    /* an empty buffer rewinds on the next prepare instead of moving anything */
    uint8_t *dst;
    size_t room;
    assert_int_equal(hc_rbuf_prepare(&rb, 16, &dst, &room), HC_OK);
    assert_int_equal(rb.start, 0);
    assert_int_equal(rb.end, 0);
    assert_ptr_equal(dst, rb.data);
    hc_rbuf_free(&rb);
    hc_buf_free(&s);
}

static void test_compacts_only_when_needed(void **state)
{
    (void)state;
    hc_rbuf rb;
    hc_rbuf_init(&rb, 4, 1 << 20);
    uint8_t *dst;
    size_t room;
    assert_int_equal(hc_rbuf_prepare(&rb, 16, &dst, &room), HC_OK);
    size_t cap = rb.cap;
    assert_true(cap >= 1024);

    /* 10 complete packets of 10 bytes and the first 9 bytes of an 11th */
    hc_buf s = {0};
    uint8_t body[10];
    for (int i = 0; i < 11; i++) {
        memset(body, i, sizeof body);
        put_pkt(&s, 4, body, sizeof body);
    }
    feed(&rb, s.data, 14 * 10 + 9);
    const uint8_t *base = rb.data;
    const uint8_t *p;
    size_t n;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(hc_rbuf_next(&rb, &p, &n), 1);
        assert_ptr_equal(p, base + 14 * i + 4);
    }
    assert_int_equal(hc_rbuf_next(&rb, &p, &n), 0);
    assert_int_equal(rb.start, 140);
    assert_int_equal(hc_rbuf_pending(&rb), 9);

    /* plenty of room at the end: no compaction */
    assert_int_equal(hc_rbuf_prepare(&rb, 16, &dst, &room), HC_OK);
    assert_int_equal(rb.start, 140);
    assert_ptr_equal(rb.data, base);
    assert_ptr_equal(dst, base + 149);
    memcpy(dst, s.data + 149, 5);
    hc_rbuf_commit(&rb, 5); /* packet 11 is complete; leave it unread for now */

    /* fill to 3 bytes short of the end with the start of a big packet */
    size_t part = cap - rb.end - 3;
    uint8_t *chunk = calloc(1, part);
    uint32_t announced = (uint32_t)(part - 4 + 50); /* 50 bytes still missing */
    chunk[0] = (uint8_t)(announced >> 24);
    chunk[1] = (uint8_t)(announced >> 16);
    chunk[2] = (uint8_t)(announced >> 8);
    chunk[3] = (uint8_t)announced;
    for (size_t k = 4; k < part; k++)
        chunk[k] = (uint8_t)k;
    assert_int_equal(hc_rbuf_prepare(&rb, 1, &dst, &room), HC_OK);
    assert_ptr_equal(rb.data, base); /* still no move */
    assert_int_equal(rb.start, 140);
    memcpy(dst, chunk, part);
    hc_rbuf_commit(&rb, part);
    assert_int_equal(hc_rbuf_next(&rb, &p, &n), 1);
    assert_ptr_equal(p, base + 144);
    assert_int_equal(n, 10);
    assert_int_equal(p[0], 10);
    assert_int_equal(hc_rbuf_next(&rb, &p, &n), 0);
    assert_int_equal(rb.start, 154);
    assert_int_equal(rb.cap - rb.end, 3);

    /* now the rest of the packet does not fit: one compaction (start back to 0, pending bytes kept), no growth */
    assert_int_equal(hc_rbuf_prepare(&rb, 16, &dst, &room), HC_OK);
    assert_int_equal(rb.start, 0);
    assert_int_equal(rb.end, part);
    assert_int_equal(rb.cap, cap);
    assert_memory_equal(rb.data, chunk, part);
    assert_true(room >= 50);
    uint8_t rest[50];
    memset(rest, 0xEE, sizeof rest);
    memcpy(dst, rest, sizeof rest);
    hc_rbuf_commit(&rb, sizeof rest);
    assert_int_equal(hc_rbuf_next(&rb, &p, &n), 1);
    assert_int_equal(n, announced);
    assert_memory_equal(p, chunk + 4, part - 4);
    assert_int_equal(p[n - 1], 0xEE);
    free(chunk);
    hc_buf_free(&s);
    hc_rbuf_free(&rb);
}

static void test_packet_larger_than_initial_buffer(void **state)
{
    (void)state;
    size_t big = 300 * 1000; /* the first allocation is 64 KiB */
    uint8_t *body = malloc(big);
    for (size_t i = 0; i < big; i++)
        body[i] = (uint8_t)(i * 7);
    hc_buf s = {0};
    put_pkt(&s, 4, (const uint8_t *)"x", 1);
    put_pkt(&s, 4, body, big);
    put_pkt(&s, 4, NULL, 0);
    hc_rbuf rb;
    hc_rbuf_init(&rb, 4, 1 << 20);
    /* socket-like reads of up to what fits, asking for 4 KiB of room each time */
    size_t off = 0, got = 0;
    while (off < s.len) {
        uint8_t *dst;
        size_t room;
        assert_int_equal(hc_rbuf_prepare(&rb, 4096, &dst, &room), HC_OK);
        size_t k = s.len - off < 4096 ? s.len - off : 4096;
        assert_true(room >= k);
        memcpy(dst, s.data + off, k);
        hc_rbuf_commit(&rb, k);
        off += k;
        const uint8_t *p;
        size_t n;
        int r;
        while ((r = hc_rbuf_next(&rb, &p, &n)) == 1) {
            if (got == 0)
                assert_int_equal(n, 1);
            else if (got == 1) {
                assert_int_equal(n, big);
                assert_memory_equal(p, body, big);
            } else
                assert_int_equal(n, 0);
            got++;
        }
        assert_int_equal(r, 0);
    }
    assert_int_equal(got, 3);
    assert_true(rb.cap >= big + 4);
    hc_rbuf_free(&rb);

    /* prepare makes room for the rest of the current packet even when asked for less */
    hc_rbuf_init(&rb, 4, 1 << 20);
    feed(&rb, s.data + 5, 4 + 10); /* header of the big packet + 10 bytes */
    uint8_t *dst;
    size_t room;
    assert_int_equal(hc_rbuf_prepare(&rb, 1, &dst, &room), HC_OK);
    assert_true(room >= big - 10);
    hc_rbuf_free(&rb);
    hc_buf_free(&s);
    free(body);
}

static void test_too_big(void **state)
{
    (void)state;
    /* 4-byte header: exactly max is fine, one more is refused as soon as the header is complete */
    hc_rbuf rb;
    hc_rbuf_init(&rb, 4, 1000);
    uint8_t hdr[4] = {0, 0, 0x03, 0xE8}; /* 1000 */
    feed(&rb, hdr, 4);
    const uint8_t *p;
    size_t n;
    assert_int_equal(hc_rbuf_next(&rb, &p, &n), 0);
    uint8_t body[1000] = {0};
    feed(&rb, body, sizeof body);
    assert_int_equal(hc_rbuf_next(&rb, &p, &n), 1);
    assert_int_equal(n, 1000);
    uint8_t hdr2[4] = {0, 0, 0x03, 0xE9}; /* 1001 */
    feed(&rb, hdr2, 3);
    assert_int_equal(hc_rbuf_next(&rb, &p, &n), 0); /* header incomplete: no verdict yet */
    feed(&rb, hdr2 + 3, 1);
    assert_int_equal(hc_rbuf_next(&rb, &p, &n), HC_ETOOBIG);
    assert_int_equal(hc_rbuf_next(&rb, &p, &n), HC_ETOOBIG); /* and stays refused */
    hc_rbuf_free(&rb);

    hc_rbuf_init(&rb, 4, 1 << 20);
    uint8_t huge[4] = {0xFF, 0xFF, 0xFF, 0xFF};
    feed(&rb, huge, 4);
    assert_int_equal(hc_rbuf_next(&rb, &p, &n), HC_ETOOBIG);
    hc_rbuf_free(&rb);

    /* 2-byte header mode with a small limit */
    hc_rbuf_init(&rb, 2, 100);
    uint8_t h2[2] = {0, 101};
    feed(&rb, h2, 2);
    assert_int_equal(hc_rbuf_next(&rb, &p, &n), HC_ETOOBIG);
    hc_rbuf_free(&rb);
}

static void test_two_byte_mode_then_four(void **state)
{
    (void)state;
    /* the handshake runs with 2-byte prefixes; after it the same buffer switches to 4 (as conn.c does)
     * and bytes that arrived in the same read are framed with the new header */
    hc_buf s = {0};
    put_pkt(&s, 2, (const uint8_t *)"sok", 3);
    put_pkt(&s, 4, (const uint8_t *)"data", 4);
    put_pkt(&s, 4, NULL, 0);
    hc_rbuf rb;
    hc_rbuf_init(&rb, 2, 0xFFFF);
    feed(&rb, s.data, s.len);
    const uint8_t *p;
    size_t n;
    assert_int_equal(hc_rbuf_next(&rb, &p, &n), 1);
    assert_int_equal(n, 3);
    assert_memory_equal(p, "sok", 3);
    rb.header = 4;
    rb.max_packet = 1 << 20;
    assert_int_equal(hc_rbuf_next(&rb, &p, &n), 1);
    assert_int_equal(n, 4);
    assert_memory_equal(p, "data", 4);
    assert_int_equal(hc_rbuf_next(&rb, &p, &n), 1);
    assert_int_equal(n, 0);
    assert_int_equal(hc_rbuf_next(&rb, &p, &n), 0);
    hc_rbuf_free(&rb);
    hc_buf_free(&s);
}

static void test_random_chunking(void **state)
{
    (void)state;
    /* 5000 packets of random sizes through random-sized reads, checking content and order */
    srand(777);
    hc_buf s = {0};
    enum { N = 5000 };
    size_t *lens = malloc(N * sizeof *lens);
    for (int i = 0; i < N; i++) {
        size_t len = (size_t)(rand() % 5 == 0 ? 0 : rand() % (i % 100 == 0 ? 70000 : 200));
        lens[i] = len;
        uint8_t *b = malloc(len ? len : 1);
        for (size_t k = 0; k < len; k++)
            b[k] = (uint8_t)(i + k);
        put_pkt(&s, 4, b, len);
        free(b);
    }
    hc_rbuf rb;
    hc_rbuf_init(&rb, 4, 1 << 20);
    size_t off = 0;
    int got = 0;
    while (off < s.len) {
        size_t want = (size_t)(rand() % 9000) + 1;
        uint8_t *dst;
        size_t room;
        assert_int_equal(hc_rbuf_prepare(&rb, 512, &dst, &room), HC_OK);
        size_t k = want < room ? want : room;
        if (k > s.len - off)
            k = s.len - off;
        memcpy(dst, s.data + off, k);
        hc_rbuf_commit(&rb, k);
        off += k;
        const uint8_t *p;
        size_t n;
        while (hc_rbuf_next(&rb, &p, &n) == 1) {
            assert_true(got < N);
            assert_int_equal(n, lens[got]);
            for (size_t j = 0; j < n; j++)
                if (p[j] != (uint8_t)(got + (int)j))
                    fail_msg("packet %d byte %zu", got, j);
            got++;
        }
    }
    assert_int_equal(got, N);
    free(lens);
    hc_rbuf_free(&rb);
    hc_buf_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_at_every_byte_4),
        cmocka_unit_test(test_split_at_every_byte_2),
        cmocka_unit_test(test_three_way_splits),
        cmocka_unit_test(test_many_packets_one_read_no_memmove),
        cmocka_unit_test(test_compacts_only_when_needed),
        cmocka_unit_test(test_packet_larger_than_initial_buffer),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_two_byte_mode_then_four),
        cmocka_unit_test(test_random_chunking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
