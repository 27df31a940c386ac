# MAIL FROM / RCPT TO parameters: RFC 5321 §4.1.2 (esmtp-param) and §4.1.1.11 (unknown
# parameters), RFC 1870 §3 (SIZE), RFC 6152 §2 and RFC 3030 §3 (BODY), RFC 6531 §3.4
# (SMTPUTF8), RFC 4954 §5 (AUTH=), RFC 3461 §4 (xtext, NOTIFY, ORCPT, RET, ENVID) and
# RFC 6533 §3 (the "utf-8" ORCPT address type).
#
# Replies, in the order a parameter list is checked (left to right; the first problem wins):
#   malformed keyword or value, bad value for a known keyword       501 5.5.4
#   the same keyword twice (case-insensitively)                       501 5.5.4
#   keyword not known, or its extension switched off (DSN etc.)       555 5.5.4
#       (RFC 5321 §4.1.1.11; also a known keyword whose value needs an extension
#       that is off, such as BODY=BINARYMIME without BINARYMIME)
#   SIZE above the server's limit                                     552 5.3.4 (RFC 1870 §6.1)
"""Typed MAIL/RCPT parameters, their parsers and formatters, and xtext."""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from typing import TypeVar

from . import _abnf
from ._errors import ParameterError
from ._reply import Reply

__all__ = [
    "MAX_ENVID_LENGTH",
    "MAX_ORCPT_LENGTH",
    "Body",
    "MailParams",
    "Notify",
    "OriginalRecipient",
    "RcptParams",
    "Ret",
    "format_mail_params",
    "format_rcpt_params",
    "parse_mail_params",
    "parse_rcpt_params",
    "utf8_addr_unitext_encode",
    "utf8_addr_xtext_decode",
    "utf8_addr_xtext_encode",
    "xtext_decode",
    "xtext_encode",
]

MAX_ENVID_LENGTH = 100
"""RFC 3461 §4.4: an ENVID value (as xtext) is at most 100 characters."""
MAX_ORCPT_LENGTH = 500
"""RFC 3461 §4.2: an ORCPT value is at most 500 characters."""


class Body(enum.StrEnum):
    """The BODY parameter (RFC 6152 §2, RFC 3030 §3)."""

    SEVEN_BIT = "7BIT"
    EIGHT_BIT_MIME = "8BITMIME"
    BINARY_MIME = "BINARYMIME"


class Ret(enum.StrEnum):
    """The RET parameter of DSN (RFC 3461 §4.3): return the full message or its headers."""

    FULL = "FULL"
    HDRS = "HDRS"


class Notify(enum.StrEnum):
    """One NOTIFY keyword (RFC 3461 §4.1). Members are ``str``, so ``"DELAY" in notify``."""

    NEVER = "NEVER"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    DELAY = "DELAY"


