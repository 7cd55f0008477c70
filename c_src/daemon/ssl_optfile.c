/* ssl_optfile.c — see ssl_optfile.h. The file is Erlang term text: term_text.c turns it into external
 * term format, and the codec's decoders walk it. */
#include "daemon/ssl_optfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/cli.h"
#include "daemon/term_text.h"
#include "hordec/hc_term.h"

#define MAX_FILE_BYTES (1 << 20)

typedef struct ctx {
    hordec_tls_opts *o;
    const char *origin;
    const char *section; /* "server" or "client" */
    char *err;
    size_t errlen;
} ctx;

static int bad(ctx *c, const char *opt, const char *want)
{
    snprintf(c->err, c->errlen, "%s: option %s in the %s options: %s", c->origin, opt, c->section, want);
    return HC_EINVAL;
}

static int keep_string(hordec_tls_opts *o, const char *p, size_t n, const char **out)
{
    if (o->nowned == HORDEC_TLS_MAX_STRINGS)
        return HC_EINVAL;
    char *s = malloc(n + 1);
    if (!s)
        return HC_ENOMEM;
    memcpy(s, p, n);
    s[n] = 0;
    o->owned[o->nowned++] = s;
    *out = s;
    return HC_OK;
}

static int string_value(ctx *c, const char *opt, const uint8_t *v, size_t vlen, const char **out)
{
    size_t i = 0;
    hc_span s;
    if (*out)
        return bad(c, opt, "given twice");
    if (hc_dec_string(v, vlen, &i, &s) || i != vlen || s.len == 0 || memchr(s.p, 0, s.len))
        return bad(c, opt, "wants a non-empty string");
    int rc = keep_string(c->o, (const char *)s.p, s.len, out);
    return rc == HC_ENOMEM ? rc : rc ? bad(c, opt, "too many strings") : HC_OK;
}

static int bool_value(ctx *c, const char *opt, const uint8_t *v, size_t vlen, bool *out)
{
    size_t i = 0;
    if (hc_dec_bool(v, vlen, &i, out) || i != vlen)
        return bad(c, opt, "wants true or false");
    return HC_OK;
}

static int versions_value(ctx *c, const uint8_t *v, size_t vlen, hc_tls_side *s)
{
    static const char *const names[] = {"tlsv1.2", "tlsv1.3"};
    static const hc_tls_version vers[] = {HC_TLS_V1_2, HC_TLS_V1_3};
    hc_iter it;
    size_t i = 0;
    if (hc_iter_list(&it, v, vlen, &i) || i != vlen || it.left == 0)
        return bad(c, "versions", "wants a non-empty list such as ['tlsv1.2', 'tlsv1.3']");
    hc_span e;
    s->min_version = s->max_version = HC_TLS_VERSION_DEFAULT;
    while (hc_iter_next(&it, &e)) {
        size_t j = 0, k;
        if (hc_dec_atom_index(e.p, e.len, &j, names, 2, &k))
            return bad(c, "versions", "hordec speaks 'tlsv1.2' and 'tlsv1.3' only");
        if (!s->min_version || vers[k] < s->min_version)
            s->min_version = vers[k];
        if (vers[k] > s->max_version)
            s->max_version = vers[k];
    }
    return HC_OK;
}

static int option(ctx *c, hc_tls_side *s, bool server, const char *name, const uint8_t *v, size_t vlen)
{
    size_t i = 0;
    if (strcmp(name, "certfile") == 0)
        return string_value(c, name, v, vlen, &s->certfile);
    if (strcmp(name, "keyfile") == 0)
        return string_value(c, name, v, vlen, &s->keyfile);
    if (strcmp(name, "password") == 0)
        return string_value(c, name, v, vlen, &s->password);
    if (strcmp(name, "cacertfile") == 0)
        return string_value(c, name, v, vlen, &s->cacertfile);
    if (strcmp(name, "fail_if_no_peer_cert") == 0) {
        if (!server)
            return bad(c, name, "is a server option");
        return bool_value(c, name, v, vlen, &s->fail_if_no_peer_cert);
    }
    if (strcmp(name, "secure_renegotiate") == 0) {
        bool secure;
        int rc = bool_value(c, name, v, vlen, &secure);
        s->allow_legacy_renegotiation = !secure;
        return rc;
    }
    if (strcmp(name, "verify") == 0) {
        static const char *const modes[] = {"verify_none", "verify_peer"};
        size_t k;
        if (hc_dec_atom_index(v, vlen, &i, modes, 2, &k) || i != vlen)
            return bad(c, name, "wants verify_peer or verify_none");
        s->verify_peer = k == 1;
        return HC_OK;
    }
    if (strcmp(name, "depth") == 0) {
        int64_t d;
        if (hc_dec_long(v, vlen, &i, &d) || i != vlen || d < 0 || d > 100)
            return bad(c, name, "wants an integer from 0 to 100");
        s->depth_set = true;
        s->depth = (int)d;
        return HC_OK;
    }
    if (strcmp(name, "versions") == 0)
        return versions_value(c, v, vlen, s);
    if (strcmp(name, "server_name_indication") == 0) {
        if (server)
            return bad(c, name, "is a client option");
        if (hc_dec_is_atom(v, vlen, &i, "disable") && i == vlen) {
            s->no_host_check = true;
            return HC_OK;
        }
        return string_value(c, name, v, vlen, &s->server_name);
    }
    snprintf(c->err, c->errlen,
             "%s: unsupported option %s in the %s options (hordec supports certfile, keyfile, "
             "password, cacertfile, verify, fail_if_no_peer_cert, server_name_indication, versions, "
             "secure_renegotiate, depth)",
             c->origin, name, c->section);
    return HC_EINVAL;
}

