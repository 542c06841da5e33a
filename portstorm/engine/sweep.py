"""Running a sweep: each cell's repeats as ``portstorm run`` child processes, sweep.json after each.

Containing the order of runs, parallelism, the host-mode drain gate and the bookkeeping
that makes a sweep resumable. What a cell is comes from core/sweep.py; what its command
line means from cli/options.py. Each run is a separate process: a run moves its process into
its own network namespaces, so parallel cells cannot share one.

- Runs go in the plan's order, repeat by repeat (every cell's r1, then every cell's r2:
  cli/sweepplan.py says why).
- Sandboxed runs (pair, loopback) go first, ``parallel`` at a time: their namespaces are
  their own, so they neither see nor leave each other's TIME_WAIT.
- Host-mode runs go one at a time, after the others, each behind a drain gate: wait until
  TIME_WAIT toward the targets is back to its level before the sweep (TIME_WAIT lasts
  60 s and may expire up to a few seconds late, KERNEL.md), not a fixed sleep.
- sweep.json is rewritten atomically after every run, so a sweep killed midway keeps every
  finished run, and ``--resume`` runs only those without a complete result.json.
- Children are started by processes.run_child() (PR_SET_PDEATHSIG, their own session): they
  die with the sweep even on SIGKILL, and a Ctrl-C reaches the sweep, which stops them with
  SIGTERM (a run saves its partial result on SIGTERM, exits EXIT_INTERRUPTED, and counts as
  not done).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from portstorm import __version__
from portstorm.core import reading
from portstorm.core.compare import METRICS, spread
from portstorm.core.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_THRESHOLD,
    PortstormError,
    UsageError,
)
from portstorm.core.files import Folder, save_json_atomic
from portstorm.core.records import file_header
from portstorm.core.result import load_result, utc_iso
from portstorm.core.subjectgates import CaseVerdict, case_verdicts
from portstorm.core.sweep import FORMAT, Cell, Factor
from portstorm.core.thresholds import Threshold
from portstorm.engine.processes import run_child, stopped_by_signal
from portstorm.engine.sockdiag import TCP_TIME_WAIT, SockDiag
from portstorm.engine.sweeprecord import RunRecord, finished, last_error
from portstorm.engine.sysinfo import host_info

RUN_OVERHEAD_S = 1.5  # process start, namespaces, sink start: measured ~1 s on 2 cores
DRAIN_TIMEOUT_S = 70.0  # TIME_WAIT is 60 s; expiry may come a few seconds late
DRAIN_POLL_S = 0.5


@dataclass
class PlannedRun:
    cell: Cell
    repeat: int  # 1-based
    argv: list[str]  # ``portstorm run`` arguments, without --out, --quiet, --no-report
    duration_s: float
    host_mode: bool
    drain_targets: list[tuple[str, int]] = field(default_factory=list)  # port -1: any

    @property
    def rel_dir(self) -> str:
        return f"cells/{self.cell.id}/r{self.repeat}"

    @property
    def command(self) -> str:
        return shlex.join(["portstorm", "run", *self.argv, "--out", self.rel_dir])


@dataclass
class SweepPlan:
    factors: list[Factor]
    cells: list[Cell]
    repeat: int
    base_args: list[str]
    preset: str | None
    runs: list[PlannedRun]
    parallel: int
    thresholds: tuple[Threshold, ...] = ()  # --fail-if, from base_args: judged per cell

    def identity(self) -> dict[str, Any]:
        """What must match for --resume to continue a sweep."""
        return {
            "factors": [f.to_json() for f in self.factors],
            "repeat": self.repeat,
            "base_args": self.base_args,
        }


@dataclass
class Progress:
    done: int
    running: int
    remaining: int
    failed: int
    elapsed_s: float
    eta_s: float | None
    last: str | None = None  # what just finished


class SweepRunner:
    def __init__(
        self,
        plan: SweepPlan,
        out_dir: Path,
        on_progress: Callable[[Progress], None] | None = None,
        resume_doc: dict[str, Any] | None = None,
    ) -> None:
        self.plan = plan
        self.out_dir = out_dir
        self._on_progress = on_progress
        self.records = {r.rel_dir: RunRecord() for r in plan.runs}
        self.started_at = dt.datetime.now(dt.UTC)
        self.interrupted = False
        self._t0 = 0.0
        self._walls: list[float] = []
        self._running_since: dict[str, float] = {}
        self._last: str | None = None
        self.folder: Folder | None = None
        self._run_folders: dict[str, Folder] = {}
        if resume_doc is not None:
            self._take_over(resume_doc)

    # -- resume --------------------------------------------------------------------------

    def _take_over(self, doc: dict[str, Any]) -> None:
        """Keep every run that finished with a complete result.json; the rest run again."""
        self.started_at = dt.datetime.fromisoformat(str(doc["started_at"]).replace("Z", "+00:00"))
        for cell in doc.get("cells", []):
            for run in cell.get("runs", []):
                path = str(run["path"])
                rel = path.removesuffix("/result.json")
                if rel not in self.records or run.get("status") != "done":
                    continue
                if not reading.inside(self.out_dir, path):
                    continue  # a path that leaves the sweep (through a link): run it again
                try:
                    result = load_result(self.out_dir / run["path"])
                except UsageError:
                    continue
                if finished(result):
                    rec = self.records[rel] = RunRecord(
                        exit_code=run.get("exit_code", 0), wall_s=run.get("wall_s")
                    )
                    rec.take(result, self.plan.thresholds)

    @property
    def pending(self) -> list[PlannedRun]:
        return [r for r in self.plan.runs if self.records[r.rel_dir].status != "done"]

    # -- running -------------------------------------------------------------------------

    def run(self) -> bool:
        """Run what is pending; True when every run is done. Ctrl-C/SIGTERM stop it early.

        The sweep's folder and every pending run's folder are opened first (core/files.py:
        no link followed, the caller's own), so a planted ``cells/<cell>`` link stops the
        sweep before anything runs; each run then starts inside its folder's descriptor."""
        self.folder = Folder.open(self.out_dir)
        try:
            for r in self.pending:
                where = self._run_folders[r.rel_dir] = self.folder.subpath(r.rel_dir)
                where.refuse_links(["run.log", "result.json", "intervals.jsonl"])
            self.save()
            trio.run(self._main)
            self.save()
        finally:
            for f in self._run_folders.values():
                f.close()
            self._run_folders.clear()
            self.folder.close()
        return all(r.status == "done" for r in self.records.values())

    async def _main(self) -> None:
        self._t0 = time.monotonic()
        async with trio.open_nursery() as nursery:

            def stop() -> None:
                self.interrupted = True
                nursery.cancel_scope.cancel()

            async with stopped_by_signal(stop):
                nursery.start_soon(self._ticker)
                await self._all_runs()
            nursery.cancel_scope.cancel()

    async def _ticker(self) -> None:
        while True:
            self._progress()
            await trio.sleep(1.0)

    async def _all_runs(self) -> None:
        pending = self.pending
        limiter = trio.CapacityLimiter(self.plan.parallel)
        async with trio.open_nursery() as nursery:
            for r in pending:
                if not r.host_mode:
                    nursery.start_soon(self._limited, r, limiter)
        baseline: int | None = None
        for r in pending:
            if r.host_mode:
                if baseline is None:
                    baseline = _time_wait_toward(r.drain_targets)
                else:
                    await self._drain(r, baseline)
                await self._one(r)

    async def _limited(self, r: PlannedRun, limiter: trio.CapacityLimiter) -> None:
        async with limiter:
            await self._one(r)

    async def _drain(self, r: PlannedRun, baseline: int) -> None:
        """Wait until TIME_WAIT toward the targets is back to where the sweep found it."""
        slack = max(10, baseline // 100)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            now = await trio.to_thread.run_sync(_time_wait_toward, r.drain_targets)
            if now <= baseline + slack:
                return
            self._last = (
                f"waiting for TIME_WAIT to drain before {r.cell.label}: {now:,} left, "
                f"{baseline:,} before the sweep"
            )
            self._progress()
            await trio.sleep(DRAIN_POLL_S)

    async def _one(self, r: PlannedRun) -> None:
        rec = self.records[r.rel_dir]
        rec.status = "running"
        run_dir = self.out_dir / r.rel_dir
        where = self._run_folders[r.rel_dir]
        cmd = [
            sys.executable,
            "-P",  # nothing imported from the working directory: see processes.py
            "-m",
            "portstorm",
            "run",
            *r.argv,
            "--out",
            ".",  # the child starts in the run's folder, opened here (no path to swap)
            "--quiet",
            "--no-report",
            "--force",  # a rerun (--resume) replaces the partial result of an interrupted run
        ]
        started = time.monotonic()
        self._running_since[r.rel_dir] = started
        self._progress()
        log = run_dir / "run.log"
        try:
            with where.stream("run.log") as out:
                returncode = await run_child(cmd, out, cwd_fd=where.fd)
        except trio.Cancelled:
            rec.status = "interrupted"
            raise
        except PortstormError as e:  # run.log cannot be made (a full disk, a link since)
            rec.status, rec.error = "failed", str(e)
            self._last = f"{r.cell.label} r{r.repeat}: failed"
            self.save()
            return
        finally:
            self._running_since.pop(r.rel_dir, None)
        wall = time.monotonic() - started
        rec.exit_code, rec.wall_s = returncode, round(wall, 3)
        if returncode in (EXIT_OK, EXIT_THRESHOLD):  # 1: a --fail-if failed, files written
            try:
                result = load_result(run_dir / "result.json")
            except UsageError as e:
                rec.status, rec.error = "failed", str(e)
            else:
                rec.take(result, self.plan.thresholds)
                self._walls.append(wall)
        else:
            rec.status = "interrupted" if returncode == EXIT_INTERRUPTED else "failed"
            rec.error = last_error(log) or f"exit status {returncode}"
        self._last = f"{r.cell.label} r{r.repeat}: {rec.status}"
        self.save()
        self._progress()

    # -- progress and sweep.json ---------------------------------------------------------

    def _progress(self) -> None:
        if self._on_progress is None:
            return
        states = [r.status for r in self.records.values()]
        done, running = states.count("done"), states.count("running")
        failed = states.count("failed") + states.count("interrupted")
        remaining = len(states) - done - running - failed
        elapsed = time.monotonic() - self._t0 if self._t0 else 0.0
        self._on_progress(
            Progress(done, running, remaining, failed, elapsed, self._eta(remaining), self._last)
        )

    def _eta(self, remaining: int) -> float | None:
        runs = self.pending
        if not runs:
            return 0.0
        per_run = (
            sum(self._walls) / len(self._walls)
            if self._walls
            else max(r.duration_s for r in runs) + RUN_OVERHEAD_S
        )
        now = time.monotonic()
        left_running = [max(0.0, per_run - (now - t)) for t in self._running_since.values()]
        waves = math.ceil(remaining / self.plan.parallel) if remaining else 0
        return (max(left_running) if left_running else 0.0) + waves * per_run

    def verdicts(self, cell: Cell) -> list[CaseVerdict]:
        """The cell's --fail-if verdicts: each done run's (r1, r2, ...), then their median's."""
        done = [(f"r{r.repeat}", rec.gates) for r in self.plan.runs if r.cell == cell
                if (rec := self.records[r.rel_dir]).status == "done"]  # fmt: skip
        return case_verdicts(cell.label, self.plan.thresholds, done)

    def doc(self) -> dict[str, Any]:
        cells = []
        for cell in self.plan.cells:
            runs = [r for r in self.plan.runs if r.cell == cell]
            recs = [self.records[r.rel_dir] for r in runs]
            done = [rec for rec in recs if rec.status == "done" and rec.metrics]
            metrics = {
                key: spread([rec.metrics[key] for rec in done if rec.metrics]).to_json()
                for key, _label, _unit in METRICS
            }
            cells.append(
                {
                    "id": cell.id,
                    "label": cell.label,
                    "factors": {Factor(n, ()).label: v for n, v in cell.values},
                    "tunings": next((rec.tunings for rec in done), None),
                    "metrics": metrics if done else None,
                    **(
                        {"thresholds": [v.to_json() for v in self.verdicts(cell)]}
                        if self.plan.thresholds
                        else {}
                    ),
                    "runs": [
                        {
                            "repeat": r.repeat,
                            "path": f"{r.rel_dir}/result.json",
                            "status": rec.status if rec.status != "running" else "interrupted",
                            "exit_code": rec.exit_code,
                            "wall_s": rec.wall_s,
                            "command": r.command,
                            "error": rec.error,
                            "metrics": rec.metrics,
                        }
                        for r, rec in zip(runs, recs, strict=True)
                    ],
                }
            )
        complete = all(r.status == "done" for r in self.records.values())
        now = dt.datetime.now(dt.UTC)
        return {
            "format": FORMAT,
            **file_header(__version__, host_info(), utc_iso(self.started_at)),
            "updated_at": utc_iso(now),
            "complete": complete,
            "preset": self.plan.preset,
            "parallel": self.plan.parallel,
            **self.plan.identity(),
            "cells": cells,
        }

    def save(self) -> None:
        if self.folder is None:
            save_json_atomic(self.out_dir / "sweep.json", self.doc())
        else:
            self.folder.write_json("sweep.json", self.doc())


def _time_wait_toward(targets: list[tuple[str, int]]) -> int:
    """TIME_WAIT sockets in this namespace toward the targets (port -1: any port)."""
    diag = SockDiag()
    try:
        return sum(
            diag.count(host, port, (1, 65535), states=1 << TCP_TIME_WAIT) for host, port in targets
        )
    finally:
        diag.close()


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))
