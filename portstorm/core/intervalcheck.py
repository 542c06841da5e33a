"""Reading a long run's intervals at the speed of the file: the checks of every
interval object made column by column, then the Intervals built without checking each
a second time.

Containing the quick check and its column checks (``ints_ok``, ``seconds_ok``,
``maps_ok``, ``texts_ok``: core/readings.py makes the same ones) and nothing else.
``Interval.from_json`` checks each field by name through core/fields.py, which is what
makes a damaged file's error say
``intervals[3].latency_us.p50``; at ~50 us an interval, a day of them (86,400) took 4.5 s
to read, twice that for ``compare`` of two. ``quick_all`` makes the same checks (types,
ranges, outcome names, attempts = succeeded + failed) over whole columns with set(), min()
and max(): when every object passes, they become Intervals as from_json would build them;
when one does not, None, and the caller reads each through from_json, which names the
fault. An Interval field this module does not know (one added later) sends every file
the long way, so nothing is ever left unchecked.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import operator
from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any

from portstorm.core import fields
from portstorm.core.counters import Counters
from portstorm.core.fields import MAX_COUNT, MAX_SECONDS
from portstorm.core.hdrblock import well_formed
from portstorm.core.records import FAILURE_NAMES, Interval
from portstorm.core.routerrecord import RouterReading

_COUNTS = ("time_wait", "server_time_wait", "ports_in_use", "established", "fds")
_MAPS = ("kernel", "server_kernel", "ports_by_destination", "transaction_us", "http_status")
_KNOWN = frozenset(
    ("t", "dt", "attempts", "succeeded", "failed", "other_errnos", "latency_us", "hdr",
     "not_started", "transaction_hdr", "router", *_COUNTS, *_MAPS)
)  # fmt: skip
_FIELDS = tuple(f.name for f in dataclasses.fields(Interval))
_EMPTY: dict[str, int] = {}  # the intervals' empty maps: Mappings, never changed
BY_DEST = "ports_by_destination"
ENABLED = frozenset(_FIELDS) == _KNOWN
_SLOTS = {name: vars(Interval)[name] for name in _FIELDS}  # each field's slot descriptor


def ints_ok(col: list[Any], low: int = 0, nulls: bool = False) -> bool:
    """Every value an int in [low, MAX_COUNT] (or None, with ``nulls``)."""
    values = [v for v in col if v is not None] if nulls else col
    return not values or (
        set(map(type, values)) == {int} and low <= min(values) and max(values) <= MAX_COUNT
    )


def seconds_ok(col: list[Any]) -> bool:
    """Every value a finite number of seconds in [0, MAX_SECONDS], their sum finite too."""
    if not col:
        return True
    if not set(map(type, col)) <= {int, float}:
        return False
    try:
        total = sum(map(float, col))  # NaN or inf make it so; min and max can miss a NaN
    except OverflowError:  # a 4,000-digit integer: no float, and no number of seconds
        return False
    return total == total and abs(total) != math.inf and min(col) >= 0 and max(col) <= MAX_SECONDS


def maps_ok(col: list[Any], low: int = 0, nulls: bool = False, maybe: bool = False) -> bool:
    """Every value a dict of str -> int in [low, MAX_COUNT] (None too, with ``maybe``), or
    a Counters row (runform.py's: its names checked where they were read) in range."""
    maps = [m for m in col if m is not None] if maybe else col
    if Counters in set(map(type, maps)):
        rows = [m for m in maps if type(m) is Counters]
        if not all(m.values_in_range(low, MAX_COUNT) for m in rows):
            return False
        maps = [m for m in maps if type(m) is not Counters]
    if not set(map(type, maps)) <= {dict}:
        return False
    keys = set().union(*maps)  # in C: a day's maps are 86,400 a column
    return set(map(type, keys)) <= {str} and ints_ok(
        list(itertools.chain.from_iterable(map(dict.values, maps))), low, nulls
    )


def texts_ok(col: list[Any]) -> bool:
    """Every value None or a standard HdrHistogram encoding (its shape: core/hdrblock.py)."""
    return all(v is None or (type(v) is str and well_formed(v)) for v in col)


def quick_all(
    items: Sequence[Any],
    columns: Mapping[str, Sequence[Any]] | None = None,
    checked: frozenset[str] = frozenset(),
) -> list[Interval] | None:
    """The Intervals of version 1 shaped objects, with ``columns`` (runform.py's: what
    version 2 objects read back as, one value an interval) in place of theirs, or None
    when any check fails for any of them (the caller then reads each through
    Interval.from_json, which names the fault). Checked column by column: the same
    checks, at C speed; ``checked``: maps of ``columns`` their maker checked already."""
    if not ENABLED or not set(map(type, items)) <= {dict}:
        return None
    given = columns or {}
    cols: dict[str, list[Any]] = {
        name: list(given[name]) if name in given else list(map(dict.get, items, repeat(name)))
        for name in _FIELDS
    }
    if any(len(c) != len(items) for c in cols.values()):
        return None
    cols["other_errnos"] = [m.get("other_errnos", {}) for m in items]
    cols["not_started"] = [m.get("not_started", 0) for m in items]
    failed = cols["failed"]
    ok = (
        seconds_ok(cols["t"])
        and seconds_ok(cols["dt"])
        and all(ints_ok(cols[n]) for n in ("attempts", "succeeded", "not_started"))
        and all(ints_ok(cols[n], nulls=True) for n in _COUNTS)
        and maps_ok(failed)
        and set().union(*failed) <= FAILURE_NAMES
        and maps_ok(cols["other_errnos"])
        and maps_ok(cols["latency_us"], nulls=True)
        and ("kernel" in checked or maps_ok(cols["kernel"], -MAX_COUNT, maybe=True))
        and ("server_kernel" in checked or maps_ok(cols["server_kernel"], -MAX_COUNT, maybe=True))
        and (BY_DEST in checked or maps_ok(cols[BY_DEST], maybe=True))
        and maps_ok(cols["transaction_us"], nulls=True, maybe=True)
        and maps_ok(cols["http_status"], maybe=True)
        and texts_ok(cols["hdr"])
        and texts_ok(cols["transaction_hdr"])
        and cols["attempts"]  # = succeeded + failed, each interval's, added in C
        == list(map(operator.add, cols["succeeded"], map(sum, map(dict.values, failed))))
    )
    if not ok:
        return None
    cols["t"] = [float(v) for v in cols["t"]]
    cols["dt"] = [float(v) for v in cols["dt"]]
    for name in ("failed", "other_errnos", "latency_us", *_MAPS):
        if name in checked:
            continue  # made by the caller, not the document's
        # a copy of each (the document is the caller's), an empty one shared by all
        cols[name] = [m if type(m) is Counters or m is None else dict(m) if m else _EMPTY
                      for m in cols[name]]  # fmt: skip
    with fields.within("router"):
        cols["router"] = [None if d is None else RouterReading.from_json(d) for d in cols["router"]]
    # checked above, as __post_init__ checks them: each field set by its slot's
    # descriptor, column by column in C (an object at a time, 21 calls each, was 0.5 s a day)
    out = list(map(object.__new__, repeat(Interval, len(items))))
    for name in _FIELDS:
        collections.deque(map(_SLOTS[name].__set__, out, cols[name]), maxlen=0)
    return out
