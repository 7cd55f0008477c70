/* epmd.c — see epmd.h. Formats from OTP's "Distribution Protocol" chapter (EPMD protocol). */
#include "dist/epmd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EPMD_ALIVE2_REQ 120
#define EPMD_ALIVE2_X_RESP 118
#define EPMD_ALIVE2_RESP 121
#define EPMD_PORT_PLEASE2_REQ 122
#define EPMD_PORT2_RESP 119
#define NODE_TYPE_HIDDEN 72

static int epmd_port(void)
{
    const char *s = getenv("ERL_EPMD_PORT"); /* honoured by erl too, so tests can run a private epmd */
    int p = s ? atoi(s) : 0;
    return p > 0 && p < 65536 ? p : HC_EPMD_PORT;
}

static int connect_epmd(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)epmd_port())};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int start_epmd_daemon(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execlp("epmd", "epmd", "-daemon", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int read_full(int fd, uint8_t *p, size_t n, int timeout_ms)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t k = read(fd, p + got, n - got);
        if (k <= 0) {
            if (k < 0 && errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)k;
    }
    return 0;
}

int hc_epmd_register(const char *alive, uint16_t port, int *fd_out, uint32_t *creation, char *err, size_t errlen)
{
    int fd = connect_epmd();
    if (fd < 0) {
        if (start_epmd_daemon() < 0) {
            snprintf(err, errlen, "no epmd on port %d and `epmd -daemon` failed (is erlang installed?)", epmd_port());
            return HC_EIO;
        }
        for (int i = 0; i < 50 && fd < 0; i++) { /* epmd -daemon returns before it listens */
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
            fd = connect_epmd();
        }
        if (fd < 0) {
            snprintf(err, errlen, "started epmd but cannot reach it on port %d", epmd_port());
            return HC_EIO;
        }
    }
    size_t n = strlen(alive);
    hc_buf b = {0};
    int rc = hc_buf_put_be16(&b, (uint16_t)(13 + n)) || hc_buf_put_u8(&b, EPMD_ALIVE2_REQ) ||
             hc_buf_put_be16(&b, port) || hc_buf_put_u8(&b, NODE_TYPE_HIDDEN) || hc_buf_put_u8(&b, 0) ||
             hc_buf_put_be16(&b, 6) || hc_buf_put_be16(&b, 5) || hc_buf_put_be16(&b, (uint16_t)n) ||
             hc_buf_append(&b, alive, n) || hc_buf_put_be16(&b, 0);
    if (rc || write(fd, b.data, b.len) != (ssize_t)b.len) {
        hc_buf_free(&b);
        close(fd);
        snprintf(err, errlen, "cannot send the registration to epmd: %s", strerror(errno));
        return HC_EIO;
    }
    hc_buf_free(&b);
    uint8_t r[6];
    if (read_full(fd, r, 2, 5000) < 0) {
        close(fd);
        snprintf(err, errlen, "epmd did not answer the registration");
        return HC_EIO;
    }
    if ((r[0] != EPMD_ALIVE2_X_RESP && r[0] != EPMD_ALIVE2_RESP) || r[1] != 0) {
        close(fd);
        snprintf(err, errlen, "epmd refused the name '%s' (is another node using it?)", alive);
        return HC_EEXIST;
    }
    size_t cn = r[0] == EPMD_ALIVE2_X_RESP ? 4 : 2;
    if (read_full(fd, r + 2, cn, 5000) < 0) {
        close(fd);
        snprintf(err, errlen, "truncated registration reply from epmd");
        return HC_EIO;
    }
    *creation = cn == 4 ? hc_get_be32(r + 2) : hc_get_be16(r + 2);
    *fd_out = fd;
    return HC_OK;
}

int hc_epmd_port_request(hc_buf *out, const char *alive)
{
    size_t n = strlen(alive);
    if (n > 0xFFFE)
        return HC_EINVAL;
    return hc_buf_put_be16(out, (uint16_t)(1 + n)) || hc_buf_put_u8(out, EPMD_PORT_PLEASE2_REQ) ||
                   hc_buf_append(out, alive, n)
               ? HC_ENOMEM
               : HC_OK;
}

int hc_epmd_port_reply(const uint8_t *p, size_t len, uint16_t *port)
{
    if (len < 2)
        return 0;
    if (p[0] != EPMD_PORT2_RESP)
        return HC_EDECODE;
    if (p[1] != 0)
        return HC_ENOPROC;
    if (len < 4)
        return 0;
    *port = hc_get_be16(p + 2);
    return 1;
}
