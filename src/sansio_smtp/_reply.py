# SMTP replies: the value type, its wire format, and an incremental parser.
#
# RFC 5321 §4.2 (reply syntax: "250-text" continuation lines, "250 text" last
# line), RFC 2034 §4 / RFC 3463 (enhanced status codes "x.y.z" after the code on
# every line, only on 2xx/4xx/5xx replies once ENHANCEDSTATUSCODES is in use).
#
# Reply text never carries CR or LF (that would let one reply forge another), and
# no other control byte either: the engine builds replies, and a reply that
# quotes peer input must have escaped it first (see escape_text()).
"""The Reply value type, its wire format and an incremental reply parser."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Reply", "ReplyParser", "escape_text", "parse_reply"]

# RFC 3463 §2: status-code = class "." subject "." detail, class 2/4/5,
# subject and detail 1*3digit without leading zeros.
_STATUS_RE = re.compile(r"[245]\.(?:0|[1-9][0-9]{0,2})\.(?:0|[1-9][0-9]{0,2})")
# Any C0 control or DEL: forbidden in reply text.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def escape_text(text: str, *, limit: int = 100) -> str:
    """Make peer-supplied text safe to quote in a reply or log line.

    Control characters and backslashes become ``\\xNN`` escapes, and the result is
    cut to ``limit`` characters (with ``...`` appended when cut).

    Args:
        text: Untrusted text, e.g. a verb the peer sent.
        limit: Maximum number of characters of ``text`` kept.

    Returns:
        Printable text with no CR, LF or other control character.
    """
    cut = text[:limit]
    out = _ESCAPE_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", cut)
    return out + "..." if len(text) > limit else out


_ESCAPE_RE = re.compile(r"[\x00-\x1f\x7f\\]")


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """One SMTP reply (RFC 5321 §4.2), possibly multi-line.

    Attributes:
        code: The three-digit reply code, 200..599.
        status: The enhanced status code ``"x.y.z"`` (RFC 3463) or None. Its class
            digit must match the code's first digit.
        lines: The text lines; at least one. No line may contain a control character.

    Raises:
        ValueError: When built with a code, status or line that breaks these rules.
    """

    code: int
    status: str | None = None
    lines: tuple[str, ...] = field(default=("",))

    def __post_init__(self) -> None:
        if type(self.code) is not int or not 200 <= self.code <= 599:
            raise ValueError(f"reply code must be an int in 200..599, got {self.code!r}")
        if self.status is not None:
            if not _STATUS_RE.fullmatch(self.status):
                raise ValueError(f"enhanced status must look like 2.0.0, got {self.status!r}")
            if self.status[0] != str(self.code)[0]:
                raise ValueError(f"status {self.status} does not match code {self.code}")
        if isinstance(self.lines, str) or not isinstance(self.lines, tuple) or not self.lines:
            raise ValueError("lines must be a non-empty tuple of str")
        for line in self.lines:
            if not isinstance(line, str) or _CONTROL_RE.search(line):
                raise ValueError(f"reply line must be text without control bytes: {line!r}")

    @property
    def text(self) -> str:
        """All text lines joined with newlines (for logs and messages)."""
        return "\n".join(self.lines)

    def to_bytes(self, *, enhanced: bool) -> bytes:
        """Render the reply for the wire.

        Args:
            enhanced: Prefix each line of a 2xx/4xx/5xx reply with the enhanced status
                code (RFC 2034 §4). A missing status becomes ``c.0.0`` for code class c.
                3xx replies (354, 334) never carry one.

        Returns:
            The reply lines, each ending in CRLF, UTF-8 encoded.
        """
        prefix = ""
        if enhanced and self.code // 100 != 3:
            prefix = self.status or f"{self.code // 100}.0.0"
        out: list[str] = []
        last = len(self.lines) - 1
        for i, line in enumerate(self.lines):
            sep = " " if i == last else "-"
            text = f"{prefix} {line}" if prefix and line else (prefix or line)
            line_out = f"{self.code}{sep}{text}"
            # RFC 4954 §4: a 334 challenge is "334" SP [base64], even when empty.
            out.append((line_out if self.code == 334 else line_out.rstrip(" ")) + "\r\n")
        return "".join(out).encode("utf-8")


_REPLY_LINE_RE = re.compile(rb"([2-5][0-9][0-9])([ -])?(.*)", re.DOTALL)
_REPLY_STATUS_RE = re.compile(r"([245]\.[0-9]{1,3}\.[0-9]{1,3})(?: (.*))?", re.DOTALL)


def _split_status(code: int, text: str) -> tuple[str | None, str]:
    match = _REPLY_STATUS_RE.fullmatch(text)
    if match and match.group(1)[0] == str(code)[0] and _STATUS_RE.fullmatch(match.group(1)):
        return match.group(1), match.group(2) or ""
    return None, text


def parse_reply(data: bytes) -> Reply:
    """Parse one complete reply (all its lines, each ending in CRLF).

    Args:
        data: The reply bytes, e.g. ``b"250-a\\r\\n250 b\\r\\n"``.

    Returns:
        The Reply, with the enhanced status taken from the last line when present.

    Raises:
        RemoteProtocolError: When the bytes are not one well-formed reply.
    """
    parser = ReplyParser()
    parser.receive_data(data)
    reply = parser.next_reply()
    if reply is None or parser.pending:
        from ._errors import RemoteProtocolError

        raise RemoteProtocolError("not exactly one complete reply")
    return reply


@dataclass(slots=True)
class ReplyParser:
    """Incremental reply parser for the client role (RFC 5321 §4.2).

    Feed bytes with :meth:`receive_data`; :meth:`next_reply` returns a Reply once
    all its lines are in, else None. A malformed line raises RemoteProtocolError
    and the parser must then be discarded.

    Attributes:
        max_line: Longest reply line accepted, CRLF included (RFC 5321 §4.5.3.1.5: 512).
        max_lines: Most lines accepted in one multi-line reply.
    """

    max_line: int = 512
    max_lines: int = 100
    _buf: bytearray = field(default_factory=bytearray)
    _lines: list[tuple[int, str]] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        """True when bytes of an incomplete reply are held."""
        return bool(self._buf or self._lines)

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the server."""
        self._buf += data

    def next_reply(self) -> Reply | None:
        """Return the next complete reply, or None when more bytes are needed.

        Raises:
            RemoteProtocolError: On a malformed, over-long or inconsistent line.
        """
        from ._errors import RemoteProtocolError

        while True:
            end = self._buf.find(b"\r\n")
            if end < 0:
                if len(self._buf) > self.max_line:
                    raise RemoteProtocolError("reply line too long")
                return None
            if end + 2 > self.max_line:
                raise RemoteProtocolError("reply line too long")
            raw = bytes(self._buf[:end])
            del self._buf[: end + 2]
            match = _REPLY_LINE_RE.fullmatch(raw)
            if match is None or (match.group(2) is None and match.group(3)):
                raise RemoteProtocolError("malformed reply line")
            code = int(match.group(1))
            if self._lines and self._lines[0][0] != code:
                raise RemoteProtocolError("reply code changed inside a multi-line reply")
            try:
                text = match.group(3).decode("utf-8")
            except UnicodeDecodeError:
                raise RemoteProtocolError("reply text is not UTF-8") from None
            text = _CONTROL_RE.sub("?", text)
            self._lines.append((code, text))
            if len(self._lines) > self.max_lines:
                raise RemoteProtocolError("too many reply lines")
            if match.group(2) != b"-":
                break
        lines = self._lines
        self._lines = []
        status: str | None = None
        texts: list[str] = []
        for _, text in lines:
            status, rest = _split_status(code, text)
            texts.append(rest)
        return Reply(code=code, status=status, lines=tuple(texts))
