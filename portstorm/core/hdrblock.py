"""Per-interval latency histograms stored together: result.json's ``interval_hdr`` block
(``portstorm.run/2`` and ``/3``), kept encoded until something asks for them.

Containing the block's encoding and decoding, the cheap check of one histogram's encoding,
and an interval's maximum read without building the histogram; no files.

Three encodings, named in the block's ``encoding``:
- ``hdrh-v2-payloads-bzip2-base64`` (written since 2026-12-03, ``portstorm.run/3``, where
  the histograms differ from interval to interval: ``_REPEATING``): the payloads below,
  bzip2'd instead of deflated. On benchmarks/long_runs.py's day of 86,400
  distinct histograms (~400 connects each): 6.6 MB against deflate's 7.9 MB (0.83),
  1.3-2.0 s to write against 0.8-1.2 s and 1.0 s to read against 0.13 s; lzma made the
  same size in 22 s. A real 10-minute run past the port-search knee: 199 characters an
  interval against 234 (0.85).
- ``hdrh-v2-payloads-deflate-base64`` (written since 2026-12-02; from 2026-12-03 for
  histograms that repeat, where it is as small and bzip2 is slow): each interval's
  V2 payload (HdrHistogram's counts as ZigZag LEB128, uncompressed) after a 4-byte
  big-endian length (0: no histogram), the whole deflated and base64'd once. Compressed
  together, the histograms of a run share what they have in common (the same buckets,
  interval after interval): a real 10-minute run at 400 conn/s took 124 characters an
  interval this way against 174 as lines (0.72); benchmarks/long_runs.py's resampled day,
  9.4 MB against 16.5 MB.
- ``hdrh-lines-deflate-base64`` (portstorm.run/2 as first written, still read): each
  interval's standard compressed encoding (base64 of an 8-byte header and its own zlib
  stream) one a line, deflated and base64'd. Histograms compressed one by one leave
  little for the block's deflate to find.
All are written and read back in bulk (zlib, bzip2 and base64 in C); what reads them gets the
standard encoding either way. Decoding one histogram costs ~0.3 ms (hdrh allocates its
45,000 counters each time), so nothing decodes them at load; the hlog export reads each
one's maximum with ``max_us``, without building it.
"""

from __future__ import annotations

import base64
import binascii
import bz2
import ctypes
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from portstorm.core import fields
from portstorm.core.reading import StreamError, block_cap, bunzip, inflate

_HEADER = struct.Struct(">ii")  # the external header: cookie, compressed length
_PAYLOAD = struct.Struct(">iiiiqqd")  # cookie, length, offset, figures, lowest, highest, ratio
_COMPRESSION_COOKIE_BASE = 0x1C849304  # hdrh's V2_COMPRESSION_COOKIE_BASE (low nibble free)
_LINES = "hdrh-lines-deflate-base64"
PAYLOADS = "hdrh-v2-payloads-deflate-base64"
BZIP2 = "hdrh-v2-payloads-bzip2-base64"  # written
ENCODINGS = (BZIP2, PAYLOADS, _LINES)
_OF_PAYLOADS = (BZIP2, PAYLOADS)
# bzip2 (BZIP2) for histograms that differ, deflate (PAYLOADS) for those that repeat: on a
# day of distinct ones bzip2 took 1.3 s for 0.83 of deflate's size, on long_runs.py's day
# that repeats every 20 intervals 4.6 s (its block sort's slow case) against deflate's
# 0.1 s, for 82 KB against 98 KB. The first MiB deflated (a few ms) tells them apart: to
# 0.46 of its size there, 0.03 here.
_SAMPLE, _REPEATING = 1 << 20, 0.15
_LENGTH = struct.Struct(">I")
# a V2 payload of portstorm's layout (45,000 counters, 9 bytes each at most) is under 0.5 MB
HISTOGRAM_CAP = 1 << 20


def well_formed(text: str) -> bool:
    """The shape of a standard compressed encoding: base64, the compression cookie, the
    length it says. The zlib stream itself is only read when the histogram is used."""
    return _standard_raw(text) is not None


