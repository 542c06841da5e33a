"""How a run's connections ended, and the gaps it explains between the measured rate and
the port-space model.

The model (capacity.py) holds each client port for 60 s of TIME_WAIT after its connection
closes (or tcp_tw_reuse_delay, with reuse). A run that made more connections than that
allows did not hold its ports that long; these rules say why, from saved data only: the
per-interval counter deltas of the client's namespace (``kernel``) and of the sink's
(``server_kernel``, pair sandbox), the TIME_WAIT readings and the tunings.
- connections ended by RSTs, on either side: no TIME_WAIT is left (``rst_ended``);
- TIME_WAIT (or FIN_WAIT2) sockets killed early by the peer's RSTs (``tw_killed``);
- connect() taking over TIME_WAIT ports, counted as TWRecycled (``tw_recycled``);
- the server closing first: TIME_WAIT lands on the server (``server_closed_first``).
When the measured rate is well above the model's and none of these shows, ``rate_gap``
says why if the data can (the run ended before the ports filled), or plainly that it
cannot tell. ``close_timeout_finding``: connections made that the server never closed.

Containing rules only: a RunResult in, a Finding or None out; findings.py runs GAP_RULES
after its own. No charts, no files.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from portstorm.core.capacity import DEFAULT_REUSE_DELAY_MS, TIME_WAIT_S
from portstorm.core.finding import Finding
from portstorm.core.outcome import Outcome
from portstorm.core.result import Interval, RunResult
from portstorm.core.signals import EXHAUSTION, MODEL_AGREES, agrees, counter_total
from portstorm.core.words import fmt_rate, fmt_s

RST_SHARE = 0.1  # RSTs for at least this share of the connections made: an ending to name
TW_NONE = 0.05  # TIME_WAIT below this share of what client FIN closes leave: none was left
MIN_EVIDENCE = 20  # fewer sockets or connections than this prove nothing either way
TW_NOISE = 0.02  # sockstat lags a few sockets (delayed ACKs, FIN_WAIT1): a gap within it


@dataclass(frozen=True, slots=True)
class Endings:
    """How the connections ended, as the saved counters tell it (None: not measured)."""

    made: int  # connections that succeeded: each was closed by the close mode
    client_rsts: int | None  # Tcp OutRsts, client namespace (a local server's too)
    abort_on_data: int | None  # TcpExt TCPAbortOnData: SO_LINGER 0, or data after close()
    abort_on_close: int | None  # TcpExt TCPAbortOnClose: closed with data unread
    estab_resets: int | None  # Tcp EstabResets: established (or CLOSE_WAIT) sockets reset
    server_rsts: int | None  # Tcp OutRsts in the sink's namespace (pair sandbox only)
    recycled: int  # TcpExt TWRecycled: connect() took over a TIME_WAIT port
    overflow: int  # TcpExt TCPTimeWaitOverflow
    tw_peak: int | None  # client TIME_WAIT, highest reading
    tw_expected: int | None  # the most TIME_WAIT client FIN closes would have left
    server_tw_peak: int | None

    @property
    def rsts(self) -> int:
        """RSTs seen: both namespaces' OutRsts (pair), or the resets the client counted."""
        sent = (self.client_rsts or 0) + (self.server_rsts or 0)
        return max(sent, self.estab_resets or 0)

    @property
    def no_time_wait(self) -> bool:
        """The client held (almost) no TIME_WAIT where its own FIN closes would have."""
        return (
            self.tw_peak is not None
            and self.tw_expected is not None
            and self.tw_expected >= MIN_EVIDENCE
            and self.tw_peak <= TW_NONE * self.tw_expected
        )


def _tw_cap(r: RunResult) -> float:
    """TIME_WAIT held at once, at most: the port space, and tcp_max_tw_buckets."""
    cap = float(r.model.port_space) if r.model is not None and r.model.port_space else 1e18
    buckets = r.tunings.get("net.ipv4.tcp_max_tw_buckets", "")
    return min(cap, float(buckets)) if buckets.isdigit() else cap


