"""Text from files and arguments as the terminal gets it: plain rich ``Text``, never markup.

Containing the small helpers the summary (summary.py) and the other tables (console.py)
share, and nothing that prints. Hostnames, tunings, labels, target names and paths come
from result.json files and command lines: their control characters are escaped
(core.text.one_line) and their rich markup is shown as typed, never interpreted
(tests/cli/test_terminal_escapes.py).
"""

from __future__ import annotations

import textwrap
from typing import Any

from rich.table import Table
from rich.text import Text

from portstorm.core.text import one_line
from portstorm.core.words import fmt_us


def listed(items: list[str], shown: int = 3) -> str:
    """At most ``shown`` items, then how many more: 51,200 destinations fit on one line."""
    if len(items) <= shown + 1:
        return ", ".join(items)
    return ", ".join(items[:shown]) + f" and {len(items) - shown:,} more"


def us(v: int | float | None) -> str:
    """A latency in microseconds, as the report writes it (core.words.fmt_us)."""
    return "-" if v is None else fmt_us(float(v))


def plain(text: str, split_lines: bool = False, style: str = "") -> Text:
    """``text`` as rich Text: escaped, and not parsed for markup. ``split_lines``: the
    line breaks are the caller's own layout, and only the text between them is escaped."""
    if split_lines:
        return Text("\n".join(one_line(line) for line in text.split("\n")), style=style)
    return Text(one_line(text), style=style)


def wrapped(text: str, width: int, bullet: str = "- ", style: str = "") -> Text:
    """One escaped paragraph wrapped to ``width`` columns under a hanging ``bullet``: the
    text is escaped before it is wrapped, so an escape (``\\x1b``) counts at the width it
    prints at. Wrapping here rather than by rich keeps the indent of the bullet."""
    indent = " " * len(bullet)
    lines = textwrap.wrap(
        one_line(text),
        width=max(20, width),
        initial_indent=bullet,
        subsequent_indent=indent,
        break_on_hyphens=False,
    )
    return Text("\n".join(lines), style=style)


class PlainTable(Table):
    """A table whose string cells are plain text (``plain``), so that no value from a file
    reaches the terminal as an escape code or as markup."""

    split_lines = False

    def add_row(self, *renderables: Any, style: Any = None, end_section: bool = False) -> None:
        cells = [plain(r, self.split_lines) if isinstance(r, str) else r for r in renderables]
        super().add_row(*cells, style=style, end_section=end_section)


class PlainLinesTable(PlainTable):
    split_lines = True
