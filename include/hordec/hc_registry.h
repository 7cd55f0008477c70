/* hc_registry.h — the distributed process registry (Horde.Registry's semantics, Elixir Registry's :duplicate
 * keys): the sans-I/O core that a host runs as a replica, and the calls a C process uses to register, look up
 * and unregister names in a replica running in its own runtime.
 *
 * docs/registry.md is the contract: the replicated state (CRDT keys), the observable map a change stream
 * carries, every request and reply, and how liveness, failover and conflicts work. In short:
 *
 *   {attach, ClientPid, Owned}            -> {ok, #{keys => unique | duplicate, replica => ReplicaPid}}
 *   {register, Key, Pid, Value, Owner}    -> {ok, ReplicaPid} | {error, {already_registered, Pid}}
 *                                            | {error, not_attached} (client Owner without attach) | {error, badarg}
 *   {unregister, Key, Pid}                -> ok          {unregister_keys, Pid, [Key]} -> ok
 *   {update_value, Key, Pid, Value}       -> ok | error  {pids_down, Owner, [Pid]}     -> ok
 *   {put_meta, K, V} | {delete_meta, K}   -> ok          {set_members | add_members, [{Name, Node}]} -> ok
 *   members -> [{Name, Node}]             {lookup, Key} -> [{Pid, Value}]
 *   anything else (or malformed)          -> {error, badarg}, and nothing changes
 *
 * Owner is the client process that vouches for Pid (it monitors Pid on Pid's node), or the atom hordec for a
 * process of the replica's own node, which the replica then monitors itself. */
#ifndef HORDEC_HC_REGISTRY_H
#define HORDEC_HC_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hordec/hc_common.h"
#include "hordec/hc_core.h"
#include "hordec/hc_crdt.h"
#include "hordec/hc_export.h"
#include "hordec/hc_term.h"

HC_BEGIN_DECLS

/* ------------------------------------------------------------------ the core */

typedef enum hc_registry_keys {
    HC_REGISTRY_UNIQUE = 1,    /* a Key names at most one process; concurrent registrations resolve to one */
    HC_REGISTRY_DUPLICATE = 2, /* a Key names any number of processes (each at most once) */
} hc_registry_keys;

typedef struct hc_registry_config {
    hc_atom name;          /* the registry: the replica's registered name, RegistryName in conflict exits */
    hc_atom node;          /* this replica's node ({name, node} is how members name it) */
    hc_pid self;           /* the replica's pid, named in replies (all zero until known: hc_registry_core_set_self) */
    hc_registry_keys keys; /* every replica of one registry must use the same kind */
    hc_crdt_config crdt;   /* the engine underneath; replica_id must be new for every start */
    size_t slice; /* big work (an attach re-asserting many entries, the deletes after a death) is done this many
                   * items a turn of the host's loop, other requests waiting meanwhile: 0 (the default) is 4096 */
} hc_registry_config;

/* Fills cfg: the given identity and kind, the engine's defaults for replica_id (non-zero, fresh). */
void hc_registry_config_init(hc_registry_config *cfg, hc_atom name, hc_atom node, hc_registry_keys keys,
                             uint64_t replica_id);

/* The registry as an hc_core (hc_core.h). Its observable map (change streams) is docs/registry.md §3. */
extern const hc_core_ops hc_registry_core_ops;
/* Creates a replica: an empty registry whose only member is itself. HC_OK, HC_EINVAL (name or node 0, a bad
 * kind, or hc_crdt_new's reasons) or HC_ENOMEM. The new core may already hold effects (its own membership):
 * the host drains them after its first input, as it drains every effect. */
int hc_registry_core_new(const hc_registry_config *cfg, hc_time now, void **out);
/* Tells the core its pid once the host knows it (replies to attach and register name it). */
void hc_registry_core_set_self(void *core, const hc_pid *self);
hc_registry_keys hc_registry_core_keys(const void *core);
/* The engine inside (tests, the simulator, stats). */
hc_crdt *hc_registry_core_engine(void *core);
/* Checks that the core's indexes agree with its CRDT map: every well-formed {r, Key, Pid} is indexed once,
 * each :unique Key shows exactly its winner, owner counts and monitors add up. HC_OK or HC_ESTATE with a
 * description in why (may be NULL). Slow: O(map). For tests and the simulator. */
int hc_registry_core_check(void *core, char *why, size_t why_len);

/* ------------------------------------------------------------------ C processes as registry users
 *
 * A C process registers ITSELF (Owner hordec): the replica, running in the same runtime, monitors it and
 * removes its names when it exits. Each call is a GenServer call to the replica registered as `registry` on
 * this node, answered through the callback on a later loop iteration, exactly once — unless the caller exits
 * first (then never). The request storage `req` is the caller's and must stay valid until then (keep it in
 * the process state); it may be reused once its callback ran. Keys and values are ETF without the version byte
 * (hc_enc_* into an hc_buf builds them); key identity is the bytes, so encode a key the way the BEAM does
 * (term_to_binary) to meet Elixir users of the same registry. */

typedef struct hc_rt hc_rt;     /* hc_runtime.h */
typedef struct hc_proc hc_proc; /* hc_runtime.h */

#define HC_REGISTRY_CALL_TIMEOUT_MS 5000u

/* One registration of a key, as lookup reports it. */
typedef struct hc_registry_match {
    hc_pid pid;
    const uint8_t *value; /* ETF, valid during the callback */
    size_t value_len;
} hc_registry_match;

typedef struct hc_registry_result {
    /* HC_OK: done (register: registered; unregister: gone; lookup: see matches).
     * HC_EEXIST: register of a :unique key held by another process (`pid`), or already held by the caller in a
     *            :duplicate registry (`pid` is the caller).
     * HC_EINVAL: the replica refused the arguments (not one well-formed term each).
     * HC_ENOPROC: no registry replica named `registry` runs on this node.
     * HC_ETIMEOUT: no answer within HC_REGISTRY_CALL_TIMEOUT_MS.   HC_EDECODE: an answer we did not expect. */
    int status;
    hc_pid pid;                       /* register: the replica (HC_OK) or the holder (HC_EEXIST) */
    const hc_registry_match *matches; /* lookup with HC_OK: valid during the callback */
    size_t n_matches;
} hc_registry_result;

typedef void (*hc_registry_cb)(hc_rt *rt, hc_proc *caller, const hc_registry_result *res, void *ud);

/* A request in flight: storage the caller provides (see above). Fields are private. */
typedef struct hc_registry_req {
    hc_registry_cb cb_;
    void *ud_;
    int op_;
} hc_registry_req;

/* Registers the caller under `key` with `value`. HC_OK (cb will run), HC_EINVAL (NULL arguments, caller dead),
 * HC_ENOMEM, or what hc_gen_call returns. */
int hc_registry_register(hc_rt *rt, hc_proc *caller, hc_registry_req *req, hc_atom registry, const uint8_t *key,
                         size_t klen, const uint8_t *value, size_t vlen, hc_registry_cb cb, void *ud);
/* Removes the caller's registration under `key` (a process can unregister only its own keys). */
int hc_registry_unregister(hc_rt *rt, hc_proc *caller, hc_registry_req *req, hc_atom registry, const uint8_t *key,
                           size_t klen, hc_registry_cb cb, void *ud);
/* The processes registered under `key` with their values ([] when none). */
int hc_registry_lookup(hc_rt *rt, hc_proc *caller, hc_registry_req *req, hc_atom registry, const uint8_t *key,
                       size_t klen, hc_registry_cb cb, void *ud);

HC_END_DECLS
#endif
