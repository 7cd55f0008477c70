/* replica.c — the public hc_crdt API: lifecycle, local operations, joining remote records, effects,
 * introspection and the invariant checker. Protocol logic lives in sync.c and repair.c. */
#include "crdt/replica.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/hash.h"

void hc_crdt_config_init(hc_crdt_config *cfg, uint64_t replica_id)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->replica_id = replica_id;
    cfg->max_message_bytes = 1u << 20;
    cfg->flush_interval_ms = 5;
    cfg->retransmit_ms = 50;
    cfg->hello_interval_ms = 100;
    cfg->digest_interval_ms = 1000;
    cfg->max_unacked_bytes = 8u << 20;
    cfg->max_unacked_batches = 4096;
    cfg->repair_window = 4;
    cfg->max_clock_offset_ms = HC_CRDT_DEFAULT_MAX_CLOCK_OFFSET_MS;
}

int hc_crdt_new(const hc_crdt_config *cfg, hc_time now, hc_crdt **out)
{
    *out = NULL;
    if (!cfg || !cfg->replica_id || cfg->max_message_bytes < HC_CRDT_MIN_MESSAGE_BYTES ||
        cfg->max_message_bytes > INT32_MAX / 2)
        return HC_EINVAL;
    hc_crdt *r = calloc(1, sizeof *r);
    if (!r)
        return HC_ENOMEM;
    r->cfg = *cfg;
    if (!r->cfg.retransmit_ms)
        r->cfg.retransmit_ms = 1;
    if (!r->cfg.repair_window)
        r->cfg.repair_window = 1;
    if (!r->cfg.max_unacked_batches)
        r->cfg.max_unacked_batches = 1;
    if (!r->cfg.max_clock_offset_ms)
        r->cfg.max_clock_offset_ms = HC_CRDT_DEFAULT_MAX_CLOCK_OFFSET_MS;
    r->rid = cfg->replica_id;
    r->inc = 1;
    r->flush_at = HC_CRDT_NO_DEADLINE;
    r->hlc.last = crdt_hlc_pack(now.wall_ms, 0);
    crdt_ctx_init(&r->ctx);
    if (crdt_map_init(&r->map)) {
        free(r);
        return HC_ENOMEM;
    }
    *out = r;
    return HC_OK;
}

static void event_free(crdt_event *e)
{
    free(e->key);
    crdt_blob_unref(e->old_val);
    crdt_blob_unref(e->new_val);
    memset(e, 0, sizeof *e);
}

void crdt_outbox_clear(hc_crdt *r)
{
    for (size_t i = 0; i < r->out_n; i++)
        hc_buf_free(&r->out[(r->out_head + i) % r->out_cap].msg);
    r->out_head = r->out_n = 0;
}

static void events_clear(hc_crdt *r)
{
    for (size_t i = 0; i < r->ev_n; i++)
        event_free(&r->ev[(r->ev_head + i) % r->ev_cap]);
    r->ev_head = r->ev_n = 0;
}

void hc_crdt_free(hc_crdt *r)
{
    if (!r)
        return;
    crdt_cursors_detach(r);
    for (size_t i = 0; i < r->n_peers; i++)
        crdt_peer_free(&r->peers[i]);
    free(r->peers);
    crdt_outbox_clear(r);
    free(r->out);
    hc_buf_free(&r->popped_msg);
    events_clear(r);
    free(r->ev);
    event_free(&r->popped_ev);
    crdt_pending_clear(&r->pending);
    crdt_map_free(&r->map);
    crdt_ctx_free(&r->ctx);
    free(r);
}

int hc_crdt_restart(hc_crdt *r, hc_time now)
{
    /* what a reload from storage looks like: state survives, everything in flight does not */
    r->inc++;
    crdt_outbox_clear(r);
    events_clear(r);
    crdt_pending_clear(&r->pending);
    r->flush_at = HC_CRDT_NO_DEADLINE;
    crdt_hlc_observe(&r->hlc, crdt_hlc_pack(now.wall_ms, 0));
    for (size_t i = 0; i < r->n_peers; i++) {
        crdt_peer *p = &r->peers[i];
        crdt_peer_reset(r, p);
        p->rid = p->inc = 0;
        p->up = 1;
        p->hello_at = now.mono_ms;
    }
    return HC_OK;
}

