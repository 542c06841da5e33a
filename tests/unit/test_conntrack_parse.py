"""ctnetlink dump replies parsed from literal bytes (engine/ctnetlink.py), and
/proc/net/stat/nf_conntrack summed by column name (engine/conntrack.py): states, NAT ports
per destination, the strided fast path against the walk, and hostile bytes refused or
skipped without a crash."""

from __future__ import annotations

import errno
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portstorm.engine.conntrack import parse_stat
from portstorm.engine.ctnetlink import DumpError, Parser, Table

# One message as this kernel (6.18) sent it: 198.19.0.1:44350 -> 198.18.0.2:9000, reply to
# the NAT address 198.18.0.1:44350, CLOSE_WAIT, status 0x19e (SRC_NAT among them); seq 1.
CAPTURED = bytes.fromhex(
    "d4000000 00012200 01000000 c2110000 02000000 34000180 14000180 08000100 c6130001"
    " 08000200 c6120002 1c000280 05000100 06000000 06000200 ad3e0000 06000300 23280000"
    " 34000280 14000180 08000100 c6120002 08000200 c6120001 1c000280 05000100 06000000"
    " 06000200 23280000 06000300 ad3e0000 08000300 0000019e 08000800 00000000 08000c00"
    " d960a31c 08000b00 00000001 08000700 0000003b 30000480 2c000180 05000100 05000000"
    " 05000200 0a000000 05000300 0a000000 06000400 27000000 06000500 23000000"
)
NAT = "198.18.0.1"
STATES = {"syn_sent": 1, "established": 3, "close_wait": 5, "time_wait": 7, "close": 8}
NESTED = 0x8000


def nla(kind: int, payload: bytes, nested: bool = False) -> bytes:
    head = struct.pack("=HH", 4 + len(payload), kind | (NESTED if nested else 0))
    return head + payload + bytes(-len(payload) % 4)


def tup(src: str, dst: str, sport: int, dport: int, proto: int = 6) -> bytes:
    ip = nla(1, socket.inet_aton(src)) + nla(2, socket.inet_aton(dst))
    ports = nla(2, struct.pack(">H", sport)) + nla(3, struct.pack(">H", dport))
    return nla(1, ip, True) + nla(2, nla(1, bytes([proto])) + ports, True)


def entry(
    seq: int = 1,
    state: int = 3,
    dport: int = 9000,
    dst: str = "198.18.0.2",
    nat: str = NAT,
    sport: int = 40000,
    status: int = 0x19E,
    proto: int = 6,
    extra: bytes = b"",
) -> bytes:
    """A CT_NEW message laid out as ctnetlink_fill_info() lays it out."""
    body = nla(1, tup("198.19.0.1", dst, sport, dport, proto), True)
    body += nla(2, tup(dst, nat, dport, sport, proto), True)
    body += nla(3, struct.pack(">I", status)) + nla(8, bytes(4)) + nla(12, b"\x01\x02\x03\x04")
    body += nla(11, struct.pack(">I", 1)) + nla(7, struct.pack(">I", 59)) + extra
    if proto == 6:
        tcp = nla(1, bytes([state])) + nla(2, b"\x0a") + nla(3, b"\x0a")
        tcp += nla(4, b"\x27\x00") + nla(5, b"\x23\x00")
        body += nla(4, nla(1, tcp, True), True)
    payload = struct.pack("=BBH", socket.AF_INET, 0, 0) + body
    return struct.pack("=IHHII", 16 + len(payload), 0x0100, 0x22, seq, 4546) + payload


def done(seq: int = 1) -> bytes:
    return struct.pack("=IHHII", 20, 3, 2, seq, 4546) + bytes(4)


def parse(*datagrams: bytes, nat: tuple[str, ...] = (NAT,), seq: int = 1) -> Table:
    p = Parser(seq, nat)
    for d in datagrams:
        p.feed(bytearray(d))
    assert p.done
    return p.result()


def test_the_captured_close_wait_entry_holds_one_nat_port_toward_its_server() -> None:
    t = parse(CAPTURED + done())
    assert (t.entries, t.by_state, t.nat_ports, t.skipped) == (
        1, {"close_wait": 1}, {"198.18.0.2:9000": 1}, 0,
    )  # fmt: skip
    # the builder lays messages out as the kernel did (all but the entry's CTA_ID)
    built = entry(state=5, sport=44350)
    assert built[:144] == CAPTURED[:144] and built[148:] == CAPTURED[148:]


def test_time_wait_and_close_entries_hold_no_nat_port() -> None:
    msgs = [entry(state=STATES[s], sport=40000 + i) for i, s in enumerate(STATES)]
    t = parse(b"".join(msgs) + done())
    assert t.by_state == dict.fromkeys(STATES, 1)
    assert t.nat_ports == {"198.18.0.2:9000": 3}  # syn_sent, established, close_wait


def test_a_thousand_entries_in_runs_agree_with_one_walk_per_message() -> None:
    """Many equal messages take the strided path; fed one message per datagram, each is
    walked or taken as a run of one: both give the counts the builder put in."""
    msgs = []
    for i in range(1000):
        state = (3, 3, 7, 5, 1, 8)[i % 6]
        msgs.append(entry(state=state, dport=9000 + i % 4, sport=1024 + i))
    want_states = {"established": 334, "time_wait": 167, "close_wait": 167,
                   "syn_sent": 166, "close": 166}  # fmt: skip
    whole = parse(b"".join(msgs) + done())
    single = parse(*msgs, done())
    assert whole == single
    assert whole.entries == 1000 and whole.by_state == want_states
    held = sum(n for s, n in want_states.items() if s not in ("time_wait", "close"))
    assert sum(whole.nat_ports.values()) == held
    assert set(whole.nat_ports) == {f"198.18.0.2:{9000 + i}" for i in range(4)}


def test_entries_toward_another_nat_address_are_not_this_routers_ports() -> None:
    msgs = [entry(nat=NAT if i % 2 else "198.18.0.9", sport=2000 + i) for i in range(40)]
    assert parse(b"".join(msgs) + done()).nat_ports == {"198.18.0.2:9000": 20}


def test_without_nat_addresses_the_kernels_src_nat_bit_decides() -> None:
    msgs = [entry(status=0x19E if i % 4 else 0x18E, sport=3000 + i) for i in range(40)]
    assert parse(b"".join(msgs) + done(), nat=()).nat_ports == {"198.18.0.2:9000": 30}


def test_udp_entries_count_as_entries_without_a_tcp_state() -> None:
    msgs = [entry(proto=17, sport=5000 + i) for i in range(5)] + [entry(state=3)]
    t = parse(b"".join(msgs) + done())
    assert (t.entries, t.by_state, t.nat_ports) == (6, {"established": 1}, {"198.18.0.2:9000": 1})


def test_a_different_layout_in_a_run_is_walked_by_itself() -> None:
    """An entry with one more attribute (a zone) and one whose state byte is unknown,
    among equal ones: the run stops at each, the odd ones are walked."""
    zoned = entry(sport=7000, extra=nla(18, struct.pack(">H", 5)))
    hostile = bytearray(entry(sport=7001))
    hostile[len(hostile) - 36] = 200  # the state byte: no such TCP state
    msgs = [entry(sport=6000 + i) for i in range(10)]
    stream = b"".join(msgs[:5]) + zoned + bytes(hostile) + b"".join(msgs[5:]) + done()
    t = parse(stream)
    assert (t.entries, t.skipped, t.by_state) == (11, 1, {"established": 11})


def test_messages_of_another_dump_are_ignored() -> None:
    t = parse(entry(seq=9) + entry(seq=1) + done(seq=1))
    assert t.entries == 1


def test_a_message_running_past_its_datagram_is_refused() -> None:
    msg = bytearray(entry())
    with pytest.raises(DumpError):
        Parser(1).feed(msg[:100])  # its header says 212 bytes
    msg[0:4] = struct.pack("=I", 8)  # shorter than a netlink header
    with pytest.raises(DumpError):
        Parser(1).feed(msg)


def test_the_kernels_error_in_a_dump_is_raised_with_its_errno() -> None:
    err = struct.pack("=IHHII", 36, 2, 0, 1, 0) + struct.pack("=i", -errno.EPERM) + bytes(16)
    with pytest.raises(DumpError) as e:
        Parser(1).feed(bytearray(err))
    assert e.value.errno == errno.EPERM


def test_attributes_that_do_not_nest_are_skipped() -> None:
    bad = bytearray(entry())
    bad[20:22] = struct.pack("=H", 500)  # the original tuple claims more than the message
    short = bytearray(entry())
    short[28:30] = struct.pack("=H", 2)  # an attribute shorter than its own header
    t = parse(bytes(bad) + bytes(short) + entry() + done())
    assert (t.entries, t.skipped) == (1, 2)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_corruption_of_a_dump_is_refused_or_skipped_never_a_crash(data: st.DataObject) -> None:
    stream = bytearray(b"".join(entry(state=(3, 7)[i % 2], sport=100 + i) for i in range(30)))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(stream) - 1))
        stream[pos] = data.draw(st.integers(0, 255))
    p = Parser(1, (NAT,))
    try:
        p.feed(stream)
    except DumpError:
        return
    t = p.result()
    assert 0 <= t.entries + t.skipped <= 30
    assert sum(t.by_state.values()) <= t.entries
    assert sum(t.nat_ports.values()) <= t.entries


STAT = """\
entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000064  00000001 00000000 00000000 00000000 00000000 00000000 00000000 00000000 0000000c 0000000c 00000000 00000000  00000000 00000000 00000000 00000000
00000064  00000002 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000006 00000007 00000001 00000000  00000000 00000000 00000000 00000000
"""


def test_stat_counters_are_summed_over_cpus_by_column_name() -> None:
    assert parse_stat(STAT) == {"insert_failed": 18, "drop": 19, "early_drop": 1,
                                "clash_resolve": 3}  # fmt: skip


def test_stat_columns_are_found_by_name_in_any_order_and_bad_rows_skipped() -> None:
    text = "drop entries insert_failed\n0000000a 00000064 00000001\nzz 1\n00000002 00000064 xx\n"
    assert parse_stat(text) == {"insert_failed": 1, "drop": 10, "early_drop": 0,
                                "clash_resolve": 0}  # fmt: skip
    assert parse_stat("") == dict.fromkeys(("insert_failed", "drop", "early_drop",
                                            "clash_resolve"), 0)  # fmt: skip
