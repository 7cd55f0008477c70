/* control_req.h — what the control process's request handlers share (control.c, control_replicas.c).
 *
 * The control process answers each request through a table of {atom, arity, handler} (hc_req_match). A
 * handler gets the request's context and its argument cursor; it replies and returns HC_OK, or returns an
 * error WITHOUT replying when the arguments are malformed, and the dispatcher then answers
 * {error, {unknown_request, Request}}. Either way every request gets exactly one reply. */
#ifndef HORDEC_DAEMON_CONTROL_REQ_H
#define HORDEC_DAEMON_CONTROL_REQ_H

#include "hordec/hc_runtime.h"

typedef struct control_req {
    hc_rt *rt;
    hc_proc *self;
    const hc_gen_from *from;
    uint64_t started_ms;
} control_req;

/* {ok, Pid} of a process we just started, or {error, enomem} if there is none. */
void control_reply_ok_pid(const control_req *c, const hc_proc *p);

/* The replica lifecycle requests (control_replicas.c). */
int control_crdt_start(void *ctx, hc_req_args *a);
int control_crdt_stop(void *ctx, hc_req_args *a);
int control_registry_start(void *ctx, hc_req_args *a);
int control_registry_stop(void *ctx, hc_req_args *a);
int control_registry_demo(void *ctx, hc_req_args *a);
int control_supervisor_start(void *ctx, hc_req_args *a);
int control_supervisor_stop(void *ctx, hc_req_args *a);

/* {start_worker, TypeBinary, Arg} (control_workers.c). */
int control_start_worker(void *ctx, hc_req_args *a);

#endif
