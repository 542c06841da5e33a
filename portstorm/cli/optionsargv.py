"""``portstorm run`` arguments <-> ``RunOptions`` (options.py), through the same Typer
declaration ``run`` itself parses with: what ``sweep`` (each cell's command line, checked
before any runs and recorded in sweep.json) and ``fleet run`` (the options it passes on)
use. Containing no option and no command.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Sequence
from typing import Any

import typer
import typer.core

from portstorm.cli.options import RunOptions, with_run_options
from portstorm.cli.parsers import click_message, typed
from portstorm.core.errors import UsageError


@functools.cache
def _parser() -> typer.core.TyperCommand:
    """A command of the run options alone; invoking it returns the RunOptions."""
    holder = typer.Typer(add_completion=False)

    @holder.command("run")
    @with_run_options
    def _options(options: RunOptions) -> Any:
        return options

    command = typer.main.get_command(holder)
    assert isinstance(command, typer.core.TyperCommand)  # one command: no group around it
    return command


def options_from_argv(argv: Sequence[str]) -> tuple[RunOptions, frozenset[str]]:
    """``portstorm run`` arguments -> (the options, the names of those given on the command
    line), or one UsageError naming the problem."""
    cmd = _parser()
    try:
        with cmd.make_context("portstorm run", list(argv)) as ctx:
            options = cmd.invoke(ctx)
    except typer.TyperException as e:
        raise UsageError(click_message(e).strip().replace("\n", " ")) from None
    given = frozenset(name for name in ctx.params if typed(ctx, name))
    assert isinstance(options, RunOptions)
    return options, given


def _text(value: object) -> str:
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # 10, as typed, rather than 10.0
    return str(value)


def to_argv(options: RunOptions) -> list[str]:
    """The options -> the shortest ``portstorm run`` arguments that give them back."""
    params = {p.name: p for p in _parser().params}
    argv: list[str] = []
    positional: list[str] = []
    for f in dataclasses.fields(RunOptions):
        value = getattr(options, f.name)
        p = params[f.name]
        if p.param_type_name == "argument":
            positional += [_text(v) for v in value or ()]
            continue
        if value == f.default or value is None or value == [] or value == ():
            continue
        flag = max(p.opts, key=len)
        if isinstance(value, bool):
            argv.append(flag if value else (p.secondary_opts or [flag])[0])
        elif isinstance(value, list | tuple):
            for v in value:
                argv += [flag, _text(v)]
        else:
            argv += [flag, _text(value)]
    return argv + positional
