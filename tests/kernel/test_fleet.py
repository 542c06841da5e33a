"""portstorm fleet run through Ansible against stand-in hosts: three namespaces with sshd,
a fourth whose sshd is not running, a controller namespace running ansible-playbook
(tests/support/sshd.py). Each host runs a sandboxed `portstorm run --start-at` from this
checkout's venv (the playbook's venv variable; nothing is pip-installed per host)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from portstorm.core.histogram import LatencyHistogram
from portstorm.core.result import load_result
from tests.support.sshd import StandIns, end_tree, nsenter, require_sshd

pytestmark = [pytest.mark.netns]

VENV = Path(sys.executable).parent.parent  # this checkout's .venv: bin/portstorm in it
ROOT = Path(__file__).resolve().parents[2]


def _epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def test_three_hosts_start_together_merge_exactly_and_the_unreachable_one_is_named(
    tmp_path: Path,
) -> None:
    require_sshd()
    stand_ins = StandIns(tmp_path)
    fleet_run: subprocess.Popen[str] | None = None
    try:
        stand_ins.start(4, dead=1)  # h4: an address without sshd
        inventory = stand_ins.inventory(tmp_path / "inventory.ini")
        out = tmp_path / "fleet"
        env = dict(
            os.environ,
            ANSIBLE_HOME=str(tmp_path / "ansible"),
            ANSIBLE_SSH_ARGS="-o ControlMaster=no",  # no ssh master left running after it
            PYTHONPATH=str(ROOT),
        )
        fleet_run = subprocess.Popen(
            nsenter(stand_ins.controller_pid, sys.executable, "-m", "portstorm", "fleet", "run",
                    "-i", str(inventory), "--out", str(out), "--lead", "20",
                    "--venv", str(VENV), "--install", "none",
                    "--remote-dir", str(tmp_path / "remote"), "--no-report", "--keep-remote",
                    "--", "--duration", "1", "--rate", "50", "--workers", "1",
                    "--no-report", "--connect-timeout", "1"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
        )  # fmt: skip
        stdout, stderr = fleet_run.communicate(timeout=120)
    finally:
        stand_ins.close()  # every sshd, then whatever is left in the namespaces, by PID
        if fleet_run is not None and fleet_run.poll() is None:
            end_tree(fleet_run)  # a hung ansible-playbook and its ssh children
    said = f"stdout:\n{stdout}\nstderr:\n{stderr[-4000:]}"
    assert fleet_run.returncode == 3, said
    assert "missing: h4" in stdout, said
    # through the public loader: whichever result.json version the hosts wrote
    results = {h: load_result(out / h / "result.json") for h in ("h1", "h2", "h3")}
    assert not (out / "h4").exists() and not list(out.glob("*.tar.gz"))  # unpacked, removed
    fleet = json.loads((out / "fleet.json").read_text())
    assert fleet["format"] == "portstorm.fleet/1"
    assert [x["name"] for x in fleet["missing"]] == ["h4"]
    assert "unreachable" in fleet["missing"][0]["reason"]
    # every load began at the agreed instant, within 100 ms of each other
    starts = {r.setup.start_at for r in results.values()}
    assert len(starts) == 1 and None not in starts, starts
    began = [_epoch(str(r.setup.load_started_at)) for r in results.values()]
    assert max(began) - min(began) < 0.1, began
    assert 0 <= min(began) - _epoch(str(starts.pop())) < 0.1
    # the sums, and the merged histogram: the three decoded and added by hand
    totals = fleet["totals"]
    assert totals["attempts"] == sum(r.attempts for r in results.values()) > 0
    assert totals["succeeded"] == sum(r.succeeded for r in results.values())
    by_hand = LatencyHistogram()
    for r in results.values():
        by_hand.add(LatencyHistogram.decode(r.histogram.encode()))  # decoded, added by hand
    merged = LatencyHistogram.decode(fleet["latency_us"]["hdr"])
    assert merged.count == totals["succeeded"] == by_hand.count
    assert merged.percentile(99.0) == by_hand.percentile(99.0) == fleet["latency_us"]["p99"]
    assert sorted(row["name"] for row in fleet["hosts"]) == ["h1", "h2", "h3"]
