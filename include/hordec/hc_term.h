/* hc_term.h — compact identifiers (atoms, pids, refs) and the term helpers the runtime needs.
 *
 * ei's erlang_pid/erlang_ref carry the node name inline (~1 KB each); tables here hold pids and refs
 * as small structs whose node is an interned atom. All term byte spans in the HordeC API are external
 * term format WITHOUT the leading 131 version byte. */
#ifndef HORDEC_HC_TERM_H
#define HORDEC_HC_TERM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hordec/hc_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- atoms: a process-wide intern table (the loop thread owns it, like the BEAM's atom table) ---- */
typedef uint32_t hc_atom; /* 0 is the empty atom '' */

#define HC_ATOM_MAX_BYTES (255 * 4) /* UTF-8 bytes of the longest atom OTP accepts (255 characters) */

/* Interns `len` bytes of UTF-8 and returns the atom, or 0 with *rc set when the table is full
 * (bounded so a hostile peer cannot grow it without limit) or the name is too long. */
hc_atom hc_atom_intern(const char *utf8, size_t len, int *rc);
hc_atom hc_atom_intern_cstr(const char *s); /* for names we choose ourselves; aborts on failure */
hc_atom hc_atom_find(const char *utf8, size_t len); /* 0 if the atom was never interned */
const char *hc_atom_name(hc_atom a);                /* NUL-terminated */
size_t hc_atom_len(hc_atom a);
size_t hc_atom_count(void);
void hc_atom_table_reset(void); /* frees the table; for tests and leak checkers */

/* ---- pids and refs ---- */
typedef struct hc_pid {
    hc_atom node;
    uint32_t num;
    uint32_t serial;
    uint32_t creation;
} hc_pid;

typedef struct hc_ref {
    hc_atom node;
    uint32_t creation;
    uint32_t len; /* number of ID words used, 1..5 */
    uint32_t n[5];
} hc_ref;

static inline bool hc_pid_eq(const hc_pid *a, const hc_pid *b)
{
    return a->num == b->num && a->serial == b->serial && a->node == b->node && a->creation == b->creation;
}
bool hc_ref_eq(const hc_ref *a, const hc_ref *b);
uint64_t hc_ref_hash(const hc_ref *r);
uint64_t hc_pid_hash(const hc_pid *p);

/* ---- encoders into an hc_buf (no version byte) ---- */
int hc_enc_atom(hc_buf *b, hc_atom a);
int hc_enc_atom_cstr(hc_buf *b, const char *s);
int hc_enc_pid(hc_buf *b, const hc_pid *p);
int hc_enc_ref(hc_buf *b, const hc_ref *r);
int hc_enc_tuple_header(hc_buf *b, uint32_t arity);
int hc_enc_list_header(hc_buf *b, uint32_t n); /* n > 0; caller then encodes n elements and a tail */
int hc_enc_nil(hc_buf *b);
int hc_enc_long(hc_buf *b, int64_t v);
int hc_enc_ulong(hc_buf *b, uint64_t v);
int hc_enc_binary(hc_buf *b, const void *p, size_t n);
int hc_enc_string(hc_buf *b, const char *s); /* a UTF-8 string as an Elixir binary */
int hc_enc_map_header(hc_buf *b, uint32_t arity);
int hc_enc_double(hc_buf *b, double v);

/* ---- decoders over a byte span; *idx advances; all return HC_OK or HC_EDECODE ---- */
int hc_dec_atom(const uint8_t *p, size_t len, size_t *idx, hc_atom *out); /* interns */
int hc_dec_pid(const uint8_t *p, size_t len, size_t *idx, hc_pid *out);
int hc_dec_ref(const uint8_t *p, size_t len, size_t *idx, hc_ref *out);
int hc_dec_tuple_header(const uint8_t *p, size_t len, size_t *idx, uint32_t *arity);
int hc_dec_long(const uint8_t *p, size_t len, size_t *idx, int64_t *out);
int hc_dec_skip(const uint8_t *p, size_t len, size_t *idx); /* skip one whole term, bounds-checked */
int hc_dec_list_header(const uint8_t *p, size_t len, size_t *idx, uint32_t *n); /* NIL gives n = 0 */
/* If the term at *idx is the atom `s`, advance and return true. */
bool hc_dec_is_atom(const uint8_t *p, size_t len, size_t *idx, const char *s);
int hc_peek_type(const uint8_t *p, size_t len, size_t idx); /* ETF tag byte, or -1 */

#ifdef __cplusplus
}
#endif
#endif
