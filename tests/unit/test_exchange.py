"""The exchange after connect(), pure: the GET's bytes, the HTTP response reader on literal
(and hostile) responses, and the option checks (core/exchange.py, core/http.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from portstorm.core import http
from portstorm.core.errors import UsageError
from portstorm.core.exchange import host_header, transacts
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.ramp import fold
from portstorm.core.records import HostInfo, Interval, merge_intervals
from portstorm.core.result import RunResult, load_result
from portstorm.core.scenario import CloseMode, Scenario, parse_target
from portstorm.core.setup import RunSetup


def _read(chunks: list[bytes], eof: bool = False) -> tuple[bool, int | None]:
    """(complete?, status) after feeding ``chunks`` (then EOF, if ``eof``)."""
    reader = http.ResponseReader()
    done = False
    for c in chunks:
        done = reader.feed(c)
    if eof and not done:
        done = reader.at_eof()
    return done, reader.status


def _bytewise(raw: bytes) -> list[bytes]:
    return [raw[i : i + 1] for i in range(len(raw))]


def test_the_get_is_an_origin_form_request_with_host_and_connection_close() -> None:
    assert http.request("/a?b=1", "198.18.0.2:9000", keep_alive=False) == (
        b"GET /a?b=1 HTTP/1.1\r\nHost: 198.18.0.2:9000\r\nUser-Agent: portstorm\r\n"
        b"Accept: */*\r\nConnection: close\r\n\r\n"
    )
    assert b"Connection: keep-alive\r\n" in http.request("/", "h", keep_alive=True)


def test_host_header_is_the_target_as_typed_without_port_80_unless_given() -> None:
    sc = Scenario(http_path="/")
    assert host_header(sc, "198.18.0.2:9000") == "198.18.0.2:9000"
    assert host_header(sc, "example.org:80") == "example.org"
    assert host_header(Scenario(http_path="/", http_host="vhost"), "10.0.0.1:80") == "vhost"


RESPONSES = [
    # name, response, complete before EOF, status
    ("content-length", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", True, 200),
    ("empty body", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", True, 200),
    ("no reason phrase", b"HTTP/1.1 204 \r\n\r\n", True, 204),
    ("no reason, no space", b"HTTP/1.1 304\r\nContent-Length: 9\r\n\r\n", True, 304),
    (
        "interim then final",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno",
        True,
        404,
    ),
    (
        "chunked",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n",
        True,
        200,
    ),
    (
        "chunked wins over length",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n"
        b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        True,
        200,
    ),
    ("same length twice", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", True, 200),
    ("to EOF", b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nsome body", False, 200),
]


@pytest.mark.parametrize(("name", "raw", "complete", "status"), RESPONSES)
def test_a_response_is_complete_where_rfc_9112_says_its_body_ends(
    name: str, raw: bytes, complete: bool, status: int
) -> None:
    assert _read([raw]) == (complete, status), name
    assert _read(_bytewise(raw)) == (complete, status), f"{name}, byte by byte"
    assert _read([raw], eof=True) == (True, status), f"{name}, then EOF"


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nContent-Le",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        b"",
    ],
)
def test_eof_before_the_end_of_the_response_is_incomplete(raw: bytes) -> None:
    assert _read([raw], eof=True)[0] is False


HOSTILE = [
    (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "bad status line"),
    (b"HTTP/2.0 200 OK\r\n\r\n", "not HTTP/1.x"),
    (b"HTTP/1.1 2000 OK\r\n\r\n", "bad status line"),
    (b"HTTP/1.1 200 OK\r\n folded: value\r\n\r\n", "bad header field"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad header field"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "differing"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxyz", "not followed by CRLF"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 2000, "chunk line"),
    (b"HTTP/1.1 200 OK\r\nX: " + b"a" * (http.MAX_HEAD_BYTES + 1), "head longer"),
    (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "final response was due"),
    (b"HTTP/1.1 100 Continue\r\n\r\n" * (http.MAX_INTERIM + 1), "final response was due"),
    (b"HTTP/1.1 200 \x1b[31mOK\r\n\r\n", "bad status line"),
]


@pytest.mark.parametrize(("raw", "why"), HOSTILE)
def test_a_hostile_response_is_one_line_http_problem(raw: bytes, why: str) -> None:
    with pytest.raises(http.HttpProblem) as e:
        reader = http.ResponseReader()
        for chunk in (raw[:7], raw[7:]):
            reader.feed(chunk)
    message = str(e.value)
    assert why in message
    assert "\n" not in message and "\x1b" not in message and len(message) < 200


def test_the_sinks_answer_parses_as_a_complete_200() -> None:
    raw = http.answer(3, keep_alive=False) + b"abc"
    assert _read([raw]) == (True, 200)
    assert b"Connection: close\r\n" in raw


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"request_size": -1}, "--request-size -1 is out of range: allowed a whole number >= 0"),
        ({"response_size": 16 * 1024 * 1024 + 1}, "<= 16777216 (bytes)"),
        ({"hold_s": -0.5}, "--hold -0.5 is out of range"),
        ({"response_timeout_s": 0.0, "request_size": 1}, "--response-timeout 0 is out of range"),
        ({"response_timeout_s": 1.0}, "--response-timeout applies with --request-size"),
        ({"http_path": "index.html"}, "does not start with '/'"),
        ({"http_path": "/a b"}, "holds ' '"),
        ({"http_path": "/a\r\nX: 1"}, "holds '\\r'"),
        ({"http_path": "/é"}, "visible ASCII"),
        ({"http_path": ""}, "--http is empty"),
        ({"http_path": "/" * 8001}, "allowed up to 8000"),
        ({"http_path": "/", "http_host": "a\nb"}, "--http-host 'a\\nb' holds '\\n'"),
        ({"http_host": "example.org"}, "--http-host applies with --http PATH only"),
        ({"http_path": "/", "request_size": 5}, "the request is the GET"),
    ],
)
def test_bad_exchange_values_are_refused_naming_the_value(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(UsageError) as e:
        Scenario(**kwargs)  # type: ignore[arg-type]
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_response_size_with_http_applies_to_the_builtin_sink_only() -> None:
    Scenario(http_path="/", response_size=100)  # the sink's body
    with pytest.raises(UsageError, match="the target sends what it sends"):
        Scenario(targets=(parse_target("127.0.0.1:80"),), http_path="/", response_size=100)


def test_a_hold_counts_rate_times_hold_sockets_and_the_exchange_lengthens_a_life() -> None:
    assert Scenario(rate=100, hold_s=2).held_at_least() == 200
    assert Scenario(concurrency=5, hold_s=2).held_at_least() == 0  # closed: concurrency
    plain = Scenario(rate=100, connect_timeout_s=1).max_in_flight()
    assert plain == (201, False)  # connect plus close (the close timeout: the connect's)
    held = Scenario(rate=100, connect_timeout_s=1, hold_s=2, request_size=1).max_in_flight()
    assert held == (501, False)  # + the hold + the response timeout
    assert not transacts(Scenario(hold_s=1)) and transacts(Scenario(response_size=1))
    assert Scenario(close=CloseMode.SERVER, hold_s=1).exchanges


# -- the transaction histogram and HTTP status codes: merged exactly, saved, loaded -------


def _hist(values: list[int]) -> LatencyHistogram:
    h = LatencyHistogram()
    h.record_many(values)
    return h


def _part(t: float, tx: list[int], status: dict[str, int] | None = None) -> Interval:
    """An interval of ``len(tx)`` successes whose connects took 10 us each."""
    return Interval(
        t=t,
        dt=0.1,
        attempts=len(tx),
        succeeded=len(tx),
        failed={},
        other_errnos={},
        latency_us={"p50": 10, "p99": 10},
        hdr=_hist([10] * len(tx)).encode() if tx else None,
        transaction_us={"p50": None, "p99": None},
        transaction_hdr=_hist(tx).encode() if tx else None,
        http_status=status,
    )


def test_the_ramp_fold_and_the_worker_merge_add_transaction_histograms_exactly() -> None:
    a = _part(0.0, [100, 200, 300], {"200": 3})
    b = _part(0.1, [], {})  # an interval without a success: no histogram
    c = _part(0.2, [5000] * 7, {"200": 6, "503": 1})
    whole = _hist([100, 200, 300, *[5000] * 7])
    for merged in (fold([a, b, c]), merge_intervals([a, b, c])):
        assert merged.transaction_hdr is not None
        got = LatencyHistogram.decode(merged.transaction_hdr)
        assert got.count == 10 and got.recorded() == whole.recorded()
        assert merged.transaction_us == {"p50": whole.percentile(50), "p99": whole.percentile(99)}
        assert merged.http_status == {"200": 9, "503": 1}
    plain = dataclasses.replace(a, transaction_us=None, transaction_hdr=None, http_status=None)
    assert merge_intervals([plain]).transaction_us is None  # no exchange: none invented
    assert merge_intervals([plain]).http_status is None


def _run(intervals: tuple[Interval, ...], transactions: LatencyHistogram | None) -> RunResult:
    return RunResult(
        tool_version="0.1.0",
        host=HostInfo("box", "6.18.0", 2),
        started_at="2026-12-01T12:00:00Z",
        duration_s=1.0,
        complete=True,
        setup=RunSetup(close="client", http_path="/", request_size=0, response_size=0),
        tunings={},
        intervals=intervals,
        histogram=_hist([10] * sum(i.succeeded for i in intervals)),
        transactions=transactions,
    )


def test_transaction_us_and_http_status_round_trip_and_must_hold_the_successes(
    tmp_path: Path,
) -> None:
    parts = (_part(0.0, [100, 200]), _part(1.0, [300], {"200": 1}))
    parts = (dataclasses.replace(parts[0], http_status={"200": 1, "404": 1}), parts[1])
    r = _run(parts, _hist([100, 200, 300]))
    doc = r.to_json()
    assert set(doc["transaction_us"]) == {"p50", "p90", "p99", "p999", "max", "hdr"}
    assert doc["totals"]["http_status"] == {"200": 2, "404": 1}
    assert doc["scenario"]["http_path"] == "/"
    path = tmp_path / "result.json"
    path.write_text(json.dumps(doc))
    back = load_result(path)
    assert back.to_json() == doc
    assert back.transactions is not None and back.transactions.count == 3
    with pytest.raises(ValueError, match="transaction histogram holds 2 values but 3"):
        _run(parts, _hist([100, 200]))


def test_a_file_from_before_request_response_loads_without_transactions(tmp_path: Path) -> None:
    doc = _run((_part(0.0, [100]),), _hist([100])).to_json()
    del doc["transaction_us"]
    for key in ("request_size", "response_size", "http_path", "hold_s"):
        del doc["scenario"][key]
    for iv in doc["intervals"]:  # run/2 writes each only where it holds something
        for key in ("transaction_us", "transaction_hdr", "http_status"):
            iv.pop(key, None)
    doc.pop("interval_transaction_hdr", None)
    path = tmp_path / "result.json"
    path.write_text(json.dumps(doc))
    back = load_result(path)
    assert back.transactions is None and back.http_status is None
    assert back.setup.request_size is None and not back.setup.transacts


def test_a_damaged_transaction_histogram_is_refused_by_name(tmp_path: Path) -> None:
    doc = _run((_part(0.0, [100]),), _hist([100])).to_json()
    doc["intervals"][0]["transaction_hdr"] = "not a histogram"
    path = tmp_path / "result.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(UsageError, match=r"intervals\[0\]\.transaction_hdr"):
        load_result(path)
