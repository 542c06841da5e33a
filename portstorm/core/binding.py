"""Which ceiling binds a run first: the client's own ports (``Capacity``), or a NAT pool in
the path (``Capacity.nat``, or its emulated conntrack limit where that is lower).

Containing the choice and the chosen ceiling's figures (``Bound``), nothing that words it:
the headline (headline.py), the terminal summary, the run and sweep charts and
``RunResult.turnover()`` (the hold that frees a port after exhaustion) all read it here, so
they cannot name different ceilings for one run. Kept apart from headline.py because
result.py needs it and headline.py needs result.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from portstorm.core.capacity import Capacity

CLIENT_PORTS = "client ports"
NAT_POOL = "NAT pool"
CONNTRACK_LIMIT = "conntrack limit"  # the router's emulated nf_conntrack_max (ct count)


@dataclass(frozen=True, slots=True)
class Bound:
    """One ceiling's figures: the client's port space (``capacity``) or the NAT's
    (``capacity.nat``: its pool, or its conntrack limit where that is lower)."""

    what: str  # CLIENT_PORTS | NAT_POOL | CONNTRACK_LIMIT
    ports: int  # connections it holds at once, at most
    hold_s: float  # how long each connection holds one
    sustainable_rate: float | None  # None: it sets no rate limit
    predicted_exhaustion_s: float | None  # None: not exhausted at this rate (or no rate)

    def __post_init__(self) -> None:
        if self.what not in (CLIENT_PORTS, NAT_POOL, CONNTRACK_LIMIT):
            raise ValueError(f"ceiling {self.what!r}: allowed {CLIENT_PORTS}, {NAT_POOL}, "
                             f"{CONNTRACK_LIMIT}")  # fmt: skip

    @property
    def client(self) -> bool:
        return self.what == CLIENT_PORTS


def binding(cap: Capacity) -> Bound:
    """The ceiling a run meets first: the one predicted to run out first at its rate, else
    the one with the lower sustainable rate; the client's ports on a tie or without a NAT.
    A NAT run's clients see its exhaustion as timeouts, not EADDRNOTAVAIL (natfindings.py)."""
    client = Bound(CLIENT_PORTS, cap.port_space, cap.hold_s, cap.sustainable_rate,
                   cap.predicted_exhaustion_s)  # fmt: skip
    nat = cap.nat
    if nat is None:
        return client
    what = NAT_POOL if nat.ceiling == nat.port_space else CONNTRACK_LIMIT
    other = Bound(what, nat.ceiling, nat.hold_s, nat.sustainable_rate, nat.predicted_exhaustion_s)

    def first(b: Bound) -> tuple[float, float]:
        gone, rate = b.predicted_exhaustion_s, b.sustainable_rate
        return (math.inf if gone is None else gone, math.inf if rate is None else rate)

    return other if first(other) < first(client) else client
