"""``--fail-if`` thresholds: the expression grammar, the metrics, and the verdicts on a run.

Containing the parsing of ``METRIC OP VALUE[UNIT]`` (a tokenizer and a small recursive
descent parser: nothing is ever evaluated as Python), the table of metrics a run can be
gated on, and ``evaluate``, which measures each metric on a saved run and says whether the
threshold passed. Nothing here exits, prints or writes; the CLI maps a failed verdict to
exit code 1 (DESIGN.md).

The grammar (whitespace between tokens is ignored)::

    expression := METRIC OP VALUE END
    OP         := "<" | "<=" | ">" | ">=" | "==" | "!="
    VALUE      := "never" | NUMBER [UNIT]
    NUMBER     := ["-"] DIGITS ["." DIGITS] | ["-"] "." DIGITS
    UNIT       := "us" | "ms" | "s" | "%"

A threshold is a condition the run must meet ("fail if"): the verdict passes when the
comparison is false. A metric the run did not measure (no transaction histogram, no
TIME_WAIT readings, no success to time) fails as "not measured": a gate that cannot be
checked must not pass a pipeline silently. ``first_failure`` of a run that never failed is
``never``, which compares as later than any time (``first_failure < 5s`` is false,
``first_failure == never`` true); that is a measurement, not a missing one.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from portstorm.core import fields
from portstorm.core.errors import UsageError
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.outcome import FAILURES

# -- the metrics --------------------------------------------------------------------------

US, S, COUNT, PCT, RATE = "us", "s", "count", "%", "conn/s"
_PERCENTILES = ("p50", "p90", "p99", "p999", "max")
OUTCOMES = tuple(o.value for o in FAILURES)

# metric -> its unit (what ``measured`` is in, in result.json and in the verdict)
METRICS: dict[str, str] = {
    **{k: US for k in _PERCENTILES},  # connect latency
    **{f"transaction_{k}": US for k in _PERCENTILES},  # to the last response byte
    "rate": RATE,  # successes per second over the load's span
    "after_exhaustion": RATE,  # successes per second once the ports ran out
    "first_failure": S,  # seconds into the run; ``never`` when none failed
    "failed_pct": PCT,  # failures per attempt, in percent
    **{name: COUNT for name in OUTCOMES},  # each failure outcome's count
    "time_wait_peak": COUNT,  # client TIME_WAIT sockets, the highest interval reading
    "ports_in_use_peak": COUNT,  # local ports held toward the targets, the highest reading
}
_TIME_SCALE = {"us": 1.0, "ms": 1e3, "s": 1e6}  # -> microseconds
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt,
    ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
}  # fmt: skip
NEVER = "never"


def allowed_metrics() -> str:
    """The metric names, one line (the end of every refusal)."""
    return ", ".join(METRICS)


def _refuse(text: str, why: str) -> UsageError:
    shown = repr(text if len(text) <= 80 else text[:80] + "...")
    return UsageError(
        f"--fail-if {shown}: {why}; write METRIC OP VALUE (e.g. 'p99 > 5ms', "
        f"'port_exhausted > 0'), OP one of < <= > >= == !=, metrics: {allowed_metrics()}"
    )


# -- the tokenizer ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "name", "number", "op", "%"
    text: str


def tokenize(text: str) -> list[Token]:
    """The tokens of an expression, or a UsageError at the first character that starts none."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t":
            i += 1
        elif c.isascii() and (c.isalpha() or c == "_"):
            j = i + 1
            while j < n and text[j].isascii() and (text[j].isalnum() or text[j] == "_"):
                j += 1
            tokens.append(Token("name", text[i:j]))
            i = j
        elif c.isascii() and (c.isdigit() or c in ".-"):
            j = i + 1 if c == "-" else i
            start_digits = j
            while j < n and text[j].isascii() and text[j].isdigit():
                j += 1
            whole = j - start_digits
            frac = 0
            if j < n and text[j] == ".":
                j += 1
                k = j
                while j < n and text[j].isascii() and text[j].isdigit():
                    j += 1
                frac = j - k
                if frac == 0:
                    raise _refuse(text, f"a number ends in '.' at position {j}")
            if whole == 0 and frac == 0:
                raise _refuse(text, f"{c!r} at position {i + 1} starts no number")
            tokens.append(Token("number", text[i:j]))
            i = j
        elif c in "<>=!":
            two = text[i : i + 2]
            if two in _OPS:
                tokens.append(Token("op", two))
                i += 2
            elif c in "<>":
                tokens.append(Token("op", c))
                i += 1
            else:
                raise _refuse(text, f"{c!r} at position {i + 1} is not an operator")
        elif c == "%":
            tokens.append(Token("%", c))
            i += 1
        else:
            raise _refuse(text, f"unexpected {c!r} at position {i + 1}")
    return tokens


