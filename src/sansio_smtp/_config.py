# ServerConfig: every limit, extension switch and policy of the engine in one
# frozen value. Each limit cites where its default comes from.
"""ServerConfig: limits, ESMTP extension switches and policy for ServerConnection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ServerConfig"]

_AUTH_MECHANISMS = frozenset({"PLAIN", "LOGIN"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Configuration of one ServerConnection.

    Attributes:
        hostname: Our name, used in the 220 greeting, the EHLO reply and 221.
        greeting_text: Text after the hostname in the 220 greeting.
        pipelining: Advertise PIPELINING (RFC 2920). Pipelined input is always handled
            in order; this only controls the keyword.
        size: Advertise SIZE (RFC 1870) and accept the SIZE= parameter.
        eightbitmime: Advertise 8BITMIME (RFC 6152) and accept BODY=8BITMIME.
        smtputf8: Advertise SMTPUTF8 (RFC 6531) and accept UTF-8 addresses after it.
            Needs eightbitmime (RFC 6531 §3.1 item 8).
        enhanced_status_codes: Advertise ENHANCEDSTATUSCODES (RFC 2034) and prefix
            every reply after EHLO with its status code.
        dsn: Advertise DSN (RFC 3461) and accept RET/ENVID/NOTIFY/ORCPT; when off,
            those parameters get 555 5.5.4.
        chunking: Advertise CHUNKING (RFC 3030) and accept BDAT.
        binarymime: Advertise BINARYMIME (RFC 3030) and accept BODY=BINARYMIME.
            Needs chunking.
        starttls: Advertise STARTTLS (RFC 3207) while TLS is not active.
        auth_mechanisms: SASL mechanisms advertised in AUTH (RFC 4954); a subset of
            ("PLAIN", "LOGIN"). Empty: no AUTH.
        auth_require_tls: Offer and accept AUTH only over TLS (538 5.7.11 otherwise).
        require_tls: Refuse MAIL with 530 5.7.0 until TLS is active (RFC 3207 §4).
        vrfy: False: VRFY gets 252 2.5.2 from the engine; True: a Verify event.
        expn: False: EXPN gets 502 5.5.1; True: an Expand event.
        max_command_line: Longest command line, CRLF included. Default 512 (RFC 5321
            §4.5.3.1.4); the engine adds the allowances of enabled extensions
            (SIZE +26 RFC 1870 §3, DSN +100 ENVID +8 RET and +500 ORCPT RFC 3461 §4,
            SMTPUTF8 +10 RFC 6531 §3.4, BODY +14 RFC 6152 §2, AUTH= +500 RFC 4954 §5).
        max_auth_line: Longest AUTH command or SASL response line, CRLF included.
            Default 12288 (RFC 4954 §4).
        max_text_line: Longest line of DATA content, CRLF included. Default 1000
            (RFC 5321 §4.5.3.1.6); a longer line refuses the message after its end.
        max_recipients: Recipients accepted per transaction. Default 100, the minimum
            RFC 5321 §4.5.3.1.8 requires; beyond it 452 4.5.3.
        max_message_size: Largest message in bytes, or None for no limit. Default
            10240000 (Postfix message_size_limit); advertised in SIZE; 552 5.3.4.
        max_buffered_bytes: Unprocessed input held while the engine waits for the
            application (a decision, the greeting, the TLS handshake). Default 65536:
            a generous pipelining window (RFC 2920 §3.1 lets a client send a whole
            window of commands; h11 holds 16 KiB for one incomplete event). Beyond it
            the engine answers 421 4.7.0 and closes. Incomplete command lines are
            bounded separately by the line limits.
        max_bad_commands: Protocol errors (5xx answers the engine gives by itself)
            allowed per session. Default 20 (Postfix smtpd_hard_error_limit); the next
            one gets 421 4.7.0 and the connection closes.
        max_envid_length: Longest ENVID value. Default 100 (RFC 3461 §4.4).
        bare_newlines: What to do with a bare LF or bare CR in DATA content.
            "reject" (default, like Postfix smtpd_forbid_bare_newline): refuse the
            message with 550 5.5.2 after its end, as Postfix does; "normalize": turn
            them into CRLF.
            Either way only CRLF.CRLF ends the message.
        refuse_helo_containing: HELO/EHLO arguments containing any of these texts
            (case-insensitive) get 554 5.7.1, and no MAIL is accepted afterwards.
        forbid_percent_in_local_part: RCPT local part containing '%' -> 553 5.1.3.
        forbid_bang_in_local_part: RCPT local part containing '!' -> 553 5.1.3.

    Raises:
        ValueError: On an inconsistent or out-of-range setting.
    """

    hostname: str
    greeting_text: str = "ESMTP"
    # extensions
    pipelining: bool = True
    size: bool = True
    eightbitmime: bool = True
    smtputf8: bool = True
    enhanced_status_codes: bool = True
    dsn: bool = True
    chunking: bool = True
    binarymime: bool = True
    starttls: bool = False
    auth_mechanisms: tuple[str, ...] = ()
    auth_require_tls: bool = True
    require_tls: bool = False
    vrfy: bool = False
    expn: bool = False
    # limits
    max_command_line: int = 512
    max_auth_line: int = 12288
    max_text_line: int = 1000
    max_recipients: int = 100
    max_message_size: int | None = 10_240_000
    max_buffered_bytes: int = 65536
    max_bad_commands: int = 20
    max_envid_length: int = 100
    # content policy
    bare_newlines: Literal["reject", "normalize"] = "reject"
    # policy hooks
    refuse_helo_containing: tuple[str, ...] = ()
    forbid_percent_in_local_part: bool = False
    forbid_bang_in_local_part: bool = False

    def __post_init__(self) -> None:
        if not self.hostname or any(c.isspace() or ord(c) < 0x20 for c in self.hostname):
            raise ValueError(f"hostname must be a non-empty word, got {self.hostname!r}")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in self.greeting_text):
            raise ValueError("greeting_text must not contain control characters")
        for name in ("max_command_line", "max_auth_line", "max_text_line"):
            if getattr(self, name) < 64:
                raise ValueError(f"{name} must be at least 64")
        for name in ("max_recipients", "max_buffered_bytes", "max_bad_commands"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_envid_length < 1:
            raise ValueError("max_envid_length must be at least 1")
        if self.max_message_size is not None and self.max_message_size < 1:
            raise ValueError("max_message_size must be positive or None")
        if self.bare_newlines not in ("reject", "normalize"):
            raise ValueError('bare_newlines must be "reject" or "normalize"')
        if self.smtputf8 and not self.eightbitmime:
            raise ValueError("smtputf8 needs eightbitmime (RFC 6531 §3.1 item 8)")
        if self.binarymime and not self.chunking:
            raise ValueError("binarymime needs chunking (RFC 3030 §3)")
        unknown = {m.upper() for m in self.auth_mechanisms} - _AUTH_MECHANISMS
        if unknown:
            raise ValueError(f"unsupported auth mechanisms: {sorted(unknown)}")
        if not all(isinstance(s, str) and s for s in self.refuse_helo_containing):
            raise ValueError("refuse_helo_containing must hold non-empty strings")

    @property
    def command_line_limit(self) -> int:
        """max_command_line plus the allowances of the enabled extensions."""
        extra = 0
        if self.size:
            extra += 26  # RFC 1870 §3
        if self.dsn:
            extra += 100 + 8 + 500  # RFC 3461 §4: ENVID, RET, ORCPT (NOTIFY fits in 500)
        if self.smtputf8:
            extra += 10  # RFC 6531 §3.4
        if self.eightbitmime:
            extra += 14  # RFC 6152 §2 BODY=8BITMIME / BINARYMIME
        if self.auth_mechanisms:
            extra += 500  # RFC 4954 §5 AUTH=
        return self.max_command_line + extra
