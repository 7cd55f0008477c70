/* test_dist_wqueue.c — the per-connection write queue through a real socket with a small send buffer,
 * so writev() writes partially, stops mid-chunk and mid-message; splice keeps order; byte accounting
 * (the backpressure signal) stays exact; write errors are reported. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "dist/wqueue.h"
#include "hordec/hc_common.h"

typedef struct sink {
    int wfd, rfd;
    hc_buf got;
} sink;

static void sink_open(sink *s, int sndbuf)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    s->wfd = sv[0];
    s->rfd = sv[1];
    assert_int_equal(setsockopt(s->wfd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
    assert_int_equal(setsockopt(s->rfd, SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof sndbuf), 0);
    assert_int_equal(fcntl(s->wfd, F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(fcntl(s->rfd, F_SETFL, O_NONBLOCK), 0);
    memset(&s->got, 0, sizeof s->got);
}

/* Reads at most `max` bytes of what is available. */
static size_t sink_read(sink *s, size_t max)
{
    size_t total = 0;
    uint8_t tmp[4096];
    while (total < max) {
        size_t want = max - total < sizeof tmp ? max - total : sizeof tmp;
        ssize_t k = read(s->rfd, tmp, want);
        if (k <= 0)
            break;
        hc_buf_append(&s->got, tmp, (size_t)k);
        total += (size_t)k;
    }
    return total;
}

static void sink_close(sink *s)
{
    close(s->wfd);
    close(s->rfd);
    hc_buf_free(&s->got);
}

/* Flushes to the end, reading in small bites between flushes; counts partial flushes. */
static int drain_all(hc_wqueue *q, sink *s, size_t expected_total)
{
    int partial = 0;
    for (int guard = 0; guard < 1000000; guard++) {
        size_t before = q->bytes;
        int rc = hc_wq_flush(q, s->wfd);
        assert_true(rc == 0 || rc == 1);
        /* accounting: what left the queue is exactly what the socket took so far */
        assert_true(q->bytes <= before);
        if (rc == 0) {
            assert_int_equal(q->bytes, 0);
            assert_null(q->head);
            assert_null(q->tail);
            break;
        }
        partial++;
        assert_true(q->bytes > 0);
        sink_read(s, 1000 + (size_t)(guard * 7919) % 5000);
    }
    while (sink_read(s, SIZE_MAX) > 0)
        ;
    (void)expected_total;
    return partial;
}

static void fill_msg(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 31 + i);
}

