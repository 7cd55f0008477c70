/* sup.h — the supervisor core's internals, shared by its files (docs/supervisor.md is the contract).
 *
 *   terms.c    the CRDT keys and values of §2: building them, and parsing what the engine hands back
 *              (anything a peer wrote that is not one of ours is invisible, never an error);
 *   members.c  members and statuses: the index, monitors of members, quorum and the placement rings;
 *   children.c the children index, local C workers, orphans (takeover, adoption), redistribution, duplicates;
 *   ops.c      starts and terminates in flight: on this replica, another replica, or a BEAM member;
 *   core.c     hc_core_ops: requests, peer messages, the event pump, effects.
 *
 * The replicated truth is the CRDT map; everything here is an index over it, rebuilt from the engine's change
 * events, plus what only this replica knows: which C workers it runs, and the operations it has in flight. */
#ifndef HORDEC_SUPERVISOR_SUP_H
#define HORDEC_SUPERVISOR_SUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/hmap.h"
#include "hordec/hc_supervisor.h"
#include "supervisor/place.h"

enum { SUP_KIND_C = 1, SUP_KIND_BEAM = 2 };
enum { SUP_NOT_OURS = 1 }; /* sup_peer_message: not a supervisor message (the engine's) */
/* A member that records name but whose {member, M} and {status, M} no replica has (they were lost with the only
 * replica that held them, which crashed mid-sync): after this long it counts as gone and its children are taken
 * over. Long enough for any repair to have delivered the member's own keys. */
#define SUP_UNKNOWN_MEMBER_MS 30000u
enum { SUP_PERMANENT = 1, SUP_TRANSIENT, SUP_TEMPORARY };

/* ------------------------------------------------------------------ terms (terms.c) */

enum { SUP_K_NONE = 0, SUP_K_MEMBER, SUP_K_STATUS, SUP_K_CHILD };

typedef struct sup_ckey {
    int kind;
    hc_atom name, node; /* MEMBER, STATUS */
    uint64_t id;        /* CHILD */
} sup_ckey;

/* A replica advertises the C worker types its runtime has; placement puts a C child only on a replica that has
 * the child's type. At most SUP_MAX_TYPES names of at most 255 bytes each. */
#define SUP_MAX_TYPES 64

typedef struct sup_status_val {
    int kind; /* SUP_KIND_* */
    sup_status status;
    hc_pid pid;
    hc_atom via_name, via_node;
    hc_span types;                     /* the list term [TypeBinary] as written */
    uint64_t type_hash[SUP_MAX_TYPES]; /* sup_type_hash of each */
    uint32_t ntypes;
} sup_status_val;

uint64_t sup_type_hash(const uint8_t *p, size_t len);
bool sup_status_has_type(const sup_status_val *v, uint64_t type_hash);

/* {Kind, Restart, Hash, Body, Member, Pid}; spec = the bytes of {Kind, Restart, Hash, Body} re-encoded as a
 * 4-tuple is built by sup_enc_spec. */
typedef struct sup_child_val {
    int kind, restart;
    uint64_t hash;
    uint64_t type_hash;        /* c: sup_type_hash of Type; beam: 0 */
    hc_span type;              /* c: Type's bytes */
    hc_span kind_restart_hash; /* the encoded Kind, Restart and Hash elements, contiguous */
    hc_span body;
    hc_atom m_name, m_node; /* 0: relinquished */
    hc_pid pid;
} sup_child_val;

int sup_parse_ckey(const uint8_t *p, size_t len, sup_ckey *out);
int sup_parse_status(const uint8_t *p, size_t len, sup_status_val *out);
int sup_parse_child(const uint8_t *p, size_t len, sup_child_val *out);
/* {Kind, Restart, Hash, Body} as start_child and the messages to members carry it. */
int sup_parse_spec(const uint8_t *p, size_t len, size_t *i, sup_child_val *out);
int sup_parse_member(const uint8_t *p, size_t len, size_t *i, hc_atom *name, hc_atom *node);

void sup_enc_key_member(hc_buf *b, hc_atom name, hc_atom node);
void sup_enc_key_status(hc_buf *b, hc_atom name, hc_atom node);
void sup_enc_key_child(hc_buf *b, uint64_t id);
void sup_enc_member(hc_buf *b, hc_atom name, hc_atom node); /* {Name, Node} */
void sup_enc_status(hc_buf *b, const sup_status_val *v);
void sup_enc_spec(hc_buf *b, const sup_child_val *v); /* {Kind, Restart, Hash, Body} */
/* The record value; m_name 0 writes nil, nil. */
void sup_enc_child(hc_buf *b, const sup_child_val *v);
const char *sup_status_name(sup_status s);

/* ------------------------------------------------------------------ members (members.c) */

