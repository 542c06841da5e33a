"""Findings: the sentences a run report opens with, computed from a saved run.

Containing no charts, no HTML and no files: plain values in, sentences out, so each rule is
unit-tested on literal results. Every number in a sentence comes from the data; a sentence
whose evidence is missing (no samples, too short a run) is left out, not guessed.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence

from portstorm.core.capacity import TIME_WAIT_S
from portstorm.core.exchangefindings import EXCHANGE_RULES, exchange_failure
from portstorm.core.finding import Finding
from portstorm.core.gaps import GAP_RULES
from portstorm.core.gatestop import stopped_by_gate
from portstorm.core.headline import headline
from portstorm.core.natfindings import EXPLAINS_TIMEOUTS, nat_findings, nat_headline
from portstorm.core.outcome import Outcome
from portstorm.core.result import Interval, RunResult
from portstorm.core.signals import (
    EXHAUSTION,
    counter_total,
    fell_behind,
    knee,
    listen_drops,
    listen_overflows,
    rate_after,
    syn_tail,
)
from portstorm.core.words import fmt_rate, fmt_s, fmt_us

# Finding lives in finding.py; imported from here too
__all__ = ["Finding", "run_findings", "unsaid_notes"]


def _other_failures(r: RunResult) -> list[Finding]:
    """One finding per failure outcome that is not the port space: what it means and
    what to do, with when it began and the counters that back it."""
    out = []
    targets = r.setup.targets_text or "the target"
    timeout = r.setup.connect_timeout_s
    for outcome, n in r.failed.items():
        if outcome in EXHAUSTION or outcome == Outcome.CLOSE_TIMEOUT:  # close_timeout: gaps.py
            continue
        share = f"{n:,} of {r.attempts:,} attempts ({100 * n / r.attempts:.1f} %)"
        if outcome == r.first_failure_outcome and r.first_failure_s is not None:
            since = f", the first after {fmt_s(r.first_failure_s)}"
        else:  # only the run's very first failure is timed; intervals place the others
            first = next((i.t for i in r.intervals if i.failed.get(outcome)), None)
            since = f", the first in the interval from {fmt_s(first)}" if first is not None else ""
        if outcome == "refused":
            text = (
                f"{share} were refused{since}: nothing was listening at {targets} (the "
                "SYN was answered with a RST). Is the server up, on that port?"
            )
        elif outcome == "timeout":
            overflows = listen_overflows(r)
            queue = (
                f" The listener's accept queue overflowed {overflows:,} times "
                "(ListenOverflows): the server stopped calling accept(), or was too slow."
                if overflows
                else " No accept-queue overflow was counted on this side: "
                "the server, or the path to it, stopped answering."
            )
            limit = f" after {fmt_s(float(timeout))}" if timeout is not None else ""
            text = f"{share} timed out{limit}{since}: the handshake never completed.{queue}"
            if r.setup.transacts:  # a request/response: the timeout may be the response's
                text = (
                    f"{share} timed out{since}: the handshake did not complete{limit}, or "
                    f"the response did not within {fmt_s(r.setup.response_timeout_s or 0.0)} "
                    f"of it (--response-timeout).{queue}"
                )
        elif outcome == "reset":
            text = (
                f"{share} were reset by {targets}{since}: the server aborted connections "
                "(RST) instead of closing them."
            )
        elif outcome == "fd_limit":
            fds = [i.fds for i in r.intervals if i.fds is not None]
            peak = f", with up to {max(fds):,} open" if fds else ""
            text = (
                f"{share} failed at socket(){since}: the driver ran out of file "
                f"descriptors (EMFILE/ENFILE){peak}. Raise the limit (ulimit -n), or cap "
                "attempts in flight with --concurrency."
            )
        elif outcome == "no_buffers":
            text = (
                f"{share} failed for want of kernel memory (ENOBUFS/ENOMEM){since}: see "
                "net.ipv4.tcp_mem and the socket buffer limits."
            )
        elif (after := exchange_failure(outcome, share, since)) is not None:
            text = after  # response_incomplete, http_error: core/exchangefindings.py
        elif outcome == "unreachable":
            text = f"{share} found no route to {targets}{since} (ENETUNREACH/EHOSTUNREACH)."
        else:
            names = ", ".join(f"{k} {v:,}" for k, v in r.other_errnos.items())
            text = f"{share} failed with other errors{since}: {names or outcome}."
        out.append(Finding(f"failure-{outcome}", text, "warn"))
    return out


def _reuse(r: RunResult) -> Finding | None:
    reuse = r.tunings.get("net.ipv4.tcp_tw_reuse")
    sandbox, cap = r.setup.sandbox, r.model
    # loopback by address; pair and nat cross veths (nat two, and its router)
    if reuse != "2" or not (r.setup.loopback or sandbox in ("pair", "nat")):
        return None
    if r.setup.loopback and cap is not None and cap.reuse_applies:
        ports = cap.usable_ports * (cap.tuples or 1)
        alt = f" ({fmt_rate(ports / TIME_WAIT_S)} conn/s)" if cap.usable_ports else ""
        return Finding(
            "reuse",
            "tcp_tw_reuse=2 applied because this run used loopback: connect() took over "
            "TIME_WAIT ports. Across a real interface the same host holds each port 60 s"
            f"{alt}: loopback results flatter its capacity.",
            "warn",
        )
    if r.setup.pair and r.setup.close == "client":
        crossed = "a veth" if sandbox == "pair" else "two veths and a NAT router"
        return Finding(
            "reuse",
            "tcp_tw_reuse=2 (the default) did not apply: it covers loopback only, and this "
            f"run crossed {crossed} as a real network would, so each port stayed in TIME_WAIT "
            "60 s.",
        )
    return None


def _fin_timeout(r: RunResult) -> Finding | None:
    """Evidence that TIME_WAIT outlived tcp_fin_timeout: more sockets in TIME_WAIT at a
    sample than connections were made in the fin_timeout seconds before it."""
    raw = r.tunings.get("net.ipv4.tcp_fin_timeout")
    if raw is None or not raw.isdigit() or int(raw) >= TIME_WAIT_S:
        return None
    fin = int(raw)
    made = _made_within(r.intervals, fin)
    for i, recent in zip(r.intervals, made, strict=True):
        end = i.t + i.dt
        if i.time_wait is None or end < fin + 1:
            continue
        if i.time_wait > recent:
            return Finding(
                "fin-timeout",
                f"tcp_fin_timeout={fin} did not shorten TIME_WAIT: {fmt_s(end)} into the run "
                f"{i.time_wait:,} sockets were in TIME_WAIT, more than the {recent:,} "
                f"connections made in the {fin} s before. TIME_WAIT lasts 60 s "
                "(TCP_TIMEWAIT_LEN); tcp_fin_timeout bounds FIN_WAIT2 only.",
            )
    return None


def _made_within(intervals: Sequence[Interval], fin: int) -> list[int]:
    """For each interval: the connections made by the intervals that ended within ``fin``
    seconds before its end and began before it. By prefix sums over the starts and ends
    in time order (a day of intervals: 86,400 lookups, not 7 billion additions); intervals
    out of order are summed one by one."""
    starts = [j.t for j in intervals]
    ends = [j.t + j.dt for j in intervals]
    if starts != sorted(starts) or ends != sorted(ends):
        return [
            sum(j.succeeded for j in intervals if j.t + j.dt > e - fin - 1e-6 and j.t < e)
            for e in ends
        ]
    prefix = list(itertools.accumulate((j.succeeded for j in intervals), initial=0))
    return [
        prefix[bisect.bisect_left(starts, e)] - prefix[bisect.bisect_right(ends, e - fin - 1e-6)]
        for e in ends
    ]


def _close_mode(r: RunResult) -> Finding | None:
    close = r.setup.close
    tw = [i.time_wait for i in r.intervals if i.time_wait is not None]
    stw = [i.server_time_wait for i in r.intervals if i.server_time_wait is not None]
    if close == "rst":
        rsts = counter_total(r.intervals, "TcpOutRsts")
        sent = f" (Tcp OutRsts +{rsts:,})" if rsts is not None else ""
        peak = f": TIME_WAIT peaked at {max(tw):,} on the client" if tw else ""
        return Finding(
            "close",
            f"close=rst ended each connection with a RST{sent}, so no "
            f"port waited in TIME_WAIT{peak}.",
        )
    if close == "server" and stw:
        peak = f" (client peak {max(tw):,})" if tw else ""
        return Finding(
            "close",
            f"close=server: the sink closed first, so TIME_WAIT landed on the server (peak "
            f"{max(stw):,}) and client ports were free at once{peak}.",
        )
    return None


def _knee_finding(r: RunResult) -> Finding | None:
    """The port-search knee, first of a run's findings: what connect() cost before and
    after, when, and what the host sustains toward the target: measured after the knee
    (when at least a second was) and in the long run (the model), each named as such."""
    k = knee(r)
    if k is None:
        return None
    tw = k.time_wait is not None and k.time_wait >= 0.9 * k.ports_in_use
    targets = r.setup.targets
    dest = targets[0] if len(targets) == 1 else f"these {len(targets)} destinations"
    held = "in TIME_WAIT" if tw else "in use"
    when = (
        f"at about {fmt_s(k.t)}, once half of the {k.ceiling:,} ports were {held} "
        "(interpolated between readings)"
        if k.at_half
        else f"by {fmt_s(k.t)}, with {k.ports_in_use:,} of {k.ceiling:,} ports {held}"
    )
    text = (
        f"connect() slowed from p50 {fmt_us(k.before_us)} to {fmt_us(k.after_us)} {when}: "
        "with the first parity half of the range full, every connect() walks it for a free "
        "port (__inet_hash_connect)."
    )
    after, cap = rate_after(r, k.t), r.model
    measured = after is not None and after[1] >= 1.0
    if after is not None and measured:
        text += (
            f" From then on the host sustained {fmt_rate(after[0])} conn/s toward {dest} "
            f"(measured over {fmt_s(after[1])})"
        )
    if cap is not None and cap.sustainable_rate is not None and cap.hold_s:
        # the steady state: each port comes back one hold time after it was taken
        rate = f"{fmt_rate(float(cap.sustainable_rate))} conn/s"
        text += (
            (f"; in the long run it sustains {rate}" if measured else
             f" In the long run the host sustains {rate} toward {dest}")
            + f" (the port-space model: {k.ceiling:,} ports held {float(cap.hold_s):g} s)."
        )  # fmt: skip
    elif measured:
        text += "."
    return Finding("knee", text, "headline")


def _syn_finding(r: RunResult) -> Finding | None:
    n = syn_tail(r)
    if not n:
        return None
    drops = listen_drops(r)
    why = (
        f"; the listener dropped {drops:,} SYNs (ListenDrops): its accept queue overflowed"
        if drops
        else ""
    )
    return Finding(
        "syn-retransmit",
        f"{n:,} connects ({100 * n / max(1, r.succeeded):.2f} %) took just over 1 s (or 3 s): "
        f"SYN retransmissions, the first of which waits 1 s{why}.",
        "warn",
    )


def _behind(r: RunResult) -> Finding | None:
    if not fell_behind(r):
        return None
    planned = r.setup.duration_s
    p99 = fmt_us(float(r.histogram.percentile(99.0) or 0))
    if r.not_started:
        ns, scheduled = r.not_started, r.attempts + r.not_started
        rate = r.setup.rate
        end = f" of {fmt_s(float(planned))}" if planned else ""
        # the dropped starts were due over the last ns / rate seconds: how far behind it was
        lag = f", when it was {fmt_s(ns / float(rate))} behind" if rate else ""
        pace = (
            f"; it started {fmt_rate(r.attempts / float(planned))}/s of the "
            f"{fmt_rate(float(rate))}/s planned"
            if rate and planned
            else ""
        )
        return Finding(
            "behind",
            f"The driver fell behind its schedule: {ns:,} of {scheduled:,} scheduled attempts "
            f"({100 * ns / scheduled:.1f} %) were not started by the planned end{end}{lag}"
            f"{pace}. Latency counts from each attempt's planned start (no coordinated "
            f"omission), so the percentiles include that wait (p99 {p99}). This host or "
            "driver cannot churn that rate: lower --rate, or spread it over more --workers.",
            "warn",
        )
    return Finding(
        "behind",
        f"The driver fell behind its schedule: {r.attempts:,} attempts planned over "
        f"{fmt_s(float(planned or 0))} took {fmt_s(r.duration_s)}. Latency counts from each "
        "attempt's planned start (no coordinated omission), so the percentiles include that "
        f"wait (p99 {p99}); the achieved rate was {fmt_rate(r.rate)} conn/s.",
        "warn",
    )


def _tw_overflow(r: RunResult) -> Finding | None:
    n = counter_total(r.intervals, "TcpExtTCPTimeWaitOverflow")
    if not n:
        return None
    cap = r.tunings.get("net.ipv4.tcp_max_tw_buckets", "?")
    return Finding(
        "tw-overflow",
        f"tcp_max_tw_buckets ({cap}) was reached: {n:,} closing sockets skipped TIME_WAIT "
        "(TCPTimeWaitOverflow), which frees their ports at once but loses TIME_WAIT's protection.",
        "warn",
    )


# A run note that a finding says in full, by the finding's kind: the note's opening. The
# reuse finding words the run's tcp_tw_reuse note (tuning.reuse_notes) with its evidence.
_SAID_BY = {"reuse": "tcp_tw_reuse="}


def unsaid_notes(findings: Sequence[Finding], notes: Sequence[str]) -> list[str]:
    """The run's notes that none of ``findings`` already says, for the terminal and the
    report, which print both: the same sentence twice, once as a finding, once as a note."""
    said = tuple(start for kind, start in _SAID_BY.items() if any(f.kind == kind for f in findings))
    return [n for n in notes if not n.startswith(said)] if said else list(notes)


def run_findings(r: RunResult) -> list[Finding]:
    """The sentences for a run report, headline first: the port-search knee, when the run
    hit it, is the answer to what the host sustains, so it leads."""
    found_knee = _knee_finding(r)
    out: list[Finding] = [found_knee] if found_knee is not None else []
    if not r.complete:
        why = "stopped by --stop-on-fail" if stopped_by_gate(r.notes) else "interrupted"
        out.append(
            Finding(
                "interrupted",
                f"This run was {why} after {fmt_s(r.duration_s)}: the figures cover what "
                "was measured.",
                "warn",
            )
        )
    head = headline(r)
    nat = nat_findings(r)  # --sandbox nat: where the ports went (core/natfindings.py)
    nat_head = nat_headline(nat)
    if nat_head is not None and head.kind == "failures-headline":
        head = nat_head  # where the failures came from says more than their count
        nat.remove(nat_head)
    out.append(head)
    out += [
        f
        for f in _other_failures(r)
        if not (head.kind in EXPLAINS_TIMEOUTS and f.kind == "failure-timeout")
    ]
    out += nat
    for rule in (
        _behind,
        _reuse,
        _fin_timeout,
        _close_mode,
        _syn_finding,
        _tw_overflow,
        *GAP_RULES,
        *EXCHANGE_RULES,
    ):
        f = rule(r)
        if f is not None and f.kind != head.kind:  # a rule's finding may be the headline
            out.append(f)
    return out
