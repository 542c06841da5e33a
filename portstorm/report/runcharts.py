"""The four charts of a run report, each a matplotlib Figure drawn from a saved RunResult.

Containing drawing only: what the numbers mean (the knee, SYN tails, ceilings) comes from
core/signals.py, so the charts and the sentences above them cannot disagree.
Samples are taken at the end of each interval, so sampled series are plotted at t + dt;
per-interval counts are drawn as bars over [t, t + dt).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from portstorm.core.histogram import LatencyHistogram
from portstorm.core.outcome import FAILURES
from portstorm.core.result import Interval, RunResult
from portstorm.core.signals import SYN_RTO_US, ceiling, knee, samples, syn_tail
from portstorm.core.words import fmt_s
from portstorm.report.style import (
    BLACK,
    BLUE,
    GREEN,
    GREY,
    ORANGE,
    OUTCOME_COLOURS,
    PURPLE,
    VERMILLION,
    line,
    new_figure,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

KERNEL_COUNTERS = (
    ("TcpExtTW", "TIME_WAIT entered (TW)"),
    ("TcpExtTWRecycled", "TIME_WAIT reused by connect() (TWRecycled)"),
    ("TcpExtTCPTimeWaitOverflow", "TIME_WAIT skipped: max_tw_buckets (TCPTimeWaitOverflow)"),
    ("TcpExtListenDrops", "SYNs dropped by a listener (ListenDrops)"),
    ("TcpOutRsts", "RSTs sent (OutRsts)"),
)
NINES_TICKS = ((1.0, "0%"), (10.0, "90%"), (100.0, "99%"), (1e3, "99.9%"), (1e4, "99.99%"))
TIME_LABEL = "time since the load started (s)"


def failure_spans(
    intervals: Sequence[Interval], first_failure_s: float | None = None
) -> list[tuple[float, float]]:
    """[start, end) stretches of consecutive intervals in which some attempt failed; none
    starts before the first failure (the interval holding it began earlier)."""
    spans: list[tuple[float, float]] = []
    for i in intervals:
        if not i.n_failed:
            continue
        if spans and abs(spans[-1][1] - i.t) < 1e-3:
            spans[-1] = (spans[-1][0], i.t + i.dt)
        else:
            spans.append((i.t, i.t + i.dt))
    if spans and first_failure_s is not None and spans[0][0] < first_failure_s < spans[0][1]:
        spans[0] = (first_failure_s, spans[0][1])
    return spans


def nice_bounds(lo: float, hi: float) -> tuple[float, float]:
    """The 1-2-5 steps just below ``lo`` and just above ``hi`` (for a log axis)."""
    steps = [m * 10.0**e for e in range(0, 11) for m in (1.0, 2.0, 5.0)]
    below = max((v for v in steps if v <= lo), default=1.0)
    above = min((v for v in steps if v >= hi), default=steps[-1])
    return below, above


def latency_axis(ax: Axes, lo: float, hi: float) -> None:
    """A log axis of microseconds, ticks labelled in us, ms or s: 1-2-5 steps over up to
    three decades, powers of ten beyond."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    low, high = nice_bounds(max(lo, 1.0), max(hi, 1.0))
    ax.set_yscale("log")
    ax.set_ylim(low, high)
    subs = (1.0, 2.0, 5.0) if high / low <= 1e3 else (1.0,)
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: tick_us(v)))
    ax.yaxis.set_minor_formatter(NullFormatter())


def tick_us(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:g} s"
    return f"{v / 1e3:g} ms" if v >= 1e3 else f"{v:g} us"


def _mark_failures(ax: Axes, r: RunResult, label: bool = True) -> None:
    for k, (a, b) in enumerate(failure_spans(r.intervals, r.first_failure_s)):
        ax.axvspan(
            a,
            b,
            color=VERMILLION,
            alpha=0.10,
            lw=0,
            label="intervals with failures" if label and k == 0 else None,
        )
    _mark_first_failure(
        ax,
        r,
        f"first failure {fmt_s(r.first_failure_s or 0)} ({r.first_failure_outcome})"
        if label
        else None,
    )


