/* post.c — hc_rt_post and the loop's wake-up. The only runtime state other threads touch is the post
 * queue (behind post_lock) and the eventfd: a poster appends under the lock and, if the queue was empty,
 * writes the eventfd; the loop, woken by it, reads the eventfd first and then takes the whole queue at
 * once, so a post made after the read is either in the batch taken or has written the eventfd again.
 * hc_rt_stop writes the same eventfd (write(2) is async-signal-safe) so a stop is seen at once. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hordec/hc_log.h"
#include "runtime/rt_internal.h"

typedef struct post_item {
    struct post_item *next;
    hc_post_fn fn;
    void *ud;
} post_item;

void rt_wake(hc_rt *rt)
{
    uint64_t one = 1;
    /* A failed write is harmless: EAGAIN means the counter is saturated, so the loop is due to wake. */
    if (rt->wake_fd >= 0) {
        ssize_t n = write(rt->wake_fd, &one, sizeof one);
        (void)n;
    }
}

/* Takes every pending post; the caller runs them in order and frees them. */
static post_item *take_all(hc_rt *rt)
{
    pthread_mutex_lock(&rt->post_lock);
    post_item *list = rt->post_head;
    rt->post_head = rt->post_tail = NULL;
    pthread_mutex_unlock(&rt->post_lock);
    return list;
}

static void run_list(hc_rt *rt, post_item *list)
{
    while (list) {
        post_item *it = list;
        list = it->next;
        hc_post_fn fn = it->fn;
        void *ud = it->ud;
        free(it);
        fn(rt, ud);
    }
}

static void wake_cb(hc_watch *w, uint32_t events, void *ud)
{
    hc_rt *rt = ud;
    uint64_t n;
    /* Drain the counter before taking the queue (see the top of the file for why this order). */
    while (read(rt->wake_fd, &n, sizeof n) < 0 && errno == EINTR)
        ;
    /* Only the batch present now: posts made by these functions run on a later iteration, so a function
     * that re-posts itself cannot starve the sockets. */
    run_list(rt, take_all(rt));
    (void)w, (void)events;
}

int rt_post_init(hc_rt *rt, char *err, size_t errlen)
{
    rt->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (rt->wake_fd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        return HC_EIO;
    }
    if (pthread_mutex_init(&rt->post_lock, NULL)) {
        snprintf(err, errlen, "cannot create a mutex");
        return HC_ENOMEM;
    }
    rt->post_lock_ready = true;
    rt->wake_watch = (hc_watch){.fd = rt->wake_fd, .cb = wake_cb, .ud = rt};
    if (hc_loop_watch(rt->loop, &rt->wake_watch, EPOLLIN)) {
        snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
        return HC_EIO;
    }
    return HC_OK;
}

int hc_rt_post(hc_rt *rt, hc_post_fn fn, void *ud)
{
    if (!fn)
        return HC_EINVAL;
    post_item *it = malloc(sizeof *it);
    if (!it)
        return HC_ENOMEM;
    *it = (post_item){NULL, fn, ud};
    pthread_mutex_lock(&rt->post_lock);
    if (rt->post_closed) {
        pthread_mutex_unlock(&rt->post_lock);
        free(it);
        return HC_ESTATE;
    }
    bool was_empty = !rt->post_head;
    if (rt->post_tail)
        rt->post_tail->next = it;
    else
        rt->post_head = it;
    rt->post_tail = it;
    pthread_mutex_unlock(&rt->post_lock);
    if (was_empty)
        rt_wake(rt);
    return HC_OK;
}

void rt_post_close(hc_rt *rt)
{
    if (!rt->post_lock_ready)
        return;
    pthread_mutex_lock(&rt->post_lock);
    rt->post_closed = true;
    pthread_mutex_unlock(&rt->post_lock);
    /* Every accepted post runs exactly once: those still queued run now, while the runtime is whole. */
    run_list(rt, take_all(rt));
}

void rt_post_free(hc_rt *rt)
{
    if (rt->post_lock_ready) {
        /* rt_post_close ran what was queued and refused the rest: nothing is left to run here. */
        pthread_mutex_destroy(&rt->post_lock);
        rt->post_lock_ready = false;
    }
    if (rt->wake_fd >= 0) {
        hc_loop_unwatch(rt->loop, &rt->wake_watch);
        close(rt->wake_fd);
        rt->wake_fd = -1;
    }
}

void hc_rt_stop(hc_rt *rt)
{
    atomic_store(&rt->stopping, 1);
    rt_wake(rt);
}
