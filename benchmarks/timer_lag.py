"""How late does the open-loop scheduler wake? trio.sleep() against portstorm's PreciseTimer.

The open loop measures each connect from its intended start (coordinated omission), so any
lateness of the scheduler's own wake-up is reported as connect latency. This prints the lag
(actual wake-up minus the intended instant) of both over the same number of 5 ms sleeps,
and the ratio. No network, no privileges.

    .venv/bin/python benchmarks/timer_lag.py [--n 400] [--period-ms 5]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from time import perf_counter_ns

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from portstorm.engine.timer import SPIN_NS, PreciseTimer


def pct(xs: list[int], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(len(xs) * p))] / 1000


async def measure(n: int, period_ns: int) -> tuple[list[int], list[int]]:
    precise, plain = [], []
    async with PreciseTimer() as timer:
        assert timer.precise, "no timerfd on this kernel"
        for _ in range(n):
            target = perf_counter_ns() + period_ns
            await timer.sleep_until(target, perf_counter_ns())
            precise.append(perf_counter_ns() - target)
    for _ in range(n):
        target = perf_counter_ns() + period_ns
        await trio.sleep(period_ns / 1e9)
        plain.append(perf_counter_ns() - target)
    return precise, plain


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--period-ms", type=float, default=5.0)
    a = ap.parse_args()
    precise, plain = trio.run(measure, a.n, int(a.period_ms * 1e6))
    print(f"machine: {os.uname().release}, {os.cpu_count()} CPUs; {a.n} sleeps of "
          f"{a.period_ms:g} ms; spin window {SPIN_NS / 1000:g} us")  # fmt: skip
    print(f"{'wake-up lag (us)':<24}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>9}")
    for name, xs in (("trio.sleep", plain), ("PreciseTimer", precise)):
        print(f"{name:<24}{pct(xs, .5):>8.1f}{pct(xs, .9):>8.1f}{pct(xs, .99):>8.1f}"
              f"{max(xs) / 1000:>9.1f}")  # fmt: skip
    print(
        f"ratio of p50 lags trio.sleep / PreciseTimer: {pct(plain, 0.5) / pct(precise, 0.5):.0f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
