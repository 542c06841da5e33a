"""Text bound for a terminal: values from files, paths and command lines made safe to print.

Containing one pure function and nothing that prints. A hostname, tuning value or path in a
result.json may hold line breaks, escape sequences (``\\e]0;title\\a`` retitles a terminal,
``\\e[2J`` clears it) or bidirectional overrides; printed raw, they would rewrite what the
user sees. Every such value goes through ``one_line`` before it reaches stdout or stderr
(errors, the summary, ``compare``, the ``report:`` lines). Rich markup in such values is a
matter for the printer: cli/console.py hands them to rich as plain ``Text``, never as markup.
"""

from __future__ import annotations


def one_line(text: object) -> str:
    """``text`` with every character that is not printable (controls, line breaks, format
    characters such as U+202E, lone surrogates from undecodable paths) shown as its Python
    escape (``\\x1b``, ``\\n``, ``\\u202e``), so that it stays on one line and cannot move
    the terminal's cursor or change its state."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in s)
