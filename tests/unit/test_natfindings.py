"""Where the ports went behind a NAT (core/natfindings.py), on literal runs whose intervals
carry the router's conntrack readings (Interval.router): the NAT's pool running out, the
clients' own ports running out instead, churn taking closing entries over, the conntrack
race, and the emulated conntrack limit; each told apart from the others."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from portstorm.core.capacity import CapacityInput, model
from portstorm.core.finding import Finding
from portstorm.core.findings import run_findings
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.natmodel import nat_model
from portstorm.core.result import HostInfo, Interval, RunResult
from portstorm.core.routerrecord import RouterReading
from portstorm.core.setup import RunSetup

DEST = "198.18.0.2:9000"


@dataclasses.dataclass
class Second:
    """One 1 s interval: what completed, and what the client and the router read."""

    ok: int
    failed: Mapping[str, int] = dataclasses.field(default_factory=dict)
    ports_in_use: int = 0
    states: Mapping[str, int] = dataclasses.field(default_factory=dict)
    nat_ports: int | None = None  # None: the states' total
    insert_failed: int = 0
    clash_resolve: int = 0
    slow_us: int = 0  # successes that took this long (a SYN retransmission), if any
    slow: int = 0


def run(
    seconds: Sequence[Second],
    *,
    pool: tuple[int, int] = (40000, 40099),
    client_range: tuple[int, int] = (32768, 60767),  # 28,000 ports
    clients: int = 10,
    hold_s: float = 0.0,
    rate: float | None = 100.0,
    close: str = "client",
    flags: tuple[str, ...] = (),
    conntrack_limit: int | None = None,
) -> RunResult:
    intervals, total = [], LatencyHistogram()
    for k, s in enumerate(seconds):
        h = LatencyHistogram()
        for n in range(s.ok):
            h.record(s.slow_us if n < s.slow else 500)
        total.add(h)
        n_states = sum(s.states.values())
        intervals.append(
            Interval(
                t=float(k), dt=1.0, attempts=s.ok + sum(s.failed.values()), succeeded=s.ok,
                failed=dict(s.failed), other_errnos={},
                latency_us={"p50": 500 if s.ok else None, "p99": 500 if s.ok else None},
                time_wait=None, ports_in_use=s.ports_in_use, hdr=h.encode() if s.ok else None,
                router=RouterReading(
                    conntrack_entries=n_states, conntrack_by_state=dict(s.states),
                    insert_failed=s.insert_failed, drop=s.insert_failed,
                    clash_resolve=s.clash_resolve,
                    nat_ports_in_use={DEST: n_states if s.nat_ports is None else s.nat_ports},
                ),
            )
        )  # fmt: skip
    tun = {
        "net.ipv4.ip_local_port_range": f"{client_range[0]} {client_range[1]}",
        "net.ipv4.tcp_tw_reuse": "2",
        "net.ipv4.tcp_timestamps": "1",
    }
    cap = model(CapacityInput.from_tunings(tun, sources=clients, close=close, rate=rate,
                                           hold_s=hold_s))  # fmt: skip
    nat = nat_model(pool=pool, nat_addresses=1, destinations=1, flags=flags, clients=clients,
                    hold_s=hold_s, close=close, rate=rate,
                    conntrack_limit=conntrack_limit)  # fmt: skip
    first = next((float(k) for k, s in enumerate(seconds) if s.failed), None)
    return RunResult(
        tool_version="0.1.0",
        host=HostInfo("testbox", "6.18.0", 2),
        started_at="2026-12-01T12:00:00Z",
        duration_s=float(len(seconds)),
        complete=True,
        setup=RunSetup(
            targets=(DEST,),
            sandbox="nat",
            rate=rate,
            duration_s=float(len(seconds)),
            close=close,
            bind="connect",
            connect_timeout_s=4.0,
            clients=clients,
            nat_ports=f"{pool[0]}-{pool[1]}",
            nat_flags=flags,
        ),
        tunings=tun,
        intervals=tuple(intervals),
        histogram=total,
        first_failure_s=first,
        first_failure_outcome=next(iter(seconds[int(first)].failed)) if first is not None else None,
        model=dataclasses.replace(cap, nat=nat),
    )


def _kinds(r: RunResult) -> dict[str, Finding]:
    return {f.kind: f for f in run_findings(r)}


def _held(pool: tuple[int, int] = (40000, 40099)) -> RunResult:
    """106 connections held open through a 100-port pool: 100 made, 6 timed out."""
    est = {"established": 100}
    return run([Second(100, ports_in_use=100, states=est),
                Second(0, {"timeout": 6}, ports_in_use=100, states=est, insert_failed=24),
                Second(0, ports_in_use=100, states=est)],
               pool=pool, hold_s=10.0)  # fmt: skip


def test_held_connections_exhaust_a_100_port_nat_pool_and_the_headline_says_so() -> None:
    found = run_findings(_held())
    head = found[0]
    assert head.kind == "nat-exhausted" and head.level == "headline"
    assert head.text.startswith(
        f"The NAT ran out of ports toward {DEST} after 1.0 s: 100 of its 100 ports "
        "(pool 40000-40099) were held, the router's conntrack then holding established 100; "
        "the router dropped SYNs it could not map (insert_failed +24, drop +24"
    )
    assert "the clients saw timeouts (6), not EADDRNOTAVAIL" in head.text
    assert "the NAT model predicted 1.0 s" in head.text
    kinds = {f.kind for f in found}
    # the bare count and "the server stopped answering" are what the NAT sentence replaces
    assert not kinds & {"failures-headline", "failure-timeout", "conntrack-race"}


def test_client_ports_running_out_is_told_apart_from_the_nat_running_out() -> None:
    # client range 100, pool 10,000: EADDRNOTAVAIL at the client's ceiling, the router calm
    tw = {"time_wait": 100}
    clients = run([Second(100, {"port_exhausted": 50}, ports_in_use=100, states=tw),
                   Second(0, {"port_exhausted": 150}, ports_in_use=100, states=tw)],
                  pool=(40000, 49999), client_range=(40000, 40099), clients=1,
                  rate=150.0)  # fmt: skip
    # client range 28,000, pool 100: the NAT
    nat = _kinds(_held())
    found = _kinds(clients)
    assert "client-ports" in found and "nat-exhausted" not in found
    text = found["client-ports"].text
    assert text.startswith("The clients' own ports ran out, not the NAT:")
    assert "200 times with 100 of 100 client ports in use" in text
    assert "insert_failed was +0" in text and "peaked at 100 of 10,000" in text
    assert found["exhaustion"].level == "headline"  # the client's own headline stays
    assert "nat-exhausted" in nat and "client-ports" not in nat


def test_churn_through_the_pool_kept_going_by_taking_time_wait_entries_over() -> None:
    tw = {"time_wait": 100}
    r = run([Second(400, states=tw, ports_in_use=0) for _ in range(5)], rate=400.0)
    found = _kinds(r)
    text = found["churn-taken-over"].text
    assert text.startswith(
        "Churn through the NAT pool kept going: the router's conntrack held up to 100 "
        "entries in TIME_WAIT"
    )
    assert "1,600 connections still succeeded from 1.0 s" in text
    assert "nf_conntrack_tcp_timeout_time_wait" in text
    assert not {"nat-exhausted", "conntrack-race"} & set(found)
    assert found["no-failure"].level == "headline"


def test_rst_close_churn_names_the_close_entries() -> None:
    r = run([Second(400, states={"close": 100}) for _ in range(3)], rate=400.0, close="rst")
    text = _kinds(r)["churn-taken-over"].text
    assert "entries in CLOSE" in text and "nf_conntrack_tcp_timeout_close)" in text


def test_a_few_entries_in_time_wait_are_no_takeover() -> None:
    r = run([Second(40, states={"time_wait": 40}) for _ in range(3)], rate=40.0)
    assert "churn-taken-over" not in _kinds(r)


def test_insert_failures_without_a_full_pool_are_the_conntrack_race() -> None:
    est = {"established": 150}
    secs = [Second(300, states=est, insert_failed=4, slow_us=1_020_000, slow=4),
            Second(300, states=est, insert_failed=2, slow_us=1_010_000, slow=2)]  # fmt: skip
    text = _kinds(run(secs, pool=(1024, 65535), rate=300.0))["conntrack-race"].text
    assert text.startswith(
        "The router failed 6 conntrack inserts while its NAT pool was never full (at most "
        f"150 of 64,512 ports toward {DEST})"
    )
    assert "6 connects took just over 1 s or 3 s" in text
    assert "cannot be told from this run" in text and "--nat-flags none" in text
    again = run(secs, pool=(1024, 65535), rate=300.0, flags=("fully-random",))
    assert "This run used fully-random" in _kinds(again)["conntrack-race"].text


def test_a_race_without_a_syn_tail_says_the_data_cannot_tell_what_it_cost() -> None:
    text = _kinds(run([Second(300, states={"established": 10}, insert_failed=1)],
                      pool=(1024, 65535), rate=300.0))["conntrack-race"].text  # fmt: skip
    assert "the data cannot tell what the drops cost" in text


def test_the_emulated_conntrack_limit_reached_is_the_headline() -> None:
    est = {"established": 50}
    r = run([Second(50, states=est), Second(0, {"timeout": 10}, states=est)],
            hold_s=10.0, conntrack_limit=50)  # fmt: skip
    found = run_findings(r)
    assert found[0].kind == "conntrack-limit"
    text = found[0].text
    assert text.startswith("The router's conntrack limit (50) was reached after 1.0 s")
    assert "'ct count over 50'" in text and "the clients saw timeouts (10)" in text
    assert "the NAT pool (100 ports) was not what ran out" in text
    assert "nat-exhausted" not in {f.kind for f in found}


def test_a_run_whose_router_was_not_read_says_only_what_the_model_predicts() -> None:
    r = _held()
    bare = dataclasses.replace(
        r, intervals=tuple(dataclasses.replace(i, router=None) for i in r.intervals)
    )
    found = _kinds(bare)
    assert not {"nat-exhausted", "churn-taken-over"} & set(found)
    # the model's NAT still says what it predicts, and that the data cannot confirm it
    assert found["nat-unread"].text.startswith(
        "6 connects timed out, and the NAT model says its 100 ports (pool 40000-40099) run "
        "out after 1.0 s at this rate; the router's conntrack was not read in this run"
    )
    assert "nat-unread" not in _kinds(dataclasses.replace(bare, model=None))


def test_a_pool_full_of_closing_entries_that_dropped_a_few_syns_says_why_only_a_few() -> None:
    # server close through 100 ports (measured: 1,995 of 2,000, insert_failed +4)
    tw = {"time_wait": 100}
    r = run([Second(400, states=tw), Second(395, {"timeout": 5}, states=tw, insert_failed=4),
             Second(400, states=tw)], rate=400.0, close="server")  # fmt: skip
    text = _kinds(r)["nat-exhausted"].text
    assert "Most were closing entries" in text and "nf_seq_has_advanced()" in text
    assert "while 1,195 connections succeeded" in text


def test_compare_sets_a_nat_run_against_the_nat_pools_rate_not_the_clients() -> None:
    """compare's and the sweep's "model sustainable": the ceiling the run meets first. A
    100-port pool with connections held 5 s sustains 20/s; the clients' ports far more."""
    from portstorm.core.compare import run_metrics

    r = run([Second(ok=100, ports_in_use=100, states={"established": 100})] * 3, hold_s=5.0)
    assert r.model is not None and r.model.nat is not None
    assert r.model.nat.sustainable_rate == 20.0
    assert r.model.sustainable_rate is not None and r.model.sustainable_rate > 1000
    assert run_metrics(r)["model_rate"] == 20.0
