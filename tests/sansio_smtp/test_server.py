"""ServerConnection: whole sessions, replies, their order, limits and policy."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sansio_smtp import (
    NEED_DATA,
    PAUSED,
    Accept,
    AuthCredentials,
    Body,
    CommandRejected,
    ConnectionClosed,
    Event,
    Expand,
    Greeting,
    Hello,
    LocalProtocolError,
    MailFrom,
    MessageData,
    MessageEnd,
    MessageRejected,
    Notify,
    RcptTo,
    Reject,
    RemoteProtocolError,
    Reply,
    Reset,
    ServerConnection,
    Shutdown,
    StartTLS,
    State,
    Verify,
)

from .helpers import Session, assert_split_invariant, config, run

LINE_TOO_LONG_REPLY_500 = Reply(code=500, status="5.5.2", lines=("Line too long",))

BASIC = (
    b"EHLO client.test\r\n"
    b"MAIL FROM:<a@example.org> SIZE=20\r\n"
    b"RCPT TO:<b@example.net>\r\n"
    b"DATA\r\n"
    b"Subject: hi\r\n\r\n..dot\r\n.\r\n"
    b"QUIT\r\n"
)
ENVELOPE = b"EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n"


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


def test_ehlo_lists_every_enabled_extension() -> None:
    """EHLO answers with the hostname then each enabled keyword, without status codes."""
    session = Session.start(config(starttls=True, auth_mechanisms=("PLAIN", "LOGIN")))
    session.feed(b"EHLO c\r\n")
    assert session.replies() == [
        "250-mx.test",
        "250-PIPELINING",
        "250-SIZE 10240000",
        "250-8BITMIME",
        "250-SMTPUTF8",
        "250-ENHANCEDSTATUSCODES",
        "250-DSN",
        "250-CHUNKING",
        "250-BINARYMIME",
        "250-STARTTLS",
        "250 HELP",
    ]


def test_each_extension_can_be_switched_off() -> None:
    """With every switch off, EHLO offers only HELP."""
    cfg = config(
        pipelining=False,
        size=False,
        eightbitmime=False,
        smtputf8=False,
        enhanced_status_codes=False,
        dsn=False,
        chunking=False,
        binarymime=False,
    )
    session = Session.start(cfg)
    session.feed(b"EHLO c\r\nNOOP\r\n")
    assert session.replies() == ["250-mx.test", "250 HELP", "250 Ok"]


def test_ehlo_reply_follows_tls_and_survives_an_unhashable_config() -> None:
    """The cached EHLO list depends on TLS, and a list-valued field does not break EHLO."""
    for mechanisms in (("PLAIN",), ["PLAIN"]):
        cfg = config(auth_mechanisms=mechanisms, starttls=True)
        plain = ServerConnection(cfg)
        tls = ServerConnection(cfg, tls_active=True)
        assert "STARTTLS" in plain.extensions()
        assert "AUTH PLAIN" not in plain.extensions()
        assert "STARTTLS" not in tls.extensions()
        assert "AUTH PLAIN" in tls.extensions()
        session = Session.start(cfg)
        session.feed(b"EHLO c\r\n")
        assert "250-STARTTLS" in session.replies()


def test_size_without_limit_is_bare_keyword() -> None:
    """SIZE is advertised without a number when there is no size limit (RFC 1870 §4)."""
    session = Session.start(config(max_message_size=None))
    session.feed(b"EHLO c\r\n")
    assert "250-SIZE" in session.replies()


def test_auth_offered_only_after_tls_when_required() -> None:
    """AUTH appears in EHLO only over TLS when auth_require_tls (the default)."""
    cfg = config(auth_mechanisms=("PLAIN",))
    plain = Session.start(cfg)
    plain.feed(b"EHLO c\r\n")
    assert not any("AUTH" in line for line in plain.replies())
    tls = Session.start(cfg, tls_active=True)
    tls.feed(b"EHLO c\r\n")
    assert "250-AUTH PLAIN" in tls.replies()
    relaxed = Session.start(config(auth_mechanisms=("LOGIN",), auth_require_tls=False))
    relaxed.feed(b"EHLO c\r\n")
    assert "250-AUTH LOGIN" in relaxed.replies()


def test_helo_session_has_no_enhanced_codes() -> None:
    """After HELO, replies carry no enhanced status code (RFC 2034 needs EHLO)."""
    session = Session.start()
    session.feed(b"HELO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nRSET\r\nFOO\r\n")
    assert session.codes() == [
        "250 mx.test",
        "250 Ok",
        "250 Ok",
        "250 Ok",
        "500 Command unrecognized",
    ]
    assert session.conn.with_protocol == "SMTP"


def test_verbs_are_case_insensitive() -> None:
    """Verbs and the FROM:/TO: keywords match in any case."""
    session = Session.start()
    events = session.feed(b"ehlo c\r\nmail from:<a@b.test>\r\nRcPt To:<c@d.test>\r\nnoop\r\n")
    assert [type(e) for e in events] == [Hello, MailFrom, RcptTo]
    assert session.codes()[-1] == "250 2.0.0 Ok"


def test_unknown_command_and_sequence_errors() -> None:
    """Unknown verbs get 500 5.5.1, misplaced ones 503 5.5.1, and the engine says so."""
    session = Session.start()
    events = session.feed(b"XYZZY\r\nMAIL FROM:<a@b.test>\r\nEHLO c\r\nRCPT TO:<c@d.test>\r\n")
    assert session.codes() == [
        "500 Command unrecognized",
        "503 Send HELO/EHLO first",
        "250 HELP",
        "503 5.5.1 Need MAIL command",
    ]
    rejected = [e for e in events if isinstance(e, CommandRejected)]
    assert [e.command for e in rejected] == ["XYZZY", "MAIL", "RCPT"]
    assert session.state() is State.READY


def test_rejected_command_verb_is_escaped() -> None:
    """A control byte in an unknown verb is escaped in CommandRejected."""
    session = Session.start()
    events = session.feed(b"X\x1bY\r\n")
    assert events == [CommandRejected(command="X\\x1bY", reply=events[0].reply)]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"HELO\r\n", "501 Syntax: HELO hostname"),
        (b"EHLO\r\n", "501 Syntax: EHLO hostname"),
        (b"EHLO a\xff\r\n", "500 Invalid characters in command"),
        (b"EHLO a\x00b\r\n", "500 Invalid characters in command"),
        (b"EHLO a\rb\r\n", "500 Command line must end with <CR><LF>"),
        (b"EHLO ab\n", "500 Command line must end with <CR><LF>"),
    ],
)
def test_bad_command_lines(line: bytes, reply: str) -> None:
    """Malformed command lines are answered, never executed."""
    session = Session.start()
    events = session.feed(line)
    assert session.codes() == [reply]
    assert not any(isinstance(e, Hello) for e in events)


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        (b"MAIL TO:<a@b.test>", "501 5.5.4 Syntax: MAIL FROM:<address>"),
        (b"MAIL FROM:a@b.test", "501 5.1.7 Bad sender address syntax"),
        (b"MAIL FROM:<a@b.test> FOO=1", "555 5.5.4"),
        (b"MAIL FROM:<a@b.test> SIZE=99999999999", "552 5.3.4"),
        (b"DATA x", "503 5.5.1 Need MAIL command"),
        (b"MAIL FROM:<a@b.test>\r\nRCPT FROM:<c@d.test>", "501 5.5.4 Syntax: RCPT TO:<address>"),
        (b"RSET x", "501 5.5.4 Syntax: RSET"),
        (b"VRFY", "501 5.5.4 Syntax: VRFY address"),
        (b"EXPN list", "502 5.5.1 Command not implemented"),
        (b"STARTTLS", "502 5.5.1 Command not implemented"),
        (b"AUTH PLAIN", "502 5.5.1 Command not implemented"),
    ],
)
def test_command_argument_errors(command: bytes, reply: str) -> None:
    """Each bad argument gets its precise reply and leaves the session as it was."""
    session = Session.start()
    session.feed(b"EHLO c\r\n" + command + b"\r\n")
    assert session.codes()[-1].startswith(reply)
    assert session.state() in (State.READY, State.MAIL)


def test_vrfy_default_and_help_and_noop() -> None:
    """VRFY gets 252 2.5.2 unless enabled; HELP lists enabled verbs; NOOP 250."""
    session = Session.start()
    session.feed(b"EHLO c\r\nVRFY bob\r\nHELP\r\nNOOP anything\r\n")
    codes = session.codes()
    assert codes[1].startswith("252 2.5.2 ")
    assert codes[2] == (
        "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY EXPN HELP"
    )
    assert codes[3] == "250 2.0.0 Ok"


def test_vrfy_and_expn_events_when_enabled() -> None:
    """With vrfy/expn on, the application answers Verify and Expand."""

    def decide(event: Event) -> Accept | Reject:
        if isinstance(event, Expand):
            return Reject(code=550, status="5.1.1", text="No such list")
        return Accept(text="Bob <bob@d.test>" if isinstance(event, Verify) else None)

    session = Session.start(config(vrfy=True, expn=True), decide)
    events = session.feed(b"EHLO c\r\nVRFY bob\r\nEXPN staff\r\nEXPN\r\n")
    assert Verify(argument="bob") in events
    assert Expand(argument="staff") in events
    assert session.codes()[1:] == [
        "250 2.1.5 Bob <bob@d.test>",
        "550 5.1.1 No such list",
        "501 5.5.4 Syntax: EXPN mailing-list",
    ]


def test_rset_drops_transaction_and_reports_reset() -> None:
    """RSET in a transaction emits Reset and returns to READY; outside it, no Reset."""
    session = Session.start()
    events = session.feed(ENVELOPE + b"RSET\r\nRSET\r\n")
    assert [type(e) for e in events].count(Reset) == 1
    assert session.state() is State.READY
    assert session.codes()[-2:] == ["250 2.0.0 Ok", "250 2.0.0 Ok"]


def test_rset_before_helo_stays_connected() -> None:
    """RSET before HELO is fine and does not skip the greeting exchange."""
    session = Session.start()
    session.feed(b"RSET\r\n")
    assert session.state() is State.CONNECTED


def test_ehlo_in_transaction_resets_it() -> None:
    """EHLO during a transaction drops it (RFC 5321 §4.1.4) before the new Hello."""
    session = Session.start()
    events = session.feed(ENVELOPE + b"EHLO again\r\n")
    assert [type(e) for e in events][-2:] == [Reset, Hello]
    assert session.state() is State.READY


def test_rejected_decisions_keep_state() -> None:
    """A rejected MAIL or RCPT leaves the state as before; replies use the app's code."""

    def decide(event: Event) -> Accept | Reject:
        if isinstance(event, RcptTo) and event.recipient.local_part == "nobody":
            return Reject(code=550, status="5.1.1", text="No such user")
        if isinstance(event, MailFrom) and event.sender is None:
            return Reject(code=451, status="4.7.1", text="Try later\nreally")
        return Accept()

    session = Session.start(decide=decide)
    session.feed(b"EHLO c\r\nMAIL FROM:<>\r\n")
    assert session.state() is State.READY
    session.feed(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<nobody@d.test>\r\nDATA\r\n")
    assert session.state() is State.MAIL
    assert session.replies()[-5:-1] == [
        "451-4.7.1 Try later",
        "451 4.7.1 really",
        "250 2.1.0 Ok",
        "550 5.1.1 No such user",
    ]
    assert session.codes()[-1] == "554 5.5.1 No valid recipients"


def test_hello_rejected_by_application() -> None:
    """A rejected HELO leaves the session unnamed."""
    session = Session.start(decide=lambda e: Reject(code=550, status="5.7.1", text="No"))
    session.feed(b"HELO c\r\n")
    assert session.conn.helo_name is None
    assert session.state() is State.CONNECTED


def test_accept_text_replaces_default() -> None:
    """Accept(text=...) is used as the reply text, e.g. the queue id."""
    session = Session.start(decide=lambda e: Accept(text="Ok: queued as 4F2A"))
    session.feed(ENVELOPE + b"DATA\r\nx\r\n.\r\n")
    assert session.replies()[0] == "250-Ok: queued as 4F2A"
    assert session.codes()[-1] == "250 2.0.0 Ok: queued as 4F2A"


def test_message_rejected_by_application() -> None:
    """Rejecting MessageEnd ends the transaction; the next MAIL is accepted."""

    def decide(event: Event) -> Accept | Reject:
        if isinstance(event, MessageEnd):
            return Reject(code=554, status="5.7.1", text="Spam")
        return Accept()

    session = Session.start(decide=decide)
    session.feed(ENVELOPE + b"DATA\r\nx\r\n.\r\nMAIL FROM:<a@b.test>\r\n")
    assert session.codes()[-2:] == ["554 5.7.1 Spam", "250 2.1.0 Ok"]
    assert session.state() is State.MAIL


def test_too_many_recipients() -> None:
    """Beyond max_recipients, RCPT gets 452 4.5.3."""
    session = Session.start(config(max_recipients=2))
    session.feed(b"EHLO c\r\nMAIL FROM:<a@b.test>\r\n" + b"RCPT TO:<x@d.test>\r\n" * 3)
    assert session.codes()[-3:] == ["250 2.1.5 Ok", "250 2.1.5 Ok", "452 4.5.3 Too many recipients"]


def test_postmaster_and_null_sender() -> None:
    """MAIL FROM:<> and RCPT TO:<postmaster> are accepted."""
    session = Session.start()
    events = session.feed(b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\n")
    assert isinstance(events[1], MailFrom)
    assert events[1].sender is None
    assert isinstance(events[2], RcptTo)
    assert events[2].recipient.domain == ""


def test_parameters_after_helo_refused() -> None:
    """MAIL/RCPT parameters need EHLO (RFC 5321 §4.1.1.2): 555 after HELO."""
    session = Session.start()
    session.feed(b"HELO c\r\nMAIL FROM:<a@b.test> SIZE=1\r\nMAIL FROM:<a@b.test>\r\n")
    session.feed(b"RCPT TO:<c@d.test> NOTIFY=NEVER\r\n")
    refused = "555 Parameters are not recognized after HELO"
    assert session.codes()[1:] == [refused, "250 Ok", refused]


def test_utf8_address_needs_smtputf8() -> None:
    """UTF-8 addresses are refused without SMTPUTF8 and accepted with it."""
    session = Session.start()
    events = session.feed(
        "EHLO c\r\nMAIL FROM:<jörg@b.test>\r\nMAIL FROM:<jörg@b.test> SMTPUTF8\r\n"
        "RCPT TO:<ünï@d.test>\r\n".encode()
    )
    assert session.codes()[1].startswith("553 5.6.7")
    mails = [e for e in events if isinstance(e, MailFrom)]
    assert mails[0].params.smtputf8
    assert session.conn.with_protocol == "UTF8SMTP"
    assert any(isinstance(e, RcptTo) and e.recipient.local_part == "ünï" for e in events)


def test_dsn_off_refuses_dsn_parameters() -> None:
    """With DSN off, no DSN keyword and RET/ENVID/NOTIFY/ORCPT get 555 5.5.4."""
    session = Session.start(config(dsn=False))
    session.feed(
        b"EHLO c\r\nMAIL FROM:<a@b.test> RET=HDRS\r\nMAIL FROM:<a@b.test> ENVID=x\r\n"
        b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test> NOTIFY=NEVER\r\n"
        b"RCPT TO:<c@d.test> ORCPT=rfc822;c@d.test\r\n"
    )
    assert "250-DSN" not in session.replies()
    codes = session.codes()[1:]
    assert [c[:9] for c in codes] == [
        "555 5.5.4",
        "555 5.5.4",
        "250 2.1.0",
        "555 5.5.4",
        "555 5.5.4",
    ]


def test_dsn_parameters_are_typed() -> None:
    """DSN parameters arrive typed on MailFrom and RcptTo."""
    session = Session.start()
    events = session.feed(
        b"EHLO c\r\nMAIL FROM:<a@b.test> RET=HDRS ENVID=QQ+2B1 BODY=8BITMIME\r\n"
        b"RCPT TO:<c@d.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c@d.test\r\n"
    )
    mail = events[1]
    rcpt = events[2]
    assert isinstance(mail, MailFrom)
    assert mail.params.envid == "QQ+1"
    assert mail.params.body is Body.EIGHT_BIT_MIME
    assert isinstance(rcpt, RcptTo)
    assert rcpt.params.notify == frozenset({Notify.SUCCESS, Notify.FAILURE})
    assert rcpt.params.orcpt is not None


@pytest.mark.parametrize(
    ("cfg", "local", "refused"),
    [
        ({"forbid_percent_in_local_part": True}, "a%b", True),
        ({"forbid_percent_in_local_part": True}, "a!b", False),
        ({"forbid_bang_in_local_part": True}, "a!b", True),
        ({"forbid_bang_in_local_part": True}, '"a%b"', False),
        ({"forbid_percent_in_local_part": True}, '"x\\%y"', True),
        ({}, "a%b!c", False),
    ],
)
def test_local_part_policy(cfg: dict[str, bool], local: str, refused: bool) -> None:
    """% and ! in RCPT local parts are refused by separate switches, on the decoded part."""
    session = Session.start(config(**cfg))
    session.feed(f"EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<{local}@d.test>\r\n".encode())
    expected = "553 5.1.3 Local part contains a forbidden character" if refused else "250 2.1.5 Ok"
    assert session.codes()[-1] == expected


def test_policy_refusals_name_what_they_refused() -> None:
    """A forbidden-character refusal carries the path, escaped, for the log."""
    session = Session.start(config(forbid_bang_in_local_part=True))
    events = session.feed(b'EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<"x\\\\y!z"@d.test>\r\n')
    refusal = events[-1]
    assert isinstance(refusal, CommandRejected)
    assert refusal.argument == '"x\\x5c\\x5cy!z"@d.test'


def test_refused_helo_blocks_mail_for_the_session() -> None:
    """A HELO containing a refused text gets 554 5.7.1, and MAIL is refused afterwards."""
    session = Session.start(config(refuse_helo_containing=("Bad.Example",)))
    events = session.feed(b"EHLO c\r\nEHLO mx.BAD.example.com\r\nMAIL FROM:<a@b.test>\r\n")
    assert session.codes()[1:] == [
        "554 5.7.1 HELO/EHLO argument refused by policy",
        "554 5.7.1 Refused: HELO/EHLO argument was refused",
    ]
    assert sum(isinstance(e, Hello) for e in events) == 1
    refusal = next(e for e in events if isinstance(e, CommandRejected))
    assert (refusal.command, refusal.argument) == ("EHLO", "mx.BAD.example.com")
    session.feed(b"EHLO good\r\nMAIL FROM:<a@b.test>\r\n")
    assert session.codes()[-1].startswith("554 5.7.1")


def test_require_tls_refuses_mail_before_tls() -> None:
    """With require_tls, MAIL gets 530 5.7.0 until TLS is active."""
    session = Session.start(config(require_tls=True))
    session.feed(b"EHLO c\r\nMAIL FROM:<a@b.test>\r\n")
    assert session.codes()[-1] == "530 5.7.0 Must issue a STARTTLS command first"
    tls = Session.start(config(require_tls=True), tls_active=True)
    tls.feed(b"EHLO c\r\nMAIL FROM:<a@b.test>\r\n")
    assert tls.codes()[-1] == "250 2.1.0 Ok"
    assert tls.conn.with_protocol == "ESMTPS"


def test_bad_command_budget_closes_with_421() -> None:
    """After max_bad_commands protocol errors the next one gets 421 4.7.0 and closes."""
    session = Session.start(config(max_bad_commands=3))
    events = session.feed(b"EHLO c\r\n" + b"BOGUS\r\n" * 5)
    assert session.codes()[-1] == "421 4.7.0 Too many errors, closing connection"
    assert session.codes().count("500 5.5.1 Command unrecognized") == 3
    assert events[-1] == ConnectionClosed(reason="too many errors")
    assert session.conn.next_event() == ConnectionClosed(reason="too many errors")


def test_overlong_command_line_is_skipped_to_its_end() -> None:
    """A command line over the limit is discarded up to its LF and answered 500 5.5.2."""
    limit = config().command_line_limit
    data = b"EHLO c\r\nNOOP " + b"x" * (limit + 100) + b"\r\nNOOP\r\n"
    events, output = assert_split_invariant(data)
    finals = [line for line in output.decode().split("\r\n") if line[3:4] == " "]
    assert finals[-2:] == ["500 5.5.2 Line too long", "250 2.0.0 Ok"]
    assert isinstance(events[-1], CommandRejected)


def test_command_line_exactly_at_limit_is_read() -> None:
    """A command line of exactly the limit (CRLF included) is executed."""
    limit = config().command_line_limit
    data = b"NOOP " + b"x" * (limit - 7) + b"\r\n"
    assert len(data) == limit
    session = Session.start()
    session.feed(data)
    assert session.codes() == ["250 Ok"]


def test_quit_discards_later_input() -> None:
    """Bytes after QUIT are never executed; ConnectionClosed repeats."""
    session = Session.start()
    events = session.feed(b"QUIT\r\nEHLO c\r\n")
    assert events == [ConnectionClosed(reason="QUIT")]
    session.feed(b"MAIL FROM:<a@b.test>\r\n")
    assert session.codes() == ["221 mx.test closing connection"]
    assert session.state() is State.CLOSED


@pytest.mark.parametrize(
    "prefix",
    [b"", b"EHLO c\r\n", ENVELOPE, ENVELOPE + b"DATA\r\nabc", ENVELOPE + b"BDAT 9\r\nab"],
)
def test_eof_in_every_phase_closes(prefix: bytes) -> None:
    """EOF ends the session with ConnectionClosed in any phase, after pending input."""
    session = Session.start()
    if prefix:
        session.feed(prefix)
    events = session.feed(b"")
    assert events[-1] == ConnectionClosed(reason="peer closed the connection")


def test_eof_keeps_pipelined_commands() -> None:
    """Commands that arrived before EOF are still processed."""
    session = Session.start()
    session.conn.receive_data(b"EHLO c\r\nQUIT\r\n")
    session.conn.receive_data(b"")
    events = session.pump()
    assert [type(e) for e in events] == [Hello, ConnectionClosed]
    assert events[-1] == ConnectionClosed(reason="QUIT")


def test_data_after_eof_is_misuse() -> None:
    """Feeding bytes after b"" raises LocalProtocolError and leaves ERROR."""
    conn = ServerConnection(config())
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"x")
    assert conn.state is State.ERROR
    with pytest.raises(LocalProtocolError):
        conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.send(Accept())
    conn.receive_data(b"ignored")


def test_greeting_flow() -> None:
    """The engine waits (PAUSED) for Greeting; a second Greeting is misuse."""
    conn = ServerConnection(config(), tls_active=False)
    conn.receive_data(b"EHLO c\r\n")
    assert conn.next_event() is PAUSED
    assert conn.data_to_send() == b""
    conn.send(Greeting(text="Welcome"))
    assert conn.data_to_send() == b"220 mx.test Welcome\r\n"
    assert isinstance(conn.next_event(), Hello)
    with pytest.raises(LocalProtocolError):
        conn.send(Greeting())
    assert conn.state is State.ERROR


def test_shutdown_instead_of_greeting() -> None:
    """Shutdown before the greeting sends its reply and closes."""
    conn = ServerConnection(config())
    conn.send(Shutdown(reply=Reply(code=554, status="5.7.1", lines=("Go away",))))
    assert conn.data_to_send() == b"554 Go away\r\n"
    assert conn.next_event() == ConnectionClosed(reason="shutdown")
    conn.send(Shutdown(reply=Reply(code=421)))  # harmless once closed
    assert conn.data_to_send() == b""


def test_shutdown_while_waiting_for_decision() -> None:
    """Shutdown while an event waits replaces the answer with the shutdown reply."""
    session = Session.start()
    session.conn.receive_data(b"EHLO c\r\n")
    assert isinstance(session.conn.next_event(), Hello)
    session.conn.send(Shutdown(reply=Reply(code=421, status="4.4.2", lines=("Timeout",))))
    assert session.conn.data_to_send() == b"421 Timeout\r\n"
    assert session.conn.next_event() == ConnectionClosed(reason="shutdown")


def test_shutdown_after_ehlo_has_status() -> None:
    """After EHLO, a Shutdown reply carries its enhanced status code."""
    session = Session.start()
    session.feed(b"EHLO c\r\n")
    session.conn.send(Shutdown(reply=Reply(code=421, status="4.4.2", lines=("Timeout",))))
    assert session.conn.data_to_send() == b"421 4.4.2 Timeout\r\n"


def test_decision_without_pending_event_is_misuse() -> None:
    """Accept with nothing waiting raises LocalProtocolError; the state becomes ERROR."""
    session = Session.start()
    with pytest.raises(LocalProtocolError):
        session.conn.send(Accept())
    assert session.state() is State.ERROR


def test_send_refuses_non_decisions() -> None:
    """send() with something that is not a decision is misuse."""
    session = Session.start()
    session.conn.receive_data(b"HELO c\r\n")
    assert isinstance(session.conn.next_event(), Hello)
    with pytest.raises(LocalProtocolError):
        session.conn.send(MessageEnd(size=1))  # type: ignore[arg-type]
    assert session.state() is State.ERROR


def test_decision_before_event_is_pulled_is_misuse() -> None:
    """Deciding before next_event() handed out the event is misuse."""
    session = Session.start()
    session.conn.receive_data(b"EHLO c\r\nNOOP\r\n")
    conn = session.conn
    # next_event parses EHLO and returns it; deciding earlier is impossible, so
    # queue a Reset before the Hello to show the check: EHLO in a transaction.
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), Hello)
    conn.send(Accept())
    assert conn.next_event() == ConnectionClosed(reason="peer closed the connection")


