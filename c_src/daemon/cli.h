/* cli.h — command-line parsing for the hordec daemon, kept apart from main() so tests can reach it. */
#ifndef HORDEC_CLI_H
#define HORDEC_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hordec/hc_log.h"

#define HORDEC_MAX_CONNECT 64
#define HORDEC_MAX_REGISTRIES 64

/* A registry replica to start with the node (--registry NAME[:unique|:duplicate]). */
typedef struct hordec_registry_arg {
    char name[256 * 4]; /* an atom: at most 255 characters of UTF-8 */
    bool duplicate;
} hordec_registry_arg;

typedef struct hordec_options {
    char node_name[1024];
    char cookie[1024];
    uint16_t port;
    uint32_t ticktime_s;
    size_t max_message_bytes;
    const char *connect[HORDEC_MAX_CONNECT];
    int nconnect;
    hc_log_level log_level;
    hordec_registry_arg registries[HORDEC_MAX_REGISTRIES];
    int nregistries;
    const char *supervisors[HORDEC_MAX_REGISTRIES]; /* --supervisor NAME (repeatable) */
    int nsupervisors;
    bool watch_stdin;      /* --watch-stdin: stop when stdin closes (the parent is gone) */
    uint16_t metrics_port; /* --metrics-port N: serve Prometheus metrics on it (0: no metrics endpoint) */
    char metrics_bind[64]; /* --metrics-bind ADDR (default 127.0.0.1) */
    /* --max-connections, --max-handshakes, --max-handshakes-per-addr, --max-peer-queue-bytes (0: the runtime's
     * default, see hc_rt_config) */
    uint32_t max_connections, max_handshakes, max_handshakes_per_addr;
    size_t max_peer_queue_bytes;
    struct hordec_args *config; /* the options read from --config files (freed by hordec_options_free) */
    /* TLS distribution: --ssl-dist-optfile FILE, or --tls-cert/--tls-key/--tls-ca/--tls-verify (NULL: not
     * given); ssl_optfile.h turns them into the runtime's configuration. */
    const char *ssl_dist_optfile, *tls_cert, *tls_key, *tls_ca, *tls_verify;
    uint64_t max_clock_offset_ms; /* --max-clock-offset-ms N: the replicas' clock bound (0: the engine's default) */
    bool help, version;
} hordec_options;

/* Parses argv. Returns 0 on success; on error returns -1 with a message in err. Cookie resolution
 * (--cookie, --cookie-file, ~/.erlang.cookie) happens here too. Every --config FILE is replaced by the options
 * in FILE, in place (so later options override it); an error in one names the file and line. After a success
 * release *o with hordec_options_free. */
int hordec_parse_args(int argc, char **argv, hordec_options *o, char *err, size_t errlen);
void hordec_options_free(hordec_options *o);
/* Whether the long option `name` (without "--") takes a value: 1 it needs one, 0 it takes none, 2 optional,
 * -1 there is no such option. */
int hordec_option_arity(const char *name);
void hordec_print_usage(FILE *out);

#endif
