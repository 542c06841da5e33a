"""Where an experiment runs: the pair and loopback sandboxes, or the host's own stack.

Containing the topology and the order of setup; the namespace calls are in netns.py.

- ``pair`` (the default without a target): this process moves into a fresh client
  namespace; the sink starts in a fresh namespace of its own; a veth joins them, numbered
  from 198.18.0.0/15 (RFC 2544). tcp_tw_reuse=2 (loopback only) does not apply across it,
  as it would not across a real network.
- ``loopback``: one fresh namespace, client and sink on 127.0.0.1.
- ``host``: the current namespace, the host's own settings.

A new namespace starts from the kernel's built-in defaults, not the host's values, so each
sandbox first copies the host's values of every studied sysctl, then applies the user's
overrides, then reads everything back: the read-back is what result.json records.

Cleanup needs no code on the failure paths: the client namespace belongs to this process,
the server namespace to the sink (which dies with this process, PR_SET_PDEATHSIG), and the
veth to both namespaces. When the processes are gone, so is everything else.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from types import TracebackType

from portstorm.core.addressing import PAIR_CLIENT, PAIR_NETWORK, sink_addresses
from portstorm.core.errors import EnvironmentProblem, UsageError
from portstorm.core.scenario import CloseMode, SandboxKind
from portstorm.core.tuning import STUDIED
from portstorm.engine import journal, netns
from portstorm.engine.flows import IP_BIND_ADDRESS_NO_PORT, Endpoint
from portstorm.engine.kernel import apply_sysctls, read_sysctls
from portstorm.engine.sink_handle import SinkProcess

CLIENT_ADDR = str(PAIR_CLIENT)
PREFIX_LEN = PAIR_NETWORK.prefixlen  # all of 198.18.0.0/15 is on-link: extra addresses too
CLIENT_IF = "ps-client"
SERVER_IF = "ps-server"
SINK_PORT = 9000


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise EnvironmentProblem(f"'ip {' '.join(args)}' failed: {proc.stderr.strip()}")


def _ip_batch(commands: list[str], what: str) -> None:
    """Many ip commands in one ip process (thousands of --source addresses stay quick)."""
    if not commands:
        return
    batch = "".join(f"{c}\n" for c in commands)
    proc = subprocess.run(["ip", "-batch", "-"], input=batch, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EnvironmentProblem(f"{what} failed: {proc.stderr.strip()}")


def _add_addresses(addresses: list[str], dev: str) -> None:
    """Add /32 addresses (the /15 route is there already)."""
    _ip_batch([f"addr add {a}/32 dev {dev}" for a in addresses],
              f"adding {len(addresses)} address(es) to {dev}")  # fmt: skip


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


@contextmanager
def _inside(ns_fd: int, back_fd: int) -> Iterator[None]:
    """Run the body in another network namespace, then return to ``back_fd``'s."""
    netns.setns(ns_fd)
    try:
        yield
    finally:
        netns.setns(back_fd)


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
    ) -> None:
        self.kind = kind
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
        self._enter_client_namespace()
        _ip("link", "set", "lo", "up")
        self.notes += apply_sysctls(
            {**self.host_values, **self.client_set}, frozenset(self.client_set), "client namespace"
        )
        self.tunings = read_sysctls(STUDIED)
        if self.kind is SandboxKind.LOOPBACK:
            self._start_local_sink()
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
        hosts = sink_addresses(False, self.sink_addresses)
        sink = self._stack.enter_context(
            SinkProcess(hosts, self.close, n_ports=self.sink_ports, workers=self.sink_workers)
        )
        self.sink = sink
        self.endpoints = [Endpoint(socket.AF_INET, (h, p), f"{h}:{p}") for h, p in sink.listening]

    def _start_pair(self) -> None:
        servers = sink_addresses(True, self.sink_addresses)
        ports = list(range(SINK_PORT, SINK_PORT + self.sink_ports))
        sink = self._stack.enter_context(
            SinkProcess(servers, self.close, ports=ports, own_netns=True, workers=self.sink_workers)
        )
        self.sink = sink
        client_fd = netns.open_netns()
        self._stack.callback(os.close, client_fd)
        server_fd = netns.open_netns(sink.pid)
        self._stack.callback(os.close, server_fd)
        # Created here, its peer moved straight into the sink's namespace: the veth never
        # exists in the host's namespace.
        _ip("link", "add", CLIENT_IF, "type", "veth", "peer", "name", SERVER_IF,
            "netns", str(sink.pid))  # fmt: skip
        _ip("addr", "add", f"{CLIENT_ADDR}/{PREFIX_LEN}", "dev", CLIENT_IF)
        _add_addresses([a for a in self.sources if a != CLIENT_ADDR], CLIENT_IF)
        _ip("link", "set", CLIENT_IF, "up")
        with _inside(server_fd, client_fd):
            _ip("link", "set", "lo", "up")
            _ip("addr", "add", f"{servers[0]}/{PREFIX_LEN}", "dev", SERVER_IF)
            _add_addresses(servers[1:], SERVER_IF)
            _ip("link", "set", SERVER_IF, "up")
            # Replies to extra sources go through the client's first address: one neighbour
            # entry on the sink's side instead of one per source (the neighbour table
            # overflows past gc_thresh3, 1024 by default, and packets are then dropped).
            extra = [a for a in self.sources if a != CLIENT_ADDR]
            _ip_batch([f"route add {a}/32 via {CLIENT_ADDR} dev {SERVER_IF}" for a in extra],
                      f"routing {len(extra)} source address(es) on the sink's side")  # fmt: skip
            self.notes += apply_sysctls(
                {**self.host_values, **self.server_set},
                frozenset(self.server_set),
                "server namespace",
            )
            self.server_tunings = read_sysctls(STUDIED)
        sink.go()
        self.endpoints = [Endpoint(socket.AF_INET, (h, p), f"{h}:{p}") for h, p in sink.listening]

    # -- teardown ------------------------------------------------------------------------

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()
