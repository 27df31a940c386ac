"""Minger messages and their wire codec (draft-hathcock-minger-06 §2, §3).

Theory of operation: Minger is one UDP datagram each way, and the payload is the bare
ASCII string with no terminator, no length prefix and no transaction id (-06 §2.1, §3;
research notes §1). So the codec is a pair of pure functions per message, with no
buffering and no state: ``encode_*`` builds the datagram payload, ``decode_*`` reads one.

Query (-06 §2.1)::

    query-string = mailbox [SP %x64 "=" digest] [SP tag-list]
    tag-list = tag-spec *(SP tag-spec) ; tag/value list

``%x64`` is a lowercase ``d`` only; ``D=`` is not a digest (changed in -05 for exactly
that reason, notes §7). Tag names are case-sensitive, used at most once, and never ``d``.

Response (-06 §3.1)::

    response-string = mailbox status
    status = %x30-35                  ; single digit result code

The ABNF shows no SP before the status but every example in §3.2 has one, as does
mingerd: we write exactly one SP and, when reading, parse from the right (notes §3).

Decoders are strict except where the notes show tolerance is safe: trailing CR, LF and
SP are stripped; fields may be separated by runs of SP; a response may be a bare status
digit (what mingerd sends when it can echo nothing). Everything else raises
:class:`~minger.MingerError`. Datagrams longer than ``max_size`` (default
:data:`~minger.MAX_DATAGRAM`, 512 bytes, notes §4) are refused before they are parsed, and
the encoders refuse to build one.

Text fields are :class:`str` holding US-ASCII only, so converting them to and from bytes
is lossless; the conversion happens only in this module.
"""

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ._digest import compute_digest
from ._errors import MingerError
from ._grammar import (
    DIGEST,
    DOMAIN,
    LOCAL_PART,
    MAX_DATAGRAM,
    MAX_LOCAL_PART,
    MAX_MAILBOX,
    TAG_SPEC,
    TAG_TEXT,
    is_vchar_text,
)

__all__ = [
    "Query",
    "Response",
    "Status",
    "decode_query",
    "decode_response",
    "encode_query",
    "encode_response",
    "escape_text",
    "make_query",
    "validate_mailbox",
]

# Stripped from the end of a datagram before parsing: no legal field ends in them
# (notes §1, §8), and peers that append CRLF would otherwise break the digest.
_TRAILING = b"\r\n "
_DIGEST_PREFIX = "d="


