/* handshake.c — see handshake.h. Message layouts follow OTP's distribution protocol documentation
 * (the 'N' name/challenge messages of version 6, challenge reply 'r', challenge ack 'a', status 's'). */
#include "dist/handshake.h"

#include <stdio.h>
#include <string.h>

#include "dist/digest.h"
#include "dist/flags.h"

static int fail(hc_hs *hs, int code, const char *why)
{
    hs->state = HC_HS_ST_FAILED;
    hs->error = why;
    return code;
}

/* Appends one handshake packet: 2-byte big-endian length, then the body. */
static int put_packet(hc_buf *out, const hc_buf *body)
{
    if (body->len > 0xFFFF)
        return HC_ETOOBIG;
    if (hc_buf_put_be16(out, (uint16_t)body->len) || hc_buf_append(out, body->data, body->len))
        return HC_ENOMEM;
    return HC_OK;
}

static int send_simple(hc_buf *out, uint8_t tag, const void *p, size_t n)
{
    hc_buf b = {0};
    int rc = hc_buf_put_u8(&b, tag) || hc_buf_append(&b, p, n) ? HC_ENOMEM : put_packet(out, &b);
    hc_buf_free(&b);
    return rc;
}

/* A node name from the wire: non-empty, fits, has an '@', and no NUL byte (it becomes a C string: a NUL would make
 * it a different, shorter name than the one the peer sent, and the cookie check would vouch for that one). */
static int copy_name(char *dst, const uint8_t *src, size_t n)
{
    if (n == 0 || n >= HC_NODE_NAME_MAX || !memchr(src, '@', n) || memchr(src, 0, n))
        return HC_EDECODE;
    memcpy(dst, src, n);
    dst[n] = 0;
    return HC_OK;
}

int hc_hs_start_connect(hc_hs *hs, const char *our_name, const char *peer_name, const char *cookie, uint64_t flags,
                        uint32_t creation, uint32_t challenge, hc_buf *out)
{
    memset(hs, 0, sizeof *hs);
    hs->role = HC_HS_CONNECTOR;
    hs->cookie = cookie;
    hs->our_flags = flags;
    hs->our_creation = creation;
    hs->our_challenge = challenge;
    size_t n = strlen(our_name);
    if (n >= HC_NODE_NAME_MAX || strlen(peer_name) >= HC_NODE_NAME_MAX)
        return fail(hs, HC_EINVAL, "node name too long");
    memcpy(hs->our_name, our_name, n + 1);
    memcpy(hs->peer_name, peer_name, strlen(peer_name) + 1);
    hc_buf b = {0};
    int rc = hc_buf_put_u8(&b, 'N') || hc_buf_put_be64(&b, flags) || hc_buf_put_be32(&b, creation) ||
                     hc_buf_put_be16(&b, (uint16_t)n) || hc_buf_append(&b, our_name, n)
                 ? HC_ENOMEM
                 : put_packet(out, &b);
    hc_buf_free(&b);
    hs->state = HC_HS_ST_WAIT_STATUS;
    return rc;
}

void hc_hs_start_accept(hc_hs *hs, const char *our_name, const char *cookie, uint64_t flags, uint32_t creation,
                        uint32_t challenge)
{
    memset(hs, 0, sizeof *hs);
    hs->role = HC_HS_ACCEPTOR;
    hs->cookie = cookie;
    hs->our_flags = flags;
    hs->our_creation = creation;
    hs->our_challenge = challenge;
    snprintf(hs->our_name, sizeof hs->our_name, "%s", our_name);
    hs->state = HC_HS_ST_WAIT_NAME;
}

static int send_challenge(hc_hs *hs, hc_buf *out)
{
    size_t n = strlen(hs->our_name);
    hc_buf b = {0};
    int rc = hc_buf_put_u8(&b, 'N') || hc_buf_put_be64(&b, hs->our_flags) || hc_buf_put_be32(&b, hs->our_challenge) ||
                     hc_buf_put_be32(&b, hs->our_creation) || hc_buf_put_be16(&b, (uint16_t)n) ||
                     hc_buf_append(&b, hs->our_name, n)
                 ? HC_ENOMEM
                 : put_packet(out, &b);
    hc_buf_free(&b);
    return rc;
}

