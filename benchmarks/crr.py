"""TCP_CRR: connect, a request, a response, close, per second: portstorm against a C client
and a C sink on the same setup (netperf's TCP_CRR, neper's tcp_crr).

Runs itself inside a private network namespace (unshare -n as root, -Urn otherwise), with
churn.py's settings (loopback, ip_local_port_range 10000-65535, tcp_tw_reuse=1 and
tcp_tw_reuse_delay=1 so the port range is not the limit, somaxconn 65535) and its helpers.
For RST close and for FIN close (the client closes first, after the whole response):

  a  a C connect/write N/read M/close loop (benchmarks/c/crr_client.c, one process per
     core) against a C sink that reads N bytes and answers M (benchmarks/c/crr_sink.c):
     the best of 1 and one-per-core sink processes; both compiled here with the system C
     compiler
  b  portstorm --request-size N --response-size M (default --workers) against the round's
     better C sink
  c  the same portstorm run against portstorm's own sink answering M bytes (defaults)

in --repeat rounds (churn.rounds()), and prints transactions/s (median of the rounds) and
the ratios b/a and c/a; the goal (issue 18) is c/a >= 0.7.

    python benchmarks/crr.py [--seconds 5] [--repeat 3] [--request-size 1] [--response-size 1]
                             [--profile SECONDS]   # py-spy: pip install -e '.[bench]'
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import churn  # benchmarks/churn.py, beside this file (the script's directory is on sys.path)

GOAL = 0.7


def reexec_in_netns() -> int:
    prefix = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-Urn"]
    return subprocess.call([*prefix, sys.executable, __file__, "--inner", *sys.argv[1:]])


def throughput(exes: dict[str, Path], seconds: float, repeat: int, sizes: tuple[int, int]) -> None:
    cores = len(os.sched_getaffinity(0))
    secs = str(seconds)
    size_args = [str(sizes[0]), str(sizes[1])]
    ps_sizes = ["--request-size", size_args[0], "--response-size", size_args[1]]
    ratios = []
    with tempfile.TemporaryDirectory(prefix="portstorm-crr-") as tmp:
        work = Path(tmp)
        for close, ps_close in churn.CLOSES.items():
            print(f"\n{close.upper()} close, {sizes[0]}-byte request, {sizes[1]}-byte response, "
                  f"{seconds:g} s per run, median of {repeat} rounds:")  # fmt: skip
            common = ["--close", ps_close, "--duration", secs, *ps_sizes]

            def a(sink_procs: int, close: str = close) -> float:
                sink = churn.CSink(exes["crr_sink"], sink_procs, size_args)
                try:
                    return churn.c_client(exes["crr_client"], seconds, close, cores, size_args)
                finally:
                    sink.stop()

            def b(sink_procs: int, common: list[str] = common) -> float:
                sink = churn.CSink(exes["crr_sink"], sink_procs, size_args)
                try:
                    target = f"127.0.0.1:{churn.SINK_PORT}"
                    return churn.portstorm_rate([target, *common], work / "b")
                finally:
                    sink.stop()

            c = partial(churn.portstorm_rate, common, work / "c")
            labels = (f"a  C CRR client x{cores} -> C sink x{{n}}",
                      "b  portstorm (default workers) -> the round's C sink",
                      "c  portstorm -> portstorm sink (defaults)")  # fmt: skip
            rb_a, rc_a, rb, rc = churn.rounds(repeat, a, b, c, labels)
            met = "MET" if rc_a >= GOAL else "NOT MET"
            print(f"  goal c/a >= {GOAL}: {met}")
            ratios.append((close, rb_a, rc_a, rb, rc))
    print("\nsummary:", "; ".join(f"{c}: b/a {b:.2f}, c/a {r:.2f} (rounds: {x:.2f}, {y:.2f})"
                                  for c, b, r, x, y in ratios))  # fmt: skip


def inner(seconds: float, repeat: int, sizes: tuple[int, int], profile_s: float) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for name, value in churn.SYSCTLS.items():
        Path(f"/proc/sys/{name}").write_text(value)
    with tempfile.TemporaryDirectory(prefix="portstorm-crr-c-") as tmp:
        exes = churn.compile_c(Path(tmp), ("crr_client", "crr_sink"))
        cores = len(os.sched_getaffinity(0))
        settings = ", ".join(f"{k.rsplit('/', 1)[-1]}={v}" for k, v in churn.SYSCTLS.items())
        print(f"Linux {os.uname().release}, {cores} CPUs, Python {sys.version.split()[0]}; "
              f"one namespace, loopback, {settings}")  # fmt: skip
        throughput(exes, seconds, repeat, sizes)
        if profile_s:
            with tempfile.TemporaryDirectory(prefix="portstorm-crr-prof-") as work:
                size_args = ["--request-size", str(sizes[0]), "--response-size", str(sizes[1])]
                for close in churn.CLOSES:
                    churn.profile(profile_s, close, Path(work), size_args)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds per run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    ap.add_argument("--request-size", type=int, default=1, help="request bytes (N)")
    ap.add_argument("--response-size", type=int, default=1, help="response bytes (M)")
    ap.add_argument("--profile", type=float, default=0.0, metavar="SECONDS",
                    help="also profile c with py-spy for this long (extra: bench)")  # fmt: skip
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    sizes = (args.request_size, args.response_size)
    if (
        not 0 < args.seconds <= 600
        or not 1 <= args.repeat <= 20
        or not all(0 <= n <= 65536 for n in sizes)
        or not 0 <= args.profile <= 600
    ):
        ap.error("--seconds in (0, 600], --repeat in 1..20, sizes in 0..65536 bytes, "
                 "--profile in [0, 600]")  # fmt: skip
    if not args.inner:
        return reexec_in_netns()
    inner(args.seconds, args.repeat, sizes, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
