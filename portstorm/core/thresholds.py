"""``--fail-if`` thresholds: the expression grammar, the metrics, and the verdicts on a run.

Containing the parsing of ``METRIC OP VALUE[UNIT]`` (a tokenizer and a small recursive
descent parser: nothing is ever evaluated as Python), the table of metrics a run can be
gated on, and ``evaluate``, which measures each metric on a saved run and says whether the
threshold passed. Nothing here exits, prints or writes; the CLI maps a failed verdict to
exit code 1 (DESIGN.md). Verdicts over several runs (a sweep cell, a compared row, and
``change(...)``) are core/subjectgates.py's; stopping a run early, core/gatestop.py's.

The grammar (whitespace between tokens is ignored)::

    expression := (METRIC | "change" "(" CHANGED ")") OP VALUE END
    OP         := "<" | "<=" | ">" | ">=" | "==" | "!="
    VALUE      := "never" | NUMBER [UNIT]
    NUMBER     := ["-"] DIGITS ["." DIGITS] | ["-"] "." DIGITS
    UNIT       := "us" | "ms" | "s" | "%"

``change(METRIC)`` is the relative change of a compared row's median against the
baseline's, in percent (``%`` required): only ``portstorm compare`` takes it (``changes``).

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
from collections.abc import Callable, Iterable, Sequence
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
# change(METRIC) -> the key of that metric in core/compare.py's table (a median per row)
CHANGED = {"rate": "rate", "after_exhaustion": "after_exhaustion",
           "first_failure": "first_failure_s", "p50": "p50_us", "p99": "p99_us",
           "p999": "p999_us", "failed_pct": "failed_pct",
           "time_wait_peak": "peak_time_wait"}  # fmt: skip
CHANGES = {f"change({m})": m for m in CHANGED}  # "change(rate)" -> "rate"


def allowed_metrics(changes: bool = False) -> str:
    """The metric names, one line (the end of every refusal); ``changes``: compare's too."""
    return ", ".join([*METRICS, *(CHANGES if changes else ())])


def unit_of(metric: str) -> str:
    return PCT if metric in CHANGES else METRICS[metric]


def _refuse(text: str, why: str, changes: bool = False) -> UsageError:
    shown = repr(text if len(text) <= 80 else text[:80] + "...")
    return UsageError(
        f"--fail-if {shown}: {why}; write METRIC OP VALUE (e.g. 'p99 > 5ms', "
        f"'port_exhausted > 0'), OP one of < <= > >= == !=, metrics: {allowed_metrics(changes)}"
    )


# -- the tokenizer ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "name", "number", "op", "%", "(", ")"
    text: str


def tokenize(text: str, changes: bool = False) -> list[Token]:
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
                    raise _refuse(text, f"a number ends in '.' at position {j}", changes)
            if whole == 0 and frac == 0:
                raise _refuse(text, f"{c!r} at position {i + 1} starts no number", changes)
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
                raise _refuse(text, f"{c!r} at position {i + 1} is not an operator", changes)
        elif c in "%()":
            tokens.append(Token(c, c))
            i += 1
        else:
            raise _refuse(text, f"unexpected {c!r} at position {i + 1}", changes)
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
        change = self.is_change
        if self.metric not in METRICS and not change:
            raise _refuse(self.expression, f"unknown metric {self.metric!r}", change)
        if self.op not in _OPS:
            raise _refuse(self.expression, f"unknown operator {self.op!r}", change)
        if self.value is None and self.metric != "first_failure":
            raise _refuse(self.expression, "'never' is a value of first_failure only", change)
        if self.value is not None and not math.isfinite(self.value):
            raise _refuse(self.expression, "the value is not a finite number", change)

    @property
    def is_change(self) -> bool:
        """``change(METRIC) OP VALUE%``: against compare's baseline, not on one run."""
        return self.metric in CHANGES

    def fails_with(self, measured: float | None) -> bool:
        """Whether ``measured`` (None: never, for first_failure) meets the condition."""
        inf = math.inf  # never: later than any time
        left = inf if measured is None else measured
        right = inf if self.value is None else self.value
        return _OPS[self.op](left, right)


def parse_threshold(text: str, changes: bool = False) -> Threshold:
    """One ``--fail-if`` expression -> a Threshold, or one UsageError line listing the
    metrics. ``changes``: ``change(METRIC)`` is taken (compare); elsewhere it is refused."""

    tokens = tokenize(text, changes)
    if not tokens:
        raise _refuse(text, "an empty expression", changes)
    pos = 0

    def take(kind: str, what: str) -> Token:
        nonlocal pos
        if pos >= len(tokens):
            raise _refuse(text, f"it ends where {what} should follow", changes)
        tok = tokens[pos]
        if tok.kind != kind:
            raise _refuse(text, f"{tok.text!r} where {what} should be", changes)
        pos += 1
        return tok

    metric = take("name", "a metric").text
    if metric == "change" and pos < len(tokens) and tokens[pos].kind == "(":
        pos += 1
        changed = take("name", "a metric").text
        if changed not in CHANGED:
            raise _refuse(text, f"change({changed}) is not compared; change() takes "
                          f"{', '.join(CHANGED)}", changes)  # fmt: skip
        take(")", "')'")
        if not changes:
            raise _refuse(text, "change(...) is a change against a baseline: only "
                          "'portstorm compare' takes it", changes)  # fmt: skip
        metric = f"change({changed})"
    elif metric not in METRICS:
        raise _refuse(text, f"unknown metric {metric!r}", changes)
    op = take("op", "an operator").text
    unit = unit_of(metric)
    if pos < len(tokens) and tokens[pos].kind == "name" and tokens[pos].text == NEVER:
        pos += 1
        if metric != "first_failure":
            raise _refuse(text, "'never' is a value of first_failure only", changes)
        value: float | None = None
    else:
        number = float(take("number", "a number").text)
        given = None
        if pos < len(tokens) and tokens[pos].kind in ("name", "%"):
            given = tokens[pos].text
            pos += 1
        if metric in CHANGES and given != "%":
            raise _refuse(text, f"{metric} is a relative change: give it in %, e.g. -5%", changes)
        value = _in_unit(text, metric, unit, number, given, changes)
    if pos < len(tokens):
        raise _refuse(text, f"{tokens[pos].text!r} after the value", changes)
    return Threshold(" ".join(text.split()), metric, op, value)