static int check_flags(hc_hs *hs)
{
    if ((hs->peer_flags & HC_DFLAGS_MANDATORY) != HC_DFLAGS_MANDATORY)
        return fail(hs, HC_EAUTH, "peer lacks mandatory distribution flags (needs OTP 23 or later)");
    return HC_OK;
}

/* --- acceptor --- */

static int on_name(hc_hs *hs, const uint8_t *p, size_t len)
{
    /* 'N' Flags:64 Creation:32 NameLen:16 Name */
    if (len < 15 || p[0] != 'N')
        return fail(hs, HC_EDECODE, "expected send_name 'N' (peer must be OTP 23 or later)");
    hs->peer_flags = hc_get_be64(p + 1);
    hs->peer_creation = hc_get_be32(p + 9);
    size_t n = hc_get_be16(p + 13);
    if (15 + n != len || copy_name(hs->peer_name, p + 15, n))
        return fail(hs, HC_EDECODE, "malformed node name in send_name");
    if (check_flags(hs))
        return HC_EAUTH;
    hs->state = HC_HS_ST_DECIDE;
    return HC_HS_DECIDE;
}

int hc_hs_decide(hc_hs *hs, const char *status, hc_buf *out)
{
    /* Only right after recv_name: once "alive" is out, the peer's "true"/"false" decides (a second status
     * here would put two status packets on the wire). */
    if (hs->state != HC_HS_ST_DECIDE)
        return fail(hs, HC_ESTATE, "decide called in the wrong state");
    if (send_simple(out, 's', status, strlen(status)))
        return HC_ENOMEM;
    if (strcmp(status, "alive") == 0) {
        hs->state = HC_HS_ST_WAIT_ALIVE;
        return HC_HS_MORE;
    }
    if (strcmp(status, "ok") != 0 && strcmp(status, "ok_simultaneous") != 0) {
        hs->state = HC_HS_ST_FAILED;
        hs->error = strcmp(status, "nok") == 0 ? "simultaneous connect: our own attempt wins" : "refused by status";
        return HC_HS_ABORTED;
    }
    if (send_challenge(hs, out))
        return HC_ENOMEM;
    hs->state = HC_HS_ST_WAIT_REPLY;
    return HC_HS_MORE;
}

static int on_alive_answer(hc_hs *hs, const uint8_t *p, size_t len, hc_buf *out)
{
    if (len == 5 && memcmp(p, "strue", 5) == 0) {
        if (send_challenge(hs, out))
            return HC_ENOMEM;
        hs->state = HC_HS_ST_WAIT_REPLY;
        return HC_HS_MORE;
    }
    if (len == 6 && memcmp(p, "sfalse", 6) == 0) {
        hs->state = HC_HS_ST_FAILED;
        hs->error = "peer keeps its existing connection";
        return HC_HS_ABORTED;
    }
    return fail(hs, HC_EDECODE, "expected 'strue' or 'sfalse'");
}

static int on_reply(hc_hs *hs, const uint8_t *p, size_t len, hc_buf *out)
{
    /* 'r' Challenge:32 Digest:16 */
    if (len != 21 || p[0] != 'r')
        return fail(hs, HC_EDECODE, "malformed challenge reply");
    uint8_t want[16];
    hc_dist_digest(hs->our_challenge, hs->cookie, want);
    if (memcmp(want, p + 5, 16) != 0)
        return fail(hs, HC_EAUTH, "wrong cookie");
    hs->peer_challenge = hc_get_be32(p + 1);
    uint8_t ack[16];
    hc_dist_digest(hs->peer_challenge, hs->cookie, ack);
    if (send_simple(out, 'a', ack, 16))
        return HC_ENOMEM;
    hs->state = HC_HS_ST_UP;
    return HC_HS_UP;
}

/* --- connector --- */

