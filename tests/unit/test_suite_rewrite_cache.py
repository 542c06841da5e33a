"""The session's controller writes pytest's cache of the rewritten test modules before its
workers start (tests/conftest.py): with PYTHONDONTWRITEBYTECODE set, nothing else writes
it, so a worker finding this file's entry there shows the controller did. A pytest whose
internals no longer fit fails here rather than slowing every worker down unseen."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from _pytest.assertion import rewrite


def test_the_controller_cached_this_files_rewrite_before_the_workers_started() -> None:
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        pytest.skip("one process (-n 0): there is no controller to write the cache first")
    if not sys.dont_write_bytecode:
        pytest.skip("PYTHONDONTWRITEBYTECODE is not set: the workers write the cache too")
    here = Path(__file__)
    pyc = rewrite.get_cache_dir(here) / (here.name[:-3] + rewrite.PYC_TAIL)
    assert pyc.is_file(), pyc
    assert rewrite._read_pyc(here, pyc) is not None, f"{pyc} is not this file's rewrite"
