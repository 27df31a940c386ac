"""Delivery status notifications: a pure builder for RFC 3464 reports.

A report is an RFC 6522 ``multipart/report; report-type=delivery-status`` message
with three parts (RFC 3464 §2):

1. a human-readable ``text/plain`` explanation;
2. a ``message/delivery-status`` part: one per-message block (Reporting-MTA,
   Original-Envelope-Id, Received-From-MTA, Arrival-Date; RFC 3464 §2.2) and one
   block per recipient (Original-Recipient, Final-Recipient, Action, Status,
   Remote-MTA, Diagnostic-Code, Last-Attempt-Date, Will-Retry-Until; §2.3);
3. the original message as ``message/rfc822`` (RET=FULL) or only its header as
   ``text/rfc822-headers`` (RET=HDRS; also the default for large messages and for
   reports that announce no failure, RFC 3461 §4.3).

Which events produce a report follows RFC 3461 §4.1 and §6.2: no NOTIFY means
FAILURE only (and DELAY at the MTA's discretion: we do not), NEVER means no report,
and no report is ever made about a message whose envelope sender is the null path
``<>`` (RFC 3461 §6.2, RFC 5321 §4.5.5), which also breaks bounce loops.

Nothing here does I/O; the caller supplies the clock values and the message bytes,
and submits the result from the null path ``<>``.
"""

from __future__ import annotations

import email.utils
import enum
import io
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.generator import BytesGenerator
from email.message import EmailMessage, Message, MIMEPart
from email.policy import SMTP, SMTPUTF8

__all__ = [
    "DEFAULT_FULL_RETURN_LIMIT",
    "Action",
    "MessageReport",
    "RecipientReport",
    "build_report",
    "notify_wants",
    "original_headers",
]

DEFAULT_FULL_RETURN_LIMIT = 50_000
"""Largest original returned whole when RET is absent (Postfix ``bounce_size_limit``)."""


class Action(enum.Enum):
    """The Action field of a per-recipient block (RFC 3464 §2.3.3)."""

    FAILED = "failed"
    DELAYED = "delayed"
    DELIVERED = "delivered"
    RELAYED = "relayed"


# The NOTIFY keyword that asks for each action (RFC 3461 §4.1).
_NOTIFY_FOR_ACTION = {
    Action.FAILED: "FAILURE",
    Action.DELAYED: "DELAY",
    Action.DELIVERED: "SUCCESS",
    Action.RELAYED: "SUCCESS",
}


def notify_wants(notify: Iterable[str] | None, action: Action) -> bool:
    """Say whether a recipient's NOTIFY asks for a report of this action.

    Args:
        notify: the RCPT NOTIFY keywords (upper case), or None when NOTIFY was absent.
        action: the event about to be reported.

    Returns:
        True when a report is wanted. Absent NOTIFY means FAILURE only
        (RFC 3461 §4.1: the default is "NOTIFY=FAILURE" or "NOTIFY=FAILURE,DELAY"; we
        pick the quieter one); NEVER means nothing.
    """
    keywords = {"FAILURE"} if notify is None else {word.upper() for word in notify}
    if "NEVER" in keywords:
        return False
    return _NOTIFY_FOR_ACTION[action] in keywords


@dataclass(frozen=True, slots=True, kw_only=True)
class RecipientReport:
    """What happened to one recipient (RFC 3464 §2.3).

    Attributes:
        final_recipient: the address the report is about, as used in RCPT TO.
        action: the Action field.
        status: the RFC 3463 status code, e.g. "5.1.1".
        original_recipient: (addr-type, address) from ORCPT, xtext-decoded, or None.
        remote_mta: the next hop's name or address, when one was talked to.
        diagnostic_code: the next hop's reply, e.g. "550 5.1.1 no such user".
        last_attempt_date: when delivery was last tried.
        will_retry_until: for "delayed": when the message will be given up.
    """

    final_recipient: str
    action: Action
    status: str
    original_recipient: tuple[str, str] | None = None
    remote_mta: str | None = None
    diagnostic_code: str | None = None
    last_attempt_date: datetime | None = None
    will_retry_until: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageReport:
    """One report about one message: the per-message facts (RFC 3464 §2.2).

    Attributes:
        reporting_mta: our host name (Reporting-MTA: dns; NAME).
        sender: the original envelope sender; "" for the null path.
        arrival_date: when we accepted the message.
        envid: the ENVID parameter, xtext-decoded, or None.
        ret: "FULL", "HDRS" or None (the RET parameter).
        received_from_mta: the client's name, when known (Received-From-MTA).
        recipients: the recipients this report covers.
        smtputf8: the message came with SMTPUTF8: the report uses the RFC 6533 types.
    """

    reporting_mta: str
    sender: str
    arrival_date: datetime
    envid: str | None = None
    ret: str | None = None
    received_from_mta: str | None = None
    recipients: tuple[RecipientReport, ...] = ()
    smtputf8: bool = False


