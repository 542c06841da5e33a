"""Kernel settings: read, validate, apply and write sysctls (pyperf's ``_system.py``).

Containing the only writes to /proc/sys in portstorm; what was applied is restored by the
sandbox (sandbox.py) or, after a crash, from the journal (journal.py). Which sysctls are
studied, and what values they take, is core/tuning.py. /proc/sys/net is per network
namespace: every read and write here acts on the calling thread's namespace. ``proc_root``
is a parameter so tests can point it at a fake /proc.
"""

from __future__ import annotations

import os
from pathlib import Path

from portstorm.core.errors import EnvironmentProblem
from portstorm.core.tuning import PROT_SOCK, STUDIED, Context


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
