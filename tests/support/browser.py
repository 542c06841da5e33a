"""Render a local HTML file in Debian's headless Chromium and report what a person would see.

For tests of HTML reports: ``render(html, screenshot)`` loads the file over ``file://``, waits
for the load event, and returns every ``<img>``'s natural width (0 = the image did not load
or decode), the console errors (``console.error``/``console.assert``, uncaught exceptions,
failed resource loads and other log entries of level error) and the title; it also saves a
full-page PNG screenshot, which a person (or the file tool) can look at.
``click_links(html)`` clicks each ``<a>`` of the page in turn, the page loaded afresh before
each, and returns where each click led and what it logged: a ``javascript:`` link that runs
shows up in its console errors.

The harness speaks the Chrome DevTools Protocol itself over ``--remote-debugging-pipe``
(fds 3 and 4, NUL-terminated JSON), so it needs no dependency but the ``chromium`` Debian
package and no download of a browser of its own. Each call starts one browser with a fresh
profile in a temporary directory, in a session of its own, and always ends it by its PID
(SIGKILL to its process group, every member reaped), on success, error or timeout alike.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import math
import os
import select
import shutil
import signal
import tempfile
import time
from base64 import b64decode
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.require import require

DEFAULT_TIMEOUT = 60.0
MAX_SCREENSHOT_HEIGHT = 16_384  # Chromium's largest texture side

_SRC_CHARS = 60
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37

_IMAGES_JS = (
    "Array.from(document.images, (img) => [img.getAttribute('src') ?? '', img.naturalWidth])"
)


@dataclass(frozen=True)
class PageCheck:
    """What a person would see in the rendered page."""

    images: list[tuple[str, int]]
    """(first 60 characters of the ``src`` attribute, ``naturalWidth``) for every ``<img>``,
    in document order. A width of 0 means the image did not load or decode."""
    console_errors: list[str]
    """``console.error``/``console.assert`` messages, uncaught exceptions, failed resource
    loads and other browser log entries of level error, in the order they happened."""
    title: str


def chromium_path() -> str | None:
    """Debian's chromium (the ``chromium`` package), or None when it is not installed."""
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def require_chromium() -> str:
    """The chromium path; skips the test without it, except under CI (CI=true): fails there."""
    path = chromium_path()
    require(path is not None, "Debian's chromium is not installed (apt-get install chromium)")
    assert path is not None
    return path


def render(
    html: Path,
    screenshot: Path,
    width: int = 1280,
    height: int = 900,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> PageCheck:
    """Load ``html`` in headless Chromium with a ``width`` x ``height`` viewport, save a
    full-page PNG to ``screenshot`` and return what the page showed.

    Raises FileNotFoundError without chromium or without the file, TimeoutError when the
    whole render takes longer than ``timeout`` seconds, RuntimeError when the browser fails.
    """
    binary = chromium_path()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (apt-get install chromium)")
    url = html.resolve(strict=True).as_uri()
    deadline = time.monotonic() + timeout
    with (
        tempfile.TemporaryDirectory(prefix="browser-harness-", ignore_cleanup_errors=True) as tmp,
        _browser(binary, Path(tmp), width, height) as (cdp, log),
    ):
        try:
            check, png = _load_and_look(cdp, url, width, height, deadline)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc} (timeout {timeout:g} s){_tail(log)}") from None
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}{_tail(log)}") from None
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.write_bytes(png)
    return check


@dataclass(frozen=True)
class LinkClick:
    """What clicking one ``<a>`` of a page did."""

    href: str
    """The link's ``href`` attribute as written in the page."""
    url: str
    """Where the tab was once the click had settled: the page's own URL when it stayed."""
    title: str
    """The title of the document shown after the click."""
    console_errors: list[str]
    """As in PageCheck: what the page and the click logged at level error."""


def click_links(html: Path, *, timeout: float = DEFAULT_TIMEOUT) -> list[LinkClick]:
    """Load ``html`` in headless Chromium and click each of its links in turn, the page
    loaded afresh before each click; report where each click led and what it logged.

    A ``javascript:`` link runs its script in the page when clicked (its effects show up
    in ``console_errors`` and ``title``); a file link navigates the tab (``url``).
    Downloads are refused. Raises as ``render`` does.
    """
    binary = chromium_path()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (apt-get install chromium)")
    url = html.resolve(strict=True).as_uri()
    deadline = time.monotonic() + timeout
    with (
        tempfile.TemporaryDirectory(prefix="browser-harness-", ignore_cleanup_errors=True) as tmp,
        _browser(binary, Path(tmp), 1280, 900) as (cdp, log),
    ):
        try:
            return _click_each(cdp, url, deadline)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc} (timeout {timeout:g} s){_tail(log)}") from None
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}{_tail(log)}") from None


_SETTLE_S = 0.3  # a javascript: link's script runs as a task right after the click


