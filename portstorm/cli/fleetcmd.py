"""``portstorm merge`` and ``portstorm fleet`` (``playbook``, ``run``) as a person sees them.

Containing the order of operations around many hosts' runs: read the members (core/
fleetfile.py), merge them (core/fleet.py), write fleet.json and the fleet report, print
the per-host table; and for ``fleet run``, choose the start instant, hand the run to
Ansible (engine/fleetrun.py), then merge what it fetched. Nothing here measures or opens a
connection. Exit codes: 0, 2 (bad usage or a damaged member), 3 (a host gave no result:
it is named; the others are merged all the same).
"""

from __future__ import annotations

import datetime as dt
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from portstorm import __version__
from portstorm.cli.parsers import out_path
from portstorm.core.errors import EXIT_ENVIRONMENT, EXIT_OK, EnvironmentProblem, UsageError
from portstorm.core.files import Folder
from portstorm.core.fleet import Fleet, Missing, merge
from portstorm.core.fleetfile import NAME, fleet_json, read_members
from portstorm.core.outdir import default_out_dir
from portstorm.core.records import utc_iso
from portstorm.core.text import one_line

fleet_app = typer.Typer(
    name="fleet",
    help="Run the same experiment on many hosts at once through Ansible, then merge.",
    no_args_is_help=True,
)
# runs longer than this go as async jobs: an ssh session need not last that long
ASYNC_AFTER_S = 600.0
DEFAULT_LEAD_S = 20.0  # ansible-playbook's start, ssh to every host, portstorm's sandbox
REPORT = "report.html"


def write_fleet(fleet: Fleet, out: Path, report: bool) -> Path:
    """fleet.json (and the fleet report beside it) in ``out``; the fleet.json path."""
    from portstorm.report import fleet_report_names, write_fleet_report

    names = [NAME, *(fleet_report_names(out / REPORT) if report else [])]
    with Folder.open(out) as folder:
        folder.refuse_links(names)
        folder.check_writable()
        path = folder.write_json(NAME, fleet_json(fleet, __version__, utc_iso(_now())))
    if report:
        files = write_fleet_report(path, out / REPORT)
        print(f"report: {one_line(files.html)}")
    return path


def print_fleet(fleet: Fleet, path: Path) -> None:
    """The per-host table, sorted by rate after exhaustion, then the merged row."""
    why = {o.name: "; ".join(o.why) for o in fleet.outliers}
    print(f"{'host':<16} {'attempts':>9} {'succeeded':>9} {'conn/s':>9} {'after exh.':>10} "
          f"{'p99 us':>8}  first failure")  # fmt: skip
    for m in fleet.by_rate_after_exhaustion():
        r = m.result
        after = "-" if m.after_exhaustion is None else f"{m.after_exhaustion:.2f}"
        p99 = "-" if m.p99_us is None else str(m.p99_us)
        ff = (
            "never" if r.first_failure_s is None else f"{r.first_failure_s:.2f} s {m.first_failure}"
        )
        print(f"{one_line(m.name)[:16]:<16} {r.attempts:>9} {r.succeeded:>9} {r.rate:>9.2f} "
              f"{after:>10} {p99:>8}  {ff}{'  OUTLIER' if m.name in why else ''}")  # fmt: skip
    mr = fleet.merged
    merged_p99 = mr.histogram.percentile(99.0)
    rate = sum(m.result.rate for m in fleet.members)
    shown = "-" if merged_p99 is None else str(merged_p99)
    print(f"{'merged':<16} {mr.attempts:>9} {mr.succeeded:>9} {rate:>9.2f} {'':>10} {shown:>8}")
    if fleet.start_spread_s is not None:
        print(f"loads started within {fleet.start_spread_s * 1000:.1f} ms of each other")
    for name, text in why.items():
        print(f"outlier: {one_line(name)}: {one_line(text)}")
    for x in fleet.missing:
        print(f"missing: {one_line(x.name)}: {one_line(x.reason)}")
    print(f"fleet: {one_line(path)}")