def _mark_first_failure(ax: Axes, r: RunResult, label: str | None) -> None:
    if r.first_failure_s is not None:
        ax.axvline(r.first_failure_s, color=VERMILLION, lw=1.5, ls="--", label=label)


def _sample_times(r: RunResult) -> list[float]:
    return [i.t + i.dt for i in r.intervals]


def _no_data(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color=GREY)


def port_space(r: RunResult) -> Figure:
    """Ports in use toward the target and TIME_WAIT, under the port-space ceiling, from
    t = 0: the ramp's 100 ms readings show the first second's climb (signals.samples)."""
    fig = new_figure(4.6)
    ax = fig.subplots()
    seen = samples(r)
    x = [i.t + i.dt for i in seen]
    series = [
        ("ports in use toward the target(s)", [i.ports_in_use for i in seen], BLUE, "-"),
        ("TIME_WAIT, client", [i.time_wait for i in seen], ORANGE, "--"),
        ("TIME_WAIT, server", [i.server_time_wait for i in seen], GREEN, ":"),
    ]
    # a sandbox's namespaces are new, so nothing is held when the load starts: (0, 0) is
    # known there; on a host, sockets the run did not make may be, so no point is made up
    origin = [(0.0, 0)] if r.setup.sandbox in ("pair", "loopback") else []
    top = 0
    for label, ys, colour, dash in series:
        pts = [(t, y) for t, y in zip(x, ys, strict=True) if y is not None]
        if pts and pts[0][0] > 0:
            pts = origin + pts
        if not pts:
            continue
        top = max(top, max(y for _t, y in pts))
        line(ax, pts, colour, dash, label)
    ceil = ceiling(r)
    if ceil is not None and r.model is not None:
        tuples = r.model.tuples or 1
        what = f"{r.model.usable_ports:,} usable ports" + (
            f" x {tuples} tuples" if tuples > 1 else ""
        )
        ax.axhline(ceil, color=GREY, lw=5, alpha=0.5, zorder=1, label=f"ceiling: {what} = {ceil:,}")
        if top and ceil > 20 * top:
            ax.set_yscale("symlog", linthresh=max(10.0, top / 10))
    _mark_failures(ax, r)
    if not top and ceil is None:
        _no_data(ax, "not sampled in this run")
    ax.set_xlim(0, max(r.duration_s, x[-1] if x else 0.0))
    ax.set_ylim(bottom=0)
    ax.set_xlabel(TIME_LABEL)
    ax.set_ylabel("sockets (ports)")
    ax.set_title("Port space: ports held toward the target, against the ceiling")
    # below the axes, never over the data: "best" still covered a line at 0 or the ceiling
    fig.legend(loc="outside lower center", ncols=3, frameon=False)
    return fig


def connection_rate(r: RunResult) -> Figure:
    """Successes and failures per second by outcome, stacked, with the model's rate."""
    fig = new_figure(4.2)
    ax = fig.subplots()
    ivs = [i for i in r.intervals if i.dt > 0]
    lefts = [i.t for i in ivs]
    widths = [i.dt for i in ivs]
    bottom = [0.0] * len(ivs)
    outcomes = ["succeeded"] + [str(o) for o in FAILURES if any(str(o) in i.failed for i in ivs)]
    for name in outcomes:
        ys = [(i.succeeded if name == "succeeded" else i.failed.get(name, 0)) / i.dt for i in ivs]
        if not any(ys) and name != "succeeded":
            continue
        ax.bar(
            lefts,
            ys,
            width=widths,
            bottom=bottom,
            align="edge",
            color=OUTCOME_COLOURS[name],
            edgecolor="white",
            linewidth=0.4,
            label=name.replace("_", " "),
        )
        bottom = [b + y for b, y in zip(bottom, ys, strict=True)]
    model = r.model.sustainable_rate if r.model is not None else None
    if model is not None:
        ax.axhline(
            float(model),
            color=BLACK,
            ls="--",
            lw=1.8,
            label=f"model: sustainable {float(model):,.2f} conn/s",
        )
    _mark_first_failure(ax, r, f"first failure {fmt_s(r.first_failure_s or 0)}")
    if not ivs:
        _no_data(ax, "no intervals recorded")
    ax.set_xlim(0, max([r.duration_s] + [a + w for a, w in zip(lefts, widths, strict=True)]))
    ax.set_xlabel(TIME_LABEL)
    ax.set_ylabel("connections per second")
    ax.set_title("Connection rate: outcomes per second, stacked")
    fig.legend(loc="outside lower center", ncols=4, frameon=False)
    return fig


