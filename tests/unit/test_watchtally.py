"""engine/watchtally.py against its definition, watchdiag.tally_runs(), on crafted dumps.

Each dump is built reply by reply (nlmsghdr + inet_diag_msg + attributes, as the kernel
lays them out: TIME_WAIT 88 or 96 bytes, full sockets 124 with INET_DIAG_SOCKOPT at 116)
and tallied both ways, sample after sample; the numpy way must give the same Tally (the
Counter of slices, the inodes in order). Where the input is ordinary the Python tally is
made to fail inside watchtally, so an equal result cannot come from the fallback.
"""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pytest

from portstorm.engine import watchtally
from portstorm.engine.watchdiag import Tally, tally_runs
from portstorm.engine.watchtally import CookieTally

TW, SYN_SENT, SYN_RECV, FIN_WAIT2, ESTABLISHED, CLOSE_WAIT, CLOSE = 6, 2, 3, 5, 1, 8, 7
V4, V6 = socket.AF_INET, socket.AF_INET6


@dataclass(frozen=True)
class Reply:
    src: str
    dst: str
    sport: int
    cookie: int
    state: int = TW
    dport: int = 900
    expires: int = 30_000
    inode: int = 0
    no_port: bool = False
    full: bool = False  # a full socket's attributes (124 bytes), else TIME_WAIT's
    mark: bool = True  # TIME_WAIT with INET_DIAG_MARK (96 bytes, as root), else 88
    family: int | None = None  # idiag_family, when it is not the addresses' own
    pad: bytes = b""  # bytes after an IPv4 address (zeros from the kernel)


def _addr(a: str, pad: bytes) -> tuple[int, bytes]:
    if ":" in a:
        return V6, socket.inet_pton(V6, a)
    raw = socket.inet_aton(a) + pad
    return V4, raw + bytes(16 - len(raw))


def encode(r: Reply) -> bytes:
    fam, src = _addr(r.src, r.pad)
    _, dst = _addr(r.dst, b"")
    msg = struct.pack("=BBBB", r.family if r.family is not None else fam, r.state, 0, 0)
    msg += struct.pack(">HH", r.sport, r.dport) + src + dst
    msg += struct.pack("=IQ", 0, r.cookie) + struct.pack("=IIIII", r.expires, 0, 0, 0, r.inode)
    if r.full:  # SHUTDOWN, MARK, CGROUP_ID, SOCKOPT (byte 1 bit 0: bind_address_no_port)
        msg += struct.pack("=HHB3x", 5, 8, 0) + struct.pack("=HHI", 8, 15, 0)
        msg += struct.pack("=HHQ", 12, 21, 1) + struct.pack("=HHBB2x", 6, 22, 0x52, r.no_port)
    elif r.mark:
        msg += struct.pack("=HHI", 8, 15, 0)
    return struct.pack("=IHHII", 16 + len(msg), 18, 2, 7, 0) + msg


def runs_of(replies: Iterable[Reply]) -> dict[int, bytearray]:
    runs: dict[int, bytearray] = {}
    for r in replies:
        b = encode(r)
        runs.setdefault(len(b), bytearray()).extend(b)
    return runs


def copied(runs: dict[int, bytearray]) -> dict[int, bytearray]:
    return {m: bytearray(r) for m, r in runs.items()}  # tally_runs() writes into its runs


