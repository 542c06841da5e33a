/* The baseline TCP_CRR sink: accept(), read a REQUEST-byte request, answer RESPONSE bytes,
 * close once the client has ended the connection, as fast as the kernel allows.
 *
 * crr_sink HOST PORT REQUEST RESPONSE [PROCESSES]
 *
 * Each process has its own SO_REUSEPORT listener and an epoll loop (as churn_sink.c), with
 * per-connection progress kept by fd: request bytes read, response bytes written (a
 * response larger than the socket buffer waits for EPOLLOUT). The client closes first, so
 * TIME_WAIT stays with the client, as with portstorm's sink in --close client/rst. Runs
 * until SIGTERM or SIGINT; prints "ready" on stdout once every process listens.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_MESSAGE (1 << 20)

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

struct conn { long got, sent; };  /* request bytes read, response bytes written */
static struct conn *conns;
static long n_conns, request, response;
static char *answer;
static int ep;

/* Move connection c along; 1 when it is over (the peer ended it, or an error). */
static int progress(int c) {
    struct conn *st = &conns[c];
    char buf[4096];
    for (;;) {  /* read what is queued: the request, then only the peer's EOF */
        ssize_t n = recv(c, buf, sizeof buf, 0);
        if (n == 0) return 1;
        if (n < 0) {
            if (errno != EAGAIN) return 1;
            break;
        }
        st->got += n;
    }
    if (st->got < request || st->sent >= response) return 0;
    while (st->sent < response) {
        ssize_t n = send(c, answer + st->sent, response - st->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN) return 1;
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.fd = c};
            epoll_ctl(ep, EPOLL_CTL_MOD, c, &ev);
            return 0;
        }
        st->sent += n;
    }
    if (response > 0) {  /* answered whole: from now on only the close matters */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c, &ev);
    }
    return 0;
}

static void serve(struct sockaddr_in *addr, int ready_fd) {
    int one = 1;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(l, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(l, (struct sockaddr *)addr, sizeof *addr) || listen(l, 65535)) {
        perror("listen");
        _exit(1);
    }
    if (write(ready_fd, "r", 1) != 1) _exit(1);
    close(ready_fd);
    ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l}, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 200);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd != l) {
                if (progress(fd)) close(fd);  /* close() also leaves the epoll set */
                continue;
            }
            for (int k = 0; k < 256; k++) {
                int c = accept4(l, NULL, NULL, SOCK_NONBLOCK);
                if (c < 0) break;
                if (c >= n_conns) { close(c); continue; }  /* past RLIMIT_NOFILE's table */
                conns[c] = (struct conn){0, 0};
                struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                if (progress(c)) close(c);  /* the request is often there already */
            }
        }
    }
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s HOST PORT REQUEST RESPONSE [PROCESSES]\n", argv[0]);
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) return 2;
    request = atol(argv[3]);
    response = atol(argv[4]);
    int procs = argc > 5 ? atoi(argv[5]) : 1;
    if (procs < 1 || procs > 64 || request < 0 || request > MAX_MESSAGE || response < 0 ||
        response > MAX_MESSAGE)
        return 2;
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 1;
    n_conns = lim.rlim_cur < (1 << 20) ? (long)lim.rlim_cur : (1 << 20);
    conns = calloc(n_conns, sizeof *conns);
    answer = malloc(response + 1);
    if (!conns || !answer) return 1;
    memset(answer, 'r', response);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int ready[2];
    if (pipe(ready) != 0) return 1;
    pid_t pids[64];
    for (int p = 0; p < procs; p++) {
        if ((pids[p] = fork()) == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            close(ready[0]);
            serve(&addr, ready[1]);
        }
    }
    close(ready[1]);
    char c;
    for (int p = 0; p < procs; p++) {  /* each child writes one byte once it listens */
        if (read(ready[0], &c, 1) != 1) {
            fprintf(stderr, "a sink process failed to listen\n");
            return 1;
        }
    }
    printf("ready\n");
    fflush(stdout);
    while (!stop) pause();
    for (int p = 0; p < procs; p++) kill(pids[p], SIGTERM);
    while (wait(NULL) > 0) {}
    return 0;
}
