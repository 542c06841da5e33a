"""``portstorm compare`` loads neither trio nor the engine's load path nor matplotlib: a
compare of two long runs is reading and arithmetic, and its start-up should not pay for
what runs a load (cli/comparecmd.py)."""

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "reports/examples/run-port-exhaustion/result.json"

_PROBE = """
import contextlib, io, sys
from portstorm.cli.app import main
sys.argv = ["portstorm", "compare", sys.argv[1], sys.argv[1], "--json"]
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        main()
    except SystemExit as e:
        code = e.code
    else:
        code = 0
loaded = sorted(n for n in sys.modules
                if n.split(".")[0] in ("trio", "matplotlib")
                or n in ("portstorm.engine.flows", "portstorm.engine.sweep"))
print(code, 'portstorm.compare/1' in out.getvalue(), ",".join(loaded))
"""


def test_compare_of_two_results_loads_neither_trio_nor_the_engine() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(EXAMPLE)], capture_output=True, text=True, check=True
    )
    code, printed, *loaded = out.stdout.split()
    assert (code, printed) == ("0", "True"), out.stdout + out.stderr
    assert loaded == [], f"compare loaded {loaded[0]}"
