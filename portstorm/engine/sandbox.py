"""Where an experiment runs: the pair, nat and loopback sandboxes, or the host's own stack.

Containing the topology and the order of setup; the namespace calls are in netns.py, the
ip commands and the NAT router's namespace in router.py, what a fresh IPv6 link needs (no
DAD, the wait until it is configured) in ipv6link.py.

- ``pair`` (the default without a target): this process moves into a fresh client
  namespace; the sink starts in a fresh namespace of its own; a veth joins them, numbered
  from 198.18.0.0/15 (RFC 2544). tcp_tw_reuse=2 (loopback only) does not apply across it,
  as it would not across a real network.
- ``nat``: as pair, with a router namespace between client and sink that forwards and
  source-NATs with nftables (router.py; core/nat.py has the numbering): the clients are
  198.19.0.1 and up, the sink sees only the NAT address 198.18.0.1.
- ``loopback``: one fresh namespace, client and sink on 127.0.0.1.
- ``host``: the current namespace, the host's own settings.

With ``ipv6`` the same topologies over IPv6 (core/addressing.py has the plan): the veth is
2001:2::/64 (RFC 5180), loopback is ::1. Extra IPv6 sources are not added one by one: each
/64 holding some is routed to the client as ``local`` (the kernel then accepts any address
in it, ip_route_input -> RTN_LOCAL), and routed back from the sink via the client's address.

A new namespace starts from the kernel's built-in defaults, not the host's values, so each
sandbox first copies the host's values of every studied sysctl, then applies the user's
overrides, then reads everything back: the read-back is what result.json records.

Cleanup needs no code on the failure paths: the client namespace belongs to this process,
the server namespace to the sink (which dies with this process, PR_SET_PDEATHSIG), the
router's namespace to a descriptor of this process, and each veth to its two namespaces.
When the processes are gone, so is everything else.
"""

from __future__ import annotations

import contextlib
import os
import socket
from contextlib import ExitStack
from types import TracebackType

from portstorm.core.addressing import (
    PAIR_LINK6,
    PAIR_NETWORK,
    address_text,
    pair_client,
    sink_addresses,
    source_prefixes,
)
from portstorm.core.errors import EnvironmentProblem, UsageError
from portstorm.core.nat import (
    DEFAULT_POOL,
    NAT_ADDRESS,
    OUTSIDE_IF,
    ROUTER_INSIDE,
    ROUTER_NAMES,
    SERVER_PREFIX_LEN,
    NatSpec,
)
from portstorm.core.scenario import CloseMode, SandboxKind
from portstorm.core.tuning import STUDIED
from portstorm.engine import journal, netns
from portstorm.engine.flows import IP_BIND_ADDRESS_NO_PORT, Endpoint
from portstorm.engine.ipv6link import await_ipv6_ready, without_dad
from portstorm.engine.kernel import apply_sysctls, read_sysctls
from portstorm.engine.router import (
    CLIENT_IF,
    SERVER_IF,
    Router,
    add_addresses,
    inside,
    ip,
    ip_batch,
    resolve_neighbours,
)
from portstorm.engine.sink_answer import SinkAnswer
from portstorm.engine.sink_handle import SinkProcess

CLIENT_ADDR = pair_client(ipv6=False)
PREFIX_LEN = PAIR_NETWORK.prefixlen  # all of 198.18.0.0/15 is on-link: extra addresses too
PREFIX_LEN6 = PAIR_LINK6.prefixlen  # 2001:2::/64 is on-link; sources' /64s are routed
SINK_PORT = 9000


def _endpoint(host: str, port: int) -> Endpoint:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockaddr: tuple[str, int] | tuple[str, int, int, int] = (
        (host, port, 0, 0) if family == socket.AF_INET6 else (host, port)
    )
    return Endpoint(family, sockaddr, address_text(host, port))


