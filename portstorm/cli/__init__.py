"""The command line (``portstorm``, ``python -m portstorm``): Typer commands over the engine.

Re-exports only. app.py holds the commands and the error -> exit code mapping, options.py
the run options declared once, sweepcmd.py and sweepplan.py the sweep, comparecmd.py the
compare and how --fail-if verdicts are shown, console.py what the terminal shows.
"""

from portstorm.cli.app import app, main

__all__ = ["app", "main"]
