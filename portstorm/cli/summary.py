"""The summary after a run: its findings in words, then the numbers behind them, as a table.

Containing the layout of one RunResult in the terminal and nothing that measures, decides
or writes files. The sentences are the report's own (core.findings.run_findings), so the
terminal and report.html cannot tell a run differently; only the top few are shown here.
Every value that came from a file or an argument (targets, hostnames, tunings, paths, and
the findings, which quote targets) is printed as plain text through plain.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console

from portstorm.cli.plain import PlainTable, listed, plain, us, wrapped
from portstorm.core.binding import binding
from portstorm.core.findings import Finding, run_findings, unsaid_notes
from portstorm.core.gatestop import stopped_by_gate
from portstorm.core.natmodel import NatCapacity
from portstorm.core.result import RunResult
from portstorm.core.subjectgates import CaseVerdict
from portstorm.core.thresholds import Verdict
from portstorm.core.words import describe_load, fmt_s, sandbox_label, starts_note

SHOWN_FINDINGS = 3
# the order of importance; run_findings lists the headline first but may put a warning
# (an interrupted run) before it and mixes warnings and information after it
LEVEL_RANK = {"headline": 0, "warn": 1, "info": 2}
LEVEL_STYLE = {"headline": "bold", "warn": "yellow", "info": ""}


def top_findings(findings: Sequence[Finding], n: int = SHOWN_FINDINGS) -> tuple[list[Finding], int]:
    """The ``n`` most important findings, headline first, then warnings, then the rest,
    each level in run_findings' own order (a stable sort); and how many were left out."""
    ranked = sorted(findings, key=lambda f: LEVEL_RANK.get(f.level, len(LEVEL_RANK)))
    return ranked[:n], max(0, len(ranked) - n)


def print_findings(result: RunResult, console: Console) -> list[Finding]:
    """Print the top findings; the ones printed."""
    shown, more = top_findings(run_findings(result))
    if not shown:
        return shown
    console.print(plain("findings:", style="bold"))
    for f in shown:
        # wrapped here, not by rich, so that a bullet's text keeps its hanging indent
        console.print(wrapped(f.text, console.width, style=LEVEL_STYLE.get(f.level, "")))
    if more:
        console.print(plain(f"  ({more} more in the report)"))
    return shown


def print_summary(result: RunResult, path: str, console: Console | None = None) -> None:
    console = console or Console(highlight=False)
    console.print(_table(result, path))
    shown = print_findings(result, console)
    for note in unsaid_notes(shown, result.notes):
        console.print(plain(f"note: {note}"))
    print_verdicts(result.thresholds, console)


def print_verdicts(verdicts: Sequence[Verdict], console: Console) -> None:
    """The --fail-if verdicts, last (what a CI log is read for): each with what was measured.
    A threshold fails the run when its condition holds ("fail if")."""
    if not verdicts:
        return
    failed = sum(not v.passed for v in verdicts)
    head = f"thresholds: {failed} of {len(verdicts)} failed" if failed else "thresholds: all passed"
    console.print(plain(head, style="bold red" if failed else "bold"))
    width = max(len(v.expression) for v in verdicts)
    for v in verdicts:
        word = "PASS" if v.passed else "FAIL"
        line = f"  {word}  {v.expression:<{width}}  measured {v.measured_text()}"
        console.print(plain(line, style="" if v.passed else "red"))


def print_case_verdicts(verdicts: Sequence[CaseVerdict], console: Console) -> None:
    """A sweep's or comparison's verdicts: each case (cell, compared row) and what it was
    judged on (r1, r2, median), the threshold, what was measured and why (a change)."""
    if not verdicts:
        return
    failed = sum(not cv.verdict.passed for cv in verdicts)
    head = f"thresholds: {failed} of {len(verdicts)} failed" if failed else "thresholds: all passed"
    console.print(plain(head, style="bold red" if failed else "bold"))
    case_w = max(len(cv.case) for cv in verdicts)
    of_w = max(len(cv.of) for cv in verdicts)
    expr_w = max(len(cv.verdict.expression) for cv in verdicts)
    for cv in verdicts:
        v = cv.verdict
        word = "PASS" if v.passed else "FAIL"
        why = f" ({v.reason})" if v.reason else ""
        line = (
            f"  {word}  {cv.case:<{case_w}}  {cv.of:<{of_w}}  {v.expression:<{expr_w}}  "
            f"measured {v.measured_text()}{why}"
        )
        # one line each, however narrow the terminal: a CI log is searched line by line
        console.print(plain(line, style="" if v.passed else "red"), soft_wrap=True)


