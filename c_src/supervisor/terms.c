/* terms.c — the supervisor's CRDT keys and values (docs/supervisor.md §2): one encoding each, and parsers that
 * accept exactly these shapes. */
#include <string.h>

#include "supervisor/sup.h"

static const char *const kinds[] = {"c", "beam"};
static const char *const restarts[] = {"permanent", "transient", "temporary"};
static const char *const statuses[] = {"alive", "shutting_down", "dead"};

const char *sup_status_name(sup_status s)
{
    switch (s) {
    case SUP_ST_ALIVE: return "alive";
    case SUP_ST_SHUTTING_DOWN: return "shutting_down";
    case SUP_ST_DEAD: return "dead";
    default: return "uninitialized";
    }
}

static bool tuple(const uint8_t *p, size_t len, size_t *i, uint32_t want)
{
    uint32_t a;
    return hc_dec_tuple_header(p, len, i, &a) == HC_OK && a == want;
}

int sup_parse_member(const uint8_t *p, size_t len, size_t *i, hc_atom *name, hc_atom *node)
{
    if (!tuple(p, len, i, 2) || hc_dec_atom(p, len, i, name) || hc_dec_atom(p, len, i, node))
        return HC_EDECODE;
    return HC_OK;
}

int sup_parse_ckey(const uint8_t *p, size_t len, sup_ckey *out)
{
    size_t i = 0;
    memset(out, 0, sizeof *out);
    if (!tuple(p, len, &i, 2))
        return HC_EDECODE;
    if (hc_dec_is_atom(p, len, &i, "member"))
        out->kind = SUP_K_MEMBER;
    else if (hc_dec_is_atom(p, len, &i, "status"))
        out->kind = SUP_K_STATUS;
    else if (hc_dec_is_atom(p, len, &i, "child"))
        out->kind = SUP_K_CHILD;
    else
        return HC_EDECODE;
    int rc = out->kind == SUP_K_CHILD ? hc_dec_ulong(p, len, &i, &out->id)
                                      : sup_parse_member(p, len, &i, &out->name, &out->node);
    if (rc || i != len || (out->kind == SUP_K_CHILD && out->id >= (1ull << 63))) {
        out->kind = SUP_K_NONE;
        return HC_EDECODE;
    }
    return HC_OK;
}

uint64_t sup_type_hash(const uint8_t *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a: type names are short, and compared by hash only */
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h ? h : 1;
}

bool sup_status_has_type(const sup_status_val *v, uint64_t type_hash)
{
    for (uint32_t i = 0; i < v->ntypes; i++)
        if (v->type_hash[i] == type_hash)
            return true;
    return false;
}

int sup_parse_status(const uint8_t *p, size_t len, sup_status_val *out)
{
    size_t i = 0, k, s;
    memset(out, 0, sizeof *out);
    if (!tuple(p, len, &i, 5) || hc_dec_atom_index(p, len, &i, kinds, 2, &k) ||
        hc_dec_atom_index(p, len, &i, statuses, 3, &s) || hc_dec_pid(p, len, &i, &out->pid) ||
        sup_parse_member(p, len, &i, &out->via_name, &out->via_node))
        return HC_EDECODE;
    size_t t0 = i;
    hc_iter it;
    hc_span t, name;
    if (hc_iter_list(&it, p, len, &i) || i != len)
        return HC_EDECODE;
    out->types = (hc_span){p + t0, len - t0};
    while (hc_iter_next(&it, &t)) {
        size_t j = 0;
        if (out->ntypes == SUP_MAX_TYPES || hc_dec_binary(t.p, t.len, &j, &name) || j != t.len || !name.len ||
            name.len > 255)
            return HC_EDECODE;
        out->type_hash[out->ntypes++] = sup_type_hash(name.p, name.len);
    }
    out->kind = k == 0 ? SUP_KIND_C : SUP_KIND_BEAM;
    out->status = (sup_status)(SUP_ST_ALIVE + s);
    return HC_OK;
}

