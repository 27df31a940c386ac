"""ClientConnection: commands to bytes, replies to events, pipelining, DATA, STARTTLS."""

from __future__ import annotations

import contextlib
import getpass
import pathlib
import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    Noop,
    Quit,
    Rcpt,
    ReplyReceived,
    Rset,
    Starttls,
)
from sansio_smtp._config import ServerConfig
from sansio_smtp._errors import LocalProtocolError, RemoteProtocolError
from sansio_smtp._events import (
    Accept,
    ConnectionClosed,
    Decision,
    Event,
    Greeting,
    Hello,
    MailFrom,
    MessageData,
    MessageEnd,
    RcptTo,
    Reject,
    StartTLS,
)
from sansio_smtp._params import Body, MailParams, Notify, OriginalRecipient, RcptParams, Ret
from sansio_smtp._reply import Reply
from sansio_smtp._server import NEED_DATA, PAUSED, ServerConnection

ALICE = Mailbox(local_part="alice", domain="a.example")
BOB = Mailbox(local_part="bob", domain="b.example")
EHLO_REPLY = (
    b"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
    b"250-DSN\r\n250-CHUNKING\r\n250-BINARYMIME\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"
)


def events(client: ClientConnection) -> list[object]:
    """Drain events until NEED_DATA, PAUSED or a repeated ConnectionClosed."""
    out: list[object] = []
    for _ in range(1000):
        event = client.next_event()
        if event is NEED_DATA or event is PAUSED:
            return out
        out.append(event)
        if isinstance(event, ConnectionClosed):
            return out
    raise AssertionError("no end of events")


def ready(ehlo: bytes | None = EHLO_REPLY) -> ClientConnection:
    """A client past the greeting and (when given) a positive EHLO."""
    client = ClientConnection()
    client.receive_data(b"220 mx.example ESMTP\r\n")
    assert events(client) == [GreetingReceived(reply=Reply(code=220, lines=("mx.example ESMTP",)))]
    if ehlo is not None:
        assert client.send(Ehlo(domain="client.example")) == b"EHLO client.example\r\n"
        client.receive_data(ehlo)
        (result,) = events(client)
        assert isinstance(result, EhloResult)
    return client


def test_greeting_then_ehlo_exposes_extensions() -> None:
    """The EHLO reply's keywords become extensions, pipelining and the SIZE limit."""
    client = ready()
    assert client.esmtp
    assert client.pipelining
    assert client.max_message_size == 1000
    assert client.offers("auth")
    assert client.extensions["AUTH"] == ("PLAIN",)
    assert client.state is ClientState.READY


def test_nothing_may_be_sent_before_the_greeting() -> None:
    """RFC 5321 §3.1: the client waits for the greeting."""
    client = ClientConnection()
    assert client.next_event() is NEED_DATA
    with pytest.raises(LocalProtocolError):
        client.send(Ehlo(domain="c.example"))


@pytest.mark.parametrize(
    ("command", "wire"),
    [
        (Helo(domain="c.example"), b"HELO c.example\r\n"),
        (Ehlo(domain="[192.0.2.1]"), b"EHLO [192.0.2.1]\r\n"),
        (Mail(sender=None), b"MAIL FROM:<>\r\n"),
        (Mail(sender=ALICE), b"MAIL FROM:<alice@a.example>\r\n"),
        (
            Mail(sender=ALICE, params=MailParams(size=10, body=Body.EIGHT_BIT_MIME)),
            b"MAIL FROM:<alice@a.example> SIZE=10 BODY=8BITMIME\r\n",
        ),
        (
            Mail(sender=ALICE, params=MailParams(ret=Ret.HDRS, envid="id 1", auth="<>")),
            b"MAIL FROM:<alice@a.example> AUTH=<> RET=HDRS ENVID=id+201\r\n",
        ),
        (
            Mail(
                sender=Mailbox(local_part="jörg", domain="bücher.example"),
                params=MailParams(smtputf8=True),
            ),
            "MAIL FROM:<jörg@bücher.example> SMTPUTF8\r\n".encode(),
        ),
        (Rcpt(recipient=BOB), b"RCPT TO:<bob@b.example>\r\n"),
        (Rcpt(recipient=Mailbox(local_part="postmaster", domain="")), b"RCPT TO:<postmaster>\r\n"),
        (
            Rcpt(recipient=Mailbox(local_part="a b", domain="b.example")),
            b'RCPT TO:<"a b"@b.example>\r\n',
        ),
        (
            Rcpt(
                recipient=BOB,
                params=RcptParams(
                    notify=frozenset({Notify.FAILURE, Notify.DELAY}),
                    orcpt=OriginalRecipient(addr_type="rfc822", address="bob+x@b.example"),
                ),
            ),
            b"RCPT TO:<bob@b.example> NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob+2Bx@b.example\r\n",
        ),
        (Data(), b"DATA\r\n"),
        (Bdat(data=b"abc\r\n"), b"BDAT 5\r\nabc\r\n"),
        (Bdat(data=b"", last=True), b"BDAT 0 LAST\r\n"),
        (Rset(), b"RSET\r\n"),
        (Noop(), b"NOOP\r\n"),
        (Quit(), b"QUIT\r\n"),
        (Starttls(), b"STARTTLS\r\n"),
    ],
)
def test_command_bytes(command: Command, wire: bytes) -> None:
    """Each command renders to exactly its RFC 5321 wire form."""
    client = ready()
    assert client.send(command) == wire


