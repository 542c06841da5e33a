"""``portstorm watch --json`` against a churning run, in a test namespace (issue 20's must-show).

The namespace plays the production host: 1,000 ports (40000-40999), tcp_tw_reuse=0 (so
TIME_WAIT holds each port 60 s even toward loopback), and ``portstorm run --sandbox host``
at 100/s against its built-in sink (127.0.0.1:9000, outside the range). The run's first
connect() to fail is the 1,001st, at about 10 s. tests/support/watchrun.py runs it all
inside the namespace and times each sample, each ``ss`` and each interval-log line.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.netns import run_support_in_netns

pytestmark = pytest.mark.netns

RATE = 100.0
RUN_S = 11.0  # past the first failure at ~10 s
SYSCTLS = {"net.ipv4.ip_local_port_range": "40000 40999", "net.ipv4.tcp_tw_reuse": "0"}


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("watch")
    doc: dict[str, Any] = run_support_in_netns(
        "watchrun", folder, f"{RUN_S:g}", f"{RATE:g}", sysctls=SYSCTLS
    )
    assert doc["run_rc"] == 0, (folder / "run.err").read_text()
    assert doc["watch_rc"] == 130, (folder / "watch.err").read_text()
    return doc


def _in_use(sample: dict[str, Any]) -> int:
    return sum(g["ports_in_use"] for g in sample["doc"]["groups"])


def _t0(doc: dict[str, Any]) -> float:
    """The load's start in Unix time: each interval line ([t, t + dt) s after the start) is
    written as its interval ends, so the earliest seen - (t + dt) is the start, give or
    take the polling (10 ms) and the interval's own sample."""
    return min(
        float(r["seen"])
        - float(r["record"]["interval"]["t"])
        - float(r["record"]["interval"]["dt"])
        for r in doc["records"]
        if "interval" in r["record"]
    )


def _first_failure_s(doc: dict[str, Any]) -> float:
    (ff,) = [r["record"]["first_failure"] for r in doc["records"] if "first_failure" in r["record"]]
    return float(ff["t"])


def test_ports_in_use_agree_with_ss_taken_at_the_same_sample(churn: dict[str, Any]) -> None:
    during = [s for s in churn["samples"] if s["ss"] >= 200]  # 2 %: 4 sockets, 40 ms
    assert len(during) >= 5, [(s["ss"], _in_use(s)) for s in churn["samples"]]
    for s in during:
        # ports only grow during the load: the dump's count lies between the ss taken
        # just before the sample and the one just after its line, to within 2 %
        low, high = min(s["ss_bracket"]), max(s["ss_bracket"])
        assert 0.98 * low <= _in_use(s) <= 1.02 * high, (
            _in_use(s),
            s["ss_bracket"],
            churn["ss_errors"],  # why ss was not read around a sample, if it failed
        )


def test_the_forecast_at_3_s_points_at_the_first_failure(churn: dict[str, Any]) -> None:
    t0, ff = _t0(churn), _first_failure_s(churn)
    assert 9.0 <= ff <= 11.0, ff  # the 1,001st connect at 100/s
    at3 = min(churn["samples"], key=lambda s: abs(s["doc"]["t"] - t0 - 3.0))
    age = at3["doc"]["t"] - t0
    assert abs(age - 3.0) <= 0.6, age
    (g,) = at3["doc"]["groups"]
    assert g["destination"] == "127.0.0.1:9000" and g["usable_ports"] == 1000
    assert g["exhaustion_in_s"] is not None, g
    predicted = age + g["exhaustion_in_s"]
    assert abs(predicted - ff) <= 0.1 * ff, (predicted, ff, g)


def test_once_the_load_stops_it_is_not_on_course(churn: dict[str, Any]) -> None:
    after = [s for s in churn["samples"] if s["doc"]["t"] > churn["run_end"]]
    assert churn["calmed"], [s["doc"]["groups"] for s in after]
    last = after[-1]["doc"]
    assert all(g["exhaustion_in_s"] is None for g in last["groups"]), last
    assert any(g["ports_in_use"] >= 900 for g in last["groups"])  # still held in TIME_WAIT


def test_watch_changes_no_sysctl(churn: dict[str, Any]) -> None:
    assert churn["sysctls_changed"] == []
