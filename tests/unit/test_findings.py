"""The sentences a report opens with, from synthetic runs whose truth follows from their
parameters (tests/support/reportdata.py)."""

from __future__ import annotations

import dataclasses

from portstorm.core.binding import binding
from portstorm.core.compare import Subject, compare
from portstorm.core.comparefindings import compare_findings
from portstorm.core.findings import Finding, run_findings
from portstorm.core.natmodel import nat_model
from portstorm.core.result import RunResult
from portstorm.core.signals import knee
from tests.support.reportdata import simulate


def _kinds(findings: list[Finding]) -> dict[str, str]:
    return {f.kind: f.text for f in findings}


def test_short_exhaustion_run_says_when_ports_ran_out_and_that_steady_state_lies_beyond() -> None:
    r = simulate(ports=100, rate=50, duration=10)
    head = run_findings(r)[0]
    assert head.level == "headline"
    assert head.text.startswith("Ports toward 198.18.0.2:9000 ran out after 2.0 s at 50.0")
    assert "the model predicted 2.0 s" in head.text
    assert "lies beyond this run" in head.text and "1.67 conn/s (100 ports / 60 s)" in head.text


def test_long_exhaustion_run_matches_the_model_after_ports_come_back() -> None:
    r = simulate(ports=100, rate=50, duration=75)
    head = run_findings(r)[0].text
    # 100 ports held 60 s: from 62 s on, each second frees what was taken 60 s earlier
    assert "as the model predicts for 100 ports held 60 s (1.67 conn/s)" in head, head


def test_a_measured_rate_far_from_the_model_is_said_plainly() -> None:
    r = simulate(ports=100, rate=50, duration=75, hold_s=30.0)  # the kernel held ports 30 s
    head = run_findings(r)[0].text
    assert "the model predicts 1.67 conn/s for 100 ports held 60 s" in head, head
    assert "as the model predicts" not in head


def test_no_failure_within_the_model_says_the_rate_can_run() -> None:
    r = simulate(ports=1000, rate=10, duration=10)
    head = run_findings(r)[0]
    assert head.kind == "no-failure"
    assert "All 100 connections succeeded" in head.text
    assert "peaked at 100 of 1,000" in head.text
    assert "within the model's sustainable 16.7 conn/s" in head.text


def test_no_failure_above_the_model_warns_when_ports_would_run_out() -> None:
    r = simulate(ports=1000, rate=50, duration=10)
    head = run_findings(r)[0].text
    assert "would run out after about 20.0 s, beyond this run" in head


def test_loopback_with_tw_reuse_2_says_reuse_applied_because_of_loopback() -> None:
    r = simulate(
        ports=100,
        rate=50,
        duration=5,
        hold_s=1.0,
        sandbox="loopback",
        tunings={"net.ipv4.tcp_tw_reuse": "2"},
    )
    text = _kinds(run_findings(r))["reuse"]
    assert text.startswith("tcp_tw_reuse=2 applied because this run used loopback")
    assert "(1.67 conn/s)" in text


def test_pair_with_tw_reuse_2_says_it_did_not_apply() -> None:
    r = simulate(tunings={"net.ipv4.tcp_tw_reuse": "2"})
    assert "did not apply" in _kinds(run_findings(r))["reuse"]


def test_fin_timeout_below_60_is_shown_not_to_shorten_time_wait() -> None:
    r = simulate(ports=1000, rate=20, duration=12, tunings={"net.ipv4.tcp_fin_timeout": "5"})
    text = _kinds(run_findings(r))["fin-timeout"]
    # at 7 s: 140 sockets in TIME_WAIT, only 120 connections in the 6 s before
    assert text.startswith("tcp_fin_timeout=5 did not shorten TIME_WAIT: 7.0 s into the run")
    assert "140 sockets were in TIME_WAIT" in text