def _check_extra(extra: tuple[tuple[str, str | None], ...]) -> None:
    for keyword, value in extra:
        if not _abnf.ESMTP_KEYWORD.fullmatch(keyword):
            raise ValueError(f"not an esmtp-keyword: {keyword!r}")
        if value is not None and not _abnf.ESMTP_VALUE_UTF8.fullmatch(value):
            raise ValueError(f"not an esmtp-value: {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class MailParams:
    """The parameters of one MAIL FROM command.

    Attributes:
        size: SIZE=, the declared message size in octets (RFC 1870), or None.
        body: BODY= (RFC 6152 / RFC 3030), or None.
        smtputf8: The SMTPUTF8 parameter was given (RFC 6531 §3.4).
        auth: AUTH=, xtext-decoded: a mailbox or ``"<>"`` (RFC 4954 §5), or None.
        ret: RET= (RFC 3461 §4.3), or None.
        envid: ENVID=, xtext-decoded (RFC 3461 §4.4), or None.
        extra: Parameters the application asked to see (``extra_keywords``), as
            ``(keyword as given, value or None)`` in order.

    Raises:
        ValueError: When built with a negative or over-long size, an AUTH that is not a
            mailbox or ``<>``, an empty ENVID, or an extra parameter that is not an
            esmtp-param.
    """

    size: int | None = None
    body: Body | None = None
    smtputf8: bool = False
    auth: str | None = None
    ret: Ret | None = None
    envid: str | None = None
    extra: tuple[tuple[str, str | None], ...] = ()

    def __post_init__(self) -> None:
        if self.size is not None and not 0 <= self.size < 10**20:
            raise ValueError("SIZE must be 0 .. 10**20 - 1 (RFC 1870: 1*20DIGIT)")
        if (
            self.auth is not None
            and self.auth != "<>"
            and not _abnf.MAILBOX_UTF8.fullmatch(self.auth)
        ):
            raise ValueError("AUTH must be a mailbox or <> (RFC 4954 §5)")
        if self.envid == "":
            raise ValueError("ENVID cannot be empty (esmtp-value = 1*...)")
        if self.envid is not None and (not self.envid.isascii() or _has_control(self.envid)):
            # What parse_mail_params refuses must not be sendable either (fuzz finding F5).
            raise ValueError("ENVID must be printable US-ASCII (RFC 3461 §4.4)")
        _check_extra(self.extra)


@dataclass(frozen=True, slots=True, kw_only=True)
class OriginalRecipient:
    """ORCPT= (RFC 3461 §4.2): the recipient as originally given.

    Attributes:
        addr_type: The address type as given, e.g. ``"rfc822"`` or ``"utf-8"`` (RFC
            6533); compare case-insensitively.
        address: The decoded address: xtext decoded, or for ``utf-8`` the
            utf-8-addr-xtext / utf-8-addr-unitext decoded (RFC 6533 §3). It is not
            required to be valid for its type (RFC 3461 §4.2), but never holds controls.

    Raises:
        ValueError: When ``addr_type`` is not an atom or ``address`` is empty or holds
            a control character.
    """

    addr_type: str
    address: str

    def __post_init__(self) -> None:
        if not _abnf.ATOM.fullmatch(self.addr_type):
            raise ValueError(f"ORCPT address type must be an atom: {self.addr_type!r}")
        if not self.address or _has_control(self.address):
            raise ValueError("ORCPT address must be non-empty text without controls")


@dataclass(frozen=True, slots=True, kw_only=True)
class RcptParams:
    """The parameters of one RCPT TO command.

    Attributes:
        notify: NOTIFY= (RFC 3461 §4.1): ``{NEVER}`` or a non-empty subset of
            SUCCESS, FAILURE, DELAY; None when absent.
        orcpt: ORCPT= (RFC 3461 §4.2), or None.
        extra: As for :class:`MailParams`.

    Raises:
        ValueError: When ``notify`` is empty or mixes NEVER with another keyword.
    """

    notify: frozenset[Notify] | None = None
    orcpt: OriginalRecipient | None = None
    extra: tuple[tuple[str, str | None], ...] = ()

    def __post_init__(self) -> None:
        if self.notify is not None and (
            not self.notify or (Notify.NEVER in self.notify and len(self.notify) > 1)
        ):
            raise ValueError("NOTIFY is NEVER alone, or any of SUCCESS, FAILURE, DELAY")
        _check_extra(self.extra)


# --- xtext (RFC 3461 §4) ----------------------------------------------------------------

_XTEXT_SPLIT = re.compile(r"\+([0-9A-F]{2})")
_XCHAR_SAFE = frozenset(chr(c) for c in range(33, 127)) - {"+", "="}


def xtext_encode(text: str, *, utf8: bool = False) -> str:
    """Encode text as xtext (RFC 3461 §4).

    ``+``, ``=`` and every character outside ``!``..``~`` become ``+XX`` (upper case
    hex). xtext is defined over ASCII; a non-ASCII character is encoded as the ``+XX``
    of each of its UTF-8 octets, which :func:`xtext_decode` reverses.

    Args:
        text: The text.
        utf8: The value goes into an SMTPUTF8 transaction, where an esmtp-value may
            hold UTF-8 (RFC 6531 §3.3): non-ASCII characters then stand for themselves,
            the mirror of ``xtext_decode(utf8=True)``, and the value never grows.

    Raises:
        ValueError: When ``text`` holds a lone surrogate (not encodable as UTF-8).
    """
    if all(ch in _XCHAR_SAFE for ch in text):
        return text
    return "".join(
        ch
        if ch in _XCHAR_SAFE or (utf8 and ord(ch) > 0x7F and not 0xD800 <= ord(ch) <= 0xDFFF)
        else "".join(f"+{b:02X}" for b in ch.encode("utf-8"))
        for ch in text
    )


def xtext_decode(text: str, *, utf8: bool = False) -> str:
    """Decode xtext (RFC 3461 §4).

    Strict as written in the RFC: ``hexchar`` is ``+`` and two *upper case* hex digits,
    so ``+2b`` is refused, as is any raw character outside ``!``..``~``, and ``=``.
    The decoded octets must be UTF-8 (plain ASCII for every conforming sender).

    Args:
        text: The xtext.
        utf8: Also accept raw non-ASCII characters (an esmtp-value after SMTPUTF8,
            RFC 6531 §3.3); they stand for themselves.

    Raises:
        ValueError: When ``text`` is not xtext or does not decode to UTF-8.
    """
    if not (_abnf.XTEXT_UTF8 if utf8 else _abnf.XTEXT).fullmatch(text):
        raise ValueError("not xtext")
    if "+" not in text:
        return text
    octets = bytearray()
    for i, part in enumerate(_XTEXT_SPLIT.split(text)):
        # split() with one group alternates literal text and the captured hex digits.
        octets += bytes.fromhex(part) if i % 2 else part.encode("utf-8")
    try:
        return octets.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("xtext does not decode to UTF-8") from None


# --- utf-8-addr-xtext / utf-8-addr-unitext (RFC 6533 §3) --------------------------------

_QCHAR_SAFE = frozenset(chr(c) for c in range(33, 127)) - {"+", "=", "\\"}
_EMBEDDED = re.compile(r"\\x\{([0-9A-F]{1,6})\}")


def utf8_addr_xtext_encode(text: str) -> str:
    """Encode an address as utf-8-addr-xtext (RFC 6533 §3), pure ASCII.

    Every character other than a QCHAR (printable ASCII but ``\\``, ``+``, ``=``)
    becomes ``\\x{HEX}``, upper case and shortest form (two digits at least).
    """
    return "".join(ch if ch in _QCHAR_SAFE else f"\\x{{{ord(ch):02X}}}" for ch in text)


def utf8_addr_xtext_decode(text: str, *, unitext: bool = False) -> str:
    """Decode utf-8-addr-xtext, or utf-8-addr-unitext when ``unitext`` (RFC 6533 §3).

    Args:
        text: The encoded address (after ``utf-8;`` in ORCPT).
        unitext: Also accept raw non-ASCII characters (only after SMTPUTF8).

    Raises:
        ValueError: When ``text`` is neither form, or an escape names a surrogate or a
            value above U+10FFFF.
    """
    pattern = _abnf.UTF8_ADDR_UNITEXT if unitext else _abnf.UTF8_ADDR_XTEXT
    if not pattern.fullmatch(text):
        raise ValueError("not utf-8-addr-xtext")

    def scalar(match: re.Match[str]) -> str:
        value = int(match.group(1), 16)
        if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
            raise ValueError("escape is not a Unicode scalar value")
        return chr(value)

    return _EMBEDDED.sub(scalar, text)


_T = TypeVar("_T")
_E = TypeVar("_E", bound=enum.StrEnum)

# --- parsing ------------------------------------------------------------------------------

_C0_OR_DEL = re.compile(r"[\x00-\x1f\x7f]")


def _has_control(text: str) -> bool:
    if _C0_OR_DEL.search(text):
        return True
    return not text.isascii() and any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text)


