"""The fleet merge (core/fleet.py, fleetfile.py) and --start-at (core/startat.py) on literal
inputs: exact sums and histograms, wall-clock alignment, outliers, hostile fleet files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from portstorm.core.errors import EnvironmentProblem, UsageError
from portstorm.core.fleet import FleetMember, Missing, merge
from portstorm.core.fleetfile import fleet_from_doc, fleet_json, read_members
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.records import HostInfo, Interval
from portstorm.core.result import RunResult
from portstorm.core.setup import RunSetup
from portstorm.core.startat import (
    check_ahead,
    check_not_late,
    chrony_offset_s,
    parse_start_at,
    timesyncd_offset_s,
)

T = "2026-12-01T17:30:00.000Z"


def _run(
    host: str,
    latencies: list[list[int]],
    *,
    start_at: str | None = T,
    tunings: dict[str, str] | None = None,
    failed_at: int | None = None,
) -> RunResult:
    intervals, whole = [], LatencyHistogram()
    for k, values in enumerate(latencies):
        h = LatencyHistogram()
        h.record_many(values)
        whole.add(h)
        fails = {"port_exhausted": 5} if failed_at is not None and k >= failed_at else {}
        intervals.append(Interval(
            t=float(k), dt=1.0, attempts=len(values) + sum(fails.values()), succeeded=len(values),
            failed=fails, other_errnos={}, latency_us={"p50": h.percentile(50), "p99": h.percentile(99)},
            hdr=h.encode() if h.count else None, time_wait=len(values),
        ))  # fmt: skip
    return RunResult(
        tool_version="0", host=HostInfo(host, "6.18", 2), started_at="2026-12-01T17:29:50Z",
        duration_s=float(len(latencies)), complete=True,
        setup=RunSetup(sandbox="pair", interval_s=1.0, rate=100.0, start_at=start_at,
                       load_started_at=start_at),
        tunings=tunings or {"net.ipv4.tcp_tw_reuse": "2"}, intervals=tuple(intervals),
        histogram=whole, first_failure_s=None if failed_at is None else float(failed_at),
        first_failure_outcome=None if failed_at is None else "port_exhausted",
    )  # fmt: skip


def _members() -> list[FleetMember]:
    return [
        FleetMember("a", _run("a", [[100, 200, 300], [150]])),
        FleetMember("b", _run("b", [[1000] * 4, [90, 95]])),
        FleetMember("c", _run("c", [[120, 50_000], [130]], tunings={"net.ipv4.tcp_tw_reuse": "1"})),
    ]


def test_a_merge_adds_counts_and_histograms_exactly_per_wall_clock_second() -> None:
    members = _members()
    fleet = merge(members, [Missing("d", "unreachable")])
    by_hand = LatencyHistogram()
    for m in members:
        by_hand.add(m.result.histogram)
    assert fleet.merged.attempts == sum(m.result.attempts for m in members) == 13
    assert fleet.merged.histogram.count == by_hand.count == fleet.merged.succeeded
    assert fleet.merged.histogram.percentile(99) == by_hand.percentile(99)
    assert [iv.succeeded for iv in fleet.merged.intervals] == [9, 4]
    assert [iv.time_wait for iv in fleet.merged.intervals] == [9, 4]
    assert fleet.aligned_on == "start_at" and not fleet.merged.complete
    assert fleet.merged.tunings["net.ipv4.tcp_tw_reuse"] == "mixed: 1 | 2"
    assert [o.name for o in fleet.outliers] == ["c"]
    assert "tcp_tw_reuse = 1 (most hosts: 2)" in fleet.outliers[0].why[0]


def test_runs_without_start_at_align_on_started_at_with_a_note() -> None:
    late = dataclasses.replace(
        _run("b", [[10], [10]], start_at=None), started_at="2026-12-01T17:29:51Z"
    )
    fleet = merge(
        [FleetMember("a", _run("a", [[10], [10]], start_at=None)), FleetMember("b", late)]
    )
    assert fleet.aligned_on == "started_at"
    assert [iv.succeeded for iv in fleet.merged.intervals] == [1, 2, 1]  # b one second later
    assert any("run with --start-at" in n for n in fleet.notes)


def test_a_host_failing_when_the_others_do_not_is_named() -> None:
    members = [FleetMember(n, _run(n, [[100] * 10, [100] * 10])) for n in "abc"]
    members.append(FleetMember("d", _run("d", [[100] * 10, [100] * 10], failed_at=1)))
    fleet = merge(members)
    assert [(o.name, o.why[0].split(" (")[0]) for o in fleet.outliers] == [
        ("d", "first failure port_exhausted")
    ]


def test_runs_of_different_intervals_are_refused() -> None:
    a = _run("a", [[1]])
    b = dataclasses.replace(a, setup=dataclasses.replace(a.setup, interval_s=0.5))
    with pytest.raises(UsageError, match="--interval differ"):
        merge([FleetMember("a", a), FleetMember("b", b)])


def test_fleet_json_reads_back_and_a_crafted_one_is_one_line(tmp_path: Path) -> None:
    doc = json.loads(json.dumps(fleet_json(merge(_members()), "0", T)))
    back = fleet_from_doc(tmp_path / "fleet.json", doc)
    assert [r.name for r in back.rows] == ["b", "a", "c"]  # by rate: 3, 2, 1.5 conn/s
    assert back.merged.attempts == 13 and back.outliers[0].name == "c"
    doc["hosts"][0]["totals"]["attempts"] += 1
    with pytest.raises(UsageError, match=r"damaged fleet\.json") as e:
        fleet_from_doc(tmp_path / "fleet.json", doc)
    assert "\n" not in str(e.value)
    with pytest.raises(UsageError, match="newer than this portstorm"):
        fleet_from_doc(tmp_path / "fleet.json", {**doc, "format": "portstorm.fleet/9"})


def test_a_crafted_fleet_member_is_refused_in_one_line(tmp_path: Path) -> None:
    doc = _members()[0].result.to_json()
    doc["totals"]["attempts"] = 10**30
    doc["intervals"][0]["succeeded"] = "many"
    (tmp_path / "h1").mkdir()
    (tmp_path / "h1" / "result.json").write_text(json.dumps(doc))
    with pytest.raises(UsageError) as e:
        read_members([tmp_path])
    assert "h1/result.json" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("text", "epoch"),
    [("2026-12-01T17:30:00Z", 1796146200.0), ("2026-12-01T18:30:00+01:00", 1796146200.0),
     ("2026-12-01T17:30:00", 1796146200.0), ("1796146200", 1796146200.0),
     ("1796146200.25", 1796146200.25)],
)  # fmt: skip
def test_start_at_takes_utc_iso_8601_or_epoch_seconds(text: str, epoch: float) -> None:
    assert parse_start_at(text) == epoch


def test_a_start_already_past_is_refused_with_exit_2_and_one_passed_while_preparing_with_3() -> (
    None
):
    with pytest.raises(UsageError, match="already past") as e:
        check_ahead(100.0, 1_000_000_000.0)
    assert e.value.exit_code == 2
    with pytest.raises(EnvironmentProblem, match="passed while preparing") as p:
        check_not_late(1_000_000_000.0, 1_000_000_000.5, 0.02, 1.7)
    assert p.value.exit_code == 3
    with pytest.raises(UsageError, match="not a UTC ISO 8601"):
        parse_start_at("tomorrow")


def test_a_start_that_passed_while_preparing_stops_the_run_before_its_load() -> None:
    import datetime as dt
    import time

    from portstorm.engine.fleetstart import load_start_ns

    started = dt.datetime.now(dt.UTC)
    with pytest.raises(EnvironmentProblem, match="passed while preparing"):
        load_start_ns(time.time() + 0.001, started)
    assert load_start_ns(None, started) is None


def test_the_clock_offset_is_read_from_chrony_and_timesyncd_output() -> None:
    assert (
        chrony_offset_s("A9FEA97B,169.254.169.123,3,1796146200.1,0.000012500,-0.000001\n")
        == -1.25e-05
    )
    assert chrony_offset_s("garbage") is None
    assert timesyncd_offset_s(
        "       Server: 10.0.0.1\n       Offset: -1.234ms\n"
    ) == pytest.approx(-1.234e-3)
    assert timesyncd_offset_s("no offset here") is None


def test_compare_takes_a_fleet_json_as_its_merged_row(tmp_path: Path) -> None:
    from portstorm.core.inputs import load

    (tmp_path / "fleet.json").write_text(json.dumps(fleet_json(merge(_members()), "0", T)))
    loaded = load(tmp_path)  # the folder stands for its fleet.json
    [subject] = loaded.subjects
    assert subject.label.startswith("fleet of 3") and subject.runs[0].attempts == 13


def _tarball(path: Path, members: list[tuple[str, bytes | None]]) -> Path:
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:  # a symlink out of the folder
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    "bad",
    [[("./../escape", b"x")], [("/etc/cron.d/x", b"x")], [("./result.json", None)],
     [("./sub/result.json", b"x")]],
)  # fmt: skip
def test_a_hosts_packed_result_with_links_or_paths_is_refused_whole(
    tmp_path: Path, bad: list[tuple[str, bytes | None]]
) -> None:
    from portstorm.core.files import Folder
    from portstorm.core.fleetunpack import unpack_result

    archive = _tarball(tmp_path / "h1.tar.gz", [("./intervals.jsonl", b"{}\n"), *bad])
    with Folder.open(tmp_path / "h1") as folder, pytest.raises(UsageError) as e:
        unpack_result(archive, folder)
    assert "h1.tar.gz" in str(e.value) and "\n" not in str(e.value)
    assert list((tmp_path / "h1").iterdir()) == []  # checked whole before anything is written


def test_a_hosts_packed_result_folder_is_unpacked_flat(tmp_path: Path) -> None:
    from portstorm.core.files import Folder
    from portstorm.core.fleetunpack import unpack_result

    archive = _tarball(tmp_path / "h1.tar.gz", [("./result.json", b"{}"), ("./rate.png", b"P")])
    with Folder.open(tmp_path / "h1") as folder:
        assert unpack_result(archive, folder) == ["result.json", "rate.png"]
    assert (tmp_path / "h1" / "rate.png").read_bytes() == b"P"
