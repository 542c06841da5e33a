"""One driver worker process's main: the worker's side of pool.py's protocol.

Containing no load logic (driver.py) and no merging (pool.py). Started as
``python -m portstorm.engine.worker_main`` by DriverPool, never by a user: it reads its job from
stdin, says ``ready``, waits for ``go T0_NS``, drives its share of the load, and writes one
JSON line per tick (load.tick: the ramp's 100 ms ticks too, raw: the pool folds them) and a
last ``done`` line to stdout. SIGTERM ends the load early; what was measured is still
reported.
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

from portstorm.core.errors import EXIT_OK, EXIT_USAGE
from portstorm.core.result import Interval
from portstorm.engine.driver import Driver
from portstorm.engine.flows import FlowCounts
from portstorm.engine.load import drive


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
    prev = FlowCounts(len(flows))

    def emit(interval: Interval) -> None:
        """One interval, with what changed per flow since the previous one (sparse)."""
        nonlocal k, prev
        msg = {
            "k": k,
            "interval": interval.to_json(),
            "first_failure": driver.first_failure,
            **driver.counts.changes_since(prev),
        }
        prev = driver.counts.snapshot()
        out.write(json.dumps(msg, separators=(",", ":")) + "\n")
        out.flush()
        k += 1

    out.write("ready\n")
    out.flush()
    go = sys.stdin.buffer.readline().split()
    if len(go) != 2 or go[0] != b"go":
        return EXIT_USAGE  # the parent went away before the start
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
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
