/* digest.c — challenge digest with OpenSSL's EVP interface (the MD5() shortcut is deprecated in 3.0). */
#include "dist/digest.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

void hc_dist_digest(uint32_t challenge, const char *cookie, uint8_t out[16])
{
    char num[16];
    int n = snprintf(num, sizeof num, "%u", (unsigned)challenge);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int olen = 16;
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_md5(), NULL) || !EVP_DigestUpdate(ctx, cookie, strlen(cookie)) ||
        !EVP_DigestUpdate(ctx, num, (size_t)n) || !EVP_DigestFinal_ex(ctx, out, &olen))
        memset(out, 0, 16); /* cannot match any peer digest: the handshake fails closed */
    EVP_MD_CTX_free(ctx);
}
