"""Gather what `portstorm inspect` reports from the live namespace (reads only)."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
from pathlib import Path
from typing import Any

from portstorm.core.advice import (
    HostState,
    NatRule,
    advise,
    capacity_for_one_destination,
    nat_rules,
)
from portstorm.core.ports import parse_port_range
from portstorm.core.tuning import STUDIED, describe
from portstorm.engine.kernel import read_sysctls
from portstorm.engine.sampler import read_time_wait
from portstorm.engine.sockdiag import SockDiag
from portstorm.engine.sysinfo import host_info


def _conntrack() -> tuple[int, int] | None:
    base = Path("/proc/sys/net/netfilter")
    try:
        count = int((base / "nf_conntrack_count").read_text())
        limit = int((base / "nf_conntrack_max").read_text())
    except (OSError, ValueError):
        return None  # nf_conntrack not loaded (or not visible here)
    return count, limit


def _nat_rules() -> tuple[NatRule, ...] | None:
    """The host's masquerade and snat rules, from ``nft -j list ruleset`` (it only reads);
    None where nft is not installed or may not read the ruleset (no CAP_NET_ADMIN)."""
    nft = shutil.which("nft")
    if nft is None:
        return None
    try:
        proc = subprocess.run(
            [nft, "-j", "list", "ruleset"], capture_output=True, text=True, timeout=10
        )
        return nat_rules(json.loads(proc.stdout)) if proc.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None


def gather() -> dict[str, Any]:
    tunings = read_sysctls(STUDIED)
    low, high = parse_port_range(tunings["net.ipv4.ip_local_port_range"])
    diag = SockDiag()
    try:
        in_use = diag.count_local(low, high)
    finally:
        diag.close()
    state = HostState(
        tunings=tunings,
        time_wait=read_time_wait(Path("/proc/self/net")),
        ports_in_use=in_use,
        fd_soft_limit=resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        conntrack=_conntrack(),
        nat_rules=_nat_rules(),
    )
    cap = capacity_for_one_destination(tunings)
    host = host_info()
    return {
        "format": "portstorm.inspect/1",
        "host": host.to_json(),
        "port_range": [low, high],
        "reserved_ports": tunings.get("net.ipv4.ip_local_reserved_ports", ""),
        "time_wait": state.time_wait,
        "ports_in_use": state.ports_in_use,
        "fd_soft_limit": state.fd_soft_limit,
        "conntrack": (
            {"count": state.conntrack[0], "max": state.conntrack[1]} if state.conntrack else None
        ),
        "nat_rules": (
            [r.to_json() for r in state.nat_rules] if state.nat_rules is not None else None
        ),
        "sysctls": [{"name": n, "value": v, "meaning": m} for n, v, m in describe(tunings)],
        "capacity_one_destination": cap.to_json(),
        "advice": advise(state),
    }
