import dataclasses
import json
from pathlib import Path

import pytest

from portstorm.core.binding import binding
from portstorm.core.capacity import Capacity, CapacityInput, model
from portstorm.core.errors import UsageError
from portstorm.core.files import save_json_atomic
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.natmodel import nat_model
from portstorm.core.result import (
    FORMAT,
    HostInfo,
    Interval,
    RunResult,
    TupleStats,
    load_result,
)
from portstorm.core.setup import RunSetup


def _interval(t: float, ok: int, failed: dict[str, int] | None = None) -> Interval:
    failed = failed or {}
    return Interval(
        t=t,
        dt=1.0,
        attempts=ok + sum(failed.values()),
        succeeded=ok,
        failed=failed,
        other_errnos={},
        latency_us={"p50": 10 if ok else None, "p99": 20 if ok else None},
    )


def _result(complete: bool = True) -> RunResult:
    h = LatencyHistogram()
    for v in [10] * 100 + [900] * 5:
        h.record(v)
    return RunResult(
        tool_version="0.1.0",
        host=HostInfo("box", "6.18.0", 2),
        started_at="2026-11-21T19:00:00Z",
        duration_s=2.0,
        complete=complete,
        setup=RunSetup(targets=("127.0.0.1:9000",), close="client"),
        tunings={"net.ipv4.tcp_tw_reuse": "0"},
        intervals=(_interval(0.0, 100), _interval(1.0, 5, {"port_exhausted": 7})),
        histogram=h,
        first_failure_s=1.2,
        first_failure_outcome="port_exhausted",
    )


def test_totals_are_derived_from_the_intervals() -> None:
    r = _result()
    assert (r.attempts, r.succeeded, r.failed) == (112, 105, {"port_exhausted": 7})
    assert r.rate == pytest.approx(52.5)


def test_result_round_trips_through_json(tmp_path: Path) -> None:
    r = _result()
    path = tmp_path / "result.json"
    save_json_atomic(path, r.to_json())
    doc = json.loads(path.read_text())
    assert doc["format"] == FORMAT
    assert doc["totals"]["failed"] == {"port_exhausted": 7}
    assert doc["latency_us"]["p50"] == 10
    assert doc["capacity"] is None  # not measured: null, never invented
    assert doc["intervals"][1]["time_wait"] is None
    back = load_result(path)
    assert back.to_json() == doc
    assert back.histogram.count == 105
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temp file left


def test_interval_refuses_counts_that_do_not_add_up() -> None:
    with pytest.raises(ValueError, match="attempts"):
        Interval(t=0, dt=1, attempts=5, succeeded=3, failed={}, other_errnos={}, latency_us={})


def test_interval_refuses_unknown_outcome_names() -> None:
    with pytest.raises(ValueError, match="unknown outcome"):
        Interval(
            t=0, dt=1, attempts=1, succeeded=0, failed={"oops": 1}, other_errnos={}, latency_us={}
        )


def test_histogram_must_hold_exactly_the_successes() -> None:
    with pytest.raises(ValueError, match="histogram"):
        RunResult(
            tool_version="0",
            host=HostInfo("h", "k", 1),
            started_at="x",
            duration_s=1,
            complete=True,
            setup=RunSetup(),
            tunings={},
            intervals=(_interval(0, 3),),
            histogram=LatencyHistogram(),
        )


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "no such file"),
        ("", "empty"),
        ('{"format": "portstorm.run/1", "tool": {', "not valid JSON"),
        ('{"format": "something.else/1"}', "not a portstorm result"),
        ("[1, 2]", "top level is not an object"),
        ('{"format": "portstorm.run/99"}', "newer than this portstorm reads"),
        ('{"format": "portstorm.run/1"}', "damaged"),
    ],
)
def test_loading_a_bad_file_is_one_usage_error(
    tmp_path: Path, content: str | None, fragment: str
) -> None:
    path = tmp_path / "result.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError) as e:
        load_result(path)
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_histogram_encoding_is_hdrhistogram_standard_and_merges_exactly() -> None:
    a, b = LatencyHistogram(), LatencyHistogram()
    for v in range(1, 1001):
        a.record(v)
    b.record(5_000_000_000)  # beyond the top: clamped, still counted
    b.record(0)  # below the bottom: clamped, still counted
    a.add(b)
    assert a.count == 1002
    text = a.encode()
    assert text.startswith("HISTF")  # HdrHistogram V2 compressed, base64
    back = LatencyHistogram.decode(text)
    assert back.count == 1002
    assert back.percentile(50) == a.percentile(50)
    assert LatencyHistogram().percentile(50) is None