typedef struct sup_member {
    hc_atom name, node;
    bool listed;            /* {member, M} is true or auto */
    bool auto_join;         /* its value is auto */
    bool removed;           /* its value is removed: it left (set_members, detach, an auto member's death) */
    uint64_t unknown_since; /* records name it but nothing else here does: since when (monotonic ms; 0: known) */
    bool has_status;        /* {status, M} is present and well-formed */
    sup_status_val st;      /* st.types points into types_raw */
    hc_buf types_raw;
    uint64_t mon;   /* our monitor of st.pid (0: none) */
    hc_pid mon_pid; /* the pid that monitor watches */
    /* The pid our own monitor saw die (has_down_pid): a dead status naming it is settled for us. A dead status
     * naming any other pid (written by another replica) is checked by monitoring that pid ourselves; a node coming
     * back clears this (sup_members_node_up), so that a death seen during a partition is checked again. */
    bool has_down_pid;
    bool down_cut_off; /* that DOWN said noconnection */
    hc_pid down_pid;
    bool attached;      /* a BEAM client attached here, and its monitor has not fired */
    hc_pid client;      /* that client */
    bool attach_auto;   /* it attached with auto: it joins the membership by itself */
    bool quorum_sent;   /* told quorum_lost (BEAM members attached here) */
    uint64_t dead_seen; /* UniformQuorumDistribution: since when this replica sees it dead (monotonic ms; 0: not) */
    /* An attach's orphans held back while quorum settles (sup_settled): pairs of child id and pid hash. */
    uint64_t *held_owned;
    size_t n_held_owned;
    bool orphans_held;
} sup_member;

/* ------------------------------------------------------------------ children (children.c) */

typedef struct sup_child {
    /* One per child, so laid out to take 88 bytes (one 96-byte heap chunk): 8-byte fields first, then the
     * 4-byte ones, then the flags. */
    uint64_t id;
    uint64_t hash;
    uint64_t type_hash;     /* c: its worker type's */
    uint64_t mon;           /* our monitor of local_pid */
    uint64_t op;            /* an operation in flight for it (start, adopt, move, terminate): 0 none */
    hc_pid pid;             /* the record's pid */
    hc_pid local_pid;       /* this replica's own C worker for it, when `running` */
    hc_atom m_name, m_node; /* where the record says it runs (0: relinquished) */
    uint8_t kind, restart;  /* SUP_KIND_*, SUP_RESTART_* */
    bool has_record;        /* the engine holds a well-formed record */
    bool running;           /* we run it (local_pid, monitored as `mon`) */
    bool moving;            /* a BEAM member was asked to move it */
    bool parked;            /* a takeover was refused with already_started: wait for a change before trying again */
} sup_child;

/* UniformQuorumDistribution: a death is acted on (its member's children taken over, its temporary children
 * deleted) only once this replica has seen it, with quorum, for this long. A partition's connections fail one
 * at a time: the side that becomes the minority can count a majority after its first losses, and without the wait
 * it took over the far side's children a moment before losing quorum (docs/supervisor.md §5). */
#define SUP_QUORUM_SETTLE_MS 1000

/* ------------------------------------------------------------------ terminated children (ended.c) */

#define SUP_ENDED_MS (5 * 60 * 1000) /* how long a terminated child's id is remembered */
#define SUP_ENDED_MAX 65536          /* at most this many, the oldest forgotten first */

typedef struct sup_ended_entry {
    uint64_t id, until; /* until: monotonic ms */
} sup_ended_entry;

typedef struct sup_ended {
    hc_hmap ids;           /* id -> (void *)until */
    sup_ended_entry *ring; /* in the order they were added (so by `until`) */
    size_t cap, head, n;
} sup_ended;

/* ------------------------------------------------------------------ operations (ops.c) */

enum { SUP_OP_START = 1, SUP_OP_TERMINATE, SUP_OP_PEER_START, SUP_OP_PEER_TERMINATE };

typedef struct sup_op {
    uint64_t op;
    int type;
    uint64_t id;    /* the child */
    bool has_token; /* a caller waits for the outcome */
    uint64_t token;
    uint64_t reply_peer; /* PEER_*: the replica that asked (its peer handle) and its op */
    uint64_t reply_op;
    hc_atom m_name, m_node; /* the member doing it */
    hc_buf spec;            /* START: {Kind, Restart, Hash, Body} */
    uint64_t deadline;      /* monotonic ms */
    bool local;             /* a C worker start on this replica (the result comes through ops->local) */
    bool zombie;            /* START past its deadline: the caller was answered; a late answer still counts */
} sup_op;

/* ------------------------------------------------------------------ held start requests (core.c) */

#define SUP_STARTS_MAX 256 /* start requests per `starts` message */

