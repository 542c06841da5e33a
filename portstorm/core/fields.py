"""Checking values read from files: each wrong type or range is one FieldError that names
the field (``intervals[3].latency_us.p50``) and says what is allowed.

Containing pure checks and no files. The constructors of result.py's values and the
sweep.json loader call them, so that a value once built holds only what it declares and
nothing later (findings, charts, compare, the terminal) meets a string where it counts, a
NaN where it divides or a list where it looks a key up. Python's json module reads NaN and
Infinity, which JSON itself does not have: they are refused like any other non-number. A
JSON ``true`` is not a count: bool is never taken for an int here.

The bounds are far past any real run and only keep arithmetic and charts finite.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Collection, Iterator, Mapping
from typing import Any

MAX_COUNT = 10**15  # connections, sockets, ports, counter deltas, latencies (us)
MAX_SECONDS = 10**9  # times and durations: 31 years
MAX_CPUS = 1 << 20


class _Missing:
    """What ``member`` gives for an absent key: every check refuses it as "missing"."""


MISSING: Any = _Missing()


class FieldError(ValueError):
    """A value of the wrong type or out of range: ``field`` names it, ``problem`` says what
    it was and what is allowed."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem

    def under(self, prefix: str) -> FieldError:
        """The same error, named from a containing value (``intervals[3]`` + ``t``)."""
        if not self.field:
            return FieldError(prefix, self.problem)
        sep = "" if self.field.startswith("[") else "."
        return FieldError(f"{prefix}{sep}{self.field}", self.problem)


@contextlib.contextmanager
def within(prefix: str) -> Iterator[None]:
    """FieldErrors raised inside are named from ``prefix``."""
    try:
        yield
    except FieldError as e:
        raise e.under(prefix) from None


def shown(v: object) -> str:
    """A short description of a value, safe for any value (deep nesting, huge integers)."""
    if v is None:
        return "null"
    if v is MISSING:
        return "missing"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        if abs(v) < 10**20:
            return repr(v)
        # from bit_length: str() refuses integers past 4,300 digits
        return f"an integer of ~{v.bit_length() * 30103 // 100000 + 1} digits"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return repr(v) if len(v) <= 40 else repr(v[:37]) + "..."
    if isinstance(v, Mapping):
        return "an object"
    if isinstance(v, list | tuple):
        return "a list"
    return f"a {type(v).__name__}"


def _bound(x: float) -> str:
    if abs(x) >= 10**6 and math.log10(abs(x)).is_integer():
        return f"{'-' if x < 0 else ''}10^{round(math.log10(abs(x)))}"
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"


def member(d: Mapping[str, Any], key: str) -> Any:
    """``d[key]`` of a required key, or MISSING: the check the value goes through then
    says ``KEY: missing; allowed: ...``."""
    return d.get(key, MISSING)


def integer(
    v: object, field: str, low: int = 0, high: int = MAX_COUNT, *, null: bool = False
) -> int | None:
    if v is None and null:
        return None
    if isinstance(v, int) and not isinstance(v, bool) and low <= v <= high:
        return v
    allowed = f"an integer from {_bound(low)} to {_bound(high)}" + (" or null" if null else "")
    raise FieldError(field, f"{shown(v)}; allowed: {allowed}")


def number(
    v: object,
    field: str,
    low: float = 0.0,
    high: float = MAX_SECONDS,
    *,
    null: bool = False,
) -> float | None:
    """A finite number (an integer is one too) from ``low`` to ``high``."""
    if v is None and null:
        return None
    if isinstance(v, int | float) and not isinstance(v, bool):
        try:
            f = float(v)
        except OverflowError:
            f = math.inf
        if math.isfinite(f) and low <= f <= high:
            return f
    allowed = f"a number from {_bound(low)} to {_bound(high)}" + (" or null" if null else "")
    raise FieldError(field, f"{shown(v)}; allowed: {allowed}")


def text(v: object, field: str, *, null: bool = False) -> str | None:
    if isinstance(v, str) or (v is None and null):
        return v
    raise FieldError(field, f"{shown(v)}; allowed: a string" + (" or null" if null else ""))


def flag(v: object, field: str, *, null: bool = False) -> bool | None:
    if isinstance(v, bool) or (v is None and null):
        return v
    raise FieldError(field, f"{shown(v)}; allowed: true or false" + (" or null" if null else ""))


def mapping(v: object, field: str, *, null: bool = False) -> Mapping[str, Any]:
    """An object (JSON keys are always strings; a Mapping built in code is checked too)."""
    if v is None and null:
        return {}
    if not isinstance(v, Mapping):
        raise FieldError(field, f"{shown(v)}; allowed: an object" + (" or null" if null else ""))
    for k in v:
        if not isinstance(k, str):
            raise FieldError(field, f"the key {shown(k)}; allowed: string keys")
    return v


def sequence(v: object, field: str) -> list[Any] | tuple[Any, ...]:
    """A list (a tuple, built in code)."""
    if not isinstance(v, list | tuple):
        raise FieldError(field, f"{shown(v)}; allowed: a list")
    return v


def counts(
    v: object,
    field: str,
    low: int = 0,
    high: int = MAX_COUNT,
    *,
    null: bool = False,
    null_values: bool = False,
    names: Collection[str] | None = None,
) -> None:
    """An object of integers (or nulls, ``null_values``); its keys among ``names``."""
    if v is None and null:
        return
    m = mapping(v, field, null=False)
    if names is not None:
        unknown = sorted(set(m) - set(names))
        if unknown:
            raise FieldError(
                field, f"unknown names {shown(unknown[0])}; allowed: {', '.join(sorted(names))}"
            )
    for k, n in m.items():
        integer(n, f"{field}.{k}" if field else k, low, high, null=null_values)


def texts(v: object, field: str, *, null: bool = False) -> None:
    """An object of strings."""
    if v is None and null:
        return
    for k, s in mapping(v, field).items():
        text(s, f"{field}.{k}")


def text_list(v: object, field: str, *, null: bool = False) -> None:
    if v is None and null:
        return
    for i, s in enumerate(sequence(v, field)):
        text(s, f"{field}[{i}]")


def instance(v: object, cls: type, field: str) -> None:
    """A value built in code (an Interval in a RunResult) of the class it is declared as."""
    if not isinstance(v, cls):
        raise FieldError(field, f"{shown(v)}; allowed: a {cls.__name__}")


def copied(v: Any) -> Any:
    """A JSON object or list copied (dict, tuple) to be kept; any other value as it is, for
    the constructor's check to name."""
    if isinstance(v, dict):
        return dict(v)
    if isinstance(v, list):
        return tuple(v)
    return v


def as_float(v: Any) -> Any:
    """An integer read for a float field, as a float; any other value as it is."""
    return float(v) if isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**63 else v


def timestamp(v: object, field: str) -> str:
    """UTC ISO 8601, as result.utc_iso writes it (``2026-11-21T20:37:46Z``)."""
    if isinstance(v, str):
        with contextlib.suppress(ValueError):
            dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
            return v
    raise FieldError(
        field, f"{shown(v)}; allowed: a UTC time in ISO 8601, e.g. 2026-11-21T20:37:46Z"
    )
