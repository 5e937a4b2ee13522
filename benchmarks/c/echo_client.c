/*
 * Ping-pong TCP echo load generator for the tideloop benchmark suite.
 *
 * Invariant: every connection has exactly one message in flight; a request
 * counts once all SIZE bytes of its echo have come back, so requests/second
 * measures round trips, not bytes pushed into a socket buffer.
 *
 * usage: echo_client HOST PORT CONNS SIZE SECONDS [MAX_REQUESTS]
 * prints one JSON line: {"requests":N,"seconds":T,"errors":E}
 *
 * Single-threaded and level-triggered on purpose: it shares one vCPU with the
 * server under test, so it must cost little and behave the same for every
 * server. EPOLLIN stays registered for the whole run; EPOLLOUT is added only
 * while a large message could not be sent in one go (100 KiB case), so the
 * 1 KiB case costs one send + one recv per request and no epoll_ctl.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

struct conn {
    int fd;
    size_t sent;  /* bytes of the current message sent */
    size_t recvd; /* bytes of the current echo received */
    int want_out; /* EPOLLOUT currently registered */
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int set_interest(int ep, struct conn *c, int want_out) {
    struct epoll_event ev;
    if (c->want_out == want_out) return 0;
    ev.events = EPOLLIN | (want_out ? EPOLLOUT : 0);
    ev.data.ptr = c;
    c->want_out = want_out;
    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Push the rest of the current message; returns -1 on a fatal error. */
static int pump_send(int ep, struct conn *c, const char *msg, size_t size) {
    while (c->sent < size) {
        ssize_t n = send(c->fd, msg + c->sent, size - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return set_interest(ep, c, 1);
            return -1;
        }
        c->sent += (size_t)n;
    }
    return set_interest(ep, c, 0);
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s HOST PORT CONNS SIZE SECONDS [MAX_REQUESTS]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    int nconns = atoi(argv[3]);
    size_t size = (size_t)atol(argv[4]);
    double seconds = atof(argv[5]);
    long long max_requests = argc > 6 ? atoll(argv[6]) : 0;
    if (nconns <= 0 || size == 0 || seconds <= 0) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }

    char *msg = malloc(size);
    size_t rbufsize = 256 * 1024;
    char *rbuf = malloc(rbufsize);
    struct conn *conns = calloc((size_t)nconns, sizeof *conns);
    if (!msg || !rbuf || !conns) return 3;
    for (size_t i = 0; i < size; i++) msg[i] = (char)('a' + i % 26);

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "bad host %s\n", host);
        return 2;
    }

    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < nconns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
            perror("connect");
            return 4;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        conns[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }

    long long requests = 0, errors = 0;
    double t0 = now(), deadline = t0 + seconds, t = t0;
    for (int i = 0; i < nconns; i++)
        if (pump_send(ep, &conns[i], msg, size) < 0) errors++;

    struct epoll_event events[64];
    int running = 1;
    while (running) {
        int n = epoll_wait(ep, events, 64, 100);
        if (n < 0 && errno != EINTR) { perror("epoll_wait"); break; }
        for (int k = 0; k < n && running; k++) {
            struct conn *c = events[k].data.ptr;
            if (c->fd < 0) continue;
            if (events[k].events & EPOLLOUT) {
                if (pump_send(ep, c, msg, size) < 0) { errors++; close(c->fd); c->fd = -1; continue; }
            }
            if (events[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                for (;;) {
                    ssize_t r = recv(c->fd, rbuf, rbufsize, 0);
                    if (r < 0) {
                        if (errno == EINTR) continue;
                        if (errno != EAGAIN && errno != EWOULDBLOCK) { errors++; close(c->fd); c->fd = -1; }
                        break;
                    }
                    if (r == 0) { errors++; close(c->fd); c->fd = -1; break; }
                    c->recvd += (size_t)r;
                    if (c->recvd >= size) {
                        /* The echo never runs ahead of what we sent, so recvd == size here. */
                        requests++;
                        c->recvd = 0;
                        c->sent = 0;
                        if (max_requests && requests >= max_requests) { running = 0; break; }
                        if (pump_send(ep, c, msg, size) < 0) { errors++; close(c->fd); c->fd = -1; }
                        break;
                    }
                }
            }
        }
        t = now();
        if (t >= deadline) running = 0;
    }
    for (int i = 0; i < nconns; i++)
        if (conns[i].fd >= 0) close(conns[i].fd);
    printf("{\"requests\": %lld, \"seconds\": %.6f, \"errors\": %lld}\n", requests, t - t0, errors);
    return 0;
}
