"""Reply: validation, wire format, escaping, and the incremental reply parser."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sansio_smtp import RemoteProtocolError, Reply, ReplyParser, escape_text, parse_reply


@pytest.mark.parametrize(
    "kwargs",
    [
        {"code": 199},
        {"code": 600},
        {"code": True},
        {"code": 250, "status": "2.0"},
        {"code": 250, "status": "5.0.0"},
        {"code": 250, "status": "2.01.0"},
        {"code": 250, "lines": ()},
        {"code": 250, "lines": "text"},
        {"code": 250, "lines": ("a\r\n250 forged",)},
        {"code": 250, "lines": ("nul\x00",)},
        {"code": 250, "lines": (1,)},
    ],
)
def test_invalid_replies_are_refused(kwargs: dict[str, object]) -> None:
    """Codes outside 200..599, bad statuses and control bytes in text raise ValueError."""
    with pytest.raises(ValueError, match=r"."):
        Reply(**kwargs)  # type: ignore[arg-type]


def test_wire_format() -> None:
    """Multi-line replies use "-" then " "; enhanced codes go on every line."""
    reply = Reply(code=250, status="2.1.0", lines=("first", "second"))
    assert reply.to_bytes(enhanced=False) == b"250-first\r\n250 second\r\n"
    assert reply.to_bytes(enhanced=True) == b"250-2.1.0 first\r\n250 2.1.0 second\r\n"
    assert Reply(code=421).to_bytes(enhanced=True) == b"421 4.0.0\r\n"
    assert Reply(code=550, lines=("x",)).to_bytes(enhanced=True) == b"550 5.0.0 x\r\n"
    assert Reply(code=354, lines=("go",)).to_bytes(enhanced=True) == b"354 go\r\n"
    assert Reply(code=334).to_bytes(enhanced=True) == b"334 \r\n"
    assert Reply(code=250).to_bytes(enhanced=False) == b"250\r\n"
    assert Reply(code=250, lines=("ünï",)).text == "ünï"
    assert Reply(code=250, lines=("a", "b")).text == "a\nb"


def test_escape_text() -> None:
    """escape_text hides control bytes and backslashes and cuts long text."""
    assert escape_text("a\r\nb\\c") == "a\\x0d\\x0ab\\x5cc"
    assert escape_text("x" * 10, limit=4) == "xxxx..."
    assert escape_text("plain") == "plain"


def test_parse_reply_round_trip() -> None:
    """parse_reply reads what to_bytes writes."""
    reply = Reply(code=550, status="5.1.1", lines=("No such user", "really"))
    assert parse_reply(reply.to_bytes(enhanced=True)) == reply
    assert parse_reply(b"220 mx ESMTP\r\n") == Reply(code=220, lines=("mx ESMTP",))
    assert parse_reply(b"250\r\n") == Reply(code=250, lines=("",))
    # A status whose class does not match is plain text.
    assert parse_reply(b"250 5.0.0 odd\r\n").status is None


@pytest.mark.parametrize(
    "data",
    [
        b"250-a\r\n",
        b"250 a\r\n250 b\r\n",
        b"2500 a\r\n",
        b"abc\r\n",
        b"250-a\r\n251 b\r\n",
        b"250 \xff\r\n",
        b"250 " + b"x" * 600 + b"\r\n",
        b"250 " + b"x" * 600,
    ],
)
def test_parse_reply_errors(data: bytes) -> None:
    """Malformed, incomplete, mixed-code or over-long replies raise RemoteProtocolError."""
    with pytest.raises(RemoteProtocolError):
        parse_reply(data)


def test_parser_line_count_limit() -> None:
    """A reply with more lines than max_lines is refused."""
    parser = ReplyParser(max_lines=2)
    parser.receive_data(b"250-a\r\n250-b\r\n250 c\r\n")
    with pytest.raises(RemoteProtocolError):
        parser.next_reply()


def test_parser_control_bytes_replaced() -> None:
    """Control bytes in reply text from a server are replaced, never passed on."""
    assert parse_reply(b"250 a\x1bb\r\n").lines == ("a?b",)


replies = st.builds(
    Reply,
    code=st.integers(min_value=200, max_value=599).filter(lambda c: c // 100 != 3),
    lines=st.lists(
        # Starting with a letter: text that looks like a status code would be read as one.
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30).map(
            lambda t: "t" + t
        ),
        min_size=1,
        max_size=4,
    ).map(tuple),
)


@settings(max_examples=100)
@given(st.lists(replies, min_size=1, max_size=4), st.integers(min_value=1, max_value=7))
def test_parser_any_split(batch: list[Reply], step: int) -> None:
    """Replies parse the same whole, in small pieces, and followed by more replies."""
    wire = b"".join(r.to_bytes(enhanced=False) for r in batch)
    parser = ReplyParser()
    got: list[Reply] = []
    for i in range(0, len(wire), step):
        parser.receive_data(wire[i : i + step])
        while (reply := parser.next_reply()) is not None:
            got.append(reply)
    assert not parser.pending
    assert [(r.code, tuple(t.strip() for t in r.lines)) for r in got] == [
        (r.code, tuple(t.strip() for t in r.lines)) for r in batch
    ]
