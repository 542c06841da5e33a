"""The classic claims about TIME_WAIT, against the real kernel in throwaway pair sandboxes:
a server that closed first cannot bind() its port again while TIME_WAIT holds it, unless
it sets SO_REUSEADDR (as its old listener did); and what the client's TIME_WAIT does for
the server when the client's last ACK is lost (``portstorm lastack``).

Cheap: the restart test makes 20 connections and tries one round of bind()s (--max-wait
0), so it never waits out the 60 s; the full drain time is measured by hand (README, "What
the classic advice does on Linux"). The last-ACK test makes 20 connections per case.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.support.cli import portstorm
from tests.support.netns import check, require_netns
from tests.support.require import require


def _restart(out: Path, *options: str) -> dict[str, Any]:
    require_netns()
    proc = portstorm("restart", "--rate", "100", "--duration", "0.2", "--max-wait", "0",
                     "--no-report", "--quiet", "--out", str(out), *options)  # fmt: skip
    check(proc)
    restart: dict[str, Any] = json.loads((out / "result.json").read_text())["restart"]
    return restart


def _by_options(binds: list[dict[str, Any]]) -> dict[tuple[bool, bool], dict[str, Any]]:
    return {(b["reuseaddr"], b["reuseport"]): b for b in binds}


def test_a_plain_bind_fails_while_server_time_wait_holds_the_port_and_so_reuseaddr_binds_at_once(
    tmp_path: Path,
) -> None:
    r = _restart(tmp_path)
    assert r["connections"] == 20 and r["failed"] == 0
    binds = _by_options(r["binds"])
    assert len(r["binds"]) == 3  # one round: --max-wait 0
    plain, reuseaddr, reuseport = binds[False, False], binds[True, False], binds[False, True]
    assert plain["server_time_wait"] == 20  # every connection left TIME_WAIT on port 8080
    assert (plain["ok"], plain["errno"]) == (False, "EADDRINUSE")
    assert (reuseaddr["ok"], reuseaddr["errno"]) == (True, None)
    assert reuseaddr["t"] < 1.0  # at once, not after the 60 s
    # the old listener set SO_REUSEADDR only: its TIME_WAIT sockets share with that alone
    assert (reuseport["ok"], reuseport["errno"]) == (False, "EADDRINUSE")
    assert r["first_ok_without_reuseaddr_s"] is None
    assert r["server_kernel"]["TcpExtTW"] == 20


def test_so_reuseaddr_does_not_help_when_the_old_listener_did_not_set_it(tmp_path: Path) -> None:
    binds = _by_options(_restart(tmp_path, "--old-listener", "none")["binds"])
    assert [binds[k]["errno"] for k in ((False, False), (True, False), (False, True))] == [
        "EADDRINUSE"
    ] * 3


def test_a_lost_last_ack_is_answered_from_time_wait_and_reset_without_it(tmp_path: Path) -> None:
    require_netns()
    require(shutil.which("nft") is not None, "nft (Debian's nftables) is not installed")
    proc = portstorm("lastack", "--share", "100", "--connections", "20", "--rate", "200",
                     "--cases", "time_wait,no_time_wait,tw_reuse,rst", "--no-report",
                     "--out", str(tmp_path))  # fmt: skip
    check(proc)
    cases = {c["case"]: c for c in json.loads((tmp_path / "result.json").read_text())["last_ack"]}
    tw, none, reuse, rst = (cases[k] for k in ("time_wait", "no_time_wait", "tw_reuse", "rst"))
    for c in (tw, none, reuse):  # the 4th packet matched, and every one dropped (100 %)
        assert c["last_acks_seen"] == c["last_acks_dropped"], c
        # each failure is named (the errno, or the time bound)
        assert sum(c["connect_errors"].values()) == c["connect_failures"], c
    assert tw["connections"] == none["connections"] == 20
    # 10 ports taken over after 1 ms. In full suites 1 and then 9 of the 20 failed (their
    # reasons not recorded then: connect_errors names them now), never beside 3-8 busy
    # loops alone (20 of 20 in 24 runs): what the case shows is the takeover and what the
    # server saw, below; its connections are each made or named
    assert reuse["connections"] + reuse["connect_failures"] == 20, reuse
    assert reuse["connections"] >= 10, reuse  # every port came round at least once
    # TIME_WAIT holds each port: exact. TIME_WAIT answers each retransmitted FIN, and
    # every close ends with the client's ACK
    assert tw["last_acks_seen"] == 20 and tw["server_fin_retransmits"] >= 20
    assert tw["server_rsts_received"] == 0 and tw["server_clean_closes"] == 20
    # no TIME_WAIT: the retransmitted FIN finds no socket, and the client answers RST. (A
    # port free at once may come round while the server is still in LAST_ACK: that flow
    # shares the old conntrack entry, and its last ACK is not the 4th packet: seen once in
    # 15 runs, 19 matched and dropped, yet 20 RSTs to the server.)
    assert none["last_acks_seen"] >= 18 and none["server_rsts_received"] >= 18
    assert none["client_kernel"]["TcpOutRsts"] >= none["server_rsts_received"]
    assert none["client_kernel"]["TcpExtTCPTimeWaitOverflow"] == 20
    # taken over after 1 ms through 10 ports: new SYNs meet LAST_ACK, challenge ACK, RST
    # (a resent FIN can also meet a port's new connection still in SYN_SENT: another RST)
    assert reuse["server_rsts_received"] >= reuse["server_kernel"]["TcpExtTCPSYNChallenge"] >= 1
    # ports came round by takeover (TWRecycled: 15 of 20 in 3 runs beside stress-ng --cpu 3);
    # a CI run on the slower host counted 3 (its other reasons not recorded: a RST killing a
    # TIME_WAIT, tcp_rfc1337=0, would free a port too). At least one is what the case shows
    assert reuse["client_kernel"]["TcpExtTWRecycled"] >= 1, reuse
    # RST close: nothing to drop, and the server's every read ends in ECONNRESET
    assert rst["last_acks_seen"] == 0 and rst["server_read_resets"] == 20
