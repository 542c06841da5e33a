"""Every saved file portstorm reads goes through here; core/files.py writes them.

Containing file-system safety for reading, JSON parsing and bounded inflating, only: no
formats. portstorm runs as root and reads files other users may have put in its way, so:

- Regular files only: a FIFO, /dev/zero or a socket is refused before a byte is read (the
  open does not wait for a FIFO's writer).
- At most ``READ_CAP`` bytes, stated in the error; a file that grows while read, or whose
  size lies (/proc), is refused at the cap too.
- JSON that cannot be parsed, nests too deep or holds an integer too long for Python is one
  UsageError line naming the file, never a traceback.
- A path a saved file names (a sweep's runs, a report's links) is followed only when it
  stays inside its folder (``inside``).
- A compressed block inside a file (deflate: ``inflate``; bzip2: ``bunzip``) expands to
  at most what its intervals can hold, and a histogram's zlib stream to at most what a
  histogram can hold: a few KB of crafted deflate or bzip2 expand to gigabytes.
"""

from __future__ import annotations

import bz2
import json
import os
import stat
import zlib
from pathlib import Path
from typing import Any

from portstorm.core.errors import UsageError

READ_CAP = 1 << 30  # 1 GiB: a day of 1 s intervals is about 100 MB
# a block's bytes an interval, inflated: a histogram's V2 payload at 400 conn/s is ~170, a
# very wide one a few KB; an interval's columns fewer
PER_INTERVAL = 64 << 10


def _size(n: int) -> str:
    if n >= 1 << 30:
        return f"{n / (1 << 30):.0f} GiB"
    return f"{n / (1 << 20):.0f} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def read_bytes(path: Path, expected: str, cap: int = READ_CAP) -> bytes:
    """A regular file's bytes, at most ``cap``; every refusal is one UsageError line."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, expected {expected}") from None
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{path}: is a directory, expected {expected}")
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(
                f"{path}: not a regular file ({_kind(st.st_mode)}), expected {expected}"
            )
        if st.st_size > cap:
            raise UsageError(
                f"{path}: {st.st_size:,} bytes, more than the {_size(cap)} portstorm reads "
                f"as {expected}"
            )
        chunks: list[bytes] = []
        got = 0
        while got <= cap:
            chunk = os.read(fd, min(1 << 20, cap + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got > cap:  # a file that grew while read, or one whose size lies (/proc)
            raise UsageError(f"{path}: more than the {_size(cap)} portstorm reads as {expected}")
        return b"".join(chunks)
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)


def block_cap(intervals: int) -> int:
    """What a block of ``intervals`` may inflate to: ``PER_INTERVAL`` bytes each, 1 MiB
    at least, ``READ_CAP`` at most."""
    return min(READ_CAP, max(1 << 20, intervals * PER_INTERVAL))


def inflate(data: bytes, cap: int) -> bytes:
    """A zlib stream inflated, to at most ``cap`` bytes; zlib.error when it is damaged,
    cut short or larger than that."""
    d = zlib.decompressobj()
    out = d.decompress(data, cap + 1)
    if len(out) > cap:
        raise zlib.error(f"inflates past {_size(cap)}")
    if not d.eof:
        raise zlib.error("the stream is cut short")
    return out


class StreamError(ValueError):
    """A compressed stream that cannot be read back whole: damaged, cut short, larger
    than allowed or followed by other bytes."""


def bunzip(data: bytes, cap: int) -> bytes:
    """A bzip2 stream decompressed, to at most ``cap`` bytes; StreamError when it is
    damaged, cut short, larger than that or followed by other bytes (a second stream
    included: only one is ever written)."""
    d = bz2.BZ2Decompressor()
    try:
        out = d.decompress(data, cap + 1)
    except OSError as e:  # "Invalid data stream"
        raise StreamError(str(e)) from None
    if len(out) > cap:
        raise StreamError(f"decompresses past {_size(cap)}")
    if not d.eof:
        raise StreamError("the stream is cut short")
    if d.unused_data:
        raise StreamError("bytes after the end of the stream")
    return out


def read_text(path: Path, expected: str, cap: int = READ_CAP) -> str:
    data = read_bytes(path, expected, cap)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 text (byte {e.start}), expected {expected}") from None


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def inside(base: Path, rel: str) -> bool:
    """``rel`` is a plain relative path that stays inside ``base`` (no '..', not absolute,
    and not leaving it through a link either)."""
    p = Path(rel)
    if not rel or p.is_absolute() or ".." in p.parts or "\0" in rel:
        return False
    try:
        return (base / p).resolve().is_relative_to(base.resolve())
    except (OSError, RuntimeError):
        return False


def read_json_object(path: Path, expected: str) -> dict[str, Any]:
    """A JSON file whose top level is an object; every way it can be wrong is one
    UsageError line naming the file (``expected`` says what it should have been). Only a
    regular file of at most READ_CAP bytes is read."""
    text = read_text(path, expected)
    if not text.strip():
        raise UsageError(f"{path}: file is empty, expected {expected}")
    doc = parse_json(path, text)
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: not {expected}: top level is not an object")
    return doc


def parse_json(path: Path, text: str, where: str = "") -> Any:
    """json.loads, with every way it fails as one UsageError line: bad syntax, nesting
    deeper than the parser's recursion limit, an integer past Python's 4,300-digit limit."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(
            f"{path}: not valid JSON{where} (truncated?): {e.msg} at line {e.lineno}"
        ) from None
    except RecursionError:
        raise UsageError(f"{path}: JSON{where} nested too deeply to be a portstorm file") from None
    except ValueError as e:  # int_max_str_digits: "Exceeds the limit (4300 digits) ..."
        raise UsageError(f"{path}: not valid JSON{where}: {str(e).split(';')[0]}") from None
