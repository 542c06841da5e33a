"""portstorm runs as root: planted links, hostile journals and saved files, full disks.

Each test is an attack or an accident from issue 15 and what must happen instead: one
line, the contract's exit code, and nothing outside portstorm's own files touched. Runs
that write sysctls (restore, host mode) happen inside a throwaway network namespace; full
and read-only disks are tmpfs mounts inside a private mount namespace (``unshare -m``), so
neither this machine's sysctls nor its mounts change.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import assert_one_line_error, portstorm
from tests.support.netns import check, load, run_in_netns
from tests.support.reportdata import simulate
from tests.support.require import require

VICTIM_TEXT = "precious: must not change\n"
RUN = ["run", "--duration", "0.5", "--rate", "20", "--interval", "0.25", "--quiet", "--no-report"]
RUN_WITH_REPORT = ["run", "--duration", "0.5", "--rate", "20", "--interval", "0.25", "--quiet"]


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.write_text(VICTIM_TEXT)
    return victim


def _result_dir(tmp_path: Path) -> Path:
    """A folder holding a valid result.json (synthetic: no run needed)."""
    d = tmp_path / "saved"
    d.mkdir()
    (d / "result.json").write_text(json.dumps(simulate(ports=100, rate=50).to_json()))
    return d


def _run_as_root(
    *args: str, cwd: Path | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portstorm", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def _need_root() -> None:
    require(os.geteuid() == 0, "needs root (the attacks are on root's writes)")


# -- 1. planted links -------------------------------------------------------------------


@pytest.mark.netns
@pytest.mark.parametrize(
    "name",
    ["report.html", "rate.png", "intervals.csv", "latency.hlog", "intervals.jsonl", "result.json"],
)
def test_a_link_planted_in_the_out_folder_is_refused_and_its_target_untouched(
    tmp_path: Path, name: str
) -> None:
    _need_root()
    victim = _victim(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(victim)
    force = ["--force"] if name in ("result.json", "intervals.jsonl") else []
    proc = _run_as_root(*RUN_WITH_REPORT, "--sandbox", "loopback", "--out", str(out), *force)
    assert_one_line_error(proc, 3, f"{out / name}", "symbolic link")
    assert victim.read_text() == VICTIM_TEXT
    assert (out / name).is_symlink()


def test_a_link_planted_where_report_writes_a_chart_is_refused(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    saved = _result_dir(tmp_path)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "r-latency.png").symlink_to(victim)
    proc = portstorm("report", str(saved), "-o", str(dest / "r.html"))
    assert_one_line_error(proc, 3, "r-latency.png", "symbolic link")
    assert victim.read_text() == VICTIM_TEXT
    assert not (dest / "r.html").exists()


def test_an_out_folder_that_is_a_link_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    saved = _result_dir(tmp_path)
    proc = portstorm("report", str(saved), "-o", str(tmp_path / "link" / "x.html"))
    assert_one_line_error(proc, 3, "is a symbolic link")
    proc = _run_as_root(*RUN, "--out", str(tmp_path / "link"))
    assert_one_line_error(proc, 3, "is a symbolic link")
    assert list(real.iterdir()) == []
    # a link further up is the path the user typed, followed as the kernel does
    proc = portstorm("report", str(saved), "-o", str(tmp_path / "link" / "sub" / "x.html"))
    assert proc.returncode == 0, proc.stderr
    assert (real / "sub" / "x.html").is_file()


def test_an_out_folder_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    _need_root()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    proc = _run_as_root(*RUN, "--out", str(theirs))
    assert_one_line_error(proc, 3, str(theirs), "owned by uid 65534")
    assert list(theirs.iterdir()) == []
    saved = _result_dir(tmp_path)
    proc = portstorm("report", str(saved), "-o", str(theirs / "r.html"))
    assert_one_line_error(proc, 3, "owned by uid 65534")


def _sweep(tmp_path: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _run_as_root(
        "sweep", "--vary", "tcp_tw_reuse=0,1", "--duration", "0.3", "--rate", "20",
        "--sandbox", "loopback", "--quiet", "--no-report", "--out", str(out), *extra,
        timeout=120,
    )  # fmt: skip


@pytest.mark.netns
def test_a_sweep_refuses_a_planted_cell_folder_on_resume_and_a_planted_run_log(
    tmp_path: Path,
) -> None:
    _need_root()
    out = tmp_path / "sweep"
    check(_sweep(tmp_path, out))
    # the second cell becomes a link to a folder of the victim's, and is marked undone
    cell = out / "cells" / "02-tcp_tw_reuse=1"
    shutil.rmtree(cell)
    victim_dir = tmp_path / "victim-dir"
    victim_dir.mkdir()
    cell.symlink_to(victim_dir)
    doc = load(out / "sweep.json")
    doc["cells"][1]["runs"][0]["status"] = "failed"
    (out / "sweep.json").write_text(json.dumps(doc))
    proc = _sweep(tmp_path, out, "--resume")
    assert_one_line_error(proc, 3, "02-tcp_tw_reuse=1", "symbolic link")
    assert list(victim_dir.iterdir()) == []
    # a new sweep whose run.log name is a planted link
    out2 = tmp_path / "sweep2"
    run_dir = out2 / "cells" / "01-tcp_tw_reuse=0" / "r1"
    run_dir.mkdir(parents=True)
    victim = _victim(tmp_path)
    (run_dir / "run.log").symlink_to(victim)
    proc = _sweep(tmp_path, out2)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "symbolic link" in proc.stderr
    assert victim.read_text() == VICTIM_TEXT


# -- 2. restore journals ----------------------------------------------------------------


def _journal_script(tmp_path: Path, values: dict[str, Any], mode: str = "600") -> str:
    state = tmp_path / "state"
    doc = {"format": "portstorm.journal/1", "pid": 1, "netns": None, "values": values}
    return f"""