def test_utf8_recipient_needs_smtputf8_transaction() -> None:
    """A UTF-8 recipient is only sent in a transaction started with SMTPUTF8."""
    client = ready()
    jorg = Mailbox(local_part="jörg", domain="b.example")
    client.send(Mail(sender=ALICE))
    with pytest.raises(LocalProtocolError, match="SMTPUTF8"):
        client.send(Rcpt(recipient=jorg))
    client.send(Rset())
    client.send(Mail(sender=ALICE, params=MailParams(smtputf8=True)))
    assert client.send(Rcpt(recipient=jorg)) == "RCPT TO:<jörg@b.example>\r\n".encode()


@pytest.mark.parametrize(
    ("command", "keyword"),
    [
        (Mail(sender=ALICE, params=MailParams(size=1)), "SIZE"),
        (Mail(sender=ALICE, params=MailParams(body=Body.EIGHT_BIT_MIME)), "8BITMIME"),
        (Mail(sender=ALICE, params=MailParams(body=Body.BINARY_MIME)), "BINARYMIME"),
        (Mail(sender=ALICE, params=MailParams(smtputf8=True)), "SMTPUTF8"),
        (Mail(sender=ALICE, params=MailParams(auth="<>")), "AUTH"),
        (Mail(sender=ALICE, params=MailParams(ret=Ret.FULL)), "DSN"),
        (Mail(sender=ALICE, params=MailParams(envid="x")), "DSN"),
        (Rcpt(recipient=BOB, params=RcptParams(notify=frozenset({Notify.NEVER}))), "DSN"),
        (Bdat(data=b"x", last=True), "CHUNKING"),
        (Starttls(), "STARTTLS"),
    ],
)
def test_extensions_not_offered_are_refused_locally(command: Command, keyword: str) -> None:
    """RFC 5321 §2.2.1: a parameter or command of an extension not offered is refused."""
    client = ready(b"250 mx.example\r\n")
    with pytest.raises(LocalProtocolError, match=keyword):
        client.send(command)
    assert client.state is ClientState.READY
    assert client.pending_replies == 0


def test_extra_parameters_need_ehlo() -> None:
    """Application-defined parameters are refused after HELO (no ESMTP at all)."""
    client = ready(None)
    client.send(Helo(domain="c.example"))
    client.receive_data(b"250 mx\r\n")
    events(client)
    with pytest.raises(LocalProtocolError, match="EHLO"):
        client.send(Mail(sender=ALICE, params=MailParams(extra=(("X-A", "1"),))))
    client.send(Mail(sender=ALICE))
    client.receive_data(b"250 ok\r\n")
    events(client)
    with pytest.raises(LocalProtocolError, match="EHLO"):
        client.send(Rcpt(recipient=BOB, params=RcptParams(extra=(("X-B", None),))))


def test_extra_parameters_after_ehlo() -> None:
    """After EHLO, extra parameters are written as given."""
    client = ready()
    wire = client.send(Mail(sender=ALICE, params=MailParams(extra=(("MT-PRIORITY", "3"),))))
    assert wire == b"MAIL FROM:<alice@a.example> MT-PRIORITY=3\r\n"


def test_base_command_is_not_sendable() -> None:
    """The Command base class itself is no command."""
    client = ready()
    with pytest.raises(LocalProtocolError, match="not a command"):
        client.send(Command())


def test_utf8_sender_needs_smtputf8_parameter() -> None:
    """A UTF-8 reverse-path without the SMTPUTF8 parameter is refused (RFC 6531 §3.4)."""
    client = ready()
    with pytest.raises(LocalProtocolError, match="SMTPUTF8"):
        client.send(Mail(sender=Mailbox(local_part="jörg", domain="x.example")))


def test_helo_domain_must_be_ascii_domain() -> None:
    """EHLO/HELO arguments are validated: no spaces, CRLF or U-labels."""
    for bad in ("a b", "x\r\nQUIT", "bücher.example", ""):
        with pytest.raises(LocalProtocolError):
            Ehlo(domain=bad)
        with pytest.raises(LocalProtocolError):
            Helo(domain=bad)


def test_pipelining_groups_and_reply_order() -> None:
    """With PIPELINING, MAIL+RCPTs+DATA go in one write; replies map to commands in order."""
    client = ready()
    mail = Mail(sender=ALICE)
    rcpts = [Rcpt(recipient=BOB), Rcpt(recipient=Mailbox(local_part="eve", domain="b.example"))]
    wire = client.send(mail) + b"".join(client.send(r) for r in rcpts) + client.send(Data())
    assert wire.count(b"\r\n") == 4
    with pytest.raises(LocalProtocolError, match="RFC 2920"):
        client.send(Noop())  # DATA ends the group
    client.receive_data(
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 No such user\r\n"
        b"354 End data with <CR><LF>.<CR><LF>\r\n"
    )
    got = events(client)
    assert [e.command for e in got if isinstance(e, ReplyReceived)] == [mail, *rcpts, Data()]
    assert [e.reply.code for e in got if isinstance(e, ReplyReceived)] == [250, 250, 550, 354]
    assert got[2] == ReplyReceived(
        command=rcpts[1], reply=Reply(code=550, status="5.1.1", lines=("No such user",))
    )
    assert client.state is ClientState.DATA


