"""``portstorm watch``'s model: a ``WatchSample`` -> groups with usable ports, rates, forecasts.

Containing pure arithmetic on the reader's values (core/watchsample.py) and the words a
live host is shown; no reading, no terminal, no files. The values it makes, ``GroupView``
and ``WatchView``, live in core/watchview.py (imported from here); the advice past 80 %
in core/watchadvice.py. The CLI (cli/watchcmd.py) prints a ``WatchView``, the exporter
(engine/exporter.py) turns it into metrics, ``WatchView.to_json()`` is one ``--json`` line.

How a group's rate is counted (RATE_COUNTING, shown in the table's header):
    new connections/s = (the group's ``new``: sockets first seen this sample, by cookie,
    + its share of the connections that came and went between two samples unseen:
    TcpActiveOpens' delta minus all groups' ``new``, apportioned by ``new``) / dt,
    averaged over the samples of the last SMOOTH_S = 2 s (2 samples at --interval 1, 20 at
    0.1: at 100/s a 0.1 s sample counts 10 +- a few, too jumpy to forecast with; at 1 s
    intervals the counts measured 98-104. A longer window lags a burst: 3 s of samples
    taken 2.5 s into one still average in half a second from before it, and the forecast
    came out 15 % late). At the first sample there
    is no previous one: the rate is the TIME_WAIT inflow of the last INFLOW_S seconds
    (sockets whose TIME_WAIT timer has more than 60 - INFLOW_S s left).

The forecast (``exhaustion_in_s``): at the current rate, ports in use grow by the rate and
shrink as today's TIME_WAIT sockets expire (``tw_expiring``'s bins, from idiag_expires).
A new connection that this side closes first keeps its port 60 s in TIME_WAIT
(TCP_TIMEWAIT_LEN; tcp_fin_timeout does not change it); one the server closes first, or
that is reset, gives its port back at once (CLOSE_WAIT -> LAST_ACK -> CLOSE: no
TIME_WAIT here). Which share does which is measured per group over the same window as the
rate (``time_wait_share``): of the connections that ended in it, those that entered
TIME_WAIT (the ``tw_expiring`` bins younger than the window) against those that ended
without (a flow balance: new - entered TIME_WAIT - growth of the group's other sockets).
Until about TIME_WAIT_EVIDENCE connections have ended (the first sample, held connections
not yet closed) the share is taken as 1: the worst case, as a client-closed host is. Past
60 s the ports in use settle at established + syn_sent + other + rate x share x 60 s;
established sockets stay. The first crossing of the usable ports within that time is the
forecast; none: None, "not on course" (a steady state below the ceiling never runs out,
whatever it uses).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from portstorm.core.capacity import TIME_WAIT_S
from portstorm.core.watchadvice import advise_watch
from portstorm.core.watchsample import STATES, TW_BINS, GroupRead, ProcessRead, WatchSample
from portstorm.core.watchview import GroupView, Recent, WatchView

__all__ = [
    "RATE_COUNTING",
    "GroupView",
    "WatchView",
    "forecast",
    "time_wait_share",
    "view",
    "words",
]

SMOOTH_S = 2.0  # the rate is the mean over the samples of the last 2 s
SMOOTH_SLACK = 0.1  # of an interval: 1.001 + 1.002 s intervals are still 2 samples
INFLOW_S = 3  # the first sample's rate: TIME_WAIT entered within the last 3 s
TIME_WAIT_EVIDENCE = 10  # connections ended in the window before its share is believed
RATE_COUNTING = (
    "conn/s: sockets first seen per second (by cookie) plus their share of TcpActiveOpens "
    f"not seen, mean of the last {SMOOTH_S:g} s"
)


def view(
    sample: WatchSample,
    previous: WatchView | None = None,
    tunings: Mapping[str, str] | None = None,
) -> WatchView:
    """The sample as watch shows it; ``previous`` (the view of the sample before) carries
    the rates to smooth; ``tunings`` (sysctls, full names) words the advice."""
    usable = sample.usable_ports
    first = previous is None or sample.dt <= 0
    counts = _counts(sample) if not first else [0.0] * len(sample.groups)
    before = {g.key: g for g in previous.groups} if previous is not None else {}
    groups = []
    for g, count in zip(sample.groups, counts, strict=True):
        if first:
            recent: tuple[Recent, ...] = ((_inflow(g), float(INFLOW_S), None),)
        else:
            was = before.get((g.source, g.destination))
            held = _not_time_wait(was) if was is not None else 0
            recent = _window((*(was.recent if was is not None else ()),
                              (count, sample.dt, held)))  # fmt: skip
        rate = sum(c for c, _, _ in recent) / sum(s for _, s, _ in recent)
        groups.append(_group(g, usable, rate, recent))
    groups.sort(key=lambda v: (-v.used_fraction, -v.rate_per_s, v.source, v.destination))
    dt = sample.dt
    rates = {k: v / dt for k, v in sample.counters.items()} if dt > 0 else {}
    out = WatchView(
        t=sample.t, dt=max(dt, 0.0), port_range=sample.port_range, usable_ports=usable,
        time_wait=sample.time_wait, groups=tuple(groups), counters_per_s=rates,
        bind_trap=dict(sample.bind_trap), conntrack=sample.conntrack,
        processes=_latest_processes(sample, previous), unreadable=sample.unreadable,
    )  # fmt: skip
    return dataclasses.replace(out, advice=tuple(advise_watch(out, tunings or {})))


def _latest_processes(
    sample: WatchSample, previous: WatchView | None
) -> tuple[ProcessRead, ...] | None:
    """The latest scan of the processes' fds: the reader scans them less often than it
    samples (engine/watchread.py), and between scans the table, the JSON and the exporter
    keep showing the last one rather than dropping those lines every other sample."""
    if sample.processes is not None or previous is None:
        return sample.processes
    return previous.processes


def _counts(sample: WatchSample) -> list[float]:
    """Connections per group this interval: ``new`` plus its share of the unseen opens."""
    seen = sum(g.new for g in sample.groups)
    opens = sample.counters.get("TcpActiveOpens")
    unseen = max(0, opens - seen) if opens is not None else 0
    # apportioned by new; with none new (all came and went), by the ports each holds
    weights = [g.new for g in sample.groups] if seen else [g.sockets for g in sample.groups]
    total = sum(weights)
    return [
        g.new + (unseen * w / total if total else 0.0)
        for g, w in zip(sample.groups, weights, strict=True)
    ]


def _inflow(g: GroupRead) -> float:
    """TIME_WAIT sockets that entered it within the last INFLOW_S seconds."""
    return float(sum(g.tw_expiring[TW_BINS - 1 - INFLOW_S :])) if g.tw_expiring else 0.0


def _window(recent: tuple[Recent, ...]) -> tuple[Recent, ...]:
    """The newest samples covering SMOOTH_S seconds (at least the newest one)."""
    kept: list[Recent] = []
    span = 0.0
    for entry in reversed(recent):
        seconds = entry[1]
        if kept and span + seconds > SMOOTH_S + SMOOTH_SLACK * seconds:
            break
        kept.append(entry)
        span += seconds
    return tuple(reversed(kept))


def _not_time_wait(g: GroupRead | GroupView) -> int:
    """The group's sockets in every state but TIME_WAIT (established, syn_sent, other)."""
    states = g.states
    return sum(n for s, n in states.items() if s != "time_wait")


