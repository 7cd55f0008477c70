/* reg.h — the registry core's internals, shared by its files (see docs/registry.md for the contract).
 *
 *   terms.c   the CRDT keys of §2 and the observable keys of §3: building them, and parsing what the engine
 *             hands back (anything a peer wrote that is not one of ours is invisible, never an error);
 *   index.c   Key -> registrations, pid -> registrations, and :unique winner resolution (element HLC, then
 *             the writing replica's id), turned into observable events;
 *   owners.c  who vouches for whom: client attach records, the pids this replica monitors, membership;
 *   core.c    hc_core_ops: requests, the event pump, conflicts, effects.
 *
 * The replicated truth is the CRDT map; everything here is an index over it, rebuilt from the engine's change
 * events, so a replica that starts empty converges by syncing alone. */
#ifndef HORDEC_REGISTRY_REG_H
#define HORDEC_REGISTRY_REG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/hmap.h"
#include "hordec/hc_crdt.h"
#include "hordec/hc_registry.h"

/* ------------------------------------------------------------------ terms (terms.c) */

enum { REG_K_NONE = 0, REG_K_REG, REG_K_META, REG_K_MEMBER, REG_K_CLIENT };

/* A CRDT key taken apart. Spans point into the parsed bytes. */
typedef struct reg_ckey {
    int kind;
    const uint8_t *key; /* REG: the user Key; META: the meta key */
    size_t key_len;
    hc_pid pid;         /* REG: the registered pid; CLIENT: the client */
    hc_atom name, node; /* MEMBER */
} reg_ckey;

/* {Value, Owner}: Owner is a pid (a client) or the atom hordec (a process of the replica's own node). */
typedef struct reg_val {
    const uint8_t *value;
    size_t value_len;
    bool local; /* Owner = hordec */
    hc_pid owner;
} reg_val;

int reg_parse_ckey(const uint8_t *p, size_t len, reg_ckey *out);                             /* HC_OK or HC_EDECODE */
int reg_parse_val(const uint8_t *p, size_t len, reg_val *out);                               /* HC_OK or HC_EDECODE */
int reg_parse_member(const uint8_t *p, size_t len, size_t *i, hc_atom *name, hc_atom *node); /* {Name, Node} */

/* Encoders append to b (sticky errors, see hc_buf). */
void reg_enc_ckey_reg(hc_buf *b, const uint8_t *key, size_t klen, const hc_pid *pid); /* {r, Key, Pid} */
void reg_enc_okey_reg(hc_buf *b, const uint8_t *key, size_t klen, const hc_pid *pid); /* {reg, Key, Pid} */
void reg_enc_ckey_meta(hc_buf *b, const uint8_t *key, size_t klen);                   /* {m, K} */
void reg_enc_okey_meta(hc_buf *b, const uint8_t *key, size_t klen);                   /* {meta, K} */
void reg_enc_key_member(hc_buf *b, hc_atom name, hc_atom node);                       /* {member, {N, Nd}} */
void reg_enc_key_client(hc_buf *b, const hc_pid *client);                             /* {client, C} */
void reg_enc_val(hc_buf *b, const uint8_t *value, size_t vlen, bool local, const hc_pid *owner);
void reg_enc_member(hc_buf *b, hc_atom name, hc_atom node); /* {Name, Node} */

uint64_t reg_hash_bytes(const uint8_t *p, size_t n);

/* ------------------------------------------------------------------ the index (index.c) */

typedef struct reg_key reg_key;

/* One {r, Key, Pid} that the engine holds with a well-formed value. */
typedef struct reg_entry {
    reg_key *key;
    hc_pid pid;
    hc_pid owner;   /* when !local */
    uint32_t lslot; /* local entry of a process of this node: its place in that pid's reg_watch.locals */
    bool local;     /* Owner = hordec */
    bool changed;   /* its value changed since the last resolution (unique) */
    bool shown;     /* :unique: the key's winner, the entry the observable map shows */
    bool exited;    /* this replica sent it a name_conflict exit */
} reg_entry;

/* The entries of a key beyond its first (duplicate registries, or a :unique conflict until resolved). */
typedef struct reg_more {
    uint32_t n, cap;
    reg_entry *v[]; /* each allocated */
} reg_more;

/* A Key and its entries. Almost every key has one entry (always, for a :unique registry outside conflicts), so
 * that entry lives inside the key (`one`): one allocation per registration instead of three. Entries never move
 * (the pid index and `winner` point at them); a freed `one` is reused by the key's next entry. */
struct reg_key {
    reg_more *more; /* the entries beyond `one`, NULL until a second one comes */
    uint32_t n;     /* entries: `one` when has_one, then more->v[0..more->n) */
    uint32_t len;
    bool has_one;
    bool dirty;     /* queued for resolution */
    bool contested; /* in the contested list (:unique, two or more entries) */
    reg_entry one;
    uint8_t bytes[]; /* the user Key (ETF) */
};