def _click_each(cdp: _Cdp, url: str, deadline: float) -> list[LinkClick]:
    cdp.deadline = deadline
    cdp.call("Browser.setDownloadBehavior", {"behavior": "deny"})
    target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    attached = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})
    session = str(attached["sessionId"])
    for domain in ("Page", "Runtime", "Log"):
        cdp.call(f"{domain}.enable", session=session)

    def load() -> int:
        start = len(cdp.events)
        navigated = cdp.call("Page.navigate", {"url": url}, session=session)
        if navigated.get("errorText"):
            raise RuntimeError(f"chromium could not open {url}: {navigated['errorText']}")
        cdp.wait_for("Page.loadEventFired", session, start)
        return start

    load()
    hrefs = [str(h) for h in cdp.evaluate(_HREFS_JS, session)]
    clicks = []
    for i, href in enumerate(hrefs):
        start = load()
        before = len(cdp.events)
        # clicked from a timer, so that this evaluation returns before the tab navigates
        cdp.evaluate(f"setTimeout(() => document.links[{i}].click(), 0); true", session)
        cdp.pump(_SETTLE_S)
        if any(
            e.get("method") == "Page.frameStartedLoading" and e.get("sessionId") == session
            for e in cdp.events[before:]
        ):
            cdp.wait_for("Page.frameStoppedLoading", session, before)
        where = cdp.evaluate("[location.href, document.title]", session)
        errors = [e for ev in cdp.events[start:] if (e := _console_error(ev, session)) is not None]
        clicks.append(LinkClick(href, str(where[0]), str(where[1]), errors))
    return clicks


_HREFS_JS = "Array.from(document.links, (a) => a.getAttribute('href') ?? '')"


def _load_and_look(
    cdp: _Cdp, url: str, width: int, height: int, deadline: float
) -> tuple[PageCheck, bytes]:
    cdp.deadline = deadline
    target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    attached = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})
    session = str(attached["sessionId"])
    for domain in ("Page", "Runtime", "Log"):
        cdp.call(f"{domain}.enable", session=session)
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        session=session,
    )
    start = len(cdp.events)
    navigated = cdp.call("Page.navigate", {"url": url}, session=session)
    if navigated.get("errorText"):
        raise RuntimeError(f"chromium could not open {url}: {navigated['errorText']}")
    cdp.wait_for("Page.loadEventFired", session, start)
    cdp.evaluate("document.fonts.ready.then(() => true)", session)
    images = [(str(src)[:_SRC_CHARS], int(w)) for src, w in cdp.evaluate(_IMAGES_JS, session)]
    title = str(cdp.evaluate("document.title", session))
    metrics = cdp.call("Page.getLayoutMetrics", session=session)
    content = metrics.get("cssContentSize") or metrics["contentSize"]
    clip = {
        "x": 0,
        "y": 0,
        "width": max(width, math.ceil(content["width"])),
        "height": min(max(height, math.ceil(content["height"])), MAX_SCREENSHOT_HEIGHT),
        "scale": 1,
    }
    shot = cdp.call(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "clip": clip},
        session=session,
    )
    errors = [e for event in cdp.events if (e := _console_error(event, session)) is not None]
    return PageCheck(images=images, console_errors=errors, title=title), b64decode(shot["data"])


def _console_error(event: dict[str, Any], session: str) -> str | None:
    if event.get("sessionId") != session:
        return None
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        text = " ".join(_remote_object_text(arg) for arg in params.get("args", []))
        return f"console.{params['type']}: {text}"
    if method == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails", {})
        exception = details.get("exception")
        text = str(details.get("text", "Uncaught"))
        return f"{text} {_remote_object_text(exception)}" if exception else text
    if method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        entry = params["entry"]
        where = f" ({entry['url']})" if entry.get("url") else ""
        return f"{entry.get('source', 'log')}: {entry.get('text', '')}{where}"
    return None


def _remote_object_text(obj: dict[str, Any]) -> str:
    if "value" in obj:
        value = obj["value"]
        return value if isinstance(value, str) else json.dumps(value)
    return str(obj.get("unserializableValue") or obj.get("description") or obj.get("type"))