def test_without_pipelining_each_command_waits() -> None:
    """Without PIPELINING a second command before the first reply is refused."""
    client = ready(b"250 mx.example\r\n")
    client.send(Mail(sender=ALICE))
    with pytest.raises(LocalProtocolError, match="wait"):
        client.send(Rcpt(recipient=BOB))
    client.receive_data(b"250 ok\r\n")
    assert len(events(client)) == 1
    assert client.send(Rcpt(recipient=BOB)) == b"RCPT TO:<bob@b.example>\r\n"


def test_content_only_after_354() -> None:
    """MessageChunk before the 354, or a command during content, is refused."""
    client = ready()
    with pytest.raises(LocalProtocolError, match="354"):
        client.send(MessageChunk(data=b"x"))
    client.send(Mail(sender=ALICE))
    client.send(Rcpt(recipient=BOB))
    client.send(Data())
    with pytest.raises(LocalProtocolError, match="354"):
        client.send(EndOfMessage())
    client.receive_data(b"250 ok\r\n250 ok\r\n354 go\r\n")
    events(client)
    with pytest.raises(LocalProtocolError, match="content"):
        client.send(Noop())
    assert client.send(MessageChunk(data=b"Subject: x\r\n\r\nhi")) == b"Subject: x\r\n\r\nhi"
    assert client.send(EndOfMessage()) == b"\r\n.\r\n"
    # End of content starts a new group: the next MAIL may be pipelined behind it.
    assert client.send(Mail(sender=None)) == b"MAIL FROM:<>\r\n"
    client.receive_data(b"250 2.0.0 queued\r\n250 2.1.0 ok\r\n")
    got = events(client)
    assert [type(e.command).__name__ for e in got if isinstance(e, ReplyReceived)] == [
        "EndOfMessage",
        "Mail",
    ]


def test_data_refused_354_never_comes() -> None:
    """A 554 to DATA leaves the client READY, no content allowed."""
    client = ready()
    client.send(Mail(sender=ALICE))
    client.send(Data())
    client.receive_data(b"250 ok\r\n554 5.5.1 No valid recipients\r\n")
    events(client)
    assert client.state is ClientState.READY
    with pytest.raises(LocalProtocolError):
        client.send(MessageChunk(data=b"x"))


@pytest.mark.parametrize(
    ("chunks", "wire"),
    [
        ([b""], b".\r\n"),
        ([b"a"], b"a\r\n.\r\n"),
        ([b"a\r\n"], b"a\r\n.\r\n"),
        ([b".a\r\n"], b"..a\r\n.\r\n"),
        ([b"a\r\n.\r\nb"], b"a\r\n..\r\nb\r\n.\r\n"),
        ([b"a\r\n", b".\r\n"], b"a\r\n..\r\n.\r\n"),
        ([b"a\r", b"\n.b"], b"a\r\n..b\r\n.\r\n"),
        ([b"a\r", b"\r", b"\n.", b"."], b"a\r\n\r\n...\r\n.\r\n"),
        ([b"a\n.\nb"], b"a\r\n..\r\nb\r\n.\r\n"),
        ([b"a\r.\rb"], b"a\r\n..\r\nb\r\n.\r\n"),
        ([b"a\n.\r\n"], b"a\r\n..\r\n.\r\n"),
        ([b"a\r\n.\r"], b"a\r\n..\r\n.\r\n"),
        ([b"..\r\n"], b"...\r\n.\r\n"),
        ([b"x\r\n\x00.\r\n"], b"x\r\n\x00.\r\n.\r\n"),
        ([b"a\r"], b"a\r\n.\r\n"),
    ],
)
def test_dot_stuffing_and_newline_normalisation(chunks: list[bytes], wire: bytes) -> None:
    """Content is CRLF-normalised and dot-stuffed across chunks; smuggling shapes die."""
    assert _send_content(chunks) == wire


def _send_content(chunks: list[bytes]) -> bytes:
    client = ready()
    client.send(Mail(sender=ALICE))
    client.send(Rcpt(recipient=BOB))
    client.send(Data())
    client.receive_data(b"250 ok\r\n250 ok\r\n354 go\r\n")
    events(client)
    out = b"".join(client.send(MessageChunk(data=c)) for c in chunks)
    return out + client.send(EndOfMessage())


def _reference_unstuff(wire: bytes) -> bytes:
    """What a strict server delivers: lines up to the first CRLF.CRLF, unstuffed."""
    assert wire.endswith(b".\r\n")
    lines = wire.split(b"\r\n")
    out: list[bytes] = []
    for line in lines:
        if line == b".":
            break
        out.append(line[1:] if line.startswith(b".") else line)
    return b"".join(x + b"\r\n" for x in out)


def _normalise(content: bytes) -> bytes:
    content = content.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return content if content.endswith(b"\r\n") or not content else content + b"\r\n"


_content = st.lists(st.sampled_from([b"\r", b"\n", b".", b"a", b"\r\n", b"\x00"]), max_size=30).map(
    b"".join
)


