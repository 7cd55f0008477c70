/* test_dist_conn.c — hc_conn in the acceptor role over a socketpair, the peer played by an hc_hs
 * connector with raw reads/writes: handshake to UP, data packets framed with 4 bytes even when they
 * arrive in the same read as the last handshake packet, ticks, the max_packet limit, tick timeouts,
 * setup timeout, peer close, and a refused status. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "dist/conn.h"
#include "dist/control.h"
#include "dist/flags.h"

#define COOKIE "conncookie"

typedef struct ctx {
    const char *status; /* what decide answers */
    int ups, decides;
    int npackets;
    hc_buf packets; /* all data packets, each prefixed by its 4-byte length, as the hook saw them */
    int hook_rc;
} ctx;

static const char *on_decide(hc_conn *c, void *ud)
{
    ctx *x = ud;
    x->decides++;
    assert_string_equal(c->peer, "peer@host");
    return x->status;
}

static void on_up(hc_conn *c, void *ud)
{
    (void)c;
    ((ctx *)ud)->ups++;
}

static int on_packet(hc_conn *c, const uint8_t *p, size_t len, void *ud)
{
    (void)c;
    ctx *x = ud;
    x->npackets++;
    hc_buf_put_be32(&x->packets, (uint32_t)len);
    hc_buf_append(&x->packets, p, len);
    return x->hook_rc;
}

static const hc_conn_hooks HOOKS = {on_decide, on_up, on_packet};

typedef struct rig {
    int peer_fd;
    hc_conn *c;
    hc_conn_config cfg;
    ctx x;
    hc_hs hs;
    hc_buf in;           /* bytes the peer has read */
    uint64_t peer_flags; /* what the played peer advertises; 0 = ours without the atom cache ('p' framing) */
} rig;

static void peer_write(rig *r, const void *p, size_t n) { assert_int_equal(write(r->peer_fd, p, n), (ssize_t)n); }

static void peer_read_all(rig *r)
{
    uint8_t tmp[65536];
    for (;;) {
        ssize_t k = read(r->peer_fd, tmp, sizeof tmp);
        if (k <= 0)
            break;
        hc_buf_append(&r->in, tmp, (size_t)k);
    }
}

static void rig_open(rig *r, const char *status, uint64_t now)
{
    memset(r, 0, sizeof *r);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    r->peer_fd = sv[1];
    r->cfg = (hc_conn_config){.our_name = "hordec@host",
                              .cookie = COOKIE,
                              .flags = HC_DFLAGS_OURS,
                              .creation = 77,
                              .max_packet = 4096,
                              .setup_timeout_ms = 5000};
    r->x.status = status;
    r->c = hc_conn_accept(sv[0], &r->cfg, &HOOKS, &r->x, 424242, now);
    assert_non_null(r->c);
    assert_int_equal(r->c->state, HC_CONN_HANDSHAKE);
}

static void rig_close(rig *r)
{
    hc_conn_free(r->c);
    if (r->peer_fd >= 0)
        close(r->peer_fd);
    hc_buf_free(&r->in);
    hc_buf_free(&r->x.packets);
}

/* Feeds the 2-byte packets the peer has read into its handshake; returns the last result. */
static int peer_consume_handshake(rig *r, hc_buf *out)
{
    int rc = HC_HS_MORE;
    size_t i = 0;
    while (r->in.len - i >= 2) {
        size_t n = hc_get_be16(r->in.data + i);
        if (r->in.len - i - 2 < n)
            break;
        rc = hc_hs_feed(&r->hs, r->in.data + i + 2, n, out);
        i += 2 + n;
        if (rc < 0 || rc == HC_HS_UP || rc == HC_HS_ABORTED)
            break;
    }
    memmove(r->in.data, r->in.data + i, r->in.len - i);
    r->in.len -= i;
    return rc;
}

static void handle(rig *r, uint64_t now) { hc_conn_handle(r->c, EPOLLIN | EPOLLOUT, now); }

