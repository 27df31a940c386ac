# ServerConnection: the server role of an SMTP session, sans I/O.
#
# RFC 5321 §3 (procedures), §4.1 (commands), §4.2/§4.3 (replies and sequencing),
# §4.5.3 (limits); RFC 2920 (PIPELINING), RFC 1870 (SIZE), RFC 6152 (8BITMIME),
# RFC 6531 (SMTPUTF8), RFC 2034 / RFC 3463 (enhanced status codes), RFC 3461
# (DSN), RFC 3030 (CHUNKING, BINARYMIME), RFC 3207 (STARTTLS), RFC 4954 (AUTH),
# RFC 3848 / RFC 6531 §3.7.3 (the "with" protocol names).
#
# Shape (h11's): receive_data() only buffers; next_event() parses at most one
# command (or one chunk of content) and returns one event, NEED_DATA or PAUSED;
# send() turns the application's decision into the reply bytes. Every reply, the
# engine's own and the application's, is appended to one output buffer in the
# order the commands arrived, and data_to_send() drains it.
#
# While an event waits for a decision, next_event() returns PAUSED and parses
# nothing further: that is how pipelined commands get their replies in order.
#
# Which command is allowed in which state is the table in _state.py; this file
# holds what a table cannot say (arguments, extension switches, session facts).
"""ServerConnection: the server side of an SMTP/ESMTP session, without I/O."""

from __future__ import annotations

import enum
import functools
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from ._address import parse_path, split_path
from ._auth import LOGIN_PASSWORD_CHALLENGE, LOGIN_USERNAME_CHALLENGE, decode_b64, decode_plain
from ._config import ServerConfig
from ._data import BdatReader, DataReader
from ._errors import LocalProtocolError, ParameterError, RemoteProtocolError
from ._events import (
    Accept,
    AuthCredentials,
    CommandRejected,
    ConnectionClosed,
    Decision,
    Event,
    Expand,
    Greeting,
    Hello,
    MailFrom,
    MessageData,
    MessageEnd,
    MessageRejected,
    RcptTo,
    Reject,
    Reset,
    Shutdown,
    StartTLS,
    Verify,
)
from ._params import Body, MailParams, parse_mail_params, parse_rcpt_params
from ._receivebuffer import ReceiveBuffer
from ._reply import Reply, escape_text
from ._state import COMMAND_STATES, SEQUENCE_REPLY, TRANSITIONS, VERBS, State

__all__ = ["NEED_DATA", "PAUSED", "ServerConnection", "Signal"]


class Signal(enum.Enum):
    """What next_event() returns when it has no event."""

    NEED_DATA = "NEED_DATA"  # feed more bytes (after flushing data_to_send())
    PAUSED = "PAUSED"  # waiting for the application: a decision, tls_established(), ...


NEED_DATA: Final = Signal.NEED_DATA
PAUSED: Final = Signal.PAUSED


def _r(code: int, status: str, text: str) -> Reply:
    return Reply(code=code, status=status, lines=(text,))


OK: Final = _r(250, "2.0.0", "Ok")
MAIL_OK: Final = _r(250, "2.1.0", "Ok")
RCPT_OK: Final = _r(250, "2.1.5", "Ok")
MESSAGE_OK: Final = _r(250, "2.0.0", "Ok: message accepted")
AUTH_OK: Final = _r(235, "2.7.0", "Authentication successful")
UNKNOWN_COMMAND: Final = _r(500, "5.5.1", "Command unrecognized")
LINE_TOO_LONG: Final = _r(500, "5.5.2", "Line too long")
BARE_NEWLINE: Final = _r(500, "5.5.2", "Command line must end with <CR><LF>")
BAD_BYTES: Final = _r(500, "5.5.2", "Invalid characters in command")
NOT_IMPLEMENTED: Final = _r(502, "5.5.1", "Command not implemented")
TOO_MANY_ERRORS: Final = _r(421, "4.7.0", "Too many errors, closing connection")
TOO_MUCH_INPUT: Final = _r(421, "4.7.0", "Too much pipelined input, closing connection")
TLS_ON_PLAINTEXT: Final = _r(554, "5.5.0", "TLS handshake on a plaintext session, closing")
PIPELINED_STARTTLS: Final = _r(554, "5.5.0", "Commands pipelined after STARTTLS, closing")
HELO_REFUSED: Final = _r(554, "5.7.1", "HELO/EHLO argument refused by policy")
MAIL_AFTER_REFUSED_HELO: Final = _r(554, "5.7.1", "Refused: HELO/EHLO argument was refused")
NEED_TLS: Final = _r(530, "5.7.0", "Must issue a STARTTLS command first")
AUTH_NEEDS_TLS: Final = _r(
    538, "5.7.11", "Encryption required for requested authentication mechanism"
)
AUTH_CANCELLED: Final = _r(501, "5.7.0", "Authentication cancelled")
AUTH_LINE_TOO_LONG: Final = _r(500, "5.5.6", "Authentication exchange line is too long")
TOO_MANY_RECIPIENTS: Final = _r(452, "4.5.3", "Too many recipients")
BAD_LOCAL_PART: Final = _r(553, "5.1.3", "Local part contains a forbidden character")
PARAMS_NEED_EHLO: Final = _r(555, "5.5.4", "Parameters are not recognized after HELO")
BINARYMIME_NEEDS_BDAT: Final = _r(503, "5.5.1", "BODY=BINARYMIME requires BDAT (RFC 3030)")
GO_AHEAD: Final = Reply(code=354, lines=("End data with <CR><LF>.<CR><LF>",))

