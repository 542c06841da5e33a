"""IPv6 on literal inputs: the 2001:2::/48 plan (RFC 5180), ::1, sources a /64 at a time,
tuples named in brackets, --ipv6 refusals, and scenario.ipv6 in result.json."""

from __future__ import annotations

import ipaddress

import pytest

from portstorm.core.addressing import (
    MAX_SOURCES,
    address_text,
    check_sources_for_sandbox,
    is_loopback,
    pair_client,
    parse_sources,
    plan_tuples,
    sink_addresses,
    source_prefixes,
)
from portstorm.core.errors import UsageError
from portstorm.core.scenario import SandboxKind, Scenario, parse_target
from portstorm.core.setup import RunSetup


def test_the_ipv6_pair_is_numbered_from_rfc_5180s_prefix_and_loopback_is_1() -> None:
    assert pair_client(True) == "2001:2::1" and pair_client(False) == "198.18.0.1"
    assert sink_addresses(True, 3, ipv6=True) == ["2001:2::2", "2001:2::3", "2001:2::4"]
    assert sink_addresses(False, 1, ipv6=True) == ["::1"]
    assert sink_addresses(True, 2) == ["198.18.0.2", "198.18.0.3"]  # IPv4 as before


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("::1", True), ("127.0.0.1", True), ("127.3.2.1", True), ("::ffff:127.0.0.1", True),
     ("2001:2::2", False), ("::ffff:198.18.0.2", False), ("198.18.0.2", False)],
)  # fmt: skip
def test_loopback_is_known_by_address_as_the_kernel_tells_it(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_ipv6_tuples_are_named_in_brackets() -> None:
    assert address_text("2001:2::2", 9000) == "[2001:2::2]:9000"
    assert address_text("198.18.0.2", 9000) == "198.18.0.2:9000"
    got = plan_tuples(["2001:2:0:1::1", "2001:2:0:1::2"], [("2001:2::2", 9000)])
    assert [(t.source, t.destination) for t in got] == [
        ("2001:2:0:1::1", "[2001:2::2]:9000"),
        ("2001:2:0:1::2", "[2001:2::2]:9000"),
    ]


def test_a_small_ipv6_cidr_means_its_hosts_without_the_subnet_router_anycast() -> None:
    assert parse_sources(["2001:2:0:1::/126"]) == (
        "2001:2:0:1::1",
        "2001:2:0:1::2",
        "2001:2:0:1::3",
    )
    assert parse_sources(["2001:2:0:1::/127"]) == ("2001:2:0:1::", "2001:2:0:1::1")


def test_a_slash_64_means_its_first_4096_addresses_not_all_2_to_the_64() -> None:
    got = parse_sources(["2001:2:0:1::/64"])
    assert len(got) == MAX_SOURCES
    assert got[0] == "2001:2:0:1::1" and got[-1] == "2001:2:0:1::1000"
    with pytest.raises(UsageError, match=str(MAX_SOURCES)):
        parse_sources(["2001:2:0:1::/64", "2001:2:0:2::/64"])  # more than 4096 in all


def test_sources_are_routed_a_slash_64_at_a_time_the_clients_own_address_excepted() -> None:
    sources = ["2001:2::1", "2001:2:0:1::5", "2001:2:0:1::9", "2001:2:0:7::1", "198.18.1.1"]
    assert source_prefixes(sources) == [
        ipaddress.IPv6Network("2001:2:0:1::/64"),
        ipaddress.IPv6Network("2001:2:0:7::/64"),
    ]


@pytest.mark.parametrize(
    ("sandbox", "sources", "fragments"),
    [
        ("pair", ["198.18.1.1"], ["--source 198.18.1.1 is IPv4", "2001:2::/48"]),
        ("pair", ["2001:2::9"], ["2001:2::9", "the veth's own /64", "2001:2:0:1::/64"]),
        ("pair", ["2001:db8::1"], ["2001:db8::1", "outside 2001:2::/48", "RFC 5180"]),
        ("pair", ["2001:2:1::1"], ["outside 2001:2::/48"]),  # the /48 ends at 2001:2:0:ffff::
        ("loopback", ["::2"], ["IPv6 loopback is ::1 alone"]),
        ("host", ["10.0.0.1"], ["--source 10.0.0.1 is IPv4", "IPv6"]),
    ],
)
def test_with_ipv6_sources_outside_the_plan_are_refused_naming_what_is_allowed(
    sandbox: str, sources: list[str], fragments: list[str]
) -> None:
    with pytest.raises(UsageError) as e:
        check_sources_for_sandbox(sandbox, sources, 1, ipv6=True)
    for f in fragments:
        assert f in str(e.value), (f, str(e.value))


def test_with_ipv6_the_plans_own_sources_are_accepted() -> None:
    check_sources_for_sandbox("pair", ["2001:2::1", "2001:2:0:1::1", "2001:2:0:ffff::9"], 3, True)
    check_sources_for_sandbox("loopback", ["::1"], 1, ipv6=True)
    check_sources_for_sandbox("host", ["2001:db8::1", "fe80::1"], 1, ipv6=True)


def test_an_ipv6_source_without_ipv6_points_to_the_option() -> None:
    with pytest.raises(UsageError, match="add --ipv6"):
        check_sources_for_sandbox("pair", ["2001:2:0:1::1"], 1)


def _scenario(**kw: object) -> Scenario:
    return Scenario(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "fragments"),
    [
        ({"targets": (parse_target("127.0.0.1:80"),)}, ["target 127.0.0.1:80 is IPv4", "[2001:2::5]:80"]),
        ({"sandbox": SandboxKind.LOOPBACK, "sink_addresses": 2}, ["--sink-addresses 2", "::1", "allowed 1"]),
        ({"sandbox": SandboxKind.PAIR, "sources": ("198.18.1.1",)}, ["198.18.1.1 is IPv4"]),
    ],
)  # fmt: skip
def test_ipv6_scenarios_that_cannot_be_are_refused_in_one_line(
    kw: dict[str, object], fragments: list[str]
) -> None:
    with pytest.raises(UsageError) as e:
        _scenario(ipv6=True, **kw)
    text = str(e.value)
    assert "\n" not in text
    for f in fragments:
        assert f in text, (f, text)


def test_ipv6_targets_and_host_names_are_fine_with_ipv6() -> None:
    sc = _scenario(ipv6=True, targets=(parse_target("[2001:2::5]:80"), parse_target("example:80")))
    assert sc.ipv6 and str(sc.targets[0]) == "[2001:2::5]:80"
    assert _scenario(ipv6=True, sandbox=SandboxKind.PAIR, sink_addresses=3).sink_addresses == 3


def test_result_json_saves_ipv6_and_older_files_load_as_ipv4() -> None:
    sc = _scenario(ipv6=True, sandbox=SandboxKind.PAIR)
    setup = RunSetup.of(sc, targets=["[2001:2::2]:9000"], workers=1, user_namespace=False)
    doc = setup.to_json()
    assert doc["ipv6"] is True and doc["targets"] == ["[2001:2::2]:9000"]
    assert RunSetup.from_json(doc).ipv6 is True
    old = {k: v for k, v in doc.items() if k != "ipv6"}
    assert RunSetup.from_json(old).ipv6 is False
    assert RunSetup.from_json({**old, "ipv6": None}).ipv6 is False