/* Runs the handshake; `extra` bytes are written together with the challenge reply. */
static void rig_up(rig *r, const uint8_t *extra, size_t extra_len, uint64_t now)
{
    hc_buf out = {0};
    uint64_t flags = r->peer_flags ? r->peer_flags : (HC_DFLAGS_OURS & ~DFLAG_DIST_HDR_ATOM_CACHE);
    assert_int_equal(hc_hs_start_connect(&r->hs, "peer@host", "hordec@host", COOKIE, flags, 5, 99, &out), HC_OK);
    peer_write(r, out.data, out.len);
    hc_buf_reset(&out);
    handle(r, now);
    assert_int_equal(r->x.decides, 1);
    assert_int_equal(r->c->state, HC_CONN_HANDSHAKE);
    peer_read_all(r);
    assert_int_equal(peer_consume_handshake(r, &out), HC_HS_MORE); /* status + challenge -> reply */
    assert_int_equal(r->hs.state, HC_HS_ST_WAIT_ACK);
    hc_buf_append(&out, extra, extra_len);
    peer_write(r, out.data, out.len);
    hc_buf_reset(&out);
    handle(r, now);
    assert_int_equal(r->c->state, HC_CONN_UP);
    assert_int_equal(r->x.ups, 1);
    peer_read_all(r);
    assert_int_equal(peer_consume_handshake(r, &out), HC_HS_UP);
    assert_int_equal(r->in.len, 0);
    assert_int_equal(r->hs.peer_creation, 77);
    hc_buf_free(&out);
}

static void put_data(hc_buf *b, const uint8_t *p, size_t n)
{
    hc_buf_put_be32(b, (uint32_t)n);
    hc_buf_append(b, p, n);
}

static void test_handshake_and_data(void **state)
{
    (void)state;
    rig r;
    rig_open(&r, "ok", 1000);
    /* right behind the reply: a tick, a LINK packet, a tick — framed with 4 bytes after UP */
    hc_pid a = {hc_atom_intern_cstr("peer@host"), 1, 0, 5}, b = {hc_atom_intern_cstr("hordec@host"), 2, 0, 77};
    hc_buf link = {0}, extra = {0};
    assert_int_equal(hc_ctrl_enc_link(&link, &a, &b), HC_OK);
    put_data(&extra, NULL, 0);
    put_data(&extra, link.data, link.len);
    put_data(&extra, NULL, 0);
    rig_up(&r, extra.data, extra.len, 1000);
    assert_int_equal(r.x.npackets, 1); /* ticks are not handed to the hook */
    assert_int_equal(r.x.packets.len, 4 + link.len);
    assert_memory_equal(r.x.packets.data + 4, link.data, link.len);
    assert_string_equal(r.c->peer, "peer@host");
    assert_int_equal(r.c->last_rx_ms, 1000);

    /* a packet split across reads */
    hc_buf two = {0};
    put_data(&two, link.data, link.len);
    peer_write(&r, two.data, 3);
    handle(&r, 1100);
    assert_int_equal(r.x.npackets, 1);
    peer_write(&r, two.data + 3, two.len - 3);
    handle(&r, 1200);
    assert_int_equal(r.x.npackets, 2);
    assert_int_equal(r.c->last_rx_ms, 1200);

    /* sending: 4-byte length, control, 131, message; flushed on EPOLLOUT */
    static const uint8_t ctrl[] = {'p', 131, 104, 1, 97, 99};
    static const uint8_t body[] = {106};
    assert_int_equal(hc_conn_send(r.c, ctrl, sizeof ctrl, body, sizeof body), HC_OK);
    assert_int_equal(hc_conn_send(r.c, ctrl, sizeof ctrl, NULL, 0), HC_OK);
    assert_int_equal(hc_conn_backlog(r.c), 4 + 6 + 1 + 1 + 4 + 6);
    assert_true(hc_conn_wanted_events(r.c) & EPOLLOUT);
    hc_conn_flush(r.c, 1300);
    assert_int_equal(hc_conn_backlog(r.c), 0);
    assert_int_equal(hc_conn_wanted_events(r.c), EPOLLIN);
    assert_int_equal(r.c->last_tx_ms, 1300);
    peer_read_all(&r);
    static const uint8_t want[] = {0,   0, 0, 8, 'p', 131, 104, 1,   97, 99, 131,
                                   106, 0, 0, 0, 6,   'p', 131, 104, 1,  97, 99};
    assert_int_equal(r.in.len, sizeof want);
    assert_memory_equal(r.in.data, want, sizeof want);
    hc_buf_reset(&r.in);

    hc_buf_free(&two);
    hc_buf_free(&link);
    hc_buf_free(&extra);
    rig_close(&r);
}