export PORTSTORM_STATE_DIR="{state}"
mkdir -p "{state}" && chmod 700 "{state}"
cat > "{state}/restore-journal.json" <<'EOF'
{json.dumps(doc)}
EOF
chmod {mode} "{state}/restore-journal.json"
$PORTSTORM restore > "{tmp_path}/out" 2> "{tmp_path}/err" || echo "rc=$?"
"""


@pytest.mark.netns
@pytest.mark.parametrize(
    "name",
    ["ABSOLUTE", "net/../../../../../VICTIM", "net.ipv4.tcp_tw_reuse/../../../../../../VICTIM"],
)
def test_restore_writes_only_studied_sysctls_under_proc_sys_net(tmp_path: Path, name: str) -> None:
    victim = _victim(tmp_path)
    entry = str(victim) if name == "ABSOLUTE" else name.replace("VICTIM", str(victim)[1:])
    proc = run_in_netns(_journal_script(tmp_path, {entry: "pwned"}))
    assert "rc=3" in proc.stdout, proc.stdout + proc.stderr
    err = (tmp_path / "err").read_text().strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "nothing restored" in err or "outside /proc/sys/net" in err, err
    assert victim.read_text() == VICTIM_TEXT
    assert (tmp_path / "state" / "restore-journal.json").exists()  # kept for a person to see


@pytest.mark.netns
def test_restore_refuses_a_journal_others_could_have_written(tmp_path: Path) -> None:
    proc = run_in_netns(_journal_script(tmp_path, {"net.ipv4.tcp_tw_reuse": "0"}, mode="644"))
    assert "rc=3" in proc.stdout, proc.stdout + proc.stderr
    assert "mode 644" in (tmp_path / "err").read_text()


@pytest.mark.netns
def test_restore_refuses_a_value_the_sysctl_does_not_take(tmp_path: Path) -> None:
    script = _journal_script(tmp_path, {"net.ipv4.tcp_tw_reuse": "0\n1"})
    proc = run_in_netns(script + 'echo "reuse $(cat /proc/sys/net/ipv4/tcp_tw_reuse)"')
    assert "rc=3" in proc.stdout, proc.stdout + proc.stderr
    err = (tmp_path / "err").read_text()
    assert "'net.ipv4.tcp_tw_reuse'" in err and "not accepted" in err, err
    assert "reuse 2" in proc.stdout  # nothing written


@pytest.mark.netns
def test_a_runs_own_restore_uses_the_values_it_kept_not_the_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    journal = state / "restore-journal.json"
    # while the run holds tcp_tw_reuse=0, the journal is edited to "restore" 1
    script = f"""
