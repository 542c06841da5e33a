"""How an attempt ended: the closed set of outcome names and the errno -> outcome table.

Containing no socket code: the driver classifies the OSError it caught by calling
``classify(phase, errno)``; everything else only ever sees ``Outcome`` values.
The names are a contract (DESIGN.md): result.json and external checks rely on them.
"""

from __future__ import annotations

import enum
import errno as E


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    PORT_EXHAUSTED = "port_exhausted"  # EADDRNOTAVAIL from connect(): no free 4-tuple
    BIND_IN_USE = "bind_in_use"  # EADDRINUSE from bind((ip, 0)): no free port for that ip
    REFUSED = "refused"
    TIMEOUT = "timeout"  # the handshake did not complete within --connect-timeout
    # Connected, then the server did not close within --close-timeout (--close server): not
    # a connect failure. Its connect latency is in the histogram, which so holds successes
    # and these (RunResult checks that).
    CLOSE_TIMEOUT = "close_timeout"
    # Connected, then the exchange broke (core/exchange.py): EOF before the whole response
    # (--response-size bytes, or the HTTP framing's end), or an HTTP response whose status
    # is not 2xx/3xx or whose framing is broken. Timed like close_timeout; a reset or a
    # timeout during the exchange is ``reset`` or ``timeout`` as during the handshake.
    RESPONSE_INCOMPLETE = "response_incomplete"
    HTTP_ERROR = "http_error"
    RESET = "reset"
    FD_LIMIT = "fd_limit"
    NO_BUFFERS = "no_buffers"
    UNREACHABLE = "unreachable"
    OTHER = "other"


FAILURES: tuple[Outcome, ...] = tuple(o for o in Outcome if o is not Outcome.SUCCESS)
# failures of a connection that was made: not connect failures, and timed (latency kept)
CONNECTED: frozenset[str] = frozenset(
    {Outcome.CLOSE_TIMEOUT.value, Outcome.RESPONSE_INCOMPLETE.value, Outcome.HTTP_ERROR.value}
)


class Phase(enum.StrEnum):
    """Where in an attempt the error happened: the same errno means different things."""

    SOCKET = "socket"
    BIND = "bind"
    CONNECT = "connect"
    EXCHANGE = "exchange"  # after connect: writing the request, reading the response
    CLOSE = "close"  # after connect: waiting for the peer's FIN, or closing


# errno values that mean the same thing whatever the phase.
_ANY_PHASE: dict[int, Outcome] = {
    E.ECONNREFUSED: Outcome.REFUSED,
    E.ETIMEDOUT: Outcome.TIMEOUT,
    E.ECONNRESET: Outcome.RESET,
    E.ECONNABORTED: Outcome.RESET,
    E.EPIPE: Outcome.RESET,
    E.EMFILE: Outcome.FD_LIMIT,
    E.ENFILE: Outcome.FD_LIMIT,
    E.ENOBUFS: Outcome.NO_BUFFERS,
    E.ENOMEM: Outcome.NO_BUFFERS,
    E.ENETUNREACH: Outcome.UNREACHABLE,
    E.EHOSTUNREACH: Outcome.UNREACHABLE,
    E.ENETDOWN: Outcome.UNREACHABLE,
    E.EHOSTDOWN: Outcome.UNREACHABLE,
}

# errno values whose meaning depends on the phase. EADDRNOTAVAIL from connect() is
# __inet_hash_connect() finding no free port for the 4-tuple (net/ipv4/inet_hashtables.c);
# from bind() it means the source address is not local, which is not port exhaustion.
# EADDRINUSE from bind((ip, 0)) is inet_csk_get_port() finding no free port.
_BY_PHASE: dict[tuple[Phase, int], Outcome] = {
    (Phase.CONNECT, E.EADDRNOTAVAIL): Outcome.PORT_EXHAUSTED,
    (Phase.BIND, E.EADDRINUSE): Outcome.BIND_IN_USE,
}


def classify(phase: Phase, err: int) -> Outcome:
    """The outcome for an errno raised in a phase; ``OTHER`` when the table has no entry."""
    hit = _BY_PHASE.get((phase, err))
    if hit is not None:
        return hit
    return _ANY_PHASE.get(err, Outcome.OTHER)


def errno_name(err: int) -> str:
    """``EPERM`` for 1; ``E<number>`` for an errno this Python does not name."""
    return E.errorcode.get(err, f"E{err}")
