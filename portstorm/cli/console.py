"""What a person sees in the terminal: a live line while a run goes, a summary table after.

Containing no measurement and no files: it formats ``Interval``, ``RunResult`` and
``Comparison`` values.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from portstorm.core.comparison import Comparison
from portstorm.core.result import Interval, RunResult
from portstorm.core.scenario import Scenario
from portstorm.core.text import one_line
from portstorm.core.words import SANDBOX_WORDS, describe_load
from portstorm.engine.flows import Endpoint


class LiveLine:
    """One status line per interval: rewritten in place on a terminal, appended otherwise."""

    def __init__(self, stream: TextIO = sys.stderr, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()
        self.elapsed = 0.0
        self.succeeded = 0
        self.failed: dict[str, int] = {}

    def start(self, scenario: Scenario, endpoints: list[Endpoint]) -> None:
        if self.quiet:
            return
        shape = (
            f"open loop at {scenario.rate:g}/s"
            if scenario.rate is not None
            else f"closed loop, {scenario.in_flight_cap} in flight"
        )
        dest = _listed([e.label for e in endpoints])
        sink = " (built-in sink)" if not scenario.targets else ""
        src = f" from {_listed(list(scenario.sources))}" if scenario.sources else ""
        print(
            f"portstorm: churning {dest}{sink}{src} for {scenario.duration_s:g} s, {shape}, "
            f"close={scenario.close}, bind={scenario.bind}",
            file=self.stream,
            flush=True,
        )

    def on_interval(self, iv: Interval) -> None:
        self.elapsed = iv.t + iv.dt
        self.succeeded += iv.succeeded
        for k, v in iv.failed.items():
            self.failed[k] = self.failed.get(k, 0) + v
        if self.quiet:
            return
        rate = iv.succeeded / iv.dt if iv.dt > 0 else 0.0
        fails = " ".join(f"{k}={v:,}" for k, v in sorted(self.failed.items())) or "none"
        p50 = iv.latency_us.get("p50")
        lat = f"p50 {p50:,} us" if p50 is not None else "p50 -"
        line = (
            f"{self.elapsed:7.1f} s  {rate:10,.0f} conn/s  ok {self.succeeded:,}  "
            f"failed: {fails}  {lat}"
        )
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()


def _listed(items: list[str], shown: int = 3) -> str:
    """At most ``shown`` items, then how many more: 51,200 destinations fit on one line."""
    if len(items) <= shown + 1:
        return ", ".join(items)
    return ", ".join(items[:shown]) + f" and {len(items) - shown:,} more"


def _us(v: int | None) -> str:
    if v is None:
        return "-"
    return f"{v / 1000:,.2f} ms" if v >= 10_000 else f"{v:,} us"


class _PlainTable(Table):
    """A table whose string cells are plain text: values from files (hostnames, tunings,
    labels, paths) have their control characters escaped (core.text.one_line) and their
    rich markup shown as typed, never interpreted. ``split_lines``: the line breaks in a
    cell are this module's own layout, and only the text between them is escaped."""

    split_lines = False

    def add_row(self, *renderables: Any, style: Any = None, end_section: bool = False) -> None:
        cells = [_plain(r, self.split_lines) if isinstance(r, str) else r for r in renderables]
        super().add_row(*cells, style=style, end_section=end_section)


class _PlainLinesTable(_PlainTable):
    split_lines = True


def _plain(text: str, split_lines: bool = False) -> Text:
    if split_lines:
        return Text("\n".join(one_line(line) for line in text.split("\n")))
    return Text(one_line(text))