static int section(ctx *c, hc_tls_side *s, bool server, const uint8_t *p, size_t len)
{
    hc_iter it;
    size_t i = 0;
    if (hc_iter_list(&it, p, len, &i) || i != len) {
        snprintf(c->err, c->errlen, "%s: the %s options must be a list of {Option, Value}", c->origin, c->section);
        return HC_EINVAL;
    }
    hc_span e;
    while (hc_iter_next(&it, &e)) {
        size_t j = 0;
        uint32_t arity;
        hc_atom key;
        if (hc_dec_tuple_header(e.p, e.len, &j, &arity) || arity != 2 || hc_dec_atom(e.p, e.len, &j, &key)) {
            snprintf(c->err, c->errlen, "%s: each of the %s options must be {Option, Value}", c->origin, c->section);
            return HC_EINVAL;
        }
        int rc = option(c, s, server, hc_atom_name(key), e.p + j, e.len - j);
        if (rc)
            return rc;
    }
    return HC_OK;
}

int hordec_ssl_optfile_parse(const char *text, size_t len, const char *origin, hordec_tls_opts *o, char *err,
                             size_t errlen)
{
    hc_buf b = {0};
    char perr[256];
    int rc = hordec_term_text_parse(text, len, &b, perr, sizeof perr);
    if (rc) {
        snprintf(err, errlen, "%s: %s", origin, rc == HC_ENOMEM ? "out of memory" : perr);
        hc_buf_free(&b);
        return rc;
    }
    ctx c = {.o = o, .origin = origin, .err = err, .errlen = errlen};
    hc_iter it;
    size_t i = 0;
    bool seen[2] = {false, false};
    if (hc_iter_list(&it, b.data, b.len, &i)) {
        snprintf(err, errlen, "%s: want a list [{server, [...]}, {client, [...]}]", origin);
        rc = HC_EINVAL;
    }
    hc_span e;
    while (rc == HC_OK && hc_iter_next(&it, &e)) {
        static const char *const names[] = {"server", "client"};
        size_t j = 0, k;
        uint32_t arity;
        if (hc_dec_tuple_header(e.p, e.len, &j, &arity) || arity != 2 ||
            hc_dec_atom_index(e.p, e.len, &j, names, 2, &k)) {
            snprintf(err, errlen, "%s: want a list of {server, [...]} and {client, [...]} only", origin);
            rc = HC_EINVAL;
            break;
        }
        if (seen[k]) {
            snprintf(err, errlen, "%s: the %s section is given twice", origin, names[k]);
            rc = HC_EINVAL;
            break;
        }
        seen[k] = true;
        c.section = names[k];
        rc = section(&c, k == 0 ? &o->cfg.server : &o->cfg.client, k == 0, e.p + j, e.len - j);
    }
    hc_buf_free(&b);
    if (rc == HC_OK && !seen[0]) {
        snprintf(err, errlen, "%s: no {server, [...]} section: hordec needs a certificate to accept connections",
                 origin);
        rc = HC_EINVAL;
    }
    return rc;
}

int hordec_ssl_optfile_load(const char *path, hordec_tls_opts *o, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read ssl_dist_optfile %s: %s", path, strerror(errno));
        return HC_EIO;
    }
    char *text = malloc(MAX_FILE_BYTES + 1);
    size_t n = text ? fread(text, 1, MAX_FILE_BYTES + 1, f) : 0;
    fclose(f);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return HC_ENOMEM;
    }
    if (n > MAX_FILE_BYTES) {
        free(text);
        snprintf(err, errlen, "ssl_dist_optfile %s: larger than %d bytes", path, MAX_FILE_BYTES);
        return HC_EINVAL;
    }
    char origin[512];
    snprintf(origin, sizeof origin, "ssl_dist_optfile %s", path);
    int rc = hordec_ssl_optfile_parse(text, n, origin, o, err, errlen);
    free(text);
    return rc;
}

int hordec_tls_from_flags(const char *cert, const char *key, const char *ca, const char *verify, hordec_tls_opts *o,
                          char *err, size_t errlen)
{
    bool peer;
    if (!verify)
        peer = ca != NULL;
    else if (strcmp(verify, "peer") == 0)
        peer = true;
    else if (strcmp(verify, "none") == 0)
        peer = false;
    else {
        snprintf(err, errlen, "--tls-verify wants peer or none, got '%s'", verify);
        return HC_EINVAL;
    }
    if (!cert) {
        snprintf(err, errlen, "--tls-key, --tls-ca and --tls-verify need --tls-cert");
        return HC_EINVAL;
    }
    if (peer && !ca) {
        snprintf(err, errlen, "--tls-verify peer needs --tls-ca (the CA that peers' certificates chain to)");
        return HC_EINVAL;
    }
    hc_tls_side s = {.certfile = cert, .keyfile = key, .cacertfile = ca, .verify_peer = peer};
    o->cfg.client = s;
    s.fail_if_no_peer_cert = peer; /* mutual authentication */
    o->cfg.server = s;
    return HC_OK;
}

void hordec_tls_opts_free(hordec_tls_opts *o)
{
    for (size_t i = 0; i < o->nowned; i++)
        free(o->owned[i]);
    memset(o, 0, sizeof *o);
}

int hordec_tls_from_options(const struct hordec_options *opts, hordec_tls_opts *o, char *err, size_t errlen)
{
    int rc;
    if (opts->ssl_dist_optfile)
        rc = hordec_ssl_optfile_load(opts->ssl_dist_optfile, o, err, errlen);
    else if (opts->tls_cert)
        rc = hordec_tls_from_flags(opts->tls_cert, opts->tls_key, opts->tls_ca, opts->tls_verify, o, err, errlen);
    else
        return 0;
    if (rc) {
        hordec_tls_opts_free(o);
        return rc;
    }
    return 1;
}
