"""Tests for trio_server.dsn: reports parsed back with Python's email package."""

from __future__ import annotations

import email
import email.policy
import email.utils
from datetime import UTC, datetime
from email.message import EmailMessage, Message

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_server.dsn import (
    Action,
    MessageReport,
    RecipientReport,
    build_report,
    notify_wants,
    original_headers,
)

ARRIVAL = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
ORIGINAL = (
    b"Received: from client.example.test\r\n"
    b"From: Alice <alice@example.test>\r\n"
    b"To: bob@branch.example.test\r\n"
    b"Subject: quarterly figures\r\n"
    b"\r\n"
    b"The body line one.\r\n"
    b"Second line with 8-bit \xc3\xa9.\r\n"
)


def _report(
    *recipients: RecipientReport, ret: str | None = None, envid: str | None = None
) -> MessageReport:
    return MessageReport(
        reporting_mta="mx.example.test",
        sender="alice@example.test",
        arrival_date=ARRIVAL,
        envid=envid,
        ret=ret,
        received_from_mta="client.example.test",
        recipients=recipients,
    )


def _failed(address: str = "bob@branch.example.test", **kwargs: object) -> RecipientReport:
    return RecipientReport(
        final_recipient=address,
        action=Action.FAILED,
        status="5.1.1",
        **kwargs,  # type: ignore[arg-type]
    )


def _parse(data: bytes | None) -> EmailMessage:
    assert data is not None
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _parts(message: EmailMessage) -> list[Message]:
    payload = message.get_payload()
    assert isinstance(payload, list)
    return [part for part in payload if isinstance(part, Message)]


def _status_blocks(message: EmailMessage) -> list[Message]:
    blocks = _parts(message)[1].get_payload()
    assert isinstance(blocks, list)
    return [block for block in blocks if isinstance(block, Message)]


def _global_status_lines(data: bytes | None) -> list[list[str]]:
    """The blocks of a message/global-delivery-status part, which email does not split."""
    assert data is not None
    marker = b"Content-Type: message/global-delivery-status\r\n\r\n"
    start = data.index(marker) + len(marker)
    end = data.index(b"\r\n--", start)
    text = data[start:end].decode("utf-8")
    return [block.split("\r\n") for block in text.split("\r\n\r\n")]


def test_failed_report_has_rfc6522_structure() -> None:
    """A failure report is multipart/report; report-type=delivery-status with three parts."""
    message = _parse(build_report(_report(_failed()), ORIGINAL, date=NOW, message_id="<r1@mx>"))
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"
    types = [part.get_content_type() for part in _parts(message)]
    assert types == ["text/plain", "message/delivery-status", "message/rfc822"]
    assert message["To"].addresses[0].addr_spec == "alice@example.test"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["Message-ID"] == "<r1@mx>"
    assert "bob@branch.example.test" in str(_parts(message)[0].get_payload())


def test_delivery_status_fields() -> None:
    """The per-message and per-recipient fields carry what RFC 3464 §2.2/§2.3 ask for."""
    recipient = _failed(
        remote_mta="next.example.test",
        diagnostic_code="550 5.1.1 no such user",
        last_attempt_date=NOW,
    )
    message = _parse(
        build_report(_report(recipient, envid="Q1"), ORIGINAL, date=NOW, message_id="<r@mx>")
    )
    per_message, per_recipient = _status_blocks(message)
    assert per_message["Reporting-MTA"] == "dns; mx.example.test"
    assert per_message["Received-From-MTA"] == "dns; client.example.test"
    assert per_message["Original-Envelope-Id"] == "Q1"
    assert email.utils.parsedate_to_datetime(per_message["Arrival-Date"]) == ARRIVAL
    assert per_recipient["Final-Recipient"] == "rfc822;bob@branch.example.test"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert per_recipient["Remote-MTA"] == "dns; next.example.test"
    assert per_recipient["Diagnostic-Code"] == "smtp; 550 5.1.1 no such user"
    assert email.utils.parsedate_to_datetime(per_recipient["Last-Attempt-Date"]) == NOW


def test_envid_and_orcpt_round_trip_decoded() -> None:
    """ENVID and ORCPT, xtext-decoded on receipt, come back verbatim in the report."""
    envid = "id+with=plus and space"
    orcpt = ("rfc822", "Bob+Tag@Branch.example.test")
    report = _report(_failed(original_recipient=orcpt), envid=envid)
    message = _parse(build_report(report, ORIGINAL, date=NOW, message_id="<r@mx>"))
    per_message, per_recipient = _status_blocks(message)
    assert per_message["Original-Envelope-Id"] == envid
    assert per_recipient["Original-Recipient"] == "rfc822;Bob+Tag@Branch.example.test"


