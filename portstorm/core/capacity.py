"""The port-space model: how many new connections per second the ports can sustain, and when
they run out. Pure arithmetic on literal inputs; no /proc.

    usable ports   = ip_local_port_range (narrowed by a per-socket IP_LOCAL_PORT_RANGE)
                     minus ip_local_reserved_ports
    tuples         = source IPs x destinations for connect() (a local port is unique per
                     4-tuple, __inet_hash_connect()); source IPs only for bind((ip, 0)),
                     which takes a port per source whatever the destination
    hold time      = how long each connection keeps its port: --hold (the connection held
                     open, ESTABLISHED) plus what follows its close:
                     60 s of TIME_WAIT (TCP_TIMEWAIT_LEN, include/net/tcp.h; tcp_fin_timeout
                     does not change it) when the client closes first;
                     tcp_tw_reuse_delay when connect() may take over a TIME_WAIT
                     (tcp_twsk_unique(): tw_reuse=1, or 2 on loopback, and timestamps on);
                     none for RST close, or when the server closes first (TIME_WAIT moves to
                     the server, and a new SYN on the same 4-tuple takes it over)
    sustainable    = usable ports x tuples / hold time (none when the hold time is 0)
    exhaustion     = at a rate above sustainable, the ports fill in usable x tuples / rate
                     seconds (nothing is freed before the hold time has passed)

The exchange itself (connect, request, response: milliseconds) is left out of the hold
time: it is measured (transaction_us), not known beforehand, and small beside 60 s.

tcp_max_tw_buckets caps TIME_WAIT per namespace: when it is below the port space, closing
sockets past the cap skip TIME_WAIT (TCPTimeWaitOverflow) and ports never run out, unless
connections are held: then rate x hold ESTABLISHED plus at most the cap in TIME_WAIT must
fit in the port space.

A source NAT in the path (--sandbox nat) is a second ceiling, modelled in natmodel.py and
kept here as ``Capacity.nat`` (result.json ``capacity.nat``, written only when there is a
NAT; files without it load with None).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from portstorm.core import fields
from portstorm.core.natmodel import NatCapacity
from portstorm.core.ports import parse_port_list, parse_port_range

TIME_WAIT_S = 60.0  # TCP_TIMEWAIT_LEN
DEFAULT_REUSE_DELAY_MS = 1000  # before 6.14 the delay was a fixed 1 s


@dataclass(frozen=True)
class CapacityInput:
    port_range: tuple[int, int]
    reserved: frozenset[int] = frozenset()
    sources: int = 1
    destinations: int = 1
    bind: str = "connect"  # connect | bind | no-port | range
    socket_range: tuple[int, int] | None = None  # --bind range: IP_LOCAL_PORT_RANGE
    close: str = "client"  # client | server | rst
    tw_reuse: int = 2
    tw_reuse_delay_ms: int | None = DEFAULT_REUSE_DELAY_MS
    timestamps: int = 1
    loopback: bool = False
    max_tw_buckets: int | None = None
    rate: float | None = None  # attempts per second, when the load is open loop
    hold_s: float = 0.0  # --hold: seconds each connection stays open before its close

    def __post_init__(self) -> None:
        low, high = self.port_range
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"port range {self.port_range} is not LOW <= HIGH within 1-65535")
        if self.sources < 1 or self.destinations < 1:
            raise ValueError("sources and destinations must be at least 1")
        if self.bind not in ("connect", "bind", "no-port", "range"):
            raise ValueError(f"bind mode {self.bind!r}")
        if self.close not in ("client", "server", "rst"):
            raise ValueError(f"close mode {self.close!r}")
        if not self.hold_s >= 0:
            raise ValueError(f"hold {self.hold_s!r} s: must be >= 0")

    @classmethod
    def from_tunings(cls, tunings: Mapping[str, str], **load: Any) -> CapacityInput:
        """The model's view of a namespace (sysctls as read back, full names) and a load."""
        delay = tunings.get("net.ipv4.tcp_tw_reuse_delay")
        buckets = tunings.get("net.ipv4.tcp_max_tw_buckets")
        return cls(
            port_range=parse_port_range(tunings["net.ipv4.ip_local_port_range"]),
            reserved=parse_port_list(tunings.get("net.ipv4.ip_local_reserved_ports", "")),
            tw_reuse=int(tunings.get("net.ipv4.tcp_tw_reuse", "2")),
            tw_reuse_delay_ms=int(delay) if delay is not None else None,
            timestamps=int(tunings.get("net.ipv4.tcp_timestamps", "1")),
            max_tw_buckets=int(buckets) if buckets is not None else None,
            **load,
        )