def print_summary(result: RunResult, path: str, console: Console | None = None) -> None:
    console = console or Console(highlight=False)
    s = result.setup
    state = "complete" if result.complete else "INTERRUPTED (partial results)"
    t = _PlainTable(title=f"portstorm run: {state}", show_header=False, title_justify="left")
    t.add_column("what", style="bold")
    t.add_column("value")
    t.add_row(
        "targets",
        _listed(list(s.targets)) + (" (built-in sink)" if s.sink else ""),
    )
    if s.sources:
        t.add_row("sources", _listed(list(s.sources)))
    t.add_row("load", describe_load(s, result.duration_s))
    sandbox = s.sandbox or "host"
    t.add_row("sandbox", SANDBOX_WORDS.get(sandbox, sandbox))
    t.add_row("attempts", f"{result.attempts:,}")
    t.add_row("succeeded", f"{result.succeeded:,}  ({result.rate:,.1f} conn/s)")
    if result.failed:
        other = result.other_errnos
        for name, n in result.failed.items():
            extra = ""
            if name == "other" and other:
                extra = "  (" + ", ".join(f"{k} {v:,}" for k, v in other.items()) + ")"
            t.add_row(f"failed: {name}", f"{n:,}{extra}")
    else:
        t.add_row("failed", "0")
    if result.not_started:
        ns, rate = result.not_started, s.rate
        lag = f" by {ns / float(rate):,.2f} s" if rate else ""
        t.add_row(
            "not started",
            f"{ns:,} scheduled attempts, dropped at the planned end: the driver fell behind "
            f"its schedule{lag} ({result.attempts:,} of {result.attempts + ns:,} started)",
        )
    if result.first_failure_s is not None:
        t.add_row(
            "first failure", f"{result.first_failure_s:.3f} s ({result.first_failure_outcome})"
        )
    worst = result.worst_tuple()
    if worst is not None:
        first = (
            f", first failure {worst.first_failure_s:.3f} s"
            if worst.first_failure_s is not None
            else ""
        )
        t.add_row(
            "worst tuple",
            f"{worst.source} -> {worst.destination}: {worst.succeeded:,} ok, "
            f"{sum(worst.failed.values()):,} failed ({', '.join(worst.failed)}){first}; "
            f"{len(result.tuples):,} tuples in result.json",
        )
    lat = result.histogram.summary()
    t.add_row(
        "connect latency",
        "  ".join(f"{k} {_us(lat[k])}" for k in ("p50", "p90", "p99", "p999", "max")),
    )
    cap = result.model
    if cap is not None:
        sus = cap.sustainable_rate
        hold = cap.hold_s
        model_line = f"{cap.usable_ports:,} ports x {cap.tuples} tuple(s), held {hold:g} s: " + (
            f"{sus:,.2f} conn/s sustainable" if sus is not None else "no port limit"
        )
        t.add_row("capacity model", model_line)
        predicted = cap.predicted_exhaustion_s
        if predicted is not None or result.first_failure_s is not None:
            measured = (
                f"{result.first_failure_s:.3f} s" if result.first_failure_s is not None else "none"
            )
            expect = f"{predicted:.3f} s" if predicted is not None else "none"
            t.add_row("first failure vs model", f"measured {measured}, predicted {expect}")
        after = result.sustained_after_exhaustion()
        if after is not None:
            expect = f"{sus:,.2f} conn/s" if sus is not None else "no port limit"
            line = f"measured {after:,.2f} conn/s, model {expect}"
            ff = result.first_failure_s
            if hold and ff is not None and result.duration_s < ff + hold:
                line += f" (reached only once ports free up, {hold:g} s after they closed)"
            t.add_row("after exhaustion", line)
    last = result.intervals[-1] if result.intervals else None
    if last is not None and last.time_wait is not None:
        tw = f"client {last.time_wait:,}"
        if last.server_time_wait is not None:
            tw += f", server {last.server_time_wait:,}"
        in_use = "-" if last.ports_in_use is None else f"{last.ports_in_use:,}"
        t.add_row("TIME_WAIT at end", f"{tw}; ports in use {in_use}")
    port_range = result.tunings.get("net.ipv4.ip_local_port_range")
    if port_range:
        t.add_row(
            "kernel",
            f"port range {port_range}, tcp_tw_reuse {result.tunings.get('net.ipv4.tcp_tw_reuse')}",
        )
    t.add_row("result", path)
    console.print(t)
    for note in result.notes:
        console.print(_plain(f"note: {note}"))


