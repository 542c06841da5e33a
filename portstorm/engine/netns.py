"""Linux namespace primitives: unshare, setns, user-namespace entry. No policy here.

Containing no topology (sandbox.py decides what to build). Python 3.11 has no os.unshare or
os.setns, so these call libc. Namespaces here are anonymous: they live exactly as long as a
process is in them or holds a descriptor to them, so the kernel itself cleans them up when
portstorm and its children are gone, even after SIGKILL. Nothing is bind-mounted (unlike
``ip netns add``), so nothing can outlive a run.

Namespace membership is per thread: call these from the main thread before any other
thread exists (before trio.run), or the process's threads disagree about where they are.
"""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNET = 0x40000000  # include/uapi/linux/sched.h
CLONE_NEWUSER = 0x10000000

_libc = ctypes.CDLL(None, use_errno=True)


class NamespaceError(OSError):
    pass


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise NamespaceError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def open_netns(pid: int | str = "thread-self") -> int:
    """A descriptor that names (and keeps alive) a network namespace."""
    path = "/proc/thread-self/ns/net" if pid == "thread-self" else f"/proc/{pid}/ns/net"
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def netns_id(pid: int | str = "self") -> int:
    """The namespace's inode number, as lsns and /proc/PID/ns/net show it."""
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def enter_user_namespace() -> None:
    """Become root of a new user namespace mapped to the current user (``unshare -Ur``).

    Unprivileged users get CAP_SYS_ADMIN/CAP_NET_ADMIN inside it, which is enough to create
    network namespaces and write their net.* sysctls (net_ctl_permissions()).
    """
    uid, gid = os.geteuid(), os.getegid()
    unshare(CLONE_NEWUSER)
    # setgroups must be denied before an unprivileged process may write gid_map
    # (user_namespaces(7)).
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {gid} 1")


def can_create_netns_directly() -> bool:
    """True when unshare(CLONE_NEWNET) should work without a user namespace (root)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    caps = int(line.split()[1], 16)
                    return bool(caps & (1 << 21))  # CAP_SYS_ADMIN
    except OSError:
        pass
    return os.geteuid() == 0


def userns_blocker() -> str | None:
    """Why an unprivileged user namespace cannot be made here, or None if it can."""
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            if int(f.read().strip() or "0") == 0:
                return "user.max_user_namespaces is 0"
    except (OSError, ValueError):
        pass
    for path, bad in (
        ("/proc/sys/kernel/unprivileged_userns_clone", "0"),
        ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1"),
    ):
        try:
            with open(path) as f:
                if f.read().strip() == bad:
                    return f"{path.removeprefix('/proc/sys/').replace('/', '.')} is {bad}"
        except OSError:
            continue
    return None
