"""The options of many hosts: ``run --start-at TIME``, declared here once.

Containing Typer declarations only (the value's parsing is core/startat.py's); ``run``
takes ``--start-at`` through options.py's RunOptions, ``fleet run`` chooses it itself.
"""

from __future__ import annotations

from typing import Annotated

import typer

StartAt = Annotated[
    str | None,
    typer.Option(
        metavar="TIME",
        help="Prepare the sandbox and sink, then begin the load at this instant (UTC "
        "ISO 8601, e.g. 2026-12-01T17:30:00Z, or epoch seconds), its intervals aligned "
        "to it: runs on many hosts cover the same seconds. Already past: exit 2; "
        "passed while preparing: exit 3.",
        show_default=False,
    ),
]


def start_at_s(text: str | None) -> float | None:
    """``--start-at`` as typed -> Unix seconds (None: start as soon as prepared)."""
    from portstorm.core.startat import parse_start_at

    return None if text is None else parse_start_at(text)
