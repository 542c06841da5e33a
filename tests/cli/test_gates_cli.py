"""--fail-if at the command line: refused in one line before anything runs, on run, sweep
and compare (which alone takes change(...)); --stop-on-fail needs a threshold it can stop
on; a sweep passes both to each cell; --junit's XML (report/junit.py) readable by
junitparser, written by the one writer; a sweep's verdicts in sweep.json and atop its
report."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from junitparser import Failure, JUnitXml

from portstorm.cli.sweepplan import plan_sweep
from portstorm.core.compare import comparison
from portstorm.core.errors import UsageError
from portstorm.core.files import UnsafePath
from portstorm.core.inputs import load_subjects
from portstorm.core.result import RunResult
from portstorm.core.subjectgates import MEDIAN, CaseVerdict
from portstorm.core.sweep import check_sweep_doc, parse_vary
from portstorm.core.thresholds import (
    CHANGES,
    METRICS,
    Verdict,
    allowed_metrics,
    evaluate,
    parse_thresholds,
)
from portstorm.report import write_cases_junit, write_junit
from portstorm.report.page import render_many
from tests.support.cli import invoke, reached
from tests.support.reportdata import simulate
from tests.support.sweeps import sweep_folder


@pytest.fixture
def nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("portstorm.cli.runcmd.run_command", reached)


@pytest.mark.usefixtures("nothing_runs")
@pytest.mark.parametrize("expr", ["p99 > 10", "latency > 5ms", "port_exhausted >", "rate ~ 5"])
def test_a_bad_fail_if_exits_2_in_one_line_listing_the_metrics_before_anything_runs(
    expr: str,
) -> None:
    code, err = invoke(["run", "--fail-if", "p99 > 10s", "--fail-if", expr])
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert "Traceback" not in err
    assert line.endswith(allowed_metrics())


@pytest.mark.usefixtures("nothing_runs")
def test_good_fail_ifs_reach_the_run() -> None:
    assert invoke(["run", "--fail-if", "port_exhausted > 0", "--fail-if", "p99 > 10s"])[0] is None


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from([*METRICS, "never", "<", "==", "!", "=", "5", "ms", "%", "x", "("]),
                max_size=5).map(" ".join))  # fmt: skip
def test_any_fail_if_reaches_the_run_or_exits_2_listing_the_metrics(
    monkeypatch: pytest.MonkeyPatch, expr: str
) -> None:
    monkeypatch.setattr("portstorm.cli.runcmd.run_command", reached)
    code, err = invoke(["run", "--fail-if", expr])
    assert "Traceback" not in err
    if code is not None:
        assert code == 2, err
        assert err.strip().endswith(allowed_metrics()), err


@pytest.fixture
def nothing_sweeps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("portstorm.cli.sweepcmd.SweepRunner", reached)
    monkeypatch.setattr("portstorm.cli.comparecmd.compare_paths", reached)


@pytest.mark.usefixtures("nothing_sweeps")
@pytest.mark.parametrize(
    ("argv", "why", "allowed"),
    [
        (["sweep", "--vary", "tcp_tw_reuse=0,1", "--fail-if", "p99 > 10"], "p99 is a time",
         allowed_metrics()),
        (["sweep", "--vary", "tcp_tw_reuse=0,1", "--fail-if", "change(rate) < -5%"],
         "only 'portstorm compare' takes it", allowed_metrics()),
        (["run", "--fail-if", "change(p99) > 20%"], "only 'portstorm compare' takes it",
         allowed_metrics()),
        (["compare", "a", "b", "--fail-if", "change(rate) < -5"], "give it in %",
         allowed_metrics(changes=True)),
        (["compare", "a", "b", "--fail-if", "change(max) > 5%"], "change(max) is not compared",
         allowed_metrics(changes=True)),
        (["compare", "a", "b", "--fail-if", "latency > 1ms"], "unknown metric 'latency'",
         allowed_metrics(changes=True)),
    ],
)  # fmt: skip
def test_a_bad_gate_on_sweep_or_compare_exits_2_in_one_line_before_anything_runs(
    argv: list[str], why: str, allowed: str
) -> None:
    code, err = invoke(argv)
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert why in line and line.endswith(allowed)


@pytest.mark.usefixtures("nothing_sweeps")
def test_good_gates_reach_the_sweep_and_the_comparison() -> None:
    assert invoke(["sweep", "--vary", "tcp_tw_reuse=0,1", "--fail-if", "port_exhausted > 0",
                   "--stop-on-fail", "--junit", "out.xml"])[0] is None  # fmt: skip
    assert invoke(["compare", "a", "b", "--fail-if", "change(rate) < -5%",
                   "--fail-if", "p99 > 5ms", "--junit", "out.xml"])[0] is None  # fmt: skip


@settings(  # few: each is a whole command line; tests/unit/test_thresholds.py fuzzes more
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from([*METRICS, *CHANGES, "change", "(", ")", "rate", "<", "!=",
                                 "-5", "5", "%", "ms", "never", "x"]),
                max_size=6).map(" ".join))  # fmt: skip
def test_any_compare_gate_reaches_the_comparison_or_exits_2_listing_the_metrics(
    monkeypatch: pytest.MonkeyPatch, expr: str
) -> None:
    monkeypatch.setattr("portstorm.cli.comparecmd.compare_paths", reached)
    code, err = invoke(["compare", "a", "b", "--fail-if", expr])
    assert "Traceback" not in err
    if code is not None:
        assert code == 2, err
        assert err.strip().endswith(allowed_metrics(changes=True)), err


def test_stop_on_fail_without_a_threshold_it_can_stop_on_exits_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("portstorm.cli.runcmd.run_command", reached)
    code, err = invoke(["run", "--fail-if", "p99 > 5ms", "--stop-on-fail"])
    assert code == 2
    (line,) = err.strip().splitlines()
    assert "--stop-on-fail: no --fail-if can fail before the run's end" in line


def test_a_sweep_passes_its_gates_to_every_cell_and_judges_them_itself() -> None:
    plan = plan_sweep([parse_vary("tcp_tw_reuse=0,1")], 2,
                      ["--fail-if", "port_exhausted > 0", "--stop-on-fail"], None, None, 2)  # fmt: skip
    assert [t.expression for t in plan.thresholds] == ["port_exhausted > 0"]
    for run in plan.runs:
        assert run.argv[run.argv.index("--fail-if") + 1] == "port_exhausted > 0"
        assert "--stop-on-fail" in run.argv


def _gated_run() -> RunResult:
    r = simulate(ports=100, rate=50, duration=10)  # runs out 2 s in: port_exhausted after
    gates = parse_thresholds(["port_exhausted > 0", "p99 > 10s", "transaction_p99 > 1s"])
    return dataclasses.replace(r, thresholds=evaluate(gates, r))


def test_the_junit_file_has_a_testcase_per_threshold_and_the_failures_measured_values(
    tmp_path: Path,
) -> None:
    r = _gated_run()
    path = write_junit(r, tmp_path / "ci" / "report.xml")
    (suite,) = list(JUnitXml.fromfile(str(path)))
    cases = {case.name: case for case in suite}
    assert list(cases) == [
        "fail if port_exhausted > 0", "fail if p99 > 10s", "fail if transaction_p99 > 1s",
    ]  # fmt: skip
    assert (suite.tests, suite.failures, suite.errors) == (3, 2, 0)
    (exhausted,) = cases["fail if port_exhausted > 0"].result
    assert isinstance(exhausted, Failure)
    failed = r.failed["port_exhausted"]
    assert exhausted.message == f"port_exhausted > 0: measured {failed:,}"
    assert cases["fail if p99 > 10s"].is_passed
    (unmeasured,) = cases["fail if transaction_p99 > 1s"].result
    assert "not measured" in (unmeasured.message or "")


def test_a_link_planted_at_the_junit_path_is_refused_and_its_target_untouched(
    tmp_path: Path,
) -> None:
    target = tmp_path / "victim"
    target.write_text("keep")
    (tmp_path / "report.xml").symlink_to(target)
    with pytest.raises(UnsafePath, match="is a symbolic link"):
        write_junit(_gated_run(), tmp_path / "report.xml")
    assert target.read_text() == "keep"


def _cell_gates(label: str, passed: bool) -> list[CaseVerdict]:
    v = Verdict("port_exhausted > 0", "port_exhausted", 0.0 if passed else 50.0, passed)
    return [CaseVerdict(label, of, v) for of in ("r1", "r2", MEDIAN)]


def test_a_sweeps_junit_has_a_suite_per_cell_and_a_case_per_threshold_run_and_median(
    tmp_path: Path,
) -> None:
    verdicts = _cell_gates("rate=0.5", True) + _cell_gates("rate=2", False)
    path = write_cases_junit("sweep", verdicts, tmp_path / "j.xml", {("rate=2", "r1"): 3.5})
    first, second = JUnitXml.fromfile(str(path))
    assert (first.name, first.tests, first.failures) == ("portstorm sweep: rate=0.5", 3, 0)
    assert (second.tests, second.failures) == (3, 3)
    # Jenkins reads the classname's last dot as package.class: none inside the cell's label
    assert {c.classname for c in first} == {"portstorm.sweep.rate=0_5"}
    cases = list(second)
    assert [c.name for c in cases] == [
        "fail if port_exhausted > 0 (r1)", "fail if port_exhausted > 0 (r2)",
        "fail if port_exhausted > 0 (median)",
    ]  # fmt: skip
    assert cases[0].time == 3.5
    (failure,) = cases[2].result
    assert failure.message == "port_exhausted > 0: measured 50"


def test_a_sweep_json_with_verdicts_is_checked_and_its_report_opens_with_them(
    tmp_path: Path,
) -> None:
    path = sweep_folder(tmp_path)
    doc = json.loads(path.read_text())
    for cell, passed in zip(doc["cells"], (False, True), strict=True):
        cell["thresholds"] = [v.to_json() for v in _cell_gates(cell["label"], passed)]
    check_sweep_doc(doc, "sweep.json")
    subjects = load_subjects(path)
    html = render_many(title="t", doc=comparison(subjects), subjects=subjects, findings=[],
                       charts=[], sweep=doc, links=[[] for _ in subjects], inputs=[],
                       generated="now")  # fmt: skip
    assert html.index("Thresholds: 3 of 6 failed") < html.index('aria-label="Findings"')
    assert html.count("<td>FAIL</td>") == 3 and "<td>median</td>" in html
    doc["cells"][0]["thresholds"][0]["passed"] = "yes"
    with pytest.raises(UsageError, match=r"cells\[0\]\.thresholds\[0\]\.passed"):
        check_sweep_doc(doc, "sweep.json")
