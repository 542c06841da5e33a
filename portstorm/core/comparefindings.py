"""Findings of a comparison or sweep: the sentences its report opens with, from a typed
Comparison (core/comparison.py; ``compare()``'s document is read into one).

Containing no charts, no HTML and no files, as findings.py for one run: each rule is
unit-tested on comparisons of literal runs, and a sentence without its evidence is left out.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from portstorm.core.comparison import Comparison, Row
from portstorm.core.findings import Finding
from portstorm.core.signals import agrees
from portstorm.core.words import fmt_rate, fmt_s


def compare_findings(doc: Comparison | Mapping[str, Any]) -> list[Finding]:
    """The sentences for a sweep or comparison report, from a Comparison (or its JSON,
    ``compare()``'s document)."""
    comparison = Comparison.of(doc)
    rows = list(comparison.rows)
    out: list[Finding] = []
    exhausted = [r for r in rows if r.median("first_failure_s") is not None]
    measured = [(r, v) for r in rows if (v := _sustained(r)) is not None]
    if measured:
        best = max(measured, key=lambda rv: rv[1])
        worst = min(measured, key=lambda rv: rv[1])
        text = f"Highest sustained rate: {_rate_of(best[0], best[1])}"
        if best[0] is not worst[0]:
            text += f"; lowest: {_rate_of(worst[0], worst[1])}"
            if worst[1] > 0:
                text += f" ({best[1] / worst[1]:,.1f}x apart)"
        out.append(Finding("best", text + ".", "headline"))
    if exhausted and len(exhausted) < len(rows):
        never = ", ".join(r.label for r in rows if r not in exhausted)
        out.append(
            Finding(
                "exhaustion",
                f"Ports ran out in {len(exhausted)} of {len(rows)} cases; never in: {never}.",
            )
        )
    elif exhausted:
        firsts = [(r.label, r.median("first_failure_s") or 0.0) for r in exhausted]
        times = [t for _lab, t in firsts]
        if max(times) - min(times) <= 0.1 * max(times):
            when = f"after {fmt_s(statistics.median(times))}" + (
                " in each" if len(times) > 1 else ""
            )
        else:
            when = "first after: " + ", ".join(f"{lab} {fmt_s(t)}" for lab, t in firsts)
        out.append(Finding("exhaustion", f"Ports ran out in every case, {when}."))
    long_enough = [r for r in exhausted if r.steady_state and r.median("model_rate")]
    agree = [
        r
        for r in long_enough
        if agrees(r.median("after_exhaustion") or 0.0, r.median("model_rate") or 0.0)
    ]
    if long_enough:
        out.append(
            Finding(
                "model",
                "The rate after the ports ran out matched the port-space "
                f"model (within 10 % or 1 conn/s) in {len(agree)} of "
                f"{len(long_enough)} cases long enough to see ports come back.",
            )
        )
    short = len(exhausted) - len(long_enough)
    if short:
        out.append(
            Finding(
                "model",
                f"{short} case(s) ended less than a hold time (60 s without "
                "reuse) after running out: their rate after exhaustion is not the "
                "steady state; run longer to see it.",
            )
        )
    significant: list[str] = []
    unknown = 0
    for r in rows[1:]:
        for k, c in (r.changes or {}).items():
            if c.significant is True:
                rel = c.relative
                how = f"{rel * 100:+.0f} %" if rel is not None else f"{c.delta:+g}"
                significant.append(f"{r.label}: {comparison.label(k)} {how}")
            elif c.significant is None and c.delta is not None:
                unknown += 1
    base = comparison.baseline
    if significant:
        out.append(
            Finding(
                "significant",
                f"Beyond the spread of repeats, against {base}: " + "; ".join(significant) + ".",
            )
        )
    elif unknown:
        out.append(
            Finding(
                "significant",
                "Single runs: no spread to judge changes by; "
                "repeat each case (--repeat 3) to tell effects from noise.",
            )
        )
    elif len(rows) > 1:
        out.append(
            Finding(
                "significant",
                f"No change against {base} went beyond the spread of repeats, in any metric.",
            )
        )
    return out


def _sustained(row: Row) -> float | None:
    """What a case sustains: its rate after the ports ran out, or its rate if they never did."""
    if row.median("first_failure_s") is not None:
        return row.median("after_exhaustion")
    return row.median("rate")


def _rate_of(row: Row, v: float) -> str:
    ran_out = row.median("first_failure_s") is not None
    return f"{row.label}, {fmt_rate(v)} conn/s" + (
        " after its ports ran out" if ran_out else " (never ran out)"
    )
