"""core/watch.py on literal WatchSamples: rates, the forecast, words, advice, the JSON line."""

from __future__ import annotations

import json

import pytest

from portstorm.core.watch import GroupView, WatchView, forecast, view
from portstorm.core.watchsample import TW_BINS, GroupRead, WatchSample

RANGE = (40000, 40999)  # 1,000 usable ports


def _bins(spread: dict[int, int]) -> tuple[int, ...]:
    return tuple(spread.get(k, 0) for k in range(TW_BINS))


def _group(tw: int = 0, est: int = 0, new: int = 0, dst: str = "198.18.0.2",
           bins: tuple[int, ...] = (), source: str = "198.18.0.1") -> GroupRead:  # fmt: skip
    states = {"time_wait": tw, "established": est}
    return GroupRead(source, dst, 80, states, new=new, tw_expiring=bins)


def _sample(*groups: GroupRead, t: float = 1000.0, dt: float = 1.0, opens: int | None = None,
            **kw: object) -> WatchSample:  # fmt: skip
    counters = {} if opens is None else {"TcpActiveOpens": opens}
    return WatchSample(t=t, dt=dt, port_range=RANGE, reserved=frozenset(), groups=groups,
                       time_wait=sum(g.states.get("time_wait", 0) for g in groups),
                       counters=counters, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_a_burst_over_uniformly_expiring_time_wait_crosses_when_the_arithmetic_says() -> None:
    # 500 TIME_WAIT leaving at 500/60 per second, 100 new per second each held 60 s:
    # in use = 500 + (100 - 500/60) t reaches 1,000 at t = 500 / (100 - 500/60) = 5.45 s
    uniform = tuple([500 / 60] * 60 + [0.0])
    eta = forecast(500, uniform, 1000, 100.0)  # type: ignore[arg-type]
    assert eta == pytest.approx(500 / (100 - 500 / 60))


def test_a_burst_seen_twice_forecasts_from_its_counted_rate() -> None:
    bins = _bins({k: 10 for k in range(50)})  # 500 leaving over the next 50 s
    first = view(_sample(_group(tw=500, new=500, bins=bins), dt=0.0))
    # a second later: 100 new, all in TIME_WAIT since (the youngest bin)
    later = _bins({**{k: 10 for k in range(50)}, 59: 100})
    second = view(_sample(_group(tw=600, new=100, bins=later), t=1001.0), first)
    g = second.groups[0]
    assert g.rate_per_s == pytest.approx(100.0)
    assert g.time_wait_share == 1.0
    assert g.exhaustion_in_s == pytest.approx(400 / 90)
    assert g.words == "runs out in 4.4 s at 100 conn/s"


def test_a_host_whose_servers_close_first_is_not_on_course_at_any_rate() -> None:
    # 1,000 new connections a second, each closed by the server (no TIME_WAIT here: the
    # client's side goes CLOSE_WAIT -> LAST_ACK -> gone), 5 open at any sample: the old
    # model (every connection held 60 s) said "runs out in 1 s"
    v = view(_sample(_group(est=5, new=1000), dt=0.0))
    for t in (1001.0, 1002.0, 1003.0):
        v = view(_sample(_group(est=5, new=1000), t=t), v)
    g = v.groups[0]
    assert g.rate_per_s == pytest.approx(1000.0)
    assert g.time_wait_share == 0.0
    assert g.exhaustion_in_s is None
    assert g.words == "steady: 0 % used"


def test_half_the_connections_in_time_wait_fill_at_half_the_rate() -> None:
    # 200/s, half closed here first (100/s into TIME_WAIT), half by the server
    v = view(_sample(_group(tw=0, new=0), dt=0.0))
    tw = 0
    for i in (1, 2, 3):
        tw += 100
        bins = _bins({60 - j: 100 for j in range(1, i + 1)})
        v = view(_sample(_group(tw=tw, new=200, bins=bins), t=1000.0 + i), v)
    g = v.groups[0]
    assert g.time_wait_share == pytest.approx(0.5)
    # 300 in use, 100/s more for the next 57 s before the first of them leave: 7 s
    assert g.exhaustion_in_s == pytest.approx(7.0)


def test_held_connections_not_yet_closed_count_as_the_worst_case() -> None:
    # 100/s opened and held (a pool filling): none ended, so the share cannot be measured
    v = view(_sample(_group(est=0), dt=0.0))
    for i in (1, 2):
        v = view(_sample(_group(est=100 * i, new=100), t=1000.0 + i), v)
    g = v.groups[0]
    assert g.time_wait_share == 1.0
    assert g.exhaustion_in_s == pytest.approx(8.0)  # 800 ports left at 100/s


def test_a_steady_state_below_the_ceiling_is_never_on_course() -> None:
    # 10/s for a long time: 600 in TIME_WAIT, 10 leaving each second, 10 coming
    bins = _bins({k: 10 for k in range(60)})
    prev = view(_sample(_group(tw=600, new=10, bins=bins), t=999.0))
    v = view(_sample(_group(tw=600, new=10, bins=bins)), prev)
    g = v.groups[0]
    assert g.rate_per_s == pytest.approx(10.0)
    assert g.exhaustion_in_s is None
    assert g.words == "steady: 60 % used"
    assert v.advice == ()


def test_established_sockets_stay_so_a_rate_over_what_is_left_crosses() -> None:
    # 900 held open: the 100 left fill at 10/s in 10 s, though 10/s alone would settle at 600
    assert forecast(900, (), 1000, 10.0) == pytest.approx(10.0)
    assert forecast(300, (), 1000, 10.0) is None


def test_no_new_connections_is_not_on_course_even_when_full() -> None:
    assert forecast(1000, (), 1000, 0.0) is None
    assert forecast(1000, (), 1000, 5.0) == 0.0


def test_unseen_opens_are_shared_out_by_new_connections() -> None:
    a = _group(tw=30, new=30, dst="198.18.0.2")
    b = _group(tw=10, new=10, dst="198.18.0.3")
    prev = view(_sample(a, b, dt=0.0))
    v = view(_sample(a, b, opens=80), prev)  # 40 came and went unseen: 30 to a, 10 to b
    rates = {g.destination: g.rate_per_s for g in v.groups}
    assert rates == {"198.18.0.2:80": pytest.approx(60.0), "198.18.0.3:80": pytest.approx(20.0)}


def test_the_rate_is_the_mean_of_the_last_two_seconds() -> None:
    v = view(_sample(_group(tw=10, new=10), dt=0.0))
    for t, new in ((1.0, 90), (2.0, 120), (3.0, 90), (4.0, 300)):
        v = view(_sample(_group(tw=10, new=new), t=1000 + t), v)
    assert v.groups[0].rate_per_s == pytest.approx((90 + 300) / 2)
    for k in range(30):  # at 0.1 s: the last 20 samples, 2 s of them
        v = view(_sample(_group(tw=10, new=k), t=1005 + k / 10, dt=0.1), v)
    assert v.groups[0].rate_per_s == pytest.approx(sum(range(10, 30)) / 2.0)


def test_the_first_sample_counts_the_time_wait_inflow_of_the_last_three_seconds() -> None:
    bins = _bins({60: 40, 59: 100, 58: 100, 57: 60, 10: 500})
    v = view(_sample(_group(tw=800, new=800, bins=bins), dt=0.0))
    assert v.groups[0].rate_per_s == pytest.approx(100.0)


def test_groups_are_sorted_by_used_fraction_and_a_group_at_90_percent_gets_advice() -> None:
    hot = _group(tw=900, new=0, dst="198.18.0.9", bins=_bins({30: 900}))
    cool = _group(tw=100, new=0, dst="198.18.0.2")
    v = view(_sample(cool, hot, bind_trap={"198.18.0.1": 3}),
             tunings={"net.ipv4.tcp_tw_reuse": "0", "net.ipv4.tcp_timestamps": "1"})  # fmt: skip
    assert [g.destination for g in v.groups] == ["198.18.0.9:80", "198.18.0.2:80"]
    text = " | ".join(v.advice)
    assert "198.18.0.1 -> 198.18.0.9:80 (90%)" in text
    assert "ip_local_port_range" in text and "more destination" in text
    assert "net.ipv4.tcp_tw_reuse=1 (now 0)" in text
    assert "IP_BIND_ADDRESS_NO_PORT" in text
    assert "198.18.0.2:80 (" not in text  # the cool group is not named


def test_timestamps_off_says_reuse_cannot_help() -> None:
    v = view(_sample(_group(tw=950)), tunings={"net.ipv4.tcp_timestamps": "0"})
    assert any("tcp_timestamps=0" in a for a in v.advice)


def test_the_json_line_has_the_names_the_issue_lists() -> None:
    bins = _bins({k: 10 for k in range(50)})
    first = view(_sample(_group(tw=500, new=500, bins=bins), dt=0.0))
    later = _bins({**{k: 10 for k in range(50)}, 59: 100})
    v = view(_sample(_group(tw=500, new=100, bins=later), t=1001.5, conntrack=(5, 100)), first)
    doc = json.loads(json.dumps(v.to_json()))
    assert doc["t"] == 1001.5 and doc["time_wait"] == 500
    assert {"t", "time_wait", "groups"} <= set(doc)
    assert doc["conntrack"] == {"count": 5, "max": 100}
    (g,) = doc["groups"]
    assert list(g) == ["source", "destination", "usable_ports", "ports_in_use", "states",
                       "used_fraction", "rate_per_s", "exhaustion_in_s",
                       "time_wait_share"]  # fmt: skip
    assert g["states"] == {"established": 0, "time_wait": 500, "syn_sent": 0, "other": 0}
    assert g["usable_ports"] == 1000 and g["used_fraction"] == 0.5
    assert g["exhaustion_in_s"] == pytest.approx(500 / 90, abs=0.01)
    steady = view(_sample(_group(tw=10)), tunings={})
    assert steady.to_json()["groups"][0]["exhaustion_in_s"] is None


def test_reserved_ports_narrow_every_group() -> None:
    s = WatchSample(t=1.0, dt=0.0, port_range=RANGE, reserved=frozenset(range(40000, 40100)),
                    groups=(_group(tw=450),), time_wait=450)  # fmt: skip
    g = view(s).groups[0]
    assert g.usable_ports == 900 and g.used_fraction == pytest.approx(0.5)


def test_a_view_refuses_unsorted_groups() -> None:
    def g(n: int) -> GroupView:
        states = {"established": n, "time_wait": 0, "syn_sent": 0, "other": 0}
        return GroupView("a", f"b:{n}", 10, n, states, n / 10, 0.0, None, "")

    with pytest.raises(ValueError, match="sorted"):
        WatchView(t=0, dt=0, port_range=(1, 10), usable_ports=10, time_wait=0,
                  groups=(g(1), g(5)))  # fmt: skip


def test_the_last_process_scan_is_kept_between_scans() -> None:
    """The reader scans processes' fds less often than it samples: a sample without a scan
    keeps the previous view's processes (the table, the JSON and the exporter would
    otherwise drop them every other sample); a new scan replaces them."""
    from portstorm.core.watchsample import ProcessRead

    nginx = (ProcessRead(4242, "nginx", 300, 310, 1024),)
    first = view(_sample(_group(tw=10), processes=nginx))
    between = view(_sample(_group(tw=10), t=1001.0), first)
    assert between.processes == nginx
    rescanned = view(_sample(_group(tw=10), t=1002.0, processes=()), between)
    assert rescanned.processes == ()
    assert view(_sample(_group(tw=10))).processes is None  # never scanned: unknown


def test_a_conntrack_table_near_full_gets_inspects_advice() -> None:
    v = view(_sample(_group(tw=10), conntrack=(900, 1000)))
    assert any("nf_conntrack_count (900) is near nf_conntrack_max (1,000)" in a for a in v.advice)
    assert view(_sample(_group(tw=10), conntrack=(10, 1000))).advice == ()
