"""A sweep as data: factors, the cell matrix, presets, and the ``sweep.json`` format.

Containing no processes and no files beyond JSON text: engine/sweep.py runs the cells.

A *factor* is one thing varied: a run option (close, bind, rate, concurrency, sandbox, the
exchange's request_size, response_size and hold, and ipv6, a flag: on or off; the NAT
sandbox's nat_ports, nat_flags and clients; sink_ports and source), a client sysctl
(``tcp_tw_reuse``), a server sysctl of the pair sandbox (``server:tcp_tw_reuse``), or
``remedy``, whose values each stand for a few of those (core/remedies.py). A nat_flags
value names its flags joined by ``+`` (``fully-random+persistent``; ``none`` for no flag),
since ``,`` separates the values.
The cells are the cartesian product of the factors' values, in the order given (the last
factor varies fastest); each cell runs ``repeat`` times.

Format history (keep old versions loading):
- ``portstorm.sweep/1`` (2026-11): first version.
- (2026-12) a cell's optional ``thresholds``: the --fail-if verdicts of its runs and median.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from portstorm.core import fields, formats
from portstorm.core.errors import UsageError
from portstorm.core.fields import FieldError
from portstorm.core.formats import check_format as check_any_format
from portstorm.core.records import HostInfo
from portstorm.core.remedies import REMEDIES, REMEDY
from portstorm.core.subjectgates import CaseVerdict
from portstorm.core.tuning import lookup

FORMAT = formats.SWEEP

RUN_FACTORS: dict[str, str] = {
    "close": "--close",
    "bind": "--bind",
    "rate": "--rate",
    "concurrency": "--concurrency",
    "sandbox": "--sandbox",
    "request_size": "--request-size",
    "response_size": "--response-size",
    "hold": "--hold",
    "ipv6": "--ipv6",
    "nat_ports": "--nat-ports",
    "nat_flags": "--nat-flags",
    "clients": "--clients",
    "sink_ports": "--sink-ports",
    "source": "--source",
}
NO_NAT_FLAGS = "none"  # a nat_flags value: the option left out
# run factors that are flags: a cell gives the option (on) or leaves it out (off)
FLAG_FACTORS = frozenset({"ipv6"})
FLAG_VALUES = {"on": True, "off": False, "true": True, "false": False, "yes": True,
               "no": False, "1": True, "0": False}  # fmt: skip
SERVER_PREFIX = "server:"
MAX_CELLS = 1000
MAX_REPEAT = 100
MAX_PARALLEL = 64  # as --parallel (scenario.py)


@dataclass(frozen=True, slots=True)
class Factor:
    """``name``: a run factor, a full sysctl name, or ``server:`` + a full sysctl name."""

    name: str
    values: tuple[str, ...]

    @property
    def kind(self) -> str:
        if self.name in RUN_FACTORS:
            return "run"
        return "server" if self.name.startswith(SERVER_PREFIX) else "client"

    @property
    def label(self) -> str:
        """The short name people read: tcp_tw_reuse, server:tcp_tw_reuse, close."""
        if self.kind == "run":
            return self.name
        prefix = SERVER_PREFIX if self.kind == "server" else ""
        return prefix + self.name.removeprefix(SERVER_PREFIX).removeprefix("net.ipv4.")

    def argv(self, value: str) -> list[str]:
        """The ``portstorm run`` options that set this factor to ``value``."""
        if self.name in FLAG_FACTORS:
            return [RUN_FACTORS[self.name]] if FLAG_VALUES[value.lower()] else []
        if self.name == "nat_flags":  # flags joined by "+": "," separates the values
            flags = value.replace("+", ",")
            return [] if value == NO_NAT_FLAGS else [RUN_FACTORS[self.name], flags]
        if self.kind == "run":
            return [RUN_FACTORS[self.name], value]
        if self.kind == "server":
            return ["--server-set", f"{self.name.removeprefix(SERVER_PREFIX)}={value}"]
        return ["--set", f"{self.name}={value}"]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "kind": self.kind,
                "values": list(self.values)}  # fmt: skip


def parse_vary(text: str) -> Factor:
    """``--vary NAME=V1,V2,...`` -> Factor. ip_local_reserved_ports, whose values hold
    commas, separates its values with ';'."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    hint = "expected NAME=V1,V2,..., e.g. tcp_tw_reuse=0,1,2 or close=client,rst"
    if not sep or not name or not rest.strip():
        raise UsageError(f"--vary {text!r} is malformed: {hint}")
    if name == REMEDY:
        return _remedy_factor(text, rest)
    if name.replace("-", "_") in RUN_FACTORS:  # request-size as well as request_size
        canonical = name.replace("-", "_")
    else:
        server = name.startswith(SERVER_PREFIX)
        try:
            sysctl = lookup(name.removeprefix(SERVER_PREFIX))
        except UsageError:  # the sysctls are --set's: its refusal lists them
            raise UsageError(
                f"--vary {text!r}: {name!r} is no factor; allowed a run factor "
                f"({', '.join(RUN_FACTORS)}), {REMEDY}, or a sysctl that --set takes "
                f"(tcp_tw_reuse; {SERVER_PREFIX}tcp_tw_reuse for the server's)"
            ) from None
        canonical = (SERVER_PREFIX if server else "") + sysctl.name
    splitter = ";" if canonical.endswith("ip_local_reserved_ports") else ","
    values = tuple(v.strip() for v in rest.split(splitter))
    if any(not v for v in values):
        raise UsageError(f"--vary {text!r}: an empty value; {hint}")
    if len(set(values)) != len(values):
        raise UsageError(f"--vary {text!r}: a value is repeated")
    if canonical in FLAG_FACTORS:
        bad = [v for v in values if v.lower() not in FLAG_VALUES]
        if bad:
            raise UsageError(f"--vary {text!r}: {bad[0]!r} is not a flag value; allowed on, off")
        if len({FLAG_VALUES[v.lower()] for v in values}) != len(values):
            raise UsageError(f"--vary {text!r}: a value is repeated (on and off are the two)")
    return Factor(canonical, values)


