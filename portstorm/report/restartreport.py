"""The report of ``portstorm restart``: one chart (TIME_WAIT on the server's port over time,
every bind() attempt marked) and one self-contained HTML page, from its result.json.

Containing the drawing and the page of this experiment only; the look is the run
report's (report/style.py's palette and sizes, templates/base.html.j2), and the files go
through core/files.py's one writer, the HTML last. What the numbers mean comes from
core/restartfindings.py, so the chart and the sentences agree.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portstorm import __version__
from portstorm.core.errors import UsageError
from portstorm.core.files import Folder
from portstorm.core.finding import Finding
from portstorm.core.restart import VARIANTS, RestartResult
from portstorm.core.restartfindings import TIME_WAIT_S, restart_findings
from portstorm.core.result import utc_iso
from portstorm.core.words import fmt_s
from portstorm.report.page import Chart, environment
from portstorm.report.style import (
    BLUE,
    GREEN,
    GREY,
    VERMILLION,
    charting,
    legend_columns,
    line,
    new_figure,
    render_png,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CHART = "restart.png"
ROW_NAMES = {(False, False): "plain", (True, False): "SO_REUSEADDR", (False, True): "SO_REUSEPORT"}


def variant_name(reuseaddr: bool, reuseport: bool) -> str:
    return ROW_NAMES.get((reuseaddr, reuseport), "both options")


def draw_restart(r: RestartResult) -> Figure:
    """Top: TIME_WAIT sockets on the port, t = 0 when the old listener closed (the load
    before it). Below: one row per kind of bind(), a filled circle where it succeeded, a
    cross where it failed."""
    x = r.restart
    fig = new_figure(5.6)
    top, low = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1.3))
    pts = list(x.server_time_wait)
    if pts:
        line(top, pts, BLUE, "-", f"TIME_WAIT on port {r.server.rpartition(':')[2]} (server)",
             markers=len(pts) < 120)  # fmt: skip
    top.axvspan(-x.load_s, 0, color=GREY, alpha=0.12, lw=0, label="the load")
    top.axvline(0, color=GREY, ls="--", lw=1.2, label="old listener closed (t = 0)")
    tw_label = f"{TIME_WAIT_S} s (TCP_TIMEWAIT_LEN)"
    top.axvline(TIME_WAIT_S, color=GREY, ls=":", lw=1.2, label=tw_label)
    first = x.first_ok_without_reuseaddr_s
    if first is not None:
        top.axvline(first, color=GREEN, ls="-.", lw=1.5,
                    label=f"plain bind() first succeeds ({fmt_s(first)})")  # fmt: skip
    top.set_ylabel("sockets")
    top.set_ylim(bottom=0)
    top.set_title(f"Server restart on {r.server}: TIME_WAIT on the port, and each bind()")
    handles, labels = top.get_legend_handles_labels()
    # centred: the curve runs along the top and drops at the right
    top.legend(handles, labels, loc="center", ncol=legend_columns(labels, 2))
    for row, (reuseaddr, reuseport) in enumerate(VARIANTS):
        tries = [b for b in x.binds if (b.reuseaddr, b.reuseport) == (reuseaddr, reuseport)]
        ok = [b.t for b in tries if b.ok]
        bad = [b.t for b in tries if not b.ok]
        low.scatter(ok, [row] * len(ok), marker="o", color=GREEN, s=22, zorder=3,
                    label="bind() succeeded" if row == 0 else None)  # fmt: skip
        low.scatter(bad, [row] * len(bad), marker="x", color=VERMILLION, s=22, zorder=3,
                    label="bind() failed (EADDRINUSE)" if row == 0 else None)  # fmt: skip
    low.set_yticks(range(len(VARIANTS)), [variant_name(*v) for v in VARIANTS])
    low.set_ylim(-0.6, len(VARIANTS) - 0.4)
    low.axvline(0, color=GREY, ls="--", lw=1.2)
    low.set_xlabel("seconds since the old listener closed")
    h2, l2 = low.get_legend_handles_labels()
    if h2:
        low.legend(h2, l2, loc="upper center", bbox_to_anchor=(0.5, -0.45), ncol=2)
    return fig


def _attempts_table(r: RestartResult) -> list[dict[str, Any]]:
    rows = []
    for reuseaddr, reuseport in VARIANTS:
        tries = [b for b in r.restart.binds if (b.reuseaddr, b.reuseport) == (reuseaddr, reuseport)]
        failed = [b for b in tries if not b.ok]
        first = next((b for b in tries if b.ok), None)
        rows.append({
            "name": variant_name(reuseaddr, reuseport),
            "attempts": len(tries),
            "failed": len(failed),
            "errnos": ", ".join(sorted({b.errno or "" for b in failed})) or "\N{EN DASH}",
            "first_ok": fmt_s(first.t) if first else "never",
            "tw_at_first_ok": "\N{EN DASH}" if first is None else f"{first.server_time_wait}",
        })  # fmt: skip
    return rows


def _header(r: RestartResult) -> list[tuple[str, str]]:
    p = r.plan
    old = variant_name(p.old_reuseaddr, p.old_reuseport) if p.old_listener != "both" else (
        "SO_REUSEADDR and SO_REUSEPORT")  # fmt: skip
    return [
        ("host", f"{r.host.hostname} (Linux {r.host.kernel}, {r.host.cpus} CPUs)"),
        ("started", r.started_at),
        ("sandbox", "pair: client 198.18.0.1 to the server 198.18.0.2 across a veth"),
        ("load", f"{r.restart.connections:,} connections at {p.rate:g}/s in "
                 f"{fmt_s(r.restart.load_s)}, each closed by the server first"),
        ("old listener", f"{r.server}, {old if p.old_listener != 'none' else 'no option'}"),
        ("bind() attempts", f"every {p.probe_interval_s:g} s, for up to {p.max_wait_s:g} s"),
        ("server tcp_fin_timeout", r.server_tunings.get("net.ipv4.tcp_fin_timeout", "?")),
        ("server counters", ", ".join(f"{k.removeprefix('TcpExt').removeprefix('Tcp')} {v:,}"
                                      for k, v in r.restart.server_kernel.items() if v)),
    ]  # fmt: skip


def render_restart(
    r: RestartResult, findings: Sequence[Finding], charts: Sequence[Chart], generated: str
) -> str:
    env = environment()  # page.py's: the same escaping and filters
    return env.get_template("restart.html.j2").render(
        title=f"portstorm restart: {r.server}",
        findings=findings,
        header=_header(r),
        attempts=_attempts_table(r),
        charts=charts,
        complete=r.complete,
        version=__version__,
        generated=generated,
    )


def write_restart_report(r: RestartResult, html: Path) -> list[Path]:
    """report.html and restart.png in ``html``'s folder, the HTML last; the paths written."""
    if html.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"-o {html}: the report is an HTML file; name it something.html")
    with charting():
        fig = draw_restart(r)
        png = render_png(fig)
        title = str(fig.get_axes()[0].get_title())
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    alt = ("TIME_WAIT sockets on the server's port over time, and each bind() attempt: "
           "plain, with SO_REUSEADDR, with SO_REUSEPORT")  # fmt: skip
    charts = [Chart(title, alt, CHART, uri)]
    text = render_restart(r, restart_findings(r), charts, utc_iso(dt.datetime.now(dt.UTC)))
    with Folder.open(html.parent, what=f"-o {html}: folder") as folder:
        folder.refuse_links([CHART, html.name])
        folder.write_bytes(CHART, png, sync=False)
        folder.write_bytes(html.name, text.encode("utf-8"), sync=False)
    return [html, html.parent / CHART]
