"""The assembly of a report: PNG charts and one self-contained HTML file, from saved files.

Containing the order of making a report (charts, findings, tables, exports, then writing
them together) and nothing that measures or draws (runcharts.py, manycharts.py and page.py
do): a report can be rebuilt at any time from result.json or sweep.json with ``portstorm
report``. matplotlib and jinja2 are imported only when a report is made.

Files, for ``<dir>/<name>.html``: the PNGs beside it as ``<prefix><chart>.png``, where the
prefix is empty for ``report.html`` and ``<name>-`` otherwise (so several reports can share
a folder); a run report also writes ``<prefix>intervals.csv`` and ``<prefix>latency.hlog``.
"""

from __future__ import annotations

import base64
import datetime as dt
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portstorm.core.compare import Subject, comparison
from portstorm.core.comparefindings import compare_findings
from portstorm.core.errors import UsageError
from portstorm.core.files import Folder
from portstorm.core.findings import run_findings
from portstorm.core.inputs import Loaded, load, subjects_of
from portstorm.core.outdir import default_out_dir
from portstorm.core.result import RunResult, utc_iso
from portstorm.core.subjectgates import CaseVerdict
from portstorm.core.sweep import Factor
from portstorm.report.page import Chart

DEFAULT_NAME = "report.html"


@dataclass
class ReportFiles:
    html: Path
    charts: list[Path] = field(default_factory=list)
    exports: dict[str, Path] = field(default_factory=dict)


def _prefix(html: Path) -> str:
    return "" if html.name == DEFAULT_NAME else f"{html.stem}-"


def run_report_names(html: Path = Path(DEFAULT_NAME)) -> list[str]:
    """Every file a run report named ``html`` writes beside it."""
    from portstorm.report.exports import export_paths
    from portstorm.report.natchart import NAT_CHART
    from portstorm.report.runcharts import RUN_CHARTS

    names = [html.name, *(p.name for p in export_paths(html.parent, _prefix(html)).values())]
    charts = (*RUN_CHARTS, NAT_CHART)  # the NAT chart's name too, drawn or not
    return names + [f"{_prefix(html)}{stem}.png" for stem, _title, _draw in charts]


def run_charts(result: RunResult) -> tuple[tuple[str, str, Any], ...]:
    """The charts of a run report: with a NAT router, its chart after the client's own
    port space (report/natchart.py)."""
    from portstorm.report.natchart import NAT_CHART, has_router
    from portstorm.report.runcharts import RUN_CHARTS

    if not has_router(result):
        return tuple(RUN_CHARTS)
    return (RUN_CHARTS[0], NAT_CHART, *RUN_CHARTS[1:])


def many_report_names(html: Path) -> list[str]:
    from portstorm.report.manycharts import MANY_CHARTS

    return [html.name, *(f"{_prefix(html)}{stem}.png" for stem, _title, _draw in MANY_CHARTS)]


def _prepare(html: Path, names: list[str]) -> Folder:
    """The report's folder, open and checked (core/files.py) before anything is drawn:
    a link planted at any of ``names`` is refused now, not after the drawing."""
    if html.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"-o {html}: the report is an HTML file; name it something.html")
    folder = Folder.open(html.parent, what=f"-o {html}: folder")
    try:
        folder.refuse_links(names)
        folder.check_writable(what=f"-o {html}: folder")
    except BaseException:
        folder.remove_if_empty()
        folder.close()
        raise
    return folder


def _draw(
    specs: Sequence[tuple[str, str, Any]],
    data: Any,
    html: Path,
    cancelled: Callable[[], bool] = lambda: False,
) -> tuple[list[Chart], dict[str, bytes]]:
    """The charts, drawn in memory: (as the page shows them, file name -> PNG bytes).
    ``cancelled`` is asked between charts: True raises KeyboardInterrupt (a Ctrl-C that
    landed in a finalizer, where Python only reports it, still stops the drawing)."""
    from portstorm.report.style import charting, render_png

    charts, pngs = [], {}
    with charting():
        for stem, alt, draw in specs:
            if cancelled():
                raise KeyboardInterrupt
            fig = draw(data)
            name = f"{_prefix(html)}{stem}.png"
            png = pngs[name] = render_png(fig)
            uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            charts.append(Chart(_title(fig), alt, name, uri))
    return charts, pngs


