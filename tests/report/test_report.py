"""Reports from saved files: the files a report leaves, what its HTML holds, the exports
read back by HdrHistogram's own log reader, and one-line errors for bad inputs."""

from __future__ import annotations

import csv
import io
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from portstorm.core.compare import Subject
from portstorm.core.files import save_json_atomic
from portstorm.core.result import RunResult
from portstorm.report import write_many_report, write_run_report
from portstorm.report.exports import hlog, intervals_csv
from tests.support.reportdata import simulate

PS = [sys.executable, "-m", "portstorm"]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def _save(r: RunResult, folder: Path) -> Path:
    path = folder / "result.json"
    save_json_atomic(path, r.to_json())
    return path


def _self_contained(html: str) -> None:
    # nothing fetched from anywhere: images are data URIs, no scripts, no stylesheets
    assert not re.search(r"""<(img|script|link|iframe)[^>]+(src|href)=["'](?!data:)""", html)
    assert "http://" not in html and "https://" not in html


def _export(path: Path, text: str) -> Path:
    """An export as the report writes it (report/exports.py), without drawing the charts
    around it: test_run_report_writes_html_four_pngs_csv_and_hlog checks the written set."""
    path.write_text(text)
    return path


def test_run_report_writes_html_four_pngs_csv_and_hlog(tmp_path: Path) -> None:
    r = simulate(ports=100, rate=50, duration=75)
    files = write_run_report(r, tmp_path / "report.html", _save(r, tmp_path))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "intervals.csv",
        "kernel.png",
        "latency.hlog",
        "latency.png",
        "port-space.png",
        "rate.png",
        "report.html",
        "result.json",
    ]
    for png in files.charts:
        w, h = _png_size(png)
        assert w == 1000 and h >= 400, (png, w, h)
    html = files.html.read_text()
    _self_contained(html)
    assert html.count('src="data:image/png;base64,') == 4
    # the findings come first, in words, with the numbers of this run
    assert "ran out after 2.0 s at 50.0 attempts/s" in html
    assert "as the model predicts for 100 ports held 60 s" in html
    assert html.index("ran out after") < html.index("<h2>Charts</h2>")
    for fact in (
        "testbox: Linux 6.18.0, 2 CPUs",
        "pair: client and sink namespaces",
        "ip_local_port_range",
        "40000 40099",
    ):
        assert fact in html


def test_report_names_beside_another_html_name_carry_its_stem(tmp_path: Path) -> None:
    r = simulate(duration=3)
    files = write_run_report(r, tmp_path / "host-a.html")
    assert {p.name for p in files.charts} == {
        "host-a-port-space.png",
        "host-a-rate.png",
        "host-a-latency.png",
        "host-a-kernel.png",
    }
    assert files.exports["hlog"].name == "host-a-latency.hlog"


def test_hlog_is_read_back_by_hdrhistograms_log_reader(tmp_path: Path) -> None:
    r = simulate(ports=100, rate=50, duration=75)
    path = _export(tmp_path / "latency.hlog", hlog(r))  # what the report writes, undrawn
    reader = HistogramLogReader(str(path), HdrHistogram(1, 3_600_000_000, 3))
    counts, starts = [], []
    while (h := reader.get_next_interval_histogram()) is not None:
        counts.append(h.get_total_count())
        starts.append(h.get_start_time_stamp())
    with_values = [i for i in r.intervals if i.succeeded]
    assert counts == [i.succeeded for i in with_values]
    assert sum(counts) == r.succeeded
    assert "#[Histogram log format version 1.2]" in path.read_text()


def test_hlog_of_a_file_without_interval_histograms_holds_the_whole_run(tmp_path: Path) -> None:
    r = simulate(duration=5)
    doc = r.to_json()
    del doc["interval_hdr"]  # as files saved before per-interval histograms were kept
    old = RunResult.from_json(doc)
    path = _export(tmp_path / "latency.hlog", hlog(old))
    reader = HistogramLogReader(str(path), HdrHistogram(1, 3_600_000_000, 3))
    h = reader.get_next_interval_histogram()
    assert h is not None and h.get_total_count() == r.succeeded
    assert reader.get_next_interval_histogram() is None


def test_csv_has_a_row_per_interval_and_adds_up(tmp_path: Path) -> None:
    r = simulate(ports=100, rate=50, duration=6)
    rows = list(csv.DictReader(io.StringIO(intervals_csv(r))))
    assert len(rows) == len(r.intervals)
    assert sum(int(x["succeeded"]) for x in rows) == r.succeeded == 100
    assert sum(int(x["failed_port_exhausted"]) for x in rows) == 200
    assert [x["time_wait"] for x in rows][-1] == "100"
    assert "server_TcpExtListenDrops" in rows[0]
    assert {x["not_started"] for x in rows} == {"0"}


def test_csv_counts_the_starts_a_late_driver_dropped(tmp_path: Path) -> None:
    import dataclasses

    r = simulate(ports=100, rate=50, duration=3)
    late = dataclasses.replace(r.intervals[-1], not_started=7)
    r = dataclasses.replace(r, intervals=(*r.intervals[:-1], late))
    rows = list(csv.DictReader(io.StringIO(intervals_csv(r))))
    assert (
        [int(x["not_started"]) for x in rows]
        == [0] * (len(rows) - 1) + [7]
        == [i.not_started for i in r.intervals]
    )