# -- the parser ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Threshold:
    """``metric op value``: fails the run when true. ``value`` is in the metric's unit
    (METRICS), None for ``never`` (first_failure only)."""

    expression: str
    metric: str
    op: str
    value: float | None

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise _refuse(self.expression, f"unknown metric {self.metric!r}")
        if self.op not in _OPS:
            raise _refuse(self.expression, f"unknown operator {self.op!r}")
        if self.value is None and self.metric != "first_failure":
            raise _refuse(self.expression, "'never' is a value of first_failure only")
        if self.value is not None and not math.isfinite(self.value):
            raise _refuse(self.expression, "the value is not a finite number")

    def fails_with(self, measured: float | None) -> bool:
        """Whether ``measured`` (None: never, for first_failure) meets the condition."""
        inf = math.inf  # never: later than any time
        left = inf if measured is None else measured
        right = inf if self.value is None else self.value
        return _OPS[self.op](left, right)


def parse_threshold(text: str) -> Threshold:
    """One ``--fail-if`` expression -> a Threshold, or one UsageError line listing the metrics."""
    tokens = tokenize(text)
    if not tokens:
        raise _refuse(text, "an empty expression")
    pos = 0

    def take(kind: str, what: str) -> Token:
        nonlocal pos
        if pos >= len(tokens):
            raise _refuse(text, f"it ends where {what} should follow")
        tok = tokens[pos]
        if tok.kind != kind:
            raise _refuse(text, f"{tok.text!r} where {what} should be")
        pos += 1
        return tok

    metric = take("name", "a metric").text
    if metric not in METRICS:
        raise _refuse(text, f"unknown metric {metric!r}")
    op = take("op", "an operator").text
    unit = METRICS[metric]
    if pos < len(tokens) and tokens[pos].kind == "name" and tokens[pos].text == NEVER:
        pos += 1
        if metric != "first_failure":
            raise _refuse(text, "'never' is a value of first_failure only")
        value: float | None = None
    else:
        number = float(take("number", "a number").text)
        given = None
        if pos < len(tokens) and tokens[pos].kind in ("name", "%"):
            given = tokens[pos].text
            pos += 1
        value = _in_unit(text, metric, unit, number, given)
    if pos < len(tokens):
        raise _refuse(text, f"{tokens[pos].text!r} after the value")
    return Threshold(" ".join(text.split()), metric, op, value)


def _in_unit(text: str, metric: str, unit: str, number: float, given: str | None) -> float:
    """The number in the metric's own unit, from the unit typed after it."""
    if unit in (US, S):
        if given not in _TIME_SCALE:
            raise _refuse(text, f"{metric} is a time: give its unit (us, ms or s), e.g. 5ms")
        value_us = number * _TIME_SCALE[given]
        return value_us if unit == US else value_us / 1e6
    if unit == PCT:
        if given not in (None, "%"):
            raise _refuse(text, f"{metric} is a percentage: no unit or %, not {given!r}")
        return number
    if given is not None:
        raise _refuse(text, f"{metric} is a plain number ({unit}): no unit, not {given!r}")
    return number


def parse_thresholds(texts: Iterable[str]) -> tuple[Threshold, ...]:
    return tuple(parse_threshold(t) for t in texts)


