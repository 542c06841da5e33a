"""A wake-up at a precise instant for the open-loop schedule: a timerfd that Trio waits on.

Containing the timer and the open-loop schedule's arithmetic on the same clock (how many
starts fall within the duration; a perf_counter_ns() instant on trio's clock). Why the timer
exists: trio.sleep() ends in epoll_wait(), whose timeout
is whole milliseconds (Python rounds up), so a scheduler that sleeps until each attempt's
intended start wakes 0 to 1 ms late. The open loop measures latency from the intended start
(coordinated omission), so that lateness was reported as connect latency: 1,001 us p50 at
200/s for connects the kernel completed in ~40 us (measured in the pair sandbox). A timerfd
armed with an absolute CLOCK_MONOTONIC time fires from an hrtimer, to the microsecond, and
epoll returns as soon as it is readable (timerfd_create(2)). perf_counter_ns() reads the same
clock on Linux, so intended times need no conversion.

A timerfd alone still wakes 150-300 us late on this 2-core VM (p50 154 us, p99 298 us: the
idle CPU's wake-up), so the timer is armed SPIN_NS early and the last stretch is spent in
Trio checkpoints, which run any other ready task meanwhile: lag p50 4 us, p99 11 us
(benchmarks/timer_lag.py). The cost is at most SPIN_NS of CPU per wake-up: 6 % of a core at
200 attempts/s, nothing at rates where attempts are closer together than that anyway.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import struct
from time import perf_counter_ns
from types import TracebackType

import trio

CLOCK_MONOTONIC = 1
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC
TFD_TIMER_ABSTIME = 1
_ITIMERSPEC = struct.Struct("=qqqq")  # it_interval {sec, nsec}, it_value {sec, nsec}
SPIN_NS = 300_000


class PreciseTimer:
    """``async with PreciseTimer() as t: await t.sleep_until(ns)``; trio.sleep where the
    kernel has no timerfd (then the millisecond lateness stays, and ``precise`` is False)."""

    def __init__(self) -> None:
        self._fd = -1
        self._libc: ctypes.CDLL | None = None

    @property
    def precise(self) -> bool:
        return self._fd >= 0

    async def __aenter__(self) -> PreciseTimer:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        except (OSError, AttributeError):
            fd = -1
        if fd >= 0:
            self._fd, self._libc = fd, libc
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    async def sleep_until(self, deadline_ns: int, now_ns: int) -> None:
        """Return at ``deadline_ns`` (perf_counter_ns time); ``now_ns`` is the caller's reading."""
        if self._fd < 0 or self._libc is None:
            await trio.sleep((deadline_ns - now_ns) / 1e9)
            return
        wake = deadline_ns - SPIN_NS
        if wake > now_ns:
            spec = ctypes.create_string_buffer(
                _ITIMERSPEC.pack(0, 0, wake // 1_000_000_000, wake % 1_000_000_000)
            )
            if self._libc.timerfd_settime(self._fd, TFD_TIMER_ABSTIME, spec, None) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"timerfd_settime: {os.strerror(err)}")
            await trio.lowlevel.wait_readable(self._fd)
            with contextlib.suppress(BlockingIOError):
                os.read(self._fd, 8)  # the expiry count; reading disarms readability
        while perf_counter_ns() < deadline_ns:
            await trio.lowlevel.checkpoint()


# -- the schedule's arithmetic, beside its clock ------------------------------------------


def planned_starts(period_ns: float, n: int, k: int, duration_ns: int) -> int:
    """How many starts of the schedule worker ``k`` of ``n`` makes within the duration: the
    j >= 0 with int((j * n + k) * period_ns) < duration_ns, by the open loop's own formula."""
    c = max(0, math.ceil((duration_ns / period_ns - k) / n))
    while c > 0 and int(((c - 1) * n + k) * period_ns) >= duration_ns:
        c -= 1
    while int((c * n + k) * period_ns) < duration_ns:
        c += 1
    return c


def trio_time(t_ns: int) -> float:
    """A perf_counter_ns() instant on trio's clock, for move_on_at(): both count
    CLOCK_MONOTONIC (trio's SystemClock is perf_counter() plus an offset)."""
    return trio.current_time() + (t_ns - perf_counter_ns()) / 1e9
