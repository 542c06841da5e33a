"""How fast portstorm churns connections, against a C client and a C sink on the same setup.

Runs itself inside a private network namespace (unshare -n as root, -Urn otherwise), so the
host is never touched. There, on loopback, with ip_local_port_range 10000-65535,
tcp_tw_reuse=1 and tcp_tw_reuse_delay=1 (a FIN close's TIME_WAIT port can be taken over
after 1 ms, so the port range is not the limit) and somaxconn 65535, it measures, for RST
close and for FIN close (the client closes first):

  a  C connect/close loop (benchmarks/c/churn_client.c, one process per core) against the
     C accept/close sink (benchmarks/c/churn_sink.c): the best of 1 and one-per-core sink
     processes. Both are compiled from source here with the system C compiler.
  b  portstorm's driver (default --workers) against the same C sink (the round's better
     sink count)
  c  portstorm's driver against portstorm's own sink (defaults for both)
  p  the C client's loop in Python (benchmarks/py_loop.py: the hot loop's syscalls and
     nothing else, one process per core) against the round's C sink: as far as a Python
     driver can go on this host

in --repeat rounds of a, p, b, c (so that the four of a round see the same machine), and
prints connections/s (median of the rounds) and the ratios b/a and c/a, of the medians and
the medians of each round's own, and p/a, b/p and c/p. Then, unless
--rss-connections 0, memory: portstorm (c's setup, RST close) runs until it has made that
many connections (10 million by default), and the resident memory of each of its processes
(the run, its driver workers, the sink) is read from /proc at 1 million connections and at
the end. Memory must not grow with run length.

With --cpu SECONDS, where the difference between b and p goes: each close mode's p and b
(against one C sink process) run that long in --repeat rounds, and the CPU time of their
client processes (py_loop.py's copies; portstorm's driver workers) is read from /proc over
the steady part of the load, against the namespace's TcpActiveOpens over the same span:
user and system microseconds a connection, and b/p of each. Time per connection does not
move with the host as much as connections/s do.

    python benchmarks/churn.py [--seconds 5] [--repeat 3] [--rss-connections 10000000]
                               [--memory-only] [--cpu SECONDS] [--profile SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
C_DIR = Path(__file__).resolve().parent / "c"
PY_LOOP = Path(__file__).resolve().parent / "py_loop.py"
SINK_PORT = 9000  # outside the range below: the sink's port is never a client port
SYSCTLS = {
    "net/ipv4/ip_local_port_range": "10000 65535",
    "net/ipv4/tcp_tw_reuse": "1",
    "net/ipv4/tcp_tw_reuse_delay": "1",
    "net/ipv4/tcp_timestamps": "1",
    "net/core/somaxconn": "65535",
    "net/ipv4/tcp_max_syn_backlog": "65535",
}
CLOSES = {"rst": "rst", "fin": "client"}  # C client's name -> portstorm's --close


def reexec_in_netns() -> int:
    prefix = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-Urn"]
    return subprocess.call([*prefix, sys.executable, __file__, "--inner", *sys.argv[1:]])


def compile_c(
    out_dir: Path, names: Sequence[str] = ("churn_client", "churn_sink")
) -> dict[str, Path]:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        sys.exit("benchmarks: no C compiler (cc or gcc) found; install gcc")
    built = {}
    for name in names:
        exe = out_dir / name
        subprocess.run([cc, "-O2", "-Wall", "-o", str(exe), str(C_DIR / f"{name}.c")], check=True)
        built[name] = exe
    return built


class CSink:
    """A C sink; ``args`` go between its port and its process count (crr_sink's sizes)."""

    def __init__(self, exe: Path, processes: int, args: Sequence[str] = ()) -> None:
        self.proc = subprocess.Popen(
            [str(exe), "127.0.0.1", str(SINK_PORT), *args, str(processes)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit("the C sink did not start")

    def stop(self) -> None:
        os.kill(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=10)


def c_client(
    exe: Path, seconds: float, close: str, processes: int, args: Sequence[str] = ()
) -> float:
    """Connections/s of a C client (or py_loop.py, run with this Python); ``args`` go
    between its close mode and its process count (crr_client's sizes)."""
    run = [sys.executable, str(exe)] if exe.suffix == ".py" else [str(exe)]
    out = subprocess.run(
        [*run, "127.0.0.1", str(SINK_PORT), str(seconds), close, *args, str(processes)],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    # "connections N failures M seconds S"
    if int(out[3]):
        print(f"    (note: the C client had {int(out[3]):,} failed attempts)")
    return int(out[1]) / float(out[5])


def portstorm_rate(args: list[str], out: Path) -> float:
    """Connections/s of one ``portstorm run`` (successes over the load's own duration)."""
    cmd = [sys.executable, "-m", "portstorm", "run", "--sandbox", "host", "--no-report",
           "--quiet", "--force", "--out", str(out), *args]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=ENV)
    doc = json.loads((out / "result.json").read_text())
    failed = sum(doc["totals"]["failed"].values())
    if failed:
        print(f"    (note: {failed:,} failed attempts: {doc['totals']['failed']})")
    return float(doc["totals"]["succeeded"]) / float(doc["duration_s"])


def rounds(
    repeat: int,
    a: Callable[[int], float],
    b: Callable[[int], float],
    c: Callable[[], float],
    labels: tuple[str, str, str],
    p: tuple[str, Callable[[int], float]] | None = None,
) -> tuple[float, float, float, float]:
    """a, b and c in rounds (a with one C sink process and with one per core, b against
    the round's better C sink, then c), so that the three of a round see the same
    machine: shared with other work, its rate moved by a third from one minute to the
    next, and three a's, then three b's, then three c's compared different minutes. Prints
    each line's median and runs; returns b/a and c/a of the medians (a: the better sink
    count's), then the medians of the rounds' own b/a and c/a. ``p`` (its label, and its
    run against a sink count): a line measured after a, against the round's better sink,
    printed with p/a and b/p (the Python loop, py_loop.py)."""
    cores = len(os.sched_getaffinity(0))
    sinks = sorted({1, cores})
    a_runs: dict[int, list[float]] = {n: [] for n in sinks}
    b_runs: list[tuple[float, int]] = []
    c_runs: list[float] = []
    round_b, round_c = [], []
    p_runs: list[float] = []
    for _ in range(repeat):
        for n in sinks:
            a_runs[n].append(a(n))
        best = max(sinks, key=lambda n: a_runs[n][-1])
        if p is not None:
            p_runs.append(p[1](best))
        b_runs.append((b(best), best))
        c_runs.append(c())
        round_b.append(b_runs[-1][0] / a_runs[best][-1])
        round_c.append(c_runs[-1] / a_runs[best][-1])

    def line(label: str, values: list[float], notes: list[str] | None = None) -> float:
        m = statistics.median(values)
        shown = ", ".join(f"{v:,.0f}{notes[i] if notes else ''}" for i, v in enumerate(values))
        print(f"  {label:<58} {m:>10,.0f}   ({shown})", flush=True)
        return m

    best_a = max(line(labels[0].format(n=n), a_runs[n]) for n in sinks)
    pm = line(p[0], p_runs) if p is not None else None
    b = line(labels[1], [v for v, _ in b_runs], [f" x{n}" for _, n in b_runs])
    c = line(labels[2], c_runs)
    rb, rc = statistics.median(round_b), statistics.median(round_c)
    if pm is not None:
        print(f"  p/a = {pm / best_a:.2f}   b/p = {b / pm:.2f}   c/p = {c / pm:.2f}   (p: as far "
              "as a Python loop of these syscalls goes here)")  # fmt: skip
    print(f"  b/a = {b / best_a:.2f}   c/a = {c / best_a:.2f}   (medians of the rounds' own "
          f"ratios: b/a {rb:.2f}, c/a {rc:.2f})")  # fmt: skip
    return b / best_a, c / best_a, rb, rc


def throughput(exes: dict[str, Path], seconds: float, repeat: int, work: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    secs = str(seconds)
    ratios = []
    for close, ps_close in CLOSES.items():
        print(f"\n{close.upper()} close, {seconds:g} s per run, median of {repeat} rounds:")

        def a(sink_procs: int, close: str = close) -> float:
            sink = CSink(exes["churn_sink"], sink_procs)
            try:
                return c_client(exes["churn_client"], seconds, close, cores)
            finally:
                sink.stop()

        def b(sink_procs: int, ps_close: str = ps_close) -> float:
            sink = CSink(exes["churn_sink"], sink_procs)
            try:
                args = [f"127.0.0.1:{SINK_PORT}", "--close", ps_close, "--duration", secs]
                return portstorm_rate(args, work / "b")
            finally:
                sink.stop()

        def p(sink_procs: int, close: str = close) -> float:
            sink = CSink(exes["churn_sink"], sink_procs)
            try:
                return c_client(PY_LOOP, seconds, close, cores)
            finally:
                sink.stop()

        c = partial(portstorm_rate, ["--close", ps_close, "--duration", secs], work / "c")
        labels = (f"a  C client x{cores} -> C sink x{{n}}",
                  "b  portstorm driver (default workers) -> the round's C sink",
                  "c  portstorm driver -> portstorm sink (defaults)")  # fmt: skip
        p_label = f"p  Python loop x{cores} (py_loop.py) -> the round's C sink"
        ratios.append((close, *rounds(repeat, a, b, c, labels, (p_label, p))))
    print("\nsummary:", "; ".join(f"{c}: b/a {b:.2f}, c/a {r:.2f} (rounds: {rb:.2f}, {rc:.2f})"
                                  for c, b, r, rb, rc in ratios))  # fmt: skip


def descendants(root_pid: int) -> set[int]:
    """root_pid and every process under it (parents from /proc/PID/stat)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rpartition(")")[2].split()[1])
    wanted, frontier = {root_pid}, [root_pid]
    while frontier:
        p = frontier.pop()
        for child, parent in parents.items():
            if parent == p and child not in wanted:
                wanted.add(child)
                frontier.append(child)
    return wanted


def tree_rss(root_pid: int) -> dict[str, tuple[int, int]]:
    """{process label: (VmRSS kB, VmHWM kB)} for root_pid and its descendants."""
    out = {}
    for pid in sorted(descendants(root_pid)):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if "VmRSS" not in fields:  # exiting (a zombie has no memory left)
            continue
        words = [w.decode() for w in cmd if w]
        label = "run" if pid == root_pid else " ".join(w for w in words[2:4])
        out[f"{label} [{pid}]"] = (int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0]))
    return out


def memory(target: int, work: Path) -> None:
    out = work / "rss"
    cmd = [
        sys.executable,
        "-m",
        "portstorm",
        "run",
        "--sandbox",
        "host",
        "--close",
        "rst",
        "--duration",
        "3600",
        "--no-report",
        "--quiet",
        "--force",
        "--out",
        str(out),
    ]
    print(f"\nmemory: portstorm run (RST close, defaults) until {target:,} connections")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=ENV)
    log = out / "intervals.jsonl"
    done, at_1m, started = 0, None, time.monotonic()
    next_mark, marks = 1_000_000, []
    try:
        while done < target:
            time.sleep(1.0)
            if proc.poll() is not None:
                raise SystemExit(f"portstorm ended early (exit {proc.returncode})")
            if not log.exists():
                continue
            done = sum(
                json.loads(line)["interval"]["succeeded"]
                for line in log.read_text().splitlines()
                if line.startswith('{"interval"')
            )
            if at_1m is None and done >= 1_000_000:
                at_1m = (done, tree_rss(proc.pid))
            if done >= next_mark:  # the total at each further million: a plateau, or a slope
                total = sum(rss for rss, _hwm in tree_rss(proc.pid).values())
                marks.append(f"{done / 1e6:.0f}M {total / 1024:.1f}")
                next_mark += 1_000_000
        at_end = (done, tree_rss(proc.pid))
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    elapsed = time.monotonic() - started
    assert at_1m is not None
    print(f"  {done:,} connections in {elapsed:,.0f} s ({done / elapsed:,.0f}/s)")
    print(f"  {'process':<34} {'RSS at ' + format(at_1m[0], ','):>18} "
          f"{'RSS at ' + format(at_end[0], ','):>19} {'growth':>9} {'peak':>9}")  # fmt: skip
    total_growth = 0
    for label, (rss_end, hwm) in at_end[1].items():
        rss_1m = at_1m[1].get(label, (0, 0))[0]
        total_growth += rss_end - rss_1m
        print(f"  {label:<34} {rss_1m / 1024:>15.1f} MB {rss_end / 1024:>16.1f} MB "
              f"{(rss_end - rss_1m) / 1024:>+6.1f} MB {hwm / 1024:>6.1f} MB")  # fmt: skip
    print(f"  all processes, MB of RSS at each million: {', '.join(marks)}")
    print(f"  total growth 1M -> {done / 1e6:.0f}M: {total_growth / 1024:+.1f} MB (goal < 20 MB)")


ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def profile(seconds: float, close: str, work: Path, extra: Sequence[str] = ()) -> None:
    """Where portstorm's processes spend their time: py-spy samples the run and every child
    (driver workers, sink) for c's setup (``extra``: more ``portstorm run`` options, as
    crr.py's sizes); self time per function, by process."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        sys.exit("--profile needs py-spy: pip install -e '.[bench]'")
    raw = work / "profile.txt"
    cmd = [spy, "record", "--subprocesses", "--nonblocking", "-r", "200", "-f", "raw", "-o",
           str(raw), "--", sys.executable, "-m", "portstorm", "run", "--sandbox", "host",
           "--close", CLOSES[close], "--duration", str(seconds), "--no-report", "--quiet",
           "--force", "--out", str(work / "prof"), *extra]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    by_kind: dict[str, dict[str, int]] = {}  # sink, worker, run -> {function: samples}
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        # with --subprocesses py-spy names each process on the way down in a frame
        # "process PID:..." (parent first); the last frame is where the sample landed
        proc = [f for f in frames if f.startswith("process ")][-1]
        kind = "sink" if "sink_main" in proc else "worker" if "worker_main" in proc else "run"
        leaf = frames[-1].split(" (")[0] + " (" + frames[-1].split(" (")[-1].split(":")[0] + ")"
        counts = by_kind.setdefault(kind, {})
        counts[leaf] = counts.get(leaf, 0) + int(n)
    total = sum(sum(c.values()) for c in by_kind.values())
    print(f"\nprofile: {close.upper()} close, {seconds:g} s, {total:,} samples; self time by "
          "process (% of all samples), top 8 functions of each:")  # fmt: skip
    for kind, counts in sorted(by_kind.items(), key=lambda kv: -sum(kv[1].values())):
        print(f"  {kind}: {100 * sum(counts.values()) / total:.1f} %")
        for name, count in sorted(counts.items(), key=lambda kv: -kv[1])[:8]:
            print(f"    {100 * count / total:5.1f} %  {name}")


def _active_opens() -> int:
    """TcpActiveOpens of this namespace (/proc/net/snmp): every connect() begun in it."""
    lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines()
             if ln.startswith("Tcp:")]  # fmt: skip
    return int(lines[1][lines[0].index("ActiveOpens")])


def _cpu_ticks(pids: Sequence[int]) -> tuple[int, int]:
    """User and system clock ticks of ``pids`` so far (/proc/PID/stat fields 14 and 15)."""
    user = system = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            raise SystemExit(f"benchmarks: process {pid} ended inside its steady part") from None
        fields = stat.rpartition(")")[2].split()
        user, system = user + int(fields[11]), system + int(fields[12])
    return user, system


def _pids_running(root_pid: int, word: str) -> list[int]:
    """The processes under root_pid (not itself) whose command line has ``word`` in it."""
    found = []
    for pid in descendants(root_pid) - {root_pid}:
        try:
            if word.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:  # ended meanwhile
            pass
    return found


def cpu_of(cmd: list[str], word: str, seconds: float) -> tuple[float, float, float] | None:
    """CPU time per connection of the processes of ``cmd`` named by ``word`` (their
    command line's), read from /proc over the steady part of the load: from 1 s after
    connections began to 1 s before the planned end. (user us, system us, connections/s)
    there; the connections are the namespace's TcpActiveOpens, counted by the kernel the
    same way for any client. None: fewer than 1,000 connections there (a host too busy,
    or a niced run: too few to divide by)."""
    start = _active_opens()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        give_up = time.monotonic() + 60
        while _active_opens() - start < 1000:  # the load is running
            if proc.poll() is not None or time.monotonic() > give_up:
                raise SystemExit(f"benchmarks: {cmd[:4]} made no connections")
            time.sleep(0.01)
        began = time.monotonic()
        time.sleep(1.0)  # past the start: imports, a first tick, the port range warming
        pids = _pids_running(proc.pid, word)
        if not pids:
            raise SystemExit(f"benchmarks: no {word} process under {cmd[:4]}")
        t1, (u1, s1), o1 = time.monotonic(), _cpu_ticks(pids), _active_opens()
        time.sleep(max(0.5, began + seconds - 1.0 - time.monotonic()))
        t2, (u2, s2), o2 = time.monotonic(), _cpu_ticks(pids), _active_opens()
    finally:
        proc.wait(timeout=120)
    if o2 - o1 < 1000:
        return None
    per = 1e6 / os.sysconf("SC_CLK_TCK") / (o2 - o1)
    return (u2 - u1) * per, (s2 - s1) * per, (o2 - o1) / (t2 - t1)


def cpu(exes: dict[str, Path], seconds: float, repeat: int, work: Path) -> None:
    """Where the difference between portstorm's driver and a bare Python loop goes: CPU
    time per connection, user (Python) and system (the kernel), of py_loop.py's processes
    (p) and of portstorm's driver workers (b), both against one C sink, in rounds."""
    cores = len(os.sched_getaffinity(0))
    print("\nCPU per connection of the client processes (/proc; the steady part of each "
          f"{seconds:g} s run; median of {repeat} rounds), against one C sink:")  # fmt: skip
    for close, ps_close in CLOSES.items():
        got: dict[str, list[tuple[float, float, float] | None]] = {"p": [], "b": []}
        for _ in range(repeat):
            sink = CSink(exes["churn_sink"], 1)
            try:
                got["p"].append(cpu_of([sys.executable, str(PY_LOOP), "127.0.0.1",
                                        str(SINK_PORT), str(seconds), close, str(cores)],
                                       "py_loop.py", seconds))  # fmt: skip
                got["b"].append(cpu_of([sys.executable, "-m", "portstorm", "run", "--sandbox",
                                        "host", "--no-report", "--quiet", "--force", "--out",
                                        str(work / "cpu"), f"127.0.0.1:{SINK_PORT}", "--close",
                                        ps_close, "--duration", str(seconds)],
                                       "worker_main", seconds))  # fmt: skip
            finally:
                sink.stop()
        kept = {k: [x for x in v if x is not None] for k, v in got.items()}
        if not kept["p"] or not kept["b"]:
            print(f"  {close.upper()}  too few connections in the steady part of the runs "
                  "(under 1,000): nothing to divide by")  # fmt: skip
            continue
        med = {k: [statistics.median(x[i] for x in v) for i in range(3)] for k, v in kept.items()}
        for key, label in (("p", f"p  Python loop x{cores}"), ("b", "b  portstorm's workers")):
            user, system, rate = med[key]
            print(f"  {close.upper()}  {label:24s} user {user:5.2f} us  system {system:5.2f} us"
                  f"  = {user + system:5.2f} us a connection   ({rate:,.0f}/s)")  # fmt: skip

        def ratio(b: float, p: float) -> str:
            return f"{b / p:.2f}" if p else "n/a (p: 0)"

        (pu, ps, _), (bu, bs, _) = med["p"], med["b"]
        print(f"  {close.upper()}  b/p: user {ratio(bu, pu)}, system {ratio(bs, ps)}, "
              f"together {ratio(bu + bs, pu + ps)}")  # fmt: skip


def inner(
    seconds: float,
    repeat: int,
    rss_connections: int,
    profile_s: float,
    cpu_s: float,
    cpu_rounds: int,
) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for name, value in SYSCTLS.items():
        Path(f"/proc/sys/{name}").write_text(value)
    with tempfile.TemporaryDirectory(prefix="portstorm-bench-") as tmp:
        work = Path(tmp)
        exes = compile_c(work)
        cores = len(os.sched_getaffinity(0))
        settings = ", ".join(f"{k.rsplit('/', 1)[-1]}={v}" for k, v in SYSCTLS.items())
        print(f"Linux {os.uname().release}, {cores} CPUs, Python {sys.version.split()[0]}; "
              f"one namespace, loopback, {settings}")  # fmt: skip
        if repeat:
            throughput(exes, seconds, repeat, work)
        if cpu_s:
            cpu(exes, cpu_s, cpu_rounds, work)
        if rss_connections:
            memory(rss_connections, work)
        if profile_s:
            for close in CLOSES:
                profile(profile_s, close, work)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds per throughput run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    ap.add_argument("--rss-connections", type=int, default=10_000_000,
                    help="connections for the memory run (0: skip it)")  # fmt: skip
    ap.add_argument("--memory-only", action="store_true", help="skip the throughput runs")
    ap.add_argument("--profile", type=float, default=0.0, metavar="SECONDS",
                    help="also profile c with py-spy for this long (extra: bench)")  # fmt: skip
    ap.add_argument("--cpu", type=float, default=0.0, metavar="SECONDS",
                    help="also p's and b's CPU a connection, runs this long (>= 3)")  # fmt: skip
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if (not 0 < args.seconds <= 600 or not 1 <= args.repeat <= 20 or args.rss_connections < 0
            or not 0 <= args.profile <= 600
            or not (args.cpu == 0 or 3 <= args.cpu <= 600)):  # fmt: skip
        ap.error("--seconds in (0, 600], --repeat in 1..20, --rss-connections >= 0, "
                 "--profile in [0, 600], --cpu 0 or in [3, 600]")  # fmt: skip
    if args.rss_connections and args.rss_connections < 1_000_000:
        ap.error("--rss-connections: 0 (skip) or at least 1,000,000 (memory is read at 1M)")
    if not args.inner:
        return reexec_in_netns()
    inner(args.seconds, args.repeat if not args.memory_only else 0, args.rss_connections,
          args.profile, args.cpu, args.repeat)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
