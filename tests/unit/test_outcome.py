import errno

import pytest

from portstorm.core.outcome import Outcome, Phase, classify, errno_name

CASES = [
    # phase, errno, outcome
    (Phase.CONNECT, errno.EADDRNOTAVAIL, Outcome.PORT_EXHAUSTED),
    (Phase.BIND, errno.EADDRINUSE, Outcome.BIND_IN_USE),
    (Phase.BIND, errno.EADDRNOTAVAIL, Outcome.OTHER),  # a non-local source, not exhaustion
    (Phase.CONNECT, errno.ECONNREFUSED, Outcome.REFUSED),
    (Phase.CONNECT, errno.ETIMEDOUT, Outcome.TIMEOUT),
    (Phase.CONNECT, errno.ECONNRESET, Outcome.RESET),
    (Phase.CLOSE, errno.ECONNRESET, Outcome.RESET),
    (Phase.CLOSE, errno.EPIPE, Outcome.RESET),
    (Phase.SOCKET, errno.EMFILE, Outcome.FD_LIMIT),
    (Phase.SOCKET, errno.ENFILE, Outcome.FD_LIMIT),
    (Phase.SOCKET, errno.ENOBUFS, Outcome.NO_BUFFERS),
    (Phase.CONNECT, errno.ENOMEM, Outcome.NO_BUFFERS),
    (Phase.CONNECT, errno.ENETUNREACH, Outcome.UNREACHABLE),
    (Phase.CONNECT, errno.EHOSTUNREACH, Outcome.UNREACHABLE),
    (Phase.CONNECT, errno.EPERM, Outcome.OTHER),
    (Phase.CONNECT, errno.EACCES, Outcome.OTHER),
]


@pytest.mark.parametrize(("phase", "err", "expected"), CASES)
def test_errno_is_classified_into_the_contract_outcome(
    phase: Phase, err: int, expected: Outcome
) -> None:
    assert classify(phase, err) is expected


def test_outcome_names_are_the_contract_names() -> None:
    assert {str(o) for o in Outcome} == {
        "success", "port_exhausted", "bind_in_use", "refused", "timeout", "close_timeout",
        "reset", "fd_limit", "no_buffers", "unreachable", "other", "response_incomplete",
        "http_error",
    }  # fmt: skip


def test_errno_name_keeps_the_name_for_other() -> None:
    assert errno_name(errno.EPERM) == "EPERM"
    assert errno_name(9999) == "E9999"
