"""``--start-at TIME``: the instant a run's load begins, shared by the hosts of a fleet.

Containing the parsing of the instant as typed (UTC ISO 8601, or Unix epoch seconds), the
refusals (already past before preparing: exit 2; past once prepared: exit 3), its text form
for result.json, and the parsing of what chrony and systemd-timesyncd say of this host's
clock offset. No clock is read here (the caller passes ``now``) and no command is run:
engine/clock.py runs ``chronyc`` and ``timedatectl`` and hands their output to the parsers.

Why a wall-clock instant: hosts share no monotonic clock, so runs on many hosts can only
cover the same seconds by each converting one agreed UTC instant to its own perf_counter
(engine/run.py); how well they agree is then their NTP offsets, which result.json records.
"""

from __future__ import annotations

import datetime as dt
import math
import re

from portstorm.core.errors import EnvironmentProblem, UsageError

# Later than this is a typo, not a plan (a start must also fit the run's duration bound).
MAX_LEAD_S = 7 * 24 * 3600.0
_EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC).timestamp()
_EPOCH = re.compile(r"^\d{9,11}(\.\d{1,9})?$")
_EXAMPLE = "e.g. 2026-12-01T17:30:00Z or 1796146200"


def parse_start_at(text: str) -> float:
    """``--start-at`` as typed -> Unix seconds. ISO 8601 without an offset is UTC."""
    raw = text.strip()
    if _EPOCH.match(raw):
        value = float(raw)
    else:
        try:
            when = dt.datetime.fromisoformat(raw)
        except ValueError:
            raise UsageError(
                f"--start-at {text!r}: not a UTC ISO 8601 time or epoch seconds ({_EXAMPLE})"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        value = when.timestamp()
    if not math.isfinite(value) or value < _EARLIEST:
        raise UsageError(f"--start-at {text!r}: before 2000-01-01 ({_EXAMPLE})")
    return value


def iso(t_s: float) -> str:
    """Unix seconds -> ``2026-12-01T17:30:00.000Z`` (milliseconds: what NTP can promise)."""
    when = dt.datetime.fromtimestamp(t_s, dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def check_ahead(start_at_s: float, now_s: float) -> None:
    """Before anything is prepared: a start already past (or absurdly far) is bad usage."""
    if start_at_s <= now_s:
        raise UsageError(
            f"--start-at {iso(start_at_s)} is already past (now {iso(now_s)}, "
            f"{now_s - start_at_s:.3f} s later): give a time in the future"
        )
    if start_at_s - now_s > MAX_LEAD_S:
        raise UsageError(
            f"--start-at {iso(start_at_s)} is {start_at_s - now_s:.0f} s ahead: allowed at "
            f"most {MAX_LEAD_S:.0f} s (7 days)"
        )


def check_not_late(start_at_s: float, now_s: float, margin_s: float, prepared_s: float) -> None:
    """Once the sandbox and sink are up: the load cannot begin at ``start_at_s`` when less
    than ``margin_s`` is left. The environment was too slow, not the user's input (the
    time was ahead when given): EnvironmentProblem, exit 3, and nothing is measured, since
    a late start would cover other seconds than the rest of a fleet."""
    if start_at_s - now_s < margin_s:
        raise EnvironmentProblem(
            f"--start-at {iso(start_at_s)} passed while preparing (preparing took "
            f"{prepared_s:.3f} s; now {iso(now_s)}): give more lead time, nothing was measured"
        )


# -- what the host's time service says of its clock -------------------------------------------


def chrony_offset_s(tracking_csv: str) -> float | None:
    """``chronyc -c tracking`` -> this clock's offset from NTP time, seconds (positive:
    fast). The CSV's fields: ref id, ref name, stratum, ref time, system time (the
    offset; chrony reports it as "slow of" positive in its own sign), ... (chronyc(1))."""
    fields = tracking_csv.strip().splitlines()[0].split(",") if tracking_csv.strip() else []
    if len(fields) < 5:
        return None
    try:
        # chrony's "System time" is how far NTP time is ahead of ours: ours = NTP - that
        value = -float(fields[4])
    except ValueError:
        return None
    return value if math.isfinite(value) else None


_TIMESYNC = re.compile(r"^\s*Offset:\s*([+-]?[\d.]+)\s*(ns|us|µs|ms|s|min)\s*$", re.MULTILINE)
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0}


def timesyncd_offset_s(status: str) -> float | None:
    """``timedatectl timesync-status`` -> the last measured offset (systemd-timesyncd),
    seconds; None when it shows none (no server reached yet)."""
    m = _TIMESYNC.search(status)
    if m is None:
        return None
    try:
        return float(m.group(1)) * _UNITS[m.group(2)]
    except ValueError:
        return None
