"""The man page is the help texts: the shipped portstorm.1 is what they generate today, it
names every command and option, renders without roff warnings, and is installed with the
package. Shell completion (Typer's) completes commands, options and choices.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Annotated

import typer
import typer.main

from portstorm.cli import manpage
from portstorm.cli.app import app
from tests.support.require import require

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "portstorm" / "cli" / manpage.MAN_FILE
REGENERATE = f"{Path(sys.executable).name} -m portstorm.cli.manpage > portstorm/cli/portstorm.1"


def test_the_shipped_man_page_matches_the_current_help_texts() -> None:
    assert SHIPPED.read_text() == manpage.render(), (
        f"portstorm/cli/portstorm.1 is stale: a help text changed. Regenerate it: {REGENERATE}"
    )


def _visible_options() -> list[tuple[str, str]]:
    """(command, --option) for every option --help shows."""
    root = typer.main.get_command(app)
    found = []
    commands = [("", root), *root.commands.items()]  # type: ignore[attr-defined]
    for name, cmd in list(commands):
        commands += [(f"{name} {s}", c) for s, c in getattr(cmd, "commands", {}).items()]
    for name, cmd in commands:
        if cmd.hidden:
            continue
        for p in cmd.params:
            if not getattr(p, "hidden", False):
                found += [(name, o) for o in p.opts if o.startswith("--")]
    return found


def test_the_man_page_names_every_command_and_every_visible_option() -> None:
    page = manpage.render()
    root = typer.main.get_command(app)
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        assert (f'.SS "portstorm {name} ' in page) is not cmd.hidden, name
        for sub in getattr(cmd, "commands", {}):  # a group's own commands, by full name
            assert f'.SS "portstorm {name} {sub} ' in page, (name, sub)
    options = _visible_options()
    assert len(options) > 30  # the run options alone: not an empty OPTIONS section
    terms = [line for line in page.splitlines() if line.startswith("\\fB")]  # .TP terms
    for command, option in options:  # "\fB\-\-out" or, after a short alias, "\fB\-i, \-\-inventory"
        assert any(
            t.startswith(f"\\fB{manpage.escape(option)}") or f", {manpage.escape(option)}" in t
            for t in terms
        ), (command, option)
    assert "\\-\\-install\\-completion" in page


def test_a_hidden_option_stays_out_of_the_man_page() -> None:
    """portstorm has no hidden option today (its children read their jobs from stdin): an
    app with one shows the rule holds for the next."""
    probe = typer.Typer()

    @probe.command()
    def go(
        shown: Annotated[int, typer.Option("--shown-option")] = 0,
        secret: Annotated[int, typer.Option("--secret-option", hidden=True)] = 0,
    ) -> None:
        """Probe."""

    @probe.command()
    def other() -> None:
        """Another (two commands make a group)."""

    page = manpage.render(typer.main.get_command(probe))
    assert "\\fB\\-\\-shown\\-option" in page
    assert "secret" not in page


def test_help_text_cannot_become_roff_requests() -> None:
    assert manpage.escape(".TH x\n'br\nback\\slash -n µs") == (
        "\\&.TH x\n\\&'br\nback\\eslash \\-n \\[u00B5]s"
    )
    assert manpage.paragraphs("one\n  line\n\nnext\n") == ["one line", "next"]


def test_the_man_page_renders_without_warnings() -> None:
    require(
        shutil.which("groff") is not None, "groff is not installed (apt-get install groff-base)"
    )
    proc = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-z", str(SHIPPED)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    text = subprocess.run(
        ["groff", "-man", "-Tascii", "-P", "-cbou", str(SHIPPED)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--connect-timeout SECONDS" in text and "EXIT STATUS" in text, text[:2000]


def test_the_package_installs_the_man_page_to_share_man_man1() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shared = project["tool"]["hatch"]["build"]["targets"]["wheel"]["shared-data"]
    assert shared == {"portstorm/cli/portstorm.1": "share/man/man1/portstorm.1"}


def _complete(words: str, cword: int) -> list[str]:
    env = {
        **os.environ,
        "_PORTSTORM_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(cword),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "portstorm"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_completion_completes_commands_options_and_choices() -> None:
    assert _complete("portstorm ru", 1) == ["run"]
    assert "--connect-timeout" in _complete("portstorm run --conn", 2)
    assert _complete("portstorm run --close ", 3) == ["client", "server", "rst"]


def test_help_offers_completion_and_still_lists_the_commands() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "portstorm", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    for word in ("--install-completion", "--show-completion", "run", "sweep", "sink"):
        assert word in proc.stdout, proc.stdout
