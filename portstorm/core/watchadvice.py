"""What ``portstorm watch`` advises on a live host: sentences for the groups past 80 % used.

Containing the advice only (core/watch.py makes the view it reads, core/watchview.py);
the sentences follow ``inspect``'s (core/advice.py), worded for a host already running
out: a wider range, more destinations or sources, tcp_tw_reuse=1 where timestamps are on,
IP_BIND_ADDRESS_NO_PORT for the bind trap, and the host-wide ceilings (conntrack,
tcp_max_tw_buckets).
"""

from __future__ import annotations

from collections.abc import Mapping

from portstorm.core.advice import conntrack_advice
from portstorm.core.watchview import GroupView, WatchView

ADVICE_FROM = 0.8  # used fraction past which a group gets advice
NAMED = 3  # groups named in one sentence


def advise_watch(v: WatchView, tunings: Mapping[str, str]) -> list[str]:
    """Sentences an ops engineer can act on, most pressing first; [] when nothing is near."""
    hot = [g for g in v.groups if g.used_fraction >= ADVICE_FROM]
    out: list[str] = []
    if hot:
        low, high = v.port_range
        out.append(
            f"{_named(hot)} past {ADVICE_FROM:.0%} of {v.usable_ports:,} usable ports "
            f"({low}-{high}): widen net.ipv4.ip_local_port_range, or spread connections over "
            "more destination addresses or ports, or more source addresses: each (source, "
            "destination address, port) has the whole range to itself"
        )
        out += _reuse(hot, tunings)
    trapped = {s: n for s, n in v.bind_trap.items() if n > 0}
    for source, n in sorted(trapped.items(), key=lambda kv: -kv[1])[:NAMED]:
        out.append(
            f"{n:,} socket(s) from {source} were bound to a port before connect() (the bind "
            "trap): each such port is taken for every destination; set "
            "IP_BIND_ADDRESS_NO_PORT before bind(), or connect() without bind()"
        )
    out += conntrack_advice(v.conntrack)
    if v.counters_per_s.get("TcpExtTCPTimeWaitOverflow", 0) > 0:
        out.append(
            "TCPTimeWaitOverflow is rising: tcp_max_tw_buckets is reached and closing sockets "
            "skip TIME_WAIT, losing its protection against stale segments"
        )
    return out


def _reuse(hot: list[GroupView], tunings: Mapping[str, str]) -> list[str]:
    """tcp_tw_reuse=1 gives TIME_WAIT ports back after tcp_tw_reuse_delay (1 s before 6.14)
    instead of 60 s (tcp_twsk_unique()), only where timestamps are on; 2 (the default) does
    so toward loopback only."""
    waiting = [g for g in hot if g.states.get("time_wait", 0) * 2 >= g.ports_in_use]
    if not waiting:
        return []  # held connections, not TIME_WAIT: reuse gives nothing back
    reuse = tunings.get("net.ipv4.tcp_tw_reuse")
    stamps = tunings.get("net.ipv4.tcp_timestamps")
    if reuse == "1" and stamps != "0":
        return []
    if stamps == "0":
        return [
            f"{_named(waiting)} mostly in TIME_WAIT, and tcp_timestamps=0: tcp_tw_reuse cannot "
            "reuse those ports; with timestamps on, tcp_tw_reuse=1 gives them back in about "
            "1 s instead of 60 s"
        ]
    now = f" (now {reuse})" if reuse is not None else ""
    return [
        f"{_named(waiting)} mostly in TIME_WAIT: net.ipv4.tcp_tw_reuse=1{now} lets connect() "
        "reuse those ports after about 1 s instead of 60 s (timestamps are on)"
    ]


def _named(groups: list[GroupView]) -> str:
    names = ", ".join(f"{g.source} -> {g.destination} ({g.used_fraction:.0%})"
                      for g in groups[:NAMED])  # fmt: skip
    more = f" and {len(groups) - NAMED} more" if len(groups) > NAMED else ""
    return f"{names}{more} {'is' if len(groups) == 1 else 'are'}"