/* ---- effects ---- */

int crdt_send(hc_crdt *r, crdt_peer *p, int type, hc_buf *msg)
{
    if (r->out_n == r->out_cap) {
        size_t cap = r->out_cap ? r->out_cap * 2 : 16;
        crdt_out *o = malloc(cap * sizeof *o);
        if (!o) {
            hc_buf_free(msg);
            return HC_ENOMEM;
        }
        for (size_t i = 0; i < r->out_n; i++)
            o[i] = r->out[(r->out_head + i) % r->out_cap];
        free(r->out);
        r->out = o;
        r->out_cap = cap;
        r->out_head = 0;
    }
    r->stats.sent_msgs[type]++;
    r->stats.sent_bytes[type] += msg->len;
    crdt_out *o = &r->out[(r->out_head + r->out_n++) % r->out_cap];
    o->peer = p->handle;
    o->msg = *msg;
    *msg = (hc_buf){0};
    return HC_OK;
}

bool hc_crdt_pop_message(hc_crdt *r, hc_crdt_msg *out)
{
    hc_buf_free(&r->popped_msg);
    if (!r->out_n)
        return false;
    crdt_out *o = &r->out[r->out_head];
    r->out_head = (r->out_head + 1) % r->out_cap;
    r->out_n--;
    r->popped_msg = o->msg;
    out->peer = o->peer;
    out->data = o->msg.data;
    out->len = o->msg.len;
    return true;
}

int crdt_emit_change(hc_crdt *r, const uint8_t *key, size_t key_len, crdt_blob *old_val, crdt_blob *new_val)
{
    if (old_val == new_val)
        return HC_OK;
    if (old_val && new_val && old_val->len == new_val->len && memcmp(old_val->data, new_val->data, old_val->len) == 0)
        return HC_OK;
    if (r->ev_n == r->ev_cap) {
        size_t cap = r->ev_cap ? r->ev_cap * 2 : 16;
        crdt_event *e = malloc(cap * sizeof *e);
        if (!e)
            return HC_ENOMEM;
        for (size_t i = 0; i < r->ev_n; i++)
            e[i] = r->ev[(r->ev_head + i) % r->ev_cap];
        free(r->ev);
        r->ev = e;
        r->ev_cap = cap;
        r->ev_head = 0;
    }
    uint8_t *k = malloc(key_len ? key_len : 1);
    if (!k)
        return HC_ENOMEM;
    memcpy(k, key, key_len);
    crdt_event *e = &r->ev[(r->ev_head + r->ev_n++) % r->ev_cap];
    e->kind = !old_val ? HC_CRDT_ADDED : !new_val ? HC_CRDT_REMOVED : HC_CRDT_UPDATED;
    e->key = k;
    e->key_len = key_len;
    e->old_val = crdt_blob_ref(old_val);
    e->new_val = crdt_blob_ref(new_val);
    return HC_OK;
}

bool hc_crdt_pop_event(hc_crdt *r, hc_crdt_event *out)
{
    event_free(&r->popped_ev);
    if (!r->ev_n)
        return false;
    r->popped_ev = r->ev[r->ev_head];
    r->ev_head = (r->ev_head + 1) % r->ev_cap;
    r->ev_n--;
    crdt_event *e = &r->popped_ev;
    out->kind = e->kind;
    out->key = e->key;
    out->key_len = e->key_len;
    out->old_value = e->old_val ? e->old_val->data : NULL;
    out->old_len = e->old_val ? e->old_val->len : 0;
    out->new_value = e->new_val ? e->new_val->data : NULL;
    out->new_len = e->new_val ? e->new_val->len : 0;
    return true;
}

/* ---- local operations ---- */

size_t crdt_budget(const hc_crdt *r) { return r->cfg.max_message_bytes - CRDT_MSG_OVERHEAD; }

size_t crdt_rec_size(size_t key_len, size_t n_removed, const crdt_elem *elems, uint32_t n)
{
    size_t s = CRDT_REC_OVERHEAD + key_len + n_removed * CRDT_DOT_BYTES;
    for (uint32_t i = 0; i < n; i++)
        s += CRDT_ELEM_OVERHEAD + (elems[i].val ? elems[i].val->len : 0);
    return s;
}

