"""Run shell scripts inside a throwaway network namespace, for tests against the real kernel.

As root: ``unshare -n``. Otherwise ``unshare -Urn`` (a user namespace) where the system
allows it. Where neither works the test is skipped with the reason, except under CI
(CI=true), where a missing privilege is a failure: CI must not skip these silently.
The namespace dies with the unshare process; scripts end every process they start by PID.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.require import require

PORTSTORM = f"{sys.executable} -m portstorm"


@functools.cache
def unshare_prefix() -> tuple[tuple[str, ...] | None, str]:
    if shutil.which("unshare") is None:
        return None, "unshare (util-linux) is not installed"
    if shutil.which("ip") is None:
        return None, "ip (iproute2) is not installed"
    candidates = [("unshare", "-n")] if os.geteuid() == 0 else []
    candidates.append(("unshare", "-Urn"))
    last = ""
    for prefix in candidates:
        probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=10)
        if probe.returncode == 0:
            return prefix, ""
        last = probe.stderr.strip()
    return (
        None,
        f"cannot create a network namespace here ({last}); run as root or allow user namespaces",
    )


def require_netns() -> tuple[str, ...]:
    """The command prefix that runs a command in a new network namespace; skip (or, under
    CI, fail) where none can be made."""
    prefix, why = unshare_prefix()
    require(prefix is not None, why)
    assert prefix is not None
    return prefix


def run_in_netns(
    script: str, sysctls: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Bring up lo, apply sysctls (namespace-local), then run ``script`` with sh -e."""
    prefix = require_netns()
    lines = ["ip link set lo up"]
    for name, value in (sysctls or {}).items():
        lines.append(f"sysctl -qw {name}='{value}'")
    lines.append(script)
    env = dict(os.environ, PORTSTORM=PORTSTORM)
    return subprocess.run(
        [*prefix, "sh", "-ec", "\n".join(lines)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def run_support_in_netns(
    module: str, folder: Path, *args: str, sysctls: dict[str, str] | None = None
) -> Any:
    """Run ``python -m tests.support.MODULE FOLDER ARGS...`` in a throwaway namespace (the
    script starts and ends its own processes there), then load the ``out.json`` it wrote."""
    root = Path(__file__).resolve().parents[2]
    words = " ".join(f'"{a}"' for a in (folder, *args))
    proc = run_in_netns(
        f'cd "{root}" && exec "{sys.executable}" -m tests.support.{module} {words}',
        sysctls=sysctls,
        timeout=120,
    )
    check(proc)
    return load(folder / "out.json")


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def load_intervals(path: Path) -> tuple[Any, ...]:
    """A result.json's intervals, typed (core/records.Interval): ``dt``, ``fds`` and
    ``not_started`` are there in every one, where the compact ``portstorm.run/2`` writes
    them only where they say something (core/runform.py)."""
    from portstorm.core.result import load_result

    return load_result(path).intervals


def check(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )


def start_in_netns(command: str, log: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` in a new namespace (lo up) and return at once, its output to ``log``.

    unshare execs sh, and sh execs the command: the Popen's PID is the command itself, so
    a signal sent to it reaches the command, and killing it ends the namespace with it.
    """
    prefix = require_netns()
    env = dict(os.environ, PORTSTORM=PORTSTORM)
    with log.open("wb") as out:
        return subprocess.Popen(
            [*prefix, "sh", "-ec", f"ip link set lo up\nexec {command}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def wait_for_lines(path: Path, n: int, proc: subprocess.Popen[Any], timeout: float) -> float:
    """Wait until ``path`` holds ``n`` whole lines (an interval log's header and first
    intervals); the time.monotonic() at which they were seen. Fails if ``proc`` ends first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with contextlib.suppress(FileNotFoundError):
            if path.read_bytes().count(b"\n") >= n:
                return time.monotonic()
        if proc.poll() is not None:
            pytest.fail(f"exited {proc.returncode} before {path} had {n} lines")
        time.sleep(0.01)  # polling for the event, not a fixed wait
    proc.kill()
    proc.wait()
    pytest.fail(f"{path} did not reach {n} lines within {timeout:g} s")
