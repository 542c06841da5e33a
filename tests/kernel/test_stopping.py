"""A run can always be stopped: SIGINT or SIGTERM ends it within 2 s with what it measured
saved (exit 130), and an interval too short for the sampler is refused before anything runs."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from portstorm.core.errors import UsageError
from portstorm.core.scenario import MIN_INTERVAL_S, Scenario
from portstorm.engine.flows import Flow
from portstorm.engine.load import DriverReport
from portstorm.engine.pool import DriverPool
from tests.support.netns import run_in_netns, start_in_netns, wait_for_lines

STOP_S = 2.0  # the promise: a signal ends the run within this


@pytest.mark.parametrize("interval", ["0.002", "1e-6", "0.099"])
def test_an_interval_shorter_than_the_sampler_can_hold_is_refused_before_anything_runs(
    tmp_path: Path, interval: str
) -> None:
    # bounded even where it is accepted: one second at 10/s in the project's own namespaces
    proc = subprocess.run(
        [sys.executable, "-m", "portstorm", "run", "--sandbox", "pair", "--duration", "1",
         "--rate", "10", "--workers", "1", "--no-report", "--interval", interval,
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"--interval {float(interval):g}" in err and ">= 0.1" in err, err
    assert not (tmp_path / "out").exists()  # refused before the run made its folder


def test_the_scenario_refuses_an_interval_below_the_minimum_and_takes_the_minimum() -> None:
    with pytest.raises(UsageError, match=r"--interval 0\.002 .*>= 0\.1"):
        Scenario(interval_s=0.002)
    assert Scenario(interval_s=MIN_INTERVAL_S).interval_s == MIN_INTERVAL_S


# A driver's interval callback that takes longer than the interval, as a worker's write
# to a full stdout pipe does: its ticker is behind for good. SIGTERM must still stop it.
SLOW_TICKER = """
import os, signal, socket, sys, time
import trio
from portstorm.core.scenario import Scenario
from portstorm.engine.driver import Driver
from portstorm.engine.flows import Flow
from portstorm.engine.load import drive

# nothing listens on port 9: every connect() is refused at once, by the namespace's lo
flow = Flow(socket.AF_INET, None, ("127.0.0.1", 9), "127.0.0.1", "127.0.0.1:9")
sent = []

def slow_interval(_interval):
    if not sent:
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.15)

driver = Driver(Scenario(duration_s=30, interval_s=0.1, concurrency=2), [flow], slow_interval)
report = trio.run(drive, driver)
print(f"stopped {time.monotonic() - sent[0]:.3f} s after SIGTERM; interrupted {report.interrupted}")
"""


@pytest.mark.netns
@pytest.mark.xdist_group("alone")  # "within 2 s" of wall-clock time
def test_a_driver_whose_ticker_is_behind_its_schedule_still_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    script = tmp_path / "slow_ticker.py"
    script.write_text(SLOW_TICKER)
    try:
        proc = run_in_netns(f'exec {sys.executable} "{script}"', timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("SIGTERM did not stop a driver whose ticker is behind (killed after 20 s)")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    took = float(proc.stdout.split()[1])
    assert took < STOP_S, proc.stdout
    assert proc.stdout.strip().endswith("interrupted True")


@pytest.mark.netns
# alone: "within 2 s" of wall-clock time, and 32 connections in flight load both cores
@pytest.mark.xdist_group("alone")
@pytest.mark.parametrize(
    ("sig", "load"),
    [
        (signal.SIGTERM, "--workers 2 --concurrency 32"),
        (signal.SIGINT, "--workers 2 --concurrency 32"),
        (signal.SIGTERM, "--workers 1 --rate 2000"),
        (signal.SIGINT, "--workers 1 --rate 2000"),
    ],
)
def test_a_signal_ends_a_run_at_the_shortest_interval_within_2_s_with_partial_results(
    tmp_path: Path, sig: signal.Signals, load: str
) -> None:
    out = tmp_path / "out"
    proc = start_in_netns(
        f"$PORTSTORM run --sandbox pair --duration 30 {load} --interval {MIN_INTERVAL_S} "
        f'--no-report --out "{out}"',
        tmp_path / "log",
    )
    wait_for_lines(out / "intervals.jsonl", 4, proc, timeout=90)  # the load is under way
    sent = time.monotonic()
    proc.send_signal(sig)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"{sig.name} did not end the run within 30 s")
    took = time.monotonic() - sent
    log = (tmp_path / "log").read_text()
    assert code == 130, log
    assert took < STOP_S, f"{sig.name} took {took:.2f} s to end the run\n{log}"
    doc = json.loads((out / "result.json").read_text())
    assert doc["complete"] is False
    assert len(doc["intervals"]) >= 3 and doc["totals"]["succeeded"] > 0
    assert "INTERRUPTED" in log


# A stand-in for a driver worker that is stuck where SIGTERM cannot reach it: it starts
# as a worker does, then never reports again.
STUCK_WORKER = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
sys.stdin.readline()  # the job
print("ready", flush=True)
sys.stdin.readline()  # go T0_NS
time.sleep(60)
"""


@pytest.mark.xdist_group("alone")  # "within 2 s" of wall-clock time
def test_a_stopped_pool_kills_a_worker_that_does_not_report_and_returns_within_2_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = tmp_path / "stuck_worker.py"
    stuck.write_text(STUCK_WORKER)
    real_popen = subprocess.Popen

    def popen(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        return real_popen([sys.executable, str(stuck)], **kwargs)

    monkeypatch.setattr(subprocess, "Popen", popen)
    flow = Flow(socket.AF_INET, None, ("127.0.0.1", 9), "127.0.0.1", "127.0.0.1:9")
    pool = DriverPool(Scenario(duration_s=30, rate=10.0), [flow], workers=2)
    took: list[float] = []

    async def main() -> DriverReport:
        done = trio.Event()
        async with trio.open_nursery() as nursery:

            async def stop_once_started() -> None:
                while not pool._t0:  # the workers said ready and were told to go
                    await trio.sleep(0.01)
                sent = time.monotonic()
                pool.stop()
                await done.wait()
                took.append(time.monotonic() - sent)

            nursery.start_soon(stop_once_started)
            with trio.fail_after(30):
                report = await pool.run()
            done.set()
        return report

    report = trio.run(main)
    assert took[0] < STOP_S, took
    assert report.interrupted
    assert all(w.proc is not None and w.proc.poll() is not None for w in pool._workers)
