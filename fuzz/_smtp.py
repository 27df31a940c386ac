"""A checking driver for ServerConnection, shared by the SMTP server harnesses.

``Driver`` plays a permissive application (Greeting, then Accept for every decision,
``tls_established()`` right after StartTLS) and checks on every call what the engine
promises whatever the peer sends:

- next_event()/send()/receive_data() return or raise RemoteProtocolError, nothing else
  (a LocalProtocolError would mean the engine blamed a correct application);
- data_to_send() holds only whole, well-formed replies (three digits 2xx-5xx, "-" or SP,
  CRLF, no control bytes, one code per multi-line reply), with an RFC 3463 status on
  every 2xx/4xx/5xx line once EHLO was accepted and ENHANCEDSTATUSCODES is on, except
  the EHLO/HELO reply itself (RFC 2034 §3);
- the peer text events carry (HELO argument, raw paths, rejected verbs and arguments)
  is printable;
- MessageEnd.size is the number of content bytes delivered since the message began, and
  an accepted message holds no bare CR or LF unless it was BODY=BINARYMIME;
- when it needs data, the engine holds no more than one line limit of input;
- every loop is bounded: no input makes the engine spin.

``transcript`` records replies (one entry per reply) and events, with consecutive
MessageData merged, so two runs over the same bytes fed differently can be compared.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from sansio_smtp._config import ServerConfig
from sansio_smtp._errors import LocalProtocolError, RemoteProtocolError
from sansio_smtp._events import (
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
    StartTLS,
    Verify,
)
from sansio_smtp._params import Body
from sansio_smtp._server import NEED_DATA, PAUSED, ServerConnection, Signal

__all__ = [
    "Driver",
    "Observation",
    "config_from_flags",
    "has_bare_newline",
    "split_replies",
    "tls_from_flags",
]

NEEDS_DECISION = (Hello, MailFrom, RcptTo, MessageEnd, AuthCredentials, Verify, Expand)

_REPLY_LINE = re.compile(rb"([2-5][0-9][0-9])(?:([ -])([^\x00-\x1f\x7f]*))?")
_STATUS = re.compile(rb"([245])\.(?:0|[1-9][0-9]{0,2})\.(?:0|[1-9][0-9]{0,2})(?: |$)")

_HELO_DOMAIN = re.compile(r"[\x21-\x7e]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Observation = tuple[str, object]


def tls_from_flags(flags: int) -> bool:
    """Implicit TLS (port 465) when bit 1 is set and STARTTLS (bit 3) is not offered."""
    return flags & 0x0A == 0x02


def config_from_flags(flags: int) -> ServerConfig:
    """Builds one of 256 server configurations from a fuzzer-chosen byte.

    Bits: 0 normalize bare newlines; 1 AUTH needs TLS (and implicit TLS unless bit 3);
    2 small limits; 3 STARTTLS; 4 AUTH PLAIN/LOGIN; 5 no optional extensions;
    6 VRFY/EXPN events; 7 policy hooks (refused HELO word, %/! refused, TLS required).
    """
    small = bool(flags & 4)
    plain = bool(flags & 32)
    return ServerConfig(
        hostname="mx.fuzz.example",
        bare_newlines="normalize" if flags & 1 else "reject",
        starttls=bool(flags & 8),
        auth_mechanisms=("PLAIN", "LOGIN") if flags & 16 else (),
        auth_require_tls=bool(flags & 2),
        pipelining=not plain,
        size=not plain,
        eightbitmime=not plain,
        smtputf8=not plain,
        enhanced_status_codes=not plain,
        dsn=not plain,
        chunking=not plain,
        binarymime=not plain,
        vrfy=bool(flags & 64),
        expn=bool(flags & 64),
        max_command_line=64 if small else 512,
        max_auth_line=64 if small else 12288,
        max_text_line=64 if small else 1000,
        max_recipients=2 if small else 100,
        max_message_size=200 if small else 10_240_000,
        max_buffered_bytes=256 if small else 65536,
        max_bad_commands=3 if small else 20,
        max_envid_length=10 if small else 100,
        refuse_helo_containing=("evil",) if flags & 128 else (),
        forbid_percent_in_local_part=bool(flags & 128),
        forbid_bang_in_local_part=bool(flags & 128),
        require_tls=bool(flags & 128) and bool(flags & 8),
    )


def has_bare_newline(content: bytes) -> bool:
    """True when a CR or LF in ``content`` is not part of a CRLF pair."""
    rest = content.replace(b"\r\n", b"")
    return b"\r" in rest or b"\n" in rest


def split_replies(out: bytes, *, need_status: bool) -> list[bytes]:
    """Splits drained output into whole replies, asserting each is well formed.

    Args:
        out: what one data_to_send() returned.
        need_status: every 2xx/4xx/5xx line must carry an enhanced status code.

    Returns:
        The replies, each with all its lines and CRLFs.
    """
    replies: list[bytes] = []
    assert out == b"" or out.endswith(b"\r\n"), out[-80:]
    lines = out.split(b"\r\n")[:-1] if out else []
    current: list[bytes] = []
    for line in lines:
        match = _REPLY_LINE.fullmatch(line)
        assert match is not None, ("malformed reply line", line)
        code, sep, text = match.group(1), match.group(2), match.group(3) or b""
        if current:
            assert current[0][:3] == code, ("code changed inside a reply", current, line)
        if need_status and code[:1] != b"3":
            status = _STATUS.match(text)
            assert status is not None, ("missing enhanced status", line)
            assert status.group(1) == code[:1], ("status class differs from code", line)
        current.append(line)
        if sep != b"-":
            replies.append(b"".join(x + b"\r\n" for x in current))
            current = []
    assert not current, ("reply cut before its last line", current)
    return replies


@dataclass
class Driver:
    """Runs one server session and checks it (see the module docstring)."""

    config: ServerConfig
    tls_active: bool = False
    decide: Callable[[Event], Decision] | None = None  # the session harness's choices
    transcript: list[Observation] = field(default_factory=list)
    closed: bool = False
    failed: RemoteProtocolError | None = None
    accepted_messages: list[bytes] = field(default_factory=list)
    ended_messages: list[bytes] = field(default_factory=list)
    hold: bool = False  # leave the next decision pending (see push_while_waiting)
    waiting: Event | None = None

    def __post_init__(self) -> None:
        self.conn = ServerConnection(self.config, tls_active=self.tls_active)
        self._content = bytearray()
        self._binary = False
        self._last_hello: Hello | None = None
        self._call(lambda: self.conn.send(Greeting()))
        self._drain(hello_reply=False)

    # -- feeding -------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Gives bytes to the engine (``b""`` is EOF) and handles all it produces."""
        if self.closed or self.failed is not None:
            return
        assert self.waiting is None, "harness bug: use push_while_waiting()"
        if not self._call(lambda: self.conn.receive_data(data)):
            return
        self.pump(budget=64 + 8 * len(data))

    def pump(self, *, budget: int) -> None:
        """Calls next_event() until NEED_DATA or the end, answering every decision."""
        for _ in range(budget):
            if self.closed or self.failed is not None:
                return
            event = self._next_event()
            if event is None:
                return
            self._drain(hello_reply=False)
            if event is NEED_DATA:
                self._check_buffer()
                return
            assert event is not PAUSED, ("PAUSED with nothing for the application", self.conn.state)
            assert isinstance(event, Event), event
            self._record(event)
            if isinstance(event, ConnectionClosed):
                self.closed = True
                return
            if isinstance(event, StartTLS):
                if not self._call(self.conn.tls_established):
                    return
            elif isinstance(event, NEEDS_DECISION):
                if self.hold:
                    self.hold = False
                    self.waiting = event
                    return
                self._answer(event)
        raise AssertionError(f"engine still busy after {budget} next_event() calls")

    def push_while_waiting(self, data: bytes) -> None:
        """Feeds bytes while a decision is held back, then answers and carries on.

        While the application sits on a decision the engine must report PAUSED and hold
        no more than max_buffered_bytes, or close the connection (421).
        """
        event, self.waiting = self.waiting, None
        assert event is not None
        if data and self._call(lambda: self.conn.receive_data(data)):
            result = self._next_event()
            self._drain(hello_reply=False)
            if result is None:
                return
            if isinstance(result, ConnectionClosed):
                self._record(result)
                self.closed = True
                return
            assert result is PAUSED, result
            buffered = len(getattr(self.conn, "_buf", b""))
            assert buffered <= self.config.max_buffered_bytes, buffered
        if self.failed is None:
            self._answer(event)
            self.pump(budget=64 + 8 * len(data))

    @property
    def binary_transaction(self) -> bool:
        """True when the accepted MAIL FROM asked for BODY=BINARYMIME."""
        return self._binary

    # -- internals -----------------------------------------------------------------

    def _answer(self, event: Event) -> None:
        decision: Decision = Accept()
        if self.decide is not None:
            chosen = self.decide(event)
            assert isinstance(chosen, (Accept, Reject)), chosen
            decision = chosen
        if isinstance(event, MessageEnd):
            # MessageEnd.size counts exactly the bytes delivered by MessageData.
            assert event.size == len(self._content), (event.size, len(self._content))
            self.ended_messages.append(bytes(self._content))
            if isinstance(decision, Accept):
                if not self._binary:
                    assert not has_bare_newline(bytes(self._content)), bytes(self._content)
                self.accepted_messages.append(bytes(self._content))
            self._content.clear()
        if isinstance(event, MailFrom) and isinstance(decision, Accept):
            self._binary = event.params.body is Body.BINARY_MIME
        self._last_hello = event if isinstance(event, Hello) else None
        if self._call(lambda: self.conn.send(decision)):
            self._drain(hello_reply=isinstance(event, Hello) and isinstance(decision, Accept))

    def _record(self, event: Event) -> None:
        # Peer text that reaches logs and headers through events is printable.
        if isinstance(event, Hello):
            assert _HELO_DOMAIN.fullmatch(event.domain), event
        elif isinstance(event, (MailFrom, RcptTo)):
            assert not _CONTROL.search(event.raw), event
        elif isinstance(event, CommandRejected):
            assert not _CONTROL.search(event.command), event
            assert not _CONTROL.search(event.argument), event
        if isinstance(event, MessageData):
            assert event.data, "empty MessageData"
            self._content += event.data
            if self.transcript and isinstance(self.transcript[-1][1], MessageData):
                merged = MessageData(data=self.transcript[-1][1].data + event.data)
                self.transcript[-1] = ("event", merged)
                return
        elif isinstance(event, (MessageRejected, Reset)):
            self._content.clear()
        self.transcript.append(("event", event))

    def _drain(self, *, hello_reply: bool) -> None:
        out = self.conn.data_to_send()
        need_status = self.config.enhanced_status_codes and self.conn.esmtp and not hello_reply
        for reply in split_replies(out, need_status=need_status):
            self.transcript.append(("reply", reply))

    def _check_buffer(self) -> None:
        # With nothing pending, the engine holds at most one incomplete line.
        limit = max(self.config.command_line_limit, self.config.max_auth_line)
        buffered = len(getattr(self.conn, "_buf", b""))
        assert buffered <= limit, (buffered, limit, self.conn.state)

    def _next_event(self) -> Event | Signal | None:
        """next_event(), or None (and the run stops) on RemoteProtocolError."""
        result: list[Event | Signal] = []
        if self._call(lambda: result.append(self.conn.next_event())):
            return result[0]
        return None

    def _call(self, action: Callable[[], object]) -> bool:
        """Runs one engine call; False (and the run stops) on RemoteProtocolError."""
        try:
            action()
        except RemoteProtocolError as exc:
            self.failed = exc
            self.transcript.append(("raised", (type(exc).__name__, exc.reply)))
            self._drain(hello_reply=False)
            return False
        except LocalProtocolError as exc:  # the application did nothing wrong
            raise AssertionError(f"engine blamed a correct application: {exc}") from exc
        return True
