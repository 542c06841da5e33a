"""The one small exception hierarchy portstorm raises on purpose.

Each error maps to an exit code of DESIGN.md; only the CLI turns them into exits. A message
names the offending value, what is allowed, and (where useful) what to do, on one line.
"""

from __future__ import annotations


class PortstormError(Exception):
    """Base class: something the user must hear about in one line."""

    exit_code = 1


class UsageError(PortstormError):
    """Bad usage or bad input (exit 2)."""

    exit_code = 2


class EnvironmentProblem(PortstormError):
    """The environment cannot do it: no privilege, unresolvable target, limits (exit 3)."""

    exit_code = 3
