"""The command line as a user meets it: exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import assert_one_line_error, in_process, portstorm
from tests.support.netns import check, load, run_in_netns

BAD_RUN_ARGS = [
    (["--rate", "0"], ["--rate 0", "allowed"]),
    (["--rate", "-5"], ["--rate -5", "allowed"]),
    (["--rate", "abc"], ["'abc'", "allowed"]),
    (["--duration", "0"], ["--duration 0", "allowed"]),
    (["--duration", "-1"], ["--duration -1", "allowed"]),
    (["--concurrency", "0"], ["--concurrency 0", "allowed"]),
    (["--concurrency", "-3"], ["--concurrency -3", "allowed"]),
    (["--interval", "0"], ["--interval 0"]),
    (["--connect-timeout", "nan"], ["--connect-timeout nan"]),
    (["--close", "sometimes"], ["'sometimes'", "client", "server", "rst"]),
    (["127.0.0.1"], ["'127.0.0.1'", "HOST:PORT"]),
    (["127.0.0.1:0"], ["port 0", "1-65535"]),
    (["127.0.0.1:70000"], ["port 70000", "1-65535"]),
    (["host:http"], ["'http'"]),
    (["[zz]:80"], ["IPv6"]),
    (["--no-such-option"], ["--no-such-option"]),
    (["--bind", "sometimes"], ["'sometimes'", "connect", "bind", "no-port", "range"]),
    (["--bind", "range"], ["--bind range needs --port-range"]),
    (["--port-range", "40000-40009"], ["--port-range applies to --bind range only"]),
    (["--bind", "range", "--port-range", "40009-40000"], ["high 40000 is below low 40009"]),
    (["--source", "10.0.0.1"], ["--source 10.0.0.1", "198.18.0.0/15"]),
    (["--source", "198.18.1.1/24"], ["'198.18.1.1/24'", "198.18.1.0/24"]),
    (["--source", "x"], ["--source 'x'", "IP address"]),
    (["--sandbox", "loopback", "--source", "198.18.1.1"], ["127.0.0.0/8"]),
    (["--sink-ports", "many"], ["--sink-ports 'many'", "allowed"]),
    (["--sink-addresses", "0"], ["--sink-addresses 0", "allowed"]),
    (["--sink-ports", "2", "127.0.0.1:80"], ["--sink-ports applies to the built-in sink"]),
]


@pytest.mark.parametrize(("args", "fragments"), BAD_RUN_ARGS)
def test_bad_run_input_is_one_line_and_exit_2(
    args: list[str], fragments: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_one_line_error(in_process(monkeypatch, "run", *args), 2, *fragments)


def test_a_bad_run_input_is_one_line_and_exit_2_from_a_real_process() -> None:
    args, fragments = BAD_RUN_ARGS[0]
    assert_one_line_error(portstorm("run", *args), 2, *fragments)


def test_an_out_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    assert_one_line_error(portstorm("run", "--duration", "1", "--out", str(f)), 2, str(f))


def test_an_out_folder_holding_a_result_is_refused_without_force(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text('{"earlier": "measurements"}')
    proc = portstorm("run", "--duration", "1", "--out", str(tmp_path))
    assert_one_line_error(proc, 2, f"--out {tmp_path}: already holds a result", "--force")
    assert (tmp_path / "result.json").read_text() == '{"earlier": "measurements"}'


def test_force_replaces_the_result_in_out(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text('{"earlier": "measurements"}')
    proc = run_in_netns(
        f'$PORTSTORM run --duration 1 --rate 20 --out "{tmp_path}" --force --quiet --no-report'
    )
    check(proc)
    assert load(tmp_path / "result.json")["totals"]["succeeded"] == 20


def test_force_without_a_report_removes_the_replaced_results_report(tmp_path: Path) -> None:
    stale = ["report.html", "port-space.png", "rate.png", "intervals.csv", "latency.hlog"]
    (tmp_path / "result.json").write_text('{"earlier": "measurements"}')
    for name in [*stale, "mine.html"]:
        (tmp_path / name).write_text("of the earlier result")
    proc = run_in_netns(
        f'$PORTSTORM run --duration 1 --rate 20 --out "{tmp_path}" --force --no-report --quiet'
    )
    check(proc)
    assert load(tmp_path / "result.json")["totals"]["succeeded"] == 20
    assert [n for n in stale if (tmp_path / n).exists()] == []
    assert (tmp_path / "mine.html").exists()  # not the default name: the user's own file
    assert "removed the replaced result's report (5 files)" in proc.stdout


def test_an_unresolvable_target_is_exit_3(tmp_path: Path) -> None:
    # inside a namespace with only loopback, so no name query leaves the machine
    proc = run_in_netns(
        f'$PORTSTORM run no-such-host.invalid:80 --duration 1 --out "{tmp_path}" || echo "rc=$?"'
    )
    assert "rc=3" in proc.stdout, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot resolve 'no-such-host.invalid'" in lines[0]


@pytest.mark.parametrize(
    ("listen", "code", "fragment"),
    [("nonsense", 2, "--listen 'nonsense'"), ("127.0.0.1:99999", 2, "65535")],
)
def test_bad_sink_listen_address_is_refused(listen: str, code: int, fragment: str) -> None:
    assert_one_line_error(portstorm("sink", "--listen", listen), code, fragment)


@pytest.mark.parametrize("workers", ["0", "65", "two", "1.5"])
def test_bad_sink_worker_count_is_refused(workers: str) -> None:
    proc = portstorm("sink", "--listen", "127.0.0.1:0", "--workers", workers)
    assert_one_line_error(proc, 2, "--workers", workers, "1 and <= 64")


def test_sink_on_a_port_in_use_is_exit_3() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert_one_line_error(
            portstorm("sink", "--listen", f"127.0.0.1:{port}"), 3, f"127.0.0.1:{port}", "in use"
        )


def test_help_lists_the_commands() -> None:
    proc = portstorm("--help")
    assert proc.returncode == 0
    assert "run" in proc.stdout and "sink" in proc.stdout


def test_a_commands_help_is_wrapped_at_the_terminal_not_where_the_source_broke() -> None:
    # Typer keeps a docstring's line breaks after its first paragraph: each paragraph is
    # joined first (cli/helptext.py), so a wide terminal shows it on one line
    env = dict(os.environ, COLUMNS="250")
    proc = subprocess.run([sys.executable, "-m", "portstorm", "restart", "--help"],
                          capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "so TIME_WAIT sits on its port; then its listener closes and new sockets" in proc.stdout
    # a flag takes no value: no "<bool>" where a value's name would go (Typer 0.29 put it
    # beside every flag, --help included)
    assert "<bool>" not in proc.stdout and "--old-listener" in proc.stdout, proc.stdout


@pytest.mark.netns
@pytest.mark.parametrize("sig", ["INT", "TERM"])
def test_an_interrupted_run_exits_130_and_keeps_its_partial_result(
    tmp_path: Path, sig: str
) -> None:
    script = f"""
