"""One interval of a driver's counts: what the hot loop adds to, and the Interval it becomes.

Containing the tally and its conversion, nothing that connects or waits: driver.py adds to
a Tally as attempts end and swaps in a new one at each interval boundary; ``interval_of``
turns the old one into the Interval record (core/records.py) that the run logs and merges.
"""

from __future__ import annotations

from array import array

from portstorm.core.histogram import LatencyHistogram
from portstorm.core.outcome import CONNECTED, FAILURES
from portstorm.core.records import percentiles
from portstorm.core.result import Interval

# failures of connections that were made (close_timeout, response_incomplete, http_error):
# their connect latency is in latencies_ns with the successes'
_CONNECTED = tuple(i for i, o in enumerate(FAILURES) if o in CONNECTED)


class Tally:
    """What completed since the last interval boundary (swapped out at each tick)."""

    __slots__ = (
        "failed", "http_status", "latencies_ns", "not_started", "other", "t_start_ns",
        "transactions_ns",
    )  # fmt: skip

    def __init__(self, t_start_ns: int) -> None:
        self.t_start_ns = t_start_ns
        # one per connection made (successes and close timeouts: they connected), recorded
        # into the histogram at the interval's end; an array holds them as machine
        # integers: no int object per connection to allocate and free
        self.latencies_ns = array("q")
        self.failed = [0] * len(FAILURES)
        self.other: dict[str, int] = {}
        self.not_started = 0  # scheduled starts dropped at the time bound
        # with an exchange (engine/exchange.py): one per success, start to last response byte
        self.transactions_ns = array("q")
        self.http_status: dict[int, int] = {}  # --http: status code -> responses


def interval_of(
    tally: Tally,
    end_ns: int,
    t0_ns: int,
    hist: LatencyHistogram,
    tx_hist: LatencyHistogram | None = None,
    http: bool = False,
) -> Interval:
    """The Interval for ``tally``, which ran from its start to ``end_ns`` (perf_counter_ns
    times; ``t0_ns`` is the load's start). ``hist`` is the driver's reused per-interval
    histogram: reset, filled with this interval's latencies in one pass (record_many), and
    left holding them for the run's total. ``tx_hist``, in a run with an exchange: the same
    for the transactions; ``http``: the run counts HTTP status codes."""
    failed = {str(FAILURES[i]): n for i, n in enumerate(tally.failed) if n}
    succeeded = len(tally.latencies_ns) - sum(tally.failed[i] for i in _CONNECTED)
    hist.reset()
    hist.record_many(ns // 1000 for ns in tally.latencies_ns)
    if tx_hist is not None:
        tx_hist.reset()
        tx_hist.record_many(ns // 1000 for ns in tally.transactions_ns)
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
        transaction_us=None if tx_hist is None else percentiles(tx_hist),
        transaction_hdr=tx_hist.encode() if tx_hist is not None and tx_hist.count else None,
        http_status={str(k): n for k, n in sorted(tally.http_status.items())} if http else None,
    )
