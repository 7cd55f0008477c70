/* stdin_watch.h — `hordec --watch-stdin`: shut down when stdin reaches end of file.
 *
 * A parent that runs hordec through a pipe (HordeC.Daemon runs it as an Erlang port) holds the write end of
 * hordec's stdin. Whatever way the parent goes — a clean exit, a crash, kill -9 — the kernel closes that end, so
 * end of file on stdin is the one signal that always arrives: hordec then stops as on SIGTERM and never outlives
 * its owner. Bytes read from stdin are ignored. */
#ifndef HORDEC_STDIN_WATCH_H
#define HORDEC_STDIN_WATCH_H

#include <stdbool.h>

#include "hordec/hc_runtime.h"

/* Starts a thread that blocks reading stdin and calls hc_rt_stop(rt) at end of file (or on a read error).
 * HC_OK, or HC_ENOMEM when no thread could be started. */
int hordec_stdin_watch_start(hc_rt *rt);
/* Detaches the watcher from `rt` (call before hc_rt_free: the thread must never see a freed runtime). */
void hordec_stdin_watch_detach(void);
/* True once the watcher saw stdin close. */
bool hordec_stdin_closed(void);

#endif
