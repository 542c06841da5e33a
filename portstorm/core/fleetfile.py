"""fleet.json (``portstorm.fleet/1``): the merged fleet saved, read back typed, and its members
read from their folders.

Containing the format (``fleet_json``), its loading through core/reading.py with every
field checked (``load_fleet``: a crafted file is one UsageError line, exit 2), and the
reading of the run folders a merge is given (``read_members``: each through core/result.py's
own loader, so every result.json version it reads merges). The merge itself is fleet.py's.

Format history:
- ``portstorm.fleet/1`` (2026-12): ``hosts`` (one row per host, sorted by rate after
  exhaustion: name, hostname, kernel, cpus, started_at, start_at, load_started_at,
  clock_offset_s, clock_source, tunings, totals, after_exhaustion, first_failure_s,
  first_failure_outcome, latency_us with its hdr, outlier: the reasons, empty when none),
  ``missing`` [{name, reason}], ``outliers`` [{name, why}], ``outlier_rule``, ``aligned_on``,
  ``start_spread_s``, ``totals`` (sums; ``rate`` the sum of the hosts', ``after_exhaustion``
  too when every host ran out of ports, else null; ``exhausted_hosts``), ``latency_us``
  (the merged histogram), and ``merged``: the fleet as one run, a result.json document
  (its format is core/result.py's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portstorm.core import fields
from portstorm.core.compare import Subject
from portstorm.core.errors import UsageError
from portstorm.core.fleet import OUTLIER_RULE, Fleet, FleetMember, Missing, Outlier
from portstorm.core.formats import check_format
from portstorm.core.reading import read_json_object
from portstorm.core.records import decode_histogram
from portstorm.core.result import RunResult, load_result, result_from_doc

FORMAT = "portstorm.fleet/1"
NAME = "fleet.json"
MAX_NAME = 255  # a host's folder name


def fleet_json(fleet: Fleet, tool_version: str, created_at: str) -> dict[str, Any]:
    why = {o.name: list(o.why) for o in fleet.outliers}
    hosts = []
    for m in fleet.by_rate_after_exhaustion():
        r, s = m.result, m.result.setup
        hosts.append({
            "name": m.name, "path": m.path, **r.host.to_json(), "started_at": r.started_at,
            "start_at": s.start_at, "load_started_at": s.load_started_at,
            "clock_offset_s": s.clock_offset_s, "clock_source": s.clock_source,
            "tunings": dict(r.tunings), "totals": _totals(r), "after_exhaustion":
            _r3(m.after_exhaustion), "first_failure_s": _r6(r.first_failure_s),
            "first_failure_outcome": r.first_failure_outcome,
            "latency_us": {**r.histogram.summary(), "hdr": r.histogram.encode()},
            "outlier": why.get(m.name, []),
        })  # fmt: skip
    merged = fleet.merged
    after = [m.after_exhaustion for m in fleet.members if m.after_exhaustion is not None]
    return {
        "format": FORMAT,
        "tool": {"name": "portstorm", "version": tool_version},
        "created_at": created_at,
        "aligned_on": fleet.aligned_on,
        "start_spread_s": _r6(fleet.start_spread_s),
        "outlier_rule": OUTLIER_RULE,
        "hosts": hosts,
        "missing": [{"name": x.name, "reason": x.reason} for x in fleet.missing],
        "outliers": [{"name": o.name, "why": list(o.why)} for o in fleet.outliers],
        "totals": {
            **_totals(merged),
            "rate": round(sum(m.result.rate for m in fleet.members), 3),
            # summed only when every host ran out: a sum over some hosts reads as the fleet's
            "after_exhaustion": round(sum(after), 3) if len(after) == len(fleet.members) else None,
            "exhausted_hosts": len(after),
            "hosts": len(fleet.members),
        },
        "latency_us": {**merged.histogram.summary(), "hdr": merged.histogram.encode()},
        "merged": merged.to_json(),
    }


def _totals(r: RunResult) -> dict[str, Any]:
    return {"attempts": r.attempts, "succeeded": r.succeeded, "failed": r.failed,
            "rate": round(r.rate, 3), "not_started": r.not_started}  # fmt: skip


def _r3(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def _r6(v: float | None) -> float | None:
    return None if v is None else round(v, 6)


# -- reading back -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostRow:
    """One host's row as fleet.json saved it."""

    name: str
    hostname: str
    kernel: str
    tunings: Mapping[str, str]
    attempts: int
    succeeded: int
    failed: Mapping[str, int]
    rate: float
    after_exhaustion: float | None
    first_failure_s: float | None
    first_failure_outcome: str | None
    p50_us: int | None
    p99_us: int | None
    start_at: str | None
    load_started_at: str | None
    clock_offset_s: float | None
    hdr_count: int
    outlier: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FleetDoc:
    path: Path
    rows: tuple[HostRow, ...]
    merged: RunResult
    missing: tuple[Missing, ...]
    outliers: tuple[Outlier, ...]
    outlier_rule: str
    aligned_on: str
    start_spread_s: float | None
    rate: float
    after_exhaustion: float | None


