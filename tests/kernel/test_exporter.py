"""``portstorm watch --listen --textfile`` for real, in a test namespace (issue 20's must-show:
/metrics scraped over loopback and parsed with prometheus-client's parser; the textfile
never read half-written by a reader in a loop while watch rewrites it every 0.1 s).

tests/support/exportrun.py makes the sockets (30 established toward 127.0.0.1:9001, 60
closed toward 127.0.0.1:9000, so 60 ports in TIME_WAIT; 1,000 ports, tcp_tw_reuse=0), runs
watch with ``--top 1`` over them, and scrapes once they stand still.
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.netns import run_support_in_netns

pytestmark = pytest.mark.netns

# tcp_rfc1337=1: on loopback a stray RST can kill a TIME_WAIT socket between two scrapes
# otherwise (KERNEL.md, "Making tests exact"; 60 read by one scrape, fewer by the next, seen)
SYSCTLS = {
    "net.ipv4.ip_local_port_range": "40000 40999",
    "net.ipv4.tcp_tw_reuse": "0",
    "net.ipv4.tcp_rfc1337": "1",
}
TO_9000 = {"source": "127.0.0.1", "destination": "127.0.0.1:9000"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("export")
    doc: dict[str, Any] = run_support_in_netns("exportrun", folder, sysctls=SYSCTLS)
    assert doc["watch_rc"] == 130, (folder / "watch.err").read_text()
    return doc


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def _key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def test_metrics_scraped_from_a_live_watch_count_what_ss_counts(exported: dict[str, Any]) -> None:
    assert exported["text_type"].startswith("text/plain; version=0.0.4")
    got = _samples(exported["text"])
    assert exported["ss"] == {"TIME-WAIT": 60, "ESTAB": 30}
    # every port ss sees in the range is in a series, top or "other"
    in_use = [v for (name, _), v in got.items() if name == "portstorm_ports_in_use"]
    assert sum(in_use) == sum(exported["ss"].values())
    assert got[_key("portstorm_ports_in_use", **TO_9000, state="time_wait")] == 60
    assert got[_key("portstorm_ports_usable", **TO_9000)] == 1000
    assert got[_key("portstorm_port_used_ratio", **TO_9000)] == pytest.approx(0.06)
    # --top 1: the held connections' group is past the top, summed as its source's "other"
    other = {"source": "127.0.0.1", "destination": "other"}
    assert got[_key("portstorm_ports_in_use", **other, state="established")] == 30
    assert not any(
        k[0] == "portstorm_ports_usable" and ("destination", "other") in k[1] for k in got
    )
    # no connection is being made any more: not on course to run out, so no series
    assert not any(k[0] == "portstorm_port_exhaustion_seconds" for k in got)
    assert got[_key("portstorm_time_wait_sockets")] == 60
    assert got[_key("portstorm_groups")] == 2
    assert got[_key("portstorm_sample_time_seconds")] == pytest.approx(
        exported["last_line"]["t"], abs=1
    )


def test_openmetrics_from_a_live_watch_when_asked(exported: dict[str, Any]) -> None:
    assert exported["om_type"].startswith("application/openmetrics-text; version=1.0.0")
    assert exported["openmetrics"].endswith("# EOF\n")
    # the namespace's TIME_WAIT: the 60, and the first scrape's own connection once a
    # sample was taken after it ended (61 seen in a full suite)
    got = _samples(exported["openmetrics"])[_key("portstorm_time_wait_sockets")]
    assert got in (60, 61), got


def test_textfile_read_in_a_loop_while_watch_rewrote_it_was_never_half_written(
    exported: dict[str, Any],
) -> None:
    assert exported["bad"] == []
    # the reader saw the file change under it, many times over
    assert exported["samples"] >= 5
    assert exported["distinct_reads"] >= 3, exported
