import pytest

from portstorm.core.errors import EnvironmentProblem, UsageError
from portstorm.core.scenario import CloseMode, SandboxKind
from portstorm.core.tuning import Context, parse_setting, reuse_notes

CTX = Context()

GOOD = [
    ("tcp_tw_reuse=1", ("net.ipv4.tcp_tw_reuse", "1")),
    ("net.ipv4.tcp_tw_reuse=0", ("net.ipv4.tcp_tw_reuse", "0")),
    ("ip_local_port_range=40000-40099", ("net.ipv4.ip_local_port_range", "40000 40099")),
    ("ip_local_port_range=40000 40099", ("net.ipv4.ip_local_port_range", "40000 40099")),
    ("ip_local_port_range=5000-5000", ("net.ipv4.ip_local_port_range", "5000 5000")),
    (
        "ip_local_reserved_ports=9002,9000-9001,8080",
        ("net.ipv4.ip_local_reserved_ports", "8080,9000-9002"),
    ),
    ("ip_local_reserved_ports=", ("net.ipv4.ip_local_reserved_ports", "")),
    ("tcp_tw_reuse_delay=100", ("net.ipv4.tcp_tw_reuse_delay", "100")),
    ("tcp_fin_timeout=5", ("net.ipv4.tcp_fin_timeout", "5")),
    ("somaxconn=1024", ("net.core.somaxconn", "1024")),
    ("net.core.somaxconn=8", ("net.core.somaxconn", "8")),
    ("tcp_timestamps=2", ("net.ipv4.tcp_timestamps", "2")),
]


@pytest.mark.parametrize(("text", "expected"), GOOD)
def test_settings_parse_to_full_names_and_kernel_form(text: str, expected: tuple[str, str]) -> None:
    assert parse_setting(text, CTX) == expected


BAD = [
    ("tcp_tw_reuse=3", "0 (off), 1 (on), 2 (loopback only)"),
    ("tcp_tw_reuse=-1", "0 (off)"),
    ("tcp_tw_reuse=yes", "not a whole number"),
    ("tcp_tw_reuse_delay=0", "1-60000"),
    ("tcp_tw_reuse_delay=60001", "1-60000"),
    ("tcp_rfc1337=2", "0 or 1"),
    ("ip_local_port_range=1000-2000", "below ip_unprivileged_port_start 1024"),
    ("ip_local_port_range=3000-2000", "below low"),
    ("ip_local_port_range=3000", "malformed"),
    ("ip_local_reserved_ports=70000", "1-65535"),
    ("nosuch=1", "unknown sysctl"),
    ("=1", "NAME=VALUE"),
    ("tcp_tw_reuse", "NAME=VALUE"),
]


@pytest.mark.parametrize(("text", "fragment"), BAD)
def test_values_the_kernel_refuses_are_refused_first(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_setting(text, CTX)
    assert fragment in str(e.value)
    assert str(e.value).startswith("--set")


def test_the_privileged_port_floor_comes_from_the_target_namespace() -> None:
    assert parse_setting("ip_local_port_range=600-700", Context(unprivileged_port_start=500))
    with pytest.raises(UsageError, match="below ip_unprivileged_port_start 1024"):
        parse_setting("ip_local_port_range=600-700", Context())


def test_a_sysctl_this_kernel_lacks_is_refused_with_its_first_version() -> None:
    old = Context(available=frozenset({"net.ipv4.tcp_tw_reuse"}), kernel="6.1.0")
    with pytest.raises(UsageError) as e:
        parse_setting("tcp_tw_reuse_delay=100", old)
    assert "this kernel (6.1.0) has no net.ipv4.tcp_tw_reuse_delay (added in Linux 6.14)" in str(
        e.value
    )


def _t(reuse: str, stamps: str = "1") -> dict[str, str]:
    return {"net.ipv4.tcp_tw_reuse": reuse, "net.ipv4.tcp_timestamps": stamps}


NOTES = [
    # sandbox, tunings, fragments expected (all), fragments forbidden
    ("pair", _t("2"), ["loopback only", "veth"], ["applied"]),
    ("loopback", _t("2"), ["flatter", "tcp_tw_reuse=2 applied"], []),
    ("pair", _t("1"), ["tcp_tw_reuse=1 applied"], ["loopback only"]),
    ("pair", _t("1", "0"), ["no effect", "tcp_timestamps"], ["applied"]),
    ("loopback", _t("2", "0"), ["no effect"], ["applied"]),
    ("pair", _t("0"), [], ["applied", "no effect"]),
    ("host", _t("2"), [], ["applied", "veth"]),
    # --sandbox nat: client -> router -> sink, two veths; as the pair's, not loopback
    ("nat", _t("2"), ["loopback only", "crossed two veths and a NAT router"], ["applied"]),
    ("nat", _t("1"), ["tcp_tw_reuse=1 applied"], ["loopback only"]),
]


@pytest.mark.parametrize(("sandbox", "tunings", "present", "absent"), NOTES)
def test_reuse_notes_say_whether_tw_reuse_applied(
    sandbox: str, tunings: dict[str, str], present: list[str], absent: list[str]
) -> None:
    text = " | ".join(reuse_notes(sandbox, tunings))
    for f in present:
        assert f in text, (f, text)
    for f in absent:
        assert f not in text, (f, text)


@pytest.mark.parametrize("close", ["rst", "server"])
@pytest.mark.parametrize("sandbox", ["pair", "nat"])
def test_no_time_wait_note_where_the_client_left_no_time_wait(sandbox: str, close: str) -> None:
    """RST close and the server closing first leave no TIME_WAIT on the client: the note
    that each port stayed in TIME_WAIT 60 s would be false (it was printed for them)."""
    assert reuse_notes(sandbox, _t("2"), close=close) == []
    assert any("60 s" in n for n in reuse_notes(sandbox, _t("2"), close="client"))


def test_without_privilege_or_user_namespaces_the_sandbox_says_why_and_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from portstorm.engine import netns
    from portstorm.engine.sandbox import Sandbox

    monkeypatch.setattr(netns, "can_create_netns_directly", lambda: False)
    monkeypatch.setattr(netns, "userns_blocker", lambda: "user.max_user_namespaces is 0")
    with pytest.raises(EnvironmentProblem) as e, Sandbox(SandboxKind.PAIR, CloseMode.CLIENT):
        pass
    msg = str(e.value)
    assert "user.max_user_namespaces is 0" in msg and "--sandbox host" in msg
    assert e.value.exit_code == 3
