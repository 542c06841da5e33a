"""Sweeps as data: factors, cells, presets, plans and the significance rule (no runs)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

from portstorm.cli.sweepplan import default_parallel, plan_sweep
from portstorm.core.compare import Spread, change, spread
from portstorm.core.errors import UsageError
from portstorm.core.scenario import SandboxKind, Scenario
from portstorm.core.sweep import PRESETS, Factor, check_factors, expand, parse_vary, preset


def test_vary_names_are_canonical_and_values_split_on_commas() -> None:
    assert parse_vary("tcp_tw_reuse=0,1,2") == Factor("net.ipv4.tcp_tw_reuse", ("0", "1", "2"))
    assert parse_vary("server:tcp_fin_timeout=5,60").label == "server:tcp_fin_timeout"
    assert parse_vary("close=client,rst").kind == "run"
    # reserved port lists hold commas: their values are separated by ';'
    f = parse_vary("ip_local_reserved_ports=40000,40001;40050-40059")
    assert f.values == ("40000,40001", "40050-40059")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("tcp_tw_reuse", "malformed"),
        ("=1,2", "malformed"),
        ("tcp_tw_reuse=0,,2", "empty value"),
        ("tcp_tw_reuse=1,1", "repeated"),
        ("nope=1,2", "'nope' is no factor; allowed a run factor"),
    ],
)
def test_bad_vary_values_are_one_line_errors(text: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment) as e:
        parse_vary(text)
    assert "\n" not in str(e.value)


def test_cells_are_the_cartesian_product_last_factor_fastest() -> None:
    cells = expand([Factor("sandbox", ("pair", "loopback")),
                    Factor("net.ipv4.tcp_tw_reuse", ("0", "2"))])  # fmt: skip
    assert [c.label for c in cells] == [
        "sandbox=pair tcp_tw_reuse=0", "sandbox=pair tcp_tw_reuse=2",
        "sandbox=loopback tcp_tw_reuse=0", "sandbox=loopback tcp_tw_reuse=2",
    ]  # fmt: skip
    assert cells[3].id == "04-sandbox=loopback,tcp_tw_reuse=2"
    assert expand([Factor("net.ipv4.ip_local_port_range", ("1024 2000",))])[0].id == (
        "01-ip_local_port_range=1024_2000"
    )


def test_factor_limits() -> None:
    with pytest.raises(UsageError, match="given twice"):
        check_factors([Factor("close", ("rst",)), Factor("close", ("client",))], 1)
    with pytest.raises(UsageError, match="--repeat 0"):
        check_factors([Factor("close", ("rst",))], 0)
    big = [Factor("rate", tuple(str(i) for i in range(1, 41))),
           Factor("concurrency", tuple(str(i) for i in range(1, 41)))]  # fmt: skip
    with pytest.raises(UsageError, match="1600 runs"):
        check_factors(big, 1)


def test_every_preset_has_a_question_and_a_duration_past_time_wait_where_it_expires() -> None:
    assert set(PRESETS) == {"tw-reuse", "port-range", "fin-timeout", "close", "bind",
                            "crr", "reuse-delay", "nat", "remedies"}  # fmt: skip
    for p in PRESETS.values():
        assert p.question.endswith(".") and p.factors
        # reuse frees ports within the delay, and a NAT's closed entries are taken over
        # (its held connections fill the pool within seconds): no 60 s needed
        if p.name not in ("reuse-delay", "nat"):
            assert float(p.defaults["duration"]) > 65
    with pytest.raises(UsageError, match="--list-presets"):
        preset("nope")


def test_a_plan_takes_preset_defaults_user_options_win_and_factors_set_each_cell() -> None:
    plan = plan_sweep(list(PRESETS["fin-timeout"].factors), 2,
                      ["--duration", "3", "--set", "ip_local_port_range=40000-40099"],
                      PRESETS["fin-timeout"], None, cpus=2)  # fmt: skip
    assert len(plan.cells) == 3 and len(plan.runs) == 6
    argv = plan.runs[0].argv
    assert argv[argv.index("--duration") + 1] == "3"  # the user's, not the preset's 90
    assert argv[argv.index("--rate") + 1] == "1000"  # the preset's
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    assert "net.ipv4.tcp_tw_reuse=0" in sets or "tcp_tw_reuse=0" in sets
    assert "net.ipv4.tcp_fin_timeout=5" in sets
    # repeat by repeat, so a drift in the machine's load spreads over every cell
    assert [r.rel_dir for r in plan.runs] == [
        "cells/01-tcp_fin_timeout=5/r1", "cells/02-tcp_fin_timeout=30/r1",
        "cells/03-tcp_fin_timeout=60/r1", "cells/01-tcp_fin_timeout=5/r2",
        "cells/02-tcp_fin_timeout=30/r2", "cells/03-tcp_fin_timeout=60/r2",
    ]  # fmt: skip
    assert plan.parallel == 2  # 2 cores x 1,000/s each at 1,000/s per cell


def test_the_nat_preset_varies_pool_flags_and_hold_through_the_nat_sandbox() -> None:
    plan = plan_sweep(list(PRESETS["nat"].factors), 1, [], PRESETS["nat"], None, cpus=2)
    assert len(plan.runs) == 8
    argvs = [r.argv for r in plan.runs]
    assert all(a[a.index("--sandbox") + 1] == "nat" for a in argvs)
    assert {a[a.index("--nat-ports") + 1] for a in argvs} == {"40000-40099", "40000-40999"}
    assert sum("--nat-flags" in a for a in argvs) == 4  # "none": the option left out
    assert plan.runs[0].cell.id == "01-nat_ports=40000-40099,nat_flags=none,hold=0"
    flags = plan_sweep([parse_vary("nat-flags=none,random+persistent")], 1,
                       ["--sandbox", "nat"], None, None, 2)  # fmt: skip
    last = flags.runs[1].argv
    assert last[last.index("--nat-flags") + 1] == "random,persistent"


def test_a_plan_refuses_an_option_given_and_varied_and_a_bad_cell_before_anything_runs() -> None:
    with pytest.raises(UsageError, match="--set tcp_tw_reuse is also varied"):
        plan_sweep([parse_vary("tcp_tw_reuse=0,1")], 1, ["--set", "tcp_tw_reuse=2"], None, None, 2)
    with pytest.raises(UsageError, match="cell concurrency=0: --concurrency 0"):
        plan_sweep([parse_vary("concurrency=1,0")], 1, [], None, None, 2)
    # every cell after the first would start past the instant: refused, not run to fail
    with pytest.raises(UsageError, match="--start-at applies to one run, not to a sweep"):
        plan_sweep([parse_vary("concurrency=1,2")], 1, ["--start-at", "2100-01-01T00:00:00Z"],
                   None, None, 2)  # fmt: skip


def test_default_parallelism_follows_cores_and_rates() -> None:
    pair = SandboxKind.PAIR
    assert default_parallel([Scenario(sandbox=pair, rate=100)] * 8, cpus=2) == 8
    assert default_parallel([Scenario(sandbox=pair, rate=500)] * 8, cpus=2) == 4
    assert default_parallel([Scenario(sandbox=pair, rate=5000)] * 8, cpus=2) == 1
    assert default_parallel([Scenario(sandbox=pair)] * 8, cpus=2) == 1  # closed loops
    # a closed loop takes a core per driver and sink worker: 16 cores, 1 + 1 each -> 8 cells
    assert default_parallel([Scenario(sandbox=pair)] * 8, cpus=16) == 8
    # ...but with the default workers (one per core) one such cell fills the machine
    busy = Scenario(sandbox=pair, workers=16, sink_workers=8)
    assert default_parallel([busy] * 8, cpus=16) == 1
    assert default_parallel([Scenario(sandbox=SandboxKind.HOST, rate=10)] * 3, cpus=8) == 1


def test_a_change_is_significant_only_beyond_the_spread_of_repeats() -> None:
    a = spread([100.0, 104.0, 102.0])
    assert (a.median, a.low, a.high, a.n) == (102.0, 100.0, 104.0, 3)
    assert change(a, spread([103.0, 105.0, 101.0])).significant is False  # within spread
    assert change(a, spread([150.0, 152.0, 151.0])).significant is True
    one = spread([150.0])
    assert change(a, one).significant is None  # a single run: cannot tell
    # beyond a spread of zero but under 2 % of the baseline: not significant
    assert change(spread([1.0, 1.0]), spread([1.001, 1.001])).significant is False
    # most repeats never failed: the typical first failure is "none"
    assert spread([None, None, 2.0]).median is None
    assert change(Spread(None, None, None, 0, 2), a).delta is None


def test_host_mode_runs_wait_for_time_wait_to_drain_back_to_the_sweeps_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from portstorm.engine import sweep as engine

    readings = iter([500, 400, 40, 12])  # baseline 10 (+10 slack): the third reading passes
    seen: list[int] = []

    def fake_count(targets: list[tuple[str, int]]) -> int:
        assert targets == [("127.0.0.1", -1)]
        seen.append(next(readings))
        return seen[-1]

    monkeypatch.setattr(engine, "_time_wait_toward", fake_count)
    monkeypatch.setattr(engine, "DRAIN_POLL_S", 0.001)
    plan = plan_sweep([parse_vary("rate=10,20")], 1, ["--sandbox", "host"], None, None, 2)
    assert all(r.host_mode for r in plan.runs) and plan.parallel == 1
    runner = engine.SweepRunner(plan, tmp_path)
    trio.run(runner._drain, plan.runs[1], 10)
    assert seen == [500, 400, 40, 12]  # polled until back within the slack, then went on


def test_a_sweep_child_outlives_trios_idle_worker_threads(tmp_path: Path) -> None:
    # PR_SET_PDEATHSIG follows the thread that forked the child; trio retires idle worker
    # threads after 10 s, so a child forked from one was SIGKILLed 10 s in (every preset run).
    from portstorm.engine.processes import run_child

    log = tmp_path / "run.log"
    script = "import time; time.sleep(11); print('slept')"

    async def main() -> int:
        await trio.to_thread.run_sync(lambda: None)  # a worker thread exists, as in a sweep
        with log.open("wb") as out:
            return await run_child([sys.executable, "-c", script], out)

    assert trio.run(main) == 0
    assert log.read_text() == "slept\n"