@settings(max_examples=200)
@given(content=_content, cuts=st.lists(st.integers(min_value=0, max_value=30), max_size=6))
def test_stuffing_is_chunking_independent(content: bytes, cuts: list[int]) -> None:
    """Any chunking gives the same wire bytes; the only CRLF.CRLF is the final one."""
    points = sorted({min(c, len(content)) for c in cuts})
    chunks = [content[a:b] for a, b in zip([0, *points], [*points, len(content)], strict=True)]
    wire = _send_content(chunks)
    assert wire == _send_content([content])
    assert (b"\r\n" + wire).find(b"\r\n.\r\n") == len(wire) - 3
    assert b"\r" not in wire.replace(b"\r\n", b"")
    assert b"\n" not in wire.replace(b"\r\n", b"")
    assert _reference_unstuff(wire) == _normalise(content)


def test_bdat_sends_bytes_verbatim() -> None:
    """BDAT sends the chunk as is (no stuffing, no normalisation), pipelined."""
    client = ready()
    client.send(Mail(sender=ALICE, params=MailParams(body=Body.BINARY_MIME)))
    client.send(Rcpt(recipient=BOB))
    first = client.send(Bdat(data=b".\n\r.\r\n"))
    last = client.send(Bdat(data=b"end", last=True))
    assert first == b"BDAT 6\r\n.\n\r.\r\n"
    assert last == b"BDAT 3 LAST\r\nend"
    client.receive_data(b"250 ok\r\n250 ok\r\n250 6 octets\r\n250 queued\r\n")
    assert [e.reply.code for e in events(client) if isinstance(e, ReplyReceived)] == [250] * 4


def _state(client: ClientConnection) -> ClientState:
    """The state, read through a call so mypy does not keep an earlier narrowing."""
    return client.state


def test_starttls_pauses_then_forgets_ehlo() -> None:
    """After 220 the client pauses; after the handshake EHLO must be sent again."""
    client = ready()
    client.send(Starttls())
    client.receive_data(b"220 2.0.0 Ready to start TLS\r\n")
    (reply,) = events(client)
    assert isinstance(reply, ReplyReceived)
    assert reply.reply.code == 220
    assert client.state is ClientState.STARTTLS
    assert client.next_event() is PAUSED
    with pytest.raises(LocalProtocolError):
        client.send(Noop())
    client.start_tls_completed()
    assert client.tls_active
    assert client.extensions == {}
    assert not client.esmtp
    assert _state(client) is ClientState.READY
    client.send(Ehlo(domain="c.example"))
    client.receive_data(b"250-mx\r\n250 STARTTLS\r\n")
    events(client)
    with pytest.raises(LocalProtocolError, match="already"):
        client.send(Starttls())


def test_starttls_reply_injection_is_refused() -> None:
    """Bytes behind the 220 (a MITM injecting replies) are a protocol error, never read."""
    client = ready()
    client.send(Starttls())
    client.receive_data(b"220 go ahead\r\n250-fake\r\n250 AUTH PLAIN\r\n")
    with pytest.raises(RemoteProtocolError, match="220"):
        client.next_event()
    assert client.state is ClientState.ERROR
    with pytest.raises(LocalProtocolError):
        client.next_event()


def test_starttls_plaintext_before_handshake_is_refused() -> None:
    """Plaintext arriving after the 220 but before the handshake ends is refused."""
    client = ready()
    client.send(Starttls())
    client.receive_data(b"220 go ahead\r\n")
    events(client)
    client.receive_data(b"250 injected\r\n")
    with pytest.raises(RemoteProtocolError):
        client.start_tls_completed()
    assert client.state is ClientState.ERROR


def test_starttls_plaintext_seen_by_next_event() -> None:
    """Plaintext arriving while PAUSED is also caught by next_event()."""
    client = ready()
    client.send(Starttls())
    client.receive_data(b"220 go ahead\r\n")
    events(client)
    client.receive_data(b"250 injected\r\n")
    with pytest.raises(RemoteProtocolError, match="plaintext"):
        client.next_event()


def test_start_tls_completed_without_220() -> None:
    """start_tls_completed() without an accepted STARTTLS is a local error."""
    client = ready()
    with pytest.raises(LocalProtocolError):
        client.start_tls_completed()


def test_starttls_refused_stays_plaintext() -> None:
    """A 454 to STARTTLS leaves the session in plain text, extensions kept."""
    client = ready()
    client.send(Starttls())
    client.receive_data(b"454 4.7.0 TLS not available\r\n")
    events(client)
    assert client.state is ClientState.READY
    assert client.pipelining


def test_quit_then_close() -> None:
    """221 to QUIT, then EOF, gives ConnectionClosed, returned again after."""
    client = ready()
    client.send(Quit())
    client.receive_data(b"221 2.0.0 Bye\r\n")
    assert isinstance(events(client)[0], ReplyReceived)
    assert client.next_event() is NEED_DATA
    with pytest.raises(LocalProtocolError):
        client.send(Noop())
    client.receive_data(b"")
    closed = client.next_event()
    assert isinstance(closed, ConnectionClosed)
    assert client.next_event() is closed
    assert client.state is ClientState.CLOSED
    client.receive_data(b"ignored")


def test_bytes_after_221_are_ignored() -> None:
    """Nothing after the 221 is parsed; the EOF still closes cleanly."""
    client = ready()
    client.send(Quit())
    client.receive_data(b"221 bye\r\n250 junk\r\n")
    assert len(events(client)) == 1
    assert client.state is ClientState.CLOSED
    client.receive_data(b"more junk")
    client.receive_data(b"")
    assert isinstance(client.next_event(), ConnectionClosed)