def test_sweep_style_report_tabulates_cases_and_draws_four_charts(tmp_path: Path) -> None:
    subjects = [
        Subject(
            "tcp_tw_reuse=0",
            (simulate(ports=100, rate=50, duration=75),),
            (str(_save(simulate(duration=2), tmp_path / "a")),),
            {"tcp_tw_reuse": "0"},
        ),
        Subject(
            "tcp_tw_reuse=1",
            (simulate(ports=100, rate=50, duration=75, hold_s=1.0),),
            (),
            {"tcp_tw_reuse": "1"},
        ),
    ]
    files = write_many_report(subjects, tmp_path / "report.html", "Sweep over tcp_tw_reuse")
    assert [p.name for p in files.charts] == [
        "rates.png",
        "first-failure.png",
        "time-wait.png",
        "latency.png",
    ]
    for png in files.charts:
        assert _png_size(png)[0] == 1000
    html = files.html.read_text()
    _self_contained(html)
    assert html.count('src="data:image/png;base64,') == 4
    assert "<th>tcp_tw_reuse</th>" in html
    assert "Highest sustained rate: tcp_tw_reuse=1, 50.0 conn/s (never ran out)" in html
    assert 'href="a/result.json"' in html


def test_report_command_rebuilds_a_run_report_beside_its_result(tmp_path: Path) -> None:
    _save(simulate(duration=4), tmp_path)
    proc = subprocess.run([*PS, "report", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"report: {tmp_path / 'report.html'}" in proc.stdout
    assert (tmp_path / "port-space.png").is_file()


def test_report_command_on_two_results_makes_a_comparison(tmp_path: Path) -> None:
    a = _save(simulate(duration=4), tmp_path / "a")
    b = _save(simulate(duration=4, tunings={"net.ipv4.tcp_tw_reuse": "1"}), tmp_path / "b")
    out = tmp_path / "cmp" / "both.html"
    proc = subprocess.run(
        [*PS, "report", str(a), str(b), "-o", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert "tcp_tw_reuse=0" in html and "tcp_tw_reuse=1" in html  # labelled by what differs
    assert (out.parent / "both-rates.png").is_file()


def test_compare_html_writes_the_comparison_report(tmp_path: Path) -> None:
    a = _save(simulate(duration=4), tmp_path / "a")
    b = _save(simulate(duration=4, rate=20), tmp_path / "b")
    out = tmp_path / "c.html"
    proc = subprocess.run(
        [*PS, "compare", str(a), str(b), "--html", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "rate=50.0" in proc.stdout and f"report: {out}" in proc.stdout
    assert out.read_text().count("data:image/png") == 4


def test_report_from_a_saved_comparison_rereads_its_results(tmp_path: Path) -> None:
    a = _save(simulate(duration=4), tmp_path / "a")
    b = _save(simulate(duration=4, rate=20), tmp_path / "b")
    doc = subprocess.run(
        [*PS, "compare", str(a), str(b), "--json"], capture_output=True, text=True, check=True
    ).stdout
    (tmp_path / "cmp.json").write_text(doc)
    out = tmp_path / "from-json.html"
    proc = subprocess.run(
        [*PS, "report", str(tmp_path / "cmp.json"), "-o", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "rate=20.0" in out.read_text()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("", "file is empty"),
        ('{"format": "portstorm.run/1", "intervals": [', "not valid JSON (truncated?)"),
        ('{"name": "something else"}', "not a portstorm result"),
        ("[1, 2]", "top level is not an object"),
        ('{"format": "portstorm.run/9"}', "newer than this portstorm reads"),
        ('{"format": "portstorm.run/1", "host": {}}', "damaged portstorm result"),
        (
            '{"format": "portstorm.sweep/1", "cells": [{"runs": [{"status": "done"}]}]}',
            "damaged sweep.json",
        ),
    ],
)
def test_report_on_a_bad_file_is_one_line_and_exit_2(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    bad = tmp_path / "result.json"
    if content is not None:
        bad.write_text(content)
    proc = subprocess.run([*PS, "report", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0] and str(bad) in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "report.html").exists()


def test_report_refuses_an_output_that_is_not_html(tmp_path: Path) -> None:
    _save(simulate(duration=2), tmp_path)
    proc = subprocess.run(
        [*PS, "report", str(tmp_path), "-o", str(tmp_path / "r.png")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"portstorm: error: -o {tmp_path / 'r.png'}: the report is an HTML file; "
        "name it something.html"
    )


def test_spectrum_matches_hdrhistograms_own_percentile_lookups() -> None:
    import random

    from portstorm.core.histogram import LatencyHistogram

    rng = random.Random(7)
    h = LatencyHistogram()
    for _ in range(20_000):
        h.record(int(rng.lognormvariate(5, 1.5)))
    spectrum = h.spectrum()
    assert [v for p, v in spectrum[:-1]] == [h.percentile(p) for p, _ in spectrum[:-1]]
    assert spectrum[-1] == (100.0, h.max)
    assert spectrum[0][0] == 0.0 and 99.989 < spectrum[-2][0] < 99.991


def test_the_report_does_not_repeat_as_a_note_what_a_finding_says(tmp_path: Path) -> None:
    # the pair with tcp_tw_reuse=2: the reuse finding and the run's note said the same
    import dataclasses

    r = simulate(ports=20_000, rate=100, duration=5, tunings={"net.ipv4.tcp_tw_reuse": "2"})
    note = "tcp_tw_reuse=2 reuses TIME_WAIT ports on loopback only; this run crossed a veth"
    r = dataclasses.replace(r, notes=(note, "another note"))
    html = write_run_report(r, tmp_path / "report.html").html.read_text()
    assert "tcp_tw_reuse=2 (the default) did not apply" in html
    assert "tcp_tw_reuse=2 reuses TIME_WAIT ports" not in html and "another note" in html
