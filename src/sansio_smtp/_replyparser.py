# Reading what a server's replies say, for the client role.
#
# The byte-level reply parser (multi-line replies, RFC 5321 §4.2; enhanced status codes,
# RFC 2034 / RFC 3463) is ReplyParser in _reply.py, shared by both roles as the
# contract asks. This module interprets parsed replies:
#   RFC 5321 §4.1.1.1  ehlo-ok-rsp = ( "250" SP Domain [ SP ehlo-greet ] CRLF )
#                                  / ( "250-" Domain [ SP ehlo-greet ] CRLF
#                                      *( "250-" ehlo-line CRLF )
#                                      "250" SP ehlo-line CRLF )
#                      ehlo-line    = ehlo-keyword *( SP ehlo-param )
#                      ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
#                      ehlo-param   = 1*(%d33-126)
#   RFC 1870 §4        SIZE [ SP size-value ]   (0 or absent: no fixed limit)
#   RFC 4954 §3        AUTH SP mechanism *( SP mechanism )
# Deviation: a line that is not an ehlo-line (such as the pre-standard "AUTH=LOGIN"
# some servers still send) is skipped, not treated as an error: a client gains nothing
# from refusing to talk to such a server, and skipping cannot make it use an extension
# that was not offered.
"""Interpretation of server replies for the client role: EHLO extensions."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ._abnf import SIZE_VALUE
from ._reply import Reply

__all__ = ["auth_mechanisms", "max_message_size", "parse_ehlo_extensions"]

_EHLO_LINE = re.compile(r"([A-Za-z0-9][A-Za-z0-9\-]*)((?: +[\x21-\x7e]+)*) *")


def parse_ehlo_extensions(reply: Reply) -> dict[str, tuple[str, ...]]:
    """The extensions a positive EHLO reply offers.

    Args:
        reply: A 250 reply to EHLO; its first line (the server's name) is skipped.

    Returns:
        Upper-cased keyword -> its parameters as given, in the order of the reply. A
        keyword offered twice keeps its first line.
    """
    extensions: dict[str, tuple[str, ...]] = {}
    for line in reply.lines[1:]:
        match = _EHLO_LINE.fullmatch(line)
        if match is None:
            continue
        keyword = match.group(1).upper()
        if keyword not in extensions:
            extensions[keyword] = tuple(match.group(2).split())
    return extensions


def max_message_size(extensions: Mapping[str, tuple[str, ...]]) -> int | None:
    """The SIZE limit a server announced (RFC 1870 §4), or None when there is none.

    ``SIZE`` without a value, ``SIZE 0`` and an unreadable value all mean no fixed
    limit; the value is read only when it has at most 20 digits (RFC 1870 §3).
    """
    params = extensions.get("SIZE")
    if not params or not SIZE_VALUE.fullmatch(params[0]):
        return None
    return int(params[0]) or None


def auth_mechanisms(extensions: Mapping[str, tuple[str, ...]]) -> frozenset[str]:
    """The SASL mechanisms offered in AUTH (RFC 4954 §3), upper-cased."""
    return frozenset(m.upper() for m in extensions.get("AUTH", ()))
