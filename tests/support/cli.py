"""Running the command line as a user does: a child process, its output, its exit code."""

from __future__ import annotations

import subprocess
import sys


def portstorm(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portstorm", *args], capture_output=True, text=True, timeout=timeout
    )


def assert_one_line_error(
    proc: subprocess.CompletedProcess[str], code: int, *fragments: str
) -> None:
    err = proc.stderr.strip()
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(err.splitlines()) == 1, err
    for f in fragments:
        assert f in err, (f, err)