def _nines(p: float) -> float:
    return 1.0 / (1.0 - p / 100.0)


def draw_spectrum(ax: Axes, h: LatencyHistogram, colour: str, dash: str, label: str) -> None:
    """HdrHistogram's percentile plot: x = 1/(1-p) on a log axis out to 99.99 %; the
    maximum is drawn as a marker at the right edge."""
    pts = [(p, v) for p, v in h.spectrum() if p < 100.0]
    if not pts:
        return
    ax.plot(
        [_nines(p) for p, _ in pts],
        [max(v, 1) for _, v in pts],
        color=colour,
        ls=dash,
        lw=2,
        label=label,
    )
    mx = h.max
    if mx is not None:
        ax.plot([NINES_TICKS[-1][0]], [mx], marker="v", color=colour, ms=7, ls="none")


def style_spectrum(ax: Axes, lo_us: float, hi_us: float) -> None:
    from matplotlib.ticker import NullLocator

    ax.set_xscale("log")
    ax.set_xlim(1, NINES_TICKS[-1][0] * 1.2)
    ax.set_xticks([t for t, _ in NINES_TICKS], [lab for _, lab in NINES_TICKS])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("percentile, on a 1/(1-p) scale  (▼ maximum)")
    latency_axis(ax, lo_us, hi_us)
    ax.set_ylabel("connect latency (log scale)")


def mark_syn_tails(ax: Axes, highest_us: float) -> None:
    """Name the 1 s and 3 s SYN-retransmit levels (call only when signals.syn_tail found
    connects there: a slow smear crossing 1 s is not a retransmission)."""
    for level, text in (
        (SYN_RTO_US, "1 s: one SYN retransmitted"),
        (3 * SYN_RTO_US, "3 s: two SYNs retransmitted"),
    ):
        if highest_us >= 0.9 * level:
            ax.axhline(level, color=PURPLE, lw=1, ls=":")
            ax.annotate(
                text,
                (0.01, level),
                xycoords=("axes fraction", "data"),
                va="bottom",
                color=PURPLE,
                fontsize=10,
            )


