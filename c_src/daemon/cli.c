/* cli.c — see cli.h. */
#include "daemon/cli.h"

#include "daemon/config_file.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void hordec_print_usage(FILE *out)
{
    fprintf(out,
            "usage: hordec --sname NAME | --name NAME@HOST [options]\n"
            "\n"
            "A HordeC node: an Erlang C node (hidden) hosting HordeC replicas.\n"
            "\n"
            "  --sname NAME            short node name; the host is this machine's short host name\n"
            "  --name NAME@HOST        full node name (use with BEAM nodes started with --name)\n"
            "  --cookie COOKIE         distribution cookie\n"
            "  --cookie-file FILE      read the cookie from FILE (default: ~/.erlang.cookie, as erl); '-' reads\n"
            "                          the first line of stdin, so the cookie never shows on a command line\n"
            "  --port N                listen on port N (default: any free port)\n"
            "  --ticktime S            net_ticktime in seconds: a silent peer is dropped after S s (default 60)\n"
            "  --connect NODE          connect to NODE at start-up (repeatable)\n"
            "  --max-message-bytes N   drop connections that send larger packets (default 268435456)\n"
            "  --log-level LEVEL       error | warn | info | debug (default info)\n"
            "  --registry NAME[:KEYS]  start a replica of registry NAME with the node (repeatable); KEYS is\n"
            "                          unique (the default) or duplicate, e.g. --registry MyApp.Registry:duplicate\n"
            "  --supervisor NAME       start a replica of dynamic supervisor NAME with the node (repeatable); on\n"
            "                          SIGTERM its C workers are handed over to the other members\n"
            "  --watch-stdin           shut down (as on SIGTERM) when stdin closes: a parent running hordec\n"
            "                          through a pipe is then sure it never outlives it, even after kill -9\n"
            "  --config FILE           read options from FILE, one per line (`port 4370`, `# comment`); they take\n"
            "                          the place of --config on the command line, so later options override them\n"
            "  --metrics-port N        serve Prometheus metrics over HTTP on port N (GET /metrics)\n"
            "  --metrics-bind ADDR     the address the metrics port listens on (default 127.0.0.1)\n"
            "  --max-connections N     at most N distribution connections at once; more are closed at once\n"
            "                          (default 4096)\n"
            "  --max-handshakes N      at most N incoming connections still in their handshake (default 256)\n"
            "  --max-handshakes-per-addr N  ... of them from one IP address (default 32)\n"
            "  --max-peer-queue-bytes N  disconnect a peer whose unsent output would exceed N bytes, i.e. one that\n"
            "                          stopped reading (default 67108864)\n"
            "  --ssl-dist-optfile FILE distribution over TLS, configured by the file a BEAM reads for\n"
            "                          -ssl_dist_optfile ([{server, [...]}, {client, [...]}]); plain TCP is refused\n"
            "  --tls-cert FILE         distribution over TLS with this PEM certificate (for both roles), without an\n"
            "                          optfile; with --tls-key FILE (default: in the certificate file), --tls-ca FILE\n"
            "                          and --tls-verify peer|none (default peer with --tls-ca: mutual authentication)\n"
            "  --max-clock-offset-ms N  replicas reject a message stamped more than N ms ahead of this node's\n"
            "                          clock (default 60000; a crdt_start option may set it per replica)\n"
            "  --help                  this text\n"
            "  --version               print the version\n");
}

/* A node name is an atom: at most 255 characters (longer names were silently cut by node_name[]). */
#define HORDEC_NODE_NAME_MAX 255

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

/* `--cookie-file -`: the first line of stdin, read a byte at a time so nothing after it is consumed (with
 * --watch-stdin the rest of stdin is the parent's lifeline). */