def print_inspect(doc: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(highlight=False)
    host = doc["host"]
    low, high = doc["port_range"]
    console.print(f"[bold]{host['hostname']}[/bold]  Linux {host['kernel']}, {host['cpus']} CPUs")
    console.print(
        f"local port range {low}-{high}"
        + (f", reserved {doc['reserved_ports']}" if doc["reserved_ports"] else "")
        + f"; TIME_WAIT {doc['time_wait']:,}; ports in use {doc['ports_in_use']:,}"
        + f"; open-file limit {doc['fd_soft_limit']:,}"
    )
    t = Table(title="sysctls that matter", title_justify="left")
    t.add_column("sysctl")
    t.add_column("value")
    t.add_column("what it really does")
    for row in doc["sysctls"]:
        t.add_row(row["name"], row["value"] or "(empty)", row["meaning"])
    console.print(t)
    console.print("[bold]capacity toward one destination[/bold] (plain connect, client closes):")
    for line in doc["capacity_one_destination"]["why"]:
        console.print(f"  {line}")
    for line in doc["advice"]:
        console.print(f"[bold]advice:[/bold] {line}")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = round(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class SweepLine:
    """Progress of a whole sweep: done, running, remaining, elapsed, time left."""

    def __init__(self, stream: TextIO = sys.stderr, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()
        self._last_state: tuple[int, int, int] | None = None

    def start(self, plan: Any, skipped: int, out_dir: object) -> None:
        if self.quiet:
            return
        factors = " x ".join(f"{f.label}={','.join(f.values)}" for f in plan.factors)
        again = f"; {skipped} already done (resume)" if skipped else ""
        print(
            one_line(
                f"portstorm sweep: {len(plan.cells)} cell(s) x {plan.repeat} = {len(plan.runs)} "
                f"run(s), {plan.parallel} at a time; {factors}{again}; into {out_dir}"
            ),
            file=self.stream,
            flush=True,
        )

    def update(self, p: Any) -> None:
        if self.quiet:
            return
        line = (
            f"{p.done} done, {p.running} running, {p.remaining} to go"
            + (f", {p.failed} failed" if p.failed else "")
            + f"; {_duration(p.elapsed_s)} elapsed, about {_duration(p.eta_s)} left"
        )
        extra = f"  ({one_line(p.last)})" if p.last else ""  # a cell's label, from sweep.json
        if self.tty:
            self.stream.write("\r\x1b[K" + line + extra)
            self.stream.flush()
        elif (p.done, p.running, p.failed) != self._last_state:
            # a log gets a line when a run starts or ends, not one per second
            self._last_state = (p.done, p.running, p.failed)
            self.stream.write(line + extra + "\n")
            self.stream.flush()

    def finish(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()


_MARK = {True: "*", False: "~", None: "?"}


def _value(key: str, v: float | None) -> str:
    if v is None:
        return "-"
    if key.endswith("_us"):
        return _us(int(v))
    if key == "first_failure_s":
        return f"{v:.3f} s"
    if key == "failed_pct":
        return f"{v:.1f} %"
    if key == "peak_time_wait":
        return f"{v:,.0f}"
    return f"{v:,.1f}"


def print_compare(doc: Comparison, console: Console | None = None, title: str = "") -> None:
    """Subjects as rows, metrics as columns; each value with its change against the first."""
    if console is None:
        # a log or a pipe gets the whole table rather than 80 columns of ellipses
        console = Console(highlight=False)
        if not console.is_terminal:
            console = Console(highlight=False, width=180)
    heading = title or f"compare (baseline: {doc.baseline})"
    t = _PlainLinesTable(title=_plain(heading), title_justify="left")
    t.add_column("subject")
    for m in doc.metrics:
        t.add_column(f"{m.label}\n({m.unit})", justify="right")
    t.add_column("failures")
    for s in doc.rows:
        label = one_line(s.label)
        label += f"\n{one_line(', '.join(s.hosts))}" if len(doc.hosts) > 1 else ""
        if s.repeats > 1:
            label += f" (n={s.repeats})"
        cells = []
        for m in doc.metrics:
            spread = s.spread(m.key)
            text = _value(m.key, spread.median)
            if spread.n > 1 and spread.low is not None and spread.high != spread.low:
                text += f"\n{_value(m.key, spread.low)}..{_value(m.key, spread.high)}"
            if not s.is_baseline:
                c = s.change(m.key)
                if c.relative is not None:
                    text += f"\n{c.relative * 100:+.1f}% {_MARK[c.significant]}"
                elif c.delta is not None and c.delta != 0:
                    text += f"\n{c.delta:+,.3g} {_MARK[c.significant]}"
            cells.append(text)
        mix = ", ".join(f"{k} {v:.1f}%" for k, v in s.failure_mix_pct.items()) or "none"
        t.add_row(label, *cells, mix)
    console.print(t)
    console.print(
        "change against the first row: * beyond the spread of repeats, ~ within it "
        "(not significant), ? cannot tell (a single run; use --repeat)"
    )
