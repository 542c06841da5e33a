"""The browser harness (tests/support/browser.py) tells a good page from a broken one, and cleans up.

Each test renders a small page made in tmp_path in Debian's headless Chromium; without
chromium they skip, except under CI (CI=true), where they fail.
"""

from __future__ import annotations

import base64
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from tests.support import browser
from tests.support.browser import render, require_chromium

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def tiny_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real, valid PNG of one colour (8-bit RGB), made by hand."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))  # filter 0 per row
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def page(tmp_path: Path, body: str, title: str = "harness test") -> Path:
    html = tmp_path / "page.html"
    html.write_text(
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body>\n{body}\n</body></html>\n",
        encoding="utf-8",
    )
    return html


@pytest.fixture
def harness_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Chromium's profile goes under tmp_path, so a leftover browser can be told by name."""
    require_chromium()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def assert_no_browser_left(tmp_path: Path) -> None:
    """No process names tmp_path (our browser's profile), and no chromium child of ours,
    zombie or not, is left (the harness is a subreaper while its browser runs)."""
    marker = str(tmp_path).encode()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        assert marker not in cmdline, f"process {entry} ({comm}) outlived render()"
        assert not (ppid == os.getpid() and comm.startswith("chrom")), (
            f"chromium process {entry} ({comm}) left unreaped"
        )


def test_good_page_with_embedded_png_shows_the_image_and_no_errors(harness_tmp: Path) -> None:
    data = base64.b64encode(tiny_png(7, 5, (30, 120, 200))).decode()
    html = page(
        harness_tmp,
        f'<h1>Report</h1><img alt="chart" src="data:image/png;base64,{data}">',
        title="Good report",
    )
    shot = harness_tmp / "out" / "good.png"

    check = render(html, shot, width=640, height=480)

    assert check.title == "Good report"
    assert check.console_errors == []
    assert len(check.images) == 1
    src, width = check.images[0]
    assert src == f"data:image/png;base64,{data}"[:60]
    assert width == 7
    assert shot.stat().st_size > 0
    assert shot.read_bytes().startswith(PNG_SIGNATURE)
    assert_no_browser_left(harness_tmp)


def test_missing_image_file_has_zero_width_and_a_failed_load_error(harness_tmp: Path) -> None:
    html = page(harness_tmp, '<img alt="chart" src="no-such-chart.png">')

    check = render(html, harness_tmp / "broken.png")

    assert check.images == [("no-such-chart.png", 0)]
    failed = [e for e in check.console_errors if "no-such-chart.png" in e]
    assert failed, check.console_errors
    assert "ERR_FILE_NOT_FOUND" in failed[0]
    assert_no_browser_left(harness_tmp)


def test_console_error_and_uncaught_exception_are_both_reported(harness_tmp: Path) -> None:
    html = page(
        harness_tmp,
        "<p>scripted</p><script>console.error('boom'); throw new Error('kaboom');</script>",
    )

    check = render(html, harness_tmp / "scripted.png")

    assert check.images == []
    assert any("boom" in e and "kaboom" not in e for e in check.console_errors), (
        check.console_errors
    )
    assert any("Uncaught" in e and "kaboom" in e for e in check.console_errors), (
        check.console_errors
    )
    assert_no_browser_left(harness_tmp)


def test_page_that_never_finishes_loading_times_out_and_leaves_no_browser(
    harness_tmp: Path,
) -> None:
    html = page(harness_tmp, "<script>while (true) {}</script>")
    shot = harness_tmp / "never.png"

    with pytest.raises(TimeoutError):
        render(html, shot, timeout=2)

    assert not shot.exists()
    assert_no_browser_left(harness_tmp)


def test_chromium_leaves_no_temporary_folder_behind(
    harness_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed by PID, chromium never removes the singleton folder it makes in TMPDIR
    (org.chromium.Chromium.XXXXXX): the harness points TMPDIR at its own folder."""
    system_tmp = harness_tmp / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))
    made: list[str] = []
    mkdtemp = tempfile.mkdtemp

    def recorded(*args: Any, **kwargs: Any) -> str:
        made.append(mkdtemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", recorded)
    render(page(harness_tmp, "<p>hello</p>"), harness_tmp / "shot.png")
    assert list(system_tmp.iterdir()) == []
    assert made and not any(os.path.exists(p) for p in made)
    assert [p.name for p in harness_tmp.iterdir() if p.name.startswith("browser-harness-")] == []


def test_missing_chromium_skips_locally_but_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(browser, "chromium_path", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium"):
        require_chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run this test"):
        require_chromium()