@dataclass(frozen=True)
class Capacity:
    """The model's figures for one run; result.json's ``capacity``. Validated in the
    constructor, since a saved file's are read back here: the figures a report shows are
    required, the two flags may be null (files from before they were saved)."""

    usable_ports: int
    tuples: int
    hold_s: float  # each connection's port: --hold plus TIME_WAIT (or the reuse delay)
    sustainable_rate: float | None  # None: the port space sets no limit
    predicted_exhaustion_s: float | None  # None: no exhaustion at this rate (or no rate)
    reuse_applies: bool | None
    tw_cap_applies: bool | None
    why: tuple[str, ...] = field(default_factory=tuple)
    nat: NatCapacity | None = None  # the NAT pool's ceiling (--sandbox nat), natmodel.py

    def __post_init__(self) -> None:
        if self.nat is not None:
            fields.instance(self.nat, NatCapacity, "capacity.nat")
        with fields.within("capacity"):
            fields.integer(self.usable_ports, "usable_ports", 0, 65536)
            fields.integer(self.tuples, "tuples")
            fields.number(self.hold_s, "hold_s")
            for k in ("sustainable_rate", "predicted_exhaustion_s"):
                fields.number(getattr(self, k), k, null=True, high=fields.MAX_COUNT)
            for k in ("reuse_applies", "tw_cap_applies"):
                fields.flag(getattr(self, k), k, null=True)
            fields.text_list(self.why, "why")

    @property
    def port_space(self) -> int:
        """Usable ports x tuples: the ports held at once toward the targets, at most."""
        return self.usable_ports * self.tuples

    @classmethod
    def from_json(cls, d: object) -> Capacity:
        m = fields.mapping(d, "capacity")
        return cls(
            usable_ports=fields.member(m, "usable_ports"),
            tuples=fields.member(m, "tuples"),
            hold_s=fields.member(m, "hold_s"),
            sustainable_rate=fields.member(m, "sustainable_rate"),
            predicted_exhaustion_s=fields.member(m, "predicted_exhaustion_s"),
            reuse_applies=m.get("reuse_applies"),
            tw_cap_applies=m.get("tw_cap_applies"),
            why=fields.copied(fields.member(m, "why")),
            nat=NatCapacity.from_json(m["nat"]) if m.get("nat") is not None else None,
        )

    def to_json(self) -> dict[str, Any]:
        nat = {"nat": self.nat.to_json()} if self.nat is not None else {}
        return {
            "usable_ports": self.usable_ports,
            "tuples": self.tuples,
            "hold_s": self.hold_s,
            "sustainable_rate": _round(self.sustainable_rate),
            "predicted_exhaustion_s": _round(self.predicted_exhaustion_s),
            "reuse_applies": self.reuse_applies,
            "tw_cap_applies": self.tw_cap_applies,
            "why": list(self.why),
            **nat,
        }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 6)


def effective_range(inp: CapacityInput) -> tuple[int, int]:
    """The range a socket searches: the namespace's, narrowed by IP_LOCAL_PORT_RANGE.

    As inet_sk_get_local_port_range() does it: each per-socket bound replaces the
    namespace's only when it lies inside the namespace's range; a bound outside is ignored.
    """
    low, high = inp.port_range
    if inp.bind == "range" and inp.socket_range is not None:
        s_low, s_high = inp.socket_range
        new_low = s_low if low <= s_low <= high else low
        new_high = s_high if low <= s_high <= high else high
        low, high = new_low, new_high
    return low, high


def usable_ports(inp: CapacityInput) -> int:
    low, high = effective_range(inp)
    if high < low:
        return 0
    return (high - low + 1) - sum(1 for p in inp.reserved if low <= p <= high)


