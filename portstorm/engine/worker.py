"""One driver worker process: the worker's side of workers.py's protocol.

Containing no load logic (driver.py) and no merging (workers.py). Started as
``python -m portstorm.engine.worker`` by DriverPool, never by a user: it reads its job from
stdin, says ``ready``, waits for ``go T0_NS``, drives its share of the load, and writes one
JSON line per interval and a last ``done`` line to stdout. SIGTERM ends the load early;
what was measured is still reported.
"""

from __future__ import annotations

import base64
import json
import pickle
import signal
import sys
from types import FrameType
from typing import Any

import trio

from portstorm.core.outcome import FAILURES
from portstorm.core.result import Interval
from portstorm.engine.driver import Driver, drive


def main() -> int:
    stopped = False

    def early_stop(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stopped
        stopped = True

    # a SIGTERM before the load starts: report an empty, interrupted run instead of dying
    signal.signal(signal.SIGTERM, early_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    scenario, flows, share = pickle.loads(base64.b64decode(sys.stdin.buffer.readline()))
    out = sys.stdout
    k = 0
    n_flows = len(flows)
    prev_ok, prev_failed = [0] * n_flows, [0] * (n_flows * len(FAILURES))
    prev_first: list[float | None] = [None] * n_flows

    def emit(interval: Interval) -> None:
        """One interval, with what changed per flow since the previous one (sparse)."""
        nonlocal k, prev_ok, prev_failed, prev_first
        ok, failed, first = driver.flow_totals()
        msg = {
            "k": k,
            "interval": interval.to_json(),
            "first_failure": driver.first_failure,
            "flow_ok": {i: n - prev_ok[i] for i, n in enumerate(ok) if n != prev_ok[i]},
            "flow_failed": {
                i: n - prev_failed[i] for i, n in enumerate(failed) if n != prev_failed[i]
            },
            "flow_first": {i: t for i, t in enumerate(first) if t != prev_first[i]},
        }
        prev_ok, prev_failed, prev_first = ok, failed, first
        out.write(json.dumps(msg, separators=(",", ":")) + "\n")
        out.flush()
        k += 1

    out.write("ready\n")
    out.flush()
    go = sys.stdin.buffer.readline().split()
    if len(go) != 2 or go[0] != b"go":
        return 2  # the parent went away before the start
    driver = Driver(scenario, flows, emit, share=share, start_ns=int(go[1]), keep_intervals=False)
    if stopped:
        driver.stop()
    report = trio.run(drive, driver)
    done: dict[str, Any] = {
        "elapsed_s": report.elapsed_s,
        "interrupted": report.interrupted,
        "sample_errors": report.sample_errors,
    }
    out.write(json.dumps({"done": done}, separators=(",", ":")) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
