"""How long one reading of a NAT router's conntrack takes with 60,000 entries in its table.

Runs itself inside a private network namespace (unshare -n as root, -Urn otherwise): that
is the client. There it starts two more, a router and a server (each held by a `sleep`
started with `unshare -n`, ended by PID on the way out: the namespaces die with them), joins
them with two veths (198.19.0.0/16 inside, 198.18.0.0/16 outside) and gives the router
nftables SNAT to 198.18.0.1 (`meta l4proto tcp snat to 198.18.0.1:1024-65535`). A
listener in the server namespace accepts and closes; the client opens and closes ENTRIES
connections (each bound to its own port, toward four server ports in turn), closing first:
the router keeps one conntrack entry per connection in TIME_WAIT (the router's
nf_conntrack_tcp_timeout_time_wait raised to 900 s, so none expires during the timings).
Then, on the same table, it times (medians; the kernel's CPU from getrusage RUSAGE_THREAD):

  portstorm ConntrackReader.read()   engine/conntrack.py: one ctnetlink dump parsed at
                                     known offsets (entries, TCP states, NAT ports per
                                     destination), /proc/net/stat/nf_conntrack
  kernel: the same dump, unparsed    the datagrams received and dropped: the kernel's part
  kernel: walk only                  a dump filtered on a mark no entry has: the kernel
                                     walks its hash table (shared by every namespace) and
                                     fills no message
  Python: parsing the same bytes     the parser alone (CPU), and as if every entry held its
                                     port toward one of 4 destinations (its worst case)
  conntrack -L                       in the router namespace, output counted by state
                                     (Debian's conntrack package)
  pyroute2 (--pyroute2 PYTHON)       Conntrack().dump_entries() once, in a Python that has
                                     pyroute2 (not a portstorm dependency)

and prints the ratios. Goal (issue 19): under 50 ms at 60,000 entries.

    python benchmarks/conntrack.py [--entries 60000] [--repeat 15] [--pyroute2 PYTHON]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NAT = "198.18.0.1"
SERVER = "198.18.0.2"
CLIENT = "198.19.0.1"
SERVER_PORTS = (9000, 9001, 9002, 9003)
NFT = f"""table ip portstorm {{
  chain post {{
    type nat hook postrouting priority srcnat
    oifname "ps-rout" meta l4proto tcp snat to {NAT}:1024-65535
  }}
}}
"""
# In the server namespace: accept and close, until killed.
SERVER_CODE = f"""
import selectors, socket
sel = selectors.DefaultSelector()
for port in {SERVER_PORTS!r}:
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(({SERVER!r}, port))
    ls.listen(4096)
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        try:
            while True:
                key.fileobj.accept()[0].close()
        except BlockingIOError:
            pass
"""


def reexec_in_netns() -> int:
    prefix = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-Urn"]
    return subprocess.call([*prefix, sys.executable, __file__, "--inner", *sys.argv[1:]])


def sh(*args: str) -> None:
    subprocess.run(args, check=True)


def in_ns(pid: int, *args: str, stdin: str | None = None) -> None:
    subprocess.run(["nsenter", "-t", str(pid), "-n", *args], check=True, input=stdin, text=True)


def holder() -> subprocess.Popen[bytes]:
    """A process in a new network namespace; the namespace lives as long as it does."""
    p = subprocess.Popen(["unshare", "-n", "sleep", "3600"])
    mine = os.readlink("/proc/self/ns/net")
    end = time.monotonic() + 10
    while os.readlink(f"/proc/{p.pid}/ns/net") == mine:  # until unshare() has run
        if time.monotonic() > end:
            raise SystemExit("unshare -n did not make a namespace")
        time.sleep(0.005)
    return p


def build(router: int, server: int) -> None:
    sh("ip", "link", "set", "lo", "up")
    for name, value in (("ip_local_port_range", "1024 65535"), ("tcp_max_tw_buckets", "262144")):
        Path(f"/proc/sys/net/ipv4/{name}").write_text(value)
    me = str(os.getpid())
    in_ns(router, "ip", "link", "add", "ps-rin", "type", "veth", "peer", "name", "ps-client",
          "netns", me)  # fmt: skip
    in_ns(router, "ip", "link", "add", "ps-rout", "type", "veth", "peer", "name", "ps-server",
          "netns", str(server))  # fmt: skip
    sh("ip", "addr", "add", f"{CLIENT}/16", "dev", "ps-client")
    sh("ip", "link", "set", "ps-client", "up")
    sh("ip", "route", "add", "default", "via", "198.19.255.254")
    for cmd in ("link set lo up", "addr add 198.19.255.254/16 dev ps-rin", "link set ps-rin up",
                f"addr add {NAT}/16 dev ps-rout", "link set ps-rout up"):  # fmt: skip
        in_ns(router, "ip", *cmd.split())
    in_ns(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    # the router's own (per-namespace) TIME_WAIT timeout, 120 s by default: longer, so the
    # slowest baseline (pyroute2, tens of seconds) still sees every entry
    in_ns(router, "sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_timeout_time_wait=900")
    in_ns(router, "nft", "-f", "-", stdin=NFT)
    for cmd in ("link set lo up", f"addr add {SERVER}/16 dev ps-server", "link set ps-server up"):
        in_ns(server, "ip", *cmd.split())


def fill(entries: int, first: int = 0) -> float:
    """Client-closed connections ``first`` .. ``entries``-1, each from its own port."""
    t = time.perf_counter()
    for i in range(first, entries):
        with socket.socket() as c:
            c.bind((CLIENT, 1024 + i))
            c.connect((SERVER, SERVER_PORTS[i % len(SERVER_PORTS)]))
    return time.perf_counter() - t


def timed(f: Callable[[], object], repeat: int) -> tuple[list[float], list[float]]:
    """Wall ms and this thread's CPU ms in the kernel (getrusage RUSAGE_THREAD ru_stime)."""
    wall, sys_ms = [], []
    for _ in range(repeat):
        s0 = resource.getrusage(resource.RUSAGE_THREAD).ru_stime
        t = time.perf_counter()
        f()
        wall.append((time.perf_counter() - t) * 1000)
        sys_ms.append((resource.getrusage(resource.RUSAGE_THREAD).ru_stime - s0) * 1000)
    return wall, sys_ms


