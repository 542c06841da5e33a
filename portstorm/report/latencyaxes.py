"""Latency axes shared by the run and comparison charts: a log axis of microseconds
labelled in us, ms or s, and HdrHistogram's percentile spectrum with the SYN-retransmit
levels named. Containing drawing helpers only, no chart of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from portstorm.core.histogram import LatencyHistogram
from portstorm.core.signals import SYN_RTO_US
from portstorm.report.style import PURPLE

if TYPE_CHECKING:
    from matplotlib.axes import Axes

NINES_TICKS = ((1.0, "0%"), (10.0, "90%"), (100.0, "99%"), (1e3, "99.9%"), (1e4, "99.99%"))


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
