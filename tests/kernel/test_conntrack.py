"""The router's conntrack as engine/conntrack.py reads it, in namespaces the test builds:
client (the test's namespace) -> router (nftables SNAT to 198.18.0.1, a small port pool)
-> server. The reader is made from the client namespace with an fd naming the router's,
and used from another thread too; its counts are checked against `conntrack -L` in the
router (when installed) and the router's nf_conntrack_count."""

from __future__ import annotations

import errno
import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.support.netns import check, run_in_netns
from tests.support.require import require

pytestmark = pytest.mark.netns

# Builds router R and server S (each held by a `sleep` in its own namespace, killed on the
# way out; the namespaces go with them), SNAT in R to 198.18.0.1:$POOL, a server on
# 198.18.0.2:9000 closing each connection when the client has, then runs the driver here.
TOPOLOGY = """
unshare -n sleep 120 & R=$!
unshare -n sleep 120 & S=$!
SRV=
trap 'kill $R $S $SRV 2>/dev/null' EXIT INT TERM
me=$(readlink /proc/self/ns/net)
while [ "$(readlink /proc/$R/ns/net)" = "$me" ] || [ "$(readlink /proc/$S/ns/net)" = "$me" ]; do
  sleep 0.01
done
nsenter -t $R -n ip link add ps-rin type veth peer name ps-client netns $$
nsenter -t $R -n ip link add ps-rout type veth peer name ps-server netns $S
for a in 1 2 3; do ip addr add 198.19.0.$a/16 dev ps-client; done
ip link set ps-client up
ip route add default via 198.19.255.254
nsenter -t $R -n sh -ec '
ip link set lo up
ip addr add 198.19.255.254/16 dev ps-rin; ip link set ps-rin up
ip addr add 198.18.0.1/16 dev ps-rout; ip link set ps-rout up
sysctl -qw net.ipv4.ip_forward=1'
printf '%s\\n' 'table ip portstorm {' ' chain post {' \\
  '  type nat hook postrouting priority srcnat' \\
  "  oifname \\"ps-rout\\" meta l4proto tcp snat to 198.18.0.1:$POOL" ' }' '}' \\
  | nsenter -t $R -n nft -f -
nsenter -t $S -n sh -ec 'ip link set lo up; ip addr add 198.18.0.2/16 dev ps-server
ip link set ps-server up'
ready=$(mktemp -u)
nsenter -t $S -n "$PYTHON" "$SERVER" "$ready" & SRV=$!
while [ ! -e "$ready" ]; do sleep 0.01; done
rm -f "$ready"
R=$R "$PYTHON" "$DRIVER" "$MODE"
"""

SERVER = """
import selectors, socket, sys
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("198.18.0.2", 9000))
ls.listen(64)
open(sys.argv[1], "w").close()
sel = selectors.DefaultSelector()
sel.register(ls, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj is ls:
            sel.register(ls.accept()[0], selectors.EVENT_READ)
        elif not key.fileobj.recv(64):  # the client closed: close too (TIME_WAIT)
            sel.unregister(key.fileobj)
            key.fileobj.close()
"""

