"""Links in reports: only relative file links that stay inside the report's folder are
links, percent-encoded so that no file name reads as a scheme (``javascript:``), a query or
a fragment; every other path is shown as plain text. A crafted sweep is reported and every
link of its page clicked in headless Chromium: no script runs.
"""

from __future__ import annotations

import html as htmllib
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from portstorm.core.files import save_json_atomic
from portstorm.core.inputs import subjects_of
from portstorm.report import build_report, write_many_report
from portstorm.report.page import file_link
from tests.support.browser import click_links, require_chromium
from tests.support.reportdata import simulate

SCRIPTED = "javascript:console.error('PWNED-run')"
SCRIPTED_HTML = "javascript:console.error('PWNED-page').html"


def _crafted_sweep(folder: Path) -> Path:
    """A sweep.json whose run paths are a ``javascript:`` URL and names holding ``#``, ``?``
    and ``%``, each of them a real result.json inside the sweep's folder."""
    names = [SCRIPTED, "cells/a#b?c=%41/result.json"]
    for i, name in enumerate(names):
        save_json_atomic(folder / name, simulate(duration=2, rate=10 + i).to_json())
    cells = [
        {
            "id": f"0{i + 1}-x",
            "label": f"case {i}",
            "factors": {"tcp_tw_reuse": str(i)},
            "runs": [{"repeat": 1, "path": name, "status": "done"}],
        }
        for i, name in enumerate(names)
    ]
    doc = {
        "format": "portstorm.sweep/1",
        "started_at": "2026-11-21T19:00:00Z",
        "complete": True,
        "preset": None,
        "parallel": 1,
        "factors": [{"name": "net.ipv4.tcp_tw_reuse", "values": ["0", "1"]}],
        "repeat": 1,
        "base_args": [],
        "cells": cells,
    }
    save_json_atomic(folder / "sweep.json", doc)
    return folder / "sweep.json"


def _hrefs(page: str) -> list[str]:
    return [htmllib.unescape(h) for h in re.findall(r'<a href="([^"]*)"', page)]


def _assert_links_stay_inside(page: str, folder: Path) -> None:
    hrefs = _hrefs(page)
    assert hrefs
    for h in hrefs:
        parts = urlsplit(h)
        assert (parts.scheme, parts.netloc, parts.query, parts.fragment) == ("", "", "", ""), h
        target = (folder / unquote(parts.path)).resolve()
        assert target.is_relative_to(folder.resolve()) and target.is_file(), h


def test_file_link_links_only_relative_paths_inside_the_folder() -> None:
    assert file_link("cells/01-x/r1/result.json") == (
        '<a href="cells/01-x/r1/result.json">cells/01-x/r1/result.json</a>'
    )
    assert file_link(SCRIPTED) == (
        '<a href="javascript%3Aconsole.error%28%27PWNED-run%27%29">'
        "javascript:console.error(&#39;PWNED-run&#39;)</a>"
    )
    assert file_link("a#b?c=%41.png").startswith('<a href="a%23b%3Fc%3D%2541.png">')
    for outside in ("../other/result.json", "/etc/passwd", "cells/../../x", ""):
        assert "<a" not in file_link(outside), outside
    assert file_link("/tmp/<b>") == "/tmp/&lt;b&gt;"


def test_a_crafted_sweep_report_links_only_files_inside_its_folder(tmp_path: Path) -> None:
    sweep = _crafted_sweep(tmp_path / "sweep")
    files = build_report([sweep], sweep.parent / SCRIPTED_HTML)
    page = files.html.read_text()
    _assert_links_stay_inside(page, sweep.parent)
    assert 'href="javascript:' not in page
    assert len(_hrefs(page)) == 4 + 1 + 2  # charts, the sweep.json, the two runs


def test_paths_outside_the_reports_folder_are_plain_text(tmp_path: Path) -> None:
    a = tmp_path / "a" / "result.json"
    save_json_atomic(a, simulate(duration=2).to_json())
    b = tmp_path / "b" / "result.json"
    save_json_atomic(b, simulate(duration=2, rate=20).to_json())
    files = write_many_report(
        subjects_of([a, b]), tmp_path / "cmp" / "report.html", "C", inputs=[a, b]
    )
    page = files.html.read_text()
    _assert_links_stay_inside(page, tmp_path / "cmp")
    assert "<li>Input: ../a/result.json</li>" in page
    assert len(_hrefs(page)) == 4  # the charts only


def test_clicking_every_link_of_a_crafted_report_runs_no_script(tmp_path: Path) -> None:
    require_chromium()
    sweep = _crafted_sweep(tmp_path / "sweep")
    files = build_report([sweep], sweep.parent / SCRIPTED_HTML)
    clicks = click_links(files.html)
    assert len(clicks) == 7, clicks
    folder = sweep.parent.resolve()
    for c in clicks:
        assert c.console_errors == [], c
        assert c.url.startswith("file://"), c
        landed = Path(unquote(urlsplit(c.url).path))
        assert landed.is_relative_to(folder) and landed.is_file(), c
        assert landed != files.html.resolve(), c  # every link led to its file
