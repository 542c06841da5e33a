"""The NAT pool as a second ceiling: how many new connections per second a source NAT
between the clients and the server can map, and when its ports run out. Pure arithmetic
on plain numbers, as capacity.py is for the client's own ports; result.json's
``capacity.nat``.

    pool ports   = the snat range LOW-HIGH (masquerade without a range: 1024-65535,
                   nf_nat_l4proto_unique_tuple())
    tuples       = NAT addresses x destinations: snat picks a port per (NAT address,
                   destination address, destination port), nf_nat_l4proto_unique_tuple()
                   via nf_nat_used_tuple(); the clients behind it share that pool, each
                   with its own whole client port range
    hold time    = how long a connection keeps its NAT port: while it is open (--hold,
                   plus the exchange, milliseconds, left out as capacity.py leaves it out).
                   Not after its close, measured on this kernel (6.18) and read in
                   nf_nat_used_tuple_harder(): within its last attempts the port search
                   evicts a conntrack entry in TIME_WAIT or CLOSE whose sequence a new
                   SYN has passed (nf_nat_may_kill(), nf_seq_has_advanced()), so
                   conntrack's 120 s TIME_WAIT holds nothing (KERNEL.md "A NAT in the path")
    sustainable  = pool ports x tuples / hold time (none when nothing is held), and
                   at most the conntrack limit / hold time
    exhaustion   = above that rate, the pool fills in pool ports x tuples / rate seconds

Measured with three namespaces, a 100-port pool and 10 client addresses, 2,000
connections at 400/s: client close, all succeeded, conntrack 100 TIME_WAIT entries; RST
close, all succeeded, 100 CLOSE entries; server close, 1,992 to 1,998 succeeded, 97 to
114 connects took over 0.9 s (SYN retransmissions) and the sink counted about 950
TcpExt PAWSTimewait: the server's own TIME_WAIT on (server, NAT address:port) refused
SYNs on ports reused within its 60 s. With a 10,000-port pool none of that happened.
The conntrack race (masquerade, 4 client threads on 2 CPUs sharing a 10-port client range,
20,000 RST-closed connects): insert_failed +4, +4, +6 without flags, each a connect over
0.9 s, with no listen drop; with fully-random 0, 0, 0.

Containing no kernel reads and no judgement of a run (natfindings.py judges).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from portstorm.core import fields
from portstorm.core.nat import NAT_FLAGS, NatSpec

_POOL = re.compile(r"(\d{1,5})-(\d{1,5})")


@dataclass(frozen=True)
class NatCapacity:
    """The NAT's figures for one run; result.json's ``capacity.nat``."""

    pool: str  # "LOW-HIGH"
    pool_ports: int
    nat_addresses: int
    destinations: int
    tuples: int  # nat_addresses x destinations
    flags: tuple[str, ...]
    clients: int
    hold_s: float  # each connection's NAT port: while it is open
    sustainable_rate: float | None  # None: nothing holds a NAT port after its connection
    predicted_exhaustion_s: float | None  # None: no exhaustion at this rate (or no rate)
    conntrack_limit: int | None  # the ``ct count over N`` emulation of nf_conntrack_max
    why: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        with fields.within("capacity.nat"):
            fields.text(self.pool, "pool")
            m = _POOL.fullmatch(self.pool)
            if m is None or not 1 <= int(m[1]) <= int(m[2]) <= 65535:
                raise fields.FieldError(
                    "pool", f"{fields.shown(self.pool)}; allowed: LOW-HIGH within 1-65535"
                )
            fields.integer(self.pool_ports, "pool_ports", 1, 65535)
            if self.pool_ports != int(m[2]) - int(m[1]) + 1:
                raise fields.FieldError(
                    "pool_ports", f"{self.pool_ports}; allowed: the size of {self.pool}"
                )
            fields.integer(self.nat_addresses, "nat_addresses", 1)
            fields.integer(self.destinations, "destinations", 1)
            fields.integer(self.tuples, "tuples", 1)
            fields.text_list(self.flags, "flags")
            for f in self.flags:  # nftables' nat flags (core/nat.py)
                if f not in NAT_FLAGS:
                    raise fields.FieldError(
                        "flags", f"{fields.shown(f)}; allowed: {', '.join(NAT_FLAGS)}"
                    )
            fields.integer(self.clients, "clients", 1)
            fields.number(self.hold_s, "hold_s")
            for k in ("sustainable_rate", "predicted_exhaustion_s"):
                fields.number(getattr(self, k), k, null=True, high=fields.MAX_COUNT)
            fields.integer(self.conntrack_limit, "conntrack_limit", 1, null=True)
            fields.text_list(self.why, "why")

    @property
    def port_space(self) -> int:
        """NAT ports held at once toward the destinations, at most: pool x tuples."""
        return self.pool_ports * self.tuples

    @property
    def ceiling(self) -> int:
        """Connections the NAT holds at once: the port space, or the conntrack limit."""
        if self.conntrack_limit is None:
            return self.port_space
        return min(self.port_space, self.conntrack_limit)

    @classmethod
    def from_json(cls, d: object) -> NatCapacity:
        m = fields.mapping(d, "capacity.nat")
        return cls(
            pool=fields.member(m, "pool"),
            pool_ports=fields.member(m, "pool_ports"),
            nat_addresses=fields.member(m, "nat_addresses"),
            destinations=fields.member(m, "destinations"),
            tuples=fields.member(m, "tuples"),
            flags=fields.copied(fields.member(m, "flags")),
            clients=fields.member(m, "clients"),
            hold_s=fields.as_float(fields.member(m, "hold_s")),
            sustainable_rate=fields.as_float(fields.member(m, "sustainable_rate")),
            predicted_exhaustion_s=fields.as_float(fields.member(m, "predicted_exhaustion_s")),
            conntrack_limit=m.get("conntrack_limit"),
            why=fields.copied(fields.member(m, "why")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "pool": self.pool,
            "pool_ports": self.pool_ports,
            "nat_addresses": self.nat_addresses,
            "destinations": self.destinations,
            "tuples": self.tuples,
            "flags": list(self.flags),
            "clients": self.clients,
            "hold_s": self.hold_s,
            "sustainable_rate": _round(self.sustainable_rate),
            "predicted_exhaustion_s": _round(self.predicted_exhaustion_s),
            "conntrack_limit": self.conntrack_limit,
            "why": list(self.why),
        }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 6)


def nat_model(
    *,
    pool: tuple[int, int],
    nat_addresses: int,
    destinations: int,
    flags: Sequence[str] = (),
    clients: int = 1,
    hold_s: float = 0.0,
    close: str = "client",
    rate: float | None = None,
    conntrack_limit: int | None = None,
    pool_given: bool = True,
) -> NatCapacity:
    """The NAT's ceiling for a load: plain numbers in (the router's pool and addresses,
    the run's destinations, clients, --hold, close mode and rate), figures and why out."""
    low, high = pool
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"NAT pool {pool} is not LOW <= HIGH within 1-65535")
    if close not in ("client", "server", "rst"):
        raise ValueError(f"close mode {close!r}")
    ports, tuples = high - low + 1, nat_addresses * destinations
    space = ports * tuples
    why = [
        f"NAT pool {low}-{high}: {ports:,} ports per NAT address"
        + (
            ""
            if pool_given
            else " (masquerade without a range: it keeps a client's own port when that "
            "tuple is free, get_unique_tuple(), else searches 1024-65535, "
            "nf_nat_l4proto_unique_tuple())"
        ),
        f"snat picks a port per (NAT address, destination address, port): {nat_addresses} "
        f"NAT address(es) x {destinations} destination(s) = {tuples} tuple(s), "
        f"{space:,} NAT ports; the {clients} client address(es) behind it share them, "
        "each with its own client port range",
    ]
    why += _flag_words(flags, nat_addresses)
    why.append(_hold_words(hold_s, close))
    if close == "server":
        why.append(
            "the server closes first, so its TIME_WAIT sits on (server, NAT address:port) "
            "for 60 s: a SYN mapped onto a port reused within it may be refused there "
            "(PAWS, tcp_timewait_state_process(): TcpExt PAWSTimewait at the server) and "
            "retransmitted after 1 s; measured: 97 to 114 of 2,000 connects through 100 "
            "ports took over 0.9 s, none with 10,000 ports"
        )
    held = min(space, conntrack_limit) if conntrack_limit is not None else space
    if conntrack_limit is not None:
        why.append(
            f"conntrack limit {conntrack_limit:,}: emulated with nftables 'ct count over "
            f"{conntrack_limit}' in the router's forward chain (nf_conntrack_max is "
            "read-only in a child namespace); it counts connections not yet closed "
            "(nf_conncount skips TIME_WAIT and CLOSE entries, already_closed()), so "
            f"{held:,} connections can be open at once"
            + (" (below the NAT ports)" if conntrack_limit < space else "")
        )
    sustainable: float | None = None
    exhaustion: float | None = None
    if hold_s > 0:
        sustainable = held / hold_s
        why.append(f"the NAT sustains {held:,} / {hold_s:g} s = {sustainable:,.2f} connections/s")
        if rate is not None and rate > sustainable:
            exhaustion = held / rate
            what = "the NAT ports" if held == space else "the conntrack limit"
            why.append(
                f"at {rate:g}/s {what} run out after {held:,} / {rate:g} = {exhaustion:.3g} s"
            )
    else:
        why.append(
            "nothing holds a NAT port past its connection's exchange: the pool sets no rate "
            "limit at this load"
        )
    return NatCapacity(
        pool=f"{low}-{high}",
        pool_ports=ports,
        nat_addresses=nat_addresses,
        destinations=destinations,
        tuples=tuples,
        flags=tuple(flags),
        clients=clients,
        hold_s=hold_s,
        sustainable_rate=sustainable,
        predicted_exhaustion_s=exhaustion,
        conntrack_limit=conntrack_limit,
        why=tuple(why),
    )


