/* tls.h — the TLS transport of a distribution connection: OpenSSL, driven non-blocking by the loop.
 *
 * A connection with TLS reads and writes through hc_tls_read/hc_tls_write instead of read/writev. Both
 * return what the socket calls would (bytes, 0 at end of stream, -1 with errno EAGAIN when the call must
 * wait), so the framing above does not change; a TLS failure is -1 with errno EPROTO and a reason in
 * words from hc_tls_error(). What a call waits for is hc_tls_wants(): OpenSSL may need the socket
 * writable to read (a key update) or readable to write, which epoll must be told.
 *
 * Bytes OpenSSL already took off the socket are invisible to epoll: a reader must go on until
 * hc_tls_read says EAGAIN, or at least until hc_tls_pending() is false, before it waits again. */
#ifndef HORDEC_DIST_TLS_H
#define HORDEC_DIST_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "hordec/hc_tls.h"

typedef struct hc_tls_ctx hc_tls_ctx; /* the server and client contexts, files loaded */
typedef struct hc_tls hc_tls;         /* one connection */

/* Loads certificates and keys and checks they match. HC_OK, HC_EINVAL (bad file or option: err says
 * which) or HC_ENOMEM. */
int hc_tls_ctx_new(const hc_tls_config *cfg, hc_tls_ctx **out, char *err, size_t errlen);
void hc_tls_ctx_free(hc_tls_ctx *ctx);
/* One line describing the configuration, for the start-up log. */
const char *hc_tls_ctx_describe(const hc_tls_ctx *ctx);

/* A TLS session on the connected socket fd (not owned). `server`: we accepted the connection; otherwise
 * peer_host is the host we dialled (for SNI and the host name check). NULL when out of memory. */
hc_tls *hc_tls_new(hc_tls_ctx *ctx, int fd, bool server, const char *peer_host);
/* Sends close_notify when the session was established (best effort, never waits), then frees it. */
void hc_tls_free(hc_tls *t);

/* Advances the TLS handshake. HC_OK when it is done, 1 when it must wait (see hc_tls_wants), or a
 * negative HC_E* code with the reason in hc_tls_error(): HC_EAUTH when a certificate was refused (by
 * us or the peer), HC_ENOCONN when the peer closed, HC_EDECODE when it does not speak TLS. */
int hc_tls_handshake(hc_tls *t);

ssize_t hc_tls_read(hc_tls *t, void *buf, size_t n);
/* Writes from the first iovecs (one TLS record per call at most 16 KB; partial writes happen). A write
 * that waited must be retried with at least the bytes it was given: the write queue keeps them. */
ssize_t hc_tls_writev(hc_tls *t, const struct iovec *iov, int n);
bool hc_tls_pending(const hc_tls *t); /* decrypted or raw bytes held inside OpenSSL */

enum { HC_TLS_WANT_READ = 1, HC_TLS_WANT_WRITE = 2 };
unsigned hc_tls_wants(const hc_tls *t); /* what the last call that waited needs: HC_TLS_WANT_* */
const char *hc_tls_error(const hc_tls *t);
const char *hc_tls_version_name(const hc_tls *t); /* "TLSv1.3", ... after the handshake */

#endif