typedef struct sup_held_starts {
    hc_pid to;    /* the member's client */
    hc_buf items; /* {Op, Id, Spec}... */
    uint32_t n;
} sup_held_starts;

/* ------------------------------------------------------------------ the core */

typedef struct sup_core {
    hc_atom name, node;
    hc_pid self;
    hc_crdt *crdt;
    hc_sup_options opt;
    uint32_t start_timeout_ms;
    size_t max_message_bytes; /* the engine's: a child spec must fit one sync message */
    uint64_t replica_id;
    uint64_t next_id, next_op, next_mon;
    uint64_t rng;

    sup_member *members;
    size_t nmem, capmem;
    bool members_changed;               /* rebuild rings, re-monitor, rescan children */
    sup_ring ring_c, ring_beam;         /* alive members eligible for each kind */
    size_t *ring_c_idx, *ring_beam_idx; /* ring member index -> members[] */
    bool quorum;
    uint64_t quorum_since;    /* monotonic ms: when quorum was last gained */
    uint64_t settle_deadline; /* when a death now settling may be acted on (SUP_QUORUM_SETTLE_MS) */
    bool shutting_down;

    hc_hmap children; /* id -> sup_child */
    hc_hmap by_pid;   /* hc_pid_hash(record pid) -> sup_child */
    hc_hmap mons;     /* worker monitor id -> sup_child */
    size_t n_children, n_running;
    uint64_t *rescan; /* child ids to re-examine after this input */
    size_t nrescan, caprescan;
    bool rescan_all;
    uint64_t *restarts; /* monotonic ms of the latest max_restarts local restarts (intensity), a ring */
    size_t caprestarts, nrestarts;

    sup_ended ended; /* children a caller terminated: a record of one coming back is terminated again */

    hc_hmap ops; /* op -> sup_op */
    uint64_t next_deadline;
    uint64_t unknown_deadline; /* when a member only records name becomes gone (SUP_UNKNOWN_MEMBER_MS) */

    hc_core_peer *peers;
    size_t npeers;

    /* Start requests to BEAM members held until the end of the input (or another message to the same member), so
     * that a takeover's burst reaches each member as a few `starts` messages instead of one message per child. */
    sup_held_starts *held;
    size_t nheld, capheld;

    hc_buf deletes; /* CRDT keys to delete after the events are drained: [u32 len][bytes]... */
    hc_effect_queue effects;
    hc_reply_queue replies;
    hc_buf scratch;

    uint64_t ignored, restarted_local, taken_over, given_up, dup_stopped, terminated_again;
    hc_buf my_types; /* [TypeBinary] this replica's runtime has (its status carries it) */
} sup_core;

/* core.c: effects */
void sup_send_pid(sup_core *c, const hc_pid *to, hc_buf *msg); /* takes msg's bytes */
/* A start request {Op, Id, Spec} to the client `to` of a BEAM member, held (see sup_core.held). */
void sup_send_start(sup_core *c, const hc_pid *to, uint64_t op, uint64_t id, const hc_buf *spec);
/* Sends every held start request (the end of an input). */
void sup_flush_starts(sup_core *c);
void sup_send_peer(sup_core *c, uint64_t peer, hc_buf *msg);
void sup_local_action(sup_core *c, hc_buf *action);
void sup_monitor(sup_core *c, const hc_pid *pid, uint64_t id);
void sup_demonitor(sup_core *c, uint64_t id);
void sup_reply(sup_core *c, uint64_t token, hc_buf *body);
void sup_reply_raw(sup_core *c, uint64_t token, const uint8_t *p, size_t len);
void sup_reply_error_msg(sup_core *c, uint64_t token, const char *reason, const char *msg);
/* Writes and deletes (the engine's events are handled by the pump). */
int sup_put(sup_core *c, hc_buf *key, hc_buf *val, hc_time now); /* frees neither */
void sup_delete_child(sup_core *c, uint64_t id, hc_time now);
int sup_write_child(sup_core *c, uint64_t id, const sup_child_val *v, hc_time now);
void sup_write_status(sup_core *c, sup_member *m, sup_status st, hc_time now);
void sup_put_member(sup_core *c, hc_atom name, hc_atom node, bool auto_join, hc_time now);
/* Writes {member, M} => removed: a tombstone, so that "M left" is a fact replicas see, not the absence of a key
 * that a repair may simply not have delivered yet. */
void sup_remove_member(sup_core *c, hc_atom name, hc_atom node, hc_time now);
bool sup_is_self(const sup_core *c, hc_atom name, hc_atom node);
uint64_t sup_peer_of(const sup_core *c, hc_atom name, hc_atom node); /* 0: not a neighbour */

