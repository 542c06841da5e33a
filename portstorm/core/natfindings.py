"""Where the ports went when a source NAT sat between the clients and the server
(--sandbox nat): the router's conntrack readings (Interval.router, core/routerrecord.py)
against the NAT model (core/natmodel.py, ``capacity.nat``).

The rules, in order of importance:
- ``conntrack_limit``: the emulated conntrack limit (nftables ``ct count``) was reached;
- ``nat_exhausted``: the NAT ran out of ports toward a destination: the router dropped
  SYNs it could not map (insert_failed), the clients saw timeouts, not EADDRNOTAVAIL;
- ``client_ports``: the clients' own ports ran out, not the NAT's (the two look alike
  from far away and are told apart by the router's insert_failed and its ports in use);
- ``conntrack_race``: insert_failed without a full pool: two clients' SYNs mapped to one
  NAT port at once, the second dropped at insert (__nf_conntrack_confirm());
- ``churn_taken_over``: the pool was full of closing entries (TIME_WAIT, CLOSE), and
  connections went on succeeding: new SYNs took those entries over;
- ``unread``: the router was never read, and the NAT model would explain the timeouts:
  said as the model's, with that the data cannot confirm it.

Containing rules only: a RunResult in, Findings out (findings.py runs them after the
headline, and lets the first one, when it is a headline, replace a bare count of
failures). No charts, no files. A sentence whose evidence is missing is left out; where
the data cannot tell, the sentence says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from portstorm.core.finding import Finding
from portstorm.core.natmodel import NatCapacity
from portstorm.core.result import RunResult
from portstorm.core.routerrecord import RouterReading
from portstorm.core.signals import EXHAUSTION, counter_total, samples, syn_retransmits
from portstorm.core.words import fmt_s

FULL = 0.98  # a destination's NAT ports at this share of the pool: full (readings lag)
NOT_FULL = 0.9  # below this share the pool was not what dropped SYNs
CLOSING = ("time_wait", "close")  # entries nf_nat_used_tuple_harder() may evict
OPEN_STATES = ("syn_sent", "syn_recv", "established", "fin_wait", "close_wait", "last_ack")
# what a NAT headline says of the failures: findings.py drops its own "failure-timeout"
EXPLAINS_TIMEOUTS = frozenset({"nat-exhausted", "conntrack-limit"})


@dataclass(frozen=True, slots=True)
class RouterView:
    """The router's readings of a run, with the counters' deltas summed."""

    nat: NatCapacity | None
    readings: tuple[tuple[float, RouterReading], ...]  # (sample time, reading), in order
    insert_failed: int
    drop: int
    early_drop: int
    clash_resolve: int

    @property
    def per_destination(self) -> int | None:
        """NAT ports toward one destination, at most: the pool on every NAT address."""
        return self.nat.pool_ports * self.nat.nat_addresses if self.nat is not None else None

    def peak(self) -> tuple[str | None, int, float | None]:
        """(destination, NAT ports, when) at the fullest reading: per destination where
        the reader counted them, else all entries (one destination: the same thing)."""
        best: tuple[str | None, int, float | None] = (None, 0, None)
        for t, rd in self.readings:
            if rd.nat_ports_in_use:
                dest, n = max(rd.nat_ports_in_use.items(), key=lambda kv: kv[1])
            else:
                dest, n = None, sum(rd.conntrack_by_state.values())
            if n > best[1]:
                best = (dest, n, t)
        return best

    def first_at(self, n: int) -> tuple[float, RouterReading] | None:
        """The first reading with ``n`` or more NAT ports toward one destination."""
        for t, rd in self.readings:
            held = (
                max(rd.nat_ports_in_use.values())
                if rd.nat_ports_in_use
                else sum(rd.conntrack_by_state.values())
            )
            if held >= n:
                return t, rd
        return None


def router_view(r: RunResult) -> RouterView | None:
    """None for a run without a router (or without one reading of it)."""
    readings = tuple((i.t + i.dt, i.router) for i in samples(r) if i.router is not None)
    if not readings:
        return None
    routers = [i.router for i in r.intervals if i.router is not None]  # deltas: intervals
    return RouterView(
        nat=r.model.nat if r.model is not None else None,
        readings=readings,
        insert_failed=sum(x.insert_failed for x in routers),
        drop=sum(x.drop for x in routers),
        early_drop=sum(x.early_drop for x in routers),
        clash_resolve=sum(x.clash_resolve for x in routers),
    )


def _states(rd: RouterReading) -> str:
    parts = sorted(rd.conntrack_by_state.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v:,}" for k, v in parts if v) or "no TCP entries"


def _toward(dest: str | None, r: RunResult) -> str:
    if dest is not None:
        return dest
    targets = r.setup.targets
    return targets[0] if len(targets) == 1 else "its destinations"


def _pool(nat: NatCapacity) -> str:
    where = f" on {nat.nat_addresses} NAT addresses" if nat.nat_addresses > 1 else ""
    return f"pool {nat.pool}{where}"


def _client_saw(r: RunResult) -> str:
    timeouts = r.failed.get("timeout", 0)
    exhausted = sum(r.failed.get(o, 0) for o in EXHAUSTION)
    saw = f"the clients saw timeouts ({timeouts:,})" if timeouts else "the clients saw no timeout"
    if exhausted:
        return f"{saw} and {exhausted:,} EADDRNOTAVAIL/EADDRINUSE (their own ports too)"
    return f"{saw}, not EADDRNOTAVAIL"


def nat_exhausted(r: RunResult, v: RouterView) -> Finding | None:
    """The NAT ran out: a destination's NAT ports at the pool, and SYNs dropped."""
    cap = v.per_destination
    if v.nat is None or cap is None or not v.insert_failed:
        return None
    full = v.first_at(int(FULL * cap))
    if full is None:
        return None
    t, rd = full
    dest, n, _ = v.peak()
    predicted = v.nat.predicted_exhaustion_s
    model = f"; the NAT model predicted {fmt_s(float(predicted))}" if predicted is not None else ""
    closing = sum(rd.conntrack_by_state.get(k, 0) for k in CLOSING)
    if closing * 2 > sum(rd.conntrack_by_state.values()):
        # mostly closing entries: the eviction failed for some SYNs, not for all
        model += (
            f". Most were closing entries: a new SYN takes one over only when its sequence "
            "number is past the old connection's (nf_seq_has_advanced()), so a few could "
            f"not be mapped while {r.succeeded:,} connections succeeded"
        )
    return Finding(
        "nat-exhausted",
        f"The NAT ran out of ports toward {_toward(dest, r)} after {fmt_s(t)}: {n:,} of its "
        f"{cap:,} ports ({_pool(v.nat)}) were held, the router's conntrack then holding "
        f"{_states(rd)}; the router dropped SYNs it could not map (insert_failed "
        f"+{v.insert_failed:,}, drop +{v.drop:,}: each attempt's SYN and its retransmissions), "
        f"{_client_saw(r)}: from the client a full NAT looks like a dead server{model}.",
        "headline",
    )


