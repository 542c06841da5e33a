"""sweep.json files as `portstorm sweep` writes them: planned by the planner itself (so a
change to the format changes them too), then finished or left pending by hand."""

from __future__ import annotations

import json
from pathlib import Path

from portstorm.cli.sweepplan import plan_sweep
from portstorm.core.sweep import parse_vary
from portstorm.engine.sweep import SweepRunner
from tests.support.reportdata import simulate


def sweep_folder(folder: Path, *, done: bool = True) -> Path:
    """A sweep of two cells (``tcp_tw_reuse=0,1``, ``--repeat 1``, ``--duration 2``) in
    ``folder``; its path. ``done``: each cell has one complete result.json and the sweep is
    complete; otherwise every run is still to do."""
    plan = plan_sweep([parse_vary("tcp_tw_reuse=0,1")], 1, ["--duration", "2"], None, None, 2)
    doc = SweepRunner(plan, folder).doc()
    if done:
        for i, cell in enumerate(doc["cells"]):
            for run in cell["runs"]:
                path = folder / run["path"]
                path.parent.mkdir(parents=True)
                path.write_text(json.dumps(simulate(duration=2, rate=10 + i).to_json()))
                run.update(status="done", exit_code=0, wall_s=3.5)
        doc["complete"] = True
    (folder / "sweep.json").write_text(json.dumps(doc))
    return folder / "sweep.json"
