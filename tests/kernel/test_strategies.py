"""Client strategies against the real kernel: bind modes, sources, several destinations.

KERNEL.md ("Ports"), measured here with a 100-port range, tcp_tw_reuse=0 and tcp_rfc1337=1
(exact counts): plain connect() takes a port per 4-tuple, bind((ip, 0)) a port per source
address, IP_BIND_ADDRESS_NO_PORT gives the 4-tuple sharing back, IP_LOCAL_PORT_RANGE
narrows the range per socket. Each case also checks the capacity model's tuples and
sustainable rate, and the per-tuple table in result.json.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.netns import check, load, load_intervals, require_netns, run_in_netns

pytestmark = pytest.mark.netns

EXACT = ["--set", "ip_local_port_range=40000-40099", "--set", "tcp_tw_reuse=0",
         "--set", "tcp_rfc1337=1"]  # fmt: skip


def _run(out: Path, *args: str) -> dict[str, Any]:
    require_netns()
    proc = subprocess.run(
        [sys.executable, "-m", "portstorm", "run", "--duration", "1.5", "--concurrency", "2",
         *EXACT, *args, "--quiet", "--no-report", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    check(proc)
    return load(out / "result.json")  # type: ignore[no-any-return]


def _per_tuple(doc: dict[str, Any]) -> dict[tuple[str, str], int]:
    return {(t["source"], t["destination"]): t["succeeded"] for t in doc["tuples"]}


def test_connect_toward_3_destinations_gets_300_ports(tmp_path: Path) -> None:
    doc = _run(tmp_path, "--sink-ports", "3")
    assert doc["totals"]["succeeded"] == 300
    assert set(doc["totals"]["failed"]) == {"port_exhausted"}
    assert doc["capacity"]["tuples"] == 3
    assert doc["capacity"]["sustainable_rate"] == pytest.approx(300 / 60)
    assert _per_tuple(doc) == {
        ("198.18.0.1", "198.18.0.2:9000"): 100,
        ("198.18.0.1", "198.18.0.2:9001"): 100,
        ("198.18.0.1", "198.18.0.2:9002"): 100,
    }
    assert [t["ports_in_use"] for t in doc["tuples"]] == [100, 100, 100]
    assert load_intervals(tmp_path / "result.json")[-1].ports_by_destination == {
        "198.18.0.2:9000": 100, "198.18.0.2:9001": 100, "198.18.0.2:9002": 100,
    }  # fmt: skip


def test_bind_before_connect_gets_100_then_bind_in_use(tmp_path: Path) -> None:
    doc = _run(tmp_path, "--sink-ports", "3", "--bind", "bind")
    assert doc["totals"]["succeeded"] == 100
    assert set(doc["totals"]["failed"]) == {"bind_in_use"}
    assert doc["events"]["first_failure_outcome"] == "bind_in_use"
    assert doc["capacity"]["tuples"] == 1
    assert doc["capacity"]["sustainable_rate"] == pytest.approx(100 / 60)
    assert sum(_per_tuple(doc).values()) == 100
    assert all(t["failed"].get("bind_in_use", 0) > 0 for t in doc["tuples"])


def test_bind_with_ip_bind_address_no_port_gets_300(tmp_path: Path) -> None:
    doc = _run(tmp_path, "--sink-ports", "3", "--bind", "no-port")
    assert doc["totals"]["succeeded"] == 300
    assert set(doc["totals"]["failed"]) == {"port_exhausted"}
    assert doc["capacity"]["tuples"] == 3
    assert doc["capacity"]["sustainable_rate"] == pytest.approx(300 / 60)


def test_two_sources_toward_one_destination_get_200(tmp_path: Path) -> None:
    doc = _run(tmp_path, "--source", "198.18.1.1", "--source", "198.18.1.2")
    assert doc["totals"]["succeeded"] == 200
    assert doc["capacity"]["tuples"] == 2
    assert doc["capacity"]["sustainable_rate"] == pytest.approx(200 / 60)
    assert _per_tuple(doc) == {
        ("198.18.1.1", "198.18.0.2:9000"): 100,
        ("198.18.1.2", "198.18.0.2:9000"): 100,
    }
    assert [t["ports_in_use"] for t in doc["tuples"]] == [100, 100]
    assert doc["scenario"]["sources"] == ["198.18.1.1", "198.18.1.2"]


def test_two_sources_with_bind_get_a_port_per_source_whatever_the_destination(
    tmp_path: Path,
) -> None:
    doc = _run(tmp_path, "--source", "198.18.1.0/30", "--sink-addresses", "3", "--bind", "bind")
    assert doc["totals"]["succeeded"] == 200
    assert doc["capacity"]["tuples"] == 2
    by_source: dict[str, int] = {}
    for (src, _dst), n in _per_tuple(doc).items():
        by_source[src] = by_source.get(src, 0) + n
    assert by_source == {"198.18.1.1": 100, "198.18.1.2": 100}
    assert {t["destination"] for t in doc["tuples"]} == {
        "198.18.0.2:9000", "198.18.0.3:9000", "198.18.0.4:9000",
    }  # fmt: skip


def test_a_10_port_per_socket_range_gives_10_per_destination(tmp_path: Path) -> None:
    doc = _run(tmp_path, "--sink-ports", "3", "--bind", "range", "--port-range", "40000-40009")
    assert _per_tuple(doc) == {("198.18.0.1", f"198.18.0.2:{p}"): 10 for p in (9000, 9001, 9002)}
    cap = doc["capacity"]
    assert (cap["usable_ports"], cap["tuples"]) == (10, 3)
    assert cap["sustainable_rate"] == pytest.approx(30 / 60)
    assert doc["scenario"]["port_range"] == "40000-40009"


def test_a_per_socket_bound_outside_the_range_is_ignored_as_the_kernel_does(
    tmp_path: Path,
) -> None:
    doc = _run(tmp_path, "--bind", "range", "--port-range", "39000-40019")
    assert doc["totals"]["succeeded"] == 20  # 40000-40019: the low bound 39000 was ignored
    assert doc["capacity"]["usable_ports"] == 20
    assert any("ignores a per-socket bound" in n for n in doc["notes"])


def test_many_tuples_are_counted_in_one_grouped_dump_that_agrees_with_ss(tmp_path: Path) -> None:
    # 2 sources x 5 ports = 10 tuples: more than the sampler's per-tuple dumps (8)
    script = f"""
