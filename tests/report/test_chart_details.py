"""Details of the charts, checked on the drawn artists rather than on pixels: the latency
line breaks over intervals without a success, no legend covers a plot's data area, and
a NAT run's rate chart draws the rate of the ceiling that binds first.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from portstorm.core.compare import Subject
from portstorm.core.result import RunResult
from portstorm.report.manycharts import MANY_CHARTS
from portstorm.report.runcharts import RUN_CHARTS, latency
from portstorm.report.style import charting
from tests.report.test_stacked_chart import held_run
from tests.support.reportdata import simulate

if TYPE_CHECKING:  # matplotlib is imported lazily, by the code under test
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D


def _exhausted() -> RunResult:
    # 100 ports held 60 s at 50/s: the ports run out after 2 s, and from then on no
    # attempt succeeds, so intervals 2..9 have no latency at all
    return simulate(ports=100, rate=50, duration=10)


def _line(fig: Figure, label: str) -> Line2D:
    lines = [ln for ax in fig.get_axes() for ln in ax.get_lines() if ln.get_label() == label]
    assert len(lines) == 1, [ln.get_label() for ax in fig.get_axes() for ln in ax.get_lines()]
    return lines[0]


def _ys(line: Line2D) -> list[float]:
    import numpy as np

    return [float(y) for y in np.asarray(line.get_ydata(), dtype=float)]


def _xs(line: Line2D) -> list[float]:
    import numpy as np

    return [float(x) for x in np.asarray(line.get_xdata(), dtype=float)]


def test_p50_and_p99_lines_break_over_intervals_without_successes() -> None:
    r = _exhausted()
    empty = [k for k, i in enumerate(r.intervals) if i.succeeded == 0]
    assert empty and empty[0] > 0  # successes first, then none: a gap to draw
    with charting():
        fig = latency(r)
        for key in ("p50", "p99"):
            ys = _ys(_line(fig, f"{key} per interval"))
            assert len(ys) == len(r.intervals)  # one point per interval, not per success
            gaps = [k for k, y in enumerate(ys) if math.isnan(y)]
            assert gaps == empty, (key, ys)
            for k, i in enumerate(r.intervals):
                if k not in empty:  # elsewhere the interval's own percentile, never 0
                    v = i.latency_us[key]
                    assert v is not None and ys[k] == v > 0


def test_a_gap_between_successes_is_not_bridged() -> None:
    r = _exhausted()
    # the second interval's successes moved to the end (as when ports come back), the
    # intervals without any in between: the line must not join the first and the last
    first, second, *rest = r.intervals
    moved = [dataclasses.replace(i, t=first.dt * (k + 1)) for k, i in enumerate(rest)]
    moved.append(dataclasses.replace(second, t=first.dt * (len(rest) + 1)))
    r = dataclasses.replace(r, intervals=(first, *moved))
    with charting():
        ys = _ys(_line(latency(r), "p50 per interval"))
    assert not math.isnan(ys[0]) and not math.isnan(ys[-1])
    assert all(math.isnan(y) for y in ys[1:-1])  # so matplotlib draws two pieces, apart


def _day_with_a_spike() -> RunResult:
    """A day in 2,000 intervals of 43.2 s (charts draw bins), with a burst of 400 timeouts
    and a p99 of 1.6 s in the interval at 12:00, where the first failure comes."""
    r = simulate(ports=20_000, rate=5, duration=2_000, hold_s=1.0)
    ivs = [dataclasses.replace(i, t=43.2 * k, dt=43.2) for k, i in enumerate(r.intervals)]
    spike = ivs[1_000]
    ivs[1_000] = dataclasses.replace(
        spike,
        attempts=spike.attempts + 400,
        failed={"timeout": 400},
        latency_us={**spike.latency_us, "p99": 1_600_000},
    )
    return dataclasses.replace(
        r,
        intervals=tuple(ivs),
        duration_s=86_400.0,
        first_failure_s=spike.t,
        first_failure_outcome="timeout",
        tuples=(),
        ramp=(),
    )


def test_a_days_latency_chart_marks_the_one_interval_whose_p99_stands_out() -> None:
    """A bin of ~90 intervals draws one interval's spike a pixel wide, under the first
    failure's marker at the same moment: a marker on the highest p99 says it."""
    r = _day_with_a_spike()
    spike = r.intervals[1_000]
    with charting():
        fig = latency(r)
        marked = [
            ln for ax in fig.get_axes() for ln in ax.get_lines()
            if str(ln.get_label()).startswith("highest p99: ")
        ]  # fmt: skip
    assert len(marked) == 1
    assert _ys(marked[0]) == [1_600_000.0]
    assert "12:00:00" in str(marked[0].get_label())
    assert _xs(marked[0]) == [pytest.approx(spike.t + spike.dt)]
    with charting():  # one interval a bin: every reading is drawn, nothing marked
        short = latency(simulate(ports=10_000, rate=50, duration=10))
        labels = [str(ln.get_label()) for ax in short.get_axes() for ln in ax.get_lines()]
    assert not any(label.startswith("highest") for label in labels)