def _clean(text: str) -> str:
    """Make peer- or user-supplied text safe for one header line.

    Control characters (CR and LF above all) become "?" so that nothing a peer sent
    can start a new header or a new part.
    """
    # isprintable() is False for C0/C1 controls and the Unicode line separators,
    # everything str.splitlines() (and so the email package) would break on.
    return "".join(ch if ch == " " or ch.isprintable() else "?" for ch in text)


def _address_type(address: str) -> str:
    """The addr-type for an address: "rfc822", or "utf-8" when it is not ASCII (RFC 6533 §3)."""
    return "rfc822" if address.isascii() else "utf-8"


def original_headers(message: bytes) -> bytes:
    """Return the header section of a message, up to and including the blank line.

    Args:
        message: the whole message, CRLF line endings.

    Returns:
        The header lines with their final CRLF, without the empty line; the whole
        message when it has no body separator.
    """
    end = message.find(b"\r\n\r\n")
    if end == -1:
        return message if message.endswith(b"\r\n") else message + b"\r\n"
    return message[: end + 2]


_SUBJECTS = {
    Action.FAILED: "Undelivered Mail Returned to Sender",
    Action.DELAYED: "Delayed Mail (still being retried)",
    Action.DELIVERED: "Successful Mail Delivery Report",
    Action.RELAYED: "Successful Mail Delivery Report",
}

_EXPLANATIONS = {
    Action.FAILED: "could not be delivered to the recipients below; it has been given up.",
    Action.DELAYED: "has not yet been delivered to the recipients below; delivery is still "
    "being retried and you need not resend it.",
    Action.DELIVERED: "was delivered to the recipients below.",
    Action.RELAYED: "was passed on to the recipients' next mail server, which does not "
    "send delivery reports; no further notice will come from there.",
}


def _human_text(report: MessageReport) -> str:
    """The first, human-readable part (RFC 6522 §3: explains the report in plain words)."""
    actions = sorted({r.action for r in report.recipients}, key=lambda a: a.value)
    lines = [
        f"This is the mail system at host {_clean(report.reporting_mta)}.",
        "",
    ]
    for action in actions:
        lines.extend(textwrap.wrap(f"Your message {_EXPLANATIONS[action]}", width=72))
        lines.append("")
        for recipient in report.recipients:
            if recipient.action is not action:
                continue
            line = f"  <{_clean(recipient.final_recipient)}>: {recipient.status}"
            if recipient.diagnostic_code:
                line += f" ({_clean(recipient.diagnostic_code)})"
            lines.append(line)
        lines.append("")
    return "\r\n".join(lines)


def _field_block(fields: Sequence[tuple[str, str]], policy: object) -> Message:
    """One header-style block of a delivery-status body (RFC 3464 §2.1)."""
    block = Message(policy=policy)  # type: ignore[arg-type]
    for name, value in fields:
        block[name] = value
    return block


def _per_message(report: MessageReport) -> list[tuple[str, str]]:
    """The per-message fields (RFC 3464 §2.2), in the RFC's order."""
    fields = [("Reporting-MTA", f"dns; {_clean(report.reporting_mta)}")]
    if report.envid is not None:
        fields.append(("Original-Envelope-Id", _clean(report.envid)))
    if report.received_from_mta:
        fields.append(("Received-From-MTA", f"dns; {_clean(report.received_from_mta)}"))
    fields.append(("Arrival-Date", email.utils.format_datetime(report.arrival_date)))
    return fields


def _per_recipient(recipient: RecipientReport) -> list[tuple[str, str]]:
    """The per-recipient fields (RFC 3464 §2.3), in the RFC's order."""
    fields: list[tuple[str, str]] = []
    if recipient.original_recipient is not None:
        addr_type, address = recipient.original_recipient
        fields.append(("Original-Recipient", f"{_clean(addr_type)};{_clean(address)}"))
    final = recipient.final_recipient
    fields.append(("Final-Recipient", f"{_address_type(final)};{_clean(final)}"))
    fields.append(("Action", recipient.action.value))
    fields.append(("Status", _clean(recipient.status)))
    if recipient.remote_mta:
        fields.append(("Remote-MTA", f"dns; {_clean(recipient.remote_mta)}"))
    if recipient.diagnostic_code:
        fields.append(("Diagnostic-Code", f"smtp; {_clean(recipient.diagnostic_code)}"))
    if recipient.last_attempt_date is not None:
        fields.append(
            ("Last-Attempt-Date", email.utils.format_datetime(recipient.last_attempt_date))
        )
    if recipient.will_retry_until is not None:
        fields.append(("Will-Retry-Until", email.utils.format_datetime(recipient.will_retry_until)))
    return fields


