"""Version 2 intervals read back column by column: for every interval at once, what its
object leaves out (core/runform.py says what): ``dt`` from the next start, each kernel
counter's zeros and columns, ``ports_by_destination`` and ``fds``.

Containing that bulk read, its counterpart for writing (``interval_counters``,
``interval_columns`` and the kernel objects, from a run's counter rows at once), and the
cycle collector's pause while a file's objects are made; no files. ``runform.changes()``
reads one interval back at a time (~35 us each: 3 s for a day's 86,400, twice that for
``compare`` of two days); here the same values come from comprehensions over whole
columns, and each counter column is checked once (ints in range, at C speed) rather than
each row apart. A file that is not in the shape a run writes (an interval that read other
counters than ``interval_counters`` lists, a counter name outside that list, a map that is
not an object, a column value of the wrong type) gives None: the caller reads it interval
by interval the old way, which names the fault. Both ways give the same Intervals (a test
compares them).
"""

from __future__ import annotations

import contextlib
import gc
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from itertools import repeat
from typing import Any, Protocol

from portstorm.core import counters
from portstorm.core.counters import Counters
from portstorm.core.fields import MAX_COUNT

SIDES = ("kernel", "server_kernel")
BY_DEST = "ports_by_destination"
# DESIGN.md's names: written in every interval's kernel map that read them, zero or not,
# where the run saw one change (``written_counters``)
KERNEL_NAMED = (
    "TcpExtTW",
    "TcpExtTWRecycled",
    "TcpExtTCPTimeWaitOverflow",
    "TcpExtListenDrops",
    "TcpOutRsts",
)
_MISSING = object()  # a name absent from an object (not the same as null)
READ_BACK = ("dt", *SIDES, BY_DEST, "fds")  # what an object leaves out and reads back as


class Columns(Protocol):
    """runform.Columns: ``interval_columns`` as read, shapes checked."""

    sides: dict[str, dict[str, Sequence[Any]]]
    fds: Sequence[Any] | None
    placed: dict[str, list[tuple[int, Sequence[Any]]]]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cycle collector held off while a file's objects are made: a day's load
    makes millions (dicts, Intervals, rows), none of them in a cycle, and the collector,
    run every 700 of them, walked all those made before: half the load's time."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def read_back(
    items: Sequence[Any],
    index: Mapping[str, Mapping[str, int]],
    cols: Columns,
    digits: int,
) -> tuple[dict[str, list[Any]], frozenset[str]] | None:
    """The columns ``dt``, ``kernel``, ``server_kernel``, ``ports_by_destination`` and
    ``fds`` as runform.changes() reads them back, one value an interval, and the names of
    those whose values were checked here (core/intervalcheck.py need not check them
    again); None when the file is not in the shape a run writes."""
    if not set(map(type, items)) <= {dict}:
        return None
    out: dict[str, list[Any]] = {"dt": interval_dts(items, digits)}
    checked = set()
    for side in SIDES:
        col = _counters(items, side, index.get(side), cols)
        if col is None:
            return None
        out[side] = col
        checked.add(side)
    by_dest = _by_destination(items, cols)
    if by_dest is None:
        return None
    out[BY_DEST], dest_checked = by_dest
    if dest_checked:
        checked.add(BY_DEST)
    out["fds"] = list(cols.fds) if cols.fds is not None else [m.get("fds") for m in items]
    return out, frozenset(checked)


def as_columns(
    items: Sequence[Any], changes: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, list[Any]], frozenset[str]]:
    """What runform.changes() read back interval by interval, as read_back's columns:
    each interval's change where it has one, else its object's own (none checked)."""
    return {
        name: [c.get(name, i.get(name) if type(i) is dict else None)
               for c, i in zip(changes, items, strict=True)]
        for name in READ_BACK
    }, frozenset()  # fmt: skip


