"""Log lines: peer text escaped, one event per line; the rejected-recipients log."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_server.log import ConnectionLog, RejectedRecipientsLog, escape


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text", "plain text"),
        ("a\r\nb", "a\\x0d\\x0ab"),
        ('quote " and \\', 'quote \\" and \\\\'),
        ("tab\there", "tab\\x09here"),
        ("nel\x85 ls\u2028", "nel\\x85 ls\\u2028"),
        ("ünïcødé", "ünïcødé"),
    ],
)
def test_escape(raw: str, shown: str) -> None:
    """Control characters and line separators become visible escapes."""
    assert escape(raw) == shown


def test_escape_cuts_long_text() -> None:
    """Over-long peer text is cut and marked."""
    assert escape("x" * 600, limit=10) == "x" * 10 + "..."


@settings(max_examples=200)
@given(st.text())
def test_escape_never_leaves_a_line_break(text: str) -> None:
    """Whatever the peer sends, the escaped form is one printable line."""
    assert all(c.isprintable() for c in escape(text, limit=10_000))


def test_connection_log_line(caplog: pytest.LogCaptureFixture) -> None:
    """Each line carries conn id and peer; string fields are quoted and escaped."""
    caplog.set_level(logging.INFO, logger="sansio_smtpd")
    ConnectionLog(7, "192.0.2.1:4000").event("helo", name="evil\r\nconn=1 forged")
    (record,) = caplog.records
    message = record.getMessage()
    assert message == 'conn=7 peer=192.0.2.1:4000 helo name="evil\\x0d\\x0aconn=1 forged"'


def test_rejected_recipients_log(tmp_path: Path) -> None:
    """One tab-separated line per rejection, fields escaped, file created on demand."""
    log = RejectedRecipientsLog(tmp_path / "log" / "bad.log")
    when = datetime(2026, 11, 28, 9, 30, 0, tzinfo=UTC)
    log.append(
        when=when,
        client_ip="192.0.2.9",
        helo="client\r\n.test",
        mail_from="<a@b.test>",
        address="no\tbody@example.test",
        reply="550 5.1.1 <nobody@example.test>: Recipient address rejected",
    )
    log.append(
        when=when, client_ip="::1", helo="h", mail_from="<>", address="x@example.test", reply="r"
    )
    lines = (tmp_path / "log" / "bad.log").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    fields = lines[0].split("\t")
    assert fields == [
        "2026-11-28T09:30:00Z",
        "192.0.2.9",
        "client\\x0d\\x0a.test",
        "<a@b.test>",
        "no\\x09body@example.test",
        "550 5.1.1 <nobody@example.test>: Recipient address rejected",
    ]
