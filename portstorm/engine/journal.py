"""The restore journal: what portstorm changed in a live namespace, so it can be put back.

Containing only the journal's file and the restore; the sandbox decides when to change.
Written (atomically, mode 0600, in a 0700 state folder) before the first live sysctl
change and removed once everything is restored. A journal on disk means a run is changing
live sysctls now (its pid and start time match a living process: it restores them itself)
or was killed before it could restore (``portstorm restore`` finishes the job, and every
other command warns until it does).

The journal is a file root reads and then acts on, so it is treated as hostile: it must be
a regular file of the caller's, mode 0600, in a folder nobody else can write, and each name
in it must be one of the studied sysctls (core/tuning.py, the table ``--set`` uses) whose
path stays under /proc/sys/net, with a value that sysctl accepts. Anything else: one line
naming the entry, exit 3, nothing written. A run's own restore uses the values it kept in
memory, never the file.

Format history: ``portstorm.journal/1`` (2026-11): first version; ``pid_start`` (the
process's start time, clock ticks after boot) added 2026-12, absent in older journals.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from pathlib import Path
from typing import Any

from portstorm.core import reading
from portstorm.core.errors import EnvironmentProblem, UsageError
from portstorm.core.files import Folder
from portstorm.core.tuning import CATALOGUE, Context
from portstorm.engine import netns
from portstorm.engine.kernel import read_sysctls, sysctl_path, write_sysctl

FORMAT = "portstorm.journal/1"
NAME = "restore-journal.json"
_SYSCTL_NET = Path("/proc/sys/net")
_KNOWN = {s.name: s for s in CATALOGUE}
# values as the kernel printed them (host values may be below the new-namespace floors)
_ANY_HOST = Context(unprivileged_port_start=0)


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
    return state_dir() / NAME


def process_start(pid: int | str = "self") -> int | None:
    """A process's start time (/proc/PID/stat field 22, clock ticks after boot): with the
    pid, it tells a living run from a new process that reuses a dead run's pid."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ')'
    fields = raw[raw.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def check_writable(names: list[str]) -> None:
    """Every sysctl about to change can be written here: refuse before a journal exists
    (as an unprivileged user /proc/sys/net is read-only, and a journal left by a run that
    then failed is one this user cannot clear)."""
    for name in names:
        path = sysctl_path(name)
        if not os.access(path, os.W_OK):
            raise EnvironmentProblem(
                f"--change-host-sysctls: cannot write {name} ({path}): permission denied; "
                "changing this host's live sysctls needs root (or use a sandbox, the default)"
            )


def write_journal(originals: dict[str, str]) -> Path:
    path = journal_path()
    check_writable(list(originals))
    doc = {
        "format": FORMAT,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "pid": os.getpid(),
        "pid_start": process_start(),
        "netns": netns.netns_id(),
        "values": originals,
    }
    with _state_folder(create=True) as folder:
        if folder.exists(NAME):
            raise EnvironmentProblem(
                f"a restore journal is pending ({path}): run 'portstorm restore' before "
                "changing live sysctls again"
            )
        folder.write_json(NAME, doc, mode=0o600)
    return path


def _state_folder(create: bool) -> Folder:
    folder = Folder.open(state_dir(), what="state folder", create=create)
    try:
        if folder.created:
            os.fchmod(folder.fd, 0o700)
        mode = os.fstat(folder.fd).st_mode
        if mode & 0o022:
            raise EnvironmentProblem(
                f"state folder {folder.path}: writable by others (mode {stat.S_IMODE(mode):o}); "
                f"portstorm keeps its restore journal only where nobody else can write: "
                f"chmod go-w {folder.path}"
            )
    except BaseException:
        folder.close()
        raise
    return folder


def load_journal(path: Path | None = None) -> dict[str, Any] | None:
    """The journal, checked (see the header); None when there is none."""
    path = path or journal_path()
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise EnvironmentProblem(f"restore journal {path}: cannot read: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise EnvironmentProblem(f"restore journal {path}: not a regular file; nothing restored")
    if st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) & 0o077:
        raise EnvironmentProblem(
            f"restore journal {path}: owned by uid {st.st_uid} with mode "
            f"{stat.S_IMODE(st.st_mode):o}; portstorm trusts only its own, mode 600: "
            "nothing restored"
        )
    parent = os.stat(path.parent)
    if stat.S_IMODE(parent.st_mode) & 0o022:
        raise EnvironmentProblem(
            f"restore journal {path}: its folder is writable by others "
            f"(mode {stat.S_IMODE(parent.st_mode):o}); nothing restored"
        )
    try:
        text = reading.read_text(path, "a portstorm restore journal", cap=1 << 20)
        doc = json.loads(text)
    except (UsageError, ValueError, RecursionError) as e:
        raise EnvironmentProblem(f"restore journal {path} is unreadable: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise EnvironmentProblem(f"{path} is not a portstorm restore journal ({FORMAT})")
    doc["values"] = checked_values(path, doc.get("values"))
    return doc


def checked_values(path: Path, values: object) -> dict[str, str]:
    """The journal's values, each a studied sysctl under /proc/sys/net with a value it takes."""
    if not isinstance(values, dict):
        raise EnvironmentProblem(
            f"restore journal {path}: 'values' is not an object; nothing restored"
        )
    out: dict[str, str] = {}
    for name, value in values.items():
        where = f"restore journal {path}: entry {name!r}"
        sysctl = _KNOWN.get(name) if isinstance(name, str) else None
        if sysctl is None:
            allowed = ", ".join(_KNOWN)
            raise EnvironmentProblem(
                f"{where} is not a sysctl portstorm changes (allowed: {allowed}); nothing restored"
            )
        real = Path(os.path.realpath(sysctl_path(name)))
        if not real.is_relative_to(_SYSCTL_NET):
            raise EnvironmentProblem(f"{where} resolves to {real}, outside {_SYSCTL_NET}")
        if not isinstance(value, str):
            raise EnvironmentProblem(f"{where}: value {value!r} is not a string; nothing restored")
        try:
            out[name] = sysctl.normalise(value, _ANY_HOST)
        except ValueError as e:
            raise EnvironmentProblem(
                f"{where}: value {value!r} is not accepted ({e}): allowed {sysctl.allowed}; "
                "nothing restored"
            ) from None
    return out


def live_run(doc: dict[str, Any]) -> int | None:
    """The pid of the run that wrote ``doc`` if it is still running (pid and start time
    match a living process), else None."""
    pid, start = doc.get("pid"), doc.get("pid_start")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or pid == os.getpid():
        return None
    now = process_start(pid)
    if now is None:
        return None
    if isinstance(start, int) and not isinstance(start, bool):
        return pid if now == start else None
    return pid  # an older journal without a start time: a living pid is taken as the run


def restore(path: Path | None = None, force: bool = False) -> dict[str, str]:
    """``portstorm restore``: put a killed run's values back, remove the journal; return
    what it set. A journal whose run is alive is refused without ``force``."""
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
    pid = live_run(doc)
    if pid is not None and not force:
        raise EnvironmentProblem(
            f"restore journal {path}: its run (pid {pid}) is still running and restores these "
            "values when it ends; stop it, or add --force to restore them now"
        )
    values: dict[str, str] = doc["values"]
    put_back(values, path)
    return values


def put_back(values: dict[str, str], path: Path | None = None) -> None:
    """Write ``values`` (the run's own restore passes what it kept in memory), check them,
    then remove the journal."""
    path = path or journal_path()
    for name, value in reversed(list(values.items())):
        write_sysctl(name, value)
    now = read_sysctls(tuple(values))
    wrong = {k: v for k, v in values.items() if now.get(k) != " ".join(v.split())}
    if wrong:
        raise EnvironmentProblem(
            f"restore incomplete, still different: {wrong}; journal kept at {path}"
        )
    with Folder.open(path.parent, what="state folder", create=False) as folder:
        folder.remove(path.name)


def pending_warning() -> str | None:
    """The warning every command prints while a journal waits; never fails a command."""
    path = journal_path()
    try:
        if not path.exists():
            return None
        doc = load_journal(path)
    except (OSError, EnvironmentProblem):  # e.g. HOME points at a folder this user cannot enter
        return (
            f"a restore journal is pending ({path}); run 'portstorm restore'"
            if os.path.lexists(path)
            else None
        )
    if doc is not None and (pid := live_run(doc)) is not None:
        return (
            f"a run is in progress (pid {pid}) with this host's live sysctls changed; it "
            f"restores them when it ends (journal {path})"
        )
    return (
        f"a restore journal is pending ({path}): a run changed live sysctls and was killed "
        "before restoring them; run 'portstorm restore'"
    )
