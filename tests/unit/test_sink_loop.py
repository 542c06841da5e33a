"""The built-in sink's event loop (engine/sink_loop.py) on the host's loopback: what it counts
for peers that ended before it accepted them, and its idle-timeout timer. Each test starts
the sink's process as a run does (``python -m portstorm.engine.sink_main`` and a job line)
and waits for events (a FIN from the sink, its READY and stats lines), never for time."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from portstorm.core.scenario import CloseMode
from portstorm.engine.sink_answer import SinkAnswer
from portstorm.engine.sink_handle import SINK_MODULE
from portstorm.engine.sink_main import job_line
from portstorm.engine.sink_server import READY_PREFIX, STATS_PREFIX


class _Sink:
    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc, self.port = proc, port
        self.stats: dict[str, int] = {}

    def stop(self) -> dict[str, int]:
        os.kill(self.proc.pid, signal.SIGTERM)
        out, _err = self.proc.communicate(timeout=30)
        line = next(x for x in out.splitlines() if x.startswith(STATS_PREFIX))
        self.stats = {k: int(v) for k, v in (w.split("=") for w in line.split()[2:])}
        return self.stats


@contextmanager
def _sink(
    close: CloseMode, idle_timeout: float = 60.0, answer: SinkAnswer | None = None
) -> Iterator[_Sink]:
    job = job_line([("127.0.0.1", 0)], close, idle_timeout, 1, answer or SinkAnswer(), False)
    proc = subprocess.Popen(
        [sys.executable, "-m", SINK_MODULE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(job)
        proc.stdin.flush()
        ready = proc.stdout.readline()
        assert ready.startswith(READY_PREFIX), ready
        yield _Sink(proc, int(ready.split()[-1]))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _ended_by_the_sink(port: int) -> None:
    """A client that ends its side with a FIN and waits for the sink's close (EOF): the
    sink has handled every connection accepted before it."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        c.shutdown(socket.SHUT_WR)
        assert c.recv(1) == b""


def test_clients_that_aborted_before_the_accept_are_closed_unread_and_counted_as_resets() -> None:
    n = 40
    with _sink(CloseMode.RST) as sink:
        os.kill(sink.proc.pid, signal.SIGSTOP)  # behind: every abort is in before accept()
        try:
            for _ in range(n):
                c = socket.create_connection(("127.0.0.1", sink.port))
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.close()  # RST
        finally:
            os.kill(sink.proc.pid, signal.SIGCONT)
        _ended_by_the_sink(sink.port)
        stats = sink.stop()
    # the one poll() over the accepted batch saw each reset (EPOLLHUP|EPOLLERR): closed
    # without a read, and counted; the last client ended with a FIN, no reset
    assert stats["accepted"] == stats["closed"] == n + 1, stats
    assert stats["resets"] == n and stats["idle_timeouts"] == 0, stats


def test_a_client_that_never_ends_its_connection_is_closed_at_the_idle_timeout() -> None:
    with _sink(CloseMode.CLIENT, idle_timeout=0.3) as sink:
        with socket.create_connection(("127.0.0.1", sink.port), timeout=30) as c:
            assert c.recv(1) == b""  # the sink's FIN, once the timeout passed
        _ended_by_the_sink(sink.port)  # the loop still serves after its timer fired
        stats = sink.stop()
    assert stats["accepted"] == stats["closed"] == 2, stats
    assert stats["idle_timeouts"] == 1 and stats["resets"] == 0, stats


def _answered(port: int) -> socket.socket:
    """A client that sends its 3-byte request and reads the whole 5-byte answer."""
    c = socket.create_connection(("127.0.0.1", port), timeout=30)
    c.sendall(b"abc")
    got = b""
    while len(got) < 5:
        chunk = c.recv(5 - len(got))
        assert chunk, got
        got += chunk
    return c


def test_answered_connections_end_as_their_clients_end_them_once_answered() -> None:
    # once answered, all a connection waits for is the client's end: read (bytes sent
    # after the answer counted), a reset counted, a silent one closed at the idle timeout
    with _sink(CloseMode.CLIENT, 0.5, SinkAnswer(request_size=3, response_size=5)) as sink:
        with _answered(sink.port) as c:  # more bytes, then a FIN: the sink closes too
            c.sendall(b"extra")
            c.shutdown(socket.SHUT_WR)
            assert c.recv(1) == b""
        c = _answered(sink.port)  # a RST after the answer
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        with _answered(sink.port) as c:  # silent after the answer: the idle timeout
            assert c.recv(1) == b""
        _ended_by_the_sink(sink.port)  # unanswered: EOF before its request
        stats = sink.stop()
    assert stats["accepted"] == stats["closed"] == 4, stats
    assert stats["responses"] == 3 and stats["resets"] == 1, stats
    assert stats["idle_timeouts"] == 1, stats
    assert stats["bytes_received"] == 3 * 3 + len(b"extra"), stats
