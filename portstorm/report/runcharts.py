"""The four charts of a run report, each a matplotlib Figure drawn from a saved RunResult.

Containing drawing only: what the numbers mean (the knee, SYN tails, ceilings) comes from
core/signals.py, so the charts and the sentences above them cannot disagree.
Samples are taken at the end of each interval, so sampled series are plotted at t + dt;
per-interval counts are drawn as bars over [t, t + dt).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from operator import attrgetter, methodcaller
from typing import TYPE_CHECKING

from portstorm.core import counters
from portstorm.core.binding import binding
from portstorm.core.bins import Bin, binned, bins, spans, totals
from portstorm.core.outcome import FAILURES
from portstorm.core.result import Interval, RunResult
from portstorm.core.signals import ceiling, counter_total, knee, samples, syn_tail
from portstorm.core.words import fmt_us
from portstorm.report.latencyaxes import (
    draw_spectrum,
    latency_axis,
    mark_syn_tails,
    style_spectrum,
)
from portstorm.report.style import (
    BLACK,
    BLUE,
    GREEN,
    GREY,
    ORANGE,
    OUTCOME_COLOURS,
    SKY,
    VERMILLION,
    count_log_axis,
    legend_columns,
    line,
    new_figure,
    stacked,
)
from portstorm.report.timeaxis import TIME_LABEL, time_axis, when
from portstorm.report.timeseries import (
    envelope,
    failure_spans,
    rate_of,
    run_bins,
    shade_failures,
    stacked_steps,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["KERNEL_COUNTERS", "RUN_CHARTS", "TIME_LABEL", "failure_spans"]

KERNEL_COUNTERS = (
    ("TcpExtTW", "TIME_WAIT entered (TW)"),
    ("TcpExtTWRecycled", "TIME_WAIT reused by connect() (TWRecycled)"),
    ("TcpExtTCPTimeWaitOverflow", "TIME_WAIT skipped: max_tw_buckets (TCPTimeWaitOverflow)"),
    ("TcpExtListenDrops", "SYNs dropped by a listener (ListenDrops)"),
    ("TcpOutRsts", "RSTs sent (OutRsts)"),
)


def _mark_failures(ax: Axes, r: RunResult, label: bool = True) -> None:
    shade_failures(ax, r, label)
    _mark_first_failure(
        ax,
        r,
        f"first failure {when(r.first_failure_s or 0)} ({r.first_failure_outcome})"
        if label
        else None,
    )


def _mark_first_failure(ax: Axes, r: RunResult, label: str | None) -> None:
    if r.first_failure_s is not None:
        ax.axvline(r.first_failure_s, color=VERMILLION, lw=1.5, ls="--", label=label)


def _no_data(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color=GREY)


def port_space(r: RunResult) -> Figure:
    """What holds the ports toward the target, under the port-space ceiling, from t = 0:
    connections held open (ESTABLISHED) and client TIME_WAIT stacked, so the top of the
    stack is the ports they take together; the sampler's ports in use (every holding
    state) as a line over it. The ramp's 100 ms readings show the first second's climb
    (signals.samples)."""
    fig = new_figure(4.6)
    ax = fig.subplots()
    seen = samples(r)
    dots = not binned(seen)  # a dot a reading, when there are few enough to see them
    if not dots:  # a long run: each bin's fullest reading, so no peak is lost
        seen = [b.peak(_held) or b.intervals[-1] for b in bins(seen)]
    x = [i.t + i.dt for i in seen]
    # a sandbox's namespaces are new, so nothing is held when the load starts: (0, 0) is
    # known there; on a host, sockets the run did not make may be, so no point is made up
    origin = r.setup.sandbox in ("pair", "loopback", "nat")
    top = _stack(ax, x, seen, origin)
    unread = top is None and bool(seen)
    if unread:  # samples, but neither band read at any (a sampler that failed throughout)
        _no_data(ax, "connections held open and TIME_WAIT were not read in this run")
    top = top or 0
    lines = [
        ("ports in use toward the target(s)", [i.ports_in_use for i in seen], BLUE, "-"),
        ("TIME_WAIT, server", [i.server_time_wait for i in seen], GREEN, ":"),
    ]
    for label, ys, colour, dash in lines:
        pts = _known(x, [ys], origin)
        if pts:
            top = max(top, max(y for _t, (y,) in pts))
            line(ax, [(t, y) for t, (y,) in pts], colour, dash, label, markers=dots)
    ceil = ceiling(r)
    if ceil is not None and r.model is not None:
        tuples = r.model.tuples or 1
        what = f"{r.model.usable_ports:,} usable ports"
        if tuples > 1 or ceil != r.model.usable_ports:  # one tuple: no sum to show
            what += f"{f' x {tuples} tuples' if tuples > 1 else ''} = {ceil:,}"
        ax.axhline(ceil, color=GREY, lw=5, alpha=0.5, zorder=1, label=f"ceiling: {what}")
        if top and ceil > 20 * top:
            count_log_axis(ax, max(10.0, top / 10))
    _mark_failures(ax, r)
    if not top and ceil is None and not unread:
        _no_data(ax, "not sampled in this run")
    ax.set_xlim(0, max(r.duration_s, x[-1] if x else 0.0))
    ax.set_ylim(bottom=0)
    time_axis(ax)
    ax.set_ylabel("sockets (ports)")
    ax.set_title("Port space: ports held toward the target, against the ceiling"
                 + _binned_note(bins(samples(r)), "each bin's fullest reading"))  # fmt: skip
    # below the axes, never over the data: "best" still covered a line at 0 or the ceiling
    labels = ax.get_legend_handles_labels()[1]
    fig.legend(loc="outside lower center", ncols=legend_columns(labels), frameon=False)
    return fig


def _held(i: Interval) -> float | None:
    """What holds ports at a reading: established and TIME_WAIT, else the ports in use."""
    if i.established is None and i.time_wait is None:
        return None if i.ports_in_use is None else float(i.ports_in_use)
    return float((i.established or 0) + (i.time_wait or 0))


def _known(
    x: Sequence[float], layers: Sequence[Sequence[int | None]], origin: bool
) -> list[tuple[float, tuple[int, ...]]]:
    """The samples at which every layer was read (a failed sample reads none), from
    (0, 0, ...) in a sandbox."""
    pts = [(t, tuple(v for v in vs if v is not None)) for t, *vs in zip(x, *layers, strict=True)]
    pts = [(t, vs) for t, vs in pts if len(vs) == len(layers)]
    if pts and origin and pts[0][0] > 0:
        pts.insert(0, (0.0, (0,) * len(layers)))
    return pts


def _stack(ax: Axes, x: Sequence[float], seen: Sequence[Interval], origin: bool) -> int | None:
    """Established (none in files from before it was sampled) and client TIME_WAIT as
    stacked bands; the highest top. None when neither was read at any sample: nothing
    to stack (stackplot needs a layer)."""
    bands = [
        ("established: connections held open", [i.established for i in seen], SKY, ""),
        ("TIME_WAIT, client", [i.time_wait for i in seen], ORANGE, "//"),
    ]
    bands = [b for b in bands if any(v is not None for v in b[1])]
    if not bands:
        return None
    pts = _known(x, [b[1] for b in bands], origin)
    if pts:
        layers = [(b[0], [vs[k] for _t, vs in pts], b[2], b[3]) for k, b in enumerate(bands)]
        stacked(ax, [t for t, _ in pts], layers)
    return max((sum(vs) for _t, vs in pts), default=0)


def connection_rate(r: RunResult) -> Figure:
    """Successes and failures per second by outcome, stacked, with the model's rate (of
    the ceiling that binds first: a NAT run's pool, where that is lower)."""
    fig = new_figure(4.2)
    ax = fig.subplots()
    timed = [i for i in r.intervals if i.dt > 0]
    steps = run_bins(timed)
    # an outcome any interval counted (the run's totals hold each name an interval did)
    outcomes = ["succeeded"] + [str(o) for o in FAILURES if str(o) in r.failed]
    # each bin's counts over its time, from columns (one value an interval) summed in C
    dts = list(map(attrgetter("dt"), timed))
    spent = totals(steps, dts)
    fails = list(map(attrgetter("failed"), timed))
    layers = []
    for name in outcomes:
        col = (list(map(attrgetter("succeeded"), timed)) if name == "succeeded"
               else list(map(methodcaller("get", name, 0), fails)))  # fmt: skip
        ys = [n / s if s > 0 else 0.0 for n, s in zip(totals(steps, col), spent, strict=True)]
        if any(ys) or name == "succeeded":
            layers.append((name.replace("_", " "), ys, OUTCOME_COLOURS[name]))
    stacked_steps(ax, steps, layers)
    n_failed = list(map(sum, map(methodcaller("values"), fails)))
    if binned(r.intervals) and any(n_failed):
        # a bin's rates are its mean: one interval's burst of failures among 90 would
        # hardly show, so the worst interval of each bin is drawn over them
        edges = [steps[0].t, *(b.end for b in steps)]
        per_s = list(map(operator.truediv, n_failed, dts))
        peaks = [max(per_s[a:b], default=0.0) for a, b in spans(steps)]
        ax.stairs(peaks, edges, baseline=None, color=VERMILLION, lw=1.2, zorder=3,
                  label="failed, the worst interval of each bin")  # fmt: skip
    # the ceiling that binds first: a NAT run's may be its pool (core/binding.py)
    bound = binding(r.model) if r.model is not None else None
    model = bound.sustainable_rate if bound is not None else None
    if model is not None and bound is not None:
        which = "" if r.model is None or r.model.nat is None else f" ({bound.what})"
        ax.axhline(
            float(model),
            color=BLACK,
            ls="--",
            lw=1.8,
            label=f"model{which}: sustainable {float(model):,.2f} conn/s",
        )
    _mark_first_failure(ax, r, f"first failure {when(r.first_failure_s or 0)}")
    if not steps:
        _no_data(ax, "no intervals recorded")
    ax.set_xlim(0, max([r.duration_s] + [b.end for b in steps]))
    time_axis(ax)
    ax.set_ylabel("connections per second")
    ax.set_title("Connection rate: outcomes per second, stacked"
                 + _binned_note(steps, "each bin's rates over its time"))  # fmt: skip
    # four columns of long labels (a model, a first failure at 12:00:19 (43,219 s)) ran
    # past the figure's edge: as many as fit
    labels = [str(t) for t in ax.get_legend_handles_labels()[1]]
    fig.legend(loc="outside lower center", ncols=legend_columns(labels, most=4), frameon=False)
    return fig


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

    steps = run_bins(r.intervals)
    top, bottom = 0.0, float("inf")
    for key, colour, dash in (("p50", BLUE, "-"), ("p99", ORANGE, "--")):
        # an interval without a success has no latency: NaN breaks the line there, where
        # leaving the interval out would draw it straight across the gap (and 0 is not a
        # latency, nor drawable on a log axis)
        if not any(i.latency_us.get(key) is not None for i in r.intervals):
            continue
        seen = envelope(over_time, steps, _percentile(key), colour, dash, f"{key} per interval")
        if seen:
            top = max(top, max(seen))
            bottom = min(bottom, min(seen))
    if binned(r.intervals):
        _mark_worst(over_time, r.intervals, "p99", ORANGE)
    k = knee(r)
    if k is not None:
        over_time.axvline(
            k.t,
            color=GREEN,
            lw=1.5,
            ls="-.",
            label=(
                f"port-search knee (half of {k.ceiling:,} ports in use)"
                if k.at_half
                else f"port-search knee ({k.ports_in_use:,} of {k.ceiling:,} ports in use)"
            ),
        )
    _mark_failures(over_time, r, label=False)
    if top:
        latency_axis(over_time, bottom, top)
        if named_tail:
            mark_syn_tails(over_time, top)
        fig.legend(loc="outside lower center", ncols=2, frameon=False)
    else:
        _no_data(over_time, "no successful connect")
    over_time.set_xlim(0, max(r.duration_s, steps[-1].end if steps else 0.0))
    time_axis(over_time)
    over_time.set_ylabel("connect latency (log scale)")
    over_time.set_title("p50 and p99 per interval (failures shaded)" + _binned_note(steps))
    return fig


