"""The NAT pool as a second ceiling (core/natmodel.py), on literal numbers: what holds a
NAT port (open connections; not conntrack's TIME_WAIT or CLOSE, as measured on 6.18),
what multiplies the pool (NAT addresses x destinations, not clients), the conntrack
limit's emulation, and result.json's ``capacity.nat`` in and out."""

from __future__ import annotations

import dataclasses

import pytest

from portstorm.core import fields
from portstorm.core.capacity import Capacity, CapacityInput, model
from portstorm.core.nat import NatSpec
from portstorm.core.natmodel import NatCapacity, nat_capacity, nat_model

POOL = (40000, 40099)


def test_held_connections_fill_a_100_port_pool_after_pool_over_rate() -> None:
    nat = nat_model(pool=POOL, nat_addresses=1, destinations=1, clients=10, hold_s=10.0,
                    rate=100.0)  # fmt: skip
    assert (nat.pool, nat.pool_ports, nat.tuples, nat.port_space) == ("40000-40099", 100, 1, 100)
    assert nat.sustainable_rate == pytest.approx(10.0)
    assert nat.predicted_exhaustion_s == pytest.approx(1.0)
    assert any("100 / 10 s = 10.00 connections/s" in w for w in nat.why)
    assert any("run out after 100 / 100 = 1 s" in w for w in nat.why)


@pytest.mark.parametrize(("close", "entry"), [("client", "TIME_WAIT"), ("rst", "CLOSE")])
def test_closed_connections_do_not_hold_the_pool_so_churn_sets_no_nat_limit(
    close: str, entry: str
) -> None:
    nat = nat_model(pool=POOL, nat_addresses=1, destinations=1, close=close, rate=400.0)
    assert nat.sustainable_rate is None and nat.predicted_exhaustion_s is None
    hold = next(w for w in nat.why if "does not hold the port" in w)
    assert f"in {entry}" in hold and "nf_nat_used_tuple_harder()" in hold


def test_server_close_says_the_servers_time_wait_refuses_reused_ports() -> None:
    nat = nat_model(pool=POOL, nat_addresses=1, destinations=1, close="server")
    assert nat.sustainable_rate is None
    assert any("PAWSTimewait" in w and "tcp_timewait_state_process()" in w for w in nat.why)


def test_the_pool_multiplies_with_nat_addresses_and_destinations_not_with_clients() -> None:
    one = nat_model(pool=POOL, nat_addresses=1, destinations=1, clients=1, hold_s=10.0)
    many = nat_model(pool=POOL, nat_addresses=2, destinations=3, clients=100, hold_s=10.0)
    assert many.tuples == 6 and many.port_space == 600
    assert many.sustainable_rate == pytest.approx(6 * (one.sustainable_rate or 0))
    assert nat_model(pool=POOL, nat_addresses=1, destinations=1, clients=100,
                     hold_s=10.0).sustainable_rate == one.sustainable_rate  # fmt: skip


def test_a_conntrack_limit_below_the_pool_is_the_ceiling() -> None:
    nat = nat_model(pool=POOL, nat_addresses=1, destinations=1, hold_s=10.0, rate=100.0,
                    conntrack_limit=50)  # fmt: skip
    assert nat.ceiling == 50
    assert nat.sustainable_rate == pytest.approx(5.0)
    assert nat.predicted_exhaustion_s == pytest.approx(0.5)
    assert any("ct count over 50" in w and "already_closed()" in w for w in nat.why)
    assert any("the conntrack limit run out" in w for w in nat.why)


def test_masquerade_without_a_range_says_it_keeps_the_clients_port() -> None:
    nat = nat_capacity(NatSpec(), nat_addresses=1, destinations=1, hold_s=0.0,
                       close="client", rate=None)  # fmt: skip
    assert nat.pool == "1024-65535" and nat.pool_ports == 64512
    assert "get_unique_tuple()" in nat.why[0]


def test_fully_random_changes_the_search_not_the_pool() -> None:
    plain = nat_model(pool=POOL, nat_addresses=1, destinations=1, hold_s=1.0)
    rand = nat_model(pool=POOL, nat_addresses=1, destinations=1, hold_s=1.0,
                     flags=("fully-random",))  # fmt: skip
    assert rand.sustainable_rate == plain.sustainable_rate
    assert any("does not change the pool's size" in w for w in rand.why)


def test_capacity_nat_round_trips_and_files_without_it_load() -> None:
    nat = nat_model(pool=POOL, nat_addresses=1, destinations=2, clients=10, hold_s=5.0,
                    flags=("random", "persistent"), conntrack_limit=1000, rate=10.0)  # fmt: skip
    cap = dataclasses.replace(model(CapacityInput(port_range=(32768, 60999))), nat=nat)
    doc = cap.to_json()
    assert doc["nat"]["pool"] == "40000-40099" and doc["nat"]["tuples"] == 2
    back = Capacity.from_json(doc)
    assert back.nat == nat and back.to_json() == doc
    old = dict(doc)
    del old["nat"]
    assert Capacity.from_json(old).nat is None
    assert "nat" not in dataclasses.replace(cap, nat=None).to_json()  # a pair run's file


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("pool", "40099-40000", "capacity.nat.pool"),
        ("pool_ports", 99, "capacity.nat.pool_ports"),
        ("flags", ["fast"], "capacity.nat.flags"),
        ("hold_s", -1, "capacity.nat.hold_s"),
        ("conntrack_limit", 0, "capacity.nat.conntrack_limit"),
    ],
)
def test_a_damaged_nat_block_is_refused_with_its_field(key: str, value: object, says: str) -> None:
    doc = nat_model(pool=POOL, nat_addresses=1, destinations=1).to_json()
    doc[key] = value
    with pytest.raises(fields.FieldError, match=says.replace(".", r"\.")):
        NatCapacity.from_json(doc)
