/* test_runtime_hardening.c — a runtime facing hostile or broken peers over real loopback sockets (issue 9):
 *
 *  - forged handshake names from a client without the cookie create no atom and no peer entry, and a
 *    legitimate node still connects afterwards;
 *  - pending handshakes are capped per source address and in total, and connections by --max-connections;
 *  - out of descriptors, the listening socket is left alone for a moment instead of spinning, and accepting
 *    resumes once descriptors are free;
 *  - a peer that stops reading is disconnected once its output queue would pass the cap;
 *  - loop-stall statistics see a slow iteration;
 *  - a node cannot block itself. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dist/flags.h"
#include "dist/handshake.h"
#include "hordec/hc_runtime.h"
#include "runtime/rt_internal.h"

#define NODE "unit@127.0.0.1"
#define COOKIE "unitcookie"

static hc_rt *new_rt(void (*tweak)(hc_rt_config *))
{
    hc_rt_config cfg;
    hc_rt_config_defaults(&cfg);
    cfg.node_name = NODE;
    cfg.cookie = COOKIE;
    cfg.register_epmd = false;
    if (tweak)
        tweak(&cfg);
    hc_rt *rt = NULL;
    char err[256];
    assert_int_equal(hc_rt_new(&cfg, &rt, err, sizeof err), HC_OK);
    return rt;
}

static int teardown(void **state)
{
    hc_rt_free(*state);
    hc_atom_table_reset();
    return 0;
}

static int dial(const hc_rt *rt)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(hc_rt_port(rt))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0); /* the kernel completes it: backlog */
    assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    return fd;
}

static void spin(hc_rt *rt, int turns)
{
    for (int i = 0; i < turns; i++)
        hc_rt_run_once(rt, 1);
}

/* Reads one 2-byte-framed handshake packet into out (body only), running the loop meanwhile. 1 with a
 * packet, 0 if the runtime closed the socket, -1 after ~2 s without one. */
static int read_hs_packet(hc_rt *rt, int fd, hc_buf *acc, hc_buf *out)
{
    for (int i = 0; i < 2000; i++) {
        if (acc->len >= 2 && acc->len >= 2u + hc_get_be16(acc->data)) {
            size_t n = hc_get_be16(acc->data);
            hc_buf_reset(out);
            hc_buf_append(out, acc->data + 2, n);
            memmove(acc->data, acc->data + 2 + n, acc->len - 2 - n);
            acc->len -= 2 + n;
            return 1;
        }
        hc_rt_run_once(rt, 1);
        uint8_t tmp[4096];
        ssize_t k = read(fd, tmp, sizeof tmp);
        if (k == 0)
            return 0;
        if (k < 0 && errno != EAGAIN)
            return 0; /* reset */
        if (k > 0)
            hc_buf_append(acc, tmp, (size_t)k);
    }
    return -1;
}

static void write_all(int fd, const void *p, size_t n) { assert_int_equal(write(fd, p, n), (ssize_t)n); }

/* The first handshake message of a connecting node: send_name with the given name. */
static void send_name(int fd, const char *name)
{
    size_t n = strlen(name);
    hc_buf b = {0};
    hc_buf_put_be16(&b, (uint16_t)(1 + 8 + 4 + 2 + n));
    hc_buf_put_u8(&b, 'N');
    hc_buf_put_be64(&b, HC_DFLAGS_OURS & ~DFLAG_DIST_HDR_ATOM_CACHE);
    hc_buf_put_be32(&b, 1234);
    hc_buf_put_be16(&b, (uint16_t)n);
    hc_buf_append(&b, name, n);
    write_all(fd, b.data, b.len);
    hc_buf_free(&b);
}