# BDAT chunk-size (RFC 3030 §2): 1*DIGIT; at most 18 digits so int() stays cheap
# and bounded (h11#181, CVE-2020-10735).
_BDAT_ARGS = re.compile(r"([0-9]{1,18})(?: +(LAST))? *", re.IGNORECASE | re.ASCII)
# A TLS record header: handshake (0x16), version 3.x (RFC 8446 §5.1).
_TLS_RECORD: Final = b"\x16\x03"
# HELO/EHLO argument: one word of printable ASCII (RFC 5321 §4.1.1.1 wants a
# Domain or address literal; real clients send worse, so only the bytes are checked).
_HELO_ARG = re.compile(r"[\x21-\x7e]+", re.ASCII)
# Command text: printable plus SP/HT, and UTF-8 beyond ASCII (RFC 6531 §3.3).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@functools.lru_cache(maxsize=512)
def _encode(reply: Reply, enhanced: bool) -> bytes:
    """Reply.to_bytes, remembered: most replies are the same few constants."""
    return reply.to_bytes(enhanced=enhanced)


# The replies that depend on the configuration (220, 221, the EHLO list) are the
# same for every connection of a server: each is built and checked once, not per
# session (Reply's validation and to_bytes showed in profiles of short sessions).
@functools.lru_cache(maxsize=64)
def _greeting(hostname: str, text: str) -> Reply:
    return Reply(code=220, lines=(f"{hostname} {text}".rstrip(),))


@functools.lru_cache(maxsize=64)
def _bye(hostname: str) -> Reply:
    return _r(221, "2.0.0", f"{hostname} closing connection")


@functools.lru_cache(maxsize=64)
def _hello_reply(first: str, extensions: tuple[str, ...]) -> bytes:
    # RFC 2034 §3: no status code on the EHLO/HELO reply itself.
    return Reply(code=250, lines=(first, *extensions)).to_bytes(enhanced=False)


def _auth_offered(config: ServerConfig, tls_active: bool) -> bool:
    return bool(config.auth_mechanisms) and (tls_active or not config.auth_require_tls)


def _extensions(config: ServerConfig, tls_active: bool) -> tuple[str, ...]:
    """The EHLO keywords, in the order they are sent (see ServerConnection.extensions)."""
    try:
        return _cached_extensions(config, tls_active)
    except TypeError:  # a list given for a tuple field makes the config unhashable
        return _build_extensions(config, tls_active)


def _build_extensions(config: ServerConfig, tls_active: bool) -> tuple[str, ...]:
    c = config
    ext: list[str] = []
    if c.pipelining:
        ext.append("PIPELINING")
    if c.size:
        ext.append(f"SIZE {c.max_message_size}" if c.max_message_size else "SIZE")
    if c.eightbitmime:
        ext.append("8BITMIME")
    if c.smtputf8:
        ext.append("SMTPUTF8")
    if c.enhanced_status_codes:
        ext.append("ENHANCEDSTATUSCODES")
    if c.dsn:
        ext.append("DSN")
    if c.chunking:
        ext.append("CHUNKING")
    if c.binarymime:
        ext.append("BINARYMIME")
    if c.starttls and not tls_active:
        ext.append("STARTTLS")
    if _auth_offered(c, tls_active):
        ext.append("AUTH " + " ".join(m.upper() for m in c.auth_mechanisms))
    ext.append("HELP")
    return tuple(ext)


_cached_extensions: Final = functools.lru_cache(maxsize=64)(_build_extensions)