def merge_cmd(
    dirs: Annotated[
        list[Path],
        typer.Argument(
            metavar="DIR...",
            help="Run folders (each holding a result.json), or a folder of them "
            "(a fleet run's reports/<time>-fleet/).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            parser=out_path,
            help="Folder for fleet.json and its report. Default: reports/<UTC time>-merge/.",
        ),
    ] = None,
    no_report: Annotated[
        bool, typer.Option("--no-report", help="fleet.json only: no report.html or charts.")
    ] = False,
) -> int:
    """Merge many hosts' runs exactly into fleet.json.

    Per-host rows, totals and histograms added, intervals aligned on wall-clock time, the
    hosts that differ named."""
    fleet = merge(read_members(dirs))
    path = write_fleet(fleet, out or default_out_dir("merge", _now()), not no_report)
    print_fleet(fleet, path)
    return EXIT_OK


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@fleet_app.command("playbook")
def playbook() -> int:
    """Print the playbook 'fleet run' drives (install, run at one instant, fetch)."""
    from portstorm.engine.fleetrun import playbook_text

    sys.stdout.write(playbook_text())
    return EXIT_OK


def _lead(text: str | float) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 1 <= value <= 3600:  # NaN fails too
        raise UsageError(f"--lead {text!r}: allowed 1-3600 seconds")
    return value


def _unpack(out: Path, hosts: Sequence[str]) -> dict[str, str]:
    """Each fetched ``<host>.tar.gz`` unpacked into ``<host>/`` (core/fleetunpack.py), then
    removed; host -> why, for those whose archive was refused."""
    from portstorm.core.fleetunpack import unpack_result

    damaged = {}
    for h in hosts:
        archive = out / f"{h}.tar.gz"
        if not archive.is_file():
            continue
        try:
            with Folder.open(out / h) as folder:
                unpack_result(archive, folder)
        except UsageError as e:
            damaged[h] = f"damaged result: {e}"
        with Folder.open(out) as parent:
            parent.remove(archive.name)
    return damaged


def _load_options(args: list[str]) -> list[str]:
    """``args`` without run's own options that are not RunOptions (checked on each host)."""
    kept, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == "--no-report":
            continue
        elif a == "--junit":
            skip = True
        elif not a.startswith("--junit="):
            kept.append(a)
    return kept


# run options that fleet run sets itself on every host
_OWN = ("--out", "--start-at", "--force", "--quiet")


