"""The sandboxes' wiring: ip and nft commands, and the NAT sandbox's router namespace.

Containing the commands that build interfaces, addresses and routes (``ip``, ``ip_batch``,
``add_addresses``, ``inside``: sandbox.py uses them for the pair too) and ``Router``, the
namespace between the client and the sink in ``--sandbox nat`` (core/nat.py has the plan,
the numbering and the ruleset). No decisions about what to build: the sandbox asks.

The router namespace is anonymous and held by a descriptor of this process alone (made by
unshare(), named by an fd, left with setns()): when portstorm ends, even by SIGKILL, the
last reference goes, and the namespace goes with its veth ends, its conntrack table and
its nftables table (all per network namespace). Nothing is bind-mounted, so nothing can
outlive the run; nothing is ever loaded into the host's own nftables.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from portstorm.core.errors import EnvironmentProblem
from portstorm.core.nat import (
    CLIENT_NETWORK,
    CLIENT_PREFIX_LEN,
    CONNTRACK_MAX,
    INSIDE_IF,
    NAT_ADDRESS,
    OUTSIDE_IF,
    ROUTER_INSIDE,
    ROUTER_NAMES,
    SERVER_PREFIX_LEN,
    NatSpec,
    ruleset,
)
from portstorm.engine import netns
from portstorm.engine.kernel import apply_sysctls, read_sysctls, write_sysctl

CLIENT_IF = "ps-client"
SERVER_IF = "ps-server"
NEIGHBOUR_READY_S = 5.0  # ARP tries 1 s apart (retrans_time): room for a lost request or more
_RESOLVED = frozenset({"REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP"})


def ip(*args: str, pass_fds: tuple[int, ...] = ()) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, pass_fds=pass_fds)
    if proc.returncode != 0:
        raise EnvironmentProblem(f"'ip {' '.join(args)}' failed: {proc.stderr.strip()}")


def ip_batch(commands: list[str], what: str) -> None:
    """Many ip commands in one ip process (thousands of addresses stay quick)."""
    if not commands:
        return
    batch = "".join(f"{c}\n" for c in commands)
    proc = subprocess.run(["ip", "-batch", "-"], input=batch, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EnvironmentProblem(f"{what} failed: {proc.stderr.strip()}")


def add_addresses(addresses: list[str], dev: str) -> None:
    """Add /32 (/128) addresses (the on-link route is there already).

    IPv6 addresses are added ``nodad``: duplicate address detection (RFC 4862 5.4) keeps a
    new address tentative for a probe interval, ~1 s (retrans_time), during which bind()
    to it fails with EADDRNOTAVAIL (ipv6_chk_addr() skips IFA_F_TENTATIVE). The namespaces
    are new and hold nothing else, so no duplicate can exist.
    """
    ip_batch([f"addr add {a}/{128 if ':' in a else 32} dev {dev}{' nodad' if ':' in a else ''}"
              for a in addresses],
             f"adding {len(addresses)} address(es) to {dev}")  # fmt: skip


def resolve_neighbours(addresses: list[str], dev: str, what: str) -> None:
    """Resolve each address's link-layer address on ``dev`` (this namespace's) and wait
    until every one is, before any load starts.

    Why: the veth that comes up last carries the first SYNs. Seen in a CI run (--sandbox
    nat, the test of the conntrack limit): the router held 10 entries in SYN_SENT for
    0.9 s, then every connect completed at once at ~1.0 s (latencies 0.67-1.0 s) and the
    first timed out; SYNs released together after 1 s is the neighbour queue emptied by
    ARP's second request (retrans_time), the first unanswered (not caught in the act). A
    run's first second measured that wait, not the ports. How: a managed entry (NTF_MANAGED,
    Linux 5.16): the kernel sends the request itself, again 1 s later if unanswered, and
    keeps the entry resolved while the sandbox lives (probing it again itself). No IP
    packet is sent, so no conntrack entry and no TCP counter a run reads moves (the NAT
    router read right after: nf_conntrack_count 0, Ip InReceives 0). A kernel
    or ip without ``managed`` refuses it, and then nothing is waited for.
    """
    if not addresses:
        return
    try:
        ip_batch([f"neigh replace {a} dev {dev} managed" for a in addresses], what)
    except EnvironmentProblem:
        return  # before Linux 5.16 (or iproute2 5.16): the first packets resolve them
    want = {ipaddress.ip_address(a) for a in addresses}
    deadline = time.monotonic() + NEIGHBOUR_READY_S
    while want:
        want -= _resolved_on(dev)
        if want and time.monotonic() > deadline:
            raise EnvironmentProblem(
                f"{what}: {min(want, key=str)} did not answer ARP (neighbour discovery) on "
                f"{dev} within {NEIGHBOUR_READY_S:g} s; try again"
            )
        if want:
            time.sleep(0.005)  # polling a kernel state, with the deadline above


def _resolved_on(dev: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses whose neighbour entry on ``dev`` has a link-layer address."""
    proc = subprocess.run(["ip", "-j", "neigh", "show", "dev", dev],
                          capture_output=True, text=True)  # fmt: skip
    try:
        entries = json.loads(proc.stdout) if proc.returncode == 0 else []
    except ValueError:
        return set()
    out: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for e in entries if isinstance(entries, list) else []:
        if not isinstance(e, dict) or "lladdr" not in e:
            continue
        states = e.get("state")
        if not isinstance(states, list) or not _RESOLVED.intersection(map(str, states)):
            continue
        try:
            out.add(ipaddress.ip_address(str(e.get("dst"))))
        except ValueError:
            continue
    return out


