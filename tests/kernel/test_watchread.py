"""WatchReader against the real kernel, each test in a namespace of its own: known sockets
read back exactly (held, TIME_WAIT with their timers, several destinations, IPv6) and as
``ss`` counts them; ``new`` by cookie; the bind trap; and reading changes nothing.

Each test runs a short Python program inside the namespace (it makes the sockets and the
reader there) that prints one JSON object; the assertions are here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.netns import check, run_in_netns

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = f"""
import json, socket, subprocess, sys, time
sys.path.insert(0, {str(ROOT)!r})
from portstorm.engine.watchread import WatchReader
from portstorm.engine.sampler import read_time_wait
from pathlib import Path

def listen(host, port=900):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(512)
    return s

def client(srv, host, source=None, no_port=False, close=False):
    c = socket.socket(srv.family)
    if no_port:
        c.setsockopt(socket.IPPROTO_IP, 24, 1)  # IP_BIND_ADDRESS_NO_PORT
    if source is not None:
        c.bind((source, 0))
    c.connect((host, 900))
    a, _ = srv.accept()
    if close:  # the client first, then the server: TIME_WAIT on the client's port
        c.close()
        a.close()
        return None
    HELD.append((c, a))
    return c

def settle(n_tw):
    end = time.monotonic() + 10
    while read_time_wait(Path("/proc/self/net")) < n_tw and time.monotonic() < end:
        time.sleep(0.01)  # waiting for the last FIN to arrive, not a fixed wait

def groups(sample):
    return {{g.destination + " " + g.source: [dict(g.states), g.new, list(g.tw_expiring)]
            for g in sample.groups}}

HELD = []
"""


def _inside(tmp_path: Path, body: str, sysctls: dict[str, str] | None = None) -> Any:
    script = tmp_path / "inside.py"
    script.write_text(PRELUDE + body)
    proc = run_in_netns(f"{sys.executable} {script}", sysctls=sysctls, timeout=60)
    check(proc)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_known_sockets_read_back_exactly_and_as_ss_counts_them(tmp_path: Path) -> None:
    got = _inside(
        tmp_path,
        """
