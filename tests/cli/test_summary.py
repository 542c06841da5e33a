"""What the terminal says around a run: the findings in the summary, the live lines' times,
the line while the report is drawn, the model rows of a NAT run (against the ceiling that
binds first), and what ``inspect`` read of the host's conntrack and NAT rules.
"""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path
from typing import Any, cast

import pytest
from rich.console import Console

from portstorm.cli.console import LiveLine, print_inspect
from portstorm.cli.summary import print_summary, top_findings
from portstorm.core.capacity import CapacityInput, model
from portstorm.core.findings import Finding, run_findings
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.natmodel import nat_model
from portstorm.core.result import HostInfo, Interval, RunResult
from portstorm.core.scenario import Scenario
from portstorm.core.setup import RunSetup
from portstorm.core.words import fmt_s
from tests.support.reportdata import simulate

EVIL = "evil\x1b]0;PWNED\x07\x1b[2J"
MARKUP = "[red]x[/red]"


def _summary(r: RunResult, width: int = 100) -> str:
    buf = io.StringIO()
    print_summary(r, "/tmp/out/result.json", Console(file=buf, width=width, highlight=False))
    return buf.getvalue()


def _findings_block(text: str) -> str:
    """The findings as one line of words (wrapping undone), from the line "findings:"."""
    block = text[text.index("findings:") :].split("\nnote: ")[0]
    return " ".join(block.split())


def _words(text: str) -> str:
    return " ".join(text.split())


def test_the_summary_of_an_exhausted_run_states_its_headline_finding_first() -> None:
    r = simulate(ports=100, rate=50, duration=10)
    found = run_findings(r)
    head = next(f for f in found if f.level == "headline")
    block = _findings_block(_summary(r))
    assert block.startswith("findings: - " + _words(head.text)), block
    assert "ran out after 2.0 s" in block  # the same computed sentence as the report's


def test_the_summary_shows_at_most_three_findings_and_says_how_many_more() -> None:
    # a knee, a SYN tail and a shortened run: more findings than the summary shows
    r = simulate(ports=100, rate=50, duration=10, knee_us=5_000, syn_tail=20, complete=False)
    found = run_findings(r)
    assert len(found) > 3, [f.kind for f in found]
    text = _summary(r)
    block = _findings_block(text)
    shown, more = top_findings(found)
    assert len(shown) == 3 and more == len(found) - 3
    bullets = [ln for ln in text.splitlines() if ln.startswith("- ")]
    assert len(bullets) == 3, text
    for f in shown:
        assert _words(f.text) in block
    assert f"({more} more in the report)" in block


def test_findings_are_ordered_headline_then_warnings_then_the_rest_in_their_own_order() -> None:
    given = [
        Finding("interrupted", "stopped early", "warn"),
        Finding("no-failure", "all succeeded", "headline"),
        Finding("close", "the client closed", "info"),
        Finding("knee", "the port search slowed connect()", "warn"),
        Finding("reuse", "reuse did not apply", "warn"),
    ]
    shown, more = top_findings(given)
    assert [f.kind for f in shown] == ["no-failure", "interrupted", "knee"]
    assert more == 2
    assert top_findings(given[:1]) == (given[:1], 0)


def test_findings_are_wrapped_to_the_terminal_width_with_a_hanging_indent() -> None:
    r = simulate(ports=100, rate=50, duration=10, knee_us=5_000)
    text = _summary(r, width=60)
    block = text[text.index("findings:") :].split("\nnote: ")[0]
    lines = block.splitlines()
    assert len(lines) > 3  # the sentences are longer than 60 columns: they wrapped
    assert all(len(line) <= 60 for line in lines), lines
    assert all(line.startswith(("findings:", "- ", "  ")) for line in lines), lines


def test_findings_print_target_names_escaped_and_markup_as_typed() -> None:
    r = simulate(ports=100, rate=50, duration=10)
    for target in (f"198.18.0.2:9000{EVIL}", f"198.18.0.2:9000{MARKUP}"):
        crafted = dataclasses.replace(r, setup=dataclasses.replace(r.setup, targets=(target,)))
        head = next(f for f in run_findings(crafted) if f.level == "headline")
        assert target in head.text  # the finding quotes the target: user input
        text = _summary(crafted, width=400)
        block = text[text.index("findings:") :]
        bad = [c for c in text if not c.isprintable() and c != "\n"]
        assert not bad, (bad, text)
        if target.endswith(MARKUP):
            assert f"198.18.0.2:9000{MARKUP}" in block  # shown, not interpreted
        else:
            assert "9000evil\\x1b]0;PWNED\\x07\\x1b[2J" in block


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (2.99919, "3.0 s"),
        (3.6, "3.6 s"),
        (0.999, "1.0 s"),  # the band follows the rounded value, not 1.00 s
        (10.4, "10.4 s"),
        (59.96, "60.0 s"),
        (99.96, "100 s"),
        (3725.2, "3,725 s"),
        (0.25, "0.25 s"),
        (0.0994, "0.10 s"),
        (0.02, "20 ms"),  # a short tail interval
        (0.007, "7 ms"),  # a first failure, not "0.01 s"
        (0.0004, "0.4 ms"),
        (0.0, "0 s"),
        (float("nan"), "nan s"),  # a crafted file's value, shown rather than raised on
    ],
)
def test_durations_print_at_the_precision_a_person_reads(seconds: float, shown: str) -> None:
    assert fmt_s(seconds) == shown


# -- the live line -------------------------------------------------------------------------


def _iv(t: float, dt: float, ok: int = 10, p50: int | None = 40) -> Interval:
    return Interval(
        t=t,
        dt=dt,
        attempts=ok,
        succeeded=ok,
        failed={},
        other_errnos={},
        latency_us={"p50": p50, "p99": p50},
    )


def _live(interval_s: float = 1.0) -> tuple[LiveLine, io.StringIO]:
    buf = io.StringIO()
    live = LiveLine(stream=buf)
    live.start(Scenario(interval_s=interval_s, duration_s=10), [])
    return live, buf


def _times(buf: io.StringIO) -> list[float]:
    lines = buf.getvalue().splitlines()[1:]  # after the "churning ..." line
    return [float(re.match(r"\s*([0-9.]+) s", line).group(1)) for line in lines]  # type: ignore[union-attr]


def test_live_times_never_go_back_when_a_workers_tail_ends_before_the_last_interval() -> None:
    # with several driver workers an interval ends at the latest of its parts (10.05 s, a
    # late tick), and one worker's 20 ms tail part began at its own tick, at 10.0 s
    live, buf = _live()
    for k in range(10):
        live.on_interval(_iv(float(k), 1.05 if k == 9 else 1.0))
    live.on_interval(_iv(10.0, 0.02, ok=3))
    times = _times(buf)
    assert times == sorted(times), buf.getvalue()
    assert times[-2] == 10.1  # 10.05 s, in tenths
    assert times[-1] >= 10.1  # not 10.02, as t + dt would have it


def test_a_short_tail_interval_prints_its_count_not_a_per_second_rate() -> None:
    live, buf = _live()
    live.on_interval(_iv(0.0, 1.0, ok=1_000))
    live.on_interval(_iv(1.0, 0.02, ok=3, p50=6_367))
    first, tail = buf.getvalue().splitlines()[1:]
    assert "1,000 conn/s" in first
    assert "conn/s" not in tail and f"+3 in {fmt_s(0.02)}" in tail, tail
    assert "1.02 s" in tail  # a tail's time in hundredths: it differs from the line above
    assert "p50 6.4 ms" in tail  # latencies as the report writes them


def test_live_times_with_short_intervals_print_hundredths() -> None:
    live, buf = _live(interval_s=0.25)
    for k in range(4):
        live.on_interval(_iv(k * 0.25, 0.25))
    assert _times(buf) == [0.25, 0.5, 0.75, 1.0]
    assert "   0.25 s" in buf.getvalue()


def test_a_quiet_live_line_counts_but_prints_nothing() -> None:
    buf = io.StringIO()
    live = LiveLine(stream=buf, quiet=True)
    live.start(Scenario(), [])
    live.on_interval(_iv(0.0, 1.0, ok=5))
    live.note("portstorm: writing the report to x ...")
    live.finish()
    assert buf.getvalue() == "" and live.succeeded == 5


# -- the report's line ---------------------------------------------------------------------


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """run_command with the load and the drawing replaced: the load returns a simulated
    result; the drawing records what stderr said before it began."""
    from portstorm.engine.run import RunOutput

    events: list[str] = []
    result = simulate(duration=2)

    def do_run(scenario: Scenario, out: Path | None, **kw: Any) -> RunOutput:
        return RunOutput(result, tmp_path / "result.json")

    def draw(r: RunResult, html: Path, *a: Any, **kw: Any) -> Any:
        import sys

        events.append("draw: " + cast(io.StringIO, sys.stderr).getvalue())
        from portstorm.report import ReportFiles

        return ReportFiles(html=html)

    monkeypatch.setattr("portstorm.engine.run.run", do_run)
    monkeypatch.setattr("portstorm.engine.processes.interrupt_on_signals", lambda: None)
    monkeypatch.setattr("portstorm.report.write_run_report", draw)
    return events


@pytest.mark.parametrize(
    ("quiet", "report", "says"), [(False, True, True), (True, True, False), (False, False, False)]
)
def test_a_line_says_the_report_is_being_written_before_it_is_drawn(
    fake_run: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    quiet: bool,
    report: bool,
    says: bool,
) -> None:
    from portstorm.cli.runcmd import run_command

    err, out = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setattr("sys.stdout", out)
    run_command(Scenario(), tmp_path, quiet=quiet, report=report, force=False)
    line = f"portstorm: writing the report to {tmp_path / 'report.html'} ..."
    assert (line in err.getvalue()) is says, err.getvalue()
    if report:
        assert len(fake_run) == 1  # drawn once
        assert (line in fake_run[0]) is says  # and the line came first
    else:
        assert fake_run == []


def test_the_tw_reuse_note_is_not_repeated_under_the_finding_that_says_it() -> None:
    # the pair sandbox with tcp_tw_reuse=2: a finding says it did not apply, and the run's
    # note said the same again below it
    r = simulate(ports=20_000, rate=100, duration=5, sandbox="pair",
                 tunings={"net.ipv4.tcp_tw_reuse": "2"})  # fmt: skip
    note = "tcp_tw_reuse=2 reuses TIME_WAIT ports on loopback only; this run crossed a veth"
    other = "host: something else worth a note"
    r = dataclasses.replace(r, notes=(note, other))
    assert "reuse" in {f.kind for f in top_findings(run_findings(r))[0]}
    text = _summary(r)
    assert (
        "note: tcp_tw_reuse=2" not in text and "tcp_tw_reuse=2 (the default) did not apply" in text
    )
    assert f"note: {other}" in text
    # without the finding on screen, the note stays
    bare = dataclasses.replace(
        r, tunings={**r.tunings, "net.ipv4.tcp_tw_reuse": "0"}, notes=(note,)
    )
    assert "note: tcp_tw_reuse=2" in _summary(bare)


# -- a NAT in the path: the model rows ----------------------------------------------------


def _rows(text: str) -> dict[str, str]:
    """The summary table as {row name: value}, a wrapped value joined back into one line."""
    rows: dict[str, str] = {}
    name = ""
    for ln in text.splitlines():
        cells = ln.split("│")
        if len(cells) != 4:
            continue
        key, value = cells[1].strip(), cells[2].strip()
        name = key or name
        rows[name] = f"{rows[name]} {value}" if not key else value
    return rows