def _commit(folder: Folder, files: dict[str, bytes]) -> None:
    """Write a report's files together, the HTML last, with Ctrl-C and SIGTERM held until
    the last is written (milliseconds; drawing, the slow part, happened in memory before).
    Interrupted while drawing, a report leaves nothing; once writing, it is whole. Each
    file is whole or absent (a full disk stops at the file it could not write)."""
    held = {signal.SIGINT, signal.SIGTERM}
    main = threading.current_thread() is threading.main_thread()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held) if main else set()
    try:
        for name, data in files.items():
            folder.write_bytes(name, data, sync=False)
    finally:
        if main:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)  # a held signal arrives here


def _title(fig: Any) -> str:
    sup = fig.get_suptitle()
    if sup:
        return str(sup)
    axes = fig.get_axes()
    return str(axes[0].get_title()) if axes else ""


def write_run_report(
    result: RunResult,
    html: Path,
    source: Path | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> ReportFiles:
    """The report of one run: its charts (the NAT chart too, with a router), findings,
    tunings, tables and exports."""
    from portstorm.report.exports import exports as run_exports
    from portstorm.report.page import render_run

    with _prepare(html, run_report_names(html)) as folder:
        charts, files = _draw(run_charts(result), result, html, cancelled)
        if cancelled():
            raise KeyboardInterrupt
        exports = run_exports(result, html.parent, _prefix(html), source)
        text = render_run(
            result,
            findings=run_findings(result),
            charts=charts,
            exports={k: p.name for k, (p, _text) in exports.items()},
            source=_relative(source, html) if source else None,
            generated=_now(),
        )
        written = {k: p for k, (p, _t) in exports.items()}
        for key in list(exports):  # made as bytes (a day's exports are ~45 MB)
            path, body = exports.pop(key)
            files[path.name] = body
            del body
        files[html.name] = text.encode("utf-8")
        _commit(folder, files)
    return ReportFiles(html, [html.parent / c.file for c in charts], written)


def remove_run_report(folder: Path) -> list[Path]:
    """Delete the default run report in ``folder`` (report.html, its charts and exports):
    ``run --force --no-report`` replaces a result, and a report of the old one must not
    stay beside the new one. Reports written under other names are the user's; kept."""
    removed = []
    with Folder.open(folder, what="--out", create=False) as where:
        for name in run_report_names():
            if where.is_file(name) and where.remove(name):
                removed.append(folder / name)
    return removed


def write_many_report(
    subjects: Sequence[Subject],
    html: Path,
    title: str,
    sweep: dict[str, Any] | None = None,
    inputs: Sequence[Path] = (),
    verdicts: Sequence[CaseVerdict] = (),
) -> ReportFiles:
    """The report of a sweep or comparison: a table of cases and four overlaid charts;
    ``verdicts``: compare's --fail-if, at the top (a sweep's come in its sweep.json)."""
    from portstorm.report.manycharts import MANY_CHARTS
    from portstorm.report.page import render_many

    if not subjects:
        names = ", ".join(str(p) for p in inputs) or "the inputs"
        raise UsageError(f"nothing to report: no finished run in {names}")
    with _prepare(html, many_report_names(html)) as folder:
        doc = comparison(subjects)
        charts, files = _draw(MANY_CHARTS, subjects, html)
        text = render_many(
            title=title,
            doc=doc,
            subjects=subjects,
            findings=compare_findings(doc),
            charts=charts,
            sweep=sweep,
            links=[[_relative(Path(p), html) for p in s.paths] for s in subjects],
            inputs=[_relative(p, html) for p in inputs],
            generated=_now(),
            verdicts=verdicts,
        )
        files[html.name] = text.encode("utf-8")
        _commit(folder, files)
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
        html = default_out_dir("compare") / DEFAULT_NAME
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
