"""The Python ceiling: churn_client.c's connect/close loop written in Python, nothing else.

    python benchmarks/py_loop.py HOST PORT SECONDS rst|fin [PROCESSES]

The syscalls of portstorm's hot loop (engine/attempts.py's ``_closed_plain``: a
non-blocking ``_socket.socket``, connect_ex() twice, SO_LINGER {1, 0} for rst, close()),
in one function with everything in locals, and no Trio, no tally, no latency, no
sampler. PROCESSES forked copies (default 1) share the work; prints "connections N
failures M seconds S" as churn_client does, so benchmarks/churn.py reads both alike.
Whatever this loop makes against the C sink is as far as a Python driver can go on the
host: churn.py prints it as ``p`` beside a (C) and b (portstorm's driver).
"""

from __future__ import annotations

import _socket
import errno
import os
import socket
import struct
import sys
import time

_NONBLOCK = socket.SOCK_STREAM | socket.SOCK_NONBLOCK
_LINGER_ABORT = struct.pack("ii", 1, 0)


def churn(addr: tuple[str, int], end: float, rst: bool) -> tuple[int, int]:
    """Connections and failures until ``end`` (time.monotonic()); at least 256 attempts,
    as churn_client.c makes (a copy first run after the deadline still counts some)."""
    new, now, inprogress = _socket.socket, time.monotonic, errno.EINPROGRESS
    sol, linger, abort = socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT
    ok = failed = 0
    while True:
        for _ in range(256):
            s = new(socket.AF_INET, _NONBLOCK)
            err = s.connect_ex(addr)
            if err == inprogress:
                err = s.connect_ex(addr)  # over loopback the handshake is over: 0
            if err:
                failed += 1
            else:
                ok += 1
                if rst:
                    s.setsockopt(sol, linger, abort)
            s.close()
        if now() >= end:
            return ok, failed


def main(argv: list[str]) -> int:
    if len(argv) not in (4, 5) or argv[3] not in ("rst", "fin"):
        print(f"usage: {sys.argv[0]} HOST PORT SECONDS rst|fin [PROCESSES]", file=sys.stderr)
        return 2
    host, port, seconds, close = argv[0], int(argv[1]), float(argv[2]), argv[3]
    procs = int(argv[4]) if len(argv) == 5 else 1
    if not 0 < seconds <= 3600 or not 1 <= procs <= 64:
        print("SECONDS must be in (0, 3600], PROCESSES in 1..64", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    end = t0 + seconds
    r, w = os.pipe()
    pids = []
    for _ in range(procs):
        pid = os.fork()
        if pid == 0:
            os.close(r)
            ok, failed = churn((host, port), end, close == "rst")
            os.write(w, struct.pack("qq", ok, failed))
            os._exit(0)
        pids.append(pid)
    os.close(w)
    ok = failed = 0
    with os.fdopen(r, "rb") as got:
        while len(part := got.read(16)) == 16:
            a, b = struct.unpack("qq", part)
            ok, failed = ok + a, failed + b
    for pid in pids:
        os.waitpid(pid, 0)
    print(f"connections {ok} failures {failed} seconds {time.monotonic() - t0:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
