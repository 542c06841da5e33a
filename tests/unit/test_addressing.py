"""Sources, sandbox numbering and tuples, on literal inputs."""

from __future__ import annotations

import pytest

from portstorm.core.addressing import (
    MAX_SOURCES,
    TupleSpec,
    check_sources_for_sandbox,
    parse_sources,
    plan_tuples,
    sink_addresses,
)
from portstorm.core.errors import UsageError


def test_sources_expand_cidrs_to_host_addresses_in_order_without_duplicates() -> None:
    got = parse_sources(["198.18.1.0/30", "198.18.1.2", "198.18.2.7", "198.18.3.0/31"])
    assert got == ("198.18.1.1", "198.18.1.2", "198.18.2.7", "198.18.3.0", "198.18.3.1")


def test_a_slash_32_and_an_ipv6_address_are_one_source_each() -> None:
    assert parse_sources(["198.18.1.9/32", "::1"]) == ("198.18.1.9", "::1")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("nonsense", "not an IP address"),
        ("198.18.1.300", "not an IP address"),
        ("198.18.1.5/24", "did you mean 198.18.1.0/24"),
        ("198.18.1.0/33", "not a CIDR"),
        ("10.0.0.0/8", "allowed up to 4096"),
    ],
)
def test_bad_sources_name_the_value_and_what_is_allowed(spec: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment) as e:
        parse_sources([spec])
    assert spec.split("/")[0] in str(e.value)


def test_too_many_sources_in_all_are_refused() -> None:
    with pytest.raises(UsageError, match=str(MAX_SOURCES)):
        parse_sources(["198.18.16.0/20", "198.18.32.0/24"])


def test_sink_addresses_count_up_from_the_first() -> None:
    assert sink_addresses(True, 3) == ["198.18.0.2", "198.18.0.3", "198.18.0.4"]
    assert sink_addresses(False, 2) == ["127.0.0.1", "127.0.0.2"]


@pytest.mark.parametrize(
    ("sandbox", "sources", "fragment"),
    [
        ("pair", ["10.0.0.1"], "198.18.0.0/15"),
        ("pair", ["::1"], "198.18.0.0/15"),
        ("pair", ["198.18.0.3"], "one of the sink's addresses"),
        ("loopback", ["198.18.1.1"], "127.0.0.0/8"),
    ],
)
def test_sandboxes_refuse_sources_outside_their_network(
    sandbox: str, sources: list[str], fragment: str
) -> None:
    with pytest.raises(UsageError, match=fragment):
        check_sources_for_sandbox(sandbox, sources, n_sink_addresses=2)


def test_sandboxes_accept_their_own_ranges_and_host_mode_defers_to_the_engine() -> None:
    check_sources_for_sandbox("pair", ["198.18.0.1", "198.19.255.254"], 1)
    check_sources_for_sandbox("loopback", ["127.0.0.2", "127.255.0.1"], 1)
    check_sources_for_sandbox("host", ["10.0.0.1", "::1"], 1)


def test_tuples_are_sources_times_destinations_alternating_sources_first() -> None:
    got = plan_tuples(["198.18.1.1", "198.18.1.2"], [("198.18.0.2", 9000), ("198.18.0.2", 9001)])
    assert [(t.source, t.destination) for t in got] == [
        ("198.18.1.1", "198.18.0.2:9000"),
        ("198.18.1.2", "198.18.0.2:9000"),
        ("198.18.1.1", "198.18.0.2:9001"),
        ("198.18.1.2", "198.18.0.2:9001"),
    ]


def test_without_sources_there_is_one_tuple_per_destination() -> None:
    assert plan_tuples([], [("::1", 80), ("127.0.0.1", 80)]) == [
        TupleSpec(None, "::1", 80),
        TupleSpec(None, "127.0.0.1", 80),
    ]
    assert TupleSpec(None, "::1", 80).destination == "[::1]:80"


def test_sources_pair_only_with_destinations_of_their_family() -> None:
    got = plan_tuples(["127.0.0.2", "::1"], [("127.0.0.1", 80), ("::1", 80)])
    assert [(t.source, t.dst_host) for t in got] == [("127.0.0.2", "127.0.0.1"), ("::1", "::1")]
    with pytest.raises(UsageError, match="no --source is IPv6"):
        plan_tuples(["127.0.0.2"], [("::1", 80)])
    with pytest.raises(UsageError, match="--source ::1 has no destination"):
        plan_tuples(["127.0.0.2", "::1"], [("127.0.0.1", 80)])
