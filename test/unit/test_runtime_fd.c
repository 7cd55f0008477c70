/* test_runtime_fd.c — a program's own descriptors in the loop (hc_fd_watch_*), and the read-only views metrics
 * use (hc_rt_foreach_proc, hc_rt_peer_stats_get): readiness reaches the callback, a stopped watch never calls
 * back again — also when it is stopped from its own callback or from another watch's callback while its event
 * waits in the same batch (the sanitizer build would catch a use after free) — and a hang-up is reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "hordec/hc_runtime.h"

static hc_rt *new_rt(void)
{
    hc_rt_config cfg;
    hc_rt_config_defaults(&cfg);
    cfg.node_name = "fd@127.0.0.1";
    cfg.cookie = "unit";
    cfg.register_epmd = false;
    hc_rt *rt = NULL;
    char err[256];
    assert_int_equal(hc_rt_new(&cfg, &rt, err, sizeof err), HC_OK);
    return rt;
}

typedef struct seen {
    int calls;
    unsigned events;
    hc_fd_watch *stop_other; /* stop this watch from the callback */
    bool stop_self;
    bool drain;
} seen;

static void on_fd(hc_rt *rt, hc_fd_watch *w, int fd, unsigned events, void *ud)
{
    seen *s = ud;
    s->calls++;
    s->events |= events;
    if (s->drain) {
        char buf[64];
        while (read(fd, buf, sizeof buf) > 0)
            ;
    }
    if (s->stop_other) {
        hc_fd_watch_stop(rt, s->stop_other);
        s->stop_other = NULL;
    }
    if (s->stop_self)
        hc_fd_watch_stop(rt, w);
}

static void pair(int sv[2]) { assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0); }

static void readable_then_stopped(void **state)
{
    (void)state;
    hc_rt *rt = new_rt();
    int sv[2];
    pair(sv);
    seen s = {.drain = true};
    hc_fd_watch *w;
    assert_int_equal(hc_fd_watch_start(rt, sv[0], HC_FD_READ, on_fd, &s, &w), HC_OK);
    assert_int_equal(hc_rt_run_once(rt, 0), HC_OK);
    assert_int_equal(s.calls, 0); /* nothing to read yet */
    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_int_equal(hc_rt_run_once(rt, 1000), HC_OK);
    assert_int_equal(s.calls, 1);
    assert_true(s.events & HC_FD_READ);

    /* 0 events: watched for nothing for now; then writable */
    assert_int_equal(write(sv[1], "y", 1), 1);
    assert_int_equal(hc_fd_watch_set(rt, w, 0), HC_OK);
    assert_int_equal(hc_rt_run_once(rt, 0), HC_OK);
    assert_int_equal(s.calls, 1);
    s.events = 0;
    assert_int_equal(hc_fd_watch_set(rt, w, HC_FD_WRITE), HC_OK);
    assert_int_equal(hc_rt_run_once(rt, 1000), HC_OK);
    assert_int_equal(s.calls, 2);
    assert_int_equal(s.events, HC_FD_WRITE);

    /* stopped from its own callback: never called again */
    s.stop_self = true;
    assert_int_equal(hc_fd_watch_set(rt, w, HC_FD_READ), HC_OK);
    assert_int_equal(write(sv[1], "w", 1), 1);
    assert_int_equal(hc_rt_run_once(rt, 1000), HC_OK);
    assert_int_equal(s.calls, 3);
    assert_int_equal(write(sv[1], "z", 1), 1);
    assert_int_equal(hc_rt_run_once(rt, 50), HC_OK);
    assert_int_equal(s.calls, 3);
    close(sv[0]);
    close(sv[1]);
    hc_rt_free(rt);
}

/* Two watches ready in the same iteration; whichever runs first stops the other, whose event is already in the
 * batch: the other must not be called. */
