"""The NAT sandbox as a value: ``NatSpec`` (pool, flags, clients, router sysctls), its
addresses, and the router's nftables ruleset as text.

Containing no I/O: parsing and validation of --nat-ports, --nat-flags, --clients and
--router-set happen here, on strings, and ``ruleset()`` is a pure function of the spec.
engine/router.py builds the router namespace and loads the ruleset with ``nft -f -``.

Topology (numbered from RFC 2544's 198.18.0.0/15, DESIGN.md): the clients (the pods) are
198.19.0.1 and up on 198.19.0.0/16, routed via the router's inside address 198.19.255.254;
the router source-NATs them to its outside address 198.18.0.1; the sink is 198.18.0.2 and
up on 198.18.0.0/16 and has no route back to 198.19.0.0/16, so every reply must go through
the NAT.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from portstorm.core.errors import UsageError
from portstorm.core.ports import parse_port_range

CLIENT_NETWORK = ipaddress.IPv4Network("198.19.0.0/16")
FIRST_CLIENT = ipaddress.IPv4Address("198.19.0.1")
ROUTER_INSIDE = "198.19.255.254"
NAT_ADDRESS = "198.18.0.1"  # the router's outside address: what the sink sees
SERVER_PREFIX_LEN = 16  # 198.18.0.0/16 between router and sink
CLIENT_PREFIX_LEN = CLIENT_NETWORK.prefixlen
MAX_CLIENTS = 4096
# Without --nat-ports, masquerade's own range: nf_nat_l4proto_unique_tuple() searches
# 1024-65535 for a source port of 1024 or more when no range is given (and keeps the
# client's own port when that tuple is free: get_unique_tuple()).
DEFAULT_POOL = (1024, 65535)
# the router's rule, as result.json's scenario.nat_rule says it: masquerade without
# --nat-ports (its pool is DEFAULT_POOL, which an explicit --nat-ports 1024-65535 also is)
MASQUERADE, SNAT = "masquerade", "snat"
NAT_RULES = (MASQUERADE, SNAT)
NAT_FLAGS = ("random", "fully-random", "persistent")  # nftables' nat_flags
TABLE = "portstorm"  # nftables table `ip portstorm`, in the router namespace only
OUTSIDE_IF = "ps-rout"
INSIDE_IF = "ps-rin"

INT_MAX = 2**31 - 1
_TIMEOUT_MAX = INT_MAX // 1000  # proc_dointvec_jiffies: seconds x HZ must fit an int


@dataclass(frozen=True, slots=True)
class RouterSysctl:
    name: str  # full name, net.netfilter.*
    low: int
    high: int
    meaning: str

    @property
    def short(self) -> str:
        return self.name.rsplit(".", 1)[1]

    @property
    def allowed(self) -> str:
        return f"a whole number, {self.low}-{self.high}"


def _timeout(state: str, meaning: str) -> RouterSysctl:
    return RouterSysctl(f"net.netfilter.nf_conntrack_tcp_timeout_{state}", 0, _TIMEOUT_MAX,
                        f"seconds a conntrack entry lives in {meaning}")  # fmt: skip


CONNTRACK_MAX = "net.netfilter.nf_conntrack_max"
# nf_conntrack_proto_tcp.c's tcp_timeouts[] and the generic knobs (nf_conntrack_standalone.c)
ROUTER_SYSCTLS: tuple[RouterSysctl, ...] = (
    _timeout("syn_sent", "SYN_SENT (a SYN not yet answered)"),
    _timeout("syn_recv", "SYN_RECV"),
    _timeout("established", "ESTABLISHED"),
    _timeout("fin_wait", "FIN_WAIT"),
    _timeout("close_wait", "CLOSE_WAIT"),
    _timeout("last_ack", "LAST_ACK"),
    _timeout("time_wait", "TIME_WAIT (default 120 s)"),
    _timeout("close", "CLOSE (after a RST)"),
    _timeout("max_retrans", "a state after tcp_max_retrans retransmissions"),
    _timeout("unacknowledged", "a state with unacknowledged data"),
    RouterSysctl("net.netfilter.nf_conntrack_tcp_loose", 0, 1,
                 "1: pick up connections already established (mid-stream)"),
    RouterSysctl("net.netfilter.nf_conntrack_tcp_be_liberal", 0, 1,
                 "1: mark only out-of-window RSTs invalid"),
    RouterSysctl("net.netfilter.nf_conntrack_tcp_max_retrans", 0, 255,
                 "retransmissions before the max_retrans timeout applies"),
    # read-only in a child namespace (EACCES): emulated with nftables' ct count (ruleset())
    RouterSysctl(CONNTRACK_MAX, 1, INT_MAX,
                 "the conntrack table's size; emulated: ct count over N drops new flows"),
)  # fmt: skip
ROUTER_NAMES: tuple[str, ...] = tuple(s.name for s in ROUTER_SYSCTLS)
# what the router copies from the host and reads back (nf_conntrack_max is read, not written)
_BY_NAME = {k: s for s in ROUTER_SYSCTLS for k in (s.name, s.short)}


def client_addresses(n: int) -> tuple[str, ...]:
    """The n client (pod) addresses behind the NAT: 198.19.0.1 and up."""
    return tuple(str(FIRST_CLIENT + i) for i in range(n))


def sink_network() -> str:
    return f"{NAT_ADDRESS}/{SERVER_PREFIX_LEN}"


@dataclass(frozen=True, slots=True)
class NatSpec:
    """--sandbox nat's router: its SNAT pool and flags, the clients behind it, its sysctls."""

    pool: tuple[int, int] = DEFAULT_POOL
    pool_given: bool = False  # --nat-ports given: snat to a range; else masquerade
    flags: tuple[str, ...] = ()
    clients: int = 1
    router_set: tuple[tuple[str, str], ...] = ()  # (full name, value), written to the router
    conntrack_limit: int | None = None  # --router-set nf_conntrack_max=N, emulated

    def __post_init__(self) -> None:
        low, high = self.pool
        if not 1024 <= low <= high <= 65535:
            raise UsageError(
                f"--nat-ports {low}-{high}: allowed LOW-HIGH with 1024 <= LOW <= HIGH <= 65535"
            )
        check_flags(self.flags)
        if not 1 <= self.clients <= MAX_CLIENTS:
            raise UsageError(f"--clients {self.clients} is out of range: allowed 1-{MAX_CLIENTS}")
        for name, value in self.router_set:
            if name == CONNTRACK_MAX or name not in _BY_NAME:
                raise UsageError(f"--router-set {name}: not a router sysctl written here")
            check_router_value(_BY_NAME[name], value)
        if self.conntrack_limit is not None:
            check_router_value(_BY_NAME[CONNTRACK_MAX], str(self.conntrack_limit))

    @property
    def pool_size(self) -> int:
        return self.pool[1] - self.pool[0] + 1

    @property
    def pool_text(self) -> str:
        return f"{self.pool[0]}-{self.pool[1]}"

    @property
    def rule(self) -> str:
        """``snat`` to the pool given, else ``masquerade`` (ruleset())."""
        return SNAT if self.pool_given else MASQUERADE

    @property
    def client_addresses(self) -> tuple[str, ...]:
        return client_addresses(self.clients)

    @property
    def given_router_set(self) -> dict[str, str]:
        """--router-set as given (full names), nf_conntrack_max included: result.json's
        scenario ``router_set``."""
        out = dict(self.router_set)
        if self.conntrack_limit is not None:
            out[CONNTRACK_MAX] = str(self.conntrack_limit)
        return out


