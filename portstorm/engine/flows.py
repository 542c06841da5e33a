"""Flows: the run's (source, destination) tuples as sockets need them, and counts kept per flow.

Containing what every load shape shares about tuples and nothing that opens a connection:
the resolved ``Endpoint``, the ``Flow`` the hot loop (driver.py) connects over, the socket
options a bind mode sets (and the probe that refuses a kernel without them), and
``FlowCounts``, the per-flow successes, failures, first failures and ports in use that a
driver keeps and a pool of worker processes (pool.py) adds up from the workers' messages.

How a socket gets its port is the bind mode (KERNEL.md, "Ports"):
- connect: plain connect(); with --source, the address is set by bind() with
  IP_BIND_ADDRESS_NO_PORT, the only way to choose a source address without bind() taking a
  port, so the port is still picked per 4-tuple by connect();
- bind: bind((source or any, 0)) then connect(): a port per source address;
- no-port: IP_BIND_ADDRESS_NO_PORT, bind((source or any, 0)), connect();
- range: IP_LOCAL_PORT_RANGE on each socket, then as connect.

An IPv6 source the pair sandbox routed to the client as a local /64 (sandbox.py) is not an
address of any interface, and IPv6 bind() takes only those unless the socket is free to
bind (ipv6_can_nonlocal_bind() in __inet6_bind()): such flows set IP_FREEBIND. The IPv4
option at SOL_IP sets the flag IPv6 reads too (inet_sk(sk)->freebind); the IP_* options
here act on AF_INET6 sockets the same way (do_ip_setsockopt() serves both families).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from portstorm.core.addressing import TupleSpec
from portstorm.core.errors import EnvironmentProblem
from portstorm.core.outcome import FAILURES
from portstorm.core.scenario import BindMode, Scenario
from portstorm.engine.sampler import Sample

if TYPE_CHECKING:
    from portstorm.engine.load import DriverReport

N_FAILURES = len(FAILURES)

# include/uapi/linux/in.h; Python's socket module does not name them on every version
IP_BIND_ADDRESS_NO_PORT = 24  # Linux 4.2: bind() defers the port choice to connect()
IP_LOCAL_PORT_RANGE = 51  # Linux 6.3: u32 (high << 16) | low, per socket
IP_FREEBIND = 15  # bind() to an address no interface has (a local route's, here)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A resolved destination: what connect() takes, and how to name it."""

    family: int
    sockaddr: tuple[str, int] | tuple[str, int, int, int]
    label: str


@dataclass(frozen=True, slots=True)
class Flow:
    """One tuple as the hot loop needs it: what to bind (if anything), where to connect."""

    family: int
    bind_addr: tuple[str, int] | None  # (source or wildcard, 0)
    sockaddr: tuple[str, int] | tuple[str, int, int, int]
    source: str  # the source address, or the kernel's choice by route
    destination: str
    # SOL_IP options set to 1 before bind(): IP_BIND_ADDRESS_NO_PORT (see socket_options),
    # IP_FREEBIND (a routed IPv6 source)
    bind_options: tuple[int, ...] = ()


def make_flows(
    specs: list[TupleSpec],
    endpoints: dict[tuple[str, int], Endpoint],
    mode: BindMode,
    route_source: Callable[[Endpoint], str],
    freebind_sources: bool = False,
) -> list[Flow]:
    """TupleSpecs (by address) -> Flows for ``mode``; see the module header for what each binds.

    ``freebind_sources``: IPv6 sources are routed, not assigned: bind them with IP_FREEBIND.
    """
    flows = []
    for spec in specs:
        ep = endpoints[(spec.dst_host, spec.dst_port)]
        wildcard = "::" if ep.family == socket.AF_INET6 else "0.0.0.0"
        bind_addr: tuple[str, int] | None = None
        if spec.source is not None:
            bind_addr = (spec.source, 0)
        elif mode in (BindMode.BIND, BindMode.NO_PORT):
            bind_addr = (wildcard, 0)
        source = spec.source if spec.source is not None else route_source(ep)
        options = []
        if mode is BindMode.NO_PORT or (mode is not BindMode.BIND and spec.source is not None):
            options.append(IP_BIND_ADDRESS_NO_PORT)  # as socket_options() decides
        if freebind_sources and spec.source is not None and ":" in spec.source:
            options.append(IP_FREEBIND)
        flows.append(Flow(ep.family, bind_addr, ep.sockaddr, source, ep.label, tuple(options)))
    return flows


