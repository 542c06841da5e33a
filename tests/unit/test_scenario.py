import re
from typing import Any

import pytest

from portstorm.core.errors import UsageError
from portstorm.core.ports import parse_port_list, parse_port_range
from portstorm.core.scenario import (
    BindMode,
    SandboxKind,
    Scenario,
    Target,
    parse_number,
    parse_socket_port_range,
    parse_target,
)

GOOD_TARGETS = [
    ("127.0.0.1:80", Target("127.0.0.1", 80)),
    ("localhost:8080", Target("localhost", 8080)),
    ("[::1]:9000", Target("::1", 9000)),
    ("198.18.0.2:65535", Target("198.18.0.2", 65535)),
    ("my-host.example.org:1", Target("my-host.example.org", 1)),
]


@pytest.mark.parametrize(("text", "expected"), GOOD_TARGETS)
def test_well_formed_targets_parse(text: str, expected: Target) -> None:
    assert parse_target(text) == expected


BAD_TARGETS = [
    ("127.0.0.1", "malformed"),
    (":80", "malformed"),
    ("host:", "not a number"),
    ("host:http", "not a number"),
    ("host:0", "out of range"),
    ("host:65536", "out of range"),
    ("host:-1", "not a number"),
    ("::1:80", "malformed"),
    ("[::1]", "malformed"),
    ("[nope]:80", "not an IPv6 address"),
    ("bad_host!:80", "not a host name"),
    ("", "malformed"),
]


@pytest.mark.parametrize(("text", "fragment"), BAD_TARGETS)
def test_malformed_targets_are_refused_with_the_value_named(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_target(text)
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


NUMBERS = [
    ("--rate", "500", 500.0),
    ("--rate", "0.5", 0.5),
    ("--duration", "5", 5.0),
    ("--concurrency", "32", 32.0),
    ("--connect-timeout", "0.25", 0.25),
]


@pytest.mark.parametrize(("option", "text", "value"), NUMBERS)
def test_numeric_options_parse(option: str, text: str, value: float) -> None:
    assert parse_number(option, text) == value


BAD_NUMBERS = [
    ("--rate", "0"),
    ("--rate", "-5"),
    ("--rate", "abc"),
    ("--rate", "nan"),
    ("--rate", "inf"),
    ("--duration", "0"),
    ("--duration", "-1"),
    ("--concurrency", "0"),
    ("--concurrency", "1.5"),
    ("--concurrency", "-3"),
    ("--interval", "0"),
    ("--connect-timeout", "-0.1"),
]


@pytest.mark.parametrize(("option", "text"), BAD_NUMBERS)
def test_bad_numbers_name_the_option_the_value_and_the_allowed_range(
    option: str, text: str
) -> None:
    with pytest.raises(UsageError) as e:
        parse_number(option, text)
    msg = str(e.value)
    assert msg.startswith(option)
    assert "allowed" in msg
    assert "\n" not in msg


def test_scenario_validates_in_its_constructor() -> None:
    with pytest.raises(UsageError, match="--rate"):
        Scenario(rate=0)
    with pytest.raises(UsageError, match="--concurrency"):
        Scenario(concurrency=0)


BAD_STRATEGIES: list[tuple[dict[str, Any], str]] = [
    ({"bind": BindMode.RANGE}, "--bind range needs --port-range"),
    ({"socket_port_range": (40000, 40009)}, "--port-range applies to --bind range only"),
    ({"sink_ports": 0}, "--sink-ports 0 is out of range: allowed 1-256"),
    ({"sink_addresses": 201}, "--sink-addresses 201 is out of range: allowed 1-200"),
    ({"sink_ports": 2, "targets": (Target("127.0.0.1", 80),), "sandbox": SandboxKind.HOST},
     "--sink-ports applies to the built-in sink"),
    ({"sources": ("10.0.0.1",), "sandbox": SandboxKind.PAIR}, "198.18.0.0/15"),
    ({"sources": ("198.18.0.3",), "sandbox": SandboxKind.PAIR, "sink_addresses": 2},
     "one of the sink's addresses"),
    ({"sources": ("198.18.1.1", "198.18.1.2"), "sink_ports": 256, "sink_addresses": 200,
      "sandbox": SandboxKind.PAIR}, "tuples"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "fragment"), BAD_STRATEGIES)
def test_client_strategies_are_checked_in_the_constructor(
    fields: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(UsageError, match=re.escape(fragment)):
        Scenario(**fields)


def test_per_socket_port_ranges_parse_and_stay_above_the_privileged_ports() -> None:
    assert parse_socket_port_range("40000-40009") == (40000, 40009)
    assert parse_socket_port_range(None) is None
    with pytest.raises(UsageError, match="--port-range 80-90: low 80 is below 1024"):
        parse_socket_port_range("80-90")
    with pytest.raises(UsageError, match="--port-range: port range '9-x' is malformed"):
        parse_socket_port_range("9-x")


def test_closed_loop_defaults_to_32_in_flight_and_open_loop_is_uncapped() -> None:
    assert Scenario().in_flight_cap == 32
    assert Scenario(rate=100).in_flight_cap is None
    assert Scenario(rate=100, concurrency=4).in_flight_cap == 4
    # uncapped open loop: sized for every attempt alive for connect + close timeouts
    assert Scenario(rate=100, connect_timeout_s=3).max_in_flight() == (601, False)
    assert Scenario(concurrency=7).max_in_flight() == (7, True)


RANGES = [
    ("32768\t60999", (32768, 60999)),
    ("40000 40099", (40000, 40099)),
    ("40000-40099", (40000, 40099)),
    ("5000-5000", (5000, 5000)),
]


@pytest.mark.parametrize(("text", "expected"), RANGES)
def test_port_ranges_parse_in_kernel_and_cli_forms(text: str, expected: tuple[int, int]) -> None:
    assert parse_port_range(text) == expected


@pytest.mark.parametrize("text", ["", "40000", "5-4", "0-10", "1-70000", "a-b"])
def test_bad_port_ranges_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        parse_port_range(text)


def test_reserved_port_lists_parse() -> None:
    assert parse_port_list("") == frozenset()
    assert parse_port_list("8080,9000-9002") == {8080, 9000, 9001, 9002}


def test_live_host_sysctls_change_only_with_the_explicit_flag() -> None:
    # the guard lives in the Scenario, so run, sweep cells and resumed sweeps all meet it
    sets = (("net.ipv4.tcp_tw_reuse", "0"),)
    with pytest.raises(UsageError, match="--change-host-sysctls to confirm"):
        Scenario(sandbox=SandboxKind.HOST, client_set=sets)
    assert Scenario(sandbox=SandboxKind.HOST, client_set=sets, change_host=True).change_host
    assert Scenario(sandbox=SandboxKind.PAIR, client_set=sets).client_set == sets
