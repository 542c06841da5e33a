"""The ``--fail-if`` verdicts as JUnit XML, for a CI server's test report.

Containing the mapping of verdicts to JUnit and its writing through core/files.py; nothing
that judges (core/thresholds.py, core/subjectgates.py do). A run is one testsuite with one
testcase per threshold; a sweep or comparison is one testsuite per case (a sweep cell, a
compared row), one testcase per threshold per run or median, its classname naming the case.
A failed threshold is a ``failure`` whose message carries what was measured (and why, for a
change that cannot be judged).
The XML is built with junitparser, as GitLab, GitHub's test reporters and Jenkins read it,
serialized to bytes here and written by the one writer: junitparser's own ``write`` opens
the path itself and would follow a link planted there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from portstorm.core.files import Folder
from portstorm.core.result import RunResult
from portstorm.core.subjectgates import CaseVerdict
from portstorm.core.text import one_line
from portstorm.core.thresholds import Verdict

SUITE = "portstorm run"
CLASSNAME = "portstorm.thresholds"
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def _case(name: str, classname: str, time_s: float, v: Verdict) -> Any:
    from junitparser import Failure, TestCase

    case = TestCase(name, classname, round(time_s, 3))
    measured = f"measured {v.measured_text()}" + (f" ({v.reason})" if v.reason else "")
    if v.passed:
        case.system_out = measured
    else:
        failure = Failure(f"{v.expression}: {measured}", "threshold")
        failure.text = f"--fail-if '{v.expression}' held: {measured} ({v.metric})"
        case.result = [failure]
    return case


def _document(suites: Sequence[Any]) -> bytes:
    from junitparser import JUnitXml

    doc = JUnitXml()
    for suite in suites:
        suite.update_statistics()
        doc.add_testsuite(suite)
    doc.update_statistics()  # type: ignore[no-untyped-call]  # the document's totals too
    out: object = doc.tostring()  # type: ignore[no-untyped-call]  # etree.tostring(utf-8)
    text = out if isinstance(out, bytes) else str(out).encode("utf-8")
    return text if text.startswith(b"<?xml") else XML_DECLARATION + text


def junit_xml(result: RunResult) -> bytes:
    """The run's verdicts as a JUnit document (UTF-8, with its XML declaration)."""
    from junitparser import TestSuite

    targets = one_line(result.setup.targets_text or "?")  # from a command line: escaped
    suite = TestSuite(f"{SUITE}: {targets}")
    suite.timestamp = result.started_at
    suite.hostname = one_line(result.host.hostname)
    for v in result.thresholds:
        suite.add_testcase(_case(f"fail if {v.expression}", CLASSNAME, result.duration_s, v))
    suite.time = round(result.duration_s, 3)
    return _document([suite])


def cases_xml(
    kind: str, verdicts: Sequence[CaseVerdict], times: Mapping[tuple[str, str], float]
) -> bytes:
    """A sweep's or comparison's verdicts (``kind``: sweep, compare): a testsuite per case,
    in order; ``times``: seconds per (case, run), as a run's testcase takes its duration."""
    from junitparser import TestSuite

    suites: dict[str, Any] = {}
    for cv in verdicts:
        case = one_line(cv.case)  # a label read from a file: escaped
        suite = suites.get(case)
        if suite is None:
            suite = suites[case] = TestSuite(f"portstorm {kind}: {case}")
        # Jenkins splits a classname at its last dot (package.class): none inside the case
        classname = f"portstorm.{kind}.{case.replace('.', '_')}"
        name = f"fail if {cv.verdict.expression} ({cv.of})"
        time_s = times.get((cv.case, cv.of), 0.0)
        suite.add_testcase(_case(name, classname, time_s, cv.verdict))
    return _document(list(suites.values()))


def _write(path: Path, data: bytes) -> Path:
    with Folder.open(path.parent, what=f"--junit {path}: folder") as folder:
        folder.refuse_links([path.name])
        return folder.write_bytes(path.name, data)


def write_junit(result: RunResult, path: Path) -> Path:
    """``path`` with the run's verdicts; the folder is made if missing, a link at ``path``
    is refused (one line, exit 3), as for every output."""
    return _write(path, junit_xml(result))


def write_cases_junit(
    kind: str,
    verdicts: Sequence[CaseVerdict],
    path: Path,
    times: Mapping[tuple[str, str], float] | None = None,
) -> Path:
    """``path`` with a sweep's or comparison's verdicts, written as write_junit writes."""
    return _write(path, cases_xml(kind, verdicts, times or {}))
