/* hc_supervisor.h — the distributed dynamic supervisor (Horde.DynamicSupervisor's semantics, children on BEAM
 * nodes and C workers inside hordec nodes): the sans-I/O core a host runs as a replica.
 *
 * docs/supervisor.md is the contract: members and statuses, the replicated state (CRDT keys), placement, every
 * request and reply, the messages to BEAM members, and who restarts what when children, members or replicas
 * die. In short:
 *
 *   {attach, ClientPid, Opts, Owned}              -> {ok, #{replica => Pid, member => {Name, Node}}}
 *   {start_child, {Kind, Restart, Hash, Body}}    -> {ok, Pid} | {ok, Pid, Info} | ignore | {error, Reason}
 *   {terminate_child, Pid}                        -> ok | {error, not_found}
 *   {child_restarted, ClientPid, Id, NewPid}      -> ok     {child_exited, ClientPid, Id, delete | relinquish} -> ok
 *   {set_status, ClientPid, shutting_down}        -> ok     {detach, ClientPid} -> ok
 *   {set_options, Opts} -> ok    {set_members | add_members, [{Name, Node}]} -> ok    members -> [{Name, Node}]
 *   which_children -> [...]      count_children -> #{...}
 *   anything else (or malformed)                  -> {error, badarg}, and nothing changes
 *
 * C workers of the replica's own node are started and stopped through HC_EFF_LOCAL actions, which the process
 * hosting the core carries out (hc_worker.h):
 *
 *   {start_worker, Op, Type, Arg}   the result, fed back with ops->local: {worker_started, Op, Result},
 *                                   Result = {ok, Pid} | ignore | {error, Reason}
 *   {stop_worker, Pid, Reason}      no result; the core no longer watches Pid when it asks
 *
 * The core monitors the workers it started (HC_EFF_MONITOR), so their exits come back as monitor downs. */
#ifndef HORDEC_HC_SUPERVISOR_H
#define HORDEC_HC_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hordec/hc_common.h"
#include "hordec/hc_core.h"
#include "hordec/hc_crdt.h"
#include "hordec/hc_export.h"
#include "hordec/hc_term.h"

HC_BEGIN_DECLS

typedef enum hc_sup_distribution {
    HC_SUP_UNIFORM = 0, /* libring's hash ring over the alive members */
    HC_SUP_QUORUM,      /* the same while the members have quorum; nothing without */
    HC_SUP_RANDOM,      /* a random alive member */
} hc_sup_distribution;

#define HC_SUP_INFINITY UINT64_MAX

/* Options every member of one supervisor should share (docs/supervisor.md §4, Opts). */
typedef struct hc_sup_options {
    hc_sup_distribution distribution;
    bool active_redistribution; /* move running children when membership changes */
    uint32_t max_restarts;      /* per member, within max_seconds (default 3 in 5 s) */
    uint32_t max_seconds;
    uint64_t max_children; /* per member; HC_SUP_INFINITY: no limit (0: none may start) */
} hc_sup_options;

typedef struct hc_supervisor_config {
    hc_atom name;              /* the supervisor: the replica's registered name */
    hc_atom node;              /* this replica's node ({name, node} is how members name it) */
    hc_pid self;               /* its pid (all zero until known: hc_supervisor_core_set_self) */
    hc_sup_options opt;        /* defaults; attach and set_options replace them */
    uint32_t start_timeout_ms; /* how long a start or terminate waits for the member doing it (0: 10 s) */
    /* The C worker types this replica can run (the names registered in its runtime, hc_worker.h): its status
     * advertises them, and placement puts a C child only on a replica that has the child's type. At most 64
     * names of 1..255 bytes; borrowed during hc_supervisor_core_new only. */
    const char *const *worker_types;
    size_t n_worker_types;
    hc_crdt_config crdt; /* the engine underneath; replica_id must be new for every start */
} hc_supervisor_config;

/* Fills cfg with the given identity and the defaults (uniform, passive, 3 restarts in 5 s, no child limit). */
void hc_supervisor_config_init(hc_supervisor_config *cfg, hc_atom name, hc_atom node, uint64_t replica_id);

/* The supervisor as an hc_core (hc_core.h). Its observable map (change streams) is docs/supervisor.md §2. */
extern const hc_core_ops hc_supervisor_core_ops;
/* Creates a replica: empty state, itself its only member, status alive. HC_OK, HC_EINVAL, HC_ENOMEM. */
int hc_supervisor_core_new(const hc_supervisor_config *cfg, hc_time now, void **out);
void hc_supervisor_core_set_self(void *core, const hc_pid *self);
/* Graceful stop of this replica (SIGTERM): status shutting_down, every local worker stopped with reason
 * shutdown and its record relinquished for another member to adopt. The caller keeps the host running until
 * hc_supervisor_core_flushed says the engine has nothing unacknowledged left for the replicas it can still reach
 * (or its own deadline passes). */
void hc_supervisor_core_shutdown(void *core, hc_time now);
bool hc_supervisor_core_flushed(const void *core);
/* True when the core waits for nothing of its own: no start or terminate in flight, and no record naming a member
 * it knows nothing of yet (SUP_UNKNOWN_MEMBER_MS). For the simulator's quiescence. */
bool hc_supervisor_core_settled(const void *core);
/* The engine inside (tests, the simulator, stats). */
hc_crdt *hc_supervisor_core_engine(void *core);
/* Checks the core's indexes against its CRDT map (tests and the simulator; slow). HC_OK or HC_ESTATE. */
int hc_supervisor_core_check(void *core, char *why, size_t why_len);

/* ------------------------------------------------------------------ running a replica in a runtime
 *
 * What hordec does with --supervisor NAME, for a C program that embeds the runtime: a C process registered as
 * `name` hosting a replica, reached by BEAM clients (HordeC.DynamicSupervisor) and by the other replicas. It runs
 * C workers of the worker types registered in this runtime (hc_worker.h) when placement chooses it. */

typedef struct hc_rt hc_rt;     /* hc_runtime.h */
typedef struct hc_proc hc_proc; /* hc_runtime.h */

typedef struct hc_supervisor_replica_opts {
    uint32_t flush_interval_ms;   /* 0 = the engine's default */
    size_t max_message_bytes;     /* 0 = the engine's default; all replicas of a supervisor must agree */
    size_t stream_batch_bytes;    /* 0 = the host's default */
    uint64_t max_clock_offset_ms; /* 0 = the engine's default (hc_crdt_config) */
} hc_supervisor_replica_opts;

/* Starts replica `name` (or finds the running one: *out, HC_OK). HC_EEXIST if the name is taken by a process
 * that is not a supervisor replica; HC_ENOMEM. opts may be NULL. */
int hc_supervisor_replica_start(hc_rt *rt, hc_atom name, const hc_supervisor_replica_opts *opts, hc_proc **out);
bool hc_supervisor_replica_is(const hc_proc *p);
/* Stops replica p: its C workers stop (reason shutdown) and their records are relinquished for the other members
 * to adopt, sent on their way at once; then the process exits with reason shutdown. */
void hc_supervisor_replica_stop(hc_rt *rt, hc_proc *p);
/* Graceful stop of every replica this process started in `rt` (call it after hc_rt_run returned, before
 * hc_rt_free): each marks itself shutting down, stops its C workers and relinquishes their records for the other
 * members to adopt; the loop then runs until every engine has shipped that, or max_wait_ms passed. */
void hc_supervisor_replicas_shutdown(hc_rt *rt, uint32_t max_wait_ms);

HC_END_DECLS
#endif