def checked_payload(text: str | bytes) -> bytes | None:
    """The V2 payload of a standard encoding, its base64 decoded once for both the check
    (``well_formed``) and the payload; None when it is not one, or its zlib stream is
    damaged."""
    raw = _standard_raw(text)
    if raw is None:
        return None
    try:
        return inflate(raw[_HEADER.size :], HISTOGRAM_CAP)
    except zlib.error:
        return None


def _standard_raw(text: str | bytes) -> bytes | None:
    """The decoded bytes of a standard encoding (base64, the cookie, the length it says)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) < _HEADER.size:
        return None
    cookie, length = _HEADER.unpack_from(raw)
    if cookie & ~0xF0 != _COMPRESSION_COOKIE_BASE or length != len(raw) - _HEADER.size:
        return None
    return raw


def payload(text: str) -> bytes:
    """The V2 payload (uncompressed) of a standard encoding."""
    raw = base64.b64decode(text)
    return inflate(raw[_HEADER.size :], HISTOGRAM_CAP)


def standard(raw: bytes) -> str:
    """A V2 payload as the standard compressed encoding (what hdrh's encode() gives)."""
    z = zlib.compress(raw)
    return base64.b64encode(_HEADER.pack(_COMPRESSION_COOKIE_BASE | 0x10, len(z)) + z).decode()


class _Counts:
    """One counts array, reused: hdrh's C decoder reports the highest non-zero index as it
    fills it, and a maximum needs nothing more. Built on first use (45,000 words)."""

    def __init__(self) -> None:
        self._template: Any = None
        self._buf: Any = None
        self._decode: Any = None
        self._values: dict[int, int] = {}  # index -> maximum: the same few recur

    def max_us(self, raw: bytes) -> int:
        from portstorm.core.histogram import HIGHEST_US, LOWEST_US, SIGNIFICANT_FIGURES

        _c, _n, offset, figures, lowest, highest, _r = _PAYLOAD.unpack_from(raw)
        if (offset, figures, lowest, highest) != (0, SIGNIFICANT_FIGURES, LOWEST_US, HIGHEST_US):
            from hdrh.histogram import HdrHistogram

            return int(HdrHistogram.decode(standard(raw)).get_max_value())  # another layout
        if self._template is None:
            from hdrh.histogram import HdrHistogram
            from pyhdrh import decode  # type: ignore[import-not-found]  # hdrh's C codec

            self._template = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
            self._buf = (ctypes.c_ulonglong * self._template.counts_len)()
            self._decode = decode
        t = self._template
        got = self._decode(raw, _PAYLOAD.size, ctypes.addressof(self._buf), t.counts_len, 8)
        top = int(got["max_nonzero_index"])
        if top < 0:
            return 0
        if top not in self._values:
            # as HdrHistogram: max_value from the index, then get_max_value()'s rounding up
            high = t.get_highest_equivalent_value
            self._values[top] = int(high(high(t.get_value_from_index(top))))
        return self._values[top]


_COUNTS = _Counts()


def max_us(raw: bytes) -> int:
    """The highest value of a V2 payload, as HdrHistogram.get_max_value() gives it."""
    return _COUNTS.max_us(raw)


@dataclass(frozen=True, slots=True)
class HdrBlock:
    """The histograms of a run's intervals, in interval order: ``data`` is base64 of one
    bzip2 stream of their V2 payloads (``encoding`` ``BZIP2``), or of one zlib stream, of
    their payloads (``PAYLOADS``) or of their standard encodings one a line (``_LINES``;
    an empty line: none)."""

    intervals: int
    data: str
    encoding: str = BZIP2

    def __post_init__(self) -> None:
        fields.integer(self.intervals, "intervals")
        fields.text(self.data, "data")
        if self.encoding not in ENCODINGS:
            allowed = ", ".join(repr(e) for e in ENCODINGS)
            raise fields.FieldError(
                "encoding", f"{fields.shown(self.encoding)}; allowed: {allowed}"
            )

    @classmethod
    def of(cls, texts: Sequence[str | None]) -> HdrBlock | None:
        """The block of these standard encodings; None when there is none. One whose
        zlib stream is damaged (read from a file, never decoded) cannot give its payload:
        then the block keeps the texts as they are, one a line, for whoever decodes them to
        name."""
        if not any(texts):
            return None
        parts: list[bytes] = []
        for t in texts:
            raw = checked_payload(t) if t else b""
            if raw is None:
                joined = "\n".join(t or "" for t in texts).encode("ascii")
                return cls(len(texts), _b64z(joined), _LINES)
            parts.append(_LENGTH.pack(len(raw)))
            parts.append(raw)
        flat = b"".join(parts)
        if len(zlib.compress(flat[:_SAMPLE], 1)) < _REPEATING * len(flat[:_SAMPLE]):
            return cls(len(texts), _b64z(flat), PAYLOADS)  # histograms that repeat
        return cls(len(texts), base64.b64encode(bz2.compress(flat)).decode("ascii"))

    @property
    def holds_payloads(self) -> bool:
        """The V2 payloads are stored (``payloads()`` gives them without re-encoding)."""
        return self.encoding in _OF_PAYLOADS

    def _unpacked(self) -> bytes:
        kind = "a bzip2 stream" if self.encoding == BZIP2 else "a zlib stream"
        try:
            raw = base64.b64decode(self.data, validate=True)
        except (binascii.Error, ValueError):
            raise fields.FieldError("data", f"not base64 of {kind}") from None
        try:
            if self.encoding == BZIP2:
                return bunzip(raw, block_cap(self.intervals))
            return inflate(raw, block_cap(self.intervals))
        except (zlib.error, StreamError) as e:
            raise fields.FieldError("data", f"not {kind} it can read: {e}") from None

    def _counted(self, n: int) -> None:
        if n != self.intervals:
            raise fields.FieldError(
                "data", f"holds {n:,} histograms for {self.intervals:,} intervals"
            )

    def payloads(self) -> list[bytes | None]:
        """Each interval's V2 payload (b"": none; None: a stored line that is not an
        HdrHistogram encoding), checked for their number; a FieldError naming the block's
        part when it is damaged."""
        if self.encoding == _LINES:
            lines = self.lines()
            return [checked_payload(line) if line else b"" for line in lines]
        flat, at, size = self._unpacked(), 0, _LENGTH.size
        out: list[bytes | None] = []
        while at < len(flat):
            if at + size > len(flat):
                raise fields.FieldError("data", "ends inside a histogram's length")
            (n,) = _LENGTH.unpack_from(flat, at)
            at += size
            if at + n > len(flat):
                raise fields.FieldError("data", f"ends inside histogram {len(out) + 1:,}")
            out.append(flat[at : at + n])
            at += n
        self._counted(len(out))
        return out

    def lines(self) -> list[bytes]:
        """Each interval's histogram as the ASCII of its standard encoding (b"": none),
        checked for their number only: whoever reads them checks each (the hlog export
        does, as it decodes each once); a FieldError naming the block's part."""
        if self.holds_payloads:
            return [standard(raw).encode("ascii") if raw else b"" for raw in self.payloads()]
        lines = self._unpacked().split(b"\n")
        self._counted(len(lines))
        return lines

    def texts(self) -> list[str | None]:
        """Each interval's histogram in the standard compressed encoding (None: none); a
        FieldError naming the block's part when it is damaged. Each is checked for its
        shape (well_formed); its zlib stream is read by whoever decodes it."""
        lines = self.lines()
        out: list[str | None] = []
        for k, line in enumerate(lines):  # decoded one by one: a day's are 34 MB
            text = line.decode("ascii", "replace") if line else None
            if text is not None and not well_formed(text):
                raise fields.FieldError(f"data, line {k + 1}", "not an HdrHistogram encoding")
            out.append(text)
            lines[k] = b""
        return out

    def to_json(self) -> dict[str, Any]:
        return {"encoding": self.encoding, "intervals": self.intervals, "data": self.data}

    @classmethod
    def from_json(cls, d: object) -> HdrBlock:
        m = fields.mapping(d, "")
        # the encoding is checked by the constructor; one an interval: checked with the run
        # (runform.check_blocks), after its ramp
        return cls(
            fields.member(m, "intervals"), fields.member(m, "data"), fields.member(m, "encoding")
        )


def _b64z(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data)).decode("ascii")