static void test_ticks_and_timeout(void **state)
{
    (void)state;
    rig r;
    rig_open(&r, "ok", 0);
    rig_up(&r, NULL, 0, 0);
    const uint32_t tt = 4000;
    /* quiet for less than a quarter tick: nothing sent */
    hc_conn_tick(r.c, 999, tt);
    peer_read_all(&r);
    assert_int_equal(r.in.len, 0);
    /* a quarter tick without sending: one tick (4 zero bytes) goes out */
    hc_conn_tick(r.c, 1000, tt);
    peer_read_all(&r);
    static const uint8_t tick[4] = {0, 0, 0, 0};
    assert_int_equal(r.in.len, 4);
    assert_memory_equal(r.in.data, tick, 4);
    hc_buf_reset(&r.in);
    assert_int_equal(r.c->last_tx_ms, 1000);
    /* a tick from the peer counts as traffic */
    peer_write(&r, tick, 4);
    handle(&r, 3000);
    assert_int_equal(r.c->last_rx_ms, 3000);
    assert_int_equal(r.x.npackets, 0);
    hc_conn_tick(r.c, 6999, tt);
    assert_int_equal(r.c->state, HC_CONN_UP);
    /* a whole ticktime with nothing received: closed */
    hc_conn_tick(r.c, 7000, tt);
    assert_int_equal(r.c->state, HC_CONN_CLOSED);
    assert_int_equal(r.c->close_code, HC_ETIMEOUT);
    assert_non_null(strstr(r.c->close_reason, "net_tick_timeout"));
    assert_int_equal(r.c->fd, -1);
    assert_int_equal(hc_conn_wanted_events(r.c), 0);
    assert_int_equal(hc_conn_send(r.c, tick, 1, NULL, 0), HC_ENOCONN);
    hc_conn_handle(r.c, EPOLLIN, 8000); /* harmless once closed */
    rig_close(&r);
}

static void test_too_big_packet(void **state)
{
    (void)state;
    rig r;
    rig_open(&r, "ok", 0);
    rig_up(&r, NULL, 0, 0);
    uint8_t hdr[4] = {0, 0, 0x10, 0x01}; /* 4097 > max_packet 4096 */
    peer_write(&r, hdr, 4);
    handle(&r, 10);
    assert_int_equal(r.c->state, HC_CONN_CLOSED);
    assert_int_equal(r.c->close_code, HC_ETOOBIG);
    assert_non_null(strstr(r.c->close_reason, "4097"));
    assert_int_equal(r.x.npackets, 0);
    rig_close(&r);

    /* during the handshake the limit is the 2-byte framing itself; a garbage name packet fails it */
    rig_open(&r, "ok", 0);
    static const uint8_t junk[] = {0, 3, 'x', 'y', 'z'};
    peer_write(&r, junk, sizeof junk);
    handle(&r, 10);
    assert_int_equal(r.c->state, HC_CONN_CLOSED);
    assert_int_equal(r.c->close_code, HC_EDECODE);
    assert_int_equal(r.x.decides, 0);
    rig_close(&r);
}

static void test_hook_rejects_packet(void **state)
{
    (void)state;
    rig r;
    rig_open(&r, "ok", 0);
    rig_up(&r, NULL, 0, 0);
    r.x.hook_rc = -1;
    hc_buf two = {0};
    put_data(&two, (const uint8_t *)"bad", 3);
    put_data(&two, (const uint8_t *)"never", 5);
    peer_write(&r, two.data, two.len);
    handle(&r, 10);
    assert_int_equal(r.c->state, HC_CONN_CLOSED);
    assert_int_equal(r.c->close_code, HC_EDECODE);
    assert_int_equal(r.x.npackets, 1); /* nothing after the bad packet is delivered */
    hc_buf_free(&two);
    rig_close(&r);
}

static void test_peer_closes(void **state)
{
    (void)state;
    rig r;
    rig_open(&r, "ok", 0);
    rig_up(&r, NULL, 0, 0);
    close(r.peer_fd);
    r.peer_fd = -1;
    handle(&r, 10);
    assert_int_equal(r.c->state, HC_CONN_CLOSED);
    assert_int_equal(r.c->close_code, HC_ENOCONN);
    assert_non_null(strstr(r.c->close_reason, "closed"));
    rig_close(&r);
}

