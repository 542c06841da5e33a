"""What a command loads is what it uses: ``compare`` is reading and arithmetic, so it loads
neither trio nor the engine's load path nor matplotlib (cli/comparecmd.py); a run refused
before its load, or one that writes no report, does not load matplotlib (report/ imports
it only to draw). Each is a process's start-up paid again by every run and every test."""

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "reports/examples/run-port-exhaustion/result.json"

_PROBE = """
import contextlib, io, sys
from portstorm.cli.app import main
sys.argv = ["portstorm", *sys.argv[1:]]
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
        main()
    except SystemExit as e:
        code = e.code
    else:
        code = 0
loaded = sorted(n for n in sys.modules
                if n.split(".")[0] in ("trio", "matplotlib")
                or n in ("portstorm.engine.flows", "portstorm.engine.sweep"))
print(code, repr(out.getvalue() + err.getvalue()))
print(" ".join(n for n in loaded if "." not in n or n.startswith("portstorm")))
"""


def _probe(*argv: str) -> tuple[int, str, list[str]]:
    """(exit code, what it printed, the watched modules it loaded) of ``portstorm ARGV``."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, check=True
    )
    first, loaded = out.stdout.splitlines()
    code, printed = first.split(" ", 1)
    return int(code), printed, loaded.split()


def test_compare_of_two_results_loads_neither_trio_nor_the_engine() -> None:
    code, printed, loaded = _probe("compare", str(EXAMPLE), str(EXAMPLE), "--json")
    assert code == 0 and "portstorm.compare/1" in printed, printed
    assert loaded == [], f"compare loaded {loaded}"


def test_a_run_refused_for_its_out_path_does_not_load_matplotlib(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    code, printed, loaded = _probe("run", "--duration", "1", "--out", str(tmp_path / "file"))
    assert code == 2 and "not a folder" in printed, printed
    assert "matplotlib" not in loaded, loaded


def test_the_built_in_sink_child_starts_without_trio_or_the_result_format() -> None:
    """The sink's child is one epoll loop over raw fds (engine/sink_loop.py): trio and
    core/result.py were 0.17 of its 0.30 CPU seconds of start-up, paid before every run's
    first connection; processes.py and sysinfo.py import them only where they are used."""
    probe = (
        "import sys, portstorm.engine.sink_main\n"
        "print(' '.join(sorted(n for n in sys.modules if n.split('.')[0] == 'trio'"
        " or n in ('portstorm.core.result', 'matplotlib'))))"
    )
    out = subprocess.run(
        [sys.executable, "-P", "-c", probe], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == [], out.stdout
