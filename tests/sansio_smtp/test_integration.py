"""Longer sessions through ServerConnection: STARTTLS, BDAT, pipelining, EOF."""

from __future__ import annotations

import base64

import pytest

from sansio_smtp import (
    PAUSED,
    CommandRejected,
    Hello,
    LocalProtocolError,
    MailFrom,
    MessageData,
    MessageEnd,
    MessageRejected,
    Reset,
    StartTLS,
    State,
)

from .helpers import Session, assert_split_invariant, config

ENVELOPE = b"EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n"


def test_starttls_resets_the_session() -> None:
    """After tls_established() the client must EHLO again; STARTTLS is gone, AUTH appears."""
    session = Session.start(config(starttls=True, auth_mechanisms=("PLAIN",)))
    session.feed(b"EHLO c.test\r\n")
    assert "250-STARTTLS" in session.replies()
    events = session.feed(b"STARTTLS\r\n")
    assert events == [StartTLS()]
    session.conn.tls_established()
    assert session.state() is State.CONNECTED
    assert session.conn.helo_name is None
    assert not session.conn.esmtp
    assert session.conn.tls_active
    session.feed(b"MAIL FROM:<a@b.test>\r\nEHLO c.test\r\n")
    replies = session.replies()
    assert "503 Send HELO/EHLO first" in replies
    tail = replies[replies.index("503 Send HELO/EHLO first") + 1 :]
    assert "250-STARTTLS" not in tail
    assert "250-AUTH PLAIN" in tail
    session.feed(b"STARTTLS\r\n")
    assert session.codes()[-1] == "503 5.5.1 TLS already active"
    assert session.conn.with_protocol == "ESMTPS"


def test_starttls_refusals() -> None:
    """STARTTLS with an argument, before EHLO or in a transaction is refused."""
    session = Session.start(config(starttls=True))
    session.feed(b"STARTTLS\r\nEHLO c\r\nSTARTTLS now\r\nMAIL FROM:<a@b.test>\r\nSTARTTLS\r\n")
    assert session.codes() == [
        "503 Send HELO/EHLO first",
        "250 HELP",
        "501 5.5.4 Syntax: STARTTLS",
        "250 2.1.0 Ok",
        "503 5.5.1 Not allowed during a transaction",
    ]


def test_tls_established_without_starttls_is_misuse() -> None:
    """tls_established() outside the STARTTLS state raises LocalProtocolError."""
    session = Session.start()
    with pytest.raises(LocalProtocolError):
        session.conn.tls_established()
    assert session.state() is State.ERROR


def test_implicit_tls_offers_no_starttls() -> None:
    """With tls_active=True (port 465) STARTTLS is neither offered nor accepted."""
    session = Session.start(config(starttls=True), tls_active=True)
    session.feed(b"EHLO c\r\nSTARTTLS\r\n")
    assert "250-STARTTLS" not in session.replies()
    assert session.codes()[-1] == "503 5.5.1 TLS already active"


def test_bdat_session() -> None:
    """BDAT chunks are acknowledged with their size; LAST ends the message."""
    data = ENVELOPE + b"BDAT 5\r\nab\r\nc" + b"BDAT 3 last\r\nd\r\n" + b"QUIT\r\n"
    events, output = assert_split_invariant(data)
    content = b"".join(e.data for e in events if isinstance(e, MessageData))
    assert content == b"ab\r\ncd\r\n"
    assert MessageEnd(size=8) in events
    finals = [line for line in output.decode().split("\r\n") if line[3:4] == " "]
    assert finals[-3:] == [
        "250 2.0.0 5 octets received",
        "250 2.0.0 Ok: message accepted",
        "221 2.0.0 mx.test closing connection",
    ]


def test_bdat_zero_last_and_data_mixing() -> None:
    """BDAT 0 LAST ends a message; DATA after BDAT in a transaction gets 503."""
    session = Session.start()
    session.feed(ENVELOPE + b"BDAT 2\r\nhiDATA\r\nBDAT 0 LAST\r\n")
    assert session.codes()[-3:] == [
        "250 2.0.0 2 octets received",
        "503 5.5.1 DATA not allowed after BDAT (RFC 3030)",
        "250 2.0.0 Ok: message accepted",
    ]
    assert session.state() is State.READY


