"""The x axis of every chart over a run's time: seconds since the load started, read as
hours and minutes once the run is long.

Containing only the axis's label, ticks and tick labels (no data). Up to LONG_S the ticks
are matplotlib's own, in seconds. Past it, a day's soak read "0 ... 80000" in seconds and
its first failure "43,235 s": the ticks fall on whole hours (or half hours) and read h:mm,
at most MAX_TICKS of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from portstorm.core.words import fmt_s

if TYPE_CHECKING:  # matplotlib is loaded when a chart is drawn, as in every report module:
    # a run that writes no report (or is refused) names a report's files without it
    from matplotlib.axes import Axes

TIME_LABEL = "time since the load started (s)"
LONG_TIME_LABEL = "time since the load started (h:mm)"
LONG_S = 2 * 3600.0
MAX_TICKS = 8
STEPS_H = (0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 24.0, 48.0, 72.0, 168.0)


def time_axis(ax: Axes) -> None:
    """Label ``ax``'s x axis (seconds since the load started), ticks in h:mm when long.
    Call it once the x limits are set."""
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    span = ax.get_xlim()[1]
    if span <= LONG_S:
        ax.set_xlabel(TIME_LABEL)
        return
    step_h = next((h for h in STEPS_H if span / (h * 3600) <= MAX_TICKS - 1), STEPS_H[-1])
    ax.xaxis.set_major_locator(MultipleLocator(step_h * 3600))
    ax.xaxis.set_major_formatter(FuncFormatter(_hours_minutes))
    ax.set_xlabel(LONG_TIME_LABEL)


def when(seconds: float) -> str:
    """A moment of the run as a chart's legend says it: ``3.2 s``; past LONG_S, ``12:00:35``
    with the seconds beside it (``12:00:35 (43,235 s)``), as the terminal and findings say."""
    if seconds <= LONG_S:
        return fmt_s(seconds)
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d} ({fmt_s(seconds)})"


def _hours_minutes(seconds: float, _pos: object = None) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}:{minutes % 60:02d}"