@fleet_app.command(
    "run",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    options_metavar="[OPTIONS] -- [RUN OPTIONS]",
)
def fleet_run(
    ctx: typer.Context,
    inventory: Annotated[
        Path, typer.Option("-i", "--inventory", metavar="INVENTORY", help="Ansible inventory.")
    ],
    limit: Annotated[
        str | None,
        typer.Option(metavar="PATTERN", help="Only these hosts or groups (ansible --limit)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            parser=out_path,
            help="Folder for <host>/ and fleet.json. Default: reports/<UTC time>-fleet/.",
        ),
    ] = None,
    lead: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",
            parser=_lead,
            help="Seconds from the last host installed to the common start (1-3600).",
        ),
    ] = DEFAULT_LEAD_S,
    venv: Annotated[
        str, typer.Option(metavar="PATH", help="The venv on each host (its bin/portstorm runs).")
    ] = "/opt/portstorm",
    install: Annotated[
        str,
        typer.Option(
            metavar="pip|wheel|none",
            help="pip: pip install --spec into the venv; wheel: push --wheel and "
            "install it (a checkout no index holds); none: use the venv as is.",
        ),
    ] = "pip",
    spec: Annotated[str, typer.Option(metavar="SPEC", help="What pip installs.")] = "portstorm",
    wheel: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE.whl",
            help="A wheel built from a checkout (pip wheel --no-deps -w dist .).",
        ),
    ] = None,
    remote_dir: Annotated[
        str | None,
        typer.Option(
            metavar="DIR",
            help="Where each host writes its run, as DIR/<host>. "
            "Default: /tmp/portstorm-fleet-<UTC time>.",
        ),
    ] = None,
    no_report: Annotated[bool, typer.Option("--no-report", help="fleet.json only.")] = False,
    keep_remote: Annotated[
        bool, typer.Option("--keep-remote", help="Leave each host's run folder on the host.")
    ] = False,
) -> int:
    """Run 'portstorm run OPTIONS' on every host of INVENTORY, all at one instant.

    Each starts at the same --start-at; each result is fetched to DIR/<host>/ and merged
    into DIR/fleet.json. Options after -- are portstorm run's. A host without a result:
    named, exit 3."""
    from portstorm.cli.optionsargv import options_from_argv
    from portstorm.engine.fleetrun import missing_hosts, run_playbook

    run_args = list(ctx.args)
    for a in run_args:
        if a.split("=", 1)[0] in _OWN:
            raise UsageError(f"fleet run: {a.split('=', 1)[0]} is set by fleet run itself; drop it")
    options, _ = options_from_argv(_load_options(run_args))  # a typo: refused here, once
    if install not in ("pip", "wheel", "none"):
        raise UsageError(f"--install {install!r}: allowed pip, wheel or none")
    if (install == "wheel") != (wheel is not None):
        raise UsageError("--wheel FILE goes with --install wheel (and it needs one)")
    if not inventory.is_file():
        raise UsageError(f"-i {inventory}: no such inventory file")
    now = _now()
    out = out or default_out_dir("fleet", now)
    with Folder.open(out) as folder:
        if folder.exists(NAME):
            raise UsageError(f"--out {out}: already holds a fleet ({NAME}); choose another folder")
        folder.check_writable()
    hold = float(options.hold or 0)
    per_host_s = float(options.duration) + hold + 2 * float(options.connect_timeout) + 120
    # the play chooses the instant once every host is installed (a first install can take
    # minutes): --lead counts from there
    print(f"fleet run: every host starts {lead:g} s after the last one is installed",
          file=sys.stderr, flush=True)  # fmt: skip
    extra = {
        "portstorm_lead": str(math.ceil(lead)),
        "portstorm_args": run_args,
        "portstorm_fetch_dir": str(out.resolve()),
        "portstorm_remote_base": remote_dir or f"/tmp/portstorm-fleet-{now:%Y%m%dT%H%M%SZ}",
        "portstorm_venv": venv,
        "portstorm_install": install,
        "portstorm_spec": spec,
        "portstorm_timeout": int(per_host_s),
        "portstorm_async": per_host_s > ASYNC_AFTER_S,
        "portstorm_cleanup": not keep_remote,
        **({"portstorm_wheel": str(wheel.resolve())} if wheel is not None else {}),
    }

    def echo(line: str) -> None:
        print(one_line(line), file=sys.stderr, flush=True)

    installing = 0 if install == "none" else 900  # a first pip install with its deps
    ran = run_playbook(inventory, limit, extra, installing + lead + per_host_s + 300, echo)
    if not ran.recap:
        last = next((t for t in reversed(ran.tail) if t.strip()), "no output")
        raise EnvironmentProblem(
            f"fleet run: ansible-playbook exited {ran.returncode} before reaching any host: "
            f"{one_line(last)[:300]}"
        )
    damaged = _unpack(out, list(ran.recap))
    fetched = [h for h in ran.recap if h not in damaged and (out / h / "result.json").is_file()]
    missing = [Missing(h, damaged.get(h) or why) for h, why in missing_hosts(ran, fetched).items()]
    if not fetched:
        names = ", ".join(f"{x.name} ({x.reason})" for x in missing)
        raise EnvironmentProblem(f"fleet run: no host gave a result: {names}")
    fleet = merge(read_members([out / h for h in fetched]), missing)
    path = write_fleet(fleet, out, report=not no_report)
    print_fleet(fleet, path)
    return EXIT_ENVIRONMENT if missing else EXIT_OK
