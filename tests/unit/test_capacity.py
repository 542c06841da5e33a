"""The port-space model, one row per case (KERNEL.md's measured cases among them)."""

import pytest

from portstorm.core.capacity import CapacityInput, model

R100 = (40000, 40099)

# name, input, usable, tuples, hold_s, sustainable, predicted exhaustion
CASES = [
    ("tw_reuse=0, 50/s: 100 ports run out after 2 s",
     CapacityInput(R100, tw_reuse=0, rate=50), 100, 1, 60.0, 100 / 60, 2.0),
    ("tw_reuse=1, delay 100 ms: 1000/s sustainable",
     CapacityInput(R100, tw_reuse=1, tw_reuse_delay_ms=100, rate=2000), 100, 1, 0.1, 1000.0, 0.05),
    ("tw_reuse=1 at the default delay: 100/s (KERNEL.md)",
     CapacityInput(R100, tw_reuse=1), 100, 1, 1.0, 100.0, None),
    ("tw_reuse=1 with timestamps off: 60 s",
     CapacityInput(R100, tw_reuse=1, timestamps=0, rate=80), 100, 1, 60.0, 100 / 60, 1.25),
    ("tw_reuse=2 across a veth: loopback only, 60 s",
     CapacityInput(R100, tw_reuse=2, loopback=False, rate=80), 100, 1, 60.0, 100 / 60, 1.25),
    ("tw_reuse=2 on loopback: reuse after 1 s",
     CapacityInput(R100, tw_reuse=2, loopback=True, rate=80), 100, 1, 1.0, 100.0, None),
    ("rst close: no TIME_WAIT, no limit",
     CapacityInput(R100, tw_reuse=0, close="rst", rate=5000), 100, 1, 0.0, None, None),
    ("server close: TIME_WAIT on the server, no client limit",
     CapacityInput(R100, tw_reuse=0, close="server", rate=5000), 100, 1, 0.0, None, None),
    ("3 destinations with connect: 300 ports",
     CapacityInput(R100, tw_reuse=0, destinations=3, rate=600), 100, 3, 60.0, 5.0, 0.5),
    ("3 destinations with bind(0): 100 ports",
     CapacityInput(R100, tw_reuse=0, destinations=3, bind="bind", rate=600), 100, 1, 60.0, 100 / 60, 100 / 600),
    ("3 destinations with bind + IP_BIND_ADDRESS_NO_PORT: 300",
     CapacityInput(R100, tw_reuse=0, destinations=3, bind="no-port"), 100, 3, 60.0, 5.0, None),
    ("2 sources x 1 destination: 200",
     CapacityInput(R100, tw_reuse=0, sources=2), 100, 2, 60.0, 200 / 60, None),
    ("per-socket range of 10 ports",
     CapacityInput(R100, tw_reuse=0, bind="range", socket_range=(40000, 40009)), 10, 1, 60.0, 10 / 60, None),
    ("per-socket range of 10 ports toward 3 destinations: 30",
     CapacityInput(R100, tw_reuse=0, bind="range", socket_range=(40000, 40009), destinations=3), 10, 3, 60.0, 30 / 60, None),
    ("per-socket low bound outside the namespace range is ignored (inet_sk_get_local_port_range)",
     CapacityInput(R100, tw_reuse=0, bind="range", socket_range=(39000, 40009)), 10, 1, 60.0, 10 / 60, None),
    ("per-socket range wholly outside: the namespace range applies",
     CapacityInput(R100, tw_reuse=0, bind="range", socket_range=(50000, 50010)), 100, 1, 60.0, 100 / 60, None),
    ("reserved ports inside the range are skipped",
     CapacityInput(R100, tw_reuse=0, reserved=frozenset({40000, 40001, 39000})), 98, 1, 60.0, 98 / 60, None),
    ("default range, tw_reuse=2 across a veth",
     CapacityInput((32768, 60999), tw_reuse=2, rate=1000), 28232, 1, 60.0, 28232 / 60, 28.232),
    ("tcp_max_tw_buckets below the port space: ports never run out",
     CapacityInput(R100, tw_reuse=0, max_tw_buckets=50, rate=500), 100, 1, 60.0, None, None),
    ("tcp_max_tw_buckets above the port space changes nothing",
     CapacityInput(R100, tw_reuse=0, max_tw_buckets=1000, rate=50), 100, 1, 60.0, 100 / 60, 2.0),
    ("a rate below sustainable never exhausts",
     CapacityInput(R100, tw_reuse=0, rate=1.0), 100, 1, 60.0, 100 / 60, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("inp", "usable", "tuples", "hold", "sustainable", "exhaustion"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_capacity_model(
    inp: CapacityInput,
    usable: int,
    tuples: int,
    hold: float,
    sustainable: float | None,
    exhaustion: float | None,
) -> None:
    cap = model(inp)
    assert (cap.usable_ports, cap.tuples, cap.hold_s) == (usable, tuples, hold)
    assert cap.sustainable_rate == (None if sustainable is None else pytest.approx(sustainable))
    assert cap.predicted_exhaustion_s == (None if exhaustion is None else pytest.approx(exhaustion))
    assert cap.why  # every number comes with its reason


def test_the_model_explains_the_loopback_only_default() -> None:
    text = " ".join(model(CapacityInput(R100, tw_reuse=2)).why)
    assert "loopback only" in text


def test_fin_timeout_is_not_an_input_of_the_model() -> None:
    # tcp_fin_timeout bounds orphaned FIN_WAIT2 only; TIME_WAIT stays 60 s
    assert "fin" not in " ".join(CapacityInput.__dataclass_fields__)


def test_the_model_says_when_the_kernel_ignores_a_per_socket_bound() -> None:
    inp = CapacityInput(R100, tw_reuse=0, bind="range", socket_range=(50000, 50010))
    assert "50000, 50010 outside 40000-40099 ignored" in model(inp).why[0]
