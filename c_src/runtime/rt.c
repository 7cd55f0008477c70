/* rt.c — runtime lifecycle, the loop turn, references and the pre-encoded reasons. */
#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hordec/hc_log.h"
#include "runtime/net_kernel.h"
#include "runtime/rt_internal.h"

#define A(name, s)                                                                                                     \
    const uint8_t rt_atom_##name[] = s;                                                                                \
    const size_t rt_atom_##name##_len = sizeof s - 1;
A(normal, "\x77\x06normal")
A(kill, "\x77\x04kill")
A(killed, "\x77\x06killed")
A(noproc, "\x77\x06noproc")
A(noconnection, "\x77\x0cnoconnection")
A(shutdown, "\x77\x08shutdown")
#undef A

/* Atoms arrive as SMALL_ATOM_UTF8 from OTP 25 peers; compare the canonical bytes. */
bool rt_term_is(const uint8_t *t, size_t len, const uint8_t *want, size_t wlen)
{
    if (len == wlen && memcmp(t, want, len) == 0)
        return true;
    /* latin1 small atom (115) with the same characters */
    return len == wlen && len > 2 && t[0] == 115 && memcmp(t + 1, want + 1, len - 1) == 0;
}

hc_span hc_reason_normal(void) { return (hc_span){rt_atom_normal, rt_atom_normal_len}; }
hc_span hc_reason_shutdown(void) { return (hc_span){rt_atom_shutdown, rt_atom_shutdown_len}; }
hc_span hc_reason_noproc(void) { return (hc_span){rt_atom_noproc, rt_atom_noproc_len}; }
hc_span hc_reason_noconnection(void) { return (hc_span){rt_atom_noconnection, rt_atom_noconnection_len}; }
hc_span hc_reason_killed(void) { return (hc_span){rt_atom_killed, rt_atom_killed_len}; }

void hc_rt_config_defaults(hc_rt_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->ticktime_s = 60;
    cfg->max_message_bytes = 256u << 20;
    cfg->busy_limit_bytes = 8u << 20;
    cfg->max_queue_bytes = (size_t)64 << 20;
    cfg->register_epmd = true;
    cfg->max_handshakes = 256;
    cfg->max_handshakes_per_addr = 32;
    cfg->max_connections = 4096;
}

static void tick_all(void *ud);

int hc_rt_new(const hc_rt_config *cfg, hc_rt **out, char *err, size_t errlen)
{
    char scratch[8];
    if (!err) { /* the message is optional */
        err = scratch;
        errlen = sizeof scratch;
    }
    *out = NULL;
    if (!cfg->node_name || strlen(cfg->node_name) >= HC_NODE_NAME_MAX || !strchr(cfg->node_name, '@')) {
        snprintf(err, errlen, "invalid node name");
        return HC_EINVAL;
    }
    if (!cfg->cookie || strlen(cfg->cookie) >= RT_COOKIE_MAX) {
        snprintf(err, errlen, "invalid cookie");
        return HC_EINVAL;
    }
    hc_rt *rt = calloc(1, sizeof *rt);
    if (!rt) {
        snprintf(err, errlen, "out of memory");
        return HC_ENOMEM;
    }
    rt->cfg = *cfg;
    rt->listen_fd = rt->epmd_fd = rt->wake_fd = -1;
    snprintf(rt->node_name, sizeof rt->node_name, "%s", cfg->node_name);
    snprintf(rt->cookie, sizeof rt->cookie, "%s", cfg->cookie);
    rt->cfg.node_name = rt->node_name;
    rt->cfg.cookie = rt->cookie;
    if (!rt->cfg.ticktime_s)
        rt->cfg.ticktime_s = 60;
    hc_rt_config defaults;
    hc_rt_config_defaults(&defaults);
    if (!rt->cfg.max_queue_bytes)
        rt->cfg.max_queue_bytes = defaults.max_queue_bytes;
    if (!rt->cfg.max_handshakes)
        rt->cfg.max_handshakes = defaults.max_handshakes;
    if (!rt->cfg.max_handshakes_per_addr)
        rt->cfg.max_handshakes_per_addr = defaults.max_handshakes_per_addr;
    if (!rt->cfg.max_connections)
        rt->cfg.max_connections = defaults.max_connections;
    rt->node = hc_atom_intern_cstr(rt->node_name);
    if (RAND_bytes((unsigned char *)rt->ref_counter, sizeof rt->ref_counter) != 1)
        memset(rt->ref_counter, 0, sizeof rt->ref_counter);
    rt->next_unlink_id = 1;
    rt->next_sub = 1;
    rt->loop = hc_loop_new();
    if (!rt->loop) {
        snprintf(err, errlen, "cannot create the event loop");
        free(rt);
        return HC_EIO;
    }
    int rc = rt_post_init(rt, err, errlen);
    if (!rc)
        rc = rt_nodes_init(rt, err, errlen);
    if (rc) {
        hc_rt_free(rt);
        return rc;
    }
    rt->tick_timer = hc_loop_timer_add(rt->loop, rt->cfg.ticktime_s * 1000 / 16 + 1, tick_all, rt);
    if (!rt->tick_timer || hc_net_kernel_start(rt)) {
        snprintf(err, errlen, "cannot start net_kernel");
        hc_rt_free(rt);
        return HC_ENOMEM;
    }
    *out = rt;
    return HC_OK;
}