class Status(enum.IntEnum):
    """The six Minger result codes (-06 §3.1).

    0, 1 and 2 say something about the request; 3, 4 and 5 say something about the
    address. No value means "try later": a server that cannot answer stays silent.
    """

    INVALID_REQUEST = 0
    """Invalid request, for example a malformed query string."""
    ACCESS_DENIED = 1
    """Access denied, for example a query from an unauthorized IP address."""
    BAD_CREDENTIALS = 2
    """Bad or missing credentials (anonymous queries refused, or a wrong digest)."""
    NOT_FOUND = 3
    """The email address does not exist."""
    DISABLED = 4
    """The address exists but cannot receive mail (over quota, disabled by policy)."""
    ACTIVE = 5
    """The address exists and is active (able to receive mail)."""

    @property
    def description(self) -> str:
        """A short human-readable meaning of the code."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Status.INVALID_REQUEST: "invalid request",
    Status.ACCESS_DENIED: "access denied",
    Status.BAD_CREDENTIALS: "bad or missing credentials",
    Status.NOT_FOUND: "address does not exist",
    Status.DISABLED: "address exists but cannot receive mail",
    Status.ACTIVE: "address exists and is active",
}


def escape_text(data: bytes | str, *, limit: int = 200) -> str:
    """Render peer-supplied text safe for one log line or error message.

    Printable ASCII other than the backslash passes through; everything else is written
    as a Python escape (``\\r``, ``\\x00``, ``\\u00e9``), so one value is always one line.

    Args:
        data: the text or raw bytes to render.
        limit: at most this many input characters are shown; a longer input is cut and
            ends in ``...``.

    Returns:
        The escaped text, without surrounding quotes.
    """
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    cut = len(text) > limit
    escaped = "".join(
        ch if " " <= ch <= "~" and ch != "\\" else ascii(ch)[1:-1] for ch in text[:limit]
    )
    return escaped + "..." if cut else escaped


def validate_mailbox(mailbox: str) -> str:
    """Check that ``mailbox`` is a Minger mailbox (-06 §2.1, RFC 5321 §4.1.2) and return it.

    The rules are those of :mod:`minger._grammar`: ``Local-part "@" Domain``, US-ASCII, no
    space anywhere, local part at most 64 octets, whole at most 254 (which keeps the
    domain within its 255).

    Args:
        mailbox: the address to check.

    Returns:
        ``mailbox`` unchanged.

    Raises:
        MingerError: the address is not a valid Minger mailbox.
    """
    if not mailbox:
        raise MingerError("the mailbox is missing")
    shown = escape_text(mailbox, limit=80)
    if not mailbox.isascii():
        raise MingerError(f"the mailbox '{shown}' is not US-ASCII")
    if len(mailbox) > MAX_MAILBOX:
        raise MingerError(f"the mailbox is longer than {MAX_MAILBOX} octets (RFC 5321 §4.5.3.1.3)")
    local, at, domain = mailbox.rpartition("@")
    if not at:
        raise MingerError(f"the mailbox '{shown}' has no '@'")
    if len(local) > MAX_LOCAL_PART:
        raise MingerError(
            f"the local part of '{shown}' is longer than {MAX_LOCAL_PART} octets"
            " (RFC 5321 §4.5.3.1.1)"
        )
    if LOCAL_PART.fullmatch(local) is None:
        raise MingerError(f"the local part of '{shown}' is not valid (RFC 5321 §4.1.2)")
    if DOMAIN.fullmatch(domain) is None:
        raise MingerError(f"the domain of '{shown}' is not valid (RFC 5321 §4.1.2)")
    return mailbox


def _check_tags(tags: tuple[tuple[str, str], ...]) -> None:
    seen: set[str] = set()
    for tag in tags:
        if not (isinstance(tag, tuple) and len(tag) == 2):
            raise MingerError(f"a tag must be a (name, value) pair, not {escape_text(repr(tag))}")
        name, value = tag
        if not (isinstance(name, str) and TAG_TEXT.fullmatch(name)):
            raise MingerError(
                f"tag name '{escape_text(str(name))}' must be 1 or more of A-Z a-z 0-9 _ (-06 §2.1)"
            )
        if not (isinstance(value, str) and TAG_TEXT.fullmatch(value)):
            raise MingerError(
                f"tag value '{escape_text(str(value))}' must be 1 or more of A-Z a-z 0-9 _"
                " (-06 §2.1)"
            )
        if name == "d":
            raise MingerError("the tag name 'd' is reserved for the digest (-06 §2.1)")
        if name in seen:
            raise MingerError(f"tag {name!r} is used more than once (-06 §2.2: MUST NOT)")
        seen.add(name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    """A Minger query: is ``mailbox`` a deliverable address? (-06 §2).

    Build one with :func:`make_query` to have the digest computed from a secret.

    Attributes:
        mailbox: the address to verify, exactly as sent (the digest covers these bytes).
        digest: the 24-character base64 digest without ``d=``, or None for an anonymous
            query (-06 §4).
        tags: ``(name, value)`` pairs in wire order; names are case-sensitive and unique,
            and ``d`` is reserved. The draft defines no tag; servers ignore them.

    Raises:
        MingerError: on construction, when a field breaks the draft's grammar.
    """

    mailbox: str
    digest: str | None = None
    tags: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        validate_mailbox(self.mailbox)
        if self.digest is not None and DIGEST.fullmatch(self.digest) is None:
            raise MingerError(
                f"digest '{escape_text(self.digest, limit=40)}' is not the base64 of a"
                " 16-byte MD5 value (24 characters ending in '==')"
            )
        _check_tags(self.tags)


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """A Minger response: the server's ``status`` for ``mailbox`` (-06 §3).

    Attributes:
        mailbox: the text the server echoed, or None for a bare status digit. It is
            usually the queried mailbox, but a server answering status 0 echoes whatever
            first token it received, so only "one or more visible US-ASCII characters" is
            required here. Use :func:`minger.response_matches` to relate it to a query.
        status: the result code.

    Raises:
        MingerError: on construction, when the echoed text is empty, holds a space or a
            non-printable character, or is too long for a datagram.
    """

    mailbox: str | None
    status: Status

    def __post_init__(self) -> None:
        if self.mailbox is not None:
            if not is_vchar_text(self.mailbox):
                raise MingerError(
                    f"echoed mailbox '{escape_text(self.mailbox, limit=80)}' must be visible"
                    " US-ASCII without spaces"
                )
            if len(self.mailbox) > MAX_DATAGRAM - 2:
                raise MingerError(f"echoed mailbox is longer than {MAX_DATAGRAM - 2} octets")
        if not isinstance(self.status, Status):
            raise MingerError(f"status must be a minger.Status, not {self.status!r}")


def make_query(
    mailbox: str,
    *,
    secret: str | None = None,
    tags: Mapping[str, str] | Iterable[tuple[str, str]] = (),
) -> Query:
    """Build a query, signed with ``secret`` when one is given (-06 §2.2).

    Args:
        mailbox: the address to verify, exactly as it is to be sent.
        secret: the shared secret, or None for an anonymous query.
        tags: optional tags, as a mapping or as ``(name, value)`` pairs.

    Returns:
        The query.

    Raises:
        MingerError: the mailbox, secret or a tag is invalid.
    """
    validate_mailbox(mailbox)
    digest = None if secret is None else compute_digest(secret, mailbox)
    pairs = tuple(tags.items()) if isinstance(tags, Mapping) else tuple(tags)
    return Query(mailbox=mailbox, digest=digest, tags=pairs)


def _check_size(size: int, max_size: int) -> None:
    if size > max_size:
        raise MingerError(f"datagram of {size} bytes is longer than the {max_size}-byte limit")


def encode_query(query: Query, *, max_size: int = MAX_DATAGRAM) -> bytes:
    """Write ``query`` as one datagram payload, with no terminator (-06 §2.1).

    Args:
        query: the query.
        max_size: refuse to build a payload longer than this many bytes.

    Returns:
        ``mailbox [SP "d=" digest] *(SP name "=" value)`` as ASCII bytes.

    Raises:
        MingerError: the payload would exceed ``max_size``.
    """
    fields = [query.mailbox]
    if query.digest is not None:
        fields.append(_DIGEST_PREFIX + query.digest)
    fields.extend(f"{name}={value}" for name, value in query.tags)
    payload = " ".join(fields).encode("ascii")
    _check_size(len(payload), max_size)
    return payload


def encode_response(response: Response, *, max_size: int = MAX_DATAGRAM) -> bytes:
    """Write ``response`` as one datagram payload, with no terminator (-06 §3.1).

    Args:
        response: the response.
        max_size: refuse to build a payload longer than this many bytes.

    Returns:
        ``mailbox SP digit``, or the bare digit when ``response.mailbox`` is None.

    Raises:
        MingerError: the payload would exceed ``max_size``.
    """
    digit = str(int(response.status))
    text = digit if response.mailbox is None else f"{response.mailbox} {digit}"
    payload = text.encode("ascii")
    _check_size(len(payload), max_size)
    return payload


def _payload_text(data: bytes, max_size: int, what: str) -> str:
    """Apply the checks common to both decoders and return the stripped ASCII text."""
    _check_size(len(data), max_size)
    data = data.rstrip(_TRAILING)
    if not data:
        raise MingerError(f"empty {what} datagram")
    if data.startswith(b" "):
        raise MingerError(f"{what} starts with a space: the mailbox is missing")
    # Only SP and VCHAR are legal in either message (-06 §2.1, §3.1).
    text = data.decode("latin-1")
    if not is_vchar_text(text.replace(" ", "")):
        raise MingerError(
            f"{what} holds a byte outside printable US-ASCII: '{escape_text(data, limit=80)}'"
        )
    return text


def decode_query(data: bytes, *, max_size: int = MAX_DATAGRAM) -> Query:
    """Read one query datagram (-06 §2.1), as a server does.

    Tolerated: trailing CR, LF and SP; runs of SP between fields. Refused: anything else
    outside the grammar, including ``D=`` for the digest, a digest that is not 24 base64
    characters, a duplicate or malformed tag, and a tag named ``d``.

    Args:
        data: the UDP payload.
        max_size: datagrams longer than this many bytes are refused unread.

    Returns:
        The query. Its digest is only checked for form; use :func:`minger.decide` or
        :func:`minger.digest_matches` to check it against a secret.

    Raises:
        MingerError: the datagram is not a valid query; the message says why.
    """
    text = _payload_text(data, max_size, "query")
    mailbox, *rest = text.split()
    digest = None
    if rest and rest[0].startswith(_DIGEST_PREFIX):
        digest = rest.pop(0)[len(_DIGEST_PREFIX) :]
        if DIGEST.fullmatch(digest) is None:
            raise MingerError(
                f"digest '{escape_text(digest, limit=40)}' is not the base64 of a 16-byte"
                " MD5 value (24 characters ending in '==')"
            )
    tags = []
    for token in rest:
        match = TAG_SPEC.fullmatch(token)
        if match is None:
            if token[:2] in ("D=", "d="):
                # A digest in the wrong case or the wrong place: the likeliest peer bug.
                raise MingerError(
                    "the digest must come right after the mailbox and be written with a"
                    " lowercase 'd=' (-05/-06 §2.1 %x64)"
                )
            raise MingerError(
                f"'{escape_text(token, limit=80)}' is not a tag (name=value of A-Z a-z 0-9 _)"
            )
        tags.append((match[1], match[2]))
    return Query(mailbox=mailbox, digest=digest, tags=tuple(tags))


def decode_response(data: bytes, *, max_size: int = MAX_DATAGRAM) -> Response:
    """Read one response datagram (-06 §3.1), as a client does.

    The status is the last character and must be ``0`` to ``5``; any other value is
    undefined and refused, never read as "valid" (notes §3). Before it comes SP (or a run
    of SP) and the echoed mailbox, or nothing at all: a bare digit is accepted.

    Args:
        data: the UDP payload.
        max_size: datagrams longer than this many bytes are refused unread.

    Returns:
        The response.

    Raises:
        MingerError: the datagram is not a valid response; the message says why.
    """
    text = _payload_text(data, max_size, "response")
    digit = text[-1]
    if digit not in "012345":
        raise MingerError(
            f"response does not end in a status digit 0-5: '{escape_text(text[-20:])}'"
        )
    status = Status(int(digit))
    if len(text) == 1:
        return Response(mailbox=None, status=status)
    head = text[:-1]
    if not head.endswith(" "):
        raise MingerError(
            f"response status is not a single digit after a space: '{escape_text(text[-20:])}'"
        )
    echoed = head.rstrip(" ")
    if " " in echoed:
        raise MingerError(f"echoed mailbox holds a space: '{escape_text(echoed, limit=80)}'")
    return Response(mailbox=echoed, status=status)
