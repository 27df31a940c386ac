"""ServerConnection: whole sessions, replies and their order."""

from __future__ import annotations

from sansio_smtp import (
    Hello,
    MailFrom,
    MessageData,
    MessageEnd,
    RcptTo,
)

from .helpers import Session, assert_split_invariant

BASIC = (
    b"EHLO client.test\r\n"
    b"MAIL FROM:<a@example.org> SIZE=20\r\n"
    b"RCPT TO:<b@example.net>\r\n"
    b"DATA\r\n"
    b"Subject: hi\r\n\r\n..dot\r\n.\r\n"
    b"QUIT\r\n"
)


def test_basic_pipelined_session() -> None:
    """A whole pipelined session yields the envelope, content and in-order replies."""
    events, output = assert_split_invariant(BASIC)
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "Hello",
        "MailFrom",
        "RcptTo",
        "MessageData",
        "MessageEnd",
        "ConnectionClosed",
    ]
    assert isinstance(events[0], Hello)
    assert events[0].domain == "client.test"
    assert isinstance(events[1], MailFrom)
    assert events[1].params.size == 20
    assert isinstance(events[2], RcptTo)
    assert str(events[2].recipient) == "b@example.net"
    assert events[3] == MessageData(data=b"Subject: hi\r\n\r\n.dot\r\n")
    assert events[4] == MessageEnd(size=len(b"Subject: hi\r\n\r\n.dot\r\n"))
    lines = output.decode().split("\r\n")
    assert lines[0] == "220 mx.test ESMTP"
    finals = [line for line in lines if line[3:4] == " "]
    assert finals[2:] == [
        "250 2.1.0 Ok",
        "250 2.1.5 Ok",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 Ok: message accepted",
        "221 2.0.0 mx.test closing connection",
    ]


def test_session_records_replies() -> None:
    """Session.feed pumps events and records reply bytes."""
    session = Session.start()
    session.feed(b"HELO x\r\nNOOP\r\n")
    assert session.codes() == ["250 mx.test", "250 Ok"]
