"""The charts of a sweep or comparison report: one category or line per subject (a sweep
cell, or a compared run), labelled by the factors that changed.

Containing drawing only; medians and spreads come from core/compare.py (each Subject's
``metrics``: Spread values of core/comparison.py, computed from its runs).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

from portstorm.core.binding import binding
from portstorm.core.bins import binned, bins
from portstorm.core.compare import Subject
from portstorm.core.comparison import Spread
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.records import Interval
from portstorm.core.signals import syn_tail
from portstorm.core.words import fmt_rate, fmt_s
from portstorm.report.latencyaxes import draw_spectrum, mark_syn_tails, style_spectrum
from portstorm.report.style import (
    BLUE,
    GREY,
    ORANGE,
    VERMILLION,
    legend_columns,
    line,
    new_figure,
    styles,
)
from portstorm.report.timeaxis import time_axis

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


TICK_CHARS = 104  # characters of tick labels that fit across a chart's width (10 pt)


def tick_label(s: Subject, of: int = 1) -> str:
    """A subject's name on an axis, one of ``of`` side by side: one factor per line, each
    broken to fit its share of the width (at the ``=``, then the name's ``_``) so that
    neighbours' labels do not run into each other (8 remedies, ip_local_port_range=...)."""
    width = max(10, min(22, TICK_CHARS // max(1, of)))
    if s.factors:
        return "\n".join(line for k, v in s.factors.items() for line in _fit(k, v, width))
    return "\n".join(textwrap.wrap(s.label, width)) or "?"


def _fit(name: str, value: str, width: int) -> list[str]:
    """``name=value`` in lines of at most ``width`` (a longer value: wrapped)."""
    if len(name) + 1 + len(value) <= width:
        return [f"{name}={value}"]
    words = name.split("_")
    lines, line = [], ""
    for part in [w + "_" for w in words[:-1]] + [words[-1] + "="]:
        if line and len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
    if len(line) + len(value) <= width:
        return [*lines, line + value]
    return [*lines, line, *(textwrap.wrap(value, width, break_on_hyphens=False) or [""])]


def legend_label(s: Subject) -> str:
    return ", ".join(f"{k}={v}" for k, v in s.factors.items()) if s.factors else s.label


def _axis_title(subjects: Sequence[Subject]) -> str:
    names = list(dict.fromkeys(k for s in subjects for k in s.factors))
    return ("cell: " + ", ".join(names)) if names else "run"


def _bars(
    ax: Axes,
    xs: list[float],
    spreads: list[Spread],
    width: float,
    colour: str,
    label: str,
    hatch: str | None = None,
) -> None:
    heights = [s.median or 0.0 for s in spreads]
    lo = [(s.median or 0.0) - (s.low if s.low is not None else s.median or 0.0) for s in spreads]
    hi = [(s.high if s.high is not None else s.median or 0.0) - (s.median or 0.0) for s in spreads]
    has_spread = any(s.n > 1 for s in spreads)
    ax.bar(
        xs,
        heights,
        width=width,
        color=colour,
        label=label,
        hatch=hatch,
        edgecolor="white" if hatch is None else "black",
        linewidth=0.5,
        yerr=[lo, hi] if has_spread else None,
        capsize=4 if has_spread else 0,
    )
    for x, s in zip(xs, spreads, strict=True):
        if s.median:
            ax.annotate(
                fmt_rate(s.median),
                (x, s.median),
                ha="center",
                va="bottom",
                fontsize=9,
                xytext=(0, 2),
                textcoords="offset points",
            )
        else:  # zero or not measured: written at the foot of the axis (a log axis has no 0)
            ax.annotate(
                "0" if s.median == 0 else "n/a",
                (x, 0.0),
                xycoords=("data", "axes fraction"),
                ha="center",
                va="bottom",
                fontsize=9,
                color=GREY,
            )


def rates(subjects: Sequence[Subject]) -> Figure:
    """Measured against predicted sustained rate, grouped per subject."""
    fig = new_figure(4.8)
    ax = fig.subplots()
    metrics = [s.metrics for s in subjects]
    groups = [
        ("rate", "measured, whole run", BLUE, None),
        ("after_exhaustion", "measured, after the ports ran out", ORANGE, None),
        ("model_rate", "model: sustainable", "#DDDDDD", "//"),
    ]
    shown = [g for g in groups if any(m[g[0]].median is not None for m in metrics)]
    values = [v for m in metrics for g in shown if (v := m[g[0]].median)]
    if values and max(values) / min(values) > 50:
        ax.set_yscale("log")
        ax.set_ylabel("connections per second (log)")
    else:
        ax.set_ylabel("connections per second")
    width = 0.8 / max(1, len(shown))
    for k, (key, label, colour, hatch) in enumerate(shown):
        xs = [i + (k - (len(shown) - 1) / 2) * width for i in range(len(subjects))]
        _bars(ax, xs, [m[key] for m in metrics], width, colour, label, hatch)
    ax.set_xticks(range(len(subjects)), [tick_label(s, len(subjects)) for s in subjects])
    ax.set_xlabel(_axis_title(subjects))
    ax.set_title(
        "Sustained rate: measured against the port-space model"
        + (
            "  (bars: median; whiskers: lowest to highest repeat)"
            if any(len(s.runs) > 1 for s in subjects)
            else ""
        )
    )
    fig.legend(loc="outside upper center", ncols=len(shown), frameon=False)
    return fig


def first_failure(subjects: Sequence[Subject]) -> Figure:
    """Time to the first failure per subject, with the prediction of the ceiling that binds
    (a NAT cell's pool, core/binding.py). The axis spans
    the failures and predictions; a case that never failed is a hatched bar to the edge."""
    fig = new_figure(1.0 + 0.55 * max(3, len(subjects)))
    ax = fig.subplots()
    ys = list(range(len(subjects)))[::-1]
    medians = [s.metrics["first_failure_s"] for s in subjects]
    predicted = [_predicted(s) for s in subjects]
    seen = [v for m in medians for v in (m.median, m.high) if v is not None]
    seen += [p for p in predicted if p is not None]
    edge = max(seen) * 1.35 if seen else max(r.duration_s for s in subjects for r in s.runs)
    labelled = False
    for y, s, m, p in zip(ys, subjects, medians, predicted, strict=True):
        if m.median is None:
            dur = max(r.duration_s for r in s.runs)
            ax.barh(y, edge, color="white", edgecolor=GREY, hatch="..", height=0.6)
            ax.annotate(f" no failure in {fmt_s(dur)}", (0, y), va="center", fontsize=10)
        else:
            err = None
            if m.n > 1 and m.low is not None and m.high is not None:
                err = [[m.median - m.low], [m.high - m.median]]
            ax.barh(y, m.median, color=VERMILLION, height=0.6, xerr=err, capsize=4)
            ax.annotate(
                f" {fmt_s(m.median)}",
                (m.median, y),
                va="center",
                fontsize=10,
                xytext=(4, 0),
                textcoords="offset points",
            )
        if p is not None:
            ax.plot(
                [p],
                [y],
                marker="D",
                color=BLUE,
                ms=8,
                ls="none",
                mec="white",
                label=None if labelled else "model's prediction",
            )
            labelled = True
    ax.set_yticks(ys, [legend_label(s) for s in subjects])
    ax.set_xlim(0, edge)
    ax.set_xlabel("seconds from the start of the load to the first failed attempt")
    ax.set_ylabel(_axis_title(subjects))
    ax.set_title("Time to first failure (hatched: never failed)")
    if labelled:
        fig.legend(loc="outside lower center", frameon=False)
    return fig


def _predicted(s: Subject) -> float | None:
    """The first run's prediction of the ceiling that binds (core/binding.py): a NAT
    cell's is its pool's (or conntrack limit's) when that runs out first."""
    for r in s.runs:
        p = binding(r.model).predicted_exhaustion_s if r.model is not None else None
        if p is not None:
            return float(p)
    return None


def time_wait(subjects: Sequence[Subject]) -> Figure:
    """Client TIME_WAIT over time, the first run of each subject overlaid."""
    fig = new_figure(4.6)
    ax = fig.subplots()
    any_data = False
    for s, (colour, dash) in zip(subjects, styles(), strict=False):
        r = s.runs[0]
        read = [i for i in r.intervals if i.time_wait is not None]
        if binned(read):  # a long run: each bin's highest reading (core/bins.py)
            read = [b.peak(_time_wait) or b.intervals[-1] for b in bins(read)]
        pts = [(i.t + i.dt, i.time_wait) for i in read if i.time_wait is not None]
        if not pts:
            continue
        any_data = True
        line(ax, pts, colour, dash, legend_label(s), markers=False)
    if not any_data:
        ax.text(0.5, 0.5, "not sampled", transform=ax.transAxes, ha="center", color=GREY)
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    time_axis(ax)
    ax.set_ylabel("client sockets in TIME_WAIT")
    many = any(len(s.runs) > 1 for s in subjects)
    ax.set_title("TIME_WAIT on the client" + (" (first repeat of each)" if many else ""))
    if any_data:
        fig.legend(
            loc="outside lower center",
            ncols=legend_columns([legend_label(s) for s in subjects]),
            frameon=False,
            title=_axis_title(subjects),
        )
    return fig


def _time_wait(i: Interval) -> float | None:
    return None if i.time_wait is None else float(i.time_wait)


def latency_spectra(subjects: Sequence[Subject]) -> Figure:
    """Connect-latency percentile spectra overlaid, all repeats of a subject merged."""
    fig = new_figure(4.8)
    ax = fig.subplots()
    highest, lowest = 0.0, float("inf")
    for s, (colour, dash) in zip(subjects, styles(), strict=False):
        merged = LatencyHistogram()
        for r in s.runs:
            merged.add(r.histogram)
        if merged.count:
            draw_spectrum(ax, merged, colour, dash, f"{legend_label(s)} ({merged.count:,})")
            highest = max(highest, float(merged.max or 0))
            lowest = min(lowest, float(merged.percentile(0.0) or 1))
    if highest:
        style_spectrum(ax, lowest, highest)
        if any(syn_tail(r) for s in subjects for r in s.runs):
            mark_syn_tails(ax, highest)
        fig.legend(
            loc="outside lower center",
            ncols=legend_columns([str(t) for t in ax.get_legend_handles_labels()[1]], most=2),
            frameon=False,
            title=_axis_title(subjects),
        )
    else:
        ax.text(0.5, 0.5, "no successful connect", transform=ax.transAxes, ha="center")
    ax.set_title("Connect latency spectra (repeats merged)")
    return fig


MANY_CHARTS = (
    ("rates", "Measured and predicted sustained rate per case", rates),
    ("first-failure", "Time to first failure per case", first_failure),
    ("time-wait", "Client TIME_WAIT over time, one line per case", time_wait),
    ("latency", "Connect latency percentile spectra, one line per case", latency_spectra),
)
