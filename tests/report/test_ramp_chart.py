"""The port-space chart starts at t = 0 and draws the ramp's 100 ms readings, so the first
second's climb (half the range filled in it, tests/support/ramprun.py) is visible; checked
on the drawn lines, not on pixels."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from portstorm.report.runcharts import port_space
from portstorm.report.style import charting
from tests.support.ramprun import users_run

if TYPE_CHECKING:  # matplotlib is imported lazily, by the code under test
    from matplotlib.figure import Figure

PORTS = "ports in use toward the target(s)"


def _points(fig: Figure, label: str) -> list[tuple[float, float]]:
    import numpy as np

    (line,) = [ln for ax in fig.get_axes() for ln in ax.get_lines() if ln.get_label() == label]
    xs = np.asarray(line.get_xdata(), dtype=float)
    ys = np.asarray(line.get_ydata(), dtype=float)
    return [(round(float(x), 6), float(y)) for x, y in zip(xs, ys, strict=True)]


def test_the_port_space_chart_climbs_from_zero_through_the_ramp() -> None:
    r = users_run(with_ramp=True)
    with charting():
        pts = _points(port_space(r), PORTS)
    ramp = [(round(p.t + p.dt, 6), float(p.ports_in_use or 0)) for p in r.ramp]
    later = [(round(i.t + i.dt, 6), float(i.ports_in_use or 0)) for i in r.intervals[1:]]
    # a new namespace holds nothing when the load starts; then every 100 ms of the first
    # second, then one reading per interval (the first interval's is the ramp's last)
    assert pts == [(0.0, 0.0), *ramp, *later]


def test_without_a_ramp_the_chart_still_starts_at_zero_in_a_sandbox_but_not_on_a_host() -> None:
    r = users_run(with_ramp=False)
    with charting():
        pts = _points(port_space(r), PORTS)
    assert pts[0] == (0.0, 0.0) and pts[1] == (1.0, 14_157.0)
    host = dataclasses.replace(r, setup=dataclasses.replace(r.setup, sandbox="host"))
    with charting():
        pts = _points(port_space(host), PORTS)
    assert pts[0] == (1.0, 14_157.0)  # a host's sockets before the run are not known to be 0