/* A whole handshake as `name` with `cookie`: HC_HS_UP, or what went wrong. */
static int handshake(hc_rt *rt, int fd, const char *name, const char *cookie)
{
    hc_hs hs;
    hc_buf out = {0}, acc = {0}, pkt = {0};
    int rc = hc_hs_start_connect(&hs, name, NODE, cookie, HC_DFLAGS_OURS & ~DFLAG_DIST_HDR_ATOM_CACHE, 4321, 99, &out);
    assert_int_equal(rc, HC_OK);
    while (rc == HC_OK || rc == HC_HS_MORE) {
        if (out.len)
            write_all(fd, out.data, out.len);
        hc_buf_reset(&out);
        if (read_hs_packet(rt, fd, &acc, &pkt) != 1) {
            rc = HC_ENOCONN;
            break;
        }
        rc = hc_hs_feed(&hs, pkt.data, pkt.len, &out);
    }
    hc_buf_free(&out);
    hc_buf_free(&acc);
    hc_buf_free(&pkt);
    spin(rt, 5); /* the runtime sees its side up */
    return rc;
}

/* ------------------------------------------------------------------ forged names */

static void test_forged_names_leave_no_atoms_or_peers(void **state)
{
    hc_rt *rt = new_rt(NULL);
    *state = rt;
    size_t atoms = hc_atom_count(), peers = rt->peers.count;
    char name[300];
    hc_buf acc = {0}, pkt = {0};
    for (int i = 0; i < 300; i++) {
        /* 250 characters: as long as a node name can be, each one new */
        snprintf(name, sizeof name, "forged%04d_%0*d@127.0.0.1", i, 250 - 10 - 10, 0);
        int fd = dial(rt);
        send_name(fd, name);
        hc_buf_reset(&acc);
        assert_int_equal(read_hs_packet(rt, fd, &acc, &pkt), 1);
        assert_true(pkt.len == 3 && memcmp(pkt.data, "sok", 3) == 0); /* an unknown node: go on */
        assert_int_equal(read_hs_packet(rt, fd, &acc, &pkt), 1);
        assert_int_equal(pkt.data[0], 'N'); /* our challenge, which a client without the cookie cannot answer */
        close(fd);
    }
    /* Longer than an atom can be: refused before anything else happens. */
    memset(name, 'x', 280);
    strcpy(name + 280, "@127.0.0.1");
    int fd = dial(rt);
    send_name(fd, name);
    hc_buf_reset(&acc);
    assert_int_equal(read_hs_packet(rt, fd, &acc, &pkt), 1);
    assert_true(pkt.len == 12 && memcmp(pkt.data, "snot_allowed", 12) == 0);
    close(fd);
    spin(rt, 20);
    assert_int_equal(hc_atom_count(), atoms);
    assert_int_equal(rt->peers.count, peers);
    hc_rt_stats st;
    hc_rt_stats_get(rt, &st);
    assert_int_equal(st.handshakes, 0);
    /* A wrong cookie is refused, and leaves nothing either. */
    fd = dial(rt);
    assert_int_not_equal(handshake(rt, fd, "wrongcookie@127.0.0.1", "not" COOKIE), HC_HS_UP);
    close(fd);
    spin(rt, 5);
    assert_int_equal(hc_atom_count(), atoms);
    assert_int_equal(hc_atom_find("wrongcookie@127.0.0.1", 21), 0);
    /* A node that knows the cookie still gets in, and only now becomes an atom and a peer. */
    fd = dial(rt);
    assert_int_equal(handshake(rt, fd, "legit@127.0.0.1", COOKIE), HC_HS_UP);
    hc_atom legit = hc_atom_find("legit@127.0.0.1", 15);
    assert_int_not_equal(legit, 0);
    assert_true(hc_rt_is_connected(rt, legit));
    assert_int_equal(hc_atom_count(), atoms + 1);
    close(fd);
    hc_buf_free(&acc);
    hc_buf_free(&pkt);
}

/* ------------------------------------------------------------------ caps */

static void small_caps(hc_rt_config *c)
{
    c->max_handshakes_per_addr = 3;
    c->max_handshakes = 5;
    c->max_connections = 8;
}

/* True once the runtime has closed fd (EOF or reset). */
static bool closed_by_peer(hc_rt *rt, int fd)
{
    for (int i = 0; i < 200; i++) {
        uint8_t b;
        ssize_t k = read(fd, &b, 1);
        if (k == 0 || (k < 0 && errno != EAGAIN))
            return true;
        hc_rt_run_once(rt, 1);
    }
    return false;
}

