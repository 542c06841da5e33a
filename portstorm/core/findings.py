"""Findings: the sentences a report opens with, computed from a saved run or comparison.

Containing no charts, no HTML and no files: plain values in, sentences out, so each rule is
unit-tested on literal results. Every number in a sentence comes from the data; a sentence
whose evidence is missing (no samples, too short a run) is left out, not guessed.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from portstorm.core.capacity import TIME_WAIT_S
from portstorm.core.result import Interval, RunResult

EXHAUSTION = ("port_exhausted", "bind_in_use")
SYN_RTO_US = 1_000_000  # the first SYN retransmission waits 1 s (TCP_TIMEOUT_INIT, RFC 6298)
# A connect that needed retransmitted SYNs lands just after 1 s (one), 3 s (two: 1 + 2) or
# 7 s (three); a smear of slow connects between them is something else (a driver behind
# its schedule, a slow port search).
SYN_BANDS_US = ((950_000, 1_300_000), (2_900_000, 3_400_000), (6_900_000, 7_500_000))
BEHIND_SLACK = 1.05  # an open loop taking 5 % (and 0.5 s) longer than planned fell behind
KNEE_FACTOR = 3.0  # p50 this many times the early p50 ...
KNEE_MIN_US = 50  # ... and at least this much higher
KNEE_OCCUPANCY = 0.45  # ... once this share of the port space was in use
MODEL_AGREES = 0.10  # measured within 10 % (or 1 conn/s) of the model counts as agreeing


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # exhaustion, no-failure, failures, reuse, fin-timeout, knee, syn-retransmit, ...
    text: str
    level: str = "info"  # headline | info | warn


@dataclass(frozen=True, slots=True)
class Knee:
    """Where connect() latency jumped as the port space filled (the port search)."""

    t: float  # the interval's end, seconds into the load
    before_us: float  # typical p50 while under half the range was in use
    after_us: int  # p50 in the interval where it jumped
    ports_in_use: int
    ceiling: int


SANDBOX_WORDS = {
    "pair": "pair: client and sink namespaces joined by a veth",
    "loopback": "LOOPBACK: one namespace, 127.0.0.1 (flatters capacity, see notes)",
    "host": "host: this host's own network stack and settings",
}


def describe_load(sc: Mapping[str, Any], duration_s: float) -> str:
    """e.g. ``open loop, 100/s, close=client, bind=connect, 4.00 s``."""
    shape = (
        f"open loop, {sc['rate']:g}/s"
        if sc.get("rate")
        else f"closed loop, {sc.get('concurrency')} in flight"
    )
    bind = str(sc.get("bind", "connect"))
    if sc.get("port_range"):
        bind += f" {sc['port_range']}"
    return f"{shape}, close={sc.get('close')}, bind={bind}, {duration_s:.2f} s"


def fmt_rate(v: float) -> str:
    return f"{v:,.2f}" if abs(v) < 10 else f"{v:,.1f}" if abs(v) < 100 else f"{v:,.0f}"


def fmt_us(v: float) -> str:
    if v >= 1_000_000:
        return f"{v / 1e6:,.2f} s"
    return f"{v / 1000:,.1f} ms" if v >= 1000 else f"{v:,.0f} us"


def fmt_s(v: float) -> str:
    return f"{v:,.1f} s" if v >= 10 else f"{v:,.2f} s"


def ceiling(r: RunResult) -> int | None:
    """The port space toward the targets: usable ports x tuples, from the model."""
    cap = r.capacity or {}
    ports, tuples = cap.get("usable_ports"), cap.get("tuples")
    return int(ports) * int(tuples) if ports is not None and tuples is not None else None


def knee(r: RunResult) -> Knee | None:
    top = ceiling(r)
    if not top:
        return None
    early = [
        float(p50)
        for i in r.intervals
        if (p50 := i.latency_us.get("p50")) is not None
        and i.ports_in_use is not None
        and i.ports_in_use < 0.4 * top
    ]
    if not early:
        return None
    before = statistics.median(early)
    for i in r.intervals:
        p50 = i.latency_us.get("p50")
        if p50 is None or i.ports_in_use is None or i.ports_in_use < KNEE_OCCUPANCY * top:
            continue
        if p50 >= KNEE_FACTOR * before and p50 - before >= KNEE_MIN_US:
            return Knee(i.t + i.dt, before, int(p50), i.ports_in_use, top)
    return None


def syn_retransmits(r: RunResult) -> tuple[int, int]:
    """(connects in a SYN-retransmission band, just after 1, 3 or 7 s; connects at or over
    the first band's start)."""
    *bands, slow = r.histogram.counts_in([*SYN_BANDS_US, (SYN_BANDS_US[0][0], 2**62)])
    return sum(bands), slow


def fell_behind(r: RunResult) -> bool:
    """An open loop behind its schedule: starts dropped at the time bound, or (files from
    before the bound) a run that took longer than planned, its attempts waiting for it."""
    if r.not_started:
        return True
    planned = r.scenario.get("duration_s")
    return (
        r.scenario.get("rate") is not None
        and planned is not None
        and r.duration_s > float(planned) * BEHIND_SLACK + 0.5
    )


def counter_total(intervals: Sequence[Interval], name: str, server: bool = False) -> int | None:
    values = [(i.server_kernel if server else i.kernel) for i in intervals]
    known = [v.get(name, 0) for v in values if v is not None]
    return sum(known) if known else None


def _rate_before(r: RunResult, t: float) -> float | None:
    """Attempts per second over the whole intervals that ended by ``t``."""
    before = [i for i in r.intervals if i.t + i.dt <= t + 1e-3]
    span = sum(i.dt for i in before)
    if span > 0:
        return sum(i.attempts for i in before) / span
    rate = r.scenario.get("rate")
    if rate is not None:
        return float(rate)
    first = r.intervals[0] if r.intervals else None
    return first.attempts / first.dt if first is not None and first.dt > 0 else None


def _agrees(measured: float, model: float) -> bool:
    return abs(measured - model) <= max(MODEL_AGREES * model, 1.0)


def _where(r: RunResult) -> str:
    """Whose ports ran out, in words: the worst tuple's destination, or the target."""
    worst = r.worst_tuple()
    if worst is not None:
        return (
            f"Ports toward {worst.destination} from {worst.source} (the worst of "
            f"{len(r.tuples)} source/destination tuples)"
        )
    if r.scenario.get("bind") == "bind":
        return "bind() ports"
    targets = list(r.scenario.get("targets") or [])
    if len(targets) == 1:
        return f"Ports toward {targets[0]}"
    return f"Ports toward {len(targets)} destinations" if targets else "Ports"


def _exhaustion(r: RunResult, ff: float) -> Finding:
    cap = r.capacity or {}
    rate = _rate_before(r, ff)
    at = f" at {fmt_rate(rate)} attempts/s" if rate is not None else ""
    text = f"{_where(r)} ran out after {fmt_s(ff)}{at} ({r.first_failure_outcome})"
    predicted = cap.get("predicted_exhaustion_s")
    if predicted is not None:
        text += f"; the model predicted {fmt_s(float(predicted))}"
    text += "."
    model, hold = cap.get("sustainable_rate"), cap.get("hold_s")
    ports, tuples = cap.get("usable_ports"), cap.get("tuples")
    if model is None or not hold:
        return Finding("exhaustion", text, "headline")
    space = f"{ports:,} ports" + (f" x {tuples} tuples" if tuples and tuples > 1 else "")
    turnover = r.turnover()
    if turnover is not None:
        n, span = turnover
        measured = n / span
        if _agrees(measured, float(model)):
            text += (
                f" Over the next {span:g} s, {n:,} connections succeeded as ports came back "
                f"({fmt_rate(measured)} conn/s), as the model predicts for {space} held "
                f"{float(hold):g} s ({fmt_rate(float(model))} conn/s)."
            )
        else:
            text += (
                f" Over the next {span:g} s, {n:,} connections succeeded "
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
    cap = r.capacity or {}
    text = (
        f"All {r.succeeded:,} connections succeeded, {fmt_rate(r.rate)} conn/s over "
        f"{fmt_s(r.duration_s)}."
    )
    peaks = [i.ports_in_use for i in r.intervals if i.ports_in_use is not None]
    top = ceiling(r)
    if peaks and top:
        text += f" Ports in use peaked at {max(peaks):,} of {top:,}."
    model = cap.get("sustainable_rate")
    predicted = cap.get("predicted_exhaustion_s")
    if model is None and cap:
        text += " No port limit applies to this load (nothing holds a client port after close)."
    elif model is not None and predicted is not None and r.duration_s >= float(predicted):
        text += (
            f" The model predicted the ports would run out after {fmt_s(float(predicted))} at "
            f"the planned rate; they lasted because only {r.succeeded:,} connections were made "
            f"in {fmt_s(r.duration_s)}, fewer than the {top or 0:,} ports."
        )
    elif model is not None and predicted is not None:
        text += (
            f" The rate is above the model's sustainable {fmt_rate(float(model))} conn/s: the "
            f"ports would run out after about {fmt_s(float(predicted))}, beyond this run."
        )
    elif model is not None and r.rate <= float(model):
        text += f" That is within the model's sustainable {fmt_rate(float(model))} conn/s."
    return Finding("no-failure", text, "headline")


def _other_failures(r: RunResult) -> list[Finding]:
    """One finding per failure outcome that is not the port space: what it means and
    what to do, with when it began and the counters that back it."""
    out = []
    targets = ", ".join(str(t) for t in r.scenario.get("targets") or []) or "the target"
    timeout = r.scenario.get("connect_timeout_s")
    for outcome, n in r.failed.items():
        if outcome in EXHAUSTION:
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
            overflows = _listen_overflows(r)
            queue = (
                f" The listener's accept queue overflowed {overflows:,} times "
                "(ListenOverflows): the server stopped calling accept(), or was too slow."
                if overflows
                else " No accept-queue overflow was counted on this side: "
                "the server, or the path to it, stopped answering."
            )
            limit = f" after {fmt_s(float(timeout))}" if timeout is not None else ""
            text = f"{share} timed out{limit}{since}: the handshake never completed.{queue}"
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
        elif outcome == "unreachable":
            text = f"{share} found no route to {targets}{since} (ENETUNREACH/EHOSTUNREACH)."
        else:
            names = ", ".join(f"{k} {v:,}" for k, v in r.other_errnos.items())
            text = f"{share} failed with other errors{since}: {names or outcome}."
        out.append(Finding(f"failure-{outcome}", text, "warn"))
    return out


def _listen_overflows(r: RunResult) -> int | None:
    """ListenOverflows where the listener is: the sink's namespace in the pair sandbox,
    else this namespace (a target on this host; a remote one's are not seen)."""
    server = r.scenario.get("sandbox") == "pair"
    return counter_total(r.intervals, "TcpExtListenOverflows", server=server)


def _reuse(r: RunResult) -> Finding | None:
    reuse = r.tunings.get("net.ipv4.tcp_tw_reuse")
    sandbox = r.scenario.get("sandbox")
    cap = r.capacity or {}
    if reuse != "2" or sandbox not in ("loopback", "pair"):
        return None
    ports, tuples = cap.get("usable_ports"), cap.get("tuples") or 1
    if sandbox == "loopback" and cap.get("reuse_applies"):
        alt = f" ({fmt_rate(ports * tuples / TIME_WAIT_S)} conn/s)" if ports else ""
        return Finding(
            "reuse",
            "tcp_tw_reuse=2 applied because this run used loopback: connect() took over "
            "TIME_WAIT ports. Across a real interface the same host holds each port 60 s"
            f"{alt}: loopback results flatter its capacity.",
            "warn",
        )
    if sandbox == "pair" and r.scenario.get("close") == "client":
        return Finding(
            "reuse",
            "tcp_tw_reuse=2 (the default) did not apply: it covers loopback only, and this "
            "run crossed a veth as a real network would, so each port stayed in TIME_WAIT 60 s.",
        )
    return None


def _fin_timeout(r: RunResult) -> Finding | None:
    """Evidence that TIME_WAIT outlived tcp_fin_timeout: more sockets in TIME_WAIT at a
    sample than connections were made in the fin_timeout seconds before it."""
    raw = r.tunings.get("net.ipv4.tcp_fin_timeout")
    if raw is None or not raw.isdigit() or int(raw) >= TIME_WAIT_S:
        return None
    fin = int(raw)
    for i in r.intervals:
        end = i.t + i.dt
        if i.time_wait is None or end < fin + 1:
            continue
        recent = sum(
            j.succeeded for j in r.intervals if j.t + j.dt > end - fin - 1e-6 and j.t < end
        )
        if i.time_wait > recent:
            return Finding(
                "fin-timeout",
                f"tcp_fin_timeout={fin} did not shorten TIME_WAIT: {fmt_s(end)} into the run "
                f"{i.time_wait:,} sockets were in TIME_WAIT, more than the {recent:,} "
                f"connections made in the {fin} s before. TIME_WAIT lasts 60 s "
                "(TCP_TIMEWAIT_LEN); tcp_fin_timeout bounds FIN_WAIT2 only.",
            )
    return None


def _close_mode(r: RunResult) -> Finding | None:
    close = r.scenario.get("close")
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
    k = knee(r)
    if k is None:
        return None
    return Finding(
        "knee",
        f"Connect latency rose from p50 {fmt_us(k.before_us)} to {fmt_us(k.after_us)} once "
        f"{k.ports_in_use:,} of {k.ceiling:,} ports were in use ({fmt_s(k.t)}): with the "
        "first parity half of the range full, every connect() walks it for a free port "
        "(__inet_hash_connect).",
        "warn",
    )


def listen_drops(r: RunResult) -> int:
    """SYNs dropped by the listener: the sink's namespace in the pair sandbox, else ours."""
    drops = counter_total(r.intervals, "TcpExtListenDrops", server=True)
    return drops or counter_total(r.intervals, "TcpExtListenDrops") or 0


def syn_tail(r: RunResult) -> int:
    """Connects to call SYN retransmissions: those in the bands, when the listener dropped
    SYNs or when they are at least half of all connects over 0.95 s (else the slow ones
    are a smear, e.g. a driver behind its schedule, and naming them SYN losses would lie)."""
    n, slow = syn_retransmits(r)
    return n if n and (listen_drops(r) or n * 2 >= slow) else 0


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
    planned = r.scenario.get("duration_s")
    p99 = fmt_us(float(r.histogram.percentile(99.0) or 0))
    if r.not_started:
        ns, scheduled = r.not_started, r.attempts + r.not_started
        rate = r.scenario.get("rate")
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


def run_findings(r: RunResult) -> list[Finding]:
    """The sentences for a run report, headline first."""
    out: list[Finding] = []
    if not r.complete:
        out.append(
            Finding(
                "interrupted",
                f"This run was interrupted after "
                f"{fmt_s(r.duration_s)}: the figures cover what was measured.",
                "warn",
            )
        )
    ff = r.first_failure_s
    if ff is not None and r.first_failure_outcome in EXHAUSTION:
        out.append(_exhaustion(r, ff))
    elif r.failed:
        out.append(
            Finding(
                "failures-headline",
                f"{r.attempts - r.succeeded:,} of "
                f"{r.attempts:,} attempts failed, the first after {fmt_s(ff or 0)} "
                f"({r.first_failure_outcome}).",
                "headline",
            )
        )
    else:
        out.append(_no_failure(r))
    out += _other_failures(r)
    for rule in (
        _behind,
        _reuse,
        _fin_timeout,
        _close_mode,
        _knee_finding,
        _syn_finding,
        _tw_overflow,
    ):
        f = rule(r)
        if f is not None:
            out.append(f)
    return out


def _median(row: Mapping[str, Any], key: str) -> float | None:
    m = row["metrics"].get(key) or {}
    v = m.get("median")
    return float(v) if v is not None else None


def compare_findings(doc: Mapping[str, Any]) -> list[Finding]:
    """The sentences for a sweep or comparison report, from ``compare()``'s document."""
    rows = list(doc["subjects"])
    out: list[Finding] = []
    if not rows:
        return out
    exhausted = [r for r in rows if _median(r, "first_failure_s") is not None]
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
        never = ", ".join(r["label"] for r in rows if r not in exhausted)
        out.append(
            Finding(
                "exhaustion",
                f"Ports ran out in {len(exhausted)} of {len(rows)} cases; never in: {never}.",
            )
        )
    elif exhausted:
        firsts = [(r["label"], _median(r, "first_failure_s") or 0.0) for r in exhausted]
        times = [t for _lab, t in firsts]
        if max(times) - min(times) <= 0.1 * max(times):
            when = f"after {fmt_s(statistics.median(times))}" + (
                " in each" if len(times) > 1 else ""
            )
        else:
            when = "first after: " + ", ".join(f"{lab} {fmt_s(t)}" for lab, t in firsts)
        out.append(Finding("exhaustion", f"Ports ran out in every case, {when}."))
    long_enough = [r for r in exhausted if r.get("steady_state") and _median(r, "model_rate")]
    agree = [
        r
        for r in long_enough
        if _agrees(_median(r, "after_exhaustion") or 0.0, _median(r, "model_rate") or 0.0)
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
        changes = r.get("changes") or {}
        for k, c in changes.items():
            if c.get("significant") is True:
                rel = c.get("relative")
                how = f"{rel * 100:+.0f} %" if rel is not None else f"{c.get('delta'):+g}"
                significant.append(f"{r['label']}: {_label(doc, k)} {how}")
            elif c.get("significant") is None and c.get("delta") is not None:
                unknown += 1
    base = doc.get("baseline", rows[0]["label"])
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


def _sustained(row: Mapping[str, Any]) -> float | None:
    """What a case sustains: its rate after the ports ran out, or its rate if they never did."""
    if _median(row, "first_failure_s") is not None:
        return _median(row, "after_exhaustion")
    return _median(row, "rate")


def _rate_of(row: Mapping[str, Any], v: float) -> str:
    ran_out = _median(row, "first_failure_s") is not None
    return f"{row['label']}, {fmt_rate(v)} conn/s" + (
        " after its ports ran out" if ran_out else " (never ran out)"
    )


def _label(doc: Mapping[str, Any], key: str) -> str:
    for m in doc.get("metrics", []):
        if m.get("key") == key:
            return str(m.get("label", key))
    return key