def conntrack_limit(r: RunResult, v: RouterView) -> Finding | None:
    """The emulated conntrack limit reached: that many connections open, new ones dropped."""
    limit = v.nat.conntrack_limit if v.nat is not None else None
    if limit is None or not r.failed.get("timeout"):
        return None
    at = next(
        (
            (t, rd)
            for t, rd in v.readings
            if sum(rd.conntrack_by_state.get(s, 0) for s in OPEN_STATES) >= FULL * limit
        ),
        None,
    )
    if at is None:
        return None
    t, rd = at
    pool = (
        f"; insert_failed +{v.insert_failed:,}: the NAT pool ({v.nat.pool_ports:,} ports) was "
        "not what ran out"
        if v.nat is not None and v.nat.port_space > limit
        else ""
    )
    return Finding(
        "conntrack-limit",
        f"The router's conntrack limit ({limit:,}) was reached after {fmt_s(t)}: its "
        f"conntrack held {_states(rd)}, and new connections were dropped by the nftables "
        f"'ct count over {limit}' rule that emulates nf_conntrack_max here (closing entries "
        f"are not counted, as nf_conncount's already_closed() leaves them out); "
        f"{_client_saw(r)}{pool}.",
        "headline",
    )


def client_ports(r: RunResult, v: RouterView) -> Finding | None:
    """The clients' own ports ran out (EADDRNOTAVAIL at their ceiling), not the NAT."""
    exhausted = sum(r.failed.get(o, 0) for o in EXHAUSTION)
    cap = v.per_destination
    if not exhausted or v.nat is None or cap is None:
        return None
    full = v.first_at(int(FULL * cap)) is not None
    if v.insert_failed and full:
        return None  # both ran out: nat_exhausted says so, with the EADDRNOTAVAIL count
    seen = [i.ports_in_use for i in r.intervals if i.ports_in_use is not None]
    top = r.model.port_space if r.model is not None else None
    at = f" with {max(seen):,} of {top:,} client ports in use" if seen and top else ""
    dest, n, _ = v.peak()
    return Finding(
        "client-ports",
        f"The clients' own ports ran out, not the NAT: connect() failed with "
        f"EADDRNOTAVAIL/EADDRINUSE {exhausted:,} times{at}, while the router's insert_failed "
        f"was +{v.insert_failed:,} and its NAT ports toward {_toward(dest, r)} peaked at "
        f"{n:,} of {cap:,} ({_pool(v.nat)}). A wider NAT pool would not help here; the "
        "clients' port range (or fewer ports held per client) would.",
        "warn",
    )


