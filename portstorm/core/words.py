"""How numbers and modes are written: the words the findings, the pages and the terminal
share, so a rate reads the same everywhere.

Containing formatting only: plain values in, text out; no sentences about a run (those are
findings.py), no files.
"""

from __future__ import annotations

from portstorm.core.setup import RunSetup

SANDBOX_WORDS = {
    "pair": "pair: client and sink namespaces joined by a veth",
    "loopback": "LOOPBACK: one namespace, 127.0.0.1 (flatters capacity, see notes)",
    "host": "host: this host's own network stack and settings",
}


def describe_load(s: RunSetup, duration_s: float) -> str:
    """e.g. ``open loop, 100/s, close=client, bind=connect, 4.00 s``."""
    shape = f"open loop, {s.rate:g}/s" if s.rate else f"closed loop, {s.concurrency} in flight"
    bind = s.bind or "connect"
    if s.port_range:
        bind += f" {s.port_range}"
    return f"{shape}, close={s.close}, bind={bind}, {duration_s:.2f} s"


def fmt_rate(v: float) -> str:
    return f"{v:,.2f}" if abs(v) < 10 else f"{v:,.1f}" if abs(v) < 100 else f"{v:,.0f}"


def fmt_us(v: float) -> str:
    if v >= 1_000_000:
        return f"{v / 1e6:,.2f} s"
    return f"{v / 1000:,.1f} ms" if v >= 1000 else f"{v:,.0f} us"


def fmt_s(v: float) -> str:
    return f"{v:,.1f} s" if v >= 10 else f"{v:,.2f} s"
