"""The closed loop's request/response attempts (engine/attempts.py, _closed_transactions():
state machines over the driver's own epoll, one task), in this process against small
servers on the host's loopback: what each ending counts, exactly as the per-task path did
(engine/exchange.py): a whole answer is a success with its transaction time, an answer cut
short by EOF is ``response_incomplete`` (connected, so timed), no answer within
--response-timeout is ``timeout``."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import trio

from portstorm.core.scenario import CloseMode, Scenario
from portstorm.engine.driver import Driver
from portstorm.engine.flows import Flow


@contextmanager
def _server(handle: Callable[[socket.socket], None]) -> Iterator[tuple[str, int]]:
    """A listener on 127.0.0.1 whose thread runs ``handle`` on each accepted connection."""
    ls = socket.create_server(("127.0.0.1", 0), backlog=256)
    stop = threading.Event()

    def serve() -> None:
        ls.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = ls.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                with suppress(OSError):
                    handle(conn)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield ls.getsockname()
    finally:
        stop.set()
        t.join(5)
        ls.close()


def _drive(addr: tuple[str, int], response: int, close: CloseMode, timeout_s: float) -> Driver:
    sc = Scenario(duration_s=0.4, request_size=1, response_size=response, close=close,
                  concurrency=4, response_timeout_s=timeout_s)  # fmt: skip
    driver = Driver(sc, [Flow(socket.AF_INET, None, addr, "127.0.0.1", "server")])
    assert driver._transactions  # the path under test
    trio.run(driver.run)
    return driver


def _answer(n: int, then_wait: bool = True) -> Callable[[socket.socket], None]:
    def handle(conn: socket.socket) -> None:
        conn.recv(1)
        conn.sendall(bytes(n))
        if then_wait:
            conn.recv(1)  # the client's end (EOF or reset)

    return handle


def test_whole_answers_are_successes_each_with_its_connect_and_transaction_time() -> None:
    with _server(_answer(3)) as addr:
        d = _drive(addr, 3, CloseMode.RST, 2.0)
    rep = d._report
    ok = sum(i.succeeded for i in rep.intervals)
    assert ok > 0 and not any(i.failed for i in rep.intervals), rep.intervals
    assert rep.histogram.count == ok and rep.transactions.count == ok
    assert d.counts.ok == [ok]


def test_an_answer_cut_short_by_eof_is_response_incomplete_and_timed() -> None:
    with _server(_answer(1, then_wait=False)) as addr:  # 1 byte of 3, then the server's FIN
        d = _drive(addr, 3, CloseMode.CLIENT, 2.0)
    rep = d._report
    failed = sum(i.failed.get("response_incomplete", 0) for i in rep.intervals)
    assert failed > 0 and sum(i.succeeded for i in rep.intervals) == 0, rep.intervals
    assert rep.histogram.count == failed  # connected, so its connect latency counts
    assert rep.transactions.count == 0


def test_no_answer_within_the_response_timeout_is_a_timeout() -> None:
    def mute(conn: socket.socket) -> None:  # reads the request, never answers
        conn.recv(1)
        conn.recv(1)

    with _server(mute) as addr:
        d = _drive(addr, 1, CloseMode.RST, 0.2)
    rep = d._report
    failed = sum(i.failed.get("timeout", 0) for i in rep.intervals)
    assert failed == sum(i.attempts for i in rep.intervals) > 0, rep.intervals
    assert rep.histogram.count == 0 and rep.first_failure_outcome == "timeout"
