import pytest

from portstorm.core.advice import HostState, advise

BASE = {
    "net.ipv4.ip_local_port_range": "32768 60999",
    "net.ipv4.tcp_tw_reuse": "1",
    "net.ipv4.tcp_timestamps": "1",
    "net.ipv4.tcp_max_tw_buckets": "262144",
}


def _state(conntrack: tuple[int, int] | None = None, fds: int = 1 << 20, **t: str) -> HostState:
    tun = dict(BASE)
    tun.update({f"net.ipv4.{k}": v for k, v in t.items()})
    return HostState(
        tunings=tun, time_wait=0, ports_in_use=0, fd_soft_limit=fds, conntrack=conntrack
    )


CASES = [
    ("a well-tuned host gets no advice", _state(), []),
    ("tw_reuse=2", _state(tcp_tw_reuse="2"), ["loopback only"]),
    ("timestamps off", _state(tcp_timestamps="0"), ["tcp_timestamps=0 disables"]),
    ("narrow range", _state(ip_local_port_range="40000 40999"), ["only 1,000 usable ports"]),
    ("fd limit below the range", _state(fds=1024), ["open-file limit (1,024)"]),
    (
        "tw buckets below the range",
        _state(tcp_max_tw_buckets="1000"),
        ["tcp_max_tw_buckets (1,000)"],
    ),
    ("conntrack nearly full", _state(conntrack=(900, 1000)), ["nf_conntrack_count (900)"]),
    ("conntrack with room", _state(conntrack=(100, 1000)), []),
]


@pytest.mark.parametrize(("state", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_advice(state: HostState, expected: list[str]) -> None:
    got = advise(state)
    assert len(got) == len(expected), got
    for fragment, line in zip(expected, got, strict=True):
        assert fragment in line
