"""What an experiment is, as a frozen value: targets, load shape, close mode, timing.

Containing no I/O: parsing and validation of what the user typed happen here, on strings;
resolving host names and touching sockets belong to the engine. Every refusal is a
``UsageError`` whose one-line message names the value and what is allowed.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import re
from dataclasses import dataclass, field

from portstorm.core.addressing import (
    MAX_SINK_ADDRESSES,
    MAX_SINK_PORTS,
    MAX_TUPLES,
    check_sources_for_sandbox,
)
from portstorm.core.errors import UsageError
from portstorm.core.exchange import MAX_MESSAGE_BYTES, check_exchange
from portstorm.core.gatestop import check_stoppable
from portstorm.core.nat import MAX_CLIENTS, NatSpec
from portstorm.core.ports import parse_port_range
from portstorm.core.thresholds import Threshold


class CloseMode(enum.StrEnum):
    """Who ends each connection, and so where TIME_WAIT lands (KERNEL.md, "Who holds")."""

    CLIENT = "client"  # the client sends the first FIN: TIME_WAIT on the client
    SERVER = "server"  # the sink sends the first FIN: TIME_WAIT on the server
    RST = "rst"  # the client aborts with SO_LINGER {1, 0}: no TIME_WAIT anywhere


class BindMode(enum.StrEnum):
    """How each socket gets its local port (KERNEL.md, "Ports")."""

    CONNECT = "connect"  # plain connect(): a port per 4-tuple
    BIND = "bind"  # bind((ip, 0)) first: a port per source address, whatever the destination
    NO_PORT = "no-port"  # IP_BIND_ADDRESS_NO_PORT, bind((ip, 0)), connect(): the port at connect
    RANGE = "range"  # IP_LOCAL_PORT_RANGE narrows the range for each socket (--port-range)


class SandboxKind(enum.StrEnum):
    """Where the experiment runs (sandbox.py builds it)."""

    PAIR = "pair"  # client and sink namespaces joined by a veth: the honest default
    NAT = "nat"  # as pair, through a router namespace that source-NATs (core/nat.py)
    LOOPBACK = "loopback"  # one namespace, 127.0.0.1: tcp_tw_reuse=2 applies, flatters
    HOST = "host"  # the current namespace and its live settings


MAX_DURATION_S = 7 * 24 * 3600.0
MAX_RATE = 10_000_000.0
MAX_CONCURRENCY = 1_000_000
MAX_WORKERS = 64
DEFAULT_CONCURRENCY = 32
# The shortest interval: each one ends with a port-space sample, a sock_diag dump per flow
# (up to 8) that walks the socket table, ~10 ms at 28k TIME_WAIT sockets and ~25 ms at 60k
# on this kind of machine (KERNEL.md, "Observing"), then a record to the interval log.
# Shorter intervals only measure the sampler, and at 2 ms a worker's ticker fell behind
# for good and never let a signal through.
MIN_INTERVAL_S = 0.1

# RFC 1123 host names: labels of letters, digits and hyphens.
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$")


@dataclass(frozen=True, slots=True)
class Target:
    """A destination as typed: a host (name or literal address) and a TCP port."""

    host: str
    port: int

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise UsageError(f"target port {self.port} is out of range: allowed 1-65535")

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_target(text: str) -> Target:
    """``HOST:PORT`` or ``[IPV6]:PORT`` -> Target; anything else is a UsageError."""
    hint = "expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080"
    raw = text.strip()
    if raw.startswith("["):
        m = re.fullmatch(r"\[([^\]]+)\]:(\d{1,5})", raw)
        if not m:
            raise UsageError(f"target {text!r} is malformed: {hint}")
        host, port_s = m.group(1), m.group(2)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise UsageError(f"target {text!r}: {host!r} is not an IPv6 address") from None
    else:
        host, sep, port_s = raw.rpartition(":")
        if not sep or not host or ":" in host:
            raise UsageError(f"target {text!r} is malformed: {hint}")
        if not port_s.isdigit() or len(port_s) > 5:
            raise UsageError(f"target {text!r}: port {port_s!r} is not a number in 1-65535")
        if not _is_ipv4(host) and not _HOSTNAME.match(host):
            raise UsageError(f"target {text!r}: {host!r} is not a host name or IP address")
    return Target(host, int(port_s))


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Scenario:
    """One experiment. ``targets`` empty means: churn against the built-in sink."""

    targets: tuple[Target, ...] = ()
    duration_s: float = 10.0
    rate: float | None = None  # attempts/s, open loop; None = closed loop, as fast as possible
    concurrency: int | None = None  # closed loop: in flight; open loop: optional in-flight cap
    close: CloseMode = CloseMode.CLIENT
    interval_s: float = 1.0
    connect_timeout_s: float = 3.0
    # --close server: how long a connection made waits for the server's FIN before it
    # counts as close_timeout; None: as long as the connect timeout
    close_timeout_s: float | None = None
    sandbox: SandboxKind = SandboxKind.HOST
    client_set: tuple[tuple[str, str], ...] = ()  # (full sysctl name, value) overrides
    server_set: tuple[tuple[str, str], ...] = ()
    change_host: bool = False  # --change-host-sysctls: --set may change live host sysctls
    bind: BindMode = BindMode.CONNECT
    socket_port_range: tuple[int, int] | None = None  # --port-range, with --bind range
    workers: int = 1  # driver processes
    sink_workers: int = 1  # built-in sink processes (SO_REUSEPORT listeners)
    sources: tuple[str, ...] = field(default_factory=tuple)  # expanded --source addresses
    sink_ports: int = 1  # the built-in sink listens on this many ports...
    sink_addresses: int = 1  # ...on each of this many addresses
    # --ipv6: the sandboxes numbered from 2001:2::/48 (pair) or ::1 (loopback, and the
    # built-in sink in host mode); targets and sources must then be IPv6
    ipv6: bool = False
    # after connect(): the request the client writes and the response it reads, in bytes
    # (0 and 0: connect and close, nothing sent); with http_path the request is a GET
    request_size: int = 0
    response_size: int = 0
    # seconds from connect to the last response byte before it counts as timeout; None:
    # as long as the connect timeout
    response_timeout_s: float | None = None
    http_path: str | None = None  # --http PATH: an HTTP/1.1 GET instead of raw bytes
    http_host: str | None = None  # --http-host: the Host header; None: the target's
    hold_s: float = 0.0  # seconds each connection stays open after its exchange
    nat: NatSpec | None = None  # --sandbox nat: the router's pool, flags, clients, sysctls
    # --fail-if: judged on the saved run (core/thresholds.py); they do not change the load
    thresholds: tuple[Threshold, ...] = ()
    stop_on_fail: bool = False  # --stop-on-fail: end the load on a certain failure (gatestop)
    # --start-at: the load begins at this Unix time (core/startat.py; engine/run.py waits)
    start_at_s: float | None = None

    def __post_init__(self) -> None:
        _check("--duration", self.duration_s)
        if self.start_at_s is not None and not math.isfinite(self.start_at_s):
            raise UsageError(f"--start-at {self.start_at_s}: not a finite time")
        _check("--interval", self.interval_s)
        _check("--connect-timeout", self.connect_timeout_s)
        if self.close_timeout_s is not None:
            _check("--close-timeout", self.close_timeout_s)
        if self.response_timeout_s is not None:
            _check("--response-timeout", self.response_timeout_s)
        _check("--request-size", self.request_size)
        _check("--response-size", self.response_size)
        _check("--hold", self.hold_s)
        check_exchange(self)
        if self.stop_on_fail:
            check_stoppable(self.thresholds)
        if self.rate is not None:
            _check("--rate", self.rate)
        if self.concurrency is not None:
            _check("--concurrency", self.concurrency)
        _check("--workers", self.workers)
        _check("--sink-workers", self.sink_workers)
        if self.targets and self.sandbox is not SandboxKind.HOST:
            raise UsageError(
                f"--sandbox {self.sandbox} runs the built-in sink inside new namespaces, where "
                f"{self.targets[0]} cannot be reached: drop the target or use --sandbox host"
            )
        if self.client_set and self.sandbox is SandboxKind.HOST and not self.change_host:
            raise UsageError(
                "--set with --sandbox host would change this host's live sysctls: add "
                "--change-host-sysctls to confirm, or use --sandbox pair or loopback"
            )
        if self.bind is BindMode.RANGE and self.socket_port_range is None:
            raise UsageError("--bind range needs --port-range LOW-HIGH (the per-socket range)")
        if self.socket_port_range is not None and self.bind is not BindMode.RANGE:
            raise UsageError(
                f"--port-range applies to --bind range only (this run uses --bind {self.bind})"
            )
        for option, n, top in (
            ("--sink-ports", self.sink_ports, MAX_SINK_PORTS),
            ("--sink-addresses", self.sink_addresses, MAX_SINK_ADDRESSES),
        ):
            if not 1 <= n <= top:
                raise UsageError(f"{option} {n} is out of range: allowed 1-{top}")
            if n > 1 and self.targets:
                raise UsageError(
                    f"{option} applies to the built-in sink; with targets, list each HOST:PORT"
                )
        if self.sink_workers > 1 and self.targets:
            raise UsageError(
                "--sink-workers applies to the built-in sink; with targets there is none"
            )
        self._check_nat()
        if self.ipv6:
            self._check_ipv6()
        check_sources_for_sandbox(
            str(self.sandbox), self.sources, self.sink_addresses, ipv6=self.ipv6
        )
        n_dest = len(self.targets) or self.sink_ports * self.sink_addresses
        n_src, what = (
            (self.nat.clients, "client(s)") if self.nat else (len(self.sources), "source(s)")
        )
        if max(1, n_src) * n_dest > MAX_TUPLES:
            raise UsageError(
                f"{max(1, n_src)} {what} x {n_dest} destination(s) is more "
                f"than {MAX_TUPLES:,} tuples: allowed up to {MAX_TUPLES:,}"
            )
        if self.server_set and self.sandbox not in (SandboxKind.PAIR, SandboxKind.NAT):
            raise UsageError(
                f"--server-set applies to the pair sandbox's server namespace; with --sandbox "
                f"{self.sandbox} the sink shares the client's settings: use --set"
            )

    def _check_nat(self) -> None:
        if self.sandbox is not SandboxKind.NAT:
            if self.nat is not None:
                raise UsageError(
                    "--nat-ports, --nat-flags, --clients and --router-set apply to --sandbox "
                    f"nat (this run uses --sandbox {self.sandbox})"
                )
            return
        if self.nat is None:
            object.__setattr__(self, "nat", NatSpec())  # the defaults: masquerade, 1 client
        if self.sources:
            raise UsageError(
                "--source with --sandbox nat: the clients behind the NAT are numbered by "
                "portstorm (198.19.0.1 and up): use --clients N"
            )
        if self.ipv6:
            raise UsageError(
                "--ipv6 with --sandbox nat: the NAT sandbox is IPv4 only for now; use "
                "--sandbox pair for IPv6"
            )

    def _check_ipv6(self) -> None:
        for t in self.targets:
            if _is_ipv4(t.host):
                raise UsageError(
                    f"target {t} is IPv4: with --ipv6 allowed: an IPv6 address in brackets "
                    "(e.g. [2001:2::5]:80, [::1]:8080) or a host name (its IPv6 address)"
                )
        if self.sink_addresses > 1 and not self.targets and self.sandbox is not SandboxKind.PAIR:
            raise UsageError(
                f"--sink-addresses {self.sink_addresses} with --ipv6 --sandbox {self.sandbox}: "
                "IPv6 has one loopback address (::1); allowed 1 (use --sink-ports for more "
                "destinations, or --sandbox pair)"
            )

    @property
    def flow_sources(self) -> tuple[str, ...]:
        """The source addresses the flows bind: the NAT's clients, else --source's."""
        return self.nat.client_addresses if self.nat is not None else self.sources

    @property
    def open_loop(self) -> bool:
        return self.rate is not None

    @property
    def close_limit_s(self) -> float:
        """Seconds a connection made waits for the server to close (--close server)."""
        return self.connect_timeout_s if self.close_timeout_s is None else self.close_timeout_s

    @property
    def in_flight_cap(self) -> int | None:
        """How many attempts may be in flight at once (None: unbounded open loop)."""
        if self.rate is None:
            return self.concurrency or DEFAULT_CONCURRENCY
        return self.concurrency

    @property
    def exchanges(self) -> bool:
        """Something happens after connect(): a request, a response, HTTP or a hold."""
        return bool(self.request_size or self.response_size or self.http_path or self.hold_s)

    @property
    def response_limit_s(self) -> float:
        """Seconds from connect to the last response byte (--response-timeout)."""
        if self.response_timeout_s is None:
            return self.connect_timeout_s
        return self.response_timeout_s

    def held_at_least(self) -> int:
        """Open loop with --hold: the sockets held open at the steady state (rate x hold),
        the fewest file descriptors the run cannot do without; 0 otherwise."""
        if self.rate is None or not self.hold_s:
            return 0
        return math.ceil(self.rate * self.hold_s)

    def max_in_flight(self) -> tuple[int, bool]:
        """(sockets held at once at most, whether that bound is exact), to size RLIMIT_NOFILE.

        Exact for a closed loop or a capped open loop. Without a cap it is a worst case:
        attempts live at most the connect timeout plus the close phase (bounded by the close
        timeout), so rate x (both) can overlap, though normally far fewer do.
        """
        cap = self.in_flight_cap
        if cap is not None:
            return cap, True
        assert self.rate is not None
        life = self.connect_timeout_s + self.close_limit_s + self.hold_s
        if self.request_size or self.response_size or self.http_path:
            life += self.response_limit_s
        return int(self.rate * life) + 1, False


# option -> (integer?, lowest allowed, lowest is exclusive?, highest, unit)
_NUMBERS: dict[str, tuple[bool, float, bool, float, str]] = {
    "--duration": (False, 0.0, True, MAX_DURATION_S, "seconds"),
    "--interval": (False, MIN_INTERVAL_S, False, MAX_DURATION_S, "seconds"),
    "--connect-timeout": (False, 0.0, True, 3600.0, "seconds"),
    "--close-timeout": (False, 0.0, True, 3600.0, "seconds"),
    "--response-timeout": (False, 0.0, True, 3600.0, "seconds"),
    "--request-size": (True, 0, False, MAX_MESSAGE_BYTES, "bytes"),
    "--response-size": (True, 0, False, MAX_MESSAGE_BYTES, "bytes"),
    "--hold": (False, 0.0, False, MAX_DURATION_S, "seconds"),
    "--rate": (False, 0.0, True, MAX_RATE, "attempts per second"),
    "--concurrency": (True, 1, False, MAX_CONCURRENCY, "attempts in flight"),
    "--sink-ports": (True, 1, False, MAX_SINK_PORTS, "listening ports per sink address"),
    "--sink-addresses": (True, 1, False, MAX_SINK_ADDRESSES, "sink addresses"),
    "--workers": (True, 1, False, MAX_WORKERS, "processes"),
    "--clients": (True, 1, False, MAX_CLIENTS, "client addresses behind the NAT"),
    "--sink-workers": (True, 1, False, MAX_WORKERS, "sink processes"),
    "--repeat": (True, 1, False, 100, "runs per sweep cell"),
    "--parallel": (True, 1, False, 64, "sweep runs at once"),
}


def allowed(option: str) -> str:
    integer, low, exclusive, high, unit = _NUMBERS[option]
    kind = "a whole number" if integer else "a number"
    shown = f"{int(high)}" if integer else f"{high:g}"  # 16777216, not 1.67772e+07
    return f"{kind} {'>' if exclusive else '>='} {low:g} and <= {shown} ({unit})"


def _check(option: str, value: float) -> None:
    _integer, low, exclusive, high, _unit = _NUMBERS[option]
    above = value > low if exclusive else value >= low
    if not (above and value <= high):  # also refuses NaN
        raise UsageError(f"{option} {value:g} is out of range: allowed {allowed(option)}")


def parse_number(option: str, text: str) -> float:
    """A numeric option as typed -> its value, range-checked; UsageError names both."""
    integer = _NUMBERS[option][0]
    try:
        if not text.isascii():  # int()/float() take any script's digits
            raise ValueError(text)
        value = float(int(text, 10)) if integer else float(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not valid: allowed {allowed(option)}") from None
    _check(option, value)
    return value


def parse_optional(option: str, text: str | None) -> float | None:
    return None if text is None else parse_number(option, text)


def parse_socket_port_range(text: str | None) -> tuple[int, int] | None:
    """``--port-range LOW-HIGH`` (the per-socket IP_LOCAL_PORT_RANGE)."""
    if text is None:
        return None
    try:
        low, high = parse_port_range(text)
    except UsageError as e:
        raise UsageError(f"--port-range: {e}") from None
    if low < 1024:
        raise UsageError(
            f"--port-range {text}: low {low} is below 1024; allowed LOW-HIGH within 1024-65535"
        )
    return low, high
