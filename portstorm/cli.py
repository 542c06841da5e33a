"""The command line: parse, call one function, map errors to exit codes.

Containing no logic of its own. Only this module exits. Exit codes (DESIGN.md): 0 done
(connection failures are data, not errors); 2 bad usage or input; 3 the environment cannot
do it; 130 interrupted, with partial results saved. No traceback reaches the user for these.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from portstorm.core.errors import PortstormError, UsageError
from portstorm.core.scenario import (
    BindMode,
    CloseMode,
    SandboxKind,
    Target,
    parse_number,
    parse_target,
)
from portstorm.core.text import one_line as _one_line

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_INTERRUPTED = 130


def _path(text: str) -> Path:
    """An output path as typed: an empty one would silently mean the current folder."""
    if not text.strip():
        raise typer.BadParameter("an empty path; name a folder or file (e.g. . for this folder)")
    return Path(text)


app = typer.Typer(
    name="portstorm",
    help="Ephemeral-port exhaustion load tester: churn TCP connections and watch the port space.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command()
def run(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[HOST:PORT]...",
            help="Where to connect (through this host's own stack). None: the built-in sink, "
            "in the sandbox (pair by default).",
            show_default=False,
        ),
    ] = None,
    duration: Annotated[str, typer.Option(metavar="SECONDS", help="Seconds of load.")] = "10",
    rate: Annotated[
        str | None,
        typer.Option(
            metavar="CONN_PER_S",
            help="Open loop: attempts started per second on a fixed schedule. "
            "Omitted: closed loop, as fast as possible.",
        ),
    ] = None,
    concurrency: Annotated[
        str | None,
        typer.Option(
            metavar="N",
            help="Closed loop: attempts in flight (default 32). "
            "With --rate: a cap on attempts in flight (default none).",
        ),
    ] = None,
    workers: Annotated[
        str | None,
        typer.Option(
            metavar="N",
            help="Driver processes; the rate or concurrency is split among them and their "
            "counts and histograms merged. Default: one per CPU core (with --rate, at most "
            "one per 10,000 attempts/s).",
        ),
    ] = None,
    sink_workers: Annotated[
        str | None,
        typer.Option(
            metavar="N",
            help="Built-in sink processes (SO_REUSEPORT listeners). "
            "Default: one per two driver processes.",
        ),
    ] = None,
    close: Annotated[
        CloseMode,
        typer.Option(
            help="Who ends each connection: client (TIME_WAIT on the client), "
            "server (TIME_WAIT on the server), rst (abort, no TIME_WAIT)."
        ),
    ] = CloseMode.CLIENT,
    bind: Annotated[
        BindMode,
        typer.Option(
            help="How each socket gets its port: connect (plain connect(), a port per "
            "4-tuple), bind (bind((ip, 0)) first: a port per source address whatever the "
            "destination), no-port (IP_BIND_ADDRESS_NO_PORT, bind, connect), range "
            "(IP_LOCAL_PORT_RANGE per socket, see --port-range)."
        ),
    ] = BindMode.CONNECT,
    port_range: Annotated[
        str | None,
        typer.Option(
            metavar="LOW-HIGH",
            help="With --bind range: the per-socket port range (IP_LOCAL_PORT_RANGE).",
        ),
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            metavar="IP|CIDR",
            help="Source address(es) to spread connections over, round-robin. Repeatable. "
            "pair sandbox: from 198.18.0.0/15, added by portstorm (e.g. 198.18.1.0/24); "
            "loopback: 127.0.0.0/8; host: addresses this host already has.",
        ),
    ] = None,
    sink_ports: Annotated[
        str,
        typer.Option(metavar="N", help="The built-in sink listens on N ports (destinations x N)."),
    ] = "1",
    sink_addresses: Annotated[
        str,
        typer.Option(
            metavar="N",
            help="The built-in sink listens on N addresses (pair: 198.18.0.2 and up; "
            "loopback and host: 127.0.0.1 and up).",
        ),
    ] = "1",
    sandbox: Annotated[
        SandboxKind | None,
        typer.Option(
            help="pair: client and sink namespaces joined by a veth (default without "
            "a target); loopback: one namespace on 127.0.0.1 (flatters capacity: "
            "tcp_tw_reuse=2 applies there only); host: this host's own stack "
            "(default with a target)."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="NAME=VALUE",
            help="A sysctl for the client side, e.g. tcp_tw_reuse=1 or "
            "ip_local_port_range=40000-40099. Repeatable.",
        ),
    ] = None,
    server_set: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME=VALUE",
            help="A sysctl for the pair sandbox's server namespace. Repeatable.",
        ),
    ] = None,
    change_host_sysctls: Annotated[
        bool,
        typer.Option(
            "--change-host-sysctls",
            help="With --sandbox host: let --set change this host's live sysctls. "
            "A restore journal is written first; values are restored at the end, "
            "on Ctrl-C and SIGTERM, and by 'portstorm restore' after a SIGKILL.",
        ),
    ] = False,
    interval: Annotated[
        str, typer.Option(metavar="SECONDS", help="Seconds per interval record.")
    ] = "1",
    connect_timeout: Annotated[
        str, typer.Option(metavar="SECONDS", help="Seconds before an attempt counts as a timeout.")
    ] = "3",
    out: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            parser=_path,
            help="Folder for result.json. Default: reports/<UTC timestamp>-run/.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No live line, only the summary.")] = False,
    no_report: Annotated[
        bool,
        typer.Option(
            "--no-report", help="Save result.json only: no report.html, charts or exports."
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a result already in --out.")
    ] = False,
) -> int:
    """Churn TCP connections against targets (or the built-in sink) and save result.json,
    then report.html with its charts (PNG), intervals.csv and latency.hlog beside it."""
    from portstorm.engine.run import run as do_run
    from portstorm.report import run_report_names
    from portstorm.runargs import scenario_from_options
    from portstorm.ui import LiveLine, print_summary

    scenario = scenario_from_options(
        targets=targets, duration=duration, rate=rate, concurrency=concurrency,
        workers=workers, sink_workers=sink_workers, close=close,
        bind=bind, port_range=port_range, source=source, sink_ports=sink_ports,
        sink_addresses=sink_addresses, sandbox=sandbox, set_=set_, server_set=server_set,
        change_host_sysctls=change_host_sysctls, interval=interval,
        connect_timeout=connect_timeout,
    )  # fmt: skip
    live = LiveLine(quiet=quiet)
    # SIGTERM unwinds like Ctrl-C (exit 130), so namespaces, the sink and any live sysctl
    # changes are cleaned up by the same code; during the load trio handles both itself.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        output = do_run(
            scenario,
            out,
            on_start=lambda eps: live.start(scenario, eps),
            on_interval=live.on_interval,
            force=force,
            also_writes=() if no_report else run_report_names(),
        )
    finally:
        live.finish()
    print_summary(output.result, str(output.path))
    if no_report and force and out is not None:
        from portstorm.report import remove_run_report

        # --force replaced what was in --out: a report there describes the old result
        if removed := remove_run_report(output.path.parent):
            print(f"removed the replaced result's report ({len(removed)} files); --no-report")
    if not no_report:
        from portstorm.report import DEFAULT_NAME, write_run_report

        files = write_run_report(output.result, output.path.parent / DEFAULT_NAME, output.path)
        print(f"report: {_one_line(files.html)}")
    if output.problems:
        # not an interruption: the environment failed mid-run (a worker killed, out of memory)
        print(
            f"portstorm: error: {_one_line(output.problems[0])}; "
            f"partial result in {_one_line(output.path)}",
            file=sys.stderr,
        )
        return EXIT_ENVIRONMENT
    return EXIT_OK if output.result.complete else EXIT_INTERRUPTED


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sweep(
    ctx: typer.Context,
    vary: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME=V1,V2,...",
            help="A factor and its values; repeat for a cartesian product. NAME: any --set "
            "sysctl (tcp_tw_reuse), server:NAME for --server-set, or close, bind, rate, "
            "concurrency, sandbox. ip_local_reserved_ports separates values with ';'.",
            show_default=False,
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="A ready-made sweep; see --list-presets."),
    ] = None,
    list_presets: Annotated[
        bool, typer.Option("--list-presets", help="Name and explain each preset, then exit.")
    ] = False,
    repeat: Annotated[str, typer.Option(metavar="N", help="Runs per cell.")] = "1",
    parallel: Annotated[
        str | None,
        typer.Option(
            metavar="N",
            help="Sandboxed cells at once, each in its own namespaces. Default: what the "
            "cores allow at the chosen rates. Host-mode cells always run one at a time.",
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Finish the sweep in --out: run only what is missing.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            parser=_path,
            help="Folder for sweep.json and cells/. Default: reports/<UTC time>-sweep-NAME/.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress line, only the table.")] = False,
    no_report: Annotated[
        bool, typer.Option("--no-report", help="No report.html for the sweep.")
    ] = False,
) -> int:
    """Run a matrix of experiments; any 'portstorm run' option applies to every cell.
    Writes sweep.json, cells/, and report.html comparing the cells."""
    from portstorm.sweeping import list_presets_text, run_sweep

    # SIGTERM unwinds like Ctrl-C (exit 130) whenever it comes: during the runs the runner
    # handles both itself; before and after them (planning, the table, the report) this does
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    if list_presets:
        print(list_presets_text())
        return EXIT_OK
    return run_sweep(
        vary=vary or [], preset_name=preset, repeat=repeat, parallel=parallel,
        resume=resume, out=out, quiet=quiet, report=not no_report, run_args=list(ctx.args),
    )  # fmt: skip


@app.command()
def compare(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH...",
            help="result.json or sweep.json files (or folders holding one); the first is "
            "the baseline.",
            show_default=False,
        ),
    ],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            metavar="FILE.html",
            parser=_path,
            help="Also write the comparison report (and its PNGs).",
        ),
    ] = None,
) -> int:
    """Key metrics side by side, each one's change against the first, and whether it is
    beyond the spread of repeats."""
    import json

    from portstorm.sweeping import compare_paths
    from portstorm.ui import print_compare

    doc, subjects = compare_paths(paths)
    if json_out:
        print(json.dumps(doc, indent=1))
    else:
        print_compare(doc)
    if html is not None:
        from portstorm.report import write_many_report

        files = write_many_report(subjects, html, "Comparison", inputs=paths)
        print(f"report: {_one_line(files.html)}", file=sys.stderr if json_out else sys.stdout)
    return EXIT_OK


@app.command()
def report(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH...",
            help="A result.json (run report), a sweep.json (sweep report), several of "
            "them or a saved 'compare --json' (comparison report); folders stand for "
            "the file inside.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--out",
            metavar="FILE.html",
            parser=_path,
            help="Where to write it; PNGs go beside it. Default: report.html beside a single "
            "input, reports/<UTC time>-compare/report.html for several.",
        ),
    ] = None,
) -> int:
    """Rebuild a report from saved files only: HTML with embedded charts, PNGs beside it."""
    from portstorm.report import build_report

    files = build_report(paths, out)
    print(f"report: {_one_line(files.html)}")
    for p in files.charts:
        print(f"chart: {_one_line(p)}")
    for p in files.exports.values():
        print(f"export: {_one_line(p)}")
    return EXIT_OK


@app.command()
def sink(
    listen: Annotated[
        list[str],
        typer.Option(
            metavar="HOST:PORT",
            help="Where to listen (port 0: any free port). Repeatable: one sink, many listeners.",
        ),
    ],
    close: Annotated[
        CloseMode,
        typer.Option(
            help="client/rst: wait for the client to end each connection; "
            "server: close first, so TIME_WAIT lands on this side."
        ),
    ] = CloseMode.CLIENT,
    idle_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for a client to end a connection.", min=0.001)
    ] = 60.0,
    workers: Annotated[
        str,
        typer.Option(
            metavar="N",
            help="Processes, each with its own SO_REUSEPORT listener on every address.",
        ),
    ] = "1",
    machine_readable: Annotated[bool, typer.Option(hidden=True)] = False,
    wait_for_go: Annotated[bool, typer.Option(hidden=True)] = False,
) -> int:
    """Run the built-in sink until interrupted (Ctrl-C or SIGTERM)."""

    from portstorm.engine.sink import run_sink
    from portstorm.engine.sinkproc import READY_PREFIX, STATS_PREFIX
    from portstorm.engine.sysinfo import raise_nofile_to_hard

    addresses = [_parse_listen(text) for text in listen]
    n_workers = int(parse_number("--workers", workers))
    raise_nofile_to_hard()
    if wait_for_go and sys.stdin.readline().strip() != "go":
        return EXIT_ENVIRONMENT  # the parent went away before the namespace was ready

    def ready(bound: list[tuple[str, int]]) -> None:
        if machine_readable:
            print(READY_PREFIX + " ".join(f"{h} {p}" for h, p in bound), flush=True)
        else:
            where = ", ".join(str(Target(h, p)) for h, p in bound)
            print(
                f"portstorm sink: listening on {where}, close={close}; Ctrl-C to stop",
                file=sys.stderr,
                flush=True,
            )

    try:
        stats = run_sink(addresses, close, ready, idle_timeout, n_workers)
    except OSError as e:
        raise _ListenError(f"--listen: cannot listen on {e.strerror}") from None
    counts = (
        f"accepted={stats.accepted} closed={stats.closed} resets={stats.resets} "
        f"idle_timeouts={stats.idle_timeouts} accept_errors={stats.accept_errors}"
    )
    if machine_readable:
        print(f"{STATS_PREFIX}{counts}", flush=True)
    else:
        print(f"portstorm sink: stopped; {counts}", file=sys.stderr, flush=True)
    return EXIT_OK


@app.command()
def inspect(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> int:
    """This host's port space: range, TIME_WAIT, ports in use, the sysctls that matter, advice."""
    import json

    from portstorm.engine.inspect import gather
    from portstorm.ui import print_inspect

    doc = gather()
    if json_out:
        print(json.dumps(doc, indent=1))
    else:
        print_inspect(doc)
    return EXIT_OK


