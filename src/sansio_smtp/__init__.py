"""sansio_smtp: a sans-IO SMTP/ESMTP engine (RFC 5321 and its extensions)."""

from ._errors import LocalProtocolError, ParameterError, ProtocolError, RemoteProtocolError
from ._reply import Reply, ReplyParser, escape_text, parse_reply

__all__ = [
    "LocalProtocolError",
    "ParameterError",
    "ProtocolError",
    "RemoteProtocolError",
    "Reply",
    "ReplyParser",
    "escape_text",
    "parse_reply",
]
