"""HTTP/1.1 message framing for ``--http``: the GET the client sends, and a reader that says
when the response it gets back is complete (RFC 9112).

Containing bytes in, verdicts out; no socket. The response is hostile input: a server (or
whatever answers on the port) may send anything, so every limit is explicit (the head is at
most MAX_HEAD_BYTES, a chunk-size line at most MAX_LINE_BYTES, a body at most
MAX_BODY_BYTES) and every way it can be wrong is one ``HttpProblem`` line, which the driver
counts as the outcome ``http_error`` and never lets past the attempt.

Where the body ends (RFC 9112 section 6.3, in its order):
1. a response to GET with status 1xx, 204 or 304 has no body (1xx are interim responses:
   skipped, the final one follows);
2. ``Transfer-Encoding`` whose final coding is ``chunked``: the chunked framing (section 7.1)
   is parsed to its last chunk and trailer section, so a kept-alive connection (--hold)
   needs no EOF; any other transfer coding: the body runs to EOF;
3. ``Content-Length``: that many bytes (several differing values, or one that is not a
   number, are an error: section 6.3 rule 5);
4. otherwise: to EOF (the server closes: ``Connection: close``).
"""

from __future__ import annotations

import re

MAX_HEAD_BYTES = 16_384  # status line and header fields of one response
MAX_LINE_BYTES = 1_024  # a chunk-size line (with extensions) or a trailer line
MAX_BODY_BYTES = 1 << 40  # a Content-Length or chunk size beyond this is refused
MAX_INTERIM = 8  # 1xx responses before the final one

# RFC 9112 section 4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: [\t\x20-\x7e\x80-\xff]*)?")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 section 5.6.2
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


class HttpProblem(Exception):
    """The response broke HTTP/1.1's framing; the message says how, in one line."""


def request(path: str, host: str, keep_alive: bool) -> bytes:
    """The GET for ``--http PATH`` (RFC 9112 section 3: origin-form request-target, the
    Host header field is required in HTTP/1.1). ``path`` and ``host`` were checked by
    core/exchange.py (printable ASCII, no spaces)."""
    connection = "keep-alive" if keep_alive else "close"
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: portstorm\r\n"
        f"Accept: */*\r\nConnection: {connection}\r\n\r\n"
    ).encode("ascii")


def answer(body_size: int, keep_alive: bool) -> bytes:
    """The built-in sink's response head: ``200 OK`` with ``body_size`` bytes to follow."""
    connection = "keep-alive" if keep_alive else "close"
    return (
        f"HTTP/1.1 200 OK\r\nContent-Length: {body_size}\r\nConnection: {connection}\r\n\r\n"
    ).encode("ascii")


