/* hc_term.h — the one term codec: compact identifiers (atoms, pids, refs), encoders, decoders, a
 * bounds-checked skipper, list/map iterators and a request matcher.
 *
 * Conventions (they hold for every function below unless its comment says otherwise):
 *
 *  - Terms are external term format WITHOUT the leading 131 version byte, everywhere in the HordeC API.
 *  - Encoders append to an hc_buf and share its sticky error: each returns b->err at once when it is set,
 *    and records its own failure there (HC_EINVAL for an argument the BEAM could not decode, such as a
 *    ref with 0 words, a NaN or an atom of more than 255 characters; HC_ETOOBIG; HC_ENOMEM). So a caller
 *    builds a whole term and checks b->err once: a half-built term can never reach the wire. Every
 *    encoding is the one the BEAM itself produces (term_to_binary/2 with minor_version 2).
 *  - Decoders read the term at p[*idx] inside p[0..len), check every length against len, and return HC_OK
 *    or HC_EDECODE. They advance *idx past the term only on success; on failure *idx and *out are
 *    unchanged. Spans they hand out (hc_span) borrow the input: valid as long as the input is.
 *  - Nothing here recurses over a term, so no input can exhaust the C stack. Every function may be
 *    called from any thread EXCEPT those that use the atom table, which belongs to the loop thread:
 *    hc_atom_*, hc_dec_atom, hc_dec_pid, hc_dec_ref, hc_enc_atom, hc_enc_pid, hc_enc_ref.
 *
 * Why not ei: ei's erlang_pid/erlang_ref are ~1 KB structs with the node name inline (tables here hold
 * pids and refs as small structs whose node is an interned atom), ei's decoders trust the lengths they
 * read, and ei_skip_term recurses. */
#ifndef HORDEC_HC_TERM_H
#define HORDEC_HC_TERM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hordec/hc_common.h"
#include "hordec/hc_export.h"

HC_BEGIN_DECLS

/* ------------------------------------------------------------------ atoms, pids, refs, spans */

/* Atoms: a process-wide intern table (the loop thread owns it, like the BEAM's atom table). */
typedef uint32_t hc_atom; /* 0 is the empty atom '' */

#define HC_ATOM_MAX_BYTES (255 * 4) /* UTF-8 bytes of the longest atom OTP accepts (255 characters) */

/* Interns `len` bytes of UTF-8 and returns the atom, or 0 with *rc set when the table is full
 * (bounded so a hostile peer cannot grow it without limit) or the name is too long. */
hc_atom hc_atom_intern(const char *utf8, size_t len, int *rc);
hc_atom hc_atom_intern_cstr(const char *s);         /* for names we choose ourselves; aborts on failure */
hc_atom hc_atom_find(const char *utf8, size_t len); /* 0 if the atom was never interned */
const char *hc_atom_name(hc_atom a);                /* NUL-terminated */
size_t hc_atom_len(hc_atom a);
size_t hc_atom_count(void);
void hc_atom_table_reset(void); /* frees the table; for tests and leak checkers */

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

/* Borrowed bytes inside a buffer someone else owns: a whole term's ETF bytes, or a binary's payload. */
typedef struct hc_span {
    const uint8_t *p;
    size_t len;
} hc_span;

/* ------------------------------------------------------------------ encoders (append to b; see above) */

int hc_enc_atom(hc_buf *b, hc_atom a);
int hc_enc_atom_cstr(hc_buf *b, const char *s);
int hc_enc_atom_bytes(hc_buf *b, const char *utf8, size_t n); /* valid UTF-8, at most 255 characters */
int hc_enc_bool(hc_buf *b, bool v);                           /* the atom true or false */
int hc_enc_pid(hc_buf *b, const hc_pid *p);
int hc_enc_ref(hc_buf *b, const hc_ref *r); /* r->len must be 1..5 */
int hc_enc_long(hc_buf *b, int64_t v);
int hc_enc_ulong(hc_buf *b, uint64_t v);
int hc_enc_double(hc_buf *b, double v);                /* finite only: the BEAM has no NaN or infinity */
int hc_enc_binary(hc_buf *b, const void *p, size_t n); /* p may be NULL when n is 0 */
int hc_enc_string(hc_buf *b, const char *s);           /* a NUL-terminated string as an Elixir string (binary) */
int hc_enc_tuple_header(hc_buf *b, uint32_t arity);    /* then encode `arity` elements */
int hc_enc_map_header(hc_buf *b, uint32_t arity);      /* then encode `arity` key, value pairs */
/* n > 0 (HC_EINVAL for 0: an empty list is hc_enc_nil alone); then encode n elements and the tail,
 * normally hc_enc_nil. */
int hc_enc_list_header(hc_buf *b, uint32_t n);
int hc_enc_nil(hc_buf *b);
/* Splices n bytes of already-encoded ETF (zero or more whole terms, no version byte) verbatim, e.g. a
 * span a decoder handed out. The caller vouches for the bytes; hc_term_check() checks untrusted ones. */