def _recent(
    intervals: Sequence[Interval], span: float, value: Callable[[Interval], int]
) -> list[tuple[int, int]]:
    """For each interval: (``value`` summed over the intervals that began within ``span``
    seconds before its end, itself included; the index of the first of them). Prefix sums:
    an hour of 1 s intervals is 3,600 lookups, not 13 million additions."""
    starts = [i.t for i in intervals]
    prefix = list(itertools.accumulate(map(value, intervals), initial=0))
    ends = [i.t + i.dt - span - 1e-6 for i in intervals]  # each first is bisected in C
    firsts = list(map(min, itertools.count(), map(bisect.bisect_left, [starts] * len(ends), ends)))
    sums = map(operator.sub, prefix[1:], map(prefix.__getitem__, firsts))
    return list(zip(sums, firsts, strict=True))


_LAST: list[tuple[RunResult, Endings]] = []  # the last run's: every rule here asks for it


def endings(r: RunResult) -> Endings:
    """How ``r``'s connections ended; worked out once a run (a day of intervals is 86,400
    of each counter, and five rules ask)."""
    if _LAST and _LAST[0][0] is r:
        return _LAST[0][1]
    e = _endings(r)
    _LAST[:] = [(r, e)]
    return e


def _endings(r: RunResult) -> Endings:
    iv = r.intervals
    tw = [i.time_wait for i in iv if i.time_wait is not None]
    stw = [i.server_time_wait for i in iv if i.server_time_wait is not None]
    expected = None
    if tw:
        # at each reading: the connections made in the 60 s before it, as many as can wait
        cap, made = _tw_cap(r), _recent(iv, TIME_WAIT_S, lambda i: i.succeeded)
        expected = max(
            int(min(cap, n)) for i, (n, _) in zip(iv, made, strict=True) if i.time_wait is not None
        )
    return Endings(
        made=r.succeeded,
        client_rsts=counter_total(iv, "TcpOutRsts"),
        abort_on_data=counter_total(iv, "TcpExtTCPAbortOnData"),
        abort_on_close=counter_total(iv, "TcpExtTCPAbortOnClose"),
        estab_resets=counter_total(iv, "TcpEstabResets"),
        server_rsts=counter_total(iv, "TcpOutRsts", server=True) if r.setup.pair else None,
        recycled=counter_total(iv, "TcpExtTWRecycled") or 0,
        overflow=counter_total(iv, "TcpExtTCPTimeWaitOverflow") or 0,
        tw_peak=max(tw) if tw else None,
        tw_expected=expected,
        server_tw_peak=max(stw) if stw else None,
    )


def _model_words(r: RunResult) -> str:
    """``: 1,234 conn/s were made, where the model sustains 1.67 conn/s (100 ports held
    60 s)``; empty without a model that sets a limit."""
    cap = r.model
    if cap is None or cap.sustainable_rate is None or not cap.hold_s:
        return ""
    return (
        f": {fmt_rate(r.rate)} conn/s were made, where the model sustains "
        f"{fmt_rate(float(cap.sustainable_rate))} conn/s ({cap.port_space:,} ports held "
        f"{float(cap.hold_s):g} s)"
    )