def test_paused_until_decision() -> None:
    """While an event waits, next_event() returns PAUSED and parses nothing more."""
    session = Session.start()
    conn = session.conn
    conn.receive_data(b"EHLO c\r\nNOOP\r\n")
    assert isinstance(conn.next_event(), Hello)
    assert conn.next_event() is PAUSED
    assert conn.data_to_send() == b""
    conn.send(Accept())
    assert conn.next_event() is NEED_DATA
    assert conn.data_to_send().endswith(b"250 2.0.0 Ok\r\n")


def test_too_much_input_while_paused() -> None:
    """A peer flooding input while the engine waits is closed with 421 4.7.0."""
    session = Session.start(config(max_buffered_bytes=100))
    conn = session.conn
    conn.receive_data(b"EHLO c\r\n" + b"NOOP\r\n" * 50)
    assert isinstance(conn.next_event(), Hello)
    assert conn.next_event() == ConnectionClosed(reason="too much pipelined input")
    assert conn.data_to_send().endswith(b"421 Too much pipelined input, closing connection\r\n")


def test_with_protocol_names() -> None:
    """with_protocol follows RFC 3848 and RFC 6531 §3.7.3."""
    cfg = config(auth_mechanisms=("PLAIN",))
    session = Session.start(cfg, tls_active=True)
    assert session.conn.with_protocol == "SMTP"
    token = base64.b64encode(b"\0u\0p").decode()
    session.feed(f"EHLO c\r\nAUTH PLAIN {token}\r\n".encode())
    assert session.conn.with_protocol == "ESMTPSA"
    session.feed(b"MAIL FROM:<a@b.test> SMTPUTF8\r\n")
    assert session.conn.with_protocol == "UTF8SMTPSA"


