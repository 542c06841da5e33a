"""The benchmarks still build and run (tiny settings): their figures are in benchmarks/README.md,
and a baseline that no longer compiles would leave those figures unreproducible."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.netns import check, require_netns, run_in_netns
from tests.support.require import require

ROOT = Path(__file__).resolve().parents[2]
C_DIR = ROOT / "benchmarks" / "c"

# Not alone (tests/conftest.py): these check that the benchmarks build and run, at tiny
# settings, and assert no figure. They churn as fast as the cores go, so they run at the
# lowest CPU priority (nice 19, NICE below): beside them at priority 0 a full suite once
# starved a held-connection run at 100/s to 26 conn/s; at nice 19 they take only what the
# tests beside them leave, less than the `stress-ng --cpu 2` the suite must pass beside.
# Alone, one after another, they held the whole suite for 15 s at its end.
NICE = ["nice", "-n", "19"]
# and they take no lock (tests/conftest.py): at nice 19 they can run beside the alone tests
# too, in the CPU those leave idle, instead of holding the shared lock for the ~50 s a
# full suite starves them and keeping the alone tests waiting
BACKGROUND = pytest.mark.background
pytestmark = [pytest.mark.netns]


def _compile(
    tmp_path: Path, names: tuple[str, str] = ("churn_client", "churn_sink")
) -> tuple[Path, Path]:
    cc = shutil.which("cc") or shutil.which("gcc")
    require(cc is not None, "no C compiler (cc or gcc) to build benchmarks/c")
    assert cc is not None
    out = []
    for name in names:
        exe = tmp_path / name
        subprocess.run([*NICE, cc, "-O2", "-Wall", "-Werror", "-o", str(exe), str(C_DIR / f"{name}.c")],
                       check=True)  # fmt: skip
        out.append(exe)
    return out[0], out[1]


def _c_pair_runs_without_failures(
    tmp_path: Path, names: tuple[str, str], close: str, exchange: str = ""
) -> None:
    """Build a benchmarks/c client and sink, run the client 0.5 s against the sink in a
    namespace, and check it made connections and had no failure."""
    client, sink = _compile(tmp_path, names)
    script = f"""
renice -n 19 $$ > /dev/null
{sink} 127.0.0.1 9000 {exchange} 2 > "{tmp_path}/ready" &
pid=$!
for i in $(seq 600); do [ -s "{tmp_path}/ready" ] && break; sleep 0.1; done
{client} 127.0.0.1 9000 0.5 {close} {exchange} 2 > "{tmp_path}/out"
kill -TERM $pid
wait $pid
"""
    check(run_in_netns(script, sysctls={"net.ipv4.tcp_tw_reuse": "1",
                                        "net.ipv4.tcp_tw_reuse_delay": "1"}))  # fmt: skip
    assert (tmp_path / "ready").read_text() == "ready\n"
    words = (tmp_path / "out").read_text().split()  # connections N failures M seconds S
    assert words[0] == "connections" and int(words[1]) > 100, words
    assert words[2:4] == ["failures", "0"], words


@BACKGROUND
@pytest.mark.parametrize("close", ["rst", "fin"])
def test_c_baseline_client_and_sink_churn_without_failures(tmp_path: Path, close: str) -> None:
    _c_pair_runs_without_failures(tmp_path, ("churn_client", "churn_sink"), close)


@BACKGROUND
def test_churn_benchmark_runs_end_to_end() -> None:
    require(shutil.which("cc") is not None or shutil.which("gcc") is not None, "no C compiler")
    require_netns()
    proc = subprocess.run(
        [*NICE, sys.executable, str(ROOT / "benchmarks" / "churn.py"), "--seconds", "0.5",
         "--repeat", "1", "--rss-connections", "0", "--cpu", "3"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for line in ("a  C client", "b  portstorm driver", "c  portstorm driver", "summary: rst: b/a",
                 "p  Python loop", "p/a = "):  # fmt: skip
        assert line in out, out
    # --cpu: each close mode split, or (niced on a busy machine: under 1,000 connections
    # in its steady second) said to be too few; a split's connections cost some CPU
    for close in ("RST", "FIN"):
        assert f"{close}  b/p: user" in out or f"{close}  too few connections" in out, out
    for words in [ln.split() for ln in out.splitlines() if "us a connection" in ln]:
        user, system = (
            float(words[words.index("user") + 1]),
            float(words[words.index("system") + 1]),
        )
        assert user + system > 0, out


@BACKGROUND
@pytest.mark.parametrize("close", ["rst", "fin"])
def test_c_crr_baseline_answers_every_request_without_failures(tmp_path: Path, close: str) -> None:
    """TCP_CRR in C: a 1-byte request, a 100-byte response per connection (more than one
    byte, so a short read would show as a failure), both close modes."""
    _c_pair_runs_without_failures(tmp_path, ("crr_client", "crr_sink"), close, "1 100")


@BACKGROUND
def test_crr_benchmark_runs_end_to_end() -> None:
    require(shutil.which("cc") is not None or shutil.which("gcc") is not None, "no C compiler")
    require_netns()
    proc = subprocess.run(
        [*NICE, sys.executable, str(ROOT / "benchmarks" / "crr.py"), "--seconds", "0.5",
         "--repeat", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for line in ("a  C CRR client", "b  portstorm", "c  portstorm", "summary: rst: b/a"):
        assert line in out, out
    assert "the C client had" not in out, out  # the C sink answered every request


def test_conntrack_benchmark_runs_end_to_end() -> None:
    """benchmarks/conntrack.py at 200 entries: it builds its router, fills the table, times
    the reader against `conntrack -L` where installed, and leaves nothing behind."""
    require_netns()
    require(shutil.which("nft") is not None, "nft (Debian's nftables) is not installed")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "conntrack.py"), "--entries", "200",
         "--repeat", "2"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for line in ("kernel: walk only", "Python: parsing the same bytes", "goal < 50 ms"):
        assert line in out, out
