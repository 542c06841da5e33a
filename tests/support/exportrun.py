"""Run inside a test namespace by tests/kernel/test_exporter.py
(``python -m tests.support.exportrun FOLDER``): ``portstorm watch --listen --textfile`` over
connections this script makes on loopback, a reader parsing the textfile in a loop all the
while, and /metrics scraped in both formats once the connections stand still; all of it to
FOLDER/out.json.

The connections, from 127.0.0.1 with local ports in the namespace's 40000-40999:
HELD established toward 127.0.0.1:9001, and CLOSED closed from this side toward
127.0.0.1:9000 (each then holds its port 60 s in TIME_WAIT; tcp_tw_reuse=0), half before
watch starts and half while it runs, so the textfile changes under the reader.

Every wait here is for an event and bounded; every process started is ended by its PID.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

LOW, HIGH = 40000, 40999
HELD, CLOSED = 30, 60
LISTEN = ("127.0.0.1", 9477)  # the namespace is the test's own: nothing else listens there
SCRAPE_PORTS = (30001, 30002)  # below the range: one each, as the first may sit in TIME_WAIT
PS = [sys.executable, "-m", "portstorm"]


def sink(port: int, stop: threading.Event) -> socket.socket:
    """A listener that closes each connection once its peer has (so the peer, which closed
    first, is the one left in TIME_WAIT)."""
    ls = socket.create_server(("127.0.0.1", port), backlog=256)
    ls.settimeout(0.2)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = ls.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=_drain, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return ls


def _drain(conn: socket.socket) -> None:
    with conn, contextlib.suppress(OSError):
        conn.settimeout(30)
        while conn.recv(1024):
            pass


def closed(n: int) -> None:
    """``n`` connections closed from this side first, each kept until the peer's FIN is in.
    Closed at once instead (orphaned in FIN_WAIT2 when the peer's FIN came), 2 runs in 20
    here left 59 of 60 in TIME_WAIT, the namespace's TcpOutRsts at 1: one was reset."""
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", 9000), timeout=5) as s:
            s.shutdown(socket.SHUT_WR)
            assert s.recv(1) == b""


def ss_in_range() -> dict[str, int]:
    """Sockets with a local port in the range by ss's state name."""
    text = subprocess.run(["ss", "-Htan"], capture_output=True, text=True, timeout=10).stdout
    out: dict[str, int] = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 4 and LOW <= int(cols[3].rsplit(":", 1)[1]) <= HIGH:
            out[cols[0]] = out.get(cols[0], 0) + 1
    return out


def scrape(source_port: int, accept: str | None = None) -> tuple[str, str]:
    """GET /metrics from a local port outside the watched range: from an ephemeral port, the
    scrape's own connection is one more socket in the range, and a sample taken while it is
    open counts it (91 where ss, read before, had 90: seen in a full suite)."""
    conn = http.client.HTTPConnection(
        *LISTEN, timeout=10, source_address=("127.0.0.1", source_port)
    )
    try:
        conn.request("GET", "/metrics", headers={"Accept": accept} if accept else {})
        response = conn.getresponse()
        return str(response.headers["Content-Type"]), response.read().decode()
    finally:
        conn.close()


def wait_for(what: str, ok: Any, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)


def _still(line: dict[str, Any]) -> bool:
    return all(g["rate_per_s"] == 0 for g in line["groups"])


def main(folder: Path) -> None:
    stop = threading.Event()
    listeners = [sink(9000, stop), sink(9001, stop)]
    held = [socket.create_connection(("127.0.0.1", 9001), timeout=5) for _ in range(HELD)]
    closed(CLOSED // 2)
    textfile = folder / "portstorm.prom"
    watch = subprocess.Popen(
        [*PS, "watch", "--json", "--interval", "0.1", "--duration", "40", "--top", "1",
         "--listen", f"{LISTEN[0]}:{LISTEN[1]}", "--textfile", str(textfile)],
        stdout=subprocess.PIPE, stderr=(folder / "watch.err").open("w"), text=True,
    )  # fmt: skip
    lines: list[dict[str, Any]] = []
    reads: list[int] = []
    bad: list[str] = []

    def follow() -> None:
        assert watch.stdout is not None
        for line in watch.stdout:
            lines.append(json.loads(line))

    def read_textfile() -> None:
        while not stop.is_set():
            try:
                text = textfile.read_text()
            except FileNotFoundError:
                time.sleep(0.001)
                continue
            try:
                names = {f.name for f in text_string_to_metric_families(text)}
                if "portstorm_sample_time_seconds" not in names:  # a file cut short
                    bad.append(text)
            except Exception as e:
                bad.append(f"{e!r}: {text!r}")
            reads.append(hash(text))

    threading.Thread(target=follow, daemon=True).start()
    reader = threading.Thread(target=read_textfile, daemon=True)
    reader.start()
    out: dict[str, Any] = {}
    try:
        wait_for("the first watch sample", lambda: len(lines) >= 1, 30)
        for _ in range(CLOSED - CLOSED // 2):  # while watch samples, ~100 per second
            closed(1)
            time.sleep(0.01)
        # the rate is a mean over the last 3 s (core/watch.py SMOOTH_S): once it has fallen
        # to 0, no group is on course to run out
        wait_for("a sample with no new connection", lambda: _still(lines[-1]), 30)
        out["ss"] = ss_in_range()
        out["text_type"], out["text"] = scrape(SCRAPE_PORTS[0])
        out["om_type"], out["openmetrics"] = scrape(
            SCRAPE_PORTS[1], "application/openmetrics-text; version=1.0.0"
        )
        out["last_line"] = lines[-1]
    finally:
        stop.set()
        reader.join(timeout=10)
        if watch.poll() is None:
            watch.send_signal(signal.SIGINT)
        try:
            out["watch_rc"] = watch.wait(timeout=30)
        except subprocess.TimeoutExpired:
            watch.kill()
            out["watch_rc"] = watch.wait()
        for s in (*held, *listeners):
            s.close()
    out["reads"], out["distinct_reads"], out["bad"] = len(reads), len(set(reads)), bad[:3]
    out["samples"] = len(lines)
    (folder / "out.json").write_text(json.dumps(out))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
