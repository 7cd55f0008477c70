/* hc_log.h — one line per event on stderr: "LEVEL hordec: message". */
#ifndef HORDEC_HC_LOG_H
#define HORDEC_HC_LOG_H

#include "hordec/hc_export.h"

HC_BEGIN_DECLS

typedef enum { HC_LOG_ERROR = 0, HC_LOG_WARN = 1, HC_LOG_INFO = 2, HC_LOG_DEBUG = 3 } hc_log_level;

void hc_log_set_level(hc_log_level level);
hc_log_level hc_log_get_level(void);
int hc_log_parse_level(const char *s, hc_log_level *out); /* HC_OK or HC_EINVAL */
void hc_log(hc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define hc_log_error(...) hc_log(HC_LOG_ERROR, __VA_ARGS__)
#define hc_log_warn(...) hc_log(HC_LOG_WARN, __VA_ARGS__)
#define hc_log_info(...) hc_log(HC_LOG_INFO, __VA_ARGS__)
#define hc_log_debug(...)                                                                                              \
    do {                                                                                                               \
        if (hc_log_get_level() >= HC_LOG_DEBUG)                                                                        \
            hc_log(HC_LOG_DEBUG, __VA_ARGS__);                                                                         \
    } while (0)

HC_END_DECLS
#endif