static void test_refused_and_setup_timeout(void **state)
{
    (void)state;
    /* decide says "nok": the status still reaches the peer, then the connection closes quietly */
    rig r;
    rig_open(&r, "nok", 0);
    hc_buf out = {0};
    assert_int_equal(hc_hs_start_connect(&r.hs, "peer@host", "hordec@host", COOKIE, HC_DFLAGS_OURS, 5, 99, &out),
                     HC_OK);
    peer_write(&r, out.data, out.len);
    hc_buf_reset(&out);
    handle(&r, 10);
    assert_int_equal(r.c->state, HC_CONN_CLOSED);
    assert_true(r.c->aborted_quietly);
    peer_read_all(&r);
    assert_int_equal(peer_consume_handshake(&r, &out), HC_HS_ABORTED);
    hc_buf_free(&out);
    rig_close(&r);

    /* a wrong cookie on the peer's side: closed with HC_EAUTH, no ack sent */
    rig_open(&r, "ok", 0);
    assert_int_equal(hc_hs_start_connect(&r.hs, "peer@host", "hordec@host", "wrong", HC_DFLAGS_OURS, 5, 99, &out),
                     HC_OK);
    peer_write(&r, out.data, out.len);
    hc_buf_reset(&out);
    handle(&r, 10);
    peer_read_all(&r);
    assert_int_equal(peer_consume_handshake(&r, &out), HC_HS_MORE);
    peer_write(&r, out.data, out.len);
    hc_buf_reset(&out);
    handle(&r, 20);
    assert_int_equal(r.c->state, HC_CONN_CLOSED);
    assert_int_equal(r.c->close_code, HC_EAUTH);
    assert_false(r.c->aborted_quietly);
    hc_buf_free(&out);
    rig_close(&r);

    /* nobody says anything: the setup deadline closes it */
    rig_open(&r, "ok", 1000);
    hc_conn_tick(r.c, 5999, 60000);
    assert_int_equal(r.c->state, HC_CONN_HANDSHAKE);
    hc_conn_tick(r.c, 6000, 60000);
    assert_int_equal(r.c->state, HC_CONN_CLOSED);
    assert_int_equal(r.c->close_code, HC_ETIMEOUT);
    assert_non_null(strstr(r.c->close_reason, "timed out"));
    rig_close(&r);
}

static void test_connect_bad_names(void **state)
{
    (void)state;
    hc_conn_config cfg = {
        .our_name = "a@h", .cookie = "c", .flags = HC_DFLAGS_OURS, .max_packet = 1024, .setup_timeout_ms = 100};
    char err[256];
    static const char *bad[] = {"nohost", "@host", "name@"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        assert_null(hc_conn_connect(bad[i], &cfg, &HOOKS, NULL, 1, 0, err, sizeof err));
        assert_non_null(strstr(err, "not a node name"));
    }
}

/* Both sides advertise the atom cache: packets go out in header form, the hook sees 'p' form, packets
 * queued before the handshake are re-framed, and a hostile header closes with a reason. */
