"""Reports: PNG charts and one self-contained HTML file, made from saved files only.

Containing the assembly of a report (charts, findings, tables, exports) and nothing that
measures: a report can be rebuilt at any time from result.json or sweep.json with
``portstorm report``. matplotlib and jinja2 are imported only when a report is made.

Files, for ``<dir>/<name>.html``: the PNGs beside it as ``<prefix><chart>.png``, where the
prefix is empty for ``report.html`` and ``<name>-`` otherwise (so several reports can share
a folder); a run report also writes ``<prefix>intervals.csv`` and ``<prefix>latency.hlog``.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portstorm.core.compare import METRICS, Subject, compare
from portstorm.core.errors import UsageError
from portstorm.core.findings import compare_findings, run_findings
from portstorm.core.inputs import Loaded, load, subjects_of
from portstorm.core.result import RunResult, utc_iso
from portstorm.core.sweep import Factor

DEFAULT_NAME = "report.html"


@dataclass
class ReportFiles:
    html: Path
    charts: list[Path] = field(default_factory=list)
    exports: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class Chart:
    """One chart as the template shows it."""

    title: str
    alt: str
    file: str  # the PNG's name beside the HTML
    data_uri: str


def _prefix(html: Path) -> str:
    return "" if html.name == DEFAULT_NAME else f"{html.stem}-"


def _prepare(html: Path) -> None:
    if html.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"-o {html}: the report is an HTML file; name it something.html")
    try:
        html.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"-o {html}: cannot create {html.parent}: {e.strerror}") from None


def _draw(specs: Sequence[tuple[str, str, Any]], data: Any, html: Path) -> list[Chart]:
    from portstorm.report.style import charting, save_png

    charts = []
    with charting():
        for stem, alt, draw in specs:
            fig = draw(data)
            path = html.parent / f"{_prefix(html)}{stem}.png"
            png = save_png(fig, path)
            uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            charts.append(Chart(_title(fig), alt, path.name, uri))
    return charts


def _title(fig: Any) -> str:
    sup = fig.get_suptitle()
    if sup:
        return str(sup)
    axes = fig.get_axes()
    return str(axes[0].get_title()) if axes else ""


def write_run_report(result: RunResult, html: Path, source: Path | None = None) -> ReportFiles:
    """The report of one run: four charts, findings, tunings, tables and exports."""
    from portstorm.report.exports import write_exports
    from portstorm.report.page import render_run
    from portstorm.report.runcharts import RUN_CHARTS

    _prepare(html)
    charts = _draw(RUN_CHARTS, result, html)
    exports = write_exports(result, html.parent, _prefix(html))
    text = render_run(
        result,
        findings=run_findings(result),
        charts=charts,
        exports={k: p.name for k, p in exports.items()},
        source=_relative(source, html) if source else None,
        generated=_now(),
    )
    _write(html, text)
    return ReportFiles(html, [html.parent / c.file for c in charts], exports)


def remove_run_report(folder: Path) -> list[Path]:
    """Delete the default run report in ``folder`` (report.html, its charts and exports):
    ``run --force --no-report`` replaces a result, and a report of the old one must not
    stay beside the new one. Reports written under other names are the user's; kept."""
    from portstorm.report.exports import export_paths
    from portstorm.report.runcharts import RUN_CHARTS

    html = folder / DEFAULT_NAME
    names = [html, *export_paths(folder).values()]
    names += [folder / f"{_prefix(html)}{stem}.png" for stem, _title, _draw in RUN_CHARTS]
    removed = []
    for path in names:
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed


def write_many_report(
    subjects: Sequence[Subject],
    html: Path,
    title: str,
    sweep: dict[str, Any] | None = None,
    inputs: Sequence[Path] = (),
) -> ReportFiles:
    """The report of a sweep or comparison: a table of cases and four overlaid charts."""
    from portstorm.report.manycharts import MANY_CHARTS
    from portstorm.report.page import render_many

    if not subjects:
        raise UsageError("nothing to report: no finished run in the inputs")
    _prepare(html)
    doc = compare(subjects)
    charts = _draw(MANY_CHARTS, subjects, html)
    text = render_many(
        title=title,
        doc=doc,
        subjects=subjects,
        metrics=METRICS,
        findings=compare_findings(doc),
        charts=charts,
        sweep=sweep,
        links=[[_relative(Path(p), html) for p in s.paths] for s in subjects],
        inputs=[_relative(p, html) for p in inputs],
        generated=_now(),
    )
    _write(html, text)
    return ReportFiles(html, [html.parent / c.file for c in charts])


def build_report(paths: Sequence[Path], html: Path | None) -> ReportFiles:
    """``portstorm report``: one result -> a run report; one sweep -> a sweep report;
    several inputs, or a saved comparison -> a comparison report."""
    if not paths:
        raise UsageError("report: name at least one result.json, sweep.json or folder")
    loaded = [load(p) for p in paths]
    if len(loaded) == 1 and loaded[0].kind == "run":
        one = loaded[0]
        return write_run_report(one.subjects[0].runs[0], _out(html, one), one.path)
    if len(loaded) == 1 and loaded[0].kind == "sweep":
        return _sweep_report(loaded[0], html)
    if html is None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        html = Path("reports") / f"{stamp}-compare" / DEFAULT_NAME
    subjects = subjects_of([x.path for x in loaded])
    return write_many_report(subjects, html, "Comparison", None, [x.path for x in loaded])


def write_sweep_report(sweep_json: Path, html: Path | None = None) -> ReportFiles:
    """The report of a sweep, from its sweep.json (``report.html`` beside it by default)."""
    return _sweep_report(load(sweep_json), html)


def _sweep_report(one: Loaded, html: Path | None) -> ReportFiles:
    title = _sweep_title(one.sweep, one.path)
    return write_many_report(one.subjects, _out(html, one), title, one.sweep, [one.path])


def _out(html: Path | None, one: Loaded) -> Path:
    return html if html is not None else one.path.parent / DEFAULT_NAME


def _sweep_title(doc: dict[str, Any] | None, path: Path) -> str:
    doc = doc or {}
    names = ", ".join(Factor(str(f.get("name")), ()).label for f in doc.get("factors", []))
    preset = doc.get("preset")
    return f"Sweep {preset!r}: {names}" if preset else f"Sweep over {names or path.parent.name}"


def _relative(p: Path, html: Path) -> str:
    """A link from the report to ``p``: relative when it can be, else absolute."""
    import os

    try:
        return os.path.relpath(p.resolve(), html.parent.resolve())
    except ValueError:
        return str(p.resolve())


def _now() -> str:
    return utc_iso(dt.datetime.now(dt.UTC))


def _write(html: Path, text: str) -> None:
    try:
        html.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"-o {html}: cannot write: {e.strerror}") from None


__all__ = [
    "DEFAULT_NAME",
    "ReportFiles",
    "build_report",
    "write_many_report",
    "write_run_report",
    "write_sweep_report",
]
