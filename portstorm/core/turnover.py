"""The rate a run sustained once its ports had run out: over whole hold periods of the
ceiling that binds (``turnover``), else over what followed the first failure (``sustained``).

Containing the arithmetic behind ``RunResult.turnover()`` and
``RunResult.sustained_after_exhaustion()`` on a run's parts (this module cannot import
result.py, which calls it), no sentences (headline.py, the summary and compare.py word and
compare them) and nothing about how the ports ran out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from portstorm.core.binding import binding
from portstorm.core.capacity import TIME_WAIT_S, Capacity
from portstorm.core.setup import RunSetup

TW_EXPIRY_SLACK_S = 5.0  # TIME_WAIT ends 60 to 65 s after it began (timer wheel, KERNEL.md)


class Span(Protocol):
    """What the arithmetic reads of an interval (records.Interval, readings.IntervalReading)."""

    @property
    def t(self) -> float: ...
    @property
    def dt(self) -> float: ...
    @property
    def succeeded(self) -> int: ...


def turnover(
    intervals: Sequence[Span],
    setup: RunSetup,
    model: Capacity | None,
    complete: bool,
    first_failure_s: float | None,
    first_failure_outcome: str | None,
) -> tuple[int, float] | None:
    """Successes over at least one whole hold period after the first failure:
    (count, seconds).

    Once the ports have run out, an open loop gets each port back one hold time after it
    was taken, all at once if they were all taken at once: the steady rate is a per-period
    average (ports / hold), not what any one second shows. So count over k whole periods
    from the first interval after the failure, plus a few seconds for TIME_WAIT's timer (it
    fires late, never early: KERNEL.md). The hold is that of the ceiling that binds
    (core/binding.py): behind a full NAT pool a port comes back as its connection closes
    (the --hold; the router takes over closing entries), not after the client's 60 s of
    TIME_WAIT. None without a failure, without a hold time, or when the load's span ended
    within one period after it.
    """
    if first_failure_s is None or model is None:
        return None
    hold = float(binding(model).hold_s)
    if hold <= 0:
        return None
    slack = TW_EXPIRY_SLACK_S if hold >= TIME_WAIT_S else 0.0
    starts = held_starts(setup, complete, first_failure_s, first_failure_outcome)
    if starts is not None and not slack:
        return _held(intervals, setup, starts, hold)
    after = _after(intervals, setup, starts, first_failure_s)
    if not after:
        return None
    t0, end = after[0].t, after[-1].t + after[-1].dt
    periods = math.floor((end - t0 - slack) / hold + 1e-9)
    if periods < 1:
        return None
    stop = t0 + periods * hold + slack
    counted = [i for i in after if i.t + i.dt <= stop + 1e-6]
    covered = counted[-1].t + counted[-1].dt - t0 if counted else 0.0
    if slack:
        # TIME_WAIT expiry: ports return in bursts, one hold time apart; the counted
        # intervals hold whole bursts (the slack only lets late timers in), so the
        # time base is the periods themselves. Interval ends wobble by milliseconds.
        periods = round((covered - slack) / hold)
        return (sum(i.succeeded for i in counted), periods * hold) if periods >= 1 else None
    # reuse after a delay: ports return continuously; the counted intervals' own time
    # (their ends need not fall on period boundaries: 0.1 s periods in 1 s intervals)
    if covered < hold - 1e-9:
        return None
    return sum(i.succeeded for i in counted), covered


def sustained(
    intervals: Sequence[Span],
    setup: RunSetup,
    model: Capacity | None,
    complete: bool,
    first_failure_s: float | None,
    first_failure_outcome: str | None,
) -> float | None:
    """Successes per second once the ports had run out: over whole hold periods
    (``turnover``) when the load lasted that long, else over the whole intervals of its
    span after the first failure (a held loop's: over its starts, _held); None when no
    interval began in it, or a held loop's starts after the failure spanned less than one."""
    failure = (first_failure_s, first_failure_outcome)
    periods = turnover(intervals, setup, model, complete, *failure)
    if periods is not None:
        return periods[0] / periods[1]
    if first_failure_s is None:
        return None
    starts = held_starts(setup, complete, first_failure_s, first_failure_outcome)
    after = _after(intervals, setup, starts, first_failure_s)
    if not after:
        return None
    if starts is not None:  # what the starts after the failure got, over a reading at least
        sent, ended = starts
        if ended - sent < min(i.dt for i in after) - 1e-6:
            return None  # a few ms of starts: a success a retransmitted SYN late would count
        return sum(i.succeeded for i in after) / (ended - sent)
    span = sum(i.dt for i in after)
    return sum(i.succeeded for i in after) / span if span > 0 else None


def held_starts(
    setup: RunSetup, complete: bool, first_failure_s: float, first_failure_outcome: str | None
) -> tuple[float, float] | None:
    """A complete held open loop's starts after its ports ran out: (when the attempt that
    failed first was started, when the schedule's starts ended); None for other runs.

    An attempt is counted when it ends: a success a hold (and its connect) after its start,
    a timeout when it expires, --connect-timeout after its SYN (behind a full NAT pool,
    that is the first failure). The schedule's starts end at its planned end (the driver's
    time bound); the run goes on holding the last of them."""
    s = setup
    if not s.hold_s or not s.open_loop or s.duration_s is None or not complete:
        return None
    wait = float(s.connect_timeout_s or 0.0) if first_failure_outcome == "timeout" else 0.0
    return first_failure_s - wait, float(s.duration_s)


def _after(
    intervals: Sequence[Span],
    setup: RunSetup,
    starts: tuple[float, float] | None,
    first_failure_s: float,
) -> list[Span]:
    """The intervals that began at or after the first failure; a held run's from a hold
    after the start that failed (those before count attempts started before it)."""
    start = first_failure_s
    if setup.hold_s:
        start = (starts[0] if starts is not None else first_failure_s) + float(setup.hold_s)
    return [i for i in intervals if i.t >= start - 1e-6]


def _held(
    intervals: Sequence[Span],
    setup: RunSetup,
    starts: tuple[float, float],
    hold: float,
) -> tuple[int, float] | None:
    """A held open loop behind a ceiling that frees a port as its connection closes (a
    NAT pool): the successes of the starts after the failure, over the time those starts
    spanned. They are counted from a hold after the failed start to the run's end (the
    drain lets each end), not over that wall time: a success counted its hold after its
    start, or a second more after a retransmitted SYN, would put the load's last
    seconds short (measured: 23.5/s for a 25/s pool; 25.0/s over the starts). At least
    one period of starts; bursts of a pool freed at once are not cut to whole periods,
    so a span of k.5 periods can be off by up to half a pool."""
    sent, ended = starts
    span = ended - sent
    if span < hold - 1e-9:
        return None
    return sum(i.succeeded for i in _after(intervals, setup, starts, sent)), span