int hc_enc_raw(hc_buf *b, const void *p, size_t n);

/* ------------------------------------------------------------------ decoders (see the conventions) */

/* Atoms: ATOM_UTF8 and SMALL_ATOM_UTF8, and the latin1 ATOM and SMALL_ATOM (converted to UTF-8, as OTP
 * compares atoms by their characters). hc_dec_atom interns (loop thread only; HC_EDECODE also when the
 * table is full); the others compare without interning, so a hostile peer cannot fill the table. */
int hc_dec_atom(const uint8_t *p, size_t len, size_t *idx, hc_atom *out);
bool hc_dec_is_atom(const uint8_t *p, size_t len, size_t *idx, const char *s); /* true: it is `s`, skipped */
/* The atom is names[k] for some k < n: *out = k. (HC_EDECODE when it is none of them.) */
int hc_dec_atom_index(const uint8_t *p, size_t len, size_t *idx, const char *const *names, size_t n, size_t *out);
int hc_dec_bool(const uint8_t *p, size_t len, size_t *idx, bool *out); /* the atoms true and false */

/* NEW_PID and PID; NEWER_REFERENCE and NEW_REFERENCE (1..5 words) and REFERENCE. Both intern the node. */
int hc_dec_pid(const uint8_t *p, size_t len, size_t *idx, hc_pid *out);
int hc_dec_ref(const uint8_t *p, size_t len, size_t *idx, hc_ref *out);

/* Integers: SMALL_INTEGER, INTEGER and SMALL_BIG of up to 8 digit bytes, when the value fits. */
int hc_dec_long(const uint8_t *p, size_t len, size_t *idx, int64_t *out);
int hc_dec_ulong(const uint8_t *p, size_t len, size_t *idx, uint64_t *out); /* >= 0 only */
/* Floats: NEW_FLOAT, and the old 31-character FLOAT. Not integers, not NaN or infinity. */
int hc_dec_double(const uint8_t *p, size_t len, size_t *idx, double *out);
/* BINARY: the payload, borrowed. A bitstring whose size is not whole bytes is not a binary. */
int hc_dec_binary(const uint8_t *p, size_t len, size_t *idx, hc_span *out);
/* A string, borrowed: an Elixir string (a binary, bytes as sent), or an Erlang charlist that arrives as
 * STRING (the BEAM's encoding of a list of code points 0..255 shorter than 65536) when every character
 * is ASCII, so 'abc' and "abc" read alike, or [] (the empty charlist). Other charlists are HC_EDECODE:
 * their UTF-8 would need a copy. */
int hc_dec_string(const uint8_t *p, size_t len, size_t *idx, hc_span *out);

int hc_dec_tuple_header(const uint8_t *p, size_t len, size_t *idx, uint32_t *arity);
int hc_dec_map_header(const uint8_t *p, size_t len, size_t *idx, uint32_t *arity); /* pairs follow */
/* LIST gives its element count (the elements and a tail follow), NIL gives 0. A STRING (a list of small
 * integers) is HC_EDECODE here: walk lists with hc_iter_list, which handles every form. A LIST of no elements
 * (only a tail: binary_to_term reads it, no BEAM writes it) is HC_EDECODE everywhere, hc_dec_skip included. */
int hc_dec_list_header(const uint8_t *p, size_t len, size_t *idx, uint32_t *n);

/* What kind of term is at p[idx] (HC_TYPE_NONE past the end or for a tag no OTP 23+ peer sends). */
typedef enum hc_type {
    HC_TYPE_NONE = 0,
    HC_TYPE_INTEGER, /* any size */
    HC_TYPE_FLOAT,
    HC_TYPE_ATOM,
    HC_TYPE_BINARY,    /* whole bytes */
    HC_TYPE_BITSTRING, /* not whole bytes */
    HC_TYPE_LIST,      /* [], a STRING or a LIST */
    HC_TYPE_TUPLE,
    HC_TYPE_MAP,
    HC_TYPE_PID,
    HC_TYPE_PORT,
    HC_TYPE_REF,
    HC_TYPE_FUN, /* a closure or an export fun M:F/A */
} hc_type;
hc_type hc_term_type(const uint8_t *p, size_t len, size_t idx);
int hc_peek_type(const uint8_t *p, size_t len, size_t idx); /* the raw ETF tag byte, or -1 past the end */

/* ------------------------------------------------------------------ skipping and checking */

/* How deeply hc_term_check lets tuples, lists (a tail counts as an element) and maps nest: a term inside
 * HC_TERM_MAX_DEPTH containers is accepted, one more level is not. Nothing in HordeC recurses over terms,
 * so this is not about our own stack: it bounds what HordeC STORES and replicates for others (CRDT keys
 * and values), so that any consumer of a stored term — a recursive C decoder, an old node — is safe. */
#define HC_TERM_MAX_DEPTH 200

