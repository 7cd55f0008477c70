/* replicas.c — see replicas.h. */
#include "hordec/replicas.h"

#include <openssl/rand.h>

#include "hordec/hc_crdt.h"
#include "host/host_rt.h"

bool hordec_is_crdt(const hc_proc *p) { return hc_host_rt_kind(p) == &hc_crdt_core_ops; }

int hordec_crdt_start(hc_rt *rt, hc_atom name, const hordec_crdt_opts *opts, hc_proc **out)
{
    hc_proc *existing = hc_proc_whereis(rt, name);
    if (existing) {
        if (!hordec_is_crdt(existing))
            return HC_EEXIST;
        *out = existing;
        return HC_OK;
    }
    /* A new replica id for every start: a replica that starts empty must never reuse an old identity. */
    uint64_t id = 0;
    while (!id && RAND_bytes((unsigned char *)&id, sizeof id) == 1)
        ;
    if (!id)
        return HC_ENOMEM;
    hc_crdt_config cfg;
    hc_crdt_config_init(&cfg, id);
    if (opts && opts->flush_interval_ms)
        cfg.flush_interval_ms = opts->flush_interval_ms;
    if (opts && opts->max_message_bytes)
        cfg.max_message_bytes = opts->max_message_bytes;
    void *core;
    int rc = hc_crdt_core_new(&cfg, hc_host_rt_now(rt), &core);
    if (rc)
        return rc;
    hc_host_rt_opts ho = {.stream_batch_bytes = opts ? opts->stream_batch_bytes : 0};
    return hc_host_rt_start(rt, name, &hc_crdt_core_ops, core, &ho, out);
}
