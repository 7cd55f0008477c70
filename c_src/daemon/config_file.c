/* config_file.c — see config_file.h. */
#include "daemon/config_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/cli.h"
#include "hordec/hc_common.h"

bool hordec_config_wanted(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "--config") == 0 || strncmp(argv[i], "--config=", 9) == 0)
            return true;
    }
    return false;
}

/* Appends one element (borrowed when origin is NULL, else owned together with its origin). */
static int push(hordec_args *a, char *elem, char *origin)
{
    if (a->argc + 2 > a->cap) {
        int cap = a->cap ? a->cap * 2 : 16;
        char **v = realloc(a->argv, (size_t)cap * sizeof *v);
        if (!v)
            return HC_ENOMEM;
        a->argv = v;
        char **o = realloc(a->origin, (size_t)cap * sizeof *o);
        if (!o)
            return HC_ENOMEM;
        a->origin = o;
        a->cap = cap;
    }
    a->argv[a->argc] = elem;
    a->origin[a->argc] = origin;
    a->argc++;
    a->argv[a->argc] = NULL;
    a->origin[a->argc] = NULL;
    return HC_OK;
}

void hordec_args_free(hordec_args *a)
{
    if (!a)
        return;
    for (int i = 0; i < a->argc; i++)
        if (a->origin[i]) {
            free(a->argv[i]);
            free(a->origin[i]);
        }
    free(a->argv);
    free(a->origin);
    memset(a, 0, sizeof *a);
}

/* Drops the elements past `keep` (what a failed read added). */
static void truncate_args(hordec_args *a, int keep)
{
    while (a->argc > keep) {
        a->argc--;
        if (a->origin[a->argc]) {
            free(a->argv[a->argc]);
            free(a->origin[a->argc]);
        }
        a->argv[a->argc] = NULL;
        a->origin[a->argc] = NULL;
    }
}

const char *hordec_args_origin(const hordec_args *a, const char *elem)
{
    for (int i = 0; a && i < a->argc; i++)
        if (a->argv[i] == elem)
            return a->origin[i];
    return NULL;
}

/* ------------------------------------------------------------------ one line */

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

