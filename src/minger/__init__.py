"""minger: a sans-IO codec for the Minger address-verification protocol.

Minger (draft-hathcock-minger-06, UDP port 4069) lets one mail server ask another, with
an optional shared secret, whether an address exists. This package holds the wire format,
the digest, the server's decision and the client's response matching as pure functions;
it does no I/O (see :mod:`trio_server.minger_service` and
:mod:`trio_server.minger_client` for the network side).
"""

from ._client import match_response, response_matches, same_mailbox
from ._digest import compute_digest, digest_matches, validate_secret
from ._errors import MingerError
from ._grammar import (
    DEFAULT_PORT,
    MAX_DATAGRAM,
    MAX_LOCAL_PART,
    MAX_MAILBOX,
    MAX_SECRET,
)
from ._messages import (
    Query,
    Response,
    Status,
    decode_query,
    decode_response,
    encode_query,
    encode_response,
    escape_text,
    make_query,
    validate_mailbox,
)
from ._ratelimit import RateLimiter, RateVerdict
from ._server import Answer, Lookup, answer_datagram, decide

__all__ = [
    "DEFAULT_PORT",
    "MAX_DATAGRAM",
    "MAX_LOCAL_PART",
    "MAX_MAILBOX",
    "MAX_SECRET",
    "Answer",
    "Lookup",
    "MingerError",
    "Query",
    "RateLimiter",
    "RateVerdict",
    "Response",
    "Status",
    "answer_datagram",
    "compute_digest",
    "decide",
    "decode_query",
    "decode_response",
    "digest_matches",
    "encode_query",
    "encode_response",
    "escape_text",
    "make_query",
    "match_response",
    "response_matches",
    "same_mailbox",
    "validate_mailbox",
    "validate_secret",
]
