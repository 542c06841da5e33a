"""The NAT chart (report/natchart.py): drawn only for a run with a router, right after the
client's port-space chart; conntrack's states stacked under the pool's ceiling; the
router's drops counted in the key; the key outside the data. Checked on the drawn
artists, not on pixels."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from portstorm.core.result import RunResult
from portstorm.report.build import run_charts
from portstorm.report.natchart import nat_ports
from portstorm.report.style import charting
from tests.unit.test_natfindings import Second, run

if TYPE_CHECKING:  # matplotlib is imported lazily, by the code under test
    from matplotlib.figure import Figure


def _held() -> RunResult:
    est = {"established": 100}
    return run([Second(50, states={"established": 50}), Second(50, states=est),
                Second(0, {"timeout": 6}, states=est, insert_failed=24)],
               hold_s=10.0, rate=50.0)  # fmt: skip


def _labels(fig: Figure) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_the_nat_chart_follows_the_port_space_chart_only_when_there_is_a_router() -> None:
    r = _held()
    assert [stem for stem, _alt, _draw in run_charts(r)][:2] == ["port-space", "nat"]
    assert r.model is not None
    bare = dataclasses.replace(
        r,
        model=dataclasses.replace(r.model, nat=None),
        intervals=tuple(dataclasses.replace(i, router=None) for i in r.intervals),
    )
    assert "nat" not in [stem for stem, _alt, _draw in run_charts(bare)]


def test_states_are_stacked_under_the_pool_with_the_drops_in_the_key() -> None:
    import numpy as np
    from matplotlib.collections import PolyCollection

    with charting():
        fig = nat_ports(_held())
        ax = fig.get_axes()[0]
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        tops = max(
            float(y)
            for b in bands
            for p in b.get_paths()
            for _x, y in np.asarray(p.vertices, dtype=float).tolist()
        )
        assert tops == 100.0  # established 100, under the ceiling line
        ceilings = [ln for ln in ax.get_lines() if str(ln.get_label()).startswith("NAT pool")]
        assert [float(np.asarray(ln.get_ydata())[0]) for ln in ceilings] == [100.0]
        labels = _labels(fig)
        assert "conntrack established (connections held open)" in labels
        assert "NAT pool 40000-40099: 100 ports = 100" in labels
        assert "insert_failed: SYNs dropped at insert (+24)" in labels
        # one key below the panels: none inside an axes, over the data
        assert all(a.get_legend() is None for a in fig.get_axes())


def test_a_nat_run_without_router_readings_still_draws_its_ceiling() -> None:
    r = _held()
    bare = dataclasses.replace(
        r, intervals=tuple(dataclasses.replace(i, router=None) for i in r.intervals)
    )
    with charting():
        fig = nat_ports(bare)
        texts = [t.get_text() for t in fig.get_axes()[0].texts]
        assert "the router was not read in this run" in texts
        assert "NAT pool 40000-40099: 100 ports = 100" in _labels(fig)


def test_no_legend_covers_the_nat_chart_or_leaves_the_figure() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from tests.report.test_chart_details import _covered

    churn = run([Second(400, states={"time_wait": min(100, 40 * (k + 1))}) for k in range(5)],
                rate=400.0)  # fmt: skip
    race = run([Second(300, states={"established": 150}, insert_failed=k % 3) for k in range(5)],
               pool=(1024, 65535), rate=300.0, conntrack_limit=5000)  # fmt: skip
    with charting():
        for r in (_held(), churn, race):
            fig = nat_ports(r)
            assert _covered(fig, FigureCanvasAgg(fig)) == []
