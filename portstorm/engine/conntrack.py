"""Reading the NAT router's conntrack from outside its namespace: ``ConntrackReader``.

Containing the namespace-bound handles (a NETLINK_NETFILTER socket, two /proc files) and
one reading per call; the wire format is engine/ctnetlink.py, the reading's value
core/routerrecord.py. No decisions here.

Bound once, usable from any thread: the constructor enters the router's namespace with
setns() on the calling thread, creates the socket and opens the files there, and goes
back. A netlink socket belongs to the namespace it was created in (netlink_create() takes
the creator's net), and a /proc/net or /proc/sys file to the namespace it was opened in
(seq_open_net() and the sysctl table keep that net); tests/kernel/test_conntrack.py
measures it: a reader made in a client namespace with no conntrack entries of its own
(nf_conntrack_count 0) reads the router's 7, and the same from a thread that never
entered the router.

Per reading:
- one ctnetlink dump (IPCTNL_MSG_CT_GET, AF_INET): entries, TCP entries by state, NAT
  ports held toward each destination (ctnetlink.py; HOLDING_STATES there);
- /proc/net/stat/nf_conntrack: one row per CPU, hex, the header names the columns
  (ct_cpu_seq_show()); insert_failed, drop, early_drop and clash_resolve (the column is
  ``clashres``) summed over the rows, as deltas from the previous reading. The first
  column, ``entries``, is the namespace's total repeated on every row: not summed;
- nf_conntrack_count (any family; the dump counts IPv4), for comparison.

Which states hold a NAT port (measured 2026-12-01, kernel 6.18): a 3-port SNAT pool
(`snat to 198.18.0.1:40000-40002`) filled with 3 entries in one state toward one server,
then 6 new connections toward it from other client addresses (2.5 s connect timeout):

  state of the 3        how they were made               new connections   insert_failed
  ESTABLISHED           held open                        0 of 6            +18
  CLOSE_WAIT            client shutdown(SHUT_WR), the    0 of 6            +18
                        server keeping its socket open
  SYN_SENT              the server's namespace dropping  0 of 6            +18
                        SYNs, then the client sockets
                        closed and the drop removed
  TIME_WAIT             client close, then server close  6 of 6            0
  CLOSE                 client close with RST            3 of 6 (all 3     +9
                        (SO_LINGER 0)                    CLOSE entries
                                                         taken over)

New connections took the TIME_WAIT and CLOSE entries' ports: nf_nat_used_tuple_harder()
kills a clashing entry that nf_nat_may_kill() allows (TCP state >= TIME_WAIT, source-NATed,
the new SYN's sequence past the old one's). So ``nat_ports_in_use`` counts the TCP entries
in the states below TIME_WAIT (ctnetlink.HOLDING_STATES); SYN_SENT2 (simultaneous open)
sorts above TIME_WAIT and is not counted, by the kernel's rule, unmeasured.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Collection

from portstorm.core.errors import EnvironmentProblem
from portstorm.core.routerrecord import RouterReading
from portstorm.engine.ctnetlink import DumpError, Parser, Table, dump_request
from portstorm.engine.netns import CLONE_NEWNET, open_netns, setns

NETLINK_NETFILTER = 12
STAT_PATH = "/proc/thread-self/net/stat/nf_conntrack"  # thread-self: the setns'd thread
COUNT_PATH = "/proc/sys/net/netfilter/nf_conntrack_count"
# RouterReading attribute -> column of /proc/net/stat/nf_conntrack's header
STAT_COLUMNS = {
    "insert_failed": "insert_failed",
    "drop": "drop",
    "early_drop": "early_drop",
    "clash_resolve": "clashres",
}
_DATAGRAM = 1 << 16  # a dump's datagrams are at most 32 KiB (netlink_dump())
_TIMEOUT = 10.0  # seconds a dump may wait for its next datagram
_CHUNK = 1 << 18  # parsed at once: ~1,200 entries, and still in the CPU's cache


def parse_stat(text: str) -> dict[str, int]:
    """The counters of STAT_COLUMNS, summed over the CPU rows, by RouterReading name.

    Columns are matched by the header's names, never by position; a row that is not as
    many hex fields as the header is skipped; a column the kernel lacks reads 0.
    """
    lines = text.splitlines()
    names = lines[0].split() if lines else []
    where = {attr: names.index(col) for attr, col in STAT_COLUMNS.items() if col in names}
    out = dict.fromkeys(STAT_COLUMNS, 0)
    for line in lines[1:]:
        cells = line.split()
        if len(cells) != len(names):
            continue
        try:
            values = [int(c, 16) for c in cells]
        except ValueError:
            continue
        for attr, i in where.items():
            out[attr] += values[i]
    return out


def _pread_all(fd: int) -> bytes:
    """The whole file from offset 0 (a proc seq file restarts at 0: traverse())."""
    chunks: list[bytes] = []
    off = 0
    while True:
        chunk = os.pread(fd, 65536, off)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        off += len(chunk)


class ConntrackReader:
    """The router namespace's conntrack, read from any thread. ``netns_fd`` names the
    namespace (it may be closed after construction); ``nat_addresses``: the router's SNAT
    addresses, so an entry counts as NATed when its reply goes to one."""

    def __init__(self, netns_fd: int, nat_addresses: Collection[str] = ()) -> None:
        self._nat = tuple(nat_addresses)
        try:
            self._sock, self._stat, self._count = self._open_in(netns_fd)
        except OSError as e:
            raise EnvironmentProblem(
                f"cannot read the router's conntrack ({e.filename or 'ctnetlink'}: "
                f"{e.strerror}); is nf_conntrack loaded in its namespace?"
            ) from e
        self._netns = os.dup(netns_fd)  # to make a new socket after a broken dump
        self._buf = bytearray(_CHUNK + _DATAGRAM)
        self._seq = 0
        self._before = self.counters()

    @staticmethod
    def _open_in(netns_fd: int) -> tuple[socket.socket, int, int]:
        """The socket and the two files, made inside the namespace ``netns_fd`` names."""
        home = open_netns()
        try:
            setns(netns_fd, CLONE_NEWNET)
        except OSError:
            os.close(home)
            raise
        sock: socket.socket | None = None
        opened: list[int] = []
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                 NETLINK_NETFILTER)  # fmt: skip
            sock.bind((0, 0))
            # a dump that never ends fails the reading: SO_RCVTIMEO, not settimeout(),
            # which would make Python poll before every recv, MSG_DONTWAIT ones too
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                            struct.pack("=qq", int(_TIMEOUT), 0))  # fmt: skip
            for path in (STAT_PATH, COUNT_PATH):
                opened.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
        except OSError:
            if sock is not None:
                sock.close()
            for fd in opened:
                os.close(fd)
            raise
        finally:
            # back where this thread was: a thread left in the router would run the rest
            # of the program there
            setns(home, CLONE_NEWNET)
            os.close(home)
        return sock, opened[0], opened[1]

    def close(self) -> None:
        self._sock.close()
        for fd in (self._stat, self._count, self._netns):
            os.close(fd)

    def counters(self) -> dict[str, int]:
        """/proc/net/stat/nf_conntrack of the router, summed over CPUs (not deltas)."""
        return parse_stat(_pread_all(self._stat).decode("ascii", "replace"))

    def table_count(self) -> int:
        """nf_conntrack_count: the router's entries of every family."""
        return int(_pread_all(self._count))

    def dump(self) -> Table:
        """One ctnetlink dump of the router's IPv4 entries, counted.

        Cost: the kernel's, mostly. With 60,000 entries (benchmarks/conntrack.py) a dump
        costs the kernel ~170 ms of CPU, ~3 us per entry filled (ctnetlink_fill_info())
        over a ~25 ms walk of the hash table that every namespace shares; the parse here
        adds ~6 ms. The datagrams (at most 32 KiB) are received back to back and parsed
        256 KiB at a time: each strided slice of the parser then spans ~1,200 entries,
        while the chunk is still in the CPU's cache (parser CPU at 60,000 entries: 8.7 ms
        fed per datagram, 5.6 ms per 256 KiB, 10 ms per 4 MiB, 22 ms all at once).

        The end needs no parse to find: while a dump runs, each recvmsg() queues the next
        datagram before it returns (netlink_recvmsg() calls netlink_dump()), so a
        non-blocking recv that finds nothing comes after the one holding NLMSG_DONE; the
        chunk is parsed then, and only if DONE is not in it does the reader wait.
        """
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        parser = Parser(self._seq, self._nat)
        buf, view, pos = self._buf, memoryview(self._buf), 0
        flags: int = socket.MSG_DONTWAIT
        try:
            self._sock.send(dump_request(self._seq))
            while not parser.done:
                try:
                    size = self._sock.recv_into(view[pos:], _DATAGRAM, flags)
                except BlockingIOError:
                    if not flags:
                        raise DumpError(errno.ETIMEDOUT, "ctnetlink: the dump stalled") from None
                    parser.feed(buf, pos)
                    pos, flags = 0, 0  # not ended and nothing queued: wait (SO_RCVTIMEO)
                    continue
                flags = socket.MSG_DONTWAIT
                if size == 0 or size % 4:
                    raise DumpError(errno.EPROTO, f"ctnetlink: a datagram of {size} bytes")
                pos += size
                if pos >= _CHUNK:
                    parser.feed(buf, pos)
                    pos = 0
        except OSError:
            self._reopen()  # a dump left half-read would answer the next request
            raise
        return parser.result()

    def read(self) -> RouterReading:
        """The dump, and the counters' deltas since the previous reading (or creation)."""
        table = self.dump()
        now = self.counters()
        delta = {k: now[k] - self._before[k] for k in STAT_COLUMNS}
        self._before = now
        return RouterReading(
            conntrack_entries=table.entries,
            conntrack_by_state=table.by_state,
            nat_ports_in_use=table.nat_ports,
            **delta,
        )

    def _reopen(self) -> None:
        self._sock.close()
        sock, stat, count = self._open_in(self._netns)
        os.close(self._stat)
        os.close(self._count)
        self._sock, self._stat, self._count = sock, stat, count


__all__ = ["ConntrackReader", "DumpError", "parse_stat"]