def test_fin_timeout_without_time_wait_claims_nothing() -> None:
    r = simulate(close="rst", tunings={"net.ipv4.tcp_fin_timeout": "5"})
    kinds = _kinds(run_findings(r))
    assert "fin-timeout" not in kinds
    assert "close=rst ended each connection with a RST (Tcp OutRsts +500)" in kinds["close"]


def test_port_search_knee_is_found_where_half_the_range_fills() -> None:
    r = simulate(ports=100, rate=20, duration=8, base_us=15, knee_us=1200)
    k = knee(r)
    assert k is not None
    # at 20/s the range is half full during 2-3 s (half that interval's connects search);
    # 3-4 s is the first whole interval past the knee; the readings (40 ports at 2 s, 60
    # at 3 s) place the crossing of half the range at 2.5 s, not at that interval's end
    assert (k.before_us, k.after_us, k.ports_in_use, k.at_half) == (15, 1200, 50, True)
    assert k.t == 2.5
    head = run_findings(r)[0]  # the knee leads, as a headline
    assert (head.kind, head.level) == ("knee", "headline")
    assert head.text.startswith(
        "connect() slowed from p50 15 us to 1.2 ms at about 2.5 s, once half of the 100 "
        "ports were in TIME_WAIT (interpolated between readings): "
    ), head.text


def test_flat_latency_has_no_knee() -> None:
    assert knee(simulate(ports=100, rate=20, duration=8)) is None


def test_one_second_connects_are_named_syn_retransmissions_with_listen_drops() -> None:
    r = simulate(ports=1000, rate=50, duration=3, syn_tail=4)
    text = _kinds(run_findings(r))["syn-retransmit"]
    assert text.startswith("4 connects")
    assert "the listener dropped 4 SYNs (ListenDrops)" in text


def test_a_smear_of_slow_connects_is_not_called_syn_retransmission() -> None:
    # between 1.5 and 10 s, none near 1 s or 3 s, no listen drops: a queue, not lost SYNs
    r = simulate(
        ports=1000, rate=50, duration=3, slow_us=tuple(range(1_500_000, 10_000_000, 250_000))
    )
    assert "syn-retransmit" not in _kinds(run_findings(r))


def test_an_open_loop_that_took_longer_than_planned_is_said_to_have_fallen_behind() -> None:
    r = simulate(ports=20_000, rate=50, duration=30, planned_s=12.0)
    text = _kinds(run_findings(r))["behind"]
    assert text.startswith(
        "The driver fell behind its schedule: 1,500 attempts planned over 12.0 s took 30.0 s"
    )
    assert "behind" not in _kinds(run_findings(simulate(ports=20_000, rate=50, duration=30)))


def test_a_held_open_loop_is_not_behind_for_its_hold_and_its_rate_is_over_its_starts() -> None:
    # --rate 100 --hold 2 --duration 3: 300 starts over 3 s, the last held until 5 s
    r = simulate(ports=20_000, rate=100, duration=3)
    setup = dataclasses.replace(r.setup, hold_s=2.0, connect_timeout_s=3.0)
    held = dataclasses.replace(r, duration_s=5.0, setup=setup)
    found = _kinds(run_findings(held))
    assert "behind" not in found, found.get("behind")
    assert held.rate == 100.0  # not 300 / 5 s: the hold after the last start is not load
    assert found["no-failure"].startswith(
        "All 300 connections succeeded, 100 conn/s over the 3.0 s of starts (5.0 s with the hold)."
    ), found["no-failure"]
    # past the schedule, the hold and the longest timeout, it did fall behind
    assert "behind" in _kinds(run_findings(dataclasses.replace(held, duration_s=12.0)))


def test_interrupted_run_says_so_first() -> None:
    r = simulate(duration=3, complete=False)
    assert run_findings(r)[0].kind == "interrupted"


