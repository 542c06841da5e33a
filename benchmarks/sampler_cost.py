"""How much one port-space sample costs with 60,000+ TIME_WAIT sockets present.

Runs itself inside a private network namespace (unshare -n as root, -Urn otherwise), so
the host is never touched. There it widens the port range to 1024-65535, starts portstorm's
sink on port 900, and opens and closes one connection from every local port toward it, the
client closing first: 64,512 TIME_WAIT sockets toward one destination. (Each connection
binds its port explicitly: left to connect(), the port search walks the filled half of the
range on every call once it is full, KERNEL.md "Ports", and filling would take minutes.)
Then it times, on the same sockets:

  portstorm's Sampler.sample()   sockstat + sock_diag (kernel-side filter) + counters + fds
  baseline: ss                   `ss -Htan state time-wait | wc -l` (what people script)
  baseline: /proc/net/tcp        read and split every line, count state 06

and prints the medians, the ratios against the baselines, and the share of one core at one
sample per second. Goal (issue 4): under 30 ms, under 3 % of a core.

    python benchmarks/sampler_cost.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SINK_PORT = 900  # below the widened range, so every port 1024-65535 is a client port
RANGE = (1024, 65535)


def reexec_in_netns() -> int:
    prefix = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-Urn"]
    return subprocess.call([*prefix, sys.executable, __file__, "--inner", *sys.argv[1:]])


def ms(f: object, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()  # type: ignore[operator]
        out.append((time.perf_counter() - t) * 1000)
    return out


def proc_net_tcp_time_wait() -> int:
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            if line.split()[3] == "06":
                n += 1
    return n


def wait_for_listener(sink: subprocess.Popen[bytes], limit_s: float = 60.0) -> None:
    """Until the sink accepts a connection (its start takes seconds on a busy machine: a
    fixed 1 s wait saw ECONNREFUSED). The probe closes with RST (SO_LINGER {1, 0}): its
    port, inside RANGE, must not stay in TIME_WAIT, where the fill's bind() would fail."""
    end = time.monotonic() + limit_s
    while True:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if probe.connect_ex(("127.0.0.1", SINK_PORT)) == 0:
                return
        if sink.poll() is not None or time.monotonic() > end:
            raise SystemExit(f"the sink did not listen on 127.0.0.1:{SINK_PORT}")
        time.sleep(0.05)


def inner(repeat: int) -> None:
    sys.path.insert(0, str(ROOT))
    from portstorm.core.addressing import TupleSpec
    from portstorm.engine.sampler import Sampler, read_time_wait

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for name, value in (("ip_local_port_range", "1024 65535"), ("tcp_tw_reuse", "0"),
                        ("tcp_max_tw_buckets", "262144")):  # fmt: skip
        Path(f"/proc/sys/net/ipv4/{name}").write_text(value)
    ps = [sys.executable, "-m", "portstorm"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    sink = subprocess.Popen([*ps, "sink", "--listen", f"127.0.0.1:{SINK_PORT}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for_listener(sink)
        t = time.perf_counter()
        for port in range(RANGE[0], RANGE[1] + 1):
            with socket.socket() as c:
                c.bind(("127.0.0.1", port))
                c.connect(("127.0.0.1", SINK_PORT))
        time.sleep(1.0)  # the sink reads each EOF and closes: the last FINs arrive
        fill_s = time.perf_counter() - t
    finally:
        sink.terminate()
        sink.wait()

    tw = read_time_wait(Path("/proc/self/net"))
    sampler = Sampler([TupleSpec(None, "127.0.0.1", SINK_PORT)], RANGE)
    try:
        sample = sampler.sample()
        ours = ms(sampler.sample, repeat)
    finally:
        sampler.close()
    # More flows than PER_FLOW_DUMPS: the sampler switches to one dump grouped in Python.
    many = [TupleSpec(None, "127.0.0.1", SINK_PORT)]
    many += [TupleSpec(f"127.0.1.{i}", "127.0.0.1", SINK_PORT) for i in range(1, 64)]
    grouped_sampler = Sampler(many, RANGE)
    try:
        grouped_sample = grouped_sampler.sample()
        grouped = ms(grouped_sampler.sample, repeat)
    finally:
        grouped_sampler.close()
    assert grouped_sample.ports_by_flow is not None
    assert grouped_sample.ports_by_flow[0] == sample.ports_in_use, "grouped count disagrees"
    ss_cmd = "ss -Htan state time-wait | wc -l"
    ss_count = int(subprocess.run(ss_cmd, shell=True, capture_output=True, text=True).stdout)
    ss = ms(lambda: subprocess.run(ss_cmd, shell=True, capture_output=True), repeat)
    proc_count = proc_net_tcp_time_wait()
    proc = ms(proc_net_tcp_time_wait, repeat)

    med = statistics.median
    print(f"machine: {os.uname().release}, {os.cpu_count()} CPUs; filled in {fill_s:.1f} s")
    print(f"TIME_WAIT present: sockstat {tw:,}, ss {ss_count:,}, /proc/net/tcp {proc_count:,}; "
          f"sampler ports_in_use {sample.ports_in_use:,}")  # fmt: skip
    print(f"{'reader':<28}{'median ms':>10}{'max ms':>10}")
    for name, xs in (("portstorm Sampler.sample()", ours),
                     ("  same, 64 flows (grouped)", grouped),
                     ("ss | wc -l", ss), ("/proc/net/tcp parse", proc)):  # fmt: skip
        print(f"{name:<28}{med(xs):>10.2f}{max(xs):>10.2f}")
    print(
        f"ratio ss / sampler: {med(ss) / med(ours):.1f}x; "
        f"/proc/net/tcp / sampler: {med(proc) / med(ours):.1f}x"
    )
    share = med(ours) / 1000 * 100
    print(
        f"one sample per second costs {share:.2f} % of one core "
        f"(goal < 3 %); median {med(ours):.2f} ms (goal < 30 ms): "
        f"{'MET' if med(ours) < 30 and share < 3 else 'NOT MET'}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if not a.inner:
        return reexec_in_netns()
    inner(a.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
