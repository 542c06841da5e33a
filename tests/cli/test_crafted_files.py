"""Crafted result.json and sweep.json files: each wrong shape is one line naming the file
and the field, exit 2, no traceback, for ``report``, ``compare`` and ``sweep --resume``.

The commands run in this process; what would draw charts or start a sweep is replaced by a
sentinel (a file that passes reaches it), so nothing here runs a load.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portstorm.core.errors import UsageError
from portstorm.core.fields import FieldError
from portstorm.core.result import RunResult
from portstorm.core.sweep import check_sweep_doc
from tests.support.cli import invoke, reached
from tests.support.reportdata import simulate
from tests.support.sweeps import sweep_folder

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def _nothing_acts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr("portstorm.cli.sweepcmd.SweepRunner", reached)
    for where in ("portstorm.report", "portstorm.report.build"):
        monkeypatch.setattr(f"{where}.write_run_report", reached)
        monkeypatch.setattr(f"{where}.write_many_report", reached)
    yield


def assert_one_line(argv: list[str], *fragments: str) -> None:
    code, err = invoke(argv)
    assert code == 2, (argv, code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("portstorm: error: "), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def result_doc() -> dict[str, Any]:
    return simulate(duration=3, rate=50, ports=100).to_json()


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``doc`` with the value at ``a/0/b`` replaced (``value`` _DELETE: removed)."""
    doc = copy.deepcopy(doc)
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split("/")]
    node: Any = doc
    for k in keys[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return doc


def field_name(path: str) -> str:
    """``intervals/0/t`` as an error names it: ``intervals[0].t``."""
    return re.sub(r"/(\d+)", r"[\1]", path).replace("/", ".")


class _Delete:
    """The field removed instead of replaced. Its repr names it: test ids hold it, and
    pytest-xdist's workers must collect the same ids (an object()'s repr is an address)."""

    def __repr__(self) -> str:
        return "DELETE"


_DELETE = _Delete()

RESULT_CASES = [
    ("latency_us/hdr", "HISTFAAAAB3not-a-histogram"),
    ("intervals/0/hdr", "eJyTaW"),
    ("intervals/1/latency_us/p50", "abc"),
    ("capacity/usable_ports", _DELETE),
    ("intervals/0/kernel/TcpExtTW", "x"),
    ("intervals/2/succeeded", math.nan),
    ("intervals/0/attempts", -1),
    ("intervals/0/failed", {"port_exhausted": -5}),
    ("duration_s", math.inf),
    ("host/cpus", "2"),
    ("host", ["box"]),
    ("tunings", ["tcp_tw_reuse"]),
    ("tunings/net.ipv4.tcp_tw_reuse", 2),
    ("scenario/targets", "198.18.0.2:9000"),
    ("scenario/rate", "fast"),
    ("capacity/hold_s", -60),
    ("notes", "one note"),
    ("intervals", {"t": 0}),
    ("intervals/0", 7),
    ("intervals/0/t", True),
    ("events", [1]),
    ("events/first_failure_s", "soon"),
    ("tool", None),
]


@pytest.mark.parametrize(("path", "value"), RESULT_CASES, ids=[c[0] for c in RESULT_CASES])
def test_a_crafted_result_is_one_line_naming_the_field(
    tmp_path: Path, path: str, value: Any
) -> None:
    f = tmp_path / "result.json"
    f.write_text(json.dumps(_set(result_doc(), path, value)))
    assert_one_line(["report", str(f)], str(f), field_name(path))
    assert_one_line(["compare", str(f), str(f)], str(f), field_name(path))


def test_a_sound_result_still_reaches_the_report(tmp_path: Path) -> None:
    f = tmp_path / "result.json"
    f.write_text(json.dumps(result_doc()))
    assert invoke(["report", str(f)])[0] is None
    assert RunResult.from_json(result_doc()).attempts == 150


def test_the_constructors_refuse_values_of_the_wrong_type() -> None:
    r = simulate(duration=2)
    with pytest.raises(FieldError, match=r"^intervals\[0\]"):
        RunResult.from_json(_set(r.to_json(), "intervals/0/dt", "1"))
    with pytest.raises(FieldError, match="hostname"):
        type(r.host)(7, "6.18.0", 2)  # type: ignore[arg-type]
    with pytest.raises(FieldError, match="ports_in_use"):
        type(r.intervals[0])(0.0, 1.0, 0, 0, {}, {}, {}, ports_in_use=math.nan)  # type: ignore[arg-type]


# -- sweep.json ---------------------------------------------------------------------------


SWEEP_CASES = [
    ("repeat", _DELETE),
    ("factors", _DELETE),
    ("started_at", _DELETE),
    ("started_at", "yesterday"),
    ("cells", None),
    ("parallel", 0),
    ("parallel", "x"),
    ("parallel", 5000),
    ("repeat", 0),
    ("repeat", 1.5),
    ("complete", "yes"),
    ("base_args", "--duration 2"),
    ("factors/0/values", []),
    ("factors/0/name", 3),
    ("cells/0", "x"),
    ("cells/0/label", None),
    ("cells/1/factors/tcp_tw_reuse", 1),
    ("cells/0/runs", {"path": "x"}),
    ("cells/0/runs/0/path", ["a"]),
    ("cells/1/runs/0/wall_s", math.nan),
    ("cells/1/runs/0/exit_code", "0"),
    ("host/cpus", -1),
]


@pytest.mark.parametrize(("path", "value"), SWEEP_CASES, ids=[f"{p}={v!r}" for p, v in SWEEP_CASES])
def test_a_crafted_sweep_is_one_line_naming_the_field(
    tmp_path: Path, path: str, value: Any
) -> None:
    f = sweep_folder(tmp_path)
    f.write_text(json.dumps(_set(json.loads(f.read_text()), path, value)))
    name = field_name(path)
    assert_one_line(["report", str(f)], str(f), name)
    assert_one_line(["compare", str(f), str(f)], str(f), name)
    assert_one_line(["sweep", "--resume", "--out", str(tmp_path), "--quiet"], str(f), name)


def test_a_sound_sweep_still_reaches_the_report_and_the_runner(tmp_path: Path) -> None:
    f = sweep_folder(tmp_path)
    check_sweep_doc(json.loads(f.read_text()), str(f))
    assert invoke(["report", str(f)])[0] is None
    assert invoke(["sweep", "--resume", "--out", str(tmp_path), "--quiet"])[0] is None


def test_check_sweep_doc_names_the_file_and_says_damaged() -> None:
    with pytest.raises(UsageError, match=r"^s\.json: damaged sweep\.json: cells: missing"):
        check_sweep_doc(
            {"format": "portstorm.sweep/1", "started_at": "2026-11-21T19:00:00Z",
             "complete": False, "repeat": 1, "base_args": [], "factors": []},
            "s.json",
        )  # fmt: skip