def test_comparison_names_best_and_worst_sustained_rate() -> None:
    slow = Subject(
        "tcp_tw_reuse=0",
        (simulate(ports=100, rate=50, duration=75),),
        factors={"tcp_tw_reuse": "0"},
    )
    fast = Subject(
        "tcp_tw_reuse=1",
        (simulate(ports=100, rate=50, duration=75, hold_s=1.0),),
        factors={"tcp_tw_reuse": "1"},
    )
    found = _kinds(compare_findings(compare([slow, fast])))
    assert found["best"] == (
        "Highest sustained rate: tcp_tw_reuse=1, 50.0 conn/s (never ran out); lowest: "
        "tcp_tw_reuse=0, 1.67 conn/s after its ports ran out (30.0x apart)."
    )
    assert "Single runs" in found["significant"]


# -- a NAT in the path ---------------------------------------------------------------------


def _behind_nat(
    r: RunResult, *, pool: int, hold_s: float, conntrack_limit: int | None = None
) -> RunResult:
    """A simulated run as if through --sandbox nat: a pool of ``pool`` ports toward its one
    destination, each held ``hold_s`` while open (core/natmodel.py)."""
    assert r.model is not None and r.setup.rate is not None
    nat = nat_model(pool=(40000, 40000 + pool - 1), nat_addresses=1, destinations=1,
                    clients=1, hold_s=hold_s, rate=r.setup.rate,
                    conntrack_limit=conntrack_limit)  # fmt: skip
    setup = dataclasses.replace(r.setup, sandbox="nat", clients=1, nat_ports=nat.pool)
    return dataclasses.replace(r, setup=setup, model=dataclasses.replace(r.model, nat=nat))


def test_a_nat_run_with_tw_reuse_2_says_it_did_not_apply_across_two_veths() -> None:
    r = _behind_nat(simulate(tunings={"net.ipv4.tcp_tw_reuse": "2"}), pool=100, hold_s=5.0)
    text = _kinds(run_findings(r))["reuse"]
    assert "did not apply" in text and "crossed two veths and a NAT router" in text


def test_no_failure_behind_a_nat_is_measured_against_the_pool_that_binds_first() -> None:
    # 10,000 client ports held 60 s sustain 166.7/s; 100 NAT ports held 5 s sustain 20/s
    r = _behind_nat(simulate(ports=10_000, rate=10, duration=10), pool=100, hold_s=5.0)
    assert r.model is not None and binding(r.model).what == "NAT pool"
    head = run_findings(r)[0]
    assert head.kind == "no-failure"
    assert "within the NAT model's sustainable 20.0 conn/s" in head.text, head.text
    # above it, in a run too short to fill the pool (100 ports / 50/s = 2 s)
    r = _behind_nat(simulate(ports=10_000, rate=50, duration=1), pool=100, hold_s=5.0)
    head = run_findings(r)[0]
    assert (
        "The rate is above the NAT model's sustainable 20.0 conn/s: the NAT pool would run "
        "out after about 2.0 s, beyond this run."
    ) in head.text, head.text


def test_the_client_ports_bind_without_a_nat_on_a_tie_and_when_they_run_out_first() -> None:
    r = simulate(ports=100, rate=50, duration=10)  # 100 client ports: out after 2.0 s
    assert r.model is not None
    assert binding(r.model).what == "client ports"
    for pool, hold_s in ((100, 0.0), (10_000, 5.0)):  # nothing held; 10,000 ports out at 200 s
        bound = binding(_behind_nat(r, pool=pool, hold_s=hold_s).model or r.model)
        assert (bound.what, bound.predicted_exhaustion_s) == ("client ports", 2.0)
    bound = binding(_behind_nat(r, pool=50, hold_s=5.0).model or r.model)  # out after 1.0 s
    assert (bound.what, bound.ports, bound.predicted_exhaustion_s) == ("NAT pool", 50, 1.0)
    # the emulated conntrack limit below the pool: it is what fills first, and is named
    bound = binding(_behind_nat(r, pool=100, hold_s=5.0, conntrack_limit=25).model or r.model)
    assert (bound.what, bound.ports, bound.predicted_exhaustion_s) == ("conntrack limit", 25, 0.5)
