"""Running the command line as a user does: a child process, its output, its exit code; and
the same in this process (``in_process``) for the tables of refusals, each a fifth of a CPU
second less than a child, with every command's action replaced so nothing can run."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys

from pytest import MonkeyPatch


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


# What each command does once its input is accepted: replaced by ``reached`` in
# ``in_process``, so a case that is not refused fails (exit None) instead of running a load
# in the test process (a pair sandbox would unshare it)
ACTIONS = (
    "portstorm.cli.runcmd.run_command",
    "portstorm.cli.sweepcmd.SweepRunner",
    "portstorm.cli.comparecmd.compare_paths",
    "portstorm.engine.watchread.WatchReader",
)


def in_process(monkeypatch: MonkeyPatch, *args: str) -> subprocess.CompletedProcess[str]:
    """``portstorm ARGS`` run by ``main()`` in this process, as ``portstorm()`` returns a
    child's (exit code None: it got past every check). For refusals only: what a real
    process adds (the interpreter's own traceback printing, signals) is shown by one case
    of each table still run as a child."""
    from portstorm import cli

    for target in ACTIONS:
        monkeypatch.setattr(target, reached)
    err, out = io.StringIO(), io.StringIO()
    code: int | None
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            cli.main(list(args))
        except Reached:
            code = None
        except SystemExit as e:
            code = int(e.code or 0)
        else:
            raise AssertionError("main() returned without exiting")
    return subprocess.CompletedProcess(["portstorm", *args], code, out.getvalue(), err.getvalue())  # type: ignore[arg-type]