def test_binarymime_requires_bdat() -> None:
    """DATA after BODY=BINARYMIME gets 503 (RFC 3030 §3); BDAT delivers bytes as is."""
    session = Session.start()
    session.feed(
        b"EHLO c\r\nMAIL FROM:<a@b.test> BODY=BINARYMIME\r\nRCPT TO:<c@d.test>\r\nDATA\r\n"
    )
    assert session.codes()[-1] == "503 5.5.1 BODY=BINARYMIME requires BDAT (RFC 3030)"
    events = session.feed(b"BDAT 4 LAST\r\n\x00\n\r\xff")
    assert MessageData(data=b"\x00\n\r\xff") in events
    assert session.codes()[-1] == "250 2.0.0 Ok: message accepted"


def test_max_message_size_on_actual_bytes() -> None:
    """Content beyond max_message_size is refused after the end with 552 5.3.4."""
    session = Session.start(config(max_message_size=10))
    events = session.feed(ENVELOPE + b"DATA\r\n" + b"x" * 20 + b"\r\n.\r\nNOOP\r\n")
    assert MessageRejected(reply=events[-1].reply) in events  # type: ignore[attr-defined]
    assert session.codes()[-2:] == ["552 5.3.4 Message size exceeds fixed limit", "250 2.0.0 Ok"]
    assert session.state() is State.READY


