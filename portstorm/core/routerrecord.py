"""What the NAT router's conntrack said at one interval's end: ``RouterReading``.

Containing the frozen value, its validation (core/fields.py) and its JSON form (the
``router`` object of an interval in result.json); no reading of the kernel (that is
engine/conntrack.py) and no judgement (core/natfindings.py).

Two kinds of number live here, as in the rest of an interval: samples taken at the
interval's end (the entries and their states, the NAT ports held toward each destination)
and deltas over the interval of /proc/net/stat/nf_conntrack's counters, summed over the
CPUs (``insert_failed``: a new connection's tuple clashed with one in the table and the
packet was dropped, which is how a SNAT pool with no free port shows; ``drop``: packets
dropped because an entry could not be made or inserted; ``early_drop``: entries evicted to
make room in a full table; ``clash_resolve``: two packets raced for one tuple and the
kernel merged them, nf_ct_resolve_clash()).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from portstorm.core import fields

# conntrack's TCP states as result.json names them: tcp_conntrack_names[] in
# net/netfilter/nf_conntrack_proto_tcp.c, lower-cased (conntrack -L prints them upper)
TCP_STATES = (
    "none", "syn_sent", "syn_recv", "established", "fin_wait", "close_wait", "last_ack",
    "time_wait", "close", "syn_sent2",
)  # fmt: skip
# The counter deltas: JSON key -> attribute
COUNTERS = {
    "conntrack_insert_failed": "insert_failed",
    "conntrack_drop": "drop",
    "conntrack_early_drop": "early_drop",
    "conntrack_clash_resolve": "clash_resolve",
}


@dataclass(frozen=True, slots=True)
class RouterReading:
    """The router's conntrack at a sample: entries (all of them, any protocol), the TCP
    ones by state, and the NAT ports held toward each destination (``IP:PORT``)."""

    conntrack_entries: int
    conntrack_by_state: Mapping[str, int]  # TCP_STATES name -> entries (non-zero only)
    insert_failed: int = 0  # deltas over the interval, summed over CPUs
    drop: int = 0
    early_drop: int = 0
    clash_resolve: int = 0
    nat_ports_in_use: Mapping[str, int] | None = None  # destination -> NAT ports held

    def __post_init__(self) -> None:
        fields.integer(self.conntrack_entries, "conntrack_entries")
        fields.counts(self.conntrack_by_state, "conntrack_by_state")
        unknown = sorted(set(self.conntrack_by_state) - set(TCP_STATES))
        if unknown:
            raise fields.FieldError(
                "conntrack_by_state",
                f"unknown state {fields.shown(unknown[0])}; allowed: " + ", ".join(TCP_STATES),
            )
        for key, attr in COUNTERS.items():
            # deltas of the kernel's counters: one that was reset goes down
            fields.integer(getattr(self, attr), key, -fields.MAX_COUNT)
        fields.counts(self.nat_ports_in_use, "nat_ports_in_use", null=True)

    @property
    def nat_ports_total(self) -> int | None:
        if self.nat_ports_in_use is None:
            return None
        return sum(self.nat_ports_in_use.values())

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "conntrack_entries": self.conntrack_entries,
            "conntrack_by_state": dict(self.conntrack_by_state),
        }
        out.update({key: getattr(self, attr) for key, attr in COUNTERS.items()})
        out["nat_ports_in_use"] = (
            dict(self.nat_ports_in_use) if self.nat_ports_in_use is not None else None
        )
        return out

    @classmethod
    def from_json(cls, d: object) -> RouterReading:
        m = fields.mapping(d, "")
        return cls(
            conntrack_entries=fields.member(m, "conntrack_entries"),
            conntrack_by_state=fields.copied(fields.member(m, "conntrack_by_state")),
            nat_ports_in_use=fields.copied(m.get("nat_ports_in_use")),
            **{attr: m.get(key, 0) for key, attr in COUNTERS.items()},
        )


def fold_readings(parts: Iterable[RouterReading | None]) -> RouterReading | None:
    """One reading for consecutive records (the ramp's parts): the samples of the last
    part, the counters' deltas added. None when no part had one."""
    seen = [p for p in parts if p is not None]
    if not seen:
        return None
    return replace(seen[-1], **{a: sum(getattr(p, a) for p in seen) for a in COUNTERS.values()})