def time_wait_share(g: GroupRead, recent: tuple[Recent, ...]) -> float:
    """Of the connections that ended within ``recent``'s window, the share that entered
    TIME_WAIT here (1 until TIME_WAIT_EVIDENCE of them have ended: the worst case)."""
    start = recent[0][2]
    if start is None:
        return 1.0
    span = round(sum(s for _, s, _ in recent))
    entered = float(sum(g.tw_expiring[max(0, TW_BINS - 1 - span) :])) if g.tw_expiring else 0.0
    opened = sum(c for c, _, _ in recent)
    # every connection opened in the window is still open (its socket grew the others),
    # entered TIME_WAIT, or ended without it: the last is what is left over
    without = max(0.0, opened - entered - (_not_time_wait(g) - start))
    ended = entered + without
    return 1.0 if ended < TIME_WAIT_EVIDENCE else min(1.0, entered / ended)


def _group(g: GroupRead, usable: int, rate: float, recent: tuple[Recent, ...]) -> GroupView:
    in_use = g.sockets
    fraction = in_use / usable if usable > 0 else (1.0 if in_use else 0.0)
    share = time_wait_share(g, recent)
    eta = forecast(in_use, g.tw_expiring, usable, rate, share)
    return GroupView(
        source=g.source, destination=g.destination, usable_ports=usable, ports_in_use=in_use,
        states={s: g.states.get(s, 0) for s in STATES}, used_fraction=fraction,
        rate_per_s=rate, exhaustion_in_s=eta, words=words(fraction, rate, eta), recent=recent,
        time_wait_share=share,
    )  # fmt: skip


def forecast(
    in_use: int, tw_expiring: tuple[int, ...], usable: int, rate: float, share: float = 1.0
) -> float | None:
    """Seconds until ``in_use`` reaches ``usable`` when ``rate`` new connections per second
    come, a ``share`` of them holding a port 60 s in TIME_WAIT (the rest give it back at
    once), and today's TIME_WAIT sockets leave as their bins say (uniformly within each
    one-second bin); None when it never does (or no connection is being made).

    Ports in use are piecewise linear in time: a slope of rate x share - bins[k] in [k, k+1)
    while new connections accumulate (the first 60 s), then -bins[k] as the earliest new
    ones expire at the rate they came; so the first crossing is found bin by bin."""
    if rate <= 0:
        return None  # no demand: nothing runs out, however full
    if in_use >= usable:
        return 0.0
    bins = tw_expiring or (0,) * TW_BINS
    level = float(in_use)
    for k in range(TW_BINS):
        slope = (rate * share if k < TIME_WAIT_S else 0.0) - bins[k]
        end = level + slope
        if slope > 0 and end >= usable:
            return k + (usable - level) / slope
        level = end
    return None  # past 61 s the level only holds or falls: established stay, the rest turn over


def words(fraction: float, rate: float, eta: float | None) -> str:
    """The forecast as the table says it."""
    used = f"{fraction * 100:.0f} % used"
    if eta is None:
        return f"steady: {used}" if rate > 0 else f"idle: {used}"
    at = f"at {rate:,.0f} conn/s"
    if eta <= 0:
        return f"out of ports {at}"
    return f"runs out in {_seconds(eta)} {at}"


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"