def _with_tuples(*tuples: TupleStats) -> RunResult:
    base = _result()
    return RunResult(
        **{**{f: getattr(base, f) for f in base.__dataclass_fields__}, "tuples": tuples}
    )


def test_the_tuples_table_round_trips_and_must_add_up_to_the_totals(tmp_path: Path) -> None:
    a = TupleStats("198.18.1.1", "198.18.0.2:9000", 100, {"port_exhausted": 7}, 1.2, 100, 100)
    b = TupleStats("198.18.1.2", "198.18.0.2:9000", 5, {}, None, 5, 5)
    r = _with_tuples(a, b)
    path = tmp_path / "result.json"
    save_json_atomic(path, r.to_json())
    doc = json.loads(path.read_text())
    assert doc["tuples"][0] == {
        "source": "198.18.1.1",
        "destination": "198.18.0.2:9000",
        "attempts": 107,
        "succeeded": 100,
        "failed": {"port_exhausted": 7},
        "first_failure_s": 1.2,
        "ports_in_use": 100,
        "ports_in_use_peak": 100,
    }
    assert load_result(path).tuples == (a, b)
    with pytest.raises(
        ValueError, match="tuples table counts 111 attempts and 104 successes, the intervals 112"
    ):
        _with_tuples(a, TupleStats("198.18.1.2", "198.18.0.2:9000", 4, {}))


def test_files_written_before_the_tuples_table_still_load(tmp_path: Path) -> None:
    doc = _result().to_json()
    del doc["tuples"]
    path = tmp_path / "result.json"
    path.write_text(json.dumps(doc))
    assert load_result(path).tuples == ()


def test_the_worst_tuple_fails_most_often_and_first() -> None:
    early = TupleStats("a", "d:1", 50, {"bind_in_use": 50}, 0.5)
    late = TupleStats("b", "d:1", 50, {"bind_in_use": 50}, 0.9)
    fine = TupleStats("c", "d:1", 5, {}, None)
    h = LatencyHistogram()
    for _ in range(105):
        h.record(10)
    r = RunResult(
        tool_version="0",
        host=HostInfo("h", "k", 1),
        started_at="x",
        duration_s=1,
        complete=True,
        setup=RunSetup(),
        tunings={},
        intervals=(_interval(0, 105, {"bind_in_use": 100}),),
        histogram=h,
        tuples=(late, fine, early),
    )
    assert r.worst_tuple() == early
    assert _with_tuples(TupleStats("a", "d:1", 105, {"port_exhausted": 7})).worst_tuple() is None


def test_rate_after_exhaustion_counts_whole_hold_periods_within_whole_intervals() -> None:
    # tcp_tw_reuse_delay=100 ms: 0.1 s periods in 1 s intervals, the last ending just short
    # of a whole second; dividing by the periods up to the run's end, not by the time the
    # counted intervals cover, gave 69 % of the rate
    ivs = [_interval(0.0, 100, {"port_exhausted": 50})]
    for k, dt in ((1, 1.0), (2, 1.0), (3, 0.9993)):
        ivs.append(
            Interval(
                t=float(k),
                dt=dt,
                attempts=150,
                succeeded=100,
                failed={"port_exhausted": 50},
                other_errnos={},
                latency_us={"p50": 10, "p99": 20},
            )
        )
    h = LatencyHistogram()
    for _ in range(400):
        h.record(10)
    r = RunResult(
        tool_version="0.1.0",
        host=HostInfo("box", "6.18.0", 2),
        started_at="2026-11-21T19:00:00Z",
        duration_s=4.0,
        complete=True,
        setup=RunSetup(),
        tunings={},
        intervals=tuple(ivs),
        histogram=h,
        first_failure_s=0.5,
        first_failure_outcome="port_exhausted",
        model=Capacity(50, 1, 0.1, 500.0, None, reuse_applies=True, tw_cap_applies=False),
    )
    # 29 periods fit before the run's end (3.9 s); the intervals within them end at 3.0 s
    n, span = r.turnover() or (0, 0.0)
    assert (n, round(span, 6)) == (200, 2.0)
    assert r.sustained_after_exhaustion() == pytest.approx(100.0)


