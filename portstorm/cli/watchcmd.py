"""``portstorm watch``: sample this namespace's port space every interval and show it.

Containing the command's loop (read a sample, make the view, show or export it, wait for
the next tick), its option parsers, and the live table; the reading is engine/watchread.py,
the model core/watch.py, the metrics and the textfile engine/exporter.py. Nothing here
writes a sysctl or opens a socket toward anything: watch generates no load.

The loop keeps to a fixed schedule (start + k x interval on the monotonic clock): a sample
that took longer than the interval skips the ticks it overran rather than drifting.
Ctrl-C and SIGTERM unwind as KeyboardInterrupt (engine/processes.py), which closes the
reader and the exporter here and exits 130 in app.py.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from portstorm.cli.parsers import number, out_path
from portstorm.core.errors import EXIT_INTERRUPTED, EXIT_OK, EnvironmentProblem, UsageError

if TYPE_CHECKING:  # rich and the model load when the command runs: not for every --help
    from rich.console import Console, Group
    from rich.live import Live
    from rich.table import Table

    from portstorm.core.watch import WatchView
    from portstorm.engine.exporter import Exporter

MAX_TOP = 10_000
MAX_FAILED_SAMPLES = 3  # one failed read is skipped with a line; this many in a row end it
TUNINGS = ("net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_timestamps")  # what the advice words
HOST_COUNTERS = (  # (counter, what the host line calls it)
    ("TcpExtTCPTimeWaitOverflow", "TIME_WAIT overflow"),
    ("TcpExtListenOverflows", "listen overflows"),
    ("TcpExtListenDrops", "listen drops"),
)


def top_count(text: str | int) -> int:
    """``--top N``: whole groups shown (and exported by name), 1 to MAX_TOP."""
    if isinstance(text, int):
        return text  # click passes the declared default through the parser
    raw = text.strip()
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_TOP:
        raise UsageError(
            f"--top {text!r} is not valid: allowed a whole number >= 1 and <= {MAX_TOP} (groups)"
        )
    return int(raw)


def watch(
    interval: Annotated[
        float,
        typer.Option(
            metavar="SECONDS", parser=number("--interval"), help="Seconds between samples."
        ),
    ] = 1,
    duration: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS",
            parser=number("--duration"),
            help="Stop after this many seconds. Default: until Ctrl-C.",
            show_default=False,
        ),
    ] = None,
    top: Annotated[
        int,
        typer.Option(
            metavar="N",
            parser=top_count,
            help="Groups shown, most used first (and exported by name; the rest as "
            'destination="other").',
        ),
    ] = 10,
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON line per sample on stdout, no table.")
    ] = False,
    listen: Annotated[
        str | None,
        typer.Option(
            metavar="HOST:PORT",
            help="Serve /metrics for Prometheus here (e.g. 127.0.0.1:9477).",
            show_default=False,
        ),
    ] = None,
    textfile: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH.prom",
            parser=out_path,
            help="Rewrite this node_exporter textfile (atomically) every sample.",
            show_default=False,
        ),
    ] = None,
    grafana_dashboard: Annotated[
        bool,
        typer.Option(
            "--grafana-dashboard", help="Print the Grafana dashboard JSON for these metrics."
        ),
    ] = False,
) -> int:
    """This namespace's ports per (source, destination), live, and when they run out.

    Use, new connections/s and when they run out at that rate. Read-only: no load, no
    sysctl written."""
    from portstorm.engine import exporter

    if grafana_dashboard:
        print(exporter.dashboard_json())
        return EXIT_OK
    where = exporter.parse_listen(listen) if listen is not None else None
    if textfile is not None:
        exporter.check_textfile(textfile)  # before the first sample, as every other refusal
    return _watch(interval, duration, top, json_out, where, textfile)


def _watch(
    interval: float,
    duration: float | None,
    top: int,
    json_out: bool,
    listen: tuple[str, int] | None,
    textfile: Path | None,
) -> int:
    from portstorm.core.watch import view
    from portstorm.engine import exporter
    from portstorm.engine.kernel import read_sysctls
    from portstorm.engine.processes import interrupt_on_signals
    from portstorm.engine.watchread import WatchReader

    interrupt_on_signals()  # SIGTERM ends it as Ctrl-C does
    tunings = read_sysctls(TUNINGS)
    samples = 0
    try:
        with ExitStack() as stack:
            served: Exporter | None = None
            if listen is not None:
                served = stack.enter_context(exporter.serve(listen))
            reader = WatchReader()
            stack.callback(reader.close)
            show = _Screen(interval, top, json_out, stack)
            previous: WatchView | None = None
            failed = 0  # samples failed in a row
            for _tick in _schedule(interval, duration):
                try:
                    sample = reader.read()
                except OSError as e:  # a dump the kernel refused or cut: skip this sample
                    failed += 1
                    if failed >= MAX_FAILED_SAMPLES:
                        raise EnvironmentProblem(
                            f"watch: {failed} samples in a row could not be read: {e}"
                        ) from None
                    print(f"portstorm watch: a sample was skipped: {e}", file=sys.stderr)
                    continue
                failed = 0
                previous = view(sample, previous, tunings)
                if served is not None:
                    served.update(previous, top)
                if textfile is not None:
                    exporter.write_textfile(textfile, previous, top)
                show.show(previous)
                samples += 1
    except BrokenPipeError:
        # stdout's reader has gone (``watch --json | head -1``): what it wanted is out.
        # Python's last flush of stdout would fail too: point it at /dev/null first
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        # the usual way to end it: closed above (the reader, the server, the live table)
        print(f"portstorm watch: interrupted after {samples} sample(s)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def _schedule(interval: float, duration: float | None) -> Iterator[int]:
    """Ticks at start + k x interval until ``duration`` has passed (None: forever); waits
    between them, and skips the ticks a slow sample overran, but not the last: the reading
    at the end of ``--duration`` is taken late rather than lost (a sample at 0.2 s that
    overran 0.4 s ended ``--interval 0.2 --duration 0.4`` with two lines, not three)."""
    start = time.monotonic()
    last = None if duration is None else int(duration / interval + 1e-9)
    k = 0
    while last is None or k <= last:
        yield k
        now = time.monotonic()
        taken, k = k, max(k + 1, int((now - start) / interval) + 1)
        if last is not None and k > last:
            if taken >= last:
                return
            k = last
        time.sleep(max(0.0, start + k * interval - time.monotonic()))


class _Screen:
    """Where each view goes: a JSON line on stdout, or the table (live on a terminal)."""

    def __init__(self, interval: float, top: int, json_out: bool, stack: ExitStack) -> None:
        from rich.live import Live

        self.interval, self.top, self.json_out = interval, top, json_out
        self.console = _console(highlight=False)
        if not self.console.is_terminal:  # a log: one table a line wide, not folded at 80
            self.console = _console(highlight=False, width=max(self.console.width, 132))
        self.live: Live | None = None
        if not json_out and self.console.is_terminal:
            self.live = stack.enter_context(
                Live(console=self.console, auto_refresh=False, transient=False)
            )

    def show(self, v: WatchView) -> None:
        if self.json_out:
            sys.stdout.write(json.dumps(v.to_json(self.top)) + "\n")
            sys.stdout.flush()
            return
        screen = render(v, self.top, self.interval)
        if self.live is not None:
            self.live.update(screen, refresh=True)
        else:
            self.console.print(screen)


def _console(**kw: Any) -> Console:
    """A rich Console whose closed pipe (``watch | head``) ends watch as the JSON lines'
    does, with exit 0: rich's own on_broken_pipe() exits 1, as if watch had failed."""
    from rich.console import Console

    class PipedConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError  # to watch()'s handler: stdout to /dev/null, exit 0

    return PipedConsole(**kw)


