"""The ramp: fine samples through the first second of a load, and their fold into the
first ordinary interval.

Containing the tick schedule every driver process follows (engine/load.py ticks on it),
the exact fold of the fine records into the interval a user sees, and the check a saved
ramp must pass (``check_ramp``, for result.json); no clock, no I/O.

Why it exists: the port-search knee (signals.knee) needs a reading taken while the port
space was still under 40 % full. A closed loop on the pair sandbox churns ~13,000
connections in its first second, so with the default 1 s interval the first reading
already showed 14,157 of 28,232 ports in use, and the knee, the main answer of the main
job, was found only with a short ``--interval``. So for the first second every driver ticks
every RAMP_STEP_NS whatever the interval: the ends are 0.1, 0.2, ... s up to
min(1 s, interval), then interval, 2 x interval, ... as before.

The fine records (``ramp`` in result.json) are the parts the first interval is folded from:
100 ms each, the last ending at the first interval's end (an interval longer than 1 s adds
one part from 1 s to its end), so their counts add up to the first interval's exactly. A
lone driver behind its schedule skips fine ticks (engine/load.py), so a part may be longer.
Everything a user saw before (``intervals``, the console lines, intervals.jsonl, the
latency log) keeps one record per interval: the fold is exact, counts and histograms added,
the percentiles recomputed from the merged histogram, the readings (TIME_WAIT, ports in
use, established, fds) the last part's, since they are samples at the interval's end.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from portstorm.core import fields
from portstorm.core.records import Interval, merge_intervals
from portstorm.core.routerrecord import fold_readings

RAMP_STEP_NS = 100_000_000  # a reading every 100 ms ...
RAMP_SPAN_NS = 1_000_000_000  # ... through the first second
NO_RAMP_NS = 200_000_000  # intervals this short are fine already: nothing to add
_MIN_PART_NS = 1_000_000  # no fine end within 1 ms of the interval's own end


def ramp_ends_ns(step_ns: int) -> tuple[int, ...]:
    """The fine ticks' offsets from the load's start, before the first interval's end
    (``step_ns``, the interval); empty when the interval is RAMP-short already."""
    if step_ns <= NO_RAMP_NS:
        return ()
    last = min(RAMP_SPAN_NS, step_ns)
    return tuple(
        j * RAMP_STEP_NS
        for j in range(1, last // RAMP_STEP_NS + 1)
        if j * RAMP_STEP_NS + _MIN_PART_NS <= step_ns
    )


def tick_offset_ns(k: int, step_ns: int, ends: Sequence[int]) -> int:
    """Where tick k (1, 2, ...) falls, from the load's start: the fine ends first, then
    the interval's multiples. Tick k ends record k - 1 in every process of a run."""
    if k <= len(ends):
        return ends[k - 1]
    return (k - len(ends)) * step_ns


def closing_tick(step_ns: int) -> int | None:
    """The tick that ends the first interval (the first of the interval's multiples), or
    None without a ramp: then every record is an interval as it is."""
    ends = ramp_ends_ns(step_ns)
    return len(ends) + 1 if ends else None


def _summed(maps: Sequence[Mapping[str, int] | None]) -> dict[str, int] | None:
    """Counter deltas over consecutive parts: their sum (a part whose sample failed has
    none, and the next sample's delta covers it); None when no part has any."""
    known = [m for m in maps if m is not None]
    if not known:
        return None
    total: Counter[str] = Counter()
    for m in known:
        total.update(m)
    # keep a counter that moved by 0 (a key the sampler reads), as one interval would
    return {k: total[k] for m in known for k in m}


def fold(parts: Sequence[Interval]) -> Interval:
    """One interval from consecutive records of one process (or of one merged run):
    exact, as if it had been measured in one piece. Counts and histograms add as they do
    for the parts of parallel workers (records.merge_intervals); the samples are the last
    part's, taken at the interval's end; the counters' deltas add up."""
    if not parts:
        raise ValueError("no interval parts to fold")
    last = parts[-1]
    return dataclasses.replace(
        merge_intervals(parts),
        time_wait=last.time_wait,
        server_time_wait=last.server_time_wait,
        ports_in_use=last.ports_in_use,
        established=last.established,
        ports_by_destination=last.ports_by_destination,
        fds=last.fds,
        kernel=_summed([p.kernel for p in parts]),
        server_kernel=_summed([p.server_kernel for p in parts]),
        router=fold_readings(p.router for p in parts),
    )


class RampFold:
    """Records in tick order in, user-visible intervals out. Each record comes with the
    tick that ended it (None: the load's own end); the records up to the closing tick are
    kept as the ramp and folded into the first interval, the rest pass as they are.
    Keyed by tick, not by count: a driver behind its schedule skips fine ticks (load.tick),
    never the closing one. ``end()`` folds a ramp the load cut short (a run under 1 s, a
    stop)."""

    def __init__(self, step_ns: int, emit: Callable[[Interval], None]) -> None:
        self._closing = closing_tick(step_ns)
        self._emit = emit
        self.ramp: list[Interval] = []
        self._folded = self._closing is None

    def add(self, record: Interval, tick: int | None) -> None:
        if self._folded:
            self._emit(record)
            return
        self.ramp.append(record)
        if tick is not None and self._closing is not None and tick >= self._closing:
            self._fold()

    def end(self) -> None:
        if not self._folded and self.ramp:
            self._fold()
        self._folded = True

    def _fold(self) -> None:
        self._folded = True
        self._emit(fold(self.ramp))


def check_ramp(ramp: Sequence[Interval], intervals: Sequence[Interval]) -> None:
    """The ramp is the first interval in parts: in time order, within it, and adding up
    to its counts exactly (a file whose ramp says otherwise is refused: the knee and the
    port-space chart read it)."""
    if not ramp:
        return
    for i, iv in enumerate(ramp):
        fields.instance(iv, Interval, f"ramp[{i}]")
    if not intervals:
        raise fields.FieldError("ramp", "present, but there are no intervals to be parts of")
    first = intervals[0]
    for i, (a, b) in enumerate(itertools.pairwise(ramp)):
        if b.t < a.t:
            raise fields.FieldError(f"ramp[{i + 1}].t", f"{b.t} before {a.t}: out of order")
    end = ramp[-1].t + ramp[-1].dt
    if ramp[0].t < first.t - 1e-3 or end > first.t + first.dt + 1e-3:
        raise fields.FieldError(
            "ramp",
            f"spans {ramp[0].t:g}..{end:g} s; allowed: within the first interval "
            f"({first.t:g}..{first.t + first.dt:g} s)",
        )
    summed = (sum(p.attempts for p in ramp), sum(p.succeeded for p in ramp))
    if summed != (first.attempts, first.succeeded):
        raise fields.FieldError(
            "ramp",
            f"counts {summed[0]} attempts and {summed[1]} successes; allowed: the first "
            f"interval's {first.attempts} and {first.succeeded} (its parts add up to it)",
        )
