# ClientConnection: the client role of an SMTP session, sans I/O.
#
# RFC 5321 §3 and §4.1 (commands), §4.2 (replies), §4.1.1.4 and §4.5.2 (DATA, dot
# stuffing, the CRLF.CRLF end marker), §3.8 and §4.2 (421 at any time); RFC 2920
# (PIPELINING: which commands may be sent before earlier replies arrive), RFC 3030
# (CHUNKING/BDAT, BINARYMIME), RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8),
# RFC 3461 (DSN parameters), RFC 3207 (STARTTLS as a protocol switch).
#
# Shape (h11's, mirrored): send(command) returns the bytes to write, at once; the
# application may concatenate several results into one write (that is pipelining).
# receive_data() only buffers; next_event() returns one event per server reply, in the
# order the commands were sent, or NEED_DATA / PAUSED.
#
# The engine refuses locally (LocalProtocolError) what would break the protocol:
# commands before the greeting, a command that must wait for earlier replies, a
# parameter whose extension the server did not offer (RFC 5321 §2.2.1: a client MUST
# NOT use an extension the server did not announce), content before the 354.
#
# Content safety: DATA content is sent with every line ending normalised to CRLF
# (a bare CR or LF MUST NOT be sent, RFC 5321 §2.3.8), so no "\n.\n" or "\r.\r" can ever
# reach the next hop, and with dot stuffing done across chunk boundaries. A message
# that does not end in CRLF gets one before the end marker (RFC 5321 §4.1.1.4).
#
# STARTTLS: after the 220 the connection pauses; bytes the server sent behind the 220
# are a protocol error (a man in the middle injecting replies into what will be the TLS
# session, RFC 3207 §6 / CVE-2011-1575 in reverse). start_tls_completed() forgets the
# EHLO answer (RFC 3207 §4.2): the application sends EHLO again.
"""ClientConnection: the client side of an SMTP/ESMTP session, without I/O."""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import NoReturn

from ._abnf import ADDRESS_LITERAL, DOMAIN
from ._address import Mailbox
from ._errors import LocalProtocolError, RemoteProtocolError
from ._events import ConnectionClosed
from ._params import Body, MailParams, RcptParams, format_mail_params, format_rcpt_params
from ._reply import Reply, ReplyParser
from ._replyparser import max_message_size, parse_ehlo_extensions
from ._server import NEED_DATA, PAUSED, Signal

__all__ = [
    "Bdat",
    "ClientConnection",
    "ClientEvent",
    "ClientState",
    "Command",
    "Data",
    "Ehlo",
    "EhloResult",
    "EndOfMessage",
    "GreetingReceived",
    "Helo",
    "Mail",
    "MessageChunk",
    "Noop",
    "Quit",
    "Rcpt",
    "ReplyReceived",
    "Rset",
    "Starttls",
]


class ClientState(enum.Enum):
    """Where the client side of the session is.

    GREETING: waiting for the server's greeting; nothing may be sent.
    READY: commands may be sent (within the pipelining rules).
    DATA: the 354 arrived; send MessageChunk(s), then EndOfMessage.
    STARTTLS: the 220 to STARTTLS arrived; do the TLS handshake, then call
        start_tls_completed().
    CLOSED: the server said 221 or 421, or closed the connection.
    ERROR: a protocol error happened; the connection cannot be used any more.
    """

    GREETING = "GREETING"
    READY = "READY"
    DATA = "DATA"
    STARTTLS = "STARTTLS"
    CLOSED = "CLOSED"
    ERROR = "ERROR"


# ------------------------------------------------------------------ commands


