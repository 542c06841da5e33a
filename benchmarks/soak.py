"""A long steady run: does anything grow that should not (memory, open fds), and is every
interval there at the end?

Runs ``portstorm run`` in the pair sandbox (its own namespaces: the host is never touched)
at a steady open-loop rate for --minutes (10 by default), RST close so the port space is
not what is tested. Every 10 s it reads the resident memory of each of the run's processes
(the run, its driver workers, the sink) from /proc. At the end it checks:

  intervals   one per --interval second, each with the planned attempts (within 2 %)
  totals      attempts = rate x duration, no failures
  memory      total RSS growth from the first minute to the end under 20 MB
  fds         open fds (the run's sampler counts them, workers included) no higher at the
              end than after the first minute, plus 16

and prints the figures with PASS or FAIL for each.

    python benchmarks/soak.py [--minutes 10] [--rate 20000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from churn import ENV, tree_rss

RSS_GROWTH_MB = 20.0
FD_SLACK = 16


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=20000.0, help="attempts per second")
    args = ap.parse_args()
    if not 1 <= args.minutes * 60 <= 24 * 3600 or not 1 <= args.rate <= 50_000:
        ap.error("--minutes: 1 s to 24 h; --rate: 1 to 50,000")
    seconds = round(args.minutes * 60)
    with tempfile.TemporaryDirectory(prefix="portstorm-soak-") as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "portstorm", "run", "--sandbox", "pair", "--close", "rst",
               "--rate", f"{args.rate:g}", "--duration", str(seconds), "--no-report",
               "--quiet", "--out", str(out)]  # fmt: skip
        print(f"soak: {' '.join(cmd[1:])}", flush=True)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=ENV)
        started = time.monotonic()
        samples: list[tuple[float, int]] = []  # (seconds in, total RSS kB)
        while proc.poll() is None:
            time.sleep(10.0)
            rss = tree_rss(proc.pid)
            if rss:
                samples.append((time.monotonic() - started, sum(r for r, _ in rss.values())))
        if proc.returncode != 0:
            print(f"FAIL: portstorm exited {proc.returncode}")
            return 1
        doc = json.loads((out / "result.json").read_text())
    return report(doc, samples, seconds, args.rate)


def report(doc: dict[str, Any], samples: list[tuple[float, int]], seconds: int, rate: float) -> int:
    ok = True

    def verdict(good: bool, text: str) -> None:
        nonlocal ok
        ok &= good
        print(f"  {'PASS' if good else 'FAIL'}  {text}")

    ivs = doc["intervals"]
    t = doc["totals"]
    per = [i["attempts"] for i in ivs]
    planned = rate * float(doc["scenario"]["interval_s"])
    expected = round(seconds / float(doc["scenario"]["interval_s"]))
    print(f"\n{doc['host']['kernel']}, {doc['host']['cpus']} CPUs; workers "
          f"{doc['scenario']['workers']}, sink workers {doc['scenario']['sink_workers']}; "
          f"ran {doc['duration_s']:.1f} s")  # fmt: skip
    verdict(len(ivs) == expected, f"intervals: {len(ivs)} (expected {expected})")
    off = [a for a in per if abs(a - planned) > 0.02 * planned]
    verdict(not off, f"attempts per interval: {min(per):,} to {max(per):,} (planned "
            f"{planned:,.0f}; {len(off)} off by more than 2 %)")  # fmt: skip
    verdict(t["attempts"] == round(rate * seconds) and not t["failed"],
            f"totals: {t['attempts']:,} attempts, {t['succeeded']:,} succeeded, failed "
            f"{t['failed'] or 'none'}")  # fmt: skip
    late = [kb for s, kb in samples if s >= 60.0] or [kb for _s, kb in samples]
    first, last = late[0], late[-1]
    verdict((last - first) / 1024 < RSS_GROWTH_MB,
            f"memory (all processes): {first / 1024:.1f} MB after the first minute, "
            f"{last / 1024:.1f} MB at the end ({(last - first) / 1024:+.1f} MB; peak "
            f"{max(late) / 1024:.1f} MB)")  # fmt: skip
    fds = [i["fds"] for i in ivs if i["fds"] is not None]
    after_minute = fds[min(len(fds) - 1, 60)]
    verdict(fds[-1] <= after_minute + FD_SLACK,
            f"open fds: {after_minute} after the first minute, {fds[-1]} at the end "
            f"(max {max(fds)})")  # fmt: skip
    lat = doc["latency_us"]
    print(f"  connect latency p50 {lat['p50']} us, p99 {lat['p99']} us, max {lat['max']} us")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
