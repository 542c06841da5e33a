"""Text from files and paths reaches the terminal with its control characters escaped and
its rich markup shown as typed: a crafted result.json cannot retitle the terminal, clear it,
or colour the table.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from pathlib import Path

import pytest
from rich.console import Console

from portstorm import cli
from portstorm.cli.summary import print_summary
from portstorm.core.files import save_json_atomic
from portstorm.core.result import HostInfo, RunResult
from portstorm.core.text import one_line
from tests.support.reportdata import simulate

EVIL = "evil\x1b]0;PWNED\x07\x1b[2J"
MARKUP = "[red]x[/red]"


def _crafted(hostname: str, reuse: str) -> RunResult:
    r = simulate(duration=2)
    return dataclasses.replace(
        r,
        tunings={**r.tunings, "net.ipv4.tcp_tw_reuse": reuse},
        host=HostInfo(hostname, "6.18.0\x1b[31m", 2),
        notes=(f"a note {EVIL}",),
        setup=dataclasses.replace(r.setup, targets=(f"198.18.0.2:9000{EVIL}",)),
    )


def _main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        pytest.raises(SystemExit) as e,
    ):
        cli.main(argv)
    return int(e.value.code or 0), out.getvalue(), err.getvalue()


def _no_controls(text: str) -> None:
    bad = [c for c in text if not c.isprintable() and c != "\n"]
    assert not bad, (bad, text)


def test_one_line_escapes_control_characters_and_keeps_the_rest() -> None:
    assert one_line(EVIL) == "evil\\x1b]0;PWNED\\x07\\x1b[2J"
    assert one_line("a\nb\tc\u202ed") == "a\\nb\\tc\\u202ed"
    assert one_line("port range 40000 40099, µs") == "port range 40000 40099, µs"
    assert one_line("bad \udcff byte") == "bad \\udcff byte"  # a surrogate-escaped path


def test_compare_prints_hostnames_and_tunings_from_files_escaped(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "result.json", tmp_path / "b" / "result.json"
    save_json_atomic(a, _crafted(EVIL, EVIL).to_json())
    save_json_atomic(b, _crafted(MARKUP, "1").to_json())
    code, out, err = _main(["compare", str(a), str(b)])
    assert code == 0, err
    _no_controls(out)
    assert "\\x1b]0;PWNED\\x07" in out
    assert MARKUP in out  # shown as typed, not interpreted as rich markup


def test_summary_escapes_file_content_and_shows_markup_as_typed() -> None:
    r = _crafted(MARKUP, EVIL)
    buf = io.StringIO()
    print_summary(r, f"/tmp/out{EVIL}/result.json", Console(file=buf, width=400))
    text = buf.getvalue()
    _no_controls(text)
    assert "\\x1b[2J" in text and "a note evil\\x1b]0;PWNED" in text
    assert f"tcp_tw_reuse {one_line(EVIL)}" in text


def test_the_report_line_escapes_the_path(tmp_path: Path) -> None:
    folder = tmp_path / f"run{EVIL}"
    save_json_atomic(folder / "result.json", simulate(duration=2).to_json())
    code, out, err = _main(["report", str(folder)])
    assert code == 0, err
    _no_controls(out)
    assert f"report: {one_line(str(folder / 'report.html'))}" in out
