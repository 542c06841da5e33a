"""The port-space model with held connections (--hold): each connection keeps its port for
the hold, then for TIME_WAIT (client close) or the reuse delay; one row per case."""

import pytest

from portstorm.core.capacity import CapacityInput, model

R100 = (40000, 40099)

# name, input, hold_s, sustainable, predicted exhaustion
CASES = [
    ("client close, hold 2 s: 100 ports / 62 s",
     CapacityInput(R100, tw_reuse=0, hold_s=2.0, rate=50), 62.0, 100 / 62, 2.0),
    ("client close, hold 60 s halves the rate TIME_WAIT alone allows",
     CapacityInput(R100, tw_reuse=0, hold_s=60.0), 120.0, 100 / 120, None),
    ("server close, hold 2 s: the client holds only the hold",
     CapacityInput(R100, tw_reuse=0, close="server", hold_s=2.0, rate=100), 2.0, 50.0, 1.0),
    ("rst close, hold 2 s: only the hold",
     CapacityInput(R100, tw_reuse=0, close="rst", hold_s=2.0, rate=40), 2.0, 50.0, None),
    ("rst close, hold 0: no limit, as before",
     CapacityInput(R100, tw_reuse=0, close="rst", hold_s=0.0, rate=5000), 0.0, None, None),
    ("tw_reuse=1, delay 100 ms, hold 0.4 s: 100 / 0.5 s",
     CapacityInput(R100, tw_reuse=1, tw_reuse_delay_ms=100, hold_s=0.4, rate=400), 0.5, 200.0, 0.25),
    ("loopback reuse after 1 s, hold 1 s: 100 / 2 s",
     CapacityInput(R100, tw_reuse=2, loopback=True, hold_s=1.0), 2.0, 50.0, None),
    ("3 destinations multiply held ports too",
     CapacityInput(R100, tw_reuse=0, destinations=3, hold_s=15.0, rate=10), 75.0, 4.0, 30.0),
    ("tcp_max_tw_buckets under the space, held: (100 - 50) / 10 s",
     CapacityInput(R100, tw_reuse=0, max_tw_buckets=50, hold_s=10.0, rate=10), 70.0, 5.0, 10.0),
    ("tcp_max_tw_buckets never reached at the held rate: the plain limit",
     CapacityInput(R100, tw_reuse=0, max_tw_buckets=50, hold_s=60.0), 120.0, 100 / 120, None),
    ("tcp_max_tw_buckets under the space, no hold: never runs out, as before",
     CapacityInput(R100, tw_reuse=0, max_tw_buckets=50, rate=500), 60.0, None, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("inp", "hold", "sustainable", "exhaustion"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_held_connections_in_the_model(
    inp: CapacityInput, hold: float, sustainable: float | None, exhaustion: float | None
) -> None:
    cap = model(inp)
    assert cap.hold_s == pytest.approx(hold)
    if sustainable is None:
        assert cap.sustainable_rate is None
    else:
        assert cap.sustainable_rate == pytest.approx(sustainable)
    if exhaustion is None:
        assert cap.predicted_exhaustion_s is None
    else:
        assert cap.predicted_exhaustion_s == pytest.approx(exhaustion)


def test_the_hold_is_explained_in_the_reasons() -> None:
    why = " | ".join(model(CapacityInput(R100, tw_reuse=0, hold_s=2.0)).why)
    assert "--hold 2 s" in why and "62 s per connection" in why and "100 / 62 s" in why


def test_server_close_with_hold_says_ports_free_when_the_connection_ends() -> None:
    why = model(CapacityInput(R100, close="server", hold_s=5.0)).why
    assert any("free once the connection ends" in w for w in why)
    assert not any("free at once" in w for w in why)


def test_held_cap_limit_names_the_buckets() -> None:
    cap = model(CapacityInput(R100, tw_reuse=0, max_tw_buckets=50, hold_s=10.0))
    assert cap.tw_cap_applies is True
    assert any("(100 - 50) / 10 s" in w for w in cap.why)


def test_from_tunings_carries_the_hold() -> None:
    inp = CapacityInput.from_tunings(
        {"net.ipv4.ip_local_port_range": "40000 40099", "net.ipv4.tcp_tw_reuse": "0"},
        hold_s=3.0,
    )
    assert model(inp).hold_s == 63.0


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_a_negative_or_nan_hold_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="hold"):
        CapacityInput(R100, hold_s=bad)
