"""The NAT chart of a run report (--sandbox nat): what holds the router's ports, drawn from
the saved readings (Interval.router) under the NAT's ceiling (capacity.nat).

Containing drawing only, in the manner of runcharts.py: the router's conntrack entries by
TCP state stacked (open connections at the bottom, closing ones above), the NAT ports in
use toward the destinations as a line, and the pool (and the emulated conntrack limit) as
ceilings; below, the router's insert_failed, drop and clash_resolve per second. What the
numbers mean is core/natfindings.py's. Shown beside the client's own port-space chart,
only for a run with a router (``has_router``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from portstorm.core.bins import binned, bins
from portstorm.core.result import Interval, RunResult
from portstorm.core.signals import samples
from portstorm.report.style import (
    BLACK,
    BLUE,
    GREY,
    ORANGE,
    PURPLE,
    SKY,
    VERMILLION,
    YELLOW,
    count_log_axis,
    legend_columns,
    line,
    new_figure,
    stacked,
)
from portstorm.report.timeaxis import time_axis
from portstorm.report.timeseries import shade_failures

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# conntrack's TCP states in bands, bottom up: what a connection holds while open, then
# while it closes (label, states, colour, hatch)
STATE_BANDS: tuple[tuple[str, tuple[str, ...], str, str], ...] = (
    ("established (connections held open)", ("established",), SKY, ""),
    ("opening (syn_sent, syn_recv)", ("syn_sent", "syn_sent2", "syn_recv", "none"), YELLOW, ".."),
    ("closing (fin_wait, close_wait, last_ack)", ("fin_wait", "close_wait", "last_ack"),
     PURPLE, "\\\\"),
    ("time_wait (a new SYN may take it over)", ("time_wait",), ORANGE, "//"),
    ("close (after a RST)", ("close",), GREY, "xx"),
)  # fmt: skip
DROPS = (
    ("insert_failed", "insert_failed: SYNs dropped at insert", VERMILLION, "-"),
    ("drop", "drop", BLACK, "--"),
    ("clash_resolve", "clash_resolve", BLUE, ":"),
)


def has_router(r: RunResult) -> bool:
    """A run with a NAT router: its readings, or its model's NAT block."""
    return (r.model is not None and r.model.nat is not None) or any(
        i.router is not None for i in r.intervals
    )


def _points(seen: Sequence[Interval]) -> list[tuple[float, Interval]]:
    """(sample time, interval) where the router was read; from (0, nothing) since the
    router's namespace is new when the load starts. A long run's: each bin's fullest
    reading (core/bins.py), so no peak is lost."""
    read = [i for i in seen if i.router is not None]
    if binned(read):
        read = [b.peak(_entries) or b.intervals[-1] for b in bins(read)]
    return [(i.t + i.dt, i) for i in read]


def _entries(i: Interval) -> float | None:
    return None if i.router is None else float(i.router.conntrack_entries or 0)


