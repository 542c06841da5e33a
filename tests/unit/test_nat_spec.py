"""The NAT sandbox's options as values (core/nat.py): parsing, refusals in one line, the
router's nftables ruleset as text, and what result.json keeps of them."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from portstorm.cli.optionsargv import options_from_argv
from portstorm.core.errors import UsageError
from portstorm.core.files import save_json_atomic
from portstorm.core.nat import (
    DEFAULT_POOL,
    NatSpec,
    client_addresses,
    parse_nat_flags,
    parse_nat_ports,
    parse_router_settings,
    router_set_from,
    ruleset,
)
from portstorm.core.result import load_result
from portstorm.core.scenario import SandboxKind, Scenario
from portstorm.core.setup import RunSetup
from portstorm.core.words import sandbox_label
from tests.support.cli import invoke
from tests.unit.test_result import _result

TW = "net.netfilter.nf_conntrack_tcp_timeout_time_wait"


@pytest.mark.parametrize(
    ("text", "pool"),
    [("40000-40099", (40000, 40099)), ("1024 65535", (1024, 65535)), ("5000-5000", (5000, 5000))],
)
def test_a_nat_pool_is_low_high_within_1024_65535(text: str, pool: tuple[int, int]) -> None:
    assert parse_nat_ports(text) == (pool, True)


def test_without_nat_ports_the_pool_is_masquerades_whole_range() -> None:
    assert parse_nat_ports(None) == (DEFAULT_POOL, False) == ((1024, 65535), False)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("80-90", ["--nat-ports 80-90", "below 1024", "1024-65535"]),
        ("5000-4000", ["--nat-ports 5000-4000", "below low 5000", "1024-65535"]),
        ("abc", ["--nat-ports abc", "malformed", "1024-65535"]),
        ("40000-70000", ["--nat-ports 40000-70000", "1-65535"]),
    ],
)
def test_a_bad_nat_pool_is_one_line_naming_it(text: str, fragments: list[str]) -> None:
    with pytest.raises(UsageError) as e:
        parse_nat_ports(text)
    assert "\n" not in str(e.value)
    for f in fragments:
        assert f in str(e.value), (f, str(e.value))


@pytest.mark.parametrize(
    ("text", "flags"),
    [
        (None, ()),
        ("random", ("random",)),
        ("fully-random,persistent", ("fully-random", "persistent")),
    ],
)
def test_nat_flags_are_a_comma_list(text: str | None, flags: tuple[str, ...]) -> None:
    assert parse_nat_flags(text) == flags


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("random,fully-random", "choose one"),
        ("sideways", "'sideways' is not a flag: allowed random, fully-random, persistent"),
        ("random,random", "repeated"),
    ],
)
def test_unknown_or_conflicting_nat_flags_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        parse_nat_flags(text)


def test_router_sysctls_take_short_or_full_names_and_nf_conntrack_max_is_the_limit() -> None:
    settings, limit = parse_router_settings(
        ["nf_conntrack_tcp_timeout_time_wait=30", "net.netfilter.nf_conntrack_tcp_loose=0",
         "nf_conntrack_max=500"]
    )  # fmt: skip
    assert settings == ((TW, "30"), ("net.netfilter.nf_conntrack_tcp_loose", "0"))
    assert limit == 500
    spec = NatSpec(router_set=settings, conntrack_limit=limit)
    assert router_set_from(spec.given_router_set) == (settings, limit)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("nf_bogus=1", ["'nf_bogus' is not a router sysctl", "nf_conntrack_tcp_timeout_time_wait",
                        "nf_conntrack_max"]),
        ("nf_conntrack_tcp_loose=2", ["nf_conntrack_tcp_loose='2'", "0-1"]),
        ("nf_conntrack_tcp_max_retrans=256", ["0-255"]),
        ("nf_conntrack_tcp_timeout_time_wait=-1", ["0-2147483"]),
        ("nf_conntrack_max=0", ["1-2147483647"]),
        ("nf_conntrack_tcp_loose", ["NAME=VALUE"]),
    ],
)  # fmt: skip
def test_a_bad_router_sysctl_is_one_line_naming_it(text: str, fragments: list[str]) -> None:
    with pytest.raises(UsageError) as e:
        parse_router_settings([text])
    assert "\n" not in str(e.value)
    for f in fragments:
        assert f in str(e.value), (f, str(e.value))


def test_clients_are_numbered_from_198_19_0_1_and_bounded() -> None:
    assert client_addresses(3) == ("198.19.0.1", "198.19.0.2", "198.19.0.3")
    assert client_addresses(4096)[-1] == "198.19.16.0"
    with pytest.raises(UsageError, match="--clients 4097 is out of range: allowed 1-4096"):
        NatSpec(clients=4097)


def test_the_ruleset_snats_to_the_pool_with_a_transport_match_and_its_flags() -> None:
    text = ruleset(NatSpec(pool=(40000, 40099), pool_given=True, flags=("fully-random",)))
    assert "table ip portstorm {" in text
    assert "type nat hook postrouting priority srcnat; policy accept;" in text
    assert 'oifname "ps-rout" meta l4proto tcp snat to 198.18.0.1:40000-40099 fully-random' in text
    assert "ct count" not in text


def test_without_a_pool_the_ruleset_masquerades_and_a_limit_adds_ct_count() -> None:
    text = ruleset(NatSpec(flags=("random", "persistent"), conntrack_limit=500))
    assert 'oifname "ps-rout" masquerade random,persistent' in text
    assert "snat" not in text
    assert "type filter hook forward priority filter" in text
    assert "ct state new ct count over 500 counter drop" in text


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"sources": ("198.18.1.1",)}, "use --clients N"),
        ({"ipv6": True}, "IPv4 only for now"),
        ({"sandbox": SandboxKind.PAIR}, "apply to --sandbox nat (this run uses --sandbox pair)"),
        ({"sink_ports": 20, "nat": NatSpec(clients=4096)}, "4096 client(s) x 20 destination(s)"),
    ],
)
def test_the_scenario_refuses_what_the_nat_sandbox_cannot_do(
    changes: dict[str, object], fragment: str
) -> None:
    base = {"sandbox": SandboxKind.NAT, "nat": NatSpec(clients=2)}
    with pytest.raises(UsageError, match=re.escape(fragment)):
        Scenario(**{**base, **changes})  # type: ignore[arg-type]


def test_a_nat_scenario_takes_the_defaults_and_the_server_set() -> None:
    sc = Scenario(sandbox=SandboxKind.NAT, server_set=(("net.core.somaxconn", "77"),))
    assert sc.nat == NatSpec()
    assert sc.flow_sources == ("198.19.0.1",)
    assert Scenario(sandbox=SandboxKind.PAIR).flow_sources == ()


def test_the_command_line_reaches_the_nat_spec() -> None:
    options, _ = options_from_argv(
        ["--sandbox", "nat", "--clients", "10", "--nat-ports", "40000-40099", "--nat-flags",
         "persistent", "--router-set", "nf_conntrack_tcp_timeout_time_wait=30"]
    )  # fmt: skip
    nat = options.to_scenario().nat
    assert nat == NatSpec(pool=(40000, 40099), pool_given=True, flags=("persistent",),
                          clients=10, router_set=((TW, "30"),))  # fmt: skip


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--sandbox", "nat", "--nat-ports", "80-90"], "below 1024"),
        (["--sandbox", "nat", "--nat-flags", "random,fully-random"], "choose one"),
        (["--sandbox", "nat", "--clients", "0"], "--clients 0 is out of range"),
        (["--sandbox", "nat", "--router-set", "nf_bogus=1"], "is not a router sysctl"),
        (["--clients", "3"], "apply to --sandbox nat"),
        (["--sandbox", "nat", "--source", "198.18.1.1"], "use --clients N"),
        (["--sandbox", "nat", "--ipv6"], "IPv4 only"),
    ],
)
def test_bad_nat_options_exit_2_with_one_line(args: list[str], fragment: str) -> None:
    code, err = invoke(["run", *args, "--duration", "1", "--no-report"])
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert fragment in err, err


def test_the_nat_setup_and_router_tunings_round_trip(tmp_path: Path) -> None:
    sc = Scenario(
        sandbox=SandboxKind.NAT,
        nat=NatSpec(pool=(40000, 40099), pool_given=True, flags=("fully-random",), clients=10,
                    router_set=((TW, "30"),), conntrack_limit=500),
    )  # fmt: skip
    setup = RunSetup.of(sc, targets=["198.18.0.2:9000"], workers=1, user_namespace=False)
    r = dataclasses.replace(_result(), setup=setup, router_tunings={TW: "30"})
    path = tmp_path / "result.json"
    save_json_atomic(path, r.to_json())
    doc = json.loads(path.read_text())
    s = doc["scenario"]
    assert (s["sandbox"], s["nat_ports"], s["nat_flags"], s["clients"]) == (
        "nat", "40000-40099", ["fully-random"], 10,
    )  # fmt: skip
    assert s["router_set"] == {TW: "30", "net.netfilter.nf_conntrack_max": "500"}
    assert doc["router_tunings"] == {TW: "30"}
    back = load_result(path)
    assert back.router_tunings == {TW: "30"} and back.setup.nat and back.setup.pair
    assert back.to_json() == doc


@pytest.mark.parametrize("absent", [True, False])
def test_files_from_before_the_nat_sandbox_load_with_no_router(
    tmp_path: Path, absent: bool
) -> None:
    doc = _result().to_json()
    if absent:
        del doc["router_tunings"]
    path = tmp_path / "result.json"
    save_json_atomic(path, doc)
    back = load_result(path)
    assert back.router_tunings is None
    assert (back.setup.nat_ports, back.setup.nat_flags, back.setup.clients) == (None, (), None)


def test_masquerade_and_an_explicit_whole_range_are_saved_and_said_apart(tmp_path: Path) -> None:
    # both map to 1024-65535 (nf_nat_l4proto_unique_tuple()); only the rule tells them apart
    path = tmp_path / "result.json"
    for given, rule, said in ((False, "masquerade", "-> masquerade (1024-65535) -> sink"),
                              (True, "snat", "-> SNAT 198.18.0.1:1024-65535 -> sink")):  # fmt: skip
        sc = Scenario(sandbox=SandboxKind.NAT, nat=NatSpec(pool_given=given, clients=2))
        setup = RunSetup.of(sc, targets=["198.18.0.2:9000"], workers=1, user_namespace=False)
        save_json_atomic(path, dataclasses.replace(_result(), setup=setup).to_json())
        doc = json.loads(path.read_text())
        assert (doc["scenario"]["nat_ports"], doc["scenario"]["nat_rule"]) == ("1024-65535", rule)
        back = load_result(path).setup
        assert back.nat_rule == rule
        assert sandbox_label(back) == f"nat: 2 clients 198.19.0.1-.2 {said}"
    # a file from before the rule was saved: unknown, and said as it was
    del doc["scenario"]["nat_rule"]
    save_json_atomic(path, doc)
    back = load_result(path).setup
    assert back.nat_rule is None
    assert (
        sandbox_label(back) == "nat: 2 clients 198.19.0.1-.2 -> SNAT 198.18.0.1:1024-65535 -> sink"
    )
    doc["scenario"]["nat_rule"] = "dnat"
    save_json_atomic(path, doc)
    with pytest.raises(UsageError, match=r"scenario\.nat_rule: 'dnat'; allowed: masquerade, snat"):
        load_result(path)
