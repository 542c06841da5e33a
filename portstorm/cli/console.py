"""What a person sees in the terminal around the runs: the live line while a run goes, the
sweep's progress line, and the ``inspect`` and ``compare`` tables.

Containing no measurement and no files: it formats ``Interval``, ``Comparison`` and
``inspect`` values. A run's summary is summary.py; the escaping of values from files and
arguments is plain.py.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.table import Table

from portstorm.cli.plain import PlainLinesTable, listed, plain, us
from portstorm.core.comparison import Comparison
from portstorm.core.result import Interval
from portstorm.core.scenario import Scenario
from portstorm.core.text import one_line
from portstorm.core.words import fmt_s

if TYPE_CHECKING:  # a type only: compare and report print here without loading the engine
    from portstorm.engine.flows import Endpoint


class LiveLine:
    """One status line per interval: rewritten in place on a terminal, appended otherwise.

    The time a line shows never goes back: with several driver workers an interval's end is
    the latest of its parts, and a worker's short last part (the tail after the final tick)
    can end before the interval shown just above it; and a time rounded to tenths (10.05 ->
    "10.1") must not be followed by an exact later one in hundredths ("10.07"). A tail much
    shorter than the interval shows its count, not a per-second rate: 3 connections in 20 ms
    are not "150 conn/s"."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        # sys.stderr when the line is made, not when this module was imported
        self.stream = stream = sys.stderr if stream is None else stream
        self.quiet = quiet
        self.tty = stream.isatty()
        self.elapsed = 0.0
        self.shown = 0.0  # the time the last line printed, as rounded there
        self.interval_s: float | None = None
        self.succeeded = 0
        self.failed: dict[str, int] = {}

    def start(self, scenario: Scenario, endpoints: list[Endpoint]) -> None:
        self.interval_s = scenario.interval_s
        if self.quiet:
            return
        shape = (
            f"open loop at {scenario.rate:g}/s"
            if scenario.rate is not None
            else f"closed loop, {scenario.in_flight_cap} in flight"
        )
        dest = listed([e.label for e in endpoints])
        sink = " (built-in sink)" if not scenario.targets else ""
        src = f" from {listed(list(scenario.sources))}" if scenario.sources else ""
        print(
            f"portstorm: churning {dest}{sink}{src} for {scenario.duration_s:g} s, {shape}, "
            f"close={scenario.close}, bind={scenario.bind}",
            file=self.stream,
            flush=True,
        )

    def on_interval(self, iv: Interval) -> None:
        self.elapsed = max(self.elapsed, iv.t + iv.dt)
        self.succeeded += iv.succeeded
        for k, v in iv.failed.items():
            self.failed[k] = self.failed.get(k, 0) + v
        if not self.quiet:
            self._write(self.line(iv))

    def line(self, iv: Interval) -> str:
        """The line for ``iv`` (after on_interval counted it)."""
        step = self.interval_s
        tail = step is not None and iv.dt < step / 2
        digits = 2 if tail or (step is not None and step < 1) else 1
        self.shown = max(round(self.elapsed, digits), self.shown)
        if tail:
            what = f"{'+' + format(iv.succeeded, ','):>10} in {fmt_s(iv.dt)}"
        else:
            rate = iv.succeeded / iv.dt if iv.dt > 0 else 0.0
            what = f"{rate:10,.0f} conn/s"
        fails = " ".join(f"{k}={v:,}" for k, v in sorted(self.failed.items())) or "none"
        p50 = iv.latency_us.get("p50")
        return (
            f"{self.shown:7.{digits}f} s  {what}  ok {self.succeeded:,}  "
            f"failed: {fails}  p50 {us(p50)}"
        )

    def note(self, text: str) -> None:
        """A line of its own between the live lines and what follows (not under --quiet)."""
        if not self.quiet:
            print(one_line(text), file=self.stream, flush=True)

    def _write(self, line: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()


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
    for line in _netfilter_lines(doc):
        console.print(plain(line))
    console.print("[bold]capacity toward one destination[/bold] (plain connect, client closes):")
    for line in doc["capacity_one_destination"]["why"]:
        console.print(f"  {line}")
    for line in doc["advice"]:
        console.print(f"[bold]advice:[/bold] {line}")


def _netfilter_lines(doc: dict[str, Any]) -> list[str]:
    """The host's conntrack use and source NAT rules (engine/inspect.py; older or partial
    documents without them print nothing), as read: the advice below says what they mean."""
    out = []
    if "conntrack" in doc:
        ct = doc["conntrack"]
        out.append(
            f"host conntrack: {ct['count']:,} entries of nf_conntrack_max {ct['max']:,}"
            if ct is not None
            else "host conntrack: not loaded (no /proc/sys/net/netfilter/nf_conntrack_count)"
        )
    if "nat_rules" in doc:
        rules = doc["nat_rules"]
        if rules is None:
            out.append("host source NAT rules: not readable (nft missing, or no CAP_NET_ADMIN)")
        elif not rules:
            out.append("host source NAT rules: none (no masquerade or snat in nftables)")
        for r in rules or ():
            ports = f" to ports {r['ports']}" if r.get("ports") else " (no port range)"
            flags = f" {','.join(r['flags'])}" if r.get("flags") else ""
            out.append(f"host source NAT rule: {r['action']}{ports}{flags} in {r['where']}")
    return out


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
        return us(v)
    if key == "first_failure_s":
        return fmt_s(v)
    if key == "failed_pct":
        return f"{v:.1f} %"
    if key == "peak_time_wait":
        return f"{v:,.0f}"
    return f"{v:,.1f}"


SUBJECT_MAX = 40  # columns the subject keeps at least, for its label


def print_compare(doc: Comparison, console: Console | None = None, title: str = "") -> None:
    """Subjects as rows, metrics as columns; each value with its change against the first."""
    if console is None:
        # a log or a pipe gets the whole table rather than 80 columns of ellipses
        console = Console(highlight=False)
        if not console.is_terminal:
            console = Console(highlight=False, width=180)
    heading = title or f"compare (baseline: {doc.baseline})"
    t = PlainLinesTable(title=plain(heading), title_justify="left")
    # the label says what the row is: the numbers' columns give way first (in 180 columns
    # rich cut "tcp_fin_timeout=5" to "tcp_fin_timeou…" and left the numbers room to spare)
    widest = max((len(one_line(r.label)) for r in doc.rows), default=0)  # one line each
    t.add_column("subject", min_width=min(SUBJECT_MAX, widest + len(" (n=10)")))
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
