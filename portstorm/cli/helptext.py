"""The help text as Typer builds it, tidied: paragraphs reflowed, no type beside a flag.

Containing only changes to the click command tree Typer made (app.main() applies them once,
before parsing); no option of its own and no output.
"""

from __future__ import annotations

from typing import Any


def tidied(command: Any) -> Any:
    """``command`` and its subcommands with each help paragraph on one line: Typer 0.29's
    rich help keeps a docstring's single line breaks past its first paragraph, so the text
    came out broken where the source was, then wrapped again at the terminal's width.

    And no ``<bool>`` beside a flag: Typer 0.29 shows each option's type where a metavar
    would go, so every flag (--quiet, --help) read ``--quiet  <bool>``; a flag takes no
    value, so that column stays empty for it (an empty metavar)."""
    if command.help:
        command.help = "\n\n".join(" ".join(p.split()) for p in command.help.split("\n\n"))
    for param in command.params:
        _no_type_shown(param)
    made = command.get_help_option  # --help is made on first use (click caches it)
    command.get_help_option = lambda ctx: _no_type_shown(made(ctx))
    for sub in getattr(command, "commands", {}).values():
        tidied(sub)
    return command


def _no_type_shown(param: Any) -> Any:
    if param is not None and getattr(param, "is_flag", False) and param.metavar is None:
        param.metavar = ""
    return param
