"""The server-restart experiment as data: its plan, each bind() attempt, and its result.json.

Containing values, their validation and the JSON written and read back; no sockets, no
files, no namespaces (engine/restart.py measures, core/restartfindings.py says what it
means, report/restartreport.py draws it).

The experiment (``portstorm restart``): in the pair sandbox a server of portstorm's own
closes every connection first, so TIME_WAIT sits on the server's listening port; then the
listener closes (t = 0), and a new socket tries bind() to that address with and without
SO_REUSEADDR (and with SO_REUSEPORT) every ``probe_interval_s``, until a bind without
either option succeeds or ``max_wait_s`` passes. Each attempt is ``t`` seconds after the old
listener closed; ``server_time_wait`` is the number of TIME_WAIT sockets on that port read
by sock_diag just before the attempt.

``first_ok_without_reuseaddr_s``: the ``t`` of the first attempt with neither option that
succeeded (null when none did within ``max_wait_s``). Linux keeps TIME_WAIT for
TCP_TIMEWAIT_LEN, 60 s (KERNEL.md), so about 60 s is expected.

Format history (keep old versions loading):
- ``portstorm.restart/1`` (2026-12): first version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portstorm.core import fields
from portstorm.core.errors import UsageError
from portstorm.core.fields import FieldError
from portstorm.core.formats import check_format
from portstorm.core.records import HostInfo, file_header, read_header

FORMAT = "portstorm.restart/1"

# (low, high, integer) for each option: checked before anything runs
BOUNDS: dict[str, tuple[float, float, bool]] = {
    "--rate": (1, 5000, False),
    "--duration": (0.1, 60, False),
    "--max-wait": (0, 600, False),
    "--probe-interval": (0.1, 10, False),
}
DEFAULTS = {"--rate": 200.0, "--duration": 2.0, "--max-wait": 90.0, "--probe-interval": 0.5}
OLD_LISTENER = ("reuseaddr", "reuseport", "both", "none")
# the attempts of each round: (SO_REUSEADDR, SO_REUSEPORT)
VARIANTS: tuple[tuple[bool, bool], ...] = ((False, False), (True, False), (False, True))
MAX_BINDS = 100_000


def parse_option(option: str, text: str) -> float:
    """A restart option's value as typed, range-checked: UsageError names both."""
    low, high, integer = BOUNDS[option]
    allowed = f"{'a whole number' if integer else 'a number'} from {low:g} to {high:g}"
    try:
        if not text.isascii():
            raise ValueError(text)
        value = float(int(text, 10)) if integer else float(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not valid: allowed {allowed}") from None
    if not low <= value <= high:
        raise UsageError(f"{option} {text} is out of range: allowed {allowed}")
    return value


@dataclass(frozen=True)
class RestartPlan:
    """What ``portstorm restart`` does: the load that fills the server's port with
    TIME_WAIT, the old listener's socket options, and how long the bind()s go on."""

    rate: float = DEFAULTS["--rate"]
    duration_s: float = DEFAULTS["--duration"]
    max_wait_s: float = DEFAULTS["--max-wait"]
    probe_interval_s: float = DEFAULTS["--probe-interval"]
    old_listener: str = "reuseaddr"

    def __post_init__(self) -> None:
        for option, value in (("--rate", self.rate), ("--duration", self.duration_s),
                              ("--max-wait", self.max_wait_s),
                              ("--probe-interval", self.probe_interval_s)):  # fmt: skip
            low, high, _ = BOUNDS[option]
            if not low <= value <= high:
                raise UsageError(f"{option} {value:g} is out of range: allowed {low:g} to {high:g}")
        if self.old_listener not in OLD_LISTENER:
            raise UsageError(
                f"--old-listener {self.old_listener!r} is unknown: allowed "
                + ", ".join(OLD_LISTENER)
            )

    @property
    def connections(self) -> int:
        return max(1, round(self.rate * self.duration_s))

    @property
    def old_reuseaddr(self) -> bool:
        return self.old_listener in ("reuseaddr", "both")

    @property
    def old_reuseport(self) -> bool:
        return self.old_listener in ("reuseport", "both")

    @property
    def bound_s(self) -> float:
        """The longest the experiment runs, setup aside: the load, then the waiting."""
        return self.duration_s + self.max_wait_s

    def to_json(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "duration_s": self.duration_s,
            "connections": self.connections,
            "max_wait_s": self.max_wait_s,
            "probe_interval_s": self.probe_interval_s,
            "old_listener": {"reuseaddr": self.old_reuseaddr, "reuseport": self.old_reuseport},
        }

    @classmethod
    def from_json(cls, d: object) -> RestartPlan:
        m = fields.mapping(d, "")
        old = fields.mapping(fields.member(m, "old_listener"), "old_listener")
        both = (bool(fields.flag(old.get("reuseaddr"), "old_listener.reuseaddr")),
                bool(fields.flag(old.get("reuseport"), "old_listener.reuseport")))  # fmt: skip
        name = {(True, False): "reuseaddr", (False, True): "reuseport", (True, True): "both",
                (False, False): "none"}[both]  # fmt: skip
        num = fields.number
        try:
            return cls(
                rate=num(fields.member(m, "rate"), "rate", 0, 1e9) or 0.0,
                duration_s=num(fields.member(m, "duration_s"), "duration_s") or 0.0,
                max_wait_s=num(fields.member(m, "max_wait_s"), "max_wait_s") or 0.0,
                probe_interval_s=num(fields.member(m, "probe_interval_s"), "probe_interval_s")
                or 0.0,
                old_listener=name,
            )
        except UsageError as e:
            raise FieldError("", str(e)) from None


@dataclass(frozen=True)
class BindAttempt:
    """One bind() of a new listening socket to the old listener's address."""

    t: float  # seconds after the old listener closed
    reuseaddr: bool
    reuseport: bool
    ok: bool
    errno: str | None  # the errno's name when it failed (EADDRINUSE), else None
    server_time_wait: int | None  # TIME_WAIT sockets on the port, just before

    def __post_init__(self) -> None:
        fields.number(self.t, "t", -1.0, fields.MAX_SECONDS)
        fields.flag(self.reuseaddr, "reuseaddr")
        fields.flag(self.reuseport, "reuseport")
        fields.flag(self.ok, "ok")
        fields.text(self.errno, "errno", null=True)
        if self.ok != (self.errno is None):
            raise FieldError("errno", "null exactly when ok is true")
        fields.integer(self.server_time_wait, "server_time_wait", null=True)

    def to_json(self) -> dict[str, Any]:
        return {"t": round(self.t, 4), "reuseaddr": self.reuseaddr, "reuseport": self.reuseport,
                "ok": self.ok, "errno": self.errno,
                "server_time_wait": self.server_time_wait}  # fmt: skip

    @classmethod
    def from_json(cls, d: object) -> BindAttempt:
        m = fields.mapping(d, "")
        get = fields.member  # MISSING for an absent key: the constructor's check names it
        return cls(get(m, "t"), get(m, "reuseaddr"), get(m, "reuseport"), get(m, "ok"),
                   m.get("errno"), get(m, "server_time_wait"))  # fmt: skip


@dataclass(frozen=True)
class Restart:
    """result.json's ``restart``: what the load left, every bind(), and the first plain
    bind that succeeded."""

    connections: int  # made by the load, each closed by the server first
    failed: int  # the load's attempts that did not complete
    load_s: float  # how long the load took
    peak_server_time_wait: int  # on the port, at the listener's close or before
    binds: tuple[BindAttempt, ...]
    server_time_wait: tuple[tuple[float, int], ...]  # (t, TIME_WAIT on the port) samples
    server_kernel: Mapping[str, int]  # the server's counter deltas over the experiment

    def __post_init__(self) -> None:
        fields.integer(self.connections, "connections")
        fields.integer(self.failed, "failed")
        fields.number(self.load_s, "load_s")
        fields.integer(self.peak_server_time_wait, "peak_server_time_wait")
        if len(self.binds) > MAX_BINDS:
            raise FieldError("binds", f"{len(self.binds)} entries; allowed up to {MAX_BINDS}")

    def first_ok(self, reuseaddr: bool, reuseport: bool) -> float | None:
        wanted = (reuseaddr, reuseport)
        return next(
            (b.t for b in self.binds if b.ok and (b.reuseaddr, b.reuseport) == wanted), None
        )

    @property
    def first_ok_without_reuseaddr_s(self) -> float | None:
        """The first bind() with neither SO_REUSEADDR nor SO_REUSEPORT that succeeded."""
        return self.first_ok(False, False)

    def to_json(self) -> dict[str, Any]:
        first = self.first_ok_without_reuseaddr_s
        return {
            "connections": self.connections,
            "failed": self.failed,
            "load_s": round(self.load_s, 4),
            "peak_server_time_wait": self.peak_server_time_wait,
            "binds": [b.to_json() for b in self.binds],
            "first_ok_without_reuseaddr_s": None if first is None else round(first, 4),
            "first_ok_with_reuseaddr_s": _rounded(self.first_ok(True, False)),
            "first_ok_with_reuseport_s": _rounded(self.first_ok(False, True)),
            "server_time_wait": [{"t": round(t, 4), "n": n} for t, n in self.server_time_wait],
            "server_kernel": dict(self.server_kernel),
        }

    @classmethod
    def from_json(cls, d: object) -> Restart:
        m = fields.mapping(d, "")
        binds = []
        for i, b in enumerate(fields.sequence(fields.member(m, "binds"), "binds")):
            with fields.within(f"binds[{i}]"):
                binds.append(BindAttempt.from_json(b))
        series = []
        for i, p in enumerate(fields.sequence(m.get("server_time_wait", []), "server_time_wait")):
            with fields.within(f"server_time_wait[{i}]"):
                pm = fields.mapping(p, "")
                t = fields.number(fields.member(pm, "t"), "t", -fields.MAX_SECONDS)
                n = fields.integer(fields.member(pm, "n"), "n")
                series.append((t or 0.0, n or 0))
        kernel = m.get("server_kernel", {})
        peak = fields.integer(m.get("peak_server_time_wait", 0), "peak_server_time_wait")
        fields.counts(kernel, "server_kernel", -fields.MAX_COUNT)
        out = cls(
            connections=fields.integer(fields.member(m, "connections"), "connections") or 0,
            failed=fields.integer(m.get("failed", 0), "failed") or 0,
            load_s=fields.number(fields.member(m, "load_s"), "load_s") or 0.0,
            peak_server_time_wait=peak or 0,
            binds=tuple(binds),
            server_time_wait=tuple(series),
            server_kernel=dict(kernel),
        )
        saved = fields.number(m.get("first_ok_without_reuseaddr_s"),
                              "first_ok_without_reuseaddr_s", null=True)  # fmt: skip
        if saved is not None and out.first_ok_without_reuseaddr_s is None:
            raise FieldError("first_ok_without_reuseaddr_s", "set, but no plain bind succeeded")
        return out


def _rounded(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


@dataclass(frozen=True)
class RestartResult:
    """The whole result.json of ``portstorm restart``."""

    version: str
    host: HostInfo
    started_at: str
    duration_s: float
    plan: RestartPlan
    server: str  # the old listener's address, 198.18.0.2:8080
    tunings: Mapping[str, str]
    server_tunings: Mapping[str, str]
    restart: Restart
    complete: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            **file_header(self.version, self.host, self.started_at),
            "duration_s": round(self.duration_s, 3),
            "complete": self.complete,
            "scenario": {
                "experiment": "restart",
                "sandbox": "pair",
                "close": "server",
                "server": self.server,
                **self.plan.to_json(),
            },
            "tunings": dict(self.tunings),
            "server_tunings": dict(self.server_tunings),
            "restart": self.restart.to_json(),
        }


def load_restart(doc: object, where: str) -> RestartResult:
    """A restart result.json's document, checked whole: one UsageError line naming the
    field and what is allowed."""
    m = fields.mapping(doc, "") if isinstance(doc, Mapping) else None
    if m is None:
        raise UsageError(f"{where}: not a portstorm restart result: not a JSON object")
    check_format(m.get("format"), FORMAT, "restart result")
    try:
        version, host = read_header(m)
        started = fields.timestamp(fields.member(m, "started_at"), "started_at")
        scenario = fields.mapping(fields.member(m, "scenario"), "scenario")
        with fields.within("scenario"):
            plan = RestartPlan.from_json(scenario)
            server = fields.text(fields.member(scenario, "server"), "server") or ""
        fields.texts(m.get("tunings", {}), "tunings")
        fields.texts(m.get("server_tunings", {}), "server_tunings")
        with fields.within("restart"):
            restart = Restart.from_json(fields.member(m, "restart"))
        return RestartResult(
            version=version, host=host, started_at=started, plan=plan, server=server,
            duration_s=fields.number(fields.member(m, "duration_s"), "duration_s") or 0.0,
            tunings=dict(m.get("tunings", {})), server_tunings=dict(m.get("server_tunings", {})),
            restart=restart,
            complete=bool(fields.flag(m.get("complete", True), "complete")),
        )  # fmt: skip
    except FieldError as e:
        raise UsageError(f"{where}: damaged restart result: {e}") from None
