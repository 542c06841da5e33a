"""Sweeps against the real kernel: presets shortened, parallel cells, kill and --resume, compare.

Each run is a ``portstorm run`` child in its own pair or loopback namespaces; a 100-port
range and tcp_rfc1337=1 keep the counts exact (KERNEL.md, "Making tests exact").
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.netns import check, load, require_netns

pytestmark = pytest.mark.netns

PS = [sys.executable, "-m", "portstorm"]
NARROW = ["--set", "ip_local_port_range=40000-40099", "--set", "tcp_rfc1337=1"]


def sweep(out: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """A sweep with no report: these tests read sweep.json and compare --json (the sweep's
    report is tests/report/test_report_browser.py's), and each report costs seconds of CPU."""
    require_netns()
    return subprocess.run([*PS, "sweep", *args, "--out", str(out), "--quiet", "--no-report"],
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def compare_json(*paths: Path) -> dict[str, Any]:
    proc = subprocess.run([*PS, "compare", *map(str, paths), "--json"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    check(proc)
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def by_label(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["label"]: s for s in doc["subjects"]}


def median(subject: dict[str, Any], key: str) -> float | None:
    return subject["metrics"][key]["median"]  # type: ignore[no-any-return]


def test_fin_timeout_preset_shows_no_significant_difference(tmp_path: Path) -> None:
    proc = sweep(tmp_path, "--preset", "fin-timeout", "--duration", "3", "--rate", "100",
                 "--repeat", "2", *NARROW)  # fmt: skip
    check(proc)
    doc = compare_json(tmp_path)
    assert [s["label"] for s in doc["subjects"]] == [
        "tcp_fin_timeout=5", "tcp_fin_timeout=30", "tcp_fin_timeout=60",
    ]  # fmt: skip
    for s in doc["subjects"]:
        assert s["repeats"] == 2
        assert median(s, "first_failure_s") == pytest.approx(1.0, abs=0.1)  # 100 ports at 100/s
        assert median(s, "peak_time_wait") == 100
    # Counts are exact, so no change in them may be judged significant. The first failure
    # is a wall time: here it falls on the 1 s reading, six runs take theirs at once on two
    # cores, and a run that waits for the CPU fails late (both repeats of one cell 28 ms
    # late in CI: "significant", at 2.8 %). Its bounds are what this test holds it to.
    for s in doc["subjects"][1:]:
        for key in ("rate", "after_exhaustion", "peak_time_wait"):
            assert s["changes"][key]["significant"] is False, (s["label"], key, s["changes"][key])
        spread = s["metrics"]["first_failure_s"]
        assert 0.95 <= spread["low"] <= spread["high"] <= 1.1, (s["label"], spread)
    sweep_doc = load(tmp_path / "sweep.json")
    assert sweep_doc["format"] == "portstorm.sweep/1" and sweep_doc["complete"] is True
    cell = sweep_doc["cells"][0]
    assert cell["tunings"]["net.ipv4.tcp_fin_timeout"] == "5"
    assert cell["tunings"]["net.ipv4.tcp_tw_reuse"] == "0"  # the preset's fixed setting
    assert [r["status"] for r in cell["runs"]] == ["done", "done"]
    assert cell["runs"][0]["command"].startswith("portstorm run ")


def test_tw_reuse_preset_pair_0_and_2_alike_loopback_2_far_higher(tmp_path: Path) -> None:
    check(sweep(tmp_path, "--preset", "tw-reuse", "--duration", "3", "--rate", "200", *NARROW))
    cells = by_label(compare_json(tmp_path))
    pair0, pair2 = cells["sandbox=pair tcp_tw_reuse=0"], cells["sandbox=pair tcp_tw_reuse=2"]
    loop2 = cells["sandbox=loopback tcp_tw_reuse=2"]
    for s in (pair0, pair2):
        assert median(s, "model_rate") == pytest.approx(100 / 60)
    # 100 ports, then nothing: the count is exact; the rate is it over the run's own wall
    # time, which a loaded machine stretches (3.17 s of a 3 s run in CI: 31.5/s, not 33.3)
    for result in _results(tmp_path, pair0["label"], pair2["label"]):
        assert result.succeeded == 100
        assert result.rate == pytest.approx(100 / result.duration_s)
    rate2 = median(loop2, "rate")
    assert rate2 is not None and rate2 > 2.5 * (median(pair2, "rate") or 0)  # reuse after 1 s
    assert median(loop2, "model_rate") == pytest.approx(100.0)


def test_close_preset_rst_leaves_no_time_wait_and_never_runs_out(tmp_path: Path) -> None:
    check(sweep(tmp_path, "--preset", "close", "--duration", "3", "--rate", "200", *NARROW))
    cells = by_label(compare_json(tmp_path))
    rst, client = cells["close=rst"], cells["close=client"]
    assert median(rst, "peak_time_wait") == 0
    assert median(rst, "failed_pct") == 0 and median(rst, "first_failure_s") is None
    # the open loop's 600 starts: each made and succeeded, or dropped at the time bound by a
    # driver a busy machine held back (not_started, counted: 599 + 1 seen in a full suite)
    for result in _results(tmp_path, "close=rst"):
        assert result.attempts == result.succeeded, (result.attempts, result.failed)
        assert result.attempts + result.not_started == 600 and result.not_started <= 5
    assert median(client, "first_failure_s") == pytest.approx(0.5, abs=0.1)  # 100 / 200


def _results(out: Path, *labels: str) -> list[Any]:
    """The saved result of every run of the sweep's cells named ``labels``, each checked to
    have lasted its 3 s (to the millisecond) and at most a quarter more (core/result.RunResult)."""
    from portstorm.core.result import load_result

    doc = load(out / "sweep.json")
    runs = [r["path"] for c in doc["cells"] if c["label"] in labels for r in c["runs"]]
    assert len(runs) >= len(labels), (labels, runs)
    results = [load_result(out / path) for path in runs]
    for path, result in zip(runs, results, strict=True):
        assert 2.99 <= result.duration_s <= 3.75, (path, result.duration_s)
    return results


def _logged_intervals(log: Path) -> int:
    try:
        return max(0, len(log.read_text().splitlines()) - 1)  # the header, then one per interval
    except OSError:
        return 0


def test_four_cells_in_parallel_run_their_loads_at_the_same_time(tmp_path: Path) -> None:
    # The loads overlap: a moment when every cell has logged an interval and none has saved
    # its result. Watched on the files, not timed: a wall-clock ratio against one cell
    # alone failed whenever something else loaded the cores (13.0 s against 8.5 s alone,
    # with stress-ng beside the suite), though the cells ran together.
    require_netns()
    proc = subprocess.Popen(
        [*PS, "sweep", "--vary", "close=client,rst", "--vary", "sandbox=pair,loopback",
         "--parallel", "4", "--duration", "4", "--rate", "50", *NARROW, "--out", str(tmp_path),
         "--quiet", "--no-report"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    overlapped = False
    try:
        deadline = time.monotonic() + 120
        while not overlapped and proc.poll() is None and time.monotonic() < deadline:
            runs = sorted(tmp_path.glob("cells/*/r1"))
            overlapped = (
                len(runs) == 4
                and all(_logged_intervals(r / "intervals.jsonl") >= 1 for r in runs)
                and not any((r / "result.json").exists() for r in runs)
            )
            time.sleep(0.02)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert overlapped, sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.json*"))
    doc = load(tmp_path / "sweep.json")
    assert [r["status"] for c in doc["cells"] for r in c["runs"]] == ["done"] * 4


def _done_runs(path: Path) -> int:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return 0
    return sum(r["status"] == "done" for c in doc["cells"] for r in c["runs"])


def _children_of(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _gone(pid: int) -> bool:
    """Dead: no such process, or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_a_sweep_killed_after_2_of_4_cells_resumes_with_only_the_missing_2(tmp_path: Path) -> None:
    require_netns()
    args = ["--vary", "concurrency=1,2,3,4", "--parallel", "1", "--duration", "1", *NARROW]
    proc = subprocess.Popen([*PS, "sweep", *args, "--out", str(tmp_path), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    sweep_json = tmp_path / "sweep.json"
    try:
        deadline = time.monotonic() + 60
        while _done_runs(sweep_json) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _done_runs(sweep_json) == 2
        children: list[int] = []
        while not children and time.monotonic() < deadline:  # the third run has started
            children = _children_of(proc.pid)
            time.sleep(0.01)
        assert children
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    # PR_SET_PDEATHSIG: the running cell dies with the sweep (polled, up to 30 s, rather
    # than a fixed second that a busy machine may not honour)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(_gone(c) for c in children):
        time.sleep(0.05)
    assert all(_gone(c) for c in children), [c for c in children if not _gone(c)]
    before = {p: p.stat().st_mtime_ns for p in tmp_path.glob("cells/*/r1/result.json")}
    assert len(before) == 2
    resumed = subprocess.run([*PS, "sweep", "--resume", "--no-report", "--out", str(tmp_path)],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    check(resumed)
    assert "2 already done (resume)" in resumed.stderr
    assert "2 done, 0 running, 2 to go" in resumed.stderr
    after = {p: p.stat().st_mtime_ns for p in tmp_path.glob("cells/*/r1/result.json")}
    assert len(after) == 4
    assert all(after[p] == t for p, t in before.items())  # the finished two were not re-run
    doc = load(sweep_json)
    assert doc["complete"] is True
    assert [c["label"] for c in doc["cells"]] == [f"concurrency={n}" for n in (1, 2, 3, 4)]


def test_compare_two_runs_labels_them_by_what_differs(tmp_path: Path) -> None:
    require_netns()
    for reuse in ("0", "1"):
        check(subprocess.run(
            [*PS, "run", "--duration", "2", "--rate", "100", *NARROW, "--set",
             f"tcp_tw_reuse={reuse}", "--quiet", "--no-report", "--out", str(tmp_path / reuse)],
            capture_output=True, text=True, timeout=60,
        ))  # fmt: skip
    doc = compare_json(tmp_path / "0" / "result.json", tmp_path / "1")
    labels = [s["label"] for s in doc["subjects"]]
    assert labels == ["tcp_tw_reuse=0", "tcp_tw_reuse=1"]
    ch = doc["subjects"][1]["changes"]["rate"]
    assert ch["significant"] is None and ch["relative"] > 0.2  # reuse: far more successes
    table = subprocess.run([*PS, "compare", str(tmp_path / "0"), str(tmp_path / "1")],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    check(table)
    assert "tcp_tw_reuse=1" in table.stdout and "cannot tell" in table.stdout


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("", "file is empty"),
        ('{"format": "portstorm.sweep/1", "cells": [', "not valid JSON"),
        ('{"format": "other/1"}', "not a portstorm result"),
        ('{"format": "portstorm.sweep/7"}', "newer than this portstorm reads"),
        ('{"format": "portstorm.sweep/1", "cells": [{"runs": [{"status": "done"}]}]}', "damaged"),
    ],
)
def test_compare_on_bad_files_is_one_line_and_exit_2(
    tmp_path: Path, content: str, fragment: str
) -> None:
    bad = tmp_path / "sweep.json"
    bad.write_text(content)
    proc = subprocess.run([*PS, "compare", str(bad), str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and fragment in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
