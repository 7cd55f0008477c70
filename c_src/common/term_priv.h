/* term_priv.h — what the term codec's files (term_*.c) share and nobody else needs. */
#ifndef HORDEC_COMMON_TERM_PRIV_H
#define HORDEC_COMMON_TERM_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An atom's text as it stands in the input, borrowed: UTF-8, or latin1 (ATOM_EXT, SMALL_ATOM_EXT). */
typedef struct term_atom {
    const uint8_t *s;
    size_t n;
    bool latin1;
} term_atom;

/* Reads the atom at p[*idx] without interning or converting. HC_OK (and *idx past it) or HC_EDECODE. */
int term_atom_at(const uint8_t *p, size_t len, size_t *idx, term_atom *out);
/* True when the atom's characters are exactly the UTF-8 text name[0..n). */
bool term_atom_eq(const term_atom *a, const char *name, size_t n);

#endif
