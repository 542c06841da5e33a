"""Addresses: the sandboxes' numbering plan, --source parsing, and the tuples a run spreads over.

Containing no sockets and no interfaces: the sandbox (engine/sandbox.py) adds these
addresses to interfaces; here they are only chosen, parsed and checked, on strings.

A *tuple* is (source IP, destination IP, destination port). connect() picks a local port per
4-tuple, so each tuple has the whole port range to itself (__inet_hash_connect()); bind((ip, 0))
takes a port per source address whatever the destination (inet_csk_get_port()). Attempts go
round-robin over the tuples, and result.json accounts for each one.

Numbering (DESIGN.md): everything comes from 198.18.0.0/15 (RFC 2544, for benchmarking). The
pair sandbox's client is 198.18.0.1, its sink 198.18.0.2 and up (--sink-addresses); extra
--source addresses are the user's choice within the same /15, e.g. 198.18.1.0/24.

With --ipv6, from 2001:2::/48 (RFC 5180, the IPv6 benchmarking prefix): the veth is the
on-link 2001:2::/64, the client 2001:2::1, the sink 2001:2::2 and up. Extra sources come
from the rest of the /48, a /64 at a time (e.g. 2001:2:0:1::/64): the sandbox routes each such
/64 to the client as local (one route, not one address per source) and the sockets bind
with IP_FREEBIND. The loopback sandbox (and the host's built-in sink) is ::1 alone.
An IPv6 prefix wider than MAX_SOURCES addresses (a /64) means its first MAX_SOURCES
addresses: 4096 x the port range is more tuples than any run can fill.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from portstorm.core.errors import UsageError

PAIR_NETWORK = ipaddress.IPv4Network("198.18.0.0/15")
PAIR_CLIENT = ipaddress.IPv4Address("198.18.0.1")
PAIR_FIRST_SINK = ipaddress.IPv4Address("198.18.0.2")
LOOPBACK_NETWORK = ipaddress.IPv4Network("127.0.0.0/8")
LOOPBACK_FIRST_SINK = ipaddress.IPv4Address("127.0.0.1")
PAIR_NETWORK6 = ipaddress.IPv6Network("2001:2::/48")  # RFC 5180
PAIR_LINK6 = ipaddress.IPv6Network("2001:2::/64")  # the veth's on-link prefix
PAIR_CLIENT6 = ipaddress.IPv6Address("2001:2::1")
PAIR_FIRST_SINK6 = ipaddress.IPv6Address("2001:2::2")
LOOPBACK6 = ipaddress.IPv6Address("::1")
SOURCE_PREFIX6 = 64  # IPv6 sources are routed to the client a /64 at a time

MAX_SOURCES = 4096
MAX_SINK_ADDRESSES = 200
MAX_SINK_PORTS = 256
MAX_TUPLES = 65536

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_text(host: str, port: int) -> str:
    """``198.18.0.2:9000``, or ``[2001:2::2]:9000`` for IPv6 (RFC 3986's brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_loopback(host: str) -> bool:
    """Loopback as tcp_twsk_unique() tells it for tcp_tw_reuse=2: 127.0.0.0/8, ::1, and
    IPv4-mapped 127.0.0.0/8 (ipv6_addr_v4mapped_loopback()), which Python 3.11's
    ``is_loopback`` does not count."""
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def pair_client(ipv6: bool) -> str:
    """The pair sandbox client's own address on the veth."""
    return str(PAIR_CLIENT6 if ipv6 else PAIR_CLIENT)


def sink_addresses(pair: bool, n: int, ipv6: bool = False) -> list[str]:
    """The built-in sink's n addresses: 198.18.0.2 and up (pair), else 127.0.0.1 and up;
    with ``ipv6``, 2001:2::2 and up (pair), else ::1 (IPv6 has one loopback address:
    Scenario refuses more than one)."""
    if ipv6 and not pair:
        return [str(LOOPBACK6)][:n]
    first = (PAIR_FIRST_SINK6 if ipv6 else PAIR_FIRST_SINK) if pair else LOOPBACK_FIRST_SINK
    return [str(first + i) for i in range(n)]


def source_prefixes(sources: Sequence[str]) -> list[ipaddress.IPv6Network]:
    """The /64s holding the IPv6 ``sources`` other than the pair client's own address, in
    order: what the pair sandbox routes to the client as local."""
    out: dict[ipaddress.IPv6Network, None] = {}
    for s in sources:
        ip = ipaddress.ip_address(s)
        if ip.version == 6 and ip != PAIR_CLIENT6:
            out[ipaddress.IPv6Network((int(ip), SOURCE_PREFIX6), strict=False)] = None
    return list(out)


def parse_sources(specs: Sequence[str]) -> tuple[str, ...]:
    """``--source`` values (an IP or a CIDR each) -> the distinct addresses, in order.

    A CIDR means its usable host addresses (network and broadcast excluded, as for any
    subnet of /30 or wider); /31 and /32 (/127, /128) mean every address in them.
    """
    out: dict[str, None] = {}
    for spec in specs:
        for addr in _expand(spec):
            out[str(addr)] = None
            if len(out) > MAX_SOURCES:
                raise UsageError(
                    f"--source {spec}: more than {MAX_SOURCES} source addresses in all; "
                    "allowed up to 4096 (e.g. a /20, or one IPv6 /64)"
                )
    return tuple(out)


def _expand(spec: str) -> list[IPAddress]:
    text = spec.strip()
    hint = "expected an IP address or a CIDR, e.g. 198.18.1.1 or 198.18.1.0/24"
    if "/" not in text:
        try:
            return [ipaddress.ip_address(text)]
        except ValueError:
            raise UsageError(f"--source {spec!r} is not an IP address: {hint}") from None
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        if "host bits set" in str(e):
            fixed = ipaddress.ip_network(text, strict=False)
            raise UsageError(
                f"--source {spec!r} has host bits set: did you mean {fixed}?"
            ) from None
        raise UsageError(f"--source {spec!r} is not a CIDR: {hint}") from None
    if net.version == 6:
        # a /64 is what an IPv6 host is given: its first MAX_SOURCES addresses (the
        # Subnet-Router anycast address, the prefix itself, left out: RFC 4291 2.6.1)
        return list(itertools.islice(net.hosts() if net.num_addresses > 2 else net,
                                     MAX_SOURCES))  # fmt: skip
    if net.num_addresses > MAX_SOURCES + 2:
        raise UsageError(
            f"--source {spec}: {net.num_addresses:,} addresses; allowed up to {MAX_SOURCES} "
            "source addresses in all (e.g. a /20)"
        )
    hosts: list[IPAddress] = list(net.hosts() if net.num_addresses > 2 else net)
    return hosts


def check_sources_for_sandbox(
    sandbox: str, sources: Sequence[str], n_sink_addresses: int, ipv6: bool = False
) -> None:
    """Sandboxes own their addresses: sources must come from their network.

    pair: 198.18.0.0/15 (portstorm adds them to the client's veth), and not the sink's own
    addresses; loopback: 127.0.0.0/8 (all of it is local on lo already). Host mode takes
    the host's own addresses, which only the engine can check. With ``ipv6`` every source
    is IPv6: pair, from 2001:2::/48 outside the veth's /64 (or the client's own 2001:2::1);
    loopback, ::1.
    """
    if ipv6:
        _check_ipv6_sources(sandbox, sources)
        return
    if sandbox == "pair":
        sinks = set(sink_addresses(True, n_sink_addresses))
        for s in sources:
            ip = ipaddress.ip_address(s)
            if ip.version != 4 or ip not in PAIR_NETWORK:
                also = " (IPv6 sources: add --ipv6, from 2001:2::/48)" if ip.version == 6 else ""
                raise UsageError(
                    f"--source {s}: the pair sandbox numbers its addresses from {PAIR_NETWORK} "
                    f"(RFC 2544): use e.g. 198.18.1.0/24{also}"
                )
            if s in sinks:
                raise UsageError(
                    f"--source {s} is one of the sink's addresses "
                    f"({', '.join(sorted(sinks, key=ipaddress.ip_address))}): use e.g. "
                    "198.18.1.0/24"
                )
    elif sandbox == "loopback":
        for s in sources:
            ip = ipaddress.ip_address(s)
            if ip.version != 4 or ip not in LOOPBACK_NETWORK:
                raise UsageError(
                    f"--source {s}: the loopback sandbox has only {LOOPBACK_NETWORK}: "
                    "use e.g. 127.0.0.2"
                )


def _check_ipv6_sources(sandbox: str, sources: Sequence[str]) -> None:
    for s in sources:
        ip = ipaddress.ip_address(s)
        if ip.version != 6:
            raise UsageError(
                f"--source {s} is IPv4: with --ipv6 allowed: IPv6 addresses or CIDRs"
                + (" from 2001:2::/48, e.g. 2001:2:0:1::/64" if sandbox == "pair" else "")
            )
        if sandbox == "pair" and ip != PAIR_CLIENT6:
            if ip not in PAIR_NETWORK6 or ip in PAIR_LINK6:
                where = "on the veth's own /64" if ip in PAIR_LINK6 else f"outside {PAIR_NETWORK6}"
                raise UsageError(
                    f"--source {s} is {where}: with --ipv6 the pair sandbox takes sources from "
                    f"{PAIR_NETWORK6} (RFC 5180) outside {PAIR_LINK6}, e.g. 2001:2:0:1::/64"
                )
        elif sandbox == "loopback" and ip != LOOPBACK6:
            raise UsageError(f"--source {s}: IPv6 loopback is {LOOPBACK6} alone: allowed ::1")


@dataclass(frozen=True, slots=True)
class TupleSpec:
    """One (source, destination) pair: ``source`` None lets the kernel choose it by route."""

    source: str | None
    dst_host: str
    dst_port: int

    @property
    def destination(self) -> str:
        return address_text(self.dst_host, self.dst_port)


def plan_tuples(sources: Sequence[str], destinations: Sequence[tuple[str, int]]) -> list[TupleSpec]:
    """Every source with every destination of its address family, destination-major, so
    that round-robin over the list alternates sources first.

    Without sources, one tuple per destination with the source left to the kernel.
    """
    if not sources:
        return [TupleSpec(None, h, p) for h, p in destinations]
    if len(sources) * len(destinations) > MAX_TUPLES:
        raise UsageError(
            f"{len(sources)} sources x {len(destinations)} destinations = "
            f"{len(sources) * len(destinations):,} tuples; allowed up to {MAX_TUPLES:,}"
        )
    out: list[TupleSpec] = []
    for host, port in destinations:
        version = ipaddress.ip_address(host).version
        matching = [s for s in sources if ipaddress.ip_address(s).version == version]
        if not matching:
            raise UsageError(
                f"no --source is IPv{version} like the destination {host}: add one, or drop "
                "that target"
            )
        out += [TupleSpec(s, host, port) for s in matching]
    used = {t.source for t in out}
    unused = [s for s in sources if s not in used]
    if unused:
        raise UsageError(
            f"--source {unused[0]} has no destination of its address family (IPv"
            f"{ipaddress.ip_address(unused[0]).version}): drop it or add such a target"
        )
    return out
