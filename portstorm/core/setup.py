"""What a run was set up to do, as it saved it: ``RunSetup``, the ``scenario`` of result.json.

Containing the frozen value, its validation and its JSON form; no files. ``Scenario`` (core/
scenario.py) is what the user asked for; a RunSetup is that, once the run has resolved it:
the targets as reached (``IP:PORT``), the driver processes it used, whether it ran in a user
namespace. engine/run.py builds it once, before the load (the interval log's header carries
it too), and readers get it back typed from any file, old or new.

Every key may be absent from a file, and all but the two lists may be null: a run leaves out
what does not apply, and the first files had fewer keys. Values are kept as saved (a mode a
later portstorm added is text here, not refused); keys this version does not read are kept
in ``extra`` and written back. ``sink_stats`` sits in the same object in result.json but is
a measurement, not setup: RunResult holds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from portstorm.core import fields
from portstorm.core.exchange import transacts
from portstorm.core.nat import NAT_RULES
from portstorm.core.scenario import Scenario

# the JSON keys, in the order result.json has them; "set" is the field ``client_set``
_TEXTS = ("sink", "sandbox", "mode", "close", "bind", "port_range", "http_path", "http_host",
          "nat_ports", "nat_rule", "start_at", "load_started_at", "clock_source")  # fmt: skip
_LISTS = ("targets", "sources", "nat_flags")
_MAPS = ("set", "server_set", "router_set")
_INTS = ("concurrency", "workers", "sink_workers", "sink_ports", "sink_addresses",
         "request_size", "response_size", "clients")  # fmt: skip
_NUMBERS = ("duration_s", "rate", "interval_s", "connect_timeout_s", "close_timeout_s",
            "response_timeout_s", "hold_s")  # fmt: skip
_FLAGS = ("loopback", "change_host_sysctls", "user_namespace", "ipv6", "stop_on_fail")
_ORDER = (
    "targets", "sink", "sandbox", "loopback", "set", "server_set", "change_host_sysctls",
    "duration_s", "rate", "concurrency", "mode", "workers", "sink_workers", "close", "bind",
    "port_range", "sources", "sink_ports", "sink_addresses", "interval_s", "connect_timeout_s",
    "close_timeout_s", "user_namespace", "ipv6", "request_size", "response_size",
    "response_timeout_s", "http_path", "http_host", "hold_s", "nat_ports", "nat_rule",
    "nat_flags", "clients", "router_set", "start_at", "load_started_at", "clock_offset_s",
    "clock_source", "stop_on_fail",
)  # fmt: skip
MEASURED = "sink_stats"  # in the scenario object, read by RunResult


def _attr(key: str) -> str:
    return "client_set" if key == "set" else key


@dataclass(frozen=True, slots=True)
class RunSetup:
    """One run's setup as saved. None: not recorded, or does not apply to this run."""

    targets: tuple[str, ...] = ()  # as reached: ``IP:PORT`` (the sink's, without targets)
    sink: str | None = None  # "builtin" when the run churned against the built-in sink
    sandbox: str | None = None  # pair | loopback | host
    # the client reached its targets over loopback (127.0.0.0/8, ::1): tcp_tw_reuse=2
    # applies by address (tcp_twsk_unique()), whatever the sandbox; None is derived from
    # the sandbox (files from before it was saved)
    loopback: bool | None = None
    client_set: Mapping[str, str] | None = None  # --set, full sysctl names
    server_set: Mapping[str, str] | None = None  # --server-set (pair)
    change_host_sysctls: bool | None = None
    duration_s: float | None = None  # planned; RunResult.duration_s is what it took
    rate: float | None = None  # open loop: attempts per second planned
    concurrency: int | None = None  # attempts in flight (a cap, in an open loop)
    mode: str | None = None  # open | closed
    workers: int | None = None  # driver processes used
    sink_workers: int | None = None
    close: str | None = None  # client | server | rst
    bind: str | None = None  # connect | bind | no-port | range
    port_range: str | None = None  # --port-range LOW-HIGH, with --bind range
    sources: tuple[str, ...] = ()
    sink_ports: int | None = None
    sink_addresses: int | None = None
    interval_s: float | None = None
    connect_timeout_s: float | None = None
    close_timeout_s: float | None = None  # --close server: the wait for the server's FIN
    user_namespace: bool | None = None  # the sandbox ran in a user namespace (no root)
    # after connect() (core/exchange.py); files from before these existed load with None,
    # which means 0 bytes, no HTTP and no hold: what every run did then
    request_size: int | None = None
    response_size: int | None = None
    response_timeout_s: float | None = None  # as applied: the connect timeout by default
    http_path: str | None = None
    http_host: str | None = None  # --http-host as given (None: the target as typed)
    hold_s: float | None = None
    # --ipv6: the sandbox was numbered from 2001:2::/48 or ::1 (files from before: False)
    ipv6: bool = False  # null in a file reads as False
    # --sandbox nat (core/nat.py): the router's SNAT pool as LOW-HIGH (masquerade's range
    # without --nat-ports), its flags, the client addresses behind it, --router-set as
    # given (full names, nf_conntrack_max included); None (and empty) in other runs
    nat_ports: str | None = None
    # which rule made that pool: masquerade or snat (core/nat.py NAT_RULES); both give
    # 1024-65535 without a range, so only this says which. None: files from before it
    nat_rule: str | None = None
    nat_flags: tuple[str, ...] = ()
    clients: int | None = None
    router_set: Mapping[str, str] | None = None
    # --start-at (core/startat.py): the instant asked for and the one the load began at on
    # this host's wall clock (ISO 8601 UTC), and that clock's offset from NTP as chrony or
    # timesyncd said (engine/clock.py; null with clock_source saying why); None without
    start_at: str | None = None
    load_started_at: str | None = None
    clock_offset_s: float | None = None
    clock_source: str | None = None
    # --stop-on-fail (core/gatestop.py): the load was to end at a certain threshold failure;
    # None in files from before it was saved (the run's note still says when it did)
    stop_on_fail: bool | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys not read here, kept

    def __post_init__(self) -> None:
        # named as in result.json, under "scenario": what a damaged file is told
        with fields.within("scenario"):
            for k in _TEXTS:
                fields.text(getattr(self, k), k, null=True)
            for k in _LISTS:
                fields.text_list(getattr(self, k), k)
            for k in _MAPS:
                fields.texts(getattr(self, _attr(k)), k, null=True)
            for k in _INTS:
                fields.integer(getattr(self, k), k, null=True)
            for k in _NUMBERS:
                fields.number(getattr(self, k), k, null=True, high=fields.MAX_COUNT)
            for k in _FLAGS:
                fields.flag(getattr(self, k), k, null=True)
            fields.mapping(self.extra, "")
            fields.number(self.clock_offset_s, "clock_offset_s", -fields.MAX_SECONDS, null=True)
            if self.nat_rule is not None and self.nat_rule not in NAT_RULES:
                raise fields.FieldError("nat_rule", f"{fields.shown(self.nat_rule)}; allowed: "
                                        f"{', '.join(NAT_RULES)} or null")  # fmt: skip
        if self.ipv6 is None:
            object.__setattr__(self, "ipv6", False)
        if self.loopback is None and self.sandbox is not None:
            object.__setattr__(self, "loopback", self.sandbox == "loopback")

    @classmethod
    def of(
        cls,
        sc: Scenario,
        *,
        targets: Sequence[str],
        workers: int,
        user_namespace: bool,
        loopback: bool | None = None,
    ) -> RunSetup:
        """The setup of a run of ``sc``: its targets as reached, its driver processes, and
        whether they were reached over loopback (None: as the sandbox says)."""
        builtin = not sc.targets
        return cls(
            targets=tuple(targets),
            sink="builtin" if builtin else None,
            sandbox=str(sc.sandbox),
            loopback=loopback,
            client_set=dict(sc.client_set),
            server_set=dict(sc.server_set),
            change_host_sysctls=sc.change_host,
            duration_s=sc.duration_s,
            rate=sc.rate,
            concurrency=sc.in_flight_cap,
            mode="open" if sc.open_loop else "closed",
            workers=workers,
            sink_workers=sc.sink_workers if builtin else None,
            close=str(sc.close),
            bind=str(sc.bind),
            port_range=(
                f"{sc.socket_port_range[0]}-{sc.socket_port_range[1]}"
                if sc.socket_port_range
                else None
            ),
            sources=tuple(sc.sources),
            sink_ports=sc.sink_ports if builtin else None,
            sink_addresses=sc.sink_addresses if builtin else None,
            interval_s=sc.interval_s,
            connect_timeout_s=sc.connect_timeout_s,
            close_timeout_s=sc.close_limit_s if sc.close == "server" else None,
            user_namespace=user_namespace,
            request_size=sc.request_size,
            response_size=sc.response_size,
            response_timeout_s=sc.response_limit_s if transacts(sc) else None,
            http_path=sc.http_path,
            http_host=sc.http_host,
            hold_s=sc.hold_s,
            ipv6=sc.ipv6,
            nat_ports=sc.nat.pool_text if sc.nat else None,
            nat_rule=sc.nat.rule if sc.nat else None,
            nat_flags=sc.nat.flags if sc.nat else (),
            clients=sc.nat.clients if sc.nat else None,
            router_set=sc.nat.given_router_set if sc.nat else None,
            stop_on_fail=sc.stop_on_fail,
        )

    # -- what readers ask --------------------------------------------------------------

    @property
    def open_loop(self) -> bool:
        return self.rate is not None

    @property
    def transacts(self) -> bool:
        """A request or response after connect(): the run measured transaction_us."""
        return bool(self.request_size or self.response_size or self.http_path)

    @property
    def nat(self) -> bool:
        """--sandbox nat: a router namespace source-NATed the clients."""
        return self.sandbox == "nat"

    @property
    def pair(self) -> bool:
        """The pair (or nat) sandbox: the sink's counters were read in its own namespace."""
        return self.sandbox in ("pair", "nat")

    @property
    def binds_per_source(self) -> bool:
        """--bind bind: a port per source address, whatever the destination."""
        return self.bind == "bind"

    @property
    def sysctls_given(self) -> frozenset[str]:
        """The sysctls this run set (--set and --server-set), full names."""
        return frozenset((*(self.client_set or {}), *(self.server_set or {})))

    @property
    def targets_text(self) -> str:
        """``198.18.0.2:9000, 198.18.0.3:9000``; empty when none was recorded."""
        return ", ".join(self.targets)

    # -- JSON ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for k in _ORDER:
            v = getattr(self, _attr(k))
            doc[k] = list(v) if k in _LISTS else dict(v) if isinstance(v, Mapping) else v
        doc.update(self.extra)
        return doc

    @classmethod
    def from_json(cls, d: object) -> RunSetup:
        """A FieldError names the field (``scenario.rate``); ``sink_stats`` is left out."""
        m = fields.mapping(d, "scenario")
        known = {_attr(k): fields.copied(m[k]) for k in _ORDER if k in m}
        extra = {k: v for k, v in m.items() if k not in _ORDER and k != MEASURED}
        return cls(**known, extra=extra)
