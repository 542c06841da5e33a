"""Debian's nginx for the tests against a real server: where it is, or skip (under CI, fail)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.require import require


def require_nginx() -> str:
    """The nginx binary; skips the test without it, except under CI (CI=true): fails there."""
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    require(nginx is not None, "nginx is not installed (Debian package nginx; .ci/run installs it)")
    assert nginx is not None
    return nginx
