/* term_text.c — see term_text.h. A recursive-descent parser over a small tokenizer; containers are
 * encoded into a buffer of their own first, since their headers carry the element count. */
#include "daemon/term_text.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hordec/hc_term.h"

#define MAX_DEPTH 32    /* configuration nests a few levels; a deeper file is a mistake, not a need */
#define MAX_STRING 4096 /* a path or a name */

typedef struct parser {
    const char *s;
    size_t len, i;
    char *err;
    size_t errlen;
} parser;

static int fail(parser *p, const char *what)
{
    size_t line = 1, col = 1;
    for (size_t k = 0; k < p->i && k < p->len; k++) {
        if (p->s[k] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    snprintf(p->err, p->errlen, "line %zu, column %zu: %s", line, col, what);
    return HC_EDECODE;
}

/* Skips blanks and % comments; returns the next character, or 0 at the end. */
static char peek(parser *p)
{
    for (;;) {
        while (p->i < p->len && isspace((unsigned char)p->s[p->i]))
            p->i++;
        if (p->i < p->len && p->s[p->i] == '%') {
            while (p->i < p->len && p->s[p->i] != '\n')
                p->i++;
            continue;
        }
        return p->i < p->len ? p->s[p->i] : 0;
    }
}

/* The body of a quoted atom or string up to `quote`, with Erlang's common escapes, into buf. */
static int quoted(parser *p, char quote, char *buf, size_t cap, size_t *n)
{
    p->i++; /* the opening quote */
    *n = 0;
    while (p->i < p->len && p->s[p->i] != quote) {
        char c = p->s[p->i++];
        if (c == '\\') {
            if (p->i >= p->len)
                break;
            char e = p->s[p->i++];
            c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 's' ? ' ' : e;
            if (!strchr("ntrs\\\"'", e))
                return fail(p, "unsupported escape sequence");
        }
        if (*n + 1 >= cap)
            return fail(p, "quoted text too long");
        buf[(*n)++] = c;
    }
    if (p->i >= p->len)
        return fail(p, quote == '"' ? "unterminated string" : "unterminated quoted atom");
    p->i++; /* the closing quote */
    buf[*n] = 0;
    return HC_OK;
}

static int term(parser *p, hc_buf *out, int depth);

/* Elements up to `close`, separated by commas; *count is how many. */
static int elements(parser *p, char close, hc_buf *body, uint32_t *count, int depth)
{
    *count = 0;
    p->i++; /* the opening bracket */
    if (peek(p) == close) {
        p->i++;
        return HC_OK;
    }
    for (;;) {
        int rc = term(p, body, depth + 1);
        if (rc)
            return rc;
        (*count)++;
        char c = peek(p);
        if (c == ',') {
            p->i++;
            continue;
        }
        if (c == close) {
            p->i++;
            return HC_OK;
        }
        if (c == '|')
            return fail(p, "improper lists ('|') are not supported");
        return fail(p, close == ']' ? "expected ',' or ']'" : "expected ',' or '}'");
    }
}

static int container(parser *p, hc_buf *out, int depth)
{
    char open = p->s[p->i];
    hc_buf body = {0};
    uint32_t n;
    int rc = elements(p, open == '[' ? ']' : '}', &body, &n, depth);
    if (rc == HC_OK) {
        if (open == '{')
            rc = hc_enc_tuple_header(out, n);
        else if (n)
            rc = hc_enc_list_header(out, n);
        if (rc == HC_OK)
            rc = hc_enc_raw(out, body.data, body.len);
        if (rc == HC_OK && open == '[')
            rc = hc_enc_nil(out);
        if (rc)
            rc = HC_ENOMEM;
    }
    hc_buf_free(&body);
    return rc;
}

static int binary(parser *p, hc_buf *out)
{
    p->i += 2; /* << */
    char buf[MAX_STRING];
    size_t n = 0;
    if (peek(p) == '"') {
        int rc = quoted(p, '"', buf, sizeof buf, &n);
        if (rc)
            return rc;
    }
    if (peek(p) != '>' || p->i + 1 >= p->len || p->s[p->i + 1] != '>')
        return fail(p, "only <<\"text\">> binaries are supported");
    p->i += 2;
    return hc_enc_binary(out, buf, n) ? HC_ENOMEM : HC_OK;
}

static int integer(parser *p, hc_buf *out)
{
    const char *start = p->s + p->i;
    size_t k = p->i + (p->s[p->i] == '-');
    while (k < p->len && isdigit((unsigned char)p->s[k]))
        k++;
    if (k < p->len && (p->s[k] == '.' && k + 1 < p->len && isdigit((unsigned char)p->s[k + 1])))
        return fail(p, "floats are not supported");
    if (k < p->len && (p->s[k] == '#' || isalpha((unsigned char)p->s[k])))
        return fail(p, "only decimal integers are supported");
    char num[32];
    size_t n = k - p->i;
    if (n >= sizeof num)
        return fail(p, "integer too large");
    memcpy(num, start, n);
    num[n] = 0;
    errno = 0;
    long long v = strtoll(num, NULL, 10);
    if (errno)
        return fail(p, "integer too large");
    p->i = k;
    return hc_enc_long(out, v) ? HC_ENOMEM : HC_OK;
}

/* "string" (as a binary) or 'quoted atom'. */
static int quoted_term(parser *p, char c, hc_buf *out)
{
    char buf[MAX_STRING];
    size_t n;
    int rc = quoted(p, c, buf, sizeof buf, &n);
    if (rc)
        return rc;
    if (c == '"')
        return hc_enc_binary(out, buf, n) ? HC_ENOMEM : HC_OK;
    if (n > 255)
        return fail(p, "atom too long");
    return hc_enc_atom_bytes(out, buf, n) ? fail(p, "invalid atom") : HC_OK;
}

static int term(parser *p, hc_buf *out, int depth)
{
    if (depth > MAX_DEPTH)
        return fail(p, "terms nested too deeply");
    char c = peek(p);
    if (c == '[' || c == '{')
        return container(p, out, depth);
    if (c == '"' || c == '\'')
        return quoted_term(p, c, out);
    if (c == '<' && p->i + 1 < p->len && p->s[p->i + 1] == '<')
        return binary(p, out);
    if (isdigit((unsigned char)c) || (c == '-' && p->i + 1 < p->len && isdigit((unsigned char)p->s[p->i + 1])))
        return integer(p, out);
    if (islower((unsigned char)c)) {
        size_t k = p->i;
        while (k < p->len && (isalnum((unsigned char)p->s[k]) || p->s[k] == '_' || p->s[k] == '@'))
            k++;
        if (k - p->i > 255)
            return fail(p, "atom too long");
        int rc = hc_enc_atom_bytes(out, p->s + p->i, k - p->i);
        p->i = k;
        return rc ? HC_ENOMEM : HC_OK;
    }
    if (!c)
        return fail(p, "unexpected end of file: a term was expected");
    if (isupper((unsigned char)c) || c == '_')
        return fail(p, "variables are not allowed in a term file");
    if (c == '#')
        return fail(p, "maps and records are not supported");
    return fail(p, "unexpected character");
}

int hordec_term_text_parse(const char *text, size_t len, hc_buf *out, char *err, size_t errlen)
{
    parser p = {.s = text, .len = len, .err = err, .errlen = errlen};
    int rc = term(&p, out, 0);
    if (rc)
        return rc;
    if (peek(&p) == '.') {
        p.i++;
        /* "1.5" is caught by integer(); here the dot ends the term. */
    }
    if (peek(&p))
        return fail(&p, "more than one term (a ssl_dist_optfile holds one list)");
    return HC_OK;
}
