/* sim_main.c — hordec-sim: runs the deterministic CRDT simulation (sim_crdt.c) over a range of seeds.
 *
 *   hordec-sim [--seed S] [--seeds K] [--replicas R|RMIN-RMAX] [--ops N] [--soak] [--replay-check] [--bench]
 *
 * A failing seed is a bug report: `hordec-sim --seed S` (same --replicas and --ops) replays it exactly;
 * --replay-check runs each seed twice and fails if the two traces differ. HORDEC_SIM_DUMP=1 prints the
 * replicas' sync state when convergence fails; HORDEC_SIM_LOG=warn|info|debug shows the hosts' logs. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hordec/hc_log.h"
#include "hordec/hc_term.h"
#include "sim_crdt.h"

static void usage(void)
{
    fprintf(stderr, "usage: hordec-sim [--seed S] [--seeds K] [--replicas R|RMIN-RMAX] [--ops N] [--soak] "
                    "[--replay-check] [--bench]\n");
}

int main(int argc, char **argv)
{
    uint64_t seed = 1, seeds = 1;
    sim_crdt_opts o = {3, 7, 1000};
    int soak = 0, replay = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--seed") && v)
            seed = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--seeds") && v)
            seeds = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--ops") && v)
            o.ops = atoi(v), i++;
        else if (!strcmp(a, "--replicas") && v) {
            if (sscanf(v, "%d-%d", &o.rmin, &o.rmax) != 2)
                o.rmin = o.rmax = atoi(v);
            i++;
        } else if (!strcmp(a, "--soak"))
            soak = 1;
        else if (!strcmp(a, "--replay-check"))
            replay = 1;
        else if (!strcmp(a, "--bench"))
            return sim_crdt_bench();
        else {
            usage();
            return 2;
        }
    }
    if (o.rmin < 2 || o.rmax > 16 || o.rmin > o.rmax || o.ops < 0) {
        usage();
        return 2;
    }
    hc_log_level level = HC_LOG_ERROR; /* rejected hostile input is expected here: the hosts' warnings are noise */
    const char *lv = getenv("HORDEC_SIM_LOG");
    if (lv && hc_log_parse_level(lv, &level)) {
        fprintf(stderr, "hordec-sim: HORDEC_SIM_LOG must be error, warn, info or debug\n");
        return 2;
    }
    hc_log_set_level(level);
    sim_crdt_atoms();
    if (soak)
        seeds = UINT64_MAX - seed;
    uint64_t passed = 0, nfail = 0;
    sim_totals tot = {0};
    for (uint64_t s = seed; s - seed < seeds; s++) {
        sim_result r1, r2;
        int rc = sim_crdt_run(s, &o, &tot, &r1);
        if (!rc && replay) {
            sim_totals ignored = {0};
            rc = sim_crdt_run(s, &o, &ignored, &r2);
            if (!rc && (r2.trace_hash != r1.trace_hash || r2.delivered != r1.delivered)) {
                snprintf(r1.why, sizeof r1.why, "replay of the same seed diverged");
                rc = -1;
            } else if (rc) {
                r1 = r2;
            }
        }
        if (rc) {
            nfail++;
            fprintf(stderr, "hordec-sim: seed %" PRIu64 " FAILED at t=%" PRIu64 ": %s\n", s, r1.fail_t, r1.why);
            break;
        }
        passed++;
        if (soak && passed % 100 == 0)
            fprintf(stderr, "hordec-sim: %" PRIu64 " seeds passed\n", passed);
    }
    printf("hordec-sim: seeds %" PRIu64 "..%" PRIu64 " replicas %d-%d ops %d: %" PRIu64 " passed, %" PRIu64
           " failed (%" PRIu64 " messages, %" PRIu64 " bytes delivered)\n",
           seed, seed + passed + nfail - 1, o.rmin, o.rmax, o.ops, passed, nfail, tot.delivered, tot.bytes);
    printf("hordec-sim: network: %" PRIu64 " dropped, %" PRIu64 " duplicated, %" PRIu64 " damaged, %" PRIu64
           " reordered, %" PRIu64 " lost to partitions/crashes; %" PRIu64 " connections made, %" PRIu64 " cut\n",
           tot.dropped, tot.duplicated, tot.damaged, tot.reordered, tot.lost, tot.connects, tot.disconnects);
    printf("hordec-sim: hosts: %" PRIu64 " requests (each answered once), %" PRIu64 " hostile messages injected; "
           "refused %" PRIu64 " by the host, %" PRIu64 " by the core\n",
           tot.requests, tot.injected, tot.dropped_in, tot.rejected);
    printf("hordec-sim: streams: %" PRIu64 " mirrors, %" PRIu64 " subscriptions, %" PRIu64 " killed, %" PRIu64
           " unsubscribed; %" PRIu64 " messages: %" PRIu64 " gaps, %" PRIu64 " duplicates, %" PRIu64 " stale, %" PRIu64
           " damaged; largest payload %" PRIu64 " bytes\n",
           tot.mirrors, tot.subscriptions, tot.kills, tot.unsubscribes, tot.stream_msgs, tot.gaps, tot.stream_dups,
           tot.stream_stale, tot.stream_damaged, tot.max_payload);
    hc_atom_table_reset();
    return nfail ? 1 : 0;
}
