"""A SIGTERM whose KeyboardInterrupt Python swallows (raised inside a finalizer or an
at-fork hook: "Exception ignored in ...") still stops the load, and prints no traceback.

Seen for real: a SIGTERM 10 ms after a host-mode run wrote its restore journal landed in
logging's after-fork hook while the sink was spawned; the run went on for its whole
duration and exited 0 (1 time in 13).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator

import pytest
import trio

from portstorm.engine import processes


@pytest.fixture
def handlers() -> Iterator[None]:
    saved = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    hook, event = sys.unraisablehook, processes._interrupted
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])
        sys.unraisablehook, processes._interrupted = hook, event


class _SignalledInFinalizer:
    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, inside __del__


@pytest.mark.usefixtures("handlers")
def test_a_signal_swallowed_by_a_finalizer_stops_the_next_load(
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = processes.interrupt_on_signals()
    _SignalledInFinalizer()  # collected at once: its KeyboardInterrupt is only reported
    assert event.is_set()
    assert "Traceback" not in capsys.readouterr().err  # the report was silenced

    stops: list[str] = []

    async def load() -> None:
        async with processes.stopped_by_signal(lambda: stops.append("stop")):
            await trio.sleep(0)

    trio.run(load)
    assert stops == ["stop"]


@pytest.mark.usefixtures("handlers")
def test_without_a_signal_the_load_is_not_stopped() -> None:
    processes.interrupt_on_signals()
    stops: list[str] = []

    async def load() -> None:
        async with processes.stopped_by_signal(lambda: stops.append("stop")):
            await trio.sleep(0)

    trio.run(load)
    assert stops == []


@pytest.mark.usefixtures("handlers")
def test_an_unswallowed_signal_still_raises_keyboard_interrupt() -> None:
    event = processes.interrupt_on_signals()
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):  # the handler runs at the next bytecode boundary
            pass
    assert event.is_set()


def test_other_unraisable_reports_still_reach_the_previous_hook(
    handlers: None, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[BaseException | None] = []
    sys.unraisablehook = lambda info: seen.append(info.exc_value)
    processes.interrupt_on_signals()

    class Broken:
        def __del__(self) -> None:
            raise ValueError("not an interrupt")

    Broken()
    assert len(seen) == 1 and isinstance(seen[0], ValueError)