/* Tick duty runs four times per tick interval (ticktime/16) so detection stays within ticktime plus a
 * sixteenth, close to the BEAM's own bound. */
static void tick_all(void *ud)
{
    hc_rt *rt = ud;
    rt_nodes_tick(rt);
    rt->tick_timer = hc_loop_timer_add(rt->loop, rt->cfg.ticktime_s * 1000 / 16 + 1, tick_all, rt);
}

/* One iteration's work, from the end of its wait to now. */
static void loop_stats_note(hc_rt *rt)
{
    uint64_t now = hc_loop_now_us(), woke = hc_loop_woke_us(rt->loop);
    uint64_t us = now > woke ? now - woke : 0;
    hc_rt_loop_stats *s = &rt->loop_stats;
    s->iterations++;
    s->total_busy_us += us;
    if (us > s->max_iter_us)
        s->max_iter_us = us;
    if (us > HC_RT_SLOW_ITER_US)
        s->slow_iters++;
}

void hc_rt_loop_stats_get(const hc_rt *rt, hc_rt_loop_stats *out) { *out = rt->loop_stats; }
void hc_rt_loop_stats_reset(hc_rt *rt) { memset(&rt->loop_stats, 0, sizeof rt->loop_stats); }

int hc_rt_run_once(hc_rt *rt, int timeout_ms)
{
    if (rt->lq_head)
        timeout_ms = 0;
    int rc = hc_loop_poll(rt->loop, timeout_ms);
    /* Local signals can cause more local signals; bound the rounds per turn so sockets stay served. */
    for (int i = 0; i < 64 && rt->lq_head; i++)
        rt_local_run(rt);
    rt_flush_all(rt);
    rt_reap_conns(rt);
    rt_reap_procs(rt);
    loop_stats_note(rt);
    return rc;
}

int hc_rt_run(hc_rt *rt)
{
    while (!atomic_load(&rt->stopping)) {
        if (hc_rt_run_once(rt, 1000)) {
            hc_log_error("epoll_wait failed: %s", strerror(errno));
            return HC_EIO;
        }
    }
    return HC_OK;
}

void hc_rt_free(hc_rt *rt)
{
    if (!rt)
        return;
    rt_post_close(rt); /* pending posts run while everything still works; later ones are refused */
    /* Exit every process so monitors and links on other nodes see a proper reason. */
    for (size_t i = 0; i < rt->procs.cap; i++) {
        if (hc_hmap_live(&rt->procs, i))
            hc_proc_exit(rt, rt->procs.vals[i], rt_atom_shutdown, rt_atom_shutdown_len);
    }
    rt_local_free(rt);
    rt_flush_all(rt);
    rt_reap_procs(rt);
    rt_nodes_free(rt);
    rt_reap_conns(rt);
    for (size_t i = 0; i < rt->monitors.cap; i++)
        if (hc_hmap_live(&rt->monitors, i))
            free(rt->monitors.vals[i]);
    for (size_t i = 0; i < rt->calls.cap; i++)
        if (hc_hmap_live(&rt->calls, i))
            free(rt->calls.vals[i]);
    hc_hmap_free(&rt->monitors);
    hc_hmap_free(&rt->calls);
    hc_hmap_free(&rt->procs);
    hc_hmap_free(&rt->names);
    free(rt->wtypes);
    for (node_sub *s = rt->subs, *n; s; s = n) {
        n = s->next;
        free(s);
    }
    rt_post_free(rt);
    /* timer wrappers still armed are owned by the loop and freed with it */
    hc_loop_free(rt->loop);
    free(rt->graveyard);
    hc_buf_free(&rt->scratch);
    hc_buf_free(&rt->batch.replies);
    free(rt);
}

hc_atom hc_rt_node(const hc_rt *rt) { return rt->node; }
uint16_t hc_rt_port(const hc_rt *rt) { return rt->port; }
uint32_t hc_rt_creation(const hc_rt *rt) { return rt->creation; }
uint64_t hc_rt_now_ms(const hc_rt *rt) { return hc_loop_now(rt->loop); }
const hc_rt_config *hc_rt_config_get(const hc_rt *rt) { return &rt->cfg; }

void hc_rt_stats_get(const hc_rt *rt, hc_rt_stats *out)
{
    *out = rt->stats;
    out->processes = rt->procs.count;
    out->handshakes = rt->nanon;
    out->connections = rt->nconns;
    out->peers = 0;
    for (size_t i = 0; i < rt->peers.cap; i++)
        if (hc_hmap_live(&rt->peers, i) && ((hc_peer *)rt->peers.vals[i])->up)
            out->peers++;
}

void hc_make_ref(hc_rt *rt, hc_ref *out)
{
    /* Three words, incremented like an odometer from a random start, as the BEAM mints them. */
    if (++rt->ref_counter[0] == 0 && ++rt->ref_counter[1] == 0)
        ++rt->ref_counter[2];
    out->node = rt->node;
    out->creation = rt->creation;
    out->len = 3;
    out->n[0] = rt->ref_counter[0] & 0x3FFFF;
    out->n[1] = rt->ref_counter[1] ^ (rt->ref_counter[0] >> 18);
    out->n[2] = rt->ref_counter[2];
    out->n[3] = out->n[4] = 0;
}