def _returns_full(report: MessageReport, size: int, full_return_limit: int) -> bool:
    """Decide between the whole original and its header only (RFC 3461 §4.3)."""
    if report.ret == "HDRS":
        return False
    # A report that announces no failure carries the header only (RFC 3461 §4.3).
    if all(r.action is not Action.FAILED for r in report.recipients):
        return False
    if report.ret == "FULL":
        return True
    return size <= full_return_limit


class _ReportGenerator(BytesGenerator):
    """A BytesGenerator that also writes RFC 6533 global delivery-status bodies as blocks.

    The email package knows the block layout only for message/delivery-status; its
    dispatch by content type (``_handle_<maintype>_<subtype>``) is extended here.
    """

    def _handle_message_global_delivery_status(self, msg: Message) -> None:
        self._handle_message_delivery_status(msg)  # type: ignore[attr-defined]


def build_report(
    report: MessageReport,
    original: bytes,
    *,
    date: datetime,
    message_id: str,
    full_return_limit: int = DEFAULT_FULL_RETURN_LIMIT,
) -> bytes | None:
    """Build the delivery status notification for the recipients in ``report``.

    Only recipients whose NOTIFY asks for their action should be passed in; use
    :func:`notify_wants` to choose them.

    Args:
        report: the message and the recipients the report is about.
        original: the message as accepted (CRLF line endings, our trace header on top).
        date: the report's Date.
        message_id: the report's Message-ID, with its angle brackets.
        full_return_limit: the largest original returned whole when RET is absent.

    Returns:
        The report as bytes with CRLF line endings, to be sent from ``<>`` to
        ``report.sender``; or None when no report may be sent: the sender is the null
        path, or there is no recipient to report on.

    Raises:
        ValueError: when the recipients mix actions (one report per event).
    """
    if not report.sender or not report.recipients:
        return None
    actions = {r.action for r in report.recipients}
    if len(actions) != 1:
        raise ValueError(
            "one report covers one action; got " + ", ".join(sorted(a.value for a in actions))
        )
    action = actions.pop()
    texts = [report.sender, report.envid or "", report.received_from_mta or ""]
    for r in report.recipients:
        texts += [r.final_recipient, r.diagnostic_code or "", r.remote_mta or ""]
        texts += r.original_recipient or ()
    # Anything beyond ASCII needs the RFC 6533 types, which carry UTF-8 as it is.
    utf8 = report.smtputf8 or not all(text.isascii() for text in texts)
    policy = SMTPUTF8 if utf8 else SMTP

    top = EmailMessage(policy=policy)
    top["From"] = f"Mail Delivery System <MAILER-DAEMON@{_clean(report.reporting_mta)}>"
    top["To"] = f"<{_clean(report.sender)}>"
    top["Subject"] = _SUBJECTS[action]
    top["Date"] = email.utils.format_datetime(date)
    top["Message-ID"] = message_id
    # RFC 3834 §5: automatic responses must be marked so nobody answers them.
    top["Auto-Submitted"] = "auto-replied"
    top["MIME-Version"] = "1.0"
    top.set_type("multipart/report")
    top.set_param("report-type", "delivery-status")

    human = MIMEPart(policy=policy)
    text = _human_text(report).replace("\r\n", "\n")
    if text.isascii():
        human.set_content(text, charset="us-ascii", cte="7bit", disposition="inline")
    else:
        human.set_content(text, disposition="inline")

    # RFC 6533 §6: reports about internationalized addresses use the global types.
    status = Message(policy=policy)
    status["Content-Type"] = "message/global-delivery-status" if utf8 else "message/delivery-status"
    blocks = [_field_block(_per_message(report), policy)]
    blocks.extend(_field_block(_per_recipient(r), policy) for r in report.recipients)
    status.set_payload(blocks)  # type: ignore[arg-type]

    # The original is parsed so the generator can write it back; source headers are
    # not refolded, and surrogateescape keeps 8-bit octets as they came.
    source_policy = policy.clone(refold_source="none")
    returned = Message(policy=policy)
    if _returns_full(report, len(original), full_return_limit):
        returned["Content-Type"] = "message/global" if utf8 else "message/rfc822"
        returned["Content-Description"] = "Undelivered Message"
        returned.set_payload([email.message_from_bytes(original, policy=source_policy)])
    elif utf8:
        returned["Content-Type"] = "message/global-headers"
        returned["Content-Description"] = "Message Headers"
        headers = email.message_from_bytes(original_headers(original), policy=source_policy)
        returned.set_payload([headers])
    else:
        returned["Content-Type"] = "text/rfc822-headers"
        returned["Content-Description"] = "Message Headers"
        returned.set_payload(original_headers(original).decode("ascii", "surrogateescape"))

    top.set_payload([human, status, returned])
    out = io.BytesIO()
    _ReportGenerator(out, policy=policy).flatten(top)
    return out.getvalue()
