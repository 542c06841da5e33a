"""ctnetlink's dump replies, parsed: entries, TCP entries by state, NAT ports per destination.

Containing only the wire format and the counting (bytes in, a ``Table`` out): no socket and
no namespace (engine/conntrack.py asks the kernel). Wire format:
include/uapi/linux/netfilter/{nfnetlink,nfnetlink_conntrack}.h; the kernel writes one
message per entry in ctnetlink_fill_info().

Every byte is treated as hostile: a netlink header whose length runs outside the datagram
refuses the datagram (``DumpError``); an entry whose attributes do not nest, or whose
fields have the wrong sizes or values, is skipped and counted in ``Table.skipped``.

Speed (the reason for the shapes): 60,000 entries arrive as ~400 datagrams of ~150 equal
messages, and a per-attribute Python walk costs ~10 us per entry. So the first message of
each length is walked attribute by attribute, and what it showed (where each attribute
header sits, where the fields are) becomes a ``_Shape``; the messages that follow it are
checked and read as strided slices of the datagram, at C speed: a header word of k
messages is one slice compared with the expected word repeated k times, a state byte of k
messages one slice counted with bytes.count(). A message that fails a check ends the run
and is walked by itself.
"""

from __future__ import annotations

import errno
import socket
import struct
from array import array
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from itertools import compress

from portstorm.core.routerrecord import TCP_STATES

NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_NEW = 0  # a dump's replies carry the NEW event (ctnetlink_dump_table())
IPCTNL_MSG_CT_GET = 1
CT_MSG = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER

CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS, CTA_PROTOINFO = 1, 2, 3, 4
CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 2
CTA_IP_V4_DST = 2
CTA_PROTO_NUM, CTA_PROTO_DST_PORT = 1, 3
CTA_PROTOINFO_TCP, CTA_PROTOINFO_TCP_STATE = 1, 1
IPS_SRC_NAT = (
    1 << 4
)  # the source was rewritten (include/uapi/linux/netfilter/nf_conntrack_common.h)

# tcp_conntrack_names[] order (nf_conntrack_proto_tcp.c): the state byte indexes it
TCP_STATE_NAMES = TCP_STATES
# The states whose entry keeps its NAT port from a new connection: every state below
# TIME_WAIT. nf_nat_used_tuple_harder() (the last NF_NAT_HARDER_THRESH tries of
# nf_nat_l4proto_unique_tuple()) evicts a clashing entry when nf_nat_may_kill() allows it:
# state >= TCP_CONNTRACK_TIME_WAIT, source-NATed, and the new SYN's sequence past the old
# one's. Measured (engine/conntrack.py's header): TIME_WAIT and CLOSE entries gave their
# ports to new connections; ESTABLISHED, CLOSE_WAIT and SYN_SENT entries did not.
HOLDING_STATES = frozenset(range(7))  # none .. last_ack
_HOLD = bytes(1 if i in HOLDING_STATES else 0 for i in range(256))
_NAT_BIT = bytes(1 if i & IPS_SRC_NAT else 0 for i in range(256))  # the status's low byte

_NLMSGHDR = struct.Struct("=IHHII")
_NLA = struct.Struct("=HH")
_MAX_SHAPES = 16  # distinct message lengths remembered (a hostile stream cannot grow it)


class DumpError(OSError):
    """A reply that is not a well-formed netlink stream, or the kernel's error."""


@dataclass(frozen=True, slots=True)
class Table:
    """What one dump counted. ``nat_ports``: "IP:PORT" of the original destination ->
    entries holding a NAT port toward it (source-NATed, in a HOLDING_STATES state)."""

    entries: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    nat_ports: dict[str, int] = field(default_factory=dict)
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class _Shape:
    """Where the fields sit in messages of one length, as the message it was made from
    showed: ``checks`` are (offset, expected 4 bytes) that every message of the run must
    repeat (its netlink header, the attribute headers, the protocol number)."""

    size: int
    checks: tuple[tuple[int, bytes], ...]
    tcp: bool
    state: int = 0  # offsets of the TCP fields, when tcp
    dst: int = 0
    dport: int = 0
    nat: int = 0
    status: int = 0


