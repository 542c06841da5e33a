"""How a load ends: its last interval and its counts, exactly, however busy the machine.

Two disagreements seen on a busy machine, each a bug: an empty interval after the planned
end (a pool of three workers: per-interval attempts [601, 601, 598, 0]), and the built-in
sink counting fewer connections than the driver made (44,256 accepted, 44,552 connected).
"""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest
import trio

from portstorm.core.scenario import CloseMode, Scenario
from portstorm.engine.driver import Driver
from portstorm.engine.flows import Flow
from portstorm.engine.load import is_empty_tail
from portstorm.engine.sink_handle import SinkProcess

MS = 1_000_000


@pytest.mark.parametrize(
    ("start", "end", "planned_end", "left_out"),
    [
        (3000, 3001, 3000, True),  # a tick at the planned end, the load unwound 1 ms later
        (3000, 3040, 3000, True),  # ... or 40 ms later on a busy machine: still nothing in it
        (3000, 3400, 3000, True),  # an in-flight drain that completed nothing
        (2995, 3040, 3000, True),  # 5 ms of the load: under 1 % of a 1 s interval
        (2900, 3040, 3000, False),  # 100 ms of the load: a real (empty) interval
        (2000, 2500, 3000, False),  # stopped early (a signal) half-way through an interval
        (2000, 2005, 3000, True),  # stopped right after a tick
    ],
)
def test_an_empty_last_interval_is_kept_only_for_the_part_of_the_load_it_covers(
    start: int, end: int, planned_end: int, left_out: bool
) -> None:
    # 1 % of a 1 s interval, as Driver uses it; the old rule measured against ``end`` and
    # kept the first three (an empty interval after the end)
    assert is_empty_tail(start * MS, end * MS, planned_end * MS, 10 * MS) is left_out


@pytest.mark.xdist_group("alone")  # 0.1 s intervals of wall-clock time, in this process
def test_a_slow_interval_callback_at_the_end_adds_no_empty_interval() -> None:
    # Nothing listens on a bound, unlistened port: every connect() is refused at once.
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    flow = Flow(socket.AF_INET, None, hole.getsockname(), "127.0.0.1", "refused")
    scenario = Scenario(duration_s=0.3, interval_s=0.1, rate=200.0)
    try:
        for _ in range(5):  # the tick at the end and the load's end race: try both orders

            def slow(_interval: object) -> None:
                time.sleep(0.03)  # the worker's write to a full pipe, a busy machine

            report = trio.run(Driver(scenario, [flow], slow).run)
            starts = [round(i.t, 2) for i in report.intervals]
            # Three intervals, or a fourth after the planned end that holds what completed
            # there: the tick's 30 ms callback held the loop, so the starts due just before
            # the end ran late and completed after it (seen with stress-ng beside the
            # suite: [0.0, 0.1, 0.21, 0.31]). Never an empty one.
            assert 3 <= len(starts) <= 4 and starts[2] < 0.3, starts
            late = [i for i in report.intervals[3:]]
            assert all(i.attempts or i.not_started for i in late), report.intervals
            assert sum(i.attempts + i.not_started for i in report.intervals) == 60
    finally:
        hole.close()


def test_the_sink_counts_connections_still_queued_when_it_is_stopped() -> None:
    n = 600  # more than the sink accepts in one wake-up (ACCEPT_BATCH 256)
    with SinkProcess(["127.0.0.1"], CloseMode.CLIENT) as sink:
        proc = sink._proc
        assert proc is not None
        os.kill(sink.pid, signal.SIGSTOP)  # behind: every connection waits in the queue
        try:
            for _ in range(n):
                socket.create_connection(sink.listening[0]).close()  # the kernel completes it
            os.kill(sink.pid, signal.SIGTERM)  # stopped while every one is still queued
        finally:
            os.kill(sink.pid, signal.SIGCONT)
        proc.wait(timeout=30)  # it stops by itself: no second SIGTERM from the handle
    assert sink.stats is not None
    assert (sink.stats["accepted"], sink.stats["closed"]) == (n, n), sink.stats
