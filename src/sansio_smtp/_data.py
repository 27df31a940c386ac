# Message content readers.
#
# DATA (RFC 5321 §4.1.1.4, §4.5.2): the content ends only at CRLF "." CRLF, and a
# line starting with "." has that dot removed. The first content line starts right
# after the DATA command's CRLF, so the reader begins with a virtual CRLF already
# "seen". Everything else that looks like an end (LF.LF, CR.CR, CRLF.LF, LF.CRLF,
# CRLF NUL . CRLF, ...) is content: the 2023 SMTP-smuggling attacks
# (CVE-2023-51764/5/6) live exactly in servers that accepted one of those.
#
# Speed: the reader works on whole chunks with C-speed passes and no per-line
# Python loop. A clean chunk costs two regex searches (the first CR not starting
# CRLF plus an ordinary byte, which finds dot lines, the end marker and bare CRs at
# once; the first LF not after CR) and one rfind per max_text_line bytes for line
# lengths, and is handed out as is, without a copy. A dot line costs one find for
# the end marker and one replace. At most four bytes are carried over: the longest
# tail of what was seen that is a proper prefix of CRLF "." CRLF. A dot line (CRLF
# "." and one more byte) or the end marker therefore lies wholly inside the chunk
# being processed (the carry-over starts with CR, which neither pattern has after
# its first byte), and no byte is searched twice by Python code.
#
# Bare LF / bare CR (RFC 5321 §2.3.8: they must not appear in SMTP text) follow
# ServerConfig.bare_newlines: "reject" refuses the message after its end (like
# Postfix smtpd_forbid_bare_newline), "normalize" turns each into CRLF and treats
# it as a line end for dot removal too; still only CRLF.CRLF on the wire ends data.
#
# A line longer than max_text_line (RFC 5321 §4.5.3.1.6) or content larger than
# max_message_size refuses the message after its end; the reader keeps looking for
# CRLF.CRLF meanwhile, so the session never falls back into command mode early.
#
# BDAT (RFC 3030 §2): exactly n bytes, no stuffing, no end marker. The bare
# newline policy applies unless BODY=BINARYMIME; a CR ending one chunk is held
# until the next byte is known.
"""Readers for DATA content (dot-unstuffing, CRLF.CRLF) and BDAT chunks."""

from __future__ import annotations

import re
from typing import Final, Literal

from ._receivebuffer import ReceiveBuffer
from ._reply import Reply

__all__ = [
    "BARE_NEWLINE_REPLY",
    "LINE_TOO_LONG_REPLY",
    "TOO_BIG_REPLY",
    "BdatReader",
    "DataReader",
]

BARE_NEWLINE_REPLY: Final = Reply(
    code=550,
    status="5.5.2",
    lines=("Message refused: bare <CR> or <LF> in content (RFC 5321 §2.3.8)",),
)
LINE_TOO_LONG_REPLY: Final = Reply(
    code=554, status="5.6.0", lines=("Message refused: line too long (RFC 5321 §4.5.3.1.6)",)
)
TOO_BIG_REPLY: Final = Reply(code=552, status="5.3.4", lines=("Message size exceeds fixed limit",))

_END: Final = b"\r\n.\r\n"
_LINE_DOT: Final = b"\r\n."
# Proper prefixes of _END and of a dot line (CRLF "." plus one byte), longest
# first: the possible carry-overs.
_PREFIXES: Final = (b"\r\n.\r", b"\r\n.", b"\r\n", b"\r")


# Regular-expression searches over bytes: sre scans for the leading literal byte in
# C and then checks the one or two bytes around it, so each is a single pass that
# costs about as much as a bytes.find, and they need no care about what other
# bytes the content holds.
#
# The first CR that does not begin CRLF plus an ordinary byte: a dot line (or the
# end marker), a bare CR, or a CR / CRLF cut by the end of the chunk. Text lines
# end in CRLF followed by an ordinary byte, so a clean chunk has no match at all.
_CR_NOTABLE: Final = re.compile(rb"\r(?!\n[^.])")
_BARE_CR: Final = re.compile(rb"\r(?!\n)")
# An LF whose previous byte is not CR (the lookbehind sees the bytes before it).
_BARE_LF: Final = re.compile(rb"\n(?<!\r\n)")


