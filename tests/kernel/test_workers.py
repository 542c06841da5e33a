"""Several driver and sink processes: the load is split, and nothing measured is lost or
counted twice. Pure parts on literal values; the rest against the real kernel in a netns."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from portstorm.core.histogram import LatencyHistogram
from portstorm.core.result import Interval, load_result, merge_intervals
from portstorm.core.scenario import Scenario
from portstorm.engine.load import Share
from portstorm.engine.pool import effective_workers
from portstorm.engine.sysinfo import default_sink_workers, default_workers
from tests.support.netns import check, load, require_netns, run_in_netns, wait_for_lines

EXACT = {  # as test_run_netns: 100 ports, no reuse, no stray RST killing a TIME_WAIT
    "net.ipv4.ip_local_port_range": "40000 40099",
    "net.ipv4.tcp_tw_reuse": "0",
    "net.ipv4.tcp_rfc1337": "1",
}


def _hist(*values: int) -> str:
    h = LatencyHistogram()
    for v in values:
        h.record(v)
    return h.encode()


# -- pure ----------------------------------------------------------------------------------


def test_merged_interval_adds_counts_and_histograms_and_spans_every_part() -> None:
    a = Interval(
        t=1.0,
        dt=1.0,
        attempts=5,
        succeeded=3,
        failed={"port_exhausted": 2},
        other_errnos={},
        latency_us={"p50": 10, "p99": 30},
        hdr=_hist(10, 20, 30),
    )
    b = Interval(t=1.002, dt=1.001, attempts=4, succeeded=2,
                 failed={"other": 1, "port_exhausted": 1}, other_errnos={"EPERM": 1},
                 latency_us={"p50": 1000, "p99": 2000}, hdr=_hist(1000, 2000))  # fmt: skip
    m = merge_intervals([a, b])
    assert (m.t, round(m.dt, 6)) == (1.0, 1.003)
    assert (m.attempts, m.succeeded) == (9, 5)
    assert m.failed == {"port_exhausted": 3, "other": 1}  # the outcomes' usual order
    assert list(m.failed) == ["port_exhausted", "other"]
    assert m.other_errnos == {"EPERM": 1}
    assert m.hdr is not None and LatencyHistogram.decode(m.hdr).count == 5
    assert m.latency_us == {"p50": 30, "p99": 2000}  # of all five values, not of the parts
    assert m.time_wait is None  # readings come from the run's sampler, not from workers


def test_a_worker_with_nothing_to_report_adds_nothing() -> None:
    a = Interval(t=0.0, dt=1.0, attempts=0, succeeded=0, failed={}, other_errnos={},
                 latency_us={"p50": None, "p99": None})  # fmt: skip
    b = Interval(t=0.0, dt=1.0, attempts=1, succeeded=1, failed={}, other_errnos={},
                 latency_us={"p50": 7, "p99": 7}, hdr=_hist(7))  # fmt: skip
    m = merge_intervals([a, b])
    assert (m.attempts, m.succeeded, m.latency_us["p50"]) == (1, 1, 7)
    with pytest.raises(ValueError):
        merge_intervals([])


@pytest.mark.parametrize(("total", "n"), [(32, 2), (32, 3), (5, 4), (1, 1), (100, 7)])
def test_worker_shares_add_up_to_the_total(total: int, n: int) -> None:
    parts = [Share(k, n).part(total) for k in range(n)]
    assert sum(parts) == total
    assert max(parts) - min(parts) <= 1


def test_share_outside_its_count_is_refused() -> None:
    with pytest.raises(ValueError):
        Share(2, 2)


def test_no_more_workers_than_slots_in_flight() -> None:
    assert effective_workers(Scenario(concurrency=1), 4) == 1
    assert effective_workers(Scenario(concurrency=3), 8) == 3
    assert effective_workers(Scenario(), 8) == 8  # closed loop default: 32 in flight
    assert effective_workers(Scenario(rate=100.0), 8) == 8  # open loop, no cap


def test_default_workers_follow_the_cores_and_the_rate() -> None:
    cores = min(len(os.sched_getaffinity(0)), 16)
    assert default_workers(None) == cores
    assert default_workers(50.0) == 1  # a slow open loop stays in one process
    assert default_workers(1e6) == cores
    assert [default_sink_workers(n) for n in (1, 2, 3, 4)] == [1, 1, 2, 2]


def test_bulk_recording_gives_the_same_histogram_as_one_by_one() -> None:
    values = [0, 1, 17, 17, 17, 999, 1000, 1001, 123_456, 5_000_000_000, *range(50, 5000, 7)]
    one, bulk = LatencyHistogram(), LatencyHistogram()
    for v in values:
        one.record(v)
    bulk.record_many(values)
    assert bulk.encode() == one.encode()
    assert bulk.count == len(values)


# -- against the kernel --------------------------------------------------------------------

netns = pytest.mark.netns


@netns
def test_port_range_exhausted_after_exactly_100_with_three_workers(tmp_path: Path) -> None:
    proc = run_in_netns(
        "$PORTSTORM run --sandbox host --duration 2 --workers 3 --concurrency 3 "
        f'--interval 0.2 --no-report --out "{tmp_path}"',
        sysctls=EXACT,
    )
    check(proc)
    doc = load(tmp_path / "result.json")
    t = doc["totals"]
    assert doc["scenario"]["workers"] == 3
    assert t["succeeded"] == 100
    assert set(t["failed"]) == {"port_exhausted"} and t["failed"]["port_exhausted"] > 0
    assert doc["scenario"]["sink_stats"]["accepted"] == 100
    assert sum(i["succeeded"] for i in doc["intervals"]) == 100
    assert sum(tp["succeeded"] for tp in doc["tuples"]) == 100
    assert LatencyHistogram.decode(doc["latency_us"]["hdr"]).count == 100
    assert doc["events"]["first_failure_outcome"] == "port_exhausted"


@netns
@pytest.mark.xdist_group("alone")  # +-1 % per interval, ticks within 50 ms: the cores to itself
def test_open_loop_schedule_is_exact_with_three_workers(tmp_path: Path) -> None:
    proc = run_in_netns(
        f'$PORTSTORM run --sandbox loopback --duration 3 --rate 600 --workers 3 --no-report --out "{tmp_path}"'
    )
    check(proc)
    doc = load(tmp_path / "result.json")
    assert doc["scenario"]["workers"] == 3
    assert doc["totals"]["attempts"] == 1800  # starts k, k+3, k+6, ... from each worker
    per = [i["attempts"] for i in doc["intervals"]]
    # a last short record of stragglers may follow the third: attempts started before the
    # end that finished after it, on a machine whose other load delayed a worker (seen:
    # [601, 601, 597, 1]); they are few, and counted
    main, tail = doc["intervals"][:3], doc["intervals"][3:]
    assert len(main) == 3 and all(abs(i["attempts"] - 600) <= 6 for i in main), per
    assert len(tail) <= 1 and sum(i["attempts"] for i in tail) <= 6, per
    assert all(i["t"] >= 3.0 - 0.05 for i in tail), doc["intervals"]
    starts = [i["t"] for i in main]
    assert all(abs(s - k) < 0.05 for k, s in enumerate(starts)), starts  # ticks line up


@netns
def test_closed_loop_with_workers_counts_exactly_what_the_sinks_accepted(tmp_path: Path) -> None:
    proc = run_in_netns(
        "$PORTSTORM run --sandbox pair --duration 3 --workers 2 --sink-workers 2 --close rst "
        f'--no-report --out "{tmp_path}"'
    )
    check(proc)
    doc = load(tmp_path / "result.json")
    t = doc["totals"]
    assert (doc["scenario"]["workers"], doc["scenario"]["sink_workers"]) == (2, 2)
    assert t["succeeded"] > 1000 and t["failed"] == {}
    assert doc["scenario"]["sink_stats"]["accepted"] == t["succeeded"]  # summed over sinks
    assert sum(i["succeeded"] for i in doc["intervals"]) == t["succeeded"]
    assert LatencyHistogram.decode(doc["latency_us"]["hdr"]).count == t["succeeded"]
    assert all(i["time_wait"] is not None for i in doc["intervals"])  # the run sampled them
    # the workers end their parts of an interval a few ms apart: the merged ones still tile
    typed = load_result(tmp_path / "result.json")
    for records in (typed.intervals, typed.ramp):
        for a, b in itertools.pairwise(records):
            # portstorm.run/2 keeps t and dt to the millisecond (core/runform.py)
            assert b.t >= a.t + a.dt - 1e-3 - 1e-9, (a.t, a.dt, b.t)
    # the workers' fds are counted with the run's own: a 1-worker pair run held 19-20, this
    # one 37-39 while its workers ran (samples at the end of the load, as they exit: 27)
    fds = [i.fds for i in typed.intervals if i.t + i.dt < 2.5]
    assert len(fds) == 2 and all(n is not None and n > 28 for n in fds), doc["intervals"]


def _tagged_processes(tag: str) -> list[tuple[int, str]]:
    """(pid, command line) of every process whose environment carries ``tag``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if f"PORTSTORM_TEST_TAG={tag}".encode() in env.split(b"\0"):
            found.append((int(entry), cmd.decode(errors="replace")))
    return found


