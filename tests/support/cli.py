"""Running the command line as a user does: a child process, its output, its exit code."""

from __future__ import annotations

import contextlib
import io
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


class Reached(Exception):
    """The command got past every check, as far as what a test replaced with ``reached``
    (drawing a report, running a sweep): nothing acts in these tests."""


def reached(*args: object, **kwargs: object) -> None:
    raise Reached


def invoke(argv: list[str]) -> tuple[int | None, str]:
    """``portstorm ARGV`` in this process: (its exit code, or None when it got as far as
    ``reached``; what it wrote on stderr)."""
    from portstorm import cli

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            cli.main(argv)
        except Reached:
            return None, err.getvalue()
        except SystemExit as e:
            return int(e.code or 0), err.getvalue()
    raise AssertionError("main() returned without exiting")
