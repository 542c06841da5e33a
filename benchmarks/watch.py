"""What one ``portstorm watch`` sample costs with 64,000 TIME_WAIT sockets over 50 destinations.

Runs itself inside a private network namespace (unshare -n as root, -Urn otherwise), so
the host is never touched. There: lo up, ip_local_port_range 1024-65535, tcp_tw_reuse=0,
tcp_max_tw_buckets 262144 (namespace-local); one listener on 0.0.0.0:900 and 50
destinations 127.0.1.1-50; the client connects, the server accepts, the client closes
first and the server after it, so each connection leaves a TIME_WAIT socket on the
client's port (64,000 by default, 1,280 per destination), plus 500 held ESTABLISHED
connections (the full-socket path and the process scan). Then, within the 60 s the
TIME_WAIT sockets live, a child process in the namespace (one per tree and round) times:

  WatchReader.read()            every dump, the tallies, sockstat, counters, conntrack
  the same dump, unparsed       the kernel's part; a dump matching nothing: its walk alone
  the parse of the same bytes   split_datagram() and the tally (cookies seen: steady state)
  one read per second           the CPU (user + system, getrusage) as a share of one core

and the parent the fd scan alone (fdowners.scan(), taken every PROCESS_EVERY_S, not each
read) and the baseline `ss -tan state time-wait | wc -l` (what people script). Goal
(issue 20): under 50 ms and under 5 % of a core.

With ``--before TREE`` (a folder holding another tree's portstorm/, e.g. ``git archive HEAD
portstorm | tar -x -C TREE``), this tree's and that one's children alternate on the same
sockets, ``--rounds`` times each (the order swapped each round: a shared machine's load
drifts), and the medians and after/before are printed.

    python benchmarks/watch.py [--sockets 64000] [--destinations 50] [--repeat 15]
                               [--before TREE] [--rounds 3] [--paced 10]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PORT = 900
HELD = 500
TIME_WAIT_S = 60  # TCP_TIMEWAIT_LEN: the first socket of the fill goes 60 s after it closed


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


def kernel_only(diag: Any, port_range: tuple[int, int], keep: list[bytearray]) -> int:
    """The same dump, received and not parsed (its datagrams copied into ``keep``): what the
    kernel's walk and fill cost. Returns the dump's sequence number."""
    from portstorm.engine.watchdiag import port_filter

    d = diag._diag
    diag._request(port_filter(*port_range, ()), diag._states)
    while True:
        n = d._sock.recv_into(d._buf)
        keep.append(d._buf[:n])
        if n >= 20 and struct.unpack_from("=IH", d._buf, n - 20) == (20, 3):
            return int(d._seq)  # NLMSG_DONE ends the dump


def parser() -> Any:
    """The parse of a read() on given bytes, as the tree imported does it: split, then the
    tally (watchtally.py's where the tree has it, else watchdiag.tally_runs())."""
    from portstorm.engine.watchdiag import split_datagram, tally_runs

    def runs_of(datagrams: list[bytearray], seq: int) -> dict[int, bytearray]:
        runs: dict[int, bytearray] = {}
        for dg in datagrams:
            split_datagram(dg, len(dg), seq, runs)
        return runs

    try:
        from portstorm.engine.watchtally import CookieTally
    except ImportError:
        seen: set[int] = set()

        def parse(datagrams: list[bytearray], seq: int) -> None:
            nonlocal seen
            seen = tally_runs(runs_of(datagrams, seq), seen, 1024)[1]

        return parse
    tally = CookieTally()
    return lambda datagrams, seq: tally.tally(runs_of(datagrams, seq), 1024)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child(tree: str, repeat: int, paced: float) -> None:
    """One tree's timings on the namespace's sockets, as one JSON line."""
    sys.path.insert(0, tree)
    from portstorm.engine.watchread import WatchReader

    reader = WatchReader(process_every_s=1e9)  # the fd scan is timed apart
    try:
        first = reader.read()
        reads, cpus = [], []
        for _ in range(repeat):
            t, c = time.perf_counter(), cpu()
            sample = reader.read()
            reads.append((time.perf_counter() - t) * 1000)
            cpus.append((cpu() - c) * 1000)
        kernel, walk, parse = [], [], []
        for _ in range(repeat):
            grams: list[bytearray] = []
            t = time.perf_counter()
            seq = kernel_only(reader._diag, (1024, 65535), grams)
            kernel.append((time.perf_counter() - t) * 1000)
        for _ in range(repeat):
            t = time.perf_counter()
            kernel_only(reader._diag, (1, 1), [])  # no socket on port 1: the walk alone
            walk.append((time.perf_counter() - t) * 1000)
        parse_one = parser()
        parse_one(grams, seq)  # the cookies seen: the steady state
        for _ in range(repeat):
            t = time.perf_counter()
            parse_one(grams, seq)
            parse.append((time.perf_counter() - t) * 1000)
        # one read per second: the CPU it took, as a share of the wall time
        c0, w0 = cpu(), time.monotonic()
        for i in range(max(1, round(paced))):
            reader.read()
            time.sleep(max(0.0, w0 + i + 1 - time.monotonic()))
        paced_cpu, paced_wall = cpu() - c0, time.monotonic() - w0
    finally:
        reader.close()
    print(
        json.dumps(
            {
                "reads": reads, "cpus": cpus, "kernel": kernel, "walk": walk, "parse": parse,
                "paced_cpu": paced_cpu, "paced_wall": paced_wall,
                "groups": len(sample.groups), "sockstat": sample.time_wait,
                "time_wait": sum(g.states["time_wait"] for g in sample.groups),
                "established": sum(g.states["established"] for g in sample.groups),
                "new": [sum(g.new for g in first.groups), sum(g.new for g in sample.groups)],
                "load": os.getloadavg()[0],
            }
        )
    )  # fmt: skip


def inner(total: int, destinations: int, repeat: int, trees: dict[str, str], a: Any) -> None:
    sys.path.insert(0, str(ROOT))
    from portstorm.engine.fdowners import scan

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for name, value in (("ip_local_port_range", "1024 65535"), ("tcp_tw_reuse", "0"),
                        ("tcp_max_tw_buckets", "262144")):  # fmt: skip
        Path(f"/proc/sys/net/ipv4/{name}").write_text(value)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * HELD + 64)), hard))
    start = time.monotonic()
    held, fill_s = fill(total, destinations)
    deadline = start + TIME_WAIT_S - 1  # the first TIME_WAIT sockets go 60 s after they closed
    time.sleep(0.5)

    got: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    order, longest, stopped = list(trees), 0.0, False
    for r in range(a.rounds):
        if r and time.monotonic() + longest * 1.5 > deadline:
            stopped = True  # another round would outlive the sockets it measures
            break
        began = time.monotonic()
        for name in order if r % 2 == 0 else order[::-1]:
            cmd = [sys.executable, __file__, "--child", trees[name], "--repeat", str(repeat),
                   "--paced", str(a.paced / a.rounds)]  # fmt: skip
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            got[name].append(json.loads(out))
        longest = max(longest, time.monotonic() - began)
    inodes = [os.fstat(s.fileno()).st_ino for s in held]
    scans = [scan(inodes).seconds * 1000 for _ in range(5)]
    late = time.monotonic() > deadline
    ss_cmd = "ss -tan state time-wait | wc -l"
    ss_count = int(subprocess.run(ss_cmd, shell=True, capture_output=True, text=True).stdout) - 1
    ss = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run(ss_cmd, shell=True, capture_output=True)
        ss.append((time.perf_counter() - t) * 1000)
    for s in held:
        s.close()

    med = statistics.median
    loads = [g["load"] for runs in got.values() for g in runs]
    print(f"machine: {os.uname().release}, {os.cpu_count()} CPUs, load {min(loads):.2f}-"
          f"{max(loads):.2f} (1-min); filled {total:,} in {fill_s:.1f} s")  # fmt: skip
    print(f"{'':<34}{'median ms':>10}{'max ms':>10}{'CPU ms':>10}")
    share: dict[str, float] = {}
    pooled: dict[str, dict[str, list[float]]] = {}
    for name, runs in got.items():
        last = runs[-1]
        print(f"{name} ({trees[name]}, {len(runs)} round(s)): {last['groups']} groups, TIME_WAIT "
              f"{min(g['time_wait'] for g in runs):,}-{max(g['time_wait'] for g in runs):,} "
              f"(sockstat {last['sockstat']:,}, ss {ss_count:,} after), established "
              f"{last['established']:,}; new: {last['new'][0]:,} at a first read, "
              f"{last['new'][1]:,} at a later one")  # fmt: skip
        keys = ("reads", "cpus", "kernel", "walk", "parse")
        col = {k: [x for g in runs for x in g[k]] for k in keys}
        print(f"{'WatchReader.read()':<34}{med(col['reads']):>10.1f}{max(col['reads']):>10.1f}"
              f"{med(col['cpus']):>10.1f}")  # fmt: skip
        for label, k in (("  kernel: the same dump, unparsed", "kernel"),
                         ("  kernel: walk only (matching none)", "walk"),
                         ("  Python: parsing the same bytes", "parse")):  # fmt: skip
            print(f"{label:<34}{med(col[k]):>10.1f}{max(col[k]):>10.1f}")
        share[name] = sum(g["paced_cpu"] for g in runs) / sum(g["paced_wall"] for g in runs) * 100
        wall = sum(g["paced_wall"] for g in runs)
        print(f"one read per second: {share[name]:.2f} % of one core (getrusage over {wall:.0f} s)")
        ok = med(col["reads"]) < 50 and share[name] < 5
        print(f"goal < 50 ms and < 5 % of a core: {'MET' if ok else 'NOT MET'}")
        pooled[name] = col
    print(f"{'fdowners.scan() (every 10 s)':<34}{med(scans):>10.1f}{max(scans):>10.1f}")
    print(f"{'ss -tan state time-wait | wc -l':<34}{med(ss):>10.1f}{max(ss):>10.1f}")
    after = pooled["after"]
    print(f"ratio ss / read(): {med(ss) / med(after['reads']):.1f}x")
    if "before" in pooled:
        before = pooled["before"]
        ratios = ", ".join(
            f"{k} {med(after[k]) / med(before[k]):.2f}" for k in ("reads", "cpus", "parse")
        )
        print(f"after/before (medians): {ratios}, "
              f"CPU share {share['after'] / share['before']:.2f}")  # fmt: skip
    if stopped:
        print(f"(stopped after {len(got['after'])} of {a.rounds} rounds: the next would have "
              "outlived the TIME_WAIT sockets)")  # fmt: skip
    if late:
        print("(TIME_WAIT sockets of the fill's start began to expire before the end)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sockets", type=int, default=64000)
    ap.add_argument("--destinations", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--before", type=Path, help="a tree holding another portstorm/ to time beside")
    ap.add_argument("--rounds", type=int, help="children per tree (default 1; 3 with --before)")
    ap.add_argument("--paced", type=float, default=10.0, help="seconds of 1/s reads per tree")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.repeat, a.paced)
        return 0
    if not a.inner:
        return reexec_in_netns()
    trees = {"after": str(ROOT)}
    if a.before is not None:
        if not (a.before / "portstorm" / "engine" / "watchread.py").is_file():
            print(f"--before {a.before}: no portstorm/engine/watchread.py there", file=sys.stderr)
            return 2
        trees["before"] = str(a.before.resolve())
    a.rounds = a.rounds or (3 if a.before is not None else 1)
    inner(a.sockets, a.destinations, a.repeat, trees, a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
