"""--fail-if and --junit end to end: a 50-port range at 100/s runs out of ports half a second
in (KERNEL.md: 50 ports held 60 s in TIME_WAIT), which a CI gate must fail on, after
writing every file; a threshold the run meets leaves the exit code 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml

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