static int read_cookie_stdin(char *out, size_t outlen, char *err, size_t errlen)
{
    size_t n = 0;
    char ch;
    for (;;) {
        ssize_t r = read(STDIN_FILENO, &ch, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || ch == '\n')
            break;
        if (n + 1 >= outlen) {
            snprintf(err, errlen, "the cookie on stdin is longer than %zu bytes", outlen - 1);
            return -1;
        }
        out[n++] = ch;
    }
    out[n] = 0;
    while (n && (out[n - 1] == '\r' || out[n - 1] == ' '))
        out[--n] = 0;
    if (!n) {
        snprintf(err, errlen, "--cookie-file -: no cookie on the first line of stdin");
        return -1;
    }
    return 0;
}

static int read_cookie_file(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    if (strcmp(path, "-") == 0)
        return read_cookie_stdin(out, outlen, err, errlen);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read cookie file %s: %s", path, strerror(errno));
        return -1;
    }
    /* As erl, and as for ~/.erlang.cookie: a cookie others can read is no secret, so refuse it rather than
     * run with it. Checked on the open file, so the file read is the file checked. */
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077)) {
        fclose(f);
        snprintf(err, errlen, "cookie file %s must be accessible by owner only (chmod 400 %s)", path, path);
        return -1;
    }
    size_t n = fread(out, 1, outlen - 1, f);
    fclose(f);
    out[n] = 0;
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        out[--n] = 0;
    if (!n) {
        snprintf(err, errlen, "cookie file %s is empty", path);
        return -1;
    }
    return 0;
}

/* Like erl: if ~/.erlang.cookie does not exist, create one with a random cookie, readable by us only. */
static int default_cookie(char *out, size_t outlen, char *err, size_t errlen)
{
    const char *home = getenv("HOME");
    if (!home || !*home) {
        snprintf(err, errlen, "no --cookie, no --cookie-file and no $HOME to find ~/.erlang.cookie");
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/.erlang.cookie", home);
    if (access(path, F_OK) != 0) {
        unsigned char r[20];
        char c[21];
        if (RAND_bytes(r, sizeof r) != 1) {
            snprintf(err, errlen, "cannot generate a cookie");
            return -1;
        }
        for (int i = 0; i < 20; i++)
            c[i] = (char)('A' + r[i] % 26);
        c[20] = 0;
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0400);
        if (fd < 0 || write(fd, c, 20) != 20) {
            if (fd >= 0)
                close(fd);
            snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
            return -1;
        }
        close(fd);
    }
    /* As erl: a cookie others can read is no secret, so refuse it rather than run with it. */
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 077)) {
        snprintf(err, errlen, "cookie file %s must be accessible by owner only (chmod 400 %s)", path, path);
        return -1;
    }
    return read_cookie_file(path, out, outlen, err, errlen);
}

static int short_host(char *out, size_t len)
{
    if (gethostname(out, len) != 0)
        return -1;
    out[len - 1] = 0;
    char *dot = strchr(out, '.');
    if (dot)
        *dot = 0;
    return out[0] ? 0 : -1;
}

enum {
    OPT_SNAME = 1,
    OPT_NAME,
    OPT_COOKIE,
    OPT_COOKIE_FILE,
    OPT_PORT,
    OPT_TICKTIME,
    OPT_CONNECT,
    OPT_LOG,
    OPT_HELP,
    OPT_VERSION,
    OPT_MAXMSG,
    OPT_REGISTRY,
    OPT_SUPERVISOR,
    OPT_WATCH_STDIN,
    OPT_CONFIG,
    OPT_METRICS_PORT,
    OPT_METRICS_BIND,
    OPT_MAX_CONNECTIONS,
    OPT_MAX_HANDSHAKES,
    OPT_MAX_HANDSHAKES_PER_ADDR,
    OPT_MAX_PEER_QUEUE,
    OPT_SSL_OPTFILE,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_CA,
    OPT_TLS_VERIFY,
    OPT_MAX_CLOCK_OFFSET
};

