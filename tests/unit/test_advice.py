import dataclasses

import pytest

from portstorm.core.advice import HostState, NatRule, advise, nat_rules

BASE = {
    "net.ipv4.ip_local_port_range": "32768 60999",
    "net.ipv4.tcp_tw_reuse": "1",
    "net.ipv4.tcp_timestamps": "1",
    "net.ipv4.tcp_max_tw_buckets": "262144",
}


def _state(conntrack: tuple[int, int] | None = None, fds: int = 1 << 20, **t: str) -> HostState:
    tun = dict(BASE)
    tun.update({f"net.ipv4.{k}": v for k, v in t.items()})
    return HostState(
        tunings=tun, time_wait=0, ports_in_use=0, fd_soft_limit=fds, conntrack=conntrack
    )


CASES = [
    ("a well-tuned host gets no advice", _state(), []),
    ("tw_reuse=2", _state(tcp_tw_reuse="2"), ["loopback only"]),
    ("timestamps off", _state(tcp_timestamps="0"), ["tcp_timestamps=0 disables"]),
    ("narrow range", _state(ip_local_port_range="40000 40999"), ["only 1,000 usable ports"]),
    ("fd limit below the range", _state(fds=1024), ["open-file limit (1,024)"]),
    (
        "tw buckets below the range",
        _state(tcp_max_tw_buckets="1000"),
        ["tcp_max_tw_buckets (1,000)"],
    ),
    ("conntrack nearly full", _state(conntrack=(900, 1000)), ["nf_conntrack_count (900)"]),
    ("conntrack with room", _state(conntrack=(100, 1000)), []),
]


@pytest.mark.parametrize(("state", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_advice(state: HostState, expected: list[str]) -> None:
    got = advise(state)
    assert len(got) == len(expected), got
    for fragment, line in zip(expected, got, strict=True):
        assert fragment in line


# `nft -j list ruleset` in a namespace with these three rules (nftables 1.0.6):
#   oifname "eth0" masquerade fully-random
#   meta l4proto tcp snat to 198.18.0.1:40000-40099 random,persistent
#   masquerade
RULESET = {"nftables": [
    {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
    {"table": {"family": "ip", "name": "nat", "handle": 1}},
    {"rule": {"family": "ip", "table": "nat", "chain": "postrouting", "handle": 2, "expr": [
        {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "eth0"}},
        {"masquerade": {"flags": "fully-random"}}]}},
    {"rule": {"family": "ip", "table": "nat", "chain": "postrouting", "handle": 3, "expr": [
        {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}},
        {"snat": {"addr": "198.18.0.1", "port": {"range": [40000, 40099]},
                  "flags": ["random", "persistent"]}}]}},
    {"rule": {"family": "ip", "table": "nat", "chain": "postrouting", "handle": 4,
              "expr": [{"masquerade": None}]}},
]}  # fmt: skip


def test_masquerade_and_snat_rules_are_read_from_nfts_json() -> None:
    rules = nat_rules(RULESET)
    assert rules == (
        NatRule("ip nat postrouting", "masquerade", None, ("fully-random",)),
        NatRule("ip nat postrouting", "snat", "40000-40099", ("random", "persistent")),
        NatRule("ip nat postrouting", "masquerade", None),
    )
    assert nat_rules({"nftables": [{"metainfo": {}}]}) == ()
    assert nat_rules({"nftables": [{"rule": {"expr": [{"xt": {"name": "MASQUERADE"}}]}}]})


def test_source_nat_rules_get_the_pool_and_the_race_in_advice() -> None:
    state = dataclasses.replace(_state(), nat_rules=nat_rules(RULESET))
    first, race = advise(state)
    assert first.startswith("source NAT rules exist (masquerade fully-random in ip nat ")
    assert "snat to ports 40000-40099 random,persistent" in first
    assert "per (NAT address, destination address, port)" in first
    assert race.startswith("2 of the 3 source NAT rule(s) lack fully-random")
    assert advise(dataclasses.replace(_state(), nat_rules=())) == []
