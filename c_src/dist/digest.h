/* digest.h — the distribution handshake's challenge digest: MD5(Cookie ++ integer_to_list(Challenge)). */
#ifndef HORDEC_DIST_DIGEST_H
#define HORDEC_DIST_DIGEST_H

#include <stddef.h>
#include <stdint.h>

void hc_dist_digest(uint32_t challenge, const char *cookie, uint8_t out[16]);

#endif
