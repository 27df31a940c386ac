# Invariant: any server bytes into ClientConnection, driven by an application that only
# sends what the rules allow, give events or RemoteProtocolError and nothing else; every
# reply is matched to the oldest command still due; feeding the same bytes whole or split
# gives the same events and the same bytes sent (up to STARTTLS, where what was already
# buffered legitimately matters); and message content written through MessageChunk, cut
# anywhere, comes out of the server's DataReader exactly as sent, with only its line
# endings normalised to CRLF: no early end of data, ever.
"""Fuzz the SMTP client role with raw server bytes (RFC 5321 §4.2, RFC 2920, RFC 3030)."""

from __future__ import annotations

from collections.abc import Iterable

from fuzz._common import ByteProvider, run_fuzzer
from sansio_smtp._address import Mailbox
from sansio_smtp._client import (
    Bdat,
    ClientConnection,
    ClientState,
    Command,
    Data,
    Ehlo,
    EhloResult,
    EndOfMessage,
    GreetingReceived,
    Helo,
    Mail,
    MessageChunk,
    Quit,
    Rcpt,
    ReplyReceived,
    Starttls,
)
from sansio_smtp._config import ServerConfig
from sansio_smtp._data import DataReader
from sansio_smtp._errors import LocalProtocolError, RemoteProtocolError
from sansio_smtp._events import Accept, ConnectionClosed, Greeting, Hello, MailFrom, RcptTo
from sansio_smtp._params import (
    Body,
    MailParams,
    Notify,
    OriginalRecipient,
    RcptParams,
    Ret,
    format_rcpt_params,
    xtext_encode,
)
from sansio_smtp._receivebuffer import ReceiveBuffer
from sansio_smtp._server import NEED_DATA, PAUSED, ServerConnection

# Input layout: flags, split byte (low 4 bits: number of split points), one gap byte per
# split point, then the server's bytes (also used as the message content).
# Flags: bit 0 implicit TLS; 1 HELO instead of EHLO; 2 BDAT when offered; 3 STARTTLS
# when offered; 4 SMTPUTF8 sender when offered; 5 replies limited to 64 bytes per line;
# 6 instead: MAIL/RCPT built from the rest, written by the client, parsed by the server.
_SENDER = Mailbox(local_part="alice", domain="example.com")
_UTF8_SENDER = Mailbox(local_part="jörg", domain="exämple.de")
_RECIPIENTS = (
    Mailbox(local_part="bob", domain="example.org"),
    Mailbox(local_part="postmaster", domain=""),
)
_HELO = Helo(domain="client.example")
_EHLO = Ehlo(domain="client.example")


def _chunks(payload: bytes, gaps: bytes) -> list[bytes]:
    chunks: list[bytes] = []
    pos = 0
    for gap in gaps:
        if pos >= len(payload):
            break
        chunks.append(payload[pos : pos + gap + 1])
        pos += gap + 1
    if pos < len(payload):
        chunks.append(payload[pos:])
    return chunks


