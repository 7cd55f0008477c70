/* loop.h — the event loop: epoll for file descriptors, a binary min-heap for timers, and a monotonic
 * millisecond clock sampled once per iteration (so everything in one iteration agrees on "now"). */
#ifndef HORDEC_RUNTIME_LOOP_H
#define HORDEC_RUNTIME_LOOP_H

#include <stdbool.h>
#include <stdint.h>

typedef struct hc_loop hc_loop;
typedef struct hc_watch hc_watch;
typedef void (*hc_watch_cb)(hc_watch *w, uint32_t events, void *ud);

struct hc_watch {
    int fd;
    uint32_t events; /* currently registered */
    hc_watch_cb cb;
    void *ud;
};

typedef void (*hc_loop_timer_cb)(void *ud);

hc_loop *hc_loop_new(void);
void hc_loop_free(hc_loop *l);
uint64_t hc_loop_now(const hc_loop *l);
void hc_loop_update_now(hc_loop *l);

/* Registers, re-arms (events changed) or removes (events == 0) a watch. HC_OK or HC_EIO. */
int hc_loop_watch(hc_loop *l, hc_watch *w, uint32_t events);
void hc_loop_unwatch(hc_loop *l, hc_watch *w);

uint64_t hc_loop_timer_add(hc_loop *l, uint64_t after_ms, hc_loop_timer_cb cb, void *ud); /* 0 on failure */
/* As hc_loop_timer_add, but the loop free()s `ud` if the timer is cancelled or the loop freed before it
 * fires (when it fires, the callback owns ud). */
uint64_t hc_loop_timer_add_owned(hc_loop *l, uint64_t after_ms, hc_loop_timer_cb cb, void *ud);
/* True if the timer was armed (it is now gone and will not fire). */
bool hc_loop_timer_cancel(hc_loop *l, uint64_t id);

/* Monotonic microseconds, read now (not the per-iteration sample). */
uint64_t hc_loop_now_us(void);
/* When the last wait of hc_loop_poll ended (monotonic µs): where the current iteration's work began. */
uint64_t hc_loop_woke_us(const hc_loop *l);

/* Waits for events (at most timeout_ms, less if a timer is due), runs fd callbacks, then due timers. */
int hc_loop_poll(hc_loop *l, int timeout_ms);

#endif
