"""Small facts of the running process and host: identity, CPUs, the fd limit.

Containing no sysctls (kernel.py reads and writes them): the host's name, kernel and CPU
count for result.json, how many driver and sink processes a run starts when not told, and
RLIMIT_NOFILE raised to what a run holds.
"""

from __future__ import annotations

import math
import os
import resource
import socket
from typing import TYPE_CHECKING

from portstorm.core.errors import EnvironmentProblem

if TYPE_CHECKING:  # the built-in sink's child imports this module: see host_info()
    from portstorm.core.result import HostInfo

MAX_DEFAULT_WORKERS = 16
RATE_PER_WORKER = 10_000  # open loop: one process keeps ~25,000/s; this leaves headroom


def default_workers(rate: float | None) -> int:
    """Driver processes when not told: one per CPU this process may run on (at most
    MAX_DEFAULT_WORKERS); with a --rate, no more than one per RATE_PER_WORKER attempts/s,
    so a slow open loop stays in one process."""
    n = max(1, min(len(os.sched_getaffinity(0)), MAX_DEFAULT_WORKERS))
    return n if rate is None else max(1, min(n, math.ceil(rate / RATE_PER_WORKER)))


def default_sink_workers(driver_workers: int) -> int:
    """Built-in sink processes when not told: one per two driver processes. accept() and
    close() cost the sink about half what socket(), connect() and close() cost the driver:
    on 2 cores one sink process kept up with two driver processes (benchmarks/README.md)."""
    return max(1, (driver_workers + 1) // 2)


def host_info() -> HostInfo:
    # core.result imported here: the sink's child needs only raise_nofile_to_hard(), and
    # result.py's import (with what it imports) was a quarter of that child's start-up
    from portstorm.core.result import HostInfo

    u = os.uname()
    return HostInfo(hostname=socket.gethostname(), kernel=u.release, cpus=os.cpu_count() or 1)


def ensure_nofile(needed: int, *, required: bool, option: str) -> int:
    """Raise RLIMIT_NOFILE's soft limit toward ``needed`` (never lower it); return the result.

    ``required``: the run cannot work below ``needed`` (a closed loop holds exactly that many
    sockets), so refuse with EnvironmentProblem when the hard limit is lower and cannot be
    raised. Otherwise (an uncapped open loop, where ``needed`` is a worst case) go as high as
    allowed; attempts beyond it are counted as ``fd_limit``.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    inf = resource.RLIM_INFINITY
    if soft == inf or soft >= needed:
        return soft
    if hard == inf or hard >= needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        return needed
    try:  # with CAP_SYS_RESOURCE the hard limit can be raised too, up to fs.nr_open
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
        return needed
    except (ValueError, OSError):
        pass
    if required:
        raise EnvironmentProblem(
            f"{option} needs {needed} file descriptors but the hard limit (ulimit -Hn) is {hard}: "
            f"lower {option.split()[0]}, or raise the hard limit (as root: ulimit -Hn {needed})"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def raise_nofile_to_hard() -> int:
    """Best effort for long-lived servers (the sink): soft limit up to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard
