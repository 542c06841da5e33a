"""The exchange as sweep factors (request_size, response_size, hold, ipv6) and the ``crr``
preset: planned as data first (no runs), then one short sweep of the preset for real."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from portstorm.cli.sweepplan import plan_sweep
from portstorm.core.errors import UsageError
from portstorm.core.sweep import PRESETS, Factor, parse_vary
from tests.support.netns import check, load, require_netns


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


@pytest.mark.parametrize(
    ("text", "name", "option"),
    [
        ("request_size=0,1,100", "request_size", "--request-size"),
        ("request-size=0,1,100", "request_size", "--request-size"),  # as the option is spelt
        ("response_size=1,4096", "response_size", "--response-size"),
        ("hold=0,2", "hold", "--hold"),
    ],
)
def test_exchange_factors_are_run_factors_that_set_their_option(
    text: str, name: str, option: str
) -> None:
    f = parse_vary(text)
    assert f.name == name and f.kind == "run" and f.label == name
    assert f.argv(f.values[-1]) == [option, f.values[-1]]


def test_ipv6_is_a_flag_factor_on_gives_the_option_off_leaves_it_out() -> None:
    f = parse_vary("ipv6=off,on")
    assert f.kind == "run" and f.values == ("off", "on")
    assert f.argv("on") == ["--ipv6"] and f.argv("off") == []
    assert Factor("ipv6", ()).argv("true") == ["--ipv6"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("ipv6=maybe", "not a flag value; allowed on, off"), ("ipv6=on,true", "repeated")],
)
def test_bad_ipv6_values_are_one_line_errors(text: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment) as e:
        parse_vary(text)
    assert "\n" not in str(e.value)


def test_sizes_expand_into_a_matrix_each_cell_with_its_own_sizes() -> None:
    factors = [parse_vary("request_size=1,100"), parse_vary("response_size=1,1000")]
    plan = plan_sweep(factors, 1, ["--duration", "1"], None, None, cpus=2)
    got = [
        (c.label, _option(r.argv, "--request-size"), _option(r.argv, "--response-size"))
        for c, r in zip(plan.cells, plan.runs, strict=True)
    ]
    assert got == [
        ("request_size=1 response_size=1", "1", "1"),
        ("request_size=1 response_size=1000", "1", "1000"),
        ("request_size=100 response_size=1", "100", "1"),
        ("request_size=100 response_size=1000", "100", "1000"),
    ]
    assert plan.cells[1].id == "02-request_size=1,response_size=1000"


def test_hold_and_ipv6_cells_get_their_options() -> None:
    factors = [parse_vary("ipv6=off,on"), parse_vary("hold=0,2")]
    plan = plan_sweep(factors, 1, ["--duration", "1", "--rate", "50"], None, None, cpus=2)
    by_cell = {r.cell.label: r.argv for r in plan.runs}
    assert set(by_cell) == {"ipv6=off hold=0", "ipv6=off hold=2", "ipv6=on hold=0",
                            "ipv6=on hold=2"}  # fmt: skip
    assert "--ipv6" not in by_cell["ipv6=off hold=2"]
    assert "--ipv6" in by_cell["ipv6=on hold=0"]
    assert float(_option(by_cell["ipv6=on hold=2"], "--hold") or 0) == 2.0
    assert float(_option(by_cell["ipv6=off hold=0"], "--hold") or 0) == 0.0


def test_an_exchange_option_given_and_varied_is_refused_by_its_option_name() -> None:
    with pytest.raises(UsageError, match="--request-size is also varied by --vary request_size"):
        plan_sweep([parse_vary("request_size=1,2")], 1, ["--request-size", "5"], None, None, 2)
    with pytest.raises(UsageError, match="--ipv6 is also varied"):
        plan_sweep([parse_vary("ipv6=off,on")], 1, ["--ipv6"], None, None, 2)


def test_a_bad_size_in_one_cell_stops_the_plan_naming_the_cell() -> None:
    with pytest.raises(UsageError, match="cell request_size=-1: ") as e:
        plan_sweep([parse_vary("request_size=1,-1")], 1, [], None, None, 2)
    assert "\n" not in str(e.value)


def test_crr_preset_is_rst_against_fin_with_one_byte_each_way() -> None:
    p = PRESETS["crr"]
    assert p.factors == (Factor("close", ("client", "rst")),)
    plan = plan_sweep(list(p.factors), 1, ["--duration", "2"], p, None, cpus=2)
    assert [c.label for c in plan.cells] == ["close=client", "close=rst"]
    for run in plan.runs:
        assert _option(run.argv, "--request-size") == "1"
        assert _option(run.argv, "--response-size") == "1"
        assert _option(run.argv, "--duration") == "2"  # the user's, over the preset's 90
        assert _option(run.argv, "--rate") == "1000"  # the preset's
    # the user's sizes win over the preset's
    plan = plan_sweep(list(p.factors), 1, ["--response-size", "512"], p, None, cpus=2)
    assert {_option(r.argv, "--response-size") for r in plan.runs} == {"512"}
    assert {_option(r.argv, "--request-size") for r in plan.runs} == {"1"}


@pytest.mark.netns
def test_crr_preset_sweep_rst_leaves_no_time_wait_fin_fills_the_range(tmp_path: Path) -> None:
    """For real, shortened: 1 s at 200/s against 100 ports. FIN close (the client closes
    after the response) leaves each port in TIME_WAIT and runs out after 100; RST close
    leaves none and every transaction succeeds."""
    require_netns()
    proc = subprocess.run(
        [sys.executable, "-m", "portstorm", "sweep", "--preset", "crr", "--duration", "1",
         "--rate", "200", "--set", "ip_local_port_range=40000-40099", "--set",
         "tcp_rfc1337=1", "--out", str(tmp_path), "--quiet", "--no-report"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    check(proc)
    doc = load(tmp_path / "sweep.json")
    runs = {c["label"]: load(tmp_path / c["runs"][0]["path"]) for c in doc["cells"]}
    fin, rst = runs["close=client"], runs["close=rst"]
    for r in (fin, rst):
        assert r["scenario"]["request_size"] == 1 and r["scenario"]["response_size"] == 1
    assert rst["totals"]["failed"] == {} and rst["totals"]["succeeded"] >= 150
    assert max(i["time_wait"] for i in rst["intervals"]) == 0
    assert fin["totals"]["succeeded"] == 100  # the range, each port then in TIME_WAIT
    assert fin["totals"]["failed"].get("port_exhausted", 0) > 0