def rst_ended(r: RunResult) -> Finding | None:
    """Connections ended by RST, not FIN, on either side: a socket reset leaves no
    TIME_WAIT (tcp_done() frees it at once), so its port is free again at once."""
    e = endings(r)
    if r.setup.close == "rst" or e.made < MIN_EVIDENCE or e.rsts < RST_SHARE * e.made:
        return None  # --close rst says so itself (findings._close_mode)
    parts = []
    if e.client_rsts:
        why = "".join(
            f"; {name} {n:,}: {what}"
            for name, n, what in (
                (
                    "TCPAbortOnData",
                    e.abort_on_data,
                    "a close() with SO_LINGER 0, or data after close()",
                ),
                ("TCPAbortOnClose", e.abort_on_close, "closed with data unread"),
            )
            if n
        )
        # one namespace holds a server on this host too: its RSTs count there as well
        where = "the client's namespace" + ("" if r.setup.pair else ", a local server's too")
        parts.append(f"{e.client_rsts:,} RSTs sent from {where} (Tcp OutRsts{why})")
    if e.server_rsts:
        parts.append(f"{e.server_rsts:,} sent by the server (Tcp OutRsts in its namespace)")
    if e.estab_resets:
        parts.append(f"{e.estab_resets:,} established connections reset or aborted (EstabResets)")
    text = f"Connections ended by RST, not FIN: {'; '.join(parts)}, for {e.made:,} made."
    if e.no_time_wait:
        text += (
            f" No TIME_WAIT was left, so the port-space ceiling did not apply{_model_words(r)}."
            f" The client's TIME_WAIT peaked at {e.tw_peak:,}, where FIN closes would have "
            f"left {e.tw_expected:,}."
        )
    else:
        peak = f" (client peak {e.tw_peak:,})" if e.tw_peak is not None else ""
        text += (
            f" A connection reset leaves no TIME_WAIT{peak}, so those ports were free at once"
            f"{_model_words(r)}."
        )
    return Finding("rst-ended", text, "warn" if _above(r) else "info")


def _youngest(r: RunResult) -> float:
    """The least time a socket stays in TIME_WAIT (60 s) or FIN_WAIT2 (tcp_fin_timeout)."""
    fin = r.tunings.get("net.ipv4.tcp_fin_timeout", "60")
    return min(TIME_WAIT_S, float(fin)) if fin.isdigit() else TIME_WAIT_S


def _early_ends(r: RunResult) -> tuple[float, int, int] | None:
    """(when, how many, of how many) client sockets ended TIME_WAIT (or FIN_WAIT2) sooner
    than any could expire, at the reading that shows the most.

    TcpExt TW counts each socket as it enters TIME_WAIT or FIN_WAIT2 (measured on this
    kernel, 6.18: +50 the moment 50 clients closed first, before any timer; nothing when a
    RST then killed them), and sockstat's tw holds them until they end. Those that entered
    within the last 60 s (or tcp_fin_timeout, for FIN_WAIT2) cannot have expired: timers
    fire late, never early. Any fewer in the reading ended early."""
    iv = r.intervals
    window = _youngest(r)
    entered = _recent(iv, window, lambda i: i.kernel.get("TcpExtTW", 0) if i.kernel else 0)
    unread = _recent(iv, window, lambda i: 0 if i.kernel and "TcpExtTW" in i.kernel else 1)
    best: tuple[float, int, int] | None = None
    for i, (n, _), (missing, _) in zip(iv, entered, unread, strict=True):
        if i.time_wait is None or missing:
            continue  # a reading without its counters proves nothing
        gone = n - i.time_wait
        if gone > max(5, TW_NOISE * n) and (best is None or gone > best[1]):
            best = (i.t + i.dt, gone, n)
    return best if best is not None and best[1] >= MIN_EVIDENCE else None