def nat_capacity(
    spec: NatSpec,
    *,
    nat_addresses: int,
    destinations: int,
    hold_s: float,
    close: str,
    rate: float | None,
) -> NatCapacity:
    """The model for a run's --sandbox nat: its NatSpec (core/nat.py) and the load."""
    return nat_model(
        pool=spec.pool,
        pool_given=spec.pool_given,
        nat_addresses=max(1, nat_addresses),
        destinations=destinations,
        flags=spec.flags,
        clients=spec.clients,
        hold_s=hold_s,
        close=close,
        rate=rate,
        conntrack_limit=spec.conntrack_limit,
    )


def _hold_words(hold_s: float, close: str) -> str:
    entry = "CLOSE (RST close, 10 s)" if close == "rst" else "TIME_WAIT (120 s)"
    after = (
        f"its conntrack entry, in {entry}, does not hold the port: a new connection's "
        "SYN evicts it when the port search is down to its last attempts "
        "(nf_nat_used_tuple_harder(), nf_nat_may_kill()); measured through 100 ports: "
        "2,000 connections at 400/s succeeded"
    )
    if hold_s > 0:
        return f"--hold {hold_s:g} s: each connection keeps its NAT port while open; then {after}"
    return f"each connection keeps its NAT port only while open (its exchange); then {after}"


def _flag_words(flags: Sequence[str], nat_addresses: int) -> list[str]:
    out = []
    randomised = [f for f in flags if f in ("random", "fully-random")]
    if randomised:
        out.append(
            f"{' and '.join(randomised)}: the port search starts at a random offset "
            "(NF_NAT_RANGE_PROTO_RANDOM, _FULLY: every port random) and no longer keeps a "
            "client's own port, which does not change the pool's size; it makes two "
            "clients' simultaneous SYNs less likely to pick one port (the conntrack race): "
            "measured with masquerade, 4 clients on 2 CPUs sharing a 10-port client range, "
            "20,000 connects: insert_failed +4 to +6 without it, 0 with fully-random (3 "
            "runs each)"
        )
    if "persistent" in flags:
        out.append(
            "persistent: a client keeps its NAT address"
            + (" (one NAT address: no effect)" if nat_addresses == 1 else "")
        )
    return out