def test_authcredentials_hides_password() -> None:
    """AuthCredentials' repr never shows the password."""
    event = AuthCredentials(mechanism="PLAIN", authorization_id="", username="u", password="pw")
    assert "pw" not in repr(event)


def test_starttls_event_then_pause() -> None:
    """STARTTLS answers 220 2.0.0, emits StartTLS, then pauses until tls_established()."""
    session = Session.start(config(starttls=True))
    events = session.feed(b"EHLO c\r\nSTARTTLS\r\n")
    assert events[-1] == StartTLS()
    assert session.codes()[-1] == "220 2.0.0 Ready to start TLS"
    assert session.conn.next_event() is PAUSED
    assert session.state() is State.STARTTLS


def test_remote_error_has_reply() -> None:
    """RemoteProtocolError defaults to a 500 5.5.2 reply."""
    assert RemoteProtocolError("x").reply.code == 500


def test_events_are_frozen() -> None:
    """Events cannot be changed after they are made."""
    event = MessageEnd(size=1)
    with pytest.raises(AttributeError):
        event.size = 2  # type: ignore[misc]


def test_run_helper_accepts_chunks() -> None:
    """The run() helper feeds a list of chunks like a single buffer."""
    assert run([b"HELO c\r\n", b"NOOP\r\n"]) == run(b"HELO c\r\nNOOP\r\n")


