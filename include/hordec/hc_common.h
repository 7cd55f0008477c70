/* hc_common.h — error codes and the growable byte buffer shared by every HordeC layer.
 *
 * Errors are values: functions return 0 (HC_OK) or a negative HC_E* code, never abort on bad input. */
#ifndef HORDEC_HC_COMMON_H
#define HORDEC_HC_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "hordec/hc_export.h"

HC_BEGIN_DECLS

enum {
    HC_OK = 0,
    HC_ENOMEM = -1,    /* allocation failed */
    HC_EINVAL = -2,    /* bad argument from the caller */
    HC_EDECODE = -3,   /* malformed input from a peer or client */
    HC_ETOOBIG = -4,   /* a message or value over the configured limit */
    HC_ENOPROC = -5,   /* no such process or registered name */
    HC_ENOCONN = -6,   /* no connection to that node (and none could be made) */
    HC_EBUSY = -7,     /* a bounded queue is full: back off and retry */
    HC_EIO = -8,       /* a socket or system call failed; see errno in the log */
    HC_EAUTH = -9,     /* handshake rejected (cookie, name, flags) */
    HC_EEXIST = -10,   /* the name or object already exists */
    HC_EVERSION = -11, /* a versioned message of a version we do not speak */
    HC_ESTATE = -12,   /* a valid message that makes no sense in the current state */
    HC_ETIMEOUT = -13, /* a deadline passed first (a call, a connection setup, a tick timeout) */
};

/* A short English description of an HC_E* code ("unknown error" for anything else). */
const char *hc_strerror(int code);

/* A growable byte buffer. Zero-initialise it ({0}) before first use; free with hc_buf_free.
 *
 * The error is sticky: once an append fails, `err` holds the HC_E* code, every later append is a no-op
 * returning it, and senders refuse the buffer. So a term built in many steps can be checked once at the
 * end, and a half-built term can never reach the wire. hc_buf_reset clears it. */
typedef struct hc_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    int err; /* HC_OK, or the first failure */
} hc_buf;

int hc_buf_reserve(hc_buf *b, size_t extra); /* make room for `extra` more bytes */
int hc_buf_append(hc_buf *b, const void *p, size_t n);
int hc_buf_put_u8(hc_buf *b, uint8_t v);
int hc_buf_put_be16(hc_buf *b, uint16_t v);
int hc_buf_put_be32(hc_buf *b, uint32_t v);
int hc_buf_put_be64(hc_buf *b, uint64_t v);
void hc_buf_reset(hc_buf *b); /* len = 0, keeps the memory */
void hc_buf_free(hc_buf *b);

/* Makes room for `need` elements in a dynamic array of `elem` bytes each: on return *cap >= need
 * (doubling from `first`). *arr and *cap change only on success. HC_OK or HC_ENOMEM. */
int hc_array_reserve(void **arr, size_t *cap, size_t need, size_t elem, size_t first);

/* Time as a host passes it into a sans-I/O core (cores never read clocks). Every deadline and timeout is
 * in monotonic milliseconds (`mono_ms`, never jumps); wall-clock milliseconds (`wall_ms`, may jump either
 * way) are used only to stamp hybrid-logical-clock timestamps, which must be comparable across nodes. */
typedef struct hc_time {
    uint64_t mono_ms;
    uint64_t wall_ms;
} hc_time;

/* A deadline that never comes: "nothing is pending". */
#define HC_NO_DEADLINE UINT64_MAX

static inline uint16_t hc_get_be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t hc_get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t hc_get_be64(const uint8_t *p) { return ((uint64_t)hc_get_be32(p) << 32) | hc_get_be32(p + 4); }

HC_END_DECLS
#endif
