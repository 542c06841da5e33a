"""Kernel counter deltas of one interval, held as a row: the names shared by every
interval of a run, the values its own.

Containing the Mapping and nothing else. An interval's ``kernel`` and ``server_kernel``
were dicts of 13 names each (~650 bytes apiece); a day of intervals held 2 x 86,400 of
them, 110 MB of the same keys. ``Counters`` is a read-only Mapping like them (``get``,
``in``, iteration in the names' order, equality with a dict of the same items), at ~200
bytes: the index of names is one dict for the whole run (core/runform.py makes it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence


class Counters(Mapping[str, int]):
    """``names`` (name -> position, shared) and ``values`` (one per name, this row's)."""

    __slots__ = ("_names", "_values")

    def __init__(self, names: Mapping[str, int], values: Sequence[int]) -> None:
        if len(names) != len(values):
            raise ValueError(f"{len(values)} values for {len(names)} counter names")
        self._names = names
        self._values = tuple(values)

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
