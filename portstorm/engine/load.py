"""What a run needs of its load, whoever carries it: one Driver (driver.py) in this process,
or a DriverPool (pool.py) of driver worker processes.

Containing the ``Load`` protocol and its ``DriverReport``, the ``Share`` of the load one
driver carries, ``drive()`` (a load that SIGINT/SIGTERM stop early), and the interval clock
and sampling both implementations use, so their intervals line up and mean the same thing.
No connection is opened here.

The interval clock: record k covers [tick k, tick k + 1) (tick 0: the start) in every
process of a run; the ticks fall every 100 ms through the first second, then on the
interval's multiples (``tick``). The ticker ends each record at its boundary, and the load
ends the last one after its last attempt, unless that one holds nothing and starts at the
planned end (``is_empty_tail``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Protocol

import trio

from portstorm.core.histogram import LatencyHistogram
from portstorm.core.ramp import ramp_ends_ns, tick_offset_ns
from portstorm.core.result import Interval
from portstorm.engine.processes import stopped_by_signal
from portstorm.engine.sampler import Sample


@dataclass(frozen=True, slots=True)
class Share:
    """Which part of the run's load a driver carries: worker ``index`` of ``count``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"worker {self.index} of {self.count}")

    def part(self, total: int) -> int:
        """This worker's part of ``total`` (in-flight slots): the parts add up to it."""
        return total // self.count + (1 if self.index < total % self.count else 0)


@dataclass
class DriverReport:
    # one per --interval; the first one's 100 ms parts in ramp (delivery.py, core/ramp.py)
    intervals: list[Interval] = field(default_factory=list)
    ramp: list[Interval] = field(default_factory=list)
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)
    # with a request/response or --http: the successes' transactions (engine/exchange.py)
    transactions: LatencyHistogram = field(default_factory=LatencyHistogram)
    first_failure_s: float | None = None
    first_failure_outcome: str | None = None
    elapsed_s: float = 0.0
    interrupted: bool = False
    sample_errors: list[str] = field(default_factory=list)
    # per flow, in the order of the run's flows (flows.FlowCounts.fill)
    flow_succeeded: list[int] = field(default_factory=list)
    flow_failed: list[dict[str, int]] = field(default_factory=list)
    flow_first_failure_s: list[float | None] = field(default_factory=list)
    flow_ports_last: list[int | None] = field(default_factory=list)
    flow_ports_peak: list[int | None] = field(default_factory=list)
    worker_errors: list[str] = field(default_factory=list)  # workers that ended early


class Load(Protocol):
    """A driver, or several in worker processes (pool.py): what a run needs of it."""

    @property
    def first_failure(self) -> tuple[float, str] | None: ...

    def stop(self) -> None: ...

    async def run(self) -> DriverReport: ...


async def drive(load: Load) -> DriverReport:
    """Run the load; SIGINT/SIGTERM stop it early and the partial report is kept."""
    async with stopped_by_signal(load.stop):
        return await load.run()


async def tick(
    t0_ns: int,
    step_ns: int,
    on_tick: Callable[[int], Awaitable[None]],
    skip_late: bool = False,
    calm: Callable[[int], None] | None = None,
) -> None:
    """Call ``on_tick(k)`` for k = 1, 2, ... until cancelled: every 100 ms through the first
    second (the ramp, core/ramp.py: the knee needs readings from before the port space
    fills), then at t0 + the interval's multiples. The processes of a pool tick on this one
    schedule, every tick, so tick k ends record k - 1 in each of them (pool.py merges by k).

    ``skip_late`` (a lone driver, which samples in its own loaded event loop): a fine tick
    whose successor is already due is skipped. Past the knee a connect() holds the loop
    for milliseconds, and 32 tasks of them made a scheduler pass of 0.1 to 0.4 s; each
    tick (a wake-up, then the sample's thread) took two or three passes, and ten fine ticks
    ran on to 3 s, the first interval with them. The closing tick is never skipped.

    ``calm``, if given, is told the perf_counter_ns() time of each tick before it is
    waited for, and 0 while ``on_tick`` runs: the closed loop's tasks yield less often
    until a tick is due and often while one is taken (attempts.py, CALM_SLICE_NS).
    """
    ends = ramp_ends_ns(step_ns)

    def skipped(k: int) -> int:
        """k, or the first tick after it not to skip (the wake-up itself may be late)."""
        while (
            skip_late
            and k <= len(ends)
            and t0_ns + tick_offset_ns(k + 1, step_ns, ends) <= perf_counter_ns()
        ):
            k += 1
        return k

    k = 1
    while True:
        k = skipped(k)
        due_ns = t0_ns + tick_offset_ns(k, step_ns, ends)
        if calm is not None:
            calm(due_ns)
        wait = due_ns - perf_counter_ns()
        if wait > 0:
            await trio.sleep(wait / 1e9)
        else:
            # Behind: the last interval's sample or callback took longer than the interval
            # (a worker's write to a full stdout pipe). Still give the scheduler back at
            # every tick: without a sampler nothing here awaits, and a ticker that never
            # caught up ran no other task again, not the load's end, not the signal
            # receiver (trio delivers SIGTERM to a task), so only SIGKILL ended it.
            await trio.lowlevel.checkpoint()
        k = skipped(k)
        if calm is not None:
            calm(0)
        await on_tick(k)
        k += 1


def is_empty_tail(start_ns: int, end_ns: int, planned_end_ns: int, min_ns: int) -> bool:
    """Whether the load's last interval, [start, end) with nothing counted in it, is to be
    left out: it covers less than ``min_ns`` of the planned load.

    A tick at the planned end races the load's own end: when the tick wins and the load
    takes a few milliseconds more to unwind (a busy machine: the interval callback, the
    nursery's exit), what follows the tick is an empty interval after the end, which a
    pool of three workers showed as per-interval attempts [601, 601, 598, 0]. Measured
    against the planned end, not against now, it is left out however late the unwinding;
    a load stopped early (a signal) keeps the part of an interval it ran.
    """
    return min(end_ns, planned_end_ns) - start_ns <= min_ns


async def take_sample(sample: Callable[[], Sample] | None, errors: list[str]) -> Sample | None:
    """Read the port space in a worker thread: /proc and netlink reads block.

    Not abandoned on cancel: a sample takes milliseconds, and an abandoned one would
    still be using the sampler when the next begins. A failed sample leaves that
    interval's readings null (and is noted in ``errors``); it never ends the run.
    """
    if sample is None:
        return None
    try:
        return await trio.to_thread.run_sync(sample)
    except (OSError, ValueError) as e:
        errors.append(f"{type(e).__name__}: {e}")
        return None


def with_sample(interval: Interval, sample: Sample | None) -> Interval:
    """``interval`` with the port-space readings taken at its end (none: left null)."""
    if sample is None:
        return interval
    return dataclasses.replace(
        interval,
        time_wait=sample.time_wait,
        server_time_wait=sample.server_time_wait,
        ports_in_use=sample.ports_in_use,
        established=sample.established,
        ports_by_destination=sample.ports_by_destination,
        kernel=sample.kernel,
        server_kernel=sample.server_kernel,
        fds=sample.fds,
        router=sample.router,
    )
