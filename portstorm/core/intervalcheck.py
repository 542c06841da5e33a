"""Reading a long run's intervals at the speed of the file: the checks of every
interval object made column by column, then the Intervals built without checking each
a second time.

Containing the quick check and nothing else. ``Interval.from_json`` checks each field by
name through core/fields.py, which is what makes a damaged file's error say
``intervals[3].latency_us.p50``; at ~50 us an interval, a day of them (86,400) took 4.5 s
to read, twice that for ``compare`` of two. ``quick_all`` makes the same checks (types,
ranges, outcome names, attempts = succeeded + failed) over whole columns with set(), min()
and max(): when every object passes, they become Intervals as from_json would build them;
when one does not, None, and the caller reads each through from_json, which names the
fault. An Interval field this module does not know (one added later) sends every file
the long way, so nothing is ever left unchecked.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
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
ENABLED = frozenset(_FIELDS) == _KNOWN


def _ints(col: list[Any], low: int = 0, nulls: bool = False) -> bool:
    """Every value an int in [low, MAX_COUNT] (or None, with ``nulls``)."""
    values = [v for v in col if v is not None] if nulls else col
    return not values or (
        set(map(type, values)) == {int} and low <= min(values) and max(values) <= MAX_COUNT
    )


def _seconds(col: list[Any]) -> bool:
    if not col:
        return True
    if not set(map(type, col)) <= {int, float}:
        return False
    try:
        total = sum(map(float, col))  # NaN or inf make it so; min and max can miss a NaN
    except OverflowError:  # a 4,000-digit integer: no float, and no number of seconds
        return False
    return total == total and abs(total) != math.inf and min(col) >= 0 and max(col) <= MAX_SECONDS


def _maps(col: list[Any], low: int = 0, nulls: bool = False, maybe: bool = False) -> bool:
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
    keys = {k for m in maps for k in m}
    return set(map(type, keys)) <= {str} and _ints(
        [v for m in maps for v in m.values()], low, nulls
    )


def _texts(col: list[Any]) -> bool:
    return all(v is None or (type(v) is str and well_formed(v)) for v in col)


def quick_all(
    items: Sequence[Any], changes: Sequence[Mapping[str, Any]] | None = None
) -> list[Interval] | None:
    """The Intervals of version 1 shaped objects, each with its ``changes`` (runform.py's:
    what a version 2 object reads back as), or None when any check fails for any of them
    (the caller then reads each through Interval.from_json, which names the fault).
    Checked column by column: the same checks, at C speed."""
    if not ENABLED or not set(map(type, items)) <= {dict}:
        return None
    cols = {name: [m.get(name) for m in items] for name in _FIELDS}
    for name in ("dt", "kernel", "server_kernel", "ports_by_destination", "fds"):
        if changes is not None:
            was = cols[name]
            cols[name] = [c.get(name, v) for c, v in zip(changes, was, strict=True)]
    cols["other_errnos"] = [m.get("other_errnos", {}) for m in items]
    cols["not_started"] = [m.get("not_started", 0) for m in items]
    failed = cols["failed"]
    ok = (
        _seconds(cols["t"])
        and _seconds(cols["dt"])
        and all(_ints(cols[n]) for n in ("attempts", "succeeded", "not_started"))
        and all(_ints(cols[n], nulls=True) for n in _COUNTS)
        and _maps(failed)
        and {k for m in failed for k in m} <= FAILURE_NAMES
        and _maps(cols["other_errnos"])
        and _maps(cols["latency_us"], nulls=True)
        and _maps(cols["kernel"], -MAX_COUNT, maybe=True)
        and _maps(cols["server_kernel"], -MAX_COUNT, maybe=True)
        and _maps(cols["ports_by_destination"], maybe=True)
        and _maps(cols["transaction_us"], nulls=True, maybe=True)
        and _maps(cols["http_status"], maybe=True)
        and _texts(cols["hdr"])
        and _texts(cols["transaction_hdr"])
        and all(
            a == s + sum(f.values())
            for a, s, f in zip(cols["attempts"], cols["succeeded"], failed, strict=True)
        )
    )
    if not ok:
        return None
    cols["t"] = [float(v) for v in cols["t"]]
    cols["dt"] = [float(v) for v in cols["dt"]]
    for name in ("failed", "other_errnos", "latency_us", *_MAPS):
        # a copy of each (the document is the caller's), an empty one shared by all
        cols[name] = [m if type(m) is Counters or m is None else dict(m) if m else _EMPTY
                      for m in cols[name]]  # fmt: skip
    with fields.within("router"):
        cols["router"] = [None if d is None else RouterReading.from_json(d) for d in cols["router"]]
    out = []
    setter = object.__setattr__
    for k in range(len(items)):
        iv = object.__new__(Interval)
        for name in _FIELDS:  # checked above, as __post_init__ checks them
            setter(iv, name, cols[name][k])
        out.append(iv)
    return out