static void stopped_by_another_in_the_same_batch(void **state)
{
    (void)state;
    hc_rt *rt = new_rt();
    int a[2], b[2];
    pair(a);
    pair(b);
    seen sa = {0}, sb = {0};
    hc_fd_watch *wa, *wb;
    assert_int_equal(hc_fd_watch_start(rt, a[0], HC_FD_READ, on_fd, &sa, &wa), HC_OK);
    assert_int_equal(hc_fd_watch_start(rt, b[0], HC_FD_READ, on_fd, &sb, &wb), HC_OK);
    sa.stop_other = wb;
    sb.stop_other = wa;
    assert_int_equal(write(a[1], "x", 1), 1);
    assert_int_equal(write(b[1], "x", 1), 1);
    usleep(10000);
    assert_int_equal(hc_rt_run_once(rt, 1000), HC_OK);
    assert_int_equal(sa.calls + sb.calls, 1);
    /* the survivor keeps working; stop it too, then free everything */
    hc_fd_watch *alive = sa.calls ? wa : wb;
    hc_fd_watch_stop(rt, alive);
    hc_fd_watch_stop(rt, NULL);
    assert_int_equal(hc_rt_run_once(rt, 0), HC_OK);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    hc_rt_free(rt);
}

static void hang_up_is_reported(void **state)
{
    (void)state;
    hc_rt *rt = new_rt();
    int sv[2];
    pair(sv);
    seen s = {.stop_self = true};
    hc_fd_watch *w;
    assert_int_equal(hc_fd_watch_start(rt, sv[0], HC_FD_READ, on_fd, &s, &w), HC_OK);
    close(sv[1]);
    assert_int_equal(hc_rt_run_once(rt, 1000), HC_OK);
    assert_int_equal(s.calls, 1);
    assert_true(s.events & HC_FD_READ); /* a read will say: end of file */
    char c;
    assert_int_equal(read(sv[0], &c, 1), 0);
    close(sv[0]);
    hc_rt_free(rt); /* the stopped watch's memory goes with the loop */
}

static void bad_arguments(void **state)
{
    (void)state;
    hc_rt *rt = new_rt();
    seen s = {0};
    hc_fd_watch *w = (hc_fd_watch *)1;
    assert_int_equal(hc_fd_watch_start(rt, -1, HC_FD_READ, on_fd, &s, &w), HC_EINVAL);
    assert_null(w);
    assert_int_equal(hc_fd_watch_start(rt, 0, HC_FD_READ, NULL, &s, &w), HC_EINVAL);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    close(fds[0]);
    close(fds[1]);
    assert_int_equal(hc_fd_watch_start(rt, fds[0], HC_FD_READ, on_fd, &s, &w), HC_EIO); /* a closed descriptor */
    assert_null(w);
    hc_rt_free(rt);
}

static const hc_proc_ops idle_ops = {0};

static int count_proc(hc_rt *rt, hc_proc *p, void *ud)
{
    (void)rt;
    (void)p;
    return ++*(int *)ud == 100 ? 7 : 0;
}

static void introspection(void **state)
{
    (void)state;
    hc_rt *rt = new_rt();
    int before = 0;
    assert_int_equal(hc_rt_foreach_proc(rt, count_proc, &before), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(hc_proc_spawn(rt, &idle_ops, NULL, 0, NULL), HC_OK);
    int after = 0;
    assert_int_equal(hc_rt_foreach_proc(rt, count_proc, &after), 0);
    assert_int_equal(after, before + 3);
    int stop_early = 99; /* the visitor stops at 100: its non-zero return comes back */
    assert_int_equal(hc_rt_foreach_proc(rt, count_proc, &stop_early), 7);
    hc_rt_stats st;
    hc_rt_stats_get(rt, &st);
    assert_int_equal((size_t)after, st.processes);
    hc_rt_peer_stats ps[4];
    assert_int_equal(hc_rt_peer_stats_get(rt, ps, 4), 0); /* no peers yet */
    hc_rt_free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(readable_then_stopped), cmocka_unit_test(stopped_by_another_in_the_same_batch),
        cmocka_unit_test(hang_up_is_reported),   cmocka_unit_test(bad_arguments),
        cmocka_unit_test(introspection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
