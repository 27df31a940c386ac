"""Durable Maildir delivery, and the spool that holds a message while it arrives.

Maildir (https://cr.yp.to/proto/maildir.html): each message is written under a unique
name into the mailbox's ``tmp/``, fsynced, renamed into ``new/``, and ``new/`` itself is
fsynced so the rename survives a power cut. Only after that does the server answer 250
(RFC 5321 §6.1: once the server has accepted a message it must not lose it).

The message streams in as :class:`sansio_smtp.MessageData` chunks. :class:`Spool`
keeps at most ``SPOOL_MEMORY`` bytes in memory and moves the rest to an anonymous
temporary file in ``spool_dir`` (unlinked from the start, so a crash leaves nothing
behind). All blocking disk work runs in ``trio.to_thread.run_sync``: an fsync can take
milliseconds, and many sessions share the event loop.

Every delivered copy gets trace headers prepended (RFC 5321 §4.4): ``Return-Path:``,
then optionally one original-recipient line per envelope recipient delivered into *that*
mailbox, then ``Received:`` with the RFC 3848 / RFC 6531 ``with`` keyword, then
optionally ``Date:`` (RFC 5322 §3.6.1).

Line ends: Maildir files conventionally use the Unix LF (Postfix, qmail and Dovecot
write them so), so CRLF becomes LF on the way in. A BINARYMIME body (RFC 3030) is
the exception: its bytes are not lines, so it is stored exactly as received and its
trace headers end in CRLF to match.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import secrets
import socket
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import BinaryIO

import trio

__all__ = [
    "SPOOL_MEMORY",
    "Delivered",
    "Envelope",
    "HeaderScanner",
    "MaildirDelivery",
    "Spool",
    "TraceInfo",
    "header_safe",
    "new_queue_id",
]

# Content held in memory per transaction before it goes to the spool file. Most mail is
# smaller than this, so most messages never touch the spool at all.
SPOOL_MEMORY = 64 * 1024
_COPY_BLOCK = 256 * 1024
_unique = itertools.count(1)


def new_queue_id() -> str:
    """A fresh queue id: 12 upper-case hex digits (48 random bits)."""
    return secrets.token_hex(6).upper()


def header_safe(text: str) -> str:
    """Peer text made fit for a header value: control characters become ``?``.

    No CR or LF survives, so peer text can never start a header line of its own
    (RFC 5322 §2.2 forbids CR and LF in field bodies).
    """
    return "".join(c if c.isprintable() or c == " " else "?" for c in text)


class HeaderScanner:
    """Watches the start of the content for a ``Date:`` header, chunk by chunk.

    Only the header section (up to the first empty line, RFC 5322 §2.1) is looked at,
    and only the first few bytes of each line are kept, so memory stays constant.
    """

    _KEEP = 6

    def __init__(self) -> None:
        self.in_headers = True
        self.has_date = False
        self._line = bytearray()  # the first _KEEP bytes of the current line
        self._colon = False  # the current line has a colon somewhere

    def feed(self, data: bytes) -> None:
        """Look at the next chunk of content."""
        start = 0
        while self.in_headers and start < len(data):
            end = data.find(b"\n", start)
            stop = len(data) if end == -1 else end
            room = self._KEEP - len(self._line)
            if room > 0:
                self._line += data[start : min(stop, start + room)]
            self._colon = self._colon or data.find(b":", start, stop) != -1
            if end == -1:
                return
            self._end_line()
            start = end + 1

    def _end_line(self) -> None:
        line, colon = bytes(self._line), self._colon
        self._line.clear()
        self._colon = False
        if line in (b"", b"\r"):
            self.in_headers = False
        elif line[:5].lower() == b"date:":
            self.has_date = True
        elif line[:1] not in (b" ", b"\t") and not colon:
            # Neither a field nor a continuation: the body began without a separating
            # blank line, so stop looking.
            self.in_headers = False


class Spool:
    """The content of one message while it arrives, in memory then in a temporary file."""

    def __init__(self, directory: Path, *, binary: bool = False) -> None:
        """Start an empty spool.

        Args:
            directory: where the temporary file goes if the message outgrows memory.
            binary: keep the bytes exactly (BINARYMIME) instead of turning CRLF into LF.
                Text content (not binary) must have no bare CR, as the engine delivers it.
        """
        self.directory = directory
        self.binary = binary
        self.size = 0
        self.scanner = HeaderScanner()
        self._pending = bytearray()
        self._file: BinaryIO | None = None

    @property
    def newline(self) -> bytes:
        """The line end the stored copy uses, for the headers written before it."""
        return b"\r\n" if self.binary else b"\n"

    @property
    def has_date(self) -> bool:
        """Whether the header section had a ``Date:`` field."""
        return self.scanner.has_date

    async def write(self, data: bytes) -> None:
        """Append a chunk; spills to the spool file past :data:`SPOOL_MEMORY` bytes."""
        self.size += len(data)
        self.scanner.feed(data)
        # Text content comes from the engine, which has already refused or normalised
        # every bare CR (RFC 5321 §2.3.8): each CR left starts a CRLF, so deleting them
        # all is exactly CRLF -> LF, even across chunks, and translate() is one fast pass.
        self._pending += data if self.binary else data.translate(None, b"\r")
        if len(self._pending) >= SPOOL_MEMORY:
            await trio.to_thread.run_sync(self._spill)

    def _spill(self) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(dir=self.directory, prefix="spool.")  # noqa: SIM115
        self._file.write(self._pending)
        self._pending.clear()

    def copy_to(self, fd: int) -> None:
        """Write the whole content to ``fd`` (blocking; runs in a worker thread)."""
        if self._file is not None:
            self._file.flush()
            offset = 0
            source = self._file.fileno()
            while chunk := os.pread(source, _COPY_BLOCK, offset):
                _write_all(fd, chunk)
                offset += len(chunk)
        _write_all(fd, self._pending)

    async def aclose(self) -> None:
        """Drop the content (the spool file disappears with it)."""
        self._pending = bytearray()
        if self._file is not None:
            file, self._file = self._file, None
            await trio.to_thread.run_sync(file.close)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceInfo:
    """Session facts for the ``Received:`` header."""

    hostname: str
    peer_ip: str
    helo: str | None
    protocol: str
    tls: str | None = None


@dataclass(slots=True, kw_only=True)
class Envelope:
    """One transaction: sender and the local mailboxes with the RCPT addresses for each."""

    queue_id: str
    sender: str
    # mailbox name -> RCPT TO addresses delivered into it, exactly as given, in order.
    mailboxes: dict[str, list[str]] = field(default_factory=dict)

    def add(self, mailbox: str, address: str) -> None:
        """Record that ``address`` (as given in RCPT TO) goes into ``mailbox``."""
        addresses = self.mailboxes.setdefault(mailbox, [])
        if address not in addresses:
            addresses.append(address)

    @property
    def recipient_count(self) -> int:
        """How many envelope recipients were accepted."""
        return sum(len(a) for a in self.mailboxes.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivered:
    """One copy written: which mailbox and the file in its ``new/``."""

    mailbox: str
    path: Path


class MaildirDelivery:
    """Writes messages into ``root/<mailbox>/{tmp,new,cur}``."""

    def __init__(
        self,
        root: Path,
        *,
        original_recipients_header: str | None = None,
        host: str | None = None,
    ) -> None:
        """Create the delivery agent.

        Args:
            root: the folder holding one Maildir per mailbox.
            original_recipients_header: header name for one line per envelope recipient
                delivered into the mailbox, or None for no such header.
            host: the host part of Maildir file names (default: this machine's name).
        """
        self.root = root
        self.original_recipients_header = original_recipients_header
        name = host or socket.gethostname()
        # Maildir: "/" and ":" in the host name are written as \057 and \072.
        self._host = name.replace("/", "\\057").replace(":", "\\072")

    def prepare(self, mailboxes: list[str]) -> None:
        """Create the Maildir folders for ``mailboxes`` (blocking; at start-up)."""
        for mailbox in mailboxes:
            for sub in ("tmp", "new", "cur"):
                (self.root / mailbox / sub).mkdir(mode=0o700, parents=True, exist_ok=True)

    def headers(
        self,
        envelope: Envelope,
        mailbox: str,
        trace: TraceInfo,
        *,
        add_date: bool,
        newline: bytes = b"\n",
    ) -> bytes:
        """The trace (and optional) header lines prepended to the copy for ``mailbox``."""
        now = datetime.now(UTC)
        addresses = envelope.mailboxes[mailbox]
        lines = [f"Return-Path: <{header_safe(envelope.sender)}>"]
        if self.original_recipients_header is not None:
            lines += [f"{self.original_recipients_header}: {header_safe(a)}" for a in addresses]
        lines += _received(envelope, addresses, trace, now)
        if add_date:
            lines.append(f"Date: {format_datetime(now)}")
        end = newline.decode("ascii")
        return "".join(line.replace("\r\n", end) + end for line in lines).encode("utf-8")

    async def deliver(
        self, spool: Spool, envelope: Envelope, trace: TraceInfo, *, add_date: bool
    ) -> list[Delivered]:
        """Deliver one copy into every mailbox of ``envelope``; durable on return.

        Raises:
            OSError: a copy could not be written. Copies already renamed into ``new/``
                stay there (a retry may duplicate them: better twice than lost).
        """
        copies = [
            (
                mailbox,
                self.headers(envelope, mailbox, trace, add_date=add_date, newline=spool.newline),
            )
            for mailbox in envelope.mailboxes
        ]
        return await trio.to_thread.run_sync(self._deliver_all, spool, copies)

    def _deliver_all(self, spool: Spool, copies: list[tuple[str, bytes]]) -> list[Delivered]:
        return [self._deliver_one(spool, mailbox, header) for mailbox, header in copies]

    def _deliver_one(self, spool: Spool, mailbox: str, header: bytes) -> Delivered:
        folder = self.root / mailbox
        name = self._unique_name()
        tmp_path = folder / "tmp" / name
        new_path = folder / "new" / name
        try:
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:
            self.prepare([mailbox])
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                _write_all(fd, header)
                spool.copy_to(fd)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp_path, new_path)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
        _fsync_directory(folder / "new")
        return Delivered(mailbox=mailbox, path=new_path)

    def _unique_name(self) -> str:
        # Maildir's modern form: seconds, then M<microseconds> P<pid> Q<counter>
        # R<random>, then the host name.
        now = time.time()
        seconds = int(now)
        micro = int((now - seconds) * 1_000_000)
        random = secrets.token_hex(4)
        return f"{seconds}.M{micro}P{os.getpid()}Q{next(_unique)}R{random}.{self._host}"


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _address_literal(ip: str) -> str:
    # RFC 5321 §4.1.3: IPv6 literals carry the "IPv6:" tag.
    try:
        version = ipaddress.ip_address(ip).version
    except ValueError:
        return f"[{header_safe(ip)}]"
    return f"[IPv6:{ip}]" if version == 6 else f"[{ip}]"


def _received(
    envelope: Envelope, addresses: list[str], trace: TraceInfo, now: datetime
) -> list[str]:
    # RFC 5321 §4.4:
    #   Time-stamp-line = "Received:" FWS Stamp <CRLF>
    #   Stamp = From-domain By-domain Opt-info [CFWS] ";" FWS date-time
    helo = header_safe(trace.helo) if trace.helo else "unknown"
    lines = [f"Received: from {helo} ({_address_literal(trace.peer_ip)})"]
    if trace.tls:
        lines.append(f"\t(using {header_safe(trace.tls)})")
    lines.append(
        f"\tby {trace.hostname} (sansio-smtpd) with {trace.protocol} id {envelope.queue_id}"
    )
    # "for" names the recipient only when this copy has exactly one, so a copy never
    # reveals the other recipients of the transaction.
    if len(addresses) == 1:
        lines.append(f"\tfor <{header_safe(addresses[0])}>; {format_datetime(now)}")
    else:
        lines[-1] += ";"
        lines.append(f"\t{format_datetime(now)}")
    return ["\r\n".join(lines)]