def _has_bare(chunk: bytes, start: int = 0) -> bool:
    """True if a CR or LF in chunk[start:] is not part of a CRLF pair.

    A CR as the very last byte counts as bare.
    """
    return _BARE_CR.search(chunk, start) is not None or _BARE_LF.search(chunk, start) is not None


def _normalize(chunk: bytes) -> bytes:
    # Every CR, LF or CRLF becomes one CRLF.
    return chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


class DataReader:
    """Incremental reader of one DATA message (RFC 5321 §4.1.1.4).

    Call :meth:`read` with the receive buffer whenever bytes arrive. It consumes
    what it can, returns the unstuffed content found so far, and sets ``done`` once
    CRLF.CRLF was consumed (bytes after it go back to the buffer). ``error`` is the
    Reply refusing the message when content broke a rule; from then on no more
    content is returned, but the reader still consumes up to the end marker.
    """

    __slots__ = (
        "_bare_newlines",
        "_carry",
        "_line_len",
        "_max_line",
        "_max_size",
        "_normalizing",
        "_virtual",
        "done",
        "error",
        "size",
    )

    def __init__(
        self,
        *,
        max_text_line: int,
        max_size: int | None,
        bare_newlines: Literal["reject", "normalize"],
    ) -> None:
        # The DATA command's own CRLF: the first line starts a line.
        self._carry = b"\r\n"
        self._virtual = True
        self._line_len = 0
        self._max_line = max_text_line - 1  # bytes allowed before the LF
        self._max_size = max_size
        self._bare_newlines = bare_newlines
        self._normalizing = bare_newlines == "normalize"
        self.size = 0
        self.done = False
        self.error: Reply | None = None

    def read(self, buf: ReceiveBuffer) -> bytes:
        """Consume content from ``buf`` and return the unstuffed bytes (maybe empty)."""
        if self.done or not buf:
            return b""
        data = self._carry + buf.extract_all()
        # One search finds the end marker and dot-stuffing alike: the first CRLF "."
        # is either the end (CRLF follows) or a line whose leading dot is removed,
        # and then only the end marker remains to be found. While the message is
        # still wanted, _CR_NOTABLE finds it together with the first bare CR.
        bare_cr = False
        if self.error is not None:
            pos = data.find(_LINE_DOT)
        else:
            match = _CR_NOTABLE.search(data)
            pos = -1 if match is None else match.start()
            if pos >= 0 and not data.startswith(_LINE_DOT, pos):
                if pos + 1 < len(data) and data[pos + 1] != 0x0A:
                    bare_cr = True  # dot lines may still follow it
                    pos = data.find(_LINE_DOT, pos)
                else:
                    pos = -1  # a CR or CRLF at the very end: carried over below
        end = -1
        stuffed = False
        if pos >= 0:
            after = data[pos + 3 : pos + 5]
            if after == b"\r\n":
                end = pos
            elif after not in (b"", b"\r"):  # else: a marker cut by the chunk end
                stuffed = True
                end = data.find(_END, pos + 3)
        if end >= 0:
            body = data[: end + 2]
            buf.push_front(data[end + 5 :])
            self._carry = b""
            self.done = True
        else:
            keep = 0
            for prefix in _PREFIXES:
                if data.endswith(prefix):
                    keep = len(prefix)
                    break
            if not keep and self._normalizing and data.endswith(b"\n"):
                # A bare LF may begin a dot line in the next chunk: keep it (LF after
                # CR cannot be here, since a trailing CRLF was kept above).
                keep = 1
            # A clean chunk has no CR at its end: body is data itself, not a copy.
            body = data[: len(data) - keep]
            self._carry = data[len(data) - keep :]
        if not body or self.error is not None:
            return b""
        # Before the first notable CR every CR began a CRLF; past a dot line they
        # must be looked at again. The body never ends with a CR (it is carried).
        bare = (
            bare_cr
            or _BARE_LF.search(body) is not None
            or (stuffed and _BARE_CR.search(body, pos) is not None)
        )
        if bare and self._bare_newlines == "reject":
            self.error = BARE_NEWLINE_REPLY
            return b""
        # RFC 5321 §4.5.2: the first character of a line that starts with "." is
        # deleted (the end marker is not in the body). Under "normalize" each bare CR
        # or LF is taken as the line end the client meant (as Postfix does), so the
        # lines it begins are unstuffed too: smtplib stuffs after a bare LF (F6).
        if bare:
            out = _normalize(body).replace(_LINE_DOT, b"\r\n")
        else:
            out = body.replace(_LINE_DOT, b"\r\n") if stuffed else body
        if self._virtual:
            out = out[2:]
            self._virtual = False
        # Lines are measured as delivered: without the dot added for transparency
        # (§4.5.3.1.6), and after normalization split them at bare CRs.
        if not self._lines_fit(out):
            self.error = LINE_TOO_LONG_REPLY
            return b""
        self.size += len(out)
        if self._max_size is not None and self.size > self._max_size:
            self.error = TOO_BIG_REPLY
            return b""
        return out

    def _lines_fit(self, body: bytes) -> bool:
        # Every run of bytes without LF must stay within _max_line. Jumping to the
        # last LF inside each window of allowed length visits every window once,
        # so a chunk of n bytes costs about n / max_text_line rfind calls.
        limit = self._max_line
        n = len(body)
        pos = 0
        line_len = self._line_len
        while True:
            window_end = pos + (limit - line_len) + 1
            if window_end >= n:
                last = body.rfind(b"\n", pos)
                self._line_len = n - last - 1 if last >= 0 else line_len + n - pos
                return self._line_len <= limit
            last = body.rfind(b"\n", pos, window_end)
            if last < 0:
                return False
            pos = last + 1
            line_len = 0


