"""One regression test per bug the fuzzers found (ids from /work/plan/fuzz-findings.md).

A finding whose fix has not landed is marked ``xfail(strict=True)``: the suite stays
green, and the day the fix lands the XPASS turns red so the marker gets removed.
"""

from __future__ import annotations

import pytest

from sansio_smtp._config import ServerConfig
from sansio_smtp._errors import ParameterError
from sansio_smtp._events import (
    Accept,
    Event,
    Greeting,
    Hello,
    MailFrom,
    MessageData,
    MessageEnd,
    MessageRejected,
    RcptTo,
)
from sansio_smtp._params import (
    MailParams,
    format_mail_params,
    format_rcpt_params,
    parse_mail_params,
    parse_rcpt_params,
    utf8_addr_xtext_decode,
    utf8_addr_xtext_encode,
)
from sansio_smtp._server import NEED_DATA, PAUSED, ServerConnection


def test_f1_unitext_refuses_lone_surrogates() -> None:
    """Whatever utf8_addr_xtext_decode accepts survives encode then decode unchanged."""
    try:
        decoded = utf8_addr_xtext_decode("52\udcab", unitext=True)
    except ValueError:
        return
    assert utf8_addr_xtext_decode(utf8_addr_xtext_encode(decoded)) == decoded


def test_f2_formatted_orcpt_fits_the_limit() -> None:
    """An ORCPT the parser accepted is formatted into one the same parser accepts."""
    params = parse_rcpt_params(" ORCPT=UTF-8;jömp", dsn=True, utf8=True, max_orcpt_length=10)
    formatted = " " + format_rcpt_params(params, utf8=True)
    assert parse_rcpt_params(formatted, dsn=True, utf8=True, max_orcpt_length=10) == params


def test_f1_mail_params_with_surrogate_format_or_refuse() -> None:
    """A MAIL parameter list that parses also formats (F1's second symptom)."""
    try:
        params = parse_mail_params(" SMTPUTF8 AUTH=X-\udc95@leO", smtputf8=True, auth=True)
    except ParameterError:
        return
    assert format_mail_params(params)


def _server_events(chunks: list[bytes]) -> list[Event]:
    conn = ServerConnection(ServerConfig(hostname="mx.example"))
    conn.send(Greeting())
    events: list[Event] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        for _ in range(100):
            event = conn.next_event()
            if event is NEED_DATA or event is PAUSED:
                break
            assert isinstance(event, Event), event
            events.append(event)
    return events


def test_f3_over_long_line_logs_its_own_verb() -> None:
    """An over-long command line is reported with its own verb however its bytes arrive."""
    line = b"RCPT TO:<" + b"a" * 3000 + b"@b.c>\r\n"
    whole = _server_events([line])
    pieces = _server_events([line[:1300], line[1300:2600], line[2600:]])
    assert whole == pieces


def test_f2b_formatted_rfc822_orcpt_fits_the_limit() -> None:
    """An rfc822 ORCPT with raw UTF-8 (SMTPUTF8) formats into one the parser accepts."""
    params = parse_rcpt_params(" ORCPT=rfc822;" + "é" * 200 + "@x", dsn=True, utf8=True)
    formatted = " " + format_rcpt_params(params, utf8=True)
    assert parse_rcpt_params(formatted, dsn=True, utf8=True) == params


def _data_outcome(content: bytes) -> list[Event]:
    conn = ServerConnection(ServerConfig(hostname="mx.example"))
    conn.send(Greeting())
    conn.receive_data(b"EHLO a\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n" + content)
    events: list[Event] = []
    for _ in range(100):
        event = conn.next_event()
        if event is NEED_DATA or event is PAUSED:
            break
        assert isinstance(event, Event), event
        events.append(event)
        if isinstance(event, (Hello, MailFrom, RcptTo)):
            conn.send(Accept())
    return events


def test_f4_stuffed_dot_not_counted_in_line_limit() -> None:
    """A 998-octet line starting with "." is accepted (RFC 5321 §4.5.3.1.6)."""
    events = _data_outcome(b".." + b"x" * 997 + b"\r\n.\r\n")
    assert not any(isinstance(e, MessageRejected) for e in events), events
    assert isinstance(events[-1], MessageEnd), events


@pytest.mark.parametrize("envid", ["\x03", "é"])
def test_f5_mail_params_refuse_unprintable_envid(envid: str) -> None:
    """An ENVID that parse_mail_params would refuse cannot be built into MailParams."""
    with pytest.raises(ValueError, match="ENVID"):
        MailParams(envid=envid)


def test_f4_line_limit_still_holds_after_unstuffing() -> None:
    """A 999-octet line (after removing the stuffed dot) is still refused as too long."""
    events = _data_outcome(b".." + b"x" * 998 + b"\r\n.\r\n")
    assert isinstance(events[-1], MessageRejected), events
    assert events[-1].reply.code == 554, events


def test_f6_normalize_unstuffs_after_bare_lf() -> None:
    """In normalize mode a line begun by a bare LF is unstuffed like any other line."""
    conn = ServerConnection(ServerConfig(hostname="mx.example", bare_newlines="normalize"))
    conn.send(Greeting())
    conn.receive_data(
        b"EHLO a\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n"
        b"Hello\n..leading dot line\n...two dots\n\r\n.\r\n"
    )
    content = b""
    for _ in range(50):
        event = conn.next_event()
        if event is NEED_DATA or event is PAUSED:
            break
        if isinstance(event, MessageData):
            content += event.data
        if isinstance(event, (Hello, MailFrom, RcptTo)):
            conn.send(Accept())
    assert content == b"Hello\r\n.leading dot line\r\n..two dots\r\n\r\n"
