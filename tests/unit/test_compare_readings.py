"""``portstorm compare`` without --html reads a result.json's intervals as readings only
(core/readings.py): the same comparison as from whole runs, and a damaged file still
refused in one line naming it and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from portstorm.core.compare import comparison
from portstorm.core.errors import UsageError
from portstorm.core.inputs import compared_subjects_of, subjects_of
from portstorm.core.readings import RunReadings
from portstorm.core.result import result_text
from tests.support.reportdata import simulate

EXAMPLE = Path(__file__).resolve().parents[2] / "reports/examples/run-port-exhaustion/result.json"


def _files(tmp_path: Path) -> list[Path]:
    runs = {
        "turnover": simulate(ports=100, rate=50, duration=8, hold_s=1.0),  # whole hold periods
        "held": simulate(ports=60, rate=40, duration=6, planned_s=5.0, hold_s=2.0),
        "ok": simulate(ports=20_000, rate=30, duration=4, tunings={"tcp_tw_reuse": "1"}),
    }
    out = []
    for name, run in runs.items():
        f = tmp_path / name / "result.json"
        f.parent.mkdir()
        f.write_text(result_text(run))
        out.append(f)
    return [*out, EXAMPLE]  # and a portstorm.run/1 file


def test_compare_reads_the_same_from_readings_as_from_whole_runs(tmp_path: Path) -> None:
    files = _files(tmp_path)
    light = compared_subjects_of(files)
    assert all(type(s.runs[0]) is RunReadings for s in light)  # none read the whole way
    whole = subjects_of(files)
    assert comparison(light).to_json() == comparison(whole).to_json()


def _damaged(tmp_path: Path, how: Any) -> Path:
    f = _files(tmp_path)[0]
    doc = json.loads(f.read_text())
    how(doc)
    f.write_text(json.dumps(doc))
    return f


@pytest.mark.parametrize(
    ("field", "how"),
    [
        ("intervals[5].time_wait", lambda d: d["intervals"][5].update(time_wait=-3)),
        ("intervals[2].succeeded", lambda d: d["intervals"][2].update(succeeded=1.5)),
        ("intervals[1].latency_us.p99", lambda d: d["intervals"][1]["latency_us"].update(p99=[])),
        ("interval_columns.data", lambda d: d["interval_columns"].update(data="%%")),
    ],
    ids=["time_wait", "succeeded", "p99", "columns"],
)
def test_a_damaged_column_read_as_readings_is_refused_in_one_line(
    tmp_path: Path, field: str, how: Any
) -> None:
    f = _damaged(tmp_path, how)
    with pytest.raises(UsageError) as e:
        compared_subjects_of([f, f])
    message = str(e.value)
    assert "\n" not in message and str(f) in message and field in message, message
