"""``portstorm watch`` as a user meets it: one-line refusals, JSON lines, Ctrl-C, read-only."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import assert_one_line_error, in_process, portstorm

BAD_WATCH_ARGS = [
    (["--interval", "0.05"], ["--interval 0.05", "allowed", ">= 0.1"]),
    (["--interval", "often"], ["--interval 'often'", "allowed"]),
    (["--duration", "0"], ["--duration 0", "allowed"]),
    (["--duration", "-1"], ["--duration -1", "allowed"]),
    (["--top", "0"], ["--top '0'", ">= 1"]),
    (["--top", "ten"], ["--top 'ten'", ">= 1"]),
    (["--listen", "nonsense"], ["--listen 'nonsense'", "HOST:PORT"]),
    (["--listen", "127.0.0.1:99999"], ["--listen '127.0.0.1:99999'"]),
    (["--textfile", "metrics.txt"], ["--textfile metrics.txt", ".prom"]),
    (["--textfile", ""], ["--textfile", "empty path"]),
    (["--bogus"], ["--bogus"]),
]


@pytest.mark.parametrize(("args", "fragments"), BAD_WATCH_ARGS)
def test_bad_watch_input_is_one_line_and_exit_2(
    args: list[str], fragments: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_one_line_error(in_process(monkeypatch, "watch", *args), 2, *fragments)


def test_bad_watch_input_is_one_line_and_exit_2_from_a_real_process() -> None:
    args, fragments = BAD_WATCH_ARGS[0]
    assert_one_line_error(portstorm("watch", *args), 2, *fragments)


SYSCTLS = ("ipv4/ip_local_port_range", "ipv4/ip_local_reserved_ports", "ipv4/tcp_tw_reuse",
           "ipv4/tcp_timestamps", "ipv4/tcp_max_tw_buckets", "core/somaxconn")  # fmt: skip


def _sysctls() -> dict[str, str]:
    return {n: Path("/proc/sys/net", n).read_text() for n in SYSCTLS}


def test_json_for_a_short_duration_prints_one_line_per_sample_and_changes_nothing() -> None:
    before = _sysctls()
    proc = portstorm("watch", "--json", "--interval", "0.2", "--duration", "0.4")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == 3  # at 0, 0.2 and 0.4 s (the last one taken late on a busy machine)
    # Samples keep to their slots (start + k x 0.2 s), never early; a late one shortens the
    # interval after it (0.184 s in CI after a late second sample), it does not shift the rest
    t0 = lines[0]["t"]
    for k, d in enumerate(lines[1:], 1):
        assert d["t"] - t0 >= 0.2 * k - 0.05, (k, lines)  # 0.05: the first stamp may be late
        assert d["interval_s"] == pytest.approx(d["t"] - lines[k - 1]["t"], abs=0.002)
    for d in lines:
        assert {"t", "time_wait", "groups"} <= set(d)
        assert len(d["groups"]) <= 10
    assert _sysctls() == before


def test_the_grafana_dashboard_is_printed_as_json() -> None:
    proc = portstorm("watch", "--grafana-dashboard")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert "portstorm_ports_in_use" in json.dumps(doc)


def test_ctrl_c_ends_watch_with_130_and_no_traceback() -> None:
    cmd = [sys.executable, "-m", "portstorm", "watch", "--json", "--interval", "0.1"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        assert p.stdout is not None and p.stderr is not None
        first = p.stdout.readline()  # the first sample is out: the loop is running
        assert json.loads(first)["groups"] is not None
        p.send_signal(signal.SIGINT)
        try:
            _out, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            raise
    assert p.returncode == 130, err
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("portstorm watch: interrupted after ")


@pytest.mark.parametrize("json_out", [False, True], ids=["table", "json"])
def test_a_reader_that_goes_away_ends_watch_with_0(json_out: bool) -> None:
    # ``portstorm watch | head -3``: the table's rich Console would exit 1 on its own
    cmd = [sys.executable, "-m", "portstorm", "watch", "--interval", "0.1", "--duration", "60"]
    cmd += ["--json"] if json_out else []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        assert p.stdout is not None and p.stderr is not None
        assert p.stdout.readline()  # the first sample is out
        p.stdout.close()  # the reader goes: the next sample's write meets a closed pipe
        try:
            err = p.stderr.read()
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            raise
    assert p.returncode == 0, err
    assert err == ""


def _failing_reads(monkeypatch: pytest.MonkeyPatch, fail: set[int]) -> None:
    """WatchReader.read raises for the calls numbered in ``fail`` (0 first); no signal
    handler is installed in this test process."""
    from portstorm.engine import processes, watchread

    calls = [0]
    real = watchread.WatchReader.read

    def read(self: watchread.WatchReader) -> object:
        calls[0] += 1
        if calls[0] - 1 in fail:
            raise OSError(71, "sock_diag: malformed netlink message")
        return real(self)

    monkeypatch.setattr(watchread.WatchReader, "read", read)
    monkeypatch.setattr(processes, "interrupt_on_signals", lambda: None)


def test_a_failed_sample_is_skipped_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.cli import invoke

    _failing_reads(monkeypatch, {1})
    code, err = invoke(["watch", "--json", "--interval", "0.1", "--duration", "0.3"])
    assert code == 0, err
    assert err.splitlines() == ["portstorm watch: a sample was skipped: [Errno 71] sock_diag: "
                                "malformed netlink message"], err  # fmt: skip


def test_samples_failing_in_a_row_end_watch_with_exit_3_and_no_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.support.cli import invoke

    _failing_reads(monkeypatch, {0, 1, 2, 3})
    code, err = invoke(["watch", "--json", "--interval", "0.1", "--duration", "1"])
    assert code == 3, err
    lines = err.splitlines()
    assert len(lines) == 3 and "Traceback" not in err, err
    assert lines[-1].startswith("portstorm: error: watch: 3 samples in a row could not be read")


class _Clock:
    """time.monotonic and time.sleep for watchcmd._schedule: sleeping moves the clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


@pytest.mark.parametrize(
    ("sample_s", "ticks"),
    [
        ({}, [0, 1, 2]),  # on time: 0, 0.2, 0.4 s
        ({1: 0.25}, [0, 1, 2]),  # the 0.2 s sample overran 0.4 s: the end's taken late
        ({0: 0.3}, [0, 2]),  # the first overran 0.2 s: skipped, the end's kept
        ({0: 0.5}, [0, 2]),  # overran the whole duration: the end's still taken, once
        ({2: 1.0}, [0, 1, 2]),  # the last one slow: nothing after it
    ],
)
def test_a_slow_sample_skips_the_ticks_it_overran_but_not_the_last(
    monkeypatch: pytest.MonkeyPatch, sample_s: dict[int, float], ticks: list[int]
) -> None:
    from portstorm.cli import watchcmd

    clock = _Clock()
    monkeypatch.setattr(watchcmd, "time", clock)  # the module's own time, not the process's
    got = []
    for k in watchcmd._schedule(0.2, 0.4):
        got.append(k)
        clock.now += sample_s.get(k, 0.01)
        assert len(got) <= 5
    assert got == ticks