def missing_local_addresses(addresses: list[str]) -> list[str]:
    """Those of ``addresses`` this namespace cannot bind to (not assigned to any interface).

    Probed with IP_BIND_ADDRESS_NO_PORT so that the probe takes no port.
    """
    missing = []
    for addr in addresses:
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            with contextlib.suppress(OSError):
                probe.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            try:
                probe.bind((addr, 0))
            except OSError:
                missing.append(addr)
    return missing


class Sandbox:
    """``with Sandbox(kind, close, client_set, server_set) as sb:`` then drive ``sb.endpoints``."""

    def __init__(
        self,
        kind: SandboxKind,
        close: CloseMode,
        client_set: dict[str, str] | None = None,
        server_set: dict[str, str] | None = None,
        builtin_sink: bool = True,
        change_host: bool = False,
        sources: tuple[str, ...] = (),
        sink_ports: int = 1,
        sink_workers: int = 1,
        sink_addresses: int = 1,
        ipv6: bool = False,
        sink_answer: SinkAnswer | None = None,
        nat: NatSpec | None = None,
    ) -> None:
        self.kind = kind
        # --sandbox nat: the router's plan; while the sandbox lives, an fd naming the
        # router's namespace, its NAT address(es) and pool, its sysctls as read back
        self.nat = nat if nat is not None or kind is not SandboxKind.NAT else NatSpec()
        self.router_netns: int | None = None
        self.nat_addresses: tuple[str, ...] = (NAT_ADDRESS,) if self.nat is not None else ()
        self.nat_pool: tuple[int, int] = self.nat.pool if self.nat is not None else DEFAULT_POOL
        self.router_tunings: dict[str, str] | None = None
        self.router_host_values: dict[str, str] = {}
        self.sink_answer = sink_answer  # what the built-in sink reads and answers
        self.ipv6 = ipv6
        # the pair routed IPv6 source prefixes to the client as local: sockets bound to
        # those sources need IP_FREEBIND (flows.py)
        self.freebind_sources = False
        self.sources = sources
        self.sink_ports = sink_ports
        self.sink_workers = sink_workers
        self.sink_addresses = sink_addresses
        self.close = close
        self.client_set = dict(client_set or {})
        self.server_set = dict(server_set or {})
        self.builtin_sink = builtin_sink
        self.change_host = change_host
        self.host_changed: dict[str, str] = {}
        self.endpoints: list[Endpoint] = []
        self.host_values: dict[str, str] = {}
        self.tunings: dict[str, str] = {}
        self.server_tunings: dict[str, str] | None = None
        self.notes: list[str] = []
        self.sink: SinkProcess | None = None
        self.userns = False
        self._stack = ExitStack()

    # -- setup ---------------------------------------------------------------------------

    def __enter__(self) -> Sandbox:
        try:
            self._setup()
        except BaseException:
            self._stack.close()
            raise
        return self

    def _setup(self) -> None:
        # Read the host's values while still in the host's namespace.
        self.host_values = read_sysctls(STUDIED)
        if self.kind is SandboxKind.HOST:
            if self.client_set:
                self._change_host_sysctls()
            self.tunings = read_sysctls(STUDIED)
            self._check_host_sources()
            if self.builtin_sink:
                self._start_local_sink()
            return
        if self.nat is not None:  # before leaving the host: its values are copied in
            self.router_host_values = read_sysctls(ROUTER_NAMES)
        self._enter_client_namespace()
        ip("link", "set", "lo", "up")
        self.notes += apply_sysctls(
            {**self.host_values, **self.client_set}, frozenset(self.client_set), "client namespace"
        )
        self.tunings = read_sysctls(STUDIED)
        if self.kind is SandboxKind.LOOPBACK:
            self._start_local_sink()
        elif self.kind is SandboxKind.NAT:
            self._start_nat()
        else:
            self._start_pair()

    def _change_host_sysctls(self) -> None:
        """Live changes, only when asked (Scenario refuses --set on the host without
        --change-host-sysctls; this is the last line of that defence): journal first,
        restore on every normal way out."""
        if not self.change_host:
            raise UsageError("live host sysctls change only with --change-host-sysctls")
        originals = {n: self.host_values[n] for n in self.client_set if n in self.host_values}
        journal.write_journal(originals)
        # restored from memory, not by re-reading a file someone could have edited meanwhile
        self._stack.callback(journal.put_back, originals)
        self.notes += apply_sysctls(self.client_set, frozenset(self.client_set), "host")
        self.host_changed = dict(self.client_set)
        self.notes.append(
            "host: live sysctls were changed for this run and restored afterwards: "
            + ", ".join(f"{n}={v}" for n, v in self.client_set.items())
        )

    def _enter_client_namespace(self) -> None:
        if not netns.can_create_netns_directly():
            blocker = netns.userns_blocker()
            if blocker is not None:
                raise EnvironmentProblem(
                    f"--sandbox {self.kind} needs a network namespace: not root, and user "
                    f"namespaces are disabled ({blocker}); run as root, allow user namespaces, "
                    "or use --sandbox host"
                )
            try:
                netns.enter_user_namespace()
            except OSError as e:
                raise EnvironmentProblem(
                    f"--sandbox {self.kind}: cannot create a user namespace ({e.strerror}); "
                    "run as root or use --sandbox host"
                ) from None
            self.userns = True
        else:
            host_fd = netns.open_netns()
            self._stack.callback(os.close, host_fd)
            # Back to the host's namespace at the end (this process may run more after).
            self._stack.callback(netns.setns, host_fd)
        try:
            netns.unshare(netns.CLONE_NEWNET)
        except OSError as e:
            raise EnvironmentProblem(
                f"--sandbox {self.kind}: cannot create a network namespace ({e.strerror}); "
                "run as root or use --sandbox host"
            ) from None

    def _check_host_sources(self) -> None:
        missing = missing_local_addresses(list(self.sources))
        if missing:
            shown = ", ".join(missing[:5]) + (
                f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            )
            raise UsageError(
                f"--source {shown}: not an address of this host ('ip addr' lists them); "
                "add it to an interface first, or use --sandbox pair, where portstorm adds them"
            )

    def _start_local_sink(self) -> None:
        hosts = sink_addresses(False, self.sink_addresses, self.ipv6)
        sink = self._stack.enter_context(
            SinkProcess(
                hosts,
                self.close,
                n_ports=self.sink_ports,
                workers=self.sink_workers,
                answer=self.sink_answer,
            )
        )
        self.sink = sink
        self.endpoints = [_endpoint(h, p) for h, p in sink.listening]

    def _start_own_sink(self) -> tuple[SinkProcess, list[str], int, int]:
        """The sink in a namespace of its own, waiting for go(): (it, its addresses, an
        fd naming the client's namespace, one naming the sink's)."""
        servers = sink_addresses(True, self.sink_addresses, self.ipv6)
        ports = list(range(SINK_PORT, SINK_PORT + self.sink_ports))
        sink = self._stack.enter_context(
            SinkProcess(
                servers,
                self.close,
                ports=ports,
                own_netns=True,
                workers=self.sink_workers,
                answer=self.sink_answer,
            )
        )
        self.sink = sink
        client_fd = netns.open_netns()
        self._stack.callback(os.close, client_fd)
        server_fd = netns.open_netns(sink.pid)
        self._stack.callback(os.close, server_fd)
        return sink, servers, client_fd, server_fd

    def _server_side(self, servers: list[str], plen: int, nodad: tuple[str, ...]) -> None:
        """In the sink's namespace: its addresses, then its sysctls, read back."""
        ip("link", "set", "lo", "up")
        if self.ipv6:
            without_dad(SERVER_IF)
        ip("addr", "add", f"{servers[0]}/{plen}", "dev", SERVER_IF, *nodad)
        add_addresses(servers[1:], SERVER_IF)
        ip("link", "set", SERVER_IF, "up")
        self.notes += apply_sysctls(
            {**self.host_values, **self.server_set},
            frozenset(self.server_set),
            "server namespace",
        )
        self.server_tunings = read_sysctls(STUDIED)

    def _start_pair(self) -> None:
        sink, servers, client_fd, server_fd = self._start_own_sink()
        # Created here, its peer moved straight into the sink's namespace: the veth never
        # exists in the host's namespace.
        ip("link", "add", CLIENT_IF, "type", "veth", "peer", "name", SERVER_IF,
           "netns", str(sink.pid))  # fmt: skip
        client, plen = (pair_client(True), PREFIX_LEN6) if self.ipv6 else (CLIENT_ADDR, PREFIX_LEN)
        nodad = ("nodad",) if self.ipv6 else ()  # see add_addresses: no ~1 s DAD wait
        ip("addr", "add", f"{client}/{plen}", "dev", CLIENT_IF, *nodad)
        extra = self._client_sources()
        if self.ipv6:
            without_dad(CLIENT_IF)
        ip("link", "set", CLIENT_IF, "up")
        with inside(server_fd, client_fd):
            self._server_side(servers, plen, nodad)
            # Replies to extra sources go through the client's first address: one neighbour
            # entry on the sink's side instead of one per source (the neighbour table
            # overflows past gc_thresh3, 1024 by default, and packets are then dropped).
            ip_batch([f"route add {a} via {client} dev {SERVER_IF}" for a in extra],
                     f"routing {len(extra)} source address(es) on the sink's side")  # fmt: skip
        if self.ipv6:
            await_ipv6_ready([(os.getpid(), CLIENT_IF), (sink.pid, SERVER_IF)])
        # the sink's answer to each request also teaches it the client's address
        resolve_neighbours(servers, CLIENT_IF, "--sandbox pair")
        sink.go()
        self.endpoints = [_endpoint(h, p) for h, p in sink.listening]

    def _start_nat(self) -> None:
        """client -> router -> sink (router.py builds the middle): the sink's namespace has
        no route to the clients' network, so its replies can only go to the NAT address."""
        assert self.nat is not None
        sink, servers, client_fd, server_fd = self._start_own_sink()
        router = Router(self.nat, self.router_host_values)
        router.build(self._stack, client_fd, sink.pid)
        with inside(server_fd, client_fd):
            self._server_side(servers, SERVER_PREFIX_LEN, ())
        # every hop resolved before the first SYN; each answer also teaches the asker's
        # address to the side that answered (the router the client's, the sink the NAT's)
        resolve_neighbours([ROUTER_INSIDE], CLIENT_IF, "--sandbox nat: the client")
        assert router.fd is not None
        with inside(router.fd, client_fd):
            resolve_neighbours(servers, OUTSIDE_IF, "--sandbox nat: the router")
        self.router_netns = router.fd
        self.router_tunings = router.tunings
        self.notes += router.notes
        sink.go()
        self.endpoints = [_endpoint(h, p) for h, p in sink.listening]

    def _client_sources(self) -> list[str]:
        """Make the extra sources the client's; what the sink's side must route back to it.

        IPv4: an address per source on the veth. IPv6: one local route per /64 holding
        sources, whatever their number (4096 of a /64 cost one route); bind() to them needs
        IP_FREEBIND, since IPv6 bind() takes assigned addresses only (ipv6_chk_addr() in
        __inet6_bind()), so the flows set it (flows.py).
        """
        if not self.ipv6:
            extra = [a for a in self.sources if a != CLIENT_ADDR]
            add_addresses(extra, CLIENT_IF)
            return [f"{a}/32" for a in extra]
        prefixes = [str(p) for p in source_prefixes(self.sources)]
        ip_batch([f"route add local {p} dev lo" for p in prefixes],
                  f"routing {len(prefixes)} source prefix(es) to the client")  # fmt: skip
        self.freebind_sources = bool(prefixes)
        return prefixes

    # -- teardown ------------------------------------------------------------------------

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()
