"""Matching a Minger response to its query, for clients (draft-hathcock-minger-06 §3).

A response carries no transaction id and no authentication (the id was dropped in -02),
so a client can only check that it came from the server's address and port (the I/O
layer's job) and that it echoes the queried mailbox (this module). The local part must
match exactly; the domain ASCII-case-insensitively, since domain names are (RFC 5321
§2.4). Anything else, including undecodable datagrams, is ignored rather than raised: an
off-path sender must not be able to end a client's wait.

A bare status digit names no mailbox. It is taken as an answer only for statuses 0, 1
and 2, which describe the request rather than the address (mingerd answers a bare "0"
when it can echo nothing); a bare 3, 4 or 5 would be a claim about an address it does not
name, so it is ignored.
"""

from ._errors import MingerError
from ._grammar import MAX_DATAGRAM
from ._messages import Query, Response, Status, decode_response

__all__ = ["match_response", "response_matches", "same_mailbox"]

_BARE_OK = frozenset({Status.INVALID_REQUEST, Status.ACCESS_DENIED, Status.BAD_CREDENTIALS})


def same_mailbox(sent: str, echoed: str) -> bool:
    """Tell whether ``echoed`` names the mailbox ``sent``: same local part, same domain.

    Args:
        sent: the mailbox as queried.
        echoed: the mailbox as the server echoed it.

    Returns:
        True when the local parts are identical and the domains equal ignoring ASCII case.
    """
    sent_local, sent_at, sent_domain = sent.rpartition("@")
    echo_local, echo_at, echo_domain = echoed.rpartition("@")
    # Both are US-ASCII once validated; str.lower() on ASCII is ASCII case folding.
    return (
        bool(sent_at and echo_at)
        and sent.isascii()
        and echoed.isascii()
        and sent_local == echo_local
        and sent_domain.lower() == echo_domain.lower()
    )


def response_matches(query: Query, response: Response) -> bool:
    """Tell whether ``response`` answers ``query`` (see the module docstring).

    Args:
        query: the query that was sent.
        response: a decoded response from the server's address and port.

    Returns:
        True if the response echoes the query's mailbox, or is a bare 0, 1 or 2.
    """
    if response.mailbox is None:
        return response.status in _BARE_OK
    return same_mailbox(query.mailbox, response.mailbox)


def match_response(query: Query, data: bytes, *, max_size: int = MAX_DATAGRAM) -> Response | None:
    """Decode ``data`` and return it if it answers ``query``; otherwise return None.

    Args:
        query: the query that was sent.
        data: a datagram received from the server's address and port.
        max_size: longer datagrams are ignored.

    Returns:
        The response, or None for a malformed datagram or one that answers some other
        query. Never raises for anything in ``data``.
    """
    try:
        response = decode_response(data, max_size=max_size)
    except MingerError:
        return None
    return response if response_matches(query, response) else None
