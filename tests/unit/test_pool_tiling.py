"""The pool's merged records tile the load's time (engine/pool.py ``_emit``): each starts
where the one before ended, whatever the workers' own part boundaries were."""

from __future__ import annotations

import itertools
import socket

from portstorm.core.records import Interval
from portstorm.core.scenario import Scenario
from portstorm.engine.flows import Flow
from portstorm.engine.pool import DriverPool
from portstorm.engine.sampler import Sample


def _part(t: float, end: float) -> Interval:
    return Interval(
        t=t, dt=end - t, attempts=1, succeeded=1, failed={}, other_errnos={}, latency_us={}
    )


def _pool(
    duration_s: float,
    parts: dict[int, list[Interval | None]],
    samples: dict[int, Sample | None],
) -> DriverPool:
    """A two-worker pool that has the workers' ``parts`` and its own ``samples`` in."""
    flow = Flow(socket.AF_INET, None, ("127.0.0.1", 9), "127.0.0.1", "sink")
    pool = DriverPool(Scenario(duration_s=duration_s, workers=2), [flow], workers=2)
    pool._parts, pool._samples = parts, samples
    return pool


def test_a_record_whose_parts_all_ended_before_the_last_ones_end_still_starts_after_it() -> None:
    # 1 s intervals: the ramp's 100 ms records first. Worker 0 woke late for tick 1 (its
    # record 0 ends at 0.12 s) and, behind, at once for tick 2 (its record 1 is empty, at
    # 0.12 s); worker 1's record 1 ended at 0.115 s: no part of record 1 ended after record
    # 0 did, which left record 1 starting at 0.1 s, before record 0's end, and the ramp
    # refused as out of order when the run was saved (0.502 after 0.521 s, in a full run)
    parts: dict[int, list[Interval | None]] = {
        0: [_part(0.0, 0.12), _part(0.0, 0.1)],
        1: [_part(0.12, 0.12), _part(0.1, 0.115)],
        2: [_part(0.12, 0.3), _part(0.115, 0.3)],
    }
    pool = _pool(2, parts, {0: None, 1: None, 2: None})
    pool._emit_ready()
    fold = pool._records._fold
    assert fold is not None  # the whole run's records: folded here
    got = [(round(i.t, 3), round(i.t + i.dt, 3)) for i in fold.ramp]
    assert got == [(0.0, 0.12), (0.12, 0.12), (0.12, 0.3)], got
    assert all(a[1] == b[0] for a, b in itertools.pairwise(got))  # no gap, no overlap


def test_the_record_before_a_short_last_one_takes_the_final_reading_when_its_tick_never_ran() -> (
    None
):
    # the workers' tick at the planned end (3.006 s) then their final flush (3.018 s): two
    # records after the last one this process sampled, whose own tick at the end lost the
    # race with the workers' end; a tick that sampled and failed (None) keeps its null
    parts: dict[int, list[Interval | None]] = {
        0: [_part(0.0, 1.0), _part(0.0, 1.0)],
        1: [_part(1.0, 2.03), _part(1.0, 2.03)],
        2: [_part(2.03, 3.006), _part(2.03, 3.006)],
        3: [_part(3.006, 3.018), _part(3.006, 3.016)],
    }
    pool = _pool(3, parts, {0: None})  # tick 1 sampled and failed; 2 and 3 never sampled
    final = Sample(time_wait=5, server_time_wait=None, ports_in_use=5,
                   ports_by_destination={}, kernel={}, server_kernel=None, fds=3)  # fmt: skip
    emitted: list[tuple[int, Sample | None]] = []
    pool._emit = lambda k, sample: emitted.append((k, sample))  # type: ignore[method-assign]
    pool._emit_rest(final)
    assert emitted == [(0, None), (1, None), (2, final), (3, final)], emitted
