"""Typer's coercion of each option's value, done directly where portstorm's own parser does it.

Containing one patch of Typer 0.29's internals (``typer.core.build_runtime_param``) and
nothing else; app.main() installs it once, before parsing.

Typer 0.29 coerces every option's value through a pydantic TypeAdapter built for it, so the
first option that has a value imports pydantic (~0.15 s of CPU here) and builds adapters.
portstorm's options parse themselves (cli/parsers.py: one-line errors naming the option), so
for them the adapter only wraps a call to that parser. Measured side by side, 15 runs each,
the process's CPU: ``portstorm run --rate x`` (refused) 463 -> 302 ms, a 0.3 s pair run
1,630 -> 1,451 ms (medians; the machine loaded). The test suite starts a thousand such
processes.

What is done here, for a value Typer hands over (never None, which Typer handles itself):
- an option with a parser: the parser's result (a list option: each item's), as the
  adapter gives it; a ValueError or AssertionError from the parser goes to Typer's own
  coercion instead, which turns it into its message as before;
- a plain ``str`` option given a str, and an Enum option given a member or a member's exact
  value: that value or member, as the adapter gives it; any other spelling of a choice is
  refused with Typer's words ("'RST' is not one of 'client', 'server', 'rst'."), without
  the "Value error, " pydantic put before them.
Anything else (a Path with checks, files, tuples, a case-insensitive choice)
goes to Typer's own coercion unchanged, built only then. A Typer without these internals is
left as it is: the same values, only slower.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, get_args, get_origin

from typer import BadParameter

_UNSET = object()  # not coerced here: Typer's own coercion decides


def install() -> bool:
    """Route Typer's coercion through ``_Direct``; whether it could be installed."""
    try:
        import typer._coercion as coercion
        import typer.core

        core: Any = typer.core  # build_runtime_param is not exported (mypy)

        build = coercion.build_runtime_param
        base = coercion.RuntimeParam
        descriptor_type = coercion.TypeDescriptor
        if core.build_runtime_param is not build:  # installed already
            return True
    except (ImportError, AttributeError):
        return False

    @dataclass(frozen=True)
    class _Direct(base):  # type: ignore[misc, valid-type]
        descriptor: descriptor_type  # type: ignore[valid-type]

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            got = _coerced(self.annotation, self.parameter_info, value)
            if got is not _UNSET:
                return got
            return build(self.descriptor)._coerce_value(value, param=param, ctx=ctx)

    def direct(descriptor: Any) -> Any:
        if descriptor.file_annotation is not None:
            return build(descriptor)
        return _Direct(descriptor.parameter_info, descriptor.annotation, descriptor)

    core.build_runtime_param = direct
    return True


def _coerced(annotation: Any, info: Any, value: Any) -> Any:
    if get_origin(annotation) is list:
        if not isinstance(value, list | tuple):
            return _UNSET
        (item,) = get_args(annotation)
        out = [_leaf(item, info, v) for v in value]
        return _UNSET if any(v is _UNSET for v in out) else out
    if get_origin(annotation) is not None:
        return _UNSET  # tuples, unions: Typer's
    return _leaf(annotation, info, value)


def _leaf(annotation: Any, info: Any, value: Any) -> Any:
    parser = getattr(info, "parser", None)
    if parser is not None:
        try:
            return parser(value)
        except (ValueError, AssertionError):  # pydantic would have wrapped these: Typer's
            return _UNSET
    if getattr(info, "click_type", None) is not None:
        return _UNSET
    if annotation is str and type(value) is str:
        return value
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        if isinstance(value, annotation):
            return value
        if type(value) is str and getattr(info, "case_sensitive", True):
            for member in annotation:
                if member.value == value:
                    return member
            # Typer's message without pydantic's "Value error, " before it
            allowed = ", ".join(repr(m.value) for m in annotation)
            raise BadParameter(f"{value!r} is not one of {allowed}.")
    return _UNSET