def load_fleet(path: Path) -> FleetDoc:
    """A fleet.json, every field checked; each way it can be wrong is one UsageError."""
    return fleet_from_doc(path, read_json_object(path, "a portstorm fleet.json"))


def fleet_from_doc(path: Path, doc: Mapping[str, Any]) -> FleetDoc:
    try:
        check_format(doc.get("format"), FORMAT, "fleet result")
    except UsageError as e:
        raise UsageError(f"{path}: {e}") from None
    merged_doc = doc.get("merged")
    if not isinstance(merged_doc, Mapping):
        raise UsageError(f"{path}: damaged fleet.json: merged: missing or not an object")
    merged = result_from_doc(path, merged_doc)  # one line for every way it is wrong
    try:
        return _fleet(path, doc, merged)
    except fields.FieldError as e:
        raise UsageError(f"{path}: damaged fleet.json: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UsageError(f"{path}: damaged fleet.json ({type(e).__name__}: {e})") from None


def _fleet(path: Path, doc: Mapping[str, Any], merged: RunResult) -> FleetDoc:
    m = fields.mapping(doc, "")
    rows = []
    for i, item in enumerate(fields.sequence(fields.member(m, "hosts"), "hosts")):
        with fields.within(f"hosts[{i}]"):
            rows.append(_row(item))
    if not rows:
        raise fields.FieldError("hosts", "empty; allowed: one row per host merged")
    sums = (sum(r.attempts for r in rows), sum(r.succeeded for r in rows))
    if sums != (merged.attempts, merged.succeeded):
        raise fields.FieldError(
            "hosts",
            f"add up to {sums[0]} attempts and {sums[1]} successes, merged holds "
            f"{merged.attempts} and {merged.succeeded}",
        )
    if sum(r.hdr_count for r in rows) != merged.histogram.count:
        raise fields.FieldError("hosts", "their histograms do not add up to merged's")
    missing, outliers = [], []
    for i, item in enumerate(fields.sequence(m.get("missing") or [], "missing")):
        x = fields.mapping(item, f"missing[{i}]")
        reason = str(fields.text(x.get("reason"), f"missing[{i}].reason"))
        missing.append(Missing(_name(x.get("name"), f"missing[{i}].name"), reason))
    for i, item in enumerate(fields.sequence(m.get("outliers") or [], "outliers")):
        x = fields.mapping(item, f"outliers[{i}]")
        why = fields.member(x, "why")
        fields.text_list(why, f"outliers[{i}].why")
        outliers.append(Outlier(_name(x.get("name"), f"outliers[{i}].name"), tuple(why)))
    totals = fields.mapping(fields.member(m, "totals"), "totals")
    aligned = fields.text(fields.member(m, "aligned_on"), "aligned_on")
    if aligned not in ("start_at", "started_at"):
        raise fields.FieldError(
            "aligned_on", f"{fields.shown(aligned)}; allowed: start_at, started_at"
        )
    return FleetDoc(
        path=path, rows=tuple(rows), merged=merged, missing=tuple(missing),
        outliers=tuple(outliers),
        outlier_rule=str(fields.text(m.get("outlier_rule", OUTLIER_RULE), "outlier_rule")),
        aligned_on=aligned,
        start_spread_s=fields.number(m.get("start_spread_s"), "start_spread_s", null=True),
        rate=float(fields.number(totals.get("rate"), "totals.rate", high=fields.MAX_COUNT) or 0),
        after_exhaustion=fields.number(totals.get("after_exhaustion"),
                                       "totals.after_exhaustion", high=fields.MAX_COUNT, null=True),
    )  # fmt: skip


def _name(v: object, field: str) -> str:
    fields.text(v, field)
    assert isinstance(v, str)
    if not v or len(v) > MAX_NAME:
        raise fields.FieldError(field, f"{fields.shown(v)}; allowed: 1-{MAX_NAME} characters")
    return v


def _row(item: object) -> HostRow:
    x = fields.mapping(item, "")
    totals = fields.mapping(fields.member(x, "totals"), "totals")
    lat = fields.mapping(fields.member(x, "latency_us"), "latency_us")
    hist = decode_histogram(fields.member(lat, "hdr"), "latency_us.hdr")
    failed = fields.member(totals, "failed")
    fields.counts(failed, "totals.failed")
    tunings = fields.member(x, "tunings")
    fields.texts(tunings, "tunings")
    why = x.get("outlier") or []
    fields.text_list(why, "outlier")
    attempts = int(fields.integer(fields.member(totals, "attempts"), "totals.attempts") or 0)
    succeeded = int(fields.integer(fields.member(totals, "succeeded"), "totals.succeeded") or 0)
    if attempts != succeeded + sum(failed.values()):
        raise fields.FieldError("totals", f"attempts {attempts} != succeeded {succeeded} + failed")
    texts = {k: fields.text(x.get(k), k, null=True) for k in
             ("start_at", "load_started_at", "first_failure_outcome")}  # fmt: skip
    return HostRow(
        name=_name(x.get("name"), "name"),
        hostname=str(fields.text(fields.member(x, "hostname"), "hostname")),
        kernel=str(fields.text(fields.member(x, "kernel"), "kernel")),
        tunings=dict(tunings), attempts=attempts, succeeded=succeeded, failed=dict(failed),
        rate=float(fields.number(fields.member(totals, "rate"), "totals.rate",
                                 high=fields.MAX_COUNT) or 0),
        after_exhaustion=fields.number(x.get("after_exhaustion"), "after_exhaustion",
                                       high=fields.MAX_COUNT, null=True),
        first_failure_s=fields.number(x.get("first_failure_s"), "first_failure_s", null=True),
        first_failure_outcome=texts["first_failure_outcome"],
        p50_us=hist.percentile(50.0), p99_us=hist.percentile(99.0),
        start_at=texts["start_at"], load_started_at=texts["load_started_at"],
        clock_offset_s=fields.number(x.get("clock_offset_s"), "clock_offset_s",
                                     -fields.MAX_SECONDS, null=True),
        hdr_count=hist.count, outlier=tuple(why),
    )  # fmt: skip


def fleet_subject(path: Path, doc: Mapping[str, Any]) -> Subject:
    """What ``compare`` takes of a fleet.json: the merged row, the fleet as one run."""
    fleet = fleet_from_doc(path, doc)
    label = f"fleet of {len(fleet.rows)} ({path.parent.name or path.name})"
    return Subject(label, (fleet.merged,), (str(path),))


# -- the members' folders -------------------------------------------------------------------


def member_folders(dirs: Sequence[Path]) -> list[Path]:
    """Each DIR holding a result.json, or each subfolder of one that holds none (a fetched
    ``reports/<ts>-fleet/``: one folder per host), in name order."""
    out: list[Path] = []
    for d in dirs:
        if (d / "result.json").is_file() or not d.is_dir():
            out.append(d)
            continue
        subs = sorted(p for p in d.iterdir() if p.is_dir() and (p / "result.json").is_file())
        if not subs:
            raise UsageError(f"merge: {d} holds no result.json, nor folders that do")
        out += subs
    return out


def read_members(dirs: Sequence[Path]) -> list[FleetMember]:
    """The runs in ``dirs`` (member_folders), each named by its folder."""
    members = []
    for d in member_folders(dirs):
        path = d / "result.json" if d.is_dir() else d
        name = (d.name if d.is_dir() else d.parent.name) or str(d)
        members.append(FleetMember(name[:MAX_NAME], load_result(path), str(path)))
    return members