@dataclass(frozen=True, slots=True)
class _Entry:
    proto: int
    dst: bytes
    dport: int
    nat: bytes
    status: int
    state: int | None
    shape: _Shape | None


class _Bad(Exception):
    pass


def _nest(buf: bytes | bytearray, start: int, end: int) -> dict[int, tuple[int, int, int]]:
    """type -> (header offset, data offset, data length) of the attributes in [start, end)."""
    out: dict[int, tuple[int, int, int]] = {}
    while start + _NLA.size <= end:
        length, kind = _NLA.unpack_from(buf, start)
        if length < _NLA.size or start + length > end:
            raise _Bad
        out[kind & NLA_TYPE_MASK] = (start, start + _NLA.size, length - _NLA.size)
        start += (length + 3) & ~3
    return out


def _child(
    attrs: dict[int, tuple[int, int, int]], kind: int, size: int = -1
) -> tuple[int, int, int]:
    """The attribute ``kind`` of a nest (with data of ``size`` bytes, when given)."""
    if kind not in attrs or (size >= 0 and attrs[kind][2] != size):
        raise _Bad
    return attrs[kind]


def _tuple(
    buf: bytes | bytearray, at: tuple[int, int, int], hdrs: list[int], ports: bool
) -> dict[str, int]:
    """Offsets within one CTA_TUPLE_*: the destination address, the protocol number and
    (``ports``) the destination port, their headers and those around them added to ``hdrs``."""
    inner = _nest(buf, at[1], at[1] + at[2])
    ip, proto = _child(inner, CTA_TUPLE_IP), _child(inner, CTA_TUPLE_PROTO)
    ips, protos = _nest(buf, ip[1], ip[1] + ip[2]), _nest(buf, proto[1], proto[1] + proto[2])
    dst, num = _child(ips, CTA_IP_V4_DST, 4), _child(protos, CTA_PROTO_NUM, 1)
    hdrs.append(dst[0])
    out = {"dst": dst[1], "num": num[1]}
    if ports:
        hdrs.append(num[0])
        if CTA_PROTO_DST_PORT in protos:
            port = _child(protos, CTA_PROTO_DST_PORT, 2)
            out["dport"] = port[1]
            hdrs.append(port[0])
    return out


def parse_entry(buf: bytes | bytearray, off: int, size: int) -> _Entry:
    """One CT_NEW message of ``size`` bytes at ``off``, walked attribute by attribute;
    raises _Bad when it is not a well-formed IPv4 entry. Its shape checks the netlink
    header, the original tuple's nest (its length fixes every offset within), the
    protocol number, and the header of each attribute a field is read from: each check
    is one strided slice per run, so not every attribute header is checked."""
    if size < _NLMSGHDR.size + 4 or buf[off + _NLMSGHDR.size] != socket.AF_INET:
        raise _Bad
    top = _nest(buf, off + _NLMSGHDR.size + 4, off + size)
    hdrs = [off, off + 4, off + 8, off + _NLMSGHDR.size]  # length, type+flags, seq, nfgenmsg
    orig_at = _child(top, CTA_TUPLE_ORIG)
    hdrs.append(orig_at[0])
    orig = _tuple(buf, orig_at, hdrs, ports=True)
    proto = buf[orig["num"]]
    hdrs.append(orig["num"])  # the protocol number's word (the byte and its zero padding)
    state: int | None = None
    fields: dict[str, int] = {}
    if proto == socket.IPPROTO_TCP:
        if "dport" not in orig:
            raise _Bad
        reply = _tuple(buf, _child(top, CTA_TUPLE_REPLY), hdrs, ports=False)
        status = _child(top, CTA_STATUS, 4)
        info = _child(top, CTA_PROTOINFO)
        tcp_at = _child(_nest(buf, info[1], info[1] + info[2]), CTA_PROTOINFO_TCP)
        st = _child(_nest(buf, tcp_at[1], tcp_at[1] + tcp_at[2]), CTA_PROTOINFO_TCP_STATE, 1)
        hdrs += [status[0], st[0]]
        state = buf[st[1]]
        fields = {"state": st[1], "dst": orig["dst"], "dport": orig["dport"],
                  "nat": reply["dst"], "status": status[1]}  # fmt: skip
    shape = None
    if size % 4 == 0:
        checks = tuple((h - off, bytes(buf[h : h + 4])) for h in sorted(set(hdrs)))
        shape = _Shape(size, checks, proto == socket.IPPROTO_TCP,
                       **{k: v - off for k, v in fields.items()})  # fmt: skip

    def word(name: str) -> bytes:
        return bytes(buf[fields[name] : fields[name] + 4]) if fields else b""

    return _Entry(
        proto=proto,
        dst=word("dst"),
        dport=int.from_bytes(word("dport")[:2], "big"),
        nat=word("nat"),
        status=int.from_bytes(word("status"), "big"),
        state=state,
        shape=shape,
    )


