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

/* Reads the atom at p[*idx] without interning or converting. HC_OK (and *idx past it) or HC_EDECODE, also for
 * text the BEAM refuses: UTF-8 that is not well-formed or longer than 255 characters, latin1 longer than 255. */
int term_atom_at(const uint8_t *p, size_t len, size_t *idx, term_atom *out);
/* True when the atom's characters are exactly the UTF-8 text name[0..n). */
bool term_atom_eq(const term_atom *a, const char *name, size_t n);
/* True when s[0..n) is an atom's text as the BEAM accepts it: well-formed UTF-8 of at most 255 characters. */
bool term_atom_utf8_ok(const uint8_t *s, size_t n);

#endif