def tw_killed(r: RunResult) -> Finding | None:
    """Client TIME_WAIT that vanished before it could expire, with the peer's RSTs the
    likely cause: tcp_timewait_state_process() kills a FIN_WAIT2 socket on a RST, and a
    TIME_WAIT one too unless tcp_rfc1337=1 (RFC 1337's "TIME_WAIT assassination"). No
    kernel counter counts these kills; only the readings show them."""
    e = endings(r)
    if r.setup.close != "client" or e.recycled:  # a takeover ends a TIME_WAIT too: tw_recycled
        return None
    ends = _early_ends(r)
    if ends is None:
        return None
    t, n, entered = ends
    window = _youngest(r)
    since = "since the start" if t <= window else f"in the {window:g} s before"
    if e.server_rsts is not None:
        peer = f"; the server sent {e.server_rsts:,} RSTs (Tcp OutRsts in its namespace)"
    else:  # one namespace: a server on this host sends its RSTs from here too
        peer = (
            f"; Tcp OutRsts here counted {e.client_rsts or 0:,} (a server on this host "
            "counts there too; a remote peer's RSTs are not seen from here)"
        )
    rfc = r.tunings.get("net.ipv4.tcp_rfc1337")
    how = (
        f"tcp_rfc1337={rfc or '0 (by default)'}: a RST kills a socket in FIN_WAIT2, and one in "
        "TIME_WAIT too (tcp_timewait_state_process(): RFC 1337's TIME_WAIT assassination); "
        "tcp_rfc1337=1 keeps TIME_WAIT"
        if rfc != "1"
        else "tcp_rfc1337=1 a RST no longer ends TIME_WAIT, but it still kills a socket "
        "in FIN_WAIT2 (tcp_timewait_state_process())"
    )
    return Finding(
        "tw-killed",
        f"TIME_WAIT was cut short: at {fmt_s(t)}, {entered - n:,} client sockets were in "
        f"TIME_WAIT or FIN_WAIT2 where {entered:,} had entered {since} (TcpExt TW), so at "
        f"least {n:,} ended before any could expire{peer}. "
        f"With {how}; no kernel counter counts these kills. Those ports came back "
        f"early{_model_words(r)}.",
        "warn" if _above(r) else "info",
    )


def tw_recycled(r: RunResult) -> Finding | None:
    """connect() took over TIME_WAIT ports (TWRecycled, __inet_check_established() via
    tcp_twsk_unique()) where the model held them 60 s: the model's figure with reuse."""
    e, cap = endings(r), r.model
    if not e.recycled or (cap is not None and cap.reuse_applies):
        return None  # a model with reuse expected it (findings._reuse says why)
    reuse = r.tunings.get("net.ipv4.tcp_tw_reuse", "?")
    raw = r.tunings.get("net.ipv4.tcp_tw_reuse_delay")
    delay_ms = int(raw) if raw is not None and raw.isdigit() else DEFAULT_REUSE_DELAY_MS
    text = (
        f"connect() took over {e.recycled:,} TIME_WAIT ports (TcpExt TWRecycled): "
        f"tcp_tw_reuse={reuse} applied"
        + (" (the target is on loopback)" if r.setup.loopback and reuse == "2" else "")
        + ", where the model held each port 60 s."
    )
    if cap is not None and cap.port_space:
        with_reuse = cap.port_space / (delay_ms / 1000)
        text += (
            f" With reuse after tcp_tw_reuse_delay ({delay_ms} ms) the model allows "
            f"{fmt_rate(with_reuse)} conn/s ({cap.port_space:,} ports / {delay_ms / 1000:g} s)"
            f"{_model_words(r).replace(': ', '; ', 1)}."
        )
    return Finding("tw-recycled", text, "warn" if _above(r) else "info")


def server_closed_first(r: RunResult) -> Finding | None:
    """The client closed without RSTs, yet held no TIME_WAIT: the server's FIN came first
    (the side that sends the first FIN holds TIME_WAIT, KERNEL.md "Who holds")."""
    e = endings(r)
    if r.setup.close != "client" or not e.no_time_wait or e.recycled or e.overflow:
        return None
    if r.setup.http_path:  # HTTP runs: exchangefindings.http_time_wait says it
        return None
    if e.rsts >= RST_SHARE * e.made:  # ended by RST: rst_ended
        return None
    server = f", while the server held up to {e.server_tw_peak:,}" if e.server_tw_peak else ""
    return Finding(
        "server-closed-first",
        f"The server closed first: {e.made:,} connections ended without RSTs (Tcp OutRsts "
        f"{e.client_rsts or 0:,}), yet the client held at most {e.tw_peak:,} sockets in "
        f"TIME_WAIT, not the {e.tw_expected:,} its own first FIN would leave{server}. The "
        "side that sends the first FIN holds TIME_WAIT, so client ports were free at once "
        f"and the model's 60 s hold did not apply{_model_words(r)}.",
        "warn" if _above(r) else "info",
    )


