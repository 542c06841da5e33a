"""The top level of a result.json as both of its readers take it: RunResult.from_json
(core/result.py, the whole run) and readings.from_doc (core/readings.py, what compare
reads). One home for the reads they share, so the two cannot drift apart.

Containing the checked reads of the format and its version, the header, the scenario as
a RunSetup, the events, and the run's connect and transaction histograms; no file I/O
and no intervals (runform.py and readings.py read those, each its own way). Every wrong
shape is a FieldError naming the field, as fields.py makes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portstorm.core import fields
from portstorm.core.formats import check_format
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.records import HostInfo, decode_histogram, read_header
from portstorm.core.setup import RunSetup


@dataclass(frozen=True, slots=True)
class TopLevel:
    """What a result.json's top level says, checked; ``m`` the document itself."""

    m: Mapping[str, Any]
    version: int  # N of portstorm.run/N
    tool_version: str
    host: HostInfo
    scenario: Mapping[str, Any]
    setup: RunSetup
    events: Mapping[str, Any]
    histogram: LatencyHistogram
    transactions: LatencyHistogram | None  # absent in files older than request/response


def read_top_level(d: Mapping[str, Any]) -> TopLevel:
    check_format(d.get("format"))
    m = fields.mapping(d, "")
    version = int(str(m["format"]).partition("/")[2])
    tool_version, host = read_header(m)
    scenario = fields.member(m, "scenario")
    setup = RunSetup.from_json(scenario)
    events = fields.mapping(m.get("events"), "events", null=True)
    latency = fields.mapping(fields.member(m, "latency_us"), "latency_us")
    with fields.within("latency_us"):
        histogram = decode_histogram(fields.member(latency, "hdr"), "hdr")
    transactions = None
    tx = m.get("transaction_us")
    if tx is not None:
        with fields.within("transaction_us"):
            tx_hdr = fields.member(fields.mapping(tx, "transaction_us"), "hdr")
            transactions = decode_histogram(tx_hdr, "hdr")
    return TopLevel(
        m, version, tool_version, host, scenario, setup, events, histogram, transactions
    )
