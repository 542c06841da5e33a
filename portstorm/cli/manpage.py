"""The man page, portstorm(1), built from the commands' own help texts.

Containing the walk over the command tree that Typer builds (the same click objects that
print ``--help``) and the roff it becomes; nothing here is written by hand but the section
names, so the page says what ``--help`` says. The page is shipped as portstorm/cli/
portstorm.1 and installed to share/man/man1 (pyproject.toml, hatch ``shared-data``);
tests/cli/test_man_page.py regenerates it and compares, so it cannot go stale. After a
change to a command or an option's help::

    .venv/bin/python -m portstorm.cli.manpage > portstorm/cli/portstorm.1

Why not click-man: its generator keeps only parameters that are instances of click's own
``click.Option``, and Typer (0.29) builds its commands from a copy of click it carries
(``typer._click``), so every OPTIONS section came out empty; its roff writer also passes
text through unescaped, where a help line that starts with ``'`` or ``.`` is a roff request.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from portstorm import __version__
from portstorm.core.errors import (
    EXIT_ENVIRONMENT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_THRESHOLD,
    EXIT_USAGE,
)

NAME = "portstorm"
MAN_FILE = "portstorm.1"  # beside this module; installed as share/man/man1/portstorm.1

# the exit codes of DESIGN.md (core/errors.py), which no help text carries
EXIT_STATUS = (
    (EXIT_OK, "The command completed. Connection failures are data, not errors."),
    (
        EXIT_THRESHOLD,
        "The run completed, every file is written, and a --fail-if threshold failed.",
    ),
    (EXIT_USAGE, "Bad usage or bad input: refused before anything ran."),
    (
        EXIT_ENVIRONMENT,
        "The environment cannot do it: no privilege for a namespace, a target that does "
        "not resolve, a worker that died.",
    ),
    (EXIT_INTERRUPTED, "Interrupted (Ctrl-C or SIGTERM); a run's partial result is saved."),
)


def escape(text: str) -> str:
    """``text`` as roff prints it literally: a backslash is ``\\e``, a hyphen ``\\-`` (so
    options copied from the page are typed as ASCII), a character beyond ASCII its named
    glyph, and a line that would start with ``.`` or ``'`` (a roff request) is guarded."""
    out = []
    for c in text:
        if c == "\\":
            out.append("\\e")
        elif c == "-":
            out.append("\\-")
        elif ord(c) > 127:
            out.append(f"\\[u{ord(c):04X}]")
        else:
            out.append(c)
    lines = "".join(out).split("\n")
    return "\n".join("\\&" + ln if ln.startswith((".", "'")) else ln for ln in lines)


def paragraphs(text: str | None) -> list[str]:
    """A docstring's paragraphs, each on one line: roff fills them to the reader's width
    (the line breaks of a docstring are its source's, not the page's)."""
    if not text:
        return []
    blocks = [" ".join(line.strip() for line in b.strip().splitlines()) for b in text.split("\n\n")]
    return [b for b in blocks if b]


def _prose(text: str | None) -> list[str]:
    out: list[str] = []
    for k, p in enumerate(paragraphs(text)):
        if k:
            out.append(".PP")
        out.append(escape(p))
    return out


def _quoted(text: str) -> str:
    """``text`` as one quoted argument of a roff macro (``.SS "..."``)."""
    return '"' + escape(text).replace('"', "\\(dq") + '"'


def _item(term: str, help_text: str) -> list[str]:
    """One option or argument: its switches in bold (``-o, --out``, ``--quiet / --no-quiet``),
    its metavar in italics, then its help."""
    # Typer adds an argument's Python type to its help record (``PATH... <list[Path]>``):
    # a reader types paths, not lists
    words = [w for w in term.split() if not (w.startswith("<list[") and w.endswith("]>"))]
    last = max((k for k, w in enumerate(words) if w.startswith("-") or w == "/"), default=-1)
    names, meta = " ".join(words[: last + 1]), " ".join(words[last + 1 :])
    head = " ".join(
        part
        for part in (
            f"\\fB{escape(names)}\\fR" if names else "",
            f"\\fI{escape(meta)}\\fR" if meta else "",
        )
        if part
    )
    return [".TP", head, *(_prose(help_text) or [""])]


def _params(cmd: Any, ctx: Any) -> Iterator[tuple[str, str]]:
    """(switches and metavar, help) of each visible parameter, as ``--help`` shows them."""
    for p in cmd.params:
        if getattr(p, "hidden", False):
            continue
        record = p.get_help_record(ctx)
        if record is not None:
            yield record[0], record[1]


def _first_line(text: str | None) -> str:
    ps = paragraphs(text)
    return ps[0] if ps else ""


def _commands(group: Any, ctx: Any, prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(name as typed, command, its context) of each visible command, a group's own
    commands after it under their full names (``fleet``, ``fleet playbook``, ``fleet run``)."""
    for name, cmd in group.commands.items():
        if cmd.hidden:
            continue
        sub = cmd.make_context(name, [], parent=ctx, resilient_parsing=True)
        yield f"{prefix}{name}", cmd, sub
        if hasattr(cmd, "commands"):  # a group: typer.add_typer()
            yield from _commands(cmd, sub, f"{prefix}{name} ")


def render(root: Any = None) -> str:
    """The page for ``root`` (default: the portstorm command), as roff source."""
    if root is None:
        import typer.main

        from portstorm.cli.app import app

        root = typer.main.get_command(app)
    ctx = root.make_context(NAME, [], resilient_parsing=True)
    commands = list(_commands(root, ctx))
    lines = [
        f'.TH PORTSTORM 1 "" "{NAME} {escape(__version__)}" "User Commands"',
        ".SH NAME",
        f"{NAME} \\- {escape(_first_line(root.help))}",
        ".SH SYNOPSIS",
    ]
    for k, (name, cmd, sub) in enumerate([("", root, ctx), *commands]):
        usage = " ".join(cmd.collect_usage_pieces(sub))
        lines += [".br"] if k else []
        lines.append(f"\\fB{NAME}{' ' + name if name else ''}\\fR {escape(usage)}")
    lines += [".SH DESCRIPTION", *_prose(root.help)]
    lines += [".SH OPTIONS"]
    for term, help_text in _params(root, ctx):
        lines += _item(term, help_text)
    lines += [".SH COMMANDS"]
    for name, cmd, sub in commands:
        usage = " ".join(cmd.collect_usage_pieces(sub))
        lines += [f".SS {_quoted(f'{NAME} {name} {usage}')}", *_prose(cmd.help)]
        for term, help_text in _params(cmd, sub):
            lines += _item(term, help_text)
    lines += [".SH EXIT STATUS"]
    for code, what in EXIT_STATUS:
        lines += [".TP", f"\\fB{code}\\fR", escape(what)]
    lines += [
        ".SH SEE ALSO",
        f"\\fB{NAME} \\fICOMMAND\\fB \\-\\-help\\fR; shell completion: "
        f"\\fB{NAME} \\-\\-install\\-completion\\fR.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m portstorm.cli.manpage > portstorm/cli/portstorm.1
    sys.stdout.write(render())
