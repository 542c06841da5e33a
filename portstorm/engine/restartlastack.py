"""``portstorm lastack``: what TIME_WAIT protects, measured by losing the client's last ACK.

Containing the experiment's order (core/restartlastack.py has the cases, the rulesets and the
counts): for each case a fresh pair sandbox with the case's client sysctls; an nftables
table in the client's namespace that drops the last ACK of a share of the connections
(matched by conntrack's packet count, so net.netfilter.nf_conntrack_acct=1 is set there
before any connection), a counters-only table in the server's namespace; portstorm's own
listener on 198.18.0.2:8080; then ``connections`` connections at ``rate``, one at a time,
the client closing first. Afterwards the server's LAST_ACK sockets are sampled until none
is left (at most DRAIN_S), and the counters are read: nft's, and the server's and the
client's TcpExt/Tcp deltas.

Bounded: connections / rate seconds of load, no connection started past that plus
CONNECT_TIMEOUT_S (each socket's own bound), then DRAIN_S of waiting at most, per case.
Tables and namespaces go with the sandbox.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from portstorm.core.errors import EnvironmentProblem
from portstorm.core.restartlastack import (
    CASES,
    SERVER_PORT,
    TABLE,
    CaseResult,
    LastAckPlan,
    client_ruleset,
    server_ruleset,
)
from portstorm.core.scenario import CloseMode, SandboxKind
from portstorm.engine import netns
from portstorm.engine.kernel import write_sysctl
from portstorm.engine.restartserver import ServerSide, counter_delta
from portstorm.engine.router import inside
from portstorm.engine.sampler import read_counters
from portstorm.engine.sandbox import Sandbox

SERVER_HOST = "198.18.0.2"
CONNECT_TIMEOUT_S = 3.0
SLOW_CONNECT_S = 0.5  # a SYN retransmission waits 1 s (TCP_TIMEOUT_INIT)
DRAIN_S = 10.0  # LAST_ACK ends within a few FIN retransmissions (200 ms RTO, doubling)
SAMPLE_S = 0.02


def _nft(text: str, where: str) -> None:
    try:
        proc = subprocess.run(["nft", "-f", "-"], input=text, capture_output=True, text=True)
    except FileNotFoundError:
        raise EnvironmentProblem(
            "lastack needs nft (Debian's nftables package) to drop the last ACK: install it"
        ) from None
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["no message"])[0]
        raise EnvironmentProblem(f"{where}: nft refused the last-ACK ruleset: {first}")


def _counters() -> dict[str, int]:
    """This thread's namespace's table: counter name -> packets (nft's JSON output)."""
    proc = subprocess.run(["nft", "-j", "list", "counters", "table", "inet", TABLE],
                          capture_output=True, text=True)  # fmt: skip
    out: dict[str, int] = {}
    if proc.returncode != 0:
        return out
    try:
        doc = json.loads(proc.stdout)
        for item in doc.get("nftables", []):
            c = item.get("counter") if isinstance(item, dict) else None
            if isinstance(c, dict) and isinstance(c.get("packets"), int):
                out[str(c.get("name"))] = c["packets"]
    except (ValueError, AttributeError):
        return {}
    return out


def run_last_ack(
    plan: LastAckPlan, progress: Callable[[str], None] = lambda _line: None
) -> list[CaseResult]:
    """Every case of ``plan``, each in a fresh pair sandbox; a Ctrl-C ends the list early
    (the cases done are kept)."""
    results: list[CaseResult] = []
    for name in plan.cases:
        progress(f"case {name}: the client {CASES[name].what}")
        try:
            results.append(_case(name, plan))
        except KeyboardInterrupt:
            break
    return results


def _case(name: str, plan: LastAckPlan) -> CaseResult:
    case = CASES[name]
    with Sandbox(SandboxKind.PAIR, CloseMode.CLIENT, client_set=dict(case.client_set)) as sb:
        assert sb.sink is not None
        client_fd = netns.open_netns()
        server_fd = netns.open_netns(sb.sink.pid)
        try:
            _nft(client_ruleset(SERVER_HOST, plan.share_pct), "client namespace")
            # conntrack's per-flow packet counts exist only for entries made after this
            write_sysctl("net.netfilter.nf_conntrack_acct", "1")
            with inside(server_fd, client_fd):
                _nft(server_ruleset(), "server namespace")
            side = ServerSide(server_fd, client_fd, sb.sink.pid)
            try:
                return _measure(name, plan, side, server_fd, client_fd)
            finally:
                side.close()
        finally:
            os.close(server_fd)
            os.close(client_fd)


def _measure(
    name: str, plan: LastAckPlan, side: ServerSide, server_fd: int, client_fd: int
) -> CaseResult:
    rst = CASES[name].close == "rst"
    client_net = Path(f"/proc/{os.getpid()}/net")
    client_before = read_counters(client_net)
    server_before = side.counters()
    listener = side.listener((SERVER_HOST, SERVER_PORT), True, False)
    listener.settimeout(CONNECT_TIMEOUT_S)
    made = failures = slow = resets = 0
    errors: dict[str, int] = {}
    slowest = 0.0
    series: list[tuple[float, int]] = []
    rate = min(plan.rate, CASES[name].max_rate or plan.rate)
    start = time.monotonic()
    stop = start + plan.connections / rate + CONNECT_TIMEOUT_S  # the time bound
    try:
        for i in range(plan.connections):
            if time.monotonic() >= stop:
                failures += plan.connections - i  # never started: out of time
                errors["not started (time bound)"] = plan.connections - i
                break
            due = start + i / rate
            while (now := time.monotonic()) < due:
                series.append((now - start, side.last_ack_on(SERVER_PORT)))
                time.sleep(min(SAMPLE_S, max(0.0, due - time.monotonic())))
            took, reset = _one(listener, rst)
            if isinstance(took, str):
                failures += 1
                errors[took] = errors.get(took, 0) + 1
                continue
            made += 1
            slow += took > SLOW_CONNECT_S
            slowest = max(slowest, took)
            resets += reset
        load_end = time.monotonic()
        drained: float | None = None
        while time.monotonic() < load_end + DRAIN_S:
            n = side.last_ack_on(SERVER_PORT)
            series.append((time.monotonic() - start, n))
            if n == 0:
                drained = time.monotonic() - load_end
                break
            time.sleep(SAMPLE_S)
    finally:
        listener.close()
    client = _counters()
    with inside(server_fd, client_fd):
        server = _counters()
    return CaseResult(
        case=name, connections=made, connect_failures=failures, slow_connects=slow,
        last_acks_seen=client.get("last_ack", 0), last_acks_dropped=client.get("dropped", 0),
        server_fins_sent=server.get("fin_out", 0), server_rsts_received=server.get("rst_in", 0),
        server_read_resets=resets,
        server_last_ack_peak=max((n for _t, n in series), default=0),
        server_last_ack_drained_s=drained, connect_max_s=slowest, connect_errors=errors,
        server_kernel={k: v for k, v in counter_delta(side.counters(), server_before).items()
                       if v},
        client_kernel={k: v for k, v in counter_delta(read_counters(client_net),
                                                      client_before).items() if v},
        server_last_ack=tuple(series),
    )  # fmt: skip


def _one(listener: socket.socket, rst: bool) -> tuple[float | str, bool]:
    """One connection, the client closing first: (connect seconds, or what failed:
    ``connect: EADDRNOTAVAIL``, ``accept: timeout``; whether the server's read ended in
    ECONNRESET)."""
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.settimeout(CONNECT_TIMEOUT_S)
    t0 = time.monotonic()
    try:
        client.connect((SERVER_HOST, SERVER_PORT))
    except OSError as e:
        client.close()
        return f"connect: {_why(e)}", False
    took = time.monotonic() - t0
    try:
        conn, _peer = listener.accept()
    except OSError as e:
        client.close()
        return f"accept: {_why(e)}", False
    if rst:  # SO_LINGER {1, 0}: close() sends RST (tcp_disconnect() via __tcp_close())
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # the client's FIN first (or RST)
    reset = False
    conn.settimeout(CONNECT_TIMEOUT_S)
    try:
        conn.recv(1)  # b"": the client's FIN
    except ConnectionResetError:
        reset = True
    except OSError:
        pass
    conn.close()  # the server's FIN: LAST_ACK until the client's ACK
    return took, reset


def _why(e: OSError) -> str:
    """An errno's name (EADDRNOTAVAIL), or ``timeout`` for a socket timeout."""
    if isinstance(e, TimeoutError) or e.errno is None:
        return "timeout"
    return errno.errorcode.get(e.errno, str(e.errno))