def check_flags(flags: Iterable[str]) -> None:
    seen = list(flags)
    for f in seen:
        if f not in NAT_FLAGS:
            raise UsageError(f"--nat-flags {f!r} is not a flag: allowed {', '.join(NAT_FLAGS)}")
    if len(set(seen)) != len(seen):
        raise UsageError(f"--nat-flags {','.join(seen)}: a flag is repeated")
    if "random" in seen and "fully-random" in seen:
        # two ways of choosing the port (NF_NAT_RANGE_PROTO_RANDOM and _RANDOM_FULLY):
        # nftables takes both, but a run with both would not say which one it measured
        raise UsageError(
            "--nat-flags random,fully-random: choose one; allowed random or fully-random, "
            "each with persistent"
        )


def check_router_value(sysctl: RouterSysctl, value: str) -> str:
    t = value.strip()
    if not t.isascii() or not t.isdigit() or not sysctl.low <= int(t) <= sysctl.high:
        raise UsageError(
            f"--router-set {sysctl.short}={value!r} is not accepted: allowed {sysctl.allowed}"
        )
    return str(int(t))


def parse_nat_ports(text: str | None) -> tuple[tuple[int, int], bool]:
    """``--nat-ports LOW-HIGH`` -> (the pool, given?); None: masquerade's whole range."""
    if text is None:
        return DEFAULT_POOL, False
    try:
        low, high = parse_port_range(text)
    except UsageError as e:
        why = str(e).replace(f"port range {text!r}", f"--nat-ports {text}")
        raise UsageError(f"{why}; allowed LOW-HIGH within 1024-65535") from None
    if low < 1024:
        raise UsageError(
            f"--nat-ports {text}: low {low} is below 1024; allowed LOW-HIGH within 1024-65535"
        )
    return (low, high), True


