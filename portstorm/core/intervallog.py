"""``intervals.jsonl``: each interval appended as it happens, so a killed run keeps its data.

Containing the file format and nothing that measures. result.json is written once, at the
end; a run killed with SIGKILL (or a host that dies) never writes it. The interval log is
written as the run goes: a header line with what result.json would say up front (host,
scenario, tunings, the capacity model), then one line per interval and one line when the
first failure happens. ``portstorm report`` reads it when result.json is missing: the
RunResult it gives is marked incomplete and says where it came from.

Format history:
- ``portstorm.intervals/1`` (2026-11): first version. The header's ``router_tunings`` and
  ``capacity.nat`` and each interval's ``router`` (--sandbox nat) were added within it, as
  in result.json; logs without them load with none.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from portstorm.core import fields, formats
from portstorm.core.capacity import Capacity
from portstorm.core.errors import EnvironmentProblem, UsageError
from portstorm.core.fields import FieldError
from portstorm.core.files import Folder, write_error
from portstorm.core.formats import check_format
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.reading import read_text
from portstorm.core.records import Interval, decode_histogram, read_header
from portstorm.core.result import RunResult
from portstorm.core.setup import RunSetup

FORMAT = formats.INTERVALS
NAME = "intervals.jsonl"
RECOVERED_NOTE = (
    "recovered from intervals.jsonl: the run ended without writing result.json (killed, "
    "or the host went down); totals cover the intervals logged before that"
)


class IntervalLog:
    """The writer: one line per record, written at once (a killed process loses nothing
    that was written; the kernel keeps the page cache). Created through files.Folder, so a
    link planted at its name is replaced, never followed.

    A write that fails (a full disk) does not raise into the load: the log keeps the first
    error in ``error``, writes nothing more, and the run stops its load on seeing it. A line
    cut short by the failure is what ``read`` already skips: the file stays readable."""

    def __init__(self, path: Path, header: Mapping[str, Any], folder: Folder | None = None) -> None:
        self.path = path
        self.error: EnvironmentProblem | None = None
        if folder is None:
            with Folder.open(path.parent, what="folder") as own:
                self._f: IO[bytes] | None = own.stream(path.name)
        else:
            self._f = folder.stream(path.name)
        self._write({"format": FORMAT, **header})
        if self.error is not None:
            raise self.error

    def interval(self, interval: Interval) -> None:
        self._write({"interval": interval.to_json()})

    def first_failure(self, t: float, outcome: str) -> None:
        self._write({"first_failure": {"t": round(t, 6), "outcome": outcome}})

    def close(self) -> None:
        if self._f is not None:
            with contextlib.suppress(OSError):
                self._f.close()
            self._f = None

    def _write(self, record: Mapping[str, Any]) -> None:
        if self._f is None:
            return
        try:
            self._f.write((json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8"))
        except OSError as e:
            self.error = write_error(self.path, e)
            self.close()


def read(path: Path) -> RunResult:
    """An interval log -> an incomplete RunResult; every way it can be wrong is one
    UsageError line naming the file. A last line cut short by the kill is skipped."""
    lines = read_text(path, "a portstorm interval log").splitlines()
    records = []
    for n, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if n == len(lines):
                break  # the write the kill (or a full disk) interrupted
            raise UsageError(f"{path}: line {n} is not JSON: the file is damaged") from None
        except (RecursionError, ValueError):
            raise UsageError(
                f"{path}: line {n} is not a portstorm record (too deep or a number too long)"
            ) from None
    if not records or not isinstance(records[0], dict):
        raise UsageError(f"{path}: empty, expected a portstorm interval log")
    head = records[0]
    try:
        check_format(head.get("format"), FORMAT, "interval log")
    except UsageError as e:
        raise UsageError(f"{path}: {e}") from None
    try:
        return _result(head, records[1:])
    except FieldError as e:
        raise UsageError(f"{path}: damaged interval log: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UsageError(f"{path}: damaged interval log ({type(e).__name__}: {e})") from None


def _result(head: Mapping[str, Any], records: list[Any]) -> RunResult:
    intervals = [Interval.from_json(r["interval"]) for r in records if "interval" in r]
    failures = [r["first_failure"] for r in records if "first_failure" in r]
    hist = LatencyHistogram()
    # a run with a request/response or --http: its transactions too, from the same records
    tx = LatencyHistogram() if any(i.transaction_us is not None for i in intervals) else None
    for k, i in enumerate(intervals):  # the records checked their shape; decoded here
        if i.hdr is not None:
            hist.add(decode_histogram(i.hdr, f"intervals[{k}].hdr"))
        if tx is not None and i.transaction_hdr is not None:
            tx.add(decode_histogram(i.transaction_hdr, f"intervals[{k}].transaction_hdr"))
    version, host = read_header(head)
    last = intervals[-1] if intervals else None
    cap = head.get("capacity")
    return RunResult(
        tool_version=version,
        host=host,
        started_at=str(head["started_at"]),
        duration_s=(last.t + last.dt) if last else 0.0,
        complete=False,
        setup=RunSetup.from_json(fields.member(head, "scenario")),
        tunings={str(k): str(v) for k, v in head["tunings"].items()},
        server_tunings=head.get("server_tunings"),
        router_tunings=fields.copied(head.get("router_tunings")),  # --sandbox nat, as result.json
        intervals=tuple(intervals),
        histogram=hist,
        first_failure_s=float(failures[0]["t"]) if failures else None,
        first_failure_outcome=str(failures[0]["outcome"]) if failures else None,
        model=Capacity.from_json(cap) if cap is not None else None,
        notes=(*head.get("notes", ()), RECOVERED_NOTE),
        transactions=tx,
    )
