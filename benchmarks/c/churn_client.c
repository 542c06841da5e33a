/* The baseline client: connect() and close() in a loop, as fast as the kernel allows.
 *
 * churn_client HOST PORT SECONDS rst|fin [PROCESSES]
 *
 * Blocking sockets, one connection at a time per process; PROCESSES forked copies share the
 * work. Prints "connections N failures M seconds S" on stdout. Nothing else is measured:
 * this is what portstorm's driver is compared against (benchmarks/churn.py).
 * rst: SO_LINGER {1, 0} makes close() send RST (no TIME_WAIT); fin: an orderly close.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s HOST PORT SECONDS rst|fin [PROCESSES]\n", argv[0]);
        return 2;
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
        fprintf(stderr, "bad address %s\n", argv[1]);
        return 2;
    }
    double seconds = atof(argv[3]);
    int rst = strcmp(argv[4], "rst") == 0;
    int procs = argc > 5 ? atoi(argv[5]) : 1;
    if (seconds <= 0 || seconds > 3600 || procs < 1 || procs > 64) {
        fprintf(stderr, "SECONDS must be in (0, 3600], PROCESSES in 1..64\n");
        return 2;
    }
    struct linger abort_close = {1, 0};
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
                if (connect(s, (struct sockaddr *)&dst, sizeof dst) == 0) ok++;
                else failed++;
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
