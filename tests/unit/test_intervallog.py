"""intervals.jsonl: written as the run goes, read back into an incomplete result."""

from __future__ import annotations

from pathlib import Path

import pytest

from portstorm.core.errors import UsageError
from portstorm.core.intervallog import RECOVERED_NOTE, IntervalLog, read
from tests.support.reportdata import simulate


def _log(path: Path, n: int) -> None:
    r = simulate(ports=100, rate=50, duration=6)
    log = IntervalLog(path, {
        "tool": {"name": "portstorm", "version": "0.1.0"}, "host": r.host.to_json(),
        "started_at": r.started_at, "scenario": r.setup.to_json(), "tunings": dict(r.tunings),
        "server_tunings": None, "capacity": r.model.to_json() if r.model else None,
    })  # fmt: skip
    for k, i in enumerate(r.intervals[:n]):
        log.interval(i)
        if k == 2:
            log.first_failure(2.0, "port_exhausted")
    log.close()


def test_a_log_cut_by_a_kill_reads_back_as_an_incomplete_run(tmp_path: Path) -> None:
    path = tmp_path / "intervals.jsonl"
    _log(path, 4)
    with path.open("a") as f:
        f.write('{"interval": {"t": 4.0, "dt": 1.0, "atte')  # the write the kill cut short
    r = read(path)
    assert r.complete is False
    assert len(r.intervals) == 4
    assert (r.succeeded, r.failed) == (100, {"port_exhausted": 100})
    assert r.histogram.count == 100  # merged from the intervals' own histograms
    assert (r.first_failure_s, r.first_failure_outcome) == (2.0, "port_exhausted")
    assert r.duration_s == 4.0
    assert r.notes[-1] == RECOVERED_NOTE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty"),
        ('{"format": "portstorm.run/1"}\n', "not a portstorm interval log"),
        ('{"format": "portstorm.intervals/7"}\n', "newer than this portstorm reads"),
        ('{"format": "portstorm.intervals/1"}\nnot json\n{}\n', "line 2 is not JSON"),
        ('{"format": "portstorm.intervals/1"}\n', "damaged interval log"),
    ],
)
def test_a_bad_interval_log_is_one_usage_error(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "intervals.jsonl"
    path.write_text(text)
    with pytest.raises(UsageError, match=expected):
        read(path)


# A --sandbox nat header as engine/run.py writes it (trimmed to what a reader needs), an
# interval with the router's reading, and the kill's cut line.
NAT_LOG = r"""{"format":"portstorm.intervals/1","tool":{"name":"portstorm","version":"0.1.0"},"host":{"hostname":"vm","kernel":"6.18.44","cpus":2},"started_at":"2026-12-01T13:56:55Z","scenario":{"targets":["198.18.0.2:9000"],"sink":"builtin","sandbox":"nat","rate":106.0,"close":"client","bind":"connect","hold_s":5.0,"nat_ports":"40000-40099","nat_flags":[],"clients":10,"router_set":{"net.netfilter.nf_conntrack_tcp_timeout_time_wait":"30"}},"tunings":{"net.ipv4.ip_local_port_range":"32768 60999","net.ipv4.tcp_tw_reuse":"2"},"server_tunings":null,"router_tunings":{"net.netfilter.nf_conntrack_tcp_timeout_time_wait":"30","net.netfilter.nf_conntrack_max":"262144"},"capacity":{"usable_ports":28232,"tuples":10,"hold_s":65.0,"sustainable_rate":30249.6,"predicted_exhaustion_s":null,"why":[],"nat":{"pool":"40000-40099","pool_ports":100,"nat_addresses":1,"destinations":1,"tuples":1,"flags":[],"clients":10,"hold_s":5.0,"sustainable_rate":20.0,"predicted_exhaustion_s":0.943396,"conntrack_limit":null,"why":["NAT pool 40000-40099: 100 ports per NAT address"]}}}
{"interval":{"t":0.0,"dt":1.0,"attempts":6,"succeeded":0,"failed":{"timeout":6},"latency_us":{"p50":null,"p99":null},"router":{"conntrack_entries":100,"conntrack_by_state":{"established":100},"conntrack_insert_failed":12,"conntrack_drop":12,"conntrack_early_drop":0,"conntrack_clash_resolve":0,"nat_ports_in_use":{"198.18.0.2:9000":100}}}}
{"first_failure":{"t":0.94,"outcome":"timeout"}}
{"interval":{"t":1.0,"dt":1.0,"att"""


def test_a_killed_nat_run_reads_back_its_router_tunings_nat_model_and_readings(
    tmp_path: Path,
) -> None:
    path = tmp_path / "intervals.jsonl"
    path.write_text(NAT_LOG)
    r = read(path)
    assert r.complete is False and r.notes[-1] == RECOVERED_NOTE
    # as result.json has them: the router's sysctls read back, the NAT pool's ceiling
    assert r.router_tunings == {
        "net.netfilter.nf_conntrack_tcp_timeout_time_wait": "30",
        "net.netfilter.nf_conntrack_max": "262144",
    }
    assert r.model is not None and r.model.nat is not None
    assert (r.model.nat.pool, r.model.nat.ceiling, r.model.nat.sustainable_rate) == (
        "40000-40099", 100, 20.0,
    )  # fmt: skip
    assert (r.setup.sandbox, r.setup.clients, r.setup.nat_ports) == ("nat", 10, "40000-40099")
    router = r.intervals[0].router
    assert router is not None
    assert (router.insert_failed, router.nat_ports_in_use) == (12, {"198.18.0.2:9000": 100})
    assert r.to_json()["router_tunings"] == r.router_tunings  # and written back the same