def _nat_run(
    *,
    client_range: str = "32768 60999",  # 28,232 ports
    clients: int = 10,
    pool: tuple[int, int] = (40000, 40099),
    seconds: tuple[tuple[int, dict[str, int]], ...],
    first_failure: tuple[float, str] | None,
    rate: float = 106.0,
    hold_s: float = 5.0,
) -> RunResult:
    """A literal --sandbox nat run: (successes, failures) per 1 s interval, the client's
    model from its port range and the NAT's from its pool (tests/unit/test_natfindings.py
    builds them with the router's readings too)."""
    tun = {"net.ipv4.ip_local_port_range": client_range, "net.ipv4.tcp_tw_reuse": "2"}
    cap = model(CapacityInput.from_tunings(tun, sources=clients, rate=rate, hold_s=hold_s))
    nat = nat_model(pool=pool, nat_addresses=1, destinations=1, clients=clients,
                    hold_s=hold_s, rate=rate)  # fmt: skip
    total, ivs = LatencyHistogram(), []
    for k, (ok, failed) in enumerate(seconds):
        h = LatencyHistogram()
        for _ in range(ok):
            h.record(600)
        total.add(h)
        ivs.append(Interval(t=float(k), dt=1.0, attempts=ok + sum(failed.values()),
                            succeeded=ok, failed=failed, other_errnos={},
                            latency_us={"p50": 600 if ok else None, "p99": 600 if ok else None},
                            hdr=h.encode() if ok else None))  # fmt: skip
    return RunResult(
        tool_version="0.1.0", host=HostInfo("testbox", "6.18.0", 2),
        started_at="2026-12-01T12:00:00Z", duration_s=float(len(seconds)), complete=True,
        setup=RunSetup(targets=("198.18.0.2:9000",), sink="builtin", sandbox="nat",
                       rate=rate, duration_s=1.0, close="client", bind="connect",
                       connect_timeout_s=2.0,
                       hold_s=hold_s, clients=clients, nat_ports=f"{pool[0]}-{pool[1]}"),
        tunings=tun, intervals=tuple(ivs), histogram=total,
        first_failure_s=first_failure[0] if first_failure else None,
        first_failure_outcome=first_failure[1] if first_failure else None,
        model=dataclasses.replace(cap, nat=nat),
    )  # fmt: skip


def test_a_nat_run_is_measured_against_the_nat_pool_that_runs_out_first() -> None:
    # README's measurement: 106 connections held 5 s from 10 clients through a 100-port
    # pool; 6 timed out (dropped SYNs, counted 2 s later), the 100 ended after their hold
    r = _nat_run(seconds=((0, {}), (0, {}), (0, {"timeout": 6}), (0, {}), (0, {}), (100, {})),
                 first_failure=(2.94, "timeout"))  # fmt: skip
    rows = _rows(_summary(r, width=250))
    assert (
        rows["sandbox"] == "nat: 10 clients 198.19.0.1-.10 -> SNAT 198.18.0.1:40000-40099 -> sink"
    )
    assert rows["NAT model"] == (
        "pool 40000-40099: 100 ports x 1 tuple(s), held while open (5 s, --hold): "
        "20.00 conn/s sustainable; at 106/s exhausted after 0.94 s"
    )
    # the client's own model says none: 28,232 ports x 10 tuples held 65 s
    assert rows["capacity model"].endswith("conn/s sustainable")
    assert rows["first failure vs model"] == (
        "measured 2.9 s (a timeout, counted 2.0 s after its SYN), predicted 0.94 s (NAT pool)"
    )
    # the 100 successes counted at 5 s started before the failed SYN (0.94 s), and the
    # starts ended at 1.0 s: nothing was measured after exhaustion (it once said 34 conn/s,
    # the hold's completions over the seconds after the timeout was counted)
    assert rows["after exhaustion"] == (
        "not measured (the load's starts ended 60 ms after the first failed one), model "
        "20.00 conn/s (NAT pool; reached only once its ports free up, as connections close "
        "5 s in)"
    )


def test_a_nat_run_whose_clients_run_out_first_is_measured_against_their_ports() -> None:
    # one client with 100 ports behind a 10,000-port pool: the client's ports bind
    r = _nat_run(client_range="60000 60099", clients=1, pool=(40000, 49999),
                 seconds=((100, {"port_exhausted": 6}), (0, {"port_exhausted": 106})),
                 first_failure=(0.95, "port_exhausted"))  # fmt: skip
    assert r.model is not None and r.model.nat is not None
    client, nat = r.model, r.model.nat
    assert client.predicted_exhaustion_s is not None and nat.predicted_exhaustion_s is None
    rows = _rows(_summary(r, width=250))
    assert rows["NAT model"].endswith("2,000.00 conn/s sustainable; at 106/s not exhausted")
    assert rows["first failure vs model"] == (
        f"measured 0.95 s, predicted {fmt_s(client.predicted_exhaustion_s)} (client ports)"
    )
    assert f"model {client.sustainable_rate:,.2f} conn/s (client ports" in rows["after exhaustion"]
    assert rows["sandbox"].startswith("nat: 1 client 198.19.0.1 -> SNAT 198.18.0.1:40000-49999")