static void test_partial_writes(void **state)
{
    (void)state;
    sink s;
    sink_open(&s, 4096);
    hc_wqueue q;
    hc_wq_init(&q);
    hc_buf expect = {0};
    /* small messages (coalesced into shared chunks), 3-part iovecs like a data packet, and big ones
     * (own chunks) — more than 64 chunks so one writev cannot cover them all */
    uint8_t *buf = malloc(70000);
    size_t total = 0;
    for (uint32_t i = 0; i < 600; i++) {
        size_t n = i % 10 == 0 ? 17000 + (i * 37) % 50000 : 1 + (i * 131) % 900;
        fill_msg(buf, n, i);
        uint8_t hdr[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
        uint8_t ver = 131;
        struct iovec iov[3] = {{hdr, 4}, {&ver, 1}, {buf, n}};
        assert_int_equal(hc_wq_append(&q, iov, 3), HC_OK);
        hc_buf_append(&expect, hdr, 4);
        hc_buf_append(&expect, &ver, 1);
        hc_buf_append(&expect, buf, n);
        total += 5 + n;
        assert_int_equal(q.bytes, total);
    }
    int partial = drain_all(&q, &s, total);
    assert_true(partial > 10); /* the small buffer really forced partial writes */
    assert_int_equal(s.got.len, expect.len);
    assert_memory_equal(s.got.data, expect.data, expect.len);
    free(buf);
    hc_buf_free(&expect);
    hc_wq_free(&q);
    sink_close(&s);
}

static void test_append_while_partially_written(void **state)
{
    (void)state;
    sink s;
    sink_open(&s, 4096);
    hc_wqueue q;
    hc_wq_init(&q);
    hc_buf expect = {0};
    uint8_t buf[3000];
    size_t total = 0;
    srand(99);
    for (int round = 0; round < 400; round++) {
        size_t n = 1 + (size_t)(rand() % (int)sizeof buf);
        fill_msg(buf, n, (uint32_t)round);
        struct iovec iov = {buf, n};
        assert_int_equal(hc_wq_append(&q, &iov, 1), HC_OK);
        hc_buf_append(&expect, buf, n);
        total += n;
        int rc = hc_wq_flush(&q, s.wfd); /* often stops mid-chunk; the next append lands behind it */
        assert_true(rc == 0 || rc == 1);
        if (round % 3 == 0)
            sink_read(&s, (size_t)(rand() % 6000));
    }
    drain_all(&q, &s, total);
    assert_int_equal(s.got.len, expect.len);
    assert_memory_equal(s.got.data, expect.data, expect.len);
    hc_buf_free(&expect);
    hc_wq_free(&q);
    sink_close(&s);
}

static void test_splice(void **state)
{
    (void)state;
    hc_wqueue a, b, empty;
    hc_wq_init(&a);
    hc_wq_init(&b);
    hc_wq_init(&empty);
    struct iovec x = {(void *)"AAAA", 4}, y = {(void *)"BBBBBB", 6}, z = {(void *)"CC", 2};
    uint8_t *big = malloc(40000);
    memset(big, 'D', 40000);
    struct iovec d = {big, 40000};

    /* splicing an empty queue is a no-op; splicing into an empty queue moves everything */
    hc_wq_splice(&a, &empty);
    assert_null(a.head);
    assert_int_equal(a.bytes, 0);
    assert_int_equal(hc_wq_append(&b, &y, 1), HC_OK);
    assert_int_equal(hc_wq_append(&b, &d, 1), HC_OK);
    hc_wq_splice(&a, &b);
    assert_int_equal(a.bytes, 40006);
    assert_null(b.head);
    assert_null(b.tail);
    assert_int_equal(b.bytes, 0);

    /* dst with data + src with data: order is dst then src; later appends go after both */
    hc_wqueue c;
    hc_wq_init(&c);
    assert_int_equal(hc_wq_append(&c, &x, 1), HC_OK);
    hc_wq_splice(&c, &a);
    assert_int_equal(hc_wq_append(&c, &z, 1), HC_OK);
    assert_int_equal(c.bytes, 4 + 6 + 40000 + 2);
    assert_int_equal(a.bytes, 0);
    /* the emptied source is reusable */
    assert_int_equal(hc_wq_append(&a, &z, 1), HC_OK);
    assert_int_equal(a.bytes, 2);

    sink s;
    sink_open(&s, 4096);
    drain_all(&c, &s, c.bytes);
    assert_int_equal(s.got.len, 40012);
    assert_memory_equal(s.got.data, "AAAABBBBBB", 10);
    for (size_t i = 10; i < 40010; i++)
        assert_int_equal(s.got.data[i], 'D');
    assert_memory_equal(s.got.data + 40010, "CC", 2);
    sink_close(&s);
    hc_wq_free(&a);
    hc_wq_free(&c);
    free(big);
}

static void test_empty_and_zero_length(void **state)
{
    (void)state;
    sink s;
    sink_open(&s, 4096);
    hc_wqueue q;
    hc_wq_init(&q);
    assert_int_equal(hc_wq_flush(&q, s.wfd), 0);
    /* zero-length appends queue nothing, and the queue still reports empty */
    assert_int_equal(hc_wq_append(&q, NULL, 0), HC_OK);
    struct iovec none = {(void *)"", 0};
    assert_int_equal(hc_wq_append(&q, &none, 1), HC_OK);
    assert_int_equal(q.bytes, 0);
    assert_int_equal(hc_wq_flush(&q, s.wfd), 0);
    /* zero-length iovecs among others are skipped */
    struct iovec mix[3] = {{(void *)"ab", 2}, {(void *)"", 0}, {(void *)"c", 1}};
    assert_int_equal(hc_wq_append(&q, mix, 3), HC_OK);
    assert_int_equal(q.bytes, 3);
    assert_int_equal(hc_wq_flush(&q, s.wfd), 0);
    sink_read(&s, 100);
    assert_int_equal(s.got.len, 3);
    assert_memory_equal(s.got.data, "abc", 3);
    hc_wq_free(&q);
    sink_close(&s);
}

static void test_write_error(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* as the daemon does */
    sink s;
    sink_open(&s, 4096);
    hc_wqueue q;
    hc_wq_init(&q);
    struct iovec iov = {(void *)"hello", 5};
    assert_int_equal(hc_wq_append(&q, &iov, 1), HC_OK);
    close(s.rfd);
    s.rfd = -1;
    errno = 0;
    assert_int_equal(hc_wq_flush(&q, s.wfd), HC_EIO);
    assert_int_equal(errno, EPIPE);
    assert_int_equal(q.bytes, 5);                  /* nothing was lost from the accounting */
    assert_int_equal(hc_wq_flush(&q, -1), HC_EIO); /* EBADF */
    hc_wq_free(&q);
    assert_int_equal(q.bytes, 0);
    assert_null(q.head);
    close(s.wfd);
    hc_buf_free(&s.got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partial_writes), cmocka_unit_test(test_append_while_partially_written),
        cmocka_unit_test(test_splice),         cmocka_unit_test(test_empty_and_zero_length),
        cmocka_unit_test(test_write_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
