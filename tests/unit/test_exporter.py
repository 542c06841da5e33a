"""``portstorm watch``'s exporter (engine/exporter.py) on literal views: /metrics scraped over
loopback (127.0.0.1, a port the kernel picks) and parsed with prometheus_client's own
parsers, in the Prometheus text format and in OpenMetrics; the top-N bound with the rest as
destination="other"; the node_exporter textfile never read half-written, never written
through a planted link, and only as *.prom; the Grafana dashboard shipped in the package."""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.core import Metric
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families

from portstorm.core.errors import EnvironmentProblem, UsageError
from portstorm.core.watchsample import STATES, ProcessRead
from portstorm.core.watchview import GroupView, WatchView
from portstorm.engine import exporter
from portstorm.engine.exporter import OTHER, serve, write_textfile

USABLE = 1000
T = 1_764_600_000.0


def group(source: str, dest: str, tw: int, est: int = 0, rate: float = 10.0,
          eta: float | None = None) -> GroupView:  # fmt: skip
    states = dict.fromkeys(STATES, 0) | {"time_wait": tw, "established": est}
    in_use = tw + est
    return GroupView(
        source=source, destination=dest, usable_ports=USABLE, ports_in_use=in_use,
        states=states, used_fraction=in_use / USABLE, rate_per_s=rate, exhaustion_in_s=eta,
        words="",
    )  # fmt: skip


def watch_view(groups: list[GroupView], **host: object) -> WatchView:
    ordered = tuple(sorted(groups, key=lambda g: -g.used_fraction))
    return WatchView(t=T, dt=1.0, port_range=(40000, 40999), usable_ports=USABLE,
                     time_wait=sum(g.states["time_wait"] for g in groups), groups=ordered,
                     **host)  # type: ignore[arg-type]  # fmt: skip


# five groups: two exported one by one at --top 2, three summed per source as "other"
VIEW = watch_view(
    [
        group("198.19.0.1", "198.18.0.2:80", tw=900, est=50, rate=100.0, eta=4.5),
        group("198.19.0.1", "198.18.0.3:80", tw=300, rate=5.0),  # steady: no forecast
        group("198.19.0.1", "198.18.0.4:80", tw=20, rate=1.0),
        group("198.19.0.1", "[2001:2::5]:443", tw=10, est=2, rate=2.0),
        group("198.19.0.9", "198.18.0.2:80", tw=7, rate=0.5),
    ],
    counters_per_s={"TcpExtTW": 105.0, "TcpActiveOpens": 108.0},
    bind_trap={"198.19.0.1": 3},
    conntrack=(1234, 262144),
    processes=(ProcessRead(pid=42, name="nginx", sockets=960, fds=980, fd_limit=1024),),
)


def openmetrics_families(text: str) -> list[Metric]:
    parse: Callable[[str], Iterator[Metric]] = openmetrics_parser.text_string_to_metric_families
    return list(parse(text))


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a text-format exposition: (name, labels) -> value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def scrape(address: tuple[str, int], path: str = "/metrics", accept: str | None = None
           ) -> tuple[str, str]:  # fmt: skip
    host, port = address
    request = urllib.request.Request(f"http://{exporter.hostport(host, port)}{path}")
    if accept:
        request.add_header("Accept", accept)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["Content-Type"], response.read().decode()


