"""What TIME_WAIT protects, as data: the last-ACK experiment's cases, its nftables rules,
its counts, and what they say.

Containing values, the ruleset text and sentences; no sockets, no nft, no namespaces
(engine/restartlastack.py runs it).

The experiment (``portstorm lastack``): in the pair sandbox the client closes first, the
server (portstorm's own listener) reads the FIN and closes, so the server waits in
LAST_ACK for the client's last ACK, the ACK of its FIN. nftables in the client's namespace
drops that ACK for ``share_pct`` % of the connections. Each case then shows what the
server gets instead:

- ``time_wait``: the client keeps TIME_WAIT (tcp_tw_reuse=0). The server's retransmitted
  FIN reaches the client's TIME_WAIT socket, which ACKs it again
  (tcp_timewait_state_process() -> TCP_TW_ACK): the server closes cleanly.
- ``no_time_wait``: tcp_max_tw_buckets=0 on the client, so a closing socket skips TIME_WAIT
  (TCPTimeWaitOverflow): the retransmitted FIN finds no socket and the client answers RST
  (tcp_v4_send_reset()): the server's LAST_ACK ends by a reset.
- ``tw_reuse``: tcp_tw_reuse=1, tcp_tw_reuse_delay=1 ms and a 10-port range, so connect()
  takes over a TIME_WAIT port 1 ms old: the new SYN meets the server's socket still in
  LAST_ACK, which answers with a challenge ACK (RFC 5961 4.2, tcp_validate_incoming());
  the client in SYN_SENT answers that with RST, and its SYN is retransmitted 1 s later.
- ``tw_reuse_100ms``: the same with a 100 ms delay (60 connections a second through the
  10 ports, so a port comes round after about 170 ms: past the delay, before the server's
  first FIN retransmission, 200 ms at least, TCP_RTO_MIN).
- ``tw_reuse_1s``: the same with the default tcp_tw_reuse_delay, 1 s (8 connections a
  second through the 10 ports): by the time a port is taken over, the server's FIN
  retransmission (its RTO is 200 ms or more, TCP_RTO_MIN) has been answered from TIME_WAIT.
- ``rst``: the client closes with RST (SO_LINGER {1, 0}): no FIN, no LAST_ACK, no
  TIME_WAIT; the server's read ends in ECONNRESET instead of end-of-file.

How the last ACK is matched (nothing in the ACK itself tells it from the handshake's
ACK: both are pure ACKs): by conntrack's packet count (net.netfilter.nf_conntrack_acct=1
in the client's namespace). A connection that sends no data sends SYN, ACK, FIN and then
the ACK of the server's FIN: the 4th packet in the original direction, counted by
conntrack (priority -200) before the filter chain (priority 0) sees it. A re-ACK from
TIME_WAIT is the 5th and passes. ``numgen random mod 100 < P`` picks the share. Without
TIME_WAIT holding it (no_time_wait, tw_reuse), a port may come round while the server still
waits in LAST_ACK; the new flow can then share the old conntrack entry and its last ACK is
not the 4th packet counted, so not matched (seen once in 15 runs of no_time_wait with 20
connections: 19 matched, 20 RSTs to the server).

Format history (keep old versions loading):
- ``portstorm.lastack/1`` (2026-12): first version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from portstorm.core import fields
from portstorm.core.errors import UsageError
from portstorm.core.finding import Finding

FORMAT = "portstorm.lastack/1"
SERVER_PORT = 8080
LAST_ACK_PACKET = 4  # SYN, ACK, FIN, then the ACK of the server's FIN
TABLE = "portstorm_lastack"


@dataclass(frozen=True)
class Case:
    name: str
    close: str  # fin | rst
    client_set: Mapping[str, str]
    what: str  # one phrase: what the client does
    max_rate: float | None = None  # connections per second at most, whatever --rate says


_REUSE = "net.ipv4.tcp_tw_reuse"
CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case("time_wait", "fin", {_REUSE: "0"}, "keeps TIME_WAIT 60 s (tw_reuse=0)"),
        Case("no_time_wait", "fin", {_REUSE: "0", "net.ipv4.tcp_max_tw_buckets": "0"},
             "skips TIME_WAIT (tcp_max_tw_buckets=0)"),
        Case("tw_reuse", "fin", {_REUSE: "1", "net.ipv4.tcp_tw_reuse_delay": "1",
                                 "net.ipv4.ip_local_port_range": "40000 40009"},
             "takes TIME_WAIT over after 1 ms (tw_reuse=1, tw_reuse_delay=1, 10 ports)"),
        Case("tw_reuse_100ms", "fin", {_REUSE: "1", "net.ipv4.tcp_tw_reuse_delay": "100",
                                       "net.ipv4.ip_local_port_range": "40000 40009"},
             "takes TIME_WAIT over after 100 ms (tw_reuse=1, tw_reuse_delay=100, 10 ports)",
             max_rate=60.0),  # each port comes round after ~170 ms: past the delay
        Case("tw_reuse_1s", "fin", {_REUSE: "1", "net.ipv4.ip_local_port_range": "40000 40009"},
             "takes TIME_WAIT over after 1 s (tw_reuse=1, the default delay, 10 ports)",
             max_rate=8.0),  # 10 ports, each free again 1 s after its close
        Case("rst", "rst", {_REUSE: "0"}, "closes with RST (SO_LINGER 0)"),
    )
}  # fmt: skip

BOUNDS: dict[str, tuple[float, float]] = {
    "--share": (0, 100),
    "--connections": (1, 10_000),
    "--rate": (1, 2000),
}


def parse_cases(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in CASES]
    if bad or not names:
        raise UsageError(
            f"--cases {text!r}: {'unknown ' + repr(bad[0]) if bad else 'none named'}; "
            f"allowed a comma-separated list of {', '.join(CASES)}"
        )
    return names


@dataclass(frozen=True)
class LastAckPlan:
    share_pct: int = 50
    connections: int = 50
    rate: float = 100.0
    cases: tuple[str, ...] = tuple(CASES)

    def __post_init__(self) -> None:
        for option, value in (("--share", self.share_pct), ("--connections", self.connections),
                              ("--rate", self.rate)):  # fmt: skip
            low, high = BOUNDS[option]
            if not low <= value <= high:
                raise UsageError(f"{option} {value:g} is out of range: allowed {low:g} to {high:g}")
        parse_cases(",".join(self.cases))

    def to_json(self) -> dict[str, Any]:
        return {"share_pct": self.share_pct, "connections": self.connections,
                "rate": self.rate, "cases": list(self.cases)}  # fmt: skip


def client_ruleset(server: str, share_pct: int) -> str:
    """The client namespace's table: count every last ACK toward the server, drop the share."""
    match = (f"ip daddr {server} tcp dport {SERVER_PORT} tcp flags & (fin|syn|rst|ack) == ack "
             f"ct original packets {LAST_ACK_PACKET}")  # fmt: skip
    # numgen's value is 0-99: "< 100" is refused by nft, so all and none are said plainly
    pick = {0: "", 100: " counter name dropped drop"}.get(
        share_pct, f" numgen random mod 100 < {share_pct} counter name dropped drop"
    )
    return f"""table inet {TABLE} {{
  counter last_ack {{}}
  counter dropped {{}}
  chain output {{
    type filter hook output priority filter; policy accept;
    {match} counter name last_ack{pick}
  }}
}}
"""


