"""``portstorm run`` options as data: to a Scenario, and back to a command line.

Containing the one place where option values become a Scenario, so that ``run`` and every
cell of a ``sweep`` are validated by the same code, and the sweep can hand each cell to a
``portstorm run`` child process as a plain command line (recorded in sweep.json, so any
cell can be re-run by hand).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

import typer

from portstorm.core.addressing import parse_sources
from portstorm.core.errors import UsageError
from portstorm.core.scenario import (
    SandboxKind,
    Scenario,
    parse_number,
    parse_optional,
    parse_socket_port_range,
    parse_target,
)
from portstorm.core.tuning import parse_settings


def scenario_from_options(
    *,
    targets: Sequence[str] | None,
    duration: str,
    rate: str | None,
    concurrency: str | None,
    workers: str | None,
    sink_workers: str | None,
    close: Any,
    bind: Any,
    port_range: str | None,
    source: Sequence[str] | None,
    sink_ports: str,
    sink_addresses: str,
    sandbox: SandboxKind | None,
    set_: Sequence[str] | None,
    server_set: Sequence[str] | None,
    change_host_sysctls: bool,
    interval: str,
    connect_timeout: str,
    **_ignored: Any,
) -> Scenario:
    """Every check of ``portstorm run``'s input; one UsageError on the first bad value."""
    from portstorm.engine.sysinfo import default_sink_workers, default_workers, tuning_context

    n_in_flight = parse_optional("--concurrency", concurrency)
    per_s = parse_optional("--rate", rate)
    n_workers = int(parse_optional("--workers", workers) or default_workers(per_s))
    parsed_targets = tuple(parse_target(t) for t in targets or ())
    kind = sandbox or (SandboxKind.HOST if parsed_targets else SandboxKind.PAIR)
    ctx = tuning_context(in_new_namespace=kind is not SandboxKind.HOST)
    client_set = parse_settings(set_ or (), ctx, "--set")
    if client_set and kind is SandboxKind.HOST and not change_host_sysctls:
        raise UsageError(
            "--set with --sandbox host would change this host's live sysctls: add "
            "--change-host-sysctls to confirm, or use --sandbox pair or loopback"
        )
    return Scenario(
        targets=parsed_targets,
        sandbox=kind,
        client_set=tuple(client_set.items()),
        server_set=tuple(parse_settings(server_set or (), ctx, "--server-set").items()),
        change_host=change_host_sysctls,
        duration_s=parse_number("--duration", duration),
        rate=per_s,
        concurrency=int(n_in_flight) if n_in_flight is not None else None,
        workers=n_workers,
        sink_workers=int(
            parse_optional("--sink-workers", sink_workers)
            or (1 if parsed_targets else default_sink_workers(n_workers))
        ),
        close=close,
        bind=bind,
        socket_port_range=parse_socket_port_range(port_range),
        sources=parse_sources(source or ()),
        sink_ports=int(parse_number("--sink-ports", sink_ports)),
        sink_addresses=int(parse_number("--sink-addresses", sink_addresses)),
        interval_s=parse_number("--interval", interval),
        connect_timeout_s=parse_number("--connect-timeout", connect_timeout),
    )


def _run_command() -> Any:
    from portstorm.cli import app

    group = typer.main.get_command(app)
    return group.commands["run"]  # type: ignore[attr-defined]


def click_message(e: typer.TyperException) -> str:
    """click's message, keeping its guess at a mistyped option only when the guess is close:
    its cutoff (difflib's 0.6, dashes included) suggested --out for --bogus."""
    name = getattr(e, "option_name", None)
    guesses = getattr(e, "possibilities", None)
    if not isinstance(name, str) or not guesses:
        return e.format_message()
    close = difflib.get_close_matches(
        name.lstrip("-"), [g.lstrip("-") for g in guesses], n=3, cutoff=0.75
    )
    message = f"No such option: {name}"
    return f"{message} (did you mean {', '.join('--' + c for c in close)}?)" if close else message


def parse_run_args(argv: Sequence[str]) -> tuple[dict[str, Any], set[str]]:
    """``portstorm run`` arguments -> (its parameters with defaults filled in, the names of
    those given on the command line), or one UsageError naming the problem."""
    cmd = _run_command()
    try:
        ctx = cmd.make_context("portstorm run", list(argv))
    except typer.TyperException as e:
        raise UsageError(click_message(e).strip().replace("\n", " ")) from None
    given = {
        name
        for name in ctx.params
        if (src := ctx.get_parameter_source(name)) is not None and src.name == "COMMANDLINE"
    }
    return dict(ctx.params), given


def run_argv(params: Mapping[str, Any]) -> list[str]:
    """Parameters -> the shortest ``portstorm run`` arguments that give them back."""
    cmd = _run_command()
    argv: list[str] = []
    positional: list[str] = []
    for p in cmd.params:
        value = params.get(p.name, p.default)
        if p.param_type_name == "argument":
            positional += [str(v) for v in value or ()]
            continue
        if value == p.default or value is None or value == [] or value == ():
            continue
        flag = max(p.opts, key=len)
        if p.is_flag:
            argv.append(flag if value else (p.secondary_opts or [flag])[0])
        elif p.multiple:
            for v in value:
                argv += [flag, str(v)]
        else:
            argv += [flag, str(value)]
    return argv + positional