export PORTSTORM_STATE_DIR="{state}"
$PORTSTORM run --sandbox host --change-host-sysctls --set tcp_tw_reuse=0 --duration 30 \
    --rate 20 --quiet --no-report --out "{tmp_path}/r" >/dev/null 2>&1 &
pid=$!
n=0; while [ ! -s "{journal}" ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done
sed -i 's/"net.ipv4.tcp_tw_reuse": "2"/"net.ipv4.tcp_tw_reuse": "1"/' "{journal}"
grep -c '"1"' "{journal}"
kill -TERM $pid
wait $pid || echo "rc=$?"
echo "after $(cat /proc/sys/net/ipv4/tcp_tw_reuse)"
"""
    proc = run_in_netns(script)
    assert "rc=130" in proc.stdout, proc.stdout + proc.stderr
    assert "after 2" in proc.stdout, proc.stdout
    assert not journal.exists()


# -- 10, 11. a live run's journal; a journal nobody can clear ----------------------------


@pytest.mark.netns
def test_a_live_runs_journal_is_in_progress_and_restore_refuses_without_force(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    journal = state / "restore-journal.json"
    script = f"""
export PORTSTORM_STATE_DIR="{state}"
$PORTSTORM run --sandbox host --change-host-sysctls --set tcp_tw_reuse=0 --duration 60 \
    --rate 20 --quiet --no-report --out "{tmp_path}/r" >/dev/null 2>&1 &
pid=$!
n=0; while [ ! -s "{journal}" ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done
$PORTSTORM restore > "{tmp_path}/restore.out" 2> "{tmp_path}/restore.err" || echo "restore rc=$?"
echo "during $(cat /proc/sys/net/ipv4/tcp_tw_reuse)"
$PORTSTORM inspect > /dev/null 2> "{tmp_path}/inspect.err" || true
$PORTSTORM restore --force > "{tmp_path}/force.out" 2>&1 || echo "force rc=$?"
echo "forced $(cat /proc/sys/net/ipv4/tcp_tw_reuse)"
kill -TERM $pid
wait $pid || echo "rc=$?"
"""
    proc = run_in_netns(script)
    assert "restore rc=3" in proc.stdout, proc.stdout + proc.stderr
    assert "during 0" in proc.stdout  # not reverted under the running run
    assert "still running" in (tmp_path / "restore.err").read_text()
    assert "in progress" in (tmp_path / "inspect.err").read_text()
    assert "forced 2" in proc.stdout and "force rc" not in proc.stdout, proc.stdout
    assert "net.ipv4.tcp_tw_reuse = '2'" in (tmp_path / "force.out").read_text()


def _python_for_nobody() -> list[str]:
    """A Python that the user nobody can run, seeing this checkout and the venv's packages."""
    py = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    require(py.exists(), f"{py} (Debian's python3) is not installed: cannot run as nobody")
    require(shutil.which("setpriv") is not None, "setpriv (util-linux) is not installed")
    return [str(py)]


def _open_dir(prefix: str) -> Path:
    """A new folder every user can enter (pytest's tmp_path sits in a root-only folder)."""
    import tempfile

    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(d, 0o755)
    return d


@pytest.fixture(scope="session")
def nobody_packages() -> Any:
    """The venv's packages and this checkout's portstorm, copied once per test process
    where nobody can read them (the venv may sit under /root). The .pyc files come too,
    their source mtimes kept by the copy, so nobody's Python (PYTHONDONTWRITEBYTECODE)
    compiles nothing: a copy without them cost ~45 s of CPU per test."""
    if os.geteuid() != 0:
        yield None  # _as_nobody skips first
        return
    d = _open_dir("portstorm-nobody-pkgs-")
    try:
        site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
        shared = d / "pkgs"
        # less to copy: the tools of development and CI, which portstorm never imports
        tools = shutil.ignore_patterns("mypy", "mypyc", "*__mypyc*", "pip", "setuptools",
                                       "hypothesis", "ansible", "ansible_*", "ruff")  # fmt: skip
        shutil.copytree(site, shared, symlinks=True, ignore=tools)
        root = Path(__file__).resolve().parents[2]
        shutil.copytree(root / "portstorm", shared / "portstorm", dirs_exist_ok=True)
        for folder, _dirs, files in os.walk(d):
            os.chmod(folder, 0o755)
            for f in files:
                path = os.path.join(folder, f)
                if not os.path.islink(path):
                    os.chmod(path, 0o644)
        yield shared
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def open_tmp(nobody_packages: Path | None) -> Any:
    """A folder every user can enter, with the shared packages linked in as ``pkgs``."""
    d = _open_dir("portstorm-nobody-")
    if nobody_packages is not None:
        (d / "pkgs").symlink_to(nobody_packages)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _as_nobody(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    _need_root()
    py = _python_for_nobody()
    shared = tmp_path / "pkgs"  # open_tmp's link to the session's copy (nobody_packages)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    os.chown(home, 65534, 65534)
    environ = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(shared),
        "HOME": str(home),
        "PYTHONDONTWRITEBYTECODE": "1",
        **env,
    }
    return subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *py, "-m", "portstorm",
         *args],
        capture_output=True, text=True, timeout=90, env=environ, cwd=home,
    )  # fmt: skip


