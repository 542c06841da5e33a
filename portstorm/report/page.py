"""The HTML page: values shaped for the jinja2 template, and the rendering.

Containing text formatting only; charts arrive as data URIs, findings as sentences.
Autoescaping is on: labels and paths come from files and command lines. Paths become links
through ``file_link`` only: a sweep.json names its run files, and a name such as
``javascript:...`` must not become a live link.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from portstorm import __version__
from portstorm.core.compare import Subject
from portstorm.core.comparison import Comparison
from portstorm.core.findings import Finding, unsaid_notes
from portstorm.core.gatestop import stopped_by_gate
from portstorm.core.remedies import COSTS, remedy_of
from portstorm.core.result import RunResult
from portstorm.core.subjectgates import CaseVerdict
from portstorm.core.words import describe_load, fmt_s, fmt_us, sandbox_label, starts_note

if TYPE_CHECKING:
    from jinja2 import Environment
    from markupsafe import Markup


@dataclass(frozen=True)
class Chart:
    """One chart as the template shows it."""

    title: str
    alt: str
    file: str  # the PNG's name beside the HTML
    data_uri: str


MAX_TUPLE_ROWS = 50
NONE = "\N{EN DASH}"  # a value not measured
TUNING_ORDER = (
    "ip_local_port_range",
    "ip_local_reserved_ports",
    "tcp_tw_reuse",
    "tcp_tw_reuse_delay",
    "tcp_timestamps",
    "tcp_fin_timeout",
    "tcp_max_tw_buckets",
    "tcp_rfc1337",
    "somaxconn",
    "tcp_max_syn_backlog",
)


def environment() -> Environment:
    """The jinja2 environment of every page (templates/, autoescaped, strict), with the
    filters the templates share."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("portstorm.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["seconds"] = _seconds
    env.filters["file_link"] = file_link
    return env


def file_link(rel: str) -> Markup:
    """A file the report names, as the page shows it (``rel``: relative to the report's
    folder, or absolute). Only a relative path that stays inside the folder becomes a link,
    percent-encoded so that no part of it reads as a scheme (``javascript:``), a query or a
    fragment; any other path is plain text."""
    from markupsafe import Markup, escape

    if not rel or rel.startswith("/") or ".." in PurePosixPath(rel).parts:
        return escape(rel)
    return Markup('<a href="{}">{}</a>').format(quote(rel), rel)


def _num(v: object, digits: int = 2) -> str:
    if v is None:
        return NONE
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v.is_integer() and abs(v) >= 100:
            return f"{int(v):,}"
        return f"{v:,.{digits}f}"
    return str(v)


def _seconds(v: object) -> str:
    """A duration with its unit at the precision a person reads (core.words.fmt_s)."""
    if isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool) and abs(v) < 1e15):
        return fmt_s(float(v))
    return NONE if v is None else str(v)


def _short(name: str) -> str:
    return name.removeprefix("net.ipv4.").removeprefix("net.core.")


def tunings_table(r: RunResult) -> list[dict[str, Any]]:
    """Rows of name, client value, server value (pair), and whether the run set it."""
    given = {_short(k) for k in r.setup.sysctls_given}
    client = {_short(k): v for k, v in r.tunings.items()}
    server = {_short(k): v for k, v in (r.server_tunings or {}).items()}
    names = [n for n in TUNING_ORDER if n in client or n in server]
    names += sorted((set(client) | set(server)) - set(names))
    return [
        {"name": n, "client": client.get(n, NONE), "server": server.get(n, NONE), "set": n in given}
        for n in names
    ]


def _header(r: RunResult) -> list[tuple[str, str]]:
    s = r.setup
    targets = s.targets_text or NONE
    if s.sink:
        targets += " (built-in sink)"
    cut = "STOPPED by --stop-on-fail" if stopped_by_gate(r.notes) else "INTERRUPTED"
    rows = [
        ("host", f"{r.host.hostname}: Linux {r.host.kernel}, {r.host.cpus} CPUs"),
        (
            "started",
            f"{r.started_at}, {fmt_s(r.duration_s)} of load"
            + ("" if r.complete else f" ({cut}: partial results)"),
        ),
        ("topology", sandbox_label(s)),  # LOOPBACK by address too (host mode)
        ("targets", targets),
        ("load", describe_load(s, r.duration_s)),
        ("tunings", _key_tunings(r) or NONE),
    ]
    sources = list(s.sources)
    if sources:
        shown = ", ".join(sources[:8]) + (
            f" and {len(sources) - 8} more" if len(sources) > 8 else ""
        )
        rows.append(("sources", shown))
    return rows


def _totals(r: RunResult) -> list[tuple[str, str]]:
    lat = r.histogram.summary()
    over = starts_note(r.load_span_s, r.duration_s)  # a held open loop: over its starts
    rows = [
        ("attempts", f"{r.attempts:,}"),
        ("succeeded", f"{r.succeeded:,} ({r.rate:,.1f} conn/s{over})"),
    ]
    for name, n in r.failed.items():
        extra = ""
        if name == "other" and r.other_errnos:
            extra = " (" + ", ".join(f"{k} {v:,}" for k, v in r.other_errnos.items()) + ")"
        rows.append((f"failed: {name}", f"{n:,} ({100 * n / r.attempts:.1f} %){extra}"))
    if r.first_failure_s is not None:
        rows.append(("first failure", f"{fmt_s(r.first_failure_s)} ({r.first_failure_outcome})"))
    rows.append(
        (
            "connect latency",
            "   ".join(
                f"{k} {NONE if lat[k] is None else fmt_us(float(lat[k] or 0))}"
                for k in ("p50", "p90", "p99", "p999", "max")
            ),
        )
    )
    return rows


