"""--fail-if and --junit end to end: a 50-port range at 100/s runs out of ports half a second
in (KERNEL.md: 50 ports held 60 s in TIME_WAIT), which a CI gate must fail on, after
writing every file; a threshold the run meets leaves the exit code 0; --stop-on-fail ends
that run at its first failure; sweeps gate each cell, and compare gates a change."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from junitparser import Failure, JUnitXml

from tests.support.netns import require_netns

pytestmark = pytest.mark.netns

RUN = [sys.executable, "-m", "portstorm", "run"]
FIFTY_PORTS = [
    "--set", "ip_local_port_range=40000-40049", "--set", "tcp_tw_reuse=0",
    "--set", "tcp_rfc1337=1", "--rate", "100", "--duration", "1",
]  # fmt: skip


def _run(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*RUN, *FIFTY_PORTS, *args, "--quiet", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc


def test_a_50_port_range_at_100_per_second_fails_port_exhausted_above_zero(
    tmp_path: Path,
) -> None:
    junit = tmp_path / "report.xml"
    proc = _run(tmp_path, "--fail-if", "port_exhausted > 0", "--fail-if", "p99 > 10s",
                "--junit", str(junit))  # fmt: skip
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    doc = json.loads((tmp_path / "result.json").read_text())
    exhausted = doc["totals"]["failed"]["port_exhausted"]
    assert exhausted > 0
    assert doc["thresholds"] == [
        {"expression": "port_exhausted > 0", "metric": "port_exhausted",
         "measured": exhausted, "passed": False},
        {"expression": "p99 > 10s", "metric": "p99",
         "measured": doc["latency_us"]["p99"], "passed": True},
    ]  # fmt: skip
    assert "FAIL  port_exhausted > 0" in proc.stdout
    assert "Thresholds: 1 of 2 failed" in (tmp_path / "report.html").read_text()
    suite = next(iter(JUnitXml.fromfile(str(junit))))
    cases = {case.name: case for case in suite}
    assert (suite.tests, suite.failures) == (2, 1)
    (failure,) = cases["fail if port_exhausted > 0"].result
    assert isinstance(failure, Failure)
    assert f"measured {exhausted:,}" in (failure.message or "")
    assert cases["fail if p99 > 10s"].is_passed


def test_the_same_run_gated_on_p99_above_10_s_only_exits_0(tmp_path: Path) -> None:
    proc = _run(tmp_path, "--fail-if", "p99 > 10s", "--no-report")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    (verdict,) = json.loads((tmp_path / "result.json").read_text())["thresholds"]
    assert verdict["passed"] is True
    assert "thresholds: all passed" in proc.stdout


def test_stop_on_fail_ends_the_50_port_run_within_a_second_of_its_first_failure(
    tmp_path: Path,
) -> None:
    junit = tmp_path / "report.xml"
    proc = _run(tmp_path, "--duration", "10", "--fail-if", "port_exhausted > 0",
                "--stop-on-fail", "--junit", str(junit))  # fmt: skip
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    doc = json.loads((tmp_path / "result.json").read_text())
    first = doc["events"]["first_failure_s"]
    last = doc["intervals"][-1]
    # the run's own clock, not the wall's: when its load ended, after the first failure
    ended = max(last["t"] + last["dt"], doc["duration_s"])
    print(f"first failure {first:.3f} s, load ended {ended:.3f} s: {ended - first:.3f} s later")
    assert 0.4 < first < 0.8  # 50 ports at 100/s
    assert ended - first < 1.0
    assert doc["complete"] is False
    assert doc["scenario"]["stop_on_fail"] is True  # the setup says it was asked for
    assert any(
        n.startswith("stopped by --stop-on-fail: 'port_exhausted > 0'") for n in doc["notes"]
    )
    (verdict,) = doc["thresholds"]
    assert (
        verdict["passed"] is False
        and verdict["measured"] == doc["totals"]["failed"]["port_exhausted"]
    )
    page = (tmp_path / "report.html").read_text()
    assert "STOPPED by --stop-on-fail: partial results" in page
    assert "This run was stopped by --stop-on-fail after" in page  # not "interrupted"
    assert "This run was interrupted" not in page
    assert "STOPPED by --stop-on-fail" in proc.stdout
    suite = next(iter(JUnitXml.fromfile(str(junit))))
    assert (suite.tests, suite.failures) == (1, 1)


SWEEP = [sys.executable, "-m", "portstorm", "sweep", "--set", "tcp_tw_reuse=0",
         "--set", "tcp_rfc1337=1", "--rate", "100", "--duration", "1.5", "--repeat", "2",
         "--quiet", "--no-report", "--fail-if", "port_exhausted > 0"]  # fmt: skip
WIDE, NARROW = "40000-40999", "40000-40099"


def _compare(*args: str) -> tuple[int, dict[str, Any]]:
    """``portstorm compare ARGS --json`` in this process (it reads files only)."""
    from portstorm import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as e:
        cli.main(["compare", *args, "--json"])
    return int(e.value.code or 0), json.loads(out.getvalue())


def test_change_of_rate_fails_a_100_port_range_against_1000_and_passes_the_same_setting(
    tmp_path: Path,
) -> None:
    """Two sweeps at once, each run twice: the baseline of 1,000 ports, and 1,000 against
    100. 100 ports at 100/s run out 1 s in, so 1.5 s runs lose a third of their rate."""
    require_netns()
    plans = {"base": [WIDE], "both": [WIDE, NARROW]}
    procs = {
        name: subprocess.Popen(
            [*SWEEP, "--vary", f"ip_local_port_range={','.join(r)}", "--out",
             str(tmp_path / name), "--junit", str(tmp_path / f"{name}.xml")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, r in plans.items()
    }  # fmt: skip
    outputs = {name: p.communicate(timeout=180) for name, p in procs.items()}
    codes = {name: p.returncode for name, p in procs.items()}
    assert codes == {"base": 0, "both": 1}, outputs  # port_exhausted > 0, judged per cell
    wide, narrow = json.loads((tmp_path / "both" / "sweep.json").read_text())["cells"]
    assert [(v["of"], v["passed"]) for v in narrow["thresholds"]] == [
        ("r1", False), ("r2", False), ("median", False),
    ]  # fmt: skip
    assert all(v["passed"] for v in wide["thresholds"])
    assert [r["exit_code"] for r in narrow["runs"]] == [1, 1]  # done: the verdict is data
    assert f"FAIL  ip_local_port_range={NARROW}  median  port_exhausted > 0" in outputs["both"][0]
    suites = {s.name: s for s in JUnitXml.fromfile(str(tmp_path / "both.xml"))}
    failing = suites[f"portstorm sweep: ip_local_port_range={NARROW}"]
    assert (failing.tests, failing.failures) == (3, 3)
    assert {c.classname for c in failing} == {f"portstorm.sweep.ip_local_port_range={NARROW}"}

    base, both = str(tmp_path / "base"), str(tmp_path / "both")
    code, doc = _compare(base, both, "--fail-if", "change(rate) < -5%",
                         "--junit", str(tmp_path / "compare.xml"))  # fmt: skip
    same, lost = doc["thresholds"]  # the second sweep's 1,000 ports, then its 100
    print(f"change(rate) against 1,000 ports: 1,000 again {same['measured']:+.2f}% "
          f"({same['reason']}), 100 {lost['measured']:+.2f}% ({lost['reason']})")  # fmt: skip
    assert code == 1
    assert same["passed"] and same["case"] == f"ip_local_port_range={WIDE}"
    assert not lost["passed"] and lost["measured"] < -20 and lost["reason"].startswith("*")
    suites = {s.name: s for s in JUnitXml.fromfile(str(tmp_path / "compare.xml"))}
    assert [(s.tests, s.failures) for s in suites.values()] == [(1, 0), (1, 1)]  # per row
    code, doc = _compare(base, base, "--fail-if", "change(rate) < -5%")  # every gate passed
    assert code == 0 and doc["thresholds"][0]["passed"]
