"""``WatchReader``: one ``WatchSample`` of the namespace it was made in, read only.

Containing the sample's assembly: the port range, the sock_diag dump (watchdiag.py) and
its tally (watchtally.py) folded into groups, the bind trap, and the host-wide readings.
It never writes a sysctl and never touches a socket it did not make (its own: one netlink
socket).

Each sample reads:
- ip_local_port_range and ip_local_reserved_ports (they may change between samples);
- the dumps (watchdiag.py): per (source, destination, port) the sockets by state, the new
  ones (by cookie) and the TIME_WAIT ones by remaining second;
- /proc/net/sockstat ``tw`` and the TcpExt/Tcp counter deltas (sampler.py's readers);
- nf_conntrack_count/max where /proc/sys/net/netfilter exists;
- every PROCESS_EVERY_S, the processes holding the dumped full sockets (fdowners.py; ~10
  ms for 1,000 socket fds): ``processes`` is None on the samples between, and
  ``unreadable`` names what that scan could not read.

``new`` is per socket cookie (watchdiag.py): sockets not seen at the previous sample,
whatever their state, so a connection that opened and closed between two samples is new
when first seen in TIME_WAIT; one closed without TIME_WAIT (an RST) between two samples is
never seen: the TcpActiveOpens delta in ``counters`` counts those too.

The bind trap, per source (``bind_trap``): the kernel marks no connected socket as "bound
before connect" (sk_userlocks has SOCK_BINDPORT_LOCK for an explicit port only, and the
bind bucket's fastreuse, which makes __inet_hash_connect() skip the port for every
destination, is not in inet_diag). Counted instead, exactly as follows:
- with ``bound_inactive=True``, bound and not yet connected sockets on a port in the range
  (TCP_BOUND_INACTIVE; off by default: it costs a walk of the bind hash), and
- sockets on a port of bind()'s parity (the range start's other parity, see watchdiag.py)
  without IP_BIND_ADDRESS_NO_PORT (INET_DIAG_SOCKOPT; TIME_WAIT ones have no options), in
  groups whose connect()-parity ports are not all held: while they are not, connect()
  never takes the other parity for that group, so these ports came from bind().
Limits: a socket with its own IP_LOCAL_PORT_RANGE picks either parity (counted when on
bind()'s); a bind() to an explicit port is counted when it is on bind()'s parity; a group
whose connect()-parity half is full at the sample is left out (its other-parity ports
may be connect()'s). Measured (tests/kernel/test_watchread.py): bind((ip, 0)) + connect()
to 3 destinations, 10 each, 9 of them then in TIME_WAIT: 30; plain connect() and
IP_BIND_ADDRESS_NO_PORT clients beside it: 0.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

from portstorm.core.ports import parse_port_range
from portstorm.core.watchsample import STATES, TW_BINS, GroupRead, ProcessRead, WatchSample
from portstorm.engine.fdowners import scan
from portstorm.engine.sampler import COUNTERS, read_counters, read_time_wait
from portstorm.engine.sockdiag import TCP_ESTABLISHED, TCP_SYN_SENT
from portstorm.engine.watchdiag import TCP_CLOSE, TW_SECOND, WatchDiag, slice_fields
from portstorm.engine.watchtally import CookieTally

PROCESS_EVERY_S = 10.0  # the fd scan's cadence (a readlink per fd of the namespace)
PROCESS_TOP = 10
_SYS = Path("/proc/sys/net")
_STATE_NAME = {TCP_ESTABLISHED: "established", TCP_SYN_SENT: "syn_sent"}


def read_port_range() -> tuple[tuple[int, int], frozenset[int]]:
    """ip_local_port_range, and the reserved ports inside it."""
    low, high = parse_port_range((_SYS / "ipv4/ip_local_port_range").read_text())
    reserved: set[int] = set()
    text = (_SYS / "ipv4/ip_local_reserved_ports").read_text().strip()
    for part in filter(None, text.split(",")):
        a, _, b = part.partition("-")
        lo, hi = int(a), int(b or a)
        reserved.update(range(max(lo, low), min(hi, high) + 1))
    return (low, high), frozenset(reserved)


def read_conntrack() -> tuple[int, int] | None:
    base = _SYS / "netfilter"
    try:
        return int((base / "nf_conntrack_count").read_text()), int(
            (base / "nf_conntrack_max").read_text()
        )
    except (OSError, ValueError):
        return None  # nf_conntrack not loaded, or not visible in this namespace


def _connect_parity_ports(low: int, high: int, reserved: frozenset[int]) -> int:
    """Usable ports of the range start's parity: the ones connect() scans first."""
    return (high - low) // 2 + 1 - sum(1 for p in reserved if (p - low) % 2 == 0)