def parse_nat_flags(text: str | None) -> tuple[str, ...]:
    """``--nat-flags random,persistent`` -> ("random", "persistent"), checked."""
    if text is None or not text.strip():
        return ()
    flags = tuple(f.strip() for f in text.split(","))
    check_flags(flags)
    return flags


def parse_router_settings(texts: Iterable[str]) -> tuple[tuple[tuple[str, str], ...], int | None]:
    """``--router-set NAME=VALUE``s -> (the sysctls to write, the emulated conntrack limit)."""
    out: dict[str, str] = {}
    limit: int | None = None
    for text in texts:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise UsageError(
                f"--router-set {text!r} is malformed: expected NAME=VALUE, e.g. "
                "nf_conntrack_tcp_timeout_time_wait=30"
            )
        sysctl = _BY_NAME.get(name.strip().replace("/", "."))
        if sysctl is None:
            known = ", ".join(s.short for s in ROUTER_SYSCTLS)
            raise UsageError(
                f"--router-set {name.strip()!r} is not a router sysctl: allowed {known} "
                "(short or net.netfilter.* names)"
            )
        checked = check_router_value(sysctl, value)
        if sysctl.name == CONNTRACK_MAX:
            limit = int(checked)
        else:
            out[sysctl.name] = checked
    return tuple(out.items()), limit


def router_set_from(given: Mapping[str, str]) -> tuple[tuple[tuple[str, str], ...], int | None]:
    """The inverse of ``NatSpec.given_router_set`` (a saved file's ``router_set``)."""
    return parse_router_settings(f"{k}={v}" for k, v in given.items())


def ruleset(spec: NatSpec) -> str:
    """The router's nftables ruleset, for ``nft -f -`` in the router namespace.

    The SNAT rule needs a transport match before a port mapping (nft refuses ``snat to
    ADDR:LOW-HIGH`` without one): ``meta l4proto tcp``. Without --nat-ports, ``masquerade``
    to the outside address with the kernel's default search (DEFAULT_POOL). The pool is
    searched per (NAT address, destination address, destination port):
    nf_nat_l4proto_unique_tuple() tries ports until nf_nat_used_tuple() finds the reply
    tuple free; with none free, __nf_conntrack_confirm() fails the insert (insert_failed)
    and the SYN is dropped.

    nf_conntrack_max cannot be written in a child namespace, so a limit is emulated in the
    forward chain: ``ct count over N`` (nft_connlimit) drops a new flow while N are
    tracked. It counts as nf_conncount does: entries in TIME_WAIT or CLOSE are not counted
    (already_closed()), unlike the real table, which holds them until they expire.
    """
    flags = f" {','.join(spec.flags)}" if spec.flags else ""
    if spec.pool_given:
        nat = f"meta l4proto tcp snat to {NAT_ADDRESS}:{spec.pool_text}{flags}"
    else:
        nat = f"masquerade{flags}"
    lines = [
        f"table ip {TABLE} {{",
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        f'    oifname "{OUTSIDE_IF}" {nat}',
        "  }",
    ]
    if spec.conntrack_limit is not None:
        lines += [
            "  chain forward {",
            "    type filter hook forward priority filter; policy accept;",
            f"    ct state new ct count over {spec.conntrack_limit} counter drop",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"