/* --registry NAME[:unique|:duplicate]: a name is an atom (1..255 characters); the kind follows the last ':'. */
static int parse_registry(const char *arg, hordec_options *o, char *err, size_t errlen)
{
    if (o->nregistries == HORDEC_MAX_REGISTRIES) {
        snprintf(err, errlen, "at most %d --registry options", HORDEC_MAX_REGISTRIES);
        return -1;
    }
    hordec_registry_arg *r = &o->registries[o->nregistries];
    const char *colon = strrchr(arg, ':');
    size_t n = colon ? (size_t)(colon - arg) : strlen(arg);
    r->duplicate = false;
    if (colon && strcmp(colon + 1, "duplicate") == 0)
        r->duplicate = true;
    else if (colon && strcmp(colon + 1, "unique") != 0) {
        snprintf(err, errlen, "--registry wants NAME, NAME:unique or NAME:duplicate, got '%s'", arg);
        return -1;
    }
    size_t chars = 0;
    for (size_t i = 0; i < n; i++)
        chars += ((unsigned char)arg[i] & 0xC0) != 0x80;
    if (!n || chars > 255 || n >= sizeof r->name) {
        snprintf(err, errlen, "--registry wants a name of 1 to 255 characters, got '%s'", arg);
        return -1;
    }
    memcpy(r->name, arg, n);
    r->name[n] = 0;
    for (int i = 0; i < o->nregistries; i++)
        if (strcmp(o->registries[i].name, r->name) == 0) {
            snprintf(err, errlen, "--registry %s is given twice", r->name);
            return -1;
        }
    o->nregistries++;
    return 0;
}

/* --supervisor NAME: an atom of 1..255 characters, each name once. */
static int parse_supervisor(const char *arg, hordec_options *o, char *err, size_t errlen)
{
    size_t chars = 0, n = strlen(arg);
    for (size_t i = 0; i < n; i++)
        chars += ((unsigned char)arg[i] & 0xC0) != 0x80;
    if (o->nsupervisors == HORDEC_MAX_REGISTRIES) {
        snprintf(err, errlen, "at most %d --supervisor options", HORDEC_MAX_REGISTRIES);
        return -1;
    }
    if (!n || chars > 255) {
        snprintf(err, errlen, "--supervisor wants a name of 1 to 255 characters, got '%s'", arg);
        return -1;
    }
    for (int i = 0; i < o->nsupervisors; i++)
        if (strcmp(o->supervisors[i], arg) == 0) {
            snprintf(err, errlen, "--supervisor %s is given twice", arg);
            return -1;
        }
    o->supervisors[o->nsupervisors++] = arg;
    return 0;
}

/* Every long option, at file scope so that a config file (config_file.c) can check its option names and
 * whether they take a value against the same table the command line is parsed with. */
static const struct option opts[] = {
    {"sname", required_argument, 0, OPT_SNAME},
    {"name", required_argument, 0, OPT_NAME},
    {"cookie", required_argument, 0, OPT_COOKIE},
    {"cookie-file", required_argument, 0, OPT_COOKIE_FILE},
    {"port", required_argument, 0, OPT_PORT},
    {"ticktime", required_argument, 0, OPT_TICKTIME},
    {"connect", required_argument, 0, OPT_CONNECT},
    {"log-level", required_argument, 0, OPT_LOG},
    {"max-message-bytes", required_argument, 0, OPT_MAXMSG},
    {"registry", required_argument, 0, OPT_REGISTRY},
    {"supervisor", required_argument, 0, OPT_SUPERVISOR},
    {"watch-stdin", no_argument, 0, OPT_WATCH_STDIN},
    {"config", required_argument, 0, OPT_CONFIG},
    {"metrics-port", required_argument, 0, OPT_METRICS_PORT},
    {"metrics-bind", required_argument, 0, OPT_METRICS_BIND},
    {"max-connections", required_argument, 0, OPT_MAX_CONNECTIONS},
    {"max-handshakes", required_argument, 0, OPT_MAX_HANDSHAKES},
    {"max-handshakes-per-addr", required_argument, 0, OPT_MAX_HANDSHAKES_PER_ADDR},
    {"max-peer-queue-bytes", required_argument, 0, OPT_MAX_PEER_QUEUE},
    {"ssl-dist-optfile", required_argument, 0, OPT_SSL_OPTFILE},
    {"tls-cert", required_argument, 0, OPT_TLS_CERT},
    {"max-clock-offset-ms", required_argument, 0, OPT_MAX_CLOCK_OFFSET},
    {"tls-key", required_argument, 0, OPT_TLS_KEY},
    {"tls-ca", required_argument, 0, OPT_TLS_CA},
    {"tls-verify", required_argument, 0, OPT_TLS_VERIFY},
    {"help", no_argument, 0, OPT_HELP},
    {"version", no_argument, 0, OPT_VERSION},
    {0, 0, 0, 0},
};

