"""``portstorm fleet run``'s edge: the shipped playbook, and ansible-playbook driving it.

Containing where the playbook lives (package data beside this module), finding
ansible-playbook (the optional extra ``portstorm[fleet]``: ansible-core), running it with
the run's variables while its output streams through, and reading from that output which
hosts ended without a result and why (its PLAY RECAP names every host it tried; a
``fatal:`` line carries the reason). portstorm opens no SSH connection of its own: Ansible
reaches the hosts, with the user's inventory, keys and ssh settings. The merge of what was
fetched is core/fleet.py's; the command's order is cli/fleetcmd.py's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from portstorm.core.errors import EnvironmentProblem

PLAYBOOK = "fleet-playbook.yml"
# The ansible-playbook process as a whole: past its own per-host timeouts, a margin for
# ssh's connection attempts and the fetches
OVERALL_MARGIN_S = 300.0
_RECAP = re.compile(r"^(\S+)\s+:\s+ok=\d+\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)")
_FATAL = re.compile(r"^(?:fatal|failed): \[([^\]]+)\].*?(UNREACHABLE|FAILED)! => (\{.*\})\s*$")


def playbook_text() -> str:
    return resources.files("portstorm.engine").joinpath(PLAYBOOK).read_text(encoding="utf-8")


def ansible_playbook() -> str:
    """ansible-playbook beside this Python (the same venv), else on PATH."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("ansible-playbook")
    if found is None:
        raise EnvironmentProblem(
            "fleet run: ansible-playbook is not installed: pip install 'portstorm[fleet]' "
            "(ansible-core) on this controller"
        )
    return found


@dataclass
class PlaybookRun:
    """What ansible-playbook said: its exit code, each host's recap (unreachable, failed)
    and the first reason given for each host that failed."""

    returncode: int
    recap: dict[str, tuple[int, int]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    tail: list[str] = field(default_factory=list)  # its last lines, for an error message


def _reason(kind: str, payload: str) -> str:
    try:
        doc: Any = json.loads(payload)
    except ValueError:
        return kind.lower()
    if not isinstance(doc, Mapping):
        return kind.lower()
    # portstorm's own one line (stderr) says most: "--start-at ... passed while preparing"
    for key in ("stderr", "msg", "module_stderr"):
        v = doc.get(key)
        if isinstance(v, str) and v.strip():
            line = v.strip().splitlines()[-1]
            return f"{kind.lower()}: {line[:300]}"
    return kind.lower()


def run_playbook(
    inventory: Path,
    limit: str | None,
    extra_vars: Mapping[str, Any],
    timeout_s: float,
    echo: Callable[[str], None],
) -> PlaybookRun:
    """ansible-playbook on the shipped playbook, its output passed to ``echo`` line by line."""
    with resources.as_file(resources.files("portstorm.engine").joinpath(PLAYBOOK)) as book:
        argv = [ansible_playbook(), "-i", str(inventory), str(book),
                "-e", json.dumps(dict(extra_vars))]  # fmt: skip
        if limit:
            argv += ["--limit", limit]
        env = dict(os.environ)
        # one line per result (the reasons are parsed from it); no colour codes in it
        env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_RETRY_FILES_ENABLED="0",
                   ANSIBLE_CALLBACK_RESULT_FORMAT="json")  # fmt: skip
        env.setdefault("ANSIBLE_PIPELINING", "1")  # fewer ssh round trips per task
        env.setdefault("ANSIBLE_FORKS", "50")  # every host's run is launched at once
        try:
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                text=True, errors="replace", env=env,
            )  # fmt: skip
        except OSError as e:
            raise EnvironmentProblem(f"fleet run: cannot start ansible-playbook: {e}") from None
        result = PlaybookRun(0)
        deadline = time.monotonic() + timeout_s
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                echo(line)
                _note(result, line)
                if time.monotonic() > deadline:
                    raise EnvironmentProblem(
                        f"fleet run: ansible-playbook still running after {timeout_s:.0f} s; "
                        "stopped"
                    )
            result.returncode = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except BaseException:
            _end(proc)
            raise
    return result


def _note(result: PlaybookRun, line: str) -> None:
    result.tail = [*result.tail, line][-20:]
    if m := _RECAP.match(line):
        result.recap[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    elif m := _FATAL.match(line):
        result.reasons.setdefault(m.group(1), _reason(m.group(2), m.group(3)))


def _end(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C or the time bound: ansible-playbook (by its PID) gets SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def missing_hosts(run: PlaybookRun, fetched: Sequence[str]) -> dict[str, str]:
    """Host -> why it has no result: every host the recap names that fetched nothing."""
    out = {}
    for host, (unreachable, failed) in run.recap.items():
        if host in fetched:
            continue
        why = run.reasons.get(host)
        if why is None:
            why = "unreachable" if unreachable else "failed" if failed else "no result fetched"
        out[host] = why
    return out