/* members.c */
sup_member *sup_member_get(sup_core *c, hc_atom name, hc_atom node, bool create);
sup_member *sup_member_self(sup_core *c);
void sup_member_event(sup_core *c, const sup_ckey *k, const uint8_t *val, size_t len);
/* After the events of an input: rebuild rings and quorum, monitors, self-healing of statuses. */
void sup_members_settle(sup_core *c, hc_time now);
/* A member's status as this replica acts on it: `dead` written by another replica does not count while this
 * replica's own monitor of that pid is still up (the writer was cut off from the member, not us — after a
 * partition heals, each side's dead marks for the other side arrive before the members re-assert themselves);
 * this replica's own status is what it knows of itself. */
sup_status sup_member_status(const sup_core *c, const sup_member *m);
/* `node` is reachable again: deaths our own monitors saw on it, and those seen as noconnection, are checked again. */
void sup_members_node_up(sup_core *c, hc_atom node);
bool sup_member_usable(const sup_core *c, const sup_member *m, int kind); /* listed, alive, runs `kind` */
/* The member placement chooses for a child of `kind` (and, for a C worker, of worker type type_hash: the ring's
 * owner, or the next member clockwise that has the type). NULL: *why says why: no_alive_nodes, quorum_not_met,
 * or unknown_worker_type (alive replicas exist, none has the type). */
sup_member *sup_place(sup_core *c, int kind, uint64_t hash, uint64_t type_hash, const char **why);
/* The replica responsible for acting for member m (m itself, or the replica a BEAM member is attached to). */
bool sup_responsible_here(const sup_core *c, const sup_member *m);
/* A member monitor fired; `cut_off`: with noconnection (its node unreachable: dead or only partitioned away). */
void sup_member_down(sup_core *c, uint64_t mon, bool cut_off, hc_time now);
void sup_members_free(sup_core *c);

/* children.c */
/* Whether this replica may act now on orphans (of `dead`, a member it sees dead, or NULL): see SUP_QUORUM_SETTLE_MS.
 * When not, the core's settle deadline is set to when it may. */
bool sup_settled(sup_core *c, sup_member *dead, hc_time now);
sup_child *sup_child_get(sup_core *c, uint64_t id, bool create);
sup_child *sup_child_by_pid(const sup_core *c, const hc_pid *pid);
/* The engine's record of child `id`, parsed (spans into the engine: valid until its next change). */
bool sup_record_get(sup_core *c, uint64_t id, sup_child_val *v);
void sup_child_event(sup_core *c, uint64_t id, const uint8_t *val, size_t len, hc_time now);
void sup_child_rescan(sup_core *c, uint64_t id);
/* Acts on every child to re-examine: orphans, moves, duplicates. */
void sup_children_settle(sup_core *c, hc_time now);
/* A worker this replica runs went down. */
void sup_worker_down(sup_core *c, sup_child *ch, const uint8_t *reason, size_t len, hc_time now);
/* Stops our worker for ch (no restart), with `reason`. */
void sup_worker_stop(sup_core *c, sup_child *ch, const char *reason_atom, bool redistribution);
void sup_children_free(sup_core *c);
uint64_t sup_new_id(sup_core *c);

/* ended.c */
void sup_ended_add(sup_core *c, uint64_t id, hc_time now);
bool sup_ended_has(sup_core *c, uint64_t id, hc_time now);
void sup_ended_free(sup_core *c);

/* ops.c */
sup_op *sup_op_new(sup_core *c, int type, uint64_t id, sup_member *m, hc_time now);
sup_op *sup_op_get(sup_core *c, uint64_t op);
void sup_op_free(sup_core *c, sup_op *o);
/* Starts child `id` (spec v) on member m; token != 0: a caller waits. */
void sup_start_on(sup_core *c, sup_member *m, uint64_t id, const sup_child_val *v, bool has_token, uint64_t token,
                  hc_time now);
/* The outcome of a start: writes the record on success, answers the caller, clears the child's op. */
void sup_op_started(sup_core *c, sup_op *o, const uint8_t *result, size_t len, hc_time now);
void sup_terminate_on(sup_core *c, sup_member *m, sup_child *ch, const uint64_t *token, hc_time now);
void sup_op_terminated(sup_core *c, sup_op *o, const uint8_t *result, size_t len, hc_time now);
/* Fails every op of member m (dead, gone, shutting down) and every op past its deadline. */
void sup_ops_fail_member(sup_core *c, hc_atom name, hc_atom node, hc_time now);
void sup_ops_expire(sup_core *c, hc_time now);
void sup_ops_free(sup_core *c);
int sup_peer_message(sup_core *c, uint64_t peer, const uint8_t *msg, size_t len,
                     hc_time now); /* SUP_NOT_OURS: a message for the engine */
void sup_local_result(sup_core *c, const uint8_t *msg, size_t len, hc_time now);

#endif
