/* The baseline sink: accept() and close(), as fast as the kernel allows.
 *
 * churn_sink HOST PORT [PROCESSES]
 *
 * Each process has its own SO_REUSEPORT listener and an epoll loop. A connection is closed
 * once the client has ended it (EOF or reset), so TIME_WAIT stays with the client, as with
 * portstorm's sink in --close client/rst. Runs until SIGTERM or SIGINT; prints "ready" on
 * stdout once every process listens.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

/* Read what is queued; 1 when the peer has ended the connection. */
static int peer_ended(int c) {
    char buf[4096];
    for (;;) {
        ssize_t n = recv(c, buf, sizeof buf, 0);
        if (n == 0) return 1;
        if (n < 0) return errno == EAGAIN ? 0 : 1;
    }
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
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l}, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 200);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd != l) {
                if (peer_ended(fd)) close(fd);  /* close() also leaves the epoll set */
                continue;
            }
            for (int k = 0; k < 256; k++) {
                int c = accept4(l, NULL, NULL, SOCK_NONBLOCK);
                if (c < 0) break;
                if (peer_ended(c)) { close(c); continue; }
                struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
            }
        }
    }
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s HOST PORT [PROCESSES]\n", argv[0]);
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) return 2;
    int procs = argc > 3 ? atoi(argv[3]) : 1;
    if (procs < 1 || procs > 64) return 2;
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
