"""A run whose own result fails its checks when the load ends (a bug, as a pool's record out
of order once was): one line naming the check, exit 3, no traceback, and what the run
measured kept in intervals.jsonl for ``portstorm report``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.netns import require_netns

pytestmark = pytest.mark.netns

# the run's RunResult replaced by one that refuses itself as the pool bug's did
BROKEN = """
import sys
from portstorm.core import result
import portstorm.engine.run as run

class Refused(result.RunResult):
    def __post_init__(self) -> None:
        raise ValueError("ramp[3].t 0.502: before the last record's end 0.521")

run.RunResult = Refused
from portstorm.cli import main
main(sys.argv[1:])
"""


def test_a_result_that_fails_its_own_check_is_one_line_exit_3_and_its_intervals_kept(
    tmp_path: Path,
) -> None:
    require_netns()
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", BROKEN, "run", "--duration", "0.5", "--rate", "50",
         "--quiet", "--no-report", "--out", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "ramp[3].t 0.502" in lines[0] and "intervals.jsonl" in lines[0], lines[0]
    assert not (out / "result.json").exists()
    from portstorm.core import intervallog

    kept = intervallog.read(out / intervallog.NAME)
    assert kept.attempts > 0 and len(kept.intervals) >= 1