static int on_status(hc_hs *hs, const uint8_t *p, size_t len, hc_buf *out)
{
    if (len < 2 || p[0] != 's' || len - 1 >= sizeof hs->status || memchr(p + 1, 0, len - 1))
        return fail(hs, HC_EDECODE, "malformed status");
    memcpy(hs->status, p + 1, len - 1);
    hs->status[len - 1] = 0;
    if (strcmp(hs->status, "ok") == 0 || strcmp(hs->status, "ok_simultaneous") == 0) {
        hs->state = HC_HS_ST_WAIT_CHALLENGE;
        return HC_HS_MORE;
    }
    if (strcmp(hs->status, "alive") == 0) {
        /* The peer thinks we are still connected: we are not (we only dial when we have no link), so the
         * old connection is stale — tell it to replace it. */
        if (send_simple(out, 's', "true", 4))
            return HC_ENOMEM;
        hs->state = HC_HS_ST_WAIT_CHALLENGE;
        return HC_HS_MORE;
    }
    if (strcmp(hs->status, "nok") == 0) {
        hs->state = HC_HS_ST_FAILED;
        hs->error = "simultaneous connect: the peer's own attempt wins";
        return HC_HS_ABORTED;
    }
    if (strcmp(hs->status, "not_allowed") == 0)
        return fail(hs, HC_EAUTH, "peer does not allow a connection from this node");
    return fail(hs, HC_EAUTH, "peer refused the connection");
}

static int on_challenge(hc_hs *hs, const uint8_t *p, size_t len, hc_buf *out)
{
    /* 'N' Flags:64 Challenge:32 Creation:32 NameLen:16 Name */
    if (len < 19 || p[0] != 'N')
        return fail(hs, HC_EDECODE, "malformed challenge (peer must be OTP 23 or later)");
    hs->peer_flags = hc_get_be64(p + 1);
    hs->peer_challenge = hc_get_be32(p + 9);
    hs->peer_creation = hc_get_be32(p + 13);
    size_t n = hc_get_be16(p + 17);
    char name[HC_NODE_NAME_MAX];
    if (19 + n != len || copy_name(name, p + 19, n))
        return fail(hs, HC_EDECODE, "malformed node name in challenge");
    if (strcmp(name, hs->peer_name) != 0)
        return fail(hs, HC_EAUTH, "peer answered with another node name");
    if (check_flags(hs))
        return HC_EAUTH;
    uint8_t d[16];
    hc_dist_digest(hs->peer_challenge, hs->cookie, d);
    hc_buf b = {0};
    int rc = hc_buf_put_u8(&b, 'r') || hc_buf_put_be32(&b, hs->our_challenge) || hc_buf_append(&b, d, 16)
                 ? HC_ENOMEM
                 : put_packet(out, &b);
    hc_buf_free(&b);
    if (rc)
        return rc;
    hs->state = HC_HS_ST_WAIT_ACK;
    return HC_HS_MORE;
}

static int on_ack(hc_hs *hs, const uint8_t *p, size_t len)
{
    if (len != 17 || p[0] != 'a')
        return fail(hs, HC_EAUTH, "no challenge ack (the peer probably has another cookie)");
    uint8_t want[16];
    hc_dist_digest(hs->our_challenge, hs->cookie, want);
    if (memcmp(want, p + 1, 16) != 0)
        return fail(hs, HC_EAUTH, "wrong cookie in challenge ack");
    hs->state = HC_HS_ST_UP;
    return HC_HS_UP;
}

int hc_hs_feed(hc_hs *hs, const uint8_t *pkt, size_t len, hc_buf *out)
{
    switch (hs->state) {
    case HC_HS_ST_WAIT_NAME: return on_name(hs, pkt, len);
    case HC_HS_ST_WAIT_ALIVE: return on_alive_answer(hs, pkt, len, out);
    case HC_HS_ST_WAIT_REPLY: return on_reply(hs, pkt, len, out);
    case HC_HS_ST_WAIT_STATUS: return on_status(hs, pkt, len, out);
    case HC_HS_ST_WAIT_CHALLENGE: return on_challenge(hs, pkt, len, out);
    case HC_HS_ST_WAIT_ACK: return on_ack(hs, pkt, len);
    default: return fail(hs, HC_ESTATE, "handshake packet in an unexpected state");
    }
}
