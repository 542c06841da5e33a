"""The one small exception hierarchy portstorm raises on purpose.

Each error maps to an exit code of DESIGN.md; only the CLI turns them into exits. A message
names the offending value, what is allowed, and (where useful) what to do, on one line.
"""

from __future__ import annotations

# The exit codes of DESIGN.md, in one place: the CLI exits with them and the engine reads a
# child's exit status with them.
EXIT_OK = 0
EXIT_THRESHOLD = 1  # the run completed and a --fail-if threshold failed (core/thresholds.py)
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention for "stopped by Ctrl-C"


class PortstormError(Exception):
    """Base class: something the user must hear about in one line."""

    exit_code = 1


class UsageError(PortstormError):
    """Bad usage or bad input (exit 2)."""

    exit_code = EXIT_USAGE


class EnvironmentProblem(PortstormError):
    """The environment cannot do it: no privilege, unresolvable target, limits (exit 3)."""

    exit_code = EXIT_ENVIRONMENT
