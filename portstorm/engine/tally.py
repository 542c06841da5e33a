"""One interval of a driver's counts: what the hot loop adds to, and the Interval it becomes.

Containing the tally and its conversion, nothing that connects or waits: driver.py adds to
a Tally as attempts end and swaps in a new one at each interval boundary; ``interval_of``
turns the old one into the Interval record (core/records.py) that the run logs and merges.
"""

from __future__ import annotations

from array import array

from portstorm.core.histogram import LatencyHistogram
from portstorm.core.outcome import FAILURES, Outcome
from portstorm.core.result import Interval

_CLOSE_TIMEOUT = FAILURES.index(Outcome.CLOSE_TIMEOUT)


class Tally:
    """What completed since the last interval boundary (swapped out at each tick)."""

    __slots__ = ("failed", "latencies_ns", "not_started", "other", "t_start_ns")

    def __init__(self, t_start_ns: int) -> None:
        self.t_start_ns = t_start_ns
        # one per connection made (successes and close timeouts: they connected), recorded
        # into the histogram at the interval's end; an array holds them as machine
        # integers: no int object per connection to allocate and free
        self.latencies_ns = array("q")
        self.failed = [0] * len(FAILURES)
        self.other: dict[str, int] = {}
        self.not_started = 0  # scheduled starts dropped at the time bound


def interval_of(tally: Tally, end_ns: int, t0_ns: int, hist: LatencyHistogram) -> Interval:
    """The Interval for ``tally``, which ran from its start to ``end_ns`` (perf_counter_ns
    times; ``t0_ns`` is the load's start). ``hist`` is the driver's reused per-interval
    histogram: reset, filled with this interval's latencies in one pass (record_many), and
    left holding them for the run's total."""
    failed = {str(FAILURES[i]): n for i, n in enumerate(tally.failed) if n}
    succeeded = len(tally.latencies_ns) - tally.failed[_CLOSE_TIMEOUT]
    hist.reset()
    hist.record_many(ns // 1000 for ns in tally.latencies_ns)
    return Interval(
        t=(tally.t_start_ns - t0_ns) / 1e9,
        dt=(end_ns - tally.t_start_ns) / 1e9,
        attempts=succeeded + sum(failed.values()),
        succeeded=succeeded,
        failed=failed,
        other_errnos=tally.other,
        latency_us={"p50": hist.percentile(50.0), "p99": hist.percentile(99.0)},
        hdr=hist.encode() if hist.count else None,
        not_started=tally.not_started,
    )
