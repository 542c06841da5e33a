"""Small reads of the running system: host identity, sysctls in force, the fd limit.

Containing no sysctl writes: applying tunings belongs to the sandbox work, which must also
restore them. ``proc_root`` is a parameter so tests can point it at a fake /proc.
"""

from __future__ import annotations

import os
import resource
import socket
from pathlib import Path

from portstorm.core.errors import EnvironmentProblem
from portstorm.core.result import HostInfo

# The sysctls portstorm studies (KERNEL.md); recorded as read back, full net.* names.
STUDIED_SYSCTLS: tuple[str, ...] = (
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_tw_reuse_delay",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_rfc1337",
    "net.ipv4.tcp_max_syn_backlog",
    "net.core.somaxconn",
)


def host_info() -> HostInfo:
    u = os.uname()
    return HostInfo(hostname=socket.gethostname(), kernel=u.release, cpus=os.cpu_count() or 1)


def sysctl_path(name: str, proc_root: Path = Path("/proc")) -> Path:
    return proc_root / "sys" / Path(*name.split("."))


def read_sysctls(
    names: tuple[str, ...] = STUDIED_SYSCTLS, proc_root: Path = Path("/proc")
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
