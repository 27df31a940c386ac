"""EHLO reply interpretation: extensions, SIZE and AUTH, from replies fed any way."""

from __future__ import annotations

import pytest

from sansio_smtp._reply import Reply, ReplyParser
from sansio_smtp._replyparser import auth_mechanisms, max_message_size, parse_ehlo_extensions

EHLO_BYTES = (
    b"250-mx.example.com Hello client.example\r\n"
    b"250-PIPELINING\r\n"
    b"250-SIZE 10240000\r\n"
    b"250-8bitmime\r\n"
    b"250-AUTH=LOGIN PLAIN\r\n"
    b"250-AUTH PLAIN login\r\n"
    b"250-X-EXPS  GSSAPI NTLM \r\n"
    b"250-\r\n"
    b"250-_UNDERSCORE\r\n"
    b"250-BAD\x7fCHAR\r\n"
    b"250-DSN\r\n"
    b"250-PIPELINING extra\r\n"
    b"250 ENHANCEDSTATUSCODES\r\n"
)
EXPECTED = {
    "PIPELINING": (),
    "SIZE": ("10240000",),
    "8BITMIME": (),
    "AUTH": ("PLAIN", "login"),
    "X-EXPS": ("GSSAPI", "NTLM"),
    "DSN": (),
    "ENHANCEDSTATUSCODES": (),
}


def _parse_fed(chunks: list[bytes]) -> Reply:
    parser = ReplyParser()
    replies = []
    for chunk in chunks:
        parser.receive_data(chunk)
        reply = parser.next_reply()
        if reply is not None:
            replies.append(reply)
    assert len(replies) == 1
    assert not parser.pending
    return replies[0]


@pytest.mark.parametrize("mode", ["whole", "bytewise"])
def test_ehlo_extensions_from_bytes(mode: str) -> None:
    """A real-world EHLO reply yields keywords and parameters, whole or byte by byte."""
    if mode == "whole":
        chunks = [EHLO_BYTES]
    else:
        chunks = [EHLO_BYTES[i : i + 1] for i in range(len(EHLO_BYTES))]
    reply = _parse_fed(chunks)
    extensions = parse_ehlo_extensions(reply)
    assert extensions == EXPECTED
    assert list(extensions) == list(EXPECTED)  # reply order kept
    assert auth_mechanisms(extensions) == {"PLAIN", "LOGIN"}
    assert max_message_size(extensions) == 10240000


def test_ehlo_with_enhanced_status_prefixes() -> None:
    """A server that prefixes EHLO lines with x.y.z still yields plain keywords."""
    reply = _parse_fed([b"250-2.0.0 mx\r\n250-2.0.0 PIPELINING\r\n250 2.0.0 SIZE 5\r\n"])
    assert parse_ehlo_extensions(reply) == {"PIPELINING": (), "SIZE": ("5",)}


def test_single_line_ehlo_has_no_extensions() -> None:
    """ "250 name" alone offers nothing."""
    assert parse_ehlo_extensions(Reply(code=250, lines=("mx.example",))) == {}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ((), None),
        (("0",), None),
        (("1000",), 1000),
        (("9" * 20,), 10**20 - 1),
        (("9" * 21,), None),
        (("-5",), None),
        (("lots",), None),
    ],
)
def test_max_message_size(params: tuple[str, ...], expected: int | None) -> None:
    """SIZE 0, no value or an unreadable value mean no limit (RFC 1870 §4)."""
    assert max_message_size({"SIZE": params}) == expected


def test_no_size_no_auth() -> None:
    """Without SIZE or AUTH there is no limit and no mechanism."""
    assert max_message_size({}) is None
    assert auth_mechanisms({}) == frozenset()
