"""The run options, declared once (portstorm/cli/options.py): each one reaches the Scenario,
``run`` takes exactly them, and a sweep's command lines give back the options they came from.

An option added to ``RunOptions`` but never read by ``to_scenario`` fails here (the hole a
``**_ignored`` parameter used to leave open, in run and in every sweep cell).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from portstorm import cli
from portstorm.cli.options import WIRING_EXAMPLES, RunOptions
from portstorm.cli.optionsargv import options_from_argv, to_argv
from portstorm.core.errors import UsageError
from portstorm.core.scenario import Scenario
from tests.support.cli import invoke, reached
from tests.support.sweeps import sweep_folder

FIELDS = {f.name: f for f in dataclasses.fields(RunOptions)}
RUN_OWN = ["out", "quiet", "no_report", "force", "junit"]  # where the result goes, not what runs


def _scenario_or_refusal(options: RunOptions) -> Scenario | str:
    try:
        return options.to_scenario()
    except UsageError as e:
        return f"refused: {e}"


def test_every_run_option_has_a_wiring_example() -> None:
    assert set(WIRING_EXAMPLES) == set(FIELDS)


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_every_run_option_changes_the_scenario(name: str) -> None:
    example = WIRING_EXAMPLES.get(name)
    assert example is not None, f"add {name} to WIRING_EXAMPLES in portstorm/cli/options.py"
    options, given = options_from_argv(example)
    assert name in given
    assert getattr(options, name) != FIELDS[name].default
    default: Any = FIELDS[name].default
    at_default = dataclasses.replace(options, **{name: default})
    assert _scenario_or_refusal(options) != _scenario_or_refusal(at_default), (
        f"--{name.rstrip('_').replace('_', '-')} does not reach the Scenario: wire it in "
        "RunOptions.to_scenario"
    )


def test_run_takes_the_run_options_and_its_own_only() -> None:
    run = typer.main.get_command(cli.app).commands["run"]  # type: ignore[attr-defined]
    assert [p.name for p in run.params] == [*FIELDS, *RUN_OWN]


@pytest.mark.parametrize("name", sorted(WIRING_EXAMPLES))
def test_a_command_line_is_written_back_as_typed(name: str) -> None:
    options, _ = options_from_argv(WIRING_EXAMPLES[name])
    assert to_argv(options) == list(WIRING_EXAMPLES[name])
    assert options_from_argv(to_argv(options))[0] == options


def test_whole_numbers_are_written_without_a_fraction() -> None:
    options, _ = options_from_argv(["--duration", "10", "--rate", "1e3", "--interval", "0.25"])
    assert to_argv(options) == ["--rate", "1000", "--interval", "0.25"]  # 10 s is the default


def test_a_bad_value_is_refused_by_its_parser_naming_the_option() -> None:
    with pytest.raises(UsageError, match="--duration 'soon' is not valid"):
        options_from_argv(["--duration", "soon"])
    with pytest.raises(UsageError, match="--workers 0 is out of range"):
        options_from_argv(["--workers", "0"])


# -- sweep --resume and --repeat ------------------------------------------------------------


@pytest.fixture()
def _no_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr("portstorm.cli.sweepcmd.SweepRunner", reached)
    yield


@pytest.mark.usefixtures("_no_runs")
def test_resume_with_another_repeat_is_refused_naming_both(tmp_path: Path) -> None:
    sweep_folder(tmp_path, done=False)  # planned with --repeat 1
    code, err = invoke(["sweep", "--resume", "--repeat", "3", "--out", str(tmp_path)])
    assert code == 2
    assert "planned with --repeat 1, not 3" in err
    assert "Traceback" not in err


@pytest.mark.usefixtures("_no_runs")
def test_resume_with_the_planned_repeat_finishes_the_sweep(tmp_path: Path) -> None:
    sweep_folder(tmp_path, done=False)
    assert invoke(["sweep", "--resume", "--repeat", "1", "--out", str(tmp_path)])[0] is None
    assert invoke(["sweep", "--resume", "--out", str(tmp_path)])[0] is None