/* The i-th entry of k, 0 <= i < k->n (the order changes when entries go). */
static inline reg_entry *reg_key_at(reg_key *k, uint32_t i)
{
    if (k->has_one) {
        if (i == 0)
            return &k->one;
        i--;
    }
    return k->more->v[i];
}

/* :unique: the entry the observable map shows (flagged `shown`: a pointer here would cost 8 bytes a key), NULL
 * when none. */
static inline reg_entry *reg_key_winner(reg_key *k)
{
    for (uint32_t i = 0; i < k->n; i++)
        if (reg_key_at(k, i)->shown)
            return reg_key_at(k, i);
    return NULL;
}

/* ------------------------------------------------------------------ who vouches (owners.c) */

/* A pid this replica may have to watch: a client (it owns entries, or has an attach record), or a process of
 * this node registered with Owner hordec. */
typedef struct reg_watch {
    hc_pid pid;
    uint64_t mon;                /* our monitor id, 0 when not monitored */
    uint32_t n_owned;            /* entries whose Owner is this pid */
    uint32_t n_local, cap_local; /* entries of this pid with Owner hordec (only for pids of our node)... */
    reg_entry **locals;          /* ...listed, so that its death finds them without a scan */
    bool has_record;             /* a {client, Pid} record exists */
    bool gone;                   /* its monitor said noconnection while nobody vouched: do not monitor again */
    bool dead; /* a DOWN other than noconnection: dead for good (a pid is never reused), and so are entries of it
                * or owned by it that arrive later (a replica that had not seen the deletes hands them back) */
    hc_atom rec_name, rec_node; /* the record's replica */
} reg_watch;

typedef struct reg_member {
    hc_atom name, node;
} reg_member;

/* ------------------------------------------------------------------ the core (core.c) */

/* How long a replica that contacted us without being a member (in our view) stays a neighbour: long enough for
 * a full exchange, so that whichever view is stale learns the other's (docs/registry.md §5, membership). */
#define REG_ADOPT_GRACE_MS 5000u

/* Items of big work done per turn of the host's loop (see reg_core.attach): 4096 puts or deletes take a few ms. */
#define REG_SLICE 4096u

typedef struct reg_core {
    hc_atom name, node; /* this replica: {Name, Node} */
    hc_pid self;        /* its pid, once the host knows it (replies name it) */
    bool unique;
    hc_crdt *crdt;
    size_t max_message_bytes; /* the engine's, to validate batches before writing any of them */
    size_t slice;             /* items of big work a turn (hc_registry_config.slice) */

    hc_hmap keys; /* reg_hash_bytes(Key) -> reg_key. There is no pid -> entries index: a client names the keys
                   * of a process that died (pids_down), and this node's processes are listed in their watch. */
    size_t n_entries, n_keys;
    reg_key **dirty, **contested;
    size_t ndirty, capdirty, ncont, capcont;

    hc_hmap watches; /* hc_pid_hash -> reg_watch */
    /* Clients whose noconnection DOWN came while their record naming us looked stale: if after
     * REG_ADOPT_GRACE_MS the record still names us, no newer one came (the stamps that made it look stale were
     * clock skew between replicas that had not seen each other's writes), and the DOWN is acted on. A live client
     * attached elsewhere whose record names us, because skew ordered its attaches wrongly, attaches again as soon
     * as its mirror shows that record (docs/registry.md §5), so the record names its replica well within it. */
    struct reg_suspect {
        hc_pid pid;
        uint64_t at; /* monotonic ms */
    } * suspects;
    size_t nsuspects, capsuspects;
    hc_hmap mons; /* monitor id -> reg_watch */
    uint64_t next_mon;

    reg_member *members;
    size_t nmem, capmem;
    bool members_changed;
    bool evict_now;      /* the grace for unwanted neighbours is over */
    hc_core_peer *peers; /* the neighbours the host gave us (adopted ones included) */
    size_t npeers;
    uint64_t evict_at; /* when to drop adopted neighbours that are not members (HC_NO_DEADLINE: none) */

    hc_buf deletes;     /* CRDT keys to delete once the engine's events are drained: [u32 len][bytes]... */
    size_t deletes_off; /* ...applied up to here (`slice` per turn) */
    bool recheck;       /* re-resolve every contested key: remote data arrived, or responsibility moved */

    /* Work too big for one turn of the host's loop (an attach with many owned entries, many deletes) is done
     * `slice` items a turn; requests that arrive meanwhile are held, in order, and handled once it is done, so
     * that for them it is still one step (docs/registry.md §5, "Big work"). Monitor DOWNs are handled at once: a
     * DOWN of the attaching client ends its attach. */
    struct {
        bool active;
        hc_buf req; /* the attach request, copied: `chk` (validating) and then `it` (writing) walk its list */
        hc_iter chk, it;
        bool validated; /* all of it, and the client's record is written: the entries come next */
        hc_pid client;
        uint64_t token;
    } attach;
    hc_buf held; /* [u64 token][u32 len][request bytes]... */
    size_t held_off;

    hc_effect_queue effects; /* observable events, monitors, exits, neighbour changes */
    hc_reply_queue replies;
    hc_buf scratch; /* keys under construction */

    uint64_t conflicts;     /* name_conflict exits sent */
    uint64_t stale_records; /* client DOWNs not acted on at once: our record of that client looked stale */
    uint64_t stale_acted;   /* ...and acted on after the grace: it was not (reg_core.suspects) */
    uint64_t ignored;       /* CRDT keys or values that are not the registry's (written by a bad peer) */
} reg_core;