def check_factors(factors: Sequence[Factor], repeat: int) -> None:
    names = [f.name for f in factors]
    for n in names:
        if names.count(n) > 1:
            raise UsageError(f"--vary {Factor(n, ()).label} is given twice: list its values once")
    for f in factors:  # a remedy sets what another factor would vary: one would be lost
        for v in f.values if f.name == REMEDY else ():
            clash = [n for n, _ in REMEDIES.get(v, ()) if n in names]
            if clash:
                other = Factor(clash[0], ()).label
                raise UsageError(f"--vary remedy={v} sets {other}, which --vary {other} varies: "
                                 "vary one")  # fmt: skip
    if not 1 <= repeat <= MAX_REPEAT:
        raise UsageError(f"--repeat {repeat} is out of range: allowed 1-{MAX_REPEAT}")
    cells = 1
    for f in factors:
        cells *= len(f.values)
    if cells * repeat > MAX_CELLS:
        raise UsageError(
            f"{cells} cells x {repeat} repeats = {cells * repeat} runs: allowed up to "
            f"{MAX_CELLS}; vary fewer values"
        )


@dataclass(frozen=True, slots=True)
class Cell:
    index: int
    values: tuple[tuple[str, str], ...]  # (factor name, value), in factor order

    @property
    def id(self) -> str:
        """A folder name: 03-sandbox=pair,tcp_tw_reuse=2 (safe characters only)."""
        parts = ",".join(f"{_label(n)}={v}" for n, v in self.values) or "single"
        return f"{self.index + 1:02d}-" + re.sub(r"[^A-Za-z0-9_.,=:+-]", "_", parts)

    @property
    def label(self) -> str:
        return " ".join(f"{_label(n)}={v}" for n, v in self.values) or "(one cell)"


def _label(name: str) -> str:
    return Factor(name, ()).label


def expand(factors: Sequence[Factor]) -> list[Cell]:
    """The cartesian product, the last factor varying fastest; a remedy stands for its
    factor values (REMEDIES)."""
    combos = itertools.product(*[[_pairs(f.name, v) for v in f.values] for f in factors])
    return [Cell(i, tuple(p for pairs in c for p in pairs)) for i, c in enumerate(combos)]


def _pairs(name: str, value: str) -> tuple[tuple[str, str], ...]:
    return REMEDIES[value] if name == REMEDY and value in REMEDIES else ((name, value),)


def _remedy_factor(text: str, rest: str) -> Factor:
    values = tuple(v.strip() for v in rest.split(","))
    bad = [v for v in values if v not in REMEDIES]
    if bad or len(set(values)) != len(values):
        why = f"{bad[0]!r} is unknown" if bad else "a value is repeated"
        raise UsageError(f"--vary {text!r}: {why}; allowed {', '.join(REMEDIES)}")
    return Factor(REMEDY, values)