def test_unsolicited_421_then_close() -> None:
    """An unsolicited 421 (server timeout) is an event; then EOF closes cleanly."""
    client = ready()
    client.receive_data(b"421 4.4.2 Timeout\r\n")
    (event,) = events(client)
    assert event == ReplyReceived(
        command=None, reply=Reply(code=421, status="4.4.2", lines=("Timeout",))
    )
    with pytest.raises(LocalProtocolError):
        client.send(Noop())
    client.receive_data(b"")
    assert isinstance(client.next_event(), ConnectionClosed)


def test_421_with_commands_outstanding() -> None:
    """421 to a pipelined command ends the session; the rest get no reply, no error."""
    client = ready()
    client.send(Mail(sender=ALICE))
    client.send(Rcpt(recipient=BOB))
    client.receive_data(b"421 4.3.2 Shutting down\r\n")
    client.receive_data(b"")
    got = events(client)
    assert isinstance(got[0], ReplyReceived)
    assert isinstance(got[1], ConnectionClosed)


@pytest.mark.parametrize(
    ("setup", "data", "match"),
    [
        ("greeting", b"", "before the greeting"),
        ("ready", b"250 surprise\r\n", "no command"),
        ("pending", b"", "replies due"),
        ("pending", b"250-partial\r\n", "middle of a reply"),
        ("pending", b"999 nonsense\r\n", "malformed"),
        ("pending", b"250-a\r\n251 b\r\n", "code changed"),
    ],
)
def test_remote_protocol_errors(setup: str, data: bytes, match: str) -> None:
    """Malformed, unexpected or truncated replies raise RemoteProtocolError; ERROR is sticky."""
    if setup == "greeting":
        client = ClientConnection()
    else:
        client = ready()
        if setup == "pending":
            client.send(Noop())
    client.receive_data(data)
    client.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match=match):
        events(client)
    assert client.state is ClientState.ERROR
    with pytest.raises(LocalProtocolError):
        client.send(Noop())


def test_greeting_554_and_421() -> None:
    """A 554 greeting leaves QUIT possible; a 421 greeting allows nothing more."""
    client = ClientConnection()
    client.receive_data(b"554 5.7.1 Go away\r\n")
    (event,) = events(client)
    assert isinstance(event, GreetingReceived)
    assert client.send(Quit()) == b"QUIT\r\n"
    client = ClientConnection()
    client.receive_data(b"421 4.7.0 Too busy\r\n")
    events(client)
    with pytest.raises(LocalProtocolError):
        client.send(Quit())


def test_helo_fallback_forgets_extensions() -> None:
    """After EHLO is refused, HELO works and no extension is assumed."""
    client = ready(None)
    client.send(Ehlo(domain="c.example"))
    client.receive_data(b"502 5.5.1 Not implemented\r\n")
    (refused,) = events(client)
    assert isinstance(refused, ReplyReceived)
    client.send(Helo(domain="c.example"))
    client.receive_data(b"250 mx.example\r\n")
    events(client)
    assert not client.esmtp
    assert client.extensions == {}
    with pytest.raises(LocalProtocolError, match="SIZE"):
        client.send(Mail(sender=ALICE, params=MailParams(size=1)))


def test_reply_events_identical_when_fed_byte_by_byte() -> None:
    """Feeding server bytes one at a time gives exactly the same events."""
    script = b"250 ok\r\n250-a\r\n250 b\r\n354 go\r\n"

    def run(chunks: list[bytes]) -> list[object]:
        client = ready()
        client.send(Mail(sender=ALICE))
        client.send(Rcpt(recipient=BOB))
        client.send(Data())
        got: list[object] = []
        for chunk in chunks:
            client.receive_data(chunk)
            got += events(client)
        return got

    whole = run([script])
    assert run([script[i : i + 1] for i in range(len(script))]) == whole
    assert len(whole) == 3


# ---------------------------------------------------------------------------
# Pairwise: the client role talking to the server engine, whole and byte by byte.


_NEEDS_DECISION = (Hello, MailFrom, RcptTo, MessageEnd)


class Pair:
    """A ClientConnection wired to a ServerConnection whose application decides by rule."""

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        bytewise: bool = False,
        decide: Callable[[Event], Decision] | None = None,
    ) -> None:
        self.server = ServerConnection(config or ServerConfig(hostname="mx.example"))
        self.client = ClientConnection()
        self.bytewise = bytewise
        self.decide = decide or (lambda event: Accept())
        self.server_events: list[Event] = []
        self.messages: list[bytes] = []
        self._content = bytearray()
        self.server.send(Greeting())
        self.greeting = self._to_client()

    def _chunks(self, data: bytes) -> list[bytes]:
        if self.bytewise:
            return [data[i : i + 1] for i in range(len(data))]
        return [data] if data else []

    def _run_server(self) -> None:
        for _ in range(10_000):
            event = self.server.next_event()
            if event is NEED_DATA or event is PAUSED:
                return
            assert isinstance(event, Event)
            self.server_events.append(event)
            if isinstance(event, MessageData):
                self._content += event.data
            if isinstance(event, MessageEnd):
                self.messages.append(bytes(self._content))
                self._content.clear()
            if isinstance(event, _NEEDS_DECISION):
                self.server.send(self.decide(event))
            if isinstance(event, (StartTLS, ConnectionClosed)):
                return
        raise AssertionError("server did not settle")

    def _to_client(self) -> list[object]:
        got: list[object] = []
        for chunk in self._chunks(self.server.data_to_send()):
            self.client.receive_data(chunk)
            got += events(self.client)
        return got

    def send(self, *commands: Command) -> list[object]:
        """Send commands in one write; return the client events their replies make."""
        wire = b"".join(self.client.send(command) for command in commands)
        for chunk in self._chunks(wire):
            self.server.receive_data(chunk)
            self._run_server()
        return self._to_client()