def server_ruleset() -> str:
    """The server namespace's table: counters only (FINs sent, RSTs received), no ct."""
    return f"""table inet {TABLE} {{
  counter fin_out {{}}
  counter rst_in {{}}
  chain output {{
    type filter hook output priority filter; policy accept;
    tcp sport {SERVER_PORT} tcp flags & fin == fin counter name fin_out
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    tcp dport {SERVER_PORT} tcp flags & rst == rst counter name rst_in
  }}
}}
"""


@dataclass(frozen=True)
class CaseResult:
    """What one case counted."""

    case: str
    connections: int  # completed
    connect_failures: int
    slow_connects: int  # connect() over 0.5 s: a SYN retransmitted
    last_acks_seen: int  # matched by the rule (the 4th packet, a pure ACK)
    last_acks_dropped: int
    server_fins_sent: int
    server_rsts_received: int
    server_read_resets: int  # the server's read ended in ECONNRESET, not end-of-file
    server_last_ack_peak: int
    server_last_ack_drained_s: float | None  # when none was left in LAST_ACK (null: not)
    connect_max_s: float = 0.0  # the slowest connect()
    connect_errors: Mapping[str, int] = field(default_factory=dict)  # errno name -> failures
    server_kernel: Mapping[str, int] = field(default_factory=dict)
    client_kernel: Mapping[str, int] = field(default_factory=dict)
    server_last_ack: tuple[tuple[float, int], ...] = ()

    def __post_init__(self) -> None:
        if self.case not in CASES:
            raise UsageError(f"case {self.case!r} is unknown: allowed {', '.join(CASES)}")
        for name in ("connections", "connect_failures", "slow_connects", "last_acks_seen",
                     "last_acks_dropped", "server_fins_sent", "server_rsts_received",
                     "server_read_resets", "server_last_ack_peak"):  # fmt: skip
            fields.integer(getattr(self, name), name)

    @property
    def fin_retransmits(self) -> int:
        """FINs the server sent beyond one per connection that got to send one."""
        first = self.connections if CASES[self.case].close == "fin" else 0
        return max(0, self.server_fins_sent - first)

    @property
    def clean_closes(self) -> int:
        """Server closes that ended with the client's ACK: its FINs, less the resets."""
        if CASES[self.case].close != "fin":
            return 0
        return max(0, self.connections - self.server_rsts_received)

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "client": CASES[self.case].what,
            "client_set": dict(CASES[self.case].client_set),
            "connections": self.connections,
            "connect_failures": self.connect_failures,
            "slow_connects": self.slow_connects,
            "connect_max_s": round(self.connect_max_s, 6),
            "connect_errors": dict(self.connect_errors),
            "last_acks_seen": self.last_acks_seen,
            "last_acks_dropped": self.last_acks_dropped,
            "server_fins_sent": self.server_fins_sent,
            "server_fin_retransmits": self.fin_retransmits,
            "server_rsts_received": self.server_rsts_received,
            "server_clean_closes": self.clean_closes,
            "server_read_resets": self.server_read_resets,
            "server_last_ack_peak": self.server_last_ack_peak,
            "server_last_ack_drained_s": self.server_last_ack_drained_s,
            "server_kernel": dict(self.server_kernel),
            "client_kernel": dict(self.client_kernel),
            "server_last_ack": [{"t": round(t, 4), "n": n} for t, n in self.server_last_ack],
        }


