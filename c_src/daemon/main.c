/* main.c — the hordec daemon: parse flags, start the runtime and the control process, run until
 * SIGTERM or SIGINT, shut down cleanly. Everything else lives in code the tests can reach. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/cli.h"
#include "daemon/control.h"
#include "daemon/exit_codes.h"
#include "daemon/metrics.h"
#include "hordec/hc_log.h"
#include "hordec/hc_runtime.h"
#include "daemon/replicas.h"
#include "daemon/ssl_optfile.h"
#include "daemon/stdin_watch.h"
#include "hordec/hc_supervisor.h"
#include "daemon/worker_types.h"

static hc_rt *the_rt;
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
    if (the_rt)
        hc_rt_stop(the_rt);
}

int main(int argc, char **argv)
{
    /* static: large, and what it owns (options read from --config) stays reachable until exit */
    static hordec_options o;
    char err[512];
    if (hordec_parse_args(argc, argv, &o, err, sizeof err)) {
        fprintf(stderr, "hordec: %s\n(see hordec --help)\n", err);
        return HORDEC_EXIT_USAGE;
    }
    if (o.help) {
        hordec_print_usage(stdout);
        return HORDEC_EXIT_OK;
    }
    if (o.version) {
        printf("hordec %s\n", HORDEC_VERSION);
        return HORDEC_EXIT_OK;
    }
    hc_log_set_level(o.log_level);
    signal(SIGPIPE, SIG_IGN);

    hc_rt_config cfg;
    hc_rt_config_defaults(&cfg);
    cfg.node_name = o.node_name;
    cfg.cookie = o.cookie;
    cfg.port = o.port;
    cfg.ticktime_s = o.ticktime_s;
    cfg.max_message_bytes = o.max_message_bytes;
    if (o.max_connections) /* the hardening limits: 0 keeps the runtime's default */
        cfg.max_connections = o.max_connections;
    if (o.max_handshakes)
        cfg.max_handshakes = o.max_handshakes;
    if (o.max_handshakes_per_addr)
        cfg.max_handshakes_per_addr = o.max_handshakes_per_addr;
    if (o.max_peer_queue_bytes)
        cfg.max_queue_bytes = o.max_peer_queue_bytes;
    hordec_tls_opts tls = {0}; /* --ssl-dist-optfile / --tls-*: read by hc_rt_new, not kept */
    int trc = hordec_tls_from_options(&o, &tls, err, sizeof err);
    if (trc < 0) {
        fprintf(stderr, "hordec: %s\n", err);
        return HORDEC_EXIT_USAGE;
    }
    cfg.tls = trc ? &tls.cfg : NULL;
    hc_rt *rt;
    int nrc = hc_rt_new(&cfg, &rt, err, sizeof err);
    hordec_tls_opts_free(&tls);
    if (nrc) {
        fprintf(stderr, "hordec: %s\n", err);
        return HORDEC_EXIT_STARTUP;
    }
    the_rt = rt;
    /* hc_rt_stop is async-signal-safe and wakes the loop, so the stop is seen at once. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    if (hordec_worker_types_register(rt) || hordec_control_start(rt, hc_rt_now_ms(rt))) {
        fprintf(stderr, "hordec: cannot start the control process\n");
        hc_rt_free(rt);
        return HORDEC_EXIT_STARTUP;
    }
    hordec_set_clock_offset(o.max_clock_offset_ms); /* every replica started without its own bound */
    for (int i = 0; i < o.nregistries; i++) {
        hordec_registry_opts ro = {.keys = o.registries[i].duplicate ? HC_REGISTRY_DUPLICATE : HC_REGISTRY_UNIQUE};
        hc_proc *p;
        int rrc = HC_EINVAL;
        hc_atom name = hc_atom_intern(o.registries[i].name, strlen(o.registries[i].name), &rrc);
        if (name)
            rrc = hordec_registry_start(rt, name, &ro, &p, NULL);
        if (rrc) {
            fprintf(stderr, "hordec: cannot start registry %s: %s\n", o.registries[i].name, hc_strerror(rrc));
            hc_rt_free(rt);
            return HORDEC_EXIT_STARTUP;
        }
    }
    for (int i = 0; i < o.nsupervisors; i++) {
        hc_proc *p;
        int src = HC_EINVAL;
        hc_atom name = hc_atom_intern(o.supervisors[i], strlen(o.supervisors[i]), &src);
        if (name)
            src = hc_supervisor_replica_start(
                rt, name, &(hc_supervisor_replica_opts){.max_clock_offset_ms = o.max_clock_offset_ms}, &p);
        if (src) {
            fprintf(stderr, "hordec: cannot start supervisor %s: %s\n", o.supervisors[i], hc_strerror(src));
            hc_rt_free(rt);
            return HORDEC_EXIT_STARTUP;
        }
    }
    for (int i = 0; i < o.nconnect; i++)
        hc_rt_connect(rt, hc_atom_intern_cstr(o.connect[i]));
    if (o.watch_stdin && hordec_stdin_watch_start(rt)) {
        fprintf(stderr, "hordec: cannot watch stdin\n");
        hc_rt_free(rt);
        return HORDEC_EXIT_STARTUP;
    }

    hordec_metrics *metrics = NULL;
    if (o.metrics_port && hordec_metrics_start(rt, o.metrics_bind, o.metrics_port, &metrics, err, sizeof err)) {
        fprintf(stderr, "hordec: %s\n", err);
        hordec_stdin_watch_detach();
        hc_rt_free(rt);
        return HORDEC_EXIT_STARTUP;
    }
    if (metrics)
        hc_log_info("metrics at http://%s%s%s:%u/metrics", strchr(o.metrics_bind, ':') ? "[" : "", o.metrics_bind,
                    strchr(o.metrics_bind, ':') ? "]" : "", hordec_metrics_port(metrics));

    printf("hordec ready node=%s port=%u\n", o.node_name, hc_rt_port(rt));
    fflush(stdout);
    hc_log_info("node %s listening on port %u (creation %u, ticktime %u s)", o.node_name, hc_rt_port(rt),
                hc_rt_creation(rt), o.ticktime_s);

    int rc = hc_rt_run(rt);
    if (rc == HC_OK) {
        hc_log_info("shutting down (%s)", stop_signal == SIGINT    ? "SIGINT"
                                          : stop_signal == SIGTERM ? "SIGTERM"
                                          : hordec_stdin_closed()  ? "stdin closed"
                                                                   : "stopped");
        hc_supervisor_replicas_shutdown(rt, 3000); /* hand C workers over before the node goes */
    } else
        hc_log_error("event loop failed (%s); shutting down", hc_strerror(rc));
    /* A signal from now on must not reach a runtime being freed. */
    sigset_t stop_sigs;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGINT);
    sigprocmask(SIG_BLOCK, &stop_sigs, NULL);
    the_rt = NULL;
    hordec_stdin_watch_detach();
    hordec_metrics_stop(rt, metrics);
    hc_rt_free(rt);
    hc_atom_table_reset();
    hordec_options_free(&o);
    return rc == HC_OK ? HORDEC_EXIT_OK : HORDEC_EXIT_RUNTIME;
}