def test_ret_full_returns_whole_message() -> None:
    """RET=FULL returns the original as message/rfc822, body and 8-bit octets intact."""
    data = build_report(_report(_failed(), ret="FULL"), ORIGINAL, date=NOW, message_id="<r@mx>")
    message = _parse(data)
    returned = _parts(message)[2]
    assert returned.get_content_type() == "message/rfc822"
    inner = returned.get_payload(0)
    assert isinstance(inner, Message)
    assert inner["Subject"] == "quarterly figures"
    assert data is not None
    assert b"Second line with 8-bit \xc3\xa9.\r\n" in data


def test_ret_hdrs_returns_headers_only() -> None:
    """RET=HDRS returns text/rfc822-headers: the header lines and none of the body."""
    data = build_report(_report(_failed(), ret="HDRS"), ORIGINAL, date=NOW, message_id="<r@mx>")
    message = _parse(data)
    returned = _parts(message)[2]
    assert returned.get_content_type() == "text/rfc822-headers"
    text = returned.get_payload()
    assert isinstance(text, str)
    assert "Subject: quarterly figures" in text
    assert data is not None
    assert b"The body line one." not in data


def test_large_message_defaults_to_headers() -> None:
    """Without RET, an original above the limit is returned as headers only."""
    small = build_report(_report(_failed()), ORIGINAL, date=NOW, message_id="<r@mx>")
    large = build_report(
        _report(_failed()), ORIGINAL, date=NOW, message_id="<r@mx>", full_return_limit=10
    )
    assert _parts(_parse(small))[2].get_content_type() == "message/rfc822"
    assert _parts(_parse(large))[2].get_content_type() == "text/rfc822-headers"


def test_success_report_returns_headers_even_with_ret_full() -> None:
    """A report without failures carries only the header (RFC 3461 §4.3)."""
    recipient = RecipientReport(
        final_recipient="bob@example.test", action=Action.DELIVERED, status="2.0.0"
    )
    message = _parse(
        build_report(_report(recipient, ret="FULL"), ORIGINAL, date=NOW, message_id="<r@mx>")
    )
    assert _parts(message)[2].get_content_type() == "text/rfc822-headers"
    assert _status_blocks(message)[1]["Action"] == "delivered"


@pytest.mark.parametrize(
    ("action", "status"),
    [
        (Action.DELIVERED, "2.0.0"),
        (Action.RELAYED, "2.0.0"),
        (Action.FAILED, "5.4.7"),
        (Action.DELAYED, "4.4.1"),
    ],
)
def test_each_action_parses_back(action: Action, status: str) -> None:
    """Every action builds a report whose Action and Status fields parse back unchanged."""
    recipient = RecipientReport(
        final_recipient="bob@branch.example.test",
        action=action,
        status=status,
        will_retry_until=NOW if action is Action.DELAYED else None,
    )
    message = _parse(build_report(_report(recipient), ORIGINAL, date=NOW, message_id="<r@mx>"))
    block = _status_blocks(message)[1]
    assert block["Action"] == action.value
    assert block["Status"] == status
    assert ("Will-Retry-Until" in block) is (action is Action.DELAYED)


def test_one_report_covers_all_recipients() -> None:
    """Several recipients in the same state share one report, one block each."""
    report = _report(_failed("a@x.test"), _failed("b@x.test"), _failed("c@x.test"))
    message = _parse(build_report(report, ORIGINAL, date=NOW, message_id="<r@mx>"))
    finals = [block["Final-Recipient"] for block in _status_blocks(message)[1:]]
    assert finals == ["rfc822;a@x.test", "rfc822;b@x.test", "rfc822;c@x.test"]


def test_mixed_actions_refused() -> None:
    """One report is about one event: mixing actions is a programming error."""
    delivered = RecipientReport(final_recipient="d@x.test", action=Action.DELIVERED, status="2.0.0")
    with pytest.raises(ValueError, match="one action"):
        build_report(_report(_failed(), delivered), ORIGINAL, date=NOW, message_id="<r@mx>")


