"""The dump's replies tallied with numpy: the same ``Tally`` as watchdiag.tally_runs().

Containing ``CookieTally`` (the previous sample's cookies and the vectorised tally of one
dump's runs); no socket, no /proc (watchdiag.py takes the dump and holds the reference
tally in plain Python, which stays the fallback and the definition: a reply's 39-byte
tally slice, what counts as new, the TIME_WAIT second and bind parity are its).

Why numpy: with 64,000 TIME_WAIT sockets the kernel's dump takes 35-41 ms and the Python
tally another ~20-33 ms, where a sample should take under 50 ms (issue 20). Here each run
of equal-size replies is one array of records (np.frombuffer with a structured dtype whose
itemsize is the reply's length), its fields copied out a few hundred replies at a time
(_columns()). The 34-byte key (dport, source, destination) is turned into small codes: the
32 address bytes as four 8-byte columns (one, source << 32 | destination, when every reply
is IPv4's zero-padded kind), the port and the family apart; each by _codes() (a
multiplicative hash checked to have no collision, else np.unique) or a table of the values
present; combined with the five tally bytes into one code per distinct slice, counted by
np.bincount. Exact for any bytes: every bit of a slice goes into its code, so two replies
share a code if and only if their slices are equal. Measured on a saved dump of 64,500
replies, best of 30: 7.5-8.5 ms, where tally_runs() takes 18-20 ms.

The cookies' "new": not among the previous sample's (the same set semantics as
tally_runs()), looked up in a table over the window of the newest cookies and, for the
older ones below it (long-lived connections), by searchsorted in the sorted older part of
the previous cookies. sock_gen_cookie() hands cookies out from one counter (in per-CPU
batches) when a socket's is first asked for, here by the dump: one sample's cookies are
mostly a band about as wide as their number (measured: 64,500 sockets, a span of 64,499).

Anything not of the ordinary shape goes to tally_runs() whole (the same result or the same
error): no run, a run not a whole number of replies of a length >= the minimum and a
multiple of 4, an empty run, options found in the first reply at a place the others'
lengths cannot hold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from portstorm.engine import watchdiag
from portstorm.engine.sockdiag import TCP_TIME_WAIT
from portstorm.engine.watchdiag import (
    COOKIE_AT,
    EXPIRES_AT,
    FAMILY_AT,
    INODE_AT,
    KEY_AT,
    MIN_REPLY,
    TALLY_LEN,
    TW_SECOND,
    Tally,
    tally_runs,
)

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
Column = npt.NDArray[Any]
_HASH = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: the top bits of x * 2^64 / phi
_HASH_BITS = 16
_HASH_MOST = 256  # more distinct values than this: collisions likely, sort instead
_HASH_FROM = 16384  # fewer values than this: sorting them is cheaper than the table
_WINDOW_MIN = 1 << 16  # the cookie table's least span (a bool each)
_CHUNK_BYTES = 128 << 10  # replies copied out per step: in a core's L2 (512 KiB here)
_MOST_REPLIES = 1 << 26  # codes are combined in 64 bits: far above any real dump


def _fields(m: int) -> np.dtype[np.void]:
    """One reply of length ``m`` as a record (native order, as the kernel writes them,
    but for ``head``): bytes 16..24 (family, state, timer, retrans, sport, dport: FAMILY_AT
    to KEY_AT + 2) as one little-endian word (one copy, not four: see _columns()); the key's
    32 address bytes as four 8-byte columns."""
    fields = {
        "head": ("<u8", FAMILY_AT),
        "a": ("<u8", KEY_AT + 2),
        "b": ("<u8", KEY_AT + 10),
        "c": ("<u8", KEY_AT + 18),
        "d": ("<u8", KEY_AT + 26),
        "cookie": ("=u8", COOKIE_AT),
        "expires": ("=u4", EXPIRES_AT),
        "inode": ("=u4", INODE_AT),
    }
    return np.dtype(
        {
            "names": list(fields),
            "formats": [f for f, _ in fields.values()],
            "offsets": [o for _, o in fields.values()],
            "itemsize": m,
        }
    )


def _ordinary(runs: dict[int, bytearray]) -> bool:
    return bool(runs) and all(
        m >= MIN_REPLY and m % 4 == 0 and 0 < len(r) < _MOST_REPLIES * m and len(r) % m == 0
        for m, r in runs.items()
    )


class CookieTally:
    """Tallies one namespace's dumps, keeping each sample's cookies for the next one."""

    def __init__(self) -> None:
        self._seen: U64 = np.zeros(0, np.uint64)

    def tally(self, runs: dict[int, bytearray], low: int) -> Tally:
        """The runs of one dump (watchdiag.split_datagram()) tallied against the previous
        sample's cookies; ``low``: the port range's start (bind parity)."""
        t = self._vectorised(runs, low) if _ordinary(runs) else None
        if t is None:
            t, now = tally_runs(runs, set(self._seen.tolist()), low)
            self._seen = np.fromiter(now, np.uint64, len(now))
        return t

    def _vectorised(self, runs: dict[int, bytearray], low: int) -> Tally | None:
        rows = [np.frombuffer(r, _fields(m)) for m, r in runs.items()]
        flags: list[bytes | None] = []
        for (m, r), rec in zip(runs.items(), rows, strict=True):
            f = watchdiag.no_port_flags(memoryview(r), m, len(rec))
            if f is not None and len(f) != len(rec):
                return None  # tally_runs() fails on it as it does
            flags.append(f)
        columns = [_columns(rec, full=f is not None) for rec, f in zip(rows, flags, strict=True)]
        cookies = np.concatenate([c["cookie"] for c in columns])
        known = _known(cookies, self._seen)
        self._seen = cookies
        t = Tally()
        at = 0
        for (m, r), c, f in zip(runs.items(), columns, flags, strict=True):
            k = len(c["head"])
            _tally(r, m, c, ~known[at : at + k], f, low, t)
            at += k
        return t


def _columns(rec: npt.NDArray[np.void], full: bool) -> dict[str, Column]:
    """The fields of every reply, each copied out into an array of its own (ufuncs on a
    record's unaligned strided field cost several times the copy), a few hundred replies
    at a time, so that a reply's one or two cache lines come from memory once for all its
    fields (field by field over the whole run, once per field: 64,000 replies are 6 MB)."""
    names = [n for n in rec.dtype.names or () if full or n != "inode"]
    k = len(rec)
    out = {n: np.empty(k, rec.dtype[n]) for n in names}
    step = max(64, _CHUNK_BYTES // rec.dtype.itemsize)
    for i in range(0, k, step):
        part = rec[i : i + step]
        for n in names:
            out[n][i : i + step] = part[n]
    return out


def _tally(
    run: bytearray,
    m: int,
    rec: dict[str, Column],
    new: npt.NDArray[np.bool_],
    no_port: bytes | None,
    low: int,
    t: Tally,
) -> None:
    """One run's slices counted into ``t``: watchdiag._tally()'s five bytes, per reply."""
    head = rec["head"]
    k = len(head)
    family, state = (head & 0xFF).astype(np.uint8), (head >> 8 & 0xFF).astype(np.uint8)
    if no_port is None:  # no options: TIME_WAIT (and mini-sockets), as _tally() decides
        seconds = TW_SECOND + np.minimum(rec["expires"] // 1000, 60)
        what = np.where(state == TCP_TIME_WAIT, seconds, state).astype(np.uint8)
        flag = np.zeros(k, np.uint8)
    else:
        what = state
        flag = np.frombuffer(no_port, np.uint8)
        t.inodes += rec["inode"].tolist()
    parity = ((head >> 40 & 1) ^ (low & 1)).astype(np.uint8)  # sport's low byte: byte 21
    code, n = _key_codes(rec)
    for column, size in (((head >> 48).astype(np.uint16), 1 << 16), (family, 256)):
        code, n = _join(code, n, *_small_codes(column, size))
    # what (a byte) and the three flags as 11 bits of their own
    code = code << 11 | what.astype(np.int64) << 3 | new << 2 | parity << 1 | flag
    n <<= 11
    if n > 4 * k + 4096:  # a sparse product: renumber before counting
        code, n = _renumber(code)
    counts = np.bincount(code, minlength=n)
    first = np.empty(n, np.intp)
    first[code] = np.arange(k)  # any reply of a code: all of them have its slice
    used = np.flatnonzero(counts)
    reps = first[used]
    out = np.empty((len(used), TALLY_LEN), np.uint8)
    out[:, :34] = np.frombuffer(run, np.uint8).reshape(-1, m)[reps, KEY_AT : KEY_AT + 34]
    out[:, 34] = what[reps]
    out[:, 35] = new[reps]
    out[:, 36] = parity[reps]
    out[:, 37] = flag[reps]
    out[:, 38] = family[reps]
    b = out.tobytes()
    keys = [b[i : i + TALLY_LEN] for i in range(0, len(b), TALLY_LEN)]
    t.slices.update(dict(zip(keys, counts[used].tolist(), strict=True)))


def _key_codes(rec: dict[str, Column]) -> tuple[I64, int]:
    """Codes of the (source, destination) 32 bytes: an IPv4 reply's are its two 4-byte
    addresses and zeros (inet_diag_msg_common_fill()), one 64-bit column when every
    reply's are; else four columns combined."""
    a, b, c, d = (rec[f] for f in "abcd")
    if not (b.any() or d.any() or (a >> np.uint64(32)).any() or (c >> np.uint64(32)).any()):
        return _codes(a << np.uint64(32) | c)
    code, n = _codes(a)
    for column in (b, c, d):
        code, n = _join(code, n, *_codes(column))
    return code, n


def _join(code: I64, n: int, more: I64, j: int) -> tuple[I64, int]:
    """The codes of pairs (code: n of them, more: j), renumbered first where their product
    would pass 2^40 (the caller shifts 11 bits more: all stays inside 63 bits)."""
    if n * j > 1 << 40:
        code, n = _renumber(code)  # n <= the replies: below 2^26
    return code * j + more, n * j


def _renumber(x: npt.NDArray[np.integer[Any]]) -> tuple[I64, int]:
    values, inverse = np.unique(x, return_inverse=True)
    return inverse.astype(np.int64), len(values)


def _small_codes(x: npt.NDArray[np.uint8] | npt.NDArray[np.uint16], size: int) -> tuple[I64, int]:
    """``x`` (values below ``size``) renumbered 0..n-1 by a table of the values present
    (by sorting when ``x`` is short beside the table)."""
    if 4 * len(x) < size:
        return _renumber(x)
    number = np.cumsum(np.bincount(x, minlength=size) > 0) - 1
    return number[x], int(number[-1]) + 1


def _codes(x: U64) -> tuple[I64, int]:
    """``x`` renumbered 0..n-1, equal values to equal codes: by a 16-bit hash when no two
    distinct values share a bucket (checked: each bucket keeps one value, every reply's
    must be it), else by sorting (np.unique; also for short ones: the table costs more)."""
    if len(x) < _HASH_FROM:
        return _renumber(x)
    h = ((x * _HASH) >> np.uint64(64 - _HASH_BITS)).view(np.int64)  # below 2^16: the same
    bucket = np.zeros(1 << _HASH_BITS, np.uint64)
    bucket[h] = x
    if np.array_equal(bucket[h], x):
        number = np.cumsum(np.bincount(h, minlength=1 << _HASH_BITS) > 0) - 1
        if number[-1] < _HASH_MOST:
            return number[h], int(number[-1]) + 1
    return _renumber(x)


def _known(cookies: U64, seen: U64) -> npt.NDArray[np.bool_]:
    """Which cookies are among ``seen``: a table over the newest cookies' window, and a
    sorted search for the ones below it."""
    if not len(cookies) or not len(seen):
        return np.zeros(len(cookies), np.bool_)
    hi, lo = int(cookies.max()), int(cookies.min())
    base = max(lo, hi - max(_WINDOW_MIN, 4 * len(cookies)) + 1)
    table = np.zeros(hi - base + 1, np.bool_)
    inside = seen[(seen >= base) & (seen <= hi)]
    table[inside - np.uint64(base)] = True
    if lo == base:
        known: npt.NDArray[np.bool_] = table[cookies - np.uint64(base)]
        return known
    known = np.zeros(len(cookies), np.bool_)
    window = cookies >= base
    known[window] = table[cookies[window] - np.uint64(base)]
    older = np.sort(seen[seen < base])
    if len(older):
        asked = cookies[~window]
        at = np.minimum(np.searchsorted(older, asked), len(older) - 1)
        known[~window] = older[at] == asked
    return known