$PORTSTORM run --sandbox host --duration 1 --concurrency 4 --sink-ports 5 \\
  --source 127.0.0.2 --source 127.0.0.3 --quiet --no-report --out "{tmp_path}" >/dev/null
for src in 127.0.0.2 127.0.0.3; do
  echo "$src $(ss -Htan state time-wait src $src | wc -l)"
done
"""
    proc = run_in_netns(script, sysctls={
        "net.ipv4.ip_local_port_range": "40000 40099", "net.ipv4.tcp_tw_reuse": "0",
        "net.ipv4.tcp_rfc1337": "1",
    })  # fmt: skip
    check(proc)
    doc = load(tmp_path / "result.json")
    assert len(doc["tuples"]) == 10
    assert doc["totals"]["succeeded"] == 1000
    assert all(t["ports_in_use"] == 100 for t in doc["tuples"])
    ss = dict(line.split() for line in proc.stdout.splitlines())
    for src in ("127.0.0.2", "127.0.0.3"):
        ours = sum(t["ports_in_use"] for t in doc["tuples"] if t["source"] == src)
        assert ours == int(ss[src]) == 500


def test_host_mode_names_sources_this_host_does_not_have(tmp_path: Path) -> None:
    script = f"""
set +e
$PORTSTORM run --sandbox host --duration 1 --source 127.0.0.2 --source 198.18.9.9 \\
  --source 198.18.9.10 --quiet --no-report --out "{tmp_path}" 2>"{tmp_path}/err"
echo "rc $?"
"""
    proc = run_in_netns(script)
    check(proc)
    assert proc.stdout.split() == ["rc", "2"]
    err = (tmp_path / "err").read_text().strip()
    assert err.splitlines() == [
        "portstorm: error: --source 198.18.9.9, 198.18.9.10: not an address of this host "
        "('ip addr' lists them); add it to an interface first, or use --sandbox pair, "
        "where portstorm adds them"
    ]
    assert not (tmp_path / "result.json").exists()


def test_a_kernel_without_the_socket_option_is_refused_with_exit_3(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from portstorm.core.errors import EnvironmentProblem
    from portstorm.engine import flows

    # an option number no kernel knows stands in for IP_LOCAL_PORT_RANGE on Linux < 6.3
    monkeypatch.setattr(flows, "IP_LOCAL_PORT_RANGE", 250)
    with pytest.raises(EnvironmentProblem, match=r"IP_LOCAL_PORT_RANGE \(Linux 6.3\+\)") as e:
        flows.check_socket_options(False, b"\x00\x00\x00\x00", kernel="5.15")
    assert e.value.exit_code == 3
    flows.check_socket_options(True, None, kernel="6.18")  # IP_BIND_ADDRESS_NO_PORT: known