static void test_pending_handshakes_are_capped_per_address(void **state)
{
    hc_rt *rt = new_rt(small_caps);
    *state = rt;
    int fds[6];
    for (int i = 0; i < 6; i++) {
        fds[i] = dial(rt);
        spin(rt, 3); /* accepted in order */
    }
    hc_rt_stats st;
    hc_rt_stats_get(rt, &st);
    assert_int_equal(st.handshakes, 3);
    assert_int_equal(st.refused_conns, 3);
    for (int i = 3; i < 6; i++)
        assert_true(closed_by_peer(rt, fds[i]));
    /* The first three are still in their handshake: one finishes, and a new connection fits again. */
    assert_int_equal(handshake(rt, fds[0], "first@127.0.0.1", COOKIE), HC_HS_UP);
    int again = dial(rt);
    spin(rt, 3);
    hc_rt_stats_get(rt, &st);
    assert_int_equal(st.handshakes, 3);
    assert_int_equal(st.refused_conns, 3);
    assert_int_equal(handshake(rt, again, "again@127.0.0.1", COOKIE), HC_HS_UP);
    for (int i = 0; i < 6; i++)
        close(fds[i]);
    close(again);
}

static void test_connections_are_capped(void **state)
{
    hc_rt *rt = new_rt(small_caps);
    *state = rt;
    int fds[10];
    char name[64];
    for (int i = 0; i < 8; i++) { /* eight authenticated peers: the cap */
        fds[i] = dial(rt);
        snprintf(name, sizeof name, "n%d@127.0.0.1", i);
        assert_int_equal(handshake(rt, fds[i], name, COOKIE), HC_HS_UP);
    }
    hc_rt_stats st;
    hc_rt_stats_get(rt, &st);
    assert_int_equal(st.connections, 8);
    assert_int_equal(st.peers, 8);
    fds[8] = dial(rt);
    assert_true(closed_by_peer(rt, fds[8]));
    hc_rt_stats_get(rt, &st);
    assert_int_equal(st.refused_conns, 1);
    /* One leaves: room for one more. */
    close(fds[0]);
    spin(rt, 10);
    hc_rt_stats_get(rt, &st);
    assert_int_equal(st.connections, 7);
    fds[9] = dial(rt);
    assert_int_equal(handshake(rt, fds[9], "n9@127.0.0.1", COOKIE), HC_HS_UP);
    for (int i = 1; i < 10; i++)
        close(fds[i]);
}

/* ------------------------------------------------------------------ descriptors exhausted */

static void test_out_of_descriptors_pauses_accepting(void **state)
{
    hc_rt *rt = new_rt(NULL);
    *state = rt;
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    lim = old;
    lim.rlim_cur = 128;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
    int client = dial(rt); /* waits in the backlog */
    int hog[128], nhog = 0;
    for (;;) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            break;
        assert_true(nhog < 128);
        hog[nhog++] = fd;
    }
    /* The listening socket is readable but accept fails: after one try it is no longer watched, and the
     * loop waits instead of coming straight back (before the fix every turn retried and logged). */
    hc_rt_run_once(rt, 0);
    assert_int_equal(rt->listen_watch.events, 0);
    assert_int_not_equal(rt->accept_timer, 0);
    hc_rt_stats st;
    hc_rt_stats_get(rt, &st);
    uint64_t refused = st.refused_conns;
    assert_true(refused >= 1);
    hc_rt_loop_stats_reset(rt);
    for (int i = 0; i < 5; i++)
        hc_rt_run_once(rt, 0);
    hc_rt_stats_get(rt, &st);
    assert_int_equal(st.refused_conns, refused); /* nothing retried within the pause */
    /* Descriptors free again: within a few pauses the waiting client is accepted and can log in. */
    for (int i = 0; i < nhog; i++)
        close(hog[i]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    for (int i = 0; i < 100 && rt->nanon == 0; i++)
        hc_rt_run_once(rt, 10);
    assert_int_equal(rt->nanon, 1);
    assert_int_equal(rt->listen_watch.events, EPOLLIN);
    assert_int_equal(handshake(rt, client, "late@127.0.0.1", COOKIE), HC_HS_UP);
    close(client);
}