def model(inp: CapacityInput) -> Capacity:
    why: list[str] = []
    ports = usable_ports(inp)
    low, high = effective_range(inp)
    reserved = f" minus {len(inp.reserved)} reserved" if inp.reserved else ""
    if inp.bind == "range" and inp.socket_range is not None:
        ns_low, ns_high = inp.port_range
        s_low, s_high = inp.socket_range
        ignored = [b for b in (s_low, s_high) if not ns_low <= b <= ns_high]
        note = (
            f"; per-socket bound(s) {', '.join(map(str, ignored))} outside "
            f"{ns_low}-{ns_high} ignored by the kernel"
            if ignored
            else ""
        )
        why.append(
            f"{ports} usable ports ({low}-{high}{reserved}: IP_LOCAL_PORT_RANGE "
            f"{s_low}-{s_high} within ip_local_port_range {ns_low}-{ns_high}{note})"
        )
    else:
        why.append(f"{ports} usable ports ({low}-{high}{reserved})")

    if inp.bind == "bind":
        tuples = inp.sources
        why.append(
            f"bind((ip, 0)) takes a port per source address whatever the destination: "
            f"{tuples} tuple(s)"
        )
    else:
        tuples = inp.sources * inp.destinations
        how = {
            "no-port": "with IP_BIND_ADDRESS_NO_PORT, bind() leaves the port to connect(), "
            "which picks one per 4-tuple",
            "range": "connect() picks a port per 4-tuple within the socket's range",
        }.get(inp.bind, "connect() picks a port per 4-tuple")
        why.append(
            f"{how}: {inp.sources} source(s) x {inp.destinations} destination(s) = "
            f"{tuples} tuple(s)"
        )

    reuse = (
        inp.close == "client"
        and (inp.tw_reuse == 1 or (inp.tw_reuse == 2 and inp.loopback))
        and inp.timestamps != 0
    )
    after = _after_close(inp, reuse, why)
    held = inp.hold_s
    hold = held + after
    if held:
        then = (
            "nothing after its close"
            if after == 0
            else f"then the {after:g} s reuse delay"
            if reuse
            else f"then {after:g} s in TIME_WAIT"
        )
        why.append(
            f"--hold {held:g} s: each connection keeps its port open (ESTABLISHED) {held:g} s "
            f"before it closes, {then}: {hold:g} s per connection"
        )

    space = ports * tuples
    buckets = inp.max_tw_buckets
    # the cap matters only where TIME_WAIT would pass it at the rate the ports allow
    tw_cap = (
        after > 0
        and not reuse
        and buckets is not None
        and buckets < space
        and space / hold * after > buckets
    )
    sustainable = None if hold == 0 else space / hold
    if tw_cap and buckets is not None:
        if held:
            # rate x hold ESTABLISHED + the cap in TIME_WAIT = the port space
            sustainable = (space - buckets) / held
            why.append(
                f"tcp_max_tw_buckets ({buckets}) caps TIME_WAIT below the port space ({space}): "
                f"past it closing sockets skip TIME_WAIT (TCPTimeWaitOverflow), so the held "
                f"connections set the limit: ({space} - {buckets}) / {held:g} s"
            )
        else:
            sustainable = None
            why.append(
                f"tcp_max_tw_buckets ({buckets}) is below the port space ({space}): past "
                "it, closing sockets skip TIME_WAIT (TCPTimeWaitOverflow), so ports never run out"
            )
    exhaustion: float | None = None
    if sustainable is not None:
        if not tw_cap:
            why.append(f"sustainable: {space} / {hold:g} s = {sustainable:,.2f} connections/s")
        else:
            why.append(f"sustainable: {sustainable:,.2f} connections/s")
        if inp.rate is not None and inp.rate > sustainable:
            exhaustion = space / inp.rate
            why.append(
                f"at {inp.rate:g}/s the ports run out after {space} / {inp.rate:g} "
                f"= {exhaustion:.3g} s"
            )
    if ports == 0:
        sustainable, exhaustion = 0.0, 0.0
    return Capacity(
        usable_ports=ports,
        tuples=tuples,
        hold_s=hold,
        sustainable_rate=sustainable,
        predicted_exhaustion_s=exhaustion,
        reuse_applies=reuse,
        tw_cap_applies=tw_cap,
        why=tuple(why),
    )


def _after_close(inp: CapacityInput, reuse: bool, why: list[str]) -> float:
    """Seconds a client port stays taken once its connection is closed (the reason in why)."""
    end = "free once the connection ends" if inp.hold_s else "free at once"
    if inp.close == "rst":
        why.append(f"RST close: no TIME_WAIT, ports are {end}")
        return 0.0
    if inp.close == "server":
        why.append(f"server closes first: TIME_WAIT is on the server, client ports are {end}")
        return 0.0
    if reuse:
        delay = inp.tw_reuse_delay_ms or DEFAULT_REUSE_DELAY_MS
        why.append(
            f"tcp_tw_reuse={inp.tw_reuse} applies (timestamps on"
            f"{', loopback' if inp.tw_reuse == 2 else ''}): a TIME_WAIT port is reused after "
            f"{delay} ms"
        )
        return delay / 1000.0
    if inp.tw_reuse == 2 and not inp.loopback:
        why.append("tcp_tw_reuse=2 applies to loopback only: each port is held 60 s")
    elif inp.tw_reuse in (1, 2) and inp.timestamps == 0:
        why.append("tcp_tw_reuse needs tcp_timestamps, which is 0: each port is held 60 s")
    else:
        why.append("TIME_WAIT holds each port 60 s (tcp_fin_timeout does not change it)")
    return TIME_WAIT_S