class _Client:
    """A well-behaved application: greeting, EHLO, one message, QUIT."""

    def __init__(self, flags: int, content: bytes) -> None:
        self.flags = flags
        self.content = content
        small = bool(flags & 32)
        self.conn = ClientConnection(
            tls_active=bool(flags & 1),
            max_reply_line=64 if small else 512,
            max_reply_lines=4 if small else 100,
        )
        self.sent = bytearray()
        self.due: list[Command] = []
        self.transcript: list[tuple[str, object]] = []
        self.message_sent = False
        self.tls_done = False

    def send(self, command: Command) -> None:
        try:
            data = self.conn.send(command)
        except LocalProtocolError as exc:  # the application checked before sending
            raise AssertionError(f"refused a command the rules allow: {command!r}") from exc
        self.sent += data
        if not isinstance(command, MessageChunk):
            self.due.append(command)

    def can_send(self) -> bool:
        return self.conn.state is ClientState.READY and self.conn.pending_replies == 0

    def start_transaction(self) -> None:
        conn = self.conn
        utf8 = bool(self.flags & 16) and conn.offers("SMTPUTF8") and conn.offers("8BITMIME")
        binary = bool(self.flags & 4) and conn.offers("CHUNKING") and conn.offers("BINARYMIME")
        params = MailParams(
            size=len(self.content) if conn.offers("SIZE") else None,
            body=Body.BINARY_MIME
            if binary
            else (Body.EIGHT_BIT_MIME if conn.offers("8BITMIME") else None),
            smtputf8=utf8,
        )
        self.send(Mail(sender=_UTF8_SENDER if utf8 else _SENDER, params=params))
        if conn.pipelining:
            for recipient in _RECIPIENTS:
                self.send(Rcpt(recipient=recipient))
            self.send_content_command()

    def send_content_command(self) -> None:
        if self.flags & 4 and self.conn.offers("CHUNKING"):
            # Two chunks only when BDAT may be pipelined (RFC 3030 §4.2 with PIPELINING).
            half = len(self.content) // 2 if self.conn.pipelining else 0
            if half:
                self.send(Bdat(data=self.content[:half]))
            self.send(Bdat(data=self.content[half:], last=True))
            self.message_sent = True
        else:
            self.send(Data())

    def react(self, event: object) -> None:
        conn = self.conn
        if isinstance(event, GreetingReceived):
            if event.reply.code == 220:
                self.send(_HELO if self.flags & 2 else _EHLO)
            elif conn.state is ClientState.READY:
                self.send(Quit())
            return
        if conn.state is ClientState.DATA:
            self.send_message()
            return
        if not isinstance(event, (EhloResult, ReplyReceived)) or not self.can_send():
            return
        command = event.command if isinstance(event, ReplyReceived) else _EHLO
        positive = 200 <= event.reply.code < 400
        if isinstance(command, (Ehlo, Helo)):
            if not positive:
                self.send(Quit())
            elif self.flags & 8 and conn.offers("STARTTLS") and not conn.tls_active:
                self.send(Starttls())
            else:
                self.start_transaction()
        elif isinstance(command, Mail) and positive and not self.message_sent:
            self.send(Rcpt(recipient=_RECIPIENTS[0]))
        elif isinstance(command, Rcpt) and positive and not self.message_sent:
            self.send_content_command()
        elif not isinstance(command, Quit):
            self.send(Quit())

    def send_message(self) -> None:
        half = len(self.content) // 3
        for piece in (self.content[:half], self.content[half:]):
            self.send(MessageChunk(data=piece))
        self.send(EndOfMessage())
        self.message_sent = True

    def run(self, chunks: list[bytes]) -> None:
        pending = list(chunks)
        eof = False
        for _ in range(200 + 4 * sum(len(c) for c in chunks)):
            try:
                event = self.conn.next_event()
            except RemoteProtocolError as exc:
                assert self.conn.state is ClientState.ERROR, self.conn.state
                self.transcript.append(("raised", str(exc)))
                return
            if event is NEED_DATA:
                assert not eof, ("NEED_DATA after EOF", self.conn.state)
                if pending:
                    self.conn.receive_data(pending.pop(0))
                else:
                    self.conn.receive_data(b"")
                    eof = True
                continue
            if event is PAUSED:
                assert self.conn.state is ClientState.STARTTLS, self.conn.state
                self.transcript.append(("paused", None))
                try:
                    self.conn.start_tls_completed()
                except RemoteProtocolError as exc:
                    self.transcript.append(("raised", str(exc)))
                    return
                self.send(Ehlo(domain="client.example"))
                continue
            self.transcript.append(("event", event))
            if isinstance(event, ConnectionClosed):
                return
            if isinstance(event, ReplyReceived) and event.command is not None:
                assert self.due, event
                assert event.command == self.due[0], (event, self.due)
                self.due.pop(0)
            elif isinstance(event, EhloResult):
                assert self.due, event
                assert isinstance(self.due[0], Ehlo), (event, self.due)
                self.due.pop(0)
            self.react(event)
        raise AssertionError("client still busy after its budget")


def _content_round_trip(content: bytes, gaps: bytes) -> None:
    """MessageChunk pieces cut anywhere come back from DataReader as sent (CRLF-normalised)."""
    conn = ClientConnection()
    conn.receive_data(b"220 mx\r\n")
    conn.next_event()
    conn.send(Data())
    conn.receive_data(b"354 go\r\n")
    conn.next_event()
    wire = bytearray()
    for piece in _chunks(content, gaps):
        wire += conn.send(MessageChunk(data=piece))
    wire += conn.send(EndOfMessage())
    reader = DataReader(max_text_line=1 << 30, max_size=None, bare_newlines="reject")
    buf = ReceiveBuffer()
    buf.append(bytes(wire))
    out = bytearray()
    for _ in range(8):
        out += reader.read(buf)
        if reader.done:
            break
    assert reader.done, wire
    assert reader.error is None, (reader.error, wire)
    assert not buf, ("bytes after the end of data", bytes(wire))
    expected = content.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if expected and not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert bytes(out) == expected, (content, bytes(wire), bytes(out))


_EHLO_ALL = (
    b"250-mx\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
    b"250-DSN\r\n250-CHUNKING\r\n250-BINARYMIME\r\n250 AUTH PLAIN\r\n"
)
_DOMAINS = ("example.org", "[192.0.2.1]", "[IPv6:2001:db8::1]", "exämple.de", "a-b.c-d.e", "")


