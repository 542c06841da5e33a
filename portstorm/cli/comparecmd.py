"""``portstorm compare`` end to end, and how --fail-if verdicts are shown and written (for
sweep too): saved results in, a table, JSON, a JUnit file and a report out.

Containing the order of operations only: what is read of each input is core/inputs.py
(without a report, a result.json's intervals only as the readings compare needs,
core/readings.py), the metrics core/compare.py, the verdicts core/subjectgates.py, printing
console.py. Nothing here imports trio or the engine: a compare of two long runs starts
without loading what runs a load.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from portstorm.core.compare import Subject, comparison
from portstorm.core.comparison import Comparison
from portstorm.core.errors import EXIT_OK, EXIT_THRESHOLD, UsageError
from portstorm.core.inputs import compared_subjects_of, subjects_of
from portstorm.core.readings import Compared
from portstorm.core.subjectgates import CaseVerdict
from portstorm.core.text import one_line
from portstorm.core.thresholds import Threshold


def gates_exit(verdicts: list[CaseVerdict]) -> int:
    """1 when a threshold failed (every file is written by now), else 0."""
    return EXIT_THRESHOLD if any(not v.verdict.passed for v in verdicts) else EXIT_OK


def show_verdicts(verdicts: list[CaseVerdict]) -> None:
    from rich.console import Console

    from portstorm.cli.summary import print_case_verdicts

    print_case_verdicts(verdicts, Console(highlight=False))


def write_verdicts(
    kind: str,
    verdicts: list[CaseVerdict],
    junit: Path,
    times: dict[tuple[str, str], float],
    to_stderr: bool = False,
) -> None:
    from portstorm.report import write_cases_junit

    path = write_cases_junit(kind, verdicts, junit, times)
    print(f"junit: {one_line(path)}", file=sys.stderr if to_stderr else sys.stdout)


def run_compare(
    paths: list[Path],
    gates: tuple[Threshold, ...],
    *,
    json_out: bool,
    html: Path | None,
    junit: Path | None,
) -> int:
    """``portstorm compare``: the table (or its JSON), the --fail-if verdicts on every row
    after the baseline, the JUnit file and the report; 1 when a threshold failed."""
    import json

    from portstorm.cli.console import print_compare
    from portstorm.core.subjectgates import compare_verdicts

    doc, subjects, whole = compare_paths(paths, report=html is not None)
    verdicts = compare_verdicts(gates, doc, subjects)
    if json_out:
        gated = {"thresholds": [{"case": v.case, **v.to_json()} for v in verdicts]}
        print(json.dumps(doc.to_json() | (gated if gates else {}), indent=1))
    else:
        print_compare(doc)
        show_verdicts(verdicts)
    if junit is not None:  # with --json, what is not JSON goes to stderr
        write_verdicts("compare", verdicts, junit, {}, to_stderr=json_out)
    if html is not None:
        from portstorm.report import write_many_report

        files = write_many_report(whole, html, "Comparison", inputs=paths, verdicts=verdicts)
        print(f"report: {one_line(files.html)}", file=sys.stderr if json_out else sys.stdout)
    return gates_exit(verdicts)


def compare_paths(
    paths: list[Path], *, report: bool
) -> tuple[Comparison, Sequence[Subject[Compared]], list[Subject]]:
    """The comparison, the subjects it was made from, and, for a ``report``, those subjects
    as whole runs (else none: without a report, a result.json's intervals are read only
    as the readings compare needs, core/readings.py)."""
    whole = subjects_of(paths) if report else []
    subjects: Sequence[Subject[Compared]] = whole if report else compared_subjects_of(paths)
    if len(subjects) < 2:
        raise UsageError(
            f"compare needs at least two things to compare; {', '.join(map(str, paths))} "
            f"gave {len(subjects)}"
        )
    return comparison(subjects), subjects, whole