def _in_unit(
    text: str, metric: str, unit: str, number: float, given: str | None, changes: bool
) -> float:
    """The number in the metric's own unit, from the unit typed after it."""
    if unit in (US, S):
        if given not in _TIME_SCALE:
            raise _refuse(
                text, f"{metric} is a time: give its unit (us, ms or s), e.g. 5ms", changes
            )
        value_us = number * _TIME_SCALE[given]
        return value_us if unit == US else value_us / 1e6
    if unit == PCT:
        if given not in (None, "%"):
            raise _refuse(text, f"{metric} is a percentage: no unit or %, not {given!r}", changes)
        return number
    if given is not None:
        raise _refuse(text, f"{metric} is a plain number ({unit}): no unit, not {given!r}", changes)
    return number


def parse_thresholds(texts: Iterable[str], changes: bool = False) -> tuple[Threshold, ...]:
    return tuple(parse_threshold(t, changes) for t in texts)


# -- the verdicts -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """One threshold on one run: what was measured (in the metric's unit; None: not
    measured, or ``never`` for first_failure) and whether the run passed it; ``reason``
    says why when the measurement alone does not (a change that ``cannot be judged``)."""

    expression: str
    metric: str
    measured: float | None
    passed: bool
    reason: str | None = None

    def __post_init__(self) -> None:
        fields.text(self.expression, "expression")
        if self.metric not in METRICS and self.metric not in CHANGES:
            raise fields.FieldError(
                "metric", f"{fields.shown(self.metric)}; allowed: {allowed_metrics(True)}"
            )
        low = -math.inf if self.metric in CHANGES else 0.0  # a change may be a fall
        fields.number(self.measured, "measured", low, math.inf, null=True)
        fields.flag(self.passed, "passed")
        fields.text(self.reason, "reason", null=True)

    @property
    def unit(self) -> str:
        return unit_of(self.metric)

    def measured_text(self) -> str:
        """``1.23 ms``, ``4 count``, ``never``, ``not measured``."""
        m = self.measured
        if m is None:
            return NEVER if self.metric == "first_failure" else "not measured"
        if self.unit == US:
            return f"{m / 1e3:,.3f} ms" if m >= 1000 else f"{m:,.0f} us"
        if self.unit == S:
            return f"{m:,.3f} s"
        if self.metric in CHANGES:
            return f"{m:+,.2f}%"
        if self.unit == PCT:
            return f"{m:,.2f}%"
        if self.unit == RATE:
            return f"{m:,.2f} conn/s"
        return f"{m:,.0f}"

    def to_json(self) -> dict[str, Any]:
        m = self.measured
        if m is not None and self.unit == COUNT and m.is_integer():
            m = int(m)  # a count, as counted: 50, not 50.0
        out = {"expression": self.expression, "metric": self.metric,
               "measured": m, "passed": self.passed}  # fmt: skip
        return out if self.reason is None else {**out, "reason": self.reason}

    @classmethod
    def from_json(cls, d: object) -> Verdict:
        m = fields.mapping(d, "")
        return cls(
            expression=fields.member(m, "expression"),
            metric=fields.member(m, "metric"),
            measured=fields.as_float(m.get("measured")),
            passed=fields.member(m, "passed"),
            reason=m.get("reason"),
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
    if metric in _PERCENTILES or metric.startswith("transaction_"):
        h = result.transactions if metric.startswith("transaction_") else result.histogram
        v = None if h is None else h.summary()[metric.removeprefix("transaction_")]
        return None if v is None else float(v)
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
    return peak(metric, result.intervals)


def peak(metric: str, intervals: Iterable[_Reading]) -> float | None:
    """time_wait_peak or ports_in_use_peak: the highest interval reading (None: none)."""
    name = "time_wait" if metric == "time_wait_peak" else "ports_in_use"
    seen = [v for iv in intervals if (v := getattr(iv, name)) is not None]
    return float(max(seen)) if seen else None


def judge(t: Threshold, measured: float | None) -> Verdict:
    """The verdict of ``t`` on a measurement in its metric's unit (None: not measured)."""
    not_measured = measured is None and t.metric != "first_failure"
    return Verdict(
        t.expression, t.metric, measured, not not_measured and not t.fails_with(measured)
    )


def evaluate(thresholds: Iterable[Threshold], result: Measured) -> tuple[Verdict, ...]:
    """Each threshold's verdict on the run, in the order given."""
    return tuple(judge(t, measure(t.metric, result)) for t in thresholds)
