"""The sysctls portstorm studies: names, what each really does, and what the kernel accepts.

Containing no /proc access: the engine reads and writes; here ``NAME=VALUE`` text becomes a
validated ``(full name, value)`` pair, checked against the rules the kernel enforces
(net/ipv4/sysctl_net_ipv4.c), so a bad value is refused before anything runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from portstorm.core.errors import UsageError
from portstorm.core.ports import parse_port_list, parse_port_range

INT_MAX = 2**31 - 1
PROT_SOCK = 1024  # a new namespace's ip_unprivileged_port_start (include/net/sock.h)


@dataclass(frozen=True)
class Context:
    """What validation needs to know about the namespace the value will land in."""

    unprivileged_port_start: int = PROT_SOCK
    available: frozenset[str] | None = None  # full names this kernel has; None = do not check
    kernel: str = ""


@dataclass(frozen=True)
class Sysctl:
    name: str  # full name, e.g. net.ipv4.tcp_tw_reuse
    allowed: str  # what the kernel accepts, as a person reads it
    meaning: str  # what it really does (KERNEL.md)
    normalise: Callable[[str, Context], str]
    since: str = ""  # the first kernel that has it, for the "this kernel lacks it" message

    @property
    def short(self) -> str:
        return self.name.rsplit(".", 1)[1]


def _int_in(low: int, high: int) -> Callable[[str, Context], str]:
    def check(text: str, ctx: Context) -> str:
        t = text.strip()
        if not t.lstrip("-").isdigit():
            raise ValueError("not a whole number")
        v = int(t)
        if not low <= v <= high:
            raise ValueError("out of range")
        return str(v)

    return check


def _port_range(text: str, ctx: Context) -> str:
    try:
        low, high = parse_port_range(text)
    except UsageError as e:
        raise ValueError(str(e)) from None
    if low < ctx.unprivileged_port_start:  # ipv4_local_port_range(): range[0] < prot_sock
        raise ValueError(
            f"low {low} is below ip_unprivileged_port_start {ctx.unprivileged_port_start}"
        )
    return f"{low} {high}"


def _port_list(text: str, ctx: Context) -> str:
    try:
        ports = sorted(parse_port_list(text))
    except UsageError as e:
        raise ValueError(str(e)) from None
    # back to the kernel's compact form, "8080,9000-9010"
    runs: list[str] = []
    i = 0
    while i < len(ports):
        j = i
        while j + 1 < len(ports) and ports[j + 1] == ports[j] + 1:
            j += 1
        runs.append(str(ports[i]) if i == j else f"{ports[i]}-{ports[j]}")
        i = j + 1
    return ",".join(runs)


CATALOGUE: tuple[Sysctl, ...] = (
    Sysctl(
        "net.ipv4.ip_local_port_range",
        "LOW-HIGH or 'LOW HIGH', ip_unprivileged_port_start <= LOW <= HIGH <= 65535",
        "the local ports connect() and bind(0) choose from; the ceiling of the port space",
        _port_range,
    ),
    Sysctl(
        "net.ipv4.ip_local_reserved_ports",
        "a list like 8080,9000-9010 (ports within 1-65535), or empty",
        "ports inside the range that automatic port selection skips",
        _port_list,
    ),
    Sysctl(
        "net.ipv4.tcp_fin_timeout",
        f"a whole number of seconds, 0-{INT_MAX // 1000}",
        "how long an orphaned FIN_WAIT2 socket lives; it does NOT shorten TIME_WAIT (60 s)",
        _int_in(0, INT_MAX // 1000),
    ),
    Sysctl(
        "net.ipv4.tcp_tw_reuse",
        "0 (off), 1 (on), 2 (loopback only)",
        "lets connect() take over a TIME_WAIT port older than tcp_tw_reuse_delay, "
        "if that connection used timestamps; 2 (the default) does so on loopback only",
        _int_in(0, 2),
    ),
    Sysctl(
        "net.ipv4.tcp_tw_reuse_delay",
        "milliseconds, 1-60000",
        "how old a TIME_WAIT must be before tcp_tw_reuse may take it over (default 1000 ms)",
        _int_in(1, 60000),
        since="6.14",
    ),
    Sysctl(
        "net.ipv4.tcp_max_tw_buckets",
        f"a whole number, 0-{INT_MAX}",
        "the most TIME_WAIT sockets kept; past it, closing sockets skip TIME_WAIT "
        "(TcpExt TCPTimeWaitOverflow counts them)",
        _int_in(0, INT_MAX),
    ),
    Sysctl(
        "net.ipv4.tcp_timestamps",
        "0 (off), 1 (on, random offsets), 2 (on, no random offsets)",
        "TCP timestamps; tcp_tw_reuse works only for connections that used them",
        _int_in(0, 2),
    ),
    Sysctl(
        "net.ipv4.tcp_rfc1337",
        "0 or 1",
        "1: a RST arriving in TIME_WAIT does not kill it (RFC 1337)",
        _int_in(0, 1),
    ),
    Sysctl(
        "net.core.somaxconn",
        f"a whole number, 0-{INT_MAX}",
        "the cap on a listener's accept queue (listen() backlog)",
        _int_in(0, INT_MAX),
    ),
    Sysctl(
        "net.ipv4.tcp_max_syn_backlog",
        f"a whole number, 0-{INT_MAX}",
        "the cap on half-open connections waiting for the final ACK",
        _int_in(0, INT_MAX),
    ),
)

BY_NAME: dict[str, Sysctl] = {}
for _s in CATALOGUE:
    BY_NAME[_s.name] = _s
    BY_NAME[_s.short] = _s
STUDIED: tuple[str, ...] = tuple(s.name for s in CATALOGUE)


def lookup(name: str) -> Sysctl:
    key = name.strip().replace("/", ".")
    hit = BY_NAME.get(key)
    if hit is None:
        known = ", ".join(s.short for s in CATALOGUE)
        raise UsageError(f"unknown sysctl {name!r}: allowed {known} (short or net.* names)")
    return hit


def parse_setting(text: str, ctx: Context, option: str = "--set") -> tuple[str, str]:
    """``NAME=VALUE`` -> (full name, the value as the kernel writes it), or one UsageError."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise UsageError(
            f"{option} {text!r} is malformed: expected NAME=VALUE, e.g. tcp_tw_reuse=1"
        )
    try:
        sysctl = lookup(name)
    except UsageError as e:
        raise UsageError(f"{option} {text!r}: {e}") from None
    if ctx.available is not None and sysctl.name not in ctx.available:
        since = f" (added in Linux {sysctl.since})" if sysctl.since else ""
        raise UsageError(
            f"{option} {text!r}: this kernel ({ctx.kernel or 'running'}) has no {sysctl.name}"
            f"{since}"
        )
    try:
        return sysctl.name, sysctl.normalise(value, ctx)
    except ValueError as e:
        raise UsageError(
            f"{option} {sysctl.short}={value!r} is not accepted ({e}): allowed {sysctl.allowed}"
        ) from None


