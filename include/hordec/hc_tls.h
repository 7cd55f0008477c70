/* hc_tls.h — TLS for Erlang distribution (what `-proto_dist inet_tls` is to the BEAM).
 *
 * A runtime created with hc_rt_config.tls set speaks distribution over TLS only, in both roles: it
 * dials peers with TLS (epmd stays plain, as in OTP) and accepts TLS connections, refusing plain-TCP
 * ones (and a plain runtime refuses TLS ones), each with a log line that says why. The distribution
 * handshake and the cookie check run inside TLS, unchanged; only its packets get 4-byte length
 * prefixes, as inet_tls_dist's do.
 *
 * The two sides mirror an ssl_dist_optfile's `{server, [...]}` (used when a peer connects to us) and
 * `{client, [...]}` (used when we connect to a peer). Files are read and checked by hc_rt_new(), which
 * fails with a message naming the file and the problem; the strings are not kept afterwards. */
#ifndef HORDEC_HC_TLS_H
#define HORDEC_HC_TLS_H

#include <stdbool.h>

#include "hordec/hc_export.h"

HC_BEGIN_DECLS

typedef enum hc_tls_version {
    HC_TLS_VERSION_DEFAULT = 0, /* OpenSSL's bound */
    HC_TLS_V1_2 = 0x0303,
    HC_TLS_V1_3 = 0x0304,
} hc_tls_version;

typedef struct hc_tls_side {
    const char *certfile;      /* PEM: our certificate, then any intermediates; NULL: none */
    const char *keyfile;       /* PEM private key; NULL: it is in certfile */
    const char *password;      /* of an encrypted keyfile; NULL: not encrypted */
    const char *cacertfile;    /* PEM: the CA certificates a peer's certificate must chain to */
    bool verify_peer;          /* verify_peer; false is verify_none (no certificate is checked) */
    bool fail_if_no_peer_cert; /* server side: refuse a client that sends no certificate */
    /* Client side, with verify_peer: the server's certificate must name this host. NULL: the host part
     * of the node name dialled (as ssl does for the host it connects to). */
    const char *server_name;
    bool no_host_check;              /* client side: server_name_indication disable */
    hc_tls_version min_version;      /* versions: the lowest and highest allowed */
    hc_tls_version max_version;      /* (HC_TLS_VERSION_DEFAULT: OpenSSL's) */
    bool allow_legacy_renegotiation; /* secure_renegotiate false */
    bool depth_set;                  /* depth given: at most `depth` intermediate CAs above a peer's */
    int depth;                       /* certificate (Erlang's meaning); otherwise OpenSSL's default */
} hc_tls_side;

typedef struct hc_tls_config {
    hc_tls_side server; /* when a peer connects to us */
    hc_tls_side client; /* when we connect to a peer */
} hc_tls_config;

HC_END_DECLS

#endif