class _Group:
    __slots__ = ("bind_parity", "connect_parity", "new", "states", "tw")

    def __init__(self) -> None:
        self.states = dict.fromkeys(STATES, 0)
        self.new = 0
        self.tw = [0] * TW_BINS
        self.bind_parity = 0  # on bind()'s parity, without IP_BIND_ADDRESS_NO_PORT
        self.connect_parity = 0


class WatchReader:
    """Make it in the namespace to watch (its netlink socket stays bound there); ``read()``
    from any thread of that namespace."""

    def __init__(
        self, process_every_s: float = PROCESS_EVERY_S, bound_inactive: bool = False
    ) -> None:
        self._net = Path(f"/proc/{os.getpid()}/net")
        self._diag = WatchDiag(bound_inactive)
        self._tally = CookieTally()  # the previous sample's cookies: what is new
        self._before = read_counters(self._net)
        self._last: float | None = None
        self._process_every = process_every_s
        self._process_next = 0.0

    def close(self) -> None:
        self._diag.close()

    def read(self) -> WatchSample:
        t = time.time()
        port_range, reserved = read_port_range()
        runs, listening = self._diag.dump(port_range, reserved)
        tally = self._tally.tally(runs, port_range[0])
        tally.listening = listening
        groups: dict[tuple[str, str, int], _Group] = defaultdict(_Group)
        trap: dict[str, int] = defaultdict(int)
        for s, n in tally.slices.items():
            family, key, what, new, bind_parity, no_port = slice_fields(s)
            src, dst, dport = self._diag.decode_key(family, key)
            if what == TCP_CLOSE:  # bound, not connected: its port is off every group's
                trap[src] += n
                continue
            g = groups[(src, dst, dport)]
            if what >= TW_SECOND:
                g.states["time_wait"] += n
                g.tw[what - TW_SECOND] += n
            else:
                g.states[_STATE_NAME.get(what, "other")] += n
            if new:
                g.new += n
            if not bind_parity:
                g.connect_parity += n
            elif not no_port:
                g.bind_parity += n
        # a listener's port inside the range is no group's (its bind bucket turns connect()
        # away: __inet_hash_connect()), so it is off every group's usable ports, as reserved
        reserved = reserved | tally.listening
        half = _connect_parity_ports(port_range[0], port_range[1], reserved)
        for (src, _dst, _dport), g in groups.items():
            if g.bind_parity and g.connect_parity < half:
                trap[src] += g.bind_parity
        now = read_counters(self._net)
        counters = (
            {k: now.get(k, 0) - self._before.get(k, 0) for k in COUNTERS if k in now}
            if self._last is not None
            else {}
        )
        self._before = now
        processes, unreadable = self._processes(tally.inodes)
        dt = t - self._last if self._last is not None else 0.0
        self._last = t
        return WatchSample(
            t=t,
            dt=dt,
            port_range=port_range,
            reserved=reserved,
            groups=tuple(
                GroupRead(
                    source=src,
                    dst_host=dst,
                    dst_port=dport,
                    states=g.states,
                    new=g.new,
                    tw_expiring=tuple(g.tw) if g.states["time_wait"] else (),
                )
                for (src, dst, dport), g in sorted(
                    groups.items(), key=lambda kv: (-sum(kv[1].states.values()), kv[0])
                )
            ),
            time_wait=read_time_wait(self._net),
            counters=counters,
            bind_trap=dict(trap),
            conntrack=read_conntrack(),
            processes=processes,
            unreadable=unreadable,
        )

    def _processes(
        self, inodes: list[int]
    ) -> tuple[tuple[ProcessRead, ...] | None, tuple[str, ...]]:
        now = time.monotonic()
        if now < self._process_next:
            return None, ()
        result = scan(inodes, PROCESS_TOP)
        self._process_next = now + self._process_every
        if result.unreadable:
            return result.processes, (
                f"fds of {result.unreadable} processes of other users (not readable as uid "
                f"{os.geteuid()}; nor their namespace, so some may be elsewhere)",
            )
        return result.processes, ()