def test_as_nobody_live_sysctl_changes_are_refused_before_a_journal_is_written(
    open_tmp: Path,
) -> None:
    tmp_path = open_tmp
    proc = _as_nobody(
        [*RUN, "--sandbox", "host", "--change-host-sysctls", "--set", "tcp_tw_reuse=0",
         "--out", str(tmp_path / "home" / "r")],
        tmp_path,
    )  # fmt: skip
    assert_one_line_error(proc, 3, "tcp_tw_reuse", "permission denied")
    state = tmp_path / "home" / ".local" / "state" / "portstorm" / "restore-journal.json"
    assert not state.exists()


def test_as_nobody_an_out_folder_it_cannot_enter_is_one_line(open_tmp: Path) -> None:
    tmp_path = open_tmp
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    proc = _as_nobody([*RUN, "--out", str(locked / "r")], tmp_path)
    assert_one_line_error(proc, 3, str(locked), "ermission denied")


# -- 4. sweep --resume takes nothing from the file on trust -----------------------------


def _planned_sweep(tmp_path: Path, **changes: Any) -> Path:
    """A sweep.json as a new sweep writes it, with ``changes`` made by hand."""
    from portstorm.cli.sweepplan import plan_sweep
    from portstorm.core.sweep import parse_vary
    from portstorm.engine.sweep import SweepRunner

    plan = plan_sweep([parse_vary("tcp_tw_reuse=0,1")], 1, ["--duration", "0.3"], None, None, 2)
    out = tmp_path / "sweep"
    out.mkdir()
    doc = SweepRunner(plan, out).doc()
    doc.update(changes)
    (out / "sweep.json").write_text(json.dumps(doc))
    return out