# -- the table --------------------------------------------------------------------------------


def render(v: WatchView, top: int, interval: float) -> Group:
    """One view as the terminal shows it: the header, the top groups, the host, advice."""
    from rich.console import Group
    from rich.text import Text

    from portstorm.cli.plain import plain

    low, high = v.port_range
    when = time.strftime("%H:%M:%S", time.localtime(v.t))
    shown = v.groups[:top]
    more = f", the {len(shown)} most used shown" if len(v.groups) > len(shown) else ""
    head = Text(
        f"portstorm watch {when} every {interval:g} s: ports {low}-{high}, "
        f"{v.usable_ports:,} usable per (source, destination); "
        f"{len(v.groups):,} group(s){more}",
        style="bold",
    )
    parts: list[Any] = [head, _table(v, top)]
    parts += [plain(line) for line in host_lines(v)]
    parts += [Text.assemble(("advice: ", "bold"), plain(a)) for a in v.advice]
    return Group(*parts)


def _table(v: WatchView, top: int) -> Table:
    from rich import box
    from rich.text import Text

    from portstorm.cli.plain import PlainTable
    from portstorm.core.watch import RATE_COUNTING
    from portstorm.core.watchadvice import ADVICE_FROM

    t = PlainTable(caption=RATE_COUNTING, caption_justify="left", box=box.SIMPLE_HEAD)
    t.add_column("source", overflow="fold")
    t.add_column("destination", overflow="fold")
    for name in ("in use", "used", "TIME_WAIT", "other", "conn/s"):
        t.add_column(name, justify="right", no_wrap=True)
    t.add_column("forecast", no_wrap=True)
    for g in v.groups[:top]:
        hot = g.exhaustion_in_s is not None or g.used_fraction >= ADVICE_FROM
        t.add_row(
            g.source,
            g.destination,
            f"{g.ports_in_use:,}",
            f"{g.used_fraction:.0%}",
            f"{g.states['time_wait']:,}",
            f"{g.ports_in_use - g.states['time_wait']:,}",  # established, syn_sent, other
            f"{g.rate_per_s:,.1f}",
            Text(g.words, style="bold red" if hot else ""),
        )
    if not v.groups:
        t.add_row("-", "no socket with a local port in the range", *[""] * 6)
    return t


def host_lines(v: WatchView) -> list[str]:
    """The host-wide line and what follows it: processes, bind trap, what was not read."""
    parts = [f"TIME_WAIT {v.time_wait:,}"]
    if v.counters_per_s:
        parts += [
            f"{label} {v.counters_per_s.get(name, 0.0):,.1f}/s" for name, label in HOST_COUNTERS
        ]
    if v.conntrack is not None:
        count, limit = v.conntrack
        parts.append(f"conntrack {count:,} of {limit:,}")
    out = ["host: " + "; ".join(parts)]
    if v.bind_trap:
        trap = ", ".join(f"{s}: {n:,}" for s, n in sorted(v.bind_trap.items()))
        out.append(f"bound before connect() (the bind trap): {trap}")
    for p in (v.processes or ())[:3]:
        limit_s = f" of {p.fd_limit:,}" if p.fd_limit is not None else ""
        out.append(f"process {p.name}[{p.pid}]: {p.sockets:,} sockets, {p.fds:,}{limit_s} fds")
    if v.unreadable:
        out.append("not readable: " + "; ".join(v.unreadable))
    return out
