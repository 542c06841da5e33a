"""--stop-on-fail's rule (core/gatestop.py): only a monotone metric fails for certain before
the run's end, and what a run measured so far decides it."""

from __future__ import annotations

import pytest

from portstorm.core.errors import UsageError
from portstorm.core.gatestop import SoFar, can_stop, certain_failure, check_stoppable
from portstorm.core.thresholds import parse_threshold, parse_thresholds

STOPPABLE = [
    ("port_exhausted > 0", True),
    ("timeout >= 5", True),
    ("refused != 3", True),
    ("time_wait_peak > 100", True),
    ("ports_in_use_peak >= 50", True),
    ("first_failure < 5s", True),
    ("first_failure != never", True),
    ("port_exhausted < 5", False),  # holds early, may stop holding
    ("port_exhausted == 2", False),
    ("failed_pct > 1%", False),  # may recover
    ("p99 > 5ms", False),
    ("max > 1s", False),
    ("rate < 100", False),
]


@pytest.mark.parametrize(("text", "stoppable"), STOPPABLE)
def test_only_monotone_thresholds_can_stop_a_run(text: str, stoppable: bool) -> None:
    assert can_stop(parse_threshold(text)) is stoppable


def _decided(texts: list[str], so_far: SoFar) -> str | None:
    v = certain_failure(parse_thresholds(texts), so_far)
    return None if v is None else v.expression


def test_a_count_decides_once_it_passes_its_bound_and_not_before() -> None:
    so_far = SoFar()
    gates = ["port_exhausted > 3", "p99 > 1ms", "refused != 2"]
    so_far.add({"port_exhausted": 2, "refused": 2}, {})
    assert _decided(gates, so_far) is None  # 2 refused may stay 2
    so_far.add({"port_exhausted": 2}, {})
    assert _decided(gates, so_far) == "port_exhausted > 3"
    so_far.add({"refused": 1}, {})
    assert _decided(gates[1:], so_far) == "refused != 2"  # 3: never 2 again


def test_the_first_failure_decides_before_its_interval_ends_counting_one() -> None:
    so_far = SoFar()
    assert _decided(["port_exhausted > 0", "first_failure < 1s"], so_far) is None
    so_far.failed_at(0.5, "port_exhausted")
    assert _decided(["port_exhausted > 0"], so_far) == "port_exhausted > 0"
    assert _decided(["port_exhausted > 1"], so_far) is None  # only one seen so far
    assert _decided(["first_failure < 1s"], so_far) == "first_failure < 1s"
    assert _decided(["first_failure > 1s", "first_failure == never"], so_far) is None
    so_far.add({"port_exhausted": 3}, {})  # its interval: the one already counted within
    assert so_far.count("port_exhausted") == 3


def test_a_peak_decides_once_a_reading_passes_it() -> None:
    so_far = SoFar()
    so_far.add({}, {"time_wait": 40, "ports_in_use": None})
    assert _decided(["time_wait_peak > 50", "ports_in_use_peak > 0"], so_far) is None
    so_far.add({}, {"time_wait": 60, "ports_in_use": 10})
    assert _decided(["time_wait_peak > 50"], so_far) == "time_wait_peak > 50"
    so_far.add({}, {"time_wait": 5})  # a peak never falls
    assert _decided(["time_wait_peak > 50"], so_far) == "time_wait_peak > 50"


def test_stop_on_fail_without_a_threshold_it_can_stop_on_is_refused() -> None:
    with pytest.raises(UsageError, match=r"--stop-on-fail: no --fail-if can fail before"):
        check_stoppable(parse_thresholds(["p99 > 5ms", "failed_pct > 1%"]))
    with pytest.raises(UsageError, match=r"given: none"):
        check_stoppable(())
    check_stoppable(parse_thresholds(["p99 > 5ms", "port_exhausted > 0"]))
