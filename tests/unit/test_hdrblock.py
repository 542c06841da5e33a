"""result.json's per-interval histogram block: written as V2 payloads bzip2'd together,
read back as the standard encodings it was made of; a block of deflated payloads (version 2
files of 2026-12-02) or of lines (the first version 2 files) still reads the same; a
damaged, unknown or inflating block (and the intervals' columns) names itself.

Pure: histograms are built here; sizes are measured, times never.
"""

from __future__ import annotations

import base64
import bz2
import dataclasses
import json
import random
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from portstorm.core.errors import UsageError
from portstorm.core.fields import FieldError
from portstorm.core.hdrblock import BZIP2, ENCODINGS, HISTOGRAM_CAP, PAYLOADS, HdrBlock
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.result import RunResult, load_result, result_text
from portstorm.report.exports import hlog_bytes
from tests.support.reportdata import simulate

LINES = "hdrh-lines-deflate-base64"  # what version 2 files wrote first


def _distinct(n: int, seed: int = 22) -> list[str | None]:
    """``n`` histograms of ~400 connects drawn from one latency distribution, each its
    own, as a steady run's intervals are; every seventh interval has none."""
    rng = random.Random(seed)
    out: list[str | None] = []
    for k in range(n):
        if k % 7 == 3:
            out.append(None)
            continue
        h = LatencyHistogram()
        h.record_many(int(rng.lognormvariate(4.6, 0.5)) for _ in range(400))
        out.append(h.encode())
    return out


def _as_lines(texts: list[str | None]) -> HdrBlock:
    """The block as the first version 2 files held it: the standard encodings, one a line."""
    joined = "\n".join(t or "" for t in texts).encode("ascii")
    return HdrBlock(len(texts), base64.b64encode(zlib.compress(joined)).decode(), LINES)


def _deflated_payloads(block: HdrBlock) -> HdrBlock:
    """The block as version 2 files of 2026-12-02 held it: the same payloads, deflated."""
    flat = bz2.decompress(base64.b64decode(block.data))
    return HdrBlock(block.intervals, base64.b64encode(zlib.compress(flat)).decode(), PAYLOADS)


def test_a_block_gives_back_the_standard_encodings_it_was_made_of() -> None:
    texts = _distinct(60)
    block = HdrBlock.of(texts)
    assert block is not None and block.encoding == BZIP2
    assert block.texts() == texts
    again = HdrBlock.from_json(json.loads(json.dumps(block.to_json())))
    assert again == block and again.texts() == texts
    assert [p == b"" for p in block.payloads()] == [t is None for t in texts]


def test_payloads_compressed_together_take_less_room_than_lines() -> None:
    texts = _distinct(500)
    block = HdrBlock.of(texts)
    assert block is not None
    lines, deflated = _as_lines(texts), _deflated_payloads(block)
    assert lines.texts() == deflated.texts() == block.texts()
    # measured here: deflated 0.63 of the lines' size (0.72 on a real run's 600); bzip2
    # 0.88 of deflate's (0.83 on long_runs.py's distinct day of 86,400)
    assert len(deflated.data) < 0.8 * len(lines.data)
    assert len(block.data) < 0.93 * len(deflated.data)


def test_histograms_that_repeat_are_deflated_where_bzip2_gains_little_and_is_slow() -> None:
    # long_runs.py's days: bzip2 took 4.6 s for one that repeats every 20 intervals,
    # deflate 0.1 s, for 82 against 98 KB; histograms that differ are bzip2'd (above)
    texts = _distinct(20) * 400
    block = HdrBlock.of(texts)
    assert block is not None and block.encoding == PAYLOADS
    assert block.texts() == texts
    assert len(block.data) < 0.02 * sum(len(t or "") for t in texts)


def test_a_block_of_deflated_payloads_reads_and_exports_as_the_bzip2_one() -> None:
    r = simulate(ports=100, rate=50, duration=12, sandbox="pair")
    doc = json.loads(result_text(r))
    new = RunResult.from_json(json.loads(json.dumps(doc)), lazy=True)
    assert new.interval_hdrs is not None
    doc["interval_hdr"] = _deflated_payloads(new.interval_hdrs).to_json()
    old = RunResult.from_json(doc, lazy=True)
    assert old.interval_hdrs is not None and old.interval_hdrs.encoding == PAYLOADS
    assert old.interval_histograms() == new.interval_histograms() == [i.hdr for i in r.intervals]
    assert hlog_bytes(old) == hlog_bytes(new) == hlog_bytes(r)


def test_a_file_whose_block_is_lines_reads_and_exports_as_before() -> None:
    r = simulate(ports=100, rate=50, duration=12, sandbox="pair")
    doc = json.loads(result_text(r))
    assert doc["interval_hdr"]["encoding"] == BZIP2
    new = RunResult.from_json(json.loads(json.dumps(doc)), lazy=True)
    doc["interval_hdr"] = _as_lines(new.interval_histograms()).to_json()
    old = RunResult.from_json(doc, lazy=True)
    assert old.interval_hdrs is not None and old.interval_hdrs.encoding == LINES
    assert old.interval_histograms() == new.interval_histograms() == [i.hdr for i in r.intervals]
    assert hlog_bytes(old) == hlog_bytes(new) == hlog_bytes(r)


