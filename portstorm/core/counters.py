"""Kernel counter deltas of one interval, held as a row: the names shared by every
interval of a run, the values its own.

Containing the Mapping, a run's rows read as columns (``Table``, for the charts,
findings and exports: a counter's 86,400 values read in C) and nothing else. An
interval's ``kernel`` and ``server_kernel`` were dicts of 13 names each (~650 bytes
apiece); a day of intervals held 2 x 86,400 of them, 110 MB of the same keys.
``Counters`` is a read-only Mapping like them (``get``, ``in``, iteration in the names'
order, equality with a dict of the same items), at ~200 bytes: the index of names is one
dict for the whole run (core/runform.py makes it).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Any


class Counters(Mapping[str, int]):
    """``names`` (name -> position, shared) and ``values`` (one per name, this row's)."""

    __slots__ = ("_names", "_values")

    def __init__(self, names: Mapping[str, int], values: Sequence[int]) -> None:
        if len(names) != len(values):
            raise ValueError(f"{len(values)} values for {len(names)} counter names")
        self._names = names
        self._values = tuple(values)

    @classmethod
    def rows(cls, names: Mapping[str, int], rows: Iterable[tuple[int, ...]]) -> list[Counters]:
        """A row for each tuple (one value per name, in the names' positions): a day's
        172,800 rows built without a check each (core/runcolumns.py checked the columns)."""
        values = list(rows)
        if not set(map(len, values)) <= {len(names)}:
            raise ValueError(f"rows of other lengths than {len(names)} counter names")
        # each slot set by its descriptor, for all rows at once in C
        out = list(map(object.__new__, itertools.repeat(cls, len(values))))
        slots = vars(Counters)
        deque(map(slots["_names"].__set__, out, itertools.repeat(names)), maxlen=0)
        deque(map(slots["_values"].__set__, out, values), maxlen=0)
        return out

    def __getitem__(self, name: str) -> int:
        return self._values[self._names[name]]

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return repr(dict(self))

    def values_in_range(self, low: int, high: int) -> bool:
        """Every value an int (not a bool) from ``low`` to ``high``: the check a reader
        makes, in one pass."""
        vs = self._values
        return not vs or (set(map(type, vs)) == {int} and low <= min(vs) and max(vs) <= high)


def index(names: Sequence[str]) -> dict[str, int]:
    """The shared name -> position of a run's counters."""
    return {n: k for k, n in enumerate(names)}


class Table:
    """One side's counters (``kernel`` or ``server_kernel``) of a run's intervals, read
    as columns: each counter's value an interval, in C where the maps are rows of one
    run's names (a day's 86,400 of them were 86,400 Mapping.get calls for each counter a
    chart, a finding or the CSV read). Each column is read once and kept."""

    def __init__(self, maps: Sequence[Mapping[str, int] | None]) -> None:
        self._maps = maps
        rows = [m for m in maps if m is not None]
        shared = bool(rows) and set(map(type, rows)) == {Counters}
        if shared and len(set(map(id, map(attrgetter("_names"), rows)))) != 1:
            shared = False
        self._names: Mapping[str, int] | None = rows[0]._names if shared else None  # type: ignore[attr-defined]
        self._rows = list(map(attrgetter("_values"), rows)) if shared else []
        self._read: dict[tuple[str, int | None], tuple[int | None, ...]] = {}

    def shared(self) -> list[str] | None:
        """The names every row holds, in order, when the maps are rows of one run's
        names; None otherwise (dicts, or rows of several)."""
        return None if self._names is None else list(self._names)

    def objects(self, names: Sequence[str]) -> list[dict[str, int] | None]:
        """Each map's values of those of ``names`` it holds, as a dict (None where there
        is no map): result.json's kernel objects, made in C for a run's rows."""
        if self._names is None:
            return [None if m is None else {k: m[k] for k in names if k in m} for m in self._maps]
        keys = [k for k in names if k in self._names]
        at = [self._names[k] for k in keys]
        if len(at) > 1:
            made = list(map(dict, map(zip, repeat(keys), map(itemgetter(*at), self._rows))))
        else:
            made = [dict(zip(keys, (v[a] for a in at), strict=True)) for v in self._rows]
        it = iter(made)
        return [None if m is None else next(it) for m in self._maps]

    def column(self, name: str, absent: int | None = 0) -> tuple[int | None, ...]:
        """``name``'s value in each interval's map (``absent`` where a map lacks it; None
        where the interval read no counters on this side)."""
        key = (name, absent)
        if key not in self._read:
            self._read[key] = tuple(self._column(name, absent))
        return self._read[key]

    def _column(self, name: str, absent: int | None) -> list[int | None]:
        maps = self._maps
        if self._names is None:
            return [None if m is None else m.get(name, absent) for m in maps]
        pos = self._names.get(name)
        rows = self._rows
        values = [absent] * len(rows) if pos is None else list(map(itemgetter(pos), rows))
        if len(rows) == len(maps):
            return values
        it = iter(values)
        return [None if m is None else next(it) for m in maps]


# the last run's tables, a side each: (its intervals, the side, the table)
_TABLES: list[tuple[Sequence[Any], str, Table]] = []


def table(intervals: Sequence[Any], side: str) -> Table:
    """The Table of ``side`` (an attribute of each interval) of these intervals: kept for
    the last run's (a tuple, as RunResult holds them), made anew for any other."""
    for held, s, t in _TABLES:
        if held is intervals and s == side:
            return t
    made = Table(list(map(attrgetter(side), intervals)))
    if isinstance(intervals, tuple):
        kept = [e for e in _TABLES if e[0] is intervals]
        _TABLES[:] = [*kept[-1:], (intervals, side, made)]
    return made


def column(
    maps: Sequence[Mapping[str, int] | None], name: str, absent: int | None = 0
) -> tuple[int | None, ...]:
    """``name``'s value in each map (``absent`` where a map lacks it; None where there is
    no map), read as Table does."""
    return Table(maps).column(name, absent)
