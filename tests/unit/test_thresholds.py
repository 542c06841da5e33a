"""--fail-if expressions (core/thresholds.py): the grammar, its units, and the verdicts on a run."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portstorm.core.errors import UsageError
from portstorm.core.result import RunResult
from portstorm.core.thresholds import (
    CHANGES,
    METRICS,
    Threshold,
    Verdict,
    allowed_metrics,
    evaluate,
    parse_threshold,
)
from tests.support.reportdata import simulate

PARSED = [
    # text, metric, op, value in the metric's unit
    ("p99 > 10s", "p99", ">", 10_000_000.0),
    ("p99>5ms", "p99", ">", 5_000.0),
    ("max >= 250 us", "max", ">=", 250.0),
    ("transaction_p999 > 1.5ms", "transaction_p999", ">", 1_500.0),
    ("port_exhausted > 0", "port_exhausted", ">", 0.0),
    ("rate < 2000", "rate", "<", 2000.0),
    ("after_exhaustion < 10.5", "after_exhaustion", "<", 10.5),
    ("first_failure < 300ms", "first_failure", "<", 0.3),
    ("first_failure != never", "first_failure", "!=", None),
    ("failed_pct > 1%", "failed_pct", ">", 1.0),
    ("failed_pct == 0", "failed_pct", "==", 0.0),
    ("time_wait_peak >= 28000", "time_wait_peak", ">=", 28000.0),
    ("ports_in_use_peak > .5", "ports_in_use_peak", ">", 0.5),
]


@pytest.mark.parametrize(("text", "metric", "op", "value"), PARSED)
def test_an_expression_parses_into_the_metrics_own_unit(
    text: str, metric: str, op: str, value: float | None
) -> None:
    t = parse_threshold(text)
    assert (t.metric, t.op, t.value) == (metric, op, value)


REFUSED = [
    ("", "an empty expression"),
    ("p99 > 10", "p99 is a time: give its unit"),
    ("latency > 1ms", "unknown metric 'latency'"),
    ("p99 => 1ms", "'=' at position 5 is not an operator"),
    ("p99 = 1ms", "'=' at position 5 is not an operator"),
    ("rate < never", "'never' is a value of first_failure only"),
    ("port_exhausted > 0%", "a plain number"),
    ("failed_pct > 1ms", "a percentage"),
    ("p99 > 1ms 2", "'2' after the value"),
    ("p99 > 1e3us", "p99 is a time"),  # no exponents: 'e3us' is no unit
    ("__import__('os') > 1", "at position 12"),  # the quote: no strings, no calls
    ("p99 > 1." , "a number ends in '.'"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "why"), REFUSED)
def test_a_bad_expression_is_one_line_naming_the_problem_and_the_metrics(
    text: str, why: str
) -> None:
    with pytest.raises(UsageError) as e:
        parse_threshold(text)
    message = str(e.value)
    assert why in message
    assert "\n" not in message
    assert message.endswith(allowed_metrics())


_PIECES = st.sampled_from(
    [*METRICS, "never", "<", "<=", ">", ">=", "==", "!=", "=", "!", "%", "us", "ms", "s",
     "-", ".", "0", "1.5", "-3", "1e9", " ", "(", "\x00", "é", "٣", "9" * 400]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=40), st.lists(_PIECES, max_size=6).map("".join),
                 st.lists(_PIECES, max_size=6).map(" ".join)))  # fmt: skip
def test_any_text_parses_or_is_refused_with_the_allowed_metrics(text: str) -> None:
    try:
        t = parse_threshold(text)
    except UsageError as e:
        assert str(e).endswith(allowed_metrics())
        assert "\n" not in str(e)  # the text is quoted with repr(): one line
        return
    assert isinstance(t, Threshold) and t.metric in METRICS


def _run() -> RunResult:
    # 100 ports held 60 s at 50/s for 10 s: the ports run out 2 s in, port_exhausted after
    return simulate(ports=100, rate=50, duration=10)


def _verdict(result: RunResult, text: str) -> Verdict:
    (v,) = evaluate([parse_threshold(text)], result)
    return v


def test_an_exhausted_run_fails_port_exhausted_above_zero_and_passes_a_loose_latency() -> None:
    r = _run()
    exhausted = _verdict(r, "port_exhausted > 0")
    assert exhausted.measured == r.failed["port_exhausted"] > 0
    assert not exhausted.passed
    assert _verdict(r, "p99 > 10s").passed
    assert not _verdict(r, "first_failure < 5s").passed
    assert _verdict(r, "failed_pct > 90%").passed
    assert _verdict(r, "ports_in_use_peak > 100").passed


def test_a_run_that_never_failed_passes_first_failure_before_any_time() -> None:
    r = simulate(ports=10_000, rate=50, duration=3)
    assert r.first_failure_s is None
    assert _verdict(r, "first_failure < 1000s").passed
    assert not _verdict(r, "first_failure == never").passed
    assert _verdict(r, "first_failure != never").passed
    assert _verdict(r, "first_failure != never").measured_text() == "never"


def test_a_metric_the_run_did_not_measure_fails_as_not_measured() -> None:
    r = _run()
    assert r.transactions is None
    v = _verdict(r, "transaction_p99 > 1s")
    assert (v.measured, v.passed, v.measured_text()) == (None, False, "not measured")


def test_verdicts_are_saved_in_result_json_and_come_back_typed() -> None:
    r = _run()
    verdicts = evaluate([parse_threshold("port_exhausted > 0"), parse_threshold("p99 > 10s")], r)
    doc = dataclasses.replace(r, thresholds=verdicts).to_json()
    assert doc["thresholds"] == [v.to_json() for v in verdicts]
    assert RunResult.from_json(doc).thresholds == verdicts
    del doc["thresholds"]  # a file from before --fail-if
    assert RunResult.from_json(doc).thresholds == ()


_CHANGE_PIECES = st.sampled_from(
    [*CHANGES, "change", "(", ")", "rate", "p99", "max", "<", ">=", "-5", "20", "%", "ms", " "]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_CHANGE_PIECES, max_size=7).map(" ".join))
def test_any_compare_gate_parses_or_is_refused_with_compares_metrics(text: str) -> None:
    try:
        t = parse_threshold(text, changes=True)
    except UsageError as e:
        assert str(e).endswith(allowed_metrics(changes=True)) and "\n" not in str(e)
        return
    assert t.metric in METRICS or (t.is_change and t.metric in CHANGES)


CHANGE_PARSED = [
    ("change(rate) < -5%", "change(rate)", "<", -5.0),
    ("change ( p99 ) > 20 %", "change(p99)", ">", 20.0),
    ("change(first_failure) < -50%", "change(first_failure)", "<", -50.0),
]


@pytest.mark.parametrize(("text", "metric", "op", "value"), CHANGE_PARSED)
def test_a_change_parses_in_percent_on_compare_only(
    text: str, metric: str, op: str, value: float
) -> None:
    t = parse_threshold(text, changes=True)
    assert (t.metric, t.op, t.value, t.is_change) == (metric, op, value, True)
    with pytest.raises(UsageError, match="only 'portstorm compare' takes it") as e:
        parse_threshold(text)
    assert str(e.value).endswith(allowed_metrics())  # run's and sweep's list: no change()
