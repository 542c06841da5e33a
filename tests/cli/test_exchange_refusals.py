"""The request/response, HTTP and hold options refused as typed: one line naming the value
and what is allowed, exit 2 (bad usage) before anything runs, or exit 3 when this host's
file-descriptor limit cannot hold what --hold asks (core/exchange.py, core/scenario.py)."""

from __future__ import annotations

import pytest

from tests.support.cli import assert_one_line_error, in_process, portstorm


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--request-size", "-1"), ("--request-size", "-1", "allowed a whole number >= 0")),
        (("--response-size", "16777217"), ("--response-size", "<= 16777216 (bytes)")),
        (("--response-size", "1.5"), ("--response-size", "'1.5'", "whole number")),
        (("--hold", "-2"), ("--hold -2 is out of range",)),
        (("--hold", "nan"), ("--hold",)),
        (("--request-size", "1", "--response-timeout", "0"), ("--response-timeout 0",)),
        (("--response-timeout", "2"), ("--response-timeout applies with",)),
        (("--http", "index.html"), ("--http 'index.html' does not start with '/'",)),
        (("--http", "/a b"), ("--http", "holds ' '")),
        (("--http", "/\x01"), ("--http", "holds '\\x01'")),
        (("--http", "/", "--http-host", "a b"), ("--http-host", "holds ' '")),
        (("--http", "/", "--http-host", "x\ty"), ("--http-host", "holds '\\t'")),
        (("--http-host", "example.org"), ("--http-host applies with --http PATH only",)),
        (("--http", "/", "--request-size", "10"), ("the request is the GET",)),
        (
            ("127.0.0.1:8080", "--http", "/", "--response-size", "10"),
            ("--response-size 10 with --http and a target",),
        ),
    ],
)
def test_a_bad_exchange_value_is_refused_in_one_line(
    args: tuple[str, ...], fragments: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = in_process(monkeypatch, "run", *args, "--duration", "1", "--no-report")
    assert_one_line_error(proc, 2, *fragments)


def test_a_bad_exchange_value_is_refused_in_one_line_by_a_real_process() -> None:
    proc = portstorm("run", "--http", "index.html", "--duration", "1", "--no-report")
    assert_one_line_error(proc, 2, "--http 'index.html' does not start with '/'")


def test_a_hold_whose_rate_the_fd_limit_cannot_hold_is_refused_as_the_environment() -> None:
    # 1,000,000/s x 10 s = 10 million sockets open at once: past fs.nr_open (1,048,576 by
    # default), so even root cannot raise RLIMIT_NOFILE that far
    proc = portstorm("run", "--rate", "1000000", "--hold", "10", "--duration", "1", "--no-report")
    assert_one_line_error(proc, 3, "--rate 1000000 --hold 10", "file descriptors", "hard limit")


def test_a_closed_loop_hold_whose_concurrency_the_fd_limit_cannot_hold_is_refused() -> None:
    proc = portstorm(
        "run", "--concurrency", "1000000", "--hold", "5", "--duration", "1", "--no-report"
    )
    assert_one_line_error(proc, 3, "--concurrency 1000000", "file descriptors")


def test_the_sink_takes_the_answer_options_and_refuses_bad_ones() -> None:
    proc = portstorm("sink", "--listen", "127.0.0.1:0", "--request-size", "-5")
    assert_one_line_error(proc, 2, "--request-size", "-5")
