"""``portstorm watch`` as Prometheus metrics: the collector, ``serve`` (--listen) and
``write_textfile`` (--textfile), and the Grafana dashboard the package ships.

Containing the translation of the latest ``WatchView`` (core/watchview.py) into metric families,
the HTTP server that serves them, and the node_exporter textfile; no reading of the host
and no judgement (the view already holds the forecast), and no terminal output.

prometheus_client does the exposition: its WSGI app answers ``/metrics`` (any path, as it
does) in the Prometheus text format 0.0.4 or in OpenMetrics 1.0.0 when the scraper's
Accept header asks for ``application/openmetrics-text`` (choose_encoder()), and honours
``Accept-Encoding: gzip``. The collector sits in a registry of its own, never the global
default one, so nothing else in the process (its gc or process collectors) is exported.

Cardinality is bounded by ``top``: the ``top`` groups by used fraction get their own series;
the rest are summed per source address as ``destination="other"``. The source is kept
because each source address has the ephemeral range to itself toward a destination, and a
host has few of them; past ``top`` sources among the rest, those are summed as
``source="other"`` too, so a metric has at most 2 * top + 1 series per state. Only what
adds up is summed: ports in use and new connections per second; a ceiling, a used ratio or
a forecast of a sum would mean nothing, so "other" has none.

No timestamps are exported: node_exporter's textfile collector refuses them, and
``portstorm_sample_time_seconds`` says when the values were read.
"""

from __future__ import annotations

import errno
import json
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from portstorm.core.errors import EnvironmentProblem, UsageError
from portstorm.core.files import Folder
from portstorm.core.watch import SMOOTH_S
from portstorm.core.watchsample import STATES
from portstorm.core.watchview import GroupView, WatchView

OTHER = "other"  # the label value of everything past the top N
TEXTFILE_SUFFIX = ".prom"  # the only files node_exporter's textfile collector reads
DASHBOARD = "grafana-dashboard.json"  # beside this module, shipped in the wheel

# name -> HELP; the collector emits nothing else (tests and the dashboard check against it)
METRICS: dict[str, str] = {
    "portstorm_ports_in_use": (
        "Local ports in ip_local_port_range held by sockets toward a destination, by socket "
        "state (established, time_wait, syn_sent, other); destination=other sums the groups "
        "past the top N"
    ),
    "portstorm_ports_usable": (
        "Ports connect() can give one (source, destination address:port): "
        "ip_local_port_range minus ip_local_reserved_ports"
    ),
    "portstorm_port_used_ratio": (
        "Fraction of the usable ports held toward a destination (ports_in_use / ports_usable)"
    ),
    "portstorm_port_exhaustion_seconds": (
        "Seconds until the group runs out of ports at its current rate of new connections, "
        "counting when TIME_WAIT sockets give theirs back; absent when not on course to run out"
    ),
    "portstorm_new_connections_per_second": (
        "New connections per second toward a destination: sockets first seen (by socket "
        "cookie) plus their share of the TcpActiveOpens not seen, the mean of the last "
        f"{SMOOTH_S:g} s"
    ),
    "portstorm_time_wait_sockets": "TCP sockets in TIME_WAIT in this network namespace",
    "portstorm_groups": (
        "(source, destination address:port) groups holding ephemeral ports; "
        "those past the top N are summed as destination=other"
    ),
    "portstorm_sample_time_seconds": "Unix time at which these values were read",
    "portstorm_bind_trap_sockets": (
        "Sockets bound to an ephemeral port before connect() (bind() without "
        "IP_BIND_ADDRESS_NO_PORT), whose port is then taken for every destination, by source"
    ),
    "portstorm_kernel_counter_per_second": (
        "Rate of a kernel TCP counter over the last interval (/proc/net/netstat, "
        "/proc/net/snmp): TcpExtTW sockets entering TIME_WAIT, TcpExtTCPTimeWaitOverflow, "
        "TcpExtListenDrops, TcpActiveOpens"
    ),
    "portstorm_conntrack_entries": "Connection tracking entries (nf_conntrack_count)",
    "portstorm_conntrack_entries_limit": "Connection tracking table size (nf_conntrack_max)",
    "portstorm_process_sockets": "Sockets a process holds, for the top processes by sockets",
    "portstorm_process_open_fds": "Open file descriptors of a process (where readable)",
    "portstorm_process_max_fds": "A process's RLIMIT_NOFILE soft limit (where readable)",
}


def _family(name: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, METRICS[name], labels=list(labels))


@dataclass(frozen=True, slots=True)
class _Rest:
    """Groups past the top N toward one source, summed (or every source past the top N)."""

    source: str
    states: dict[str, int]
    rate_per_s: float


