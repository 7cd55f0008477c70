/* sim_bench.c — hordec-sim --bench: the CRDT engine alone (no host, no network faults), one core:
 * throughput of first puts and overwrites, memory per key, and bytes on the wire for an initial sync and
 * for steady-state updates over a lossless loopback. Prints numbers; asserts nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "hordec/hc_crdt.h"
#include "sim_crdt.h"

static double secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t heap_used(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    return mallinfo2().uordblks;
#else
    return 0;
#endif
}

static void pump(hc_crdt **reps, int n, uint64_t *t, uint64_t *bytes)
{
    for (int round = 0; round < 100000; round++) {
        int any = 0;
        for (int i = 0; i < n; i++) {
            hc_crdt_tick(reps[i], (hc_time){*t, *t});
            hc_crdt_msg m;
            while (hc_crdt_pop_message(reps[i], &m)) {
                any = 1;
                *bytes += m.len;
                uint8_t *copy = malloc(m.len);
                memcpy(copy, m.data, m.len);
                size_t len = m.len;
                int to = (int)m.peer;
                hc_crdt_receive(reps[to], (uint64_t)i, copy, len, (hc_time){*t, *t});
                free(copy);
            }
            hc_crdt_event ev;
            while (hc_crdt_pop_event(reps[i], &ev))
                ;
        }
        if (!any) {
            int idle = 1;
            for (int i = 0; i < n; i++)
                idle &= hc_crdt_idle(reps[i]);
            if (idle)
                return;
            *t += 1;
        }
    }
}

int sim_crdt_bench(void)
{
    enum { N = 100000 };
    uint8_t key[16], val[64];
    hc_crdt_config cfg;
    hc_crdt_config_init(&cfg, 11);
    hc_crdt *a;
    size_t before = heap_used();
    hc_crdt_new(&cfg, (hc_time){1, 1}, &a);
    size_t val_len = 5 + 8;
    double t0 = secs();
    for (uint32_t k = 0; k < N; k++) {
        size_t kl = sim_key_term(key, k), vl;
        uint8_t *v = sim_value_term(k + 1, 0, &vl);
        memcpy(val, v, vl);
        free(v);
        hc_crdt_put(a, key, kl, val, vl, (hc_time){1000 + k / 1000, 1000 + k / 1000});
    }
    double t1 = secs();
    size_t after = heap_used();
    hc_crdt_event ev;
    while (hc_crdt_pop_event(a, &ev))
        ;
    double per_key = ((double)after - (double)before) / N - (10.0 + (double)val_len);
    /* overwrites: 1M puts on the same 100k keys */
    double t2 = secs();
    for (uint32_t i = 0; i < 10 * N; i++) {
        size_t kl = sim_key_term(key, i % N);
        val[12] = (uint8_t)i;
        hc_crdt_put(a, key, kl, val, val_len, (hc_time){2000 + i / 1000, 2000 + i / 1000});
        if ((i & 1023) == 0)
            while (hc_crdt_pop_event(a, &ev))
                ;
    }
    double t3 = secs();
    while (hc_crdt_pop_event(a, &ev))
        ;
    printf("hordec-sim bench: %d keys; first puts %.2f M/s, overwrites %.2f M/s; memory %.0f bytes/key beyond "
           "key+value bytes (heap %zu -> %zu)\n",
           N, N / (t1 - t0) / 1e6, 10.0 * N / (t3 - t2) / 1e6, per_key, before, after);

    /* initial sync of 100k keys into an empty replica, over a lossless loopback */
    hc_crdt_config cb;
    hc_crdt_config_init(&cb, 12);
    hc_crdt *b;
    hc_crdt_new(&cb, (hc_time){1, 1}, &b);
    hc_crdt *reps[2] = {a, b};
    uint64_t t = 10000, bytes = 0;
    hc_crdt_add_neighbour(a, 1, (hc_time){t, t});
    hc_crdt_add_neighbour(b, 0, (hc_time){t, t});
    double t4 = secs();
    pump(reps, 2, &t, &bytes);
    double t5 = secs();
    printf("hordec-sim bench: initial sync %zu keys: %.1f bytes/key on the wire, %.0f ms, %.2f M keys/s merged, "
           "roots %s\n",
           hc_crdt_size(b), (double)bytes / N, (t5 - t4) * 1e3, N / (t5 - t4) / 1e6,
           hc_crdt_root_hash(a) == hc_crdt_root_hash(b) ? "equal" : "DIFFER");
    /* steady-state updates: one put, one flush, deltas + acks */
    bytes = 0;
    enum { U = 20000 };
    double t6 = secs();
    for (uint32_t i = 0; i < U; i++) {
        size_t kl = sim_key_term(key, i * 7 % N);
        val[12] = (uint8_t)(i + 3);
        hc_crdt_put(a, key, kl, val, val_len, (hc_time){t, t});
        if (i % 100 == 99) {
            hc_crdt_flush(a, (hc_time){t, t});
            pump(reps, 2, &t, &bytes);
        }
    }
    double t7 = secs();
    printf("hordec-sim bench: updates batched 100 per flush: %.1f bytes/update on the wire (delta+ack), "
           "%.2f M updates/s replicated end to end\n",
           (double)bytes / U, U / (t7 - t6) / 1e6);
    bytes = 0;
    for (uint32_t i = 0; i < 2000; i++) {
        size_t kl = sim_key_term(key, i * 13 % N);
        val[12] = (uint8_t)(i + 5);
        hc_crdt_put(a, key, kl, val, val_len, (hc_time){t, t});
        hc_crdt_flush(a, (hc_time){t, t});
        pump(reps, 2, &t, &bytes);
    }
    printf("hordec-sim bench: single updates: %.1f bytes/update on the wire (delta+ack)\n", (double)bytes / 2000);
    hc_crdt_free(a);
    hc_crdt_free(b);
    return 0;
}
