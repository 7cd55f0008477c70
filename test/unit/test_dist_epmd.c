/* test_dist_epmd.c — the epmd client: exact ALIVE2/PORT_PLEASE2 request bytes, reply parsing with
 * short and hostile replies, and registration against a fake epmd on a private port (ERL_EPMD_PORT). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "dist/epmd.h"

static void test_port_request_bytes(void **state)
{
    (void)state;
    hc_buf b = {0};
    assert_int_equal(hc_epmd_port_request(&b, "beta"), HC_OK);
    static const uint8_t want[] = {0, 5, 122, 'b', 'e', 't', 'a'};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    hc_buf_free(&b);
}

static void test_port_reply(void **state)
{
    (void)state;
    uint16_t port = 0;
    /* PORT2_RESP: 119, result 0, port 0x1234, type, proto, hi, lo, nlen, name, elen */
    static const uint8_t ok[] = {119, 0, 0x12, 0x34, 72, 0, 0, 6, 0, 5, 0, 4, 'b', 'e', 't', 'a', 0, 0};
    for (size_t n = 0; n < 4; n++)
        assert_int_equal(hc_epmd_port_reply(ok, n, &port), 0); /* more bytes needed */
    assert_int_equal(hc_epmd_port_reply(ok, 4, &port), 1);
    assert_int_equal(port, 0x1234);
    port = 0;
    assert_int_equal(hc_epmd_port_reply(ok, sizeof ok, &port), 1);
    assert_int_equal(port, 0x1234);

    static const uint8_t notfound[] = {119, 1};
    assert_int_equal(hc_epmd_port_reply(notfound, sizeof notfound, &port), HC_ENOPROC);
    static const uint8_t wrongtag[] = {121, 0, 0, 1};
    assert_int_equal(hc_epmd_port_reply(wrongtag, sizeof wrongtag, &port), HC_EDECODE);
}

/* ------------------------------------------------------------------ fake epmd */

typedef struct fake {
    int lfd;
    uint16_t port;
    uint8_t reply[8];
    size_t reply_len;
    uint8_t req[512];
    size_t req_len;
    int close_after_reply; /* hang up at once instead of holding the registration open */
} fake;

static void *fake_main(void *arg)
{
    fake *f = arg;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    /* read the 2-byte length and the request */
    size_t got = 0, want = 2;
    while (got < want && got < sizeof f->req) {
        ssize_t k = read(fd, f->req + got, want - got);
        if (k <= 0)
            break;
        got += (size_t)k;
        if (got == 2)
            want = 2 + (size_t)((f->req[0] << 8) | f->req[1]);
    }
    f->req_len = got;
    if (write(fd, f->reply, f->reply_len) != (ssize_t)f->reply_len)
        perror("fake epmd write");
    /* keep the registration socket open until the client closes it */
    char c;
    while (!f->close_after_reply && read(fd, &c, 1) > 0)
        ;
    close(fd);
    return NULL;
}

static void fake_start(fake *f, pthread_t *t)
{
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(f->lfd, 4), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&a, &len), 0);
    f->port = ntohs(a.sin_port);
    char s[16];
    snprintf(s, sizeof s, "%u", f->port);
    setenv("ERL_EPMD_PORT", s, 1);
    assert_int_equal(pthread_create(t, NULL, fake_main, f), 0);
}

static void test_register_x_resp(void **state)
{
    (void)state;
    fake f = {.reply = {118, 0, 0xDE, 0xAD, 0xBE, 0xEF}, .reply_len = 6};
    pthread_t t;
    fake_start(&f, &t);
    int fd = -1;
    uint32_t creation = 0;
    char err[256] = "";
    assert_int_equal(hc_epmd_register("hc1", 0x4321, &fd, &creation, err, sizeof err), HC_OK);
    assert_true(fd >= 0);
    assert_int_equal(creation, 0xDEADBEEFu);
    close(fd);
    pthread_join(t, NULL);
    close(f.lfd);
    /* ALIVE2_REQ: len, 120, port, 72 (hidden), 0 (tcp), highest 6, lowest 5, nlen, name, elen 0 */
    static const uint8_t want[] = {0, 16, 120, 0x43, 0x21, 72, 0, 0, 6, 0, 5, 0, 3, 'h', 'c', '1', 0, 0};
    assert_int_equal(f.req_len, sizeof want);
    assert_memory_equal(f.req, want, sizeof want);
}

static void test_register_old_resp_and_refusal(void **state)
{
    (void)state;
    {
        fake f = {.reply = {121, 0, 0x00, 0x03}, .reply_len = 4}; /* ALIVE2_RESP: 16-bit creation */
        pthread_t t;
        fake_start(&f, &t);
        int fd = -1;
        uint32_t creation = 0;
        char err[256] = "";
        assert_int_equal(hc_epmd_register("hc2", 1, &fd, &creation, err, sizeof err), HC_OK);
        assert_int_equal(creation, 3);
        close(fd);
        pthread_join(t, NULL);
        close(f.lfd);
    }
    {
        fake f = {.reply = {118, 1, 0, 0, 0, 0}, .reply_len = 6}; /* name taken */
        pthread_t t;
        fake_start(&f, &t);
        int fd = -1;
        uint32_t creation = 0;
        char err[256] = "";
        assert_int_equal(hc_epmd_register("taken", 1, &fd, &creation, err, sizeof err), HC_EEXIST);
        assert_non_null(strstr(err, "taken"));
        pthread_join(t, NULL);
        close(f.lfd);
    }
    {
        fake f = {.reply = {118, 0, 0xDE}, .reply_len = 3, .close_after_reply = 1}; /* truncated, then EOF */
        pthread_t t;
        fake_start(&f, &t);
        int fd = -1;
        uint32_t creation = 0;
        char err[256] = "";
        assert_int_equal(hc_epmd_register("hc3", 1, &fd, &creation, err, sizeof err), HC_EIO);
        assert_true(strlen(err) > 0);
        pthread_join(t, NULL);
        close(f.lfd);
    }
    unsetenv("ERL_EPMD_PORT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_port_request_bytes),
        cmocka_unit_test(test_port_reply),
        cmocka_unit_test(test_register_x_resp),
        cmocka_unit_test(test_register_old_resp_and_refusal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