def split(view: WatchView, top: int) -> tuple[tuple[GroupView, ...], tuple[_Rest, ...]]:
    """The ``top`` groups by used fraction, and the rest summed per source: the first ``top``
    sources (by ports held) each as one, those past them as source "other"."""
    if top < 1:
        raise UsageError(f"--top {top}: must be at least 1 (groups exported one by one)")
    ordered = sorted(view.groups, key=lambda g: g.used_fraction, reverse=True)
    kept, rest = tuple(ordered[:top]), ordered[top:]
    by_source: dict[str, list[GroupView]] = {}
    for g in rest:
        by_source.setdefault(g.source, []).append(g)
    sums = sorted(
        (_summed(source, gs) for source, gs in by_source.items()),
        key=lambda r: sum(r.states.values()),
        reverse=True,
    )
    folded = sums[:top]
    if len(sums) > top:
        states = {s: sum(r.states[s] for r in sums[top:]) for s in STATES}
        folded.append(_Rest(OTHER, states, sum(r.rate_per_s for r in sums[top:])))
    return kept, tuple(folded)


def _summed(source: str, groups: list[GroupView]) -> _Rest:
    states = {s: sum(g.states.get(s, 0) for g in groups) for s in STATES}
    return _Rest(source, states, sum(g.rate_per_s for g in groups))


def families(view: WatchView, top: int) -> list[Metric]:
    """The metric families of one view, ``top`` groups each with their own series."""
    kept, rest = split(view, top)
    pair = ("source", "destination")
    in_use = _family("portstorm_ports_in_use", (*pair, "state"))
    usable = _family("portstorm_ports_usable", pair)
    ratio = _family("portstorm_port_used_ratio", pair)
    exhaustion = _family("portstorm_port_exhaustion_seconds", pair)
    rate = _family("portstorm_new_connections_per_second", pair)
    for g in kept:
        labels = [g.source, g.destination]
        for state in STATES:
            in_use.add_metric([*labels, state], g.states.get(state, 0))
        usable.add_metric(labels, g.usable_ports)
        ratio.add_metric(labels, g.used_fraction)
        rate.add_metric(labels, g.rate_per_s)
        if g.exhaustion_in_s is not None:
            exhaustion.add_metric(labels, g.exhaustion_in_s)
    for r in rest:
        labels = [r.source, OTHER]
        for state in STATES:
            in_use.add_metric([*labels, state], r.states[state])
        rate.add_metric(labels, r.rate_per_s)
    time_wait = _family("portstorm_time_wait_sockets")
    time_wait.add_metric([], view.time_wait)
    groups = _family("portstorm_groups")
    groups.add_metric([], len(view.groups))
    when = _family("portstorm_sample_time_seconds")
    when.add_metric([], view.t)
    return [in_use, usable, ratio, exhaustion, rate, time_wait, groups, when, *_host(view, top)]


def _host(view: WatchView, top: int) -> list[Metric]:
    """The host-wide families: the bind trap, counter rates, conntrack, the top processes."""
    trap = _family("portstorm_bind_trap_sockets", ("source",))
    for source, n in sorted(view.bind_trap.items()):
        trap.add_metric([source], n)
    counters = _family("portstorm_kernel_counter_per_second", ("counter",))
    for name, per_s in sorted(view.counters_per_s.items()):
        counters.add_metric([name], per_s)
    out: list[Metric] = [trap, counters]
    if view.conntrack is not None:  # absent where the table is not there (no nf_conntrack)
        entries = _family("portstorm_conntrack_entries")
        entries.add_metric([], view.conntrack[0])
        limit = _family("portstorm_conntrack_entries_limit")
        limit.add_metric([], view.conntrack[1])
        out += [entries, limit]
    labels = ("pid", "process")
    sockets = _family("portstorm_process_sockets", labels)
    fds = _family("portstorm_process_open_fds", labels)
    max_fds = _family("portstorm_process_max_fds", labels)
    # the top processes by sockets only: a pid label is one series per process
    ranked = sorted(view.processes or (), key=lambda p: p.sockets, reverse=True)
    for p in ranked[:top]:
        who = [str(p.pid), p.name]
        sockets.add_metric(who, p.sockets)
        fds.add_metric(who, p.fds)
        if p.fd_limit is not None:
            max_fds.add_metric(who, p.fd_limit)
    return [*out, sockets, fds, max_fds]


class ViewCollector(Collector):
    """A prometheus_client collector over the latest view given to ``update``.

    ``update`` (the watch loop's thread) swaps one immutable pair that ``collect`` (the HTTP
    server's threads) reads: a scrape sees one whole sample, never half of two. Before the
    first update it exports nothing.

    The reader scans process fds at a slower cadence than it samples (engine/watchread.py:
    ``processes`` is None between scans); the last scan is exported until the next, so the
    process series do not vanish between scans (a vanished series reads as stale).
    """

    def __init__(self) -> None:
        self._latest: tuple[WatchView, int] | None = None

    def update(self, view: WatchView, top: int) -> None:
        split(view, top)  # refuse a bad top here, not in a scrape
        if view.processes is None and self._latest is not None:
            view = replace(view, processes=self._latest[0].processes)
        self._latest = (view, top)

    def collect(self) -> Iterator[Metric]:
        latest = self._latest
        if latest is not None:
            yield from families(*latest)

    def describe(self) -> Iterator[Metric]:
        # the names, so the registry's ?name[]=... filter (restricted_registry()) finds them
        for name in METRICS:
            yield _family(name)


