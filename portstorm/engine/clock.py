"""This host's clock against NTP, as its time service reports it, for result.json.

Containing the one question asked of the host's time service (chrony first, then
systemd-timesyncd through ``timedatectl``) and the conversion of a wall-clock instant to
the perf_counter clock the load runs on. The parsing is core/startat.py's. Nothing is
changed: portstorm never steps or slews a clock, it only says how far off it was.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

from portstorm.core.startat import chrony_offset_s, timesyncd_offset_s

QUERY_TIMEOUT_S = 2.0  # a time service that does not answer within this is "unknown"


@dataclass(frozen=True, slots=True)
class ClockOffset:
    """``offset_s``: this clock minus NTP time (positive: fast); None with ``source`` saying
    why it is unknown."""

    offset_s: float | None
    source: str


def _ask(argv: list[str]) -> str | None:
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def clock_offset() -> ClockOffset:
    """What chrony (``chronyc -c tracking``) or systemd-timesyncd (``timedatectl
    timesync-status``) measured last; unknown, with the reason, when neither can tell."""
    tracking = _ask(["chronyc", "-c", "tracking"])
    if tracking is not None and (offset := chrony_offset_s(tracking)) is not None:
        return ClockOffset(offset, "chronyc tracking")
    status = _ask(["timedatectl", "timesync-status"])
    if status is not None and (offset := timesyncd_offset_s(status)) is not None:
        return ClockOffset(offset, "timedatectl timesync-status")
    return ClockOffset(
        None,
        "unknown: neither chronyc tracking nor timedatectl timesync-status reported an "
        "offset (no chrony or systemd-timesyncd running here)",
    )


def perf_ns_at(wall_s: float) -> int:
    """The perf_counter_ns() instant (CLOCK_MONOTONIC) at which the wall clock will read
    ``wall_s``: both clocks read back to back, the pair with the shortest gap of three, so
    the conversion is off by well under a millisecond (an NTP slew meanwhile aside)."""
    best: tuple[int, int, int] | None = None
    for _ in range(3):
        a = time.perf_counter_ns()
        w = time.time_ns()
        b = time.perf_counter_ns()
        if best is None or b - a < best[0]:
            best = (b - a, (a + b) // 2, w)
    assert best is not None
    _, perf_now, wall_now = best
    return perf_now + int(wall_s * 1e9) - wall_now