def nat_ports(r: RunResult) -> Figure:
    fig = new_figure(5.6)
    ax, drops = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    pts = _points(samples(r))
    xs = [0.0, *(t for t, _ in pts)] if pts else []
    bands = []
    for label, states, colour, hatch in STATE_BANDS:
        ys = [0.0] + [
            float(sum(i.router.conntrack_by_state.get(s, 0) for s in states))
            for _t, i in pts
            if i.router is not None
        ]
        if pts and any(ys):
            bands.append((f"conntrack {label}", ys, colour, hatch))
    top = 0.0
    if bands:
        stacked(ax, xs, bands)
        top = max(sum(b[1][k] for b in bands) for k in range(len(xs)))
    used = [
        (t, float(n))
        for t, i in pts
        if i.router is not None and (n := i.router.nat_ports_total) is not None
    ]
    if used:
        line(ax, [(0.0, 0.0), *used], BLUE, "-", "NAT ports in use toward the destinations",
             markers=not binned(r.intervals))  # fmt: skip
        top = max(top, max(v for _t, v in used))
    nat = r.model.nat if r.model is not None else None
    ceilings = []
    if nat is not None:
        tuples = f" x {nat.tuples} tuples" if nat.tuples > 1 else ""
        ceilings.append((nat.port_space, f"NAT pool {nat.pool}: {nat.pool_ports:,} ports"
                         f"{tuples} = {nat.port_space:,}", GREY, "-", 5.0))  # fmt: skip
        if nat.conntrack_limit is not None:
            ceilings.append((nat.conntrack_limit, f"conntrack limit (ct count) "
                             f"{nat.conntrack_limit:,}", BLACK, "--", 2.0))  # fmt: skip
    for value, label, colour, dash, width in ceilings:
        ax.axhline(value, color=colour, ls=dash, lw=width, alpha=0.5, zorder=1, label=label)
    high = max((c[0] for c in ceilings), default=0)
    log = bool(top and high > 20 * top)
    if log:
        count_log_axis(ax, max(10.0, top / 10))
    _shade_failures(ax, r)
    if not pts:
        ax.text(0.5, 0.5, "the router was not read in this run", transform=ax.transAxes,
                ha="center", va="center", color=GREY)  # fmt: skip
    # room above the ceiling, so its line is not drawn on the frame
    ax.set_ylim(0, max(high, top) * (2.0 if log else 1.08) or 1)
    ax.set_ylabel("entries (NAT ports)")
    ax.set_title("NAT: ports in use and conntrack entries by state, against the pool")
    _drops(drops, r)
    drops.set_xlim(0, max(r.duration_s, xs[-1] if xs else 0.0))
    time_axis(drops)
    # one legend below both panels, never over the data
    handles, labels = ax.get_legend_handles_labels()
    more_h, more_l = drops.get_legend_handles_labels()
    labels += more_l
    fig.legend([*handles, *more_h], labels, loc="outside lower center",
               ncols=legend_columns(labels, most=2), frameon=False)  # fmt: skip
    return fig


def _drops(ax: Axes, r: RunResult) -> None:
    """The router's counters per second over each interval (deltas, /proc/net/stat)."""
    ivs = [i for i in r.intervals if i.router is not None and i.dt > 0]
    steps = bins(ivs)
    worst = binned(ivs)  # a long run: the worst interval of each bin, so a burst shows
    for attr, label, colour, dash in DROPS if ivs else ():
        values = [getattr(i.router, attr) for i in ivs]
        if not any(values) and attr != "insert_failed":
            continue

        def count(i: Interval, attr: str = attr) -> int:
            return int(getattr(i.router, attr))

        # a delta belongs to its whole interval: a step over [t, t + dt), not a point
        edges = [steps[0].t, *(b.end for b in steps)]
        rates = [b.peak_rate(count) if worst else b.rate(count) for b in steps]
        per = ", the worst interval of each bin" if worst else ""
        ax.stairs(rates, edges, baseline=None, color=colour, ls=dash, lw=2,
                  label=f"{label} (+{sum(values):,}){per}", zorder=3)  # fmt: skip
    if ivs and not any(getattr(i.router, a) for i in ivs for a, *_ in DROPS):
        ax.set_ylim(0, 1)
        ax.set_yticks([0, 1])
        ax.text(0.5, 0.5, "0 throughout", transform=ax.transAxes, ha="center", va="center",
                color=GREY)  # fmt: skip
    else:
        ax.set_ylim(bottom=0)
    ax.set_ylabel("per s")
    ax.set_title("router conntrack counters per second", loc="left", fontsize=11)
    _shade_failures(ax, r, label=False)


def _shade_failures(ax: Axes, r: RunResult, label: bool = True) -> None:
    shade_failures(ax, r, label)


NAT_CHART = (
    "nat",
    "NAT ports in use and the router's conntrack entries by state, stacked, under the "
    "NAT pool's ceiling; the router's insert_failed per second below",
    nat_ports,
)
