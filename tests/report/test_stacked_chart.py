"""The port-space chart stacks what holds the ports: connections held open (established)
under client TIME_WAIT, below the ceiling; checked on the drawn bands, not on pixels."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from portstorm.core.result import RunResult
from portstorm.report.runcharts import port_space
from portstorm.report.style import charting
from tests.support.reportdata import simulate

if TYPE_CHECKING:  # matplotlib is imported lazily, by the code under test
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

ESTABLISHED = "established: connections held open"
TIME_WAIT = "TIME_WAIT, client"


def held_run(hold_s: float = 2.0, rate: int = 50) -> RunResult:
    """A simulated run whose connections are each held ``hold_s`` before the client
    closes: rate x hold established at the steady state, TIME_WAIT climbing under them."""
    r = simulate(ports=1000, rate=rate, duration=10)
    steady = int(rate * hold_s)
    ivs = []
    for i in r.intervals:
        est = min(steady, int(rate * (i.t + i.dt)))
        tw = i.time_wait or 0
        ivs.append(dataclasses.replace(i, established=est, ports_in_use=est + tw))
    return dataclasses.replace(r, intervals=tuple(ivs))


def _bands(fig: Figure) -> dict[str, PolyCollection]:
    from matplotlib.collections import PolyCollection

    return {
        str(c.get_label()): c
        for ax in fig.get_axes()
        for c in ax.collections
        if isinstance(c, PolyCollection) and not str(c.get_label()).startswith("_")
    }


def _tops(band: PolyCollection) -> dict[float, float]:
    """The band's upper edge: at each x of its outline, the highest y."""
    import numpy as np

    tops: dict[float, float] = {}
    for path in band.get_paths():
        for x, y in np.asarray(path.vertices, dtype=float).tolist():
            tops[round(x, 6)] = max(tops.get(round(x, 6), 0.0), y)
    return tops


def test_established_and_time_wait_are_stacked_under_the_ceiling() -> None:
    r = held_run()
    with charting():
        bands = _bands(port_space(r))
    assert set(bands) >= {ESTABLISHED, TIME_WAIT}
    est, tw = _tops(bands[ESTABLISHED]), _tops(bands[TIME_WAIT])
    assert est[0.0] == tw[0.0] == 0.0  # a pair sandbox starts empty
    for i in r.intervals:
        t = round(i.t + i.dt, 6)
        assert i.established is not None and i.time_wait is not None
        assert est[t] == i.established
        assert tw[t] == i.established + i.time_wait  # TIME_WAIT on top of the held ones
    assert r.model is not None and max(tw.values()) <= r.model.port_space


def test_a_file_from_before_established_draws_time_wait_alone() -> None:
    r = simulate(ports=1000, rate=50, duration=10)
    assert all(i.established is None for i in r.intervals)
    with charting():
        bands = _bands(port_space(r))
    assert ESTABLISHED not in bands and TIME_WAIT in bands
    tw = _tops(bands[TIME_WAIT])
    assert all(tw[round(i.t + i.dt, 6)] == i.time_wait for i in r.intervals)


def test_an_interval_without_a_sample_is_left_out_of_the_stack() -> None:
    r = held_run()
    gap = r.intervals[4]
    missing = dataclasses.replace(gap, established=None, time_wait=None, ports_in_use=None)
    r = dataclasses.replace(r, intervals=(*r.intervals[:4], missing, *r.intervals[5:]))
    with charting():
        bands = _bands(port_space(r))
    assert round(gap.t + gap.dt, 6) not in _tops(bands[ESTABLISHED])
    assert round(gap.t + gap.dt, 6) not in _tops(bands[TIME_WAIT])


def test_the_bands_differ_by_hatch_as_well_as_colour() -> None:
    with charting():
        bands = _bands(port_space(held_run()))
    assert bands[ESTABLISHED].get_hatch() != bands[TIME_WAIT].get_hatch()


def test_the_interval_csv_carries_established_blank_where_not_sampled() -> None:
    import csv
    import io

    from portstorm.report.exports import intervals_csv

    r = held_run()
    rows = list(csv.DictReader(io.StringIO(intervals_csv(r))))
    assert [int(x["established"]) for x in rows] == [i.established for i in r.intervals]
    old = list(csv.DictReader(io.StringIO(intervals_csv(simulate(duration=3)))))
    assert {x["established"] for x in old} == {""}


def test_a_run_whose_sampler_read_neither_band_draws_an_empty_chart_with_a_note() -> None:
    # no sample read ESTABLISHED or TIME_WAIT (a sampler that failed throughout): nothing
    # to stack, said on the chart; the ports in use read at the same samples still drawn
    r = held_run()
    bare = tuple(dataclasses.replace(i, established=None, time_wait=None) for i in r.intervals)
    r = dataclasses.replace(r, intervals=bare)
    with charting():
        fig = port_space(r)
        bands = _bands(fig)
        notes = [t.get_text() for ax in fig.get_axes() for t in ax.texts]
        lines = [str(ln.get_label()) for ax in fig.get_axes() for ln in ax.get_lines()]
    assert ESTABLISHED not in bands and TIME_WAIT not in bands
    assert notes == ["connections held open and TIME_WAIT were not read in this run"]
    assert "ports in use toward the target(s)" in lines


def test_a_nat_run_starts_from_zero_as_the_pair_does_and_a_host_run_does_not() -> None:
    # the nat sandbox's three namespaces are new when the load starts: nothing is held
    r = held_run()
    for sandbox, starts_at_zero in (("nat", True), ("host", False)):
        run = dataclasses.replace(r, setup=dataclasses.replace(r.setup, sandbox=sandbox))
        with charting():
            est = _tops(_bands(port_space(run))[ESTABLISHED])
        assert (0.0 in est) is starts_at_zero, (sandbox, sorted(est))
