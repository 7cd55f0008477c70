/* cli.c — see cli.h. */
#include "daemon/cli.h"

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
            "  --cookie-file FILE      read the cookie from FILE (default: ~/.erlang.cookie, as erl)\n"
            "  --port N                listen on port N (default: any free port)\n"
            "  --ticktime S            net_ticktime in seconds: a silent peer is dropped after S s (default 60)\n"
            "  --connect NODE          connect to NODE at start-up (repeatable)\n"
            "  --max-message-bytes N   drop connections that send larger packets (default 268435456)\n"
            "  --log-level LEVEL       error | warn | info | debug (default info)\n"
            "  --registry NAME[:KEYS]  start a replica of registry NAME with the node (repeatable); KEYS is\n"
            "                          unique (the default) or duplicate, e.g. --registry MyApp.Registry:duplicate\n"
            "  --supervisor NAME       start a replica of dynamic supervisor NAME with the node (repeatable); on\n"
            "                          SIGTERM its C workers are handed over to the other members\n"
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

static int read_cookie_file(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read cookie file %s: %s", path, strerror(errno));
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
    OPT_SUPERVISOR
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

int hordec_parse_args(int argc, char **argv, hordec_options *o, char *err, size_t errlen)
{
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
        {"help", no_argument, 0, OPT_HELP},
        {"version", no_argument, 0, OPT_VERSION},
        {0, 0, 0, 0},
    };
    memset(o, 0, sizeof *o);
    o->ticktime_s = 60;
    o->max_message_bytes = 256u << 20;
    o->log_level = HC_LOG_INFO;
    const char *sname = NULL, *name = NULL, *cookie = NULL, *cookie_file = NULL;
    optind = 0; /* 0, not 1: glibc then also forgets a half-parsed "-xy" cluster from an earlier call */
    opterr = 0;
    int c;
    unsigned long long v;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
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
        case OPT_HELP: o->help = true; break;
        case OPT_VERSION: o->version = true; break;
        case '?':
        default:
            /* glibc sets optopt to the option's val when a long option lacks (or wrongly has) a value,
             * to the character for an unknown short option, and to 0 for an unknown long option. */
            if (optopt == OPT_HELP || optopt == OPT_VERSION)
                snprintf(err, errlen, "option '%s' takes no value", argv[optind - 1]);
            else if (optopt >= OPT_SNAME && optopt <= OPT_REGISTRY)
                snprintf(err, errlen, "option '%s' needs a value", argv[optind - 1]);
            else if (optopt)
                snprintf(err, errlen, "unknown option '-%c'", optopt);
            else
                snprintf(err, errlen, "unknown option '%s'", argv[optind - 1]);
            return -1;
        }
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
