"""The Minger server's decision, as a pure function (draft-hathcock-minger-06 §3.1, §4).

Decision order, first match wins:

1. The datagram is malformed: status 0 (invalid request).
2. The peer is not allowed to query: status 1 (access denied).
3. A digest is required and missing, or a digest is present and wrong: status 2 (bad or
   missing credentials). A digest is required unless anonymous queries are allowed
   (-06 §4: a server refusing them MUST answer 2). When the server has a secret, a
   digest that is present is always checked, even if anonymous queries are allowed: the
   draft's code 2 covers "credentials themselves are invalid" (mingerd, which ignores the
   digest in anonymous mode, is laxer here). A server with no secret and anonymous
   queries allowed ignores any digest: it has nothing to check it against.
4. The directory's answer: 3 (no such address), 4 (exists, cannot receive) or 5 (active).

The peer check comes after the syntax check so that 0 always means "your bytes are
wrong", whoever sent them, as the draft lists the codes.

What a malformed datagram gets back (the draft is silent, notes §3): status 0 echoing its
first space-separated token, when that token is 1 or more visible US-ASCII characters and
the datagram is within the size limit. Otherwise nothing at all (:attr:`Answer.response`
is None): an empty, blank, over-long or binary datagram echoes nothing a client could
match, and staying silent gives an attacker nothing to reflect. A response is never
longer than the query plus two bytes, so Minger cannot amplify traffic.
"""

from collections.abc import Callable
from dataclasses import dataclass

from ._digest import digest_matches
from ._errors import MingerError
from ._grammar import MAX_DATAGRAM, is_vchar_text
from ._messages import Query, Response, Status, decode_query

__all__ = ["Answer", "Lookup", "answer_datagram", "decide"]

#: The directory: given a well-formed mailbox exactly as queried, say whether it exists.
#: It must return :attr:`Status.NOT_FOUND`, :attr:`Status.DISABLED` or
#: :attr:`Status.ACTIVE`.
Lookup = Callable[[str], Status]

_DIRECTORY_ANSWERS = frozenset({Status.NOT_FOUND, Status.DISABLED, Status.ACTIVE})


def decide(
    query: Query,
    *,
    peer_allowed: bool,
    secret: str | None,
    allow_anonymous: bool,
    lookup: Lookup,
) -> Response:
    """Answer a well-formed query, following the decision order in the module docstring.

    Args:
        query: the decoded query.
        peer_allowed: whether the sender's address may query at all.
        secret: the shared secret, or None if the server has none.
        allow_anonymous: whether queries without a digest are answered.
        lookup: the directory; called only once the query passed every check, so a
            refused peer learns nothing and costs no directory work.

    Returns:
        The response, echoing ``query.mailbox``.

    Raises:
        MingerError: ``lookup`` returned something other than 3, 4 or 5 (a bug in the
            directory, not in the peer's query); or no secret is configured while
            anonymous queries are refused, so no query could ever succeed.
    """
    if not peer_allowed:
        return Response(mailbox=query.mailbox, status=Status.ACCESS_DENIED)
    if secret is None and not allow_anonymous:
        raise MingerError("a server without a secret must allow anonymous queries")
    if query.digest is None:
        authenticated = allow_anonymous
    elif secret is None:
        authenticated = True  # anonymous allowed, and nothing to check the digest with
    else:
        authenticated = digest_matches(query.digest, secret=secret, mailbox=query.mailbox)
    if not authenticated:
        return Response(mailbox=query.mailbox, status=Status.BAD_CREDENTIALS)
    status = lookup(query.mailbox)
    if status not in _DIRECTORY_ANSWERS:
        raise MingerError(f"the directory answered {status!r}; expected 3, 4 or 5")
    return Response(mailbox=query.mailbox, status=Status(status))


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """What a server does with one datagram.

    Attributes:
        response: the response to send, or None to send nothing.
        query: the decoded query, or None when the datagram was malformed.
        error: why the datagram was malformed (safe to log), or None.
    """

    response: Response | None
    query: Query | None
    error: str | None


def _echo_token(data: bytes, max_size: int) -> str | None:
    """Return the first token of a malformed datagram if it can be echoed, else None."""
    if len(data) > max_size:
        return None
    token = data.rstrip(b"\r\n ").split(b" ", 1)[0]
    text = token.decode("latin-1")
    if not is_vchar_text(text) or len(text) > max_size - 2:
        return None
    return text


def answer_datagram(
    data: bytes,
    *,
    peer_allowed: bool,
    secret: str | None,
    allow_anonymous: bool,
    lookup: Lookup,
    max_size: int = MAX_DATAGRAM,
) -> Answer:
    """Decode one query datagram and decide its answer (see the module docstring).

    Args:
        data: the UDP payload as received.
        peer_allowed: whether the sender's address may query at all.
        secret: the shared secret, or None if the server has none.
        allow_anonymous: whether queries without a digest are answered.
        lookup: the directory (see :func:`decide`).
        max_size: datagrams longer than this many bytes are not read.

    Returns:
        The answer. ``answer.response`` is None only for a malformed datagram that has
        nothing safe to echo.

    Raises:
        MingerError: as :func:`decide`, for a server misconfiguration or a directory bug;
            never for anything the peer sent.
    """
    try:
        query = decode_query(data, max_size=max_size)
    except MingerError as exc:
        token = _echo_token(data, max_size)
        response = None if token is None else Response(mailbox=token, status=Status(0))
        return Answer(response=response, query=None, error=str(exc))
    response = decide(
        query,
        peer_allowed=peer_allowed,
        secret=secret,
        allow_anonymous=allow_anonymous,
        lookup=lookup,
    )
    return Answer(response=response, query=query, error=None)