/* ------------------------------------------------------------------ a peer that stops reading */

static void queue_cap(hc_rt_config *c) { c->max_queue_bytes = 4u << 20; }

static void test_peer_that_stops_reading_is_dropped_at_the_cap(void **state)
{
    hc_rt *rt = new_rt(queue_cap);
    *state = rt;
    int fd = dial(rt);
    assert_int_equal(handshake(rt, fd, "sleepy@127.0.0.1", COOKIE), HC_HS_UP);
    hc_atom sleepy = hc_atom_find("sleepy@127.0.0.1", 16);
    assert_true(hc_rt_is_connected(rt, sleepy));
    /* A pid there, and 1 MiB messages to it that nobody reads. */
    hc_pid to = {.node = sleepy, .num = 1, .serial = 0, .creation = 4321};
    hc_buf big = {0};
    uint8_t *blob = calloc(1, 1u << 20);
    hc_enc_binary(&big, blob, 1u << 20);
    free(blob);
    size_t peak = 0;
    int sent = 0;
    for (; sent < 400 && hc_rt_is_connected(rt, sleepy); sent++) {
        int rc = hc_send(rt, NULL, &to, big.data, big.len);
        hc_peer *p = rt_peer_get(rt, sleepy);
        if (p->conn && p->conn->wq.bytes > peak)
            peak = p->conn->wq.bytes;
        if (rc)
            break;
        hc_rt_run_once(rt, 0);
    }
    spin(rt, 3);
    assert_false(hc_rt_is_connected(rt, sleepy));
    assert_true(sent < 400);
    assert_true(peak <= (4u << 20) + big.len + 64); /* the cap, plus at most one message */
    hc_rt_stats st;
    hc_rt_stats_get(rt, &st);
    assert_int_equal(st.queue_overflows, 1);
    assert_int_equal(st.connections, 0);
    hc_buf_free(&big);
    close(fd);
}

/* ------------------------------------------------------------------ loop stalls, self-block */

static void slow_timer(hc_rt *rt, void *ud)
{
    (void)rt;
    (void)ud;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 15000000L);
}

static void test_loop_stats_see_a_stall(void **state)
{
    hc_rt *rt = new_rt(NULL);
    *state = rt;
    hc_rt_loop_stats s;
    hc_rt_loop_stats_reset(rt);
    spin(rt, 3);
    hc_rt_loop_stats_get(rt, &s);
    assert_int_equal(s.iterations, 3);
    assert_int_equal(s.slow_iters, 0);
    assert_int_equal(hc_timer_start(rt, 0, slow_timer, NULL, NULL), HC_OK);
    spin(rt, 3);
    hc_rt_loop_stats_get(rt, &s);
    assert_int_equal(s.slow_iters, 1);
    assert_true(s.max_iter_us >= 15000);
    assert_true(s.total_busy_us >= s.max_iter_us);
    hc_rt_loop_stats_reset(rt);
    hc_rt_loop_stats_get(rt, &s);
    assert_int_equal(s.iterations + s.max_iter_us + s.slow_iters + s.total_busy_us, 0);
}

static void test_cannot_block_itself(void **state)
{
    hc_rt *rt = new_rt(NULL);
    *state = rt;
    assert_int_equal(hc_rt_block(rt, hc_rt_node(rt)), HC_EINVAL);
    assert_int_equal(hc_rt_block(rt, hc_atom_intern_cstr("other@127.0.0.1")), HC_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_forged_names_leave_no_atoms_or_peers, teardown),
        cmocka_unit_test_teardown(test_pending_handshakes_are_capped_per_address, teardown),
        cmocka_unit_test_teardown(test_connections_are_capped, teardown),
        cmocka_unit_test_teardown(test_out_of_descriptors_pauses_accepting, teardown),
        cmocka_unit_test_teardown(test_peer_that_stops_reading_is_dropped_at_the_cap, teardown),
        cmocka_unit_test_teardown(test_loop_stats_see_a_stall, teardown),
        cmocka_unit_test_teardown(test_cannot_block_itself, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
