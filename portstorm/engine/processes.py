"""Child processes and stop signals: the one way portstorm starts, awaits and ends its children.

Containing process lifetime and nothing a child does. Three kinds of child use it: driver
workers (pool.py, ``python -m portstorm.engine.worker_main``), the built-in sink
(sink_handle.py, ``python -m portstorm.engine.sink_main``) and a sweep's runs
(sweep.py, ``python -m portstorm run``). Each talks to its parent in lines on its pipes
and with its exit status (core/errors.py's EXIT_*); every one is started by ``spawn()``:

- in a session of its own, so a Ctrl-C on the terminal reaches only portstorm, which then
  stops its children in order (SIGTERM: a child saves or reports what it has);
- with PR_SET_PDEATHSIG, so a child dies with portstorm even after a SIGKILL;
- with ``-P`` before ``-m``: ``python -m`` puts the working directory first on sys.path,
  and portstorm runs as root from wherever its user stands, so a ``sniffio.py`` left in
  /tmp would be imported by the child in place of trio's (tests/kernel/test_planted_modules.py);
- forked from the calling thread, which must be the event loop's: PR_SET_PDEATHSIG fires
  when the *thread* that forked the child exits, and trio.run_process forks from a worker
  thread that trio retires after 10 s idle, which SIGKILLed every run longer than that.

The sink's own SO_REUSEPORT workers are forked, not spawned (they inherit nothing to
exec), and call die_with_parent() themselves (sink_server.py).

``stopped_by_signal()`` turns a SIGINT/SIGTERM into a stop for everything run under Trio:
a load's (load.drive()) and a sweep's. The built-in sink has no Trio (one epoll loop over
raw fds): sink_loop.stop_on_signals() wakes its epoll_wait() the same two signals. So this module
imports trio only inside the two functions that await (run_child, stopped_by_signal): the
sink's child imports it for die_with_parent(), and trio's import was half of that child's
start-up, paid by every run before its first connection
(tests/cli/test_startup_imports.py).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

PR_SET_PDEATHSIG = 1  # include/uapi/linux/prctl.h
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
CHILD_STOP_S = 10.0  # after SIGTERM, a run saves its partial result within ~2 s

_libc = ctypes.CDLL(None, use_errno=True)

File = int | IO[Any] | None


def die_with_parent() -> None:
    """In a child (preexec_fn, or after fork()): SIGKILL this process when the parent
    *thread* that forked it exits, so no child, and no namespace only a child holds,
    outlives portstorm, even after a SIGKILL. Fork from a thread that lives as long as the
    child should (trio's worker threads retire after 10 s idle)."""
    if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(121)


def spawn(
    cmd: Sequence[str],
    *,
    stdin: File,
    stdout: File,
    stderr: File,
    in_child: Callable[[], None] | None = None,
    cwd_fd: int | None = None,
    text: bool = False,
) -> subprocess.Popen[Any]:
    """Start a child as the module header says; ``in_child`` runs in it before exec (after
    die_with_parent), ``cwd_fd`` is the folder it starts in (``-m portstorm`` still finds
    this code there)."""

    def preexec() -> None:
        die_with_parent()
        if cwd_fd is not None:
            os.fchdir(cwd_fd)  # still open: close_fds runs after preexec_fn
        if in_child is not None:
            in_child()

    env = None
    if cwd_fd is not None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")) if p
        )
    return subprocess.Popen(
        list(cmd),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        text=text,
        start_new_session=True,
        preexec_fn=preexec,
        env=env,
    )


async def run_child(cmd: list[str], out: IO[bytes], cwd_fd: int | None = None) -> int:
    """Run ``cmd`` with its output in ``out`` (and, given ``cwd_fd``, in that folder); its
    exit status (negative: killed by signal).

    Its end is awaited on a pidfd. Cancelled (Ctrl-C): SIGTERM, so a run saves its partial
    result; SIGKILL if it has not ended CHILD_STOP_S later.
    """
    import trio  # here, not at the top: see the module header

    proc = spawn(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd_fd=cwd_fd)
    pidfd = os.pidfd_open(proc.pid)
    try:
        try:
            await trio.lowlevel.wait_readable(pidfd)
        except trio.Cancelled:
            proc.terminate()
            with trio.move_on_after(CHILD_STOP_S) as scope:
                scope.shield = True
                await trio.lowlevel.wait_readable(pidfd)
            if scope.cancelled_caught:
                proc.kill()
            proc.wait()
            raise
        return proc.wait()
    finally:
        os.close(pidfd)


@asynccontextmanager
async def stopped_by_signal(stop: Callable[[], None]) -> AsyncIterator[None]:
    """While the body runs, the first SIGINT or SIGTERM calls ``stop()`` (once): the body
    then ends by itself, with what it has, instead of by an exception."""
    import trio  # here, not at the top: see the module header

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        if _interrupted.is_set():
            # a signal before the receiver whose KeyboardInterrupt Python swallowed (see
            # interrupt_on_signals): obeyed now, or the load would run its whole duration
            stop()
        async with trio.open_nursery() as nursery:

            async def stop_on_signal() -> None:
                async for _ in signals:
                    stop()
                    return

            nursery.start_soon(stop_on_signal)
            yield
            nursery.cancel_scope.cancel()


_interrupted = threading.Event()  # set by the handler interrupt_on_signals() installed last


def interrupt_on_signals() -> threading.Event:
    """Outside trio (building the sandbox, writing the report), SIGINT and SIGTERM both
    unwind as Ctrl-C does (KeyboardInterrupt, exit 130), so namespaces, the sink and any
    live sysctl change are cleaned up by the same code; inside, stopped_by_signal handles
    both. SIGINT is set too: a command started in the background of a script inherits
    SIGINT ignored, and Python then installs no handler of its own, so a SIGINT was obeyed
    during the load (trio's receiver) and ignored while the sandbox was being built.

    A KeyboardInterrupt raised while a finalizer or an at-fork hook runs is only reported
    by Python ("Exception ignored in ...") and lost: a SIGTERM that landed in logging's
    after-fork hook while the sink was being spawned was lost so, and the run went on to
    its full duration and exit 0 (seen 1 time in 13 with the signal 10 ms after the
    journal was written). So the handler also sets the returned event, which is what
    stopped_by_signal() and the report's drawing check; the reports of such a lost
    interrupt are silenced, since the event carries it. Each call starts a new event (the
    run's second interrupt, while its report is drawn, is a new one)."""
    global _interrupted
    event = _interrupted = threading.Event()

    def handler(signum: int, frame: object) -> None:
        event.set()
        raise KeyboardInterrupt

    previous = sys.unraisablehook

    def unraisable(info: sys.UnraisableHookArgs) -> None:
        if not (event.is_set() and isinstance(info.exc_value, KeyboardInterrupt)):
            previous(info)

    sys.unraisablehook = unraisable
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return event