def _entries(block: HdrBlock) -> list[bytes]:
    """The block's stream split into its entries: a 4-byte length, then that many bytes."""
    flat, at, out = bz2.decompress(base64.b64decode(block.data)), 0, []
    while at < len(flat):
        n = 4 + int.from_bytes(flat[at : at + 4], "big")
        out.append(flat[at : at + n])
        at += n
    return out


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        (lambda e: [*e[:4], e[4][:2]], "ends inside a histogram's length"),
        (lambda e: [*e[:4], e[4][:30]], "ends inside histogram 5"),
        (lambda e: e[:5], "holds 5 histograms for 6 intervals"),
    ],
)
def test_a_truncated_block_names_where_it_ends(
    keep: Callable[[list[bytes]], list[bytes]], message: str
) -> None:
    block = HdrBlock.of(_distinct(6))
    assert block is not None
    entries = _entries(block)
    assert len(entries) == 6 and len(entries[4]) > 30
    short = base64.b64encode(bz2.compress(b"".join(keep(entries)))).decode()
    with pytest.raises(FieldError, match=message):
        dataclasses.replace(block, data=short).texts()


def test_an_unknown_block_encoding_is_refused_with_the_allowed_ones() -> None:
    block = HdrBlock.of(_distinct(3))
    assert block is not None
    doc = block.to_json() | {"encoding": "hdrh-lines-gzip"}
    with pytest.raises(FieldError, match="hdrh-lines-gzip.*allowed: " + repr(ENCODINGS[0])):
        HdrBlock.from_json(doc)


def test_a_histogram_whose_stream_is_damaged_is_kept_as_it_came_and_named_when_read() -> None:
    r = simulate(ports=100, rate=50, duration=6, sandbox="pair")
    texts = [i.hdr for i in r.intervals]
    k = next(k for k, t in enumerate(texts) if t is not None)
    raw = bytearray(base64.b64decode(texts[k] or ""))
    raw[12:20] = b"\xff" * 8  # the zlib stream, not its header: well formed, not readable
    texts[k] = base64.b64encode(bytes(raw)).decode()
    block = HdrBlock.of(texts)
    assert block is not None and block.encoding == LINES  # no payload to store for it
    assert block.texts() == texts
    with pytest.raises(UsageError, match=rf"intervals\[{k}\]\.hdr: not an HdrHistogram"):
        hlog_bytes(dataclasses.replace(r, interval_hdrs=block))


def _deflated(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data, 9)).decode()


def test_a_block_that_inflates_past_what_its_intervals_can_hold_is_refused() -> None:
    bomb = _deflated(b"\0" * (3 << 20))  # 3 KB that inflate to 3 MiB, for two intervals
    assert len(bomb) < 8_000
    with pytest.raises(FieldError, match=r"data: .*inflates past 1 MiB"):
        HdrBlock(2, bomb, PAYLOADS).texts()
    bomb = base64.b64encode(bz2.compress(b"\0" * (3 << 20))).decode()  # 100 bytes of bzip2
    assert len(bomb) < 200
    with pytest.raises(FieldError, match=r"data: not a bzip2 stream .*decompresses past 1 MiB"):
        HdrBlock(2, bomb).texts()
    block = HdrBlock.of(_distinct(40))
    assert block is not None
    for damaged, message in [
        (base64.b64decode(block.data)[:-6], "cut short"),
        (base64.b64decode(block.data) + b"BZh9", "bytes after the end of the stream"),
        (b"BZh9" + b"\x17" * 40, "Invalid data stream"),
    ]:
        with pytest.raises(FieldError, match=message) as e:
            dataclasses.replace(block, data=base64.b64encode(damaged).decode()).texts()
        assert "\n" not in str(e.value)
    deflated = _deflated_payloads(block)
    cut = base64.b64encode(base64.b64decode(deflated.data)[:-6]).decode()
    with pytest.raises(FieldError, match="cut short"):
        dataclasses.replace(deflated, data=cut).texts()


def test_a_file_whose_columns_inflate_past_what_its_intervals_hold_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    doc = json.loads(result_text(simulate(ports=100, rate=50, duration=6, sandbox="pair")))
    doc["interval_columns"]["data"] = _deflated(b"[" * (2 << 20))
    path = tmp_path / "result.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(UsageError) as e:
        load_result(path)
    message = str(e.value)
    assert "interval_columns.data" in message and "inflates past 1 MiB" in message
    assert "\n" not in message


def test_a_run_histogram_that_inflates_past_what_a_histogram_can_hold_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = json.loads(result_text(simulate(ports=100, rate=50, duration=3, sandbox="pair")))
    z = zlib.compress(b"\0" * (2 << 20), 9)  # 2 MiB from 2 KB: over HISTOGRAM_CAP
    doc["latency_us"]["hdr"] = base64.b64encode(struct.pack(">ii", 0x1C849314, len(z)) + z).decode()
    assert len(doc["latency_us"]["hdr"]) < 4_000 and HISTOGRAM_CAP < 2 << 20
    path = tmp_path / "result.json"
    path.write_text(json.dumps(doc))
    decoded: list[bytes] = []  # hdrh inflates what it is given: refused before it sees it
    real = HdrHistogram.decode

    def spy(b: bytes) -> HdrHistogram:
        decoded.append(b)
        return real(b)

    monkeypatch.setattr(HdrHistogram, "decode", spy)
    with pytest.raises(UsageError, match=r"latency_us\.hdr") as e:
        load_result(path)
    assert "\n" not in str(e.value)
    assert doc["latency_us"]["hdr"].encode() not in decoded
