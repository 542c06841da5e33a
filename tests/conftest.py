"""Suite-wide: the tests marked ``xdist_group("alone")`` run with no other test beside them
but the ``background`` ones (nice 19, below).

The suite runs on several pytest-xdist workers (``-n`` in pyproject.toml's addopts): most
namespace tests wait on a rate, not on the cores. A few must not share the machine:

- their assertions compare wall-clock time (four sweep cells in parallel against one; a
  signal ends a run within 2 s; an open loop ends at its duration) or counts per interval at
  a rate (500/s, +-1 % per interval), which a neighbour's load shifts;
- they load both cores on purpose (the benchmarks; 200,000 attempts/s), which would shift
  those of every test beside them;
- they count what the whole machine holds (every network namespace, every sink process).

``--dist loadgroup`` keeps the group on one worker, so they run one after another; but the
other workers would go on running tests beside them. So every test also takes a lock shared
by the workers of this session: shared by ordinary tests, exclusive by an ``alone`` test. The
ordinary tests are not held back for it (a waiting exclusive lock lets new shared ones in):
the ``alone`` ones run once no ordinary test is left running, at the end of the session, so
the machine drains once rather than once per ``alone`` test (both measured 294 s here: the
suite is bound by its CPU time, about 450 s on 2 cores). The lock is a flock(2) lock on a file in the
session's temporary folder (its workers' folders sit in it): nothing outside this session
shares it, and a worker that dies releases it with its file descriptors.

A test marked ``background`` takes no lock at all: its load runs at nice 19 (the
benchmark smoke tests, which assert no figure), so it may run beside the alone tests, in
the CPU they leave idle, and never keeps them waiting.

Most tests start ``python -m portstorm`` processes (a run, its sink, its workers, a sweep's
cells). Where PYTHONDONTWRITEBYTECODE is set (it is on the machine this was built on), every
one of them compiled each of portstorm's modules from source again: 0.2 CPU-s of the 1.5 a short
run cost. The session compiles them once at its start (``compileall``, which writes the
bytecode whatever that variable says; the interpreter still reads it), and the children
load it; a module edited later is recompiled as usual.
"""

from __future__ import annotations

import compileall
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ALONE = "alone"
PACKAGE = Path(__file__).resolve().parent.parent / "portstorm"


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER") is None:  # once, in the controller
        compileall.compile_dir(PACKAGE, quiet=2)


def _is_alone(item: pytest.Item) -> bool:
    for mark in item.iter_markers("xdist_group"):
        name = mark.args[0] if mark.args else mark.kwargs.get("name")
        if name == ALONE:
            return True
    return False


@pytest.fixture(autouse=True)
def _alone_or_beside_others(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        yield  # one process: every test runs by itself anyway
        return
    if request.node.get_closest_marker("background") is not None:
        yield  # at nice 19 (its commands say so): beside anything, the alone tests too
        return
    session = tmp_path_factory.getbasetemp().parent  # .../pytest-N, holding popen-gwK
    with (session / "alone.lock").open("a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if _is_alone(request.node) else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
