"""The fleet report: one HTML page and its PNGs, from a saved fleet.json only.

Containing the fleet page's assembly: the per-host table sorted by rate after exhaustion,
the outliers with the rule that named them, the missing hosts, the sysctls that differ,
and charts of the merged fleet (the run report's own connection-rate and latency charts,
drawn on the fleet as one run: core/fleet.py) beside a per-host bar chart. Nothing is
measured or merged here; files are written through core/files.py, all together at the end.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portstorm import __version__
from portstorm.core.files import Folder
from portstorm.core.fleetfile import FleetDoc, HostRow, load_fleet
from portstorm.core.words import fmt_us
from portstorm.report.page import NONE, Chart, environment, file_link

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FLEET_CHARTS = ("fleet-hosts", "fleet-rate", "fleet-latency")


def fleet_report_names(html: Path) -> list[str]:
    prefix = "" if html.name == "report.html" else f"{html.stem}-"
    return [html.name, *(f"{prefix}{stem}.png" for stem in FLEET_CHARTS)]


def _host_bars(doc: FleetDoc) -> Figure:
    """Each host's rate after exhaustion (its rate where the ports never ran out), in the
    table's order, outliers hatched: colour is not the only mark."""
    from portstorm.report.style import BLUE, VERMILLION, new_figure

    rows = list(doc.rows)
    fig = new_figure(max(2.5, 0.45 * len(rows) + 1.2))
    ax = fig.subplots()
    values = [r.after_exhaustion if r.after_exhaustion is not None else r.rate for r in rows]
    odd = [bool(r.outlier) for r in rows]
    ys = list(range(len(rows)))[::-1]
    ax.barh(ys, values, color=[VERMILLION if o else BLUE for o in odd],
            hatch=None, edgecolor="black", linewidth=0.5)  # fmt: skip
    for y, v, o, r in zip(ys, values, odd, rows, strict=True):
        if o:
            ax.barh([y], [v], color="none", hatch="//", edgecolor="black", linewidth=0.5)
        kind = "after exhaustion" if r.after_exhaustion is not None else "no exhaustion"
        ax.annotate(f"{v:,.1f} ({kind})", (v, y), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=9)  # fmt: skip
    ax.set_yticks(ys, [r.name for r in rows])
    ax.set_xlabel("connections per second")
    ax.set_title("Rate after exhaustion per host (outliers hatched)")
    ax.margins(x=0.25)
    return fig


def _draw(doc: FleetDoc, prefix: str) -> tuple[list[Chart], dict[str, bytes]]:
    from portstorm.report.runcharts import connection_rate, latency
    from portstorm.report.style import charting, render_png

    specs: Sequence[tuple[str, str, Any]] = (
        (FLEET_CHARTS[0], "Each host's rate after exhaustion, sorted as the table",
         lambda: _host_bars(doc)),
        (FLEET_CHARTS[1], "The fleet's connections per second by outcome, every host's "
         "intervals added on wall-clock time", lambda: connection_rate(doc.merged)),
        (FLEET_CHARTS[2], "Connect latency of every connection of every host (histograms "
         "added)", lambda: latency(doc.merged)),
    )  # fmt: skip
    charts, pngs = [], {}
    with charting():
        for stem, alt, draw in specs:
            fig = draw()
            name = f"{prefix}{stem}.png"
            png = pngs[name] = render_png(fig)
            uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            axes = fig.get_axes()
            title = str(fig.get_suptitle() or (axes[0].get_title() if axes else ""))
            charts.append(Chart(title, alt, name, uri))
    return charts, pngs


def _row(r: HostRow) -> dict[str, Any]:
    ff = (
        "never"
        if r.first_failure_s is None
        else f"{r.first_failure_s:.2f} s {r.first_failure_outcome}"
    )
    return {
        "name": r.name, "hostname": r.hostname, "kernel": r.kernel, "attempts": r.attempts,
        "succeeded": r.succeeded, "rate": r.rate, "after": r.after_exhaustion, "ff": ff,
        "p50": fmt_us(r.p50_us) if r.p50_us is not None else NONE,
        "p99": fmt_us(r.p99_us) if r.p99_us is not None else NONE,
        "late": _late_ms(r), "offset": NONE if r.clock_offset_s is None
        else f"{r.clock_offset_s * 1000:+.3f} ms", "outlier": "; ".join(r.outlier),
    }  # fmt: skip


def _late_ms(r: HostRow) -> str:
    """How long after the agreed instant this host's load woke (ms)."""
    if not r.start_at or not r.load_started_at:
        return NONE
    try:
        a = dt.datetime.fromisoformat(r.start_at).timestamp()
        b = dt.datetime.fromisoformat(r.load_started_at).timestamp()
    except ValueError:
        return NONE
    return f"{(b - a) * 1000:+.1f} ms"


def _mixed(doc: FleetDoc) -> list[dict[str, Any]]:
    names = sorted({k for r in doc.rows for k in r.tunings})
    out = []
    for n in names:
        values = [r.tunings.get(n, NONE) for r in doc.rows]
        if len(set(values)) > 1:
            out.append({"name": n, "values": values})
    return out


def write_fleet_report(fleet_json: Path, html: Path) -> Any:
    """report.html (and its PNGs) for the fleet.json at ``fleet_json``."""
    from portstorm.report.build import ReportFiles

    doc = load_fleet(fleet_json)
    prefix = "" if html.name == "report.html" else f"{html.stem}-"
    with Folder.open(html.parent, what=f"-o {html}: folder") as folder:
        folder.refuse_links(fleet_report_names(html))
        charts, files = _draw(doc, prefix)
        m = doc.merged
        text = environment().get_template("fleet.html.j2").render(
            title=f"portstorm fleet: {len(doc.rows)} hosts ({m.setup.sandbox})",
            doc=doc, merged=m, rows=[_row(r) for r in doc.rows], mixed=_mixed(doc),
            hosts=[r.name for r in doc.rows],
            exhausted=sum(r.after_exhaustion is not None for r in doc.rows), charts=charts,
            p99=fmt_us(m.histogram.percentile(99.0) or 0) if m.histogram.count else NONE,
            spread=None if doc.start_spread_s is None else f"{doc.start_spread_s * 1000:.1f} ms",
            fleet_file=file_link(fleet_json.name) if fleet_json.parent == html.parent
            else str(fleet_json),
            generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), version=__version__,
        )  # fmt: skip
        files[html.name] = text.encode("utf-8")
        for name, data in files.items():
            folder.write_bytes(name, data, sync=False)
    return ReportFiles(html, [html.parent / c.file for c in charts])
