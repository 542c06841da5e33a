"""The time axis of the run charts (report/timeaxis.py): seconds for a short run, h:mm on
whole hours for a day's soak, and the first failure's moment said to match."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from portstorm.report.timeaxis import LONG_TIME_LABEL, TIME_LABEL, time_axis, when


def _labels(span_s: float) -> tuple[str, list[str]]:
    fig = Figure()
    ax = fig.subplots()
    ax.plot([0, span_s], [0, 1])
    ax.set_xlim(0, span_s)
    time_axis(ax)
    fig.canvas.draw()
    shown = [t for t in ax.get_xticklabels() if 0 <= t.get_position()[0] <= span_s]
    return ax.get_xlabel(), [t.get_text() for t in shown]


def test_a_day_reads_in_hours_and_minutes_on_whole_hours() -> None:
    label, ticks = _labels(86_400)
    assert label == LONG_TIME_LABEL
    # a day read "0 ... 80000" in seconds before
    assert ticks == ["0:00", "4:00", "8:00", "12:00", "16:00", "20:00", "24:00"], ticks


@pytest.mark.parametrize(
    ("span_s", "step"), [(3 * 3600, "0:30"), (8 * 3600, "2:00"), (7 * 86_400, "24:00")]
)
def test_the_step_keeps_the_ticks_few(span_s: float, step: str) -> None:
    _label, ticks = _labels(span_s)
    assert ticks[0] == "0:00" and ticks[1] == step and len(ticks) <= 8, ticks


def test_a_short_run_keeps_seconds() -> None:
    label, ticks = _labels(75)
    assert label == TIME_LABEL and ":" not in "".join(ticks)


def test_the_first_failure_is_said_as_a_clock_past_two_hours() -> None:
    assert when(3.2) == "3.2 s"
    assert when(43_235.4) == "12:00:35 (43,235 s)"
