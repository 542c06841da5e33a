"""What a sweep keeps of each of its runs: status, exit code, metrics, tunings, verdicts.

Containing the ``RunRecord`` that sweep.json's ``runs`` entries are written from, its
filling from a run's saved result.json (the metrics compare reads, the ``--fail-if``
verdicts judged again on the file, as a reader can) and a failed run's last error line;
nothing that starts runs (engine/sweep.py) or judges (core/thresholds.py).

A run is *done* when its result.json is complete, or when the run stopped itself on a
failed threshold (``--stop-on-fail``, core/gatestop.py): what it measured is its verdict,
so neither ``--resume`` nor the sweep's completeness asks for it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from portstorm.core import reading
from portstorm.core.compare import run_metrics
from portstorm.core.errors import UsageError
from portstorm.core.gatestop import stopped_by_gate
from portstorm.core.result import RunResult
from portstorm.core.thresholds import Threshold, Verdict, evaluate


@dataclass
class RunRecord:
    status: str = "pending"  # pending | running | done | interrupted | failed
    exit_code: int | None = None
    wall_s: float | None = None
    error: str | None = None
    metrics: dict[str, float | None] | None = None
    tunings: dict[str, str] | None = None
    gates: tuple[Verdict, ...] = ()  # --fail-if: one per threshold of the sweep, in order

    def take(self, result: RunResult, thresholds: Sequence[Threshold]) -> None:
        """A finished run's result.json: done, with its metrics and verdicts."""
        self.status, self.error = "done", None
        self.metrics, self.tunings = run_metrics(result), dict(result.tunings)
        self.gates = evaluate(thresholds, result)


def finished(result: RunResult) -> bool:
    """Complete, or stopped on a failed threshold (keeping what it measured)."""
    return result.complete or stopped_by_gate(result.notes)


def last_error(log: Path) -> str | None:
    """The run's own one-line error, or its last line of output."""
    try:
        text = reading.read_bytes(log, "a run log", cap=16 << 20).decode(errors="replace")
    except UsageError:
        return None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("portstorm:")]
    chosen = errors or lines
    return chosen[-1] if chosen else None
