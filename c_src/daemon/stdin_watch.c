/* stdin_watch.c — see stdin_watch.h. */
#include "daemon/stdin_watch.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "hordec/hc_log.h"

/* The runtime to stop, guarded so the thread never calls into one main() has freed. */
static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static hc_rt *watch_rt;
static atomic_bool watch_closed;

static void *watch_main(void *arg)
{
    (void)arg;
    char buf[256];
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        if (n > 0 || (n < 0 && errno == EINTR))
            continue;
        break;
    }
    atomic_store(&watch_closed, true);
    pthread_mutex_lock(&watch_lock);
    if (watch_rt) {
        hc_log_info("stdin closed: the owning process is gone");
        hc_rt_stop(watch_rt); /* thread-safe: sets a flag and wakes the loop */
    }
    pthread_mutex_unlock(&watch_lock);
    return NULL;
}

int hordec_stdin_watch_start(hc_rt *rt)
{
    pthread_mutex_lock(&watch_lock);
    watch_rt = rt;
    pthread_mutex_unlock(&watch_lock);
    pthread_t t;
    if (pthread_create(&t, NULL, watch_main, NULL)) {
        hordec_stdin_watch_detach();
        return HC_ENOMEM;
    }
    pthread_detach(t); /* it may stay blocked in read() until the process exits */
    return HC_OK;
}

void hordec_stdin_watch_detach(void)
{
    pthread_mutex_lock(&watch_lock);
    watch_rt = NULL;
    pthread_mutex_unlock(&watch_lock);
}

bool hordec_stdin_closed(void) { return atomic_load(&watch_closed); }