def test_metrics_scraped_over_loopback_name_each_top_group_and_sum_the_rest_as_other() -> None:
    with serve(("127.0.0.1", 0)) as server:
        assert scrape(server.address)[1] == ""  # before the first sample: nothing to say
        server.update(VIEW, top=2)
        ctype, text = scrape(server.address)
    assert ctype.startswith("text/plain; version=0.0.4")
    got = samples(text)
    top, steady = ("198.19.0.1", "198.18.0.2:80"), ("198.19.0.1", "198.18.0.3:80")
    for (src, dst), tw, est in ((top, 900, 50), (steady, 300, 0)):
        pair = {"source": src, "destination": dst}
        assert got[key("portstorm_ports_in_use", **pair, state="time_wait")] == tw
        assert got[key("portstorm_ports_in_use", **pair, state="established")] == est
        assert got[key("portstorm_ports_in_use", **pair, state="syn_sent")] == 0
        assert got[key("portstorm_ports_usable", **pair)] == USABLE
        assert got[key("portstorm_port_used_ratio", **pair)] == pytest.approx((tw + est) / USABLE)
    assert got[key("portstorm_port_exhaustion_seconds", source=top[0], destination=top[1])] == 4.5
    assert (
        got[key("portstorm_new_connections_per_second", source=top[0], destination=top[1])] == 100
    )
    # the steady group is not on course: no exhaustion series at all, not a 0 or +Inf
    exhaustion = [k for k in got if k[0] == "portstorm_port_exhaustion_seconds"]
    assert len(exhaustion) == 1
    # the other three, per source: 198.19.0.1's two (20 + 10 TIME_WAIT, 2 established), and .9's
    other_1 = {"source": "198.19.0.1", "destination": OTHER}
    assert got[key("portstorm_ports_in_use", **other_1, state="time_wait")] == 30
    assert got[key("portstorm_ports_in_use", **other_1, state="established")] == 2
    assert got[key("portstorm_new_connections_per_second", **other_1)] == 3.0
    other_9 = {"source": "198.19.0.9", "destination": OTHER}
    assert got[key("portstorm_ports_in_use", **other_9, state="time_wait")] == 7
    # a ceiling or a ratio of a sum means nothing: "other" has none
    for name in ("portstorm_ports_usable", "portstorm_port_used_ratio"):
        assert {dict(labels)["destination"] for n, labels in got if n == name} == {
            top[1],
            steady[1],
        }
    dests = {dict(labels)["destination"] for n, labels in got if n == "portstorm_ports_in_use"}
    assert dests == {top[1], steady[1], OTHER}
    # host-wide
    assert got[key("portstorm_time_wait_sockets")] == 1237
    assert got[key("portstorm_groups")] == 5
    assert got[key("portstorm_sample_time_seconds")] == T
    assert got[key("portstorm_bind_trap_sockets", source="198.19.0.1")] == 3
    assert got[key("portstorm_kernel_counter_per_second", counter="TcpExtTW")] == 105
    assert (
        got[key("portstorm_conntrack_entries")],
        got[key("portstorm_conntrack_entries_limit")],
    ) == (1234, 262144)
    assert got[key("portstorm_process_open_fds", pid="42", process="nginx")] == 980
    assert got[key("portstorm_process_max_fds", pid="42", process="nginx")] == 1024
    # every family says what it is, and nothing is exported that METRICS does not name
    families = list(text_string_to_metric_families(text))
    assert {f.name for f in families} <= set(exporter.METRICS)
    assert all(f.documentation == exporter.METRICS[f.name] for f in families)


def test_rest_past_top_sources_is_summed_as_source_other_too() -> None:
    many = watch_view([group(f"198.19.0.{i}", "198.18.0.2:80", tw=100 - i) for i in range(1, 6)])
    got = samples(exporter.textfile_text(many, top=1))
    in_use = {
        k: v
        for k, v in got.items()
        if k[0] == "portstorm_ports_in_use" and ("state", "time_wait") in k[1]
    }
    # .1 on its own; .2 (the largest of the rest) as its source's "other"; .3-.5 summed
    assert in_use == {
        key(
            "portstorm_ports_in_use",
            source="198.19.0.1",
            destination="198.18.0.2:80",
            state="time_wait",
        ): 99,
        key(
            "portstorm_ports_in_use", source="198.19.0.2", destination=OTHER, state="time_wait"
        ): 98,
        key("portstorm_ports_in_use", source=OTHER, destination=OTHER, state="time_wait"): 97
        + 96
        + 95,
    }
    # without conntrack or processes read, their series are absent
    assert not any(k[0].startswith(("portstorm_conntrack", "portstorm_process")) for k in got)


def test_process_series_stay_between_the_readers_fd_scans() -> None:
    between = dataclasses.replace(VIEW, processes=None)  # the reader's samples between scans
    with serve(("127.0.0.1", 0)) as server:
        server.update(VIEW, top=2)
        server.update(between, top=2)
        got = samples(scrape(server.address)[1])
    assert got[key("portstorm_process_sockets", pid="42", process="nginx")] == 960


def test_openmetrics_when_the_scraper_asks_for_it_and_name_filter() -> None:
    with serve(("127.0.0.1", 0)) as server:
        server.update(VIEW, top=2)
        ctype, text = scrape(server.address, accept="application/openmetrics-text; version=1.0.0")
        _, only = scrape(server.address, "/metrics?name[]=portstorm_time_wait_sockets")
    assert ctype.startswith("application/openmetrics-text; version=1.0.0")
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(text)}
    assert families["portstorm_time_wait_sockets"].samples[0].value == 1237
    assert families["portstorm_port_used_ratio"].type == "gauge"
    assert [f.name for f in text_string_to_metric_families(only)] == ["portstorm_time_wait_sockets"]