static int check_op(const hc_crdt *r, const uint8_t *key, size_t key_len, const uint8_t *val, size_t val_len,
                    int is_put)
{
    if (!key || hc_term_check(key, key_len))
        return HC_EINVAL;
    if (is_put && (!val || hc_term_check(val, val_len)))
        return HC_EINVAL;
    /* a value must fit in one message next to its key, or it could never be shipped */
    if (key_len + (is_put ? val_len : 0) + HC_CRDT_VALUE_OVERHEAD > r->cfg.max_message_bytes)
        return HC_ETOOBIG;
    return HC_OK;
}

static void schedule_flush(hc_crdt *r, uint64_t now)
{
    if (r->flush_at == HC_CRDT_NO_DEADLINE)
        r->flush_at = now + r->cfg.flush_interval_ms;
}

/* One local write (val != NULL) or delete: it removes every element this replica has observed for key. */
static int local_op(hc_crdt *r, const uint8_t *key, size_t key_len, const uint8_t *val, size_t val_len, hc_time now)
{
    uint64_t h = crdt_hash_bytes(key, key_len);
    crdt_entry *e = crdt_map_find(&r->map, key, key_len, h);
    if (!e && !val)
        return HC_OK;
    crdt_pend_rec *pr = r->n_peers ? crdt_pending_touch(&r->pending, key, key_len, h) : NULL;
    if (r->n_peers && !pr)
        return HC_ENOMEM;
    crdt_blob *old = e ? crdt_blob_ref(e->elems[0].val) : NULL;
    if (e && pr)
        for (uint32_t i = 0; i < e->n; i++)
            if (crdt_pending_add_removed(pr, e->elems[i].rid, e->elems[i].ctr)) {
                crdt_blob_unref(old);
                return HC_ENOMEM;
            }
    int rc;
    crdt_blob *nv = NULL;
    if (val) {
        crdt_elem el = {r->rid, r->counter + 1, crdt_hlc_next(&r->hlc, now.wall_ms), crdt_blob_new(val, val_len)};
        if (!el.val || (rc = crdt_ctx_add(&r->ctx, r->rid, el.ctr))) {
            crdt_blob_unref(el.val);
            crdt_blob_unref(old);
            return HC_ENOMEM;
        }
        r->counter++;
        nv = el.val;
        rc = crdt_store(r, key, key_len, h, &el, 1);
        if (rc)
            crdt_blob_unref(el.val);
    } else {
        rc = crdt_store(r, key, key_len, h, NULL, 0);
    }
    if (!rc)
        rc = crdt_emit_change(r, key, key_len, old, nv);
    crdt_blob_unref(old);
    if (pr)
        schedule_flush(r, now.mono_ms);
    return rc;
}

int hc_crdt_put(hc_crdt *r, const uint8_t *key, size_t key_len, const uint8_t *val, size_t val_len, hc_time now)
{
    int rc = check_op(r, key, key_len, val, val_len, 1);
    return rc ? rc : local_op(r, key, key_len, val, val_len, now);
}

int hc_crdt_delete(hc_crdt *r, const uint8_t *key, size_t key_len, hc_time now)
{
    int rc = check_op(r, key, key_len, NULL, 0, 0);
    return rc ? rc : local_op(r, key, key_len, NULL, 0, now);
}

int hc_crdt_bulk_check(const hc_crdt *r, const hc_crdt_kv *ops, size_t n)
{
    if (n && !ops)
        return HC_EINVAL;
    for (size_t i = 0; i < n; i++) {
        int rc = check_op(r, ops[i].key, ops[i].key_len, ops[i].value, ops[i].value_len, ops[i].value != NULL);
        if (rc)
            return rc;
    }
    return HC_OK;
}

int hc_crdt_bulk(hc_crdt *r, const hc_crdt_kv *ops, size_t n, hc_time now)
{
    int rc = hc_crdt_bulk_check(r, ops, n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && rc == HC_OK; i++)
        rc = local_op(r, ops[i].key, ops[i].key_len, ops[i].value, ops[i].value_len, now);
    return rc;
}

