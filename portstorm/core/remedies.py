"""The classic remedies for port exhaustion, as a sweep varies them, and what each costs.

Containing the table behind ``--vary remedy=...`` (the remedies preset, core/sweep.py): each
remedy stands for the run options and sysctls it sets, so a cell is a plain list of them,
labelled by them; and for each, in words, what it gives up, as ``portstorm lastack`` and
``portstorm restart`` measure it (README "What the classic advice does on Linux" has the
figures of one machine). No measuring here and no page: the comparison report shows the
costs beside the rates the sweep measured (report/page.py).
"""

from __future__ import annotations

from collections.abc import Mapping

REMEDY = "remedy"
REMEDIES: dict[str, tuple[tuple[str, str], ...]] = {
    "default": (("net.ipv4.tcp_tw_reuse", "0"),),
    "wider-range": (("net.ipv4.ip_local_port_range", "40000-41999"),),
    "tw-reuse": (("net.ipv4.tcp_tw_reuse", "1"),),
    "tw-reuse-delay": (("net.ipv4.tcp_tw_reuse", "1"), ("net.ipv4.tcp_tw_reuse_delay", "100")),
    "server-closes": (("close", "server"),),
    "rst-close": (("close", "rst"),),
    "more-destinations": (("sink_ports", "2"),),
    "more-sources": (("source", "198.18.1.0/30"),),
}

# What each remedy gives up of what TIME_WAIT protects, or elsewhere; the command that
# shows it on this kernel in brackets.
COSTS: dict[str, str] = {
    "default": "nothing: the baseline (each port held 60 s in TIME_WAIT after a client close)",
    "wider-range": (
        "none of TIME_WAIT's protection; the range takes ports other listeners might want "
        "(ip_local_reserved_ports keeps theirs out)"
    ),
    "tw-reuse": (
        "a port is taken over 1 s after its TIME_WAIT began (tcp_tw_reuse_delay): a FIN the "
        "peer resends later than that meets a new connection (portstorm lastack, case "
        "tw_reuse_1s)"
    ),
    "tw-reuse-delay": (
        "taken over after 100 ms: a peer still in LAST_ACK whose last ACK was lost answers "
        "the new SYN with a challenge ACK, is reset and the connect waits for a resent SYN "
        "(portstorm lastack, case tw_reuse_100ms)"
    ),
    "server-closes": (
        "TIME_WAIT moves to the server: a restart binds its port only with SO_REUSEADDR, "
        "else not for about 60 s (portstorm restart)"
    ),
    "rst-close": (
        "no FIN at all: the server's read ends in ECONNRESET and data still in flight is "
        "discarded (portstorm lastack, case rst)"
    ),
    "more-destinations": "nothing of TIME_WAIT's protection: another listening port to run",
    "more-sources": "nothing of TIME_WAIT's protection: more addresses to own and route",
}


def _short(name: str) -> str:
    return name.removeprefix("net.ipv4.").removeprefix("net.core.")


def remedy_of(factors: Mapping[str, str]) -> str | None:
    """The remedy a sweep cell's factors (as sweep.json labels them: ``tcp_tw_reuse``,
    ``close``) stand for; None when they are not exactly one remedy's."""
    given = {_short(k): v for k, v in factors.items()}
    for name, pairs in REMEDIES.items():
        if given == {_short(k): v for k, v in pairs}:
            return name
    return None