def _table(result: RunResult, path: str) -> PlainTable:
    s = result.setup
    state = "complete" if result.complete else "INTERRUPTED (partial results)"
    if not result.complete and stopped_by_gate(result.notes):
        state = "STOPPED by --stop-on-fail (partial results)"
    t = PlainTable(title=f"portstorm run: {state}", show_header=False, title_justify="left")
    t.add_column("what", style="bold")
    t.add_column("value")
    t.add_row("targets", listed(list(s.targets)) + (" (built-in sink)" if s.sink else ""))
    if s.sources:
        t.add_row("sources", listed(list(s.sources)))
    t.add_row("load", describe_load(s, result.duration_s))
    t.add_row("sandbox", sandbox_label(s))  # LOOPBACK by address too (host mode)
    t.add_row("attempts", f"{result.attempts:,}")
    over = starts_note(result.load_span_s, result.duration_s)  # a held open loop: its starts
    t.add_row("succeeded", f"{result.succeeded:,}  ({result.rate:,.1f} conn/s{over})")
    if result.failed:
        other = result.other_errnos
        for name, n in result.failed.items():
            extra = ""
            if name == "other" and other:
                extra = "  (" + ", ".join(f"{k} {v:,}" for k, v in other.items()) + ")"
            t.add_row(f"failed: {name}", f"{n:,}{extra}")
    else:
        t.add_row("failed", "0")
    if result.not_started:
        ns, rate = result.not_started, s.rate
        lag = f" by {fmt_s(ns / float(rate))}" if rate else ""
        t.add_row(
            "not started",
            f"{ns:,} scheduled attempts, dropped at the planned end: the driver fell behind "
            f"its schedule{lag} ({result.attempts:,} of {result.attempts + ns:,} started)",
        )
    if result.first_failure_s is not None:
        t.add_row(
            "first failure", f"{fmt_s(result.first_failure_s)} ({result.first_failure_outcome})"
        )
    worst = result.worst_tuple()
    if worst is not None:
        first = (
            f", first failure {fmt_s(worst.first_failure_s)}"
            if worst.first_failure_s is not None
            else ""
        )
        t.add_row(
            "worst tuple",
            f"{worst.source} -> {worst.destination}: {worst.succeeded:,} ok, "
            f"{sum(worst.failed.values()):,} failed ({', '.join(worst.failed)}){first}; "
            f"{len(result.tuples):,} tuples in result.json",
        )
    lat = result.histogram.summary()
    t.add_row(
        "connect latency",
        "  ".join(f"{k} {us(lat[k])}" for k in ("p50", "p90", "p99", "p999", "max")),
    )
    if result.transactions is not None:  # --request-size/--response-size/--http
        tx = result.transactions.summary()
        t.add_row(
            "transaction",
            "  ".join(f"{k} {us(tx[k])}" for k in ("p50", "p90", "p99", "p999", "max")),
        )
    if (codes := result.http_status) is not None:
        t.add_row("HTTP status", ", ".join(f"{c} {n:,}" for c, n in codes.items()) or "none")
    _model_rows(t, result)
    last = result.intervals[-1] if result.intervals else None
    if last is not None and last.time_wait is not None:
        tw = f"client {last.time_wait:,}"
        if last.server_time_wait is not None:
            tw += f", server {last.server_time_wait:,}"
        in_use = "-" if last.ports_in_use is None else f"{last.ports_in_use:,}"
        t.add_row("TIME_WAIT at end", f"{tw}; ports in use {in_use}")
    port_range = result.tunings.get("net.ipv4.ip_local_port_range")
    if port_range:
        t.add_row(
            "kernel",
            f"port range {port_range}, tcp_tw_reuse {result.tunings.get('net.ipv4.tcp_tw_reuse')}",
        )
    t.add_row("result", path)
    return t