def test_the_overlap_check_sees_a_legend_inside_the_axes() -> None:
    """The check below is not vacuous: a legend placed in the plot is caught."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from portstorm.report.style import new_figure

    with charting():
        fig = new_figure(4.0)
        ax = fig.subplots()
        ax.plot([0, 1], [0, 1], label="data")
        ax.legend(loc="best")
        assert _covered(fig, FigureCanvasAgg(fig))


def _covered(fig: Figure, canvas: Any) -> list[str]:
    """The titles of the axes that some legend of ``fig`` overlaps, once laid out, and
    "figure edge" for a legend cut off by the figure's edge (too wide to fit)."""
    canvas.draw()
    renderer = canvas.get_renderer()
    legends = list(fig.legends) + [lg for ax in fig.get_axes() if (lg := ax.get_legend())]
    page = fig.bbox
    found = [
        ax.get_title() or "?"
        for lg in legends
        for ax in fig.get_axes()
        if lg.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
    ]
    for lg in legends:
        box = lg.get_window_extent(renderer)
        if box.x0 < page.x0 or box.x1 > page.x1 or box.y0 < page.y0 or box.y1 > page.y1:
            found.append("figure edge")
    return found


# each case's data is built by the one worker that draws it, once (functools.cache), not
# at collection by all of them: building all of them took 0.6 s of each worker's collection
_RUNS: dict[str, Callable[[], RunResult]] = {
    "exhausted": _exhausted,
    "no failure": lambda: simulate(ports=10_000, rate=50, duration=10),
    "knee": lambda: simulate(ports=100, rate=50, duration=10, knee_us=5_000),
    "SYN tail": lambda: simulate(ports=10_000, rate=50, duration=10, syn_tail=20),
    "loopback": lambda: simulate(ports=100, rate=50, duration=10, sandbox="loopback"),
    "held": held_run,  # established and TIME_WAIT stacked: two more legend entries
    "a day, binned": _day_with_a_spike,  # long labels: 12:00:00 (43,200 s)
}


@functools.cache
def _run(what: str) -> RunResult:
    return _RUNS[what]()


@functools.cache
def _subjects(long_labels: bool = False) -> list[Subject]:
    """Three sweep cells; ``long_labels``: compared runs named by all their settings, as
    ``compare`` names them (``ip_local_port_range=40000 40099 tcp_tw_reuse=1``)."""
    return [
        Subject(
            f"ip_local_port_range=40000 40099 tcp_tw_reuse={k}" if long_labels else f"r{k}",
            (simulate(ports=100, rate=50, duration=20, hold_s=1.0 if k else 60.0),),
            (),
            {} if long_labels else {"tcp_tw_reuse": str(k)},
        )
        for k in (0, 1, 2)
    ]


def _cases() -> Iterator[Any]:
    for what in _RUNS:
        for stem, _alt, draw in RUN_CHARTS:
            yield pytest.param(draw, functools.partial(_run, what), id=f"run-{stem}-{what}")
    for stem, _alt, draw_many in MANY_CHARTS:
        yield pytest.param(draw_many, _subjects, id=f"many-{stem}")
        yield pytest.param(
            draw_many, functools.partial(_subjects, True), id=f"many-{stem}-long-labels"
        )


