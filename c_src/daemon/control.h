/* control.h — the `hordec` control process: ping, echo, info, fault injection and the diagnostic
 * calls the interop tests use (spawn a worker, watch or link a pid, call another node). */
#ifndef HORDEC_CONTROL_H
#define HORDEC_CONTROL_H

#include "hordec/hc_runtime.h"

int hordec_control_start(hc_rt *rt, uint64_t started_ms);

#endif
