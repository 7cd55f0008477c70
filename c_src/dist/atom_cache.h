/* atom_cache.h — the distribution header and its atom cache (DFLAG_DIST_HDR_ATOM_CACHE).
 *
 * Once both sides advertise the flag, every data packet is
 *     131, 68, NumberOfAtomCacheRefs, Flags, AtomCacheRefs, Control, [Message]
 * instead of 'p', 131, Control, [131, Message]: the terms after the header carry no 131 of their own,
 * and ATOM_CACHE_REF (82, Ix) inside them names entry Ix of the header's reference list. Each
 * reference names a slot of a 2048-entry per-connection cache (8 segments × 256); a "new" reference
 * carries the atom text and fills the slot, later packets name the slot with one byte. The sender picks
 * the slot; the receiver only remembers. So each direction has its own table: `in` is what the peer
 * told us, `out` is what we told the peer (erts: ErtsAtomCache in_arr/out_arr, external.c).
 *
 * The rest of hordec only speaks plain ETF, so the receive side normalises a packet back into the
 * 'p' form with full atoms, and the send side turns our 'p' packets into the header form. Both are
 * single passes over the terms (binaries are skipped, not scanned), and every byte from the peer is
 * bounds-checked: a malformed header is an error value with a reason, never a crash. */
#ifndef HORDEC_DIST_ATOM_CACHE_H
#define HORDEC_DIST_ATOM_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "hordec/hc_term.h"

#define HC_AC_SIZE 2048    /* slots: 8 segments of 256 */
#define HC_AC_MAX_REFS 255 /* references one packet can make (NumberOfAtomCacheRefs is one byte) */

/* A slot's atom, as text: the cache works on atom text and never touches the intern table, so atoms
 * that only pass through a message (as they do in 'p' form) cost no table entries. */
typedef struct hc_ac_text {
    uint8_t *text; /* owned; NULL with used set is '' */
    uint16_t len;
    bool used;
} hc_ac_text;

/* One reference of the packet being built or parsed; text points into the packet or into a slot. */
typedef struct hc_ac_ref {
    const uint8_t *text;
    uint16_t len;
    uint16_t slot;
    bool is_new;
} hc_ac_ref;

/* The references of one packet. slot -> reference index is valid when stamp == gen, so nothing is
 * cleared per packet. The sender uses it to give an atom one reference per packet; the receiver to let
 * a reference see a slot filled earlier in the same header. */
typedef struct hc_ac_packet {
    uint32_t stamp[HC_AC_SIZE];
    uint8_t ref_of[HC_AC_SIZE];
    uint32_t gen;
    hc_ac_ref refs[HC_AC_MAX_REFS];
    unsigned nrefs;
} hc_ac_packet;

typedef struct hc_atom_cache {
    hc_ac_text in[HC_AC_SIZE];  /* what the peer stored in each slot */
    hc_ac_text out[HC_AC_SIZE]; /* what the peer holds in each slot because we sent it */
    hc_ac_packet tx, rx;
    hc_buf hdr;        /* 4-byte length + distribution header of the packet being sent */
    struct iovec *iov; /* the packet being sent: hdr, then spans of the caller's terms and refs */
    size_t niov, capiov;
    hc_buf norm; /* a received packet rewritten with full atoms */
} hc_atom_cache;

hc_atom_cache *hc_ac_new(void);
void hc_ac_free(hc_atom_cache *ac);

/* Receive: `p`/`len` is one data packet (after its 4-byte length) on a connection that negotiated the
 * cache. On HC_OK, out/outlen is the same packet as 'p', 131, Control, [131, Message] with every
 * cache reference replaced by its atom. A packet without references is rewritten in place (a few bytes
 * of the control tuple move; a large message is never copied), so `p` must be writable; otherwise the
 * result lives in ac->norm until the next call. A packet already in 'p' form passes through unchanged.
 * HC_EDECODE (with *why saying what was wrong) or HC_ENOMEM; the cache stays consistent either way,
 * but the caller should drop the connection, as erts does. */
int hc_ac_normalize(hc_atom_cache *ac, uint8_t *p, size_t len, const uint8_t **out, size_t *outlen, const char **why);

/* Send: builds the framed packet (4-byte length included) for `ctrl` ('p', 131, Control, as the
 * control encoders produce it) and `msg` (the message without 131, or NULL) as an iovec list that
 * points into ac and into ctrl/msg. Atoms (also node names in pids, refs and ports) become cache
 * references. Queue the list, then call hc_ac_commit(): the slots we announced count as known to the
 * peer only once the packet is certain to reach it. HC_OK, HC_EINVAL (ctrl not in 'p' form),
 * HC_ETOOBIG or HC_ENOMEM. */
int hc_ac_encode(hc_atom_cache *ac, const uint8_t *ctrl, size_t clen, const uint8_t *msg, size_t mlen,
                 const struct iovec **iov, int *niov);
void hc_ac_commit(hc_atom_cache *ac);

#endif