def _malformed(why: str, text: str = "Syntax error in parameters") -> ParameterError:
    return ParameterError(why, Reply(code=501, status="5.5.4", lines=(text,)))


def _unknown(keyword: str) -> ParameterError:
    # keyword matched esmtp-keyword, so it is safe to quote (letters, digits, "-").
    return ParameterError(
        f"unsupported parameter {keyword}",
        Reply(code=555, status="5.5.4", lines=(f"Unsupported parameter {keyword[:40]}",)),
    )


def _tokenize(text: str, *, utf8_values: bool) -> list[tuple[str, str | None]]:
    """Split ``esmtp-param *(SP esmtp-param)`` into (keyword, value) pairs.

    Runs of spaces are accepted between parameters and at either end (a deviation from
    the single SP of RFC 5321 §4.1.2; it cannot change meaning). Any other whitespace or
    control makes the list malformed. Duplicates are refused here.
    """
    pairs: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    value_re = _abnf.ESMTP_VALUE_UTF8 if utf8_values else _abnf.ESMTP_VALUE
    for token in text.split(" "):
        if not token:
            continue
        keyword, equals, value = token.partition("=")
        if not _abnf.ESMTP_KEYWORD.fullmatch(keyword):
            raise _malformed("bad esmtp-keyword")
        if equals and not value_re.fullmatch(value):
            raise _malformed("bad esmtp-value")
        folded = keyword.upper()
        if folded in seen:
            raise _malformed("duplicate parameter", "Duplicate parameter")
        seen.add(folded)
        pairs.append((keyword, value if equals else None))
    return pairs