def lastack_doc(
    version: str, header: Mapping[str, Any], plan: LastAckPlan, results: list[CaseResult]
) -> dict[str, Any]:
    """The whole result.json of ``portstorm lastack`` (``header``: records.file_header)."""
    return {
        "format": FORMAT,
        **header,
        "complete": len(results) == len(plan.cases),
        "scenario": {
            "experiment": "lastack",
            "sandbox": "pair",
            "close": "client",
            "server": f"198.18.0.2:{SERVER_PORT}",
            **plan.to_json(),
            "match": "ct original packets 4, tcp flags ack only, numgen random mod 100 < share_pct",
        },
        "last_ack": [r.to_json() for r in results],
    }


def case_finding(r: CaseResult, share_pct: int) -> Finding:
    """One sentence per case: what the server saw after its FIN, and why."""
    k = r.server_kernel
    head = (f"{r.case}: the client {CASES[r.case].what}; {r.last_acks_dropped} of "
            f"{r.last_acks_seen} last ACKs dropped ({share_pct} % asked)")  # fmt: skip
    if r.case == "rst":
        text = (f"{r.case}: the client {CASES[r.case].what}: no FIN, so no last ACK to drop "
                f"({r.last_acks_seen} matched); the server's read ended in ECONNRESET "
                f"{r.server_read_resets} of {r.connections} times (EstabResets "
                f"{k.get('TcpEstabResets', 0)}) instead of end-of-file.")  # fmt: skip
        return Finding("lastack-rst", text, "warn" if r.server_read_resets else "info")
    text = (f"{head}: the server retransmitted {r.fin_retransmits} FINs and received "
            f"{r.server_rsts_received} RSTs; {r.clean_closes} of {r.connections} of its "
            f"closes ended with the client's ACK")  # fmt: skip
    if r.case.startswith("tw_reuse") and k.get("TcpExtTCPSYNChallenge", 0):
        text += (f"; the new SYNs met it in LAST_ACK: challenge ACKs "
                 f"{k.get('TcpExtTCPSYNChallenge', 0)}, each answered by the client's RST, "
                 f"which ended the server's LAST_ACK; the client resent its SYN "
                 f"{r.client_kernel.get('TcpExtTCPSynRetrans', 0)} times (re-armed at once "
                 f"after the bad ACK, tcp_rcv_synsent_state_process()), slowest connect "
                 f"{r.connect_max_s * 1000:.1f} ms")  # fmt: skip
    if r.connect_failures:
        why = ", ".join(f"{n} {name}" for name, n in sorted(r.connect_errors.items()))
        noun = "connection" if r.connect_failures == 1 else "connections"
        text += f"; {r.connect_failures} {noun} failed" + (f" ({why})" if why else "")
    if r.server_last_ack_drained_s is not None:
        text += f"; no LAST_ACK left {r.server_last_ack_drained_s:.2f} s after the load"
    return Finding(f"lastack-{r.case}", text + ".", "warn" if r.server_rsts_received else "info")
