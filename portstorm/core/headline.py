"""The headline of a run: whether and when its ports ran out (against the model), or that
every connection succeeded (and why the ports lasted), or what failed instead.

Containing the one sentence a run report and the terminal summary open with (after the
port-search knee, when the run hit it: findings.py puts that first); the other findings are
findings.py's and gaps.py's. Plain values in, sentences out. Which ceiling binds a run
first (the client's own ports, or a NAT pool in the path) is binding.py's.
"""

from __future__ import annotations

from portstorm.core.binding import binding
from portstorm.core.finding import Finding
from portstorm.core.gaps import close_timeout_finding
from portstorm.core.outcome import Outcome
from portstorm.core.result import RunResult
from portstorm.core.signals import EXHAUSTION, agrees, ceiling, rate_before
from portstorm.core.words import fmt_rate, fmt_s, rate_over


def headline(r: RunResult) -> Finding:
    """Ports ran out; else connect failures; else connections the server never closed
    (close_timeout: they connected, so they are not called failed attempts); else all
    succeeded."""
    ff = r.first_failure_s
    if ff is not None and r.first_failure_outcome in EXHAUSTION:
        return _exhaustion(r, ff)
    closes = r.failed.get(str(Outcome.CLOSE_TIMEOUT), 0)
    failed = r.attempts - r.succeeded - closes
    if failed:
        first = (
            f", the first after {fmt_s(ff)} ({r.first_failure_outcome})"
            if ff is not None and r.first_failure_outcome != str(Outcome.CLOSE_TIMEOUT)
            else ""
        )
        also = f"; {closes:,} more connected but were never closed by the server" if closes else ""
        return Finding(
            "failures-headline",
            f"{failed:,} of {r.attempts:,} attempts failed{first}{also}.",
            "headline",
        )
    never_closed = close_timeout_finding(r)
    if never_closed is not None:
        return Finding(never_closed.kind, never_closed.text, "headline")
    return _no_failure(r)


def _where(r: RunResult) -> str:
    """Whose ports ran out, in words: the worst tuple's destination, or the target."""
    worst = r.worst_tuple()
    if worst is not None:
        return (
            f"Ports toward {worst.destination} from {worst.source} (the worst of "
            f"{len(r.tuples)} source/destination tuples)"
        )
    if r.setup.binds_per_source:
        return "bind() ports"
    targets = r.setup.targets
    if len(targets) == 1:
        return f"Ports toward {targets[0]}"
    return f"Ports toward {len(targets)} destinations" if targets else "Ports"


def _exhaustion(r: RunResult, ff: float) -> Finding:
    cap = r.model
    rate = rate_before(r, ff)
    at = f" at {fmt_rate(rate)} attempts/s" if rate is not None else ""
    text = f"{_where(r)} ran out after {fmt_s(ff)}{at} ({r.first_failure_outcome})"
    if cap is not None and cap.predicted_exhaustion_s is not None:
        text += f"; the model predicted {fmt_s(float(cap.predicted_exhaustion_s))}"
    text += "."
    if cap is None or cap.sustainable_rate is None or not cap.hold_s:
        return Finding("exhaustion", text, "headline")
    model, hold, tuples = cap.sustainable_rate, cap.hold_s, cap.tuples
    space = f"{cap.usable_ports:,} ports" + (f" x {tuples} tuples" if tuples > 1 else "")
    turnover = r.turnover()
    if turnover is not None:
        n, span = turnover
        measured = n / span
        if agrees(measured, float(model)):
            text += (
                f" Over the next {fmt_s(span)}, {n:,} connections succeeded as ports came back "
                f"({fmt_rate(measured)} conn/s), as the model predicts for {space} held "
                f"{float(hold):g} s ({fmt_rate(float(model))} conn/s)."
            )
        else:
            text += (
                f" Over the next {fmt_s(span)}, {n:,} connections succeeded "
                f"({fmt_rate(measured)} conn/s); the model predicts "
                f"{fmt_rate(float(model))} conn/s for {space} held {float(hold):g} s."
            )
    else:
        after = r.sustained_after_exhaustion()
        end = r.duration_s
        got = f"{fmt_rate(after)} conn/s succeeded" if after is not None else "little succeeded"
        text += (
            f" Afterwards {got} until the run ended {fmt_s(max(0.0, end - ff))} later: a port "
            f"comes back only {float(hold):g} s after its connection closed, so the steady "
            f"state of {fmt_rate(float(model))} conn/s ({space} / {float(hold):g} s) lies "
            "beyond this run."
        )
    return Finding("exhaustion", text, "headline")


def _no_failure(r: RunResult) -> Finding:
    cap = r.model
    text = (
        f"All {r.succeeded:,} connections succeeded, {fmt_rate(r.rate)} conn/s "
        f"{rate_over(r.load_span_s, r.duration_s)}."
    )
    peaks = [i.ports_in_use for i in r.intervals if i.ports_in_use is not None]
    top = ceiling(r)
    if peaks and top:
        text += f" Ports in use peaked at {max(peaks):,} of {top:,}."
    bound = binding(cap) if cap is not None else None
    model = bound.sustainable_rate if bound is not None else None
    predicted = bound.predicted_exhaustion_s if bound is not None else None
    # the words of the ceiling that binds: the client's ports, as before NAT, or the NAT's
    the_model, ports, space = "the model", "the ports", f"{top or 0:,} ports"
    if bound is not None and not bound.client:
        the_model, ports = "the NAT model", f"the {bound.what}"
        space = f"{bound.ports:,} connections the NAT holds at once"
    if model is None and cap is not None:
        text += " No port limit applies to this load (nothing holds a client port after close)."
    elif model is not None and predicted is not None and r.duration_s >= float(predicted):
        text += (
            f" {the_model[0].upper()}{the_model[1:]} predicted {ports} would run out after "
            f"{fmt_s(float(predicted))} at the planned rate; they lasted because only "
            f"{r.succeeded:,} connections were made in {fmt_s(r.duration_s)}, fewer than the "
            f"{space}."
        )
    elif model is not None and predicted is not None:
        text += (
            f" The rate is above {the_model}'s sustainable {fmt_rate(float(model))} conn/s: "
            f"{ports} would run out after about {fmt_s(float(predicted))}, beyond this run."
        )
    elif model is not None and r.rate <= float(model):
        text += f" That is within {the_model}'s sustainable {fmt_rate(float(model))} conn/s."
    return Finding("no-failure", text, "headline")
