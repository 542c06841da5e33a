"""Sockets made in the pair sandbox's server namespace from portstorm's own process.

Containing the server side of the restart and last-ACK experiments: a listener of
portstorm's own with chosen socket options, one bind() attempt, the TIME_WAIT and LAST_ACK
sockets on a port (sock_diag, from a netlink socket made in that namespace), and the
server's counters. No experiment logic (engine/restart.py, engine/restartlastack.py).

A socket belongs to the network namespace of the thread that created it (sock_create()
takes current->nsproxy->net_ns), and keeps it when the thread leaves: so each socket is
made after setns() into the server's namespace, and used from the client's afterwards.
The built-in sink cannot be stopped and rebound on demand, nor told which options its
listener sets; this listener can, which is what the experiments need.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from portstorm.engine.router import inside
from portstorm.engine.sampler import COUNTERS, read_counters
from portstorm.engine.sockdiag import TCP_FIN_WAIT2, TCP_LAST_ACK, TCP_TIME_WAIT, SockDiag

# The TcpExt/Tcp counters the experiments read on the server, beyond the sampler's own.
SERVER_COUNTERS: tuple[str, ...] = (
    *COUNTERS,
    "TcpRetransSegs",
    "TcpExtTCPChallengeACK",
    "TcpExtTCPSYNChallenge",
    "TcpExtTCPTimeouts",
    "TcpExtPAWSEstab",
    "TcpExtTWRecycled",
)


def errno_name(e: OSError) -> str:
    return errno.errorcode.get(e.errno or 0, f"errno {e.errno}")


class ServerSide:
    """The server namespace, named by ``server_fd``; this thread goes back to
    ``client_fd``'s namespace after each call. ``net_pid``: a process living in the
    server namespace, whose /proc/PID/net shows that namespace's counters."""

    def __init__(self, server_fd: int, client_fd: int, net_pid: int) -> None:
        self._server_fd = server_fd
        self._client_fd = client_fd
        self._net = Path(f"/proc/{net_pid}/net")
        with inside(server_fd, client_fd):
            self._diag = SockDiag()  # bound to the namespace it is made in

    def close(self) -> None:
        self._diag.close()

    def new_socket(self, reuseaddr: bool, reuseport: bool) -> socket.socket:
        with inside(self._server_fd, self._client_fd):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(reuseaddr))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(reuseport))
        return s

    def listener(
        self, addr: tuple[str, int], reuseaddr: bool, reuseport: bool, backlog: int = 4096
    ) -> socket.socket:
        s = self.new_socket(reuseaddr, reuseport)
        try:
            s.bind(addr)
            s.listen(backlog)
        except BaseException:
            s.close()
            raise
        return s

    def try_bind(
        self, addr: tuple[str, int], reuseaddr: bool, reuseport: bool
    ) -> tuple[bool, str | None]:
        """One restart's first step: bind() a new socket to ``addr`` (then listen(), as a
        server would, and close). (True, None) or (False, the errno's name).

        A TIME_WAIT socket keeps its port in the bind hash (inet_twsk_bind_unhash() runs
        at its end): inet_bind_conflict() lets the new socket share it only when both set
        SO_REUSEADDR (sk_reuse; a TIME_WAIT socket has its listener's, through the accepted
        child), or both SO_REUSEPORT (sk2 in TIME_WAIT: any owner).
        """
        s = self.new_socket(reuseaddr, reuseport)
        try:
            s.bind(addr)
            s.listen(16)
        except OSError as e:
            return False, errno_name(e)
        finally:
            s.close()
        return True, None

    def sockets_on_port(self, port: int, state: int) -> int:
        """Sockets in ``state`` whose local port is ``port`` (IPv4 and IPv6)."""
        return self._diag.count_local(port, port, states=1 << state)

    def time_wait_on(self, port: int) -> int:
        """TIME_WAIT sockets on ``port``, with the FIN_WAIT2 ones of closed sockets: both
        are timewait mini-sockets (tcp_time_wait(sk, TCP_FIN_WAIT2, tmo) for an orphan
        whose FIN was acknowledged, which becomes TIME_WAIT when the peer's FIN comes),
        both hold the port, and sockstat's ``tw`` counts both, as server_time_wait does
        elsewhere."""
        states = (1 << TCP_TIME_WAIT) | (1 << TCP_FIN_WAIT2)
        return self._diag.count_local(port, port, states=states)

    def last_ack_on(self, port: int) -> int:
        return self.sockets_on_port(port, TCP_LAST_ACK)

    def counters(self) -> dict[str, int]:
        now = read_counters(self._net)
        return {k: now[k] for k in SERVER_COUNTERS if k in now}


def counter_delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items()}