DRIVER = """
import json, os, shutil, socket, subprocess, sys, threading, time
from collections import Counter
from portstorm.core.addressing import TupleSpec
from portstorm.engine.conntrack import ConntrackReader
from portstorm.engine.sampler import Sampler

mode, router = sys.argv[1], os.environ["R"]
fd = os.open(f"/proc/{router}/ns/net", os.O_RDONLY)
reader = ConntrackReader(fd, ("198.18.0.1",))
DST = ("198.18.0.2", 9000)

def until(cond, limit=15.0):  # waiting for the kernel's event, not a fixed sleep
    end = time.monotonic() + limit
    while not cond(t := reader.dump()) and time.monotonic() < end:
        time.sleep(0.02)
    return t

held = []
for i in range(3):
    held.append(socket.create_connection(DST, timeout=5))
out = {}
if mode == "count":
    for i in range(4):
        socket.create_connection(DST, timeout=5).close()
    t = until(lambda t: t.by_state.get("time_wait") == 4 and t.by_state.get("established") == 3)
    box = []
    th = threading.Thread(target=lambda: box.append(reader.dump()))  # never entered the router
    th.start(); th.join()
    sampler = Sampler([TupleSpec(None, *DST)], (32768, 60999), router_netns=fd,
                      nat_addresses=("198.18.0.1",))
    sample = sampler.sample()
    sampler.close()
    out.update(entries=t.entries, states=t.by_state, nat=t.nat_ports, thread=box[0].by_state,
               sample_entries=sample.router.conntrack_entries,
               sample_nat=sample.router.nat_ports_in_use, table_count=reader.table_count())
    with open("/proc/sys/net/netfilter/nf_conntrack_count") as f:  # this (client) namespace's
        out["client_count"] = int(f.read())
    ns = ["nsenter", "-t", router, "-n"]
    out["kernel_count"] = int(subprocess.run([*ns, "cat",
        "/proc/sys/net/netfilter/nf_conntrack_count"], capture_output=True, text=True,
        check=True).stdout)
    if shutil.which("conntrack"):
        lines = subprocess.run([*ns, "conntrack", "-L"], capture_output=True, text=True,
                               check=True).stdout.splitlines()
        out["ct_states"] = dict(Counter(x.split()[3].lower() for x in lines if x.startswith("tcp ")))
        out["ct_entries"] = len(lines)
else:  # exhaust: the 3-port pool is held; new connections cannot be mapped
    until(lambda t: t.by_state.get("established") == 3)
    reader.read()  # the counters' baseline
    outcomes = []
    for src in ("198.19.0.2", "198.19.0.3"):
        c = socket.socket()
        c.settimeout(1.5)  # the SYN and its retransmission at 1 s
        c.bind((src, 0))
        try:
            c.connect(DST)
            outcomes.append("ok")
        except OSError as e:
            outcomes.append(type(e).__name__)
        c.close()
    r = reader.read()
    out.update(outcomes=outcomes, insert_failed=r.insert_failed, drop=r.drop,
               nat=r.nat_ports_in_use, states=dict(r.conntrack_by_state))
reader.close()
print(json.dumps(out))
"""


def run(tmp_path: Path, mode: str, pool: str) -> dict[str, object]:
    require(shutil.which("nft") is not None, "nft (Debian's nftables) is not installed")
    require(shutil.which("nsenter") is not None, "nsenter (util-linux) is not installed")
    files = {}
    for name, text in (("server.py", SERVER), ("driver.py", DRIVER)):
        files[name] = tmp_path / name
        files[name].write_text(text)
    env = (
        f'POOL={pool} MODE={mode} PYTHON="{sys.executable}" SERVER="{files["server.py"]}" '
        f'DRIVER="{files["driver.py"]}"'
    )
    proc = run_in_netns(f"export {env}\n{TOPOLOGY}", timeout=90)
    check(proc)
    doc: dict[str, object] = json.loads(proc.stdout.splitlines()[-1])
    return doc


def test_held_and_closed_connections_read_as_conntrack_lists_them(tmp_path: Path) -> None:
    """3 held open, 4 closed by the client (TIME_WAIT): 7 entries, and only the held ones
    hold a NAT port; the same from a thread that never entered the router, through the
    Sampler, from `conntrack -L`, and from the router's own nf_conntrack_count."""
    # a 100-port pool: with 10 ports a loaded full run read 6 entries, one closed
    # connection's TIME_WAIT entry gone, as when a held connection's port search takes one
    # over in its last attempts (nf_nat_used_tuple_harder()); 100 leave the search room
    got = run(tmp_path, "count", "40000-40099")
    states = {"established": 3, "time_wait": 4}
    assert got["entries"] == 7 and got["states"] == states, got
    assert got["nat"] == {"198.18.0.2:9000": 3}, got
    assert got["thread"] == states, got
    assert got["sample_entries"] == 7 and got["sample_nat"] == {"198.18.0.2:9000": 3}, got
    assert got["table_count"] == got["kernel_count"] == 7, got
    assert got["client_count"] == 0, got  # the fds read the router, not where they are used
    if "ct_states" in got:
        assert got["ct_states"] == states and got["ct_entries"] == 7, got


def test_held_connections_exhaust_a_3_port_nat_pool_and_insert_failed_rises(
    tmp_path: Path,
) -> None:
    got = run(tmp_path, "exhaust", "40000-40002")
    assert got["outcomes"] == ["TimeoutError", "TimeoutError"], got
    assert got["nat"] == {"198.18.0.2:9000": 3}, got
    # each SYN the router could not map: dropped, counted (KERNEL.md "A NAT in the path")
    assert isinstance(got["insert_failed"], int) and got["insert_failed"] >= 2, got
    assert isinstance(got["drop"], int) and got["drop"] >= 2, got


