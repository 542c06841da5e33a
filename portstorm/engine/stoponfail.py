"""``--stop-on-fail`` on a live run: end the load once a threshold has failed for certain.

Containing the watch only: what counts as certain is core/gatestop.py's rule, the load is
ended by ``Load.stop()``, the path a Ctrl-C and a full disk take (in-flight attempts are
abandoned, the partial interval is kept, result.json is written with ``complete`` false),
and run.py saves the reason as the run's note. Two things feed the watch:

- every interval as it ends (run.py's interval callback): each outcome's count, the
  TIME_WAIT and ports-in-use readings;
- the load's first failure, polled every ``POLL_S`` by a task beside the load, so a
  threshold the first failure decides (``port_exhausted > 0``, ``first_failure < 5s``)
  stops the load within a poll of it, not at the end of its interval (1 s by default).
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from portstorm.core.gatestop import STOP_NOTE, SoFar, certain_failure
from portstorm.core.result import Interval
from portstorm.core.thresholds import Threshold
from portstorm.engine.load import DriverReport, Load

POLL_S = 0.05


class GateStop:
    """The watch of one run; ``reason`` is set (once) when it stopped the load."""

    def __init__(self, thresholds: Sequence[Threshold]) -> None:
        self._thresholds = tuple(thresholds)
        self._so_far = SoFar()
        self.reason: str | None = None

    @property
    def note(self) -> str | None:
        """The note result.json keeps (core/gatestop.STOP_NOTE starts it); None: not stopped."""
        return None if self.reason is None else STOP_NOTE + self.reason

    def on_interval(self, interval: Interval, load: Load) -> None:
        readings = {"time_wait": interval.time_wait, "ports_in_use": interval.ports_in_use}
        self._so_far.add(interval.failed, readings)
        self.check(load)

    def check(self, load: Load) -> None:
        """Stop ``load`` when a threshold has failed for certain (once)."""
        if self.reason is not None:
            return
        if (ff := load.first_failure) is not None:
            self._so_far.failed_at(*ff)
        failed = certain_failure(self._thresholds, self._so_far)
        if failed is not None:
            self.reason = (
                f"'{failed.expression}' failed for certain (measured {failed.measured_text()}); "
                "the load was ended there, the figures cover what was measured"
            )
            load.stop()

    def watched(self, load: Load) -> Load:
        """``load``, with its first failure polled beside it."""
        return _Watched(load, self)


class _Watched:
    """A Load that runs ``load`` and, beside it, polls the watch."""

    def __init__(self, load: Load, gate: GateStop) -> None:
        self._load, self._gate = load, gate

    @property
    def first_failure(self) -> tuple[float, str] | None:
        return self._load.first_failure

    def stop(self) -> None:
        self._load.stop()

    async def run(self) -> DriverReport:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._poll)
            report = await self._load.run()
            nursery.cancel_scope.cancel()
        return report

    async def _poll(self) -> None:
        while self._gate.reason is None:
            await trio.sleep(POLL_S)
            self._gate.check(self._load)