# -- the verdicts -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """One threshold on one run: what was measured (in the metric's unit; None: not
    measured, or ``never`` for first_failure) and whether the run passed it."""

    expression: str
    metric: str
    measured: float | None
    passed: bool

    def __post_init__(self) -> None:
        fields.text(self.expression, "expression")
        if self.metric not in METRICS:
            raise fields.FieldError(
                "metric", f"{fields.shown(self.metric)}; allowed: {allowed_metrics()}"
            )
        fields.number(self.measured, "measured", 0.0, math.inf, null=True)
        fields.flag(self.passed, "passed")

    @property
    def unit(self) -> str:
        return METRICS[self.metric]

    def measured_text(self) -> str:
        """``1.23 ms``, ``4 count``, ``never``, ``not measured``."""
        m = self.measured
        if m is None:
            return NEVER if self.metric == "first_failure" else "not measured"
        if self.unit == US:
            return f"{m / 1e3:,.3f} ms" if m >= 1000 else f"{m:,.0f} us"
        if self.unit == S:
            return f"{m:,.3f} s"
        if self.unit == PCT:
            return f"{m:,.2f}%"
        if self.unit == RATE:
            return f"{m:,.2f} conn/s"
        return f"{m:,.0f}"

    def to_json(self) -> dict[str, Any]:
        m = self.measured
        if m is not None and self.unit == COUNT and m.is_integer():
            m = int(m)  # a count, as counted: 50, not 50.0
        return {"expression": self.expression, "metric": self.metric,
                "measured": m, "passed": self.passed}  # fmt: skip

    @classmethod
    def from_json(cls, d: object) -> Verdict:
        m = fields.mapping(d, "")
        return cls(
            expression=fields.member(m, "expression"),
            metric=fields.member(m, "metric"),
            measured=fields.as_float(m.get("measured")),
            passed=fields.member(m, "passed"),
        )


class _Reading(Protocol):
    @property
    def time_wait(self) -> int | None: ...
    @property
    def ports_in_use(self) -> int | None: ...


class Measured(Protocol):
    """What ``evaluate`` reads of a run (RunResult has it; no import of result.py here,
    which itself holds the verdicts)."""

    @property
    def histogram(self) -> LatencyHistogram: ...
    @property
    def transactions(self) -> LatencyHistogram | None: ...
    @property
    def rate(self) -> float: ...
    @property
    def attempts(self) -> int: ...
    @property
    def failed(self) -> dict[str, int]: ...
    @property
    def first_failure_s(self) -> float | None: ...
    @property
    def intervals(self) -> Sequence[_Reading]: ...
    def sustained_after_exhaustion(self) -> float | None: ...


def measure(metric: str, result: Measured) -> float | None:
    """The metric on a run, in its unit; None when not measured (first_failure: never)."""
    if metric in _PERCENTILES:
        return _as_float(result.histogram.summary()[metric])
    if metric.startswith("transaction_"):
        tx = result.transactions
        return None if tx is None else _as_float(tx.summary()[metric.removeprefix("transaction_")])
    if metric == "rate":
        return result.rate
    if metric == "after_exhaustion":
        return result.sustained_after_exhaustion()
    if metric == "first_failure":
        return result.first_failure_s
    if metric == "failed_pct":
        n = result.attempts
        return 100.0 * sum(result.failed.values()) / n if n else None
    if metric in OUTCOMES:
        return float(result.failed.get(metric, 0))
    readings: Mapping[str, Callable[[_Reading], int | None]] = {
        "time_wait_peak": lambda iv: iv.time_wait,
        "ports_in_use_peak": lambda iv: iv.ports_in_use,
    }
    seen = [v for iv in result.intervals if (v := readings[metric](iv)) is not None]
    return float(max(seen)) if seen else None


def _as_float(v: int | None) -> float | None:
    return None if v is None else float(v)


def evaluate(thresholds: Iterable[Threshold], result: Measured) -> tuple[Verdict, ...]:
    """Each threshold's verdict on the run, in the order given."""
    verdicts = []
    for t in thresholds:
        measured = measure(t.metric, result)
        not_measured = measured is None and t.metric != "first_failure"
        passed = not not_measured and not t.fails_with(measured)
        verdicts.append(Verdict(t.expression, t.metric, measured, passed))
    return tuple(verdicts)
