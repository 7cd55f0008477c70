/* replicas.c — see replicas.h. */
#include "daemon/replicas.h"

#include <openssl/rand.h>

#include "hordec/hc_crdt.h"
#include "host/host_rt.h"

/* A new replica id for every start: a replica that starts empty must never reuse an old identity. */
static uint64_t fresh_id(void)
{
    uint64_t id = 0;
    while (!id && RAND_bytes((unsigned char *)&id, sizeof id) == 1)
        ;
    return id;
}

static uint64_t clock_offset_ms; /* --max-clock-offset-ms */

void hordec_set_clock_offset(uint64_t ms) { clock_offset_ms = ms; }
uint64_t hordec_clock_offset(uint64_t ms) { return ms ? ms : clock_offset_ms; }

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
    uint64_t id = fresh_id();
    if (!id)
        return HC_ENOMEM;
    hc_crdt_config cfg;
    hc_crdt_config_init(&cfg, id);
    if (opts && opts->flush_interval_ms)
        cfg.flush_interval_ms = opts->flush_interval_ms;
    if (opts && opts->max_message_bytes)
        cfg.max_message_bytes = opts->max_message_bytes;
    cfg.max_clock_offset_ms = hordec_clock_offset(opts ? opts->max_clock_offset_ms : 0);
    void *core;
    int rc = hc_crdt_core_new(&cfg, hc_host_rt_now(rt), &core);
    if (rc)
        return rc;
    hc_host_rt_opts ho = {.stream_batch_bytes = opts ? opts->stream_batch_bytes : 0};
    return hc_host_rt_start(rt, name, &hc_crdt_core_ops, core, &ho, out);
}

/* ---- registries ----
 *
 * The kind of keys a running replica has is the core's; the host does not hand cores out, so the daemon
 * remembers it per replica process (by pid: a name can be reused by a later replica). */

#define MAX_REGISTRIES 256

static struct {
    hc_atom name;
    hc_pid pid;
    hc_registry_keys keys;
} registries[MAX_REGISTRIES];

bool hordec_is_registry(const hc_proc *p) { return hc_host_rt_kind(p) == &hc_registry_core_ops; }

static hc_registry_keys kind_of(const hc_proc *p)
{
    for (size_t i = 0; i < MAX_REGISTRIES; i++)
        if (registries[i].name && hc_pid_eq(&registries[i].pid, hc_proc_pid(p)))
            return registries[i].keys;
    return 0;
}

static void remember(hc_atom name, const hc_proc *p, hc_registry_keys keys)
{
    size_t slot = MAX_REGISTRIES;
    for (size_t i = 0; i < MAX_REGISTRIES; i++) {
        if (registries[i].name == name) { /* a replica that stopped: its slot is ours now */
            slot = i;
            break;
        }
        if (slot == MAX_REGISTRIES && !registries[i].name)
            slot = i;
    }
    if (slot == MAX_REGISTRIES) /* full: forget the oldest entry (its replica may be long gone) */
        slot = 0;
    registries[slot].name = name;
    registries[slot].pid = *hc_proc_pid(p);
    registries[slot].keys = keys;
}

int hordec_registry_start(hc_rt *rt, hc_atom name, const hordec_registry_opts *opts, hc_proc **out,
                          hc_registry_keys *running)
{
    hc_registry_keys asked = opts ? opts->keys : 0, keys = asked ? asked : HC_REGISTRY_UNIQUE;
    hc_proc *existing = hc_proc_whereis(rt, name);
    if (existing) {
        if (!hordec_is_registry(existing))
            return HC_EEXIST;
        hc_registry_keys k = kind_of(existing);
        if (asked && k && k != asked) {
            if (running)
                *running = k;
            return HC_ESTATE;
        }
        *out = existing;
        return HC_OK;
    }
    uint64_t id = fresh_id();
    if (!id)
        return HC_ENOMEM;
    hc_registry_config cfg;
    hc_registry_config_init(&cfg, name, hc_rt_node(rt), keys, id);
    if (opts && opts->flush_interval_ms)
        cfg.crdt.flush_interval_ms = opts->flush_interval_ms;
    if (opts && opts->max_message_bytes)
        cfg.crdt.max_message_bytes = opts->max_message_bytes;
    cfg.crdt.max_clock_offset_ms = hordec_clock_offset(opts ? opts->max_clock_offset_ms : 0);
    void *core;
    int rc = hc_registry_core_new(&cfg, hc_host_rt_now(rt), &core);
    if (rc)
        return rc;
    hc_host_rt_opts ho = {.stream_batch_bytes = opts ? opts->stream_batch_bytes : 0};
    hc_proc *p;
    rc = hc_host_rt_start(rt, name, &hc_registry_core_ops, core, &ho, &p);
    if (rc)
        return rc;
    /* The host owns the core now, and the process cannot have exited yet (it has not run): tell the core its
     * pid, which attach and register replies name. */
    hc_registry_core_set_self(core, hc_proc_pid(p));
    remember(name, p, keys);
    *out = p;
    return HC_OK;
}
