"""Where a load's records go, one per tick: folded for the user, or raw for a pool.

Containing the delivery only (the fold itself is core/ramp.py, the ticks load.py). A lone
driver and a pool's merge carry the whole run's load: their records go through the ramp's
fold, so ``report.intervals`` and ``on_interval`` (the log, the console) see one interval
per --interval, as before the ramp, and ``report.ramp`` keeps the first one's 100 ms parts.
A pool's worker streams its raw records to the pool and keeps none (its memory stays
flat): the pool folds after merging them by tick.
"""

from __future__ import annotations

from collections.abc import Callable

from portstorm.core.ramp import RampFold
from portstorm.core.result import Interval
from portstorm.engine.load import DriverReport


class Records:
    """``whole``: the run's whole load, folded into ``report``; else raw, kept nowhere."""

    def __init__(
        self,
        report: DriverReport,
        on_interval: Callable[[Interval], None] | None,
        interval_s: float,
        whole: bool = True,
    ) -> None:
        self.whole = whole
        self._report = report
        self._on_interval = on_interval
        self._fold = RampFold(int(interval_s * 1e9), self._out) if whole else None

    def add(self, record: Interval, tick: int | None) -> None:
        """``record`` as ended by ``tick`` (None: by the load's end)."""
        if self._fold is not None:
            self._fold.add(record, tick)
        else:
            self._out(record)

    def end(self) -> None:
        """After the last record: a ramp the load cut short is folded now."""
        if self._fold is not None:
            self._fold.end()
            self._report.ramp = list(self._fold.ramp)

    def _out(self, interval: Interval) -> None:
        if self.whole:
            self._report.intervals.append(interval)
        if self._on_interval is not None:
            self._on_interval(interval)