def test_a_held_open_loops_rate_is_over_its_starts_not_its_hold() -> None:
    # --rate 100 --hold 2 --duration 3: 300 successes, the run 5 s long with its last hold
    r = simulate(ports=20_000, rate=100, duration=3)
    r = dataclasses.replace(r, duration_s=5.0,
                            setup=dataclasses.replace(r.setup, hold_s=2.0))  # fmt: skip
    rows = _rows(_summary(r, width=250))
    assert rows["succeeded"] == "300  (100.0 conn/s over the 3.0 s of starts; 5.0 s with the hold)"


def test_a_pair_runs_model_rows_name_no_ceiling_and_show_no_nat_row() -> None:
    rows = _rows(_summary(simulate(ports=100, rate=50, duration=10), width=250))
    assert rows["sandbox"] == "pair: client and sink namespaces joined by a veth"
    assert "NAT model" not in rows
    assert rows["first failure vs model"] == "measured 2.0 s, predicted 2.0 s"
    assert rows["after exhaustion"] == (
        "measured 0.00 conn/s, model 1.67 conn/s (reached only once ports free up, "
        "60 s after they closed)"
    )


# -- inspect -------------------------------------------------------------------------------


def _inspect_doc(**netfilter: Any) -> dict[str, Any]:
    """An ``inspect`` document as engine/inspect.py gathers it (a literal)."""
    return {
        "host": {"hostname": "node-1", "kernel": "6.18.0", "cpus": 2},
        "port_range": [32768, 60999], "reserved_ports": "", "time_wait": 12,
        "ports_in_use": 40, "fd_soft_limit": 65536, "sysctls": [],
        "capacity_one_destination": {"why": ["28232 usable ports (32768-60999)"]},
        "advice": ["source NAT rules exist (masquerade in ip nat postrouting): ..."],
        **netfilter,
    }  # fmt: skip


def _inspected(doc: dict[str, Any]) -> str:
    buf = io.StringIO()
    print_inspect(doc, Console(file=buf, width=200, highlight=False))
    return buf.getvalue()


def test_inspect_prints_the_hosts_conntrack_use_and_its_nat_rules_not_only_advice() -> None:
    text = _inspected(_inspect_doc(
        conntrack={"count": 61_000, "max": 65_536},
        nat_rules=[
            {"where": "ip nat POSTROUTING", "action": "masquerade", "ports": None, "flags": []},
            {"where": f"ip k8s{MARKUP} snat", "action": "snat", "ports": "40000-40999",
             "flags": ["fully-random"]},
        ],
    ))  # fmt: skip
    assert "host conntrack: 61,000 entries of nf_conntrack_max 65,536" in text
    assert "host source NAT rule: masquerade (no port range) in ip nat POSTROUTING" in text
    # a table's name is the host's, printed as it is, not as markup
    assert (
        f"host source NAT rule: snat to ports 40000-40999 fully-random in ip k8s{MARKUP} snat"
        in text
    )
    assert text.index("host conntrack") < text.index("advice:")  # what was read, then advice


def test_inspect_says_when_conntrack_or_the_nat_rules_could_not_be_read() -> None:
    text = _inspected(_inspect_doc(conntrack=None, nat_rules=None))
    assert "host conntrack: not loaded" in text
    assert "host source NAT rules: not readable (nft missing, or no CAP_NET_ADMIN)" in text
    assert "host source NAT rules: none" in _inspected(_inspect_doc(conntrack=None, nat_rules=[]))
    assert "host conntrack" not in _inspected(_inspect_doc())  # a document from before them