@pytest.mark.netns
def test_resume_does_not_take_live_sysctl_changes_from_the_file(tmp_path: Path) -> None:
    out = _planned_sweep(
        tmp_path, base_args=["--duration", "0.3", "--sandbox", "host", "--change-host-sysctls"]
    )
    # in a namespace: today's code would run host-mode cells and change sysctls there
    proc = run_in_netns(
        f'export PORTSTORM_STATE_DIR="{tmp_path}/state"\n'
        f'$PORTSTORM sweep --resume --out "{out}" --quiet --no-report 2> "{tmp_path}/err" '
        f'|| echo "rc=$?"\necho "reuse $(cat /proc/sys/net/ipv4/tcp_tw_reuse)"'
    )
    assert "rc=2" in proc.stdout, proc.stdout + proc.stderr
    err = (tmp_path / "err").read_text().strip()
    assert len(err.splitlines()) == 1 and "--change-host-sysctls" in err, err
    assert not (out / "cells").exists()


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"parallel": 5000}, "parallel: 5000; allowed: an integer from 1 to 64"),
        ({"parallel": 0}, "parallel: 0;"),
        ({"parallel": "x"}, "parallel: 'x';"),
        ({"repeat": 1000}, "repeat: 1000; allowed: an integer from 1 to 100"),
        ({"base_args": ["--rate", "-1"]}, "--rate -1"),
        ({"base_args": "--rate 5"}, "base_args"),
    ],
)
def test_resume_validates_the_stored_plan_like_a_new_sweep(
    tmp_path: Path, changes: dict[str, Any], fragment: str
) -> None:
    out = _planned_sweep(tmp_path, **changes)
    proc = portstorm("sweep", "--resume", "--out", str(out), "--quiet", "--no-report")
    assert_one_line_error(proc, 2, fragment)
    assert not (out / "cells").exists()


# -- 5. unbounded input -----------------------------------------------------------------


def _limited_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def _report_limited(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portstorm", "report", *args],
        capture_output=True, text=True, timeout=60, preexec_fn=_limited_memory,
    )  # fmt: skip


def test_report_of_dev_zero_is_refused_at_once() -> None:
    assert_one_line_error(_report_limited("/dev/zero"), 2, "/dev/zero", "not a regular file")


def test_report_of_a_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "result.json"
    os.mkfifo(fifo)
    assert_one_line_error(_report_limited(str(fifo)), 2, "a FIFO")


def test_report_of_a_file_past_the_cap_is_refused_with_the_cap(tmp_path: Path) -> None:
    big = tmp_path / "result.json"
    with big.open("wb") as f:  # sparse: no disk used
        f.truncate((1 << 30) + 1)
    assert_one_line_error(_report_limited(str(big)), 2, "1 GiB")


def test_a_sweep_run_path_outside_the_sweep_is_refused(tmp_path: Path) -> None:
    out = _planned_sweep(tmp_path)
    doc = load(out / "sweep.json")
    doc["cells"][0]["runs"][0]["status"] = "done"
    doc["cells"][0]["runs"][0]["path"] = "../../../../../../../dev/zero"
    (out / "sweep.json").write_text(json.dumps(doc))
    assert_one_line_error(_report_limited(str(out)), 2, "leaves the sweep")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("[" * 100_000 + "]" * 100_000, "nested too deeply"), ('{"n": ' + "9" * 5000 + "}", "4300")],
)
def test_hostile_json_is_one_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "result.json"
    path.write_text(text)
    assert_one_line_error(_report_limited(str(path)), 2, fragment)


# -- 9, 12. full and read-only disks, and folders that take no files --------------------


