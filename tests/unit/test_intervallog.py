"""intervals.jsonl: written as the run goes, read back into an incomplete result."""

from __future__ import annotations

from pathlib import Path

import pytest

from portstorm.core.errors import UsageError
from portstorm.core.intervallog import RECOVERED_NOTE, IntervalLog, read
from tests.support.reportdata import simulate


def _log(path: Path, n: int) -> None:
    r = simulate(ports=100, rate=50, duration=6)
    log = IntervalLog(path, {
        "tool": {"name": "portstorm", "version": "0.1.0"}, "host": r.host.to_json(),
        "started_at": r.started_at, "scenario": r.setup.to_json(), "tunings": dict(r.tunings),
        "server_tunings": None, "capacity": r.model.to_json() if r.model else None,
    })  # fmt: skip
    for k, i in enumerate(r.intervals[:n]):
        log.interval(i)
        if k == 2:
            log.first_failure(2.0, "port_exhausted")
    log.close()


def test_a_log_cut_by_a_kill_reads_back_as_an_incomplete_run(tmp_path: Path) -> None:
    path = tmp_path / "intervals.jsonl"
    _log(path, 4)
    with path.open("a") as f:
        f.write('{"interval": {"t": 4.0, "dt": 1.0, "atte')  # the write the kill cut short
    r = read(path)
    assert r.complete is False
    assert len(r.intervals) == 4
    assert (r.succeeded, r.failed) == (100, {"port_exhausted": 100})
    assert r.histogram.count == 100  # merged from the intervals' own histograms
    assert (r.first_failure_s, r.first_failure_outcome) == (2.0, "port_exhausted")
    assert r.duration_s == 4.0
    assert r.notes[-1] == RECOVERED_NOTE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty"),
        ('{"format": "portstorm.run/1"}\n', "not a portstorm interval log"),
        ('{"format": "portstorm.intervals/7"}\n', "newer than this portstorm reads"),
        ('{"format": "portstorm.intervals/1"}\nnot json\n{}\n', "line 2 is not JSON"),
        ('{"format": "portstorm.intervals/1"}\n', "damaged interval log"),
    ],
)
def test_a_bad_interval_log_is_one_usage_error(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "intervals.jsonl"
    path.write_text(text)
    with pytest.raises(UsageError, match=expected):
        read(path)
