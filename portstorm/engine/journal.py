"""The restore journal: what portstorm changed in a live namespace, so it can be put back.

Containing only the journal's file and the restore; the sandbox decides when to change.
Written (atomically) before the first live sysctl change and removed once everything is
restored, so a journal on disk always means "a run was killed before it could restore":
``portstorm restore`` finishes the job, and every other command warns until it does.

Format history: ``portstorm.journal/1`` (2026-11): first version.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from portstorm.core.errors import EnvironmentProblem
from portstorm.core.result import save_json_atomic
from portstorm.engine import netns
from portstorm.engine.sysinfo import read_sysctls, write_sysctl

FORMAT = "portstorm.journal/1"


def state_dir() -> Path:
    """$PORTSTORM_STATE_DIR, else /var/lib/portstorm for root, else the XDG state folder."""
    env = os.environ.get("PORTSTORM_STATE_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/portstorm")
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "portstorm"


def journal_path() -> Path:
    return state_dir() / "restore-journal.json"


def write_journal(originals: dict[str, str]) -> Path:
    path = journal_path()
    if path.exists():
        raise EnvironmentProblem(
            f"a restore journal from an earlier run is pending ({path}): run 'portstorm restore' "
            "before changing live sysctls again"
        )
    doc = {
        "format": FORMAT,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "pid": os.getpid(),
        "netns": netns.netns_id(),
        "values": originals,
    }
    try:
        save_json_atomic(path, doc)
    except OSError as e:
        raise EnvironmentProblem(f"cannot write the restore journal {path}: {e.strerror}") from None
    return path


def load_journal(path: Path | None = None) -> dict[str, Any] | None:
    path = path or journal_path()
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise EnvironmentProblem(f"restore journal {path} is unreadable: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise EnvironmentProblem(f"{path} is not a portstorm restore journal ({FORMAT})")
    return doc


def restore(path: Path | None = None) -> dict[str, str]:
    """Put the journal's values back in this namespace, remove the journal; return what it set."""
    path = path or journal_path()
    doc = load_journal(path)
    if doc is None:
        return {}
    here = netns.netns_id()
    if doc.get("netns") not in (None, here):
        raise EnvironmentProblem(
            f"restore journal {path} was written in network namespace {doc['netns']}, this is "
            f"{here}: run 'portstorm restore' inside that namespace"
        )
    values: dict[str, str] = dict(doc["values"])
    for name, value in reversed(list(values.items())):
        write_sysctl(name, value)
    now = read_sysctls(tuple(values))
    wrong = {k: v for k, v in values.items() if now.get(k) != " ".join(v.split())}
    if wrong:
        raise EnvironmentProblem(
            f"restore incomplete, still different: {wrong}; journal kept at {path}"
        )
    path.unlink()
    return values


def pending_warning() -> str | None:
    """The warning every command prints while a journal waits; never fails a command."""
    path = journal_path()
    try:
        pending = path.exists()
    except OSError:  # e.g. HOME points at a folder this user cannot enter
        return None
    if pending:
        return (
            f"a restore journal is pending ({path}): a run changed live sysctls and was killed "
            "before restoring them; run 'portstorm restore'"
        )
    return None