def finite_seconds(v: object) -> bool:
    """A finite number of seconds (a hostile file's 4,000-digit integer is not: float() of
    it raised OverflowError, a traceback, before any field was checked)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def interval_dts(items: Sequence[dict[str, Any]], digits: int) -> list[Any]:
    """Each ``dt``: its own, else from the next start (None where neither: refused later),
    as runform.changes() derives it."""
    ts: list[Any] = list(map(dict.get, items, repeat("t")))
    dts: list[Any] = list(map(dict.get, items, repeat("dt"), repeat(_MISSING)))
    if set(map(type, ts)) <= {int, float}:  # (a bool's type is bool): no check each
        try:
            starts = list(map(float, ts))
        except OverflowError:
            starts = []
        if len(starts) == len(ts) and all(map(math.isfinite, starts)):
            return [
                d if d is not _MISSING else round(b - a, digits) if b is not None else None
                for d, a, b in zip(dts, starts, [*starts[1:], None][: len(ts)], strict=True)
            ]
    return [
        d
        if d is not _MISSING
        else (
            round(float(b) - float(a), digits) if finite_seconds(a) and finite_seconds(b) else None
        )
        for d, a, b in zip(dts, ts, [*ts[1:], None][: len(ts)], strict=True)
    ]


def _ints(col: Sequence[Any], low: int) -> bool:
    return not col or (set(map(type, col)) == {int} and low <= min(col) and max(col) <= MAX_COUNT)


def _counters(
    items: Sequence[dict[str, Any]],
    side: str,
    names: Mapping[str, int] | None,
    cols: Columns,
) -> list[Any] | None:
    """One side's counters, an interval each: a Counters row of the listed names (zeros,
    then the column's value, then the object's own), or None where it read none."""
    if any(map(dict.__contains__, items, repeat(f"{side}_read"))):
        return None  # an interval that read other names: runform.changes() reads it
    maps = list(map(dict.get, items, repeat(side), repeat(_MISSING)))
    if names is None:  # the run read no counters on this side
        if side in cols.sides or any(v is not None and v is not _MISSING for v in maps):
            return None
        return [None] * len(items)
    placed = cols.placed.get(side)
    if placed is None:
        return None  # a column of a name the list does not have
    # the server's side absent from an object: the run read its counters, this one zeros
    absent: dict[str, int] | None = {} if side == "server_kernel" else None
    maps = [absent if v is _MISSING else v for v in maps]
    present = [v for v in maps if v is not None]
    if not set(map(type, present)) <= {dict}:
        return None
    held = set().union(*present)
    if not held <= names.keys():
        return None  # a name the list does not have: a dict, interval by interval
    if sorted(names.values()) != list(range(len(names))):
        return None  # positions that are not 0..n-1 (counters.index makes them so)
    n = len(items)
    empty: dict[str, int] = {}
    src = [empty if v is None else v for v in maps]
    by_pos = dict(placed)
    zeros = [0] * n
    per_name = []
    low = -MAX_COUNT  # deltas of the kernel's counters: a counter that was reset goes down
    for name, pos in sorted(names.items(), key=lambda kv: kv[1]):
        base = by_pos.get(pos)
        if base is None:
            col = list(map(dict.get, src, repeat(name), repeat(0))) if name in held else zeros
        else:
            base = [0 if b is None else b for b in base]
            col = list(map(dict.get, src, repeat(name), base)) if name in held else base
        if col is not zeros and not _ints(col, low):
            return None
        per_name.append(col)
    if not per_name:
        return [None if m is None else Counters(names, ()) for m in maps]
    rows = Counters.rows(names, zip(*per_name, strict=True))
    return [None if m is None else row for m, row in zip(maps, rows, strict=True)]


def _by_destination(
    items: Sequence[dict[str, Any]], cols: Columns
) -> tuple[list[Any], bool] | None:
    """``ports_by_destination`` per interval, and whether its values were checked here;
    None when an object holds its own (only a null is written there)."""
    group = cols.sides.get(BY_DEST)
    if group is None:
        return [m.get(BY_DEST) for m in items], False
    # written in an object only as null, where the others have one
    written = list(map(dict.__contains__, items, repeat(BY_DEST)))
    if any(m[BY_DEST] is not None for m, w in zip(items, written, strict=True) if w):
        return None
    dests = list(group)
    for c in group.values():
        if not _ints([v for v in c if v is not None], 0):
            return None
    if len(dests) == 1:
        d0, c0 = dests[0], group[dests[0]]
        built = [{} if v is None else {d0: v} for v in c0]
    else:
        built = [
            {d: v for d, v in zip(dests, vs, strict=True) if v is not None}
            for vs in zip(*group.values(), strict=True)
        ]
    return [None if w else b for b, w in zip(built, written, strict=True)], True


def counter_names(intervals: Sequence[Any]) -> dict[str, list[str]]:
    """Per side, the counter names most intervals read (in the order first seen): the
    names of a run's rows, where every interval's are those."""
    out: dict[str, list[str]] = {}
    for side in SIDES:
        shared = counters.table(intervals, side).shared()
        if shared is not None:
            out[side] = shared
            continue
        seen: Counter[tuple[str, ...]] = Counter(
            tuple(m) for i in intervals if (m := getattr(i, side)) is not None
        )
        if seen:
            out[side] = list(seen.most_common(1)[0][0])
    return out


def columns_of(intervals: Sequence[Any]) -> dict[str, Any]:
    """``interval_columns``: what the objects leave out, one value an interval."""
    cols: dict[str, Any] = {}
    for side in SIDES:
        table = counters.table(intervals, side)
        maps = [getattr(i, side) for i in intervals]
        names = table.shared() or dict.fromkeys(k for m in maps if m is not None for k in m)
        kept = {}
        for name in names:
            if side == "kernel" and name in KERNEL_NAMED:
                continue
            col = table.column(name, absent=None)
            if any(col):  # all zero (or unread): interval_counters says 0 where read
                kept[name] = list(col)
        if kept:
            cols[side] = kept
    dests = [i.ports_by_destination for i in intervals]
    if any(m is not None for m in dests):
        keys = dict.fromkeys(k for m in dests if m is not None for k in m)
        cols[BY_DEST] = {k: [None if m is None else m.get(k) for m in dests] for k in keys}
    if any(i.fds is not None for i in intervals):
        cols["fds"] = [i.fds for i in intervals]
    return cols


def written_counters(
    intervals: Sequence[Any], names: Mapping[str, Sequence[str]]
) -> list[tuple[dict[str, int] | None, dict[str, list[str] | None]]]:
    """Per interval, its kernel object (DESIGN.md's names it read, of those that changed
    in some interval of the run) and, per side, the names it read where they are not
    those ``interval_counters`` lists (None: they are): from the run's rows in C, or map
    by map. A name that never changed is in no object: it reads back 0 from the list
    (``portstorm.run/3``; in a day of 1 s intervals, the five names zero or not were
    7.3 of 24.3 MB), and one that did is in every object, so a reader that sums it over
    the intervals finds it in each."""
    table = counters.table(intervals, "kernel")
    kernel = table.objects([n for n in KERNEL_NAMED if any(table.column(n, absent=None))])
    other: dict[str, list[list[str] | None]] = {}
    for side in SIDES:
        listed = list(names.get(side, ()))
        if counters.table(intervals, side).shared() == listed:
            other[side] = [None] * len(intervals)
            continue
        maps = [getattr(i, side) for i in intervals]
        other[side] = [None if m is None or list(m) == listed else list(m) for m in maps]
    return [(k, {side: other[side][j] for side in SIDES}) for j, k in enumerate(kernel)]
