/* check.c — hc_registry_core_check: the indexes must be exactly what the CRDT map says (tests, simulator). */
#include <stdio.h>
#include <string.h>

#include "registry/reg.h"

typedef struct chk {
    reg_core *c;
    size_t entries, members;
    char *why;
    size_t why_len;
    int rc;
} chk;

#define CHK_FAIL(k, ...)                                                                                               \
    do {                                                                                                               \
        if ((k)->why && (k)->why_len)                                                                                  \
            snprintf((k)->why, (k)->why_len, __VA_ARGS__);                                                             \
        (k)->rc = HC_ESTATE;                                                                                           \
        return 1;                                                                                                      \
    } while (0)

#define FAIL_RET(...)                                                                                                  \
    do {                                                                                                               \
        if (why && why_len)                                                                                            \
            snprintf(why, why_len, __VA_ARGS__);                                                                       \
        return HC_ESTATE;                                                                                              \
    } while (0)

/* False for a member or client key that is not in our own encoding (the core ignores those: core.c canonical()). */
static bool canonical_key(const uint8_t *key, size_t klen, const reg_ckey *ck)
{
    hc_buf b = {0};
    if (ck->kind == REG_K_MEMBER)
        reg_enc_key_member(&b, ck->name, ck->node);
    else if (ck->kind == REG_K_CLIENT)
        reg_enc_key_client(&b, &ck->pid);
    else
        return true;
    bool same = !b.err && b.len == klen && memcmp(b.data, key, klen) == 0;
    hc_buf_free(&b);
    return same;
}

static int visit(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
    chk *k = ud;
    reg_core *c = k->c;
    reg_ckey ck;
    if (reg_parse_ckey(key, klen, &ck))
        return 0;
    if (ck.kind == REG_K_REG) {
        reg_val v;
        reg_entry *e = reg_entry_find(c, ck.key, ck.key_len, &ck.pid);
        hc_buf b = {0};
        reg_enc_ckey_reg(&b, ck.key, ck.key_len, &ck.pid);
        bool canon = !b.err && b.len == klen && memcmp(b.data, key, klen) == 0;
        hc_buf_free(&b);
        if (!canon || reg_parse_val(val, vlen, &v)) {
            if (e && !canon)
                CHK_FAIL(k, "a non-canonical CRDT key is indexed");
            return 0;
        }
        if (!e)
            CHK_FAIL(k, "a registration in the map is missing from the index");
        if (e->local != v.local || (!v.local && !hc_pid_eq(&e->owner, &v.owner)))
            CHK_FAIL(k, "an indexed owner differs from the map's");
        k->entries++;
    } else if (!canonical_key(key, klen, &ck)) {
        return 0; /* another encoding of a member or client key: ignored by the core, so not indexed */
    } else if (ck.kind == REG_K_MEMBER) {
        if (!reg_is_member(c, ck.name, ck.node))
            CHK_FAIL(k, "member %s/%s is not in the member list", hc_atom_name(ck.name), hc_atom_name(ck.node));
        k->members++;
    } else if (ck.kind == REG_K_CLIENT) {
        reg_watch *w = reg_watch_get(c, &ck.pid, false);
        size_t i = 0;
        hc_atom name, node;
        if (!reg_parse_member(val, vlen, &i, &name, &node) && i == vlen &&
            (!w || !w->has_record || w->rec_name != name || w->rec_node != node))
            CHK_FAIL(k, "a client record differs from its watch");
    }
    return 0;
}

int hc_registry_core_check(void *core, char *why, size_t why_len)
{
    reg_core *c = core;
    chk k = {c, 0, 0, why, why_len, HC_OK};
    int crc = hc_crdt_check(c->crdt, why, why_len);
    if (crc)
        return crc;
    hc_crdt_foreach(c->crdt, visit, &k);
    if (k.rc)
        return k.rc;
    if (k.entries != c->n_entries)
        FAIL_RET("%zu registrations in the map, %zu indexed", k.entries, c->n_entries);
    if (k.members != c->nmem)
        FAIL_RET("%zu members in the map, %zu listed", k.members, c->nmem);
    /* Winners and owner counts, recomputed. */
    size_t keys = 0;
    for (size_t i = 0; i < c->keys.cap; i++) {
        if (!hc_hmap_live(&c->keys, i))
            continue;
        reg_key *rk = c->keys.vals[i];
        keys++;
        if (!rk->n)
            FAIL_RET("an empty key is indexed");
        uint32_t shown = 0;
        for (uint32_t e = 0; e < rk->n; e++)
            shown += reg_key_at(rk, e)->shown;
        if (shown > 1)
            FAIL_RET("a key shows %u entries", shown);
        if (c->unique && reg_key_winner(rk) != reg_index_best(c, rk))
            FAIL_RET("a unique key shows another entry than its winner");
        if (c->unique && rk->n >= 2 && !rk->contested)
            FAIL_RET("a key with %u entries is not in the contested list", rk->n);
    }
    if (keys != c->n_keys)
        FAIL_RET("%zu keys indexed, %zu counted", keys, c->n_keys);
    for (size_t i = 0; i < c->watches.cap; i++) {
        if (!hc_hmap_live(&c->watches, i))
            continue;
        reg_watch *w = c->watches.vals[i];
        uint32_t owned = 0, local = 0;
        for (size_t j = 0; j < c->keys.cap; j++) {
            if (!hc_hmap_live(&c->keys, j))
                continue;
            reg_key *rk = c->keys.vals[j];
            for (uint32_t e = 0; e < rk->n; e++) {
                const reg_entry *x = reg_key_at(rk, e);
                owned += !x->local && hc_pid_eq(&x->owner, &w->pid);
                local += x->local && x->pid.node == c->node && hc_pid_eq(&x->pid, &w->pid);
            }
        }
        if (owned != w->n_owned || local != w->n_local)
            FAIL_RET("a watch counts %u/%u entries, the index holds %u/%u", w->n_owned, w->n_local, owned, local);
        if (w->mon && hc_hmap_get(&c->mons, w->mon) != w)
            FAIL_RET("a watch's monitor is not in the monitor table");
    }
    return HC_OK;
}