# -- presets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    name: str
    question: str  # one sentence for --list-presets
    factors: tuple[Factor, ...]
    defaults: Mapping[str, str]  # run options the user may override: --rate 1000 ...
    sets: tuple[str, ...] = ()  # --set values every cell gets (a user --set overrides)
    extra: tuple[str, ...] = field(default_factory=tuple)  # other fixed run options


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "tw-reuse",
            "Does tcp_tw_reuse help? 0, 1 and 2 across the pair (veth) and loopback: 2 "
            "reuses TIME_WAIT ports on loopback only, so pair/2 behaves like pair/0.",
            (
                Factor("sandbox", ("pair", "loopback")),
                Factor("net.ipv4.tcp_tw_reuse", ("0", "1", "2")),
            ),
            {"rate": "1000", "duration": "90"},
        ),
        Preset(
            "port-range",
            "How much does ip_local_port_range buy? A narrow (1,000), the default (28,232) "
            "and the widest (64,512) range at 2,000 conn/s, past 60 s so TIME_WAIT expires.",
            (Factor("net.ipv4.ip_local_port_range", ("50000-50999", "32768-60999", "1024-65535")),),
            {"rate": "2000", "duration": "90"},
        ),
        Preset(
            "fin-timeout",
            "Does tcp_fin_timeout shorten TIME_WAIT? No: 5, 30 and 60 s give the same "
            "exhaustion and the same rate afterwards (TIME_WAIT is 60 s whatever it says).",
            (Factor("net.ipv4.tcp_fin_timeout", ("5", "30", "60")),),
            {"rate": "1000", "duration": "90"},
            sets=("tcp_tw_reuse=0",),
        ),
        Preset(
            "close",
            "Who should close? client (TIME_WAIT on the client, which exhausts), server "
            "(TIME_WAIT on the server) and rst (no TIME_WAIT anywhere).",
            (Factor("close", ("client", "server", "rst")),),
            {"rate": "1000", "duration": "90"},
        ),
        Preset(
            "bind",
            "Does bind() before connect() cost ports? connect, bind and no-port toward 3 "
            "sink ports: bind takes a port per source address whatever the destination.",
            (Factor("bind", ("connect", "bind", "no-port")),),
            {"rate": "2000", "duration": "120"},
            extra=("--sink-ports", "3"),
        ),
        Preset(
            "crr",
            "RST or FIN close for request/response clients? A 1-byte request and a 1-byte "
            "response per connection, as netperf's TCP_CRR and neper's tcp_crr measure: FIN "
            "close leaves TIME_WAIT on the client and runs out, RST close never does.",
            (Factor("close", ("client", "rst")),),
            {"rate": "1000", "duration": "90", "request-size": "1", "response-size": "1"},
        ),
        Preset(
            "nat",
            "Does a bigger NAT pool, or fully-random, help? 100 and 1,000 NAT ports with and "
            "without fully-random, for churn (--hold 0: closed connections' conntrack entries "
            "are taken over, so neither pool runs out) and for held connections (--hold 5 at "
            "100/s: 500 open, more than 100 ports can map and fewer than 1,000).",
            (
                Factor("nat_ports", ("40000-40099", "40000-40999")),
                Factor("nat_flags", (NO_NAT_FLAGS, "fully-random")),
                Factor("hold", ("0", "5")),
            ),
            {"sandbox": "nat", "clients": "10", "rate": "100", "duration": "10"},
        ),
        Preset(
            "remedies",
            "What does each classic remedy buy? The same load (400/s, 200 ports, 75 s) "
            "with a 10x range, tcp_tw_reuse=1, its delay at 100 ms, the server closing "
            "first, RST close, 2 destinations, 2 sources; what each costs is what "
            "'portstorm lastack' and 'portstorm restart' measure (README).",
            (Factor(REMEDY, tuple(REMEDIES)),),
            {"rate": "400", "duration": "75"},
            sets=("ip_local_port_range=40000-40199", "tcp_tw_reuse=0"),
        ),
        Preset(
            "reuse-delay",
            "How fast does tcp_tw_reuse=1 recycle? tcp_tw_reuse_delay 100 ms to 5 s with "
            "1,000 ports: about ports / delay connections per second (Linux 6.14+).",
            (Factor("net.ipv4.tcp_tw_reuse_delay", ("100", "500", "1000", "5000")),),
            {"rate": "2000", "duration": "30"},
            sets=("tcp_tw_reuse=1", "ip_local_port_range=40000-40999"),
        ),
    )
}


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UsageError(
            f"--preset {name!r} is unknown: allowed {', '.join(PRESETS)} "
            "(portstorm sweep --list-presets explains each)"
        ) from None


