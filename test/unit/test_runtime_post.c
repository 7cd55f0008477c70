/* test_runtime_post.c — handing work to the loop from other threads: hc_rt_post from real pthreads while
 * the loop runs (every item runs once, on the loop thread, in each poster's order), hc_rt_stop from
 * another thread waking a loop that waits in epoll, and what happens to posts around hc_rt_free (the
 * pending ones run, later ones are refused). */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hordec/hc_runtime.h"

static hc_rt *new_rt(void)
{
    hc_rt_config cfg;
    hc_rt_config_defaults(&cfg);
    cfg.node_name = "post@127.0.0.1";
    cfg.cookie = "unit";
    cfg.register_epmd = false;
    hc_rt *rt = NULL;
    char err[256];
    assert_int_equal(hc_rt_new(&cfg, &rt, err, sizeof err), HC_OK);
    return rt;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ many posts from several threads */

#define POSTERS 3
#define PER_POSTER 20000

typedef struct tally {
    pthread_t loop_thread;
    long next[POSTERS]; /* the sequence number each poster's next item must carry */
    long ran;
    bool out_of_order, wrong_thread;
} tally;

typedef struct item {
    tally *t;
    int poster;
    long seq;
} item;

static void run_item(hc_rt *rt, void *ud)
{
    item *it = ud;
    tally *t = it->t;
    if (!pthread_equal(pthread_self(), t->loop_thread))
        t->wrong_thread = true;
    if (it->seq != t->next[it->poster])
        t->out_of_order = true;
    t->next[it->poster] = it->seq + 1;
    t->ran++;
    free(it);
    (void)rt;
}

typedef struct poster {
    hc_rt *rt;
    tally *t;
    int id;
    int failures;
} poster;

static void *post_many(void *arg)
{
    poster *p = arg;
    for (long i = 0; i < PER_POSTER; i++) {
        item *it = malloc(sizeof *it);
        *it = (item){p->t, p->id, i};
        if (hc_rt_post(p->rt, run_item, it) != HC_OK) {
            free(it);
            p->failures++;
        }
        if (i % 1000 == 0)
            sched_yield(); /* let the loop take some batches mid-stream */
    }
    return NULL;
}

static void test_posts_from_other_threads_run_on_the_loop_in_order(void **state)
{
    (void)state;
    hc_rt *rt = new_rt();
    tally t = {.loop_thread = pthread_self()};
    poster ps[POSTERS];
    pthread_t th[POSTERS];
    for (int i = 0; i < POSTERS; i++) {
        ps[i] = (poster){rt, &t, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, post_many, &ps[i]), 0);
    }
    /* The loop waits in epoll with a long timeout: only the posts' wake-ups make it go round. */
    uint64_t deadline = mono_ms() + 20000;
    while (t.ran < (long)POSTERS * PER_POSTER && mono_ms() < deadline)
        hc_rt_run_once(rt, 1000);
    for (int i = 0; i < POSTERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(ps[i].failures, 0);
    }
    assert_int_equal(t.ran, (long)POSTERS * PER_POSTER);
    assert_false(t.out_of_order);
    assert_false(t.wrong_thread);
    for (int i = 0; i < POSTERS; i++)
        assert_int_equal(t.next[i], PER_POSTER);
    hc_rt_free(rt);
    hc_atom_table_reset();
}

/* ------------------------------------------------------------------ stop from another thread */

static void *stop_later(void *arg)
{
    usleep(50 * 1000);
    hc_rt_stop(arg);
    return NULL;
}

static void test_stop_from_another_thread_wakes_the_loop(void **state)
{
    (void)state;
    hc_rt *rt = new_rt();
    pthread_t th;
    uint64_t start = mono_ms();
    assert_int_equal(pthread_create(&th, NULL, stop_later, rt), 0);
    assert_int_equal(hc_rt_run(rt), HC_OK); /* waits in epoll up to a second per turn */
    uint64_t took = mono_ms() - start;
    pthread_join(th, NULL);
    assert_true(took >= 40);
    assert_true(took < 900); /* woken, not timed out */
    hc_rt_free(rt);
    hc_atom_table_reset();
}

/* ------------------------------------------------------------------ posts and hc_rt_free */

typedef struct at_free {
    int ran;
    int repost_rc;
    int procs_seen;
} at_free;

static void note_run(hc_rt *rt, void *ud)
{
    at_free *a = ud;
    a->ran++;
    hc_rt_stats s;
    hc_rt_stats_get(rt, &s);
    a->procs_seen = (int)s.processes;            /* the runtime is still whole: net_kernel is there */
    a->repost_rc = hc_rt_post(rt, note_run, ud); /* refused: hc_rt_free has begun */
}

static void count_run(hc_rt *rt, void *ud)
{
    (*(int *)ud)++;
    (void)rt;
}

static void test_pending_posts_run_at_free_and_later_ones_are_refused(void **state)
{
    (void)state;
    hc_rt *rt = new_rt();
    at_free a = {0};
    assert_int_equal(hc_rt_post(rt, note_run, &a), HC_OK);
    assert_int_equal(hc_rt_post(rt, NULL, &a), HC_EINVAL);
    hc_rt_free(rt); /* the loop never ran */
    assert_int_equal(a.ran, 1);
    assert_int_equal(a.repost_rc, HC_ESTATE);
    assert_true(a.procs_seen >= 1);
    hc_atom_table_reset();

    /* a post made from the loop thread runs on a later turn, never inside the call */
    rt = new_rt();
    int n = 0;
    assert_int_equal(hc_rt_post(rt, count_run, &n), HC_OK);
    assert_int_equal(n, 0);
    hc_rt_run_once(rt, 0);
    assert_int_equal(n, 1);
    hc_rt_free(rt);
    assert_int_equal(n, 1);
    hc_atom_table_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posts_from_other_threads_run_on_the_loop_in_order),
        cmocka_unit_test(test_stop_from_another_thread_wakes_the_loop),
        cmocka_unit_test(test_pending_posts_run_at_free_and_later_ones_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
