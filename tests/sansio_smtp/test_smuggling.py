"""Smuggling: only CRLF.CRLF ends DATA, and nothing pipelined behind STARTTLS runs."""

from __future__ import annotations

import pytest

from sansio_smtp import (
    ConnectionClosed,
    MailFrom,
    MessageData,
    MessageEnd,
    MessageRejected,
    RcptTo,
    RemoteProtocolError,
    StartTLS,
    State,
)

from .helpers import Session, assert_split_invariant, config

ENVELOPE = b"EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n"
SMUGGLED = b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@d.test>\r\nDATA\r\nforged\r\n"

# The end-of-data look-alikes of the 2023 SMTP smuggling research, and friends.
FAKE_ENDS = [
    b"\n.\n",
    b"\n.\r\n",
    b"\r.\r",
    b"\r\n.\r",
    b"\r\n.\n",
    b"\r.\r\n",
    b"\r\n\x00.\r\n",
    b"\r.\n",
    b"\n.\r",
    b"\n\r.\r\n",
    b"\r\n.\x00\r\n",
    b"\r\n .\r\n",
    b"\r\n.\r\r\n",
    b"\r\n.\n\r\n",
]


@pytest.mark.parametrize("fake_end", FAKE_ENDS)
@pytest.mark.parametrize("policy", ["reject", "normalize"])
def test_fake_end_never_ends_message_early(fake_end: bytes, policy: str) -> None:
    """A smuggled envelope behind a fake end stays content; one MessageEnd at most."""
    cfg = config(bare_newlines=policy)
    data = ENVELOPE + b"Subject: x\r\n\r\nbody" + fake_end + SMUGGLED + b".\r\nQUIT\r\n"
    events, output = assert_split_invariant(data, cfg)
    assert sum(isinstance(e, MailFrom) for e in events) == 1
    assert sum(isinstance(e, RcptTo) for e in events) == 1
    ends = [e for e in events if isinstance(e, MessageEnd | MessageRejected)]
    assert len(ends) == 1
    assert events[-1] == ConnectionClosed(reason="QUIT")
    if isinstance(ends[0], MessageEnd):
        content = b"".join(e.data for e in events if isinstance(e, MessageData))
        assert b"MAIL FROM:<evil@x.test>" in content
    else:
        assert policy == "reject"
        assert output.decode().split("\r\n")[-3].startswith("550 5.5.2")


def test_crlf_dot_crlf_split_over_chunks_ends_message() -> None:
    """The real end marker is found whatever the split."""
    data = ENVELOPE + b"a\r\n.\r\nNOOP\r\n"
    events, _ = assert_split_invariant(data)
    assert isinstance(events[-1], MessageEnd)


def test_bare_lf_rejected_after_end_and_session_in_sync() -> None:
    """With "reject", a bare LF refuses the message at its end; next commands work."""
    session = Session.start()
    events = session.feed(ENVELOPE + b"a\nb\r\n.\r\nNOOP\r\n")
    assert any(isinstance(e, MessageRejected) for e in events)
    assert not any(isinstance(e, MessageEnd) for e in events)
    assert session.codes()[-2:] == [
        "550 5.5.2 Message refused: bare <CR> or <LF> in content (RFC 5321 §2.3.8)",
        "250 2.0.0 Ok",
    ]
    assert session.state() is State.READY


def test_starttls_injection_is_refused() -> None:
    """Commands pipelined behind STARTTLS in one read are never run; TLS is refused."""
    session = Session.start(config(starttls=True))
    events = session.feed(b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<evil@x.test>\r\n")
    assert not any(isinstance(e, StartTLS | MailFrom) for e in events)
    assert events[-1] == ConnectionClosed(reason="commands pipelined after STARTTLS")
    assert session.codes()[-1] == "554 5.5.0 Commands pipelined after STARTTLS, closing"
    assert session.state() is State.CLOSED


def test_starttls_injection_split_over_reads() -> None:
    """Plaintext fed after the 220 is discarded and tls_established() raises."""
    session = Session.start(config(starttls=True))
    session.feed(b"EHLO c\r\nSTARTTLS\r\n")
    session.conn.receive_data(b"MAIL FROM:<evil@x.test>\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        session.conn.tls_established()
    assert info.value.reply.code == 554
    assert session.state() is State.ERROR
    assert b"evil" not in bytes(session.output)