static bool is_name_char(char c)
{
    return c == '-' || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A line split into its option name and value. `value` is NULL when the line has none. Both point into `buf`. */
typedef struct cfg_line {
    const char *name;
    const char *value;
} cfg_line;

/* Parses the line in s (NUL-terminated, modified in place). Returns 0 with *out filled, 1 for a blank or
 * comment line, -1 with a message in err. */
static int parse_line(char *s, cfg_line *out, char *err, size_t errlen)
{
    while (is_blank(*s))
        s++;
    if (!*s || *s == '#')
        return 1;
    if (s[0] == '-' && s[1] == '-')
        s += 2;
    char *name = s;
    while (is_name_char(*s))
        s++;
    if (s == name || (*s && !is_blank(*s) && *s != '=')) {
        char *e = s;
        while (*e && !is_blank(*e))
            e++;
        *e = 0;
        snprintf(err, errlen, "expected an option name, got '%s'", name);
        return -1;
    }
    char *end_name = s;
    while (is_blank(*s))
        s++;
    bool eq = *s == '=';
    if (eq) {
        s++;
        while (is_blank(*s))
            s++;
    }
    *end_name = 0;
    out->name = name;
    out->value = NULL;
    if (!*s || (*s == '#' && is_blank(s[-1]))) {
        if (eq)
            out->value = ""; /* "name =" gives an empty value, for the option itself to judge */
        return 0;
    }
    if (*s == '"') {
        char *w = ++s, *r = s;
        for (;; r++) {
            if (!*r) {
                snprintf(err, errlen, "unterminated quote in the value of '%s'", name);
                return -1;
            }
            if (*r == '"')
                break;
            if (*r == '\\') {
                r++;
                switch (*r) {
                case '\\':
                case '"':
                case '#': *w++ = *r; break;
                case 'n': *w++ = '\n'; break;
                case 't': *w++ = '\t'; break;
                default:
                    snprintf(err, errlen, "unknown escape '\\%c' in the value of '%s' (use \\\\, \\\", \\n or \\t)",
                             *r ? *r : ' ', name);
                    return -1;
                }
                continue;
            }
            *w++ = *r;
        }
        r++;
        while (is_blank(*r))
            r++;
        if (*r && *r != '#') {
            snprintf(err, errlen, "unexpected text after the quoted value of '%s': '%s'", name, r);
            return -1;
        }
        *w = 0;
        out->value = s;
        return 0;
    }
    /* Unquoted: the rest of the line, up to a '#' after white space, without trailing white space. */
    char *v = s;
    for (; *s; s++)
        if (*s == '#' && is_blank(s[-1]))
            break;
    *s = 0;
    while (s > v && is_blank(s[-1]))
        *--s = 0;
    out->value = v;
    return 0;
}

/* ------------------------------------------------------------------ the file */

static int read_all(const char *path, char **out, size_t *len, bool *private_file, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot read config file %s: %s", path, strerror(errno));
        return errno == ENOENT ? HC_ENOPROC : HC_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "config file %s is not a regular file", path);
        close(fd);
        return HC_EINVAL;
    }
    if ((size_t)st.st_size > HORDEC_CONFIG_MAX_BYTES) {
        snprintf(err, errlen, "config file %s is larger than %u bytes", path, HORDEC_CONFIG_MAX_BYTES);
        close(fd);
        return HC_ETOOBIG;
    }
    *private_file = !(st.st_mode & 077);
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        snprintf(err, errlen, "out of memory reading %s", path);
        return HC_ENOMEM;
    }
    size_t n = 0;
    /* Read up to the limit, not to st_size: a file that grows meanwhile is cut at the limit, never overrun. */
    while (n < (size_t)st.st_size) {
        ssize_t k = read(fd, buf + n, (size_t)st.st_size - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            snprintf(err, errlen, "cannot read config file %s: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return HC_EIO;
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    buf[n] = 0;
    *out = buf;
    *len = n;
    return HC_OK;
}

/* "--name" or "--name=value", and "path:line". */
static int push_option(hordec_args *a, const char *path, unsigned line, const cfg_line *l)
{
    size_t nl = strlen(l->name), vl = l->value ? strlen(l->value) : 0;
    char *elem = malloc(2 + nl + (l->value ? 1 + vl : 0) + 1);
    size_t ol = strlen(path) + 24;
    char *origin = malloc(ol);
    if (!elem || !origin) {
        free(elem);
        free(origin);
        return HC_ENOMEM;
    }
    if (l->value)
        sprintf(elem, "--%s=%s", l->name, l->value);
    else
        sprintf(elem, "--%s", l->name);
    snprintf(origin, ol, "%s:%u", path, line);
    int rc = push(a, elem, origin);
    if (rc) {
        free(elem);
        free(origin);
    }
    return rc;
}

int hordec_config_read(const char *path, hordec_args *a, char *err, size_t errlen)
{
    char *buf;
    size_t len;
    bool private_file;
    int rc = read_all(path, &buf, &len, &private_file, err, errlen);
    if (rc)
        return rc;
    int keep = a->argc;
    char why[256];
    unsigned line = 0;
    for (char *s = buf, *end = buf + len; s < end;) {
        line++;
        char *nl = memchr(s, '\n', (size_t)(end - s));
        char *eol = nl ? nl : end;
        if (memchr(s, 0, (size_t)(eol - s))) {
            snprintf(err, errlen, "%s:%u: a NUL byte: this is not a text file", path, line);
            rc = HC_EINVAL;
            break;
        }
        *eol = 0;
        if (eol > s && eol[-1] == '\r')
            eol[-1] = 0;
        cfg_line l;
        int pr = parse_line(s, &l, why, sizeof why);
        s = eol + 1;
        if (pr == 1)
            continue;
        if (pr < 0) {
            snprintf(err, errlen, "%s:%u: %s", path, line, why);
            rc = HC_EINVAL;
            break;
        }
        int arity = hordec_option_arity(l.name);
        if (strcmp(l.name, "config") == 0) {
            snprintf(err, errlen, "%s:%u: a config file cannot include another (--config)", path, line);
            rc = HC_EINVAL;
        } else if (arity < 0) {
            snprintf(err, errlen, "%s:%u: unknown option '%s'", path, line, l.name);
            rc = HC_EINVAL;
        } else if (arity == 0 && l.value) {
            snprintf(err, errlen, "%s:%u: option '%s' takes no value", path, line, l.name);
            rc = HC_EINVAL;
        } else if (arity == 1 && !l.value) {
            snprintf(err, errlen, "%s:%u: option '%s' needs a value", path, line, l.name);
            rc = HC_EINVAL;
        } else if (strcmp(l.name, "cookie") == 0 && !private_file) {
            /* As erl with ~/.erlang.cookie: a cookie others can read is no secret, so refuse to run with it. */
            snprintf(err, errlen,
                     "%s:%u: the file holds a cookie but others may read it: chmod 600 %s, or use cookie-file", path,
                     line, path);
            rc = HC_EINVAL;
        } else if ((rc = push_option(a, path, line, &l))) {
            snprintf(err, errlen, "out of memory reading %s", path);
        }
        if (rc)
            break;
    }
    free(buf);
    if (rc)
        truncate_args(a, keep);
    return rc;
}

int hordec_config_expand(int argc, char **argv, hordec_args *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int rc = HC_OK;
    bool options_end = false;
    for (int i = 0; i < argc && !rc; i++) {
        const char *path = NULL;
        if (i > 0 && !options_end && strcmp(argv[i], "--") == 0)
            options_end = true;
        else if (i > 0 && !options_end && strcmp(argv[i], "--config") == 0) {
            if (i + 1 == argc) {
                snprintf(err, errlen, "option '--config' needs a value");
                rc = HC_EINVAL;
                break;
            }
            path = argv[++i];
        } else if (i > 0 && !options_end && strncmp(argv[i], "--config=", 9) == 0)
            path = argv[i] + 9;
        if (!path)
            rc = push(out, argv[i], NULL);
        else if (!*path) {
            snprintf(err, errlen, "--config wants a file name");
            rc = HC_EINVAL;
        } else
            rc = hordec_config_read(path, out, err, errlen);
        if (rc && !path)
            snprintf(err, errlen, "out of memory");
    }
    if (rc)
        hordec_args_free(out);
    return rc;
}
