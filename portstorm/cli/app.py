"""The command line: the commands, each parsing and calling one function, and errors -> exit codes.

Containing no logic of its own: the run options are declared in options.py, the sweep's
order of operations is sweepcmd.py, what the terminal shows is console.py. Only this module
exits. Exit codes (DESIGN.md, core/errors.py): 0 done (connection failures are data, not
errors); 2 bad usage or input; 3 the environment cannot do it; 130 interrupted, with
partial results saved. No traceback reaches the user for these.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from portstorm.cli import gate_options as go
from portstorm.cli.fleetcmd import fleet_app, merge_cmd
from portstorm.cli.helptext import tidied
from portstorm.cli.options import RunOptions, with_run_options
from portstorm.cli.parsers import click_message, listen_address, number, out_path, typed, whole
from portstorm.cli.restartcmd import last_ack, restart
from portstorm.cli.watchcmd import watch
from portstorm.core.errors import (
    EXIT_ENVIRONMENT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    PortstormError,
)
from portstorm.core.scenario import CloseMode, Target
from portstorm.core.text import one_line as _one_line
from portstorm.core.thresholds import parse_thresholds

app = typer.Typer(
    name="portstorm",
    help="Ephemeral-port exhaustion load tester: churn TCP connections and watch the port space.",
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command()
@with_run_options
def run(
    options: RunOptions,
    out: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            parser=out_path,
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
    junit: go.Junit = None,
) -> int:
    """Churn TCP connections against targets (or the built-in sink); save result.json.

    Then report.html with its charts (PNG), intervals.csv and latency.hlog beside it.
    With --fail-if: exit 1 when a threshold failed, once every file is written."""
    from portstorm.cli.runcmd import run_command

    scenario = options.to_scenario()  # a bad --fail-if is refused here, before anything runs
    return run_command(scenario, out, quiet=quiet, report=not no_report, force=force, junit=junit)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sweep(
    ctx: typer.Context,
    vary: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME=V1,V2,...",
            help="A factor and its values; repeat for a cartesian product. NAME: any --set "
            "sysctl (tcp_tw_reuse), server:NAME for --server-set, or close, bind, rate, "
            "concurrency, sandbox, or remedy (the remedies preset's cells). "
            "ip_local_reserved_ports separates values with ';'.",
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
    repeat: Annotated[
        int,
        typer.Option(metavar="N", parser=whole("--repeat"), help="Runs per cell."),
    ] = 1,
    parallel: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            parser=whole("--parallel"),
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
            parser=out_path,
            help="Folder for sweep.json and cells/. Default: reports/<UTC time>-sweep-NAME/.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress line, only the table.")] = False,
    no_report: Annotated[
        bool, typer.Option("--no-report", help="No report.html for the sweep.")
    ] = False,
    junit: go.Junit = None,
) -> int:
    """Run a matrix of experiments; any 'portstorm run' option applies to every cell.

    Writes sweep.json, cells/, and report.html comparing the cells. With --fail-if: each
    cell's runs and their median judged, exit 1 when one failed, once every file is written."""
    from portstorm.cli.sweepcmd import list_presets_text, run_sweep

    # SIGTERM unwinds like Ctrl-C (exit 130) whenever it comes: during the runs the runner
    # handles both itself; before and after them (planning, the table, the report) this does
    from portstorm.engine.processes import interrupt_on_signals

    interrupt_on_signals()
    if list_presets:
        print(list_presets_text())
        return EXIT_OK
    return run_sweep(
        vary=vary or [], preset_name=preset, repeat=repeat, repeat_given=typed(ctx, "repeat"),
        parallel=parallel, resume=resume, out=out, quiet=quiet, report=not no_report,
        run_args=list(ctx.args), junit=junit,
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
            parser=out_path,
            help="Also write the comparison report (and its PNGs).",
        ),
    ] = None,
    fail_if: go.CompareFailIf = None,
    junit: go.Junit = None,
) -> int:
    """Key metrics side by side, and each one's change against the first.

    A change is marked significant when it is beyond the spread of repeats. With
    --fail-if: exit 1 when a row fails a threshold."""
    from portstorm.cli.comparecmd import run_compare

    gates = parse_thresholds(fail_if or (), changes=True)  # refused before anything is read
    return run_compare(paths, gates, json_out=json_out, html=html, junit=junit)


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
            parser=out_path,
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
        int,
        typer.Option(
            metavar="N",
            parser=whole("--workers"),
            help="Processes, each with its own SO_REUSEPORT listener on every address.",
        ),
    ] = 1,
    request_size: Annotated[
        int,
        typer.Option(
            metavar="BYTES",
            parser=whole("--request-size"),
            help="Read this many bytes of each connection before answering.",
        ),
    ] = 0,
    response_size: Annotated[
        int,
        typer.Option(
            metavar="BYTES",
            parser=whole("--response-size"),
            help="Answer this many bytes (with --http: the body's size).",
        ),
    ] = 0,
    http: Annotated[
        bool, typer.Option("--http", help="Read an HTTP request head, answer 200 OK.")
    ] = False,
    hold: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",
            parser=number("--hold"),
            help="With --close server: wait this long after answering, then close.",
        ),
    ] = 0,
) -> int:
    """Run the built-in sink until interrupted (Ctrl-C or SIGTERM)."""
    import dataclasses

    from portstorm.engine.sink_answer import SinkAnswer
    from portstorm.engine.sink_server import run_sink
    from portstorm.engine.sysinfo import raise_nofile_to_hard

    addresses = [listen_address(text) for text in listen]
    raise_nofile_to_hard()

    def ready(bound: list[tuple[str, int]]) -> None:
        where = ", ".join(str(Target(h, p)) for h, p in bound)
        print(
            f"portstorm sink: listening on {where}, close={close}; Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )

    try:
        answer = SinkAnswer(request_size, response_size, http, hold)
        stats = run_sink(addresses, close, ready, idle_timeout, workers, answer)
    except OSError as e:
        raise _ListenError(f"--listen: cannot listen on {e.strerror}") from None
    counts = " ".join(f"{k}={v}" for k, v in dataclasses.asdict(stats).items())
    print(f"portstorm sink: stopped; {counts}", file=sys.stderr, flush=True)
    return EXIT_OK


@app.command()
def inspect(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> int:
    """This host's port space: range, TIME_WAIT, ports in use, the sysctls that matter, advice."""
    import json

    from portstorm.cli.console import print_inspect
    from portstorm.engine.inspect import gather

    doc = gather()
    if json_out:
        print(json.dumps(doc, indent=1))
    else:
        print_inspect(doc)
    return EXIT_OK


app.command()(watch)  # cli/watchcmd.py: its options and loop live there
app.add_typer(fleet_app)  # cli/fleetcmd.py: fleet playbook, fleet run
app.command("merge")(merge_cmd)  # cli/fleetcmd.py too
app.command()(restart)  # cli/restartcmd.py: the server-restart experiment
app.command("lastack")(last_ack)  # cli/restartcmd.py: what TIME_WAIT protects


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


class _ListenError(PortstormError):
    exit_code = EXIT_ENVIRONMENT


def main(argv: list[str] | None = None) -> NoReturn:
    command = tidied(typer.main.get_command(app))
    try:
        rv = command.main(args=argv, prog_name="portstorm", standalone_mode=False)
    except typer.TyperException as e:
        # click's errors (typer vendors click; TyperException is their public base).
        # Usage errors are exit 2; "no arguments" shows the help text instead.
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
