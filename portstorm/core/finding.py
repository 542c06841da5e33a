"""One finding: a computed sentence about a saved run, with what kind it is and how loud.

Containing the value only, so that every module of rules (findings.py, gaps.py,
comparefindings.py) and every reader (the terminal summary, the report) share one type
without importing each other's rules. findings.py re-exports it under its old name.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # exhaustion, no-failure, failures, reuse, fin-timeout, knee, rst-ended, ...
    text: str
    level: str = "info"  # headline | info | warn
