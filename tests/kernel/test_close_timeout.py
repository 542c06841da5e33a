"""--close server against a server that accepts and never closes: each connection was made,
then waited out its close, which is ``close_timeout`` (not ``timeout``, a connect failure),
with its own limit (--close-timeout), and the run still ends within its time bound. Against
the real kernel in a throwaway namespace; the option's refusals without one."""

from __future__ import annotations

from pathlib import Path

import pytest

from portstorm.core.findings import run_findings
from portstorm.core.outcome import FAILURES
from portstorm.core.result import load_result
from portstorm.report.style import OUTCOME_COLOURS
from tests.support.cli import assert_one_line_error, portstorm
from tests.support.netns import check, load, run_in_netns

# Accepts and holds every connection, never closing one, for at most 60 s (the script
# ends it by PID first).
NEVER_CLOSES = (
    "import socket,time; s=socket.socket(); s.setsockopt(1,2,1); "
    "s.bind(('127.0.0.1',7013)); s.listen(512); s.settimeout(0.2); held=[]; "
    "end=time.monotonic()+60\n"
    "while time.monotonic()<end:\n"
    "  try: held.append(s.accept()[0])\n"
    "  except TimeoutError: pass"
)
DURATION_S, CONNECT_TIMEOUT_S = 1, 0.5


def _against_a_server_that_never_closes(out: Path, options: str) -> str:
    return f"""
python3 -c "{NEVER_CLOSES}" &
pid=$!
for i in $(seq 600); do [ "$(ss -Hltn 'sport = :7013' | wc -l)" = 1 ] && break; sleep 0.1; done
$PORTSTORM run 127.0.0.1:7013 --close server --rate 20 --duration {DURATION_S} \\
  --connect-timeout {CONNECT_TIMEOUT_S} {options} --no-report --quiet --out "{out}" || rc=$?
kill $pid
exit ${{rc:-0}}
"""


@pytest.mark.netns
@pytest.mark.parametrize(("options", "limit_s"), [("--close-timeout 2", 2.0), ("", 0.5)])
def test_a_server_that_never_closes_gives_close_timeouts_within_the_time_bound(
    tmp_path: Path, options: str, limit_s: float
) -> None:
    check(run_in_netns(_against_a_server_that_never_closes(tmp_path, options)))
    doc = load(tmp_path / "result.json")
    totals = doc["totals"]
    assert totals["attempts"] == DURATION_S * 20, totals
    assert totals["succeeded"] == 0, totals
    assert totals["failed"] == {"close_timeout": totals["attempts"]}, totals  # not "timeout"
    assert doc["scenario"]["close_timeout_s"] == limit_s
    # they connected: every one's connect latency is in the histogram
    r = load_result(tmp_path / "result.json")
    assert r.histogram.count == totals["attempts"]
    assert doc["latency_us"]["p50"] is not None
    # the time bound: the planned end plus the longer of the two timeouts (and the
    # last interval's unwinding)
    assert doc["duration_s"] <= DURATION_S + max(limit_s, CONNECT_TIMEOUT_S) + 0.5, doc
    # the close wait is the close timeout's: the first attempt starts at 0 s, connects at
    # once, and counts as close_timeout only once the limit has passed
    assert doc["events"]["first_failure_s"] >= limit_s, doc["events"]
    found = {f.kind: f.text for f in run_findings(r)}
    assert "may wait for a request" in found["close-timeout"], found
    assert "failure-timeout" not in found and "failure-close_timeout" not in found


@pytest.mark.parametrize("value", ["0", "-1", "soon", "3601"])
def test_a_bad_close_timeout_is_refused_in_one_line(value: str) -> None:
    proc = portstorm("run", "--close", "server", "--close-timeout", value, "--duration", "1")
    assert_one_line_error(proc, 2, "--close-timeout")


def test_every_outcome_has_its_chart_colour() -> None:
    # a close_timeout run's report once failed on the rate chart's colour lookup
    assert {str(o) for o in FAILURES} <= set(OUTCOME_COLOURS)