class ResponseReader:
    """Feed it what arrives; ``feed`` is True once the response is complete, ``at_eof`` says
    whether an EOF now completes it (a body read to EOF) or cuts it short. ``status`` is the
    final status code once the head has been read. Raises HttpProblem."""

    __slots__ = ("_buf", "_chunk_left", "_interim", "_left", "_state", "status")

    def __init__(self) -> None:
        self.status: int | None = None
        self._buf = bytearray()
        self._state = "head"  # head | length | eof | size | data | data_end | trailer | done
        self._left = 0  # bytes of body still due (length)
        self._chunk_left = 0  # bytes of the current chunk still due (data)
        self._interim = 0

    @property
    def complete(self) -> bool:
        return self._state == "done"

    def feed(self, data: bytes) -> bool:
        if self._state == "done":
            return True
        if self._state == "eof":
            return False
        if self._state == "length":  # the common case: count, keep nothing
            if len(data) >= self._left:
                self._left = 0
                self._state = "done"
                return True
            self._left -= len(data)
            return False
        self._buf += data
        while self._step():
            pass
        return self._state == "done"

    def at_eof(self) -> bool:
        """True when EOF ends the response (its body runs to EOF); False: cut short."""
        if self._state == "eof":
            self._state = "done"
        return self._state == "done"

    # -- the states ----------------------------------------------------------------------

    def _step(self) -> bool:
        """One step of the framing over the buffer; True when it moved on and may again."""
        state = self._state
        if state == "head":
            return self._head()
        if state == "length":  # the rest of the buffer after the head
            n = min(len(self._buf), self._left)
            del self._buf[:n]
            self._left -= n
            if not self._left:
                self._state = "done"
            return False
        if state == "eof":
            self._buf.clear()
            return False
        if state == "size":
            line = self._line()
            if line is None:
                return False
            size = line.split(b";", 1)[0].strip(b" \t")  # chunk extensions are ignored
            if not _HEX.fullmatch(size):
                raise HttpProblem(f"bad chunk size line {_shown(line)}")
            self._chunk_left = int(size, 16)
            if self._chunk_left > MAX_BODY_BYTES:
                raise HttpProblem(f"chunk of {self._chunk_left} bytes: too large")
            self._state = "data" if self._chunk_left else "trailer"
            return True
        if state == "data":
            n = min(len(self._buf), self._chunk_left)
            del self._buf[:n]
            self._chunk_left -= n
            if self._chunk_left:
                return False
            self._state = "data_end"
            return True
        if state == "data_end":
            if len(self._buf) < 2:
                return False
            if self._buf[:2] != b"\r\n":
                raise HttpProblem("chunk data not followed by CRLF")
            del self._buf[:2]
            self._state = "size"
            return True
        if state == "trailer":
            line = self._line()
            if line is None:
                return False
            if not line:  # the empty line ends the trailer section (RFC 9112 7.1.2)
                self._state = "done"
                return False
            return True
        return False  # done

    def _line(self) -> bytes | None:
        """The next CRLF-ended line (without it), or None until it has arrived."""
        end = self._buf.find(b"\r\n")
        if end < 0:
            if len(self._buf) > MAX_LINE_BYTES:
                raise HttpProblem(f"a chunk line longer than {MAX_LINE_BYTES} bytes")
            return None
        if end > MAX_LINE_BYTES:
            raise HttpProblem(f"a chunk line longer than {MAX_LINE_BYTES} bytes")
        line = bytes(self._buf[:end])
        del self._buf[: end + 2]
        return line

    def _head(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD_BYTES:
                raise HttpProblem(f"response head longer than {MAX_HEAD_BYTES} bytes")
            return False
        if end > MAX_HEAD_BYTES:
            raise HttpProblem(f"response head longer than {MAX_HEAD_BYTES} bytes")
        head = bytes(self._buf[:end])
        del self._buf[: end + 4]
        status, fields = parse_head(head)
        if 100 <= status < 200:  # interim (100 Continue, 103 Early Hints): the final follows
            self._interim += 1
            if self._interim > MAX_INTERIM or status == 101:
                raise HttpProblem(f"status {status} where a final response was due")
            return True
        self.status = status
        self._state, self._left = body_framing(status, fields)
        if self._state == "length" and not self._left:
            self._state = "done"
        return True


def parse_head(head: bytes) -> tuple[int, dict[bytes, list[bytes]]]:
    """A response head (without its final CRLF CRLF) -> (status, lower-cased field name ->
    values). Obsolete line folding and fields without a colon are errors (RFC 9112 5.2)."""
    lines = head.split(b"\r\n")
    m = _STATUS_LINE.fullmatch(lines[0])
    if m is None:
        raise HttpProblem(f"bad status line {_shown(lines[0])}")
    if m.group(1) != b"1":
        raise HttpProblem(f"HTTP/{m.group(1).decode()}.{m.group(2).decode()} is not HTTP/1.x")
    fields: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise HttpProblem(f"bad header field {_shown(line)}")
        fields.setdefault(name.lower(), []).append(value.strip(b" \t"))
    return int(m.group(3)), fields


def body_framing(status: int, fields: dict[bytes, list[bytes]]) -> tuple[str, int]:
    """(the reader's body state, bytes due) for a final response to GET (the module
    header's rules, RFC 9112 section 6.3)."""
    if status in (204, 304):
        return "length", 0
    codings = b",".join(fields.get(b"transfer-encoding", []))
    if codings.strip():
        last = codings.split(b",")[-1].strip(b" \t").lower()
        return ("size", 0) if last == b"chunked" else ("eof", 0)
    lengths = {v.strip() for value in fields.get(b"content-length", []) for v in value.split(b",")}
    if not lengths:
        return "eof", 0
    if len(lengths) > 1:
        raise HttpProblem(f"differing Content-Length values {_shown(b', '.join(sorted(lengths)))}")
    (text,) = lengths
    if not text.isdigit() or len(text) > 15 or int(text) > MAX_BODY_BYTES:
        raise HttpProblem(f"bad Content-Length {_shown(text)}")
    return "length", int(text)


def _shown(raw: bytes, limit: int = 60) -> str:
    """Hostile bytes for a one-line message: printable ASCII, the rest escaped, cut short."""
    text = raw[:limit].decode("ascii", "backslashreplace")
    text = "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in text)
    return repr(text + ("..." if len(raw) > limit else ""))
