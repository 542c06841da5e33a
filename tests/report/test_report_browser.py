"""Reports made by real runs, looked at in headless Chromium as a person would open them:
every image loaded, nothing on the console, and a screenshot of each.

Screenshots go to $PORTSTORM_SCREENSHOTS when set (CI can keep them), else the test's
temporary folder; their paths are printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.browser import render, require_chromium
from tests.support.netns import check, require_netns

pytestmark = pytest.mark.netns

PS = [sys.executable, "-m", "portstorm"]
NARROW = ["--set", "ip_local_port_range=40000-40099", "--set", "tcp_rfc1337=1"]


def _shots(tmp_path: Path) -> Path:
    where = Path(os.environ.get("PORTSTORM_SCREENSHOTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


def _look(html: Path, shot: Path, n_images: int, width: int = 1280) -> None:
    page = render(html, shot, width=width)
    print(f"screenshot: {shot}")
    assert len(page.images) == n_images, page.images
    assert all(w > 0 for _src, w in page.images), page.images
    assert all(src.startswith("data:image/png;base64,") for src, _w in page.images)
    assert page.console_errors == []
    assert shot.stat().st_size > 20_000  # a page with charts, not a blank one


def test_run_writes_a_report_that_renders_with_every_chart(tmp_path: Path) -> None:
    require_chromium()
    require_netns()
    out = tmp_path / "run"
    proc = subprocess.run(
        [*PS, "run", "--duration", "3", "--rate", "100", *NARROW, "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    check(proc)
    assert f"report: {out / 'report.html'}" in proc.stdout
    html = (out / "report.html").read_text()
    assert "ran out after" in html  # 100 ports at 100/s: the headline finding
    _look(out / "report.html", _shots(tmp_path) / "run-report.png", 4)
    # the same page on a phone-sized screen still loads every chart
    _look(out / "report.html", _shots(tmp_path) / "run-report-narrow.png", 4, width=420)


def test_sweep_writes_a_report_that_renders_with_every_chart(tmp_path: Path) -> None:
    require_chromium()
    require_netns()
    out = tmp_path / "sweep"
    proc = subprocess.run(
        [
            *PS,
            "sweep",
            "--vary",
            "tcp_tw_reuse=0,1",
            "--duration",
            "2",
            "--rate",
            "100",
            *NARROW,
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    check(proc)
    assert f"report: {out / 'report.html'}" in proc.stdout
    html = (out / "report.html").read_text()
    assert "<th>tcp_tw_reuse</th>" in html
    # cells run with --no-report: one report for the sweep, none per cell
    assert not list((out / "cells").rglob("report.html"))
    _look(out / "report.html", _shots(tmp_path) / "sweep-report.png", 4)


def test_run_with_no_report_saves_only_the_result(tmp_path: Path) -> None:
    require_netns()
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            *PS,
            "run",
            "--duration",
            "1",
            "--rate",
            "20",
            "--no-report",
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    check(proc)
    assert sorted(p.name for p in out.iterdir()) == ["intervals.jsonl", "result.json"]
    assert "report:" not in proc.stdout
