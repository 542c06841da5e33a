"""--sandbox host with --change-host-sysctls: journal, restore on every way out, 'restore'.

The test's own network namespace plays the host: this machine's sysctls are never touched.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.netns import check, run_in_netns

pytestmark = pytest.mark.netns

SETS = "--set tcp_tw_reuse=0 --set ip_local_port_range=40000-40099"
SHOW = (
    'echo "$1 $(cat /proc/sys/net/ipv4/tcp_tw_reuse) $(cat /proc/sys/net/ipv4/ip_local_port_range)"'
)


# the run has applied its --set values (and so written its journal): poll, for up to 60 s,
# rather than sleep a fixed time that a busy machine may not honour
WAIT_CHANGED = (
    "n=0; until [ \"$(tr '\\t' ' ' < /proc/sys/net/ipv4/ip_local_port_range)\" = '40000 40099' ] "
    "|| [ $n -ge 1200 ]; do sleep 0.05; n=$((n+1)); done"
)


def _wait_for_an_interval(out: Path) -> str:
    """The load is running (its first interval is logged), so the signal meets the load."""
    log = out / "intervals.jsonl"
    return (
        f'n=0; until [ "$(wc -l < "{log}" 2>/dev/null || echo 0)" -ge 2 ] || [ $n -ge 1200 ]; '
        "do sleep 0.05; n=$((n+1)); done"
    )


def _script(tmp_path: Path, body: str) -> str:
    return f"""
export PORTSTORM_STATE_DIR="{tmp_path}/state"
show() {{ {SHOW}; }}
show before
{body}
"""


def _lines(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        key, _, rest = line.partition(" ")
        out[key] = " ".join(rest.split())
    return out


def test_live_changes_need_the_explicit_flag(tmp_path: Path) -> None:
    body = f'$PORTSTORM run --sandbox host {SETS} --duration 1 --out "{tmp_path}/r" 2>"{tmp_path}/err" || echo "rc $?"\nshow after'
    proc = run_in_netns(_script(tmp_path, body))
    check(proc)
    seen = _lines(proc.stdout)
    assert seen["rc"] == "2"
    assert seen["before"] == seen["after"] == "2 32768 60999"
    assert "--change-host-sysctls" in (tmp_path / "err").read_text()


@pytest.mark.parametrize("how", ["normal", "INT", "TERM"])
def test_live_changes_are_restored_when_the_run_ends(tmp_path: Path, how: str) -> None:
    run = f'$PORTSTORM run --sandbox host --change-host-sysctls {SETS} --rate 20 --quiet --no-report --out "{tmp_path}/r"'
    if how == "normal":
        body = f"{run} --duration 1 >/dev/null\nshow after"
    else:
        body = f"""{run} --duration 30 >/dev/null 2>&1 &
pid=$!
{WAIT_CHANGED}
{_wait_for_an_interval(tmp_path / "r")}
show during
kill -{how} $pid
wait $pid || echo "rc $?"
show after"""
    proc = run_in_netns(_script(tmp_path, body))
    check(proc)
    seen = _lines(proc.stdout)
    assert seen["after"] == seen["before"] == "2 32768 60999"
    if how != "normal":
        assert seen["during"] == "0 40000 40099"
        assert seen["rc"] == "130"
    assert not (tmp_path / "state" / "restore-journal.json").exists()


def test_after_sigkill_the_next_command_warns_and_restore_puts_values_back(tmp_path: Path) -> None:
    body = f"""$PORTSTORM run --sandbox host --change-host-sysctls {SETS} --duration 30 --rate 20 --quiet --no-report --out "{tmp_path}/r" >/dev/null 2>&1 &
pid=$!
{WAIT_CHANGED}
kill -KILL $pid
wait $pid || true
show killed
$PORTSTORM run --sandbox loopback --duration 0.5 --rate 10 --quiet --no-report --out "{tmp_path}/r2" >/dev/null 2>"{tmp_path}/warn"
$PORTSTORM restore > "{tmp_path}/restored"
show restored
$PORTSTORM restore > "{tmp_path}/again"
"""
    proc = run_in_netns(_script(tmp_path, body))
    check(proc)
    seen = _lines(proc.stdout)
    assert seen["killed"] == "0 40000 40099"  # SIGKILL gives no chance to restore
    assert "restore journal is pending" in (tmp_path / "warn").read_text()
    assert seen["restored"] == seen["before"] == "2 32768 60999"
    restored = (tmp_path / "restored").read_text()
    assert "net.ipv4.tcp_tw_reuse = '2'" in restored
    assert "nothing to restore" in (tmp_path / "again").read_text()
