/*
 * Reference epoll TCP echo server: the floor for "server CPU per request".
 *
 * Invariant: it speaks the same control protocol as the Python benchmark
 * servers (prints "READY <port>", answers "mark" on stdin with its own
 * getrusage as one JSON line, exits on "quit" or EOF), so the runner measures
 * it exactly like the loops under test.
 *
 * usage: echo_server [PORT]   (0 or absent: kernel picks; 127.0.0.1 only)
 *
 * Level-triggered epoll with one reusable 256 KiB receive buffer. A write the
 * kernel does not fully take is parked in a per-connection buffer and the
 * connection stops reading until it drains: the same back-pressure rule an
 * asyncio transport applies.
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXFD 65536

struct pending {
    char *buf;
    size_t len, cap, off;
};

static struct pending pend[MAXFD];

static void mark(void) {
    struct rusage ru;
    struct timespec ts;
    long rss_pages = 0, size_pages = 0;
    getrusage(RUSAGE_SELF, &ru);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &size_pages, &rss_pages) != 2) rss_pages = 0;
        fclose(f);
    }
    printf("{\"utime\": %.6f, \"stime\": %.6f, \"maxrss_kb\": %ld, \"rss_kb\": %ld, \"t\": %.6f}\n",
           (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, ru.ru_maxrss,
           rss_pages * (sysconf(_SC_PAGESIZE) / 1024), (double)ts.tv_sec + ts.tv_nsec / 1e9);
    fflush(stdout);
}

static void drop(int ep, int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    if (fd < MAXFD) pend[fd].len = pend[fd].off = 0;
}

static void interest(int ep, int fd, unsigned events) {
    struct epoll_event ev = {.events = events, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

/* Send buf; park what the kernel refuses. Returns 0 ok, -1 on a dead peer. */
static int send_or_park(int ep, int fd, const char *buf, size_t len) {
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
            struct pending *p = &pend[fd];
            if (p->cap < len) {
                p->buf = realloc(p->buf, len);
                p->cap = len;
            }
            memcpy(p->buf, buf, len);
            p->len = len;
            p->off = 0;
            interest(ep, fd, EPOLLOUT);
            return 0;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(ls, 1024) < 0) {
        perror("bind/listen");
        return 1;
    }
    socklen_t alen = sizeof addr;
    getsockname(ls, (struct sockaddr *)&addr, &alen);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    ev.data.fd = 0;
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);

    size_t rbufsize = 256 * 1024;
    char *rbuf = malloc(rbufsize);
    char line[256];
    size_t linelen = 0;
    printf("READY %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    struct epoll_event events[128];
    for (;;) {
        int n = epoll_wait(ep, events, 128, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            int fd = events[k].data.fd;
            if (fd == 0) {
                ssize_t r = read(0, line + linelen, sizeof line - 1 - linelen);
                if (r <= 0) return 0;
                linelen += (size_t)r;
                line[linelen] = 0;
                char *nl;
                while ((nl = strchr(line, '\n')) != NULL) {
                    *nl = 0;
                    if (strcmp(line, "mark") == 0) mark();
                    else if (strcmp(line, "quit") == 0) return 0;
                    size_t rest = linelen - (size_t)(nl + 1 - line);
                    memmove(line, nl + 1, rest);
                    linelen = rest;
                    line[linelen] = 0;
                }
                if (linelen >= sizeof line - 1) linelen = 0;
            } else if (fd == ls) {
                for (;;) {
                    int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0) break;
                    if (c >= MAXFD) { close(c); continue; }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
            } else if (events[k].events & EPOLLOUT) {
                struct pending *p = &pend[fd];
                while (p->off < p->len) {
                    ssize_t w = send(fd, p->buf + p->off, p->len - p->off, MSG_NOSIGNAL);
                    if (w < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                        if (errno == EINTR) continue;
                        drop(ep, fd);
                        break;
                    }
                    p->off += (size_t)w;
                }
                if (p->len && p->off == p->len) {
                    p->len = p->off = 0;
                    interest(ep, fd, EPOLLIN);
                }
            } else {
                ssize_t r = recv(fd, rbuf, rbufsize, 0);
                if (r > 0) {
                    if (send_or_park(ep, fd, rbuf, (size_t)r) < 0) drop(ep, fd);
                } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    drop(ep, fd);
                }
            }
        }
    }
}
