"""A restart result built from literals, for the unit and report tests of portstorm restart."""

from __future__ import annotations

from portstorm.core.records import HostInfo
from portstorm.core.restart import BindAttempt, Restart, RestartPlan, RestartResult


def restart_result(first_plain_ok_at: float | None = 61.0) -> RestartResult:
    binds = []
    for t in (0.0, 30.0):
        binds += [BindAttempt(t, False, False, False, "EADDRINUSE", 400),
                  BindAttempt(t, True, False, True, None, 400),
                  BindAttempt(t, False, True, False, "EADDRINUSE", 400)]  # fmt: skip
    if first_plain_ok_at is not None:
        binds += [BindAttempt(first_plain_ok_at, False, False, True, None, 0)]
    return RestartResult(
        version="0.1.0", host=HostInfo("vm", "6.18.0", 2), started_at="2026-12-01T16:00:00Z",
        duration_s=64.0, plan=RestartPlan(), server="198.18.0.2:8080",
        tunings={"net.ipv4.tcp_tw_reuse": "2"}, server_tunings={"net.ipv4.tcp_fin_timeout": "60"},
        restart=Restart(400, 0, 2.0, 400, tuple(binds), ((-2.0, 0), (0.0, 400), (61.0, 0)),
                        {"TcpExtTW": 400}),
    )  # fmt: skip