def test_a_failed_router_reading_leaves_that_interval_without_router(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reading that raises (a broken dump) gives ``router`` None for that sample only;
    the next sample has the reader's reading. No namespace needed: sock_diag here."""
    from portstorm.core.addressing import TupleSpec
    from portstorm.core.routerrecord import RouterReading
    from portstorm.engine.sampler import Sampler

    class Flaky:
        def __init__(self) -> None:
            self.calls = 0

        def read(self) -> RouterReading:
            self.calls += 1
            if self.calls == 1:
                raise OSError(errno.EPROTO, "ctnetlink: a datagram of 6 bytes")
            return RouterReading(5, {"established": 5}, insert_failed=2)

        def close(self) -> None:
            pass

    sampler = Sampler([TupleSpec(None, "127.0.0.1", 9)], (40000, 40009))
    monkeypatch.setattr(sampler, "_router", Flaky())
    try:
        assert sampler.sample().router is None
        after = sampler.sample().router
        assert after is not None and after.conntrack_entries == 5 and after.insert_failed == 2
    finally:
        sampler.close()


def test_a_slow_router_dump_is_read_at_most_a_tenth_of_the_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A dump that took 0.15 s (about 50,000 entries here) is not repeated for 1.5 s: with
    1 s intervals every second one reads the router, the others have ``router`` None."""
    from portstorm.core.addressing import TupleSpec
    from portstorm.core.routerrecord import RouterReading
    from portstorm.engine.sampler import ROUTER_DUTY, Sampler

    now, cpu = [100.0], [5.0]
    monkeypatch.setattr("portstorm.engine.sampler.time.monotonic", lambda: now[0])
    monkeypatch.setattr("portstorm.engine.sampler.time.thread_time", lambda: cpu[0])

    class Slow:
        def read(self) -> RouterReading:
            now[0] += 0.15  # the dump's own time, all of it on a core
            cpu[0] += 0.15
            return RouterReading(60_000, {"time_wait": 60_000})

        def close(self) -> None:
            pass

    sampler = Sampler([TupleSpec(None, "127.0.0.1", 9)], (40000, 40009))
    monkeypatch.setattr(sampler, "_router", Slow())
    got = []
    try:
        for _ in range(6):
            got.append(sampler.sample().router is not None)
            now[0] += 1.0 - 0.15 * got[-1]  # the next interval's end, 1 s after this one's
    finally:
        sampler.close()
    assert ROUTER_DUTY == 0.1
    assert got == [True, False, True, False, True, False], got


@pytest.mark.parametrize(
    ("wall_s", "cpu_s"),
    [
        # a small table: a dump of 20 ms, the kernel's hash walk, all of it on a core
        (0.02, 0.02),
        # 100 entries that took 60 ms of wall time on a busy host, 2 ms of it on a core:
        # with wall time the measure, the next 0.6 s of 100 ms records were skipped, and
        # with them the only readings of a full NAT pool
        (0.06, 0.002),
    ],
    ids=["quick", "waited-for-a-core"],
)
def test_a_router_dump_that_cost_little_cpu_is_taken_at_every_sample(
    monkeypatch: pytest.MonkeyPatch, wall_s: float, cpu_s: float
) -> None:
    """What a dump cost is its thread's CPU time: one under 30 ms is read at every 100 ms
    record of the first second, however long it waited for a core."""
    from portstorm.core.addressing import TupleSpec
    from portstorm.core.routerrecord import RouterReading
    from portstorm.engine.sampler import Sampler

    now, cpu = [100.0], [5.0]
    monkeypatch.setattr("portstorm.engine.sampler.time.monotonic", lambda: now[0])
    monkeypatch.setattr("portstorm.engine.sampler.time.thread_time", lambda: cpu[0])

    class Dump:
        def read(self) -> RouterReading:
            now[0] += wall_s
            cpu[0] += cpu_s
            return RouterReading(100, {"established": 100})

        def close(self) -> None:
            pass

    sampler = Sampler([TupleSpec(None, "127.0.0.1", 9)], (40000, 40009))
    monkeypatch.setattr(sampler, "_router", Dump())
    try:
        got = []
        for _ in range(10):
            got.append(sampler.sample().router is not None)
            now[0] += 0.1 - wall_s  # the next record's end, 100 ms after this one's
    finally:
        sampler.close()
    assert all(got), got
