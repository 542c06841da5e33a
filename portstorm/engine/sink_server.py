"""The built-in sink's server: listeners, worker processes and the stop, ending each connection
the way the run asks.

Run as ``portstorm sink`` (a run starts it as a child through sink_handle.py, which reads
``READY_PREFIX`` and ``STATS_PREFIX`` lines from its stdout). Containing no measurement:
the driver measures; the sink only accepts and closes, as cheaply as it can, so that it is
never the bottleneck being measured.

Close modes (KERNEL.md, "Who holds TIME_WAIT"):
- ``client``/``rst``: wait for the client to end the connection (EOF or reset), then close:
  the client sent the first FIN (TIME_WAIT on the client) or aborted (no TIME_WAIT).
- ``server``: close at once after accept: the sink sends the first FIN, so TIME_WAIT lands
  here, and the client's new SYN on the same 4-tuple may take it over (RFC 1122 4.2.2.13).
In every mode, received data is drained before close(): closing with unread data sends a RST
(tcp_close() -> TCPAbortOnClose), which would turn an intended FIN close into an abort.

With an answer (``SinkAnswer``: the run's --request-size, --response-size, --http, --hold)
each connection first has its request read (N bytes, or an HTTP request head up to its
empty line) and gets its response (M bytes, or ``HTTP/1.1 200 OK`` with an M-byte body);
then the close mode applies as above, ``server`` after the hold (the client waits for
that FIN). ``bytes_received`` counts every byte read, so a run can check N per connection.
The event loop that accepts and ends connections is sink_loop.py (one epoll, raw fds, no
Trio); what is done with an answered connection is sink_answer.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import signal
import socket
from collections.abc import Callable

from portstorm.core.addressing import address_text
from portstorm.core.scenario import CloseMode
from portstorm.engine.processes import die_with_parent
from portstorm.engine.sink_answer import NO_ANSWER, SinkAnswer, SinkStats, drain
from portstorm.engine.sink_loop import SinkLoop, stop_on_signals

READY_PREFIX = "portstorm-sink listening "
STATS_PREFIX = "portstorm-sink stats "
BACKLOG = 65535  # capped by net.core.somaxconn in the kernel


def open_listener(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((host, port))
        s.listen(BACKLOG)
        s.setblocking(False)
    except BaseException:
        s.close()
        raise
    return s


def serve_all(
    listeners: list[socket.socket],
    close: CloseMode,
    on_ready: Callable[[list[tuple[str, int]]], None] | None,
    idle_timeout: float,
    answer: SinkAnswer = NO_ANSWER,
) -> SinkStats:
    """Serve every listener until SIGINT/SIGTERM (sink_loop.py); the counts.

    A stop still accepts what the accept queues hold (``accept_queued``), so ``accepted``
    counts every connection whose handshake completed before the stop; every connection
    still open is then closed, and counted closed.
    """
    stats = SinkStats()
    loop = SinkLoop(listeners, close, idle_timeout, answer, stats)
    try:
        with stop_on_signals() as (stop_fd, stopping):
            if on_ready is not None:
                on_ready([listener.getsockname()[:2] for listener in listeners])
            loop.run(stop_fd, stopping)
        for listener in listeners:
            accept_queued(listener, stats)
    finally:
        loop.close_all()
    return stats


def accept_queued(listener: socket.socket, stats: SinkStats) -> None:
    """Accept, count and close every connection still in ``listener``'s accept queue.

    The client counts a connection as made when the SYN-ACK arrives; the kernel queues the
    server's side (inet_csk_reqsk_queue_add()) whether or not accept() has run. A sink
    stopped while behind (a busy machine) left those in the queue uncounted, and close()
    on the listener reset them (inet_csk_listen_stop()): 44,256 accepted against the
    driver's 44,552 connected. Non-blocking: the queue only shrinks once the load is over.
    """
    while True:
        try:
            conn, _addr = listener.accept()
        except BlockingIOError:
            return
        except OSError:
            stats.accept_errors += 1
            return
        stats.accepted += 1
        conn.setblocking(False)
        drain(conn)
        conn.close()
        stats.closed += 1


def open_listeners(addresses: list[tuple[str, int]], reuse_port: bool) -> list[socket.socket]:
    listeners: list[socket.socket] = []
    try:
        for host, port in addresses:
            try:
                listeners.append(open_listener(host, port, reuse_port))
            except OSError as e:
                raise OSError(e.errno, f"{address_text(host, port)}: {e.strerror}") from None
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    return listeners


def run_sink(
    addresses: list[tuple[str, int]],
    close: CloseMode,
    on_ready: Callable[[list[tuple[str, int]]], None],
    idle_timeout: float = 60.0,
    workers: int = 1,
    answer: SinkAnswer = NO_ANSWER,
) -> SinkStats:
    """Listen on every (host, port) in ``workers`` processes, report the bound addresses
    once all of them listen, and serve until SIGINT/SIGTERM; return the counts, summed.

    Several workers: this process binds first (a port 0 becomes a real port), then forks
    the others, each with its own SO_REUSEPORT listener on the same addresses: the kernel
    spreads incoming connections over their accept queues by a hash of the 4-tuple
    (reuseport_select_sock()), and each process accepts on its own core. Forked before any
    thread or event loop exists; a child dies with this process (PR_SET_PDEATHSIG).
    """
    listeners = open_listeners(addresses, reuse_port=workers > 1)
    bound = [listener.getsockname()[:2] for listener in listeners]
    children: list[tuple[int, int]] = []  # (pid, read end of its pipe)
    try:
        for _ in range(workers - 1):
            children.append(_fork_worker(listeners, bound, close, idle_timeout, answer))
        for _pid, fd in children:  # each child writes one line once it listens
            if not _read_line(fd).startswith("ready"):
                raise OSError(errno.EIO, "a sink worker failed to listen")
        stats = serve_all(listeners, close, on_ready, idle_timeout, answer)
    finally:
        for listener in listeners:
            listener.close()
        for pid, _fd in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid, fd in children:
            line = _read_line(fd)
            os.close(fd)
            os.waitpid(pid, 0)
            if line.startswith("stats "):
                for name, value in (kv.split("=") for kv in line.split()[1:]):
                    setattr(stats, name, getattr(stats, name) + int(value))
    return stats


def _fork_worker(
    inherited: list[socket.socket],
    addresses: list[tuple[str, int]],
    close: CloseMode,
    idle_timeout: float,
    answer: SinkAnswer,
) -> tuple[int, int]:
    r, w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(w)
        return pid, r
    code = 0
    try:  # the child: never returns
        os.close(r)
        die_with_parent()
        for listener in inherited:
            listener.close()
        listeners = open_listeners(addresses, reuse_port=True)
        os.write(w, b"ready\n")
        stats = serve_all(listeners, close, None, idle_timeout, answer)
        counts = " ".join(f"{k}={v}" for k, v in dataclasses.asdict(stats).items())
        os.write(w, f"stats {counts}\n".encode())
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _read_line(fd: int) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")
