"""--fail-if over several runs (core/subjectgates.py): a sweep cell's runs and their median,
and a compared row's change against the baseline, with what a change compare cannot judge
(``?``) does to the verdict."""

from __future__ import annotations

import pytest

from portstorm.core.compare import Subject, comparison
from portstorm.core.comparison import Change
from portstorm.core.subjectgates import (
    MEDIAN,
    CaseVerdict,
    case_verdicts,
    change_verdict,
    compare_verdicts,
    median_of,
)
from portstorm.core.thresholds import Verdict, evaluate, parse_threshold, parse_thresholds
from tests.support.reportdata import simulate


def test_a_cell_is_judged_on_each_run_then_on_the_median_of_their_measurements() -> None:
    gates = parse_thresholds(["port_exhausted > 60", "first_failure < 1s"])
    runs = [simulate(ports=100, rate=50, duration=d) for d in (3, 4, 5)]  # run out 2 s in
    per_run = [(f"r{i}", evaluate(gates, r)) for i, r in enumerate(runs, 1)]
    verdicts = case_verdicts("tcp_tw_reuse=0", gates, per_run)
    assert [(v.of, v.verdict.expression) for v in verdicts] == [
        ("r1", "port_exhausted > 60"), ("r2", "port_exhausted > 60"),
        ("r3", "port_exhausted > 60"), (MEDIAN, "port_exhausted > 60"),
        ("r1", "first_failure < 1s"), ("r2", "first_failure < 1s"), ("r3", "first_failure < 1s"),
        (MEDIAN, "first_failure < 1s"),
    ]  # fmt: skip
    counts = [r.failed["port_exhausted"] for r in runs]
    assert [v.verdict.measured for v in verdicts[:4]] == [*counts, sorted(counts)[1]]
    assert counts == [50, 100, 150]  # 50/s for 1, 2 and 3 s past the 100 ports
    assert [v.verdict.passed for v in verdicts[:4]] == [True, False, False, False]
    assert all(v.verdict.passed for v in verdicts[4:])  # 2 s in: not before 1 s


def test_a_single_run_cell_has_no_median_verdict() -> None:
    gates = parse_thresholds(["p99 > 10s"])
    (only,) = case_verdicts("c", gates, [("r1", evaluate(gates, simulate()))])
    assert only.of == "r1" and only.verdict.passed


def test_a_median_over_runs_most_of_which_never_failed_is_never() -> None:
    assert median_of([0.5, None, None]) is None  # first_failure: never, as compare says
    assert median_of([0.5, 0.7, None]) == 0.6
    never = parse_threshold("first_failure < 5s")
    (cell,) = case_verdicts("c", [never], [(f"r{i}", (Verdict(never.expression,
        "first_failure", v, v is None),)) for i, v in enumerate([0.5, None, None], 1)])[3:]  # fmt: skip
    assert (cell.of, cell.verdict.measured, cell.verdict.passed) == (MEDIAN, None, True)


CHANGES = [
    # relative change, significant, expected verdict, reason starts with
    (-0.30, True, False, "* beyond"),  # a real regression: fails
    (-0.30, False, True, "~ within"),  # noise: passes
    (-0.30, None, False, "? cannot be judged: single runs"),  # cannot tell: fails, saying so
    (+0.30, None, True, "? single runs"),  # not the condition at all: passes whatever
    (+0.30, True, True, "* beyond"),
]


@pytest.mark.parametrize(("relative", "significant", "passed", "reason"), CHANGES)
def test_a_change_fails_only_beyond_the_spread_and_a_change_that_cannot_be_judged_fails(
    relative: float, significant: bool | None, passed: bool, reason: str
) -> None:
    t = parse_threshold("change(rate) < -5%", changes=True)
    v = change_verdict(t, Change(relative * 100, relative, significant))
    assert v.measured == pytest.approx(relative * 100)
    assert v.passed is passed
    assert (v.reason or "").startswith(reason)


def test_a_change_from_a_baseline_of_zero_or_a_missing_median_cannot_be_judged() -> None:
    t = parse_threshold("change(failed_pct) > 20%", changes=True)
    zero = change_verdict(t, Change(5.0, None, True))
    missing = change_verdict(t, Change(None, None, None))
    assert (zero.passed, zero.reason) == (False, "? cannot be judged: the baseline's median is 0")
    assert (missing.passed, missing.reason) == (
        False, "? cannot be judged: a median is not measured",
    )  # fmt: skip
    assert zero.to_json()["reason"] == zero.reason


def _subject(label: str, ports: int, repeats: int) -> Subject:
    runs = tuple(simulate(ports=ports, rate=50, duration=4 + k) for k in range(repeats))
    return Subject(label, runs)


def test_compare_judges_each_row_after_the_baseline_on_its_medians_and_its_changes() -> None:
    subjects = [_subject("1000 ports", 1000, 2), _subject("again", 1000, 2),
                _subject("100 ports", 100, 2)]  # fmt: skip
    gates = parse_thresholds(["change(rate) < -5%", "port_exhausted > 0"], changes=True)
    verdicts = compare_verdicts(gates, comparison(subjects), subjects)
    table = [(v.case, v.of, v.verdict.expression, v.verdict.passed) for v in verdicts]
    assert table == [
        ("again", MEDIAN, "change(rate) < -5%", True),
        ("again", MEDIAN, "port_exhausted > 0", True),
        ("100 ports", MEDIAN, "change(rate) < -5%", False),
        ("100 ports", MEDIAN, "port_exhausted > 0", False),
    ]
    assert (verdicts[2].verdict.reason or "").startswith("*")


def test_compare_of_single_runs_fails_a_change_it_cannot_judge_and_says_so() -> None:
    subjects = [_subject("1000 ports", 1000, 1), _subject("100 ports", 100, 1)]
    gates = parse_thresholds(["change(rate) < -5%"], changes=True)
    (v,) = compare_verdicts(gates, comparison(subjects), subjects)
    assert (v.of, v.verdict.passed) == ("r1", False)
    assert "cannot be judged: single runs" in (v.verdict.reason or "")


def test_a_case_verdict_round_trips_through_a_sweep_cell_entry() -> None:
    t = parse_threshold("change(p99) > 20%", changes=True)
    cv = CaseVerdict("c", MEDIAN, change_verdict(t, Change(1.0, -0.5, True)))
    assert cv.to_json()["of"] == MEDIAN and cv.to_json()["measured"] == -50.0
    assert CaseVerdict.from_json(cv.to_json(), "c") == cv
