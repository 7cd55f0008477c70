/* ssl_optfile.h — TLS settings for hordec: the ssl_dist_optfile a BEAM reads for `-ssl_dist_optfile`
 * (`[{server, [Opt...]}, {client, [Opt...]}].`), or the plain --tls-* flags.
 *
 * Options understood in both sections: certfile, keyfile, password, cacertfile, verify (verify_peer |
 * verify_none), fail_if_no_peer_cert, versions (['tlsv1.2', 'tlsv1.3']), secure_renegotiate, depth;
 * server_name_indication (a host name, or disable) in the client section. Any other option is an error
 * that names it: a setting silently ignored would leave a cluster less protected than its operator
 * believes. */
#ifndef HORDEC_DAEMON_SSL_OPTFILE_H
#define HORDEC_DAEMON_SSL_OPTFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "hordec/hc_tls.h"

#define HORDEC_TLS_MAX_STRINGS 16

/* The configuration and the strings it points to (owned). Zero-initialise; free with hordec_tls_opts_free. */
typedef struct hordec_tls_opts {
    hc_tls_config cfg;
    char *owned[HORDEC_TLS_MAX_STRINGS];
    size_t nowned;
} hordec_tls_opts;

/* Reads and checks the file (not the certificates: hc_rt_new loads those). HC_OK, or HC_EINVAL /
 * HC_EDECODE / HC_EIO / HC_ENOMEM with a message naming the file and the problem in err. */
int hordec_ssl_optfile_load(const char *path, hordec_tls_opts *o, char *err, size_t errlen);
/* The same from text (for tests); `origin` names it in messages. */
int hordec_ssl_optfile_parse(const char *text, size_t len, const char *origin, hordec_tls_opts *o, char *err,
                             size_t errlen);
/* From --tls-cert/--tls-key/--tls-ca/--tls-verify: the same certificate for both roles; verify_peer
 * (with fail_if_no_peer_cert, so authentication is mutual) unless verify is "none". key and ca may be
 * NULL; verify NULL means "peer" when a CA is given, "none" otherwise. */
int hordec_tls_from_flags(const char *cert, const char *key, const char *ca, const char *verify, hordec_tls_opts *o,
                          char *err, size_t errlen);
void hordec_tls_opts_free(hordec_tls_opts *o);

struct hordec_options;
/* The daemon's TLS settings from its parsed options. Returns 1 with *o filled when TLS is asked for, 0
 * when it is not (plain TCP), or a negative HC_E* code with a message in err. */
int hordec_tls_from_options(const struct hordec_options *opts, hordec_tls_opts *o, char *err, size_t errlen);

#endif
