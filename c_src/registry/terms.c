/* terms.c — the registry's CRDT keys (docs/registry.md §2) and observable keys (§3).
 *
 * Keys are built by us only, always in one encoding (hc_enc_*: SMALL_ATOM_UTF8 atoms, NEW_PID_EXT pids), because
 * CRDT key identity is byte equality: a pid that arrived as PID_EXT must still name the same {r, Key, Pid}. The
 * user's Key and Value are kept byte for byte as the client encoded them. */
#include <string.h>

#include "common/etf.h"
#include "registry/reg.h"

uint64_t reg_hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ n;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    return h ^ (h >> 32);
}

/* The user's Key must be one whole term: it is spliced into CRDT keys and observable keys. */
static int term_end(const uint8_t *p, size_t len, size_t *i) { return hc_dec_skip(p, len, i); }

int reg_parse_ckey(const uint8_t *p, size_t len, reg_ckey *out)
{
    size_t i = 0;
    uint32_t arity;
    memset(out, 0, sizeof *out);
    if (hc_dec_tuple_header(p, len, &i, &arity))
        return HC_EDECODE;
    size_t s;
    if (arity == 3 && hc_dec_is_atom(p, len, &i, "r")) {
        s = i;
        if (term_end(p, len, &i))
            return HC_EDECODE;
        out->key = p + s;
        out->key_len = i - s;
        if (hc_dec_pid(p, len, &i, &out->pid) || i != len)
            return HC_EDECODE;
        out->kind = REG_K_REG;
        return HC_OK;
    }
    if (arity != 2)
        return HC_EDECODE;
    size_t a = i;
    if (hc_dec_is_atom(p, len, &i, "m")) {
        s = i;
        if (term_end(p, len, &i) || i != len)
            return HC_EDECODE;
        out->key = p + s;
        out->key_len = i - s;
        out->kind = REG_K_META;
        return HC_OK;
    }
    i = a;
    if (hc_dec_is_atom(p, len, &i, "member")) {
        if (reg_parse_member(p, len, &i, &out->name, &out->node) || i != len)
            return HC_EDECODE;
        out->kind = REG_K_MEMBER;
        return HC_OK;
    }
    i = a;
    if (hc_dec_is_atom(p, len, &i, "client")) {
        if (hc_dec_pid(p, len, &i, &out->pid) || i != len)
            return HC_EDECODE;
        out->kind = REG_K_CLIENT;
        return HC_OK;
    }
    return HC_EDECODE;
}

int reg_parse_val(const uint8_t *p, size_t len, reg_val *out)
{
    size_t i = 0;
    uint32_t arity;
    memset(out, 0, sizeof *out);
    if (hc_dec_tuple_header(p, len, &i, &arity) || arity != 2)
        return HC_EDECODE;
    size_t s = i;
    if (term_end(p, len, &i))
        return HC_EDECODE;
    out->value = p + s;
    out->value_len = i - s;
    if (hc_dec_is_atom(p, len, &i, "hordec"))
        out->local = true;
    else if (hc_dec_pid(p, len, &i, &out->owner))
        return HC_EDECODE;
    return i == len ? HC_OK : HC_EDECODE;
}

int reg_parse_member(const uint8_t *p, size_t len, size_t *i, hc_atom *name, hc_atom *node)
{
    size_t j = *i;
    uint32_t arity;
    if (hc_dec_tuple_header(p, len, &j, &arity) || arity != 2 || hc_dec_atom(p, len, &j, name) || !*name ||
        hc_dec_atom(p, len, &j, node) || !strchr(hc_atom_name(*node), '@'))
        return HC_EDECODE;
    *i = j;
    return HC_OK;
}

static void enc_tagged(hc_buf *b, uint32_t arity, const char *tag)
{
    hc_enc_tuple_header(b, arity);
    hc_enc_atom_cstr(b, tag);
}

void reg_enc_ckey_reg(hc_buf *b, const uint8_t *key, size_t klen, const hc_pid *pid)
{
    enc_tagged(b, 3, "r");
    hc_buf_append(b, key, klen);
    hc_enc_pid(b, pid);
}

void reg_enc_okey_reg(hc_buf *b, const uint8_t *key, size_t klen, const hc_pid *pid)
{
    enc_tagged(b, 3, "reg");
    hc_buf_append(b, key, klen);
    hc_enc_pid(b, pid);
}

void reg_enc_ckey_meta(hc_buf *b, const uint8_t *key, size_t klen)
{
    enc_tagged(b, 2, "m");
    hc_buf_append(b, key, klen);
}

void reg_enc_okey_meta(hc_buf *b, const uint8_t *key, size_t klen)
{
    enc_tagged(b, 2, "meta");
    hc_buf_append(b, key, klen);
}

void reg_enc_member(hc_buf *b, hc_atom name, hc_atom node)
{
    hc_enc_tuple_header(b, 2);
    hc_enc_atom(b, name);
    hc_enc_atom(b, node);
}

void reg_enc_key_member(hc_buf *b, hc_atom name, hc_atom node)
{
    enc_tagged(b, 2, "member");
    reg_enc_member(b, name, node);
}

void reg_enc_key_client(hc_buf *b, const hc_pid *client)
{
    enc_tagged(b, 2, "client");
    hc_enc_pid(b, client);
}

void reg_enc_val(hc_buf *b, const uint8_t *value, size_t vlen, bool local, const hc_pid *owner)
{
    hc_enc_tuple_header(b, 2);
    hc_buf_append(b, value, vlen);
    if (local)
        hc_enc_atom_cstr(b, "hordec");
    else
        hc_enc_pid(b, owner);
}