def _codes(got: list[object]) -> list[int]:
    return [e.reply.code for e in got if isinstance(e, (ReplyReceived, EhloResult))]


def _reject_eve(event: Event) -> Decision:
    if isinstance(event, RcptTo) and event.recipient.local_part == "eve":
        return Reject(code=550, status="5.1.1", text="No such user")
    return Accept()


def _conversation(bytewise: bool) -> tuple[Pair, list[object]]:
    pair = Pair(bytewise=bytewise, decide=_reject_eve)
    got = [*pair.greeting]
    got += pair.send(Ehlo(domain="client.example"))
    eve = Mailbox(local_part="eve", domain="b.example")
    got += pair.send(
        Mail(sender=ALICE, params=MailParams(size=40, body=Body.EIGHT_BIT_MIME)),
        Rcpt(recipient=BOB),
        Rcpt(recipient=eve),
        Data(),
    )
    got += pair.send(
        MessageChunk(data=b"Subject: hi\r\n\r\n.leading dot\n"),
        MessageChunk(data=b"\r\n.\r"),
        MessageChunk(data=b"\nlast line"),
        EndOfMessage(),
    )
    got += pair.send(Quit())
    return pair, got


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_pair_full_transaction(bytewise: bool) -> None:
    """Client and server engines complete a pipelined transaction; content arrives intact."""
    pair, got = _conversation(bytewise)
    assert isinstance(got[0], GreetingReceived)
    assert isinstance(got[1], EhloResult)
    assert got[1].extensions["PIPELINING"] == ()
    assert _codes(got) == [250, 250, 250, 550, 354, 250, 221]
    assert pair.messages == [b"Subject: hi\r\n\r\n.leading dot\r\n\r\n.\r\nlast line\r\n"]
    mail = next(e for e in pair.server_events if isinstance(e, MailFrom))
    assert mail.sender == ALICE
    assert mail.params == MailParams(size=40, body=Body.EIGHT_BIT_MIME)
    assert isinstance(pair.server_events[-1], ConnectionClosed)


def test_pair_whole_and_bytewise_agree() -> None:
    """Byte-by-byte delivery in both directions yields the same events on both sides."""
    whole, whole_events = _conversation(False)
    bytewise, bytewise_events = _conversation(True)
    assert whole_events == bytewise_events
    assert [e for e in whole.server_events if not isinstance(e, MessageData)] == [
        e for e in bytewise.server_events if not isinstance(e, MessageData)
    ]
    assert whole.messages == bytewise.messages


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_pair_bdat(bytewise: bool) -> None:
    """BDAT chunks (binary, with bare LF and dots) arrive byte-exact."""
    pair = Pair(bytewise=bytewise)
    pair.send(Ehlo(domain="client.example"))
    got = pair.send(
        Mail(sender=ALICE, params=MailParams(body=Body.BINARY_MIME)),
        Rcpt(recipient=BOB),
        Bdat(data=b"\x00\xff.\n\r.\r\n"),
        Bdat(data=b"tail", last=True),
    )
    assert _codes(got) == [250, 250, 250, 250]
    assert pair.messages == [b"\x00\xff.\n\r.\r\ntail"]


def test_pair_starttls_switch() -> None:
    """STARTTLS pauses both engines; after the handshake EHLO starts over, no STARTTLS."""
    pair = Pair(ServerConfig(hostname="mx.example", starttls=True))
    pair.send(Ehlo(domain="client.example"))
    assert pair.client.offers("STARTTLS")
    got = pair.send(Starttls())
    assert _codes(got) == [220]
    assert isinstance(pair.server_events[-1], StartTLS)
    assert pair.client.next_event() is PAUSED
    pair.server.tls_established()
    pair.client.start_tls_completed()
    got = pair.send(Ehlo(domain="client.example"))
    assert isinstance(got[0], EhloResult)
    assert not pair.client.offers("STARTTLS")
    assert pair.server.tls_active
    assert pair.client.tls_active


def test_pair_server_refusals_reach_the_client() -> None:
    """Server-side refusals (SIZE too big, sequence) come back as ReplyReceived."""
    pair = Pair(ServerConfig(hostname="mx.example", max_message_size=100))
    pair.send(Ehlo(domain="client.example"))
    assert pair.client.max_message_size == 100
    got = pair.send(Mail(sender=ALICE, params=MailParams(size=101)), Rcpt(recipient=BOB))
    assert [(e.reply.code, e.reply.status) for e in got if isinstance(e, ReplyReceived)] == [
        (552, "5.3.4"),
        (503, "5.5.1"),
    ]


def test_pair_smtputf8() -> None:
    """An SMTPUTF8 transaction carries UTF-8 addresses end to end."""
    pair = Pair()
    pair.send(Ehlo(domain="client.example"))
    jorg = Mailbox(local_part="jörg", domain="bücher.example")
    got = pair.send(
        Mail(sender=jorg, params=MailParams(smtputf8=True)),
        Rcpt(recipient=Mailbox(local_part="用户", domain="例子.example")),
    )
    assert _codes(got) == [250, 250]
    rcpt = next(e for e in pair.server_events if isinstance(e, RcptTo))
    assert rcpt.recipient == Mailbox(local_part="用户", domain="例子.example")


