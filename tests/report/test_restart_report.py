"""The restart and lastack pages, drawn from literal results: every file written beside
the HTML, the findings on the page, the charts embedded."""

from __future__ import annotations

from pathlib import Path

from portstorm.core.restartlastack import CaseResult
from portstorm.report.restartlastack import write_lastack_report
from portstorm.report.restartreport import write_restart_report
from tests.support.restartdata import restart_result


def test_a_restart_report_shows_the_drain_time_and_embeds_its_chart(tmp_path: Path) -> None:
    html, png = write_restart_report(restart_result(), tmp_path / "report.html")
    page = html.read_text()
    assert png.name == "restart.png" and png.read_bytes().startswith(b"\x89PNG")
    assert "first succeeded 61.0 s after the old listener closed" in page
    assert "data:image/png;base64," in page and 'href="result.json"' in page


def test_a_lastack_report_has_a_row_per_case_and_both_charts(tmp_path: Path) -> None:
    cases = [
        CaseResult("time_wait", 20, 0, 0, 20, 10, 30, 0, 0, 8, 0.3, 0.001,
                   server_last_ack=((0.0, 0), (0.1, 8), (0.4, 0))),
        CaseResult("no_time_wait", 20, 0, 0, 20, 10, 30, 10, 0, 8, 0.3, 0.001),
    ]  # fmt: skip
    doc = {"scenario": {"share_pct": 50, "connections": 20, "rate": 100.0,
                        "server": "198.18.0.2:8080", "match": "ct original packets 4"},
           "host": {"hostname": "vm", "kernel": "6.18"}, "complete": True}  # fmt: skip
    html, *pngs = write_lastack_report(doc, cases, tmp_path / "report.html")
    page = html.read_text()
    assert sorted(p.name for p in pngs) == ["lastack-endings.png", "lastack-last-ack.png"]
    assert "<code>no_time_wait</code>" in page and "received 10 RSTs" in page