/* ---- joining remote records ---- */

static int wire_lists(const crdt_wire_rec *rec, uint64_t rid, uint64_t ctr)
{
    for (uint32_t i = 0; i < rec->n; i++)
        if (rec->elems[i].rid == rid && rec->elems[i].ctr == ctr)
            return 1;
    return 0;
}

static int wire_removed(const crdt_wire_rec *rec, uint64_t rid, uint64_t ctr)
{
    for (size_t o = 0; o < rec->removed.len; o += CRDT_DOT_BYTES)
        if (hc_get_be64(rec->removed.p + o) == rid && hc_get_be64(rec->removed.p + o + 8) == ctr)
            return 1;
    return 0;
}

/* The join of our element set for one key with the sender's: an element survives if both sides hold it,
 * or one side holds it and the other has not observed its dot. */
int crdt_apply_record(hc_crdt *r, const crdt_wire_rec *rec, const crdt_ctx *sender_ctx)
{
    uint64_t h = crdt_hash_bytes(rec->key.p, rec->key.len);
    crdt_entry *e = crdt_map_find(&r->map, rec->key.p, rec->key.len, h);
    uint32_t have = e ? e->n : 0;
    crdt_elem stack[8], *next = stack;
    size_t cap = (size_t)have + rec->n;
    if (cap > 8 && !(next = malloc(cap * sizeof *next)))
        return HC_ENOMEM;
    uint32_t n = 0;
    int changed = 0, rc = HC_OK;
    for (uint32_t i = 0; i < have; i++) {
        const crdt_elem *el = &e->elems[i];
        int observed =
            !wire_lists(rec, el->rid, el->ctr) &&
            (wire_removed(rec, el->rid, el->ctr) || (sender_ctx && crdt_ctx_has(sender_ctx, el->rid, el->ctr)));
        if (observed) {
            changed = 1;
            continue;
        }
        next[n] = *el;
        crdt_blob_ref(next[n].val);
        n++;
    }
    for (uint32_t i = 0; i < rec->n; i++) {
        const crdt_wire_elem *w = &rec->elems[i];
        crdt_hlc_observe(&r->hlc, w->hlc);
        if (!w->has_val || crdt_ctx_has(&r->ctx, w->rid, w->ctr))
            continue; /* no value here, or already held or already removed */
        int dup = 0;
        for (uint32_t k = 0; k < n && !dup; k++)
            dup = next[k].rid == w->rid && next[k].ctr == w->ctr;
        if (dup)
            continue;
        crdt_blob *b = crdt_blob_new(w->val.p, w->val.len);
        if (!b) {
            rc = HC_ENOMEM;
            goto out;
        }
        next[n++] = (crdt_elem){w->rid, w->ctr, w->hlc, b};
        changed = 1;
    }
    /* context: every dot the record speaks for (values carried or removed), never value-less listings,
     * whose values are still on their way */
    for (uint32_t i = 0; i < rec->n && !rc; i++)
        if (rec->elems[i].has_val)
            rc = crdt_ctx_add(&r->ctx, rec->elems[i].rid, rec->elems[i].ctr);
    for (size_t o = 0; o < rec->removed.len && !rc; o += CRDT_DOT_BYTES)
        rc = crdt_ctx_add(&r->ctx, hc_get_be64(rec->removed.p + o), hc_get_be64(rec->removed.p + o + 8));
    if (rc || !changed)
        goto out;
    crdt_blob *old = e ? crdt_blob_ref(e->elems[0].val) : NULL;
    rc = crdt_store(r, rec->key.p, rec->key.len, h, next, n);
    if (!rc) {
        n = 0; /* references moved into the map */
        e = crdt_map_find(&r->map, rec->key.p, rec->key.len, h);
        rc = crdt_emit_change(r, rec->key.p, rec->key.len, old, e ? e->elems[0].val : NULL);
    }
    crdt_blob_unref(old);
out:
    for (uint32_t i = 0; i < n; i++)
        crdt_blob_unref(next[i].val);
    if (next != stack)
        free(next);
    return rc;
}

