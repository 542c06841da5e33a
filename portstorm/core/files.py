"""Every file portstorm writes goes through here (every saved file it reads, through
reading.py beside it).

Containing file-system safety for writing only: no formats, no measuring. portstorm runs
as root, and its output folders may sit where other users can write (a shared checkout,
/tmp). So:

- An output folder is opened once, by file descriptor, and every file in it is written as a
  temp file created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` beside its final name, then
  renamed over it. rename(2) replaces a symbolic link planted at the final name; it never
  follows it, so a link to /etc/shadow stays a link to an untouched /etc/shadow. A reader
  sees the old file or the whole new one, never a part, and a full disk leaves the old
  file (or none), never a truncated one.
- The folder itself must not be a symbolic link and must belong to the caller (the
  effective user, or under sudo the user who called sudo): a folder another user owns is
  one where that user can swap files under root's feet. Sub-folders are made with
  mkdirat(2) and opened with ``O_NOFOLLOW`` relative to their parent's descriptor, so no
  link is ever followed inside a folder portstorm made. Existing folders above ``--out``
  are the path the user typed and are followed as the kernel resolves them.
- A link found where an output goes is refused (one line, exit 3) rather than replaced:
  it was most likely planted, and the user should hear of it. (A link planted after that
  check, before the rename, is replaced by the rename, still never followed.)
- A file that is written as it grows (intervals.jsonl, a run's log) is created the same
  way and renamed into place before its first byte.

Every failure is one line: a planted link or a foreign folder is an EnvironmentProblem
(exit 3); a full disk says "no space left on device while writing PATH" (exit 3).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from portstorm.core.errors import EnvironmentProblem, UsageError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_MODE = 0o644  # every output alike (result.json was 0600 from mkstemp, the rest 0644)
DIR_MODE = 0o755


class UnsafePath(EnvironmentProblem):
    """A planted link, or a folder another user controls (exit 3)."""


def write_error(path: Path | str, e: OSError) -> EnvironmentProblem:
    """An OSError while writing ``path``, as one line (exit 3)."""
    if e.errno == errno.ENOSPC:
        return EnvironmentProblem(f"no space left on device while writing {path}")
    if e.errno == errno.EDQUOT:
        return EnvironmentProblem(f"disk quota exceeded while writing {path}")
    if e.errno == errno.EROFS:
        return EnvironmentProblem(f"cannot write {path}: the file system is read-only")
    return EnvironmentProblem(f"cannot write {path}: {e.strerror or e}")


def callers() -> frozenset[int]:
    """Whose folders portstorm writes into: the effective user, and under sudo (euid 0 with
    SUDO_UID set by sudo) the user who called it, whose own folders these are."""
    uids = {os.geteuid()}
    sudo_uid = os.environ.get("SUDO_UID", "")
    if os.geteuid() == 0 and sudo_uid.isascii() and sudo_uid.isdigit():
        uids.add(int(sudo_uid))
    return frozenset(uids)


def _owner(uid: int) -> str:
    try:
        import pwd

        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except (KeyError, ImportError):
        return f"uid {uid}"


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"not a plain file name: {name!r}")


class Folder:
    """An open folder that files are written into by descriptor, never by path."""

    def __init__(self, fd: int, path: Path, created: bool = False) -> None:
        self.fd = fd
        self.path = path
        self.created = created  # made by this Folder.open (an empty one can be removed)

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, what: str = "--out", create: bool = True) -> Folder:
        """Open (and with ``create`` make) ``path`` as an output folder; see the header."""
        text = str(path)
        if not text:
            raise UsageError(f"{what} '': an empty folder name; give a folder, e.g. {what} .")
        name = path.name
        if name in ("", ".", ".."):  # "." or "x/..": no final name that could be a link
            try:
                fd = os.open(path, _DIR_FLAGS)
            except OSError as e:
                raise _open_error(what, path, e) from None
            return cls._checked(fd, path, what)
        parent = _open_parents(path.parent, what, create)
        try:
            return cls._at(parent, name, path, what, create)
        finally:
            os.close(parent)

    @classmethod
    def _at(cls, parent_fd: int, name: str, path: Path, what: str, create: bool) -> Folder:
        created = False
        if create:
            try:
                os.mkdir(name, DIR_MODE, dir_fd=parent_fd)
                created = True
            except FileExistsError:
                pass
            except OSError as e:
                raise _open_error(what, path, e, "cannot create the folder") from None
        try:
            fd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent_fd)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(parent_fd, name):
                raise UnsafePath(
                    f"{what} {path}: is a symbolic link; portstorm writes only into real "
                    "folders (a link there may have been planted to redirect root's writes)"
                ) from None
            raise _open_error(what, path, e) from None
        folder = cls._checked(fd, path, what)
        folder.created = created
        return folder

    @classmethod
    def _checked(cls, fd: int, path: Path, what: str) -> Folder:
        st = os.fstat(fd)
        if st.st_uid not in callers():
            os.close(fd)
            mine = ", ".join(_owner(u) for u in sorted(callers()))
            raise UnsafePath(
                f"{what} {path}: owned by {_owner(st.st_uid)}, not by you ({mine}); "
                "portstorm writes only into folders you own: choose another folder"
            )
        return cls(fd, path)

    def sub(self, name: str, create: bool = True) -> Folder:
        """A folder inside this one, made here if ``create``; never a link."""
        _check_name(name)
        return Folder._at(self.fd, name, self.path / name, "folder", create)

    def subpath(self, rel: str, create: bool = True) -> Folder:
        """``a/b/c`` below this folder, each part opened with ``sub`` (no link followed)."""
        folder: Folder = self
        opened: list[Folder] = []
        try:
            for part in Path(rel).parts:
                folder = folder.sub(part, create)
                opened.append(folder)
        except BaseException:
            for f in opened:
                f.close()
            raise
        for f in opened[:-1]:
            f.close()
        return folder if opened else Folder(os.dup(self.fd), self.path)

    def check_writable(self, what: str = "--out") -> None:
        """Create and remove a file here, so a folder that cannot take the results (read-only,
        /proc, no permission, full) is refused before anything runs."""
        tmp = f".portstorm-probe.{secrets.token_hex(4)}"
        try:
            fd = os.open(tmp, _NEW_FILE, FILE_MODE, dir_fd=self.fd)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                raise write_error(self.path, e) from None
            raise EnvironmentProblem(
                f"{what} {self.path}: cannot write files there: {e.strerror or e}"
            ) from None
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=self.fd)

    def remove_if_empty(self) -> None:
        """Remove this folder if this run made it and left nothing in it."""
        if not self.created or os.listdir(self.fd):
            return
        with contextlib.suppress(OSError):
            os.rmdir(self.path)

    # -- files ---------------------------------------------------------------------------

    def exists(self, name: str) -> bool:
        """Anything by that name, a link included (a link is not followed)."""
        _check_name(name)
        try:
            os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def is_file(self, name: str) -> bool:
        """A regular file by that name (a link to one does not count)."""
        _check_name(name)
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode)

    def refuse_links(self, names: list[str]) -> None:
        """One line (exit 3) if any of ``names`` is a symbolic link: portstorm never writes
        through one, and one where an output goes was most likely planted."""
        for name in names:
            _check_name(name)
            try:
                st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                try:
                    target = os.readlink(name, dir_fd=self.fd)
                except OSError:
                    target = "?"
                raise UnsafePath(
                    f"{self.path / name}: is a symbolic link (to {target}); portstorm never "
                    "writes through a link, and one where its output goes may have been "
                    "planted: remove it, or choose another folder"
                )

    def remove(self, name: str) -> bool:
        """Remove a file (a link is removed, not its target); False when absent."""
        _check_name(name)
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            return False
        return True

    def write_bytes(self, name: str, data: bytes, mode: int = FILE_MODE, sync: bool = True) -> Path:
        """Write ``name`` whole or not at all (temp file beside it, then rename)."""
        fd, tmp, target = self._temp_for(name, mode)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            if sync:
                os.fsync(fd)
            os.close(fd)
            fd = -1
            os.rename(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except OSError as e:
            self._discard(fd, tmp)
            raise write_error(target, e) from None
        except BaseException:
            self._discard(fd, tmp)
            raise
        if sync:
            with contextlib.suppress(OSError):
                os.fsync(self.fd)
        return target

    def write_text(self, name: str, text: str, mode: int = FILE_MODE, sync: bool = True) -> Path:
        return self.write_bytes(name, text.encode("utf-8"), mode, sync)

    def write_json(self, name: str, doc: Mapping[str, Any], mode: int = FILE_MODE) -> Path:
        return self.write_text(name, json.dumps(doc, indent=1) + "\n", mode)

    def stream(self, name: str, mode: int = FILE_MODE) -> IO[bytes]:
        """A new, empty ``name`` to write as it grows: created as a temp file (never through
        a link) and renamed into place before the first byte."""
        fd, tmp, target = self._temp_for(name, mode)
        try:
            os.rename(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except OSError as e:
            self._discard(fd, tmp)
            raise write_error(target, e) from None
        return os.fdopen(fd, "wb", buffering=0)

    def _temp_for(self, name: str, mode: int) -> tuple[int, str, Path]:
        """A new temp file beside ``name`` (O_EXCL | O_NOFOLLOW, so never an existing file
        or a link), with ``mode`` whatever the umask: (its fd, its name, the final path)."""
        self.refuse_links([name])  # checks the name too
        target = self.path / name
        tmp = f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, _NEW_FILE, mode, dir_fd=self.fd)
        except OSError as e:
            raise write_error(target, e) from None
        try:
            os.fchmod(fd, mode)  # the umask must not make one output differ from the rest
        except OSError as e:
            self._discard(fd, tmp)
            raise write_error(target, e) from None
        return fd, tmp, target

    def _discard(self, fd: int, tmp: str) -> None:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=self.fd)

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Folder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_parents(parent: Path, what: str, create: bool) -> int:
    """A descriptor for the folder that will hold the output folder. Parts that exist are
    followed as the kernel resolves them (the user named them); parts that do not are made
    here, one at a time, and never followed through a link once made."""
    try:
        return os.open(parent, _DIR_FLAGS)
    except FileNotFoundError:
        if not create:
            raise UsageError(f"{what} {parent}: no such folder") from None
    except OSError as e:
        raise _open_error(what, parent, e) from None
    missing: list[str] = []
    base = parent
    while True:
        missing.append(base.name)
        base = base.parent
        try:
            fd = os.open(base, _DIR_FLAGS)
            break
        except FileNotFoundError:
            if base == base.parent:
                raise UsageError(f"{what} {parent}: no such folder") from None
        except OSError as e:
            raise _open_error(what, base, e) from None
    for name in reversed(missing):
        if name in ("", "."):
            continue
        try:
            sub = Folder._at(fd, name, base / name, what, True)
        finally:
            os.close(fd)
        fd, base = sub.fd, base / name
        sub.fd = -1  # the descriptor lives on as ``fd``
    return fd


def _open_error(what: str, path: Path, e: OSError, doing: str = "cannot open") -> Exception:
    if e.errno == errno.ENOTDIR:
        return UsageError(f"{what} {path}: not a folder")
    if e.errno == errno.ENOSPC:
        return write_error(path, e)
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return EnvironmentProblem(f"{what} {path}: {doing}: {e.strerror}")
    return EnvironmentProblem(f"{what} {path}: {doing}: {e.strerror or e}")


def save_json_atomic(path: Path, doc: Mapping[str, Any]) -> None:
    """Write JSON whole or not at all, never through a planted link."""
    with Folder.open(path.parent, what="folder") as folder:
        folder.write_json(path.name, doc)