def _tuples(r: RunResult) -> list[dict[str, Any]]:
    rows = sorted(r.tuples, key=lambda t: (-t.failure_ratio, t.first_failure_s or 1e18))
    return [
        {
            "source": t.source,
            "destination": t.destination,
            "attempts": t.attempts,
            "succeeded": t.succeeded,
            "failed": ", ".join(f"{k} {v:,}" for k, v in t.failed.items()) or "0",
            "first_failure_s": t.first_failure_s,
            "ports": t.ports_in_use,
            "peak": t.ports_in_use_peak,
        }
        for t in rows[:MAX_TUPLE_ROWS]
    ]


def render_run(
    r: RunResult,
    *,
    findings: Sequence[Finding],
    charts: Sequence[Chart],
    exports: Mapping[str, str],
    source: str | None,
    generated: str,
) -> str:
    title = f"portstorm run: {r.setup.targets_text or '?'} ({r.setup.sandbox})"
    return (
        environment()
        .get_template("run.html.j2")
        .render(
            title=title,
            header=_header(r),
            findings=findings,
            charts=charts,
            tunings=tunings_table(r),
            has_server=r.server_tunings is not None,
            totals=_totals(r),
            capacity=r.model,
            tuples=_tuples(r) if len(r.tuples) > 1 else [],
            n_tuples=len(r.tuples),
            notes=unsaid_notes(findings, r.notes),
            exports=exports,
            source=source,
            generated=generated,
            version=__version__,
            complete=r.complete,
            thresholds=r.thresholds,  # --fail-if: the verdict first
            failed=sum(not v.passed for v in r.thresholds),
        )
    )


def render_many(
    *,
    title: str,
    doc: Comparison | Mapping[str, Any],
    subjects: Sequence[Subject],
    metrics: Sequence[tuple[str, str, str]] | None = None,
    findings: Sequence[Finding],
    charts: Sequence[Chart],
    sweep: Mapping[str, Any] | None,
    links: Sequence[Sequence[str]],
    inputs: Sequence[str],
    generated: str,
    verdicts: Sequence[CaseVerdict] = (),
) -> str:
    """A sweep or comparison page: ``doc`` the Comparison (or its JSON) of ``subjects``,
    whose runs give each row's settings; ``metrics`` the columns, by default all of it;
    ``verdicts`` compare's --fail-if (a sweep's are in its sweep.json)."""
    comparison = Comparison.of(doc)
    gates = [CaseVerdict.from_json(v, str(c["label"])) for c in (sweep or {}).get("cells", [])
             for v in c.get("thresholds", [])]  # fmt: skip  # --fail-if: the verdict first
    gates += verdicts
    factor_names = list(dict.fromkeys(k for s in subjects for k in s.factors))
    rows = []
    for s, row, files in zip(subjects, comparison.rows, links, strict=True):
        r0 = s.runs[0]
        rows.append(
            {
                "label": row.label,
                "factors": [s.factors.get(k, NONE) for k in factor_names],
                "repeats": row.repeats,
                "hosts": ", ".join(row.hosts),
                "sandbox": r0.setup.sandbox,
                "tunings": _key_tunings(r0),
                "metrics": row.metrics,  # Spread values
                "changes": row.changes,  # Change values; None for the baseline
                "mix": row.failure_mix_pct,
                "files": files,
            }
        )
    return (
        environment()
        .get_template("many.html.j2")
        .render(
            title=title,
            hosts=list(comparison.hosts),
            factor_names=factor_names,
            rows=rows,
            metrics=comparison.metrics if metrics is None else metrics,
            baseline=comparison.baseline,
            findings=findings,
            charts=charts,
            sweep=sweep,
            inputs=inputs,
            generated=generated,
            version=__version__,
            gates=gates,
            failed=sum(not g.verdict.passed for g in gates),
            costs=_remedy_costs(subjects, comparison),
        )
    )


def _remedy_costs(subjects: Sequence[Subject], comparison: Comparison) -> list[dict[str, str]]:
    """A row per case that is one of the classic remedies (--vary remedy, the remedies
    preset): what it sustained beside what it costs (core/remedies.py); none otherwise."""
    out = []
    for s, row in zip(subjects, comparison.rows, strict=True):
        remedy = remedy_of(s.factors)
        if remedy is None:
            continue
        after, first = row.metrics.get("after_exhaustion"), row.metrics.get("first_failure_s")
        if first is None or first.median is None:
            sustained = "never ran out"
        else:  # ran out: what it kept up once the ports came back (NONE: too short to see)
            sustained = NONE if after is None or after.median is None else _num(after.median)
        out.append({"label": row.label, "remedy": remedy, "sustained": sustained,
                    "cost": COSTS[remedy]})  # fmt: skip
    return out if len(out) > 1 else []  # one remedy alone is no comparison of remedies


def _key_tunings(r: RunResult) -> str:
    keep = (
        "ip_local_port_range",
        "tcp_tw_reuse",
        "tcp_tw_reuse_delay",
        "tcp_fin_timeout",
        "tcp_timestamps",
    )
    t = {_short(k): v for k, v in r.tunings.items()}
    return ", ".join(f"{k}={t[k]}" for k in keep if k in t)
