"""A module planted in the working directory is never imported by portstorm's children.

portstorm runs as root from wherever its user stands. ``python -m X`` puts the working
directory first on sys.path, so a child started that way (the built-in sink, the driver
workers, a sweep's runs) from /tmp would import a ``sniffio.py`` someone left there, as
root, before trio's own. Children start with ``-P`` (Python 3.11: no unsafe path first).
(A sweep's runs start in their own new folders, so only the sink and workers are shown.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.netns import check, load, run_in_netns

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[2]
# every child imports trio, and trio imports these first: each would be taken from the
# working directory if it came before site-packages on sys.path
PLANTED = ("sniffio", "outcome", "attr", "sortedcontainers")


def _plant(where: Path) -> Path:
    marker = where / "imported"
    for name in PLANTED:
        (where / f"{name}.py").write_text(
            f"open({str(marker)!r}, 'a').write({name!r} + '\\n')\n"
            "raise ImportError('a module planted in the working directory was imported')\n"
        )
    return marker


def test_the_sink_and_the_workers_ignore_modules_in_the_working_directory(
    tmp_path: Path,
) -> None:
    marker = _plant(tmp_path)
    out = tmp_path / "r"
    # the top-level process the way a console script starts it (sys.path[0]: its own folder)
    ps = f'"{sys.executable}" -P -m portstorm'
    proc = run_in_netns(
        f'cd "{tmp_path}" && PYTHONPATH="{ROOT}" {ps} run --workers 2 --rate 200 '
        f'--duration 0.5 --quiet --no-report --out "{out}"'
    )
    check(proc)
    assert not marker.exists(), marker.read_text()
    doc = load(out / "result.json")
    assert doc["scenario"]["workers"] == 2
    assert doc["totals"]["succeeded"] > 0
