"""From ``portstorm sweep`` options to a plan: every run's command line, checked before any runs.

Containing the merge of a preset's defaults, the user's run options and each cell's factor
values, and the default parallelism. Every cell is validated by the code that validates
``portstorm run`` (options.py), so a bad value in any cell stops the sweep before it starts.
Each option is parsed once here, by its declared parser; a cell's command line is written
from the parsed options (and parsed again only by the cell's own ``portstorm run``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from portstorm.cli.options import RunOptions
from portstorm.cli.optionsargv import options_from_argv, to_argv
from portstorm.core.errors import UsageError
from portstorm.core.scenario import SandboxKind, Scenario
from portstorm.core.sweep import (
    RUN_FACTORS,
    SERVER_PREFIX,
    Factor,
    Preset,
    check_factors,
    expand,
)
from portstorm.core.thresholds import parse_thresholds
from portstorm.core.tuning import lookup
from portstorm.engine.run import resolve
from portstorm.engine.sweep import PlannedRun, SweepPlan

# Attempts per second per core that parallel cells may add up to without disturbing each
# other's latency. Measured on 2 cores: two cells at 1,000/s each kept p50/p99 at 116/325 us
# (one cell alone: 117/326 us); four cells at 2,000/s each pushed p99 from ~0.2 ms to 14-91 ms.
RATE_PER_CORE = 1000.0


def _sysctl_name(setting: str) -> str:
    name = setting.partition("=")[0]
    try:
        return lookup(name).name
    except UsageError:
        return name  # left for the run's own validation to name


def _merge_sets(first: Sequence[str], then: Sequence[str]) -> list[str]:
    """--set lists, a later value replacing an earlier one of the same sysctl."""
    out: dict[str, str] = {}
    for s in [*first, *then]:
        out[_sysctl_name(s)] = s
    return list(out.values())


def base_options(
    user_args: Sequence[str], preset: Preset | None, factors: Sequence[Factor]
) -> RunOptions:
    """The preset's defaults, overridden by what the user gave; factors may not be both."""
    options, given = options_from_argv(user_args)
    parse_thresholds(options.fail_if or ())  # a bad one: its own line, no cell named
    if options.start_at is not None:  # every cell after the first would start too late
        raise UsageError(
            "--start-at applies to one run, not to a sweep (its cells run one after another); "
            "start the sweep itself at that time instead"
        )
    for f in factors:
        if f.kind == "run" and f.name in given:
            raise UsageError(
                f"{RUN_FACTORS[f.name]} is also varied by --vary {f.name}: give it in one "
                "place only"
            )
        if f.kind != "run":
            sets = options.server_set if f.kind == "server" else options.set_
            name = f.name.removeprefix(SERVER_PREFIX)
            if any(_sysctl_name(s) == name for s in sets or ()):
                option = "--server-set" if f.kind == "server" else "--set"
                raise UsageError(
                    f"{option} {f.label.removeprefix(SERVER_PREFIX)} is also varied by --vary "
                    f"{f.label}: give it in one place only"
                )
    if preset is not None:
        defaults, in_preset = options_from_argv(
            [*(a for k, v in preset.defaults.items() for a in (f"--{k}", v)), *preset.extra]
        )
        options = replace(options, **{name: getattr(defaults, name) for name in in_preset - given})
        varied = {f.name for f in factors}
        preset_sets = [s for s in preset.sets if _sysctl_name(s) not in varied]
        options = replace(options, set_=_merge_sets(preset_sets, options.set_ or ()))
    return options


def cell_options(base: RunOptions, values: Sequence[tuple[str, str]]) -> RunOptions:
    """The base options with one cell's factor values, each parsed by its option's parser
    (a flag factor's "off" parses an empty command line: the option's default)."""
    options = base
    for name, value in values:
        f = Factor(name, (value,))
        if f.kind == "run":
            parsed, _ = options_from_argv(f.argv(value))
            options = replace(options, **{name: getattr(parsed, name)})
        elif f.kind == "server":
            merged = _merge_sets(options.server_set or (), [f.argv(value)[1]])
            options = replace(options, server_set=merged)
        else:
            options = replace(options, set_=_merge_sets(options.set_ or (), [f.argv(value)[1]]))
    return options


def default_parallel(scenarios: Sequence[Scenario], cpus: int) -> int:
    """As many sandboxed cells at once as the cores can drive at the chosen rates: a closed
    loop saturates a core per driver worker and per sink worker (with the default workers,
    every core: such cells run one at a time); open loops are budgeted at RATE_PER_CORE
    attempts per second per core."""
    sandboxed = [s for s in scenarios if s.sandbox is not SandboxKind.HOST]
    if not sandboxed:
        return 1
    closed = [s for s in sandboxed if s.rate is None]
    if closed:
        return max(1, cpus // max(s.workers + s.sink_workers for s in closed))
    top = max(s.rate or 0.0 for s in sandboxed)
    return max(1, min(len(sandboxed), math.floor(cpus * RATE_PER_CORE / top)))


def plan_sweep(
    factors: Sequence[Factor],
    repeat: int,
    user_args: Sequence[str],
    preset: Preset | None,
    parallel: int | None,
    cpus: int,
) -> SweepPlan:
    check_factors(factors, repeat)
    base = base_options(user_args, preset, factors)
    cells = expand(factors)
    runs: list[PlannedRun] = []
    scenarios: list[Scenario] = []
    for cell in cells:
        try:
            options = cell_options(base, cell.values)
            scenario = options.to_scenario()
        except UsageError as e:
            where = f"cell {cell.label}: " if cell.values else ""
            raise UsageError(f"{where}{e}") from None
        argv = to_argv(options)
        scenarios += [scenario] * repeat  # one per run: parallelism counts runs
        targets = [("127.0.0.1", -1)]  # host mode's built-in sink: any port on 127.0.0.1
        if scenario.targets and scenario.sandbox is SandboxKind.HOST:
            targets = [resolve(t).sockaddr[:2] for t in scenario.targets]
        for k in range(1, repeat + 1):
            runs.append(
                PlannedRun(
                    cell, k, argv, scenario.duration_s,
                    host_mode=scenario.sandbox is SandboxKind.HOST, drain_targets=targets,
                )
            )  # fmt: skip
    # Repeat by repeat: every cell's first run, then every cell's second, ... A machine's
    # load drifts (a neighbour, a cron job); run cell by cell, a drift lands on one cell's
    # repeats together, shifting its median while its spread stays narrow, and reads as
    # the factor's effect. Interleaved, it widens spreads instead (google/benchmark's
    # --benchmark_enable_random_interleaving, for the same reason). A stable sort: cells
    # keep their order within a round.
    runs.sort(key=lambda r: r.repeat)
    if parallel is None:
        parallel = default_parallel(scenarios, cpus)
    return SweepPlan(
        factors=list(factors),
        cells=cells,
        repeat=repeat,
        base_args=to_argv(base),
        preset=preset.name if preset else None,
        runs=runs,
        parallel=parallel,
        thresholds=parse_thresholds(base.fail_if or ()),  # every cell's: judged per cell
    )
