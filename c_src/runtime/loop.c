/* loop.c — see loop.h. */
#include "runtime/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "common/hmap.h"
#include "hordec/hc_common.h"

typedef struct timer {
    uint64_t deadline, id;
    size_t pos; /* index in the heap, for O(log n) cancel */
    hc_loop_timer_cb cb;
    void *ud;
    bool owns_ud;
} timer;

struct hc_loop {
    int epfd;
    uint64_t now;
    timer **heap;
    size_t nheap, capheap;
    hc_hmap by_id;
    uint64_t next_id;
    uint64_t woke_us; /* when the last wait ended: the start of this iteration's work */
};

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

hc_loop *hc_loop_new(void)
{
    hc_loop *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        free(l);
        return NULL;
    }
    l->now = monotonic_ms();
    l->next_id = 1;
    return l;
}

void hc_loop_free(hc_loop *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->nheap; i++) {
        if (l->heap[i]->owns_ud)
            free(l->heap[i]->ud);
        free(l->heap[i]);
    }
    free(l->heap);
    hc_hmap_free(&l->by_id);
    close(l->epfd);
    free(l);
}

uint64_t hc_loop_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t hc_loop_woke_us(const hc_loop *l) { return l->woke_us; }
uint64_t hc_loop_now(const hc_loop *l) { return l->now; }
void hc_loop_update_now(hc_loop *l) { l->now = monotonic_ms(); }

int hc_loop_watch(hc_loop *l, hc_watch *w, uint32_t events)
{
    if (events == w->events)
        return HC_OK;
    struct epoll_event ev = {.events = events, .data.ptr = w};
    int op = !w->events ? EPOLL_CTL_ADD : !events ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (epoll_ctl(l->epfd, op, w->fd, &ev) < 0)
        return HC_EIO;
    w->events = events;
    return HC_OK;
}

void hc_loop_unwatch(hc_loop *l, hc_watch *w)
{
    if (w->events && w->fd >= 0)
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    w->events = 0;
}

/* ---- heap ---- */

static void heap_swap(hc_loop *l, size_t a, size_t b)
{
    timer *t = l->heap[a];
    l->heap[a] = l->heap[b];
    l->heap[b] = t;
    l->heap[a]->pos = a;
    l->heap[b]->pos = b;
}

static bool earlier(const timer *a, const timer *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->id < b->id);
}

static void sift_up(hc_loop *l, size_t i)
{
    while (i > 0 && earlier(l->heap[i], l->heap[(i - 1) / 2])) {
        heap_swap(l, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void sift_down(hc_loop *l, size_t i)
{
    for (;;) {
        size_t m = i, a = 2 * i + 1, b = a + 1;
        if (a < l->nheap && earlier(l->heap[a], l->heap[m]))
            m = a;
        if (b < l->nheap && earlier(l->heap[b], l->heap[m]))
            m = b;
        if (m == i)
            return;
        heap_swap(l, i, m);
        i = m;
    }
}

static void heap_remove(hc_loop *l, timer *t)
{
    size_t i = t->pos;
    l->nheap--;
    if (i != l->nheap) {
        l->heap[i] = l->heap[l->nheap];
        l->heap[i]->pos = i;
        sift_down(l, i);
        sift_up(l, i);
    }
    hc_hmap_del(&l->by_id, t->id, t);
}

static uint64_t timer_add(hc_loop *l, uint64_t after_ms, hc_loop_timer_cb cb, void *ud, bool owns)
{
    if (hc_array_reserve((void **)&l->heap, &l->capheap, l->nheap + 1, sizeof *l->heap, 64))
        return 0;
    timer *t = malloc(sizeof *t);
    if (!t)
        return 0;
    /* A wait too long to add is a deadline that never comes, not one that wrapped into the past. */
    uint64_t deadline = after_ms > UINT64_MAX - l->now ? UINT64_MAX : l->now + after_ms;
    *t = (timer){.deadline = deadline, .id = l->next_id++, .pos = l->nheap, .cb = cb, .ud = ud, .owns_ud = owns};
    if (hc_hmap_put(&l->by_id, t->id, t)) {
        free(t);
        return 0;
    }
    l->heap[l->nheap++] = t;
    sift_up(l, t->pos);
    return t->id;
}

uint64_t hc_loop_timer_add(hc_loop *l, uint64_t after_ms, hc_loop_timer_cb cb, void *ud)
{
    return timer_add(l, after_ms, cb, ud, false);
}

uint64_t hc_loop_timer_add_owned(hc_loop *l, uint64_t after_ms, hc_loop_timer_cb cb, void *ud)
{
    return timer_add(l, after_ms, cb, ud, true);
}

bool hc_loop_timer_cancel(hc_loop *l, uint64_t id)
{
    timer *t = id ? hc_hmap_get(&l->by_id, id) : NULL;
    if (!t)
        return false;
    heap_remove(l, t);
    if (t->owns_ud)
        free(t->ud);
    free(t);
    return true;
}

static void run_timers(hc_loop *l)
{
    /* Only timers already due when we start: a callback that re-arms with 0 ms runs next iteration,
     * so a periodic 0 ms timer cannot starve socket I/O. */
    uint64_t now = l->now;
    uint64_t last_id = l->next_id;
    while (l->nheap && l->heap[0]->deadline <= now && l->heap[0]->id < last_id) {
        timer *t = l->heap[0];
        heap_remove(l, t);
        hc_loop_timer_cb cb = t->cb;
        void *ud = t->ud;
        free(t);
        cb(ud);
    }
}

int hc_loop_poll(hc_loop *l, int timeout_ms)
{
    if (l->nheap) {
        uint64_t d = l->heap[0]->deadline;
        int until = d <= l->now ? 0 : (int)(d - l->now > 3600000 ? 3600000 : d - l->now);
        if (timeout_ms < 0 || until < timeout_ms)
            timeout_ms = until;
    }
    struct epoll_event evs[128];
    int n = epoll_wait(l->epfd, evs, 128, timeout_ms);
    l->woke_us = hc_loop_now_us();
    l->now = l->woke_us / 1000;
    if (n < 0) {
        if (errno != EINTR)
            return HC_EIO;
        n = 0;
    }
    for (int i = 0; i < n; i++) {
        hc_watch *w = evs[i].data.ptr;
        if (w && w->cb)
            w->cb(w, evs[i].events, w->ud);
    }
    run_timers(l);
    return HC_OK;
}
