# Envelope addresses: RFC 5321 §4.1.2 (Path, Mailbox, Local-part, Domain), §4.1.3
# (address literals), §4.5.3.1.1-3 (size limits), Appendix C and §4.1.2 A-d-l (source
# routes, accepted and dropped), §4.5.1 (<postmaster>), RFC 6531 §3.3 (UTF-8 addresses
# after SMTPUTF8).
#
# Replies, chosen once and used everywhere (Postfix's wording and codes):
#   reverse-path (MAIL) syntax     501 5.1.7 Bad sender address syntax      (RFC 3463 X.1.7)
#   forward-path (RCPT) syntax     501 5.1.3 Bad recipient address syntax   (RFC 3463 X.1.3)
#   path / local part / domain over the limit: the same code and status, with the text
#       "Path too long" etc.; RFC 5321 §4.5.3.1.10 gives "501 Path too long" as its example.
#   non-ASCII without SMTPUTF8     553 5.6.7 (RFC 6531 §3.7.4.1 and its X.6.7 code)
"""Mailbox and path parsing for MAIL FROM and RCPT TO."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass

from . import _abnf
from ._errors import ParameterError
from ._reply import Reply

__all__ = [
    "MAX_DOMAIN",
    "MAX_LOCAL_PART",
    "MAX_PATH",
    "Mailbox",
    "parse_path",
    "split_path",
]

MAX_LOCAL_PART = 64
"""RFC 5321 §4.5.3.1.1: the maximum total length of a local part is 64 octets."""
MAX_DOMAIN = 255
"""RFC 5321 §4.5.3.1.2: the maximum total length of a domain name or number is 255 octets."""
MAX_PATH = 256
"""RFC 5321 §4.5.3.1.3: the maximum total length of a reverse-path or forward-path is
256 octets, including the punctuation and element separators."""

_C0_OR_DEL = re.compile(r"[\x00-\x1f\x7f]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_QUOTED_PAIR_SUB = re.compile(r"\\(.)", re.DOTALL)
_NEEDS_ESCAPE = re.compile(r'(["\\])')
# "<" then quoted strings or anything but quotes and brackets, then ">": a path may hold
# ">" or " " only inside the quoted local part.
_PATH_PREFIX = re.compile(r' *<(?:"(?:[^"\\]|\\.)*"|[^"<>])*>', re.DOTALL)


@dataclass(frozen=True, slots=True, kw_only=True)
class Mailbox:
    """One envelope mailbox, ``local_part@domain`` (RFC 5321 §4.1.2).

    Attributes:
        local_part: The decoded local part: quotes removed, quoted pairs resolved.
            Compare it case-sensitively (RFC 5321 §2.4) unless your policy says otherwise.
        domain: The domain as given (ASCII, U-labels after SMTPUTF8, or an address
            literal with its brackets such as ``"[192.0.2.1]"``); ``""`` only for the
            special recipient ``<postmaster>`` (then ``local_part == "postmaster"``).

    Raises:
        ValueError: When built with a control character in either field, or a domain
            that is neither a domain name, an address literal, nor ``""``.
    """

    local_part: str
    domain: str

    def __post_init__(self) -> None:
        for value in (self.local_part, self.domain):
            if not isinstance(value, str) or _has_forbidden_char(value):
                raise ValueError(f"mailbox part must be text without controls: {value!r}")
        if self.domain == "":
            if self.local_part.lower() != "postmaster":
                raise ValueError("only postmaster may go without a domain")
        elif _abnf.ADDRESS_LITERAL.fullmatch(self.domain):
            try:
                _check_address_literal(self.domain[1:-1], sender=False)
            except ParameterError:
                raise ValueError(f"not an IP address literal: {self.domain!r}") from None
        elif not _abnf.DOMAIN_UTF8.fullmatch(self.domain):
            raise ValueError(f"not a domain or address literal: {self.domain!r}")

    def __str__(self) -> str:
        """The mailbox as it goes between ``<`` and ``>``, quoting the local part if needed."""
        if self.domain == "":
            return self.local_part
        return f"{_quote_local_part(self.local_part)}@{self.domain}"

    @property
    def is_utf8(self) -> bool:
        """True when the mailbox needs SMTPUTF8 (RFC 6531) to be sent."""
        return not (self.local_part.isascii() and self.domain.isascii())


def _quote_local_part(local_part: str) -> str:
    if _abnf.DOT_STRING_UTF8.fullmatch(local_part):
        return local_part
    return '"' + _NEEDS_ESCAPE.sub(r"\\\1", local_part) + '"'


def _has_forbidden_char(text: str) -> bool:
    """True for C0 controls, DEL, C1 controls and lone surrogates (never in an address)."""
    if _C0_OR_DEL.search(text):
        return True
    if text.isascii():
        return False
    return any(unicodedata.category(ch) in ("Cc", "Cs") for ch in _NON_ASCII.findall(text))


def _syntax_reply(sender: bool, text: str | None = None) -> Reply:
    if sender:
        return Reply(code=501, status="5.1.7", lines=(text or "Bad sender address syntax",))
    return Reply(code=501, status="5.1.3", lines=(text or "Bad recipient address syntax",))


def _error(sender: bool, why: str, text: str | None = None) -> ParameterError:
    return ParameterError(why, _syntax_reply(sender, text))


def split_path(text: str, *, sender: bool) -> tuple[str, str]:
    """Split the argument of MAIL FROM: / RCPT TO: into the path and the parameters.

    A path may contain spaces and ``>`` inside a quoted local part, so this cannot be a
    plain ``partition(" ")``. Leading spaces before ``<`` are skipped (a deviation from
    RFC 5321 §4.1.1.2, which has none; many clients send ``MAIL FROM: <a@b>``).

    Args:
        text: Everything after ``FROM:`` or ``TO:``, without the CRLF.
        sender: True for MAIL (errors say "sender", 5.1.7), False for RCPT (5.1.3).

    Returns:
        ``(path, rest)``: the path from ``<`` to ``>`` inclusive, and what follows it
        (empty, or starting with a space).

    Raises:
        ParameterError: 501 5.1.7 / 501 5.1.3 when there is no ``<...>`` path, or text
            follows ``>`` without a space.
    """
    match = _PATH_PREFIX.match(text)
    if match is None:
        raise _error(sender, "no <path> in argument")
    rest = text[match.end() :]
    if rest and not rest.startswith(" "):
        raise _error(sender, "text glued to the path")
    return match.group().lstrip(" "), rest


def parse_path(
    text: str,
    *,
    allow_null: bool,
    allow_postmaster: bool,
    utf8: bool,
    sender: bool | None = None,
    max_local_part: int = MAX_LOCAL_PART,
    max_domain: int = MAX_DOMAIN,
    max_path: int = MAX_PATH,
) -> tuple[Mailbox | None, str]:
    """Parse a reverse-path or forward-path (RFC 5321 §4.1.2).

    ``Path = "<" [ A-d-l ":" ] Mailbox ">"``; a source route (A-d-l) is checked for
    syntax and dropped (RFC 5321 Appendix C: "SHOULD accept ... and ignore").

    Args:
        text: The path, ``<`` to ``>`` (see :func:`split_path`); leading spaces skipped.
        allow_null: Accept the null path ``<>`` (MAIL FROM, RFC 5321 §4.5.5).
        allow_postmaster: Accept ``<postmaster>`` without a domain, any case (RCPT TO,
            RFC 5321 §4.5.1).
        utf8: Accept UTF-8 in the local part and domain (RFC 6531 §3.3: only when the
            transaction was started with the SMTPUTF8 parameter).
        sender: Word errors for the reverse-path (5.1.7) or forward-path (5.1.3);
            defaults to ``allow_null`` (only MAIL FROM accepts ``<>``).
        max_local_part: Longest local part in octets, as written (default 64,
            RFC 5321 §4.5.3.1.1).
        max_domain: Longest domain in octets (default 255, RFC 5321 §4.5.3.1.2).
        max_path: Longest path in octets, brackets and source route included
            (default 256, RFC 5321 §4.5.3.1.3).

    Returns:
        ``(mailbox, raw)``: the Mailbox (None for ``<>``) and the text between the
        brackets exactly as given, for logs after escaping.

    Raises:
        ParameterError: 501 5.1.7 (sender) or 501 5.1.3 (recipient) for bad syntax or a
            limit exceeded; 553 5.6.7 for non-ASCII without ``utf8``. Nothing is kept
            from a failed call.
    """
    if sender is None:
        sender = allow_null
    path = text.lstrip(" ")
    if _has_forbidden_char(path):
        raise _error(sender, "control character in path")
    if not utf8 and not path.isascii():
        raise ParameterError(
            "non-ASCII address without SMTPUTF8",
            Reply(
                code=553,
                status="5.6.7",
                lines=("Non-ASCII address requires the SMTPUTF8 parameter",),
            ),
        )
    if len(path.encode("utf-8")) > max_path:
        raise _error(sender, "path too long", "Path too long")
    if len(path) < 2 or path[0] != "<" or path[-1] != ">":
        raise _error(sender, "path not in angle brackets")
    raw = path[1:-1]
    if raw == "":
        if allow_null:
            return None, raw
        raise _error(sender, "null path not allowed here")
    if allow_postmaster and raw.lower() == "postmaster":
        return Mailbox(local_part="postmaster", domain=""), raw

    mailbox_text = raw
    if raw.startswith("@"):
        # At-domain = "@" Domain: no colon can occur before the one ending the A-d-l.
        route, colon, mailbox_text = raw.partition(":")
        if not colon:
            raise _error(sender, "source route without mailbox")
        domain_re = _abnf.DOMAIN_UTF8 if utf8 else _abnf.DOMAIN
        for at_domain in route.split(","):
            if not at_domain.startswith("@") or not domain_re.fullmatch(at_domain[1:]):
                raise _error(sender, "bad source route")

    mailbox_re = _abnf.MAILBOX_UTF8 if utf8 else _abnf.MAILBOX
    match = mailbox_re.fullmatch(mailbox_text)
    if match is None:
        raise _error(sender, "bad mailbox syntax")
    local_raw, domain = match.group("local"), match.group("domain")
    if len(local_raw.encode("utf-8")) > max_local_part:
        raise _error(sender, "local part too long", "Local part too long")
    if len(domain.encode("utf-8")) > max_domain:
        raise _error(sender, "domain too long", "Domain too long")
    if domain.startswith("["):
        _check_address_literal(domain[1:-1], sender)
    else:
        _check_domain_labels(domain, sender)
    if local_raw.startswith('"'):
        local_part = _QUOTED_PAIR_SUB.sub(r"\1", local_raw[1:-1])
    else:
        local_part = local_raw
    return Mailbox(local_part=local_part, domain=domain), raw


def _check_address_literal(body: str, sender: bool) -> None:
    """RFC 5321 §4.1.3: IPv4 or "IPv6:" literals, validated by ipaddress."""
    try:
        if _abnf.IPV4_ADDRESS_LITERAL.fullmatch(body):
            ipaddress.IPv4Address(body)
            return
        if _abnf.IPV6_ADDRESS_LITERAL.fullmatch(body):
            ipaddress.IPv6Address(body[5:])
            return
    except ValueError:
        raise _error(sender, "bad IP address literal") from None
    # General-address-literal: syntactically possible, but no tag is registered.
    raise _error(sender, "unsupported address literal")


def _check_domain_labels(domain: str, sender: bool) -> None:
    """RFC 1035 §2.3.4 label length, and letters/marks/digits only in U-labels."""
    for label in domain.split("."):
        if len(label) > 63:
            raise _error(sender, "domain label too long")
        if not label.isascii():
            for ch in _NON_ASCII.findall(label):
                if unicodedata.category(ch)[0] not in "LMN":
                    raise _error(sender, "character not allowed in a U-label")
