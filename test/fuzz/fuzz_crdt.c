/* fuzz_crdt.c — the crdt core as its host runs it: hostile replica messages from two peers, client requests,
 * time, nodedown/nodeup and monitor downs, in any order (fuzz_core.h has the input format and the checks). */
#include "fuzz_core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_run(&fz_crdt_kind, data, size);
    return 0;
}
