"""How often the closed loop of plain connects yields to trio (engine/attempts.py,
_closed_plain and CALM_SLICE_NS): every 4 ms while no tick is near, up to the tick when
one is, every 0.5 ms while one is being taken; and the ticker (engine/load.py, tick) says
which: each tick's time before it waits for it, 0 while it takes it. The loop runs here,
in this process, against a listener on the host's loopback, on a clock of its own that
moves 50 us a reading, so the yields fall on known readings."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import trio
import trio.testing

from portstorm.core.ramp import ramp_ends_ns, tick_offset_ns
from portstorm.core.scenario import CloseMode, Scenario
from portstorm.engine import attempts as attempts_module
from portstorm.engine.attempts import CALM_SLICE_NS, SLICE_NS
from portstorm.engine.driver import Driver
from portstorm.engine.flows import Flow
from portstorm.engine.load import tick

STEP_NS = 50_000  # the fake clock's move per reading


@contextmanager
def _listener() -> Iterator[tuple[str, int]]:
    """A listener on 127.0.0.1 that never accepts: its queue holds every connection made
    here (a few hundred, each reset at close)."""
    ls = socket.create_server(("127.0.0.1", 0), backlog=2048)
    try:
        yield ls.getsockname()
    finally:
        ls.close()


def _yields_at(monkeypatch: pytest.MonkeyPatch, calm_until_ns: int, end_ns: int) -> list[int]:
    """The fake clock's reading at each of the loop's yields, from 0 to ``end_ns``, with
    the ticker's word ``calm_until_ns``."""
    clock = iter(range(0, 10**12, STEP_NS))
    readings: list[int] = []

    def now() -> int:
        readings.append(next(clock))
        return readings[-1]

    yields: list[int] = []
    checkpoint = trio.lowlevel.checkpoint

    async def counted() -> None:
        yields.append(readings[-1])
        await checkpoint()

    monkeypatch.setattr(attempts_module, "perf_counter_ns", now)
    monkeypatch.setattr(trio.lowlevel, "checkpoint", counted)
    with _listener() as addr:
        sc = Scenario(duration_s=1.0, close=CloseMode.RST, concurrency=1)
        driver = Driver(sc, [Flow(socket.AF_INET, None, addr, "127.0.0.1", "server")])
        assert driver._plain  # the path under test
        driver._calm(calm_until_ns)
        trio.run(driver._closed_plain, end_ns)
    assert driver.counts.ok[0] > 0 and not any(driver.counts.failed)
    return yields


def _gaps(yields: list[int]) -> list[int]:
    return [b - a for a, b in itertools.pairwise(yields)]


def test_with_no_tick_near_the_loop_yields_every_4_ms(monkeypatch: pytest.MonkeyPatch) -> None:
    gaps = _gaps(_yields_at(monkeypatch, 10**12, 20_000_000))
    assert gaps, "no slice ended"
    # a slice ends at the first attempt past it: 4 ms, and up to an attempt (2 readings)
    assert all(CALM_SLICE_NS <= g <= CALM_SLICE_NS + 3 * STEP_NS for g in gaps), gaps


def test_while_a_tick_is_taken_the_loop_yields_every_half_ms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gaps = _gaps(_yields_at(monkeypatch, 0, 5_000_000))
    assert len(gaps) >= 8, gaps
    assert all(SLICE_NS <= g <= SLICE_NS + 3 * STEP_NS for g in gaps), gaps


def test_a_slice_ends_at_the_next_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    # the tick at 2.5 ms: the first slice ends there, not at 4 ms; past it (the ticker
    # not yet run), slices are the short ones
    yields = _yields_at(monkeypatch, 2_500_000, 6_000_000)
    assert 2_500_000 <= yields[1] <= 2_500_000 + 3 * STEP_NS, yields
    assert all(SLICE_NS <= g <= SLICE_NS + 3 * STEP_NS for g in _gaps(yields[1:])), yields


def test_the_ticker_says_each_ticks_time_then_0_while_it_takes_it() -> None:
    told: list[int] = []
    seen_in_tick: list[int] = []
    t0, step = 10**9, 1_000_000_000

    async def main() -> None:
        async with trio.open_nursery() as n:

            async def on_tick(k: int) -> None:
                seen_in_tick.append(told[-1])
                if k == 12:  # through the ramp's 100 ms ticks, past the first interval
                    n.cancel_scope.cancel()

            n.start_soon(tick, t0, step, on_tick, False, told.append)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    # ticks 1..12 each announced, then 0 while taken; the 13th announced before the
    # cancel reached its wait
    dues = told[0::2]
    assert told[1::2] == [0] * 12 and seen_in_tick == [0] * 12, told
    expected = [t0 + tick_offset_ns(k, step, ramp_ends_ns(step)) for k in range(1, 14)]
    assert dues == expected, dues
