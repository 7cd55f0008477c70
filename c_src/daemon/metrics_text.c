/* metrics_text.c — see metrics_text.h. */
#include "daemon/metrics_text.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool name_char(char c, bool first, bool colon)
{
    if (c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    if (c == ':')
        return colon;
    return !first && c >= '0' && c <= '9';
}

static bool name_ok(const char *s, bool colon)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++)
        if (!name_char(*p, p == s, colon))
            return false;
    return true;
}

bool hordec_prom_name_ok(const char *name) { return name_ok(name, true); }
bool hordec_prom_label_name_ok(const char *name) { return name_ok(name, false) && strncmp(name, "__", 2) != 0; }

static void put(hc_buf *b, const char *s) { hc_buf_append(b, s, strlen(s)); }

/* Escapes \ and newline, and " too in label values. */
static void put_escaped(hc_buf *b, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" : quote && *s == '"' ? "\\\"" : NULL;
        if (!esc)
            continue;
        hc_buf_append(b, run, (size_t)(s - run));
        put(b, esc);
        run = s + 1;
    }
    hc_buf_append(b, run, (size_t)(s - run));
}

int hordec_prom_family(hc_buf *b, const char *name, hordec_prom_type type, const char *help)
{
    if (!hordec_prom_name_ok(name))
        return HC_EINVAL;
    put(b, "# HELP ");
    put(b, name);
    put(b, " ");
    put_escaped(b, help ? help : "", false);
    put(b, "\n# TYPE ");
    put(b, name);
    put(b, type == HORDEC_PROM_COUNTER ? " counter\n" : " gauge\n");
    return b->err;
}

static int sample_head(hc_buf *b, const char *name, const hordec_prom_label *labels, size_t n)
{
    if (!hordec_prom_name_ok(name))
        return HC_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!hordec_prom_label_name_ok(labels[i].name))
            return HC_EINVAL;
    put(b, name);
    if (n) {
        put(b, "{");
        for (size_t i = 0; i < n; i++) {
            if (i)
                put(b, ",");
            put(b, labels[i].name);
            put(b, "=\"");
            put_escaped(b, labels[i].value ? labels[i].value : "", true);
            put(b, "\"");
        }
        put(b, "}");
    }
    put(b, " ");
    return HC_OK;
}

int hordec_prom_sample_u64(hc_buf *b, const char *name, const hordec_prom_label *labels, size_t n, uint64_t value)
{
    int rc = sample_head(b, name, labels, n);
    if (rc)
        return rc;
    char num[32];
    snprintf(num, sizeof num, "%" PRIu64 "\n", value);
    put(b, num);
    return b->err;
}

int hordec_prom_sample_f64(hc_buf *b, const char *name, const hordec_prom_label *labels, size_t n, double value)
{
    int rc = sample_head(b, name, labels, n);
    if (rc)
        return rc;
    char num[40];
    if (isnan(value))
        snprintf(num, sizeof num, "NaN");
    else if (isinf(value))
        snprintf(num, sizeof num, "%s", value > 0 ? "+Inf" : "-Inf");
    else /* the shortest form that reads back as the same double: 0.25, 1.5e-05, 1764770000.123 */
        for (int prec = 6; prec <= 17; prec++) {
            snprintf(num, sizeof num, "%.*g", prec, value);
            if (strtod(num, NULL) == value)
                break;
        }
    put(b, num);
    put(b, "\n");
    return b->err;
}
