"""IPv6 on a fresh veth: no duplicate address detection, and the wait until it is configured.

Containing the two things a new IPv6 link needs before a run may time connections over it,
and nothing about the topology (sandbox.py builds that). Without them the first connect()s
of a run took 1 s (a retransmission), which is the link being set up, not the load measured.
IPv4 needs neither: it has no DAD, and ARP goes through no route.
"""

from __future__ import annotations

import time

from portstorm.core.errors import EnvironmentProblem
from portstorm.engine.kernel import write_sysctl

IPV6_READY_S = 5.0  # measured: 0.7-0.95 s after the veth goes up
_MULTICAST_ROUTE = ("ff000000000000000000000000000000", "08")  # ff00::/8


def without_dad(dev: str) -> None:
    """No DAD on ``dev`` at all, its link-local address included (before it goes up).

    ``nodad`` covers the addresses portstorm adds, not the fe80:: one the kernel adds at
    link up, which stays tentative ~1 s. Measured: the first SYNs from a routed source
    (2001:2:0:1::1, no interface's address) waited 1 s for a retransmission, since
    ndisc_solicit() then asks from the link-local address and ndisc_send_ns() sends nothing
    while that one is tentative. DAD runs unless both ``all`` and the device say no
    (addrconf_dad_begin()). Per namespace, as all of net.ipv6.conf is.
    """
    try:
        for name in ("all", dev):
            write_sysctl(f"net.ipv6.conf.{name}.accept_dad", "0")
    except OSError as e:
        raise EnvironmentProblem(
            f"--ipv6: cannot configure IPv6 on {dev} ({e.strerror}); is IPv6 disabled on this "
            "kernel (ipv6.disable=1)?"
        ) from None


def await_ipv6_ready(ends: list[tuple[int, str]]) -> None:
    """Wait until IPv6 is configured on each (pid's namespace, device): its ff00::/8 route.

    addrconf sets a device up only once the link is operationally up (addrconf_link_ready(),
    from linkwatch, which batches events up to 1 s apart), and adds its multicast route then
    (addrconf_add_mroute()). Measured: that route came 0.7-0.95 s after the veth went up;
    meanwhile the first neighbour solicitation toward the sink was dropped on arrival
    (Ip6InNoRoutes) and the first connect() took 1 s (the retransmitted solicitation).
    IPv4 needs no such wait: ARP does not go through a route. /proc/PID/net is that
    process's namespace, so both ends are read from here.
    """
    deadline = time.monotonic() + IPV6_READY_S
    pending = list(ends)
    while pending:
        pending = [(pid, dev) for pid, dev in pending if not _has_multicast_route(pid, dev)]
        if pending and time.monotonic() > deadline:
            raise EnvironmentProblem(
                f"--ipv6: IPv6 on {pending[0][1]} was not ready within {IPV6_READY_S:g} s "
                "(no ff00::/8 route); try again, or run without --ipv6"
            )
        if pending:
            time.sleep(0.005)  # polling a kernel state, with the deadline above


def _has_multicast_route(pid: int, dev: str) -> bool:
    with open(f"/proc/{pid}/net/ipv6_route") as f:  # dest, plen, ..., device last
        return any((w[0], w[1]) == _MULTICAST_ROUTE and w[-1] == dev for w in map(str.split, f))