def test_the_saved_setup_comes_back_typed_with_unknown_keys_and_sink_stats_kept(
    tmp_path: Path,
) -> None:
    doc = _result().to_json()
    # a file of the first version: few scenario keys, one this portstorm does not read
    doc["scenario"] = {"targets": ["198.18.0.2:9000"], "rate": 100, "sandbox": "pair",
                       "later_key": {"x": 1}, "sink_stats": {"accepted": 105}}  # fmt: skip
    doc["capacity"] = {"usable_ports": 100, "tuples": 2, "hold_s": 60, "sustainable_rate": 3.3,
                       "predicted_exhaustion_s": None, "why": []}  # fmt: skip
    path = tmp_path / "result.json"
    path.write_text(json.dumps(doc))
    r = load_result(path)
    assert (r.setup.targets, r.setup.rate, r.setup.pair, r.setup.close) == (
        ("198.18.0.2:9000",),
        100,
        True,
        None,
    )
    assert r.model is not None and (r.model.port_space, r.model.reuse_applies) == (200, None)
    assert r.sink_stats == {"accepted": 105}
    again = r.to_json()
    assert again["scenario"]["later_key"] == {"x": 1}
    assert again["scenario"]["sink_stats"] == {"accepted": 105}
    assert r.setup.rate == 100


def test_a_setup_of_the_wrong_type_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"^scenario\.rate: 'fast'"):
        RunSetup(rate="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^capacity\.usable_ports: 70000"):
        Capacity(70000, 1, 60.0, None, None, None, None)


def test_a_held_run_behind_a_full_nat_pool_turns_over_at_the_pools_rate() -> None:
    # --sandbox nat, pool of 50 ports, --hold 2, 50/s for 21 s, --connect-timeout 2: the
    # pool (50 / 2 s = 25/s) binds, not the client's 28,232 ports held 62 s. Each attempt
    # is counted when it ends: a success 2 s (its hold) after its start, a timeout 2 s (the
    # connect timeout) after its SYN. Starts in even seconds get ports, odd ones time out.
    ok = [50 if k % 2 == 0 and 2 <= k <= 22 else 0 for k in range(24)]
    ivs = [_interval(float(k), n, {"timeout": 50} if k % 2 and 3 <= k <= 21 else None)
           for k, n in enumerate(ok)]  # fmt: skip
    h = LatencyHistogram()
    for _ in range(sum(ok)):
        h.record(10)
    client = model(CapacityInput(port_range=(32768, 60999), rate=50.0, hold_s=2.0))
    nat = nat_model(pool=(40000, 40049), nat_addresses=1, destinations=1, clients=10,
                    hold_s=2.0, rate=50.0)  # fmt: skip
    r = RunResult(
        tool_version="0.1.0",
        host=HostInfo("box", "6.18.0", 2),
        started_at="2026-12-01T14:00:00Z",
        duration_s=24.0,  # the schedule's 21 s, the last holds and the drain's timeouts
        complete=True,
        setup=RunSetup(
            sandbox="nat",
            rate=50.0,
            duration_s=21.0,
            hold_s=2.0,
            connect_timeout_s=2.0,
            clients=10,
            nat_ports="40000-40049",
        ),
        tunings={},
        intervals=tuple(ivs),
        histogram=h,
        first_failure_s=3.0,
        first_failure_outcome="timeout",
        model=dataclasses.replace(client, nat=nat),
    )
    assert r.model is not None and binding(r.model).what == "NAT pool"
    # the starts from the first failed SYN (1 s) to the schedule's end (21 s), 10 periods,
    # got 500 successes, counted from 3 s to the end; the client's 62 s gave no period,
    # and the intervals from 3 s, the drain's empty seconds with them, 23.8/s
    assert r.turnover() == (500, 20.0)
    assert r.sustained_after_exhaustion() == pytest.approx(25.0)