PIECES = [
    b"EHLO c.test\r\n",
    b"HELO c.test\r\n",
    b"MAIL FROM:<a@b.test>\r\n",
    b"MAIL FROM:<a@b.test> BODY=BINARYMIME\r\n",
    b"RCPT TO:<c@d.test>\r\n",
    b"DATA\r\n",
    b"BDAT 3\r\n",
    b"BDAT 2 LAST\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"VRFY x\r\n",
    b"STARTTLS\r\n",
    b"AUTH PLAIN\r\n",
    b".\r\n",
    b"\r\n.\r\n",
    b"..\r\n",
    b"\n.\n",
    b"text\r\n",
    b"*\r\n",
    b"QUIT\r\n",
]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=12)), max_size=25),
    st.sampled_from(["reject", "normalize"]),
)
def test_any_input_same_events_whole_or_bytewise(pieces: list[bytes], policy: str) -> None:
    """Arbitrary input never raises and gives the same events and replies for any split.

    STARTTLS is off: whether bytes sit behind it depends on the split, by design.
    """
    cfg = config(
        auth_mechanisms=("PLAIN", "LOGIN"),
        auth_require_tls=False,
        bare_newlines=policy,
        max_bad_commands=1000,
    )
    assert_split_invariant(b"".join(pieces), cfg)