def _run_length(words: array[int], shape: _Shape) -> int:
    """How many of the messages in ``words`` (back to back, each ``shape.size`` bytes)
    pass every check of ``shape``, counted from the first.

    Each check is one strided slice of the words compared with its expected value
    repeated k times; on a mismatch the first differing message is found from the lowest
    set bit of the XOR of the two (little-endian), and the run ends before it.
    """
    step = shape.size // 4
    k = len(words) // step
    for rel, want in shape.checks:
        if k == 0:
            break
        got = words[rel // 4 : k * step : step].tobytes()
        expected = want * k
        if got != expected:
            x = int.from_bytes(got, "little") ^ int.from_bytes(expected, "little")
            k = ((x & -x).bit_length() - 1) // 32
    return k


class Parser:
    """Counts the replies of one dump, fed a run of whole datagrams at a time."""

    def __init__(self, seq: int, nat_addresses: Collection[str] = ()) -> None:
        self.seq = seq
        self._entries = self._skipped = 0
        self.done = False
        self._nat = {socket.inet_aton(a) for a in nat_addresses}
        self._shapes: dict[int, _Shape] = {}
        self._states = [0] * len(TCP_STATE_NAMES)
        self._ports: Counter[tuple[bytes, int]] = Counter()

    def feed(self, buf: bytes | bytearray, size: int | None = None) -> bool:
        """Datagrams received back to back (the first ``size`` bytes of ``buf``); True
        once the dump's DONE was seen."""
        size = len(buf) if size is None else min(size, len(buf))
        view = memoryview(buf)
        off = 0
        while off + _NLMSGHDR.size <= size and not self.done:
            length, kind, _flags, seq, _pid = _NLMSGHDR.unpack_from(buf, off)
            if length < _NLMSGHDR.size or off + length > size:
                raise DumpError(
                    errno.EPROTO, f"ctnetlink: message of {length} bytes at {off} of {size}"
                )
            shape = self._shapes.get(length)
            if shape is not None and seq == self.seq and kind == CT_MSG and off % 4 == 0:
                # the candidates copied once into an array: its strided slices cost half
                # a memoryview's (measured), and each check and field is one slice
                words: array[int] = array("I")
                words.frombytes(view[off : off + (size - off) // length * length])
                n = _run_length(words, shape)
                if n:
                    self._take(buf, words, shape, off, n)
                    off += n * length
                    continue
            if seq == self.seq:
                self._one(buf, off, length, kind)
            off += (length + 3) & ~3
        return self.done

    def result(self) -> Table:
        return Table(
            entries=self._entries,
            by_state={n: c for n, c in zip(TCP_STATE_NAMES, self._states, strict=True) if c},
            nat_ports={f"{socket.inet_ntoa(d)}:{p}": n for (d, p), n in self._ports.items()},
            skipped=self._skipped,
        )

    def _one(self, buf: bytes | bytearray, off: int, length: int, kind: int) -> None:
        if kind == NLMSG_DONE:
            self.done = True
            return
        if kind == NLMSG_ERROR:
            err = struct.unpack_from("=i", buf, off + _NLMSGHDR.size)[0] if length >= 20 else 0
            if err:
                raise DumpError(-err, f"ctnetlink dump: errno {-err}")
            return
        if kind != CT_MSG:
            return
        try:
            e = parse_entry(buf, off, length)
        except _Bad:
            self._skipped += 1
            return
        if e.state is not None and e.state >= len(TCP_STATE_NAMES):
            self._skipped += 1
            return
        self._entries += 1
        if e.state is None:
            return
        self._states[e.state] += 1
        if e.state in HOLDING_STATES and self._is_nat(e.nat, e.status):
            self._ports[(e.dst, e.dport)] += 1
        if e.shape is not None and (length in self._shapes or len(self._shapes) < _MAX_SHAPES):
            self._shapes[length] = e.shape

    def _is_nat(self, nat: bytes, status: int) -> bool:
        # with the router's NAT addresses known, an entry is theirs when its reply goes to
        # one (so a port kept unchanged counts too); without, the kernel's IPS_SRC_NAT
        return nat in self._nat if self._nat else bool(status & IPS_SRC_NAT)

    def _take(self, buf: bytes | bytearray, words: array[int], s: _Shape, off: int, n: int) -> None:
        """Count ``n`` messages of shape ``s`` from ``off`` (``words``: the same bytes),
        read as strided slices."""
        end = off + n * s.size
        step = s.size // 4

        def column(rel: int) -> bytes:  # the word at ``rel`` of each message
            return words[rel // 4 : n * step : step].tobytes()

        if not s.tcp:
            self._entries += n
            return
        states = bytes(buf[off + s.state : end : s.size])
        counts = [states.count(i) for i in range(len(TCP_STATE_NAMES))]
        good = sum(counts)
        self._entries += good
        self._skipped += n - good  # a state byte past SYN_SENT2: not an entry we know
        for i, c in enumerate(counts):
            self._states[i] += c
        sel = states.translate(_HOLD)
        if not self._nat:  # IPS_SRC_NAT is in the status's last (big-endian) byte
            nat_bit = bytes(buf[off + s.status + 3 : end : s.size]).translate(_NAT_BIT)
            both = int.from_bytes(sel, "little") & int.from_bytes(nat_bit, "little")
            sel = both.to_bytes(n, "little")
        held = sel.count(1)
        if held == 0:
            return
        # (NAT address, destination, port) words; a column equal in every message is
        # left out of the key, so the usual cases group ints, or nothing at all
        cols = [column(s.nat) if self._nat else bytes(4 * n), column(s.dst), column(s.dport)]
        same = [c == c[:4] * n for c in cols]
        varying = [_ints(c) for c, u in zip(cols, same, strict=True) if not u]
        if not varying:
            groups: Counter[tuple[int, ...]] = Counter({(): held})
        elif len(varying) == 1:
            groups = Counter({(v,): c for v, c in Counter(compress(varying[0], sel)).items()})
        else:
            groups = Counter(compress(zip(*varying, strict=True), sel))
        first = [int.from_bytes(c[:4], "little") for c in cols]
        for key, count in groups.items():
            it = iter(key)
            nat, dst, port = (f if u else next(it) for f, u in zip(first, same, strict=True))
            if not self._nat or nat.to_bytes(4, "little") in self._nat:
                where = (
                    dst.to_bytes(4, "little"),
                    int.from_bytes(port.to_bytes(4, "little")[:2], "big"),
                )
                self._ports[where] += count


def _ints(words: bytes) -> list[int]:
    return memoryview(words).cast("I").tolist()


def dump_request(seq: int, family: int = socket.AF_INET) -> bytes:
    """IPCTNL_MSG_CT_GET with NLM_F_DUMP: every entry of ``family`` in the namespace."""
    flags = 0x1 | 0x300  # NLM_F_REQUEST | NLM_F_DUMP
    kind = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET
    return _NLMSGHDR.pack(_NLMSGHDR.size + 4, kind, flags, seq, 0) + struct.pack(
        "=BBH", family, 0, 0
    )
