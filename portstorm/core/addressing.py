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
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from portstorm.core.errors import UsageError

PAIR_NETWORK = ipaddress.IPv4Network("198.18.0.0/15")
PAIR_CLIENT = ipaddress.IPv4Address("198.18.0.1")
PAIR_FIRST_SINK = ipaddress.IPv4Address("198.18.0.2")
LOOPBACK_NETWORK = ipaddress.IPv4Network("127.0.0.0/8")
LOOPBACK_FIRST_SINK = ipaddress.IPv4Address("127.0.0.1")

MAX_SOURCES = 4096
MAX_SINK_ADDRESSES = 200
MAX_SINK_PORTS = 256
MAX_TUPLES = 65536

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def sink_addresses(pair: bool, n: int) -> list[str]:
    """The built-in sink's n addresses: 198.18.0.2 and up (pair), else 127.0.0.1 and up."""
    first = PAIR_FIRST_SINK if pair else LOOPBACK_FIRST_SINK
    return [str(first + i) for i in range(n)]


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
                    "allowed up to 4096 (e.g. a /20)"
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
    if net.num_addresses > MAX_SOURCES + 2:
        raise UsageError(
            f"--source {spec}: {net.num_addresses:,} addresses; allowed up to {MAX_SOURCES} "
            "source addresses in all (e.g. a /20)"
        )
    hosts: list[IPAddress] = list(net.hosts() if net.num_addresses > 2 else net)
    return hosts


def check_sources_for_sandbox(sandbox: str, sources: Sequence[str], n_sink_addresses: int) -> None:
    """Sandboxes own their addresses: sources must come from their network.

    pair: 198.18.0.0/15 (portstorm adds them to the client's veth), and not the sink's own
    addresses; loopback: 127.0.0.0/8 (all of it is local on lo already). Host mode takes
    the host's own addresses, which only the engine can check.
    """
    if sandbox == "pair":
        sinks = set(sink_addresses(True, n_sink_addresses))
        for s in sources:
            ip = ipaddress.ip_address(s)
            if ip.version != 4 or ip not in PAIR_NETWORK:
                raise UsageError(
                    f"--source {s}: the pair sandbox numbers its addresses from {PAIR_NETWORK} "
                    "(RFC 2544): use e.g. 198.18.1.0/24"
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


@dataclass(frozen=True, slots=True)
class TupleSpec:
    """One (source, destination) pair: ``source`` None lets the kernel choose it by route."""

    source: str | None
    dst_host: str
    dst_port: int

    @property
    def destination(self) -> str:
        h = self.dst_host
        return f"[{h}]:{self.dst_port}" if ":" in h else f"{h}:{self.dst_port}"


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