def test_no_report_for_null_sender() -> None:
    """A message from <> never gets a report (RFC 3461 §6.2), so bounces cannot loop."""
    report = MessageReport(
        reporting_mta="mx.example.test",
        sender="",
        arrival_date=ARRIVAL,
        recipients=(_failed(),),
    )
    assert build_report(report, ORIGINAL, date=NOW, message_id="<r@mx>") is None


def test_no_report_without_recipients() -> None:
    """Nothing to report means no report."""
    assert build_report(_report(), ORIGINAL, date=NOW, message_id="<r@mx>") is None


def test_peer_text_cannot_inject_headers() -> None:
    """CR/LF in a next hop's reply or an ORCPT never starts a new field."""
    recipient = _failed(
        diagnostic_code="550 oops\r\nAction: delivered",
        original_recipient=("rfc822", "x@y\r\nStatus: 2.0.0"),
    )
    message = _parse(build_report(_report(recipient), ORIGINAL, date=NOW, message_id="<r@mx>"))
    block = _status_blocks(message)[1]
    assert block.get_all("Action") == ["failed"]
    assert block.get_all("Status") == ["5.1.1"]
    assert "\n" not in block["Diagnostic-Code"]


def test_utf8_addresses_use_global_types() -> None:
    """Non-ASCII addresses use utf-8 addr-type and the RFC 6533 global media types."""
    recipient = _failed("jörg@bücher.example.test")
    report = _report(recipient, ret="HDRS")
    data = build_report(report, ORIGINAL, date=NOW, message_id="<r@mx>")
    types = [part.get_content_type() for part in _parts(_parse(data))]
    assert types[1:] == ["message/global-delivery-status", "message/global-headers"]
    blocks = _global_status_lines(data)
    assert "Final-Recipient: utf-8;jörg@bücher.example.test" in blocks[1]


def test_report_uses_crlf() -> None:
    """The report is ready for SMTP: every line ends in CRLF."""
    data = build_report(_report(_failed()), ORIGINAL, date=NOW, message_id="<r@mx>")
    assert data is not None
    assert data.count(b"\n") == data.count(b"\r\n")


def test_original_headers_split() -> None:
    """original_headers keeps the header lines, drops the blank line and the body."""
    assert original_headers(b"A: 1\r\nB: 2\r\n\r\nbody\r\n") == b"A: 1\r\nB: 2\r\n"
    assert original_headers(b"A: 1\r\n") == b"A: 1\r\n"
    assert original_headers(b"A: 1") == b"A: 1\r\n"


@pytest.mark.parametrize(
    ("notify", "action", "wanted"),
    [
        (None, Action.FAILED, True),
        (None, Action.DELAYED, False),
        (None, Action.DELIVERED, False),
        (None, Action.RELAYED, False),
        (frozenset({"NEVER"}), Action.FAILED, False),
        (frozenset({"SUCCESS"}), Action.DELIVERED, True),
        (frozenset({"SUCCESS"}), Action.RELAYED, True),
        (frozenset({"SUCCESS"}), Action.FAILED, False),
        (frozenset({"DELAY"}), Action.DELAYED, True),
        (frozenset({"FAILURE", "DELAY"}), Action.FAILED, True),
        (frozenset({"FAILURE", "DELAY"}), Action.RELAYED, False),
    ],
)
def test_notify_rules(notify: frozenset[str] | None, action: Action, wanted: bool) -> None:
    """Absent NOTIFY means FAILURE only; NEVER means nothing; otherwise what is asked."""
    assert notify_wants(notify, action) is wanted


_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)


@settings(max_examples=100, deadline=None)
@given(envid=_text, orcpt=_text, diagnostic=_text)
def test_arbitrary_text_always_parses_back(envid: str, orcpt: str, diagnostic: str) -> None:
    """Any text in ENVID, ORCPT or a reply yields a report with exactly one block each."""
    recipient = _failed(original_recipient=("rfc822", orcpt), diagnostic_code=diagnostic)
    data = build_report(_report(recipient, envid=envid), ORIGINAL, date=NOW, message_id="<r@mx>")
    if (envid + orcpt + diagnostic).isascii():
        blocks = _status_blocks(_parse(data))
        assert len(blocks) == 2
        assert blocks[1].get_all("Action") == ["failed"]
    else:
        lines = _global_status_lines(data)
        assert len(lines) == 2
        assert [line for line in lines[1] if line.startswith("Action:")] == ["Action: failed"]
