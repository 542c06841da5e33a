"""One run end to end: resolve targets or start the sink, drive, collect, save result.json.

Containing the order of operations and nothing a test would want to fake: the driver is
in driver.py (several in worker processes: pool.py), the sink's process in sink_handle.py,
the file format in core/result.py.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import trio

from portstorm import __version__
from portstorm.core.addressing import is_loopback, plan_tuples
from portstorm.core.capacity import CapacityInput, effective_range, model
from portstorm.core.errors import EnvironmentProblem, UsageError
from portstorm.core.exchange import transacts
from portstorm.core.files import Folder
from portstorm.core.intervallog import NAME as INTERVAL_LOG
from portstorm.core.intervallog import IntervalLog
from portstorm.core.natmodel import nat_capacity
from portstorm.core.outdir import default_out_dir
from portstorm.core.ports import parse_port_range
from portstorm.core.records import file_header
from portstorm.core.result import Interval, RunResult, TupleStats, result_text, utc_iso
from portstorm.core.scenario import BindMode, SandboxKind, Scenario, Target
from portstorm.core.setup import RunSetup
from portstorm.core.startat import check_ahead
from portstorm.core.thresholds import evaluate
from portstorm.core.tuning import reuse_notes
from portstorm.engine.driver import Driver
from portstorm.engine.fleetstart import drive_from, load_start_ns, with_start
from portstorm.engine.flows import Endpoint, Flow, check_socket_options, make_flows, socket_options
from portstorm.engine.load import DriverReport, Load
from portstorm.engine.pool import DriverPool, effective_workers
from portstorm.engine.sampler import Sampler
from portstorm.engine.sandbox import Sandbox
from portstorm.engine.sink_answer import SinkAnswer
from portstorm.engine.stoponfail import GateStop
from portstorm.engine.sysinfo import ensure_nofile, host_info

FD_HEADROOM = 64  # stdio, the event loop's own fds, the sink pipe, /proc reads


@dataclass(frozen=True)
class RunOutput:
    result: RunResult
    path: Path
    # what went wrong during the load (a driver worker that died): the result is partial
    problems: tuple[str, ...] = ()
    stopped: str | None = None  # --stop-on-fail ended the load: why (engine/stoponfail.py)


def resolve(target: Target, ipv6: bool = False) -> Endpoint:
    """getaddrinfo() once, before the run: the hot loop only ever sees socket addresses.
    With ``ipv6`` a host name resolves to its IPv6 address only (AAAA)."""
    family = socket.AF_INET6 if ipv6 else socket.AF_UNSPEC
    try:
        infos = socket.getaddrinfo(target.host, target.port, family, socket.SOCK_STREAM)
    except socket.gaierror as e:
        also = " (--ipv6: an IPv6 address)" if ipv6 else ""
        raise EnvironmentProblem(
            f"target {target}: cannot resolve {target.host!r}{also}: {e.strerror}"
        ) from None
    family, _, _, _, sockaddr = infos[0]
    return Endpoint(family, sockaddr, str(target))  # type: ignore[arg-type]


def route_source(ep: Endpoint) -> str:
    """The source address the kernel would pick toward ``ep``: a UDP connect() only looks
    the route up (ip_route_connect()); nothing is sent."""
    try:
        with socket.socket(ep.family, socket.SOCK_DGRAM) as probe:
            probe.connect(ep.sockaddr)
            return str(probe.getsockname()[0])
    except OSError:
        return "*"


def prepare_out_dir(
    out: Path | None, started: dt.datetime, force: bool = False, also_writes: Sequence[str] = ()
) -> Folder:
    """The run's folder, open (core/files.py: never a link, the caller's own, writable).
    One that already holds a result is refused unless ``force``: a new run must not
    silently replace what an earlier one measured. The default folder is named by the
    second, so a second run within it gets a suffix (-2, -3, ...)."""
    if out is None:
        base = default_out_dir("run", started)
        n = 1
        while True:
            folder = Folder.open(base if n == 1 else base.with_name(f"{base.name}-{n}"))
            if not _holds_result(folder):
                break
            folder.close()
            n += 1
    else:
        folder = Folder.open(out)
        held = _holds_result(folder)
        if held and not force:
            folder.close()
            raise UsageError(
                f"--out {out}: already holds a result ({held}); choose another folder, or "
                "add --force to replace it"
            )
    try:
        folder.refuse_links(["result.json", INTERVAL_LOG, *also_writes])
        folder.check_writable()
    except BaseException:
        folder.remove_if_empty()
        folder.close()
        raise
    return folder


def _holds_result(folder: Folder) -> str | None:
    """The measurement file in ``folder``: result.json, or the interval log a killed run left
    (a link by either name counts: it is replaced, never followed, with --force)."""
    for name in ("result.json", INTERVAL_LOG):
        if folder.exists(name):
            return name
    return None


def capacity_input(
    scenario: Scenario, tunings: dict[str, str], endpoints: list[Endpoint]
) -> CapacityInput:
    """The model's view of this run: the client's sysctls as read back, and the load."""
    loopback = scenario.sandbox is SandboxKind.LOOPBACK or (
        scenario.sandbox is SandboxKind.HOST
        and all(is_loopback(ep.sockaddr[0]) for ep in endpoints)
    )
    return CapacityInput.from_tunings(
        tunings,
        sources=max(1, len(scenario.flow_sources)),  # --sandbox nat: its clients
        destinations=len({(ep.sockaddr[0], ep.sockaddr[1]) for ep in endpoints}),
        bind=str(scenario.bind),
        socket_range=scenario.socket_port_range,
        close=str(scenario.close),
        loopback=loopback,
        rate=scenario.rate,
        hold_s=scenario.hold_s,  # held ports: --hold before TIME_WAIT (core/capacity.py)
    )


def run(
    scenario: Scenario,
    out: Path | None,
    on_start: Callable[[list[Endpoint]], None] | None = None,
    on_interval: Callable[[Interval], None] | None = None,
    force: bool = False,
    also_writes: Sequence[str] = (),
) -> RunOutput:
    """One run; ``also_writes``: the names the caller will write beside result.json (the
    report), checked with it before anything runs."""
    started = dt.datetime.now(dt.UTC)
    if scenario.start_at_s is not None:  # --start-at already past: refused before preparing
        check_ahead(scenario.start_at_s, started.timestamp())
    folder = prepare_out_dir(out, started, force, also_writes)
    try:
        return _run(scenario, folder, started, on_start, on_interval)
    except BaseException:
        folder.remove_if_empty()  # an unresolvable target or an early Ctrl-C leaves nothing
        raise
    finally:
        folder.close()


def _run(
    scenario: Scenario,
    folder: Folder,
    started: dt.datetime,
    on_start: Callable[[list[Endpoint]], None] | None,
    on_interval: Callable[[Interval], None] | None,
) -> RunOutput:
    in_flight, exact = scenario.max_in_flight()
    if held := scenario.held_at_least():  # --hold: rate x hold sockets open at once
        option = f"--rate {scenario.rate:.15g} --hold {scenario.hold_s:.15g} ({held:,} held)"
        ensure_nofile(held + FD_HEADROOM, required=True, option=option)
    ensure_nofile(in_flight + FD_HEADROOM, required=exact, option=f"--concurrency {in_flight}")
    check_socket_options(*socket_options(scenario), kernel=host_info().kernel)
    sandbox = Sandbox(
        scenario.sandbox,
        scenario.close,
        client_set=dict(scenario.client_set),
        server_set=dict(scenario.server_set),
        builtin_sink=not scenario.targets,
        change_host=scenario.change_host,
        sources=scenario.sources,
        sink_ports=scenario.sink_ports,
        sink_workers=scenario.sink_workers,
        sink_addresses=scenario.sink_addresses,
        ipv6=scenario.ipv6,
        sink_answer=sink_answer(scenario),
        nat=scenario.nat,
    )
    with sandbox:
        endpoints = [resolve(t, scenario.ipv6) for t in scenario.targets] or sandbox.endpoints
        by_addr = {(ep.sockaddr[0], ep.sockaddr[1]): ep for ep in endpoints}
        specs = plan_tuples(scenario.flow_sources, list(by_addr))
        flows = make_flows(specs, by_addr, scenario.bind, route_source, sandbox.freebind_sources)
        port_range = parse_port_range(sandbox.tunings["net.ipv4.ip_local_port_range"])
        # created here, in the client namespace, where its netlink socket must live
        sampler = Sampler(
            specs,
            port_range,
            server_pid=sandbox.sink.pid if sandbox.sink and sandbox.sink.own_netns else None,
            router_netns=sandbox.router_netns,
            nat_addresses=sandbox.nat_addresses,
        )
        cap_in = capacity_input(scenario, sandbox.tunings, endpoints)
        capacity = model(cap_in)
        if scenario.nat is not None:  # the NAT pool: a second ceiling (core/natmodel.py)
            nat = nat_capacity(scenario.nat, nat_addresses=len(sandbox.nat_addresses),
                               destinations=cap_in.destinations, hold_s=scenario.hold_s,
                               close=str(scenario.close), rate=scenario.rate)  # fmt: skip
            capacity = replace(capacity, nat=nat)
        workers = effective_workers(scenario, scenario.workers)
        setup = RunSetup.of(
            scenario,
            targets=[ep.label for ep in endpoints],
            workers=workers,
            user_namespace=sandbox.userns,
            loopback=cap_in.loopback,  # by address, as tcp_twsk_unique() tells loopback
        )
        log = IntervalLog(
            folder.path / INTERVAL_LOG,
            {
                **file_header(__version__, host_info(), utc_iso(started)),
                "scenario": setup.to_json(),
                "tunings": sandbox.tunings,
                "server_tunings": sandbox.server_tunings,
                "router_tunings": sandbox.router_tunings,
                "capacity": capacity.to_json(),
            },
            folder,
        )
        logged_failure = False
        report_error: list[str] = []  # why the run stopped its own load (a full disk)
        gate = GateStop(scenario.thresholds) if scenario.stop_on_fail else None

        def logged(interval: Interval) -> None:
            nonlocal logged_failure
            log.interval(interval)
            if not logged_failure and (ff := driver.first_failure) is not None:
                log.first_failure(*ff)
                logged_failure = True
            if log.error is not None and not report_error:
                # a full disk: what is measured can no longer be kept, so the load stops
                # (cleanly, like Ctrl-C) and the run says why
                report_error.append(str(log.error))
                driver.stop()
            if gate is not None:  # --stop-on-fail: a count or a peak decided by now
                gate.on_interval(interval, driver)
            if on_interval is not None:
                on_interval(interval)

        if on_start is not None:
            on_start(endpoints)
        try:
            start_ns = load_start_ns(scenario.start_at_s, started)  # --start-at; passed: exit 3
            began: list[float] = []  # when this process woke at it (wall clock)
            driver: Load = (
                Driver(scenario, flows, logged, sample=sampler.sample, start_ns=start_ns)
                if workers == 1
                else DriverPool(
                    scenario, flows, workers, logged, sample=sampler.sample, start_ns=start_ns
                )
            )
            if gate is not None:  # the first failure, polled beside the load
                driver = gate.watched(driver)
            report = trio.run(drive_from, driver, start_ns, began)
        finally:
            sampler.close()
            log.close()
    # the sink has stopped here, so its final counts are known
    notes = list(sandbox.notes)
    notes += bind_notes(scenario, cap_in)
    if report_error:
        notes.append(f"stopped early: {report_error[0]}; results are partial")
    elif gate is not None and gate.note is not None:
        notes.append(gate.note)
    elif report.interrupted:
        notes.append("interrupted: the run was stopped before its duration; results are partial")
    notes += reuse_notes(
        str(scenario.sandbox), sandbox.tunings, loopback=cap_in.loopback, close=str(scenario.close)
    )
    for error in report.worker_errors:
        notes.append(f"{error}: its share of the load is missing from here on")
    if report.sample_errors:
        notes.append(
            f"sampling failed {len(report.sample_errors)} time(s); those intervals have no "
            f"port-space readings (first: {report.sample_errors[0]})"
        )
    try:  # a result that fails its own checks is a bug here: say so, keep what was measured
        result = RunResult(
            tool_version=__version__,
            host=host_info(),
            started_at=utc_iso(started),
            duration_s=report.elapsed_s,
            complete=not report.interrupted,
            setup=with_start(setup, scenario.start_at_s, began),
            tunings=sandbox.tunings,
            server_tunings=sandbox.server_tunings,
            router_tunings=sandbox.router_tunings,
            intervals=tuple(report.intervals),
            histogram=report.histogram,
            first_failure_s=report.first_failure_s,
            first_failure_outcome=report.first_failure_outcome,
            model=capacity,
            notes=tuple(notes),
            tuples=tuple_stats(flows, report),
            sink_stats=sandbox.sink.stats if sandbox.sink is not None else None,
            ramp=tuple(report.ramp),  # the first interval's 100 ms parts (core/ramp.py)
            transactions=report.transactions if transacts(scenario) else None,
        )
        if scenario.thresholds:  # judged on the run as saved, so a reader can recompute them
            result = replace(result, thresholds=evaluate(scenario.thresholds, result))
        text = result_text(result)  # compact: core/runform.py
    except (ValueError, TypeError, OverflowError) as e:
        raise EnvironmentProblem(
            f"the run's result failed its own check ({e}): a bug in portstorm, please report "
            f"it; what the run measured is kept in {folder.path / INTERVAL_LOG}, which "
            f"`portstorm report {folder.path}` reads"
        ) from e
    path = folder.write_text("result.json", text)
    stopped = gate.reason if gate is not None else None
    return RunOutput(result, path, (*report_error, *report.worker_errors), stopped)


def sink_answer(scenario: Scenario) -> SinkAnswer:
    """What the built-in sink reads and answers on each connection (sink_server.py)."""
    return SinkAnswer(
        request_size=scenario.request_size,
        response_size=scenario.response_size,
        http=scenario.http_path is not None,
        hold_s=scenario.hold_s,  # --close server: the sink holds; HTTP: keep-alive
    )


def tuple_stats(flows: list[Flow], report: DriverReport) -> tuple[TupleStats, ...]:
    return tuple(
        TupleStats(
            source=f.source,
            destination=f.destination,
            succeeded=report.flow_succeeded[i],
            failed=report.flow_failed[i],
            first_failure_s=report.flow_first_failure_s[i],
            ports_in_use=report.flow_ports_last[i],
            ports_in_use_peak=report.flow_ports_peak[i],
        )
        for i, f in enumerate(flows)
    )


def bind_notes(scenario: Scenario, cap_in: CapacityInput) -> list[str]:
    """What the bind mode did that a reader might not expect."""
    notes = []
    if scenario.sources and scenario.bind in (BindMode.CONNECT, BindMode.RANGE):
        notes.append(
            f"--source with --bind {scenario.bind}: each socket binds its source address with "
            "IP_BIND_ADDRESS_NO_PORT, so connect() still picks the port per 4-tuple (a plain "
            "bind() would take a port per source whatever the destination: --bind bind)"
        )
    if scenario.bind is BindMode.RANGE and scenario.socket_port_range is not None:
        (s_low, s_high), (low, high) = scenario.socket_port_range, effective_range(cap_in)
        if (s_low, s_high) != (low, high):
            ns_low, ns_high = cap_in.port_range
            notes.append(
                f"--port-range {s_low}-{s_high} is not within ip_local_port_range "
                f"{ns_low}-{ns_high}: the kernel ignores a per-socket bound outside it "
                f"(inet_sk_get_local_port_range()), so sockets searched {low}-{high}"
            )
    return notes
