"""``portstorm run`` end to end: the live line, the load, the summary, the report, the exit code.

Containing the order of what a person sees around one run, and nothing that measures
(engine/run.py) or draws (report/). SIGINT and SIGTERM unwind like Ctrl-C at any point
(engine/processes.py), so namespaces, the sink and live sysctl changes are cleaned up by
the same code. An interrupted run has saved its result.json before its report is drawn;
drawing takes a second or two, so the user is told, and a second Ctrl-C skips it (nothing
half-written: a report's files are written together once drawn). A run --stop-on-fail
ended (engine/stoponfail.py) is not interrupted: it is reported as any run, and exits 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

from portstorm.core.errors import EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_OK, EXIT_THRESHOLD
from portstorm.core.scenario import Scenario
from portstorm.core.text import one_line


def run_command(
    scenario: Scenario,
    out: Path | None,
    *,
    quiet: bool,
    report: bool,
    force: bool,
    junit: Path | None = None,
) -> int:
    from portstorm.cli.console import LiveLine
    from portstorm.cli.summary import print_summary
    from portstorm.engine.processes import interrupt_on_signals
    from portstorm.engine.run import run as do_run
    from portstorm.report import run_report_names

    live = LiveLine(quiet=quiet)
    interrupt_on_signals()
    try:
        output = do_run(
            scenario,
            out,
            on_start=lambda eps: live.start(scenario, eps),
            on_interval=live.on_interval,
            force=force,
            also_writes=run_report_names() if report else (),
        )
    finally:
        live.finish()
    print_summary(output.result, str(output.path))
    if junit is not None:  # before the report: a skipped drawing still leaves the verdicts
        from portstorm.report import write_junit

        print(f"junit: {one_line(write_junit(output.result, junit))}")
    folder = output.path.parent
    if not report and force and out is not None:
        from portstorm.report import remove_run_report

        # --force replaced what was in --out: a report there describes the old result
        if removed := remove_run_report(folder):
            print(f"removed the replaced result's report ({len(removed)} files); --no-report")
    if report:
        from portstorm.report import DEFAULT_NAME, write_run_report

        # --stop-on-fail ended it: not an interruption, the report is drawn as for any run
        interrupted = not output.result.complete and not output.problems and not output.stopped
        # the handler first, then the word: a Ctrl-C right after the word must be the skip
        again = interrupt_on_signals() if interrupted else None  # the second interrupt
        try:
            if interrupted:
                print(
                    f"portstorm: interrupted; result saved in {one_line(output.path)}; drawing "
                    "its report (Ctrl-C again to skip it)",
                    file=sys.stderr,
                    flush=True,
                )
            else:
                # drawing takes seconds (about 5 s after a 10 s run): say what the wait is
                live.note(f"portstorm: writing the report to {folder / DEFAULT_NAME} ...")
            files = write_run_report(
                output.result,
                folder / DEFAULT_NAME,
                output.path,
                cancelled=again.is_set if again is not None else lambda: False,
            )
        except KeyboardInterrupt:
            print(
                f"portstorm: report skipped; 'portstorm report {one_line(folder)}' draws it",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
        print(f"report: {one_line(files.html)}")
    if output.problems:
        # not an interruption: the environment failed mid-run (a worker killed, out of memory)
        print(
            f"portstorm: error: {one_line(output.problems[0])}; "
            f"partial result in {one_line(output.path)}",
            file=sys.stderr,
        )
        return EXIT_ENVIRONMENT
    if not output.result.complete and not output.stopped:
        return EXIT_INTERRUPTED
    # every file is written by now: a failed threshold is the run's verdict, not an error
    return EXIT_THRESHOLD if any(not v.passed for v in output.result.thresholds) else EXIT_OK
