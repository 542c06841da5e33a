"""``--stop-on-fail``: which thresholds a run can fail for certain before its end, and when.

Containing the rule and a small tally of what a run has measured so far (each interval's
failures, its TIME_WAIT and ports-in-use readings, the first failure); nothing that stops
a load (engine/run.py and engine/load.py do, by the path a Ctrl-C takes) or prints.

Only monotone metrics can fail for certain midway: a count that only grows, a peak that
only rises, a first failure that, once seen, never changes.

- each outcome's count and ``time_wait_peak``, ``ports_in_use_peak``: with ``>``, ``>=``
  once the condition holds, and with ``!=`` once the value is passed (it can never come back
  to equal it). ``<``, ``<=``, ``==`` hold early and may stop holding: never decided midway.
- ``first_failure``: decided at the first failure, whatever the operator (it stays that
  time). Before any failure nothing is decided (``first_failure == never`` cannot fail
  before the end, ``first_failure != never`` fails only if one comes).
- everything else (latency percentiles, ``max``, ``rate``, ``after_exhaustion``,
  ``failed_pct``) can recover or is not known until the end: judged on the whole run only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from portstorm.core.errors import UsageError
from portstorm.core.thresholds import COUNT, METRICS, OUTCOMES, Threshold, Verdict, judge

RISING = (">", ">=", "!=")
PEAKS = {"time_wait_peak": "time_wait", "ports_in_use_peak": "ports_in_use"}
STOP_NOTE = "stopped by --stop-on-fail: "  # the start of the note a stopped run saves
STOPPABLE_TEXT = (
    "an outcome count, time_wait_peak or ports_in_use_peak with > >= or !=, or first_failure"
)


def can_stop(t: Threshold) -> bool:
    """Whether ``t`` can ever fail for certain before the run's end."""
    if t.metric == "first_failure":
        return True
    return METRICS.get(t.metric) == COUNT and t.op in RISING


def check_stoppable(thresholds: Sequence[Threshold]) -> None:
    """--stop-on-fail needs a threshold it can stop on: one UsageError line otherwise."""
    if not any(can_stop(t) for t in thresholds):
        given = ", ".join(repr(t.expression) for t in thresholds) or "none"
        raise UsageError(
            f"--stop-on-fail: no --fail-if can fail before the run's end (given: {given}); "
            f"it stops on {STOPPABLE_TEXT}"
        )


def stopped_by_gate(notes: Sequence[str]) -> bool:
    """Whether a saved run ended early on a failed threshold (its note says so)."""
    return any(n.startswith(STOP_NOTE) for n in notes)


@dataclass
class SoFar:
    """What a run has measured so far, from its intervals as they end and its first failure."""

    counts: dict[str, int] = field(default_factory=dict)
    peaks: dict[str, int] = field(default_factory=dict)
    first_failure_s: float | None = None
    first_outcome: str | None = None

    def add(self, failed: Mapping[str, int], readings: Mapping[str, int | None]) -> None:
        """One interval: its failures by outcome, its readings (time_wait, ports_in_use)."""
        for name, n in failed.items():
            self.counts[name] = self.counts.get(name, 0) + n
        for name, v in readings.items():
            if v is not None and v > self.peaks.get(name, -1):
                self.peaks[name] = v

    def failed_at(self, first_failure_s: float, outcome: str) -> None:
        """The run's first failure (seen before its interval ends): one of ``outcome``."""
        if self.first_failure_s is None:
            self.first_failure_s, self.first_outcome = first_failure_s, outcome

    def count(self, outcome: str) -> int:
        """The outcome's count over the intervals ended; at least 1 for the first failure's
        (its interval may not have ended yet)."""
        n = self.counts.get(outcome, 0)
        return max(n, 1) if outcome == self.first_outcome else n


def certain_failure(thresholds: Sequence[Threshold], so_far: SoFar) -> Verdict | None:
    """The first threshold the run has failed for certain, judged on what it measured so
    far; None while every one can still pass."""
    for t in thresholds:
        value: float | None
        if t.metric == "first_failure":
            if so_far.first_failure_s is None:
                continue
            value = so_far.first_failure_s
        elif can_stop(t):
            if t.metric in OUTCOMES:
                value = float(so_far.count(t.metric))
            elif (seen := so_far.peaks.get(PEAKS[t.metric])) is not None:
                value = float(seen)
            else:
                continue
            if t.op == "!=" and t.value is not None and value <= t.value:
                continue  # it may still come to equal the value
        else:
            continue
        verdict = judge(t, value)
        if not verdict.passed:
            return verdict
    return None