class _Cdp:
    """A minimal synchronous DevTools Protocol client over a pair of pipe fds."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._read_fd = read_fd
        self._write_fd = write_fd
        self._buffer = b""
        self._pending: deque[dict[str, Any]] = deque()
        self._last_id = 0
        self.events: list[dict[str, Any]] = []
        self.deadline = time.monotonic() + DEFAULT_TIMEOUT

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None
    ) -> dict[str, Any]:
        self._last_id += 1
        message: dict[str, Any] = {"id": self._last_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._write_fd, data) :]
        while True:
            reply = self._next_message()
            if "method" in reply:
                self.events.append(reply)
            elif reply.get("id") == self._last_id:
                if "error" in reply:
                    raise RuntimeError(f"DevTools {method} failed: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def evaluate(self, expression: str, session: str) -> Any:
        reply = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=session,
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(f"evaluating {expression!r} failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def wait_for(self, method: str, session: str, start: int) -> dict[str, Any]:
        """The first event ``method`` of ``session`` recorded at index ``start`` or later."""
        index = start
        while True:
            for event in self.events[index:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            index = len(self.events)
            reply = self._next_message()
            if "method" in reply:
                self.events.append(reply)

    def pump(self, seconds: float) -> None:
        """Record the events that arrive over the next ``seconds`` (within the deadline)."""
        until = min(time.monotonic() + seconds, self.deadline)
        while (remaining := until - time.monotonic()) > 0:
            if not self._pending:
                ready, _, _ = select.select([self._read_fd], [], [], remaining)
                if not ready:
                    continue
            message = self._next_message()
            if "method" in message:
                self.events.append(message)

    def _next_message(self) -> dict[str, Any]:
        while not self._pending:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self._read_fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self._read_fd, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe (it exited or crashed)")
            *messages, self._buffer = (self._buffer + chunk).split(b"\0")
            self._pending.extend(json.loads(m) for m in messages)
        return self._pending.popleft()


@contextlib.contextmanager
def _browser(binary: str, tmp: Path, width: int, height: int) -> Iterator[tuple[_Cdp, Path]]:
    """Start chromium with a fresh profile under ``tmp``; always kill it (by PID) on exit."""
    profile = tmp / "profile"
    profile.mkdir()
    log = tmp / "chromium.log"
    args = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--mute-audio",
        "--hide-scrollbars",
        "--remote-debugging-pipe",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "about:blank",
    ]
    # HOME and XDG dirs under tmp: chromium's crash database (which its crashpad handlers
    # name on their command line: that is how we find them), dconf and NSS files land there.
    # TMPDIR its own: chromium makes its singleton folder (org.chromium.Chromium.XXXXXX,
    # holding a unix socket) there, and killed it never removes it (248 had piled up in
    # /tmp). A short path: the socket's must fit sun_path (108 bytes), which a pytest
    # tmp_path does not ("Socket path too long", and chromium exits).
    chromium_tmp = Path(tempfile.mkdtemp(prefix="ps-chr-", dir="/tmp"))
    env = dict(
        os.environ,
        TMPDIR=str(chromium_tmp),
        HOME=str(tmp),
        XDG_CONFIG_HOME=str(tmp / "config"),
        XDG_CACHE_HOME=str(tmp / "cache"),
    )
    # Our pipe ends sit above fd 4 so that the dup2s onto 3 and 4 cannot clobber each other.
    to_browser_r, to_browser_w = (_high_fd(fd) for fd in os.pipe())
    from_browser_r, from_browser_w = (_high_fd(fd) for fd in os.pipe())
    # As a child subreaper we inherit the browser's orphans (its crashpad handlers detach at
    # start, its helpers are orphaned when it is killed) and can reap them all at the end.
    previous = _subreaper(True)
    try:
        try:
            pid = os.posix_spawn(
                binary,
                args,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT, 0o600),
                    (os.POSIX_SPAWN_DUP2, 1, 2),
                    (os.POSIX_SPAWN_DUP2, to_browser_r, 3),
                    (os.POSIX_SPAWN_DUP2, from_browser_w, 4),
                ],
                setsid=True,  # its own session and process group, whose id is its PID
            )
        finally:
            os.close(to_browser_r)
            os.close(from_browser_w)
        try:
            yield _Cdp(from_browser_r, to_browser_w), log
        finally:
            _kill_and_reap(pid, marker=str(tmp))
    finally:
        os.close(to_browser_w)
        os.close(from_browser_r)
        if previous is not None:
            _subreaper(previous)
        shutil.rmtree(chromium_tmp, ignore_errors=True)


def _high_fd(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


def _kill_and_reap(pid: int, marker: str, grace: float = 10.0) -> None:
    """SIGKILL the browser's process group (its id is the browser's PID) and the processes
    that left it (crashpad handlers, found by ``marker`` on their command line), then reap
    them: each is our child or grandchild, or became our child as an orphan (subreaper)."""
    detached = _processes_naming(marker)  # before the kill: a zombie has no command line
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    for other in detached:
        with contextlib.suppress(ProcessLookupError):
            os.kill(other, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    give_up = time.monotonic() + grace
    while time.monotonic() < give_up:
        left = [p for p in detached if Path(f"/proc/{p}").exists()]
        if not left and not _group_members(pid):
            return
        reaped = False
        for target in (-pid, *left):
            # ChildProcessError: not (or no longer) our child, so its own parent reaps it
            with contextlib.suppress(ChildProcessError):
                reaped = os.waitpid(target, os.WNOHANG)[0] != 0 or reaped
        if not reaped:
            time.sleep(0.01)


def _processes_naming(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry))
    return found


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def _subreaper(on: bool) -> bool | None:
    """Set whether this process is a child subreaper; the previous setting, None if unknown."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        current = ctypes.c_int(0)
        if libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(current), 0, 0, 0) != 0:
            return None
        if libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return bool(current.value)


def _tail(log: Path, lines: int = 15) -> str:
    """chromium's last lines of output, less its noise about the absent D-Bus."""
    try:
        text = [line for line in log.read_text(errors="replace").splitlines() if "dbus" not in line]
    except OSError:
        return ""
    text = text[-lines:]
    return "\nchromium's last output:\n" + "\n".join(text) if text else ""
