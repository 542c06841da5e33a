"""What a connection does after connect(): the request/response, HTTP and hold options, their
limits and the checks of how they combine.

Containing values and checks on strings and numbers, no socket (the exchange itself runs in
engine/exchange.py; HTTP's framing is core/http.py). A Scenario (core/scenario.py) calls
``check_exchange`` from its constructor, so every refusal is one UsageError line naming the
value and what is allowed, before anything runs.

The shapes:
- ``--request-size N --response-size M``: the client writes N bytes, the server answers M
  (the built-in sink reads N, then writes M), as netperf's TCP_CRR and neper's tcp_crr do;
- ``--http PATH``: the request is ``GET PATH HTTP/1.1`` with ``Connection: close`` (or
  ``keep-alive`` with --hold), the response is read by its HTTP framing (core/http.py);
  with the built-in sink, --response-size is the size of the sink's body;
- ``--hold S``: the connection stays open S seconds after the exchange (if any), then the
  close mode applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from portstorm.core.errors import UsageError


class Scenario(Protocol):
    """What these checks read of core/scenario.py's Scenario (which calls them: importing
    it here would be a cycle)."""

    @property
    def targets(self) -> Sequence[object]: ...
    @property
    def request_size(self) -> int: ...
    @property
    def response_size(self) -> int: ...
    @property
    def response_timeout_s(self) -> float | None: ...
    @property
    def http_path(self) -> str | None: ...
    @property
    def http_host(self) -> str | None: ...


# A request or response is one buffer, allocated once per driver (or sink) and sent whole
# for every connection: 16 MiB keeps that buffer and the run's memory small, and is far
# beyond what a connection-churn measurement needs (TCP_CRR uses 1 byte).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# RFC 9112 section 3: servers should take request lines of at least 8000 octets
MAX_HTTP_PATH = 8000
MAX_HTTP_HOST = 255  # RFC 1035's limit on a host name, with a port after it


def _printable(option: str, text: str, limit: int, what: str) -> None:
    """Visible ASCII only: a space or control character would end the request line or the
    header field early (RFC 9112 sections 3 and 5) and inject whatever follows."""
    if not text:
        raise UsageError(f"{option} is empty: allowed {what}")
    if len(text) > limit:
        raise UsageError(f"{option} is {len(text)} characters long: allowed up to {limit}")
    bad = next((c for c in text if not "!" <= c <= "~"), None)
    if bad is not None:
        raise UsageError(
            f"{option} {text[:40]!r} holds {bad!r}: allowed {what} of visible ASCII "
            "(no spaces or control characters; percent-encode the rest)"
        )


def check_path(path: str) -> None:
    _printable("--http", path, MAX_HTTP_PATH, "a path starting with '/'")
    if not path.startswith("/"):
        raise UsageError(f"--http {path!r} does not start with '/': allowed a path such as /")


def check_host(host: str) -> None:
    _printable("--http-host", host, MAX_HTTP_HOST, "a host name, optionally with :PORT")


def check_exchange(sc: Scenario) -> None:
    """How the exchange options combine; the single values were range-checked already."""
    if sc.http_host is not None:
        if sc.http_path is None:
            raise UsageError("--http-host applies with --http PATH only")
        check_host(sc.http_host)
    if sc.http_path is not None:
        check_path(sc.http_path)
        if sc.request_size:
            raise UsageError(
                f"--request-size {sc.request_size} with --http: the request is the GET; "
                "drop --request-size"
            )
        if sc.response_size and sc.targets:
            raise UsageError(
                f"--response-size {sc.response_size} with --http and a target: the target "
                "sends what it sends; --response-size sets the built-in sink's body only"
            )
    if sc.response_timeout_s is not None and not transacts(sc):
        raise UsageError(
            "--response-timeout applies with --request-size, --response-size or --http"
        )


def transacts(sc: Scenario) -> bool:
    """A request or a response after connect(): transaction_us is measured."""
    return bool(sc.request_size or sc.response_size or sc.http_path is not None)


def host_header(sc: Scenario, destination: str) -> str:
    """The Host header toward ``destination`` (a flow's ``HOST:PORT`` as typed, or the
    sink's ``IP:PORT``; RFC 9110 section 7.2: the port is left out when it is the scheme's
    default, 80); --http-host wins."""
    if sc.http_host is not None:
        return sc.http_host
    return destination.removesuffix(":80")