def _has_keyword(text: str, keyword: str) -> bool:
    return any(tok.partition("=")[0].upper() == keyword for tok in text.split(" "))


def parse_mail_params(
    text: str,
    *,
    size: bool = False,
    eightbitmime: bool = False,
    binarymime: bool = False,
    smtputf8: bool = False,
    dsn: bool = False,
    auth: bool = False,
    max_message_size: int | None = None,
    max_envid_length: int = MAX_ENVID_LENGTH,
    extra_keywords: Collection[str] = (),
) -> MailParams:
    """Parse the parameters after ``MAIL FROM:<path>``.

    Each switch says whether the server advertised that extension; a parameter of an
    extension that is off is unknown (555 5.5.4), as RFC 5321 §4.1.1.11 asks.

    Args:
        text: What follows the path (may be empty or start with spaces).
        size: SIZE (RFC 1870) enabled.
        eightbitmime: BODY=7BIT / BODY=8BITMIME (RFC 6152) enabled.
        binarymime: BODY=BINARYMIME (RFC 3030) enabled.
        smtputf8: SMTPUTF8 (RFC 6531) enabled; with the parameter present, values may
            hold UTF-8 (RFC 6531 §3.3 esmtp-value).
        dsn: RET and ENVID (RFC 3461) enabled.
        auth: AUTH= (RFC 4954 §5) enabled.
        max_message_size: SIZE above this is refused with 552 5.3.4; None: no limit.
        max_envid_length: Longest ENVID value as sent (default 100, RFC 3461 §4.4).
        extra_keywords: Further keywords (any case) the application handles; they land
            in ``extra`` instead of being refused.

    Returns:
        The typed parameters.

    Raises:
        ParameterError: 501 5.5.4 malformed or duplicate, 555 5.5.4 unknown, 552 5.3.4
            SIZE over the limit. Nothing is kept from a failed call.
    """
    utf8 = smtputf8 and _has_keyword(text, "SMTPUTF8")
    extras = {k.upper() for k in extra_keywords}
    found: dict[str, object] = {}
    extra: list[tuple[str, str | None]] = []
    for keyword, value in _tokenize(text, utf8_values=utf8):
        name = keyword.upper()
        if name == "SIZE" and size:
            found[name] = _parse_size(value, max_message_size)
        elif name == "BODY" and (eightbitmime or binarymime):
            found[name] = _parse_body(value, eightbitmime=eightbitmime, binarymime=binarymime)
        elif name == "SMTPUTF8" and smtputf8:
            if value is not None:
                raise _malformed("SMTPUTF8 takes no value")
            found[name] = True
        elif name == "AUTH" and auth:
            found[name] = _parse_auth(value, utf8=utf8)
        elif name == "RET" and dsn:
            found[name] = _parse_choice(value, Ret)
        elif name == "ENVID" and dsn:
            found[name] = _parse_envid(value, max_envid_length)
        elif name in extras:
            extra.append((keyword, value))
        else:
            raise _unknown(keyword)
    return MailParams(
        size=_get(found, "SIZE", int),
        body=_get(found, "BODY", Body),
        smtputf8="SMTPUTF8" in found,
        auth=_get(found, "AUTH", str),
        ret=_get(found, "RET", Ret),
        envid=_get(found, "ENVID", str),
        extra=tuple(extra),
    )


