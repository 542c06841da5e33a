"""The typed Comparison (core/comparison.py): its JSON is exactly what ``compare()`` gave as a
dict before it existed, it reads back from that JSON unchanged, and a damaged saved one is
refused in one line naming the field."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from portstorm import cli
from portstorm.core import compare as cmp
from portstorm.core.compare import METRICS, Subject, compare, comparison
from portstorm.core.comparefindings import compare_findings
from portstorm.core.comparison import Change, Comparison, Spread
from portstorm.core.fields import FieldError
from portstorm.core.result import RunResult
from tests.support.reportdata import simulate


def _old_compare(subjects: Sequence[Subject]) -> dict[str, Any]:
    """``compare()`` as it was before the typed Comparison (commit 524ff43), kept as the
    reference the JSON must still equal: same keys, same order, same rounding."""

    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 6)

    base = subjects[0].metrics
    out = []
    for i, s in enumerate(subjects):
        m = s.metrics
        row: dict[str, Any] = {
            "label": s.label,
            "paths": list(s.paths),
            "factors": dict(s.factors),
            "hosts": s.hosts,
            "repeats": len(s.runs),
            "metrics": {k: v.to_json() for k, v in m.items()},
            "failure_mix_pct": {k: round(v, 4) for k, v in s.failure_mix.items()},
            "steady_state": all(cmp.steady_state_seen(x) for x in s.runs if x.first_failure_s),
        }
        if i:
            row["changes"] = {}
            for k, _label, _unit in METRICS:
                c = cmp.change(base[k], m[k])
                row["changes"][k] = {"delta": r(c.delta), "relative": r(c.relative),
                                     "significant": c.significant}  # fmt: skip
        out.append(row)
    return {"format": "portstorm.compare/1", "baseline": subjects[0].label, "subjects": out,
            "metrics": [{"key": k, "label": lab, "unit": u} for k, lab, u in METRICS]}  # fmt: skip


def _runs(*rates: int, **kw: Any) -> tuple[RunResult, ...]:
    return tuple(simulate(rate=rate, **kw) for rate in rates)


def _singles() -> list[Subject]:
    slow = Subject("tcp_tw_reuse=0", _runs(50, ports=100, duration=75),
                   ("a/result.json",), {"tcp_tw_reuse": "0"})  # fmt: skip
    fast = Subject("tcp_tw_reuse=1", _runs(50, ports=100, duration=75, hold_s=1.0),
                   ("b/result.json",), {"tcp_tw_reuse": "1"})  # fmt: skip
    return [slow, fast]


def _repeats() -> list[Subject]:
    """Three repeats each: one clearly beyond the baseline's spread, one within it, one that
    ran out of ports in only some repeats, one that never did."""
    return [
        Subject("base", _runs(48, 50, 52, ports=20_000), ("r1", "r2", "r3")),
        Subject("faster", _runs(70, 72, 75, ports=20_000, knee_us=900), ("f1", "f2", "f3")),
        Subject("same", _runs(49, 50, 51, ports=20_000), ("s1", "s2", "s3")),
        Subject("some ran out", (simulate(ports=100, duration=30), *_runs(50, 51, ports=20_000))),
        Subject("loopback", _runs(40, 45, ports=300, sandbox="loopback", syn_tail=2, hold_s=5.0)),
    ]


def _mixed() -> list[Subject]:
    """Single runs and repeats together, a case without a capacity model, an rst close."""
    return [
        Subject("one", _runs(50, ports=60, duration=8, capacity=False)),
        Subject("rst", _runs(50, 60, close="rst", duration=5), factors={"close": "rst"}),
        Subject("many ports", _runs(30, ports=5000, duration=4, slow_us=(7_000, 90_000))),
    ]


SETS = {"singles": _singles, "repeats": _repeats, "mixed": _mixed}


@pytest.mark.parametrize("name", sorted(SETS))
def test_to_json_is_the_old_dict_and_compare_returns_it(name: str) -> None:
    subjects = SETS[name]()
    old = _old_compare(subjects)
    assert comparison(subjects).to_json() == old
    assert json.dumps(comparison(subjects).to_json()) == json.dumps(old)  # order and types too
    assert compare(subjects) == old


@pytest.mark.parametrize("name", sorted(SETS))
def test_from_json_round_trips(name: str) -> None:
    c = comparison(SETS[name]())
    saved = json.loads(json.dumps(c.to_json(), indent=1))
    back = Comparison.from_json(saved)
    assert back == c
    assert json.dumps(back.to_json()) == json.dumps(c.to_json())
    assert Comparison.of(saved) == c and Comparison.of(c) is c


def test_the_typed_rows_say_what_the_json_said() -> None:
    c = comparison(_repeats())
    base, faster, same = c.rows[0], c.rows[1], c.rows[2]
    assert c.baseline == "base" and base.is_baseline and not faster.is_baseline
    assert faster.change("rate").significant is True
    assert same.change("rate").significant is False
    assert isinstance(faster.change("rate"), Change) and isinstance(base.spread("rate"), Spread)
    assert base.spread("rate") == Spread(50.0, 48.0, 52.0, 3, 3)
    assert faster.change("rate").delta == pytest.approx(22.0, abs=1e-3)
    with pytest.raises(KeyError, match="baseline"):
        base.change("rate")
    assert c.rows[3].median("first_failure_s") is None  # 1 of 3 ran out: "none" is typical
    assert c.rows[3].failure_mix_pct["port_exhausted"] > 0
    assert c.label("p999_us") == "p99.9" and c.label("nope") == "nope"
    assert c.hosts == ("testbox (Linux 6.18.0)",)
    assert [m.key for m in c.metrics] == [k for k, _l, _u in METRICS]


def test_findings_are_the_same_from_the_value_and_from_its_json() -> None:
    for make in SETS.values():
        c = comparison(make())
        assert compare_findings(c) == compare_findings(c.to_json())


def _damaged(path: str, value: Any) -> dict[str, Any]:
    doc = comparison(_singles()).to_json()
    where: Any = doc
    *parents, last = path.replace("[", ".[").split(".")
    for p in parents:
        where = where[int(p[1:-1])] if p.startswith("[") else where[p]
    if value is KeyError:
        del where[last]
    elif last.startswith("["):
        where[int(last[1:-1])] = value
    else:
        where[last] = value
    return doc


DAMAGES: list[tuple[str, Any, str]] = [
    ("baseline", KeyError, "baseline: missing; allowed: a string"),
    ("subjects", [], "subjects: an empty list; allowed: one subject or more"),
    ("subjects[1].label", 5, "subjects[1].label: 5; allowed: a string"),
    ("subjects[0].paths", "x", "subjects[0].paths: 'x'; allowed: a list"),
    ("subjects[0].hosts", KeyError, "subjects[0].hosts: missing; allowed: a list"),
    ("subjects[0].repeats", True, "subjects[0].repeats: true; allowed: an integer from 0"),
    ("subjects[0].metrics.rate.median", "fast",
     "subjects[0].metrics.rate.median: 'fast'; allowed: a number"),
    ("subjects[1].metrics.p99_us", KeyError,
     "subjects[1].metrics.p99_us: missing; allowed: an object"),
    ("subjects[0].metrics.rate.n", -1, "subjects[0].metrics.rate.n: -1; allowed: an integer"),
    ("subjects[1].failure_mix_pct.port_exhausted", None,
     "subjects[1].failure_mix_pct.port_exhausted: null; allowed: a number from 0"),
    ("subjects[0].steady_state", "yes", "subjects[0].steady_state: 'yes'; allowed: true or false"),
    ("subjects[1].changes", KeyError, "subjects[1].changes: missing; allowed: an object"),
    ("subjects[1].changes.rate.significant", "yes",
     "subjects[1].changes.rate.significant: 'yes'; allowed: true or false or null"),
    ("subjects[1].changes.rate.relative", float("nan"),
     "subjects[1].changes.rate.relative: nan; allowed: a number"),
    ("metrics[2].label", None, "metrics[2].label: null; allowed: a string"),
    ("metrics[1].key", "rate", "metrics[1].key: 'rate' again; allowed: each once"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "value", "message"), DAMAGES, ids=[d[0] for d in DAMAGES])
def test_a_damaged_comparison_is_one_error_naming_the_field(
    path: str, value: Any, message: str
) -> None:
    with pytest.raises(FieldError) as e:
        Comparison.from_json(_damaged(path, value))
    assert str(e.value).startswith(message), str(e.value)
    assert "\n" not in str(e.value)


def _main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        pytest.raises(SystemExit) as e,
    ):
        cli.main(argv)
    return int(e.value.code or 0), out.getvalue(), err.getvalue()


def test_compare_reads_a_saved_comparison_back_and_refuses_a_damaged_one(
    tmp_path: Path,
) -> None:
    paths = []
    for name, subject in zip("ab", _singles(), strict=True):
        (tmp_path / name).mkdir()
        paths.append(tmp_path / name / "result.json")
        paths[-1].write_text(json.dumps(subject.runs[0].to_json()))
    code, saved, _err = _main(["compare", *map(str, paths), "--json"])
    assert code == 0
    (tmp_path / "cmp.json").write_text(saved)
    code, again, _err = _main(["compare", str(tmp_path / "cmp.json"), "--json"])
    assert code == 0 and again == saved  # its subjects, re-read from the results it names
    doc = json.loads(saved)
    doc["subjects"][1]["changes"]["p50_us"]["delta"] = [1]
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    code, out, err = _main(["compare", str(tmp_path / "bad.json"), str(paths[0])])
    assert code == 2 and out == ""
    assert err.strip() == (
        f"portstorm: error: {tmp_path / 'bad.json'}: damaged comparison: "
        "subjects[1].changes.p50_us.delta: a list; allowed: a number from -10^30 to 10^30 "
        "or null"
    )


def test_the_terminal_table_keeps_each_subject_label_whole() -> None:
    from rich.console import Console

    from portstorm.cli.console import print_compare

    labels = ("tcp_fin_timeout=5", "tcp_fin_timeout=30", "tcp_fin_timeout=60")
    doc = comparison([Subject(label, _runs(100, 110)) for label in labels])
    out = io.StringIO()
    print_compare(doc, Console(file=out, width=180, highlight=False))
    text = out.getvalue()
    for label in labels:  # rich cut them to "tcp_fin_timeou…" to give the numbers room
        assert f"{label} (n=2)" in text, text
