"""``--fail-if`` over several runs: a sweep cell's repeats and their median, and a compared
row against compare's baseline (``change(METRIC) OP VALUE%``).

Containing the verdicts of a *case* (a sweep cell, or a row of a comparison after the
baseline), each tagged with what it was judged on (``r1``, ``r2``, ... one run; ``median``
the median of the case's runs), and nothing that parses (core/thresholds.py) or prints.

- The median of a metric over repeats follows core/compare.py's ``spread``: when most runs
  did not measure it, it is not measured (for first_failure: never, as most never failed).
- A compared row is judged on the medians of its runs; a ``change(...)`` on the relative
  change of its median against the baseline's, as compare prints it, and fails only on a
  change beyond the spread of repeats (``*``). A change within the spread (``~``) passes:
  it is noise. A change compare cannot judge (``?``: a single run on either side, so no
  spread) fails with the reason "cannot be judged", unless the change does not meet the
  condition at all: a CI gate that cannot be checked must be seen, not silently passed,
  and the remedy (``--repeat 2`` or more on both sides) is named.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from portstorm.core import fields
from portstorm.core.compare import Subject, spread
from portstorm.core.comparison import Change, Comparison
from portstorm.core.readings import Compared
from portstorm.core.thresholds import CHANGED, CHANGES, Threshold, Verdict, judge, measure

MEDIAN = "median"
SINGLE_RUNS = "? cannot be judged: single runs, no spread of repeats; --repeat 2 or more"
_SIGN = {True: "* beyond the spread of repeats", False: "~ within the spread of repeats",
         None: "? single runs"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class CaseVerdict:
    """One threshold on one case: ``of`` names the run (``r2``) or the median it judged."""

    case: str  # the cell's label, or the compared row's
    of: str
    verdict: Verdict

    def __post_init__(self) -> None:
        fields.text(self.case, "case")
        fields.text(self.of, "of")
        fields.instance(self.verdict, Verdict, "verdict")

    def to_json(self) -> dict[str, Any]:
        """A sweep.json cell's ``thresholds`` entry (the cell itself names the case)."""
        return {**self.verdict.to_json(), "of": self.of}

    @classmethod
    def from_json(cls, d: object, case: str) -> CaseVerdict:
        m = fields.mapping(d, "")
        return cls(case, fields.member(m, "of"), Verdict.from_json(m))


def median_of(values: Sequence[float | None]) -> float | None:
    """The median of the runs' measurements (None: not measured, or never); None when most
    runs did not measure it, as compare's table says."""
    return spread(values).median


def case_verdicts(
    case: str, thresholds: Sequence[Threshold], runs: Sequence[tuple[str, Sequence[Verdict]]]
) -> list[CaseVerdict]:
    """A sweep cell's verdicts: each threshold on each run (``runs``: the run's name and its
    verdicts, one per threshold, in order), then, with two runs or more, on their median."""
    out = []
    for i, t in enumerate(thresholds):
        out += [CaseVerdict(case, of, verdicts[i]) for of, verdicts in runs]
        if len(runs) >= 2:
            value = median_of([verdicts[i].measured for _of, verdicts in runs])
            out.append(CaseVerdict(case, MEDIAN, judge(t, value)))
    return out


def change_verdict(t: Threshold, c: Change) -> Verdict:
    """``change(METRIC) OP VALUE%`` on one compared row's change against the baseline."""
    measured = None if c.relative is None else c.relative * 100.0

    def verdict(passed: bool, reason: str) -> Verdict:
        return Verdict(t.expression, t.metric, measured, passed, reason)

    if measured is None:
        why = "a median is not measured" if c.delta is None else "the baseline's median is 0"
        return verdict(False, f"? cannot be judged: {why}")
    if not t.fails_with(measured):
        return verdict(True, _SIGN[c.significant])
    if c.significant is None:
        return verdict(False, SINGLE_RUNS)
    return verdict(not c.significant, _SIGN[c.significant])


def compare_verdicts(
    thresholds: Sequence[Threshold],
    comparison: Comparison,
    subjects: Sequence[Subject[Compared]],
) -> list[CaseVerdict]:
    """Each threshold on every compared row after the baseline: a run metric on the row's
    median (its one run when not repeated), a change on its change against the baseline."""
    out = []
    for row, s in zip(comparison.rows[1:], subjects[1:], strict=True):
        of = MEDIAN if len(s.runs) > 1 else "r1"
        for t in thresholds:
            if t.is_change:
                v = change_verdict(t, row.change(CHANGED[CHANGES[t.metric]]))
            else:
                v = judge(t, median_of([measure(t.metric, r) for r in s.runs]))
            out.append(CaseVerdict(row.label, of, v))
    return out