def _fits(mailbox: Mailbox | None) -> bool:
    """True when a path is within RFC 5321 §4.5.3.1 limits (the constructor checks none)."""
    if mailbox is None:
        return True
    text = str(mailbox)
    local = text[: text.rfind("@")] if mailbox.domain else text
    return (
        len(text.encode()) + 2 <= 256
        and len(local.encode()) <= 64
        and len(mailbox.domain.encode()) <= 255
        and all(len(label) <= 63 for label in mailbox.domain.split("."))
    )


def _envelope_round_trip(provider: ByteProvider) -> None:
    """MAIL/RCPT written by the client role parse back on the server role to equal values."""
    local = provider.consume_text(70)
    domain = provider.pick(_DOMAINS)
    notify = provider.pick((None, frozenset({Notify.NEVER}), frozenset(Notify) - {Notify.NEVER}))
    try:
        mailbox = Mailbox(local_part=local, domain=domain)
        params = MailParams(
            size=provider.pick((None, 0, 12345)),
            body=provider.pick((None, *Body)),
            smtputf8=mailbox.is_utf8 or provider.consume_bool(),
            auth=provider.pick((None, "<>", str(mailbox))),
            ret=provider.pick((None, *Ret)),
            envid=provider.pick((None, provider.consume_text(40))),
        )
        orcpt_type = provider.pick((None, "rfc822", "utf-8", "x-custom"))
        orcpt = (
            None
            if orcpt_type is None
            else OriginalRecipient(addr_type=orcpt_type, address=str(mailbox))
        )
        rcpt_params = RcptParams(notify=notify, orcpt=orcpt)
    except ValueError:
        return
    client = ClientConnection()
    client.receive_data(b"220 mx\r\n")
    client.next_event()
    client.send(Ehlo(domain="client.example"))
    client.receive_data(_EHLO_ALL)
    client.next_event()
    try:
        wire = client.send(Mail(sender=mailbox, params=params))
        wire += client.send(Rcpt(recipient=mailbox, params=rcpt_params))
    except LocalProtocolError:
        return  # e.g. a UTF-8 mailbox in a transaction without SMTPUTF8
    config = ServerConfig(
        hostname="mx", auth_mechanisms=("PLAIN",), auth_require_tls=False, max_message_size=None
    )
    server = ServerConnection(config)
    server.send(Greeting())
    server.receive_data(b"EHLO client.example\r\n" + wire)
    events = []
    for _ in range(10):
        event = server.next_event()
        if event is NEED_DATA:
            break
        events.append(event)
        if isinstance(event, (Hello, MailFrom, RcptTo)):
            server.send(Accept())
    limit = config.command_line_limit
    lines_fit = all(len(line) + 2 <= limit for line in wire.split(b"\r\n"))
    envid_fits = params.envid is None or len(xtext_encode(params.envid)) <= 100
    orcpt_fits = orcpt is None or len(format_rcpt_params(rcpt_params, utf8=params.smtputf8)) <= 506
    if not (lines_fit and envid_fits and orcpt_fits and _fits(mailbox)):
        return  # a refusal is legitimate; the parsers checked limits the constructors do not
    expected_sender = mailbox
    if mailbox.domain == "":
        expected_sender = Mailbox(local_part="postmaster", domain="")
    mails = [e for e in events if isinstance(e, MailFrom)]
    rcpts = [e for e in events if isinstance(e, RcptTo)]
    if domain == "":
        # <postmaster> is a recipient only; MAIL FROM:<postmaster> is refused (no domain).
        assert not mails, events
        return
    assert len(mails) == 1, (wire, events)
    assert mails[0].sender == expected_sender, (wire, mails[0])
    assert mails[0].params == params, (wire, mails[0].params, params)
    assert len(rcpts) == 1, (wire, events)
    assert rcpts[0].recipient == expected_sender, (wire, rcpts[0])
    assert rcpts[0].params == rcpt_params, (wire, rcpts[0].params, rcpt_params)


def _tls_cut(transcript: list[tuple[str, object]]) -> int:
    for i, (kind, value) in enumerate(transcript):
        if (
            kind == "event"
            and isinstance(value, ReplyReceived)
            and isinstance(value.command, Starttls)
        ):
            return i
    return len(transcript)