@pytest.mark.parametrize(("draw", "make"), list(_cases()))
def test_no_legend_covers_a_plot(draw: Callable[[Any], Figure], make: Callable[[], Any]) -> None:
    """Every legend of every chart lies outside every axes' data area (the axes patch)
    and inside the figure, once laid out (constrained layout places "outside" legends
    when the figure is drawn)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    data = make()
    with charting():
        fig = draw(data)
        canvas = FigureCanvasAgg(fig)  # what savefig draws on
        has_legend = bool(fig.legends) or any(ax.get_legend() for ax in fig.get_axes())
        assert has_legend or draw.__name__ == "kernel_counters", "a chart without a key?"
        assert _covered(fig, canvas) == []


def test_the_rate_chart_of_a_nat_run_draws_the_rate_of_the_ceiling_that_binds() -> None:
    # 1,000 client ports held 60 s sustain 16.67/s; a 100-port NAT pool held 5 s, 20/s;
    # with 20,000 client ports (333/s) the NAT's 20/s binds and is named
    from portstorm.core.natmodel import nat_model
    from portstorm.report.runcharts import connection_rate

    def drawn(ports: int) -> list[str]:
        r = simulate(ports=ports, rate=10, duration=3)
        assert r.model is not None
        nat = nat_model(pool=(40000, 40099), nat_addresses=1, destinations=1, hold_s=5.0,
                        rate=10.0)  # fmt: skip
        r = dataclasses.replace(r, model=dataclasses.replace(r.model, nat=nat))
        with charting():
            fig = connection_rate(r)
            return [str(ln.get_label()) for ax in fig.get_axes() for ln in ax.get_lines()]

    assert "model (client ports): sustainable 16.67 conn/s" in drawn(1000)
    assert "model (NAT pool): sustainable 20.00 conn/s" in drawn(20_000)
    with charting():
        fig = connection_rate(simulate(ports=1000, rate=10, duration=3))  # no NAT: as before
        labels = [str(ln.get_label()) for ax in fig.get_axes() for ln in ax.get_lines()]
    assert "model: sustainable 16.67 conn/s" in labels


def test_a_nat_cells_time_to_first_failure_is_marked_at_the_nats_prediction() -> None:
    # 2,000 client ports at 50/s run out after 40 s; a 100-port pool held 5 s after 2 s:
    # the pool binds (the `nat` preset's cells), and its prediction is the one drawn
    import numpy as np

    from portstorm.core.natmodel import nat_model
    from portstorm.report.manycharts import first_failure

    r = simulate(ports=2000, rate=50, duration=3)
    assert r.model is not None and r.model.predicted_exhaustion_s == 40.0
    nat = nat_model(pool=(40000, 40099), nat_addresses=1, destinations=1, hold_s=5.0,
                    rate=50.0)  # fmt: skip
    cell = dataclasses.replace(r, model=dataclasses.replace(r.model, nat=nat))
    with charting():
        fig = first_failure([Subject("nat", (cell,)), Subject("pair", (r,))])
        marks = [ln for ax in fig.get_axes() for ln in ax.get_lines() if ln.get_marker() == "D"]
        xs = sorted(float(x) for ln in marks for x in np.asarray(ln.get_xdata(), dtype=float))
    assert xs == [2.0, 40.0]


def test_eight_cells_with_long_settings_have_tick_labels_that_do_not_touch() -> None:
    # the remedies preset's eight cells, each named by what it sets
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from portstorm.report.manycharts import rates

    settings = [("tcp_tw_reuse", "0"), ("ip_local_port_range", "40000-41999"),
                ("tcp_tw_reuse", "1"), ("tcp_tw_reuse_delay", "100"), ("close", "server"),
                ("close", "rst"), ("sink_ports", "2"), ("source", "198.18.1.0/30")]  # fmt: skip
    run = simulate(ports=100, rate=50, duration=5)
    subjects = [Subject(f"{k}={v}", (run,), (), {k: v}) for k, v in settings]
    with charting():
        fig = rates(subjects)
        canvas: Any = FigureCanvasAgg(fig)  # matplotlib's draw() is untyped
        canvas.draw()
        renderer = canvas.get_renderer()
        (ax,) = [a for a in fig.get_axes() if a.get_xticklabels()]
        boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels()]
    assert len(boxes) == 8
    gaps = [b.x0 - a.x1 for a, b in itertools.pairwise(boxes)]
    assert all(g >= 6 for g in gaps), gaps  # pixels between neighbours: they read apart


def test_the_ceiling_is_named_by_its_ports_and_by_its_sum_only_over_several_tuples() -> None:
    from portstorm.report.runcharts import port_space

    r = _exhausted()
    assert r.model is not None and r.model.tuples == 1
    many = dataclasses.replace(r, model=dataclasses.replace(r.model, tuples=3))
    with charting():
        labels = {
            n: [ln.get_label() for ax in port_space(run).get_axes() for ln in ax.get_lines()]
            for n, run in (("one", r), ("three", many))
        }
    assert "ceiling: 100 usable ports" in labels["one"], labels["one"]  # not "= 100" again
    assert "ceiling: 100 usable ports x 3 tuples = 300" in labels["three"], labels["three"]


def test_a_log_axis_of_counts_is_labelled_in_numbers_not_powers_of_ten() -> None:
    # 20,000 ports against 50 held: the ceiling is more than 20 times the data, so the
    # port-space axis is symlog; its labels read 0, 10, 100, 1,000, 10,000 (matplotlib's
    # own are TeX powers of ten, typeset through mathtext)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from portstorm.report.runcharts import port_space

    with charting():
        fig = port_space(simulate(ports=20_000, rate=10, duration=5))
        canvas: Any = FigureCanvasAgg(fig)  # matplotlib's draw() is untyped
        canvas.draw()
        (ax,) = fig.get_axes()
        labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert ax.get_yscale() == "symlog"
    assert {"0", "100", "1,000", "10,000"} <= set(labels), labels
    assert not [t for t in labels if "$" in t or "^" in t], labels
