"""--hold: each connection stays open its hold before the close mode applies, so an open
loop holds rate x hold connections at its steady state. Checked against ``ss`` in the
client's namespace while the run is going, and against the sampler's ``established``."""

from __future__ import annotations

import json
import statistics
import subprocess
from pathlib import Path

import pytest

from tests.support.netns import load_intervals, start_in_netns, wait_for_lines

pytestmark = pytest.mark.netns

RATE, HOLD_S, DURATION_S = 100, 2, 5
HELD = RATE * HOLD_S  # 200 at the steady state


def _established_in(pid: int) -> int:
    """Client sockets in ESTABLISHED in the network namespace of process ``pid``."""
    out = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "ss", "-Htn", "state", "established"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return len(out.splitlines())


@pytest.mark.parametrize("close", ["client", "server"])
def test_an_open_loop_with_a_hold_keeps_rate_times_hold_connections_open(
    tmp_path: Path, close: str
) -> None:
    out = tmp_path / "out"
    proc = start_in_netns(
        f"$PORTSTORM run --sandbox pair --rate {RATE} --hold {HOLD_S} --duration {DURATION_S} "
        f'--close {close} --no-report --out "{out}"',
        tmp_path / "log",
    )
    try:
        # the header and three intervals: the load is past 3 s, so every connection of the
        # last two seconds is held (the pair sandbox's client namespace is the run's own)
        wait_for_lines(out / "intervals.jsonl", 4, proc, timeout=90)
        seen = _established_in(proc.pid)
        proc.wait(timeout=DURATION_S + HOLD_S + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = (tmp_path / "log").read_text()
    assert proc.returncode == 0, log
    # one reading, held to the bounds of one sampler reading below: a driver that a loaded
    # machine held back catches up with a burst of starts, all held 2 s (beside stress-ng
    # --cpu 2: 0 started by 1.3 s, 117 conn/s at 4.1 s, ss then counted 223; a fresh
    # clone's CI run, 260). Below 300 as the sampler's median below: a leak would add 100
    # a second, past 300 by the end
    assert 0.85 * HELD <= seen < 1.5 * HELD, f"ss counted {seen} established\n{log}"
    doc = json.loads((out / "result.json").read_text())
    t = doc["totals"]
    assert t["succeeded"] + t["not_started"] == RATE * DURATION_S and t["failed"] == {}, t
    assert doc["scenario"]["hold_s"] == HOLD_S
    # every connection was held its whole hold: the run ended after the last one's, and
    # within its time bound (the duration, the hold, the connect timeout's 3 s, saving)
    assert DURATION_S + HOLD_S - 0.1 <= doc["duration_s"] <= DURATION_S + HOLD_S + 4, doc
    steady = [
        i
        for i in load_intervals(out / "result.json")
        if i.t >= HOLD_S - 0.05 and i.t + i.dt <= DURATION_S
    ]
    assert steady, doc["intervals"]
    if steady[0].established is not None:  # the sampler's count, per interval
        held = [i.established for i in steady]
        # 200 at steady state, never fewer: a connection is never closed before its hold
        # (-15 % for a sample taken at an interval's edge). A loaded machine's driver closes
        # late and catches up on its starts in a burst, so more: 226 and 236 in full suites,
        # 282 in a CI run on the slower host (201 the other). A leak would add 100 a second,
        # past 300 by the end
        assert all(n >= 0.85 * HELD for n in held), held
        assert statistics.median(held) <= 1.5 * HELD, held
    sink = doc["scenario"]["sink_stats"]
    assert sink["accepted"] == t["succeeded"] and sink["idle_timeouts"] == 0, sink