static void test_atom_cache_framing(void **state)
{
    (void)state;
    rig r;
    rig_open(&r, "ok", 0);
    r.peer_flags = HC_DFLAGS_OURS;
    rig_up(&r, NULL, 0, 0);
    assert_non_null(r.c->ac);
    hc_atom_cache *peer = hc_ac_new();

    /* hordec -> peer: header form, which the peer's cache turns back into the same 'p' packet */
    hc_pid a = {hc_atom_intern_cstr("peer@host"), 1, 0, 5};
    hc_buf ctrl = {0}, msg = {0}, want = {0};
    assert_int_equal(hc_ctrl_enc_send(&ctrl, &a), HC_OK);
    hc_enc_atom_cstr(&msg, "hello");
    assert_int_equal(hc_conn_send(r.c, ctrl.data, ctrl.len, msg.data, msg.len), HC_OK);
    hc_conn_flush(r.c, 10);
    peer_read_all(&r);
    assert_true(r.in.len > 6);
    assert_int_equal(r.in.data[4], 131);
    assert_int_equal(r.in.data[5], 68);
    hc_buf_append(&want, ctrl.data, ctrl.len);
    hc_buf_put_u8(&want, 131);
    hc_buf_append(&want, msg.data, msg.len);
    const uint8_t *out;
    size_t outlen;
    const char *why;
    assert_int_equal(hc_ac_normalize(peer, r.in.data + 4, r.in.len - 4, &out, &outlen, &why), HC_OK);
    assert_int_equal(outlen, want.len);
    assert_memory_equal(out, want.data, want.len);
    hc_buf_reset(&r.in);

    /* peer -> hordec: the hook gets the 'p' form */
    const struct iovec *iov;
    int n;
    assert_int_equal(hc_ac_encode(peer, ctrl.data, ctrl.len, msg.data, msg.len, &iov, &n), HC_OK);
    for (int k = 0; k < n; k++)
        peer_write(&r, iov[k].iov_base, iov[k].iov_len);
    hc_ac_commit(peer);
    handle(&r, 20);
    assert_int_equal(r.x.npackets, 1);
    assert_int_equal(r.x.packets.len, 4 + want.len);
    assert_memory_equal(r.x.packets.data + 4, want.data, want.len);

    /* packets queued in 'p' form before the handshake: re-framed in order; a tick and junk are left out */
    hc_wqueue pending;
    hc_wq_init(&pending);
    uint8_t len4[4] = {0, 0, 0, (uint8_t)want.len};
    struct iovec one[2] = {{len4, 4}, {want.data, want.len}};
    assert_int_equal(hc_wq_append(&pending, one, 2), HC_OK);
    static const uint8_t tick[4] = {0, 0, 0, 0};
    static const uint8_t junk[] = {0, 0, 0, 3, 'p', 131, 200};
    struct iovec t = {(void *)tick, 4}, j = {(void *)junk, sizeof junk};
    assert_int_equal(hc_wq_append(&pending, &t, 1), HC_OK);
    assert_int_equal(hc_wq_append(&pending, &j, 1), HC_OK);
    uint8_t len4b[4] = {0, 0, 0, (uint8_t)ctrl.len};
    struct iovec two[2] = {{len4b, 4}, {ctrl.data, ctrl.len}};
    assert_int_equal(hc_wq_append(&pending, two, 2), HC_OK);
    size_t dropped = 99;
    assert_int_equal(hc_conn_adopt(r.c, &pending, &dropped), HC_OK);
    assert_int_equal(dropped, 1);
    assert_int_equal(pending.bytes, 0);
    hc_conn_flush(r.c, 30);
    peer_read_all(&r);
    size_t first = 4 + hc_get_be32(r.in.data);
    assert_int_equal(r.in.data[4], 131);
    assert_int_equal(hc_ac_normalize(peer, r.in.data + 4, first - 4, &out, &outlen, &why), HC_OK);
    assert_memory_equal(out, want.data, want.len);
    assert_int_equal(r.in.data[first + 4], 131);
    assert_int_equal(hc_ac_normalize(peer, r.in.data + first + 4, r.in.len - first - 4, &out, &outlen, &why), HC_OK);
    assert_int_equal(outlen, ctrl.len);
    assert_memory_equal(out, ctrl.data, ctrl.len);

    /* a reference to a slot the peer never filled: closed as malformed, with the reason */
    static const uint8_t bad[] = {0, 0, 0, 9, 131, 68, 1, 0x07, 0xFF, 104, 1, 82, 0};
    peer_write(&r, bad, sizeof bad);
    handle(&r, 40);
    assert_int_equal(r.c->state, HC_CONN_CLOSED);
    assert_int_equal(r.c->close_code, HC_EDECODE);
    assert_non_null(strstr(r.c->close_reason, "empty slot"));
    assert_int_equal(r.x.npackets, 1);

    hc_ac_free(peer);
    hc_buf_free(&ctrl);
    hc_buf_free(&msg);
    hc_buf_free(&want);
    rig_close(&r);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_and_data),        cmocka_unit_test(test_atom_cache_framing),
        cmocka_unit_test(test_ticks_and_timeout),         cmocka_unit_test(test_too_big_packet),
        cmocka_unit_test(test_hook_rejects_packet),       cmocka_unit_test(test_peer_closes),
        cmocka_unit_test(test_refused_and_setup_timeout), cmocka_unit_test(test_connect_bad_names),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    hc_atom_table_reset();
    return rc;
}
