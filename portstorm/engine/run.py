"""One run end to end: resolve targets or start the sink, drive, collect, save result.json.

Containing the order of operations and nothing a test would want to fake: the driver is
in driver.py, the sink process in sinkproc.py, the file format in core/result.py.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from portstorm import __version__
from portstorm.core.capacity import CapacityInput, model
from portstorm.core.errors import EnvironmentProblem, UsageError
from portstorm.core.ports import parse_port_range
from portstorm.core.result import Interval, RunResult, save_json_atomic
from portstorm.core.scenario import SandboxKind, Scenario, Target
from portstorm.core.tuning import reuse_notes
from portstorm.engine.driver import Driver, DriverReport, Endpoint
from portstorm.engine.sampler import Sampler
from portstorm.engine.sandbox import Sandbox
from portstorm.engine.sysinfo import ensure_nofile, host_info

FD_HEADROOM = 64  # stdio, the event loop's own fds, the sink pipe, /proc reads


@dataclass(frozen=True)
class RunOutput:
    result: RunResult
    path: Path


def default_out_dir(now: dt.datetime, name: str = "run") -> Path:
    return Path("reports") / f"{now.strftime('%Y%m%dT%H%M%SZ')}-{name}"


def resolve(target: Target) -> Endpoint:
    """getaddrinfo() once, before the run: the hot loop only ever sees socket addresses."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise EnvironmentProblem(
            f"target {target}: cannot resolve {target.host!r}: {e.strerror}"
        ) from None
    family, _, _, _, sockaddr = infos[0]
    return Endpoint(family, sockaddr, str(target))  # type: ignore[arg-type]


def prepare_out_dir(out: Path | None, started: dt.datetime) -> Path:
    out_dir = out if out is not None else default_out_dir(started)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out_dir}: cannot create the folder: {e.strerror}") from None
    if not out_dir.is_dir():
        raise UsageError(f"--out {out_dir}: not a folder")
    return out_dir


def capacity_input(
    scenario: Scenario, tunings: dict[str, str], endpoints: list[Endpoint]
) -> CapacityInput:
    """The model's view of this run: the client's sysctls as read back, and the load."""
    loopback = scenario.sandbox is SandboxKind.LOOPBACK or (
        scenario.sandbox is SandboxKind.HOST
        and all(ipaddress.ip_address(ep.sockaddr[0]).is_loopback for ep in endpoints)
    )
    return CapacityInput.from_tunings(
        tunings,
        sources=max(1, len(scenario.sources)),
        destinations=len({(ep.sockaddr[0], ep.sockaddr[1]) for ep in endpoints}),
        bind=scenario.bind,
        close=str(scenario.close),
        loopback=loopback,
        rate=scenario.rate,
    )


async def _drive(driver: Driver) -> DriverReport:
    """Run the driver; SIGINT/SIGTERM stop it early and the partial report is kept."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def stop_on_signal() -> None:
                async for _ in signals:
                    driver.stop()
                    return

            nursery.start_soon(stop_on_signal)
            report = await driver.run()
            nursery.cancel_scope.cancel()
    return report


def run(
    scenario: Scenario,
    out: Path | None,
    on_start: Callable[[list[Endpoint]], None] | None = None,
    on_interval: Callable[[Interval], None] | None = None,
) -> RunOutput:
    started = dt.datetime.now(dt.UTC)
    out_dir = prepare_out_dir(out, started)
    in_flight, exact = scenario.max_in_flight()
    ensure_nofile(in_flight + FD_HEADROOM, required=exact, option=f"--concurrency {in_flight}")
    sandbox = Sandbox(
        scenario.sandbox,
        scenario.close,
        client_set=dict(scenario.client_set),
        server_set=dict(scenario.server_set),
        builtin_sink=not scenario.targets,
        change_host=scenario.change_host,
    )
    with sandbox:
        endpoints = [resolve(t) for t in scenario.targets] or sandbox.endpoints
        port_range = parse_port_range(sandbox.tunings["net.ipv4.ip_local_port_range"])
        # created here, in the client namespace, where its netlink socket must live
        sampler = Sampler(
            [(ep.sockaddr[0], ep.sockaddr[1]) for ep in endpoints],
            port_range,
            server_pid=sandbox.sink.pid if sandbox.sink and sandbox.sink.own_netns else None,
        )
        if on_start is not None:
            on_start(endpoints)
        try:
            driver = Driver(scenario, endpoints, on_interval, sample=sampler.sample)
            report = trio.run(_drive, driver)
        finally:
            sampler.close()
    capacity = model(capacity_input(scenario, sandbox.tunings, endpoints))
    # the sink has stopped here, so its final counts are known
    notes = list(sandbox.notes)
    if report.interrupted:
        notes.append("interrupted: the run was stopped before its duration; results are partial")
    notes += reuse_notes(str(scenario.sandbox), sandbox.tunings)
    if report.sample_errors:
        notes.append(
            f"sampling failed {len(report.sample_errors)} time(s); those intervals have no "
            f"port-space readings (first: {report.sample_errors[0]})"
        )
    sc = scenario.to_json()
    sc["targets"] = [ep.label for ep in endpoints]
    sc["user_namespace"] = sandbox.userns
    if sandbox.sink is not None:
        sc["sink_stats"] = sandbox.sink.stats
    result = RunResult(
        tool_version=__version__,
        host=host_info(),
        started_at=started.isoformat(timespec="seconds").replace("+00:00", "Z"),
        duration_s=report.elapsed_s,
        complete=not report.interrupted,
        scenario=sc,
        tunings=sandbox.tunings,
        server_tunings=sandbox.server_tunings,
        intervals=tuple(report.intervals),
        histogram=report.histogram,
        first_failure_s=report.first_failure_s,
        first_failure_outcome=report.first_failure_outcome,
        capacity=capacity.to_json(),
        notes=tuple(notes),
    )
    path = out_dir / "result.json"
    save_json_atomic(path, result.to_json())
    return RunOutput(result, path)
