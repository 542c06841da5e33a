"""The report of ``portstorm lastack``: what the server saw after its FIN in each case, as a
table, two charts (how its closes ended; its LAST_ACK sockets over time) and the
sentences, in one self-contained HTML page beside result.json.

Containing the drawing and the page of this experiment only, in the run report's look
(report/style.py, templates/base.html.j2); files go through core/files.py, the HTML last.
The counts and sentences are core/restartlastack.py's.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portstorm import __version__
from portstorm.core.files import Folder
from portstorm.core.restartlastack import CASES, CaseResult, case_finding
from portstorm.core.result import utc_iso
from portstorm.report.page import Chart, environment
from portstorm.report.style import (
    GREEN,
    ORANGE,
    SKY,
    VERMILLION,
    charting,
    legend_columns,
    line,
    new_figure,
    render_png,
    styles,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ENDINGS = "lastack-endings.png"
LAST_ACK = "lastack-last-ack.png"


def draw_endings(results: Sequence[CaseResult]) -> Figure:
    """Per case, stacked: closes that ended with the client's ACK (first time, or after a
    retransmitted FIN), those ended by a RST, and reads that ended in ECONNRESET."""
    fig = new_figure(4.2)
    ax = fig.subplots()
    names = [r.case for r in results]
    # a connection whose last ACK was dropped ended by a RST, or by the ACK of a FIN resent
    fin = [CASES[r.case].close == "fin" for r in results]
    rst = [r.server_rsts_received if f else 0 for r, f in zip(results, fin, strict=True)]
    clean_again = [max(0, r.last_acks_dropped - n) for r, n in zip(results, rst, strict=True)]
    clean_first = [max(0, r.connections - r.last_acks_dropped) if f else 0
                   for r, f in zip(results, fin, strict=True)]  # fmt: skip
    resets = [r.server_read_resets for r in results]
    bottom = [0] * len(results)
    bands = (
        ("closed by the client's ACK", clean_first, GREEN, ""),
        ("closed by its ACK of a retransmitted FIN", clean_again, SKY, "//"),
        ("LAST_ACK ended by a RST", rst, VERMILLION, "xx"),
        ("read ended in ECONNRESET (no FIN)", resets, ORANGE, ".."),
    )
    for label, values, colour, hatch in bands:
        ax.bar(names, values, bottom=bottom, color=colour, hatch=hatch, edgecolor="white",
               label=label, zorder=3)  # fmt: skip
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("server connections")
    ax.set_title("How the server's connections ended, per case")
    labels = [b[0] for b in bands]
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=legend_columns(labels, 2))
    return fig


def draw_last_ack(results: Sequence[CaseResult]) -> Figure:
    fig = new_figure(4.0)
    ax = fig.subplots()
    for r, (colour, dash) in zip(results, styles(), strict=False):
        if r.server_last_ack:
            line(ax, list(r.server_last_ack), colour, dash, r.case, markers=False)
    ax.set_xlabel("seconds since the case's first connection")
    ax.set_ylabel("server sockets in LAST_ACK")
    ax.set_ylim(bottom=0)
    ax.set_title("The server's LAST_ACK sockets over time (sock_diag, every 20 ms)")
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper right")
    return fig


def _rows(results: Sequence[CaseResult]) -> list[dict[str, Any]]:
    return [
        {
            "case": r.case, "client": CASES[r.case].what, "connections": r.connections,
            "max_rate": f"{CASES[r.case].max_rate:g}" if CASES[r.case].max_rate else None,
            "seen": r.last_acks_seen, "dropped": r.last_acks_dropped,
            "fin_rtx": r.fin_retransmits, "rst_in": r.server_rsts_received,
            "clean": r.clean_closes, "resets": r.server_read_resets,
            "challenge": r.server_kernel.get("TcpExtTCPSYNChallenge", 0),
            "peak": r.server_last_ack_peak,
        }
        for r in results
    ]  # fmt: skip


def write_lastack_report(
    doc: dict[str, Any], results: Sequence[CaseResult], html: Path
) -> list[Path]:
    """report.html and its two PNGs in ``html``'s folder, the HTML last."""
    share = int(doc["scenario"]["share_pct"])
    pngs: dict[str, bytes] = {}
    charts = []
    with charting():
        for name, draw, alt in (
            (ENDINGS, draw_endings, "How the server's connections ended in each case"),
            (LAST_ACK, draw_last_ack, "The server's LAST_ACK sockets over time, per case"),
        ):
            fig = draw(results)
            pngs[name] = render_png(fig)
            uri = "data:image/png;base64," + base64.b64encode(pngs[name]).decode("ascii")
            charts.append(Chart(str(fig.get_axes()[0].get_title()), alt, name, uri))
    env = environment()  # page.py's: the same escaping and filters
    text = env.get_template("restartlastack.html.j2").render(
        title="portstorm lastack: what TIME_WAIT protects",
        findings=[case_finding(r, share) for r in results],
        rows=_rows(results),
        scenario=doc["scenario"],
        host=doc["host"],
        charts=charts,
        complete=doc["complete"],
        version=__version__,
        generated=utc_iso(dt.datetime.now(dt.UTC)),
    )
    with Folder.open(html.parent, what=f"--out {html.parent}") as folder:
        folder.refuse_links([*pngs, html.name])
        for name, data in pngs.items():
            folder.write_bytes(name, data, sync=False)
        folder.write_bytes(html.name, text.encode("utf-8"), sync=False)
    return [html, *(html.parent / n for n in pngs)]
