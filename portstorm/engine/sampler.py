"""Per-interval readings of the port space: TIME_WAIT, ports in use, kernel counters, fds.

Containing reads only, no decisions. ``Sampler.sample()`` blocks (it reads /proc and
netlink), so the driver calls it through trio.to_thread: sampling never stalls the event
loop. Everything is read by explicit path or from a netlink socket created in the client
namespace, so the thread that samples may be any thread.

- time_wait: /proc/net/sockstat's ``tw`` (~0.02 ms; per namespace; it also counts FIN_WAIT2
  mini-sockets and lags sockets still in FIN_WAIT1, KERNEL.md). It counts IPv6 TIME_WAIT
  too: both families share net->ipv4.tcp_death_row, whose tw_refcount sockstat_seq_show()
  prints (measured: 100 on ::1 and 50 on 127.0.0.1 gave ``tw 150``). /proc/net/sockstat6
  has no tw field, and sockstat's TCP ``inuse`` is IPv4 only (TCP6 ``inuse`` is there).
- ports_in_use: sock_diag with a kernel-side filter (sockdiag.py), per flow (source,
  destination, port): one filtered dump per flow up to PER_FLOW_DUMPS flows, beyond that
  one dump per address family grouped here (each dump walks the whole socket table). A
  dump holds one family's sockets (inet_diag_dump_icsk() skips sk_family != sdiag_family),
  so an IPv6 flow is counted by an AF_INET6 dump, its addresses 16 bytes in the replies.
- established: the ESTABLISHED sockets among those same dumps (each reply's idiag_state),
  so held connections (--hold) cost no extra walk of the socket table.
- kernel: deltas of TcpExt (/proc/net/netstat) and Tcp (/proc/net/snmp) counters.
- router (--sandbox nat): the router's conntrack (engine/conntrack.py, bound to the
  router's namespace when the sampler is made); a reading that fails leaves it None for
  that interval, and the next reading's counter deltas cover the interval missed. Its
  dump costs the kernel about 3 us per entry (benchmarks/conntrack.py: 176-219 ms at
  60,000 entries, on the cores the load runs on), so the router is read at most
  ROUTER_DUTY of a core: after a reading that cost d seconds, none for the next d /
  ROUTER_DUTY seconds (at 60,000 entries and 1 s intervals, every second interval); the
  intervals between have ``router`` None, and the counters' deltas lose nothing. A dump
  under ROUTER_CHEAP_S (a small table: the walk of the kernel's hash alone is ~14 ms
  here) is always taken, so the first second's 100 ms records each have theirs. d is the
  sampling thread's CPU time (the kernel walks the table inside this thread's recvmsg()),
  not wall time: on a busy host a 100-entry dump (10-13 ms of CPU) took up to 58 ms of
  wall time, and each one over 30 ms skipped the next 0.3-0.6 s of readings, the very
  ones where a held NAT pool was full.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from portstorm.core.addressing import TupleSpec
from portstorm.core.routerrecord import RouterReading
from portstorm.engine.conntrack import ConntrackReader
from portstorm.engine.sockdiag import Held, SockDiag

PER_FLOW_DUMPS = 8
ROUTER_DUTY = 0.1  # the share of a core the router's conntrack dump may take
ROUTER_CHEAP_S = 0.03  # a dump this quick is never skipped
_NONE = Held(0, 0)

COUNTERS: tuple[str, ...] = (
    "TcpExtTW",
    "TcpExtTWRecycled",
    "TcpExtTWKilled",
    "TcpExtTCPTimeWaitOverflow",
    "TcpExtListenOverflows",
    "TcpExtListenDrops",
    "TcpExtTCPAbortOnData",
    "TcpExtTCPAbortOnClose",
    "TcpActiveOpens",
    "TcpPassiveOpens",
    "TcpAttemptFails",
    "TcpOutRsts",
    "TcpEstabResets",
)


@dataclass(frozen=True)
class Sample:
    time_wait: int
    server_time_wait: int | None
    ports_in_use: int
    ports_by_destination: dict[str, int]
    kernel: dict[str, int]  # counter deltas since the previous sample
    server_kernel: dict[str, int] | None
    fds: int
    ports_by_flow: list[int] | None = None  # aligned with the flows the sampler was given
    established: int | None = None  # client sockets in ESTABLISHED toward the targets
    router: RouterReading | None = None  # --sandbox nat: the router's conntrack


def read_time_wait(net_dir: Path) -> int:
    """The ``tw`` field of sockstat's TCP line (sockstat_seq_show())."""
    for line in (net_dir / "sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            fields = line.split()
            return int(fields[fields.index("tw") + 1])
    raise ValueError(f"{net_dir}/sockstat has no TCP line")


def read_counters(net_dir: Path) -> dict[str, int]:
    """TcpExt and Tcp counters: header and value lines come in pairs, prefix-named."""
    out: dict[str, int] = {}
    for name in ("netstat", "snmp"):
        lines = (net_dir / name).read_text().splitlines()
        for head, vals in zip(lines[::2], lines[1::2], strict=False):
            prefix, _, names = head.partition(":")
            if prefix not in ("TcpExt", "Tcp"):
                continue
            for k, v in zip(names.split(), vals.partition(":")[2].split(), strict=False):
                out[prefix + k] = int(v)
    return out


def _delta(now: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: now.get(k, 0) - before.get(k, 0) for k in COUNTERS if k in now}


class Sampler:
    """Create in the client namespace (the netlink socket stays bound to it).

    ``flows``: what to count ports for. A flow without a source counts every socket toward
    its destination; with one, only that source's.
    """

    def __init__(
        self,
        flows: Sequence[TupleSpec],
        port_range: tuple[int, int],
        server_pid: int | None = None,
        router_netns: int | None = None,
        nat_addresses: Sequence[str] = (),
    ) -> None:
        pid = os.getpid()
        self._net = Path(f"/proc/{pid}/net")  # the main thread's namespace: the client's
        self._fd_dir = Path(f"/proc/{pid}/fd")
        self._server_net = Path(f"/proc/{server_pid}/net") if server_pid else None
        self._flows = list(flows)
        self._port_range = port_range
        self._diag = SockDiag()
        self._lock = threading.Lock()
        self._before = read_counters(self._net)
        self._server_before = read_counters(self._server_net) if self._server_net else None
        self._router = (
            ConntrackReader(router_netns, nat_addresses) if router_netns is not None else None
        )
        self._router_next = 0.0  # time.monotonic() before which the router is not read

    def close(self) -> None:
        self._diag.close()
        if self._router is not None:
            self._router.close()

    def _read_router(self) -> RouterReading | None:
        start = time.monotonic()
        if self._router is None or start < self._router_next:
            return None
        cpu = time.thread_time()
        try:
            return self._router.read()
        except OSError:
            return None
        finally:
            took = time.thread_time() - cpu  # what the dump cost, not how long it waited
            self._router_next = start + (took / ROUTER_DUTY if took >= ROUTER_CHEAP_S else 0)

    def sample(self) -> Sample:
        with self._lock:
            return self._sample()

    def _held_by_flow(self) -> list[Held]:
        flows, rng = self._flows, self._port_range
        if len(flows) <= PER_FLOW_DUMPS:
            return [self._diag.count_held(f.dst_host, f.dst_port, rng, src=f.source) for f in flows]
        grouped: dict[tuple[str, str, int], Held] = {}
        for family in {socket.AF_INET6 if ":" in f.dst_host else socket.AF_INET for f in flows}:
            grouped.update(self._diag.held_by_tuple(family, rng))
        by_dest: dict[tuple[str, int], Held] = {}
        for (_src, dst, dport), h in grouped.items():
            n, e = by_dest.get((dst, dport), _NONE)
            by_dest[(dst, dport)] = Held(n + h.sockets, e + h.established)
        return [
            grouped.get((f.source, f.dst_host, f.dst_port), _NONE)
            if f.source is not None
            else by_dest.get((f.dst_host, f.dst_port), _NONE)
            for f in flows
        ]

    def _sample(self) -> Sample:
        held = self._held_by_flow()
        per_flow = [h.sockets for h in held]
        by_dest: dict[str, int] = {}
        for f, n in zip(self._flows, per_flow, strict=True):
            by_dest[f.destination] = by_dest.get(f.destination, 0) + n
        now = read_counters(self._net)
        kernel, self._before = _delta(now, self._before), now
        server_tw: int | None = None
        server_kernel: dict[str, int] | None = None
        if self._server_net is not None and self._server_before is not None:
            server_tw = read_time_wait(self._server_net)
            snow = read_counters(self._server_net)
            server_kernel, self._server_before = _delta(snow, self._server_before), snow
        return Sample(
            time_wait=read_time_wait(self._net),
            server_time_wait=server_tw,
            ports_in_use=sum(per_flow),
            ports_by_destination=by_dest,
            kernel=kernel,
            server_kernel=server_kernel,
            fds=len(os.listdir(self._fd_dir)),
            ports_by_flow=per_flow,
            established=sum(h.established for h in held),
            router=self._read_router(),
        )
