# Events (engine -> application) and decisions (application -> engine).
#
# All are frozen, slotted, keyword-only dataclasses. Decisions validate when built,
# so a bad decision fails where the application made it, not later on the wire.
# Events the engine builds from parsed input are trusted and not re-validated.
"""Event and decision types exchanged between ServerConnection and the application."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ._errors import LocalProtocolError
from ._reply import Reply

if TYPE_CHECKING:
    from ._address import Mailbox
    from ._params import MailParams, RcptParams

__all__ = [
    "Accept",
    "AuthCredentials",
    "CommandRejected",
    "ConnectionClosed",
    "Decision",
    "Event",
    "Expand",
    "Greeting",
    "Hello",
    "MailFrom",
    "MessageData",
    "MessageEnd",
    "MessageRejected",
    "RcptTo",
    "Reject",
    "Reset",
    "Shutdown",
    "StartTLS",
    "Verify",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base class of everything ``ServerConnection.next_event()`` returns."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """Base class of everything the application passes to ``ServerConnection.send()``."""


# ---------------------------------------------------------------- decisions


def _check_text(text: str | None) -> None:
    if text is not None:
        try:
            Reply(code=250, lines=tuple(text.split("\n")))
        except ValueError as exc:
            raise LocalProtocolError(f"bad reply text: {exc}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Greeting(Decision):
    """Send the 220 greeting (RFC 5321 §4.3.1); ``text`` replaces ``greeting_text``."""

    text: str | None = None

    def __post_init__(self) -> None:
        _check_text(self.text)


@dataclass(frozen=True, slots=True, kw_only=True)
class Accept(Decision):
    """Accept the pending event; the engine picks the reply code.

    ``text`` replaces the default reply text (``"\\n"`` separates lines), e.g.
    ``"Ok: queued as 4F2A"`` for MessageEnd.
    """

    text: str | None = None

    def __post_init__(self) -> None:
        _check_text(self.text)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reject(Decision):
    """Refuse the pending event with a 4xx/5xx reply.

    Raises:
        LocalProtocolError: If the code is not 4xx/5xx or the status/text are invalid.
    """

    code: int
    status: str
    text: str

    def __post_init__(self) -> None:
        if type(self.code) is not int or not 400 <= self.code <= 599:
            raise LocalProtocolError(f"Reject needs a 4xx/5xx code, got {self.code!r}")
        try:
            self.reply()
        except ValueError as exc:
            raise LocalProtocolError(f"bad Reject: {exc}") from None

    def reply(self) -> Reply:
        """The Reply this decision sends."""
        return Reply(code=self.code, status=self.status, lines=tuple(self.text.split("\n")))


@dataclass(frozen=True, slots=True, kw_only=True)
class Shutdown(Decision):
    """Send ``reply`` (typically 421, 221 or 554) and close; valid in any state."""

    reply: Reply

    def __post_init__(self) -> None:
        if not isinstance(self.reply, Reply):
            raise LocalProtocolError("Shutdown needs a Reply")


# ------------------------------------------------- events needing a decision


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello(Event):
    """HELO or EHLO (RFC 5321 §4.1.1.1). Accept -> 250 (EHLO: with extensions)."""

    command: Literal["HELO", "EHLO"]
    domain: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MailFrom(Event):
    """MAIL FROM (RFC 5321 §4.1.1.2). ``sender`` None is the null path. Accept -> 250 2.1.0."""

    sender: Mailbox | None
    raw: str
    params: MailParams


@dataclass(frozen=True, slots=True, kw_only=True)
class RcptTo(Event):
    """RCPT TO (RFC 5321 §4.1.1.3). Accept -> 250 2.1.5."""

    recipient: Mailbox
    raw: str
    params: RcptParams


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEnd(Event):
    """The message content is complete (CRLF.CRLF or BDAT LAST). Accept -> 250 2.0.0.

    ``size`` counts the content bytes delivered in MessageData events. Accept only
    once the message is safely stored.
    """

    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthCredentials(Event):
    """AUTH PLAIN/LOGIN credentials (RFC 4954). Accept -> 235 2.7.0; Reject e.g. 535 5.7.8."""

    mechanism: str
    authorization_id: str
    username: str
    password: str

    def __repr__(self) -> str:
        # Keep the password out of logs and tracebacks.
        return (
            f"AuthCredentials(mechanism={self.mechanism!r}, "
            f"authorization_id={self.authorization_id!r}, username={self.username!r}, "
            "password='***')"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Verify(Event):
    """VRFY (RFC 5321 §4.1.1.6), only when ``ServerConfig.vrfy``.

    Accept -> 250 2.1.5 with your text (e.g. the mailbox); Reject e.g. 550 5.1.1.
    """

    argument: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Expand(Event):
    """EXPN (RFC 5321 §4.1.1.7), only when ``ServerConfig.expn``. Accept -> 250 2.1.5."""

    argument: str


# ------------------------------------------------------ informational events


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageData(Event):
    """A chunk of message content, dot-unstuffed; never the whole message at once."""

    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageRejected(Event):
    """Content refused after its end; the engine already sent ``reply``.

    The application discards what it received of this message.
    """

    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class Reset(Event):
    """The transaction was dropped (RSET, HELO/EHLO, STARTTLS); discard the envelope."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandRejected(Event):
    """The engine refused a command by itself (for logging).

    ``command`` is the verb as received, escaped (see ``escape_text``). ``argument`` is
    what the refusal was about, escaped, where a policy refused it: the HELO/EHLO name
    for ``refuse_helo_containing``, the path for a forbidden ``%`` or ``!``, the
    recipient over ``max_recipients``; otherwise empty.
    """

    command: str
    reply: Reply
    argument: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StartTLS(Event):
    """220 2.0.0 was queued; flush it, do the TLS handshake, then call tls_established()."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed(Event):
    """The session is over; any final reply is queued. Returned again on every later call."""

    reason: str