@contextmanager
def inside(ns_fd: int, back_fd: int) -> Iterator[None]:
    """Run the body in another network namespace, then return to ``back_fd``'s."""
    netns.setns(ns_fd)
    try:
        yield
    finally:
        netns.setns(back_fd)


def nft(text: str, where: str) -> None:
    """Load a ruleset with ``nft -f -`` in the calling thread's namespace."""
    try:
        proc = subprocess.run(["nft", "-f", "-"], input=text, capture_output=True, text=True)
    except FileNotFoundError:
        raise EnvironmentProblem(
            "--sandbox nat needs nft (Debian's nftables package) to build its router: "
            "install it (apt-get install nftables)"
        ) from None
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["no message"])[0]
        raise EnvironmentProblem(f"{where}: nft refused the NAT ruleset: {first}")


class Router:
    """The router namespace of --sandbox nat, while the sandbox lives.

    ``Router(spec, host_values).build(stack, client_fd, server_pid)`` from the client
    namespace, after the sink has started in its own namespace and before it listens;
    afterwards ``fd`` names the router's namespace (for the conntrack reader) and
    ``tunings`` holds its sysctls as read back.
    """

    def __init__(self, spec: NatSpec, host_values: dict[str, str]) -> None:
        self.spec = spec
        # the host's values to copy in: nf_conntrack_max is read-only in a child namespace
        # (EACCES on write), so it is read back but never written
        self.host_values = {k: v for k, v in host_values.items() if k != CONNTRACK_MAX}
        self.fd: int | None = None
        self.tunings: dict[str, str] = {}
        self.notes: list[str] = []

    def build(self, stack: ExitStack, client_fd: int, server_pid: int) -> None:
        self.fd = _new_namespace(stack, client_fd)
        fd = self.fd
        # Made in the client namespace with its peer straight in the router's (a path to
        # this process's fd, passed to ip): no veth ever exists in the host's namespace.
        ip("link", "add", CLIENT_IF, "type", "veth", "peer", "name", INSIDE_IF,
           "netns", f"/proc/self/fd/{fd}", pass_fds=(fd,))  # fmt: skip
        clients = list(self.spec.client_addresses)
        ip("addr", "add", f"{clients[0]}/{CLIENT_PREFIX_LEN}", "dev", CLIENT_IF)
        add_addresses(clients[1:], CLIENT_IF)
        ip("link", "set", CLIENT_IF, "up")
        ip("route", "add", "default", "via", ROUTER_INSIDE, "dev", CLIENT_IF)
        with inside(fd, client_fd):
            self._configure(server_pid, clients[0])
        self.notes += _limit_note(self.spec)

    def _configure(self, server_pid: int, first_client: str) -> None:
        """In the router namespace: links, forwarding, the ruleset, the sysctls."""
        ip("link", "set", "lo", "up")
        ip("link", "add", OUTSIDE_IF, "type", "veth", "peer", "name", SERVER_IF,
           "netns", str(server_pid))  # fmt: skip
        ip("addr", "add", f"{NAT_ADDRESS}/{SERVER_PREFIX_LEN}", "dev", OUTSIDE_IF)
        # The inside address alone, and every client reached through the first one: one
        # neighbour entry instead of one per client (past gc_thresh3, 1024 by default, the
        # neighbour table overflows and packets are dropped), as the pair's sink does.
        ip("addr", "add", f"{ROUTER_INSIDE}/32", "dev", INSIDE_IF)
        ip("link", "set", INSIDE_IF, "up")
        ip("link", "set", OUTSIDE_IF, "up")
        ip("route", "add", f"{first_client}/32", "dev", INSIDE_IF, "scope", "link")
        ip("route", "add", str(CLIENT_NETWORK), "via", first_client, "dev", INSIDE_IF)
        write_sysctl("net.ipv4.ip_forward", "1")  # per namespace; 0 in a new one
        # the ruleset first: loading a nat chain loads nf_conntrack and nf_nat if needed,
        # and with them the net.netfilter sysctls the copy writes
        nft(ruleset(self.spec), "router namespace")
        router_set = dict(self.spec.router_set)
        self.notes += apply_sysctls(
            {**self.host_values, **router_set}, frozenset(router_set), "router namespace"
        )
        self.tunings = read_sysctls(ROUTER_NAMES)


def _new_namespace(stack: ExitStack, back_fd: int) -> int:
    """A fresh network namespace held by a descriptor of this process; the calling thread
    is back in ``back_fd``'s namespace on return."""
    try:
        netns.unshare(netns.CLONE_NEWNET)
    except OSError as e:
        raise EnvironmentProblem(
            f"--sandbox nat: cannot create the router's network namespace ({e.strerror})"
        ) from None
    try:
        fd = netns.open_netns()
    finally:
        netns.setns(back_fd)
    stack.callback(os.close, fd)
    return fd


def _limit_note(spec: NatSpec) -> list[str]:
    if spec.conntrack_limit is None:
        return []
    return [
        f"router: nf_conntrack_max={spec.conntrack_limit} is emulated (the sysctl is "
        "read-only in a child namespace): nftables 'ct count over "
        f"{spec.conntrack_limit}' drops new flows in the forward chain; it does not count "
        "entries in TIME_WAIT or CLOSE, which the real table would hold"
    ]