def _turned_over(r: RunResult) -> tuple[int, float] | None:
    """(connections, seconds) of the busiest hold-long window when it made more
    connections than the port space holds: ports came back sooner than the model's hold."""
    cap = r.model
    if cap is None or not cap.hold_s or not cap.port_space:
        return None
    iv, best = r.intervals, (0, 0.0)
    for i, (n, lo) in zip(iv, _recent(iv, float(cap.hold_s), lambda i: i.succeeded), strict=True):
        if n > best[0]:
            best = (n, i.t + i.dt - iv[lo].t)
    return best if best[0] > cap.port_space * (1 + MODEL_AGREES) + 1 else None


def _above(r: RunResult) -> bool:
    """The measured rate well above the model's sustainable rate (signals.agrees())."""
    cap = r.model
    if cap is None or cap.sustainable_rate is None:
        return False
    model = float(cap.sustainable_rate)
    rates = [r.rate]
    if (turnover := r.turnover()) is not None:
        rates.append(turnover[0] / turnover[1])
    return any(v > model and not agrees(v, model) for v in rates)


_MECHANISMS: tuple[Callable[[RunResult], Finding | None], ...] = (
    rst_ended,
    tw_killed,
    tw_recycled,
    server_closed_first,
)


def rate_gap(r: RunResult) -> Finding | None:
    """The measured rate well above the model's, when no rule above explains it: why, if
    the run ended before the ports filled, else plainly that the data cannot tell."""
    if not _above(r) or any(rule(r) is not None for rule in _MECHANISMS):
        return None
    cap = r.model
    assert cap is not None and cap.sustainable_rate is not None
    model, space = float(cap.sustainable_rate), cap.port_space
    turned = _turned_over(r)
    if turned is None:
        if r.first_failure_outcome in EXHAUSTION or cap.predicted_exhaustion_s is not None:
            return None  # the headline says when they ran out, or would have
        return Finding(
            "rate-gap",
            f"{fmt_rate(r.rate)} conn/s over the run is above the model's sustainable "
            f"{fmt_rate(model)} conn/s because the run ended before the ports filled: its "
            f"{r.succeeded:,} connections took fewer than the {space:,} ports, and the "
            "model's ceiling binds only once every port is held.",
        )
    n, span = turned
    e = endings(r)
    seen = [f"RSTs {e.rsts:,}", f"TWRecycled {e.recycled:,}"]
    if e.tw_peak is not None:
        seen.append(f"client TIME_WAIT peak {e.tw_peak:,}")
    return Finding(
        "rate-gap",
        f"{n:,} connections succeeded within {fmt_s(span)}, more than the {space:,} ports "
        f"held {float(cap.hold_s):g} s allow ({fmt_rate(model)} conn/s sustainable): ports "
        f"came back sooner than the model says, and the saved counters cannot tell why "
        f"({', '.join(seen)}). A remote peer's RSTs, or a server closing first, are not "
        "always seen from this side.",
        "warn",
    )


def close_timeout_finding(r: RunResult) -> Finding | None:
    """Connections made that the server never closed (--close server): not connect
    failures, and a sign the server waits for something first."""
    n = r.failed.get(str(Outcome.CLOSE_TIMEOUT), 0)
    if not n:
        return None
    limit = r.setup.close_timeout_s
    within = f" within {fmt_s(float(limit))} (--close-timeout)" if limit is not None else ""
    targets = r.setup.targets_text or "the server"
    return Finding(
        "close-timeout",
        f"{n:,} of {r.attempts:,} connections ({100 * n / max(1, r.attempts):.1f} %) were "
        f"made, but the server never closed them{within}: {targets} may wait for a request "
        "before it closes, and this run sent none. They connected (their connect latency is "
        "in the percentiles), so they are counted as close_timeout, not as connect "
        "failures. Against such a server, --close client measures the port space.",
        "warn",
    )


GAP_RULES: tuple[Callable[[RunResult], Finding | None], ...] = (
    *_MECHANISMS,
    rate_gap,
    close_timeout_finding,
)