static const struct option *option_by_val(int val)
{
    for (const struct option *op = opts; op->name; op++)
        if (op->val == val)
            return op;
    return NULL;
}

int hordec_option_arity(const char *name)
{
    for (const struct option *op = opts; op->name; op++)
        if (strcmp(op->name, name) == 0)
            return op->has_arg == no_argument ? 0 : op->has_arg == required_argument ? 1 : 2;
    return -1;
}

/* The command line (or a config file expanded into it) in argv; *bad_elem is the element being parsed when an error
 * is found in an option (NULL for errors about the whole, like a missing --name). */
static int parse_argv(int argc, char **argv, hordec_options *o, const char **bad_elem, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->ticktime_s = 60;
    o->max_message_bytes = 256u << 20;
    o->log_level = HC_LOG_INFO;
    snprintf(o->metrics_bind, sizeof o->metrics_bind, "127.0.0.1");
    const char *sname = NULL, *name = NULL, *cookie = NULL, *cookie_file = NULL;
    optind = 0; /* 0, not 1: glibc then also forgets a half-parsed "-xy" cluster from an earlier call */
    opterr = 0;
    int c;
    unsigned long long v;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        *bad_elem = argv[optind - 1]; /* the option's own element (or its value's, for "--opt value") */
        switch (c) {
        case OPT_SNAME: sname = optarg; break;
        case OPT_NAME: name = optarg; break;
        case OPT_COOKIE: cookie = optarg; break;
        case OPT_COOKIE_FILE: cookie_file = optarg; break;
        case OPT_PORT:
            if (parse_uint(optarg, 65535, &v)) {
                snprintf(err, errlen, "--port wants a number from 0 to 65535, got '%s'", optarg);
                return -1;
            }
            o->port = (uint16_t)v;
            break;
        case OPT_TICKTIME:
            if (parse_uint(optarg, 86400, &v) || v < 1) {
                snprintf(err, errlen, "--ticktime wants seconds from 1 to 86400, got '%s'", optarg);
                return -1;
            }
            o->ticktime_s = (uint32_t)v;
            break;
        case OPT_MAXMSG:
            if (parse_uint(optarg, 1ULL << 31, &v) || v < 1024) {
                snprintf(err, errlen, "--max-message-bytes wants 1024 to 2147483648, got '%s'", optarg);
                return -1;
            }
            o->max_message_bytes = (size_t)v;
            break;
        case OPT_CONNECT:
            if (o->nconnect == HORDEC_MAX_CONNECT) {
                snprintf(err, errlen, "at most %d --connect options", HORDEC_MAX_CONNECT);
                return -1;
            }
            if (!strchr(optarg, '@')) {
                snprintf(err, errlen, "--connect wants a node name NAME@HOST, got '%s'", optarg);
                return -1;
            }
            o->connect[o->nconnect++] = optarg;
            break;
        case OPT_LOG:
            if (hc_log_parse_level(optarg, &o->log_level)) {
                snprintf(err, errlen, "--log-level wants error, warn, info or debug, got '%s'", optarg);
                return -1;
            }
            break;
        case OPT_REGISTRY:
            if (parse_registry(optarg, o, err, errlen))
                return -1;
            break;
        case OPT_SUPERVISOR:
            if (parse_supervisor(optarg, o, err, errlen))
                return -1;
            break;
        case OPT_WATCH_STDIN: o->watch_stdin = true; break;
        case OPT_CONFIG:
            /* hordec_parse_args replaced every --config on the command line by the file's options: this is an
             * abbreviation getopt accepted (--conf), which the expansion does not look for */
            snprintf(err, errlen, "write --config in full");
            return -1;
        case OPT_METRICS_PORT:
            if (parse_uint(optarg, 65535, &v) || v < 1) {
                snprintf(err, errlen, "--metrics-port wants a port from 1 to 65535, got '%s'", optarg);
                return -1;
            }
            o->metrics_port = (uint16_t)v;
            break;
        case OPT_METRICS_BIND:
            if (!*optarg || strlen(optarg) >= sizeof o->metrics_bind) {
                snprintf(err, errlen, "--metrics-bind wants an IP address, got '%s'", optarg);
                return -1;
            }
            snprintf(o->metrics_bind, sizeof o->metrics_bind, "%s", optarg);
            break;
        case OPT_MAX_CONNECTIONS:
        case OPT_MAX_HANDSHAKES:
        case OPT_MAX_HANDSHAKES_PER_ADDR:
            if (parse_uint(optarg, 1000000, &v) || v < 1) {
                snprintf(err, errlen, "--%s wants a number from 1 to 1000000, got '%s'", option_by_val(c)->name,
                         optarg);
                return -1;
            }
            *(c == OPT_MAX_CONNECTIONS  ? &o->max_connections
              : c == OPT_MAX_HANDSHAKES ? &o->max_handshakes
                                        : &o->max_handshakes_per_addr) = (uint32_t)v;
            break;
        case OPT_MAX_PEER_QUEUE:
            if (parse_uint(optarg, 1ULL << 40, &v) || v < 65536) {
                snprintf(err, errlen, "--max-peer-queue-bytes wants 65536 to 1099511627776, got '%s'", optarg);
                return -1;
            }
            o->max_peer_queue_bytes = (size_t)v;
            break;
        case OPT_SSL_OPTFILE: o->ssl_dist_optfile = optarg; break;
        case OPT_TLS_CERT: o->tls_cert = optarg; break;
        case OPT_TLS_KEY: o->tls_key = optarg; break;
        case OPT_TLS_CA: o->tls_ca = optarg; break;
        case OPT_TLS_VERIFY:
            if (strcmp(optarg, "peer") != 0 && strcmp(optarg, "none") != 0) {
                snprintf(err, errlen, "--tls-verify wants peer or none, got '%s'", optarg);
                return -1;
            }
            o->tls_verify = optarg;
            break;
        case OPT_MAX_CLOCK_OFFSET:
            if (parse_uint(optarg, 1ULL << 40, &v) || v < 1) {
                snprintf(err, errlen, "--max-clock-offset-ms wants 1 to 1099511627776, got '%s'", optarg);
                return -1;
            }
            o->max_clock_offset_ms = v;
            break;
        case OPT_HELP: o->help = true; break;
        case OPT_VERSION: o->version = true; break;
        case '?':
        default:
            /* glibc sets optopt to the option's val when a long option lacks (or wrongly has) a value,
             * to the character for an unknown short option, and to 0 for an unknown long option. */
            if (optopt > 0 && option_by_val(optopt) && option_by_val(optopt)->has_arg == no_argument)
                snprintf(err, errlen, "option '%s' takes no value", argv[optind - 1]);
            else if (optopt > 0 && option_by_val(optopt))
                snprintf(err, errlen, "option '%s' needs a value", argv[optind - 1]);
            else if (optopt)
                snprintf(err, errlen, "unknown option '-%c'", optopt);
            else
                snprintf(err, errlen, "unknown option '%s'", argv[optind - 1]);
            return -1;
        }
    }
    *bad_elem = NULL;
    if (o->ssl_dist_optfile && (o->tls_cert || o->tls_key || o->tls_ca || o->tls_verify)) {
        snprintf(err, errlen, "give either --ssl-dist-optfile or the --tls-* options, not both");
        return -1;
    }
    if (!o->tls_cert && (o->tls_key || o->tls_ca || o->tls_verify)) {
        snprintf(err, errlen, "--tls-key, --tls-ca and --tls-verify need --tls-cert");
        return -1;
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (o->help || o->version)
        return 0;
    if (!sname == !name) {
        snprintf(err, errlen, "give exactly one of --sname NAME or --name NAME@HOST");
        return -1;
    }
    if (sname) {
        char host[256];
        if (!*sname || strchr(sname, '@')) {
            snprintf(err, errlen, "--sname wants a plain name without '@', got '%s'", sname);
            return -1;
        }
        if (short_host(host, sizeof host)) {
            snprintf(err, errlen, "cannot determine this machine's host name");
            return -1;
        }
        if (strlen(sname) + 1 + strlen(host) > HORDEC_NODE_NAME_MAX) {
            snprintf(err, errlen, "node name too long: at most %d characters with the host", HORDEC_NODE_NAME_MAX);
            return -1;
        }
        snprintf(o->node_name, sizeof o->node_name, "%s@%s", sname, host);
    } else {
        const char *at = strchr(name, '@');
        if (!at || at == name || !at[1] || strchr(at + 1, '@')) {
            snprintf(err, errlen, "--name wants NAME@HOST, got '%s'", name);
            return -1;
        }
        if (strlen(name) > HORDEC_NODE_NAME_MAX) {
            snprintf(err, errlen, "--name too long: a node name has at most %d characters", HORDEC_NODE_NAME_MAX);
            return -1;
        }
        snprintf(o->node_name, sizeof o->node_name, "%s", name);
    }
    for (const char *p = o->node_name; *p != '@'; p++) {
        if (!(*p == '_' || *p == '-' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
              (*p >= 'A' && *p <= 'Z'))) {
            snprintf(err, errlen, "node name '%s' may only use letters, digits, '_' and '-' before '@'", o->node_name);
            return -1;
        }
    }
    if (cookie) {
        if (!*cookie || strlen(cookie) >= sizeof o->cookie) {
            snprintf(err, errlen, "--cookie must be 1 to %zu bytes", sizeof o->cookie - 1);
            return -1;
        }
        snprintf(o->cookie, sizeof o->cookie, "%s", cookie);
    } else if (cookie_file) {
        if (read_cookie_file(cookie_file, o->cookie, sizeof o->cookie, err, errlen))
            return -1;
    } else if (default_cookie(o->cookie, sizeof o->cookie, err, errlen)) {
        return -1;
    }
    return 0;
}

int hordec_parse_args(int argc, char **argv, hordec_options *o, char *err, size_t errlen)
{
    hordec_args *cfg = NULL;
    if (hordec_config_wanted(argc, argv)) {
        cfg = calloc(1, sizeof *cfg);
        if (!cfg || hordec_config_expand(argc, argv, cfg, err, errlen)) {
            if (!cfg)
                snprintf(err, errlen, "out of memory");
            hordec_args_free(cfg);
            free(cfg);
            memset(o, 0, sizeof *o);
            return -1;
        }
        argc = cfg->argc;
        argv = cfg->argv;
    }
    const char *at = NULL;
    int rc = parse_argv(argc, argv, o, &at, err, errlen);
    const char *origin = cfg && at ? hordec_args_origin(cfg, at) : NULL;
    if (rc && origin) { /* name the file and line the bad option came from */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", err);
        snprintf(err, errlen, "%s: %s", origin, msg);
    }
    if (rc) {
        hordec_args_free(cfg);
        free(cfg);
        return rc;
    }
    o->config = cfg; /* o->connect and o->supervisors may point into it */
    return 0;
}

void hordec_options_free(hordec_options *o)
{
    hordec_args_free(o->config);
    free(o->config);
    o->config = NULL;
}
