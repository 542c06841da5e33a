"""The declarations of ``portstorm run``'s options for where a run happens: --sandbox,
--server-set, and the NAT sandbox's --nat-ports, --nat-flags, --clients and --router-set
(core/nat.py says what each does and checks the values).

Containing Typer ``Annotated`` types, each used once by a field of options.RunOptions
(where the run options are declared, one field each), and ``nat_spec``, the one way the
NAT options become a ``NatSpec``. Kept here so that options.py stays one screenful per
concept.
"""

from __future__ import annotations

from typing import Annotated

import typer

from portstorm.cli.parsers import whole
from portstorm.core.nat import (
    NatSpec,
    parse_nat_flags,
    parse_nat_ports,
    parse_router_settings,
)
from portstorm.core.scenario import SandboxKind

Sandbox = Annotated[
    SandboxKind | None,
    typer.Option(
        help="pair: client and sink namespaces joined by a veth (default without "
        "a target); nat: the same through a router namespace that source-NATs "
        "(nftables; see --nat-ports); loopback: one namespace on 127.0.0.1 (flatters "
        "capacity: tcp_tw_reuse=2 applies there only); host: this host's own stack "
        "(default with a target)."
    ),
]
ServerSet = Annotated[
    list[str] | None,
    typer.Option(
        metavar="NAME=VALUE",
        help="A sysctl for the pair (or nat) sandbox's server namespace. Repeatable.",
    ),
]
NatPorts = Annotated[
    str | None,
    typer.Option(
        metavar="LOW-HIGH",
        help="With --sandbox nat: the router's SNAT port pool (snat to 198.18.0.1:LOW-HIGH), "
        "within 1024-65535. Default: masquerade, whose search covers 1024-65535.",
        show_default=False,
    ),
]
NatFlags = Annotated[
    str | None,
    typer.Option(
        metavar="FLAG[,FLAG]",
        help="With --sandbox nat: nftables' NAT flags, comma-separated: random, "
        "fully-random (not both), persistent.",
        show_default=False,
    ),
]
Clients = Annotated[
    int | None,
    typer.Option(
        metavar="N",
        parser=whole("--clients"),
        help="With --sandbox nat: client addresses behind the NAT (198.19.0.1 and up), "
        "each with the whole client port range; connections go round-robin over them. "
        "Default 1.",
        show_default=False,
    ),
]
RouterSet = Annotated[
    list[str] | None,
    typer.Option(
        metavar="NAME=VALUE",
        help="With --sandbox nat: a router sysctl, e.g. "
        "nf_conntrack_tcp_timeout_time_wait=30; nf_conntrack_max=N is emulated with "
        "nftables' ct count. Repeatable.",
    ),
]


def nat_spec(
    nat_ports: str | None,
    nat_flags: str | None,
    clients: int | None,
    router_set: list[str] | None,
) -> NatSpec | None:
    """The NAT options -> a NatSpec, or None when none was given (a nat sandbox then takes
    the defaults: Scenario fills them in)."""
    if nat_ports is None and nat_flags is None and clients is None and not router_set:
        return None
    pool, given = parse_nat_ports(nat_ports)
    settings, limit = parse_router_settings(router_set or ())
    return NatSpec(
        pool=pool,
        pool_given=given,
        flags=parse_nat_flags(nat_flags),
        clients=1 if clients is None else clients,
        router_set=settings,
        conntrack_limit=limit,
    )