int crdt_apply_absent(hc_crdt *r, crdt_entry *e, const crdt_ctx *sender_ctx)
{
    crdt_elem stack[8], *next = stack;
    if (e->n > 8 && !(next = malloc(e->n * sizeof *next)))
        return HC_ENOMEM;
    uint32_t n = 0;
    for (uint32_t i = 0; i < e->n; i++)
        if (!crdt_ctx_has(sender_ctx, e->elems[i].rid, e->elems[i].ctr)) {
            next[n] = e->elems[i];
            crdt_blob_ref(next[n++].val);
        }
    int rc = HC_OK;
    if (n != e->n) {
        /* e may be freed by map_set: keep what we need from it */
        uint64_t h = e->hash;
        size_t klen = e->key_len;
        uint8_t kstack[256], *key = klen <= sizeof kstack ? kstack : malloc(klen);
        if (!key) {
            rc = HC_ENOMEM;
        } else {
            memcpy(key, e->key, klen);
            crdt_blob *old = crdt_blob_ref(e->elems[0].val);
            rc = crdt_store(r, key, klen, h, next, n);
            if (!rc) {
                n = 0;
                crdt_entry *now = crdt_map_find(&r->map, key, klen, h);
                rc = crdt_emit_change(r, key, klen, old, now ? now->elems[0].val : NULL);
            }
            crdt_blob_unref(old);
            if (key != kstack)
                free(key);
        }
    }
    for (uint32_t i = 0; i < n; i++)
        crdt_blob_unref(next[i].val);
    if (next != stack)
        free(next);
    return rc;
}

/* ---- reads ---- */

bool hc_crdt_get(const hc_crdt *r, const uint8_t *key, size_t key_len, const uint8_t **val, size_t *val_len)
{
    if (!key)
        return false;
    crdt_entry *e = crdt_map_find(&r->map, key, key_len, crdt_hash_bytes(key, key_len));
    if (!e)
        return false;
    if (val)
        *val = e->elems[0].val->data;
    if (val_len)
        *val_len = e->elems[0].val->len;
    return true;
}

int hc_crdt_foreach(const hc_crdt *r, hc_crdt_visit_fn fn, void *ud)
{
    for (size_t b = 0; b < crdt_map_nbuckets(&r->map); b++)
        for (crdt_entry *e = r->map.buckets[b]; e; e = e->next) {
            int rc = fn(ud, e->key, e->key_len, e->elems[0].val->data, e->elems[0].val->len);
            if (rc)
                return rc;
        }
    return 0;
}

size_t hc_crdt_size(const hc_crdt *r) { return r->map.count; }

size_t hc_crdt_elements(const hc_crdt *r, const uint8_t *key, size_t key_len, hc_crdt_elem_info *out, size_t cap)
{
    if (!key)
        return 0;
    crdt_entry *e = crdt_map_find(&r->map, key, key_len, crdt_hash_bytes(key, key_len));
    if (!e)
        return 0;
    for (uint32_t i = 0; i < e->n && i < cap; i++)
        out[i] = (hc_crdt_elem_info){e->elems[i].rid, e->elems[i].ctr, e->elems[i].hlc, e->elems[i].val->data,
                                     e->elems[i].val->len};
    return e->n;
}

uint64_t hc_crdt_replica_id(const hc_crdt *r) { return r->rid; }
uint64_t hc_crdt_incarnation(const hc_crdt *r) { return r->inc; }
uint64_t hc_crdt_hlc_last(const hc_crdt *r) { return r->hlc.last; }
uint64_t hc_crdt_max_clock_offset(const hc_crdt *r) { return r->cfg.max_clock_offset_ms; }
uint64_t hc_crdt_root_hash(const hc_crdt *r) { return r->map.tree.sum[0]; }

bool hc_crdt_context_has(const hc_crdt *r, uint64_t replica_id, uint64_t counter)
{
    return crdt_ctx_has(&r->ctx, replica_id, counter);
}

void hc_crdt_get_stats(const hc_crdt *r, hc_crdt_stats *out)
{
    *out = r->stats;
    out->keys = r->map.count;
    out->elements = r->map.elems;
    out->key_bytes = r->map.key_bytes;
    out->value_bytes = r->map.value_bytes;
}

const char *hc_crdt_msg_name(int type) { return crdt_msg_type_name(type); }

