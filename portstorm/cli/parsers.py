"""The typed parsers Typer calls for portstorm's options, and click's errors as one line.

Containing value parsing only: each parser takes the text as typed and returns the value,
or raises one UsageError (or typer.BadParameter) naming the option and what is allowed. The
ranges themselves live in core/scenario.py. Commands are app.py; the run options options.py.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import typer

from portstorm.core.errors import PortstormError, UsageError
from portstorm.core.scenario import parse_number, parse_target


def number(option: str) -> Callable[[str | float], float]:
    """A parser for a number option of core/scenario.py's table (seconds, a rate)."""

    def parse(text: str | float) -> float:
        # click also passes the declared default through the parser: it is parsed already
        return float(text) if isinstance(text, float | int) else parse_number(option, text)

    parse.__name__ = option.lstrip("-").replace("-", "_")
    return parse


def whole(option: str) -> Callable[[str | int], int]:
    """A parser for a whole-number option of core/scenario.py's table (workers, ports)."""

    def parse(text: str | int) -> int:
        return text if isinstance(text, int) else int(parse_number(option, text))

    parse.__name__ = option.lstrip("-").replace("-", "_")
    return parse


def out_path(text: str) -> Path:
    """An output path as typed: an empty one would silently mean the current folder."""
    if not text.strip():
        raise typer.BadParameter("an empty path; name a folder or file (e.g. . for this folder)")
    return Path(text)


def listen_address(text: str) -> tuple[str, int]:
    """``sink --listen HOST:PORT``; port 0 (any free port) is allowed here, unlike a target."""
    raw = text.strip()
    if raw.startswith("[") and raw.endswith("]:0"):
        return raw[1:-3], 0
    if raw.endswith(":0") and "]" not in raw and raw.count(":") == 1:
        host = raw[:-2]
        parse_target(f"{host}:1")  # validates the host part
        return host, 0
    try:
        t = parse_target(raw)
    except PortstormError as e:
        raise UsageError(str(e).replace("target", "--listen", 1)) from None
    return t.host, t.port


class _Context(Protocol):  # click's Context, as typer vendors it (typer.Context is one)
    def get_parameter_source(self, name: str) -> object: ...


def typed(ctx: _Context, name: str) -> bool:
    """Whether the option ``name`` was given on the command line (not left at its default)."""
    return getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"


def click_message(e: typer.TyperException) -> str:
    """click's message, keeping its guess at a mistyped option only when the guess is close:
    its cutoff (difflib's 0.6, dashes included) suggested --out for --bogus."""
    name = getattr(e, "option_name", None)
    guesses = getattr(e, "possibilities", None)
    if not isinstance(name, str) or not guesses:
        # Typer 0.29 coerces through pydantic, whose "Value error, " came before Typer's
        # own words: "Invalid value for '--close': Value error, 'x' is not one of ..."
        return e.format_message().replace(": Value error, ", ": ", 1)
    close = difflib.get_close_matches(
        name.lstrip("-"), [g.lstrip("-") for g in guesses], n=3, cutoff=0.75
    )
    message = f"No such option: {name}"
    return f"{message} (did you mean {', '.join('--' + c for c in close)}?)" if close else message
