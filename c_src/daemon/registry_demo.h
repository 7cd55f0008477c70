/* registry_demo.h — a diagnostic C process that registers itself in a registry replica of this node through
 * the public C API (hc_registry.h), so interop tests can look it up and call it from Elixir. */
#ifndef HORDEC_DAEMON_REGISTRY_DEMO_H
#define HORDEC_DAEMON_REGISTRY_DEMO_H

#include "hordec/hc_runtime.h"

/* Spawns the process; it registers itself under `key` (ETF, copied) with the value {hordec_demo, Node} in the
 * replica registered as `registry`, and then answers `from` itself: {ok, Pid} once registered, or
 * {error, {already_registered, Holder}} | {error, noproc} (no such replica) | {error, Code} — and exits when
 * registering failed. Once registered it answers GenServer calls:
 *   ping -> pong            {echo, T} -> T
 *   {lookup, Key} -> [{Pid, Value}] (hc_registry_lookup)     {unregister, Key} -> ok (hc_registry_unregister)
 *   {register, Key} -> ok | {error, ...} (one more name)     stop -> ok, then it exits (normal)
 * HC_OK (from will be answered) or an error (it will not: the caller answers). */
int hordec_registry_demo(hc_rt *rt, hc_atom registry, const uint8_t *key, size_t klen, const hc_gen_from *from);

#endif