def _in_mount_namespace(script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``script`` in a private mount namespace (a tmpfs mounted there vanishes with it),
    inside a network namespace too, as a run needs."""
    _need_root()
    require(shutil.which("unshare") is not None, "unshare (util-linux) is not installed")
    return run_in_netns(f"unshare -m --propagation private sh -ec '{script}'", timeout=timeout)


@pytest.mark.netns
def test_a_disk_that_fills_during_the_run_stops_it_in_one_line_and_keeps_the_log(
    tmp_path: Path,
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    script = f"""
mount -t tmpfs -o size=256k tmpfs "{disk}"
$PORTSTORM run --sandbox loopback --duration 60 --rate 50 --interval 0.1 --quiet --out "{disk}/r" > "{tmp_path}/stdout" 2> "{tmp_path}/stderr" &
pid=$!
n=0; while [ ! -s "{disk}/r/intervals.jsonl" ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done
dd if=/dev/zero of="{disk}/fill" bs=4k 2>/dev/null || true
wait $pid || echo "rc=$?"
cp -a "{disk}/r" "{tmp_path}/kept"
ls -a "{disk}/r"
"""
    proc = _in_mount_namespace(script)
    assert "rc=3" in proc.stdout, proc.stdout + proc.stderr + (tmp_path / "stderr").read_text()
    err = (tmp_path / "stderr").read_text().strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1 and "no space left on device while writing" in err, err
    kept = tmp_path / "kept"
    assert not [p for p in kept.iterdir() if p.name.endswith(".tmp")]  # whole or absent
    from portstorm.core import intervallog

    recovered = intervallog.read(kept / "intervals.jsonl")
    assert recovered.intervals  # the log stays readable, its last cut line skipped
    if (kept / "result.json").exists():
        load(kept / "result.json")


@pytest.mark.netns
def test_a_full_disk_while_reporting_is_one_line_and_leaves_no_truncated_png(
    tmp_path: Path,
) -> None:
    saved = _result_dir(tmp_path)
    disk = tmp_path / "disk"
    disk.mkdir()
    script = f"""
mount -t tmpfs -o size=160k tmpfs "{disk}"
$PORTSTORM report "{saved}" -o "{disk}/report.html" > /dev/null 2> "{tmp_path}/stderr" || echo "rc=$?"
cp -a "{disk}/." "{tmp_path}/kept/"
"""
    (tmp_path / "kept").mkdir()
    proc = _in_mount_namespace(script)
    assert "rc=3" in proc.stdout, proc.stdout + proc.stderr
    err = (tmp_path / "stderr").read_text().strip()
    assert len(err.splitlines()) == 1 and "no space left on device while writing" in err, err
    for png in (tmp_path / "kept").glob("*.png"):
        assert png.read_bytes().endswith(b"IEND\xaeB`\x82"), png  # whole, not cut short
    assert not list((tmp_path / "kept").glob(".*.tmp"))


@pytest.mark.netns
def test_an_out_folder_on_a_read_only_file_system_is_refused_before_the_run(
    tmp_path: Path,
) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    script = f"""
mount -t tmpfs -o ro,size=64k tmpfs "{ro}"
$PORTSTORM {" ".join(RUN)} --out "{ro}" > /dev/null 2> "{tmp_path}/stderr" || echo "rc=$?"
"""
    proc = _in_mount_namespace(script)
    assert "rc=3" in proc.stdout, proc.stdout + proc.stderr
    err = (tmp_path / "stderr").read_text().strip()
    assert len(err.splitlines()) == 1 and "read-only" in err, err


def test_out_in_proc_is_refused_before_the_sandbox_is_built() -> None:
    assert_one_line_error(_run_as_root(*RUN, "--out", "/proc"), 3, "--out /proc")


def test_a_report_into_proc_is_one_line(tmp_path: Path) -> None:
    saved = _result_dir(tmp_path)
    assert_one_line_error(portstorm("report", str(saved), "-o", "/proc/x.html"), 3, "/proc")


# -- 13. smaller ------------------------------------------------------------------------


@pytest.mark.netns
def test_an_unresolvable_target_leaves_no_empty_run_folder(tmp_path: Path) -> None:
    proc = run_in_netns(
        f'cd "{tmp_path}"\n$PORTSTORM run no-such-host.invalid:80 --duration 1 || echo "rc=$?"'
    )
    assert "rc=3" in proc.stdout, proc.stdout + proc.stderr
    assert not (tmp_path / "reports").exists() or not list((tmp_path / "reports").iterdir())


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "--out", ""], "empty path"),
        (["report", "x.json", "-o", ""], "empty path"),
        (["sweep", "--vary", "tcp_tw_reuse=0,1", "--out", ""], "empty path"),
        (["run", "--duration", "\u0661\u0660"], "'\u0661\u0660'"),
        (["run", "--rate", "\u0665\u0660"], "'\u0665\u0660'"),
    ],
)
def test_small_bad_inputs_are_refused(args: list[str], fragment: str) -> None:
    assert_one_line_error(portstorm(*args), 2, fragment)


def test_an_unknown_sweep_option_is_named_without_a_wrong_suggestion() -> None:
    proc = portstorm("sweep", "--vary", "tcp_tw_reuse=0,1", "--bogus")
    assert_one_line_error(proc, 2, "--bogus")
    assert "--out" not in proc.stderr


def test_interrupted_while_drawing_a_report_leaves_no_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from portstorm.report import runcharts, write_run_report

    calls = []

    def interrupt(r: Any) -> Any:
        calls.append(1)
        raise KeyboardInterrupt

    charts = list(runcharts.RUN_CHARTS)
    charts[1] = (charts[1][0], charts[1][1], interrupt)
    monkeypatch.setattr(runcharts, "RUN_CHARTS", tuple(charts))
    with pytest.raises(KeyboardInterrupt):
        write_run_report(simulate(), tmp_path / "report.html")
    assert calls and list(tmp_path.iterdir()) == []


def test_a_sweep_sigtermed_after_its_runs_exits_130(tmp_path: Path) -> None:
    # SIGTERM arrives once the runs are over (while the sweep prints and reports)
    code = f"""
import os, signal, sys
import portstorm.cli.sweepcmd as s
class Runner:
    def __init__(self, plan, out_dir, on_progress=None, resume_doc=None):
        self.plan, self.pending, self.interrupted, self.records = plan, [], False, {{}}
    def run(self):
        os.kill(os.getpid(), signal.SIGTERM)
        return True
s.SweepRunner = Runner
s.load_subjects = lambda path: []
from portstorm.cli import main
main(["sweep", "--vary", "tcp_tw_reuse=0,1", "--out", {str(tmp_path / "s")!r}, "--quiet"])
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr


@pytest.mark.netns
def test_every_output_file_has_one_mode(tmp_path: Path) -> None:
    out = tmp_path / "out"
    check(_run_as_root(*RUN_WITH_REPORT, "--sandbox", "loopback", "--out", str(out)))
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in out.iterdir()}
    assert set(modes.values()) == {"0o644"}, modes


def test_no_signal_handler_leaks_from_the_report(tmp_path: Path) -> None:
    from portstorm.report import write_run_report

    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    write_run_report(simulate(), tmp_path / "report.html")
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before


@pytest.mark.netns
def test_a_second_ctrl_c_skips_the_report_of_an_interrupted_run(tmp_path: Path) -> None:
    # the first Ctrl-C saves result.json and says the report is being drawn; a second one
    # (sent once that line is out) skips the drawing and leaves no part of a report
    out, err = tmp_path / "r", tmp_path / "stderr"
    script = f"""
$PORTSTORM run --duration 60 --rate 200 --quiet --out "{out}" > /dev/null 2> "{err}" &
pid=$!
n=0; until [ "$(wc -l < "{out}/intervals.jsonl" 2>/dev/null || echo 0)" -ge 3 ] || [ $n -ge 1200 ]; do sleep 0.05; n=$((n+1)); done
kill -INT $pid
n=0; until grep -q "Ctrl-C again" "{err}" || [ $n -ge 1200 ]; do sleep 0.01; n=$((n+1)); done
kill -INT $pid
wait $pid || echo "rc=$?"
"""
    proc = run_in_netns(script)
    assert "rc=130" in proc.stdout, proc.stdout + proc.stderr
    text = err.read_text()
    assert "Traceback" not in text and "report skipped" in text, text
    assert load(out / "result.json")["complete"] is False
    assert sorted(p.name for p in out.iterdir()) == ["intervals.jsonl", "result.json"]
