"""The default output folder: ``reports/<UTC timestamp>-<name>`` (DESIGN.md), named here only.

Containing the folder's name and nothing else: no file is opened or made here (core/files.py
opens folders; the engine picks a free suffix when a second run falls in the same second).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

DEFAULT_ROOT = Path("reports")


def default_out_dir(name: str, now: dt.datetime | None = None) -> Path:
    """``reports/20250102T030405Z-<name>``: the time in UTC to the second, then what made it
    (``run``, ``sweep-tw-reuse``, ``compare``)."""
    when = now if now is not None else dt.datetime.now(dt.UTC)
    return DEFAULT_ROOT / f"{when.strftime('%Y%m%dT%H%M%SZ')}-{name}"