def parse_rcpt_params(
    text: str,
    *,
    dsn: bool = False,
    utf8: bool = False,
    max_orcpt_length: int = MAX_ORCPT_LENGTH,
    extra_keywords: Collection[str] = (),
) -> RcptParams:
    """Parse the parameters after ``RCPT TO:<path>``.

    Args:
        text: What follows the path (may be empty or start with spaces).
        dsn: NOTIFY and ORCPT (RFC 3461) enabled; otherwise they get 555 5.5.4.
        utf8: The transaction uses SMTPUTF8: values may hold UTF-8, and an ORCPT of
            type ``utf-8`` may be utf-8-addr-unitext (RFC 6533 §3).
        max_orcpt_length: Longest ORCPT value as sent (default 500, RFC 3461 §4.2).
        extra_keywords: As for :func:`parse_mail_params`.

    Returns:
        The typed parameters.

    Raises:
        ParameterError: 501 5.5.4 malformed or duplicate, 555 5.5.4 unknown. Nothing
            is kept from a failed call.
    """
    extras = {k.upper() for k in extra_keywords}
    notify: frozenset[Notify] | None = None
    orcpt: OriginalRecipient | None = None
    extra: list[tuple[str, str | None]] = []
    for keyword, value in _tokenize(text, utf8_values=utf8):
        name = keyword.upper()
        if name == "NOTIFY" and dsn:
            notify = _parse_notify(value)
        elif name == "ORCPT" and dsn:
            orcpt = _parse_orcpt(value, utf8=utf8, max_length=max_orcpt_length)
        elif name in extras:
            extra.append((keyword, value))
        else:
            raise _unknown(keyword)
    return RcptParams(notify=notify, orcpt=orcpt, extra=tuple(extra))


def _get(found: dict[str, object], name: str, kind: type[_T]) -> _T | None:
    value = found.get(name)
    assert value is None or isinstance(value, kind)
    return value


def _parse_size(value: str | None, max_message_size: int | None) -> int:
    # RFC 1870 §3: size-value ::= 1*20DIGIT; the cap keeps int() cheap.
    if value is None or not _abnf.SIZE_VALUE.fullmatch(value):
        raise _malformed("bad SIZE value")
    declared = int(value)
    if max_message_size is not None and declared > max_message_size:
        raise ParameterError(
            "declared SIZE over the limit",
            Reply(
                code=552,
                status="5.3.4",
                lines=("Message size exceeds fixed maximum message size",),
            ),
        )
    return declared


def _parse_choice(value: str | None, kind: type[_E]) -> _E:
    if value is None:
        raise _malformed(f"{kind.__name__} needs a value")
    try:
        return kind(value.upper())
    except ValueError:
        raise _malformed(f"bad {kind.__name__} value") from None


def _parse_body(value: str | None, *, eightbitmime: bool, binarymime: bool) -> Body:
    body = _parse_choice(value, Body)
    enabled = binarymime if body is Body.BINARY_MIME else eightbitmime
    if not enabled:
        raise ParameterError(
            f"BODY={body} not offered",
            Reply(code=555, status="5.5.4", lines=(f"Unsupported BODY={body}",)),
        )
    return body


def _parse_auth(value: str | None, *, utf8: bool) -> str:
    # RFC 4954 §5: "AUTH=" xtext, decoding to an addr-spec or "<>".
    if value is None:
        raise _malformed("AUTH needs a value")
    try:
        decoded = xtext_decode(value, utf8=utf8)
    except ValueError:
        raise _malformed("AUTH value is not xtext") from None
    mailbox_re = _abnf.MAILBOX_UTF8 if utf8 else _abnf.MAILBOX
    if decoded != "<>" and not mailbox_re.fullmatch(decoded):
        raise _malformed("AUTH value is not a mailbox")
    return decoded


def _parse_envid(value: str | None, max_length: int) -> str:
    # RFC 3461 §4.4: xtext, at most 100 characters, decoding to printable US-ASCII.
    if value is None:
        raise _malformed("ENVID needs a value")
    if len(value) > max_length:
        raise _malformed("ENVID too long", "ENVID too long")
    try:
        decoded = xtext_decode(value)
    except ValueError:
        raise _malformed("ENVID is not xtext") from None
    if not decoded.isascii() or _has_control(decoded):
        raise _malformed("ENVID is not printable US-ASCII")
    return decoded


def _parse_notify(value: str | None) -> frozenset[Notify]:
    # RFC 3461 §4.1: "NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" ).
    if value is None:
        raise _malformed("NOTIFY needs a value")
    items = [_parse_choice(item, Notify) for item in value.split(",")]
    notify = frozenset(items)
    if len(notify) != len(items) or (Notify.NEVER in notify and len(notify) > 1):
        raise _malformed("NOTIFY is NEVER alone, or any of SUCCESS, FAILURE, DELAY")
    return notify


