/* term_req.c — hc_req_match: finding a request's handler in a table of {atom, arity, handler}. */
#include <string.h>

#include "common/term_priv.h"
#include "hordec/hc_term.h"

const hc_req_entry *hc_req_match(const hc_req_entry *table, size_t n, const uint8_t *req, size_t len, hc_req_args *args)
{
    size_t end = 0, i = 0;
    uint32_t arity;
    bool tuple;
    term_atom name;
    /* The whole request first: a handler may then trust that its arguments are whole terms. */
    if (!table || !req || hc_dec_skip(req, len, &end) || end != len)
        return NULL;
    tuple = hc_dec_tuple_header(req, len, &i, &arity) == HC_OK;
    if (tuple && arity == 0)
        return NULL;
    if (term_atom_at(req, len, &i, &name))
        return NULL;
    arity = tuple ? arity - 1 : 0;
    for (size_t k = 0; k < n; k++) {
        const hc_req_entry *e = &table[k];
        /* arity 0 names the bare atom only: {ping} is not ping */
        if (!e->name || e->arity != arity || (e->arity == 0) == tuple || !term_atom_eq(&name, e->name, strlen(e->name)))
            continue;
        *args = (hc_req_args){req, len, i, arity};
        return e;
    }
    return NULL;
}