_mailboxes = st.builds(
    Mailbox,
    local_part=st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=20
    ),
    domain=st.from_regex(r"[a-z]{1,10}\.example", fullmatch=True),
)
_rcpt_params = st.builds(
    RcptParams,
    notify=st.none()
    | st.just(frozenset({Notify.NEVER}))
    | st.frozensets(st.sampled_from([Notify.SUCCESS, Notify.FAILURE, Notify.DELAY]), min_size=1),
    orcpt=st.none()
    | st.builds(
        OriginalRecipient,
        addr_type=st.sampled_from(["rfc822", "utf-8"]),
        address=st.text(
            alphabet=st.characters(codec="utf-8", blacklist_categories=["Cc"]),
            min_size=1,
            max_size=20,
        ),
    ),
)


@settings(max_examples=60, deadline=None)
@given(
    sender=_mailboxes,
    recipient=_mailboxes,
    params=_rcpt_params,
    envid=st.none()
    | st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=30
    ),
)
def test_pair_envelope_round_trip(
    sender: Mailbox, recipient: Mailbox, params: RcptParams, envid: str | None
) -> None:
    """Whatever envelope the client sends, the server engine sees exactly the same values."""
    pair = Pair()
    pair.send(Ehlo(domain="client.example"))
    mail_params = MailParams(envid=envid, ret=Ret.HDRS)
    got = pair.send(
        Mail(sender=sender, params=mail_params), Rcpt(recipient=recipient, params=params)
    )
    assert _codes(got) == [250, 250]
    mail = next(e for e in pair.server_events if isinstance(e, MailFrom))
    rcpt = next(e for e in pair.server_events if isinstance(e, RcptTo))
    assert (mail.sender, mail.params) == (sender, mail_params)
    assert (rcpt.recipient, rcpt.params) == (recipient, params)


# ---------------------------------------------------------------------------
# Against a real server: aiosmtpd on 127.0.0.1, driven by a tiny blocking socket loop.


class _Recorder:
    """aiosmtpd handler keeping each envelope it accepts."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 2.0.0 OK queued"


@contextlib.contextmanager
def _aiosmtpd(**kwargs: Any) -> Iterator[tuple[int, _Recorder]]:
    from aiosmtpd.controller import Controller

    # Controller needs a fixed port (it connects to it to check readiness): ask the
    # kernel for a free one on loopback first.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    recorder = _Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port, recorder
    finally:
        controller.stop()


class _Driver:
    """Blocking socket glue for ClientConnection: write what send() gives, read replies."""

    def __init__(self, port: int) -> None:
        self.sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.client = ClientConnection()

    def until(self, count: int) -> list[object]:
        """Read until ``count`` events arrived (bounded by the socket timeout)."""
        got: list[object] = []
        for _ in range(10_000):
            got += events(self.client)
            if len(got) >= count or self.client.state is ClientState.STARTTLS:
                return got
            data = self.sock.recv(65536)
            self.client.receive_data(data)
            if not data:
                got += events(self.client)
                return got
        raise AssertionError("no reply")

    def send(self, *commands: Command) -> list[object]:
        wire = b"".join(self.client.send(c) for c in commands)
        self.sock.sendall(wire)
        expected = sum(not isinstance(c, MessageChunk) for c in commands)
        return self.until(expected) if expected else []


@pytest.mark.slow
def test_aiosmtpd_transaction() -> None:
    """A full transaction to aiosmtpd over loopback delivers the message unchanged."""
    content = b"Subject: test\r\n\r\n.dot first\r\nbare\nlf\r\n..two\r\n"
    with _aiosmtpd(enable_SMTPUTF8=True) as (port, recorder):
        driver = _Driver(port)
        with driver.sock:
            (greeting,) = driver.until(1)
            assert isinstance(greeting, GreetingReceived)
            assert greeting.reply.code == 220
            (ehlo,) = driver.send(Ehlo(domain="client.example"))
            assert isinstance(ehlo, EhloResult)
            assert not driver.client.pipelining  # aiosmtpd does not offer it
            assert driver.client.max_message_size == 33554432
            assert _codes(
                driver.send(Mail(sender=ALICE, params=MailParams(size=len(content))))
            ) == [250]
            assert _codes(driver.send(Rcpt(recipient=BOB))) == [250]
            assert _codes(
                driver.send(Rcpt(recipient=Mailbox(local_part="c d", domain="x.example")))
            ) == [250]
            assert _codes(driver.send(Data())) == [354]
            driver.send(MessageChunk(data=content[:20]), MessageChunk(data=content[20:]))
            done = driver.send(EndOfMessage())
            assert done[0] == ReplyReceived(
                command=EndOfMessage(), reply=Reply(code=250, status="2.0.0", lines=("OK queued",))
            )
            assert _codes(driver.send(Quit())) == [221]
            driver.sock.shutdown(socket.SHUT_WR)
            assert isinstance(driver.until(1)[-1], ConnectionClosed)
    (envelope,) = recorder.envelopes
    assert envelope.mail_from == "alice@a.example"
    assert envelope.rcpt_tos == ["bob@b.example", '"c d"@x.example']
    assert envelope.content == content.replace(b"bare\nlf", b"bare\r\nlf")


@pytest.mark.slow
def test_aiosmtpd_starttls() -> None:
    """STARTTLS against aiosmtpd: pause, real TLS handshake, EHLO again, send mail."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with _aiosmtpd(tls_context=server_ctx) as (port, recorder):
        driver = _Driver(port)
        driver.until(1)
        driver.send(Ehlo(domain="client.example"))
        assert driver.client.offers("STARTTLS")
        (reply,) = driver.send(Starttls())
        assert isinstance(reply, ReplyReceived)
        assert reply.reply.code == 220
        assert driver.client.next_event() is PAUSED
        driver.sock = client_ctx.wrap_socket(driver.sock, server_hostname="localhost")
        driver.client.start_tls_completed()
        with driver.sock:
            (ehlo,) = driver.send(Ehlo(domain="client.example"))
            assert isinstance(ehlo, EhloResult)
            assert not driver.client.offers("STARTTLS")
            driver.send(Mail(sender=None))
            driver.send(Rcpt(recipient=BOB))
            driver.send(Data())
            driver.send(MessageChunk(data=b"Subject: tls\r\n\r\nsecret"))
            assert _codes(driver.send(EndOfMessage())) == [250]
            assert _codes(driver.send(Quit())) == [221]
    (envelope,) = recorder.envelopes
    assert envelope.mail_from == "<>"
    assert envelope.content == b"Subject: tls\r\n\r\nsecret\r\n"