def _mark_worst(ax: Axes, intervals: Sequence[Interval], key: str, colour: str) -> None:
    """A marker on the highest reading of ``key`` in a binned chart, with its value and
    time in the legend: one interval among the ~90 of a bin is a line a pixel wide at
    the band's top, and a failure marker at the same moment (a burst of timeouts, where
    the slow connects are) would hide it."""
    value = _percentile(key)
    best: tuple[float, Interval] | None = None
    for i in intervals:
        v = value(i)
        if v is not None and (best is None or v > best[0]):
            best = (v, i)
    if best is None:
        return
    v, i = best
    ax.plot([i.t + i.dt], [v], ls="none", marker="v", ms=8, color=colour, mec=BLACK, mew=0.8,
            zorder=5, label=f"highest {key}: {fmt_us(v)} at {when(i.t)}")  # fmt: skip


def _percentile(key: str) -> Callable[[Interval], float | None]:
    def value(i: Interval) -> float | None:
        v = i.latency_us.get(key)
        return None if v is None else float(v)

    return value


def _binned_note(steps: Sequence[Bin], what: str = "median line, lowest-highest band") -> str:
    """Said under a binned chart's title: how many intervals a bin, and what is drawn."""
    n = max((len(b.intervals) for b in steps), default=1)
    return f"\n({n:,} intervals a bin: {what})" if n > 1 else ""


