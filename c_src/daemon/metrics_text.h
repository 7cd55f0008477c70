/* metrics_text.h — the Prometheus text exposition format (version 0.0.4), encoded into an hc_buf.
 *
 * A scrape is a sequence of metric families: each starts with its `# HELP name text` and `# TYPE name type` lines
 * and is followed by its samples, `name{label="value",...} value`, one per line. Names must match
 * [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* (not starting with "__", reserved); in label
 * values \ " and newline are escaped as \\ \" \n, in HELP text \ and newline as \\ \n. Every encoder checks its
 * names (HC_EINVAL, nothing written) and reports the buffer's sticky error otherwise. */
#ifndef HORDEC_DAEMON_METRICS_TEXT_H
#define HORDEC_DAEMON_METRICS_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hordec/hc_common.h"

#define HORDEC_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef enum { HORDEC_PROM_COUNTER, HORDEC_PROM_GAUGE } hordec_prom_type;

typedef struct hordec_prom_label {
    const char *name;
    const char *value; /* any UTF-8: escaped as needed */
} hordec_prom_label;

bool hordec_prom_name_ok(const char *name);
bool hordec_prom_label_name_ok(const char *name);

/* The HELP and TYPE lines that open family `name`. */
int hordec_prom_family(hc_buf *b, const char *name, hordec_prom_type type, const char *help);
/* One sample of family `name` with n labels. */
int hordec_prom_sample_u64(hc_buf *b, const char *name, const hordec_prom_label *labels, size_t n, uint64_t value);
int hordec_prom_sample_f64(hc_buf *b, const char *name, const hordec_prom_label *labels, size_t n, double value);

#endif
