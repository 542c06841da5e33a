"""What `portstorm inspect` says about a host: its port space, and where something is off.

Containing no reads: the engine gathers the numbers, this module turns them into findings.
Each finding is one sentence an ops engineer can act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from portstorm.core.capacity import Capacity, CapacityInput, model

NARROW_RANGE = 10_000
CONNTRACK_NEAR = 0.8


@dataclass(frozen=True)
class HostState:
    tunings: Mapping[str, str]
    time_wait: int
    ports_in_use: int
    fd_soft_limit: int
    conntrack: tuple[int, int] | None = None  # (count, max) where nf_conntrack is loaded


def capacity_for_one_destination(tunings: Mapping[str, str]) -> Capacity:
    """The model for plain connect() to one non-loopback destination, client closing first."""
    return model(CapacityInput.from_tunings(tunings))


def advise(state: HostState) -> list[str]:
    t = state.tunings
    out: list[str] = []
    cap = capacity_for_one_destination(t)
    reuse = t.get("net.ipv4.tcp_tw_reuse")
    if reuse == "2":
        out.append(
            "tcp_tw_reuse=2 reuses TIME_WAIT ports on loopback only: toward a real destination "
            "each port is held 60 s; set 1 to reuse them everywhere (needs timestamps)"
        )
    if reuse in ("1", "2") and t.get("net.ipv4.tcp_timestamps") == "0":
        out.append("tcp_timestamps=0 disables tcp_tw_reuse: TIME_WAIT ports are never reused")
    if cap.usable_ports < NARROW_RANGE:
        out.append(
            f"the local port range gives only {cap.usable_ports:,} usable ports: "
            f"{cap.sustainable_rate or 0:,.0f} new connections/s per destination at most; "
            "widen ip_local_port_range"
        )
    if state.fd_soft_limit < cap.usable_ports:
        out.append(
            f"the open-file limit ({state.fd_soft_limit:,}) is below the usable ports "
            f"({cap.usable_ports:,}): one process cannot hold that many connections; "
            "raise ulimit -n"
        )
    buckets = t.get("net.ipv4.tcp_max_tw_buckets")
    if buckets is not None and int(buckets) < cap.usable_ports:
        out.append(
            f"tcp_max_tw_buckets ({int(buckets):,}) is below the usable ports: past it closing "
            "sockets skip TIME_WAIT (TCPTimeWaitOverflow), losing its protection against "
            "stale segments"
        )
    if state.conntrack is not None:
        count, limit = state.conntrack
        if limit > 0 and count >= CONNTRACK_NEAR * limit:
            out.append(
                f"nf_conntrack_count ({count:,}) is near nf_conntrack_max ({limit:,}): new "
                "connections will be dropped before ports run out"
            )
    return out
