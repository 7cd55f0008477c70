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
    bool help, version;
} hordec_options;

/* Parses argv. Returns 0 on success; on error returns -1 with a message in err. Cookie resolution
 * (--cookie, --cookie-file, ~/.erlang.cookie) happens here too. */
int hordec_parse_args(int argc, char **argv, hordec_options *o, char *err, size_t errlen);
void hordec_print_usage(FILE *out);

#endif
