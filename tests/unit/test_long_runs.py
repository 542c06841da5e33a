"""Long runs: charts draw bins whose totals are exact and whose envelopes keep a spike,
result.json's version 3 reads back what it wrote and stays small per interval, and version
1 and 2 files still load, export and are worded.

Pure and in-process: intervals are built here, not measured (a day of them would take a
day); sizes are measured, times never (benchmarks/long_runs.py times them).
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from portstorm.core.bins import bins, failing_spans, widened
from portstorm.core.fields import FieldError
from portstorm.core.findings import _made_within, run_findings
from portstorm.core.hdrblock import PAYLOADS, HdrBlock, max_us, payload
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.records import Interval
from portstorm.core.result import RunResult, load_result, result_text
from portstorm.core.runform import check_blocks
from portstorm.report.exports import hlog, intervals_csv
from tests.support.reportdata import simulate

EXAMPLE = Path(__file__).parents[2] / "reports/examples/run-port-exhaustion/result.json"
# written by portstorm.run/2's writer (commit f147f78) from _run_2_made()
RUN_2 = Path(__file__).parent / "data/run2-simulated.json"


def _run_2_made() -> RunResult:
    return simulate(ports=100, rate=50, duration=12, sandbox="pair", syn_tail=3)


def _long(n: int, spike_at: int) -> list[Interval]:
    """``n`` one-second intervals at 100/s, p99 1 ms; at ``spike_at`` a burst of 400
    timeouts and a p99 of 1.6 s."""
    out = []
    for k in range(n):
        spike = k == spike_at
        out.append(
            Interval(
                t=float(k),
                dt=1.0,
                attempts=100 + (400 if spike else 0),
                succeeded=100,
                failed={"timeout": 400} if spike else {},
                other_errnos={},
                latency_us={"p50": 300, "p99": 1_600_000 if spike else 1_000},
                time_wait=6000 + (k % 7),
                ports_in_use=6000,
                kernel={"TcpExtTW": 100},
            )
        )
    return out


def test_a_one_interval_spike_keeps_its_height_in_a_bin_of_a_hundred() -> None:
    ivs = _long(10_000, spike_at=5_432)
    steps = bins(ivs, max_bins=100)
    assert len(steps) == 100 and {len(b.intervals) for b in steps} == {100}
    (hit,) = [b for b in steps if b.t <= 5_432 < b.end]
    assert hit.envelope(lambda i: i.latency_us["p99"]) == (1_000, 1_600_000)
    assert hit.peak_rate(lambda i: i.n_failed) == 400.0  # the worst interval's, not the mean
    assert hit.rate(lambda i: i.n_failed) == 4.0  # the mean: 400 over the bin's 100 s
    others = [b.envelope(lambda i: i.latency_us["p99"]) for b in steps if b is not hit]
    assert set(others) == {(1_000, 1_000)}
    # the spike's stretch of failures is shaded as its bin, at least 3 px of 1,000 wide
    assert failing_spans(steps) == [(hit.t, hit.end)]
    (a, b), axis = widened([(5_432.0, 5_433.0)], 10_000.0)[0], 10_000.0
    assert b - a >= axis / 300 and a <= 5_432.0 < 5_433.0 <= b


def test_bins_add_up_to_the_intervals_exactly() -> None:
    ivs = _long(2_345, spike_at=7)  # not a multiple: the last bin is smaller
    steps = bins(ivs, max_bins=1000)
    assert len(steps) <= 1000 and sum(len(b.intervals) for b in steps) == 2_345
    assert [i for b in steps for i in b.intervals] == ivs  # consecutive, none twice
    counts: list[Callable[[Interval], int]] = [
        lambda i: i.attempts, lambda i: i.succeeded, lambda i: i.n_failed
    ]  # fmt: skip
    for count in counts:
        assert sum(b.total(count) for b in steps) == sum(count(i) for i in ivs)
        assert sum(b.rate(count) * b.measured_s for b in steps) == pytest.approx(
            sum(count(i) for i in ivs)
        )
    assert len(bins(ivs[:1000], max_bins=1000)) == 1000  # short runs: one interval a bin


def test_a_run_3_file_reads_back_what_it_wrote() -> None:
    r = simulate(ports=100, rate=50, duration=90, sandbox="pair")
    text = result_text(r)
    doc = json.loads(text)
    assert doc["format"] == "portstorm.run/3"
    back = RunResult.from_json(doc)
    again = RunResult.from_json(json.loads(result_text(back)))
    assert again.to_json() == back.to_json()  # a fixed point after the first write
    assert [i.hdr for i in back.intervals] == [i.hdr for i in r.intervals]
    for a, b in zip(r.intervals, back.intervals, strict=True):
        assert (a.attempts, a.succeeded, a.failed, a.latency_us, a.kernel, a.server_kernel) == (
            b.attempts, b.succeeded, b.failed, b.latency_us, b.kernel, b.server_kernel
        )  # fmt: skip
        assert (a.time_wait, a.ports_in_use, a.fds) == (b.time_wait, b.ports_in_use, b.fds)
        assert abs(a.t - b.t) <= 5e-4 and abs(a.dt - b.dt) <= 1e-3  # ms in run/2
    lazy = RunResult.from_json(doc, lazy=True)
    assert all(i.hdr is None for i in lazy.intervals)  # nothing decoded at load
    assert lazy.interval_histograms() == [i.hdr for i in r.intervals]
    assert lazy.with_interval_histograms().intervals == back.intervals
    assert hlog(lazy) == hlog(back)


def test_each_interval_object_keeps_design_md_s_names() -> None:
    r = simulate(ports=100, rate=50, duration=5, syn_tail=2)
    doc = json.loads(result_text(r))
    # the counters that changed in the run, each in every interval, zero or not; those
    # that never did in none, listed as read: they read back 0
    changed, never = {"TcpExtTW"}, {"TcpExtTWRecycled", "TcpExtTCPTimeWaitOverflow",
                                     "TcpExtListenDrops", "TcpOutRsts"}  # fmt: skip
    kernels = [i.kernel or {} for i in r.intervals]
    assert kernels[-1]["TcpExtTW"] == 0  # the 100 ports held: nothing closed
    assert not any(k[n] for k in kernels for n in never)
    assert never <= set(doc["interval_counters"]["kernel"])
    for item in doc["intervals"]:
        for name in ("t", "attempts", "succeeded", "failed", "time_wait", "server_time_wait",
                     "ports_in_use", "latency_us", "kernel"):  # fmt: skip
            assert name in item, (name, item)
        assert set(item["latency_us"]) == {"p50", "p99"}
        assert set(item["kernel"]) == changed, item["kernel"]
    back = RunResult.from_json(doc)
    assert [i.kernel for i in back.intervals] == [i.kernel for i in r.intervals]


def test_a_run_2_file_still_loads_and_reads_as_the_same_run_written_now() -> None:
    assert json.loads(RUN_2.read_text())["format"] == "portstorm.run/2"
    old = load_result(RUN_2, lazy=True)
    assert old.interval_hdrs is not None and old.interval_hdrs.encoding == PAYLOADS
    item = json.loads(RUN_2.read_text())["intervals"][0]
    assert "TcpExtListenDrops" in item["kernel"]  # version 2: the five zero or not
    new = RunResult.from_json(json.loads(result_text(_run_2_made())), lazy=True)
    assert old.interval_hdrs != new.interval_hdrs  # deflated there, bzip2'd here
    assert old.with_interval_histograms().intervals == new.with_interval_histograms().intervals
    assert (old.attempts, old.histogram.encode()) == (new.attempts, new.histogram.encode())
    assert intervals_csv(old) == intervals_csv(new) and hlog(old) == hlog(new)
    assert [f.text for f in run_findings(old)] == [f.text for f in run_findings(new)]


def test_a_long_result_stays_small_per_interval() -> None:
    # 3,000 intervals of the committed example's records: bytes per interval, not time
    src = load_result(EXAMPLE)
    ivs = []
    for k in range(3_000):
        i = src.intervals[k % len(src.intervals)]
        ivs.append(dataclasses.replace(i, t=float(k), dt=1.0))
    hist = LatencyHistogram()
    for i in ivs:
        if i.hdr is not None:
            hist.add(LatencyHistogram.decode(i.hdr))
    long = dataclasses.replace(src, intervals=tuple(ivs), histogram=hist, tuples=(), ramp=())
    size = len(result_text(long).encode())
    old = len(json.dumps({"intervals": [i.to_json() for i in ivs]}, indent=1).encode())
    assert old / 3_000 > 900  # version 1: ~1,000 bytes an interval
    assert size / 3_000 < 300, size / 3_000  # a day: under 26 MB


def test_a_run_1_file_still_loads_exports_and_is_worded(tmp_path: Path) -> None:
    example = load_result(EXAMPLE)  # the committed example is portstorm.run/1
    assert json.loads(EXAMPLE.read_text())["format"] == "portstorm.run/1"
    assert (example.attempts, len(example.intervals)) == (3750, 75)
    assert any(f.kind == "exhaustion" for f in run_findings(example))
    r = simulate(ports=100, rate=50, duration=6)
    doc = {
        **r.to_json(),
        "format": "portstorm.run/1",
        "intervals": [i.to_json() for i in r.intervals],
    }
    for key in ("interval_counters", "interval_columns", "interval_hdr"):
        del doc[key]  # a version 1 file, as version 1 wrote it
    path = tmp_path / "result.json"
    path.write_text(json.dumps(doc, indent=1))
    old = load_result(path, lazy=True)
    assert old.intervals == r.intervals  # version 1 kept microseconds: exactly the same
    assert intervals_csv(old) == intervals_csv(r) and hlog(old) == hlog(r)


def test_the_hlog_maximum_is_hdrhistograms_own() -> None:
    h = LatencyHistogram()
    h.record_many([37, 412, 9_999, 1_234_567, 3_600_000_000])
    raw = payload(h.encode())
    assert max_us(raw) == HdrHistogram.decode(h.encode()).get_max_value()
    assert max_us(payload(LatencyHistogram().encode())) == 0


def test_a_damaged_histogram_block_names_itself() -> None:
    block = HdrBlock.of([LatencyHistogram().encode(), None])
    assert block is not None and block.texts()[1] is None
    with pytest.raises(FieldError, match="data"):
        dataclasses.replace(block, data="not base64!").texts()
    with pytest.raises(FieldError, match=r"interval_hdr\.intervals"):
        check_blocks(simulate(duration=3).intervals, HdrBlock.from_json(block.to_json()))


def test_the_fin_timeout_windows_are_the_sums_they_stand_for() -> None:
    rng = random.Random(22)
    ivs = []
    for i in _long(300, spike_at=-1):
        n = rng.randrange(50)
        ivs.append(dataclasses.replace(i, succeeded=n, attempts=n))
    for order in (ivs, list(reversed(ivs))):
        ends = [i.t + i.dt for i in order]
        brute = [sum(j.succeeded for j in order if j.t + j.dt > e - 30 - 1e-6 and j.t < e)
                 for e in ends]  # fmt: skip
        assert _made_within(order, 30) == brute
