"""What `portstorm inspect` says about a host: its port space, and where something is off.

Containing no reads: the engine gathers the numbers, this module turns them into findings.
Each finding is one sentence an ops engineer can act on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
    nat_rules: tuple[NatRule, ...] | None = None  # source NAT rules; None: not readable


@dataclass(frozen=True)
class NatRule:
    """One masquerade or snat statement of the host's nftables ruleset."""

    where: str  # "ip nat postrouting": family, table, chain
    action: str  # masquerade | snat
    ports: str | None  # "40000-40999"; None: no range (1024-65535, or the client's own)
    flags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"where": self.where, "action": self.action, "ports": self.ports,
                "flags": list(self.flags)}  # fmt: skip


def nat_rules(doc: object) -> tuple[NatRule, ...]:
    """The masquerade and snat statements in ``nft -j list ruleset``'s JSON (libnftables'
    schema: {"nftables": [{"rule": {"family", "table", "chain", "expr": [...]}}]}), and the
    MASQUERADE/SNAT targets iptables-nft leaves there as "xt" expressions."""
    items = doc.get("nftables", []) if isinstance(doc, Mapping) else []
    out = []
    for item in items if isinstance(items, list) else []:
        rule = item.get("rule") if isinstance(item, Mapping) else None
        if not isinstance(rule, Mapping):
            continue
        where = " ".join(str(rule.get(k, "?")) for k in ("family", "table", "chain"))
        for expr in rule.get("expr") or []:
            if isinstance(expr, Mapping):
                out += _nat_statement(where, expr)
    return tuple(out)


def _nat_statement(where: str, expr: Mapping[str, Any]) -> list[NatRule]:
    for action in ("masquerade", "snat"):
        if action in expr:
            body = expr[action] if isinstance(expr[action], Mapping) else {}
            port = body.get("port")
            ports = None
            if isinstance(port, Mapping) and isinstance(port.get("range"), list):
                ports = "-".join(str(p) for p in port["range"])
            elif isinstance(port, int):
                ports = str(port)
            flags = body.get("flags") or ()
            flags = (flags,) if isinstance(flags, str) else tuple(str(f) for f in flags)
            return [NatRule(where, action, ports, flags)]
    xt = expr.get("xt")
    if isinstance(xt, Mapping) and str(xt.get("name", "")).upper() in ("MASQUERADE", "SNAT"):
        return [NatRule(where, str(xt["name"]).lower(), None)]  # iptables-nft: no detail
    return []


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
    out += conntrack_advice(state.conntrack)
    if state.nat_rules:
        out += _nat_advice(state.nat_rules)
    return out


def _nat_advice(rules: Sequence[NatRule]) -> list[str]:
    """Source NAT here: its pool is per destination, and without fully-random it races."""
    shown = "; ".join(
        f"{r.action}{' to ports ' + r.ports if r.ports else ''}"
        f"{' ' + ','.join(r.flags) if r.flags else ''} in {r.where}"
        for r in rules[:3]
    ) + (f" and {len(rules) - 3} more" if len(rules) > 3 else "")
    out = [
        f"source NAT rules exist ({shown}): connections through them share the NAT's ports "
        "per (NAT address, destination address, port), 64,512 (1024-65535) where no range "
        "is given, and held connections exhaust that before the clients' own ports; "
        "portstorm run --sandbox nat --nat-ports LOW-HIGH --hold S shows where they run out"
    ]
    racy = [r for r in rules if "fully-random" not in r.flags]
    if racy:
        out.append(
            f"{len(racy)} of the {len(rules)} source NAT rule(s) lack fully-random: "
            "simultaneous connections from different clients can be mapped to one NAT port "
            "and the later SYN dropped (the conntrack race: insert_failed, a 1 s connect); "
            "fully-random is said to make it rarer"
        )
    return out


def conntrack_advice(conntrack: tuple[int, int] | None) -> list[str]:
    """The conntrack table near full, for ``inspect`` and ``watch`` alike: (count, max)."""
    if conntrack is None:
        return []
    count, limit = conntrack
    if limit > 0 and count >= CONNTRACK_NEAR * limit:
        return [
            f"nf_conntrack_count ({count:,}) is near nf_conntrack_max ({limit:,}): new "
            "connections will be dropped before ports run out"
        ]
    return []
