"""The declarations of the options that gate a run for CI: ``--fail-if`` and
``--stop-on-fail`` (run options, judged on the saved run by core/thresholds.py, early by
core/gatestop.py; a sweep passes them to each cell), compare's own ``--fail-if`` (with
``change(METRIC)``, core/subjectgates.py) and ``--junit`` (where the verdicts go as JUnit
XML, report/junit.py: on run, sweep and compare).

Containing Typer ``Annotated`` types only (``FailIf``, ``StopOnFail`` used by fields of
options.RunOptions), kept here so options.py stays one screenful per concept.
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
StopOnFail = Annotated[
    bool,
    typer.Option(
        "--stop-on-fail",
        help="End the run as soon as a --fail-if threshold has failed for certain, keeping "
        "what was measured (result.json complete false, the reason in its notes; exit 1). "
        "Only monotone metrics decide early: an outcome count, time_wait_peak or "
        "ports_in_use_peak with > >= or !=, and first_failure once one is seen.",
    ),
]
CompareFailIf = Annotated[
    list[str] | None,
    typer.Option(
        "--fail-if",
        metavar="EXPR",
        help="A threshold on every row after the baseline: a run metric as on 'portstorm run' "
        "(on the row's median over its repeats), or change(METRIC) OP VALUE% against the "
        "baseline's median (e.g. 'change(rate) < -5%', 'change(p99) > 20%'), which fails "
        "only on a change beyond the spread of repeats (*) and, when that cannot be judged "
        "(? single runs), fails saying so. Exit 1 when one fails. Repeatable. change() "
        "takes rate, after_exhaustion, first_failure, p50, p99, p999, failed_pct, "
        "time_wait_peak.",
        show_default=False,
    ),
]
Junit = Annotated[
    Path | None,
    typer.Option(
        "--junit",
        metavar="FILE",
        parser=out_path,
        help="Also write the --fail-if verdicts as JUnit XML (one testcase per threshold, "
        "per sweep cell or compared row and run or median), for a CI server's test report.",
    ),
]
