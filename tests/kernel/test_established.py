"""Held connections as the sampler counts them: ``established`` against ``ss state
established`` in a namespace, over both of the sampler's paths (one filtered dump per flow,
and one dump grouped per family past PER_FLOW_DUMPS flows), IPv4 and IPv6."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from portstorm.engine.sampler import PER_FLOW_DUMPS
from tests.support.netns import check, load, load_intervals, run_in_netns

pytestmark = pytest.mark.netns

# Run inside the namespace: listeners on FLOWS ports, per port HELD client connections kept
# open and CLOSED ones closed by the client (TIME_WAIT or FIN_WAIT2: held ports, not
# established), then one sample beside ss while everything is still open.
HOLDER = """
import json, socket, subprocess, sys
from portstorm.core.addressing import TupleSpec
from portstorm.engine.sampler import Sampler

host, flows, held, closed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
ports = [9000 + i for i in range(flows)]
listeners = []
for port in ports:
    ls = socket.socket(family, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(4096)
    listeners.append(ls)
kept, accepted = [], []
for ls, port in zip(listeners, ports):
    for i in range(held + closed):
        c = socket.create_connection((host, port))
        accepted.append(ls.accept()[0])
        if i < closed:
            c.close()  # the client's FIN first: its port is held, no longer established
        else:
            kept.append(c)
sampler = Sampler([TupleSpec(None, host, p) for p in ports], (40000, 49999))
s = sampler.sample()
sampler.close()
cond = f"( dport >= :{ports[0]} and dport <= :{ports[-1]} )"
ss = subprocess.run(["ss", "-Htn", "state", "established", cond],
                    capture_output=True, text=True, check=True).stdout
held_ss = subprocess.run(["ss", "-Htn", "state", "connected", cond],
                         capture_output=True, text=True, check=True).stdout
print(json.dumps({"established": s.established, "ports_in_use": s.ports_in_use,
                  "ss_established": len(ss.splitlines()),
                  "ss_connected": len(held_ss.splitlines())}))
"""


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("flows", [3, PER_FLOW_DUMPS + 4])
def test_established_count_matches_ss_with_held_and_closed_connections(
    tmp_path: Path, host: str, flows: int
) -> None:
    held, closed = 40, 25
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    proc = run_in_netns(
        f'{sys.executable} "{script}" {host} {flows} {held} {closed}',
        sysctls={"net.ipv4.ip_local_port_range": "40000 49999"},
    )
    check(proc)
    got = json.loads(proc.stdout.splitlines()[-1])
    assert got["established"] == got["ss_established"] == flows * held, got
    # every client socket, held or closed, holds its port (ss's "connected": every state
    # but LISTEN and CLOSE, TIME_WAIT included)
    assert got["ports_in_use"] == got["ss_connected"] == flows * (held + closed), got


def test_run_intervals_carry_established_and_old_files_load_without_it(tmp_path: Path) -> None:
    """A plain churn (connect, close) leaves nothing ESTABLISHED at the samples but the
    few in flight; the field is there in every interval, and a file without it loads."""
    proc = subprocess.run(
        [sys.executable, "-m", "portstorm", "run", "--sandbox", "pair", "--duration", "1",
         "--rate", "200", "--quiet", "--no-report", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    check(proc)
    doc = load(tmp_path / "result.json")
    assert doc["intervals"]
    for i in doc["intervals"]:
        assert isinstance(i["established"], int) and 0 <= i["established"] <= i["ports_in_use"]

    from portstorm.core.result import RunResult

    for i in doc["intervals"]:
        del i["established"]
    for r in doc.get("ramp") or []:
        r.pop("established", None)
    old = RunResult.from_json(doc)
    assert all(i.established is None for i in old.intervals)


def test_hold_2_s_at_100_per_second_holds_200_established_as_ss_counts(tmp_path: Path) -> None:
    """The issue's figure: --hold 2 --rate 100 holds rate x hold = 200 connections open at
    the steady state; the sampler's established and ``ss state established`` in the
    client's namespace (a host-mode run inside a test namespace) agree within 10 %."""
    log = tmp_path / "intervals.jsonl"
    script = f"""
$PORTSTORM run --sandbox host --hold 2 --rate 100 --duration 5 --quiet --no-report --out "{tmp_path}" >/dev/null &
pid=$!
# the steady state: from 2 s on (each connection lives 2 s); wait for the 4th interval
for i in $(seq 600); do
  [ -f "{log}" ] && [ "$(grep -c '^{{"interval"' "{log}")" -ge 4 ] && break
  sleep 0.05
done
echo "ss $(ss -Htn state established '( dport = :9000 )' | wc -l)"
wait $pid
"""
    proc = run_in_netns(script, sysctls={"net.ipv4.tcp_tw_reuse": "0"})
    check(proc)
    ss = int(dict(line.split() for line in proc.stdout.splitlines())["ss"])
    doc = load(tmp_path / "result.json")
    # sampled from 2.5 s (every connection then open was made after the start) until the
    # load's last starts at 5 s (after it, the run waits out the holds: established falls)
    steady = [
        i.established
        for i in load_intervals(tmp_path / "result.json")
        if i.t + i.dt >= 2.5 and i.t < 4.5
    ]
    # 200 +- 10 % at steady state (the median). A loaded machine's driver closes late
    # (a connection then stays open past its hold), never early: 224 and 236 were read
    # in full parallel suites, so each sample -15 % to +20 % (test_hold.py's bounds)
    assert steady and abs(statistics.median(steady) - 200) <= 20, steady
    assert all(170 <= e <= 240 for e in steady), steady
    assert abs(ss - 200) <= 20, ss
    # the model holds each port 2 s open, then 60 s in TIME_WAIT
    assert doc["capacity"]["hold_s"] == pytest.approx(62.0)
