/* epmd.h — the Erlang port mapper client: register ourselves (ALIVE2) and look peers up (PORT_PLEASE2).
 *
 * Registration happens once at start-up, before the event loop runs, so it is a bounded blocking
 * exchange. Look-ups happen inside the loop, so they are split into a request builder and a reply
 * parser that the non-blocking connection state machine drives. */
#ifndef HORDEC_DIST_EPMD_H
#define HORDEC_DIST_EPMD_H

#include <stdint.h>

#include "hordec/hc_common.h"

#define HC_EPMD_PORT 4369

/* Registers `alive` (the part before '@') as a hidden node listening on `port`. On success *fd is the
 * registration socket — keep it open: epmd forgets us when it closes — and *creation the fresh creation
 * epmd assigned. If nobody answers on the epmd port, starts `epmd -daemon` (as erl does) and retries.
 * Returns HC_OK, HC_EEXIST (the name is taken), or HC_EIO with a message in `err`. */
int hc_epmd_register(const char *alive, uint16_t port, int *fd, uint32_t *creation, char *err, size_t errlen);

/* PORT_PLEASE2 request for `alive`, ready to write. */
int hc_epmd_port_request(hc_buf *out, const char *alive);
/* Parses a PORT2_RESP. Returns 1 with *port set, 0 if more bytes are needed, HC_ENOPROC if the name is not
 * registered, HC_EDECODE if the reply is malformed. */
int hc_epmd_port_reply(const uint8_t *p, size_t len, uint16_t *port);

#endif
