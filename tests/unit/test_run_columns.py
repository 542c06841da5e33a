"""Reading a long result column by column gives what reading it interval by interval
gave: the bulk read-back of version 2 intervals (core/runcolumns.py), counter columns
(core/counters.py Table), summed totals and the hlog export made as bytes.

Pure and in-process, on small literal runs: equality, never time.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from portstorm.core import counters, runcolumns
from portstorm.core.counters import Counters
from portstorm.core.errors import UsageError
from portstorm.core.hdrblock import HdrBlock
from portstorm.core.records import Interval, summed_counts
from portstorm.core.result import RunResult, result_text
from portstorm.report.exports import hlog, hlog_bytes, intervals_csv
from tests.support.reportdata import simulate


def _varied() -> RunResult:
    """A pair run whose intervals differ the ways a day's do: a sample that read no
    counters, a server side missing, a counter outside DESIGN.md's five, two
    destinations, a gap between two intervals."""
    r = simulate(ports=100, rate=50, duration=12, sandbox="pair")
    ivs = list(r.intervals)
    for k, i in enumerate(ivs):
        kernel = dict(i.kernel or {}) | {"TcpActiveOpens": 50 + k}
        dests = (
            {"198.18.0.2:9000": 10 + k, "198.18.0.3:9000": k} if k % 3 else {"198.18.0.2:9000": 7}
        )
        ivs[k] = dataclasses.replace(i, kernel=kernel, ports_by_destination=dests, fds=30 + k)
    ivs[4] = dataclasses.replace(ivs[4], kernel=None, server_kernel=None, ports_by_destination=None)
    ivs[7] = dataclasses.replace(ivs[7], server_kernel=None)
    ivs[9] = dataclasses.replace(ivs[9], t=ivs[9].t + 0.5)  # a gap before it
    return dataclasses.replace(r, intervals=tuple(ivs), ramp=())


def _both_ways(doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    bulk = RunResult.from_json(json.loads(json.dumps(doc)), lazy=True).intervals
    with monkeypatch.context() as m:
        m.setattr(runcolumns, "read_back", lambda *a: None)  # interval by interval
        one_by_one = RunResult.from_json(json.loads(json.dumps(doc)), lazy=True).intervals
    return bulk, one_by_one


def test_a_run_read_column_by_column_is_the_run_read_interval_by_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doc = json.loads(result_text(_varied()))
    doc["intervals"][2]["kernel"]["TcpActiveOpens"] = 999  # its own, beside its column's
    assert runcolumns.read_back(doc["intervals"], *_index(doc)) is not None  # the bulk way
    bulk, one_by_one = _both_ways(doc, monkeypatch)
    assert bulk == one_by_one
    assert bulk[4].kernel is None and bulk[7].server_kernel is None  # null, read as null
    assert (
        bulk[6].server_kernel is not None and bulk[6].server_kernel == one_by_one[6].server_kernel
    )
    assert bulk[3].kernel is not None and bulk[3].kernel["TcpActiveOpens"] == 53
    assert bulk[2].kernel is not None and bulk[2].kernel["TcpActiveOpens"] == 999
    assert bulk[4].ports_by_destination is None
    assert bulk[1].ports_by_destination == {"198.18.0.2:9000": 11, "198.18.0.3:9000": 1}
    assert "dt" in doc["intervals"][8] and "dt" not in doc["intervals"][7]  # a gap after 8
    assert bulk[8].dt == bulk[7].dt == 1.0 and bulk[9].t == 9.5


def _index(doc: dict[str, Any]) -> tuple[Any, ...]:
    from portstorm.core.runform import Columns, names_from_json

    names = names_from_json(doc["interval_counters"])
    index = {side: counters.index(names[side]) for side in names}
    cols = Columns(doc["interval_columns"], len(doc["intervals"]))
    cols.place(index)
    return index, cols, 3


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda i: i.update(kernel_read=["TcpExtTW"]), id="other counters read"),
        pytest.param(lambda i: i["kernel"].update(TcpFoo=3), id="a name not listed"),
        pytest.param(lambda i: i.update(kernel=[1, 2]), id="a map that is a list"),
        pytest.param(lambda i: i["kernel"].update(TcpExtTW=True), id="a bool for a count"),
        pytest.param(lambda i: i.update(ports_by_destination={"x:1": 2}), id="own destinations"),
    ],
)
def test_a_file_not_shaped_as_a_run_writes_is_read_the_long_way_alike(
    change: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = json.loads(result_text(_varied()))
    change(doc["intervals"][5])
    assert runcolumns.read_back(doc["intervals"], *_index(doc)) is None
    try:
        bulk, one_by_one = _both_ways(doc, monkeypatch)
    except ValueError as e:  # refused: refused the same way, naming the interval
        with pytest.raises(ValueError, match=r"intervals\[5\]") as again:
            _both_ways(doc, monkeypatch)
        assert str(again.value) == str(e)
    else:
        assert bulk == one_by_one


def test_a_counter_column_reads_each_row_as_its_mapping_does() -> None:
    names = counters.index(["TcpExtTW", "TcpOutRsts"])
    rows: list[Any] = Counters.rows(names, [(3, 0), (5, 2)])
    maps = [rows[0], None, rows[1]]
    assert counters.column(maps, "TcpOutRsts") == (0, None, 2)
    assert counters.column(maps, "TcpNone") == (0, None, 0)
    assert counters.column(maps, "TcpNone", absent=None) == (None, None, None)
    mixed = [*maps, {"TcpExtTW": 9}]  # a dict among rows: each read by its own get
    assert counters.column(mixed, "TcpExtTW") == (3, None, 5, 9)
    assert counters.column(mixed, "TcpOutRsts", absent=None) == (0, None, 2, None)


def test_summed_counts_keep_counters_order_most_frequent_then_first_seen() -> None:
    got = summed_counts([{"timeout": 2}, {}, {"refused": 2, "reset": 5}, {"timeout": 0}])
    assert list(got.items()) == [("reset", 5), ("timeout", 2), ("refused", 2)]


def test_the_exports_from_a_files_block_are_those_from_its_intervals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lazy = RunResult.from_json(json.loads(result_text(_varied())), lazy=True)
    full = lazy.with_interval_histograms()  # each Interval holding its own histogram
    assert lazy.interval_hdrs is not None and full.interval_hdrs is None
    assert hlog_bytes(lazy) == hlog_bytes(full) and hlog(lazy) == hlog_bytes(full).decode()
    with monkeypatch.context() as m:  # the CSV of the same file, read interval by interval
        m.setattr(runcolumns, "read_back", lambda *a: None)
        slow = RunResult.from_json(json.loads(result_text(_varied())), lazy=True)
    assert intervals_csv(lazy) == intervals_csv(slow)
    assert ",TcpActiveOpens," in intervals_csv(lazy).splitlines()[0] + ","


def test_a_damaged_histogram_in_the_block_names_its_interval() -> None:
    r = RunResult.from_json(json.loads(result_text(_varied())), lazy=True)
    texts = r.interval_histograms()
    k = next(k for k, t in enumerate(texts) if t is not None)
    texts[k] = "SGVsbG8gd29ybGQ="  # base64, but not an HdrHistogram
    damaged = dataclasses.replace(r, interval_hdrs=HdrBlock.of(texts))
    with pytest.raises(UsageError, match=rf"intervals\[{k}\]\.hdr: not an HdrHistogram"):
        hlog_bytes(damaged)


def test_intervals_built_in_bulk_are_intervals() -> None:
    one = RunResult.from_json(json.loads(result_text(_varied())), lazy=True).intervals[0]
    assert type(one) is Interval
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.t = 3.0  # type: ignore[misc]