def test_refused_bdat_bytes_are_skipped() -> None:
    """A refused BDAT's bytes are consumed, never read as commands."""
    session = Session.start()
    smuggled = b"MAIL FROM:<evil@x.test>\r\n"
    events = session.feed(b"EHLO c\r\nBDAT %d\r\n%sNOOP\r\n" % (len(smuggled), smuggled))
    assert not any(isinstance(e, MailFrom) for e in events)
    assert session.codes()[-2:] == ["503 5.5.1 Need MAIL command", "250 2.0.0 Ok"]
    off = Session.start(config(chunking=False, binarymime=False))
    off.feed(b"EHLO c\r\nBDAT 6\r\nRSET\r\nNOOP\r\n")
    assert off.codes()[-2:] == ["502 5.5.1 Command not implemented", "250 2.0.0 Ok"]


@pytest.mark.parametrize("arg", [b"", b"x", b"-1", b"1 LASTX", b"1234567890123456789"])
def test_bdat_syntax(arg: bytes) -> None:
    """A BDAT size that cannot be read (or is over 18 digits) gets 501 5.5.4."""
    session = Session.start()
    session.feed(ENVELOPE + b"BDAT " + arg + b"\r\n")
    assert session.codes()[-1] == "501 5.5.4 Syntax: BDAT chunk-size [LAST]"


def test_bdat_over_size_limit_refused_after_chunk() -> None:
    """A BDAT chunk crossing max_message_size is consumed, then 552 5.3.4."""
    session = Session.start(config(max_message_size=4))
    events = session.feed(ENVELOPE + b"BDAT 6\r\n123456NOOP\r\n")
    assert any(isinstance(e, MessageRejected) for e in events)
    assert session.codes()[-2:] == ["552 5.3.4 Message size exceeds fixed limit", "250 2.0.0 Ok"]


def test_bdat_then_rset_drops_transaction() -> None:
    """RSET between BDAT chunks ends the transaction with Reset."""
    session = Session.start()
    events = session.feed(ENVELOPE + b"BDAT 1\r\nxRSET\r\n")
    assert isinstance(events[-1], Reset)
    assert session.state() is State.READY


def test_two_messages_in_one_session() -> None:
    """After a message, a new transaction starts cleanly (DATA, then BDAT)."""
    data = (
        ENVELOPE
        + b"DATA\r\none\r\n.\r\n"
        + b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT 5 LAST\r\ntwo\r\n"
    )
    events, _ = assert_split_invariant(data)
    assert [e.size for e in events if isinstance(e, MessageEnd)] == [5, 5]


def test_pipelined_replies_in_order_with_errors_between() -> None:
    """Engine errors and application answers interleave in command order."""
    session = Session.start()
    session.feed(b"EHLO c\r\nMAIL FROM:<a@b.test>\r\nBOGUS\r\nRCPT TO:<c@d.test>\r\nDATA x\r\n")
    assert session.codes()[1:] == [
        "250 2.1.0 Ok",
        "500 5.5.1 Command unrecognized",
        "250 2.1.5 Ok",
        "501 5.5.4 Syntax: DATA",
    ]
    kinds = [type(e) for e in session.events]
    assert kinds == [Hello, MailFrom, CommandRejected, type(session.events[3]), CommandRejected]


def test_auth_then_mail_with_auth_parameter() -> None:
    """After AUTH, MAIL may carry AUTH=<> (RFC 4954 §5)."""
    session = Session.start(config(auth_mechanisms=("PLAIN",), auth_require_tls=False))
    token = base64.b64encode(b"\0u\0p").decode()
    events = session.feed(
        f"EHLO c\r\nAUTH PLAIN {token}\r\nMAIL FROM:<a@b.test> AUTH=<>\r\n".encode()
    )
    mail = events[-1]
    assert isinstance(mail, MailFrom)
    assert mail.params.auth == "<>"


def test_greeting_then_immediate_eof() -> None:
    """A client that connects and leaves produces ConnectionClosed, nothing else."""
    session = Session.start()
    assert session.feed(b"") == [session.events[-1]]
    assert session.conn.next_event() is not PAUSED
