"""What ``portstorm watch`` shows at one sample: ``GroupView`` and ``WatchView``, and the
``--json`` line.

Containing the frozen values core/watch.py makes from a ``WatchSample`` (and re-exports:
import them from there), read by the CLI (cli/watchcmd.py), the exporter
(engine/exporter.py) and the advice (core/watchadvice.py); no arithmetic beyond checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from portstorm.core.watchsample import STATES, ProcessRead

# One sample in a group's smoothing window: (connections counted, seconds, the group's
# sockets not in TIME_WAIT at the sample before: None at the first sample)
Recent = tuple[float, float, int | None]


@dataclass(frozen=True, slots=True)
class GroupView:
    """One (source, destination) at a sample: its ports, its rate and where it is going."""

    source: str
    destination: str  # "198.18.0.2:80", "[2001:2::5]:80"
    usable_ports: int  # the range minus reserved ports: the whole range is this tuple's
    ports_in_use: int  # sockets in every state with a local port in the range
    states: Mapping[str, int]  # every STATES name
    used_fraction: float  # ports_in_use / usable_ports
    rate_per_s: float  # new connections per second (RATE_COUNTING)
    exhaustion_in_s: float | None  # seconds until it runs out at this rate; None: never
    words: str  # "runs out in 41 s at 690 conn/s", "steady: 28 % used"
    # the samples within SMOOTH_S, newest last: what the next sample's smoothed rate and
    # TIME_WAIT share are made from (not in the JSON)
    recent: tuple[Recent, ...] = ()
    # of the connections that ended lately, the share that entered TIME_WAIT on this side
    # (core/watch.py: 1 until enough have ended)
    time_wait_share: float = 1.0

    def __post_init__(self) -> None:
        if self.usable_ports < 0 or self.ports_in_use < 0:
            raise ValueError("ports must be >= 0")
        if set(self.states) != set(STATES):
            raise ValueError(f"states must name each of {STATES}")
        if not (self.rate_per_s >= 0 and self.used_fraction >= 0):
            raise ValueError("rate and used fraction must be >= 0")
        if self.exhaustion_in_s is not None and not self.exhaustion_in_s >= 0:
            raise ValueError("exhaustion_in_s must be >= 0 or None")
        if not 0.0 <= self.time_wait_share <= 1.0:
            raise ValueError(f"time_wait_share {self.time_wait_share!r}: must be in [0, 1]")

    @property
    def key(self) -> tuple[str, str]:
        return self.source, self.destination

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "destination": self.destination,
            "usable_ports": self.usable_ports,
            "ports_in_use": self.ports_in_use,
            "states": dict(self.states),
            "used_fraction": round(self.used_fraction, 4),
            "rate_per_s": round(self.rate_per_s, 2),
            "exhaustion_in_s": (
                None if self.exhaustion_in_s is None else round(self.exhaustion_in_s, 2)
            ),
            "time_wait_share": round(self.time_wait_share, 3),
        }


@dataclass(frozen=True, slots=True)
class WatchView:
    """The namespace at one sample as watch shows it; groups sorted by used fraction."""

    t: float  # Unix time of the sample
    dt: float  # seconds since the previous sample (0 at the first)
    port_range: tuple[int, int]
    usable_ports: int
    time_wait: int  # the namespace's TIME_WAIT sockets (sockstat)
    groups: tuple[GroupView, ...]  # most used first
    counters_per_s: Mapping[str, float] = field(default_factory=dict)  # {} at the first
    bind_trap: Mapping[str, int] = field(default_factory=dict)  # source -> sockets
    conntrack: tuple[int, int] | None = None  # (count, max)
    processes: tuple[ProcessRead, ...] | None = None
    unreadable: tuple[str, ...] = ()
    advice: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.dt >= 0:
            raise ValueError(f"dt {self.dt!r}: must be >= 0")
        fractions = [g.used_fraction for g in self.groups]
        if fractions != sorted(fractions, reverse=True):
            raise ValueError("groups must be sorted by used fraction, most used first")

    def to_json(self, top: int | None = None) -> dict[str, Any]:
        """One ``--json`` line: the ``top`` most used groups (all: None)."""
        shown = self.groups if top is None else self.groups[:top]
        return {
            "t": round(self.t, 3),
            "interval_s": round(self.dt, 3),
            "port_range": f"{self.port_range[0]}-{self.port_range[1]}",
            "usable_ports": self.usable_ports,
            "time_wait": self.time_wait,
            "groups": [g.to_json() for g in shown],
            "groups_total": len(self.groups),
            "bind_trap": dict(self.bind_trap),
            "counters_per_s": {k: round(v, 2) for k, v in self.counters_per_s.items()},
            "conntrack": (
                None
                if self.conntrack is None
                else {"count": self.conntrack[0], "max": self.conntrack[1]}
            ),
            "processes": (
                None if self.processes is None else [_process(p) for p in self.processes]
            ),
            "unreadable": list(self.unreadable),
            "advice": list(self.advice),
        }


def _process(p: ProcessRead) -> dict[str, Any]:
    return {"pid": p.pid, "name": p.name, "sockets": p.sockets, "fds": p.fds,
            "fd_limit": p.fd_limit}  # fmt: skip
