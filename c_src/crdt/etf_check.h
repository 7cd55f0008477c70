/* etf_check.h — bounds-checked validation of one external-term-format term.
 *
 * ei's decoders trust the length fields they read, so a hostile buffer could make them read past its
 * end. Every message and every user key/value is walked by this checker first; only then do the ei
 * decoders run, on bytes known to be in bounds. It understands every tag a term can carry on the wire
 * (OTP 23+) and rejects the rest, and limits nesting depth so input cannot exhaust the stack. */
#ifndef HORDEC_CRDT_ETF_CHECK_H
#define HORDEC_CRDT_ETF_CHECK_H

#include <stddef.h>
#include <stdint.h>

#define CRDT_ETF_MAX_DEPTH 200

/* Advances *idx over one term inside p[0..len). HC_OK or HC_EDECODE. */
int crdt_etf_skip(const uint8_t *p, size_t len, size_t *idx);
/* HC_OK when p[0..len) is exactly one well-formed term (no version byte). */
int crdt_etf_check_term(const uint8_t *p, size_t len);

#endif
