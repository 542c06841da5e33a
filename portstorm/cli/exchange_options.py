"""The declarations of ``portstorm run``'s options for a connection's life after connect():
request and response sizes, their timeout, HTTP and the hold (core/exchange.py says what
each does and how they combine).

Containing Typer ``Annotated`` types only, each used once by a field of options.RunOptions
(where the run options are declared, one field each), kept here so that module stays one
screenful per concept.
"""

from __future__ import annotations

from typing import Annotated

import typer

from portstorm.cli.parsers import number, whole

RequestSize = Annotated[
    int,
    typer.Option(
        metavar="BYTES",
        parser=whole("--request-size"),
        help="After connect(), the client writes this many bytes (the built-in sink reads "
        "them) before the response and the close mode. 0: nothing sent.",
    ),
]
ResponseSize = Annotated[
    int,
    typer.Option(
        metavar="BYTES",
        parser=whole("--response-size"),
        help="After the request, the client reads this many bytes (the built-in sink "
        "answers them; with --http, the size of its body); transaction_us times the "
        "attempt to the last one. 0: nothing read.",
    ),
]
ResponseTimeout = Annotated[
    float | None,
    typer.Option(
        metavar="SECONDS",
        parser=number("--response-timeout"),
        help="Seconds from connect to the last response byte before the attempt counts "
        "as timeout. Default: the connect timeout.",
        show_default=False,
    ),
]
HttpPath = Annotated[
    str | None,
    typer.Option(
        metavar="PATH",
        help="Send GET PATH HTTP/1.1 (Connection: close; keep-alive with --hold) and read "
        "the response; a status other than 2xx/3xx counts as http_error. The built-in "
        "sink answers 200 OK.",
    ),
]
HttpHost = Annotated[
    str | None,
    typer.Option(
        metavar="NAME",
        help="With --http: the Host header. Default: the target as typed (HOST:PORT).",
    ),
]
Hold = Annotated[
    float,
    typer.Option(
        metavar="SECONDS",
        parser=number("--hold"),
        help="Keep each connection open this long after its request/response (if any), "
        "then close it by --close. With --rate: about rate x hold open at once.",
    ),
]