def _check_helo_domain(domain: str) -> None:
    # RFC 5321 §4.1.1.1: Domain / address-literal, and RFC 6531 §3.7.1: ASCII (A-labels).
    if not isinstance(domain, str) or not (
        DOMAIN.fullmatch(domain) or ADDRESS_LITERAL.fullmatch(domain)
    ):
        raise LocalProtocolError(f"not an ASCII domain or address literal: {domain!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """Base class of everything ``ClientConnection.send()`` accepts."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Ehlo(Command):
    """EHLO (RFC 5321 §4.1.1.1); ``domain`` is our name or an address literal, ASCII.

    Raises:
        LocalProtocolError: When ``domain`` is neither.
    """

    domain: str

    def __post_init__(self) -> None:
        _check_helo_domain(self.domain)


@dataclass(frozen=True, slots=True, kw_only=True)
class Helo(Command):
    """HELO (RFC 5321 §4.1.1.1), for servers that refuse EHLO.

    Raises:
        LocalProtocolError: When ``domain`` is not an ASCII domain or address literal.
    """

    domain: str

    def __post_init__(self) -> None:
        _check_helo_domain(self.domain)


@dataclass(frozen=True, slots=True, kw_only=True)
class Mail(Command):
    """MAIL FROM (RFC 5321 §4.1.1.2); ``sender`` None sends the null path ``<>``."""

    sender: Mailbox | None
    params: MailParams = field(default_factory=MailParams)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rcpt(Command):
    """RCPT TO (RFC 5321 §4.1.1.3)."""

    recipient: Mailbox
    params: RcptParams = field(default_factory=RcptParams)


@dataclass(frozen=True, slots=True, kw_only=True)
class Data(Command):
    """DATA (RFC 5321 §4.1.1.4); send content only after its 354 arrives."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageChunk(Command):
    """A piece of message content after the 354, in any size; dot-stuffed on the way."""

    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class EndOfMessage(Command):
    """The end of DATA content: sends ``CRLF.CRLF`` (adding the CRLF if missing)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Bdat(Command):
    """BDAT (RFC 3030 §2): one chunk sent as is, with its exact size; ``last`` ends it."""

    data: bytes
    last: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Rset(Command):
    """RSET (RFC 5321 §4.1.1.5): drop the transaction."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Noop(Command):
    """NOOP (RFC 5321 §4.1.1.9)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Quit(Command):
    """QUIT (RFC 5321 §4.1.1.10)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Starttls(Command):
    """STARTTLS (RFC 3207 §4); only when the server offered it and TLS is not active."""


# RFC 2920 §3.1: only these may be followed by more commands before their reply. The
# end of message content starts a new group (content "is explicitly allowed to be the
# first command in a group"), and RFC 3030 §4.2 lets BDAT be pipelined.
_PIPELINABLE = (Rset, Mail, Rcpt, EndOfMessage, Bdat)


# -------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientEvent:
    """Base class of the events ``ClientConnection.next_event()`` returns."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GreetingReceived(ClientEvent):
    """The server's opening reply: 220 to go on, 554 (send QUIT) or 421 (closing)."""

    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class EhloResult(ClientEvent):
    """A positive reply to EHLO.

    Attributes:
        reply: The 250 reply.
        extensions: Upper-cased keyword -> its parameters, e.g. ``{"SIZE": ("1000",),
            "PIPELINING": ()}``; also on ``ClientConnection.extensions``.
    """

    reply: Reply
    extensions: dict[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyReceived(ClientEvent):
    """The reply to ``command`` (None for an unsolicited 421, RFC 5321 §3.8)."""

    command: Command | None
    reply: Reply


# ----------------------------------------------------------- content writer


class _DotStuffer:
    """DATA content for the wire: CRLF line endings and dot stuffing, across chunks.

    Works on whole chunks with bytes.replace; only a trailing CR is held back, because
    the next chunk decides whether it is half of a CRLF.
    """

    __slots__ = ("_at_line_start", "_held_cr", "size")

    def __init__(self) -> None:
        self._at_line_start = True  # content begins at the start of a line
        self._held_cr = False
        self.size = 0  # content bytes as given by the application

    def feed(self, chunk: bytes) -> bytes:
        self.size += len(chunk)
        data = (b"\r" + chunk) if self._held_cr else chunk
        self._held_cr = data.endswith(b"\r")
        if self._held_cr:
            data = data[:-1]
        return self._encode(data)

    def end(self) -> bytes:
        tail = self._encode(b"\r") if self._held_cr else b""
        self._held_cr = False
        if not self._at_line_start:
            tail += b"\r\n"
        return tail + b".\r\n"

    def _encode(self, data: bytes) -> bytes:
        if not data:
            return b""
        # Any of CRLF, bare CR, bare LF becomes CRLF (RFC 5321 §2.3.8).
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
        # RFC 5321 §4.5.2: a line starting with "." gets one more.
        data = data.replace(b"\r\n.", b"\r\n..")
        if self._at_line_start and data.startswith(b"."):
            data = b"." + data
        self._at_line_start = data.endswith(b"\r\n")
        return data


# ---------------------------------------------------------------- connection


class ClientConnection:
    """The client side of one SMTP session.

    Args:
        tls_active: True when the connection is already TLS (implicit TLS, RFC 8314).
        max_reply_line: Longest reply line accepted, CRLF included. Default 512
            (RFC 5321 §4.5.3.1.5).
        max_reply_lines: Most lines in one reply. Default 100 (an EHLO reply has about
            15; the cap bounds memory).

    Attributes:
        tls_active: True once TLS protects the connection.
    """

    def __init__(
        self, *, tls_active: bool = False, max_reply_line: int = 512, max_reply_lines: int = 100
    ) -> None:
        self.tls_active = tls_active
        self._max_reply_line = max_reply_line
        self._max_reply_lines = max_reply_lines
        self._parser = ReplyParser(max_line=max_reply_line, max_lines=max_reply_lines)
        self._state = ClientState.GREETING
        self._pending: deque[Command] = deque()
        self._extensions: dict[str, tuple[str, ...]] = {}
        self._esmtp = False
        self._eof = False
        self._closed: ConnectionClosed | None = None
        self._stuffer: _DotStuffer | None = None
        self._transaction_utf8 = False

    # ------------------------------------------------------------ session facts

    @property
    def state(self) -> ClientState:
        """The current ClientState."""
        return self._state

    @property
    def esmtp(self) -> bool:
        """True after a positive EHLO reply (until STARTTLS or HELO)."""
        return self._esmtp

    @property
    def extensions(self) -> dict[str, tuple[str, ...]]:
        """The extensions of the last positive EHLO reply (a copy); empty before."""
        return dict(self._extensions)

    def offers(self, keyword: str) -> bool:
        """True when the last EHLO reply offered ``keyword`` (any case)."""
        return keyword.upper() in self._extensions

    @property
    def pipelining(self) -> bool:
        """True when commands may be pipelined (RFC 2920)."""
        return "PIPELINING" in self._extensions

    @property
    def max_message_size(self) -> int | None:
        """The server's SIZE limit (RFC 1870), or None when it announced none."""
        return max_message_size(self._extensions)

    @property
    def pending_replies(self) -> int:
        """How many commands sent still wait for their reply."""
        return len(self._pending)

    # ---------------------------------------------------------------- send

    def send(self, command: Command) -> bytes:
        """Turn a command into the bytes to write to the server.

        Args:
            command: The next command, or message content after the 354.

        Returns:
            The bytes to write. Several results may be written together when the
            server offers PIPELINING.

        Raises:
            LocalProtocolError: When the command is not allowed now (before the
                greeting, waiting for a reply that must come first, content before the
                354, an extension the server did not offer, after 221/421). The
                connection state is unchanged; nothing was produced.
        """
        self._check_sendable(command)
        if isinstance(command, MessageChunk):
            assert self._stuffer is not None
            return self._stuffer.feed(command.data)
        if isinstance(command, EndOfMessage):
            assert self._stuffer is not None
            out = self._stuffer.end()
            self._stuffer = None
            self._state = ClientState.READY
            self._transaction_utf8 = False
        else:
            out = self._command_bytes(command)
        self._pending.append(command)
        return out

    def _check_sendable(self, command: Command) -> None:
        state = self._state
        if state is ClientState.ERROR:
            raise LocalProtocolError("connection is in the ERROR state")
        if isinstance(command, (MessageChunk, EndOfMessage)):
            if state is not ClientState.DATA:
                raise LocalProtocolError("message content only after the 354 reply to DATA")
            return
        if state is ClientState.DATA:
            raise LocalProtocolError("send the content and EndOfMessage first")
        if state is not ClientState.READY:
            raise LocalProtocolError(f"cannot send {type(command).__name__} in state {state.name}")
        if self._pending and not (
            self.pipelining and all(isinstance(p, _PIPELINABLE) for p in self._pending)
        ):
            raise LocalProtocolError(
                f"{type(command).__name__} must wait for the replies already due (RFC 2920 §3.1)"
            )
        self._check_extensions(command)

    def _require(self, keyword: str, what: str) -> None:
        if keyword not in self._extensions:
            raise LocalProtocolError(f"{what} needs {keyword}, which the server did not offer")

    def _check_extensions(self, command: Command) -> None:
        if isinstance(command, Mail):
            p = command.params
            if p.size is not None:
                self._require("SIZE", "SIZE=")
            if p.body is Body.BINARY_MIME:
                self._require("BINARYMIME", "BODY=BINARYMIME")
                self._require("CHUNKING", "BODY=BINARYMIME")
            elif p.body is not None:
                self._require("8BITMIME", "BODY=")
            if p.smtputf8:
                self._require("SMTPUTF8", "SMTPUTF8")
            if p.auth is not None:
                self._require("AUTH", "AUTH=")
            if p.ret is not None or p.envid is not None:
                self._require("DSN", "RET=/ENVID=")
            if command.sender is not None and command.sender.is_utf8 and not p.smtputf8:
                raise LocalProtocolError("a UTF-8 sender needs the SMTPUTF8 parameter")
            if p.extra and not self._esmtp:
                raise LocalProtocolError("MAIL parameters need EHLO")
        elif isinstance(command, Rcpt):
            p_rcpt = command.params
            if p_rcpt.notify is not None or p_rcpt.orcpt is not None:
                self._require("DSN", "NOTIFY=/ORCPT=")
            if command.recipient.is_utf8 and not self._transaction_utf8:
                raise LocalProtocolError("a UTF-8 recipient needs MAIL with SMTPUTF8")
            if p_rcpt.extra and not self._esmtp:
                raise LocalProtocolError("RCPT parameters need EHLO")
        elif isinstance(command, Bdat):
            self._require("CHUNKING", "BDAT")
        elif isinstance(command, Starttls):
            if self.tls_active:
                raise LocalProtocolError("TLS is already active")
            self._require("STARTTLS", "STARTTLS")

    def _command_bytes(self, command: Command) -> bytes:
        if isinstance(command, Ehlo):
            line = f"EHLO {command.domain}"
        elif isinstance(command, Helo):
            line = f"HELO {command.domain}"
        elif isinstance(command, Mail):
            sender = "" if command.sender is None else str(command.sender)
            params = format_mail_params(command.params)
            line = f"MAIL FROM:<{sender}>" + (f" {params}" if params else "")
            self._transaction_utf8 = command.params.smtputf8
        elif isinstance(command, Rcpt):
            params = format_rcpt_params(command.params, utf8=self._transaction_utf8)
            line = f"RCPT TO:<{command.recipient}>" + (f" {params}" if params else "")
        elif isinstance(command, Data):
            line = "DATA"
        elif isinstance(command, Bdat):
            head = f"BDAT {len(command.data)}{' LAST' if command.last else ''}\r\n"
            if command.last:
                self._transaction_utf8 = False
            return head.encode("ascii") + command.data
        elif isinstance(command, Rset):
            line = "RSET"
            self._transaction_utf8 = False
        elif isinstance(command, Noop):
            line = "NOOP"
        elif isinstance(command, Quit):
            line = "QUIT"
        elif isinstance(command, Starttls):
            line = "STARTTLS"
        else:
            raise LocalProtocolError(f"not a command: {command!r}")
        return (line + "\r\n").encode("utf-8")

    # ------------------------------------------------------------- receiving

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the server; ``b""`` means it closed the connection.

        Nothing is parsed here. Bytes after EOF, or after 221 / 421 (state CLOSED), are
        ignored; the EOF itself is always noted.
        """
        if self._eof or self._state is ClientState.ERROR:
            return
        if not data:
            self._eof = True
        elif self._state is not ClientState.CLOSED:
            self._parser.receive_data(data)

    def next_event(self) -> ClientEvent | ConnectionClosed | Signal:
        """Parse buffered bytes and return the next event, NEED_DATA or PAUSED.

        Returns:
            GreetingReceived first; then one EhloResult or ReplyReceived per reply, in
            the order the commands were sent; ConnectionClosed once the server closed
            the connection (returned again on every later call). NEED_DATA when more
            bytes are needed (also after 221 or 421, until the EOF); PAUSED after the
            220 to STARTTLS, until start_tls_completed().

        Raises:
            RemoteProtocolError: On a malformed reply, a reply nobody asked for, bytes
                behind the 220 to STARTTLS, or the connection closing while replies are
                still due. The state is then ERROR for good.
            LocalProtocolError: When called in the ERROR state.
        """
        if self._state is ClientState.ERROR:
            raise LocalProtocolError("connection is in the ERROR state")
        if self._closed is not None:
            return self._closed
        if self._state is ClientState.STARTTLS:
            if self._parser.pending:
                self._remote_error("plaintext received after the 220 to STARTTLS")
            return PAUSED
        if self._state is ClientState.CLOSED:
            # After 221 or 421 nothing more is read; commands still due get no reply.
            if not self._eof:
                return NEED_DATA
            self._closed = ConnectionClosed(reason="server closed the connection as announced")
            return self._closed
        try:
            reply = self._parser.next_reply()
        except RemoteProtocolError:
            self._state = ClientState.ERROR
            raise
        if reply is not None:
            return self._handle(reply)
        if not self._eof:
            return NEED_DATA
        if self._parser.pending:
            self._remote_error("connection closed in the middle of a reply")
        if self._state is ClientState.GREETING:
            self._remote_error("connection closed before the greeting")
        if self._pending:
            self._remote_error(f"connection closed with {len(self._pending)} replies due")
        self._state = ClientState.CLOSED
        self._closed = ConnectionClosed(reason="server closed the connection")
        return self._closed

    def _remote_error(self, why: str) -> NoReturn:
        self._state = ClientState.ERROR
        raise RemoteProtocolError(why)

    def _handle(self, reply: Reply) -> ClientEvent:
        event = self._interpret(reply)
        if reply.code == 421 or (
            isinstance(event, ReplyReceived)
            and isinstance(event.command, Quit)
            and reply.code == 221
        ):
            # RFC 5321 §3.8 (421 at any time) and §4.1.1.10 (221 to QUIT): the server
            # closes now; no further reply will come.
            self._state = ClientState.CLOSED
            self._stuffer = None
        return event

    def _interpret(self, reply: Reply) -> ClientEvent:
        if self._state is ClientState.GREETING:
            self._state = ClientState.READY
            return GreetingReceived(reply=reply)
        if not self._pending:
            if reply.code == 421:
                return ReplyReceived(command=None, reply=reply)
            self._remote_error(f"reply {reply.code} with no command waiting for one")
        command = self._pending.popleft()
        positive = 200 <= reply.code < 300
        if isinstance(command, Ehlo) and positive:
            self._extensions = parse_ehlo_extensions(reply)
            self._esmtp = True
            self._transaction_utf8 = False
            return EhloResult(reply=reply, extensions=dict(self._extensions))
        if isinstance(command, Helo) and positive:
            self._extensions = {}
            self._esmtp = False
            self._transaction_utf8 = False
        elif isinstance(command, Data) and reply.code == 354:
            self._state = ClientState.DATA
            self._stuffer = _DotStuffer()
        elif isinstance(command, Starttls) and reply.code == 220:
            if self._parser.pending:
                self._remote_error("bytes received behind the 220 to STARTTLS")
            self._state = ClientState.STARTTLS
        return ReplyReceived(command=command, reply=reply)

    # ------------------------------------------------------------------ TLS

    def start_tls_completed(self) -> None:
        """Tell the engine the TLS handshake after STARTTLS succeeded.

        The session starts over (RFC 3207 §4.2): the EHLO answer is forgotten and the
        application must send EHLO again before anything else.

        Raises:
            LocalProtocolError: When no 220 to STARTTLS was received (state unchanged).
            RemoteProtocolError: When plaintext bytes arrived after the 220; they are
                never parsed. The state is then ERROR.
        """
        if self._state is not ClientState.STARTTLS:
            raise LocalProtocolError("start_tls_completed() without a 220 to STARTTLS")
        if self._parser.pending:
            self._remote_error("plaintext received after the 220 to STARTTLS")
        self._parser = ReplyParser(max_line=self._max_reply_line, max_lines=self._max_reply_lines)
        self._extensions = {}
        self._esmtp = False
        self._transaction_utf8 = False
        self.tls_active = True
        self._state = ClientState.READY