def kernel_counters(r: RunResult) -> Figure:
    """The TCP counters that explain port exhaustion, per second, client and server."""
    fig = new_figure(1.45 * len(KERNEL_COUNTERS) + 0.6)
    axes = fig.subplots(len(KERNEL_COUNTERS), 1, sharex=True)
    steps = run_bins(r.intervals)
    has_server = any(i.server_kernel is not None for i in r.intervals)
    dts = list(map(attrgetter("dt"), r.intervals))
    for ax, (name, what) in zip(axes, KERNEL_COUNTERS, strict=True):
        said = []
        for side, colour, dash in (("client", BLUE, "-"), ("server", ORANGE, "--")):
            server = side == "server"
            total = counter_total(r.intervals, name, server=server)
            if total is None:
                continue
            said.append(f"{side} +{total:,}")
            # per second, a column of the run's counter rows read in C (core/counters.py)
            counts = counters.table(r.intervals, "server_kernel" if server else "kernel").column(
                name
            )
            per_s = [None if c is None or dt <= 0 else c / dt
                     for c, dt in zip(counts, dts, strict=True)]  # fmt: skip
            envelope(ax, steps, per_s, colour, dash, side, middle=rate_of, markers=False)
        ax.set_title(f"{what}: {', '.join(said) or 'not sampled'}", loc="left", fontsize=11)
        ax.set_ylabel("per s")
        if said and all(t.endswith(" +0") for t in said):
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
    axes[-1].set_xlim(0, max(r.duration_s, steps[-1].end if steps else 0.0))
    time_axis(axes[-1])
    fig.suptitle("Kernel counters per second (/proc/net/netstat, /proc/net/snmp)"
                 + _binned_note(steps, "line, its rate; band, lowest to highest"))  # fmt: skip
    return fig


# file stem, what it shows (the alt text), the drawing function
RUN_CHARTS = (
    (
        "port-space",
        "Established and TIME_WAIT stacked, and ports in use, over time under the ceiling",
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
