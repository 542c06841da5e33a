"""--fail-if at the command line: refused in one line before anything runs, not yet taken
by sweep; --junit's XML (report/junit.py) readable by junitparser, written by the one
writer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from junitparser import Failure, JUnitXml

from portstorm.cli.sweepplan import base_options
from portstorm.core.errors import UsageError
from portstorm.core.files import UnsafePath
from portstorm.core.result import RunResult
from portstorm.core.thresholds import METRICS, allowed_metrics, evaluate, parse_thresholds
from portstorm.report import write_junit
from tests.support.cli import invoke, reached
from tests.support.reportdata import simulate


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


def test_sweep_does_not_yet_take_fail_if() -> None:
    with pytest.raises(UsageError, match="--fail-if is not yet taken by sweep"):
        base_options(["--fail-if", "p99 > 1s"], None, [])


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