def registry_for(collector: ViewCollector) -> CollectorRegistry:
    """A registry of its own holding only ``collector``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


class Exporter:
    """The HTTP server of ``--listen``, serving the latest view; ``close()`` stops it."""

    def __init__(self, server: WSGIServer, thread: threading.Thread, collector: ViewCollector):
        self._server = server
        self._thread = thread
        self._collector = collector

    @property
    def address(self) -> tuple[str, int]:
        """Where it listens (the port the kernel chose when 0 was asked)."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def update(self, view: WatchView, top: int) -> None:
        self._collector.update(view, top)

    def close(self) -> None:
        self._server.shutdown()  # waits for serve_forever() to return
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(listen: tuple[str, int]) -> Exporter:
    """Serve ``/metrics`` on ``listen`` (host, port; port 0: any free one) from a thread.

    prometheus_client's own WSGI app answers (content negotiation, gzip, ``name[]``); the
    server is made here rather than with start_http_server(), whose serve_forever() polls
    every 0.5 s, so ``close()`` returns at once rather than up to half a second later."""
    host, port = listen
    where = f"--listen {hostport(host, port)}"
    if not 0 <= port <= 65535:
        raise UsageError(f"{where}: the port must be 0..65535")
    collector = ViewCollector()
    try:
        # the family the address is written in (an IPv6 literal needs AF_INET6)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, address = infos[0][0], str(infos[0][4][0])
        server_class = type("_Server", (_ThreadingServer,), {"address_family": family})
        app = make_wsgi_app(registry_for(collector))
        server: WSGIServer = make_server(address, port, app, server_class, _Quiet)
    except socket.gaierror as e:
        raise UsageError(f"{where}: not an address of this host ({e.strerror})") from None
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise EnvironmentProblem(f"{where}: the port is in use; choose another") from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise UsageError(f"{where}: not an address of this host") from None
        raise EnvironmentProblem(f"{where}: cannot listen: {e.strerror or e}") from None
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="portstorm-exporter",
        daemon=True,
    )  # fmt: skip
    thread.start()
    return Exporter(server, thread, collector)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in progress does not hold the process at exit


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # one line per scrape: no
        pass


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT`` as (host, port): one line and exit 2 otherwise."""
    host, sep, port = text.strip().rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    elif ":" in host:
        host = ""  # an IPv6 address must be in brackets, or its last group reads as the port
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(
            f"--listen {text!r}: give HOST:PORT (e.g. 127.0.0.1:9477, [::1]:9477, 0.0.0.0:9477)"
        )
    return host, int(port)


def hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- the textfile ------------------------------------------------------------------------


def check_textfile(path: Path) -> None:
    """Refuse a ``--textfile`` node_exporter would not read, or a folder portstorm would not
    write into (core/files.py: a link, another user's folder), before the first interval."""
    if path.suffix != TEXTFILE_SUFFIX or path.name == TEXTFILE_SUFFIX:
        raise UsageError(
            f"--textfile {path}: node_exporter's textfile collector reads only *.prom files; "
            f"give a name ending in {TEXTFILE_SUFFIX}"
        )
    with Folder.open(path.parent, what="--textfile folder", create=False) as folder:
        folder.refuse_links([path.name])
        folder.check_writable("--textfile folder")


def textfile_text(view: WatchView, top: int) -> str:
    """The view in node_exporter's textfile format (the Prometheus text format 0.0.4)."""
    return generate_latest(_one_off(view, top)).decode("utf-8")


def write_textfile(path: Path, view: WatchView, top: int) -> None:
    """Replace ``path`` (a ``*.prom`` file) with the view, whole: a temp file beside it, then
    rename(2) (core/files.py), so node_exporter reads the old file or the new, never a part;
    its temp file's name ends in ``.tmp``, which the collector skips. A link at ``path`` is
    refused (exit 3), never followed."""
    if path.suffix != TEXTFILE_SUFFIX or path.name == TEXTFILE_SUFFIX:
        check_textfile(path)  # raises the one line
    text = textfile_text(view, top)
    with Folder.open(path.parent, what="--textfile folder", create=False) as folder:
        # no fsync: the file is rewritten every interval and only its whole-or-nothing
        # rename matters to a reader; two fsyncs a second would load a busy host's disk
        folder.write_text(path.name, text, sync=False)


def _one_off(view: WatchView, top: int) -> CollectorRegistry:
    collector = ViewCollector()
    collector.update(view, top)
    return registry_for(collector)


# -- the Grafana dashboard ---------------------------------------------------------------


def dashboard_json() -> str:
    """The Grafana dashboard shipped beside this module (``watch --grafana-dashboard``)."""
    return resources.files("portstorm.engine").joinpath(DASHBOARD).read_text("utf-8")


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(dashboard_json())
    return doc