def conntrack_l(router: int) -> Counter[str]:
    """What a script would do: `conntrack -L` in the router's namespace, counted by state."""
    out = subprocess.run(["nsenter", "-t", str(router), "-n", "conntrack", "-L"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return Counter(line.split()[3] for line in out.splitlines() if line.startswith("tcp "))


def raw_dump(sock: socket.socket, seq: int, filt: bytes = b"") -> list[bytes]:
    """A dump's datagrams, unparsed (``filt``: request attributes, e.g. a mark filter)."""
    from portstorm.engine.ctnetlink import dump_request

    req = bytearray(dump_request(seq) + filt)
    req[0:4] = struct.pack("=I", len(req))
    sock.send(req)
    out: list[bytes] = []
    while True:  # no walk of the messages: the end is the first recv finding nothing queued
        try:
            out.append(sock.recv(1 << 16, socket.MSG_DONTWAIT))
            continue
        except BlockingIOError:
            last = out[-1] if out else b""
            if len(last) >= 20 and struct.unpack_from("=IH", last, len(last) - 20) == (20, 3):
                return out  # NLMSG_DONE
        out.append(sock.recv(1 << 16))


def netfilter_socket(netns_fd: int) -> socket.socket:
    from portstorm.engine.netns import CLONE_NEWNET, open_netns, setns

    home = open_netns()
    setns(netns_fd, CLONE_NEWNET)
    try:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
    finally:
        setns(home, CLONE_NEWNET)
        os.close(home)


def pyroute2_dump(python: str, router: int, repeat: int) -> tuple[int, list[float]]:
    """pyroute2's Conntrack().dump_entries() in the router, timed there (its own process)."""
    code = (
        "import json, time\nfrom pyroute2 import Conntrack\nct = Conntrack()\nms = []\n"
        f"for _ in range({repeat}):\n    t = time.perf_counter()\n"
        "    n = sum(1 for _ in ct.dump_entries())\n"
        "    ms.append((time.perf_counter() - t) * 1000)\nprint(json.dumps([n, ms]))\n"
    )
    out = subprocess.run(["nsenter", "-t", str(router), "-n", python, "-c", code],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    n, ms_ = json.loads(out.splitlines()[-1])
    return int(n), [float(x) for x in ms_]


def inner(entries: int, repeat: int, pyroute2: str | None) -> None:
    sys.path.insert(0, str(ROOT))
    from portstorm.engine import ctnetlink
    from portstorm.engine.conntrack import ConntrackReader

    if entries > 64000:
        raise SystemExit("--entries: at most 64000 (one client port each, 1024-65535)")
    procs: list[subprocess.Popen[bytes]] = []
    rows: list[tuple[str, list[float], list[float]]] = []
    try:
        router, server = holder(), holder()
        procs += [router, server]
        build(router.pid, server.pid)
        srv = subprocess.Popen(["nsenter", "-t", str(server.pid), "-n", sys.executable, "-c",
                                SERVER_CODE], stdout=subprocess.PIPE)  # fmt: skip
        procs.append(srv)
        assert srv.stdout is not None
        if srv.stdout.readline() != b"ready\n":
            raise SystemExit("the server did not start")
        fill_s = fill(entries)
        fd = os.open(f"/proc/{router.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        reader = ConntrackReader(fd, (NAT,))
        raw = netfilter_socket(fd)
        os.close(fd)
        try:
            # until the last FIN exchanges are through and ENTRIES are in TIME_WAIT: a few
            # connections end in an RST (CLOSE, 10 s) on a loaded machine, so once only
            # TIME_WAIT and CLOSE are left the shortfall is topped up from spare ports
            end, top = time.monotonic() + 30, entries
            while time.monotonic() < end:
                t = reader.dump()
                tw = t.by_state.get("time_wait", 0)
                if tw >= entries or top >= 64000:
                    break
                if t.entries == tw + t.by_state.get("close", 0):
                    more = min(entries - tw, 64000 - top)
                    fill_s += fill(top + more, top)
                    top += more
                time.sleep(0.05)
            reading = reader.read()
            rows.append(("portstorm ConntrackReader.read()", *timed(reader.read, repeat)))
            rows.append(("  its dump alone", *timed(reader.dump, repeat)))
            rows.append(
                ("  kernel: the same dump, unparsed", *timed(lambda: raw_dump(raw, 1), repeat))
            )
            # CTA_MARK 1 / CTA_MARK_MASK ~0: matches nothing here, so the kernel walks the
            # hash table and fills no message: the walk's share
            mark = struct.pack("=HH", 8, 8) + struct.pack(">I", 1)
            mark += struct.pack("=HH", 8, 21) + struct.pack(">I", 0xFFFFFFFF)
            rows.append(("  kernel: walk only (a filter matching none)",
                         *timed(lambda: raw_dump(raw, 2, mark), repeat)))  # fmt: skip
            stream = raw_dump(raw, 3)
            parse_ms = parse_only(ctnetlink, stream, repeat)
            held_ms = parse_only(ctnetlink, stream, repeat, every_entry_held=True)
        finally:
            reader.close()
            raw.close()
        have_ct = shutil.which("conntrack") is not None
        theirs = conntrack_l(router.pid) if have_ct else Counter()
        if have_ct:
            rows.append(("conntrack -L (counted by state)",
                         *timed(lambda: conntrack_l(router.pid), max(3, repeat // 3))))  # fmt: skip
        pr2 = pyroute2_dump(pyroute2, router.pid, 1) if pyroute2 else None
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait()

    med = statistics.median
    print(f"machine: {os.uname().release}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; {fill_s:.1f} s to fill")  # fmt: skip
    states, held = dict(reading.conntrack_by_state), reading.nat_ports_in_use
    print(f"portstorm: {reading.conntrack_entries:,} entries {states}, NAT ports in use {held}")
    if have_ct:
        print(f"conntrack -L: {sum(theirs.values()):,} tcp entries {dict(theirs)}")
    print(f"{'':<46}{'median ms':>10}{'max ms':>9}{'kernel CPU ms':>15}")
    for name, wall, ksys in rows:
        cpu = "(another process)" if name.startswith("conntrack -L") else f"{med(ksys):.1f}"
        print(f"{name:<46}{med(wall):>10.1f}{max(wall):>9.1f}{cpu:>15}")
    print(f"{'  Python: parsing the same bytes (CPU)':<46}{med(parse_ms):>10.1f}")
    print(f"{'  Python: ... every entry held, 4 destinations':<46}{med(held_ms):>10.1f}")
    if pr2 is not None:
        print(f"{'pyroute2 Conntrack().dump_entries(), once':<46}{med(pr2[1]):>10.1f}"
              f"{max(pr2[1]):>9.1f}   ({pr2[0]:,} entries)")  # fmt: skip
    ours = med(rows[0][1])
    if have_ct:
        print(f"ratio conntrack -L / portstorm: {med(rows[-1][1]) / ours:.1f}x")
    else:
        print("conntrack -L: not installed (Debian package conntrack), no baseline")
    if pr2 is not None:
        print(f"ratio pyroute2 / portstorm: {med(pr2[1]) / ours:.1f}x")
    print(f"goal < 50 ms at 60,000 entries: {'MET' if ours < 50 else 'NOT MET'} "
          f"({ours:.1f} ms at {reading.conntrack_entries:,})")  # fmt: skip


def parse_only(
    ctnetlink: Any, datagrams: list[bytes], repeat: int, every_entry_held: bool = False
) -> list[float]:
    """CPU ms of the parser alone over a dump's bytes, fed 256 KiB at a time as the
    reader does; ``every_entry_held``: as if every entry held its port (the grouping by
    destination then runs over all of them: the worst case of the parse)."""
    chunks, chunk = [], bytearray()
    for d in datagrams:
        chunk += d
        if len(chunk) >= 1 << 18 or d is datagrams[-1]:
            chunks.append(chunk)
            chunk = bytearray()
    saved = ctnetlink._HOLD
    if every_entry_held:
        ctnetlink._HOLD = bytes([1]) * 256
    try:
        out = []
        for _ in range(repeat):
            t = time.thread_time()
            p = ctnetlink.Parser(3, (NAT,))
            for c in chunks:
                p.feed(c)
            out.append((time.thread_time() - t) * 1000)
        return out
    finally:
        ctnetlink._HOLD = saved


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--entries", type=int, default=60000)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--pyroute2", metavar="PYTHON",
                    help="a Python with pyroute2 installed, timed as a third reader")  # fmt: skip
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if not a.inner:
        return reexec_in_netns()
    inner(a.entries, a.repeat, a.pyroute2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
