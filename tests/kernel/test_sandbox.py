"""Sandboxes: runs in fresh namespaces that copy the host's settings and never change them."""

from __future__ import annotations

import os
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from portstorm.engine.sink_handle import SINK_MODULE
from tests.support.cli import in_process
from tests.support.netns import check, load, run_in_netns
from tests.support.require import require

pytestmark = pytest.mark.netns

RUN = [sys.executable, "-m", "portstorm", "run"]
NARROW = "ip_local_port_range=40000-40099"


def _require_root() -> None:
    require(
        os.geteuid() == 0, "this test creates namespaces from the host's own namespace: run as root"
    )


def _snapshot(*roots: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                try:
                    with open(path, "rb") as f:
                        out[path] = f.read()
                except OSError:
                    continue  # write-only or refused entries
    return out


def test_sandboxed_runs_with_overrides_leave_host_sysctls_unchanged(tmp_path: Path) -> None:
    _require_root()
    roots = ("/proc/sys/net/ipv4", "/proc/sys/net/core")
    before = _snapshot(*roots)
    assert "/proc/sys/net/ipv4/tcp_tw_reuse" in before
    sets = ["--set", NARROW, "--set", "tcp_tw_reuse=1", "--set", "tcp_fin_timeout=5",
            "--set", "tcp_max_tw_buckets=50", "--set", "tcp_timestamps=0"]  # fmt: skip
    for i, extra in enumerate(
        [["--sandbox", "pair", "--server-set", "tcp_rfc1337=1", "--server-set", "somaxconn=77"],
         ["--sandbox", "loopback"]]
    ):  # fmt: skip
        proc = subprocess.run(
            [*RUN, "--duration", "1", "--rate", "50", *sets, *extra, "--quiet",
             "--no-report", "--out", str(tmp_path / str(i))],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        check(proc)
        tun = load(tmp_path / str(i) / "result.json")["tunings"]
        assert tun["net.ipv4.tcp_tw_reuse"] == "1" and tun["net.ipv4.tcp_max_tw_buckets"] == "50"
    after = _snapshot(*roots)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert changed == []


def _exhaust(tmp_path: Path, sandbox: str) -> dict[str, object]:
    _require_root()
    out = tmp_path / sandbox
    proc = subprocess.run(
        [*RUN, "--sandbox", sandbox, "--duration", "3", "--rate", "80", "--set", NARROW,
         "--no-report", "--out", str(out)],  # what it says is in the summary: no charts
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    check(proc)
    doc: dict[str, object] = load(out / "result.json")
    doc["_stdout"] = proc.stdout
    return doc


def test_pair_with_default_tw_reuse_exhausts_at_100_and_says_why(tmp_path: Path) -> None:
    doc = _exhaust(tmp_path, "pair")
    t = doc["totals"]
    assert isinstance(t, dict)
    assert doc["tunings"]["net.ipv4.tcp_tw_reuse"] == "2"  # type: ignore[index]
    assert 98 <= t["succeeded"] <= 102, t  # KERNEL.md: rfc1337=0 allows a little slack
    assert t["failed"].get("port_exhausted", 0) > 100
    assert "loopback only" in str(doc["_stdout"]) and "veth" in str(doc["_stdout"])


def test_loopback_with_default_tw_reuse_does_not_exhaust_and_says_why(tmp_path: Path) -> None:
    doc = _exhaust(tmp_path, "loopback")
    t = doc["totals"]
    assert isinstance(t, dict)
    assert t["succeeded"] == 240 and t["failed"] == {}, t
    assert "LOOPBACK" in str(doc["_stdout"]) and "flatter" in str(doc["_stdout"])


def test_the_hosts_values_are_copied_into_both_namespaces(tmp_path: Path) -> None:
    # the test's namespace plays the host, with distinctive values
    distinct = {
        "net.ipv4.tcp_fin_timeout": "37",
        "net.ipv4.tcp_max_tw_buckets": "12345",
        "net.ipv4.ip_local_reserved_ports": "41000-41002",
        "net.ipv4.tcp_rfc1337": "1",
        "net.core.somaxconn": "333",
    }
    proc = run_in_netns(
        f'$PORTSTORM run --sandbox pair --duration 1 --rate 10 --set tcp_fin_timeout=5 --quiet --no-report --out "{tmp_path}"',
        sysctls=distinct,
    )
    check(proc)
    doc = load(tmp_path / "result.json")
    for name, value in distinct.items():
        assert doc["server_tunings"][name] == value, name
        if name != "net.ipv4.tcp_fin_timeout":
            assert doc["tunings"][name] == value, name
    assert doc["tunings"]["net.ipv4.tcp_fin_timeout"] == "5"  # the override wins


def _census(tag: str) -> tuple[set[int], int, int]:
    """(the network namespaces of the processes carrying ``tag`` in their environment,
    veths in this namespace, sink processes carrying it): this run's, whatever else runs
    on the machine. Its children inherit the environment; the namespaces are anonymous
    (engine/netns.py), so they exist exactly while a process of the run is in one, and
    the veth is made inside them (engine/sandbox.py), never here."""
    namespaces, sinks = set(), 0
    marker = f"PORTSTORM_TEST_TAG={tag}".encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if marker not in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                continue
            namespaces.add(os.stat(f"/proc/{pid}/ns/net").st_ino)
            sinks += SINK_MODULE.encode() in Path(f"/proc/{pid}/cmdline").read_bytes().replace(
                b"\0", b" "
            )
        except OSError:
            continue
    veths = subprocess.run(["ip", "-o", "link", "show", "type", "veth"],
                           capture_output=True, text=True).stdout.count("\n")  # fmt: skip
    return namespaces, veths, sinks


def _threads(pid: int) -> list[str]:
    """Each thread of ``pid``: its name, state, kernel wait channel and signal masks."""
    out: list[str] = []
    try:
        tids = sorted(os.listdir(f"/proc/{pid}/task"))
    except OSError:  # it ended meanwhile
        return out
    keys = ("Name", "State", "SigPnd", "ShdPnd", "SigBlk", "SigCgt")
    for tid in tids:
        d = Path(f"/proc/{pid}/task/{tid}")
        try:
            lines = d.joinpath("status").read_text().splitlines()
            wchan = d.joinpath("wchan").read_text()
        except OSError:
            continue
        status = {k: v for k, _, v in (line.partition(":\t") for line in lines)}
        out.append(f"{tid} wchan={wchan} " + " ".join(f"{k}={status.get(k, '?')}" for k in keys))
    return out


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_a_killed_run_leaves_no_namespace_veth_or_process(tmp_path: Path, sig: int) -> None:
    _require_root()
    tag = uuid.uuid4().hex
    before = _census(tag)
    assert before[0] == set() and before[2] == 0
    proc = subprocess.Popen(
        [*RUN, "--duration", "30", "--rate", "50", "--out", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PORTSTORM_TEST_TAG=tag),
    )  # fmt: skip
    try:
        # Wait for the first live line: the load is running, so the sink is past its ready
        # line (killed earlier, a starting sink dies of a broken pipe, proving nothing).
        assert proc.stderr is not None
        for line in proc.stderr:
            if "conn/s" in line:
                break
        during = _census(tag)
        own = os.stat(f"/proc/{proc.pid}/ns/net").st_ino
        assert len(during[0] - {own}) == 1 and own != os.stat("/proc/self/ns/net").st_ino, (
            "expected a client and a server namespace"
        )
        assert during[2] == 1, "expected one sink process"
        proc.send_signal(sig)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # seen 1 in ~50 under a loaded suite, not reproduced in 125 tries of the same
            # steps beside the kernel tests: what the run was doing is the clue, so the
            # failure carries it
            threads = _threads(proc.pid)
            proc.kill()
            proc.wait()  # then its output is whole: read() returns at the pipe's end
            pytest.fail(
                f"the run went on 30 s after signal {sig}; its threads: {threads}; its "
                f"output after the first live line: {proc.stderr.read()[-3000:]!r}"
            )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == (-signal.SIGKILL if sig == signal.SIGKILL else 130)
    deadline = time.monotonic() + 30  # polled: ends as soon as all is gone
    while time.monotonic() < deadline and _census(tag) != before:
        time.sleep(0.1)
    after = _census(tag)
    assert after[0] == set(), "a namespace outlived the run (a process of the run is in it)"
    assert after[1:] == before[1:]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--set", "tcp_nonsense=1"], ["'tcp_nonsense'", "allowed", "tcp_tw_reuse"]),
        (["--set", "tcp_tw_reuse=3"], ["tcp_tw_reuse='3'", "0 (off), 1 (on), 2 (loopback only)"]),
        (["--set", "ip_local_port_range=80-90"], ["ip_unprivileged_port_start 1024"]),
        (["--set", "ip_local_port_range=5000-4000"], ["below low"]),
        (["--set", "tcp_tw_reuse_delay=0"], ["1-60000"]),
        (["--set", "tcp_tw_reuse"], ["NAME=VALUE"]),
        (["--server-set", "net.ipv4.tcp_timestamps=9"], ["--server-set", "tcp_timestamps"]),
        (["--sandbox", "loopback", "--server-set", "tcp_rfc1337=1"], ["--server-set", "use --set"]),
        (["--sandbox", "pair", "127.0.0.1:80"], ["--sandbox pair", "--sandbox host"]),
        (["--sandbox", "host", "--set", "tcp_tw_reuse=1"], ["live sysctls"]),
        (["--sandbox", "sideways"], ["'sideways'", "pair", "loopback", "host"]),
    ],
)
def test_bad_tunings_and_sandbox_combinations_are_refused_before_anything_runs(
    args: list[str], fragments: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # in this process (nothing can run: in_process replaces the run); a refusal from a real
    # process: tests/cli/test_cli.py
    proc = in_process(monkeypatch, "run", *args)
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for f in fragments:
        assert f in err, (f, err)


def _interpreter_for(uid: int) -> tuple[str, str] | None:
    """A Python that ``uid`` may run, with the PYTHONPATH that finds portstorm and its deps."""
    repo = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join([repo, *site.getsitepackages()])
    for exe in (sys.executable, "/usr/bin/python3"):
        probe = subprocess.run(
            ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
             "env", f"PYTHONPATH={path}", exe, "-c", "import portstorm.engine.run"],
            capture_output=True, text=True,
        )  # fmt: skip
        if probe.returncode == 0:
            return exe, path
    return None


@pytest.fixture
def world_writable_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="portstorm-unpriv-"))
    d.chmod(0o777)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_an_unprivileged_user_runs_a_sandboxed_experiment(world_writable_dir: Path) -> None:
    _require_root()
    require(shutil.which("setpriv") is not None, "setpriv (util-linux) is not installed")
    found = _interpreter_for(65534)
    require(
        found is not None, "no Python 3.11 with portstorm's dependencies is readable by uid 65534"
    )
    assert found is not None
    exe, path = found
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         "env", f"PYTHONPATH={path}", exe, "-m", "portstorm", "run", "--duration", "2",
         "--rate", "80", "--set", NARROW, "--quiet", "--no-report", "--out", str(world_writable_dir / "r")],
        capture_output=True, text=True, timeout=60, cwd=world_writable_dir,
    )  # fmt: skip
    check(proc)
    doc = load(world_writable_dir / "r" / "result.json")
    assert doc["scenario"]["user_namespace"] is True
    assert doc["scenario"]["sandbox"] == "pair"
    assert doc["tunings"]["net.ipv4.ip_local_port_range"] == "40000 40099"
    assert 98 <= doc["totals"]["succeeded"] <= 102