# -- sweep.json -----------------------------------------------------------------------------


def check_format(fmt: object, where: str) -> None:
    try:
        check_any_format(fmt, FORMAT, "sweep")
    except UsageError as e:
        raise UsageError(f"{where}: {e}") from None


def factors_from_json(doc: Mapping[str, Any]) -> list[Factor]:
    """The factors of a sweep.json, whose whole shape is checked first: a FieldError
    (a ValueError) names what is wrong; check_sweep_doc gives it as a UsageError line."""
    _check_sweep(doc)
    return [Factor(f["name"], tuple(f["values"])) for f in doc["factors"]]


def check_sweep_doc(doc: Mapping[str, Any], where: str) -> None:
    """A sweep.json's shape, checked whole before anything reads it (``report``,
    ``compare``, ``sweep --resume``): every wrong shape is one UsageError line naming the
    file and the field (``cells[2].runs[0].path``) and what is allowed. The plan's bounds
    (``repeat``, ``parallel``) are those of a new sweep; its factor names are checked
    where the plan is made again (parse_vary, check_factors)."""
    check_format(doc.get("format"), where)
    try:
        _check_sweep(doc)
    except FieldError as e:
        raise UsageError(f"{where}: damaged sweep.json: {e}") from None


def _check_sweep(doc: Mapping[str, Any]) -> None:
    fields.timestamp(fields.member(doc, "started_at"), "started_at")
    if doc.get("updated_at") is not None:
        fields.timestamp(doc["updated_at"], "updated_at")
    fields.flag(fields.member(doc, "complete"), "complete")
    fields.text(doc.get("preset"), "preset", null=True)
    fields.integer(doc.get("parallel"), "parallel", 1, MAX_PARALLEL, null=True)
    fields.integer(fields.member(doc, "repeat"), "repeat", 1, MAX_REPEAT)
    fields.text_list(fields.member(doc, "base_args"), "base_args")
    if doc.get("tool") is not None:
        with fields.within("tool"):
            fields.text(fields.member(fields.mapping(doc["tool"], ""), "version"), "version")
    if doc.get("host") is not None:
        with fields.within("host"):
            HostInfo.from_json(doc["host"])
    for i, f in enumerate(fields.sequence(fields.member(doc, "factors"), "factors")):
        with fields.within(f"factors[{i}]"):
            m = fields.mapping(f, "")
            fields.text(fields.member(m, "name"), "name")
            values = fields.sequence(fields.member(m, "values"), "values")
            if not values:
                raise FieldError("values", "an empty list; allowed: one value or more")
            fields.text_list(values, "values")
    for i, c in enumerate(fields.sequence(fields.member(doc, "cells"), "cells")):
        with fields.within(f"cells[{i}]"):
            _check_cell(c)


def _check_cell(c: object) -> None:
    m = fields.mapping(c, "")
    fields.text(m.get("id"), "id", null=True)
    fields.text(fields.member(m, "label"), "label")
    fields.texts(m.get("factors"), "factors", null=True)
    fields.texts(m.get("tunings"), "tunings", null=True)
    fields.mapping(m.get("metrics"), "metrics", null=True)
    for j, v in enumerate(fields.sequence(m.get("thresholds", []), "thresholds")):
        with fields.within(f"thresholds[{j}]"):  # --fail-if (core/subjectgates.py)
            CaseVerdict.from_json(v, "")
    for j, r in enumerate(fields.sequence(m.get("runs", []), "runs")):
        with fields.within(f"runs[{j}]"):
            run = fields.mapping(r, "")
            fields.text(fields.member(run, "path"), "path")
            fields.text(fields.member(run, "status"), "status")
            fields.integer(run.get("repeat"), "repeat", 1, MAX_REPEAT, null=True)
            fields.integer(run.get("exit_code"), "exit_code", -255, 255, null=True)
            fields.number(run.get("wall_s"), "wall_s", null=True)
            for k in ("command", "error"):
                fields.text(run.get(k), k, null=True)
            fields.mapping(run.get("metrics"), "metrics", null=True)
