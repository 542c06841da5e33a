"""The built-in sink process's main: the sink's side of sink_handle.py's protocol.

Containing no server (sink_server.py) and no handle (sink_handle.py). Started as ``python
-m portstorm.engine.sink_main`` by SinkProcess, never by a user (``portstorm sink`` is the
user's command): it reads its job, one JSON line, from stdin; with ``wait_for_go`` it then
waits for a ``go`` line (the parent configures the sink's new namespace meanwhile); it says
``READY_PREFIX`` and the bound addresses once every listener listens, serves until SIGTERM,
and says ``STATS_PREFIX`` with its counts. A listener that cannot be opened is one line on
stderr and exit 3, which the handle reports.

The same convention as the driver workers (worker_main.py): a module of its own, not the
Typer command line. Typer's option coercion imports pydantic, and that start-up was most
of a sink's time to listen: 0.6 s and 0.7 CPU-s through ``portstorm sink``, 0.26 s and 0.3
CPU-s this way (measured here), paid once per run and once per sweep cell.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

from portstorm.core.errors import EXIT_ENVIRONMENT, EXIT_OK, EXIT_USAGE
from portstorm.core.scenario import CloseMode
from portstorm.engine.sink_answer import SinkAnswer
from portstorm.engine.sink_server import READY_PREFIX, STATS_PREFIX, run_sink
from portstorm.engine.sysinfo import raise_nofile_to_hard


def job_line(
    addresses: list[tuple[str, int]],
    close: CloseMode,
    idle_timeout: float,
    workers: int,
    answer: SinkAnswer,
    wait_for_go: bool,
) -> str:
    """The job SinkProcess writes to the child's stdin (``main`` reads it back)."""
    job = {
        "listen": [[h, p] for h, p in addresses],
        "close": str(close),
        "idle_timeout": idle_timeout,
        "workers": workers,
        "answer": dataclasses.asdict(answer),
        "wait_for_go": wait_for_go,
    }
    return json.dumps(job, separators=(",", ":")) + "\n"


def _read_job(line: str) -> tuple[list[tuple[str, int]], CloseMode, float, int, SinkAnswer, bool]:
    job: dict[str, Any] = json.loads(line)
    addresses = [(str(h), int(p)) for h, p in job["listen"]]
    answer = SinkAnswer(**job["answer"])
    return (addresses, CloseMode(job["close"]), float(job["idle_timeout"]), int(job["workers"]),
            answer, bool(job["wait_for_go"]))  # fmt: skip


def main() -> int:
    raise_nofile_to_hard()
    try:
        addresses, close, idle_timeout, workers, answer, wait = _read_job(sys.stdin.readline())
    except (ValueError, KeyError, TypeError) as e:
        print(f"portstorm sink: a malformed job from the parent: {e}", file=sys.stderr)
        return EXIT_USAGE
    if wait and sys.stdin.readline().strip() != "go":
        return EXIT_ENVIRONMENT  # the parent went away before the namespace was ready

    def ready(bound: list[tuple[str, int]]) -> None:
        print(READY_PREFIX + " ".join(f"{h} {p}" for h, p in bound), flush=True)

    try:
        stats = run_sink(addresses, close, ready, idle_timeout, workers, answer)
    except OSError as e:
        # open_listeners() names the address in strerror
        print(f"cannot listen on {e.strerror}", file=sys.stderr, flush=True)
        return EXIT_ENVIRONMENT
    counts = " ".join(f"{k}={v}" for k, v in dataclasses.asdict(stats).items())
    print(f"{STATS_PREFIX}{counts}", flush=True)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
