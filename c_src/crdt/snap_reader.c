/* snap_reader.c — sliced change-stream snapshots for the cores that translate the engine's map (hc_crdt.h,
 * hc_crdt_snap_open): a cursor over the map as it was when opened, each entry handed to the core's translator. */
#include <stdlib.h>

#include "hordec/hc_crdt.h"

typedef struct snap_reader {
    hc_crdt_cursor *cur;
    hc_crdt_visit_fn translate;
    hc_crdt_snap_ctx ctx;
} snap_reader;

int hc_crdt_snap_open(hc_crdt *r, const void *core, hc_crdt_visit_fn translate, void **reader, size_t *count)
{
    *reader = NULL;
    *count = 0;
    snap_reader *rd = calloc(1, sizeof *rd);
    if (!rd)
        return HC_ENOMEM;
    int rc = hc_crdt_cursor_open(r, &rd->cur);
    if (rc) {
        free(rd);
        return rc;
    }
    rd->translate = translate;
    rd->ctx.core = core;
    *reader = rd;
    *count = hc_crdt_cursor_count(rd->cur);
    return HC_OK;
}

int hc_crdt_snap_next(void *reader, size_t max, hc_core_visit_fn fn, void *ud)
{
    snap_reader *rd = reader;
    rd->ctx.fn = fn;
    rd->ctx.ud = ud;
    return hc_crdt_cursor_next(rd->cur, max, NULL, rd->translate, &rd->ctx);
}

void hc_crdt_snap_close(void *reader)
{
    snap_reader *rd = reader;
    if (!rd)
        return;
    hc_crdt_cursor_close(rd->cur);
    hc_buf_free(&rd->ctx.scratch);
    free(rd);
}
