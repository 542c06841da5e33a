"""Stand-in hosts for fleet tests: anonymous network namespaces, each with Debian's sshd on
its own 198.18.1.x address, joined by a bridge in a controller namespace.

Everything lives in namespaces made here (nothing is added to this machine's own
namespace): a controller namespace holding a bridge (198.18.1.1/24) and one veth per host,
whose other end is the host namespace's eth0. Each namespace is held by a ``cat`` reading
a pipe from this process, so it ends when the pipe closes (on ``close()``, or when the
test process dies however it dies). sshd listens only on its host's address, with a host
key and an authorized client key made in the test's temp folder, and is ended by its PID.
A host may be left without sshd (``dead``): its address answers SSH with a refusal.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.require import require

SSHD = "/usr/sbin/sshd"
NET = "198.18.1"


def require_sshd() -> None:
    require(os.geteuid() == 0, "the fleet test joins namespaces with nsenter and logs in as root")
    require(Path(SSHD).is_file(), "Debian's openssh-server is not installed (/usr/sbin/sshd)")
    for tool in ("unshare", "nsenter", "ip", "ssh-keygen"):
        require(shutil.which(tool) is not None, f"{tool} is not installed")


def _holder() -> subprocess.Popen[bytes]:
    """A new network namespace with lo up, alive while its stdin pipe is open."""
    return subprocess.Popen(
        ["unshare", "-n", "sh", "-c", "ip link set lo up && exec cat >/dev/null"],
        stdin=subprocess.PIPE,
    )


def nsenter(pid: int, *argv: str) -> list[str]:
    return ["nsenter", "-t", str(pid), "-n", *argv]


def _ip(pid: int, *args: str) -> None:
    subprocess.run(nsenter(pid, "ip", *args), check=True, capture_output=True, timeout=10)


@dataclass
class StandIn:
    name: str
    address: str
    holder: subprocess.Popen[bytes]
    sshd: subprocess.Popen[bytes] | None = None
    log: Path | None = None


@dataclass
class StandIns:
    """``hosts`` stand-in hosts (the last ``dead`` without sshd) and a controller."""

    folder: Path
    controller: subprocess.Popen[bytes] | None = None
    hosts: list[StandIn] = field(default_factory=list)

    @property
    def controller_pid(self) -> int:
        assert self.controller is not None
        return self.controller.pid

    def start(self, n: int, dead: int = 0, timeout: float = 15.0) -> StandIns:
        keys = self.folder / "keys"
        keys.mkdir()
        for name in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name,
                            "-f", str(keys / name)], check=True, timeout=30)  # fmt: skip
        (keys / "authorized_keys").write_text((keys / "client_key.pub").read_text())
        host_pub = (keys / "host_key.pub").read_text().split()
        self.controller = _holder()
        cpid = self.controller.pid
        _wait_netns(cpid)
        _ip(cpid, "link", "add", "br0", "type", "bridge")
        _ip(cpid, "addr", "add", f"{NET}.1/24", "dev", "br0")
        _ip(cpid, "link", "set", "br0", "up")
        known = []
        for i in range(1, n + 1):
            name, address = f"h{i}", f"{NET}.{10 + i}"
            host = StandIn(name, address, _holder())
            self.hosts.append(host)
            _wait_netns(host.holder.pid)
            _ip(cpid, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0",
                "netns", str(host.holder.pid))  # fmt: skip
            _ip(cpid, "link", "set", f"v{i}", "master", "br0", "up")
            _ip(host.holder.pid, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip(host.holder.pid, "link", "set", "eth0", "up")
            known.append(f"{address} {host_pub[0]} {host_pub[1]}\n")
            if i <= n - dead:
                self._start_sshd(host, keys)
        (keys / "known_hosts").write_text("".join(known))
        for host in self.hosts:
            if host.sshd is not None:
                _wait_listening(host, timeout)
        return self

    def _start_sshd(self, host: StandIn, keys: Path) -> None:
        config = self.folder / f"sshd-{host.name}.conf"
        config.write_text(
            f"ListenAddress {host.address}\nPort 22\nHostKey {keys / 'host_key'}\n"
            f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            f"StrictModes no\nPidFile {self.folder / f'sshd-{host.name}.pid'}\n"
            "Subsystem sftp internal-sftp\nLogLevel INFO\nMaxStartups 50\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        host.log = self.folder / f"sshd-{host.name}.log"
        with host.log.open("wb") as out:
            # nsenter execs sshd (no --fork): the Popen's PID is sshd's, ended by it
            host.sshd = subprocess.Popen(nsenter(host.holder.pid, SSHD, "-D", "-e", "-f",
                                                 str(config)), stdout=out, stderr=out)  # fmt: skip

    def inventory(self, path: Path) -> Path:
        keys = self.folder / "keys"
        common = (f"-o UserKnownHostsFile={keys / 'known_hosts'} -o StrictHostKeyChecking=yes "
                  "-o ConnectTimeout=5")  # fmt: skip
        lines = ["[stand_ins]"]
        lines += [f"{h.name} ansible_host={h.address}" for h in self.hosts]
        lines += [
            "", "[stand_ins:vars]", "ansible_user=root",
            f"ansible_ssh_private_key_file={keys / 'client_key'}",
            f"ansible_ssh_common_args='{common}'",
            "ansible_python_interpreter=/usr/bin/python3",
            f"ansible_remote_tmp={self.folder / 'remote-tmp'}",
            f"ansible_async_dir={self.folder / 'async'}",
        ]  # fmt: skip
        path.write_text("\n".join(lines) + "\n")
        return path

    def close(self) -> None:
        """Every sshd by its PID (the listener and the session processes it forked), then
        every namespace (its holder's pipe closed)."""
        for host in self.hosts:
            if host.sshd is not None and host.sshd.poll() is None:
                end_tree(host.sshd)
        # what outlived its session (a shell whose sshd was gone, reparented to init) still
        # holds its namespace: every process left in ours, by its PID
        holders = [h.holder for h in self.hosts] + ([self.controller] if self.controller else [])
        for holder in holders:
            kill_in_netns(holder.pid)
        for proc in [h.holder for h in self.hosts] + ([self.controller] if self.controller else []):
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def descendants(pid: int) -> list[int]:
    """The PIDs below ``pid`` (its children, theirs, ...), read from /proc."""
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for tid in tids:
        try:
            children = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
        except FileNotFoundError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def kill_in_netns(holder: int) -> None:
    """SIGKILL, by PID, every process in ``holder``'s network namespace but the holder."""
    try:
        ns = os.readlink(f"/proc/{holder}/ns/net")
    except FileNotFoundError:
        return
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (holder, os.getpid()):
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/net") == ns:
                os.kill(int(entry), signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue


def end_tree(proc: subprocess.Popen[Any]) -> None:
    """``proc`` and everything it started, each by its PID (deepest first)."""
    for pid in reversed(descendants(proc.pid)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.kill()
    proc.wait(timeout=10)


def _wait_netns(pid: int, timeout: float = 10.0) -> None:
    """Until the holder has unshared (its namespace differs from ours) and set lo up."""
    mine = os.readlink("/proc/self/ns/net")
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if os.readlink(f"/proc/{pid}/ns/net") != mine and _lo_up(pid):
                return
        except FileNotFoundError:
            break
        time.sleep(0.01)  # polling for the event
    raise AssertionError(f"namespace holder {pid} did not come up")


def _lo_up(pid: int) -> bool:
    out = subprocess.run(nsenter(pid, "ip", "-o", "link", "show", "lo"), capture_output=True,
                         text=True, timeout=10).stdout  # fmt: skip
    return "UP" in out.split(">")[0]


def _wait_listening(host: StandIn, timeout: float) -> None:
    """Until sshd logs that it listens on its address (sshd -e: to its log)."""
    assert host.log is not None and host.sshd is not None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if f"listening on {host.address}" in host.log.read_text(errors="replace"):
            return
        if host.sshd.poll() is not None:
            raise AssertionError(f"sshd of {host.name} exited: {host.log.read_text()}")
        time.sleep(0.01)  # polling for the event
    raise AssertionError(f"sshd of {host.name} did not listen within {timeout:g} s")
