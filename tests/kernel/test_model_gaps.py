"""Against the real kernel, in a throwaway namespace that plays the host: a rate far above
the port-space model gets a sentence saying why (a server that resets), and a target on
127.0.0.1 in host mode is known as loopback by its address (label, note, finding)."""

from __future__ import annotations

from pathlib import Path

import pytest

from portstorm.core.findings import run_findings
from portstorm.core.result import load_result
from portstorm.core.signals import agrees
from tests.support.netns import check, run_in_netns

pytestmark = pytest.mark.netns

# Accepts each connection, waits for the client's FIN (recv() returns b''), then aborts it
# (SO_LINGER {1, 0}: close() sends RST), for at most 60 s; the script ends it by PID well
# before. Waiting for the FIN makes the order certain: the client has closed first and sits
# in FIN_WAIT2 when the RST arrives. Aborting at once left it to a race: in CI every RST
# beat the client's close, so no socket entered FIN_WAIT2 and none was killed there.
ABORTING = (
    "import socket,struct,time; s=socket.socket(); s.setsockopt(1,2,1); "
    "s.bind(('198.18.0.1',7011)); s.listen(512); s.settimeout(0.2); "
    "end=time.monotonic()+60\n"
    "while time.monotonic()<end:\n"
    "  try: c=s.accept()[0]\n"
    "  except TimeoutError: continue\n"
    "  c.settimeout(2)\n"
    "  try: c.recv(1)\n"
    "  except OSError: pass\n"
    "  c.setsockopt(socket.SOL_SOCKET,socket.SO_LINGER,struct.pack('ii',1,0)); c.close()"
)


def _with_server(start: str, port: int, run: str, setup: str = "") -> str:
    """Start a server in the background, wait until it listens, run, end it by its PID."""
    return f"""
{setup}
{start} &
pid=$!
for i in $(seq 600); do [ "$(ss -Hltn 'sport = :{port}' | wc -l)" = 1 ] && break; sleep 0.1; done
{run} || rc=$?
kill $pid
exit ${{rc:-0}}
"""


def test_a_server_that_resets_explains_the_rate_above_the_model(tmp_path: Path) -> None:
    # 1,000 ports held 60 s: the model sustains 16.7 conn/s; 2,000/s for 2 s against a
    # server that resets every connection. The address sits on lo but is not loopback
    # (198.18.0.0/15), so tcp_tw_reuse=2 does not apply and the model holds ports 60 s.
    run = (
        "$PORTSTORM run 198.18.0.1:7011 --sandbox host --rate 2000 --duration 2 --no-report "
        f'--quiet --out "{tmp_path}"'
    )
    proc = run_in_netns(
        _with_server(
            f'python3 -c "{ABORTING}"', 7011, run, setup="ip addr add 198.18.0.1/32 dev lo"
        ),
        sysctls={"net.ipv4.ip_local_port_range": "40000 40999"},
    )
    check(proc)
    r = load_result(tmp_path / "result.json")
    assert r.model is not None and r.model.sustainable_rate is not None
    model_rate = float(r.model.sustainable_rate)
    assert r.model.hold_s == 60 and r.model.port_space == 1000
    assert r.succeeded > 1100, r.succeeded  # more than the ports: the ceiling did not bind
    assert r.rate > model_rate and not agrees(r.rate, model_rate)
    found = {f.kind: f.text for f in run_findings(r)}
    text = found.get("rst-ended", "")
    assert text.startswith("Connections ended by RST, not FIN"), found
    # Every connection reset: no TIME_WAIT at all. sockstat's tw counts FIN_WAIT2 sockets
    # too, so on a loaded machine a reading catches those still waiting for their RST (a
    # peak of 98 of the 1,000 FIN closes would leave, seen with stress-ng beside the suite),
    # and the sentence says so instead.
    assert (
        "No TIME_WAIT was left, so the port-space ceiling did not apply" in text
        or "A connection reset leaves no TIME_WAIT (client peak" in text
    ), text
    assert "conn/s were made, where the model sustains 16.7 conn/s (1,000 ports" in text, text
    assert "(1,000 ports held 60 s)" in text, text
    assert "rate-gap" not in found  # explained, not "cannot tell"
    # the client closed first and the server's RSTs killed its FIN_WAIT2 sockets: TcpExt TW
    # counted them as they entered, sockstat saw them gone
    assert "tw-killed" in found, found


def test_a_host_run_toward_127_0_0_1_is_labelled_loopback_with_its_note(tmp_path: Path) -> None:
    # 100 ports, 200/s for 2 s: 400 connections, possible only because tcp_tw_reuse=2
    # reuses TIME_WAIT ports toward 127.0.0.1 after 1 s, as in the loopback sandbox
    out = tmp_path / "out"
    run = f'$PORTSTORM run 127.0.0.1:7012 --sandbox host --rate 200 --duration 2 --out "{out}"'
    proc = run_in_netns(
        _with_server("$PORTSTORM sink --listen 127.0.0.1:7012", 7012, run),
        sysctls={"net.ipv4.ip_local_port_range": "40000 40099", "net.ipv4.tcp_tw_reuse": "2"},
    )
    check(proc)
    assert "LOOPBACK" in proc.stdout, proc.stdout  # the terminal summary's sandbox label
    assert "LOOPBACK" in (out / "report.html").read_text()  # the report's topology row
    r = load_result(out / "result.json")
    assert r.setup.sandbox == "host" and r.setup.loopback is True
    assert any(n.startswith("loopback: the target is on 127.0.0.0/8") for n in r.notes), r.notes
    assert any(n.startswith("tcp_tw_reuse=2 applied") for n in r.notes), r.notes
    assert r.model is not None and r.model.reuse_applies
    found = {f.kind: f.text for f in run_findings(r)}
    assert found["reuse"].startswith("tcp_tw_reuse=2 applied because this run used loopback")
    assert r.succeeded > 100  # the ports came back after tcp_tw_reuse_delay, not 60 s
