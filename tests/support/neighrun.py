"""A sandbox built and inspected before any load: which neighbour entries each hop holds.

``python -m tests.support.neighrun FOLDER KIND [ipv6]`` in a throwaway namespace (the
sandbox unshares this process's). Writes FOLDER/out.json: per hop, the link-layer-resolved
neighbours as ``ip -j neigh`` lists them, read the moment the sandbox is entered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from portstorm.core.nat import OUTSIDE_IF
from portstorm.core.scenario import CloseMode, SandboxKind
from portstorm.engine import netns
from portstorm.engine.router import CLIENT_IF, inside
from portstorm.engine.sandbox import Sandbox


def neighbours(dev: str) -> list[dict[str, Any]]:
    out = subprocess.run(["ip", "-j", "neigh", "show", "dev", dev],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return [e for e in json.loads(out or "[]") if "lladdr" in e]


def main() -> None:
    folder, kind = Path(sys.argv[1]), SandboxKind(sys.argv[2])
    ipv6 = sys.argv[3:] == ["ipv6"]
    got: dict[str, Any] = {}
    with Sandbox(kind, CloseMode.CLIENT, sink_addresses=3 if kind is SandboxKind.PAIR else 1,
                 ipv6=ipv6) as sb:  # fmt: skip
        got["client"] = neighbours(CLIENT_IF)
        if sb.router_netns is not None:
            back = netns.open_netns()
            try:
                with inside(sb.router_netns, back):
                    got["router"] = neighbours(OUTSIDE_IF)
            finally:
                os.close(back)
        got["sinks"] = [str(e.sockaddr[0]) for e in sb.endpoints]
    (folder / "out.json").write_text(json.dumps(got))


if __name__ == "__main__":
    main()