def socket_options(scenario: Scenario) -> tuple[bool, bytes | None]:
    """(set IP_BIND_ADDRESS_NO_PORT?, IP_LOCAL_PORT_RANGE value or None) for every socket.

    The range is a u32 (high << 16 | low), passed as bytes: above 2**31 it is no C int.
    """
    mode = scenario.bind
    no_port = mode is BindMode.NO_PORT or (mode is not BindMode.BIND and bool(scenario.sources))
    port_range = None
    if mode is BindMode.RANGE:
        assert scenario.socket_port_range is not None
        low, high = scenario.socket_port_range
        port_range = struct.pack("=I", (high << 16) | low)
    return no_port, port_range


def check_socket_options(no_port: bool, port_range: bytes | None, kernel: str) -> None:
    """Refuse before the run when this kernel lacks an option the bind mode needs."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        for wanted, opt, value, what in (
            (no_port, IP_BIND_ADDRESS_NO_PORT, 1, "IP_BIND_ADDRESS_NO_PORT (Linux 4.2+)"),
            (port_range is not None, IP_LOCAL_PORT_RANGE, port_range or b"",
             "IP_LOCAL_PORT_RANGE (Linux 6.3+)"),
        ):  # fmt: skip
            if not wanted:
                continue
            try:
                probe.setsockopt(socket.SOL_IP, opt, value)
            except OSError as e:
                raise EnvironmentProblem(
                    f"this bind mode needs {what}, which kernel {kernel} refuses "
                    f"({e.strerror}): use --bind connect or bind"
                ) from None
    finally:
        probe.close()


class FlowCounts:
    """Per flow: successes, failures (flat, flow-major in FAILURES order, so the hot loop
    adds to one list), the first failure's time, and the ports in use (last and peak).

    A driver counts into ``ok`` and ``failed`` directly; a worker process sends what changed
    since its previous interval (``changes_since``) and the pool adds those up
    (``add_changes``), so a worker that dies leaves its counts up to its last interval.
    """

    __slots__ = ("failed", "first", "ok", "ports_last", "ports_peak")

    def __init__(self, n_flows: int) -> None:
        self.ok = [0] * n_flows
        self.failed = [0] * (n_flows * N_FAILURES)  # [flow * N_FAILURES + outcome index]
        self.first: list[float | None] = [None] * n_flows
        self.ports_last: list[int | None] = [None] * n_flows
        self.ports_peak: list[int | None] = [None] * n_flows

    def snapshot(self) -> FlowCounts:
        """A copy of the counts (not the ports), to diff a later state against."""
        copy = FlowCounts(0)
        copy.ok, copy.failed, copy.first = list(self.ok), list(self.failed), list(self.first)
        return copy

    def changes_since(self, prev: FlowCounts) -> dict[str, dict[int, int] | dict[int, float]]:
        """What changed since ``prev`` (sparse): one worker interval message's flow fields."""
        return {
            "flow_ok": {i: n - prev.ok[i] for i, n in enumerate(self.ok) if n != prev.ok[i]},
            "flow_failed": {
                i: n - prev.failed[i] for i, n in enumerate(self.failed) if n != prev.failed[i]
            },
            "flow_first": {
                i: t for i, t in enumerate(self.first) if t is not None and t != prev.first[i]
            },
        }

    def add_changes(self, msg: Mapping[str, Mapping[str, float]]) -> None:
        """Add one worker message's ``changes_since`` fields (JSON: keys are strings)."""
        for i, n in msg["flow_ok"].items():
            self.ok[int(i)] += int(n)
        for i, n in msg["flow_failed"].items():
            self.failed[int(i)] += int(n)
        for i, t in msg["flow_first"].items():
            first = self.first[int(i)]
            if first is None or t < first:
                self.first[int(i)] = float(t)

    def update_ports(self, sample: Sample | None) -> None:
        """Take the ports in use per flow from an interval's sample (none: unchanged)."""
        if sample is None or sample.ports_by_flow is None:
            return
        last, peak = self.ports_last, self.ports_peak
        for i, n in enumerate(sample.ports_by_flow):
            last[i] = n
            p = peak[i]
            peak[i] = n if p is None or n > p else p

    def failures_by_flow(self) -> list[dict[str, int]]:
        """One {outcome: n} per flow, outcomes that never happened left out."""
        flat = self.failed
        return [
            {str(o): n for j, o in enumerate(FAILURES) if (n := flat[i * N_FAILURES + j])}
            for i in range(len(self.ok))
        ]

    def fill(self, report: DriverReport) -> None:
        """Write the per-flow fields of ``report``, in the order of the run's flows."""
        report.flow_succeeded = list(self.ok)
        report.flow_failed = self.failures_by_flow()
        report.flow_first_failure_s = list(self.first)
        report.flow_ports_last = list(self.ports_last)
        report.flow_ports_peak = list(self.ports_peak)