def _start_tagged_run(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    prefix = require_netns()
    tag = uuid.uuid4().hex
    env = dict(os.environ, PORTSTORM_TEST_TAG=tag)
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-m", "portstorm", "run", *args, "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    return proc, tag


def _wait_for_workers(tag: str, n: int, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = [p for p, cmd in _tagged_processes(tag) if "portstorm.engine.worker_main" in cmd]
        if len(workers) == n:
            return workers
        time.sleep(0.1)
    raise AssertionError(f"{n} driver workers never appeared")


@netns
def test_sigint_stops_every_worker_and_keeps_the_partial_result(tmp_path: Path) -> None:
    proc, tag = _start_tagged_run(
        tmp_path, "--sandbox", "pair", "--duration", "30", "--workers", "2", "--no-report"
    )
    try:
        _wait_for_workers(tag, 2)
        # the load is under way (its first interval is logged), however slow the start
        wait_for_lines(tmp_path / "intervals.jsonl", 2, proc, timeout=90)
        os.kill(proc.pid, signal.SIGINT)  # unshare exec()s the run: this is its PID
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    doc = load(tmp_path / "result.json")
    assert doc["complete"] is False
    assert doc["totals"]["succeeded"] > 0
    assert doc["totals"]["succeeded"] == sum(i["succeeded"] for i in doc["intervals"])
    assert _tagged_processes(tag) == []  # no worker, sink or run left behind


@netns
def test_a_worker_killed_mid_run_is_an_error_and_the_rest_is_kept(tmp_path: Path) -> None:
    proc, tag = _start_tagged_run(
        tmp_path, "--sandbox", "pair", "--duration", "12", "--workers", "2", "--rate", "400",
        "--no-report",
    )  # fmt: skip
    # 12 s, not 4: the kill must land while the victim still has attempts to make, and
    # on a busy machine (ten test workers on two cores) this process saw the interval it
    # waits for, and killed, only after a 4 s run had ended complete (exit 0)
    try:
        victim = _wait_for_workers(tag, 2)[1]
        # a second of the load is done (its first interval is logged): the victim has made
        # its ~200 attempts by then, however slowly the workers started (a fixed sleep
        # after they appeared killed it before its first attempt on a busy machine: 800)
        wait_for_lines(tmp_path / "intervals.jsonl", 2, proc, timeout=90)
        os.kill(victim, signal.SIGKILL)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("portstorm: error: driver worker ") and "partial result" in line, err
    doc = load(tmp_path / "result.json")
    assert doc["complete"] is False
    assert any(n.startswith("driver worker ") for n in doc["notes"]), doc["notes"]
    t = doc["totals"]
    # the survivor kept its half of the schedule (2,400) to the end; the victim's part
    # until the kill (at least its first second's 200) counts too, the rest of its half
    # is missing
    assert 2500 <= t["attempts"] < 4700, t
    assert t["attempts"] == sum(i["attempts"] for i in doc["intervals"])
    assert _tagged_processes(tag) == []


@netns
def test_sink_workers_each_listen_with_so_reuseport_and_their_counts_add_up(
    tmp_path: Path,
) -> None:
    script = f"""
$PORTSTORM sink --listen 127.0.0.1:9100 --workers 2 2> "{tmp_path}/sink.err" &
sink=$!
trap 'kill -TERM $sink 2>/dev/null || true' EXIT  # a failing step must not leave it running
for i in $(seq 600); do  # up to 60 s: the sink's workers start slowly on a busy machine
  [ "$(ss -Hltn 'sport = :9100' | wc -l)" = 2 ] && break
  sleep 0.1
done
ss -Hltnp 'sport = :9100' > "{tmp_path}/listeners"
$PORTSTORM run 127.0.0.1:9100 --duration 1 --rate 300 --workers 1 --no-report --out "{tmp_path}/run"
# The client counts a connect once the SYN-ACK is in; the sink can accept it only once its
# side has the ACK. On a busy machine that ACK waits in softirq, its connection still in
# SYN-RECV: a TERM then found 299 of 300 in the accept queues. Wait for the last of them.
for i in $(seq 600); do
  [ -z "$(ss -Htn state syn-recv 'sport = :9100')" ] && \
  [ "$(ss -Hltn 'sport = :9100' | awk '{{q += $2}} END {{print q + 0}}')" = 0 ] && break
  sleep 0.05
done
kill -TERM $sink
wait $sink
"""
    check(run_in_netns(script))
    listeners = (tmp_path / "listeners").read_text().splitlines()
    pids = {line.split("pid=")[1].split(",")[0] for line in listeners}
    assert len(listeners) == 2 and len(pids) == 2, listeners  # two processes, one port
    err = (tmp_path / "sink.err").read_text()
    totals = load(tmp_path / "run" / "result.json")["totals"]
    # 300 made, or fewer and the rest dropped at the time bound by a driver behind its
    # schedule (not_started): the sink counts exactly what the run made, either way
    made = totals["succeeded"]
    assert made + totals["not_started"] == 300 and made >= 250 and not totals["failed"], totals
    assert f"accepted={made} closed={made}" in err, (made, err)
