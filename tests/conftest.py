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

The test modules themselves are read through pytest's assertion rewriting, which caches
the rewritten code beside them unless that variable is set. With it set, each of the -n
workers parsed and rewrote all ~100 test files again while collecting (a worker's
collection took 4.0 s here, 2.2-2.5 s with the cache, on a fresh clone or not). So the
session's controller writes that cache once before it starts the workers
(``_rewrite_tests_once``: 1.0 s, 0.03 s once cached), and they read it (pytest reads a
cached rewrite whatever the variable says). That uses pytest's own rewrite functions,
which are not a public API: where they differ (another pytest), the workers rewrite as
before, and tests/unit/test_suite_rewrite_cache.py fails to say so.
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
TESTS = Path(__file__).resolve().parent


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER") is None:  # once, in the controller
        compileall.compile_dir(PACKAGE, quiet=2)
        if getattr(session.config.option, "numprocesses", None):
            _rewrite_tests_once(session.config)


def _test_files(config: pytest.Config) -> list[Path]:
    """The conftest files, and the test files of the session's paths (``tests/unit``,
    ``tests/cli/test_cli.py::test_x``; none given: the testpaths)."""
    files = set(TESTS.rglob("conftest.py"))
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::")[0]).resolve()
        if path.is_dir():
            files.update(path.rglob("test_*.py"))
        elif path.name.startswith("test_") and path.suffix == ".py":
            files.add(path)
    return sorted(f for f in files if f.is_relative_to(TESTS))


def _rewrite_tests_once(config: pytest.Config) -> None:
    """Write pytest's cache of the rewritten test modules (conftest files and test files,
    the ones its hook rewrites here), where it is missing or stale, before the workers
    start; nothing is imported or run."""
    try:
        from _pytest.assertion import rewrite
    except ImportError:
        return
    needed = ("assertstate_key", "get_cache_dir", "PYC_TAIL", "_read_pyc", "_rewrite_test",
              "_write_pyc", "try_makedirs")  # fmt: skip
    if config.getoption("assertmode") != "rewrite" or not all(
        hasattr(rewrite, name) for name in needed
    ):
        return
    state = config.stash[rewrite.assertstate_key]
    for fn in _test_files(config):
        cache = rewrite.get_cache_dir(fn)
        pyc = cache / (fn.name[:-3] + rewrite.PYC_TAIL)
        try:
            if rewrite._read_pyc(fn, pyc) is not None or not rewrite.try_makedirs(cache):
                continue
            source_hash, code = rewrite._rewrite_test(fn, config)
            rewrite._write_pyc(state, code, source_hash, pyc)
        except (TypeError, ValueError, OSError, SyntaxError):
            return  # another pytest's internals, or a file it cannot cache: workers rewrite


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
