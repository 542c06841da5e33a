"""What ``portstorm watch`` reads from a live namespace at one sample: ``WatchSample``.

Containing the frozen values the reader (engine/watchread.py) fills and the model
(core/watch.py) turns into groups, forecasts and words; no reading and no judgement.

A *group* is one (source address, destination address, destination port): the tuple whose
local ports connect() shares out (__inet_hash_connect()), so each group has the whole
ephemeral range to itself. Only sockets whose local port is in ip_local_port_range count.

Per group the reader gives the sockets by state (``established``, ``time_wait``,
``syn_sent``, ``other``: every other state that holds the port), how many of them it had
not seen at the previous sample (by socket cookie, which a TIME_WAIT socket keeps from the
socket it replaced: inet_twsk_alloc()), and when the TIME_WAIT ones give their ports back:
``tw_expiring[k]`` sockets expire within [k, k+1) seconds from the sample (idiag_expires;
TCP_TIMEWAIT_LEN is 60 s, so 61 one-second bins hold them all, late expiries in the last).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

STATES = ("established", "time_wait", "syn_sent", "other")
TW_BINS = 61  # one-second bins of remaining TIME_WAIT, 0..60 s


@dataclass(frozen=True, slots=True)
class GroupRead:
    """One (source, destination address, destination port) at a sample."""

    source: str
    dst_host: str
    dst_port: int
    states: Mapping[str, int]  # STATES name -> sockets (absent: 0)
    new: int = 0  # sockets not seen at the previous sample (all of them at the first)
    tw_expiring: tuple[int, ...] = ()  # TW_BINS counts; () when no TIME_WAIT socket

    def __post_init__(self) -> None:
        unknown = set(self.states) - set(STATES)
        if unknown:
            raise ValueError(f"unknown socket state(s) {sorted(unknown)}; allowed {STATES}")
        if any(n < 0 for n in self.states.values()) or self.new < 0:
            raise ValueError("socket counts must be >= 0")
        if self.tw_expiring and len(self.tw_expiring) != TW_BINS:
            raise ValueError(f"tw_expiring holds {TW_BINS} one-second bins")

    @property
    def sockets(self) -> int:
        """Ports this group holds: sockets in every state counted."""
        return sum(self.states.values())

    @property
    def destination(self) -> str:
        h = self.dst_host
        return f"[{h}]:{self.dst_port}" if ":" in h else f"{h}:{self.dst_port}"


@dataclass(frozen=True, slots=True)
class ProcessRead:
    """One process among those holding the most sockets (where /proc/PID/fd is readable)."""

    pid: int
    name: str
    sockets: int
    fds: int
    fd_limit: int | None  # RLIMIT_NOFILE's soft limit; None: not readable


@dataclass(frozen=True, slots=True)
class WatchSample:
    """This namespace at one sample: its groups and what the host says besides."""

    t: float  # Unix time of the sample
    dt: float  # seconds since the previous sample (0 at the first)
    port_range: tuple[int, int]  # ip_local_port_range
    reserved: frozenset[int]  # ip_local_reserved_ports inside the range
    groups: tuple[GroupRead, ...]
    time_wait: int  # /proc/net/sockstat tw: the namespace's total
    # counter deltas since the previous sample (TcpExtTW, TcpExtTCPTimeWaitOverflow,
    # TcpExtListenDrops, TcpActiveOpens, ...); empty at the first
    counters: Mapping[str, int] = field(default_factory=dict)
    # sockets bound to an ephemeral port before connect() (the bind trap), per source
    bind_trap: Mapping[str, int] = field(default_factory=dict)
    conntrack: tuple[int, int] | None = None  # (nf_conntrack_count, nf_conntrack_max)
    processes: tuple[ProcessRead, ...] | None = None  # None: not read this sample
    unreadable: tuple[str, ...] = ()  # what could not be read, said once (no privilege)

    @property
    def usable_ports(self) -> int:
        low, high = self.port_range
        return high - low + 1 - len(self.reserved)