def _parse_orcpt(value: str | None, *, utf8: bool, max_length: int) -> OriginalRecipient:
    # RFC 3461 §4.2: "ORCPT=" addr-type ";" xtext; RFC 6533 §3 for addr-type "utf-8".
    if value is None:
        raise _malformed("ORCPT needs a value")
    if len(value) > max_length:
        raise _malformed("ORCPT too long", "ORCPT too long")
    addr_type, semicolon, encoded = value.partition(";")
    if not semicolon or not _abnf.ATOM.fullmatch(addr_type) or not encoded:
        raise _malformed("ORCPT is not addr-type;xtext")
    try:
        if addr_type.lower() == "utf-8":
            address = utf8_addr_xtext_decode(encoded, unitext=utf8)
        else:
            address = xtext_decode(encoded, utf8=utf8)
    except ValueError:
        raise _malformed("ORCPT address is not encoded correctly") from None
    if _has_control(address):
        raise _malformed("ORCPT address holds a control character")
    return OriginalRecipient(addr_type=addr_type, address=address)


# --- formatting (client role) -------------------------------------------------------------

_NOTIFY_ORDER = (Notify.NEVER, Notify.SUCCESS, Notify.FAILURE, Notify.DELAY)


def _format_extra(extra: tuple[tuple[str, str | None], ...]) -> list[str]:
    return [keyword if value is None else f"{keyword}={value}" for keyword, value in extra]


def format_mail_params(params: MailParams) -> str:
    """Render MAIL parameters as ``esmtp-param *(SP esmtp-param)``, or ``""``.

    The inverse of :func:`parse_mail_params` (with the same extensions enabled):
    AUTH and ENVID are xtext-encoded here.
    """
    out: list[str] = []
    if params.size is not None:
        out.append(f"SIZE={params.size}")
    if params.body is not None:
        out.append(f"BODY={params.body.value}")
    if params.smtputf8:
        out.append("SMTPUTF8")
    if params.auth is not None:
        out.append(f"AUTH={xtext_encode(params.auth)}")
    if params.ret is not None:
        out.append(f"RET={params.ret.value}")
    if params.envid is not None:
        out.append(f"ENVID={xtext_encode(params.envid)}")
    out.extend(_format_extra(params.extra))
    return " ".join(out)


def utf8_addr_unitext_encode(text: str) -> str:
    """Encode an address as utf-8-addr-unitext (RFC 6533 §3), for SMTPUTF8 sessions.

    Non-ASCII characters stand for themselves (QUCHAR); only ASCII characters that are
    not QCHARs become ``\\x{HEX}``. Never longer than any unitext that decodes to it.
    """
    return "".join(
        ch if ch in _QCHAR_SAFE or ord(ch) > 0x7F else f"\\x{{{ord(ch):02X}}}" for ch in text
    )


def format_rcpt_params(params: RcptParams, *, utf8: bool = False) -> str:
    """Render RCPT parameters as ``esmtp-param *(SP esmtp-param)``, or ``""``.

    NOTIFY keywords go in a fixed order; an ORCPT of type ``utf-8`` (any case) is
    written as utf-8-addr-xtext (RFC 6533 §3, safe with or without SMTPUTF8), or as
    utf-8-addr-unitext when ``utf8`` says the transaction is SMTPUTF8: the xtext form
    grows each non-ASCII character to up to ten, and could outgrow the 500-character
    ORCPT limit (RFC 3461 §4.2) that the unitext it came from fitted. Any other type
    is written as xtext, with UTF-8 kept raw under ``utf8`` for the same reason.

    Args:
        params: The parameters.
        utf8: The transaction is SMTPUTF8 (RFC 6531), so unitext may be sent.
    """
    out: list[str] = []
    if params.notify is not None:
        out.append("NOTIFY=" + ",".join(n.value for n in _NOTIFY_ORDER if n in params.notify))
    if params.orcpt is not None:
        orcpt = params.orcpt
        if orcpt.addr_type.lower() == "utf-8":
            encode = utf8_addr_unitext_encode if utf8 else utf8_addr_xtext_encode
            encoded = encode(orcpt.address)
        else:
            encoded = xtext_encode(orcpt.address, utf8=utf8)
        out.append(f"ORCPT={orcpt.addr_type};{encoded}")
    out.extend(_format_extra(params.extra))
    return " ".join(out)
