"""Every hop of a sandbox is resolved before the first SYN (engine/router.py,
resolve_neighbours): a CI run's first ARP request toward the sink went unanswered, its SYNs
waited 1 s in the neighbour queue for the request to be sent again, and the run's first
second measured that wait. Read the moment the sandbox is entered, before any load."""

from __future__ import annotations

from pathlib import Path

import pytest

from portstorm.core.nat import ROUTER_INSIDE
from tests.support.netns import run_support_in_netns

pytestmark = pytest.mark.netns


def _resolved(entries: list[dict[str, object]]) -> set[str]:
    return {str(e["dst"]) for e in entries if e.get("state") != ["FAILED"]}


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_the_pair_has_every_sink_address_resolved_before_the_load(
    tmp_path: Path, family: str
) -> None:
    got = run_support_in_netns(
        "neighrun", tmp_path, "pair", *(["ipv6"] if family == "ipv6" else [])
    )
    assert len(got["sinks"]) == 3
    assert _resolved(got["client"]) == set(got["sinks"]), got


def test_the_nat_sandbox_has_both_hops_resolved_before_the_load(tmp_path: Path) -> None:
    got = run_support_in_netns("neighrun", tmp_path, "nat")
    assert _resolved(got["client"]) == {ROUTER_INSIDE}, got  # client -> router
    assert _resolved(got["router"]) == set(got["sinks"]) == {"198.18.0.2"}, got  # -> sink
