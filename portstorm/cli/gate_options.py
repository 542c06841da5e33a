"""The declarations of the options that gate a run for CI: ``--fail-if`` (a run option,
judged on the saved run by core/thresholds.py) and ``--junit`` (run's own: where the
verdicts go as JUnit XML, cli/junit.py).

Containing Typer ``Annotated`` types only, each used once (``FailIf`` by a field of
options.RunOptions, ``Junit`` by ``run``), kept here so options.py stays one screenful per
concept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from portstorm.cli.parsers import out_path

FailIf = Annotated[
    list[str] | None,
    typer.Option(
        "--fail-if",
        metavar="EXPR",
        help="A threshold, METRIC OP VALUE (e.g. 'p99 > 5ms', 'port_exhausted > 0', "
        "'rate < 2000'): exit 1 when it holds, after every file is written. Repeatable. "
        "Metrics: p50 p90 p99 p999 max (connect latency, with a unit: us, ms, s), "
        "transaction_p50 ... transaction_max, rate, after_exhaustion (conn/s), "
        "first_failure (s, or never), failed_pct (%), each outcome by name (a count), "
        "time_wait_peak, ports_in_use_peak.",
        show_default=False,
    ),
]
Junit = Annotated[
    Path | None,
    typer.Option(
        "--junit",
        metavar="FILE",
        parser=out_path,
        help="Also write the --fail-if verdicts as JUnit XML (one testcase per threshold), "
        "for a CI server's test report.",
    ),
]
