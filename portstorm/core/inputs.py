"""Saved files in, subjects out: what ``compare`` and ``report`` read.

Containing only file reading and labelling, no printing and no measuring. Accepted inputs:
a result.json (``portstorm.run/2``, or /1), a sweep.json (``portstorm.sweep/1``: one subject per
cell with a finished run), the JSON of ``portstorm compare --json`` (``portstorm.compare/1``:
its subjects are re-read from the result files it names), or a folder holding a sweep.json
or result.json. Every way a file can be wrong is one UsageError line naming it. Results
are read lazily: per-interval histograms stay encoded until an export asks for them
(RunResult.interval_histograms), so a compare of two days decodes none of 172,800; and
``compared_subjects_of`` (compare without a report) reads a result.json's intervals as
readings (core/readings.py), checked but not made into Intervals.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from portstorm.core import formats, intervallog, readings, runcolumns
from portstorm.core.compare import R, Subject, distinguishing_labels
from portstorm.core.comparison import Comparison
from portstorm.core.errors import UsageError
from portstorm.core.fields import FieldError
from portstorm.core.formats import check_format
from portstorm.core.reading import inside, read_json_object
from portstorm.core.readings import Compared
from portstorm.core.result import load_result, result_from_doc
from portstorm.core.sweep import check_sweep_doc

COMPARE_FORMAT = formats.COMPARE
_EXPECTED = "a portstorm result.json, sweep.json or compare JSON"

Kind = Literal["run", "sweep", "compare"]


@dataclass(frozen=True)
class Loaded:
    """One input file: what it was, its subjects, and the sweep.json itself for a sweep."""

    path: Path
    kind: Kind
    subjects: list[Subject]
    sweep: dict[str, Any] | None = None


def resolve(path: Path) -> Path:
    """A folder stands for the sweep.json or result.json inside it, or for the interval
    log of a run that was killed before it wrote result.json."""
    if path.is_dir():
        for name in ("sweep.json", "fleet.json", "result.json", intervallog.NAME):
            if (path / name).is_file():
                return path / name
        raise UsageError(
            f"{path}: a folder without sweep.json, fleet.json, result.json or {intervallog.NAME}"
        )
    return path


def load(path: Path) -> Loaded:
    path = resolve(path)
    if path.name.endswith(".jsonl"):
        return Loaded(path, "run", [Subject(str(path), (intervallog.read(path),), (str(path),))])
    return _from_doc(path, _read(path))


def _read(path: Path) -> dict[str, Any]:
    with runcolumns.gc_paused():  # a day's file parses into millions of objects
        return read_json_object(path, _EXPECTED)


def _is_run(doc: dict[str, Any]) -> bool:
    fmt = doc.get("format")
    kinds = ("portstorm.sweep/", "portstorm.fleet/", "portstorm.compare/")
    return not (isinstance(fmt, str) and fmt.startswith(kinds))


def _from_doc(path: Path, doc: dict[str, Any]) -> Loaded:
    fmt = doc.get("format")
    if isinstance(fmt, str) and fmt.startswith("portstorm.sweep/"):
        check_sweep_doc(doc, str(path))
        try:
            return Loaded(path, "sweep", load_sweep_subjects(path, doc), doc)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise UsageError(f"{path}: damaged sweep.json ({type(e).__name__}: {e})") from None
    if isinstance(fmt, str) and fmt.startswith("portstorm.fleet/"):  # the merged row
        from portstorm.core.fleetfile import fleet_subject

        return Loaded(path, "run", [fleet_subject(path, doc)])
    if isinstance(fmt, str) and fmt.startswith("portstorm.compare/"):
        try:
            check_format(fmt, COMPARE_FORMAT, "comparison")
        except UsageError as e:
            raise UsageError(f"{path}: {e}") from None
        try:
            return Loaded(path, "compare", _compare_subjects(path, doc))
        except FieldError as e:
            raise UsageError(f"{path}: damaged comparison: {e}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise UsageError(f"{path}: damaged comparison ({type(e).__name__}: {e})") from None
    run = result_from_doc(path, doc, lazy=True)
    return Loaded(path, "run", [Subject(str(path), (run,), (str(path),))])


def load_sweep_subjects(path: Path, doc: dict[str, Any]) -> list[Subject]:
    """A sweep.json that check_sweep_doc passed -> one Subject per cell with at least one
    finished run."""
    subjects = []
    for cell in doc.get("cells", []):
        runs, paths = [], []
        for run in cell.get("runs", []):
            if run.get("status") != "done":
                continue
            rel = str(run["path"])
            if not inside(path.parent, rel):
                raise UsageError(
                    f"{path}: run path {rel!r} leaves the sweep's folder; allowed: paths "
                    "inside it, such as cells/01-.../r1/result.json"
                )
            p = path.parent / rel
            runs.append(load_result(p, lazy=True))
            paths.append(str(p))
        if runs:
            subjects.append(Subject(str(cell["label"]), tuple(runs), tuple(paths),
                                    dict(cell.get("factors", {}))))  # fmt: skip
    return subjects


def _compare_subjects(path: Path, doc: dict[str, Any]) -> list[Subject]:
    """A saved comparison (checked whole: Comparison.from_json) names its result files; read
    them again (paths as written, else relative to the comparison's folder), keeping its
    labels and factors."""
    subjects = []
    for row in Comparison.from_json(doc).rows:
        files = []
        for p in row.paths:
            f = Path(str(p))
            if not f.is_file() and not f.is_absolute() and (path.parent / f).is_file():
                f = path.parent / f
            if not f.is_file():
                raise UsageError(f"{path}: names {p}, which is not there any more")
            files.append(f)
        runs = tuple(load_result(f, lazy=True) for f in files)
        subjects.append(Subject(row.label, runs, tuple(map(str, files)), dict(row.factors)))
    return subjects


def load_subjects(path: Path) -> list[Subject]:
    """A result.json, a sweep.json, a comparison, or a folder holding one -> subjects."""
    return load(path).subjects


def compared_run(path: Path, doc: dict[str, Any]) -> Compared:
    """A parsed result.json as compare reads it (core/readings.py); read the whole way
    (RunResult) where a check fails, which names the field (or reads a file the quick
    checks are stricter about)."""
    try:
        with runcolumns.gc_paused():
            got = readings.from_doc(doc)
    except (UsageError, FieldError, KeyError, TypeError, ValueError, AttributeError):
        got = None
    return got if got is not None else result_from_doc(path, doc, lazy=True)


def load_compared(path: Path) -> list[Subject[Compared]]:
    """``load_subjects``, a result.json's run as compare reads it (compared_run); a sweep,
    fleet or comparison as ``load`` reads it."""
    path = resolve(path)
    if path.name.endswith(".jsonl"):
        return [*load(path).subjects]
    doc = _read(path)
    if not _is_run(doc):
        return [*_from_doc(path, doc).subjects]
    return [Subject(str(path), (compared_run(path, doc),), (str(path),))]


def compared_subjects_of(paths: Sequence[Path]) -> list[Subject[Compared]]:
    """``subjects_of`` for compare without a report: each result.json's run read as
    compare reads it (load_compared); the same labels."""
    subjects: list[Subject[Compared]] = []
    for p in paths:
        subjects += load_compared(p)
    return _labelled(subjects)


def subjects_of(paths: Sequence[Path]) -> list[Subject]:
    """Every input's subjects in order; single runs are labelled by what differs between
    them (tunings, load, host) rather than by their paths, when that tells them apart."""
    subjects: list[Subject] = []
    for p in paths:
        subjects += load(p).subjects
    return _labelled(subjects)


def _labelled(subjects: list[Subject[R]]) -> list[Subject[R]]:
    singles = [s for s in subjects if len(s.runs) == 1 and not s.factors]
    if len(subjects) > 1 and len(singles) == len(subjects):
        labels = distinguishing_labels([s.runs[0] for s in subjects])
        if labels is not None and len(set(labels)) == len(labels):
            return [
                dataclasses.replace(s, label=lab) for lab, s in zip(labels, subjects, strict=True)
            ]
    return subjects
