"""Run inside a test namespace by tests/kernel/test_watch.py
(``python -m tests.support.watchrun FOLDER RUN_S RATE``): ``watch --json`` while a
``portstorm run --sandbox host`` churns, ``ss`` taken as each sample arrives, the run's
interval log timed as it is written, sysctls before and after; all of it to out.json.

Every wait here is for an event and bounded; every process started is ended by its PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

LOW, HIGH = 40000, 40999
PS = [sys.executable, "-m", "portstorm"]


def sysctls() -> dict[str, str]:
    out = {}
    for top in ("/proc/sys/net/ipv4", "/proc/sys/net/core"):
        for folder, _dirs, files in os.walk(top):
            for name in files:
                path = os.path.join(folder, name)
                try:
                    out[path] = Path(path).read_text()
                except OSError:
                    out[path] = "(unreadable)"
    return out


def ss_in_range() -> int:
    """Sockets with a local port in the range, as ss shows them (every state)."""
    text = subprocess.run(["ss", "-Htan"], capture_output=True, text=True, timeout=30).stdout
    n = 0
    for line in text.splitlines():
        cols = line.split()
        port = cols[3].rsplit(":", 1)[-1] if len(cols) >= 4 else ""
        if port.isdigit() and LOW <= int(port) <= HIGH:  # "*": no port, not in the range
            n += 1
    return n


def wait_for(what: str, ok: Any, timeout: float) -> bool:
    """Whether ``ok()`` came true within ``timeout`` seconds (polled every 10 ms)."""
    end = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > end:
            print(f"timed out waiting for {what}", file=sys.stderr)
            return False
        time.sleep(0.01)
    return True


def main(folder: Path, run_s: float, rate: float) -> None:
    before = sysctls()
    samples: list[dict[str, Any]] = []
    watch = subprocess.Popen(
        [*PS, "watch", "--json", "--interval", "1", "--duration", "60"],
        stdout=subprocess.PIPE,
        stderr=(folder / "watch.err").open("w"),
        text=True,
    )
    run: subprocess.Popen[bytes] | None = None

    readings: list[tuple[float, float, int]] = []  # ss: (started, ended, sockets)
    ss_errors: list[str] = []
    stop = threading.Event()

    def read() -> None:
        assert watch.stdout is not None
        for line in watch.stdout:
            samples.append({"doc": json.loads(line), "seen": time.time()})

    def poll_ss() -> None:
        # ss over and over (every ~20 ms), so that one was taken within ~10 ms of each
        # sample's dump whenever its JSON line is printed (it can lag a busy machine)
        while not stop.is_set():
            started = time.time()
            try:
                n = ss_in_range()
            except (OSError, ValueError, subprocess.SubprocessError) as e:
                # kept, and the polling goes on: a thread that died here left every later
                # sample without an ss reading after it, silently (a loaded full run)
                ss_errors.append(f"{type(e).__name__}: {e}")
            else:
                readings.append((started, time.time(), n))
            stop.wait(0.02)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    poller = threading.Thread(target=poll_ss, daemon=True)
    poller.start()
    try:
        if not wait_for("the first watch sample", lambda: len(samples) >= 1, 30):
            raise SystemExit(1)
        log = folder / "run" / "intervals.jsonl"
        run = subprocess.Popen(
            [
                *PS,
                "run",
                "--sandbox",
                "host",
                "--rate",
                f"{rate:g}",
                "--duration",
                f"{run_s:g}",
                "--quiet",
                "--no-report",
                "--out",
                str(folder / "run"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(folder / "run.err").open("w"),
        )
        records: list[dict[str, Any]] = []
        done = 0
        end = time.monotonic() + run_s + 60
        while time.monotonic() < end:
            ended = run.poll() is not None
            if log.exists():
                lines = log.read_bytes().split(b"\n")[:-1]  # whole lines only
                for raw in lines[done:]:
                    records.append({"seen": time.time(), "record": json.loads(raw)})
                done = len(lines)
            if ended:
                break
            time.sleep(0.01)  # polling for the log's next line
        run_end = time.time()
        run_rc = run.wait(timeout=30)

        def calm() -> bool:
            return any(
                s["doc"]["t"] > run_end
                and all(g["exhaustion_in_s"] is None for g in s["doc"]["groups"])
                for s in list(samples)
            )

        calmed = wait_for("a sample not on course after the run", calm, 15)
    finally:
        for p in (run, watch):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in (run, watch):
            if p is not None:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
    reader.join(timeout=10)
    stop.set()
    poller.join(timeout=10)
    for sample in samples:
        # the ss reading taken nearest the sample's start (``t``), and those around the
        # time its dump may have run: the last one ended before t, the first begun after
        # its JSON line was seen (on a busy machine 100 ms after t), and all between
        t = sample["doc"]["t"]
        began, done_at, n = min(readings, key=lambda r: abs((r[0] + r[1]) / 2 - t))
        earlier = [r for r in readings if r[1] <= t]
        after = [r for r in readings if r[0] >= sample["seen"]]
        inside = [r for r in readings if r[1] > t and r[0] < sample["seen"]]
        bracket = earlier[-1:] + inside + after[:1]
        sample.update(ss=n, ss_at=(began + done_at) / 2, ss_bracket=[r[2] for r in bracket])
    (folder / "out.json").write_text(
        json.dumps(
            {
                "samples": samples,
                "records": records,
                "run_end": run_end,
                "run_rc": run_rc,
                "calmed": calmed,
                "ss_errors": ss_errors,
                "watch_rc": watch.returncode,
                "sysctls_changed": sorted(k for k, v in sysctls().items() if before.get(k) != v),
            }
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]))
