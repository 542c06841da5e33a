"""``portstorm run``'s options, declared once: the Typer declaration, the value, the Scenario.

Containing the run options (``RunOptions``: one field per option, each with its Typer
``Annotated`` declaration and a typed parser from parsers.py), the one way option values become a
``Scenario`` (``RunOptions.to_scenario``), and the way back to a command line
(optionsargv.py's ``to_argv``), which a sweep records in sweep.json and hands to each cell's
``portstorm run`` child. ``run`` takes its parameters from this declaration
(``with_run_options``); ``sweep`` parses the run options it passes on with the same
declaration (optionsargv.py: argv <-> RunOptions). No command lives here, and nothing here
exits.

Adding a run option is this file only (and the Scenario field it sets): a field in
``RunOptions``, a line in ``to_scenario`` and an entry in ``WIRING_EXAMPLES``.
tests/cli/test_cli_options.py fails for a field that no Scenario reflects.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer
import typer.core

from portstorm.cli import exchange_options as ex
from portstorm.cli import fleet_options as fo
from portstorm.cli import gate_options as go
from portstorm.cli import sandbox_options as so
from portstorm.cli.parsers import number, whole
from portstorm.core.addressing import parse_sources
from portstorm.core.scenario import (
    BindMode,
    CloseMode,
    SandboxKind,
    Scenario,
    parse_socket_port_range,
    parse_target,
)
from portstorm.core.thresholds import parse_thresholds
from portstorm.core.tuning import parse_settings

# -- the run options ------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    """``portstorm run``'s options as parsed, before the defaults that depend on each other
    (workers on the rate, the sandbox on the targets) are filled in by ``to_scenario``."""

    targets: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[HOST:PORT]...",
            help="Where to connect (through this host's own stack). None: the built-in sink, "
            "in the sandbox (pair by default).",
            show_default=False,
        ),
    ] = None
    duration: Annotated[
        float,
        typer.Option(metavar="SECONDS", parser=number("--duration"), help="Seconds of load."),
    ] = 10  # shown as typed: [default: 10]
    rate: Annotated[
        float | None,
        typer.Option(
            metavar="CONN_PER_S",
            parser=number("--rate"),
            help="Open loop: attempts started per second on a fixed schedule. "
            "Omitted: closed loop, as fast as possible.",
        ),
    ] = None
    concurrency: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            parser=whole("--concurrency"),
            help="Closed loop: attempts in flight (default 32). "
            "With --rate: a cap on attempts in flight (default none).",
        ),
    ] = None
    workers: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            parser=whole("--workers"),
            help="Driver processes; the rate or concurrency is split among them and their "
            "counts and histograms merged. Default: one per CPU core (with --rate, at most "
            "one per 10,000 attempts/s).",
        ),
    ] = None
    sink_workers: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            parser=whole("--sink-workers"),
            help="Built-in sink processes (SO_REUSEPORT listeners). "
            "Default: one per two driver processes.",
        ),
    ] = None
    close: Annotated[
        CloseMode,
        typer.Option(
            help="Who ends each connection: client (TIME_WAIT on the client), "
            "server (TIME_WAIT on the server), rst (abort, no TIME_WAIT)."
        ),
    ] = CloseMode.CLIENT
    bind: Annotated[
        BindMode,
        typer.Option(
            help="How each socket gets its port: connect (plain connect(), a port per "
            "4-tuple), bind (bind((ip, 0)) first: a port per source address whatever the "
            "destination), no-port (IP_BIND_ADDRESS_NO_PORT, bind, connect), range "
            "(IP_LOCAL_PORT_RANGE per socket, see --port-range)."
        ),
    ] = BindMode.CONNECT
    port_range: Annotated[
        str | None,
        typer.Option(
            metavar="LOW-HIGH",
            help="With --bind range: the per-socket port range (IP_LOCAL_PORT_RANGE).",
        ),
    ] = None
    source: Annotated[
        list[str] | None,
        typer.Option(
            metavar="IP|CIDR",
            help="Source address(es) to spread connections over, round-robin. Repeatable. "
            "pair sandbox: from 198.18.0.0/15, added by portstorm (e.g. 198.18.1.0/24); "
            "loopback: 127.0.0.0/8; host: addresses this host already has.",
        ),
    ] = None
    sink_ports: Annotated[
        int,
        typer.Option(
            metavar="N",
            parser=whole("--sink-ports"),
            help="The built-in sink listens on N ports (destinations x N).",
        ),
    ] = 1
    sink_addresses: Annotated[
        int,
        typer.Option(
            metavar="N",
            parser=whole("--sink-addresses"),
            help="The built-in sink listens on N addresses (pair: 198.18.0.2 and up; "
            "loopback and host: 127.0.0.1 and up).",
        ),
    ] = 1
    sandbox: so.Sandbox = None  # where the run happens: declared in sandbox_options.py
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="NAME=VALUE",
            help="A sysctl for the client side, e.g. tcp_tw_reuse=1 or "
            "ip_local_port_range=40000-40099. Repeatable.",
        ),
    ] = None
    server_set: so.ServerSet = None
    ipv6: Annotated[
        bool,
        typer.Option(
            "--ipv6",
            help="Over IPv6: the pair sandbox's veth numbered from 2001:2::/48 (RFC 5180), "
            "loopback on ::1; --source and targets must then be IPv6 (e.g. --source "
            "2001:2:0:1::/64, a /64 meaning its first 4096 addresses; [2001:2::5]:80).",
        ),
    ] = False
    change_host_sysctls: Annotated[
        bool,
        typer.Option(
            "--change-host-sysctls",
            help="With --sandbox host: let --set change this host's live sysctls. "
            "A restore journal is written first; values are restored at the end, "
            "on Ctrl-C and SIGTERM, and by 'portstorm restore' after a SIGKILL.",
        ),
    ] = False
    interval: Annotated[
        float,
        typer.Option(
            metavar="SECONDS", parser=number("--interval"), help="Seconds per interval record."
        ),
    ] = 1
    connect_timeout: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",
            parser=number("--connect-timeout"),
            help="Seconds before an attempt counts as a timeout.",
        ),
    ] = 3
    close_timeout: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS",
            parser=number("--close-timeout"),
            help="With --close server: seconds a connection made waits for the server to "
            "close before it counts as close_timeout (not a connect failure). "
            "Default: the connect timeout.",
            show_default=False,
        ),
    ] = None
    request_size: ex.RequestSize = 0  # after connect(): declared in exchange_options.py
    response_size: ex.ResponseSize = 0
    response_timeout: ex.ResponseTimeout = None
    http: ex.HttpPath = None
    http_host: ex.HttpHost = None
    hold: ex.Hold = 0
    nat_ports: so.NatPorts = None  # --sandbox nat's router (core/nat.py)
    nat_flags: so.NatFlags = None
    clients: so.Clients = None
    router_set: so.RouterSet = None
    fail_if: go.FailIf = None  # thresholds judged on the saved run: gate_options.py
    stop_on_fail: go.StopOnFail = False
    start_at: fo.StartAt = None  # --start-at TIME: fleet_options.py

    def to_scenario(self) -> Scenario:
        """Every check of ``portstorm run``'s input that needs more than one option; one
        UsageError on the first bad value."""
        from portstorm.engine.kernel import tuning_context
        from portstorm.engine.sysinfo import default_sink_workers, default_workers

        targets = tuple(parse_target(t) for t in self.targets or ())
        n_workers = self.workers or default_workers(self.rate)
        kind = self.sandbox or (SandboxKind.HOST if targets else SandboxKind.PAIR)
        ctx = tuning_context(in_new_namespace=kind is not SandboxKind.HOST)
        client_set = parse_settings(self.set_ or (), ctx, "--set")
        return Scenario(
            targets=targets,
            sandbox=kind,
            client_set=tuple(client_set.items()),
            server_set=tuple(parse_settings(self.server_set or (), ctx, "--server-set").items()),
            change_host=self.change_host_sysctls,
            duration_s=float(self.duration),
            rate=self.rate,
            concurrency=self.concurrency,
            workers=n_workers,
            sink_workers=self.sink_workers or (1 if targets else default_sink_workers(n_workers)),
            close=self.close,
            bind=self.bind,
            socket_port_range=parse_socket_port_range(self.port_range),
            sources=parse_sources(self.source or ()),
            sink_ports=self.sink_ports,
            sink_addresses=self.sink_addresses,
            ipv6=self.ipv6,
            interval_s=float(self.interval),
            connect_timeout_s=float(self.connect_timeout),
            close_timeout_s=None if self.close_timeout is None else float(self.close_timeout),
            request_size=self.request_size,
            response_size=self.response_size,
            response_timeout_s=(
                None if self.response_timeout is None else float(self.response_timeout)
            ),
            http_path=self.http,
            http_host=self.http_host,
            hold_s=float(self.hold),
            nat=so.nat_spec(self.nat_ports, self.nat_flags, self.clients, self.router_set),
            thresholds=parse_thresholds(self.fail_if or ()),
            stop_on_fail=self.stop_on_fail,
            start_at_s=fo.start_at_s(self.start_at),
        )


# For each run option, a command line that gives it a value other than its default (with
# any option it needs): tests/cli/test_cli_options.py checks that the Scenario differs from
# the same options with that one at its default, so an option nothing reads fails there.
WIRING_EXAMPLES: dict[str, tuple[str, ...]] = {
    "targets": ("127.0.0.1:8080",),
    "duration": ("--duration", "2.5"),
    "rate": ("--rate", "500"),
    "concurrency": ("--concurrency", "7"),
    "workers": ("--workers", "3"),
    "sink_workers": ("--sink-workers", "5"),
    "close": ("--close", "rst"),
    "bind": ("--bind", "no-port"),
    "port_range": ("--bind", "range", "--port-range", "40000-40099"),
    "source": ("--source", "198.18.1.7"),
    "sink_ports": ("--sink-ports", "2"),
    "sink_addresses": ("--sink-addresses", "2"),
    "sandbox": ("--sandbox", "loopback"),
    "set_": ("--set", "tcp_tw_reuse=1"),
    "server_set": ("--server-set", "tcp_tw_reuse=1"),
    "change_host_sysctls": ("--change-host-sysctls",),
    "ipv6": ("--ipv6",),
    "interval": ("--interval", "0.5"),
    "connect_timeout": ("--connect-timeout", "1.5"),
    "close_timeout": ("--close-timeout", "0.5"),
    "request_size": ("--request-size", "100"),
    "response_size": ("--response-size", "100"),
    "response_timeout": ("--request-size", "1", "--response-timeout", "0.5"),
    "http": ("--http", "/index.html"),
    "http_host": ("--http", "/", "--http-host", "example.org"),
    "hold": ("--hold", "2"),
    "nat_ports": ("--sandbox", "nat", "--nat-ports", "40000-40099"),
    "nat_flags": ("--sandbox", "nat", "--nat-flags", "fully-random"),
    "clients": ("--sandbox", "nat", "--clients", "10"),
    "router_set": ("--sandbox", "nat", "--router-set", "nf_conntrack_tcp_timeout_time_wait=30"),
    "fail_if": ("--fail-if", "p99 > 5ms"),
    "stop_on_fail": ("--fail-if", "port_exhausted > 0", "--stop-on-fail"),
    "start_at": ("--start-at", "2100-01-01T00:00:00Z"),
}

_FIELDS = tuple(f.name for f in dataclasses.fields(RunOptions))


def _run_parameters() -> list[inspect.Parameter]:
    hints = typing.get_type_hints(RunOptions, include_extras=True)
    return [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                          annotation=hints[f.name])
        for f in dataclasses.fields(RunOptions)
    ]  # fmt: skip


def with_run_options(command: Callable[..., int]) -> Callable[..., int]:
    """``command(options: RunOptions, *, own options...)`` -> the function Typer reads: its
    parameters are the run options, then the command's own (so ``--help`` lists them in
    that order), and it calls ``command`` with the run options gathered into one value."""
    own = inspect.signature(command, eval_str=True)
    rest = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for name, p in own.parameters.items()
        if name != "options"
    ]

    @functools.wraps(command)
    def command_with_run_options(**values: Any) -> int:
        options = RunOptions(**{name: values.pop(name) for name in _FIELDS})
        return command(options, **values)

    signature = own.replace(parameters=[*_run_parameters(), *rest])
    command_with_run_options.__signature__ = signature  # type: ignore[attr-defined]
    command_with_run_options.__annotations__ = {
        p.name: p.annotation for p in signature.parameters.values()
    }
    return command_with_run_options
