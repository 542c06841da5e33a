"""``run --start-at``: the load of a prepared run begins at an agreed wall-clock instant.

Containing the conversion of that instant to the load's own clock (perf_counter_ns, the
one every driver process of a run shares: load.py), the refusal of a start that passed
while the sandbox was prepared, and the reading of when the load really began and how
far this host's clock is from NTP, for result.json. The instant's parsing and the
refusals' words are core/startat.py's; the order of operations is run.py's.

Several hosts started this way cover the same wall-clock seconds to within their clocks'
offsets (NTP: typically a millisecond or less on a LAN) plus each one's wake-up lateness:
intervals are ticked from the agreed instant (load.py's ``tick``), so record k of every
host covers [T + k, T + k + 1) on its own clock, and core/fleet.py adds them by k.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import trio

from portstorm.core.errors import PortstormError
from portstorm.core.setup import RunSetup
from portstorm.core.startat import check_not_late, iso
from portstorm.engine.clock import ClockOffset, clock_offset, perf_ns_at
from portstorm.engine.load import DriverReport, Load, drive
from portstorm.engine.timer import trio_time

# What is left to do after the check before the load can begin (the lone driver's task
# start; a pool's workers check their own start: pool.py's _start).
START_MARGIN_S = 0.02


def load_start_ns(start_at_s: float | None, started: dt.datetime) -> int | None:
    """The perf_counter_ns() instant of ``--start-at`` (None without), or EnvironmentProblem
    (exit 3) when preparing took until past it."""
    if start_at_s is None:
        return None
    now = time.time()
    check_not_late(start_at_s, now, START_MARGIN_S, now - started.timestamp())
    return perf_ns_at(start_at_s)


async def drive_from(load: Load, start_ns: int | None, began: list[float]) -> DriverReport:
    """``drive(load)``; with a start instant, also note in ``began`` the wall-clock time
    at which this process woke at it (the load's own wake-up, within the same loop)."""
    try:
        if start_ns is None:
            return await drive(load)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_note_start, start_ns, began)
            report = await drive(load)
            nursery.cancel_scope.cancel()
        return report
    except BaseExceptionGroup as group:
        # a refusal raised inside the load's nurseries (a pool's late start, a worker that
        # could not start) reaches the user as its one line, not as a group's traceback
        leaves = _leaves(group)
        if len(leaves) == 1 and isinstance(leaves[0], PortstormError | KeyboardInterrupt):
            raise leaves[0] from None
        raise


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for e in group.exceptions:
        out += _leaves(e) if isinstance(e, BaseExceptionGroup) else [e]
    return out


async def _note_start(start_ns: int, began: list[float]) -> None:
    await trio.sleep_until(trio_time(start_ns))
    began.append(time.time())


def with_start(setup: RunSetup, start_at_s: float | None, began: list[float]) -> RunSetup:
    """The run's setup with the start asked for, the one measured and the clock's offset."""
    if start_at_s is None:
        return setup
    offset: ClockOffset = clock_offset()
    return dataclasses.replace(
        setup,
        start_at=iso(start_at_s),
        load_started_at=_iso_us(began[0]) if began else None,
        clock_offset_s=offset.offset_s,
        clock_source=offset.source,
    )


def _iso_us(t_s: float) -> str:
    """Microseconds: how late this host woke is the figure a fleet compares."""
    return dt.datetime.fromtimestamp(t_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
