"""The shipped fleet playbook and the commands around it, without any host: ansible's own
syntax check, `fleet playbook`, `fleet run`'s refusals before Ansible runs, `merge` of
runs made here, and crafted fleet members refused in one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from portstorm.engine.fleetrun import playbook_text
from tests.support.cli import invoke
from tests.support.require import require

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def test_the_shipped_playbook_passes_ansible_syntax_check(tmp_path: Path) -> None:
    found = (
        str(ANSIBLE_PLAYBOOK) if ANSIBLE_PLAYBOOK.is_file() else shutil.which("ansible-playbook")
    )
    require(found is not None, "ansible-core is not installed (pip install -e '.[test]')")
    assert found is not None
    book = tmp_path / "fleet.yml"
    book.write_text(playbook_text())
    (tmp_path / "inventory.ini").write_text("h1 ansible_host=198.18.1.11\n")
    proc = subprocess.run(
        [found, "--syntax-check", "-i", str(tmp_path / "inventory.ini"), str(book)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ANSIBLE_HOME": str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_fleet_playbook_prints_the_shipped_playbook(capsys: pytest.CaptureFixture[str]) -> None:
    from portstorm import cli

    with pytest.raises(SystemExit) as e:
        cli.main(["fleet", "playbook"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out == playbook_text()
    assert "portstorm_start_at" in out and "async:" in out and "ansible.builtin.fetch" in out


def test_the_common_start_is_chosen_once_after_every_host_is_installed() -> None:
    # a first pip install with its dependencies took 45-50 s here: an instant chosen
    # before it (fleet run's --lead 30) was already past when the run task began
    import yaml  # type: ignore[import-untyped]  # ansible-core's own dependency

    (play,) = yaml.safe_load(playbook_text())
    assert play.get("strategy", "linear") == "linear"  # a task ends on every host first
    names = [t["name"] for t in play["tasks"]]
    install = max(k for k, n in enumerate(names) if n.startswith(("Install", "Push")))
    choose = next(k for k, n in enumerate(names) if n.startswith("Choose the common start"))
    run = next(k for k, n in enumerate(names) if n.startswith("Run on every host"))
    assert install < choose < run
    assert play["tasks"][choose].get("run_once") is True
    assert "portstorm_lead" in str(play["tasks"][choose])
    assert "'--start-at', portstorm_start |" in str(play["tasks"][run])
    # the wheel goes into a folder made fresh for it, never a fixed name in /tmp that
    # another user could have made first (copy would fill it and pip build it, as root)
    (push,) = [t for t in play["tasks"] if t["name"].startswith("Push the wheel")]
    assert push["ansible.builtin.copy"]["dest"].startswith("{{ portstorm_wheel_dir.path }}/")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--", "--start-at", "2100-01-01T00:00:00Z"], "--start-at is set by fleet run"),
        (["--", "--out", "x"], "--out is set by fleet run"),
        (["--", "--bogus"], "No such option: --bogus"),
        (["--install", "wheel", "--"], "--wheel FILE goes with --install wheel"),
        (["--lead", "0", "--"], "--lead '0': allowed 1-3600"),
    ],
)
def test_fleet_run_refuses_bad_options_before_ansible_runs(
    tmp_path: Path, args: list[str], fragment: str
) -> None:
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("h1\n")
    code, err = invoke(["fleet", "run", "-i", str(inventory), "--out", str(tmp_path / "f"), *args])
    assert code == 2, err
    assert fragment in err and len(err.strip().splitlines()) == 1, err


def test_a_start_already_past_is_refused_with_exit_2_before_anything_is_prepared(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    code, err = invoke(["run", "--start-at", "2026-01-01T00:00:00Z", "--out", str(out)])
    assert code == 2, err
    assert "--start-at 2026-01-01T00:00:00.000Z is already past" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_merge_of_a_crafted_member_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "h1").mkdir()
    (tmp_path / "h1" / "result.json").write_text('{"format": "portstorm.run/1", "host": []}')
    code, err = invoke(["merge", str(tmp_path), "--out", str(tmp_path / "out"), "--no-report"])
    assert code == 2, err
    assert "h1/result.json" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
