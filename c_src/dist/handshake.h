/* handshake.h — the OTP 23+ distribution handshake as a sans-I/O state machine, both roles.
 *
 * Packets in and out are handshake packets *without* their 2-byte length prefix for input; output is
 * appended to `out` *with* the prefix, ready for the socket. The host supplies the random challenge,
 * so tests can replay the exchange byte for byte.
 *
 *   connect: send_name ─► recv_status ─► recv_challenge ─► send_challenge_reply ─► recv_challenge_ack ─► UP
 *   accept:  recv_name ─► [host decides status] ─► send_status + send_challenge ─► recv_reply ─► send_ack ─► UP */
#ifndef HORDEC_DIST_HANDSHAKE_H
#define HORDEC_DIST_HANDSHAKE_H

#include <stdbool.h>
#include <stdint.h>

#include "hordec/hc_common.h"

#define HC_NODE_NAME_MAX 1024

typedef enum { HC_HS_CONNECTOR, HC_HS_ACCEPTOR } hc_hs_role;

typedef enum {
    HC_HS_ST_WAIT_STATUS,    /* connector: name sent */
    HC_HS_ST_WAIT_CHALLENGE, /* connector */
    HC_HS_ST_WAIT_ACK,       /* connector: reply sent */
    HC_HS_ST_WAIT_NAME,      /* acceptor */
    HC_HS_ST_DECIDE,         /* acceptor: the host must call hc_hs_decide() */
    HC_HS_ST_WAIT_ALIVE,     /* acceptor: sent "alive", waiting for "true"/"false" */
    HC_HS_ST_WAIT_REPLY,     /* acceptor: challenge sent */
    HC_HS_ST_UP,
    HC_HS_ST_FAILED,
} hc_hs_state;

/* hc_hs_feed results (errors are negative HC_E* codes; `error` then says why in words). */
enum { HC_HS_MORE = 0, HC_HS_DECIDE = 1, HC_HS_UP = 2, HC_HS_ABORTED = 3 };

typedef struct hc_hs {
    hc_hs_role role;
    hc_hs_state state;
    const char *cookie; /* borrowed; outlives the handshake */
    char our_name[HC_NODE_NAME_MAX];
    uint64_t our_flags;
    uint32_t our_creation;
    uint32_t our_challenge;           /* chosen by the host before start */
    char peer_name[HC_NODE_NAME_MAX]; /* connector: the node we dialled; acceptor: from recv_name */
    uint64_t peer_flags;
    uint32_t peer_creation;
    uint32_t peer_challenge;
    char status[32]; /* connector: the status the acceptor sent */
    const char *error;
} hc_hs;

/* Starts the connector role and appends send_name to `out`. */
int hc_hs_start_connect(hc_hs *hs, const char *our_name, const char *peer_name, const char *cookie, uint64_t flags,
                        uint32_t creation, uint32_t challenge, hc_buf *out);
/* Starts the acceptor role (nothing to send until the peer names itself). */
void hc_hs_start_accept(hc_hs *hs, const char *our_name, const char *cookie, uint64_t flags, uint32_t creation,
                        uint32_t challenge);
/* Feeds one received handshake packet (length prefix stripped). */
int hc_hs_feed(hc_hs *hs, const uint8_t *pkt, size_t len, hc_buf *out);
/* Acceptor, after HC_HS_DECIDE: answer with "ok", "ok_simultaneous", "nok", "not_allowed" or "alive".
 * Returns HC_HS_MORE to go on, HC_HS_ABORTED if the status ends the handshake. */
int hc_hs_decide(hc_hs *hs, const char *status, hc_buf *out);

#endif
