"""Every gap between the measured rate and the port-space model gets a sentence, on literal
runs whose counters say how their connections ended (core/gaps.py); and the outcome of a
connection the server never closed (close_timeout), and loopback known by address."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping

import pytest

from portstorm.core.capacity import CapacityInput, model
from portstorm.core.finding import Finding
from portstorm.core.findings import run_findings
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.result import HostInfo, Interval, RunResult
from portstorm.core.setup import RunSetup
from portstorm.core.signals import agrees
from portstorm.core.tuning import reuse_notes
from portstorm.core.words import sandbox_label
from tests.support.reportdata import simulate

GAP_KINDS = {"rst-ended", "tw-killed", "tw-recycled", "server-closed-first", "rate-gap"}
PORTS = 100  # 100 ports held 60 s: the model sustains 1.67 conn/s

Counters = Callable[[int, int], Mapping[str, int]]  # (second, connections made) -> deltas


def _none(_sec: int, _ok: int) -> dict[str, int]:
    return {}


def run(
    *,
    per_s: int = 500,
    seconds: int = 10,
    time_wait: Callable[[int, int], int] = lambda _sec, _made: 0,
    kernel: Counters = _none,
    server_kernel: Counters | None = None,
    sandbox: str = "host",
    loopback: bool | None = None,
    close: str = "client",
    tunings: Mapping[str, str] | None = None,
    close_timeouts: int = 0,
    open_loop: bool = False,
) -> RunResult:
    """A run that made ``per_s`` connections a second, all of them succeeding, its readings
    and counter deltas as given (``time_wait(second, made so far)``)."""
    intervals, total, made = [], LatencyHistogram(), 0
    for sec in range(seconds):
        h = LatencyHistogram()
        for _ in range(per_s + close_timeouts):
            h.record(40)
        made += per_s
        intervals.append(
            Interval(
                t=float(sec),
                dt=1.0,
                attempts=per_s + close_timeouts,
                succeeded=per_s,
                failed={"close_timeout": close_timeouts} if close_timeouts else {},
                other_errnos={},
                latency_us={"p50": 40, "p99": 40},
                time_wait=time_wait(sec, made),
                server_time_wait=0 if sandbox == "pair" else None,
                ports_in_use=0,
                kernel={"TcpOutRsts": 0, **kernel(sec, per_s)},
                server_kernel=(
                    {"TcpOutRsts": 0, **server_kernel(sec, per_s)} if server_kernel else None
                ),
                hdr=h.encode(),
            )
        )
        total.add(h)
    tun = {
        "net.ipv4.ip_local_port_range": f"40000 {40000 + PORTS - 1}",
        "net.ipv4.tcp_tw_reuse": "2",
        "net.ipv4.tcp_timestamps": "1",
        "net.ipv4.tcp_rfc1337": "0",
        **(tunings or {}),
    }
    on_loopback = sandbox == "loopback" if loopback is None else loopback
    cap = model(
        CapacityInput.from_tunings(
            tun, close=close, loopback=on_loopback, rate=float(per_s) if open_loop else None
        )
    )
    return RunResult(
        tool_version="0.1.0",
        host=HostInfo("testbox", "6.18.0", 2),
        started_at="2026-12-01T12:00:00Z",
        duration_s=float(seconds),
        complete=True,
        setup=RunSetup(
            targets=("198.18.0.2:9000",),
            sandbox=sandbox,
            loopback=loopback,
            rate=float(per_s) if open_loop else None,
            concurrency=None if open_loop else 32,
            duration_s=float(seconds),
            close=close,
            bind="connect",
            close_timeout_s=2.0 if close == "server" else None,
        ),
        tunings=tun,
        intervals=tuple(intervals),
        histogram=total,
        model=cap,
        server_tunings=dict(tun) if sandbox == "pair" else None,
    )


def _kinds(r: RunResult) -> dict[str, Finding]:
    return {f.kind: f for f in run_findings(r)}


def test_connections_the_client_reset_leave_no_time_wait_and_the_ceiling_did_not_apply() -> None:
    # the haproxy case: a 400 arrived after the client's close(), which answered with RSTs
    r = run(kernel=lambda _s, ok: {"TcpOutRsts": ok, "TcpExtTCPAbortOnData": ok // 10})
    found = _kinds(r)
    text = found["rst-ended"].text
    assert "No TIME_WAIT was left, so the port-space ceiling did not apply" in text
    assert "5,000 RSTs sent from the client's namespace" in text
    assert "TCPAbortOnData 500: a close() with SO_LINGER 0, or data after close()" in text
    assert "500 conn/s were made, where the model sustains 1.67 conn/s" in text
    assert "peaked at 0, where FIN closes would have left 100" in text
    assert found["rst-ended"].level == "warn"
    assert "rate-gap" not in found  # explained: no "cannot tell" beside it


def test_resets_from_the_server_are_read_in_its_namespace_in_the_pair_sandbox() -> None:
    r = run(
        sandbox="pair",
        kernel=lambda _s, ok: {"TcpEstabResets": ok},
        server_kernel=lambda _s, ok: {"TcpOutRsts": ok},
    )
    text = _kinds(r)["rst-ended"].text
    assert "5,000 sent by the server (Tcp OutRsts in its namespace)" in text
    assert "5,000 established connections reset or aborted (EstabResets)" in text


def test_a_few_resets_among_many_fin_closes_are_not_called_the_way_connections_ended() -> None:
    r = run(per_s=1, seconds=70, time_wait=lambda _s, made: min(made, 60),
            kernel=lambda sec, _ok: {"TcpOutRsts": 1 if sec == 3 else 0})  # fmt: skip
    assert "rst-ended" not in _kinds(r)


def _falls_at_5s(sec: int, made: int) -> int:
    """TIME_WAIT that climbs with the connections made, then loses 400 sockets at 5 s,
    long before any could expire."""
    return min(made, PORTS * 10) - (400 if sec >= 5 else 0)


def _entered(_sec: int, ok: int) -> dict[str, int]:
    """Each connection the client closed entered TIME_WAIT (TcpExt TW counts at entry)."""
    return {"TcpExtTW": ok}


def test_time_wait_that_vanishes_before_it_can_expire_is_said_to_be_killed_by_rsts() -> None:
    r = run(
        per_s=100,
        time_wait=_falls_at_5s,
        kernel=_entered,
        sandbox="pair",
        server_kernel=lambda sec, _ok: {"TcpOutRsts": 400 if sec == 5 else 0},
        tunings={"net.ipv4.ip_local_port_range": "40000 40999"},
    )
    found = _kinds(r)
    text = found["tw-killed"].text
    # at 6 s: 600 had entered, 200 were left (the first reading that shows all 400)
    assert "200 client sockets were in TIME_WAIT or FIN_WAIT2 where 600 had entered since" in text
    assert "so at least 400 ended before any could expire" in text
    assert "the server sent 400 RSTs (Tcp OutRsts in its namespace)" in text
    assert "tcp_rfc1337=0" in text and "TIME_WAIT assassination" in text
    assert "no kernel counter counts these kills" in text
    assert "rate-gap" not in found


def test_with_rfc1337_on_a_kill_is_put_on_fin_wait2_not_on_time_wait() -> None:
    r = run(per_s=100, time_wait=_falls_at_5s, kernel=_entered, sandbox="pair",
            server_kernel=lambda sec, _ok: {"TcpOutRsts": 400 if sec == 5 else 0},
            tunings={"net.ipv4.ip_local_port_range": "40000 40999",
                     "net.ipv4.tcp_rfc1337": "1"})  # fmt: skip
    text = _kinds(r)["tw-killed"].text
    assert "tcp_rfc1337=1 a RST no longer ends TIME_WAIT" in text
    assert "assassination" not in text


def test_time_wait_that_expires_after_60_s_is_not_called_killed() -> None:
    # one connection a second for 90 s, each socket gone 60 s after it entered
    r = run(per_s=1, seconds=90, time_wait=lambda sec, _m: min(sec + 1, 60), kernel=_entered,
            tunings={"net.ipv4.ip_local_port_range": "40000 40999"})  # fmt: skip
    assert "tw-killed" not in _kinds(r)


def test_without_the_entry_counter_no_kill_is_claimed() -> None:
    r = run(per_s=100, time_wait=_falls_at_5s, sandbox="pair",
            server_kernel=lambda sec, _ok: {"TcpOutRsts": 400 if sec == 5 else 0},
            tunings={"net.ipv4.ip_local_port_range": "40000 40999"})  # fmt: skip
    assert "tw-killed" not in _kinds(r)


def test_tw_reuse_counted_where_the_model_held_ports_60_s_gives_the_models_reuse_figure() -> None:
    r = run(time_wait=lambda _s, made: min(made, PORTS),
            kernel=lambda _s, ok: {"TcpExtTWRecycled": ok})  # fmt: skip
    found = _kinds(r)
    text = found["tw-recycled"].text
    assert text.startswith("connect() took over 5,000 TIME_WAIT ports (TcpExt TWRecycled)")
    assert "tcp_tw_reuse=2 applied" in text
    assert "the model allows 100 conn/s (100 ports / 1 s)" in text
    assert "rate-gap" not in found


def test_reuse_the_model_expected_needs_no_second_explanation() -> None:
    r = run(loopback=True, time_wait=lambda _s, made: min(made, PORTS),
            kernel=lambda _s, ok: {"TcpExtTWRecycled": ok})  # fmt: skip
    assert "tw-recycled" not in _kinds(r)


def test_a_client_holding_no_time_wait_without_resets_says_the_server_closed_first() -> None:
    r = run(time_wait=lambda _s, _m: 1)
    found = _kinds(r)
    text = found["server-closed-first"].text
    assert text.startswith("The server closed first: 5,000 connections ended without RSTs")
    assert "at most 1 sockets in TIME_WAIT, not the 100 its own first FIN would leave" in text
    assert "rate-gap" not in found and "rst-ended" not in found


def test_a_gap_the_counters_do_not_explain_is_said_plainly() -> None:
    # TIME_WAIT full, no RSTs, no reuse, yet 5,000 connections through 100 ports
    r = run(time_wait=lambda _s, _m: PORTS)
    found = _kinds(r)
    text = found["rate-gap"].text
    assert "5,000 connections succeeded within" in text
    assert "more than the 100 ports held 60 s allow" in text
    assert "the saved counters cannot tell why" in text
    assert not GAP_KINDS - {"rate-gap"} & set(found)


def test_a_closed_loop_that_ended_before_the_ports_filled_says_that_is_why() -> None:
    r = run(per_s=50, seconds=1, time_wait=lambda _s, made: made,
            tunings={"net.ipv4.ip_local_port_range": "40000 40999"})  # fmt: skip
    text = _kinds(r)["rate-gap"].text
    assert "because the run ended before the ports filled: its 50 connections took fewer" in text
    assert "than the 1,000 ports" in text


@pytest.mark.parametrize(
    "r",
    [
        run(kernel=lambda _s, ok: {"TcpOutRsts": ok}),
        run(time_wait=lambda _s, _m: PORTS),
        run(time_wait=lambda _s, _m: 0),
        run(time_wait=lambda _s, m: min(m, PORTS), kernel=lambda _s, ok: {"TcpExtTWRecycled": ok}),
        run(per_s=50, seconds=1, time_wait=lambda _s, m: m),
        run(per_s=50, seconds=1, time_wait=lambda _s, m: m, open_loop=True),
        simulate(ports=100, rate=50, duration=75, hold_s=30.0),
        simulate(ports=1000, rate=50, duration=10),
    ],
    ids=[
        "rst",
        "unexplained",
        "server-first",
        "recycled",
        "closed-short",
        "open-short",
        "held-30s",
        "open-beyond",
    ],
)
def test_every_rate_well_above_the_model_gets_a_sentence_why(r: RunResult) -> None:
    assert r.model is not None and r.model.sustainable_rate is not None
    model_rate = float(r.model.sustainable_rate)
    assert r.rate > model_rate and not agrees(r.rate, model_rate)
    findings = run_findings(r)
    explained = {f.kind for f in findings} & GAP_KINDS
    said = any("beyond this run" in f.text or "ran out after" in f.text for f in findings)
    assert explained or said, [f.text for f in findings]


# -- close_timeout --------------------------------------------------------------------------


def test_connections_the_server_never_closed_are_close_timeouts_not_connect_failures() -> None:
    r = run(close="server", per_s=0, seconds=2, close_timeouts=10)
    found = _kinds(r)
    text = found["close-timeout"].text
    assert text.startswith("20 of 20 connections (100.0 %) were made, but the server never")
    assert "may wait for a request" in text and "(--close-timeout)" in text
    assert "failure-close_timeout" not in found  # not among the connect failures
    assert not any("timed out" in f.text for f in found.values())
    assert r.histogram.count == 20  # they connected: their latency is kept


def test_a_run_whose_only_failures_are_close_timeouts_leads_with_them_not_failed_attempts() -> None:
    r = run(close="server", per_s=0, seconds=2, close_timeouts=10)
    head = run_findings(r)[0]
    assert head.level == "headline" and head.kind == "close-timeout", head
    assert "attempts failed" not in head.text and "never closed" in head.text
    assert [f.kind for f in run_findings(r)].count("close-timeout") == 1  # said once


def test_connect_failures_beside_close_timeouts_are_counted_without_them() -> None:
    r = run(close="server", per_s=0, seconds=2, close_timeouts=10)
    refused = dataclasses.replace(
        r.intervals[0],
        attempts=r.intervals[0].attempts + 3,
        failed={**r.intervals[0].failed, "refused": 3},
    )
    r = dataclasses.replace(r, intervals=(refused, *r.intervals[1:]))
    head = run_findings(r)[0]
    assert head.text.startswith("3 of 23 attempts failed"), head.text
    assert "20 more connected but were never closed by the server" in head.text


def test_a_close_timeout_run_saves_and_loads_with_its_latencies() -> None:
    r = run(close="server", per_s=5, seconds=2, close_timeouts=3)
    doc = json.loads(json.dumps(r.to_json()))
    assert doc["totals"]["failed"] == {"close_timeout": 6}
    assert doc["scenario"]["close_timeout_s"] == 2.0
    back = RunResult.from_json(doc)
    assert (back.succeeded, back.failed, back.histogram.count) == (10, {"close_timeout": 6}, 16)


def test_a_histogram_that_misses_the_close_timeouts_is_refused() -> None:
    r = run(close="server", per_s=5, seconds=1, close_timeouts=3)
    doc = r.to_json()
    hist = LatencyHistogram()
    for _ in range(5):
        hist.record(40)
    doc["latency_us"]["hdr"] = hist.encode()
    with pytest.raises(ValueError, match="holds 5 values but 8 connected"):
        RunResult.from_json(doc)


# -- loopback by address --------------------------------------------------------------------


def test_a_host_run_toward_loopback_is_labelled_loopback() -> None:
    assert "LOOPBACK" in sandbox_label(RunSetup(sandbox="host", loopback=True))
    assert "LOOPBACK" not in sandbox_label(RunSetup(sandbox="host", loopback=False))
    assert sandbox_label(RunSetup(sandbox="loopback")).startswith("LOOPBACK")


def test_files_from_before_the_flag_derive_it_from_the_sandbox() -> None:
    assert RunSetup.from_json({"sandbox": "loopback"}).loopback is True
    assert RunSetup.from_json({"sandbox": "host"}).loopback is False
    assert RunSetup.from_json({"sandbox": "host", "loopback": True}).loopback is True
    assert RunSetup.from_json({}).loopback is None


def test_host_mode_on_loopback_gets_the_reuse_note_and_finding() -> None:
    tun = {"net.ipv4.tcp_tw_reuse": "2", "net.ipv4.tcp_timestamps": "1"}
    notes = reuse_notes("host", tun, loopback=True)
    assert any(n.startswith("loopback: the target is on 127.0.0.0/8") for n in notes)
    assert any(n.startswith("tcp_tw_reuse=2 applied") for n in notes)
    assert not any("loopback" in n for n in reuse_notes("host", tun, loopback=False))
    r = run(loopback=True, time_wait=lambda _s, made: min(made, PORTS))
    assert _kinds(r)["reuse"].text.startswith("tcp_tw_reuse=2 applied because this run used")