const char *hc_crdt_reject_name(int reason)
{
    static const char *const names[HC_CRDT_REJ__COUNT] = {"decode",  "version", "not_neighbour", "stale",
                                                          "invalid", "clock",   "own_dots",      "duplicate_dots"};
    return reason >= 0 && reason < HC_CRDT_REJ__COUNT ? names[reason] : "unknown";
}

/* ---- invariants ---- */

#define FAIL(...)                                                                                                      \
    do {                                                                                                               \
        if (why)                                                                                                       \
            snprintf(why, why_len, __VA_ARGS__);                                                                       \
        free(sum);                                                                                                     \
        free(cnt);                                                                                                     \
        return HC_ESTATE;                                                                                              \
    } while (0)

int hc_crdt_check(const hc_crdt *r, char *why, size_t why_len)
{
    const crdt_map *m = &r->map;
    uint64_t *sum = calloc(CRDT_MERKLE_NODES, sizeof *sum);
    uint32_t *cnt = calloc(CRDT_MERKLE_NODES, sizeof *cnt);
    if (!sum || !cnt)
        FAIL("out of memory");
    size_t count = 0, elems = 0, kbytes = 0, vbytes = 0;
    for (size_t b = 0; b < crdt_map_nbuckets(m); b++)
        for (const crdt_entry *e = m->buckets[b]; e; e = e->next) {
            count++;
            elems += e->n;
            kbytes += e->key_len;
            if (crdt_map_bucket(m, e->hash) != b)
                FAIL("entry in the wrong bucket");
            if (e->hash != crdt_hash_bytes(e->key, e->key_len))
                FAIL("stale key hash");
            if (e->n == 0)
                FAIL("entry without elements");
            if ((e->n == 1) != (e->elems == &e->one))
                FAIL("element storage mismatch");
            for (uint32_t i = 0; i < e->n; i++) {
                const crdt_elem *el = &e->elems[i];
                vbytes += el->val->len;
                if (!crdt_ctx_has(&r->ctx, el->rid, el->ctr))
                    FAIL("stored dot (%llu,%llu) not in the causal context", (unsigned long long)el->rid,
                         (unsigned long long)el->ctr);
                if (el->hlc > r->hlc.last)
                    FAIL("element timestamp ahead of the HLC");
                if (i && crdt_elem_newer(el, &e->elems[i - 1]))
                    FAIL("elements not sorted best-first");
                for (uint32_t k = 0; k < i; k++)
                    if (e->elems[k].rid == el->rid && e->elems[k].ctr == el->ctr)
                        FAIL("duplicate dot in one key");
                if (hc_term_check(el->val->data, el->val->len))
                    FAIL("stored value is not a term");
            }
            for (uint32_t l = 0; l <= CRDT_MERKLE_DEPTH; l++) {
                uint32_t k = crdt_merkle_index(l, l ? (uint32_t)(e->hash >> (64 - l)) : 0);
                sum[k] += crdt_entry_digest(e);
                cnt[k]++;
            }
        }
    if (count != m->count || elems != m->elems || kbytes != m->key_bytes || vbytes != m->value_bytes)
        FAIL("map counters out of step (%zu keys counted, %zu recorded)", count, m->count);
    if (memcmp(sum, m->tree.sum, CRDT_MERKLE_NODES * sizeof *sum) ||
        memcmp(cnt, m->tree.count, CRDT_MERKLE_NODES * sizeof *cnt))
        FAIL("merkle range hashes out of step");
    if (r->counter && !crdt_ctx_has(&r->ctx, r->rid, r->counter))
        FAIL("own counter not in the context");
    for (size_t i = 0; i < r->n_peers; i++) {
        const crdt_peer *p = &r->peers[i];
        size_t qb = 0;
        for (size_t k = 0; k < p->qn; k++) {
            qb += p->q[k].batch->len;
            if (k && p->q[k].batch->seq <= p->q[k - 1].batch->seq)
                FAIL("peer queue out of order");
        }
        if (qb != p->q_bytes)
            FAIL("peer queue byte count out of step");
        if (p->push && p->push->n_reqs > r->cfg.repair_window)
            FAIL("repair window exceeded");
    }
    free(sum);
    free(cnt);
    return HC_OK;
}