def test_one_input(data: bytes) -> None:
    """Runs one fuzz input (see the layout comment above)."""
    if len(data) < 2:
        return
    flags, split = data[0], data[1]
    if flags & 64:
        _envelope_round_trip(ByteProvider(data[2:]))
        return
    count = split & 0x0F
    gaps, payload = data[2 : 2 + count], data[2 + count :]
    _content_round_trip(payload, gaps)
    whole = _Client(flags, payload)
    whole.run([payload] if payload else [])
    if count:
        parts = _Client(flags, payload)
        parts.run(_chunks(payload, gaps))
        a, b = whole.transcript, parts.transcript
        cut = min(_tls_cut(a), _tls_cut(b))
        if cut == len(a) == len(b):
            assert a == b, (a, b)
            assert whole.sent == parts.sent, (whole.sent, parts.sent)
        else:
            assert a[:cut] == b[:cut], (cut, a, b)


def seeds() -> Iterable[tuple[str, bytes]]:
    """Returns server transcripts: plain, pipelined, BDAT, STARTTLS, 421, malformed."""
    ehlo = (
        b"250-mx.example Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n"
        b"250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-BINARYMIME\r\n"
        b"250-STARTTLS\r\n250-AUTH=LOGIN\r\n250 DSN\r\n"
    )
    plain = b"220 mx.example ESMTP\r\n" + ehlo
    ok = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n"
    sessions = {
        "pipelined": plain + ok + b"250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n",
        "no_ehlo_ext": b"220 mx\r\n250 mx\r\n250 Ok\r\n250 Ok\r\n354 go\r\n250 Ok\r\n221 Bye\r\n",
        "helo_session": b"220 mx\r\n250 mx\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n221 bye\r\n",
        "bdat": plain + b"250 Ok\r\n250 Ok\r\n250 Ok\r\n250 Ok\r\n250 Ok\r\n221 Bye\r\n",
        "starttls": plain
        + b"220 2.0.0 Ready to start TLS\r\n"
        + ehlo
        + ok
        + b"250 Ok\r\n221 Bye\r\n",
        "starttls_injected": plain + b"220 2.0.0 Ready\r\n250 2.1.0 injected\r\n",
        "greeting_554": b"554 5.7.1 Go away\r\n221 Bye\r\n",
        "greeting_multiline": b"220-mx.example\r\n220-second line\r\n220 ESMTP\r\n" + ehlo,
        "unsolicited_421": b"220 mx\r\n421 4.3.2 Shutting down\r\n",
        "421_midway": plain + b"250 Ok\r\n421 4.4.2 Timeout\r\n",
        "rcpt_refused": plain
        + b"250 Ok\r\n550 5.1.1 No such user\r\n550 5.1.1 No\r\n"
        + b"554 5.5.1 No valid recipients\r\n250 Ok\r\n221 Bye\r\n",
        "malformed_code_change": b"220-mx\r\n250 mx\r\n",
        "bare_lf_reply": b"220 mx\n250 mx\n",
        "long_line": b"220 " + b"x" * 600 + b"\r\n",
        "extra_reply": b"220 mx\r\n250 mx\r\n250 surprise\r\n250 again\r\n",
        "control_bytes": b"220 mx\x00\x1b[31m\r\n" + ehlo,
        "eof_mid_reply": plain + b"250 O",
        "size_huge": b"220 mx\r\n250-mx\r\n250-SIZE 99999999999999999999999\r\n250 PIPELINING\r\n",
    }
    content_seeds = {
        "content_dots": b"\x00\x00.\r\n..\r\n.\n\r.\r\n\r\n.\r\n",
        "content_smuggle": b"\x00\x03\x02\x01\x00hi\n.\nMAIL FROM:<x@y>\r\n\r.\r\r\n.\n",
    }
    for name, transcript in sessions.items():
        yield name, bytes([0x00, 0x00]) + transcript
        yield f"{name}_split", bytes([0x0C, 0x03, 10, 40, 3]) + transcript
        yield f"{name}_bdat_utf8", bytes([0x14, 0x00]) + transcript
    for name, data in content_seeds.items():
        yield name, data
    envelopes = {
        "envelope_plain": bytes([5])
        + b"alice"
        + bytes([0, 1, 2, 1, 0, 2, 1, 1, 3])
        + b"a+b"
        + b"\x01",
        "envelope_quoted": bytes([8]) + b'a b"c\\d' + bytes([1, 2, 1, 2, 1, 1, 2, 0, 0, 2]),
        "envelope_utf8": bytes([5]) + "zoë".encode() + bytes([3, 1, 0, 3, 1, 0, 0, 0, 2]),
        "envelope_postmaster": bytes([10]) + b"PostMaster" + bytes([5, 0, 0, 0, 0, 0, 0, 0, 1]),
    }
    for name, data in envelopes.items():
        yield name, bytes([0x40, 0x00]) + data


def main() -> None:
    """Starts atheris on this harness."""
    run_fuzzer(test_one_input, packages=("sansio_smtp",))


if __name__ == "__main__":
    main()
