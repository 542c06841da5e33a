"""Which processes hold the sockets ``portstorm watch`` counted: /proc/PID/fd, read only.

Containing the scan of /proc/*/fd links ("socket:[INODE]") against the inodes of the
dumped full sockets (idiag_inode; TIME_WAIT sockets have none: no file), each process's
open fds and its RLIMIT_NOFILE soft limit (/proc/PID/limits). Nothing else.

Only processes of the watched network namespace are scanned (/proc/PID/ns/net equal to
ours), so a host with many containers costs only its own. The scan is a readlink per fd:
about 1 us each, so it is taken at a slower cadence than the sample (watchread.py).
Another user's /proc/PID/fd is not readable without privilege (ptrace access mode): those
processes are counted and said, never guessed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from dataclasses import dataclass

from portstorm.core.watchsample import ProcessRead


@dataclass(frozen=True)
class FdScan:
    processes: tuple[ProcessRead, ...]  # top ``top`` by sockets, at least one socket each
    unreadable: int  # processes of this namespace (or of unknown one) whose fds were hidden
    seconds: float  # what the scan cost


def _fd_limit(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    soft = line[len("Max open files") :].split()[0]
                    return None if soft == "unlimited" else int(soft)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _name(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def scan(inodes: Collection[int], top: int = 10) -> FdScan:
    """Processes of this namespace holding the most of ``inodes``."""
    start = time.monotonic()
    try:
        ours = os.readlink("/proc/self/ns/net")
    except OSError:
        ours = ""
    wanted = {f"socket:[{i}]" for i in inodes if i}
    found: list[ProcessRead] = []
    hidden = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if ours and os.readlink(f"/proc/{pid}/ns/net") != ours:
                continue
        except PermissionError:
            pass  # another user's process: its namespace is hidden too; try its fds
        except OSError:
            continue  # exited
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            hidden += 1
            continue
        except OSError:
            continue
        sockets = 0
        if wanted:
            for fd in fds:
                try:
                    if os.readlink(f"{fd_dir}/{fd}") in wanted:
                        sockets += 1
                except OSError:
                    continue
        if sockets:
            found.append(ProcessRead(int(pid), _name(pid), sockets, len(fds), _fd_limit(pid)))
    found.sort(key=lambda p: (-p.sockets, p.pid))
    return FdScan(tuple(found[:top]), hidden, time.monotonic() - start)