/* Skips one whole term of any depth (iteratively: the transport carries whatever the BEAM sends). Every
 * length is checked against len, absurd counts fail at once (each element takes at least one byte), and
 * only tags an OTP 23+ peer can send are accepted: no atom cache refs, compressed terms or old funs;
 * BIT_BINARY has 1..8 bits in its last byte, references have 1..5 words, an export fun's arity is a
 * small integer. */
int hc_dec_skip(const uint8_t *p, size_t len, size_t *idx);
int hc_dec_term(const uint8_t *p, size_t len, size_t *idx, hc_span *out); /* hc_dec_skip, giving the span */
/* HC_OK when p[0..len) is exactly one well-formed term nested at most HC_TERM_MAX_DEPTH deep, else
 * HC_EDECODE (also for p == NULL). What to call before storing a term that came from outside. */
int hc_term_check(const uint8_t *p, size_t len);

/* ------------------------------------------------------------------ iterating lists and maps */

/* Walks the elements of a list, or the pairs of a map, as term spans. Starting validates the whole
 * container (every element, and for a list its tail), so a bad one is rejected before the caller acts
 * on any element, and the next functions cannot fail. The BEAM sends a list of small integers (0..255)
 * as a STRING, so [1, 2, 3] is a string on the wire: its elements are handed out re-encoded as
 * SMALL_INTEGER terms, in storage inside the iterator (valid until the next call). */
typedef struct hc_iter {
    const uint8_t *p;
    size_t len, i;    /* the input, and where the next element starts */
    uint32_t left;    /* elements (for a map: pairs) still to come; the count before the first next */
    uint8_t kind;     /* internal: a list, a STRING (elements are its bytes) or a map */
    uint8_t small[2]; /* the current STRING element as a SMALL_INTEGER term */
    hc_span tail;     /* hc_iter_improper_list only: the tail, or {NULL, 0} for a proper list */
} hc_iter;

/* A proper list ([], STRING or LIST ending in []) at p[*idx]; *idx moves past the whole list. */
int hc_iter_list(hc_iter *it, const uint8_t *p, size_t len, size_t *idx);
/* The same, but any tail is accepted and left in it->tail ([1 | 2] has one element and the tail 2). */
int hc_iter_improper_list(hc_iter *it, const uint8_t *p, size_t len, size_t *idx);
/* A map at p[*idx]; *idx moves past the whole map. */
int hc_iter_map(hc_iter *it, const uint8_t *p, size_t len, size_t *idx);
bool hc_iter_next(hc_iter *it, hc_span *elem);                     /* false after the last element */
bool hc_iter_next_pair(hc_iter *it, hc_span *key, hc_span *value); /* false after the last pair */

/* ------------------------------------------------------------------ matching requests */

/* A request handler as a table instead of an if-chain:
 *
 *     static const hc_req_entry requests[] = {
 *         {"ping", 0, do_ping},   // the bare atom ping
 *         {"get", 1, do_get},     // {get, Key}
 *         {"put", 2, do_put},     // {put, Key, Value}
 *     };
 *     hc_req_args a;
 *     const hc_req_entry *e = hc_req_match(requests, 3, req, len, &a);
 *     int rc = e ? e->fn(ctx, &a) : HC_EDECODE;   // no match: reply {error, ...}
 *
 * and a handler reads its arguments with the decoders, passing the cursor's fields:
 *
 *     static int do_put(void *ctx, hc_req_args *a) {
 *         hc_span key, value;
 *         if (hc_dec_term(a->p, a->len, &a->i, &key) || hc_dec_term(a->p, a->len, &a->i, &value) ||
 *             !hc_req_args_done(a))
 *             return HC_EDECODE;
 *         ...
 *     }
 */
typedef struct hc_req_args {
    const uint8_t *p; /* the whole request */
    size_t len;       /* where the request, and so the last argument, ends */
    size_t i;         /* the cursor: the next argument (A1 after a match) */
    uint32_t arity;   /* the number of arguments */
} hc_req_args;

typedef struct hc_req_entry {
    const char *name; /* the request's atom, UTF-8 */
    uint8_t arity;    /* 0: the bare atom `name`; N: the tuple {name, A1, ..., AN} */
    int (*fn)(void *ctx, hc_req_args *a);
} hc_req_entry;

/* The first entry of table[0..n) that req[0..len) matches, with *args positioned at A1; NULL when the
 * request is not exactly one well-formed term (any depth), is not an atom or a tuple whose first element
 * is an atom, or no entry has that name and arity. Atoms are compared by their characters without being
 * interned, so latin1 atoms match too and unknown requests cannot fill the atom table. */
const hc_req_entry *hc_req_match(const hc_req_entry *table, size_t n, const uint8_t *req, size_t len,
                                 hc_req_args *args);
/* True when the handler has read every argument. */
static inline bool hc_req_args_done(const hc_req_args *a) { return a->i == a->len; }

HC_END_DECLS
#endif