@app.command()
def restore(
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Restore even while the run that wrote the journal is still running."
        ),
    ] = False,
) -> int:
    """Put back live sysctls that a killed 'run --sandbox host --change-host-sysctls' changed."""
    from portstorm.engine.journal import journal_path
    from portstorm.engine.journal import restore as do_restore

    values = do_restore(force=force)
    if not values:
        print(f"portstorm restore: nothing to restore (no journal at {journal_path()})")
    for name, value in values.items():
        print(f"portstorm restore: {_one_line(name)} = {value!r}")
    return EXIT_OK


@app.callback()
def _every_command(ctx: typer.Context) -> None:
    """Ephemeral-port exhaustion load tester: churn TCP connections and watch the port space."""
    if ctx.invoked_subcommand not in ("restore", "sink"):
        from portstorm.engine.journal import pending_warning

        warning = pending_warning()
        if warning:
            print(f"portstorm: warning: {warning}", file=sys.stderr)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class _ListenError(PortstormError):
    exit_code = EXIT_ENVIRONMENT


def _parse_listen(text: str) -> tuple[str, int]:
    raw = text.strip()
    if raw.startswith("[") and raw.endswith("]:0"):
        return raw[1:-3], 0
    if raw.endswith(":0") and "]" not in raw and raw.count(":") == 1:
        host = raw[:-2]
        parse_target(f"{host}:1")  # validates the host part
        return host, 0
    try:
        t = parse_target(raw)
    except PortstormError as e:
        raise UsageError(str(e).replace("target", "--listen", 1)) from None
    return t.host, t.port


def main(argv: list[str] | None = None) -> NoReturn:
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="portstorm", standalone_mode=False)
    except typer.TyperException as e:
        # click's errors (typer vendors click; TyperException is their public base).
        # Usage errors are exit 2; "no arguments" shows the help text instead.
        from portstorm.runargs import click_message

        message = click_message(e)
        ctx = getattr(e, "ctx", None)
        if not message.strip():
            pass  # the help text was printed already
        elif "\n" in message.strip():
            print("\n".join(map(_one_line, message.splitlines())), file=sys.stderr)
        else:
            where = ctx.command_path if ctx is not None else "portstorm"
            print(f"{where}: error: {_one_line(message)}", file=sys.stderr)
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("portstorm: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except PortstormError as e:
        print(f"portstorm: error: {_one_line(str(e))}", file=sys.stderr)
        sys.exit(e.exit_code)
    sys.exit(rv if isinstance(rv, int) else EXIT_OK)
