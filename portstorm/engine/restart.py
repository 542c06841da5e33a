"""``portstorm restart``: does a server that closed first restart on its port? Measured.

Containing the experiment's order (core/restart.py has its plan and result): in the pair
sandbox, portstorm's own listener (engine/restartserver.py) on 198.18.0.2:8080 takes
``plan.connections`` connections at ``plan.rate`` and closes each first, so every one ends
in TIME_WAIT on the server, local port 8080; then the listener closes (t = 0) and, every
``probe_interval_s``, new sockets try bind() to 198.18.0.2:8080: plain, with SO_REUSEADDR,
with SO_REUSEPORT, until the plain one succeeds or ``max_wait_s`` passes. The TIME_WAIT
sockets on the port are read by sock_diag in the server's namespace before each round.

Bounded: the load is at most rate x duration connections and stops starting new ones 2 s
(SOCKET_TIMEOUT_S, each socket's own bound) past its duration; the waiting is at most
max_wait_s: the experiment ends within duration + max_wait + a few seconds of setup.
The connections are made one at a time, in step: connect(), accept(),
the server's close(), the client reads the FIN and closes; a veth delivers each segment in
the sender's own softirq, so this runs at a few thousand connections a second.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from collections.abc import Callable

from portstorm import __version__
from portstorm.core.restart import VARIANTS, BindAttempt, Restart, RestartPlan, RestartResult
from portstorm.core.result import utc_iso
from portstorm.core.scenario import CloseMode, SandboxKind
from portstorm.engine import netns
from portstorm.engine.restartserver import ServerSide, counter_delta
from portstorm.engine.sandbox import Sandbox
from portstorm.engine.sysinfo import host_info

SERVER_HOST = "198.18.0.2"  # the pair's server address (core/addressing.py)
RESTART_PORT = 8080  # a server's port: outside the client's ephemeral range by default
SOCKET_TIMEOUT_S = 2.0
SAMPLE_EVERY_S = 0.25  # TIME_WAIT on the port during the load

Progress = Callable[[str], None]


def run_restart(
    plan: RestartPlan,
    progress: Progress = lambda _line: None,
    server_set: dict[str, str] | None = None,
) -> RestartResult:
    """The whole experiment, in a fresh pair sandbox (``server_set``: sysctls of the
    server's namespace, full names, validated); a Ctrl-C during the waiting keeps what
    was measured (``complete`` false)."""
    started = dt.datetime.now(dt.UTC)
    wall0 = time.monotonic()
    with Sandbox(SandboxKind.PAIR, CloseMode.CLIENT, server_set=server_set) as sb:
        assert sb.sink is not None
        client_fd = netns.open_netns()
        server_fd = netns.open_netns(sb.sink.pid)
        try:
            side = ServerSide(server_fd, client_fd, sb.sink.pid)
            try:
                restart, complete = _experiment(plan, side, progress)
            finally:
                side.close()
        finally:
            os.close(server_fd)
            os.close(client_fd)
        tunings, server_tunings = dict(sb.tunings), dict(sb.server_tunings or {})
    return RestartResult(
        version=__version__,
        host=host_info(),
        started_at=utc_iso(started),
        duration_s=time.monotonic() - wall0,
        plan=plan,
        server=f"{SERVER_HOST}:{RESTART_PORT}",
        tunings=tunings,
        server_tunings=server_tunings,
        restart=restart,
        complete=complete,
    )


def _experiment(plan: RestartPlan, side: ServerSide, progress: Progress) -> tuple[Restart, bool]:
    addr = (SERVER_HOST, RESTART_PORT)
    before = side.counters()
    listener = side.listener(addr, plan.old_reuseaddr, plan.old_reuseport)
    listener.settimeout(SOCKET_TIMEOUT_S)
    series: list[tuple[float, int]] = []
    try:
        progress(
            f"load: {plan.connections} connections at {plan.rate:g}/s to {addr[0]}:{addr[1]}, "
            "each closed by the server first"
        )
        made, failed, load_s, samples = _load(plan, side, listener)
    finally:
        listener.close()
    closed = time.monotonic()  # t = 0: the old listener has closed, right after the load
    series += [(t - closed, n) for t, n in samples]
    progress(
        f"listener closed with {series[-1][1] if series else 0} TIME_WAIT on port "
        f"{RESTART_PORT}; bind() every {plan.probe_interval_s:g} s for up to "
        f"{plan.max_wait_s:g} s"
    )
    binds: list[BindAttempt] = []
    complete = True
    try:
        _probe(plan, side, addr, closed, binds, series, progress)
    except KeyboardInterrupt:
        complete = False
    restart = Restart(
        connections=made, failed=failed, load_s=load_s,
        peak_server_time_wait=max((n for _t, n in series), default=0),
        binds=tuple(binds), server_time_wait=tuple(series),
        server_kernel=counter_delta(side.counters(), before),
    )  # fmt: skip
    return restart, complete


def _load(
    plan: RestartPlan, side: ServerSide, listener: socket.socket
) -> tuple[int, int, float, list[tuple[float, int]]]:
    """(connections made, failed, seconds taken, (monotonic time, TIME_WAIT) samples)."""
    made = failed = 0
    samples: list[tuple[float, int]] = []
    start = time.monotonic()
    next_sample = start
    stop = start + plan.duration_s + SOCKET_TIMEOUT_S  # the time bound, whatever stalls
    for i in range(plan.connections):
        due = start + i / plan.rate
        now = time.monotonic()
        if now >= stop:
            failed += plan.connections - i  # never started: the load ran out of time
            break
        if now >= next_sample:
            samples.append((now, side.time_wait_on(RESTART_PORT)))
            next_sample = now + SAMPLE_EVERY_S
        if due > now:
            time.sleep(due - now)
        if _one_connection(listener):
            made += 1
        else:
            failed += 1
    load_s = time.monotonic() - start
    # the last FINs cross the veth in the closer's softirq: settled within milliseconds
    settle = time.monotonic() + 1.0
    while side.time_wait_on(RESTART_PORT) < made and time.monotonic() < settle:
        time.sleep(0.005)
    samples.append((time.monotonic(), side.time_wait_on(RESTART_PORT)))
    return made, failed, load_s, samples


def _one_connection(listener: socket.socket) -> bool:
    """connect(), accept(), the server's close() first, the client's read of its FIN,
    the client's close(): the server's socket ends in TIME_WAIT (tcp_time_wait() from
    tcp_rcv_state_process() in FIN_WAIT2, once the client's FIN arrives)."""
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.settimeout(SOCKET_TIMEOUT_S)
    try:
        client.connect((SERVER_HOST, RESTART_PORT))
        conn, _peer = listener.accept()
        conn.close()
        client.recv(1)  # b"": the server's FIN
        return True
    except OSError:
        return False
    finally:
        client.close()


def _probe(
    plan: RestartPlan,
    side: ServerSide,
    addr: tuple[str, int],
    closed: float,
    binds: list[BindAttempt],
    series: list[tuple[float, int]],
    progress: Progress,
) -> None:
    deadline = closed + plan.max_wait_s
    next_round = closed
    last_said = -10.0
    while True:
        tw = side.time_wait_on(RESTART_PORT)
        series.append((time.monotonic() - closed, tw))
        for reuseaddr, reuseport in VARIANTS:
            t = time.monotonic() - closed
            ok, err = side.try_bind(addr, reuseaddr, reuseport)
            binds.append(BindAttempt(t, reuseaddr, reuseport, ok, err, tw))
        now = time.monotonic()
        plain = binds[-len(VARIANTS)]
        if now - last_said >= 10 or plain.ok:
            progress(
                f"t={now - closed:5.1f} s: {tw} TIME_WAIT on the port; bind() plain "
                f"{plain.errno or 'ok'}, SO_REUSEADDR {binds[-2].errno or 'ok'}, "
                f"SO_REUSEPORT {binds[-1].errno or 'ok'}"
            )
            last_said = now
        if plain.ok or now >= deadline:
            return
        next_round = max(next_round + plan.probe_interval_s, now)
        time.sleep(max(0.0, min(next_round, deadline) - time.monotonic()))
