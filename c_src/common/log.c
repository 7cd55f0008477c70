/* log.c — minimal leveled logging to stderr, one write per line so lines from a dying process stay whole. */
#include "hordec/hc_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hordec/hc_common.h"

static hc_log_level current = HC_LOG_INFO;
static const char *const names[] = {"error", "warn", "info", "debug"};

void hc_log_set_level(hc_log_level level) { current = level; }
hc_log_level hc_log_get_level(void) { return current; }

int hc_log_parse_level(const char *s, hc_log_level *out)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (hc_log_level)i;
            return HC_OK;
        }
    return HC_EINVAL;
}

void hc_log(hc_log_level level, const char *fmt, ...)
{
    if (level > current)
        return;
    char line[1024];
    int n = snprintf(line, sizeof line, "%s hordec: ", names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