/* Kind, Restart, Hash, Body: the elements both the spec and the record start with. */
static int parse_spec_elems(const uint8_t *p, size_t len, size_t *i, sup_child_val *out)
{
    size_t k, r, start = *i;
    if (hc_dec_atom_index(p, len, i, kinds, 2, &k) || hc_dec_atom_index(p, len, i, restarts, 3, &r) ||
        hc_dec_ulong(p, len, i, &out->hash))
        return HC_EDECODE;
    out->kind = k == 0 ? SUP_KIND_C : SUP_KIND_BEAM;
    out->restart = SUP_PERMANENT + (int)r;
    out->kind_restart_hash = (hc_span){p + start, *i - start};
    if (hc_dec_term(p, len, i, &out->body))
        return HC_EDECODE;
    if (out->kind == SUP_KIND_C) { /* {Type, Arg}: Type a binary naming a worker type */
        size_t j = 0;
        hc_span type, arg;
        const uint8_t *b = out->body.p;
        if (!tuple(b, out->body.len, &j, 2) || hc_dec_binary(b, out->body.len, &j, &type) || !type.len ||
            type.len > 255 || hc_dec_term(b, out->body.len, &j, &arg) || j != out->body.len)
            return HC_EDECODE;
        out->type = type;
        out->type_hash = sup_type_hash(type.p, type.len);
    }
    return HC_OK;
}

int sup_parse_spec(const uint8_t *p, size_t len, size_t *i, sup_child_val *out)
{
    memset(out, 0, sizeof *out);
    if (!tuple(p, len, i, 4))
        return HC_EDECODE;
    return parse_spec_elems(p, len, i, out);
}

int sup_parse_child(const uint8_t *p, size_t len, sup_child_val *out)
{
    size_t i = 0;
    memset(out, 0, sizeof *out);
    if (!tuple(p, len, &i, 6) || parse_spec_elems(p, len, &i, out))
        return HC_EDECODE;
    size_t j = i;
    if (hc_dec_is_atom(p, len, &j, "nil")) {
        if (!hc_dec_is_atom(p, len, &j, "nil") || j != len)
            return HC_EDECODE;
        return HC_OK;
    }
    if (sup_parse_member(p, len, &i, &out->m_name, &out->m_node) || hc_dec_pid(p, len, &i, &out->pid) || i != len)
        return HC_EDECODE;
    return HC_OK;
}

void sup_enc_member(hc_buf *b, hc_atom name, hc_atom node)
{
    hc_enc_tuple_header(b, 2);
    hc_enc_atom(b, name);
    hc_enc_atom(b, node);
}

static void enc_key(hc_buf *b, const char *tag, hc_atom name, hc_atom node)
{
    hc_enc_tuple_header(b, 2);
    hc_enc_atom_cstr(b, tag);
    sup_enc_member(b, name, node);
}

void sup_enc_key_member(hc_buf *b, hc_atom name, hc_atom node) { enc_key(b, "member", name, node); }
void sup_enc_key_status(hc_buf *b, hc_atom name, hc_atom node) { enc_key(b, "status", name, node); }

void sup_enc_key_child(hc_buf *b, uint64_t id)
{
    hc_enc_tuple_header(b, 2);
    hc_enc_atom_cstr(b, "child");
    hc_enc_ulong(b, id);
}

void sup_enc_status(hc_buf *b, const sup_status_val *v)
{
    hc_enc_tuple_header(b, 5);
    hc_enc_atom_cstr(b, v->kind == SUP_KIND_C ? "c" : "beam");
    hc_enc_atom_cstr(b, sup_status_name(v->status));
    hc_enc_pid(b, &v->pid);
    sup_enc_member(b, v->via_name, v->via_node);
    if (v->types.len)
        hc_buf_append(b, v->types.p, v->types.len);
    else
        hc_enc_nil(b);
}

void sup_enc_spec(hc_buf *b, const sup_child_val *v)
{
    hc_enc_tuple_header(b, 4);
    hc_buf_append(b, v->kind_restart_hash.p, v->kind_restart_hash.len);
    hc_buf_append(b, v->body.p, v->body.len);
}

void sup_enc_child(hc_buf *b, const sup_child_val *v)
{
    hc_enc_tuple_header(b, 6);
    hc_buf_append(b, v->kind_restart_hash.p, v->kind_restart_hash.len);
    hc_buf_append(b, v->body.p, v->body.len);
    if (!v->m_name) {
        hc_enc_atom_cstr(b, "nil");
        hc_enc_atom_cstr(b, "nil");
        return;
    }
    sup_enc_member(b, v->m_name, v->m_node);
    hc_enc_pid(b, &v->pid);
}