$PORTSTORM run --duration 30 --rate 200 --out "{tmp_path}" > "{tmp_path}/stdout" 2>&1 &
pid=$!
# two intervals logged (header + 2 lines), whatever the machine's load
n=0; while [ "$(wc -l < "{tmp_path}/intervals.jsonl" 2>/dev/null || echo 0)" -lt 3 ] && [ $n -lt 1200 ]; do sleep 0.05; n=$((n+1)); done
kill -{sig} $pid
wait $pid || echo "rc=$?"
"""
    proc = run_in_netns(script)
    assert "rc=130" in proc.stdout, proc.stdout + proc.stderr
    doc = load(tmp_path / "result.json")
    assert doc["complete"] is False
    assert 2 <= len(doc["intervals"]) <= 4
    assert 300 <= doc["totals"]["succeeded"] <= 700
    assert doc["duration_s"] < 5
    assert "INTERRUPTED" in (tmp_path / "stdout").read_text()
    # the report of what was measured is written too, and says the run was cut short
    assert "interrupted after" in (tmp_path / "report.html").read_text()


def test_a_killed_run_leaves_intervals_that_portstorm_report_reads(tmp_path: Path) -> None:
    script = f"""
$PORTSTORM run --duration 30 --rate 200 --out "{tmp_path}" > /dev/null 2>&1 &
pid=$!
# two intervals logged (header + 2 lines), however slowly the run started (was: sleep 3)
n=0; while [ "$(wc -l < "{tmp_path}/intervals.jsonl" 2>/dev/null || echo 0)" -lt 3 ] && [ $n -lt 1200 ]; do sleep 0.05; n=$((n+1)); done
kill -KILL $pid
wait $pid || true
"""
    check(run_in_netns(script))
    assert not (tmp_path / "result.json").exists()  # SIGKILL: no chance to write it
    proc = portstorm("report", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "report.html").read_text()
    assert "recovered from intervals.jsonl" in html
    assert "This run was interrupted after" in html
    lines = (tmp_path / "intervals.jsonl").read_text().splitlines()
    assert 2 <= len(lines) - 1 <= 4  # the header, then one line per interval so far
    # a killed run's folder holds a measurement too: refused without --force
    assert_one_line_error(portstorm("run", "--out", str(tmp_path)), 2, "intervals.jsonl", "--force")


@pytest.mark.netns
def test_the_sink_dies_with_a_killed_run(tmp_path: Path) -> None:
    # SIGKILL of portstorm must not leave the sink process behind (PR_SET_PDEATHSIG)
    script = f"""
