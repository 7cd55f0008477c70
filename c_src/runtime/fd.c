/* fd.c — a program's own file descriptors in the loop (hc_fd_watch_*, hc_runtime.h). */
#include <stdlib.h>
#include <sys/epoll.h>

#include "runtime/rt_internal.h"

struct hc_fd_watch {
    hc_watch w; /* the loop's: its ud is this struct */
    hc_rt *rt;
    hc_fd_cb cb;
    void *ud;
    bool stopped;
};

static uint32_t to_epoll(unsigned events)
{
    return (events & HC_FD_READ ? EPOLLIN : 0) | (events & HC_FD_WRITE ? EPOLLOUT : 0);
}

static void on_events(hc_watch *w, uint32_t ev, void *ud)
{
    hc_fd_watch *fw = ud;
    if (fw->stopped)
        return;
    unsigned e = (ev & EPOLLIN ? HC_FD_READ : 0) | (ev & EPOLLOUT ? HC_FD_WRITE : 0);
    if (ev & (EPOLLERR | EPOLLHUP)) /* reported whether asked for or not: whoever reads or writes finds out */
        e |= HC_FD_ERROR | HC_FD_READ | (w->events & EPOLLOUT ? HC_FD_WRITE : 0);
    fw->cb(fw->rt, fw, w->fd, e, fw->ud);
}

int hc_fd_watch_start(hc_rt *rt, int fd, unsigned events, hc_fd_cb cb, void *ud, hc_fd_watch **out)
{
    *out = NULL;
    if (fd < 0 || !cb)
        return HC_EINVAL;
    hc_fd_watch *fw = calloc(1, sizeof *fw);
    if (!fw)
        return HC_ENOMEM;
    *fw = (hc_fd_watch){.w = {.fd = fd, .cb = on_events, .ud = fw}, .rt = rt, .cb = cb, .ud = ud};
    if (hc_loop_watch(rt->loop, &fw->w, to_epoll(events))) {
        free(fw);
        return HC_EIO;
    }
    *out = fw;
    return HC_OK;
}

int hc_fd_watch_set(hc_rt *rt, hc_fd_watch *w, unsigned events)
{
    if (!w || w->stopped)
        return HC_EINVAL;
    return hc_loop_watch(rt->loop, &w->w, to_epoll(events));
}

static void free_later(void *ud) { free(ud); }

void hc_fd_watch_stop(hc_rt *rt, hc_fd_watch *w)
{
    if (!w || w->stopped)
        return;
    hc_loop_unwatch(rt->loop, &w->w);
    w->stopped = true;
    w->w.cb = NULL;
    /* Events for it may still sit in the batch the loop is dispatching: free it after the batch, from a timer
     * (due timers run after every descriptor's callback; an armed one is freed with the loop). Should even that
     * allocation fail, the few bytes are left alone rather than freed under the dispatcher. */
    (void)hc_loop_timer_add_owned(rt->loop, 0, free_later, w);
}
