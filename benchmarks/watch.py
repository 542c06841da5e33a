"""What one ``portstorm watch`` sample costs with 64,000 TIME_WAIT sockets over 50 destinations.

Runs itself inside a private network namespace (unshare -n as root, -Urn otherwise), so
the host is never touched. There: lo up, ip_local_port_range 1024-65535, tcp_tw_reuse=0,
tcp_max_tw_buckets 262144 (namespace-local); one listener on 0.0.0.0:900 and 50
destinations 127.0.1.1-50; the client connects, the server accepts, the client closes
first and the server after it, so each connection leaves a TIME_WAIT socket on the
client's port (64,000 by default, 1,280 per destination), plus 500 held ESTABLISHED
connections (the full-socket path and the process scan). Then, within the 60 s the
TIME_WAIT sockets live, it times:

  WatchReader.read()            every dump, the tallies, sockstat, counters, conntrack
  its fd scan alone             fdowners.scan() (taken every PROCESS_EVERY_S, not each read)
  baseline                      `ss -tan state time-wait | wc -l` (what people script)

and the CPU (user + system, getrusage) of a read() per second over ten one-second
intervals, as a share of one core. Goal (issue 20): under 50 ms and under 5 % of a core.

    python benchmarks/watch.py [--sockets 64000] [--destinations 50] [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PORT = 900
HELD = 500


def reexec_in_netns() -> int:
    prefix = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-Urn"]
    return subprocess.call([*prefix, sys.executable, __file__, "--inner", *sys.argv[1:]])


def fill(total: int, destinations: int) -> tuple[list[socket.socket], float]:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", PORT))
    srv.listen(4096)
    dests = [f"127.0.1.{i}" for i in range(1, destinations + 1)]
    t = time.perf_counter()
    for i in range(total):
        c = socket.socket()
        c.connect((dests[i % destinations], PORT))
        a, _ = srv.accept()
        c.close()  # the client closes first: its port goes to TIME_WAIT once a closes
        a.close()
    held: list[socket.socket] = [srv]
    for i in range(HELD):
        c = socket.socket()
        c.connect((dests[i % destinations], PORT))
        held += [c, srv.accept()[0]]
    return held, time.perf_counter() - t


def kernel_only(diag: object, port_range: tuple[int, int], keep: list[bytearray]) -> int:
    """The same dump, received and not parsed (its datagrams copied into ``keep``): what the
    kernel's walk and fill cost. Returns the dump's sequence number."""
    from portstorm.engine.watchdiag import port_filter

    d = diag._diag  # type: ignore[attr-defined]
    diag._request(port_filter(*port_range, ()), diag._states)  # type: ignore[attr-defined]
    while True:
        n = d._sock.recv_into(d._buf)
        keep.append(d._buf[:n])
        if n >= 20 and struct.unpack_from("=IH", d._buf, n - 20) == (20, 3):
            return int(d._seq)  # NLMSG_DONE ends the dump


def parse_only(datagrams: list[bytearray], seq: int, seen: set[int]) -> set[int]:
    """The Python of a read() on the same bytes: split, tally (cookies seen: steady state)."""
    from portstorm.engine.watchdiag import split_datagram, tally_runs

    runs: dict[int, bytearray] = {}
    for dg in datagrams:
        split_datagram(dg, len(dg), seq, runs)
    return tally_runs(runs, seen, 1024)[1]


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def inner(total: int, destinations: int, repeat: int) -> None:
    sys.path.insert(0, str(ROOT))
    from portstorm.engine.fdowners import scan
    from portstorm.engine.watchread import WatchReader

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for name, value in (("ip_local_port_range", "1024 65535"), ("tcp_tw_reuse", "0"),
                        ("tcp_max_tw_buckets", "262144")):  # fmt: skip
        Path(f"/proc/sys/net/ipv4/{name}").write_text(value)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * HELD + 64)), hard))
    held, fill_s = fill(total, destinations)
    deadline = time.monotonic() + 55  # the first TIME_WAIT sockets expire 60 s after fill
    time.sleep(0.5)

    reader = WatchReader(process_every_s=1e9)  # the fd scan is timed apart
    try:
        first = reader.read()
        reads, cpus = [], []
        for _ in range(repeat):
            t, c = time.perf_counter(), cpu()
            sample = reader.read()
            reads.append((time.perf_counter() - t) * 1000)
            cpus.append((cpu() - c) * 1000)
        kernel, parse = [], []
        for _ in range(repeat):
            grams: list[bytearray] = []
            t = time.perf_counter()
            seq = kernel_only(reader._diag, (1024, 65535), grams)
            kernel.append((time.perf_counter() - t) * 1000)
        walk = []
        for _ in range(repeat):
            t = time.perf_counter()
            kernel_only(reader._diag, (1, 1), [])  # no socket on port 1: the walk alone
            walk.append((time.perf_counter() - t) * 1000)
        seen = parse_only(grams, seq, set())
        for _ in range(repeat):
            t = time.perf_counter()
            parse_only(grams, seq, seen)
            parse.append((time.perf_counter() - t) * 1000)
        inodes = [os.fstat(s.fileno()).st_ino for s in held]
        scans = [scan(inodes).seconds * 1000 for _ in range(5)]
        # one read per second for ten seconds: the CPU it took, as a share of the wall time
        c0, w0 = cpu(), time.monotonic()
        for i in range(10):
            reader.read()
            time.sleep(max(0.0, w0 + i + 1 - time.monotonic()))
        share = (cpu() - c0) / (time.monotonic() - w0) * 100
    finally:
        reader.close()
    ss_cmd = "ss -tan state time-wait | wc -l"
    ss_count = int(subprocess.run(ss_cmd, shell=True, capture_output=True, text=True).stdout) - 1
    ss = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run(ss_cmd, shell=True, capture_output=True)
        ss.append((time.perf_counter() - t) * 1000)
    late = time.monotonic() > deadline
    for s in held:
        s.close()

    med = statistics.median
    tw = sum(g.states["time_wait"] for g in sample.groups)
    est = sum(g.states["established"] for g in sample.groups)
    print(f"machine: {os.uname().release}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
          f"filled {total:,} in {fill_s:.1f} s")  # fmt: skip
    new0, new1 = sum(g.new for g in first.groups), sum(g.new for g in sample.groups)
    print(f"read: {len(sample.groups)} groups, TIME_WAIT {tw:,} (sockstat {sample.time_wait:,}, "
          f"ss {ss_count:,}), established {est:,}; new: {new0:,} at the first read, "
          f"{new1:,} at a later one")  # fmt: skip
    print(f"{'':<34}{'median ms':>10}{'max ms':>10}{'CPU ms':>10}")
    print(f"{'WatchReader.read()':<34}{med(reads):>10.1f}{max(reads):>10.1f}{med(cpus):>10.1f}")
    print(f"{'  kernel: the same dump, unparsed':<34}{med(kernel):>10.1f}{max(kernel):>10.1f}")
    print(f"{'  kernel: walk only (matching none)':<34}{med(walk):>10.1f}{max(walk):>10.1f}")
    print(f"{'  Python: parsing the same bytes':<34}{med(parse):>10.1f}{max(parse):>10.1f}")
    print(f"{'fdowners.scan() (every 10 s)':<34}{med(scans):>10.1f}{max(scans):>10.1f}")
    print(f"{'ss -tan state time-wait | wc -l':<34}{med(ss):>10.1f}{max(ss):>10.1f}")
    print(f"ratio ss / read(): {med(ss) / med(reads):.1f}x")
    print(f"one read per second: {share:.2f} % of one core (getrusage over 10 s)")
    ok = med(reads) < 50 and share < 5
    print(
        f"goal < 50 ms and < 5 % of a core: {'MET' if ok else 'NOT MET'}"
        + (" (TIME_WAIT began to expire before the end)" if late else "")
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sockets", type=int, default=64000)
    ap.add_argument("--destinations", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if not a.inner:
        return reexec_in_netns()
    inner(a.sockets, a.destinations, a.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
