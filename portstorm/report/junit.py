"""The ``--fail-if`` verdicts of a run as JUnit XML, for a CI server's test report.

Containing the mapping of verdicts to JUnit (one testsuite per run, one testcase per
threshold; a failed threshold is a ``failure`` whose message carries what was measured)
and its writing through core/files.py; nothing that judges (core/thresholds.py does).
The XML is built with junitparser, as GitLab, GitHub's test reporters and Jenkins read it,
serialized to bytes here and written by the one writer: junitparser's own ``write`` opens
the path itself and would follow a link planted there.
"""

from __future__ import annotations

from pathlib import Path

from portstorm.core.files import Folder
from portstorm.core.result import RunResult
from portstorm.core.text import one_line

SUITE = "portstorm run"
CLASSNAME = "portstorm.thresholds"
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def junit_xml(result: RunResult) -> bytes:
    """The run's verdicts as a JUnit document (UTF-8, with its XML declaration)."""
    from junitparser import Failure, JUnitXml, TestCase, TestSuite

    targets = one_line(result.setup.targets_text or "?")  # from a command line: escaped
    suite = TestSuite(f"{SUITE}: {targets}")
    suite.timestamp = result.started_at
    suite.hostname = one_line(result.host.hostname)
    for v in result.thresholds:
        case = TestCase(f"fail if {v.expression}", CLASSNAME, result.duration_s)
        measured = f"measured {v.measured_text()}"
        if v.passed:
            case.system_out = measured
        else:
            failure = Failure(f"{v.expression}: {measured}", "threshold")
            failure.text = f"--fail-if '{v.expression}' held: {measured} ({v.metric})"
            case.result = [failure]
        suite.add_testcase(case)
    suite.time = round(result.duration_s, 3)
    doc = JUnitXml()
    doc.add_testsuite(suite)
    doc.update_statistics()  # type: ignore[no-untyped-call]  # the document's totals too
    out: object = doc.tostring()  # type: ignore[no-untyped-call]  # etree.tostring(utf-8)
    text = out if isinstance(out, bytes) else str(out).encode("utf-8")
    return text if text.startswith(b"<?xml") else XML_DECLARATION + text


def write_junit(result: RunResult, path: Path) -> Path:
    """``path`` with the run's verdicts; the folder is made if missing, a link at ``path``
    is refused (one line, exit 3), as for every output."""
    with Folder.open(path.parent, what=f"--junit {path}: folder") as folder:
        folder.refuse_links([path.name])
        return folder.write_bytes(path.name, junit_xml(result))
