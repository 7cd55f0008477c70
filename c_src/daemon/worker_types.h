/* worker_types.h — the worker types hordec ships (hc_worker.h), for demos and tests:
 *
 *   "echo"  init(Arg) keeps Arg.
 *           calls: {echo, T} -> T;  get_arg -> Arg
 *   "kv"    a small key-value store. init(Arg): a map, or a list of {Key, Value}, gives the first pairs;
 *           anything else starts empty. Keys and values are any terms; keys are compared by their bytes.
 *           calls: {put, K, V} -> ok | {error, full};  {get, K} -> {ok, V} | error;  {delete, K} -> ok;
 *                  size -> N;  keys -> [K]
 *
 * and in both, to end or crash one on purpose:
 *           call {exit, R} -> ok, then the worker exits with R;  call crash -> no reply, it exits with
 *           {crash, TypeName};  cast {exit, R} and message {exit, R} -> it exits with R;
 *           any other call -> {error, {unknown_call, Request}}; other casts and messages are ignored. */
#ifndef HORDEC_DAEMON_WORKER_TYPES_H
#define HORDEC_DAEMON_WORKER_TYPES_H

#include "hordec/hc_runtime.h"
#include "hordec/hc_worker.h"

/* The most pairs one "kv" worker holds; a put beyond it answers {error, full}. */
#define HORDEC_KV_MAX_ENTRIES (1u << 20)

/* Registers "echo" and "kv" with rt. HC_OK, or the first error of hc_worker_type_register (HC_EEXIST if one of
 * the names is taken). */
int hordec_worker_types_register(hc_rt *rt);

#endif