def conntrack_race(r: RunResult, v: RouterView) -> Finding | None:
    """insert_failed (or clash_resolve) while no destination's pool was full."""
    cap = v.per_destination
    if v.nat is None or cap is None or not (v.insert_failed or v.clash_resolve):
        return None
    dest, n, _ = v.peak()
    limit = v.nat.conntrack_limit
    if n >= NOT_FULL * cap or (limit is not None and n >= NOT_FULL * limit):
        return None  # a full pool (or table) explains the drops
    tail, _slow = syn_retransmits(r)
    retrans = (
        f"; {tail:,} connects took just over 1 s or 3 s (SYN retransmissions, the dropped "
        "SYN sent again)"
        if tail
        else "; no connect took 1 s or 3 s, so the data cannot tell what the drops cost"
    )
    clash = (
        f", clash_resolve +{v.clash_resolve:,} (races the kernel settled by merging the "
        "entries, nf_ct_resolve_clash())"
        if v.clash_resolve
        else ""
    )
    if "fully-random" in v.nat.flags:
        flags = (
            " This run used fully-random (every NAT port picked at random), which is said "
            "in the field to make the race rarer: it still showed."
        )
    else:
        used = ",".join(v.nat.flags) or "none"
        flags = (
            f" fully-random is said in the field to make it rarer; this run used --nat-flags "
            f"{used}, so whether it does here cannot be told from this run: compare with "
            "--nat-flags fully-random (the nat preset varies it)."
        )
    return Finding(
        "conntrack-race",
        f"The router failed {v.insert_failed:,} conntrack inserts{clash} while its NAT pool "
        f"was never full (at most {n:,} of {cap:,} ports toward {_toward(dest, r)}): the "
        "conntrack race, where two clients' SYNs are mapped to one NAT port at once and the "
        f"second loses at insert (__nf_conntrack_confirm()){retrans}.{flags}",
        "warn",
    )


def churn_taken_over(r: RunResult, v: RouterView) -> Finding | None:
    """The pool full of closing entries, and connections still succeeding after."""
    cap = v.per_destination
    if v.nat is None or cap is None or v.nat.tuples != 1:
        return None  # entries by state are not split by destination: one tuple only
    full = next(
        (
            (t, rd, state)
            for t, rd in v.readings
            for state in CLOSING
            if rd.conntrack_by_state.get(state, 0) >= NOT_FULL * cap
        ),
        None,
    )
    if full is None:
        return None
    t, _rd, state = full
    after = sum(i.succeeded for i in r.intervals if i.t >= t - 1e-3)
    if after < NOT_FULL * cap:
        return None  # too few connections after it to show a takeover
    peak = max(x.conntrack_by_state.get(state, 0) for _t, x in v.readings)
    name = state.upper()
    timeout = "nf_conntrack_tcp_timeout_" + state
    text = (
        f"Churn through the NAT pool kept going: the router's conntrack held up to "
        f"{peak:,} entries in {name} (the pool toward {_toward(None, r)} has {cap:,} ports) "
        f"and {after:,} connections still succeeded from {fmt_s(t)}, when it was full, "
        f"with insert_failed +{v.insert_failed:,}: new SYNs took the {name} entries over "
        "(nf_nat_used_tuple_harder() evicts one in the port search's last attempts), so "
        f"conntrack's {name} timeout ({timeout}) did not hold the pool."
    )
    if r.setup.close == "server":
        paws = counter_total(r.intervals, "TcpExtPAWSTimewait", server=True)
        seen = f" (TcpExt PAWSTimewait +{paws:,} there)" if paws is not None else ""
        text += (
            " The server closed first, so its own TIME_WAIT on (server, NAT address:port) "
            f"can refuse a SYN on a reused port{seen}: that shows as 1 s and 3 s connects."
        )
    return Finding("churn-taken-over", text, "info")


NAT_RULES: tuple[Callable[[RunResult, RouterView], Finding | None], ...] = (
    conntrack_limit,
    nat_exhausted,
    client_ports,
    conntrack_race,
    churn_taken_over,
)


def unread(r: RunResult) -> Finding | None:
    """A NAT run whose router was never read, with timeouts the NAT model would explain:
    said as the model's, and that the data cannot confirm it."""
    nat = r.model.nat if r.model is not None else None
    timeouts = r.failed.get("timeout", 0)
    if nat is None or nat.predicted_exhaustion_s is None or not timeouts:
        return None
    return Finding(
        "nat-unread",
        f"{timeouts:,} connects timed out, and the NAT model says its {nat.ceiling:,} ports "
        f"({_pool(nat)}) run out after {fmt_s(float(nat.predicted_exhaustion_s))} at this "
        "rate; the router's conntrack was not read in this run, so whether the NAT dropped "
        "those SYNs cannot be told from its data.",
        "warn",
    )


def nat_findings(r: RunResult) -> list[Finding]:
    """The NAT's findings for a run, most important first; none without a router."""
    v = router_view(r)
    if v is None:
        f = unread(r)
        return [f] if f is not None else []
    out: list[Finding] = []
    for rule in NAT_RULES:
        f = rule(r, v)
        if f is not None:
            out.append(f)
    return out


def nat_headline(found: Sequence[Finding]) -> Finding | None:
    """The NAT finding that answers where a run's failures came from, if one does."""
    return next((f for f in found if f.level == "headline"), None)
