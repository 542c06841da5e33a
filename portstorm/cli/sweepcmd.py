"""``portstorm sweep`` end to end: options in, files and tables out.

Containing the order of operations only: planning is sweepplan.py, running engine/sweep.py,
metrics core/compare.py, printing console.py, the --fail-if verdicts over cells
core/subjectgates.py, shown and written as compare's are (comparecmd.py: exit 1 when one
failed, once every file is written). Only the sweep command imports this module: it loads
trio and the engine, which ``compare`` has no use for.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from portstorm.cli.comparecmd import gates_exit, show_verdicts, write_verdicts
from portstorm.cli.sweepplan import plan_sweep
from portstorm.core.compare import comparison
from portstorm.core.errors import EXIT_ENVIRONMENT, EXIT_INTERRUPTED, PortstormError, UsageError
from portstorm.core.inputs import load_subjects
from portstorm.core.outdir import default_out_dir
from portstorm.core.reading import read_json_object
from portstorm.core.sweep import (
    PRESETS,
    check_sweep_doc,
    factors_from_json,
    parse_vary,
    preset,
)
from portstorm.core.text import one_line
from portstorm.engine.sweep import SweepPlan, SweepRunner, cpu_count


class SweepIncomplete(PortstormError):
    exit_code = EXIT_ENVIRONMENT


def list_presets_text() -> str:
    lines = []
    for p in PRESETS.values():
        factors = " x ".join(f"{f.label}={','.join(f.values)}" for f in p.factors)
        load = " ".join(f"--{k} {v}" for k, v in p.defaults.items())
        fixed = " ".join([*(f"--set {s}" for s in p.sets), *p.extra])
        lines.append(f"{p.name}")
        lines += textwrap.wrap(p.question, 88, initial_indent="  ", subsequent_indent="  ")
        lines.append(f"  varies {factors}; {load}{' ' + fixed if fixed else ''}")
    lines.append("Run options given with --preset override its defaults, e.g. --duration 30.")
    return "\n".join(lines)


CONFIRM_HOST = "--change-host-sysctls"


def _resume_plan(
    existing: Path, doc: dict[str, Any], parallel: int | None, confirmed: bool
) -> SweepPlan:
    """The stored plan, validated by the same code as a new sweep (factors, repeat, every
    cell's run options and their bounds, parallel): a sweep.json is a file anyone may have
    edited, so nothing in it is trusted more than the same options typed."""
    try:
        factors = factors_from_json(doc)
        repeat, base_args = doc["repeat"], doc["base_args"]
        stored_parallel = doc.get("parallel", 1)
        if not isinstance(repeat, int) or isinstance(repeat, bool):
            raise UsageError(f"repeat {repeat!r} is not a whole number")
        if not isinstance(base_args, list) or not all(isinstance(a, str) for a in base_args):
            raise UsageError("base_args is not a list of strings")
        if not isinstance(stored_parallel, int) or isinstance(stored_parallel, bool):
            raise UsageError(f"parallel {stored_parallel!r} is not a whole number")
        plan = plan_sweep(
            factors,
            repeat,
            base_args,
            None,
            parallel or stored_parallel,
            cpu_count(),
        )
    except UsageError as e:
        raise UsageError(f"--resume: {existing}: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UsageError(
            f"--resume: {existing}: damaged sweep.json ({type(e).__name__}: {e})"
        ) from None
    if not confirmed and any(CONFIRM_HOST in r.argv for r in plan.runs):
        raise UsageError(
            f"--resume: {existing} plans runs that change this host's live sysctls "
            f"(--sandbox host {CONFIRM_HOST}): add {CONFIRM_HOST} to the resuming command "
            "to confirm"
        )
    preset = doc.get("preset")
    plan.preset = preset if isinstance(preset, str) else None
    return plan


def _plan(
    vary: list[str],
    preset_name: str | None,
    repeat: int,
    parallel: int | None,
    run_args: list[str],
) -> SweepPlan:
    if preset_name is not None and vary:
        raise UsageError("--preset and --vary: use one (a preset is a list of --vary)")
    chosen = preset(preset_name) if preset_name is not None else None
    factors = list(chosen.factors) if chosen else [parse_vary(v) for v in vary]
    if not factors:
        raise UsageError("nothing to sweep: give --vary NAME=V1,V2,... or --preset NAME")
    return plan_sweep(
        factors,
        repeat,
        run_args,
        chosen,
        parallel,
        cpu_count(),
    )


def _read_sweep(path: Path) -> dict[str, Any]:
    doc = read_json_object(path, "a portstorm sweep.json")
    check_sweep_doc(doc, str(path))  # the format, and every field's shape
    return doc


def run_sweep(
    *,
    vary: list[str],
    preset_name: str | None,
    repeat: int,
    repeat_given: bool,
    parallel: int | None,
    resume: bool,
    out: Path | None,
    quiet: bool,
    run_args: list[str],
    report: bool = True,
    junit: Path | None = None,
) -> int:
    from portstorm.cli.console import SweepLine, print_compare

    out_dir = out or default_out_dir(f"sweep-{preset_name or 'vary'}")
    existing = out_dir / "sweep.json"
    resume_doc: dict[str, Any] | None = None
    if existing.exists():
        if not resume:
            raise UsageError(
                f"--out {out_dir} already holds a sweep (sweep.json): add --resume to finish "
                "it, or choose another --out"
            )
        resume_doc = _read_sweep(existing)
        stored_repeat = resume_doc["repeat"]
        if repeat_given and repeat != stored_repeat:
            raise UsageError(
                f"--resume: {existing} was planned with --repeat {stored_repeat}, not "
                f"{repeat}; drop --repeat to finish it as planned (a sweep's repeats are "
                "fixed when it starts)"
            )
        repeat = stored_repeat if isinstance(stored_repeat, int) else repeat
        confirmed = CONFIRM_HOST in run_args
        if not vary and preset_name is None and not [a for a in run_args if a != CONFIRM_HOST]:
            # Plain --resume: the sweep as it was planned.
            plan = _resume_plan(existing, resume_doc, parallel, confirmed)
        else:
            plan = _plan(vary, preset_name, repeat, parallel, run_args)
            stored = {k: resume_doc.get(k) for k in ("factors", "repeat", "base_args")}
            if plan.identity() != stored:
                raise UsageError(
                    f"--resume: {existing} was planned with other options; run "
                    f"'portstorm sweep --resume --out {out_dir}' alone to finish it as planned"
                )
            plan.preset = resume_doc.get("preset")
    else:
        if resume:
            raise UsageError(f"--resume: no sweep.json in {out_dir} to finish")
        plan = _plan(vary, preset_name, repeat, parallel, run_args)
        if out_dir.exists() and not out_dir.is_dir():
            raise UsageError(f"--out {out_dir}: not a folder")
    line = SweepLine(quiet=quiet)
    runner = SweepRunner(plan, out_dir, on_progress=line.update, resume_doc=resume_doc)
    line.start(plan, skipped=len(plan.runs) - len(runner.pending), out_dir=out_dir)
    try:
        complete = runner.run()
    finally:
        line.finish()
    subjects = load_subjects(existing)
    if subjects:
        print_compare(comparison(subjects), title=f"sweep: {out_dir}")
    verdicts = [v for cell in plan.cells for v in runner.verdicts(cell)]
    times = {(r.cell.label, f"r{r.repeat}"): runner.records[r.rel_dir].wall_s or 0.0
             for r in plan.runs}  # fmt: skip
    show_verdicts(verdicts)
    print(f"sweep: {one_line(str(existing))}")
    if junit is not None:  # before the report: a skipped drawing still leaves the verdicts
        write_verdicts("sweep", verdicts, junit, times)
    if report and subjects:
        from portstorm.report import write_sweep_report

        print(f"report: {one_line(str(write_sweep_report(existing).html))}")
    if runner.interrupted:
        return EXIT_INTERRUPTED
    if not complete:
        failed = [
            f"{r.cell.label} r{r.repeat}: {runner.records[r.rel_dir].error}"
            for r in plan.runs
            if runner.records[r.rel_dir].status != "done"
        ]
        raise SweepIncomplete(
            f"{len(failed)} run(s) did not finish (first: {failed[0]}); fix the cause and "
            f"run 'portstorm sweep --resume --out {out_dir}'"
        )
    return gates_exit(verdicts)
