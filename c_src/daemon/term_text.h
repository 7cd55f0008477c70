/* term_text.h — Erlang term *text* (what file:consult reads) to external term format, for the
 * configuration files a BEAM operator already has (the ssl_dist_optfile).
 *
 * One term, optionally followed by '.', with `%` comments. Supported: atoms (bare and 'quoted'),
 * "strings" (encoded as binaries: the readers of configuration treat both alike), <<"binaries">>,
 * integers, tuples, and proper lists. Anything else (floats, maps, pids, funs, `|` tails, variables) is an
 * error that says where it is (line and column). */
#ifndef HORDEC_DAEMON_TERM_TEXT_H
#define HORDEC_DAEMON_TERM_TEXT_H

#include <stddef.h>

#include "hordec/hc_common.h"

/* Appends the term (without the 131 version byte) to out. HC_OK, HC_EDECODE (err says what and where)
 * or HC_ENOMEM. */
int hordec_term_text_parse(const char *text, size_t len, hc_buf *out, char *err, size_t errlen);

#endif
