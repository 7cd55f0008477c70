/* introspect.c — read-only views of the runtime for metrics (hc_rt_peer_stats_get, hc_rt_foreach_proc). */
#include "runtime/rt_internal.h"

size_t hc_rt_peer_stats_get(const hc_rt *rt, hc_rt_peer_stats *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < rt->peers.cap; i++) {
        if (!hc_hmap_live(&rt->peers, i))
            continue;
        const hc_peer *p = rt->peers.vals[i];
        if (!p->up || !p->conn)
            continue;
        if (n < max) {
            const hc_conn *c = p->conn;
            out[n] = (hc_rt_peer_stats){
                .node = p->node,
                .msgs_in = c->packets_in,
                .msgs_out = c->packets_out,
                .bytes_in = c->bytes_in,
                .bytes_out = c->bytes_out,
                .queued_bytes = hc_conn_backlog(c) + p->pending.bytes,
            };
        }
        n++;
    }
    return n;
}

int hc_rt_foreach_proc(hc_rt *rt, hc_proc_visit_fn fn, void *ud)
{
    for (size_t i = 0; i < rt->procs.cap; i++) {
        if (!hc_hmap_live(&rt->procs, i))
            continue;
        hc_proc *p = rt->procs.vals[i];
        if (p->dead)
            continue;
        int rc = fn(rt, p, ud);
        if (rc)
            return rc;
    }
    return 0;
}