def parse_settings(texts: Iterable[str], ctx: Context, option: str = "--set") -> dict[str, str]:
    out: dict[str, str] = {}
    for t in texts:
        name, value = parse_setting(t, ctx, option)
        out[name] = value
    return out


def describe(values: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(short name, value, what it really does) for each studied sysctl present."""
    return [(s.short, values[s.name], s.meaning) for s in CATALOGUE if s.name in values]


def reuse_notes(
    sandbox: str, tunings: Mapping[str, str], loopback: bool | None = None, close: str = "client"
) -> list[str]:
    """Sentences on whether tcp_tw_reuse applied to this run, and why (tcp_twsk_unique()).
    ``loopback``: the targets were reached over loopback by address (None: the sandbox's).
    ``close``: only a client close leaves TIME_WAIT on the client for reuse to matter."""
    on_loopback = sandbox == "loopback" if loopback is None else loopback
    reuse = tunings.get("net.ipv4.tcp_tw_reuse")
    stamps = tunings.get("net.ipv4.tcp_timestamps")
    delay = tunings.get("net.ipv4.tcp_tw_reuse_delay", "1000")
    notes: list[str] = []
    if sandbox == "loopback":
        notes.append(
            "loopback: client and sink share 127.0.0.1 (::1 with --ipv6), where tcp_tw_reuse=2 "
            "(the default) lets connect() reuse a TIME_WAIT port; across a real network it "
            "would not, so "
            "loopback results flatter a host's capacity"
        )
    elif on_loopback:  # tcp_twsk_unique() tests the socket's addresses, not the namespace
        notes.append(
            "loopback: the target is on 127.0.0.0/8 or ::1, where tcp_tw_reuse=2 (the "
            "default) lets connect() reuse a TIME_WAIT port whatever the sandbox; across a "
            "real network it would not, so loopback results flatter a host's capacity"
        )
    applies = reuse == "1" or (reuse == "2" and on_loopback)
    if reuse == "2" and sandbox in ("pair", "nat") and close == "client":
        crossed = "a veth" if sandbox == "pair" else "two veths and a NAT router"
        notes.append(
            f"tcp_tw_reuse=2 reuses TIME_WAIT ports on loopback only; this run crossed {crossed}, "
            "as a real network would, so each closed port stayed in TIME_WAIT for 60 s"
        )
    if applies and stamps == "0":
        notes.append("tcp_tw_reuse had no effect: it needs tcp_timestamps, which was 0")
    elif applies:
        notes.append(
            f"tcp_tw_reuse={reuse} applied: connect() could take over a TIME_WAIT port "
            f"older than tcp_tw_reuse_delay ({delay} ms)"
        )
    return notes