_reply_lines = st.lists(
    st.sampled_from(
        [
            b"250 ok\r\n",
            b"250-more\r\n",
            b"354 go\r\n",
            b"220 tls\r\n",
            b"221 bye\r\n",
            b"421 4.4.2 closing\r\n",
            b"550 5.1.1 no\r\n",
            b"999 bad\r\n",
            b"250 \xff\r\n",
            b"25",
            b"\r\n",
            b"",
        ]
    ),
    max_size=12,
).map(b"".join)


@settings(max_examples=200)
@given(
    data=_reply_lines | st.binary(max_size=100),
    bytewise=st.booleans(),
    eof=st.booleans(),
)
def test_arbitrary_server_bytes_only_raise_protocol_errors(
    data: bytes, bytewise: bool, eof: bool
) -> None:
    """Whatever the server sends, the client yields events or a ProtocolError, nothing else."""
    client = ready()
    client.send(Mail(sender=ALICE))
    client.send(Rcpt(recipient=BOB))
    client.send(Data())
    chunks = [data[i : i + 1] for i in range(len(data))] if bytewise else [data]
    try:
        for chunk in chunks:
            client.receive_data(chunk)
            events(client)
        if eof:
            client.receive_data(b"")
            events(client)
    except (LocalProtocolError, RemoteProtocolError):
        assert client.state is ClientState.ERROR


# ---------------------------------------------------------------------------
# Against Postfix's smtp-sink, where installed.

_SMTP_SINK = shutil.which("smtp-sink") or shutil.which("/usr/sbin/smtp-sink")


@contextlib.contextmanager
def _smtp_sink(dump_dir: pathlib.Path) -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert _SMTP_SINK is not None
    proc = subprocess.Popen(
        [
            _SMTP_SINK,
            "-u",
            getpass.getuser(),
            "-m",
            "1",
            "-d",
            f"{dump_dir}/msg.",
            f"127.0.0.1:{port}",
            "10",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):  # wait until it listens; bounded by 200 x 50 ms
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except ConnectionRefusedError:
                assert proc.poll() is None, "smtp-sink exited"
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.skipif(_SMTP_SINK is None, reason="Postfix smtp-sink is not installed")
def test_smtp_sink_pipelined_dsn_transaction(tmp_path: pathlib.Path) -> None:
    """Pipelined MAIL+RCPT+DATA with DSN parameters to smtp-sink; the dump matches."""
    with _smtp_sink(tmp_path) as port:
        driver = _Driver(port)
        with driver.sock:
            driver.until(1)
            driver.send(Ehlo(domain="client.example"))
            assert driver.client.pipelining
            assert driver.client.offers("DSN")
            got = driver.send(
                Mail(sender=ALICE, params=MailParams(ret=Ret.HDRS, envid="env 1")),
                Rcpt(
                    recipient=BOB,
                    params=RcptParams(
                        notify=frozenset({Notify.SUCCESS, Notify.FAILURE}),
                        orcpt=OriginalRecipient(addr_type="rfc822", address="bob@b.example"),
                    ),
                ),
                Data(),
            )
            assert _codes(got) == [250, 250, 354]
            driver.send(MessageChunk(data=b"Subject: sink\r\n\r\n.dot\r\n"))
            assert _codes(driver.send(EndOfMessage(), Quit())) == [250, 221]
    dumps = [p for p in tmp_path.iterdir() if p.name.startswith("msg.")]
    text = max(dumps, key=lambda p: p.stat().st_size).read_bytes()
    assert b"X-Mail-Args: <alice@a.example> RET=HDRS ENVID=env+201\n" in text
    assert (
        b"X-Rcpt-Args: <bob@b.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@b.example\n" in text
    )
    assert text.rstrip(b"\n").endswith(b"Subject: sink\n\n.dot")  # stored with LF ends
