"""A host's packed result folder (``<host>.tar.gz``, as the fleet playbook fetched it),
unpacked into its own folder: regular files only, each through core/files.py.

Containing the one reading of an archive a host made, treated as hostile (the host may be
the odd one of the fleet for a reason): it is read through core/reading.py with a cap,
and only flat regular files with plain names are taken; a link, a device, a path with a
folder in it (``../x``, ``/etc/x``, ``a/b``), a name out of the ordinary or too much data
refuses the whole archive in one UsageError line. tarfile never writes anything here.
"""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

from portstorm.core.errors import UsageError
from portstorm.core.files import Folder
from portstorm.core.reading import read_bytes

ARCHIVE_CAP = 1 << 30  # what a day of 1 s intervals and its report come to, compressed
UNPACKED_CAP = 4 << 30
MAX_FILES = 1000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


def unpack_result(archive: Path, folder: Folder) -> list[str]:
    """The files of ``archive`` written into ``folder``; the names written."""
    data = read_bytes(archive, "a result folder packed by the fleet playbook", ARCHIVE_CAP)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = tar.getmembers()[: MAX_FILES + 2]
            files = _checked(archive, members)
            names = []
            for m in files:
                f = tar.extractfile(m)
                assert f is not None  # a regular file
                folder.write_bytes(m.name.removeprefix("./"), f.read(), sync=False)
                names.append(m.name.removeprefix("./"))
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise UsageError(f"{archive}: not a result folder packed as .tar.gz ({e})") from None
    return names


def _checked(archive: Path, members: list[tarfile.TarInfo]) -> list[tarfile.TarInfo]:
    if len(members) > MAX_FILES + 1:
        raise UsageError(f"{archive}: more than {MAX_FILES} files; a result folder has a dozen")
    files, total = [], 0
    for m in members:
        if m.name in (".", "./") and m.isdir():
            continue  # tar -C DIR . packs the folder itself first
        name = m.name.removeprefix("./")
        if not m.isreg() or not _NAME.match(name):
            raise UsageError(
                f"{archive}: holds {m.name[:80]!r}; allowed: plain files of the result folder "
                "(no links, folders or paths)"
            )
        total += m.size
        if total > UNPACKED_CAP:
            raise UsageError(f"{archive}: unpacks to more than {UNPACKED_CAP >> 30} GiB")
        files.append(m)
    return files