def _verb_of(raw: bytes) -> str:
    """The first word of a raw line, for CommandRejected (escaped there)."""
    return raw[:20].split(b" ", 1)[0].split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1")


_Kind = Literal["hello", "mail", "rcpt", "message", "auth", "verify", "expand"]


@dataclass(slots=True)
class _Pending:
    """An event waiting for the application's decision."""

    kind: _Kind
    event: Event
    target: State  # the state an Accept leads to


@dataclass(slots=True)
class _Transaction:
    """Facts of the mail transaction in progress (RFC 5321 §3.3)."""

    params: MailParams
    recipients: int = 0


class ServerConnection:
    """The server side of one SMTP session.

    Args:
        config: Limits, extensions and policy.
        tls_active: True when the connection is already TLS (implicit TLS, port 465,
            RFC 8314); STARTTLS is then not offered.

    Attributes:
        helo_name: The accepted HELO/EHLO argument, or None.
        esmtp: True after an accepted EHLO.
        tls_active: True once TLS protects the connection.
        authenticated_as: The username accepted by AUTH, or None.
    """

    def __init__(self, config: ServerConfig, *, tls_active: bool = False) -> None:
        self.config = config
        self.helo_name: str | None = None
        self.esmtp = False
        self.tls_active = tls_active
        self.authenticated_as: str | None = None
        self._state = State.GREETING
        self._buf = ReceiveBuffer()
        self._out = bytearray()
        self._eof = False
        self._events: deque[Event] = deque()
        self._pending: _Pending | None = None
        self._closed: ConnectionClosed | None = None
        self._transaction: _Transaction | None = None
        self._helo_refused = False
        self._bad_commands = 0
        self._skip_line = False  # discarding an over-long command line up to its LF
        self._skip_verb = ""
        self._skip_bytes = 0  # discarding the chunk of a refused BDAT
        self._data: DataReader | None = None
        self._bdat: BdatReader | None = None
        self._auth_mechanism = ""
        self._auth_username: str | None = None
        self._line_limit = config.command_line_limit  # the config is frozen

    # ------------------------------------------------------------ public facts

    @property
    def state(self) -> State:
        """The current State (see _state.py)."""
        return self._state

    @property
    def with_protocol(self) -> str:
        """The protocol name for a Received: header's "with" clause.

        RFC 3848 (ESMTP, ESMTPS, ESMTPA, ESMTPSA) and RFC 6531 §3.7.3 (UTF8SMTP...,
        when the current transaction uses SMTPUTF8); "SMTP" after HELO.
        """
        if not self.esmtp:
            return "SMTP"
        utf8 = self._transaction is not None and self._transaction.params.smtputf8
        base = "UTF8SMTP" if utf8 else "ESMTP"
        return base + ("S" if self.tls_active else "") + ("A" if self.authenticated_as else "")

    def extensions(self) -> list[str]:
        """The EHLO keywords offered now, in the order they are sent."""
        return list(_extensions(self.config, self.tls_active))

    # -------------------------------------------------------------- byte I/O

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the peer; ``b""`` means the peer closed its side.

        Nothing is parsed here. After EOF, or once the connection is CLOSED, further
        bytes are ignored (a client may keep talking after QUIT).

        Raises:
            LocalProtocolError: If bytes are fed after EOF was fed (state ERROR).
        """
        if self._state in (State.CLOSED, State.ERROR):
            return
        if not data:
            self._eof = True
        elif self._eof:
            self._fail("receive_data() after EOF")
        else:
            self._buf.append(data)

    def data_to_send(self) -> bytes:
        """Take all queued reply bytes, in order."""
        out = bytes(self._out)
        self._out.clear()
        return out

    # ------------------------------------------------------------ next_event

    def next_event(self) -> Event | Signal:
        """Parse input and return the next event, NEED_DATA or PAUSED.

        Returns:
            An Event; NEED_DATA when more bytes are needed; PAUSED while an event
            waits for send(), while waiting for Greeting or tls_established(). After
            ConnectionClosed, returns that same event on every call.

        Raises:
            LocalProtocolError: If the connection is in the ERROR state.
        """
        if self._state is State.ERROR:
            raise LocalProtocolError("connection is in the ERROR state")
        if self._events:
            return self._events.popleft()
        if self._closed is not None:
            return self._closed
        if self._pending is not None or self._state in (State.GREETING, State.STARTTLS):
            if len(self._buf) > self.config.max_buffered_bytes:
                self._close("too much pipelined input", TOO_MUCH_INPUT)
                return self.next_event()
            return PAUSED
        self._step()
        # A pending decision always comes with its event, so no PAUSED here.
        if self._events:
            return self._events.popleft()
        if self._closed is not None:
            return self._closed
        return NEED_DATA

    def _step(self) -> None:
        # Consume input until something is queued, a decision is pending, the
        # connection closes, or more bytes are needed. Each round consumes bytes or
        # changes state, so the loop ends.
        while not self._events and self._pending is None and self._closed is None:
            state = self._state
            if state is State.DATA:
                if not self._step_data():
                    return
            elif state is State.BDAT:
                if not self._step_bdat():
                    return
            elif state is State.AUTH:
                # "AUTH" names refused lines: a SASL response may hold a secret.
                line = self._read_line(self.config.max_auth_line, AUTH_LINE_TOO_LONG, "AUTH")
                if line is None:
                    if self._events and self._state is State.AUTH:
                        self._auth_end()  # the line was refused: the exchange is over
                    return
                self._auth_response(line)
            else:
                assert state in COMMAND_STATES, state
                if self._skip_bytes:
                    self._skip_bytes -= self._buf.discard_at_most(self._skip_bytes)
                    if self._skip_bytes:
                        self._need_data()
                        return
                if not self._skip_line and self._buf.startswith(_TLS_RECORD):
                    # A TLS ClientHello on a plaintext session: no command starts with
                    # 0x16, and waiting for its LF would only hang until a timeout.
                    self._close("TLS handshake on a plaintext session", TLS_ON_PLAINTEXT)
                    return
                base = self._line_limit
                limit = max(base, self.config.max_auth_line) if self._auth_offered() else base
                line = self._read_line(limit, LINE_TOO_LONG)
                if line is None:
                    return
                if (
                    limit > base
                    and len(line) + 2 > base // 4  # cheap pre-check: UTF-8 is 1..4 bytes
                    and line[:4].upper() != "AUTH"
                    and len(line.encode("utf-8")) + 2 > base
                ):
                    # Only AUTH (with its initial response) gets the longer limit.
                    self._protocol_error(line[:20].split(" ", 1)[0], LINE_TOO_LONG)
                    continue
                self._command(line)

    def _need_data(self) -> None:
        if self._eof:
            self._close("peer closed the connection", None)

    def _read_line(self, limit: int, too_long: Reply, verb: str | None = None) -> str | None:
        """Take one CRLF-terminated line as text, or None (need data / answered).

        ``verb`` names the line in CommandRejected; by default its first word.
        """
        raw = self._buf.extract_line()
        if raw is None:
            if len(self._buf) > limit:
                # Keep memory bounded: drop the line now, answer when its LF comes.
                if not self._skip_line:
                    self._skip_line = True
                    self._skip_verb = verb or _verb_of(self._buf.peek(20))
                self._buf.clear()
            self._need_data()
            return None
        if self._skip_line:
            self._skip_line = False
            self._protocol_error(self._skip_verb, too_long)
            return None
        problem: Reply | None = None
        text = ""
        if len(raw) > limit:
            problem = too_long
        elif not raw.endswith(b"\r\n"):
            problem = BARE_NEWLINE
        else:
            try:
                text = raw[:-2].decode("utf-8")
            except UnicodeDecodeError:
                problem = BAD_BYTES
            else:
                if _CONTROL.search(text):
                    # A bare CR inside the line, NUL, or another control byte.
                    problem = BARE_NEWLINE if "\r" in text else BAD_BYTES
        if problem is not None:
            self._protocol_error(verb or _verb_of(raw), problem)
            return None
        return text

    # ---------------------------------------------------------------- replies

    @property
    def _enhanced(self) -> bool:
        # RFC 2034 §3: status codes once ENHANCEDSTATUSCODES was offered in EHLO.
        return self.config.enhanced_status_codes and self.esmtp

    def _reply(self, reply: Reply) -> None:
        self._out += _encode(reply, self._enhanced)

    def _refuse(self, verb: str, reply: Reply, argument: str = "") -> None:
        """Answer a command with the engine's own 4xx/5xx reply."""
        self._reply(reply)
        self._events.append(
            CommandRejected(
                command=escape_text(verb, limit=20),
                reply=reply,
                argument=escape_text(argument, limit=300),
            )
        )

    def _protocol_error(self, verb: str, reply: Reply) -> None:
        """Refuse a command and count it against max_bad_commands."""
        self._bad_commands += 1
        if self._bad_commands > self.config.max_bad_commands:
            self._close("too many errors", TOO_MANY_ERRORS)
        else:
            self._refuse(verb, reply)

    def _close(self, reason: str, reply: Reply | None) -> None:
        if reply is not None:
            self._reply(reply)
        self._state = State.CLOSED
        self._pending = None
        self._buf.clear()
        self._closed = ConnectionClosed(reason=reason)

    def _fail(self, msg: str) -> None:
        self._state = State.ERROR
        raise LocalProtocolError(msg)

    # --------------------------------------------------------------- commands

    def _command(self, line: str) -> None:
        verb, _, arg = line.partition(" ")
        # ASCII only: "quıt".upper() would otherwise become QUIT.
        verb = verb.upper() if verb.isascii() else verb
        if verb not in _VERB_SET:
            self._protocol_error(verb, UNKNOWN_COMMAND)
            return
        if verb == "BDAT":
            # Before anything else: a BDAT whose size we can read has its bytes
            # consumed whatever the answer, or they would be read as commands.
            self._cmd_bdat(arg)
            return
        if not self._extension_enabled(verb):
            self._protocol_error(verb, NOT_IMPLEMENTED)
            return
        target = TRANSITIONS[self._state].get(verb, SEQUENCE_REPLY)
        if isinstance(target, Reply):
            self._protocol_error(verb, target)
            return
        _HANDLERS[verb](self, arg, target)

    def _extension_enabled(self, verb: str) -> bool:
        c = self.config
        if verb == "STARTTLS":
            return c.starttls
        if verb == "AUTH":
            return bool(c.auth_mechanisms)
        if verb == "BDAT":
            return c.chunking
        return True

    def _auth_offered(self) -> bool:
        return _auth_offered(self.config, self.tls_active)

    def _parameter_error(self, verb: str, reply: Reply) -> None:
        # Syntax errors count against max_bad_commands; policy answers (552 size,
        # 553 address) do not.
        if reply.code in (500, 501, 555):
            self._protocol_error(verb, reply)
        else:
            self._refuse(verb, reply)

    def _syntax(self, verb: str, usage: str) -> None:
        self._protocol_error(verb, _r(501, "5.5.4", f"Syntax: {usage}"))

    def _reset_transaction(self) -> None:
        if self._transaction is not None or self._state is State.CHUNKING:
            self._events.append(Reset())
        self._transaction = None
        self._data = None
        self._bdat = None

    def _cmd_helo(self, arg: str, target: State) -> None:
        self._hello("HELO", arg, target)

    def _cmd_ehlo(self, arg: str, target: State) -> None:
        self._hello("EHLO", arg, target)

    def _hello(self, verb: Literal["HELO", "EHLO"], arg: str, target: State) -> None:
        domain = arg.strip(" ")
        if not _HELO_ARG.fullmatch(domain):
            self._syntax(verb, f"{verb} hostname")
            return
        folded = domain.casefold()
        if any(s.casefold() in folded for s in self.config.refuse_helo_containing):
            self._helo_refused = True
            self._refuse(verb, HELO_REFUSED, domain)
            return
        # RFC 5321 §4.1.4: HELO/EHLO in a transaction resets it.
        self._reset_transaction()
        if self._state is not State.CONNECTED:
            self._state = State.READY
        event = Hello(command=verb, domain=domain)
        self._pending = _Pending("hello", event, target)
        self._events.append(event)

    def _cmd_mail(self, arg: str, target: State) -> None:
        c = self.config
        if self._helo_refused:
            self._refuse("MAIL", MAIL_AFTER_REFUSED_HELO)
            return
        if c.require_tls and not self.tls_active:
            self._refuse("MAIL", NEED_TLS)
            return
        if arg[:5].upper() != "FROM:":
            self._syntax("MAIL", "MAIL FROM:<address>")
            return
        esmtp = self.esmtp
        try:
            path, rest = split_path(arg[5:], sender=True)
            if rest.strip(" ") and not esmtp:
                # RFC 5321 §4.1.1.2: parameters only after EHLO.
                raise ParameterError("parameters after HELO", PARAMS_NEED_EHLO)
            params = parse_mail_params(
                rest,
                size=c.size,
                eightbitmime=c.eightbitmime,
                binarymime=c.binarymime,
                smtputf8=c.smtputf8,
                dsn=c.dsn,
                auth=bool(c.auth_mechanisms),
                max_message_size=c.max_message_size,
                max_envid_length=c.max_envid_length,
            )
            sender, raw = parse_path(
                path, allow_null=True, allow_postmaster=False, utf8=params.smtputf8
            )
        except ParameterError as exc:
            self._parameter_error("MAIL", exc.reply)
            return
        event = MailFrom(sender=sender, raw=raw, params=params)
        self._pending = _Pending("mail", event, target)
        self._events.append(event)

    def _cmd_rcpt(self, arg: str, target: State) -> None:
        c = self.config
        assert self._transaction is not None
        if arg[:3].upper() != "TO:":
            self._syntax("RCPT", "RCPT TO:<address>")
            return
        utf8 = self._transaction.params.smtputf8
        try:
            path, rest = split_path(arg[3:], sender=False)
            if rest.strip(" ") and not self.esmtp:
                raise ParameterError("parameters after HELO", PARAMS_NEED_EHLO)
            params = parse_rcpt_params(rest, dsn=c.dsn, utf8=utf8)
            recipient, raw = parse_path(path, allow_null=False, allow_postmaster=True, utf8=utf8)
        except ParameterError as exc:
            self._parameter_error("RCPT", exc.reply)
            return
        assert recipient is not None
        local = recipient.local_part
        if (c.forbid_percent_in_local_part and "%" in local) or (
            c.forbid_bang_in_local_part and "!" in local
        ):
            self._refuse("RCPT", BAD_LOCAL_PART, raw)
            return
        if self._transaction.recipients >= c.max_recipients:
            self._refuse("RCPT", TOO_MANY_RECIPIENTS, raw)
            return
        event = RcptTo(recipient=recipient, raw=raw, params=params)
        self._pending = _Pending("rcpt", event, target)
        self._events.append(event)

    def _cmd_data(self, arg: str, target: State) -> None:
        assert self._transaction is not None
        if arg.strip(" "):
            self._syntax("DATA", "DATA")
            return
        if self._transaction.params.body is Body.BINARY_MIME:
            self._refuse("DATA", BINARYMIME_NEEDS_BDAT)
            return
        c = self.config
        self._data = DataReader(
            max_text_line=c.max_text_line,
            max_size=c.max_message_size,
            bare_newlines=c.bare_newlines,
        )
        self._reply(GO_AHEAD)
        self._state = target

    def _cmd_bdat(self, arg: str) -> None:
        match = _BDAT_ARGS.fullmatch(arg)
        if match is None:
            self._syntax("BDAT", "BDAT chunk-size [LAST]")
            return
        size, last = int(match.group(1)), match.group(2) is not None
        if not self.config.chunking:
            refusal: Reply | None = NOT_IMPLEMENTED
        else:
            target = TRANSITIONS[self._state].get("BDAT", SEQUENCE_REPLY)
            refusal = target if isinstance(target, Reply) else None
        if refusal is not None:
            self._skip_bytes = size
            self._protocol_error("BDAT", refusal)
            return
        if self._bdat is None:
            assert self._transaction is not None
            c = self.config
            self._bdat = BdatReader(
                max_size=c.max_message_size,
                bare_newlines=c.bare_newlines,
                binary=self._transaction.params.body is Body.BINARY_MIME,
            )
        self._bdat.start_chunk(size, last=last)
        self._state = State.BDAT

    def _cmd_rset(self, arg: str, target: State) -> None:
        if arg.strip(" "):
            self._syntax("RSET", "RSET")
            return
        self._reset_transaction()
        self._state = target
        self._reply(OK)

    def _cmd_noop(self, arg: str, target: State) -> None:
        self._reply(OK)

    def _cmd_quit(self, arg: str, target: State) -> None:
        self._close("QUIT", _bye(self.config.hostname))

    def _cmd_help(self, arg: str, target: State) -> None:
        verbs = [v for v in VERBS if self._extension_enabled(v)]
        self._reply(Reply(code=214, status="2.0.0", lines=("Commands: " + " ".join(verbs),)))

    def _cmd_vrfy(self, arg: str, target: State) -> None:
        if not arg.strip(" "):
            self._syntax("VRFY", "VRFY address")
        elif not self.config.vrfy:
            self._reply(
                _r(252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery")
            )
        else:
            event = Verify(argument=arg.strip(" "))
            self._pending = _Pending("verify", event, target)
            self._events.append(event)

    def _cmd_expn(self, arg: str, target: State) -> None:
        if not self.config.expn:
            self._protocol_error("EXPN", NOT_IMPLEMENTED)
        elif not arg.strip(" "):
            self._syntax("EXPN", "EXPN mailing-list")
        else:
            event = Expand(argument=arg.strip(" "))
            self._pending = _Pending("expand", event, target)
            self._events.append(event)

    def _cmd_starttls(self, arg: str, target: State) -> None:
        if self.tls_active:
            self._protocol_error("STARTTLS", _r(503, "5.5.1", "TLS already active"))
            return
        if arg.strip(" "):
            self._syntax("STARTTLS", "STARTTLS")
            return
        if self._buf:
            # CVE-2011-0411: bytes sent before the handshake must never be executed
            # as if they came over TLS. We refuse to start TLS at all.
            self._close("commands pipelined after STARTTLS", PIPELINED_STARTTLS)
            return
        self._reply(_r(220, "2.0.0", "Ready to start TLS"))
        self._state = target
        self._events.append(StartTLS())

    def _cmd_auth(self, arg: str, target: State) -> None:
        c = self.config
        if not self.esmtp:
            self._protocol_error("AUTH", _r(503, "5.5.1", "Send EHLO first"))
            return
        if self.authenticated_as is not None:
            self._protocol_error("AUTH", _r(503, "5.5.1", "Already authenticated"))
            return
        if not self._auth_offered():
            self._refuse("AUTH", AUTH_NEEDS_TLS)
            return
        mechanism, _, initial = arg.strip(" ").partition(" ")
        mechanism = mechanism.upper()
        if mechanism not in {m.upper() for m in c.auth_mechanisms}:
            self._protocol_error("AUTH", _r(504, "5.5.4", "Unrecognized authentication mechanism"))
            return
        initial = initial.strip(" ")
        self._auth_mechanism = mechanism
        self._auth_username = None
        self._state = target
        if not initial:
            challenge = "" if mechanism == "PLAIN" else LOGIN_USERNAME_CHALLENGE
            self._reply(Reply(code=334, lines=(challenge,)))
            return
        self._auth_response(initial)

    def _auth_response(self, text: str) -> None:
        """Handle one SASL response (the initial one or a line in the AUTH state)."""
        if text == "*":
            self._auth_end()
            self._refuse("AUTH", AUTH_CANCELLED)
            return
        try:
            if self._auth_mechanism == "PLAIN":
                authzid, username, password = decode_plain(text)
            elif self._auth_username is None:
                self._auth_username = decode_b64(text)
                self._reply(Reply(code=334, lines=(LOGIN_PASSWORD_CHALLENGE,)))
                return
            else:
                authzid, username = "", self._auth_username
                password = decode_b64(text)
        except ParameterError as exc:
            self._auth_end()
            self._protocol_error("AUTH", exc.reply)
            return
        event = AuthCredentials(
            mechanism=self._auth_mechanism,
            authorization_id=authzid,
            username=username,
            password=password,
        )
        self._pending = _Pending("auth", event, State.READY)
        self._events.append(event)

    def _auth_end(self) -> None:
        self._auth_username = None
        self._state = State.READY

    # ---------------------------------------------------------------- content

    def _step_data(self) -> bool:
        """Advance the DATA reader; False when more bytes are needed."""
        reader = self._data
        assert reader is not None
        chunk = reader.read(self._buf)
        if chunk:
            self._events.append(MessageData(data=chunk))
            return True
        if not reader.done:
            self._need_data()
            return False
        self._content_end(reader.error, reader.size)
        return True

    def _step_bdat(self) -> bool:
        """Advance the BDAT reader; False when more bytes are needed."""
        reader = self._bdat
        assert reader is not None
        chunk = reader.read(self._buf)
        if chunk:
            self._events.append(MessageData(data=chunk))
            return True
        if not reader.chunk_done:
            self._need_data()
            return False
        if reader.last or reader.error is not None:
            self._content_end(reader.error, reader.size)
        else:
            self._reply(_r(250, "2.0.0", f"{reader.size} octets received"))
            self._state = State.CHUNKING
        return True

    def _content_end(self, error: Reply | None, size: int) -> None:
        if error is not None:
            self._reply(error)
            self._events.append(MessageRejected(reply=error))
            self._transaction = None
            self._data = self._bdat = None
            self._state = State.READY
            return
        event = MessageEnd(size=size)
        self._pending = _Pending("message", event, State.READY)
        self._events.append(event)

    # ---------------------------------------------------------------- send

    def send(self, decision: Decision) -> None:
        """Apply the application's decision; its reply joins data_to_send().

        Args:
            decision: Greeting (once, first), Accept or Reject (for the event that is
                waiting), or Shutdown (any time).

        Raises:
            LocalProtocolError: If the decision does not fit the state (e.g. Accept
                with nothing pending). The connection is then in the ERROR state.
        """
        if self._state is State.ERROR:
            raise LocalProtocolError("connection is in the ERROR state")
        if isinstance(decision, Shutdown):
            if self._state is not State.CLOSED:
                self._events.clear()
                self._close("shutdown", decision.reply)
            return
        if isinstance(decision, Greeting):
            if self._state is not State.GREETING:
                self._fail("Greeting is only valid once, first")
            text = decision.text if decision.text is not None else self.config.greeting_text
            self._reply(_greeting(self.config.hostname, text))
            self._state = State.CONNECTED
            return
        pending = self._pending
        if pending is None or pending.event in self._events:
            self._fail(f"{type(decision).__name__} sent with no event waiting for a decision")
        assert pending is not None
        self._pending = None
        if isinstance(decision, Accept):
            self._accept(pending, decision.text)
        elif isinstance(decision, Reject):
            self._rejected(pending, decision.reply())
        else:
            self._fail(f"not a decision: {decision!r}")

    def _accept(self, pending: _Pending, text: str | None) -> None:
        def reply(default: Reply) -> Reply:
            if text is None:
                return default
            return Reply(code=default.code, status=default.status, lines=tuple(text.split("\n")))

        event = pending.event
        if pending.kind == "hello":
            assert isinstance(event, Hello)
            self.helo_name = event.domain
            self.esmtp = event.command == "EHLO"
            first = text or self.config.hostname
            extensions = _extensions(self.config, self.tls_active) if self.esmtp else ()
            self._out += _hello_reply(first, extensions)
        elif pending.kind == "mail":
            assert isinstance(event, MailFrom)
            self._transaction = _Transaction(params=event.params)
            self._reply(reply(MAIL_OK))
        elif pending.kind == "rcpt":
            assert self._transaction is not None
            self._transaction.recipients += 1
            self._reply(reply(RCPT_OK))
        elif pending.kind == "message":
            self._reply(reply(MESSAGE_OK))
            self._transaction = None
            self._data = self._bdat = None
        elif pending.kind == "auth":
            assert isinstance(event, AuthCredentials)
            self.authenticated_as = event.username
            self._reply(reply(AUTH_OK))
            self._auth_username = None
        else:  # verify, expand
            self._reply(reply(RCPT_OK))
        self._state = pending.target

    def _rejected(self, pending: _Pending, reply: Reply) -> None:
        self._reply(reply)
        if pending.kind == "message":
            self._transaction = None
            self._data = self._bdat = None
            self._state = State.READY
        elif pending.kind == "auth":
            self._auth_end()

    # ------------------------------------------------------------------ TLS

    def tls_established(self) -> None:
        """Tell the engine the TLS handshake after STARTTLS succeeded.

        The session starts over (RFC 3207 §4.2): HELO/EHLO, authentication and any
        transaction are forgotten; the client must send EHLO again.

        Raises:
            LocalProtocolError: If no STARTTLS was accepted (state ERROR).
            RemoteProtocolError: If plaintext bytes were fed after the 220 (state
                ERROR); they are discarded, never executed.
        """
        if self._state is not State.STARTTLS:
            self._fail("tls_established() without an accepted STARTTLS")
        if self._buf:
            self._buf.clear()
            self._state = State.ERROR
            raise RemoteProtocolError("plaintext received after STARTTLS", PIPELINED_STARTTLS)
        self.tls_active = True
        self.helo_name = None
        self.esmtp = False
        self.authenticated_as = None
        self._transaction = None
        self._state = State.CONNECTED


# VERBS as a set: one hash instead of a scan of the tuple per command.
_VERB_SET: Final = frozenset(VERBS)

# Verb -> handler, for the verbs _command() dispatches after the table check.
_HANDLERS: Final[dict[str, Callable[[ServerConnection, str, State], None]]] = {
    "HELO": ServerConnection._cmd_helo,
    "EHLO": ServerConnection._cmd_ehlo,
    "MAIL": ServerConnection._cmd_mail,
    "RCPT": ServerConnection._cmd_rcpt,
    "DATA": ServerConnection._cmd_data,
    "RSET": ServerConnection._cmd_rset,
    "NOOP": ServerConnection._cmd_noop,
    "QUIT": ServerConnection._cmd_quit,
    "VRFY": ServerConnection._cmd_vrfy,
    "EXPN": ServerConnection._cmd_expn,
    "HELP": ServerConnection._cmd_help,
    "STARTTLS": ServerConnection._cmd_starttls,
    "AUTH": ServerConnection._cmd_auth,
}
