"""Small reads of the running system: host identity, sysctls in force, the fd limit.

Containing no sysctl writes: applying tunings belongs to the sandbox work, which must also
restore them. ``proc_root`` is a parameter so tests can point it at a fake /proc.
"""

from __future__ import annotations

import math
import os
import resource
import socket
from pathlib import Path

from portstorm.core.errors import EnvironmentProblem
from portstorm.core.result import HostInfo
from portstorm.core.tuning import PROT_SOCK, STUDIED, Context

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
    u = os.uname()
    return HostInfo(hostname=socket.gethostname(), kernel=u.release, cpus=os.cpu_count() or 1)


def sysctl_path(name: str, proc_root: Path = Path("/proc")) -> Path:
    return proc_root / "sys" / Path(*name.split("."))


def read_sysctls(
    names: tuple[str, ...] = STUDIED, proc_root: Path = Path("/proc")
) -> dict[str, str]:
    """The values in force in this network namespace; names this kernel lacks are left out.

    Whitespace is normalised (the kernel separates ip_local_port_range with a tab).
    """
    out: dict[str, str] = {}
    for name in names:
        try:
            raw = sysctl_path(name, proc_root).read_text()
        except FileNotFoundError:
            continue
        out[name] = " ".join(raw.split())
    return out


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


def write_sysctl(name: str, value: str, proc_root: Path = Path("/proc")) -> None:
    """Write one sysctl in the calling thread's network namespace (/proc/sys/net is per netns)."""
    with open(sysctl_path(name, proc_root), "w") as f:
        f.write(value + "\n")


def apply_sysctls(values: dict[str, str], overrides: frozenset[str], where: str) -> list[str]:
    """Write ``values`` where they differ from what is in force; return notes on skipped copies.

    A value in ``overrides`` is what the user asked for: the kernel refusing it is an error.
    Any other value is a copy of the host's; one the namespace will not take is noted.
    """
    current = read_sysctls(tuple(values))
    notes: list[str] = []
    for name, value in values.items():
        if current.get(name) == " ".join(value.split()):
            continue
        try:
            write_sysctl(name, value)
        except OSError as e:
            if name in overrides:
                raise EnvironmentProblem(
                    f"{where}: the kernel refused {name}={value!r}: {e.strerror}"
                ) from None
            notes.append(f"{where}: could not copy the host's {name}={value!r} ({e.strerror})")
    return notes


def tuning_context(in_new_namespace: bool) -> Context:
    """What validating --set needs to know: this kernel's sysctls and the privileged-port floor.

    A new namespace starts with ip_unprivileged_port_start at 1024, whatever the host has.
    """
    present = frozenset(read_sysctls(STUDIED))
    start = PROT_SOCK
    if not in_new_namespace:
        raw = read_sysctls(("net.ipv4.ip_unprivileged_port_start",))
        start = int(raw.get("net.ipv4.ip_unprivileged_port_start", str(PROT_SOCK)))
    return Context(unprivileged_port_start=start, available=present, kernel=os.uname().release)