$PORTSTORM run --sandbox host --duration 30 --rate 10 --out "{tmp_path}" >/dev/null 2>&1 &
pid=$!
# wait until the sink listens and the run is under way (killed earlier, a starting sink
# would die of a broken pipe instead, hiding whether it dies with its parent)
for i in $(seq 600); do [ -n "$(ss -Htln '( sport = :9000 )')" ] && break; sleep 0.1; done
sleep 1
sink=$(pgrep -P $pid -f "portstorm.engine.sink_mai[n]") || {{ echo "no sink was running"; kill $pid; exit 1; }}
kill -KILL $pid
for i in $(seq 50); do kill -0 $sink 2>/dev/null || break; sleep 0.1; done
if kill -0 $sink 2>/dev/null; then echo "sink $sink survived"; kill $sink; exit 1; fi
echo ok
"""
    proc = run_in_netns(script)
    check(proc)
    assert proc.stdout.strip().endswith("ok")


def _with_1024_fds_and_no_way_up() -> None:
    import ctypes
    import os
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
    if os.geteuid() == 0:
        # root could raise the hard limit again with CAP_SYS_RESOURCE: drop it from the
        # bounding set, so the exec'd portstorm does not have it (PR_CAPBSET_DROP = 24,
        # CAP_SYS_RESOURCE = 24, include/uapi/linux/{prctl,capability}.h)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(24, 24, 0, 0, 0) != 0:
            os._exit(99)


def test_concurrency_above_the_fd_hard_limit_is_refused_with_exit_3(tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    proc = subprocess.run(
        [sys.executable, "-m", "portstorm", "run", "--concurrency", "5000", "--duration", "1",
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60, preexec_fn=_with_1024_fds_and_no_way_up,
    )  # fmt: skip
    assert_one_line_error(proc, 3, "--concurrency 5000", "5064 file descriptors", "1024")


def test_a_choice_spelled_wrong_is_refused_naming_what_is_allowed() -> None:
    proc = portstorm("run", "--close", "RST")
    assert proc.returncode == 2
    assert proc.stderr == (
        "portstorm run: error: Invalid value for '--close': 'RST' is not one of 'client', "
        "'server', 'rst'.\n"
    ), proc.stderr  # without the "Value error, " pydantic put before Typer's words