def latency(r: RunResult) -> Figure:
    """The percentile spectrum, and p50/p99 per interval over time."""
    fig = new_figure(4.6)
    spec, over_time = fig.subplots(1, 2, width_ratios=[1, 1.3])
    h = r.histogram
    named_tail = syn_tail(r) > 0  # one pass over the histogram, for both panels
    if h.count:
        draw_spectrum(spec, h, BLUE, "-", f"{h.count:,} successful connects")
        style_spectrum(spec, float(h.percentile(0.0) or 1), float(h.max or 1))
        if named_tail:
            mark_syn_tails(spec, float(h.max or 0))
    else:
        _no_data(spec, "no successful connect")
    spec.set_title("Connect latency: percentile spectrum")

    x = _sample_times(r)
    top, bottom = 0.0, float("inf")
    for key, colour, dash in (("p50", BLUE, "-"), ("p99", ORANGE, "--")):
        # an interval without a success has no latency: NaN breaks the line there, where
        # leaving the interval out would draw it straight across the gap (and 0 is not a
        # latency, nor drawable on a log axis)
        pts = [
            (t, float("nan") if (v := i.latency_us.get(key)) is None else float(v))
            for t, i in zip(x, r.intervals, strict=True)
        ]
        seen = [v for _, v in pts if not math.isnan(v)]
        if seen:
            top = max(top, max(seen))
            bottom = min(bottom, min(seen))
            line(over_time, pts, colour, dash, f"{key} per interval")
    k = knee(r)
    if k is not None:
        over_time.axvline(
            k.t,
            color=GREEN,
            lw=1.5,
            ls="-.",
            label=f"port-search knee ({k.ports_in_use:,} of {k.ceiling:,} ports in use)",
        )
    _mark_failures(over_time, r, label=False)
    if top:
        latency_axis(over_time, bottom, top)
        if named_tail:
            mark_syn_tails(over_time, top)
        fig.legend(loc="outside lower center", ncols=2, frameon=False)
    else:
        _no_data(over_time, "no successful connect")
    over_time.set_xlim(0, max(r.duration_s, x[-1] if x else 0.0))
    over_time.set_xlabel(TIME_LABEL)
    over_time.set_ylabel("connect latency (log scale)")
    over_time.set_title("p50 and p99 per interval (failures shaded)")
    return fig


def kernel_counters(r: RunResult) -> Figure:
    """The TCP counters that explain port exhaustion, per second, client and server."""
    fig = new_figure(1.45 * len(KERNEL_COUNTERS) + 0.6)
    axes = fig.subplots(len(KERNEL_COUNTERS), 1, sharex=True)
    x = _sample_times(r)
    has_server = any(i.server_kernel is not None for i in r.intervals)
    for ax, (name, what) in zip(axes, KERNEL_COUNTERS, strict=True):
        totals = []
        for side, colour, dash in (("client", BLUE, "-"), ("server", ORANGE, "--")):
            pts = []
            for t, i in zip(x, r.intervals, strict=True):
                counters = i.kernel if side == "client" else i.server_kernel
                if counters is not None and i.dt > 0:
                    pts.append((t, counters.get(name, 0) / i.dt))
            if not pts:
                continue
            total = sum(
                c.get(name, 0)
                for i in r.intervals
                if (c := i.kernel if side == "client" else i.server_kernel) is not None
            )
            totals.append(f"{side} +{total:,}")
            line(ax, pts, colour, dash, side, markers=False)
        ax.set_title(f"{what}: {', '.join(totals) or 'not sampled'}", loc="left", fontsize=11)
        ax.set_ylabel("per s")
        if totals and all(t.endswith(" +0") for t in totals):
            ax.set_ylim(0, 1)
            ax.set_yticks([0, 1])
            _no_data(ax, "0 throughout")
        else:
            ax.set_ylim(bottom=0)
            ax.margins(y=0.15)
        _mark_failures(ax, r, label=False)
    if has_server:
        # one key for the five panels, below them: inside a panel it covered that
        # panel's peak (the counters spike at the start, often at the right)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False)
    axes[-1].set_xlabel(TIME_LABEL)
    axes[-1].set_xlim(0, max(r.duration_s, x[-1] if x else 0.0))
    fig.suptitle("Kernel counters per second (/proc/net/netstat, /proc/net/snmp)")
    return fig


# file stem, what it shows (the alt text), the drawing function
RUN_CHARTS = (
    (
        "port-space",
        "Ports in use and TIME_WAIT over time against the port-space ceiling",
        port_space,
    ),
    (
        "rate",
        "Connections per second by outcome, stacked, with the model's sustainable rate",
        connection_rate,
    ),
    ("latency", "Connect latency percentile spectrum, and p50/p99 per interval", latency),
    ("kernel", "Kernel TCP counters per second over time", kernel_counters),
)