@pytest.fixture
def vectorised(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> object:
        raise AssertionError("the Python tally was used where the input is ordinary")

    monkeypatch.setattr(watchtally, "tally_runs", refuse)


def both(samples: list[list[Reply]], low: int = 1024) -> list[tuple[Tally, Tally]]:
    """Each sample tallied by CookieTally and by tally_runs(), each keeping its cookies."""
    fast, seen, out = CookieTally(), set[int](), []
    for replies in samples:
        runs = runs_of(replies)
        want, seen = tally_runs(copied(runs), seen, low)
        out.append((fast.tally(copied(runs), low), want))
    return out


def assert_same(pairs: list[tuple[Tally, Tally]]) -> None:
    for got, want in pairs:
        assert got.slices == want.slices
        assert got.inodes == want.inodes
        assert sum(want.slices.values()) > 0


EDGES = [0, 1, 999, 1000, 1001, 1999, 2000, 59_999, 60_000, 60_001, 61_000, 65_535, 65_536]
EDGES += [65_999, 70_000, 2**31, 2**32 - 1]


def test_time_wait_seconds_at_every_boundary_over_many_groups_of_both_families(
    vectorised: None,
) -> None:
    dests = [f"198.18.{i}.{j}" for i in range(3) for j in range(1, 6)] + ["2001:2::9", "::1"]
    first = [
        Reply("198.18.0.1" if ":" not in d else "2001:2::1", d, 1024 + i, 10_000 + i,
              expires=EDGES[i % len(EDGES)], dport=(900, 644, 80, 336, 65535)[i % 5])
        for i, d in enumerate(dests * 40)
    ]  # fmt: skip
    mini = [Reply("198.18.0.1", "198.18.9.9", 5000 + i, 20_000 + i, state=s, expires=5)
            for i, s in enumerate([SYN_RECV, FIN_WAIT2, CLOSE, TW] * 5)]  # fmt: skip
    # the second sample: half the cookies seen before, new ones beside them
    second = first[::2] + [
        Reply("198.18.0.1", "198.18.1.1", 7000 + i, 90_000 + i) for i in range(50)
    ]
    pairs = both([first + mini, second + mini, second])
    assert_same(pairs)
    news = [sum(n for s, n in got.slices.items() if s[35]) for got, _ in pairs]
    assert news == [len(first) + len(mini), 50, 0]


def test_full_sockets_no_port_flags_inodes_and_states_as_the_python_path_reads_them(
    vectorised: None,
) -> None:
    states = [ESTABLISHED, SYN_SENT, CLOSE_WAIT, 4, 9, 10, 11]
    full = [
        Reply("198.18.0.2", f"198.18.1.{i % 7}", 2000 + i, 500 + i, state=states[i % 7],
              full=True, inode=100_000 + i, no_port=i % 3 == 0)
        for i in range(300)
    ] + [Reply("2001:2::2", "2001:2::7", 3000 + i, 900 + i, state=ESTABLISHED, full=True,
               inode=7 + i, no_port=i % 2 == 1) for i in range(40)]  # fmt: skip
    tw = [Reply("198.18.0.2", "198.18.1.1", 4000 + i, 500 + i, mark=False) for i in range(30)]
    pairs = both([full + tw, tw + full])  # TIME_WAIT keeps a full socket's cookie
    assert_same(pairs)
    assert pairs[0][0].inodes[:3] == [100_000, 100_001, 100_002]
    no_port = sum(n for s, n in pairs[0][0].slices.items() if s[37])
    assert no_port == 100 + 20


@pytest.mark.parametrize("low", [1024, 1025, 32768, 1])
def test_bind_parity_follows_the_range_start_for_any_port_reserved_or_outside(
    vectorised: None, low: int
) -> None:
    # the kernel's filter keeps reserved and out-of-range ports out; the tally takes any port
    ports = [0, 1, 1023, 1024, 1025, 5000, 5001, 32767, 32768, 60999, 61000, 65534, 65535]
    replies = [Reply("198.18.0.3", "198.18.2.1", p, 40 + i) for i, p in enumerate(ports * 3)]
    replies += [Reply("198.18.0.3", "198.18.2.1", p, 400 + i, state=ESTABLISHED, full=True,
                      no_port=p % 2 == 0) for i, p in enumerate(ports)]  # fmt: skip
    assert_same(both([replies], low))


def test_hostile_bytes_padded_ipv4_odd_families_and_mapped_addresses_keep_their_slices(
    vectorised: None,
) -> None:
    base = [Reply("198.18.0.4", "198.18.3.1", 1024 + i, 60 + i) for i in range(40)]
    odd = [
        Reply("198.18.0.4", "198.18.3.1", 1100, 1, pad=b"\x01"),  # a pad byte set
        Reply("198.18.0.4", "198.18.3.1", 1101, 2, pad=bytes(11) + b"\xff"),
        Reply("198.18.0.4", "198.18.3.1", 1102, 3, family=0),
        Reply("198.18.0.4", "198.18.3.1", 1103, 4, family=255),
        Reply("::ffff:198.18.0.4", "::ffff:198.18.3.1", 1104, 5),
        Reply("198.18.0.4", "198.18.3.1", 1105, 6, state=255, expires=2**32 - 1),
    ]
    assert_same(both([base + odd, odd + base]))
    for one in odd:  # alone among IPv4 replies: the run's shape hangs on that one
        assert_same(both([[*base, one], [one, *base]]))


def random_replies(rnd: random.Random, n: int, cookies: list[int]) -> list[Reply]:
    v4 = [f"198.18.{rnd.randrange(4)}.{rnd.randrange(1, 250)}" for _ in range(30)]
    v6 = [f"2001:2::{rnd.randrange(1, 0xFFFF):x}" for _ in range(10)]
    out = []
    for _ in range(n):
        six = rnd.random() < 0.25
        pick = v6 if six else v4
        full = rnd.random() < 0.2
        out.append(
            Reply(
                rnd.choice(pick[:3]), rnd.choice(pick), rnd.randrange(65536), rnd.choice(cookies),
                state=rnd.choice([ESTABLISHED, SYN_SENT, CLOSE_WAIT]) if full
                else rnd.choice([TW] * 8 + [SYN_RECV, FIN_WAIT2]),
                dport=rnd.choice([80, 336, 443, 900, 65535]),
                expires=rnd.choice([rnd.randrange(61_000), rnd.choice(EDGES)]),
                inode=rnd.randrange(2**32), no_port=rnd.random() < 0.3, full=full,
                mark=rnd.random() < 0.7,
            )
        )  # fmt: skip
    return out


def test_a_randomized_dump_of_thousands_of_replies_over_four_samples(vectorised: None) -> None:
    rnd = random.Random(20)
    samples = []
    for i in range(4):  # cookies: a band moving up, a few long-lived ones far below it
        band = list(range(10**9 + 1500 * i, 10**9 + 1500 * i + 3000))
        samples.append(random_replies(rnd, 3000, [*band, 5, 6, 7, 2**64 - 1]))
    assert_same(both(samples, low=rnd.choice([1024, 32769])))


def test_twenty_thousand_replies_take_the_hashed_codes_and_match(vectorised: None) -> None:
    rnd = random.Random(7)
    replies = random_replies(rnd, 20_000, list(range(1, 40_000)))
    assert_same(both([replies, replies[::3]]))


def test_codes_are_equal_exactly_where_values_are_even_when_the_hash_collides() -> None:
    h = watchtally._HASH
    x0 = np.uint64(12345)
    top = (12345 * int(h)) % 2**64 >> 48
    cand = np.arange(1, 3_000_000, dtype=np.uint64)
    twin = cand[((cand * h) >> np.uint64(48)) == top]
    twin = twin[twin != x0][0]  # a value sharing x0's bucket
    rng = np.random.default_rng(3)
    for values in (
        rng.choice(np.array([x0, twin, 7, 8], np.uint64), 20_000),  # a collision: sorted
        rng.choice(np.arange(300, dtype=np.uint64) * np.uint64(2**40), 20_000),  # > 256
        rng.choice(np.arange(50, dtype=np.uint64) << np.uint64(32), 20_000),  # hashed
        rng.choice(np.arange(5, dtype=np.uint64), 100),  # short: sorted
    ):
        code, n = watchtally._codes(values)
        assert n == len(np.unique(values)) and code.max() == n - 1
        pairs = set(zip(values.tolist(), code.tolist(), strict=True))
        assert len(pairs) == n  # one code per value and one value per code


def test_cookies_seen_are_known_across_the_window_and_below_it() -> None:
    rng = np.random.default_rng(5)
    band, old = 10**12, [3, 9, 2**60]
    for seen, now in (
        (range(1000, 9000), range(500, 9500)),  # one narrow band: the table alone
        ([*range(band, band + 5000), *old], [*range(band - 100, band + 6000), 4, *old, 2**64 - 1]),
        (rng.integers(0, 2**63, 5000).tolist(), rng.integers(0, 2**63, 5000).tolist()),
    ):  # the second and third: long-lived ones below the window, or all spread out
        seen_u = np.array(list(seen), np.uint64)
        now_u = np.r_[np.array(list(now), np.uint64), seen_u[::7]]
        got = watchtally._known(now_u, seen_u)
        was = set(seen_u.tolist())
        assert got.tolist() == [c in was for c in now_u.tolist()]
        assert got.any() and not got.all()


def runs_and_want(
    runs: dict[int, bytearray],
) -> tuple[tuple[Tally, set[int]] | None, type[Exception] | None]:
    try:
        return tally_runs(copied(runs), {1, 2}, 1024), None
    except Exception as e:  # whatever the Python path raises, the fallback must too
        return None, type(e)


@pytest.mark.parametrize(
    "shape",
    ["truncated", "unaligned length", "short", "empty run", "sockopt past the end", "no runs"],
)
def test_replies_not_of_the_ordinary_shape_go_the_python_way_with_its_result(
    monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    good = encode(Reply("198.18.0.5", "198.18.4.1", 1030, 1))
    full = encode(Reply("198.18.0.5", "198.18.4.1", 1031, 2, full=True, state=ESTABLISHED))
    if shape == "truncated":
        runs = {len(good): bytearray(good * 3)[:-10]}
    elif shape == "unaligned length":
        m = len(good) + 2
        runs = {m: bytearray(struct.pack("=I", m) + (good + b"\0\0")[4:]) * 2}
    elif shape == "short":
        runs = {60: bytearray(good[:60])}
    elif shape == "empty run":
        runs = {len(good): bytearray(good), 124: bytearray()}
    elif shape == "sockopt past the end":  # SOCKOPT's header in the last 4 bytes of a reply
        b = bytearray(full[:120])
        struct.pack_into("=I", b, 0, 120)
        struct.pack_into("=HH", b, 116, 6, 22)
        runs = {120: b * 2}
    else:
        runs = {}
    calls = []

    def spy(*a: object) -> object:
        calls.append(a)
        return tally_runs(*a)  # type: ignore[arg-type]

    monkeypatch.setattr(watchtally, "tally_runs", spy)
    fast = CookieTally()
    fast._seen = np.array([1, 2], np.uint64)
    want, error = runs_and_want(runs)
    if want is not None:
        assert fast.tally(copied(runs), 1024) == want[0]
        assert sorted(fast._seen.tolist()) == sorted(want[1])
    else:
        assert error is not None
        with pytest.raises(error):
            fast.tally(copied(runs), 1024)
    assert len(calls) == 1