/* index.c */
reg_key *reg_key_find(const reg_core *c, const uint8_t *key, size_t klen);
reg_entry *reg_entry_find(const reg_core *c, const uint8_t *key, size_t klen, const hc_pid *pid);
/* The engine now holds {r, Key, Pid} => v (new or changed), or (v NULL) no longer holds it. HC_ENOMEM leaves
 * the index without the entry (it is then invisible here until its next change). */
int reg_index_put(reg_core *c, const uint8_t *key, size_t klen, const hc_pid *pid, const reg_val *v, const uint8_t *raw,
                  size_t raw_len);
void reg_index_remove(reg_core *c, const uint8_t *key, size_t klen, const hc_pid *pid);
/* Resolves every dirty key (and, when `all_contested`, every contested one) and queues the observable
 * changes; then acts on the conflicts this replica is responsible for. */
void reg_index_resolve(reg_core *c, bool all_contested);
/* The winner of a unique key as the engine sees it right now (fresh HLCs), NULL when the key has none. */
reg_entry *reg_index_best(reg_core *c, reg_key *k);
void reg_index_free(reg_core *c);

/* owners.c */
reg_watch *reg_watch_get(reg_core *c, const hc_pid *pid, bool create);
/* Monitors or demonitors w as the rules say, and frees it when nothing refers to it any more. */
void reg_watch_sync(reg_core *c, reg_watch *w);
bool reg_watch_is_ours(const reg_core *c, const reg_watch *w);
/* Is this replica responsible for entry e (conflicts): its Owner's record names us, or it is one of our
 * node's processes registered with Owner hordec. */
bool reg_responsible(reg_core *c, const reg_entry *e);
void reg_record_set(reg_core *c, const hc_pid *client, bool present, hc_atom name, hc_atom node);
void reg_member_event(reg_core *c, hc_atom name, hc_atom node, bool present);
bool reg_is_member(const reg_core *c, hc_atom name, hc_atom node);
/* A monitor this replica holds fired. */
void reg_watch_down(reg_core *c, uint64_t mon, bool noconnection, uint64_t now_ms);
/* Acts on the DOWNs whose record looked stale once their grace is over (reg_core.suspects), as of now_ms. */
void reg_suspects_due(reg_core *c, uint64_t now_ms);
void reg_owners_free(reg_core *c);
/* Queues the deletion of every entry whose Owner is `owner` (a client), and of the client's record. */
/* Queues the deletion of entry e's CRDT key (applied once the engine's events are drained). */
void reg_queue_entry_delete(reg_core *c, const reg_entry *e);
void reg_drop_owned(reg_core *c, const hc_pid *owner, bool record);
/* Queues the deletion of every entry of `pid` that `owner` vouches for (local: Owner hordec): those of the keys
 * `keys` iterates over, or (keys NULL) all of them — listed in the watch of a process of this node, else found by
 * a scan of the whole index. */
void reg_drop_pid(reg_core *c, const hc_pid *pid, bool local, const hc_pid *owner, hc_iter *keys);
/* The same for all keys of each of the n pids, in one scan of the whole index (HC_OK, or HC_ENOMEM: nothing done). */
int reg_drop_pids_scan(reg_core *c, const hc_pid *pids, size_t n, bool local, const hc_pid *owner);

/* core.c: queueing */
void reg_queue_delete(reg_core *c, const uint8_t *ckey, size_t len);
void reg_queue_event(reg_core *c, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen);
void reg_queue_monitor(reg_core *c, const hc_pid *pid, uint64_t id);
void reg_queue_demonitor(reg_core *c, uint64_t id);
void reg_queue_exit(reg_core *c, const hc_pid *pid, const uint8_t *reason, size_t len);
/* Queues the observable event for {reg, Key, Pid}, with the engine's current value (NULL: removed). */
void reg_queue_reg_event(reg_core *c, const reg_key *k, const hc_pid *pid, bool removed);
/* Sends the name_conflict exit to loser `e` (winner `w`) and queues the deletion of its entry. */
void reg_conflict(reg_core *c, reg_entry *e, const hc_pid *winner);

#endif
