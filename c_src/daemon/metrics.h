/* metrics.h — `hordec --metrics-port N [--metrics-bind ADDR]`: Prometheus metrics of this node over HTTP.
 *
 * A small HTTP/1.1 server on the runtime's loop (no thread): GET or HEAD /metrics answers the text format
 * (metrics_text.h), any other path 404, any other method 405. Bounded: a request (line and headers) of at most
 * HORDEC_METRICS_MAX_REQUEST bytes (else 431), at most HORDEC_METRICS_MAX_CONNS connections at once (more are
 * closed at once), a connection idle or unfinished for HORDEC_METRICS_IDLE_MS is closed. Keep-alive as HTTP/1.1
 * has it; a request with a body is refused (400). README.md's "Metrics" section lists every metric. */
#ifndef HORDEC_DAEMON_METRICS_H
#define HORDEC_DAEMON_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "hordec/hc_runtime.h"

#define HORDEC_METRICS_MAX_REQUEST 8192
#define HORDEC_METRICS_MAX_CONNS 16
#define HORDEC_METRICS_IDLE_MS 10000

typedef struct hordec_metrics hordec_metrics;

/* Listens on bind_addr:port (an IPv4 or IPv6 address; port 0 picks a free one, see hordec_metrics_port) and
 * serves from rt's loop. HC_OK with the server in *out; HC_EINVAL (not an IP address) or HC_EIO (cannot listen,
 * e.g. the port is taken) with a message in err. */
int hordec_metrics_start(hc_rt *rt, const char *bind_addr, uint16_t port, hordec_metrics **out, char *err,
                         size_t errlen);
uint16_t hordec_metrics_port(const hordec_metrics *m);
/* Closes the listener and every connection. Call on the loop thread before hc_rt_free. NULL is fine. */
void hordec_metrics_stop(hc_rt *rt, hordec_metrics *m);

/* Appends every metric of the node running rt, in the text format, to out (the body of a scrape).
 * start_unix_s is the process start time reported as process_start_time_seconds. HC_OK or out's error. */
int hordec_metrics_render(hc_rt *rt, double start_unix_s, hc_buf *out);

#endif
