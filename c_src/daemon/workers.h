/* workers.h — small C processes the control process spawns on request: an echo worker, a watcher
 * (monitors a pid and reports its DOWN) and a linker (links a pid and reports its EXIT). They make the
 * runtime's process model reachable from Elixir, which is how the interop suite exercises it. */
#ifndef HORDEC_WORKERS_H
#define HORDEC_WORKERS_H

#include "hordec/hc_runtime.h"

/* Each returns HC_OK with the new process in *out, or an HC_E* code (then nothing was started). */
int hordec_worker_spawn(hc_rt *rt, hc_proc **out);
/* Monitors `target`; on DOWN sends {hordec_down, Ref, Target, Reason} to `notify`. */
int hordec_watch(hc_rt *rt, const hc_pid *target, const hc_pid *notify, hc_ref *ref_out);
/* Links to `target`; on its exit sends {hordec_exit, Self, Target, Reason} to `notify`. */
int hordec_link(hc_rt *rt, const hc_pid *target, const hc_pid *notify, hc_proc **out);

#endif
