"""The run's handle on the built-in sink's process: start it, learn its ports, stop it, read
its counts.

Containing no server (that is sink_server.py, run in the child by sink_main.py, which
reads its job from stdin). The sink runs in its own process so that it does not share an event
loop with the driver: one Trio loop doing both accepts and connects overflows the accept
queue and adds 1 s SYN-retransmit tails (KERNEL.md, "Observing").

The child is started by processes.spawn() (its own session, so a Ctrl-C reaches only
portstorm, which stops the sink after the driver has finished; PR_SET_PDEATHSIG, so it dies
with portstorm even after a SIGKILL). Its stdout says ``READY_PREFIX`` once it listens and
``STATS_PREFIX`` with its counts after it has stopped (sink_server.py).

What the sink answers (``SinkAnswer``: the run's request/response sizes, --http, --hold) is
given to it: the run hands it to the sandbox, which starts the sink with it.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from types import TracebackType
from typing import Any

from portstorm.core.errors import EnvironmentProblem
from portstorm.core.ports import parse_port_list, parse_port_range
from portstorm.core.scenario import CloseMode
from portstorm.engine import netns
from portstorm.engine.kernel import read_sysctls
from portstorm.engine.processes import spawn
from portstorm.engine.sink_answer import SinkAnswer
from portstorm.engine.sink_main import job_line
from portstorm.engine.sink_server import READY_PREFIX, STATS_PREFIX

SINK_MODULE = "portstorm.engine.sink_main"  # the child's command line: python -m SINK_MODULE
IDLE_TIMEOUT_S = 60.0  # the sink's wait for a client to end a connection, past any hold


def _into_new_netns() -> None:
    """In the child before exec: start in a fresh network namespace of its own."""
    try:
        netns.unshare(netns.CLONE_NEWNET)
    except OSError:
        os._exit(122)


FIRST_SINK_PORT = 9000


def ports_outside_ephemeral_range(
    hosts: list[str], n: int = 1, first: int = FIRST_SINK_PORT
) -> list[int]:
    """``n`` listening ports, free on every host, that connect() can never pick as local ports.

    A listener on port 0 would take its port from ip_local_port_range, and connect() then
    skips that port (a bind()-owned bucket, __inet_hash_connect()): a 100-port range would
    give 99 connections, not 100. So the sink listens outside the range and its reserved ports.
    """
    tun = read_sysctls(("net.ipv4.ip_local_port_range", "net.ipv4.ip_local_reserved_ports"))
    low, high = parse_port_range(tun.get("net.ipv4.ip_local_port_range", "32768 60999"))
    reserved = parse_port_list(tun.get("net.ipv4.ip_local_reserved_ports", ""))
    found: list[int] = []
    for port in (*range(first, 65536), *range(1024, first)):
        if low <= port <= high or port in reserved:
            continue
        if all(_bindable(host, port) for host in hosts):
            found.append(port)
            if len(found) == n:
                return found
    raise EnvironmentProblem(
        f"only {len(found)} of {n} free port(s) outside ip_local_port_range {low}-{high} "
        f"for the built-in sink on {', '.join(hosts)}: narrow the range or ask for fewer "
        "--sink-ports"
    )


def _bindable(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.bind((host, port))
    except OSError:
        return False
    finally:
        probe.close()
    return True


class SinkProcess:
    """The sink as a child process, listening on every host x port.

    ``with SinkProcess(["127.0.0.1"], CloseMode.CLIENT) as sink: sink.listening`` starts it
    and waits until it listens. Without ``ports``, ``n_ports`` ports outside the local port
    range are chosen. With ``own_netns`` it starts in a fresh network namespace and waits
    for ``go()`` before listening, so the parent can first configure that namespace (``pid``
    names it meanwhile); ``ports`` must then be given.
    """

    def __init__(
        self,
        hosts: list[str],
        close: CloseMode,
        ports: list[int] | None = None,
        n_ports: int = 1,
        own_netns: bool = False,
        start_timeout: float = 10.0,
        workers: int = 1,
        answer: SinkAnswer | None = None,
    ) -> None:
        if own_netns and not ports:
            raise ValueError("a sink in its own namespace needs its ports given")
        self.hosts = hosts
        self.close = close
        self.ports = ports
        self.n_ports = n_ports
        self.own_netns = own_netns
        self.workers = workers
        self.answer = answer or SinkAnswer()
        self.listening: list[tuple[str, int]] = []
        self.stats: dict[str, Any] | None = None
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def __enter__(self) -> SinkProcess:
        ports = self.ports or ports_outside_ephemeral_range(self.hosts, self.n_ports)
        idle = IDLE_TIMEOUT_S + self.answer.hold_s  # the hold comes before the client's end
        listen = [(host, port) for host in self.hosts for port in ports]
        job = job_line(listen, self.close, idle, self.workers, self.answer, self.own_netns)
        cmd = [sys.executable, "-P", "-m", SINK_MODULE]  # -P: see processes.py
        self._proc = spawn(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            in_child=_into_new_netns if self.own_netns else None,
        )
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(job)
            self._proc.stdin.flush()
        except BaseException:
            self._stop()
            raise
        if not self.own_netns:
            self.go()
        return self

    def go(self) -> None:
        """Let the sink listen (it waits for this in its own namespace) and wait until it does."""
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        try:
            if self.own_netns:
                proc.stdin.write("go\n")
                proc.stdin.flush()
            self.listening = self._await_ready()
        except BaseException:
            self._stop()
            raise

    def _await_ready(self) -> list[tuple[str, int]]:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        deadline = time.monotonic() + self._start_timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise EnvironmentProblem(
                    f"the built-in sink did not start listening within {self._start_timeout:g} s"
                )
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if not ready:
                continue
            line = proc.stdout.readline()
            if not line:  # the child exited before listening
                err = proc.stderr.read().strip().splitlines() if proc.stderr else []
                why = err[-1] if err else f"exit status {proc.wait()}"
                raise EnvironmentProblem(f"the built-in sink failed to start: {why}")
            if line.startswith(READY_PREFIX):
                words = line[len(READY_PREFIX) :].split()
                return [(h, int(p)) for h, p in zip(words[::2], words[1::2], strict=True)]

    def _stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            out, _err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            out, _err = proc.communicate()
        for line in out.splitlines():
            if line.startswith(STATS_PREFIX):
                self.stats = _parse_stats(line[len(STATS_PREFIX) :])
        self._proc = None

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop()


def _parse_stats(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in text.split():
        k, _, v = part.partition("=")
        out[k] = int(v) if v.isdigit() else v
    return out
