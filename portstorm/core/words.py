"""How numbers and modes are written: the words the findings, the pages and the terminal
share, so a rate reads the same everywhere.

Containing formatting only: plain values in, text out; no sentences about a run (those are
findings.py), no files.
"""

from __future__ import annotations

import math

from portstorm.core.nat import FIRST_CLIENT, MASQUERADE, NAT_ADDRESS
from portstorm.core.setup import RunSetup

SANDBOX_WORDS = {
    "pair": "pair: client and sink namespaces joined by a veth",
    "loopback": "LOOPBACK: one namespace, 127.0.0.1 (flatters capacity, see notes)",
    "host": "host: this host's own network stack and settings",
    # the generic words; a run's own say its clients and pool (nat_words)
    "nat": f"nat: clients 198.19.0.1 and up -> SNAT {NAT_ADDRESS} -> sink, three namespaces",
}
# a host-mode run that reached its targets over loopback: tcp_tw_reuse=2 applied as in the
# loopback sandbox (tcp_twsk_unique() tests the socket's addresses, not the namespace)
HOST_LOOPBACK_WORDS = "host, LOOPBACK: targets on 127.0.0.0/8 or ::1 (flatters capacity, see notes)"


def sandbox_label(s: RunSetup) -> str:
    """The sandbox in words (SANDBOX_WORDS); LOOPBACK too for a host run toward loopback."""
    sandbox = s.sandbox or "host"
    if sandbox == "host" and s.loopback:
        return HOST_LOOPBACK_WORDS
    if sandbox == "nat":
        return nat_words(s)
    return SANDBOX_WORDS.get(sandbox, sandbox)


def nat_words(s: RunSetup) -> str:
    """e.g. ``nat: 10 clients 198.19.0.1-.10 -> SNAT 198.18.0.1:40000-40099 -> sink``, or
    ``-> masquerade (1024-65535) ->`` without --nat-ports: the client (pod) addresses
    behind the router, its rule, pool and flags (core/nat.py); SNAT where the file did not
    say which rule, the generic words where it did not say the pool (older files)."""
    n = s.clients
    if n is None or n < 1 or s.nat_ports is None:
        return SANDBOX_WORDS["nat"]
    first = str(FIRST_CLIENT)
    last = str(FIRST_CLIENT + min(n, 2**16 - 2) - 1)  # a crafted count stays in 198.19/16
    same = first.rsplit(".", 1)[0] == last.rsplit(".", 1)[0]
    clients = first if n == 1 else f"{first}-{'.' + last.rsplit('.', 1)[1] if same else last}"
    flags = f" {','.join(s.nat_flags)}" if s.nat_flags else ""
    to = "sink" if s.sink == "builtin" else "targets"
    # masquerade: the outside address, ports 1024-65535 (as an explicit range would read)
    rule = (
        f"masquerade ({s.nat_ports})"
        if s.nat_rule == MASQUERADE
        else f"SNAT {NAT_ADDRESS}:{s.nat_ports}"
    )
    return f"nat: {n:,} client{'s' if n > 1 else ''} {clients} -> {rule}{flags} -> {to}"


def describe_load(s: RunSetup, duration_s: float) -> str:
    """e.g. ``open loop, 100/s, close=client, bind=connect, 4.0 s``."""
    shape = f"open loop, {s.rate:g}/s" if s.rate else f"closed loop, {s.concurrency} in flight"
    bind = s.bind or "connect"
    if s.port_range:
        bind += f" {s.port_range}"
    return f"{shape}, close={s.close}, bind={bind}, {fmt_s(duration_s)}"


def rate_over(span_s: float, wall_s: float) -> str:
    """What a run's rate is over: ``over 5.0 s``; for a held open loop, whose rate is over
    its starts (RunResult.load_span_s), ``over the 3.0 s of starts (5.0 s with the hold)``."""
    if abs(span_s - wall_s) < 1e-9:
        return f"over {fmt_s(wall_s)}"
    return f"over the {fmt_s(span_s)} of starts ({fmt_s(wall_s)} with the hold)"


def starts_note(span_s: float, wall_s: float) -> str:
    """The same after a rate in a table cell: `` over the 3.0 s of starts; 5.0 s with the
    hold``, or nothing where the rate is over the whole run."""
    if abs(span_s - wall_s) < 1e-9:
        return ""
    return f" over the {fmt_s(span_s)} of starts; {fmt_s(wall_s)} with the hold"


def fmt_rate(v: float) -> str:
    return f"{v:,.2f}" if abs(v) < 10 else f"{v:,.1f}" if abs(v) < 100 else f"{v:,.0f}"


def fmt_us(v: float) -> str:
    if v >= 1_000_000:
        return f"{v / 1e6:,.2f} s"
    return f"{v / 1000:,.1f} ms" if v >= 1000 else f"{v:,.0f} us"


def fmt_s(v: float) -> str:
    """A duration as a person reads it: ``3.0 s`` (not ``2.99919 s``), ``0.25 s``, ``7 ms``.

    Whole seconds from 100 s, tenths from 1 s, hundredths from 0.1 s, and milliseconds
    below (a first failure at 0.007 s would read 0.01 s in hundredths). The bands are
    chosen on the rounded value, so 0.999 reads ``1.0 s``, not ``1.00 s``. Display only:
    result.json keeps the exact values."""
    a = abs(v)
    if not math.isfinite(a):  # a crafted file's inf or nan, shown as what it is
        return f"{v} s"
    if round(a) >= 100:
        return f"{v:,.0f} s"
    if round(a, 1) >= 1:
        return f"{v:,.1f} s"
    if round(a, 2) >= 0.1:
        return f"{v:.2f} s"
    if a == 0:
        return "0 s"
    ms = v * 1000
    return f"{ms:.0f} ms" if round(abs(ms)) >= 10 else f"{ms:.2g} ms"