def test_auth_allowance_applies_to_auth_only() -> None:
    """With AUTH offered, only AUTH lines get the 12288-byte limit; others keep theirs."""
    cfg = config(auth_mechanisms=("PLAIN",), auth_require_tls=False)
    limit = cfg.command_line_limit
    data = b"EHLO c\r\nNOOP " + b"x" * limit + b"\r\nNOOP\r\n"
    events, output = assert_split_invariant(data, cfg)
    finals = [line for line in output.decode().split("\r\n") if line[3:4] == " "]
    assert finals[-2:] == ["500 5.5.2 Line too long", "250 2.0.0 Ok"]
    assert CommandRejected(command="NOOP", reply=LINE_TOO_LONG_REPLY_500) in events


def test_very_long_line_keeps_its_verb() -> None:
    """A line many times the limit is refused once, named by its real verb."""
    limit = config().command_line_limit
    data = b"MAIL " + b"x" * (limit * 5) + b"\r\nNOOP\r\n"
    events, _ = assert_split_invariant(data)
    rejected = [e for e in events if isinstance(e, CommandRejected)]
    assert [e.command for e in rejected] == ["MAIL"]


def test_refused_sasl_line_is_not_logged() -> None:
    """An over-long SASL response is reported as "AUTH", never by its content."""
    cfg = config(auth_mechanisms=("PLAIN",), auth_require_tls=False, max_auth_line=100)
    session = Session.start(cfg)
    events = session.feed(b"EHLO c\r\nAUTH PLAIN\r\n" + b"c2VjcmV0" * 20 + b"\r\n")
    rejected = [e for e in events if isinstance(e, CommandRejected)]
    assert [e.command for e in rejected] == ["AUTH"]


def test_parameter_syntax_errors_count_as_bad_commands() -> None:
    """Malformed MAIL/RCPT arguments use up the bad-command budget; policy refusals do not."""
    session = Session.start(config(max_bad_commands=2, max_message_size=10))
    session.feed(b"EHLO c\r\n" + b"MAIL FROM:<a@b.test> SIZE=99\r\n" * 3)
    assert session.state() is State.READY
    session.feed(b"MAIL FROM:<a@@b>\r\n" * 3)
    assert session.codes()[-1] == "421 4.7.0 Too many errors, closing connection"


def test_tls_client_hello_on_plaintext_closes_at_once() -> None:
    """A TLS ClientHello on a plaintext session closes it instead of waiting for an LF."""
    session = Session.start()
    events = session.feed(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    assert events == [ConnectionClosed(reason="TLS handshake on a plaintext session")]
    assert session.codes() == ["554 TLS handshake on a plaintext session, closing"]
    byte_by_byte = Session.start()
    byte_by_byte.feed(b"\x16")
    assert byte_by_byte.feed(b"\x03") == events