def test_an_ipv6_listen_address_is_served_on_ipv6_loopback() -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as e:
        pytest.skip(f"no IPv6 loopback here: {e.strerror}")
    with serve(exporter.parse_listen("[::1]:0")) as server:
        server.update(VIEW, top=2)
        assert server.address[0] == "::1"
        _, text = scrape(server.address)
    assert samples(text)[key("portstorm_time_wait_sockets")] == 1237


def test_listen_on_a_port_in_use_is_one_line_exit_3_and_bad_addresses_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            EnvironmentProblem, match=rf"--listen 127.0.0.1:{port}: the port is in use"
        ):
            serve(("127.0.0.1", port))
    with pytest.raises(UsageError, match=r"the port must be 0\.\.65535"):
        serve(("127.0.0.1", 70000))
    assert exporter.parse_listen("[::1]:9477") == ("::1", 9477)
    assert exporter.parse_listen("0.0.0.0:9477") == ("0.0.0.0", 9477)
    with pytest.raises(UsageError, match="give HOST:PORT"):
        exporter.parse_listen("9477")
    with pytest.raises(UsageError, match="give HOST:PORT"):
        exporter.parse_listen("2001:db8::1:9477")


def test_textfile_rewritten_60_times_is_never_read_half_written(tmp_path: Path) -> None:
    path = tmp_path / "portstorm.prom"
    views = [
        watch_view(
            [
                group("198.19.0.1", f"198.18.{i % 250}.{j}:80", tw=j + 1)
                for j in range(1, 2 + i % 20)
            ]
        )
        for i in range(60)
    ]
    write_textfile(path, views[0], top=10)
    done = threading.Event()
    reads: list[int] = []
    bad: list[str] = []

    def reader() -> None:
        while not done.is_set() or not reads:
            text = path.read_text()
            try:
                got = samples(text)
                n = got[key("portstorm_groups")]
                shown = sum(1 for k in got if k[0] == "portstorm_ports_usable")
                # whole: its last family is there, and it names as many groups as it says
                if shown != min(n, 10) or key("portstorm_sample_time_seconds") not in got:
                    bad.append(text)
            except Exception as e:
                bad.append(f"{e!r}: {text!r}")
            reads.append(hash(text))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for v in views:
            write_textfile(path, v, top=10)
    finally:
        done.set()
        thread.join(timeout=30)
    assert not bad, bad[0]
    # it read while the writer wrote: many files, not one before and one after
    assert len(set(reads)) >= 3, f"{len(reads)} reads, {len(set(reads))} different files"
    # no temp file left beside it for node_exporter to trip over
    assert [p.name for p in tmp_path.iterdir()] == ["portstorm.prom"]


def test_textfile_refuses_a_planted_link_and_leaves_its_target_alone(tmp_path: Path) -> None:
    target = tmp_path / "shadow"
    target.write_text("secret\n")
    link = tmp_path / "portstorm.prom"
    link.symlink_to(target)
    with pytest.raises(EnvironmentProblem, match="is a symbolic link") as e:
        write_textfile(link, VIEW, top=2)
    assert e.value.exit_code == 3
    with pytest.raises(EnvironmentProblem, match="is a symbolic link"):
        exporter.check_textfile(link)
    assert target.read_text() == "secret\n" and link.is_symlink()


@pytest.mark.parametrize("name", ["portstorm.txt", "portstorm", "portstorm.prom.tmp", ".prom"])
def test_textfile_other_than_prom_is_refused_with_one_line_exit_2(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    with pytest.raises(UsageError) as e:
        write_textfile(path, VIEW, top=2)
    assert e.value.exit_code == 2
    assert str(e.value) == (
        f"--textfile {path}: node_exporter's textfile collector reads only *.prom files; "
        "give a name ending in .prom"
    )
    assert not path.exists()


def test_top_below_one_is_refused() -> None:
    with pytest.raises(UsageError, match="--top 0: must be at least 1"):
        exporter.textfile_text(VIEW, top=0)


def test_grafana_dashboard_shows_used_fraction_forecast_and_time_wait_from_a_chosen_source() -> (
    None
):
    doc = json.loads(exporter.dashboard_json())
    titles = [p["title"] for p in doc["panels"]]
    assert any("used" in t.lower() for t in titles)
    assert any("forecast" in t.lower() for t in titles)
    assert any("TIME_WAIT" in t for t in titles)
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in doc["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            # every metric a panel asks for is one the exporter exports
            assert set(re.findall(r"portstorm_\w+", target["expr"])) <= set(exporter.METRICS)
