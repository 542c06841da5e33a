"""What a ``portstorm restart`` result says, in sentences: the classic SO_REUSEADDR claim,
held against what this kernel did.

Containing the rules only (core/restart.py has the values; the terminal and the report
show these sentences). Each names the measured figure and why, citing the kernel where
the reason is the kernel's.
"""

from __future__ import annotations

from portstorm.core.finding import Finding
from portstorm.core.restart import BindAttempt, RestartResult
from portstorm.core.words import fmt_s

TIME_WAIT_S = 60  # TCP_TIMEWAIT_LEN (include/net/tcp.h)


def _first(binds: tuple[BindAttempt, ...], reuseaddr: bool, reuseport: bool) -> list[BindAttempt]:
    return [b for b in binds if b.reuseaddr == reuseaddr and b.reuseport == reuseport]


def restart_findings(r: RestartResult) -> list[Finding]:
    x, plan = r.restart, r.plan
    out: list[Finding] = []
    plain = _first(x.binds, False, False)
    failed = [b for b in plain if not b.ok]
    first_ok = x.first_ok_without_reuseaddr_s
    port = r.server.rpartition(":")[2]
    if not plain:
        return [Finding("restart-none", "No bind() was attempted (interrupted first).", "warn")]
    if first_ok is not None and failed:
        held = max((b.server_time_wait or 0) for b in failed)
        errs = sorted({b.errno or "" for b in failed})
        out.append(Finding(
            "restart-plain",
            f"A plain bind() to {r.server} (no SO_REUSEADDR) failed with {', '.join(errs)} "
            f"{len(failed)} times while up to {held:,} TIME_WAIT sockets held port {port}, and "
            f"first succeeded {fmt_s(first_ok)} after the old listener closed (Linux keeps "
            f"TIME_WAIT {TIME_WAIT_S} s, TCP_TIMEWAIT_LEN; no sysctl shortens it).",
            "headline",
        ))  # fmt: skip
    elif first_ok is not None:
        out.append(Finding(
            "restart-plain",
            f"A plain bind() to {r.server} succeeded at once ({fmt_s(first_ok)}): no "
            f"TIME_WAIT held port {port} (the load left {x.peak_server_time_wait:,}).",
            "headline",
        ))  # fmt: skip
    else:
        left = plain[-1].server_time_wait
        ended = f"--max-wait {plan.max_wait_s:g} s ended the waiting" if r.complete else (
            "interrupted then")  # fmt: skip
        out.append(Finding(
            "restart-plain",
            f"A plain bind() to {r.server} (no SO_REUSEADDR) failed with "
            f"{plain[-1].errno} every time for {fmt_s(plain[-1].t)} after the old listener "
            f"closed ({left if left is not None else 'unknown'} TIME_WAIT sockets still on "
            f"port {port}; {ended}, TIME_WAIT "
            f"lasts {TIME_WAIT_S} s).",
            "headline",
        ))  # fmt: skip
    out += _with_option(r, True, False, "SO_REUSEADDR", plan.old_reuseaddr)
    out += _with_option(r, False, True, "SO_REUSEPORT", plan.old_reuseport)
    if 0 < x.peak_server_time_wait < x.connections:
        out.append(Finding(
            "restart-taken-over",
            f"The load's {x.connections:,} connections left at most "
            f"{x.peak_server_time_wait:,} TIME_WAIT sockets on the port: a new SYN from a "
            "client port that came round again takes over the server's TIME_WAIT on that "
            "4-tuple (RFC 1122 4.2.2.13; tcp_timewait_state_process() -> TCP_TW_SYN).",
        ))  # fmt: skip
    if x.failed:
        out.append(Finding(
            "restart-load",
            f"{x.failed:,} of the load's {x.connections + x.failed:,} connections did not "
            "complete; the TIME_WAIT count is what the others left.",
            "warn",
        ))  # fmt: skip
    if not r.complete:
        out.append(Finding("restart-partial", "Interrupted: the bind() attempts stop early.",
                           "warn"))  # fmt: skip
    return out


def _with_option(
    r: RestartResult, reuseaddr: bool, reuseport: bool, name: str, old_had_it: bool
) -> list[Finding]:
    tries = _first(r.restart.binds, reuseaddr, reuseport)
    if not tries:
        return []
    held = [b for b in tries if (b.server_time_wait or 0) > 0]
    ok_held = [b for b in held if b.ok]
    old = "set it too" if old_had_it else "did not set it"
    if held and len(ok_held) == len(held):
        return [Finding(
            f"restart-{name.lower()}",
            f"With {name}, bind() succeeded at once ({fmt_s(held[0].t)}) and every time "
            f"({len(held)} of {len(held)}) while {held[0].server_time_wait:,} TIME_WAIT sockets "
            f"held the port: the old listener {old}, and its TIME_WAIT sockets keep its "
            "options (inet_bind_conflict() lets both share the port only when both set it).",
        )]  # fmt: skip
    if held and not ok_held:
        return [Finding(
            f"restart-{name.lower()}",
            f"With {name}, bind() failed too ({held[0].errno}, {len(held)} of {len(held)} "
            f"while TIME_WAIT held the port): the old listener {old}, and a TIME_WAIT socket "
            f"keeps its listener's options, so {name} on the new socket alone does not "
            "help (inet_bind_conflict()).",
            "warn",
        )]  # fmt: skip
    if held:
        return [Finding(
            f"restart-{name.lower()}",
            f"With {name}, bind() succeeded {len(ok_held)} of {len(held)} times while "
            "TIME_WAIT held the port.",
        )]  # fmt: skip
    return []