def _model_rows(t: PlainTable, result: RunResult) -> None:
    """The capacity model, and the measurements it predicts, side by side; a NAT run's
    measurements against the ceiling that binds first (core/binding.py), named."""
    cap = result.model
    if cap is None:
        return
    sus = cap.sustainable_rate
    hold = cap.hold_s  # a setting (60 s, or tcp_fin_timeout), shown as given
    model_line = f"{cap.usable_ports:,} ports x {cap.tuples} tuple(s), held {hold:g} s: " + (
        f"{sus:,.2f} conn/s sustainable" if sus is not None else "no port limit"
    )
    t.add_row("capacity model", model_line)
    nat = cap.nat
    if nat is not None:
        t.add_row("NAT model", _nat_line(nat, result.setup.rate))
    bound = binding(cap)
    which = f" ({bound.what})" if nat is not None else ""  # pair, loopback, host: as before
    sus, hold = bound.sustainable_rate, bound.hold_s
    predicted = bound.predicted_exhaustion_s
    ff = result.first_failure_s
    if predicted is not None or ff is not None:
        measured = fmt_s(ff) if ff is not None else "none"
        if nat is not None and ff is not None and result.first_failure_outcome == "timeout":
            wait = result.setup.connect_timeout_s
            # a timeout is counted when it expires: a SYN the NAT dropped at t fails at t + it
            measured += f" (a timeout, counted {fmt_s(wait)} after its SYN)" if wait else ""
        expect = fmt_s(float(predicted)) if predicted is not None else "none"
        t.add_row("first failure vs model", f"measured {measured}, predicted {expect}{which}")
    after = result.sustained_after_exhaustion()
    if after is not None or (ff is not None and result.setup.hold_s):
        expect = f"{sus:,.2f} conn/s" if sus is not None else "no port limit"
        # a held run's successes are counted a hold after their start: those counted after
        # the first failure may all have started before it (core/turnover.py)
        measured = f"measured {after:,.2f} conn/s" if after is not None else _unmeasured(result)
        line = f"{measured}, model {expect}"
        note = ""
        if hold and ff is not None and result.duration_s < ff + hold:
            note = (
                f"reached only once ports free up, {hold:g} s after they closed"
                if bound.client  # a NAT port comes back when its connection closes
                else f"reached only once its ports free up, as connections close {hold:g} s in"
            )
        if nat is None:  # pair, loopback, host: as before
            line += f" ({note})" if note else ""
        else:
            line += f" ({bound.what}{'; ' + note if note else ''})"
        t.add_row("after exhaustion", line)


def _unmeasured(result: RunResult) -> str:
    """A held run with no whole interval of its starts after the first failure."""
    s, ff = result.setup, result.first_failure_s or 0.0
    wait = s.connect_timeout_s if result.first_failure_outcome == "timeout" else 0.0
    sent = ff - float(wait or 0.0)  # a timeout is counted when it expires
    planned = s.duration_s
    if not s.open_loop or planned is None or float(planned) <= sent:
        return "not measured (no start of the load after the first failure)"
    ended = fmt_s(float(planned) - sent)
    return f"not measured (the load's starts ended {ended} after the first failed one)"


def _nat_line(nat: NatCapacity, rate: float | None) -> str:
    """The NAT model in one line: pool, tuples, what holds a port, the sustainable rate,
    and when the pool runs out at this rate."""
    limit = f", conntrack limit {nat.conntrack_limit:,}" if nat.conntrack_limit is not None else ""
    held = (
        f"held while open ({nat.hold_s:g} s, --hold)"
        if nat.hold_s
        else "held while open only (closing entries are taken over)"
    )
    sus = nat.sustainable_rate
    line = f"pool {nat.pool}: {nat.pool_ports:,} ports x {nat.tuples} tuple(s){limit}, {held}: " + (
        f"{sus:,.2f} conn/s sustainable" if sus is not None else "no rate limit"
    )
    gone = nat.predicted_exhaustion_s
    if rate is not None and sus is not None:
        line += f"; at {rate:g}/s " + (
            f"exhausted after {fmt_s(float(gone))}" if gone is not None else "not exhausted"
        )
    return line