class BdatReader:
    """Reader of the content of one transaction sent with BDAT (RFC 3030 §2).

    :meth:`start_chunk` announces each chunk's size; :meth:`read` returns content
    until the chunk's bytes are all consumed (``chunk_done``). ``error`` refuses the
    message; bytes are still consumed so the session stays in sync.
    """

    __slots__ = (
        "_bare_newlines",
        "_cr_held",
        "_max_size",
        "_remaining",
        "binary",
        "error",
        "last",
        "size",
    )

    def __init__(
        self,
        *,
        max_size: int | None,
        bare_newlines: Literal["reject", "normalize"],
        binary: bool,
    ) -> None:
        self._max_size = max_size
        self._bare_newlines = bare_newlines
        self.binary = binary
        self._remaining = 0
        self._cr_held = False
        self.last = False
        self.size = 0
        self.error: Reply | None = None

    @property
    def chunk_done(self) -> bool:
        """True when the current chunk's bytes are all consumed."""
        return self._remaining == 0

    def start_chunk(self, size: int, *, last: bool) -> None:
        """Begin a chunk of ``size`` bytes; ``last`` for BDAT ... LAST."""
        self._remaining = size
        self.last = last
        if self._max_size is not None and self.size + size > self._max_size:
            self.error = TOO_BIG_REPLY

    def read(self, buf: ReceiveBuffer) -> bytes:
        """Consume up to the rest of the current chunk; return the content (maybe empty)."""
        data = buf.extract_at_most(self._remaining) if self._remaining else b""
        self._remaining -= len(data)
        if self.error is not None:
            return b""
        if self.binary:
            self.size += len(data)
            return data
        if self._cr_held:
            data = b"\r" + data
            self._cr_held = False
        if data.endswith(b"\r") and not (self.last and self._remaining == 0):
            # Wait for the next byte to know whether this CR starts a CRLF.
            data = data[:-1]
            self._cr_held = True
        if _has_bare(data):
            if self._bare_newlines == "reject":
                self.error = BARE_NEWLINE_REPLY
                return b""
            data = _normalize(data)
        self.size += len(data)
        if self._max_size is not None and self.size > self._max_size:
            self.error = TOO_BIG_REPLY
            return b""
        return data