srvs = {h: listen(h) for h in ("127.0.0.1", "127.0.0.2", "127.0.0.3", "::1")}
for _ in range(20): client(srvs["127.0.0.1"], "127.0.0.1")
for _ in range(5): client(srvs["127.0.0.2"], "127.0.0.2")
for _ in range(30): client(srvs["127.0.0.3"], "127.0.0.3", close=True)
for _ in range(7): client(srvs["::1"], "::1")
settle(30)
r = WatchReader()
s = r.read()
r.close()
flt = "( sport >= :32768 and sport <= :60999 )"
ss = {}
for state in ("established", "time-wait"):
    out = subprocess.run(["ss", "-Htan", "state", state, flt], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        peer = line.split()[-1]
        ss[state + " " + peer] = ss.get(state + " " + peer, 0) + 1
print(json.dumps({"groups": groups(s), "ss": ss, "tw": s.time_wait, "range": s.port_range,
                  "usable": s.usable_ports}))
""",
    )
    g = got["groups"]
    assert set(g) == {
        "127.0.0.1:900 127.0.0.1",
        "127.0.0.2:900 127.0.0.1",
        "127.0.0.3:900 127.0.0.1",
        "[::1]:900 ::1",
    }
    est = {"established": 20, "time_wait": 0, "syn_sent": 0, "other": 0}
    assert g["127.0.0.1:900 127.0.0.1"][0] == est
    assert g["127.0.0.2:900 127.0.0.1"][0] == {**est, "established": 5}
    assert g["[::1]:900 ::1"][0] == {**est, "established": 7}
    tw_states, tw_new, bins = g["127.0.0.3:900 127.0.0.1"]
    assert tw_states == {**est, "established": 0, "time_wait": 30}
    assert tw_new == 30  # the first sample: every socket is new
    assert len(bins) == 61 and sum(bins) == 30
    assert sum(bins[55:]) == 30  # made within the last seconds: 55-60 s left
    assert got["ss"] == {
        "established 127.0.0.1:900": 20,
        "established 127.0.0.2:900": 5,
        "established [::1]:900": 7,
        "time-wait 127.0.0.3:900": 30,
    }
    assert got["tw"] == 30
    assert got["range"] == [32768, 60999] and got["usable"] == 28232


def test_new_counts_first_seen_sockets_once_and_time_wait_keeps_the_cookie(
    tmp_path: Path,
) -> None:
    got = _inside(
        tmp_path,
        """
srv = listen("127.0.0.1")
r = WatchReader()
first = r.read()
cs = [client(srv, "127.0.0.1") for _ in range(10)]
held = r.read()
for c, a in HELD:  # the 10 seen ESTABLISHED go to TIME_WAIT: same cookies, not new
    c.close(); a.close()
settle(10)
closed = r.read()
for _ in range(5): client(srv, "127.0.0.1", close=True)  # came and went between samples
settle(15)
churned = r.read()
again = r.read()
r.close()
print(json.dumps([groups(x) for x in (first, held, closed, churned, again)]))
""",
    )
    first, held, closed, churned, again = got
    key = "127.0.0.1:900 127.0.0.1"
    assert first == {}
    assert held[key][0]["established"] == 10 and held[key][1] == 10
    assert closed[key][0]["time_wait"] == 10 and closed[key][1] == 0
    assert churned[key][0]["time_wait"] == 15 and churned[key][1] == 5
    assert again[key][1] == 0


def test_a_client_that_binds_before_connecting_to_3_destinations_shows_the_bind_trap(
    tmp_path: Path,
) -> None:
    got = _inside(
        tmp_path,
        """
dests = ("127.0.1.1", "127.0.1.2", "127.0.1.3")
srvs = [listen(h) for h in dests]
for srv, h in zip(srvs, dests):
    for i in range(10):
        client(srv, h, source="127.0.0.2", close=i < 3)  # bind() to port 0, then connect
        client(srv, h)  # plain connect() from 127.0.0.1
        client(srv, h, source="127.0.0.3", no_port=True)  # IP_BIND_ADDRESS_NO_PORT
settle(9)
r = WatchReader()
s = r.read()
r.close()
print(json.dumps({"trap": s.bind_trap, "groups": groups(s)}))
""",
    )
    # 21 held and 9 in TIME_WAIT, all on bind()'s port parity: each port lost to every
    # destination; plain connect() and IP_BIND_ADDRESS_NO_PORT take none
    assert got["trap"] == {"127.0.0.2": 30}
    assert got["groups"]["127.0.1.1:900 127.0.0.2"][0]["time_wait"] == 3


def test_reading_changes_no_sysctl_and_no_socket_of_the_namespace(tmp_path: Path) -> None:
    got = _inside(
        tmp_path,
        """
def sysctls():
    out = subprocess.run(["sysctl", "-a"], capture_output=True, text=True).stdout
    return sorted(l for l in out.splitlines() if l.startswith("net.")
                  and "nf_conntrack_count" not in l)
def sockets():
    return subprocess.run(["ss", "-Htan"], capture_output=True, text=True).stdout
srv = listen("127.0.0.1")
for i in range(20): client(srv, "127.0.0.1", close=i % 2 == 0)
settle(10)
before = (sysctls(), sockets())
r = WatchReader(process_every_s=0)
for _ in range(3):
    r.read()
r.close()
after = (sysctls(), sockets())
print(json.dumps({"same_sysctls": before[0] == after[0], "same_sockets": before[1] == after[1],
                  "n": len(before[0])}))
""",
        sysctls={"net.ipv4.ip_local_port_range": "40000 40999"},
    )
    assert got["n"] > 100
    assert got["same_sysctls"] and got["same_sockets"]


def test_a_listener_inside_the_range_makes_no_client_group_and_is_not_usable(
    tmp_path: Path,
) -> None:
    got = _inside(
        tmp_path,
        """
srv = listen("127.0.0.1", 40001)  # a service on an ephemeral port: its own bind bucket
for _ in range(4):
    c = socket.create_connection(("127.0.0.1", 40001))
    HELD.append((c, srv.accept()[0]))
r = WatchReader()
s = r.read()
r.close()
print(json.dumps([groups(s), s.usable_ports]))
""",
        sysctls={"net.ipv4.ip_local_port_range": "40000 40999"},
    )
    found, usable = got
    # the 4 clients' sockets form the one group; the 4 accepted ones (local port 40001)
    # hold the listener's port, not ephemeral ones, and are left out
    assert list(found) == ["127.0.0.1:40001 127.0.0.1"]
    assert found["127.0.0.1:40001 127.0.0.1"][0]["established"] == 4
    # and connect() never takes the listener's port: 999 of the 1,000 are usable
    assert usable == 999


def test_sockets_on_reserved_ports_are_left_out_and_the_range_is_read_each_sample(
    tmp_path: Path,
) -> None:
    got = _inside(
        tmp_path,
        """
srv = listen("127.0.0.1")
for port in (40000, 40010, 40015, 40019, 40500, 40600, 40998):
    c = socket.socket()
    c.bind(("127.0.0.1", port))  # explicit ports: reserved ones may be bound so
    c.connect(("127.0.0.1", 900))
    HELD.append((c, srv.accept()[0]))
r = WatchReader()
s1 = r.read()
Path("/proc/sys/net/ipv4/ip_local_reserved_ports").write_text("40600")
s2 = r.read()
r.close()
print(json.dumps([[sorted(x.reserved), x.usable_ports, groups(x)] for x in (s1, s2)]))
""",
        sysctls={
            "net.ipv4.ip_local_port_range": "40000 40999",
            "net.ipv4.ip_local_reserved_ports": "40010-40019,40500",
        },
    )
    (res1, usable1, g1), (res2, usable2, g2) = got
    assert res1 == [*range(40010, 40020), 40500] and usable1 == 1000 - 11
    assert g1["127.0.0.1:900 127.0.0.1"][0]["established"] == 3  # 40000, 40600, 40998
    assert res2 == [40600] and usable2 == 999
    assert g2["127.0.0.1:900 127.0.0.1"][0]["established"] == 6
