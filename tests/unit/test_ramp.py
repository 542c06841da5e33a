"""The ramp: 100 ms readings through the first second, folded exactly into the first
interval, so the port-search knee is found whatever ``--interval`` is.

The literal run (tests/support/ramprun.py) is the shape a user measured with the README's
main job (closed loop, pair sandbox, 1 s intervals): the first interval already ended at
14,157 of 28,232 ports in use, past the 40 % an early reading had to end under, so no
knee was found. Now a reading's p50 is early when its median connect came under 40 %, and
the ramp places the knee inside the first second.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from portstorm.core.capacity import CapacityInput, model
from portstorm.core.errors import UsageError
from portstorm.core.findings import run_findings
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.ramp import RampFold, closing_tick, fold, ramp_ends_ns, tick_offset_ns
from portstorm.core.result import Interval, RunResult, result_from_doc
from portstorm.core.signals import knee, samples
from portstorm.core.words import fmt_s
from tests.support.ramprun import RANGE, part, users_run

MS = 1_000_000
S = 1_000_000_000
HERE = Path("result.json")  # only named in messages


# -- the schedule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval_ms", "ends_ms"),
    [
        (1000, [100, 200, 300, 400, 500, 600, 700, 800, 900]),  # the default: 10 parts
        (2500, [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]),  # then 1 s to 2.5 s
        (350, [100, 200, 300]),  # up to the interval's own end
        (250, [100, 200]),
        (200, []),  # fine already: nothing to add
        (100, []),
    ],
)
def test_the_ramp_ticks_every_100_ms_up_to_one_second_or_the_interval(
    interval_ms: int, ends_ms: list[int]
) -> None:
    assert [e // MS for e in ramp_ends_ns(interval_ms * MS)] == ends_ms
    assert closing_tick(interval_ms * MS) == (len(ends_ms) + 1 if ends_ms else None)


def test_after_the_ramp_the_ticks_fall_on_the_interval_multiples() -> None:
    ends = ramp_ends_ns(S)
    ticks = [tick_offset_ns(k, S, ends) / S for k in range(1, 13)]
    assert ticks == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 2.0, 3.0]
    # no ramp: the old schedule, t0 + k * interval
    assert [tick_offset_ns(k, S // 10, ()) for k in (1, 2, 3)] == [S // 10, S // 5, 3 * S // 10]


# -- the fold ----------------------------------------------------------------------------


def test_folding_the_parts_is_exact_as_one_interval_measured_whole() -> None:
    a = part(0.0, 0.1, [20] * 90 + [40] * 10, 100, kernel={"TcpExtTW": 95}, fds=9)
    b = part(0.1, 0.1, [], None, failed={"other": 2}, kernel=None)  # its sample failed
    c = part(
        0.2, 0.1, [9000] * 60, 150, failed={"port_exhausted": 5}, kernel={"TcpExtTW": 60}, fds=12,
        not_started=3,
    )  # fmt: skip
    f = fold([a, b, c])
    assert (f.t, round(f.dt, 9)) == (0.0, 0.3)
    assert (f.attempts, f.succeeded) == (167, 160)
    assert f.failed == {"port_exhausted": 5, "other": 2} and f.other_errnos == {"EPERM": 2}
    assert f.not_started == 3
    assert f.kernel == {"TcpExtTW": 155}  # the deltas add; the failed sample's is in c's
    # the last sample's readings: they were taken at the interval's end
    assert (f.ports_in_use, f.time_wait, f.fds) == (150, 150, 12)
    # percentiles from the merged histogram, not from the parts' percentiles
    whole = LatencyHistogram()
    whole.record_many([20] * 90 + [40] * 10 + [9000] * 60)
    assert f.latency_us == {"p50": whole.percentile(50.0), "p99": whole.percentile(99.0)}
    assert f.hdr is not None and LatencyHistogram.decode(f.hdr).count == 160


def test_the_fold_keeps_the_parts_as_the_ramp_and_passes_later_intervals_through() -> None:
    out: list[Interval] = []
    ramp = RampFold(S, out.append)
    parts = [part(k / 10, 0.1, [30] * (100 + k), 100 * k) for k in range(10)]
    later = [part(float(s), 1.0, [8000] * 200, 5000 + s) for s in (1, 2, 3)]
    for k, p in enumerate(parts[:9], 1):
        ramp.add(p, k)
    assert out == []  # the console and intervals.jsonl see one line per interval, as before
    ramp.add(parts[9], 10)  # the closing tick: 1 s
    for k, p in enumerate(later, 11):
        ramp.add(p, k)
    ramp.end()
    assert ramp.ramp == parts and out[1:] == later
    assert out[0].attempts == sum(p.attempts for p in parts) == 1045


def test_fine_ticks_a_late_driver_skipped_leave_longer_parts_and_the_same_interval() -> None:
    out: list[Interval] = []
    ramp = RampFold(S, out.append)
    parts = [part(0.0, 0.31, [30] * 300, 300), part(0.31, 0.5, [30] * 200, 500),
             part(0.81, 0.25, [900] * 20, 520)]  # fmt: skip
    for p, k in zip(parts, (3, 8, 10), strict=True):  # ticks 1-2 and 4-7 were skipped
        ramp.add(p, k)
    assert len(out) == 1 and ramp.ramp == parts
    assert (out[0].attempts, out[0].ports_in_use, round(out[0].dt, 6)) == (520, 520, 1.06)


def test_a_load_shorter_than_its_ramp_is_folded_at_its_end() -> None:
    out: list[Interval] = []
    ramp = RampFold(S, out.append)
    parts = [part(k / 10, 0.1, [30] * 10, 10 * k) for k in range(4)]
    for k, p in enumerate(parts[:3], 1):
        ramp.add(p, k)
    ramp.add(parts[3], None)  # the load's own end
    assert out == []
    ramp.end()
    assert len(out) == 1 and out[0].attempts == 40
    assert ramp.ramp == parts


def test_without_a_ramp_records_pass_as_they_are() -> None:
    out: list[Interval] = []
    ramp = RampFold(S // 10, out.append)
    p = part(0.0, 0.1, [30], 1)
    ramp.add(p, 1)
    ramp.end()
    assert out == [p] and ramp.ramp == []


# -- the knee, on the user's run ---------------------------------------------------------


def test_the_users_run_without_a_ramp_finds_the_knee_only_by_the_end_of_its_slow_interval() -> None:
    # the shape measured: the first reading already past 40 % of the range. Its median
    # connect came at 7,079 ports at most (14,157 connections from none in use), so its p50
    # is an early one; but the jump shows only in the second 1 s interval: "by 2.0 s"
    r = users_run(with_ramp=False)
    assert r.intervals[0].ports_in_use == 14_157
    k = knee(r)
    assert k is not None and (k.t, k.before_us, k.after_us) == (2.0, 30, 8003), k
    assert run_findings(r)[0].text.startswith(
        f"connect() slowed from p50 30 us to 8.0 ms by {fmt_s(2.0)}, with 14,357 of 28,232 "
    )
    # the ramp places it inside the first second
    with_ramp = knee(users_run(with_ramp=True))
    assert with_ramp is not None and with_ramp.t < k.t


def test_a_first_reading_whose_median_connect_came_past_40_percent_gives_no_early_p50() -> None:
    # the same run on a host that held `held` ports of the range before it started: the
    # first interval's median connect came at held + 7,079 ports at most; 40 % is 11,293
    def shifted(held: int) -> RunResult:
        r = users_run(with_ramp=False)
        return dataclasses.replace(r, intervals=tuple(
            dataclasses.replace(i, ports_in_use=(i.ports_in_use or 0) + held, time_wait=None)
            for i in r.intervals
        ))  # fmt: skip

    assert knee(shifted(4_000)) is not None  # 11,079: early
    assert knee(shifted(5_000)) is None  # 12,079: not early, and no reading is


def test_the_users_run_with_its_ramp_finds_the_knee_inside_the_first_second() -> None:
    r = users_run(with_ramp=True)
    assert sum(p.attempts for p in r.ramp) == r.intervals[0].attempts  # counts stay exact
    k = knee(r)
    assert k is not None
    # 8,003: HdrHistogram's highest equivalent of 8,000 at 3 significant figures
    assert (k.before_us, k.after_us, k.ports_in_use, k.ceiling) == (30, 8003, 14_097, 28_232)
    assert k.t == pytest.approx(0.7)
    findings = run_findings(r)
    head = findings[0]
    assert (head.kind, head.level) == ("knee", "headline")
    # 14,097 is just under half of 28,232: no two readings bracket half, so the knee is
    # placed at the end of the sample where it jumped, and said so ("by")
    assert head.text.startswith(
        f"connect() slowed from p50 30 us to 8.0 ms by {fmt_s(0.7)}, with 14,097 of 28,232 "
        "ports in TIME_WAIT: "
    ), head.text
    # measured after the knee (0.3 s of the ramp and 9 whole intervals), and the model's
    # long run, each named as what it is
    assert head.text.endswith(
        "From then on the host sustained 200 conn/s toward 198.18.0.2:9000 (measured over "
        f"{fmt_s(9.3)}); in the long run it sustains 471 conn/s (the port-space model: "
        "28,232 ports held 60 s)."
    ), head.text
    # the knee first, then what used to lead
    assert findings[1].text.startswith("All 15,957 connections succeeded")


def test_a_ramp_whose_samples_read_no_ports_loses_no_knee_the_intervals_find() -> None:
    # a busy machine: every 100 ms sample but the last failed (ports_in_use null), so no
    # ramp reading is early; the 1 s intervals still find the knee, and so does knee()
    r = users_run(with_ramp=True)
    blind = tuple(dataclasses.replace(p, ports_in_use=None, time_wait=None) for p in r.ramp[:-1])
    r = dataclasses.replace(r, ramp=(*blind, r.ramp[-1]))
    coarse = knee(dataclasses.replace(r, ramp=()))
    assert coarse is not None and (coarse.t, coarse.before_us) == (2.0, 30)
    assert knee(r) == coarse


def test_a_few_slow_early_readings_do_not_outvote_the_many_fast_ones() -> None:
    # a busy machine's first 400 ms: four readings of 100 connects at p50 3 ms, then three
    # of 3,000 at 30 us, then 2,000/s at 8 ms as the range fills. By readings the early p50
    # would be 3 ms (four of seven), and 8 ms is under three times that; by connects it is
    # 30 us, as the first 1 s interval alone says
    ports, ramp = 0, []
    for j, (n, lat) in enumerate([(100, 3000)] * 4 + [(3000, 30)] * 3 + [(20, 8000)] * 3):
        ports += n
        ramp.append(part(j / 10, 0.1, [lat] * n, ports))
    r = users_run(with_ramp=True)
    later = []
    for s in range(1, 10):
        ports += 2_000
        later.append(part(float(s), 1.0, [8000] * 2_000, ports))
    total = LatencyHistogram()
    for i in (fold(ramp), *later):
        assert i.hdr is not None
        total.add(LatencyHistogram.decode(i.hdr))
    r = dataclasses.replace(r, intervals=(fold(ramp), *later), ramp=tuple(ramp), histogram=total)
    coarse = knee(dataclasses.replace(r, ramp=()))
    assert coarse is not None and coarse.before_us == 30
    k = knee(r)
    assert k is not None and (k.before_us, k.after_us, k.t) == (30, 8003, coarse.t), k


def test_readings_in_time_order_are_the_ramp_then_the_intervals_after_it() -> None:
    r = users_run(with_ramp=True)
    ends = [round(i.t + i.dt, 6) for i in samples(r)]
    assert ends == [round(0.1 * k, 6) for k in range(1, 11)] + [float(s) for s in range(2, 11)]


def test_a_knee_at_the_end_of_the_run_names_the_models_rate() -> None:
    r = users_run(with_ramp=True)
    short = RunResult(**{**_fields(r), "intervals": r.intervals[:1], "duration_s": 1.0,
                         "histogram": LatencyHistogram.decode(r.intervals[0].hdr or "")})  # fmt: skip
    text = run_findings(short)[0].text
    assert text.endswith(
        "(__inet_hash_connect). In the long run the host sustains 471 conn/s toward "
        "198.18.0.2:9000 (the port-space model: 28,232 ports held 60 s)."
    ), text


def test_a_knee_where_the_model_sets_no_limit_says_only_what_was_measured() -> None:
    r = users_run(with_ramp=True)
    unlimited = model(CapacityInput(port_range=RANGE, close="rst"))  # nothing held after close
    assert unlimited.sustainable_rate is None
    text = run_findings(dataclasses.replace(r, model=unlimited))[0].text
    assert text.endswith(f"(measured over {fmt_s(9.3)}).") and "long run" not in text, text
    # and without the model there is no ceiling to measure the occupancy against
    assert knee(dataclasses.replace(r, model=None)) is None


def _fields(r: RunResult) -> dict[str, Any]:
    return {name: getattr(r, name) for name in RunResult.__dataclass_fields__}


# -- result.json -------------------------------------------------------------------------


def _doc(r: RunResult) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(r.to_json()))
    return doc


def test_the_ramp_round_trips_through_result_json_in_the_shape_of_intervals() -> None:
    r = users_run(with_ramp=True)
    doc = _doc(r)
    # in version 1's shape of an interval (portstorm.run/2 keeps it for the ramp)
    assert len(doc["ramp"]) == 10 and set(doc["ramp"][0]) == set(r.intervals[0].to_json())
    back = result_from_doc(HERE, doc)
    assert back.ramp == r.ramp and knee(back) == knee(r)


@pytest.mark.parametrize("absent", ["missing", None, []])
def test_files_from_before_the_ramp_load_without_one(absent: object) -> None:
    doc = _doc(users_run(with_ramp=True))
    if absent == "missing":
        del doc["ramp"]
    else:
        doc["ramp"] = absent
    assert result_from_doc(HERE, doc).ramp == ()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d.__setitem__("ramp", {"t": 0}), "ramp: an object; allowed: a list"),
        (lambda d: d["ramp"][2].__setitem__("attempts", "many"), "ramp[2].attempts"),
        (lambda d: d["ramp"][3]["latency_us"].__setitem__("p50", float("nan")), "ramp[3]"),
        (lambda d: d["ramp"][1].__setitem__("hdr", "not a histogram"), "ramp[1].hdr"),
        (lambda d: d["ramp"].pop(), "allowed: the first interval's 14157 and 14157"),
        (lambda d: d["ramp"].reverse(), "out of order"),
        (lambda d: d["ramp"][9].__setitem__("dt", 5.0), "within the first interval"),
        (lambda d: d.__setitem__("intervals", []), "ramp"),
    ],
)
def test_a_damaged_ramp_is_refused_naming_its_field(damage: Any, message: str) -> None:
    doc = _doc(users_run(with_ramp=True))
    damage(doc)
    with pytest.raises(UsageError, match="damaged portstorm result") as e:
        result_from_doc(HERE, doc)
    assert message in str(e.value), str(e.value)
