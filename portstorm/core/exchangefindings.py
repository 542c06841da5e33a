"""Findings about a connection's life after connect(): where TIME_WAIT landed in an HTTP
run, what the transactions cost beyond the connect, and the failures of the exchange.

Containing rules only: a RunResult in, a Finding or None out (findings.py runs them with
its own). Why a rule of its own for HTTP: with ``Connection: close`` the server usually
closes first (nginx shuts the connection after its response), which moves TIME_WAIT to
the server, whatever --close says; the samples tell which side it was (the side that
sends the first FIN holds TIME_WAIT, KERNEL.md "Who holds TIME_WAIT").
"""

from __future__ import annotations

from portstorm.core.finding import Finding
from portstorm.core.gaps import MIN_EVIDENCE, TW_NONE, endings
from portstorm.core.result import RunResult
from portstorm.core.words import fmt_us


def http_time_wait(r: RunResult) -> Finding | None:
    """--http: which side held TIME_WAIT, from the client's readings (and the server's in
    the pair sandbox). None without HTTP, or with too little to tell."""
    if not r.setup.http_path:
        return None
    e = endings(r)
    if e.tw_peak is None or e.tw_expected is None or e.made < MIN_EVIDENCE:
        return None
    if e.rsts >= 0.1 * e.made:  # RST endings leave no TIME_WAIT anywhere: rst_ended says it
        return None
    server = (
        f"; the server's namespace held up to {e.server_tw_peak:,}"
        if e.server_tw_peak is not None
        else "; the server's side was not sampled (run ss -tan state time-wait there)"
    )
    connection = "keep-alive" if r.setup.hold_s else "close"
    if e.tw_peak <= TW_NONE * e.tw_expected:
        text = (
            f"HTTP with Connection: {connection}: the server closed first, so TIME_WAIT "
            f"landed on the server: the client held at most {e.tw_peak:,} sockets in "
            f"TIME_WAIT of the {e.tw_expected:,} its own first FIN would have left{server}. "
            "Client ports were free again at once; the server's port space is the one held."
        )
        return Finding("http-time-wait", text)
    return Finding(
        "http-time-wait",
        f"HTTP with Connection: {connection}: the client closed first, so TIME_WAIT landed "
        f"on the client: it held up to {e.tw_peak:,} sockets in TIME_WAIT (its first FIN "
        f"leaves up to {e.tw_expected:,}){server}. These are the client ports that run out.",
    )


def transaction_cost(r: RunResult) -> Finding | None:
    """What each transaction cost beyond its connect, at the median."""
    tx = r.transactions
    if tx is None or not tx.count:
        return None
    tx50, c50 = tx.percentile(50.0), r.histogram.percentile(50.0)
    if tx50 is None or c50 is None:
        return None
    s = r.setup
    what = (
        f"GET {s.http_path}"
        if s.http_path
        else f"{s.request_size or 0:,}-byte request, {s.response_size or 0:,}-byte response"
    )
    return Finding(
        "transaction",
        f"Each transaction ({what}) took p50 {fmt_us(tx50)} from the attempt's start to its "
        f"last response byte, of which connect() p50 {fmt_us(c50)}; p99 "
        f"{fmt_us(tx.percentile(99.0) or tx50)}.",
    )


def exchange_failure(outcome: str, share: str, since: str) -> str | None:
    """The sentence for a failure of the exchange (findings._other_failures asks)."""
    if outcome == "response_incomplete":
        return (
            f"{share} connected, then got EOF before the whole response{since}: the server "
            "closed early (or sent less than --response-size)."
        )
    if outcome == "http_error":
        return (
            f"{share} connected, then got an HTTP status other than 2xx/3xx, or a response "
            f"that broke HTTP/1.1's framing{since} (totals.http_status counts the codes)."
        )
    return None


EXCHANGE_RULES = (http_time_wait, transaction_cost)
