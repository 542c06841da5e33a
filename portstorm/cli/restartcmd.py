"""``portstorm restart``: the server-restart experiment as a person runs it.

Containing the command's options (declared once here, each with a typed parser whose
ranges are core/restart.py's), the output folder's check before anything runs, the lines
shown while it runs and at the end, and the files it writes: result.json (through
core/files.py), then report.html and restart.png (report/restartreport.py). The
experiment itself is engine/restart.py. Exit codes as every command: 0 done, 2 a bad
option (one line, before the sandbox is built), 3 no sandbox here, 130 interrupted (what
was measured is saved first).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from portstorm.cli.parsers import out_path
from portstorm.core.errors import EXIT_INTERRUPTED, EXIT_OK, UsageError
from portstorm.core.restart import DEFAULTS, OLD_LISTENER, RestartPlan, parse_option
from portstorm.core.text import one_line

RESULT = "result.json"


def _parser(option: str) -> Callable[[str | float], float]:
    def parse(text: str | float) -> float:
        # click passes the declared default through the parser: it is parsed already
        return float(text) if isinstance(text, float | int) else parse_option(option, text)

    parse.__name__ = option.lstrip("-").replace("-", "_")
    return parse


def _old_listener(text: str) -> str:
    if text not in OLD_LISTENER:
        raise UsageError(f"--old-listener {text!r} is unknown: allowed {', '.join(OLD_LISTENER)}")
    return text


def restart(
    out: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            parser=out_path,
            help="Folder for result.json and the report. Default: reports/<UTC time>-restart/.",
        ),
    ] = None,
    rate: Annotated[
        float,
        typer.Option(
            metavar="CONN_PER_S",
            parser=_parser("--rate"),
            help="Connections per second of the load that fills the server's port with "
            "TIME_WAIT (1-5000).",
        ),
    ] = DEFAULTS["--rate"],
    duration: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",
            parser=_parser("--duration"),
            help="Seconds of load (0.1-60): rate x duration connections, each closed by the "
            "server first.",
        ),
    ] = DEFAULTS["--duration"],
    max_wait: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",
            parser=_parser("--max-wait"),
            help="Keep trying bind() this long after the old listener closed (0-600; "
            "TIME_WAIT lasts 60 s). The command ends within duration + max-wait + a few s.",
        ),
    ] = DEFAULTS["--max-wait"],
    probe_interval: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",
            parser=_parser("--probe-interval"),
            help="Seconds between rounds of bind() attempts (0.1-10).",
        ),
    ] = DEFAULTS["--probe-interval"],
    old_listener: Annotated[
        str,
        typer.Option(
            metavar="OPTS",
            parser=_old_listener,
            help="Socket options of the old listener, which its TIME_WAIT sockets keep: "
            "reuseaddr (as most servers), reuseport, both, none.",
        ),
    ] = "reuseaddr",
    server_set: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME=VALUE",
            help="A sysctl in the server's namespace, as run's --server-set (repeatable): "
            "e.g. tcp_fin_timeout=5, which does not shorten TIME_WAIT.",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress lines, only the findings.")] = False,
    no_report: Annotated[
        bool, typer.Option("--no-report", help="Save result.json only: no report.html or chart.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a result already in --out.")
    ] = False,
) -> int:
    """Can a server that closed first rebind its port? bind() with, without SO_REUSEADDR.

    In the pair sandbox a server closes every connection first, so TIME_WAIT sits on its
    port; then its listener closes and new sockets try bind() there, plain, with
    SO_REUSEADDR and with SO_REUSEPORT, until a plain one succeeds (about 60 s on Linux)
    or --max-wait passes."""
    from portstorm.core.files import Folder
    from portstorm.core.outdir import default_out_dir
    from portstorm.core.restartfindings import restart_findings
    from portstorm.core.tuning import parse_settings
    from portstorm.engine.kernel import tuning_context
    from portstorm.engine.processes import interrupt_on_signals
    from portstorm.engine.restart import run_restart

    plan = RestartPlan(rate, duration, max_wait, probe_interval, old_listener)
    server = parse_settings(server_set or (), tuning_context(True), "--server-set")
    interrupt_on_signals()
    where = out or default_out_dir("restart")
    with Folder.open(where, what="--out") as folder:
        folder.check_writable()
        if folder.exists(RESULT) and not force:
            raise UsageError(f"--out {where} already holds {RESULT}: choose another or --force")
        say: Callable[[str], None] = (
            (lambda _line: None) if quiet else (lambda line: print(one_line(line)))
        )
        say(
            f"portstorm restart: ends within {plan.bound_s:g} s plus setup "
            f"(--duration {plan.duration_s:g} + --max-wait {plan.max_wait_s:g})"
        )
        result = run_restart(plan, say, server)
        folder.write_json(RESULT, result.to_json())
    for f in restart_findings(result):
        print(one_line(f.text))
    print(f"result: {one_line(where / RESULT)}")
    if not no_report:
        from portstorm.report.restartreport import write_restart_report

        html = write_restart_report(result, where / "report.html")[0]
        print(f"report: {one_line(html)}")
    if not result.complete:
        print("portstorm: interrupted; what was measured is saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def _lastack_number(option: str, whole_number: bool) -> Callable[[str | float], float]:
    from portstorm.core.restartlastack import BOUNDS

    def parse(text: str | float) -> float:
        if isinstance(text, float | int):
            return float(text)
        low, high = BOUNDS[option]
        allowed = f"{'a whole number' if whole_number else 'a number'} from {low:g} to {high:g}"
        try:
            if not text.isascii():
                raise ValueError(text)
            value = float(int(text, 10)) if whole_number else float(text)
        except ValueError:
            raise UsageError(f"{option} {text!r} is not valid: allowed {allowed}") from None
        if not low <= value <= high:
            raise UsageError(f"{option} {text} is out of range: allowed {allowed}")
        return value

    parse.__name__ = option.lstrip("-")
    return parse


def _cases(text: str) -> str:
    from portstorm.core.restartlastack import parse_cases

    parse_cases(text)
    return text


def last_ack(
    share: Annotated[
        float,
        typer.Option(
            metavar="PCT",
            parser=_lastack_number("--share", True),
            help="Percent of the connections whose last ACK (the ACK of the server's FIN) "
            "the client's nftables drops (0-100).",
        ),
    ] = 50,
    connections: Annotated[
        float,
        typer.Option(
            metavar="N",
            parser=_lastack_number("--connections", True),
            help="Connections per case (1-10000), the client closing first.",
        ),
    ] = 50,
    rate: Annotated[
        float,
        typer.Option(
            metavar="CONN_PER_S",
            parser=_lastack_number("--rate", False),
            help="Connections per second (1-2000).",
        ),
    ] = 100,
    cases: Annotated[
        str,
        typer.Option(
            metavar="LIST",
            parser=_cases,
            help="Comma-separated cases: time_wait, no_time_wait (tcp_max_tw_buckets=0), "
            "tw_reuse (tw_reuse=1, tw_reuse_delay=1 ms, 10 ports), tw_reuse_100ms (at most "
            "60 conn/s), tw_reuse_1s (the default 1 s delay, at most 8 conn/s), rst.",
        ),
    ] = "time_wait,no_time_wait,tw_reuse,tw_reuse_100ms,tw_reuse_1s,rst",
    out: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            parser=out_path,
            help="Folder for result.json and the report. Default: reports/<UTC time>-lastack/.",
        ),
    ] = None,
    no_report: Annotated[
        bool, typer.Option("--no-report", help="Save result.json only: no report.html or charts.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a result already in --out.")
    ] = False,
) -> int:
    """What TIME_WAIT protects: the client's last ACK dropped; what the server sees.

    Drop the client's last ACK for a share of connections (nftables in the client's
    namespace, matched as conntrack's 4th packet of the flow) and count what the server
    sees when the client keeps TIME_WAIT, skips it, takes it over early with tcp_tw_reuse,
    or closes with RST. Each case runs in a fresh pair sandbox."""
    import datetime as dt

    from portstorm import __version__
    from portstorm.core.files import Folder
    from portstorm.core.outdir import default_out_dir
    from portstorm.core.records import file_header
    from portstorm.core.restartlastack import LastAckPlan, case_finding, lastack_doc, parse_cases
    from portstorm.core.result import utc_iso
    from portstorm.engine.processes import interrupt_on_signals
    from portstorm.engine.restartlastack import run_last_ack
    from portstorm.engine.sysinfo import host_info

    plan = LastAckPlan(int(share), int(connections), rate, parse_cases(cases))
    interrupt_on_signals()
    where = out or default_out_dir("lastack")
    started = utc_iso(dt.datetime.now(dt.UTC))
    with Folder.open(where, what="--out") as folder:
        folder.check_writable()
        if folder.exists(RESULT) and not force:
            raise UsageError(f"--out {where} already holds {RESULT}: choose another or --force")
        results = run_last_ack(plan, lambda line: print(one_line(line)))
        doc = lastack_doc(__version__, file_header(__version__, host_info(), started), plan,
                          results)  # fmt: skip
        folder.write_json(RESULT, doc)
    print(f"{'case':<13} {'conns':>5} {'dropped':>7} {'FIN rtx':>7} {'RST in':>6} "
          f"{'clean':>5} {'resets':>6} {'challenge':>9}")  # fmt: skip
    for r in results:
        print(f"{r.case:<13} {r.connections:>5} {r.last_acks_dropped:>7} "
              f"{r.fin_retransmits:>7} {r.server_rsts_received:>6} {r.clean_closes:>5} "
              f"{r.server_read_resets:>6} "
              f"{r.server_kernel.get('TcpExtTCPSYNChallenge', 0):>9}")  # fmt: skip
    for r in results:
        print(one_line(case_finding(r, plan.share_pct).text))
    print(f"result: {one_line(where / RESULT)}")
    if not no_report and results:
        from portstorm.report.restartlastack import write_lastack_report

        html = write_lastack_report(doc, results, where / "report.html")[0]
        print(f"report: {one_line(html)}")
    return EXIT_OK if doc["complete"] else EXIT_INTERRUPTED
