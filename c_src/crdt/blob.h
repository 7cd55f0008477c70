/* blob.h — reference-counted immutable byte strings for values.
 *
 * A value is stored once and shared by the map, pending change events and nothing else; events hold a
 * reference instead of copying values that may be megabytes. */
#ifndef HORDEC_CRDT_BLOB_H
#define HORDEC_CRDT_BLOB_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct crdt_blob {
    uint32_t refs;
    uint32_t len;
    uint8_t data[];
} crdt_blob;

static inline crdt_blob *crdt_blob_new(const void *p, size_t len)
{
    if (len > UINT32_MAX - sizeof(crdt_blob))
        return NULL;
    crdt_blob *b = malloc(sizeof *b + len);
    if (!b)
        return NULL;
    b->refs = 1;
    b->len = (uint32_t)len;
    if (len)
        memcpy(b->data, p, len);
    return b;
}

static inline crdt_blob *crdt_blob_ref(crdt_blob *b)
{
    if (b)
        b->refs++;
    return b;
}

static inline void crdt_blob_unref(crdt_blob *b)
{
    if (b && --b->refs == 0)
        free(b);
}

#endif
