/* conn.h — one distribution connection: epmd look-up (when dialling), TCP connect, handshake, then
 * framed packets, write queue and tick bookkeeping. Non-blocking throughout; the runtime owns epoll
 * and calls hc_conn_handle() with the events it saw. The connection never frees itself: a close only
 * changes state, so callbacks may close it safely; the owner frees it afterwards. */
#ifndef HORDEC_DIST_CONN_H
#define HORDEC_DIST_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "dist/atom_cache.h"
#include "dist/framing.h"
#include "dist/handshake.h"
#include "dist/tls.h"
#include "dist/wqueue.h"

typedef struct hc_conn hc_conn;

typedef enum {
    HC_CONN_EPMD_CONNECTING,
    HC_CONN_EPMD_WAIT,
    HC_CONN_TCP_CONNECTING,
    HC_CONN_TLS_HANDSHAKE, /* with TLS: before the distribution handshake, which then runs inside it */
    HC_CONN_HANDSHAKE,
    HC_CONN_UP,
    HC_CONN_CLOSED,
} hc_conn_state;

typedef struct hc_conn_hooks {
    /* Acceptor: the peer named itself; return the status to answer ("ok", "nok", "alive", ...). */
    const char *(*decide)(hc_conn *c, void *ud);
    /* The handshake completed. */
    void (*up)(hc_conn *c, void *ud);
    /* A data packet (after the 4-byte length); return <0 to drop the connection (reason set by the hook
     * through hc_conn_close). */
    int (*packet)(hc_conn *c, const uint8_t *p, size_t len, void *ud);
} hc_conn_hooks;

typedef struct hc_conn_config {
    const char *our_name; /* full node name */
    const char *cookie;
    uint64_t flags;
    uint32_t creation;
    size_t max_packet;         /* larger packets drop the connection */
    uint32_t setup_timeout_ms; /* epmd + connect + handshake must finish within this */
    hc_tls_ctx *tls;           /* NULL: plain TCP; otherwise every connection is TLS (epmd stays plain) */
} hc_conn_config;

struct hc_conn {
    int fd;
    unsigned fd_gen; /* bumped whenever fd is replaced (epmd socket -> peer socket), so watchers re-register */
    hc_conn_state state;
    bool connector;
    bool aborted_quietly; /* closed by protocol rule (simultaneous connect), not an error */
    hc_hs hs;
    hc_rbuf rb;
    hc_wqueue wq;
    hc_atom_cache *ac; /* set when both sides negotiated DFLAG_DIST_HDR_ATOM_CACHE: header framing */
    hc_tls *tls;       /* the transport when cfg->tls: reads and writes go through it */
    const hc_conn_config *cfg;
    const hc_conn_hooks *hooks;
    void *ud;
    char peer[HC_NODE_NAME_MAX]; /* node name (known at once when dialling, after recv_name when accepting) */
    uint32_t addr;               /* IPv4 of the peer host, network order (connector) */
    uint64_t setup_deadline_ms;
    uint64_t last_rx_ms, last_tx_ms;
    uint64_t packets_in, packets_out, bytes_in, bytes_out;
    char close_reason[256];
    int close_code; /* HC_E* that closed it */
};

hc_conn *hc_conn_accept(int fd, const hc_conn_config *cfg, const hc_conn_hooks *hooks, void *ud, uint32_t challenge,
                        uint64_t now_ms);
/* Starts dialling `peer` ("name@host"). On immediate failure returns NULL and writes why into err. */
hc_conn *hc_conn_connect(const char *peer, const hc_conn_config *cfg, const hc_conn_hooks *hooks, void *ud,
                         uint32_t challenge, uint64_t now_ms, char *err, size_t errlen);
/* Drives the connection for the epoll events seen. */
void hc_conn_handle(hc_conn *c, uint32_t events, uint64_t now_ms);
/* Queues a data packet: ctrl is 'p' 131 Control...; msg (may be NULL) is the message term without 131.
 * On a connection with the atom cache the packet goes out in the distribution-header form. */
int hc_conn_send(hc_conn *c, const uint8_t *ctrl, size_t clen, const uint8_t *msg, size_t mlen);
/* Takes over packets framed for hc_conn_send's 'p' form before the handshake ended (4-byte length,
 * 'p', 131, Control, [131, Message] each, one per hc_wq_append); `pending` ends empty. Without the
 * atom cache they are spliced as they are; with it each is rebuilt in header form, in order. A
 * packet that does not parse is left out and counted in *dropped. HC_OK or HC_ENOMEM. */
int hc_conn_adopt(hc_conn *c, hc_wqueue *pending, size_t *dropped);
/* Writes what the socket takes; closes the connection on a write error. */
void hc_conn_flush(hc_conn *c, uint64_t now_ms);
/* Tick duty every ticktime/4: send a tick if nothing was sent for a quarter tick; close if nothing was
 * received for a whole ticktime (or the setup deadline passed). */
void hc_conn_tick(hc_conn *c, uint64_t now_ms, uint32_t ticktime_ms);
void hc_conn_close(hc_conn *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
uint32_t hc_conn_wanted_events(const hc_conn *c); /* EPOLLIN / EPOLLOUT */
void hc_conn_free(hc_conn *c);

static inline size_t hc_conn_backlog(const hc_conn *c) { return c->wq.bytes; }

#endif
