/* The baseline TCP_CRR client: connect(), write a request, read the response, close(), in
 * a loop, as fast as the kernel allows (netperf's TCP_CRR, neper's tcp_crr).
 *
 * crr_client HOST PORT SECONDS rst|fin REQUEST RESPONSE [PROCESSES]
 *
 * Blocking sockets, one connection at a time per process; PROCESSES forked copies share the
 * work. A connection counts when all RESPONSE bytes came back; EOF, an error or 3 s
 * without progress first is a failure. Prints "connections N failures M seconds S" on
 * stdout: what portstorm's --request-size/--response-size is compared against
 * (benchmarks/crr.py).
 * rst: SO_LINGER {1, 0} makes close() send RST (no TIME_WAIT); fin: an orderly close, after
 * the whole response is read (unread data would turn the close into a RST, tcp_close()).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_MESSAGE (1 << 20)

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One transaction on a connected socket: 0 when the whole response arrived. */
static int transact(int s, const char *req, long request, char *buf, long response) {
    for (long sent = 0; sent < request;) {
        ssize_t n = send(s, req + sent, request - sent, MSG_NOSIGNAL);
        if (n <= 0) return -1;
        sent += n;
    }
    for (long got = 0; got < response;) {
        ssize_t n = recv(s, buf, response - got, 0);
        if (n <= 0) return -1;
        got += n;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: %s HOST PORT SECONDS rst|fin REQUEST RESPONSE [PROCESSES]\n",
                argv[0]);
        return 2;
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
        fprintf(stderr, "bad address %s\n", argv[1]);
        return 2;
    }
    double seconds = atof(argv[3]);
    int rst = strcmp(argv[4], "rst") == 0;
    long request = atol(argv[5]), response = atol(argv[6]);
    int procs = argc > 7 ? atoi(argv[7]) : 1;
    if (seconds <= 0 || seconds > 3600 || procs < 1 || procs > 64 || request < 0 ||
        request > MAX_MESSAGE || response < 0 || response > MAX_MESSAGE) {
        fprintf(stderr, "SECONDS in (0, 3600], REQUEST and RESPONSE in 0..%d, PROCESSES in 1..64\n",
                MAX_MESSAGE);
        return 2;
    }
    char *req = calloc(1, request + 1), *buf = malloc(response + 1);
    if (!req || !buf) return 1;
    memset(req, 'q', request);
    struct linger abort_close = {1, 0};
    struct timeval limit = {3, 0};  /* portstorm's default connect and response timeout */
    int fds[2];
    if (pipe(fds) != 0) return 1;
    double t0 = now();
    for (int p = 0; p < procs; p++) {
        if (fork() == 0) {
            long ok = 0, failed = 0;
            double end = t0 + seconds;
            while (1) {
                /* at least 256 attempts each: a copy the scheduler first ran after the
                 * deadline (a busy machine, nice 19) made none, and the run said 0 */
                if (ok + failed > 0 && (ok + failed) % 256 == 0 && now() >= end) break;
                int s = socket(AF_INET, SOCK_STREAM, 0);
                if (s < 0) { failed++; continue; }
                if (rst) setsockopt(s, SOL_SOCKET, SO_LINGER, &abort_close, sizeof abort_close);
                /* a sink that never answers ends the transaction, not the benchmark */
                setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
                setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
                if (connect(s, (struct sockaddr *)&dst, sizeof dst) == 0 &&
                    transact(s, req, request, buf, response) == 0)
                    ok++;
                else
                    failed++;
                close(s);
            }
            long out[2] = {ok, failed};
            if (write(fds[1], out, sizeof out) != sizeof out) _exit(1);
            _exit(0);
        }
    }
    close(fds[1]);
    long ok = 0, failed = 0, got[2];
    while (read(fds[0], got, sizeof got) == sizeof got) { ok += got[0]; failed += got[1]; }
    while (wait(NULL) > 0) {}
    printf("connections %ld failures %ld seconds %.3f\n", ok, failed, now() - t0);
    return 0;
}
