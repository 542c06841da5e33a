"""The one skip-or-fail helper: a test whose prerequisite is missing (root or a user namespace,
Debian's chromium, nginx) is skipped with the reason, except under CI (CI=true), where the
missing prerequisite is a failure: CI must not skip these silently."""

from __future__ import annotations

import os

import pytest


def require(condition: bool, reason: str) -> None:
    """Skip (or, under CI, fail) when a prerequisite is missing."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run this test, but: {reason}")
    pytest.skip(reason)
