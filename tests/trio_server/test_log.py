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


def _escape_by_hand(text: str) -> str:
    out = []
    for char in text:
        if char in '\\"':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        else:
            out.append(f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")
    return "".join(out)


@settings(max_examples=200)
@given(st.text(max_size=40))
def test_escape_fast_path_matches_the_rule(text: str) -> None:
    """Text needing no escapes comes back as is; any other text gets each escape."""
    assert escape(text) == _escape_by_hand(text)


def test_connection_log_is_a_plain_info_record(caplog: pytest.LogCaptureFixture) -> None:
    """A line is an INFO record of "sansio_smtpd" that logger filters see, text unformatted."""
    caplog.set_level(logging.INFO, logger="sansio_smtpd")
    seen: list[str] = []

    def spy(record: logging.LogRecord) -> bool:
        seen.append(record.getMessage())
        return True

    logger = logging.getLogger("sansio_smtpd")
    logger.addFilter(spy)
    try:
        ConnectionLog(1, "192.0.2.1:25").event("accept", queue_id="Q%s", size=5)
    finally:
        logger.removeFilter(spy)
    (record,) = caplog.records
    assert (record.name, record.levelno) == ("sansio_smtpd", logging.INFO)
    assert seen == ['conn=1 peer=192.0.2.1:25 accept queue_id="Q%s" size=5']
    assert logging.Formatter("%(levelname)s %(message)s").format(record) == "INFO " + seen[0]


def test_connection_log_silent_below_info(caplog: pytest.LogCaptureFixture) -> None:
    """With the logger above INFO an event writes nothing."""
    caplog.set_level(logging.WARNING, logger="sansio_smtpd")
    ConnectionLog(1, "192.0.2.1:25").event("helo", name="x")
    assert caplog.records == []
