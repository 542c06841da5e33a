"""The compact form of a run's intervals in ``portstorm.run/2`` and ``/3`` (core/result.py):
each interval an object with DESIGN.md's names, the rest of what it measured in columns.

Containing the writing and reading of the interval objects, their columns and the counter
names they share; no files. An interval of ``portstorm.run/1`` was ~930 bytes, most of it
zeros: 13 client and 13 server kernel counters, empty maps, nulls, its own histogram, and
``indent=1``. In version 2, each object holds:
- ``t``, ``attempts``, ``succeeded``, ``failed``, ``latency_us`` {p50, p99}, ``time_wait``,
  ``server_time_wait``, ``ports_in_use`` (null when not read), ``kernel`` (null when not
  read) with TcpExtTW, TcpExtTWRecycled, TcpExtTCPTimeWaitOverflow, TcpExtListenDrops and
  TcpOutRsts, zero or not (version 3: those of them that changed in some interval of the
  run; the others read back 0); ``established`` and ``router`` in every interval of a run that
  read them (null where one did not); ``other_errnos``, ``not_started``,
  ``transaction_us`` and ``http_status`` where they hold something (absent: null, empty
  or 0, as version 1's older files read);
- ``dt`` only where the next interval does not start at this one's end (and the last);
- ``server_kernel`` / ``ports_by_destination`` only as null, where one interval lacks
  what the others have; ``kernel_read`` / ``server_kernel_read`` where an interval read
  other counters than ``interval_counters`` lists.
The top level's ``interval_counters`` lists, per side, the counter names the intervals
read (each reads back 0 where its column does not say otherwise); ``interval_columns``
holds, one value an interval (null: none), the other kernel counters and every
``server_kernel`` counter that was ever not zero, ``ports_by_destination`` per
destination, and ``fds``; ``hdr`` and ``transaction_hdr`` are in the blocks
``interval_hdr`` and ``interval_transaction_hdr`` (core/hdrblock.py).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from portstorm.core import counters, fields, runcolumns
from portstorm.core.counters import Counters
from portstorm.core.hdrblock import HdrBlock
from portstorm.core.intervalcheck import quick_all
from portstorm.core.reading import block_cap, inflate
from portstorm.core.records import Interval
from portstorm.core.runcolumns import KERNEL_NAMED as KERNEL_NAMED  # written in each object
from portstorm.core.runcolumns import finite_seconds

SIDES = ("kernel", "server_kernel")
BY_DEST = "ports_by_destination"
T = TypeVar("T")
BLOCKS = ("interval_hdr", "interval_transaction_hdr")
DIGITS = 3  # t and dt in ms: an interval's bounds to the microsecond were 3 bytes more each
COLUMNS_ENCODING = "json-deflate-base64"


def interval_json(
    i: Interval,
    names: Mapping[str, Sequence[str]],
    cols: Mapping[str, Any],
    next_t: float | None,
    read: frozenset[str] = frozenset(),
    made: tuple[Any, Mapping[str, list[str] | None]] | None = None,
) -> dict[str, Any]:
    """One interval's object; ``next_t``: where the next one starts (None for the last);
    ``read``: of ``established`` and ``router``, those some interval of the run holds
    (written as null where this one has none, so a reader finds the name in each);
    ``made``: its kernel object and the counters of each side it read where those are
    not the listed ones (runcolumns.written_counters), else worked out here."""
    t = round(i.t, DIGITS)
    d: dict[str, Any] = {"t": t}
    dt = round(i.dt, DIGITS)
    if next_t is None or round(round(next_t, DIGITS) - t, DIGITS) != dt:
        d["dt"] = dt
    d["attempts"] = i.attempts
    d["succeeded"] = i.succeeded
    d["failed"] = dict(i.failed)
    if i.other_errnos:
        d["other_errnos"] = dict(i.other_errnos)
    d["latency_us"] = dict(i.latency_us)
    d["time_wait"] = i.time_wait
    d["server_time_wait"] = i.server_time_wait
    d["ports_in_use"] = i.ports_in_use
    if i.established is not None or "established" in read:
        d["established"] = i.established
    if made is None:
        made = runcolumns.written_counters((i,), names)[0]
    d["kernel"], other = made
    for side in SIDES:
        if getattr(i, side) is None:
            if side == "server_kernel" and side in names:
                d[side] = None  # the others have one
        elif other[side] is not None:
            d[f"{side}_read"] = other[side]
    if i.ports_by_destination is None and BY_DEST in cols:
        d[BY_DEST] = None
    if i.not_started:
        d["not_started"] = i.not_started
    if i.transaction_us is not None:
        d["transaction_us"] = dict(i.transaction_us)
    if i.http_status is not None:
        d["http_status"] = dict(i.http_status)
    if i.router is not None or "router" in read:
        d["router"] = None if i.router is None else i.router.to_json()
    return d


def intervals_doc(
    intervals: Sequence[Interval],
    hdrs: Sequence[str | None],
    transaction_hdrs: Sequence[str | None],
) -> dict[str, Any]:
    """result.json's ``interval_counters``, ``interval_columns``, ``intervals`` and the
    histogram blocks."""
    names, cols = runcolumns.counter_names(intervals), runcolumns.columns_of(intervals)
    made = runcolumns.written_counters(intervals, names)
    n = len(intervals)
    read = frozenset(
        name
        for name in ("established", "router")
        if any(getattr(i, name) is not None for i in intervals)
    )
    packed = zlib.compress(json.dumps(cols, separators=(",", ":")).encode("ascii"))
    doc: dict[str, Any] = {
        "interval_counters": names,
        "interval_columns": {
            "encoding": COLUMNS_ENCODING,
            "data": base64.b64encode(packed).decode("ascii"),
        },
        "intervals": [
            interval_json(i, names, cols, intervals[k + 1].t if k + 1 < n else None, read, m)
            for k, (i, m) in enumerate(zip(intervals, made, strict=True))
        ],
    }
    for key, texts in zip(BLOCKS, (hdrs, transaction_hdrs), strict=True):
        block = HdrBlock.of(texts)
        if block is not None:
            doc[key] = block.to_json()
    return doc


class Columns:
    """``interval_columns`` as read: checked for shape (each a list, one value an interval);
    the values are checked with the interval they go into."""

    def __init__(self, raw: object, n: int) -> None:
        m = self._unpacked(fields.mapping(raw, "interval_columns", null=True), n)
        self.sides: dict[str, dict[str, Sequence[Any]]] = {}
        for key in (*SIDES, BY_DEST):
            if key in m:
                group = fields.mapping(m[key], f"interval_columns.{key}")
                self.sides[key] = {k: self._column(v, f"{key}.{k}", n) for k, v in group.items()}
        self.fds = self._column(m["fds"], "fds", n) if "fds" in m else None
        self.placed: dict[str, list[tuple[int, Sequence[Any]]]] = {}

    def place(self, index: Mapping[str, Mapping[str, int]]) -> None:
        """Each side's columns with their names' positions in ``index`` (a side with a
        column of a name the list does not have reads each interval into a dict)."""
        for side, names in index.items():
            group = self.sides.get(side, {})
            if all(n in names for n in group):
                self.placed[side] = [(names[n], c) for n, c in group.items()]

    @staticmethod
    def _unpacked(m: Mapping[str, Any], n: int) -> Mapping[str, Any]:
        if not m:
            return m
        encoding = m.get("encoding")
        if encoding != COLUMNS_ENCODING:
            allowed = f"{fields.shown(encoding)}; allowed: {COLUMNS_ENCODING!r}"
            raise fields.FieldError("interval_columns.encoding", allowed)
        try:
            raw = inflate(base64.b64decode(str(m.get("data")), validate=True), block_cap(n))
            cols = json.loads(raw)
        except (binascii.Error, ValueError, RecursionError):
            raise fields.FieldError(
                "interval_columns.data", "not base64 of deflated JSON"
            ) from None
        except zlib.error as e:
            raise fields.FieldError("interval_columns.data", f"not deflated JSON: {e}") from None
        return fields.mapping(cols, "interval_columns.data")

    @staticmethod
    def _column(v: object, name: str, n: int) -> Sequence[Any]:
        col = fields.sequence(v, f"interval_columns.{name}")
        if len(col) != n:
            raise fields.FieldError(f"interval_columns.{name}", f"{len(col):,} values for "
                                    f"{n:,} intervals; allowed: one each")  # fmt: skip
        return col


def expanded(
    m: object, k: int, index: Mapping[str, Mapping[str, int]], cols: Columns, next_t: object
) -> dict[str, Any]:
    """Interval ``k``'s version 2 object in version 1's shape (Interval.from_json checks
    it): the object with its ``changes``."""
    d = dict(m if type(m) is dict else fields.mapping(m, ""))
    for side in SIDES:
        d.pop(f"{side}_read", None)
    d.update(changes(m, k, index, cols, next_t))
    return d


def changes(
    m: object, k: int, index: Mapping[str, Mapping[str, int]], cols: Columns, next_t: object
) -> dict[str, Any]:
    """What interval ``k``'s version 2 object reads back as, beside what it holds: ``dt``
    from the next start, each counter with its zeros and columns (``index``: side -> the
    names ``interval_counters`` lists, with their positions) as a Counters row where its
    names are those (a dict where they are not), ``ports_by_destination`` and ``fds``."""
    d = m if type(m) is dict else fields.mapping(m, "")
    out: dict[str, Any] = {}
    t = d.get("t")
    if "dt" not in d and finite_seconds(t) and finite_seconds(next_t):
        out["dt"] = round(float(next_t) - float(t), DIGITS)  # type: ignore[arg-type]
    for side in SIDES:
        read = d.get(f"{side}_read")
        got = d.get(side)
        if side == "server_kernel" and side not in d and side in index:
            got = {}  # the run read its counters; null in the object when not
        if got is None:
            continue
        counters = got if type(got) is dict else fields.mapping(got, side)
        names = index.get(side)
        placed = cols.placed.get(side)
        if read is None and names is not None and placed is not None:
            row = [0] * len(names)
            for pos, c in placed:  # the columns' values, at their names' positions
                if (v := c[k]) is not None:
                    row[pos] = v
            for name, v in counters.items():
                at = names.get(name)
                if at is None:
                    break  # a name the list does not have: a dict, below
                row[at] = v
            else:
                out[side] = Counters(names, row)
                continue
        column = [(n, c[k]) for n, c in cols.sides.get(side, {}).items() if c[k] is not None]
        listed = (names or {}) if read is None else fields.sequence(read, f"{side}_read")
        full: dict[str, Any] = dict.fromkeys(map(str, listed), 0)
        full.update(column)
        full.update(counters)
        out[side] = full
    if BY_DEST not in d and BY_DEST in cols.sides:
        out[BY_DEST] = {dest: c[k] for dest, c in cols.sides[BY_DEST].items() if c[k] is not None}
    if cols.fds is not None:
        out["fds"] = cols.fds[k]
    return out


def names_from_json(d: object) -> dict[str, list[str]]:
    """``interval_counters``: side -> the names its intervals read."""
    m = fields.mapping(d, "interval_counters", null=True)
    out = {}
    for side in SIDES:
        if side in m:
            with fields.within("interval_counters"):
                names = fields.sequence(m[side], side)
                fields.text_list(names, side)
            out[side] = [str(n) for n in names]
    return out


def read_intervals(
    m: Mapping[str, Any], version: int
) -> tuple[tuple[Interval, ...], HdrBlock | None, HdrBlock | None]:
    """The intervals of a result.json of ``version`` and, from version 2, their blocks."""
    items = fields.sequence(fields.member(m, "intervals"), "intervals")
    expand = None
    if version >= 2:
        names = names_from_json(m.get("interval_counters"))
        index = {side: counters.index(names[side]) for side in names}
        cols = Columns(m.get("interval_columns"), len(items))
        cols.place(index)

        def expand(how: Callable[..., dict[str, Any]]) -> list[dict[str, Any]]:
            out = []
            for k, item in enumerate(items):
                nxt = items[k + 1] if k + 1 < len(items) else None
                nxt_t = nxt.get("t") if type(nxt) is dict else None
                try:
                    out.append(how(item, k, index, cols, nxt_t))
                except fields.FieldError as e:
                    raise e.under(f"intervals[{k}]") from None
            return out

    # the objects as they are, and what they read back as beside them: no copy of each
    if expand is None:
        got = quick_all(items)
    else:
        # not in the shape a run writes (None): read back interval by interval
        bulk = runcolumns.read_back(items, index, cols, DIGITS)
        got = quick_all(items, *(bulk or runcolumns.as_columns(items, expand(changes))))
    if got is None:  # something is wrong: read each the long way, which names it
        got = []
        for k, item in enumerate(expand(expanded) if expand is not None else items):
            with fields.within(f"intervals[{k}]"):
                got.append(Interval.from_json(item))
    out = got
    blocks: list[HdrBlock | None] = []
    for key in BLOCKS:
        raw = m.get(key) if version >= 2 else None
        if raw is None:
            blocks.append(None)
            continue
        with fields.within(key):
            blocks.append(HdrBlock.from_json(raw))
    return tuple(out), blocks[0], blocks[1]


def listed(m: Mapping[str, Any], key: str, read: Callable[[Any], T]) -> tuple[T, ...]:
    """The list at ``key`` read item by item (absent or null: empty, as in older files)."""
    items = m.get(key)
    out = []
    for i, item in enumerate(fields.sequence([] if items is None else items, key)):
        with fields.within(f"{key}[{i}]"):
            out.append(read(item))
    return tuple(out)


def check_blocks(intervals: Sequence[Interval], *blocks: HdrBlock | None) -> None:
    """A RunResult's histogram blocks: one entry per interval."""
    for name, block in zip(BLOCKS, blocks, strict=False):
        if block is None:
            continue
        fields.instance(block, HdrBlock, name)
        if block.intervals != len(intervals):
            raise fields.FieldError(
                f"{name}.intervals", f"{block.intervals:,} for {len(intervals):,} intervals"
            )


def filled(
    intervals: Sequence[Interval],
    hdrs: Sequence[str | None],
    transaction_hdrs: Sequence[str | None],
) -> tuple[Interval, ...]:
    """The intervals with their histograms back in ``hdr`` and ``transaction_hdr``."""
    return tuple(
        dataclasses.replace(i, hdr=h or i.hdr, transaction_hdr=x or i.transaction_hdr)
        for i, h, x in zip(intervals, hdrs, transaction_hdrs, strict=True)
    )


def file_text(doc: Mapping[str, Any]) -> str:
    """A result.json document's text: the top level indented, each interval on one line,
    not indented (a day's intervals, indented, were half the file)."""
    top = {k: v for k, v in doc.items() if k != "intervals"}
    head = json.dumps(top, indent=1)
    one = json.JSONEncoder(separators=(",", ":")).encode  # one encoder for 86,400 lines
    lines = ",\n".join(map(one, doc.get("intervals", ())))
    return head[:-2] + f',\n "intervals": [\n{lines}\n ]\n}}\n'
