"""Per-interval latency histograms stored together: result.json's ``interval_hdr`` block
(``portstorm.run/2``), kept encoded until something asks for them.

Containing the block's encoding and decoding, the cheap check of one histogram's encoding,
and an interval's maximum read without building the histogram; no files.

Each interval's histogram is HdrHistogram's standard compressed encoding (base64 of an
8-byte header and a zlib stream of the V2 payload: ~390 characters an interval at 400
conn/s). The block holds them one a line, deflated and base64'd once: written and read
back in bulk (zlib and base64 in C, no work per interval), and a run whose intervals
repeat themselves costs little. Distinct histograms are already compressed, so a day of
them stays ~30 MB: what this saves is the time, and the indentation. Decoding one costs
~0.3 ms (hdrh allocates its 45,000 counters each time), so nothing decodes them at load;
the hlog export reads each one's maximum with ``max_us``, without building it.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from portstorm.core import fields

_HEADER = struct.Struct(">ii")  # the external header: cookie, compressed length
_PAYLOAD = struct.Struct(">iiiiqqd")  # cookie, length, offset, figures, lowest, highest, ratio
_COMPRESSION_COOKIE_BASE = 0x1C849304  # hdrh's V2_COMPRESSION_COOKIE_BASE (low nibble free)
_ENCODING = "hdrh-lines-deflate-base64"


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
        return zlib.decompress(raw[_HEADER.size :])
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
    return zlib.decompress(raw[_HEADER.size :])


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
    zlib stream of their standard encodings, one a line (an empty line: none)."""

    intervals: int
    data: str

    def __post_init__(self) -> None:
        fields.integer(self.intervals, "intervals")
        fields.text(self.data, "data")

    @classmethod
    def of(cls, texts: Sequence[str | None]) -> HdrBlock | None:
        """The block of these standard encodings; None when there is none."""
        if not any(texts):
            return None
        joined = "\n".join(t or "" for t in texts).encode("ascii")
        return cls(len(texts), base64.b64encode(zlib.compress(joined)).decode("ascii"))

    def lines(self) -> list[bytes]:
        """Each interval's histogram as the ASCII of its standard encoding (b"": none),
        checked for their number only: whoever reads them checks each (the hlog export
        does, as it decodes each once); a FieldError naming the block's part."""
        try:
            lines = zlib.decompress(base64.b64decode(self.data, validate=True)).split(b"\n")
        except (binascii.Error, ValueError, zlib.error):
            raise fields.FieldError("data", "not base64 of a zlib stream of text") from None
        if len(lines) != self.intervals:
            raise fields.FieldError(
                "data", f"holds {len(lines):,} lines for {self.intervals:,} intervals"
            )
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
        return {"encoding": _ENCODING, "intervals": self.intervals, "data": self.data}

    @classmethod
    def from_json(cls, d: object) -> HdrBlock:
        m = fields.mapping(d, "")
        if m.get("encoding") != _ENCODING:
            raise fields.FieldError(
                "encoding", f"{fields.shown(m.get('encoding'))}; allowed: {_ENCODING!r}"
            )
        # one an interval: checked with the run (runform.check_blocks), after its ramp
        return cls(fields.member(m, "intervals"), fields.member(m, "data"))
