"""The names and versions of portstorm's file formats, and the check every reader makes.

Containing the format literals (each has its history in the module that writes it) and
``check_format``; no files. A format is ``portstorm.<kind>/<version>``: a reader takes its
own kind at its version or older, and refuses a newer one with "upgrade portstorm".
"""

from __future__ import annotations

from portstorm.core import fields
from portstorm.core.errors import UsageError

RUN = "portstorm.run/3"  # result.json (core/result.py)
INTERVALS = "portstorm.intervals/1"  # intervals.jsonl (core/intervallog.py)
SWEEP = "portstorm.sweep/1"  # sweep.json (core/sweep.py)
COMPARE = "portstorm.compare/1"  # ``portstorm compare --json`` (core/compare.py)


def check_format(fmt: object, expected: str = RUN, kind: str = "result") -> None:
    """``fmt`` must be ``expected``'s name at a version this portstorm reads (or older)."""
    exp_name, _, exp_ver = expected.partition("/")
    shown = fields.shown(fmt)  # short whatever it is: a crafted file may nest a list 1,000 deep
    if not isinstance(fmt, str) or "/" not in fmt:
        raise UsageError(f"not a portstorm {kind}: format is {shown}, expected {expected!r}")
    name, _, ver = fmt.partition("/")
    if name != exp_name or not ver.isdigit() or len(ver) > 9:
        raise UsageError(f"not a portstorm {kind}: format is {shown}, expected {expected!r}")
    if int(ver) > int(exp_ver):
        raise UsageError(
            f"{kind} format {shown} is newer than this portstorm reads (up to {expected!r}): "
            "upgrade portstorm"
        )
