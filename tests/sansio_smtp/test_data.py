"""DataReader and BdatReader: unstuffing, the end marker, limits, bare newline policy."""

from __future__ import annotations

from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sansio_smtp import (
    BARE_NEWLINE_REPLY,
    LINE_TOO_LONG_REPLY,
    TOO_BIG_REPLY,
    BdatReader,
    DataReader,
    ReceiveBuffer,
    Reply,
)
from sansio_smtp._data import _has_bare

Policy = Literal["reject", "normalize"]


def read_all(
    chunks: list[bytes],
    *,
    max_text_line: int = 1000,
    max_size: int | None = None,
    policy: Policy = "reject",
) -> tuple[bytes, bool, Reply | None, bytes]:
    """Feed chunks to a DataReader; return content, done, error and the bytes left."""
    reader = DataReader(max_text_line=max_text_line, max_size=max_size, bare_newlines=policy)
    buf = ReceiveBuffer()
    out = b""
    for chunk in chunks:
        buf.append(chunk)
        for _ in range(len(chunk) + 2):
            piece = reader.read(buf)
            out += piece
            if not piece:
                break
    return out, reader.done, reader.error, buf.extract_all()


def same(
    a: tuple[bytes, bool, Reply | None, bytes], b: tuple[bytes, bool, Reply | None, bytes]
) -> bool:
    """Equal results; content only counts when the message was not refused.

    Content handed out before a refusal is discarded by the application, and how
    much of it there is depends on where the bytes were split.
    """
    return a[1:] == b[1:] and (a[2] is not None or a[0] == b[0])


def three_ways(data: bytes, **kw: object) -> tuple[bytes, bool, Reply | None, bytes]:
    """Whole, byte by byte and with trailing data give the same result."""
    whole = read_all([data], **kw)  # type: ignore[arg-type]
    assert same(read_all([data[i : i + 1] for i in range(len(data))], **kw), whole)  # type: ignore[arg-type]
    out, done, error, rest = read_all([data + b"TRAILING\r\n"], **kw)  # type: ignore[arg-type]
    if whole[1]:
        assert same((out, done, error, rest), (*whole[:3], whole[3] + b"TRAILING\r\n"))
    return whole


@pytest.mark.parametrize(
    ("data", "content", "rest"),
    [
        (b".\r\n", b"", b""),
        (b"a\r\n.\r\n", b"a\r\n", b""),
        (b"..\r\n.\r\n", b".\r\n", b""),
        (b"a\r\n..b\r\n...\r\n.\r\nQUIT\r\n", b"a\r\n.b\r\n..\r\n", b"QUIT\r\n"),
        (b"a.\r\n.x\r\n.\r\n", b"a.\r\nx\r\n", b""),
        (b".x\r\n..\r\n...y\r\n.\r\n", b"x\r\n.\r\n..y\r\n", b""),
        (b"\r\n\r\n.\r\n", b"\r\n\r\n", b""),
    ],
)
def test_unstuffing_and_end(data: bytes, content: bytes, rest: bytes) -> None:
    """A line's leading dot is removed (RFC 5321 §4.5.2); later bytes stay buffered."""
    assert three_ways(data) == (content, True, None, rest)


@pytest.mark.parametrize(
    "fake_end",
    [
        b"\n.\n",
        b"\n.\r\n",
        b"\r.\r",
        b"\r\n.\r",
        b"\r\n.\n",
        b"\r.\r\n",
        b"\r\n\x00.\r\n",
        b"\r.\n",
        b"\n.\r",
        b"\r\n .\r\n",
        b"\r\n.\x00\r\n",
        b"\n..\n",
    ],
)
@pytest.mark.parametrize("policy", ["reject", "normalize"])
def test_fake_end_markers_never_end_the_message(fake_end: bytes, policy: Policy) -> None:
    """No end-of-data look-alike ends the message; only CRLF.CRLF does."""
    data = b"a" + fake_end + b"MAIL FROM:<x@y>\r\n.\r\n"
    out, done, error, rest = three_ways(data, policy=policy)
    assert done
    assert rest == b""
    if policy == "normalize":
        assert error is None
        assert b"MAIL FROM:<x@y>\r\n" in out
    elif b"\r" in fake_end.replace(b"\r\n", b"") or b"\n" in fake_end.replace(b"\r\n", b""):
        assert error == BARE_NEWLINE_REPLY


def test_normalize_turns_bare_newlines_into_crlf() -> None:
    """normalize: bare LF, bare CR and CR at a chunk edge become CRLF."""
    assert read_all([b"a\nb\rc\r", b"\nd\r\n.\r\n"], policy="normalize") == (
        b"a\r\nb\r\nc\r\nd\r\n",
        True,
        None,
        b"",
    )


def test_line_too_long_refuses_after_end() -> None:
    """A line over max_text_line sets the error; reading continues to the end marker."""
    ok = b"x" * 98 + b"\r\n"
    long = b"x" * 99 + b"\r\n"
    assert three_ways(ok + b".\r\n", max_text_line=100)[2] is None
    assert three_ways(long + b".\r\nNEXT", max_text_line=100)[1:] == (
        True,
        LINE_TOO_LONG_REPLY,
        b"NEXT",
    )
    # A long unfinished line across many chunks is noticed too.
    chunks = [b"y" * 60] * 5 + [b"\r\n.\r\n"]
    assert read_all(chunks, max_text_line=100)[2] == LINE_TOO_LONG_REPLY


def test_size_limit_counts_content() -> None:
    """Content over max_size sets 552 5.3.4 and returns nothing more."""
    assert read_all([b"12345\r\n.\r\n"], max_size=7)[2] is None
    out, done, error, _ = read_all([b"12345\r\n", b"678\r\n.\r\n"], max_size=7)
    assert (out, done, error) == (b"12345", True, TOO_BIG_REPLY)


def test_read_after_done_returns_nothing() -> None:
    """Once done, the reader consumes nothing more."""
    reader = DataReader(max_text_line=1000, max_size=None, bare_newlines="reject")
    buf = ReceiveBuffer()
    buf.append(b".\r\nQUIT\r\n")
    assert reader.read(buf) == b""
    assert reader.done
    assert reader.read(buf) == b""
    assert buf.extract_all() == b"QUIT\r\n"


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(
        st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
        max_size=20,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=500), max_size=8),
)
def test_roundtrip_stuffed_content_any_split(lines: list[bytes], cuts: list[int]) -> None:
    """Dot-stuffed clean content comes back exactly, however the bytes are split."""
    content = b"".join(line + b"\r\n" for line in lines)
    wire = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    wire += b".\r\n"
    points = sorted({min(c, len(wire)) for c in cuts})
    chunks = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    assert read_all(chunks) == (content, True, None, b"")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_same_result_any_split(data: bytes) -> None:
    """Any byte string gives the same result whole and byte by byte, for both policies."""
    policies: tuple[Policy, ...] = ("reject", "normalize")
    for policy in policies:
        whole = read_all([data], policy=policy, max_text_line=64)
        split = read_all(
            [data[i : i + 1] for i in range(len(data))], policy=policy, max_text_line=64
        )
        assert same(split, whole)
        if whole[1]:
            assert b"\r\n.\r\n" in b"\r\n" + data


def bdat_all(
    chunks: list[tuple[int, bool]],
    data: bytes,
    *,
    binary: bool = False,
    max_size: int | None = None,
    policy: Policy = "reject",
) -> tuple[bytes, Reply | None, bytes]:
    """Feed BDAT chunks (size, last) with the data stream; return content, error, rest."""
    reader = BdatReader(max_size=max_size, bare_newlines=policy, binary=binary)
    buf = ReceiveBuffer()
    buf.append(data)
    out = b""
    for size, last in chunks:
        reader.start_chunk(size, last=last)
        for _ in range(size + 2):
            out += reader.read(buf)
            if reader.chunk_done:
                break
    return out, reader.error, buf.extract_all()


def test_bdat_exact_counts() -> None:
    """BDAT takes exactly the announced bytes; the rest stays for the next command."""
    assert bdat_all([(3, False), (2, True)], b"ab\r\nxQUIT") == (b"ab\r\nx", None, b"QUIT")


def test_bdat_cr_at_chunk_edge() -> None:
    """A CR ending a chunk is held until the next chunk shows whether LF follows."""
    assert bdat_all([(3, False), (2, True)], b"ab\r\nx") == (b"ab\r\nx", None, b"")
    assert bdat_all([(3, False), (1, True)], b"ab\rx")[1] == BARE_NEWLINE_REPLY
    assert bdat_all([(3, True)], b"ab\r")[1] == BARE_NEWLINE_REPLY


def test_bdat_binary_passes_everything() -> None:
    """With BODY=BINARYMIME content is delivered byte for byte."""
    assert bdat_all([(4, True)], b"\r\n\n\r", binary=True) == (b"\r\n\n\r", None, b"")


def test_bdat_size_limit() -> None:
    """A chunk that would exceed max_size is consumed but refused."""
    assert bdat_all([(4, False), (4, True)], b"abcdefgh", max_size=6) == (
        b"abcd",
        TOO_BIG_REPLY,
        b"",
    )


def test_bdat_normalize_and_growth_over_limit() -> None:
    """normalize turns BDAT bare newlines into CRLF; growth past max_size is refused."""
    assert bdat_all([(4, True)], b"a\nb\r", policy="normalize") == (b"a\r\nb\r\n", None, b"")
    assert bdat_all([(4, True)], b"\n\n\n\n", policy="normalize", max_size=6)[1] == TOO_BIG_REPLY


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.binary(max_size=12), min_size=1, max_size=5),
    st.sampled_from(["reject", "normalize"]),
    st.booleans(),
)
def test_bdat_same_result_whole_bytewise_and_with_trailing(
    chunks: list[bytes], policy: Policy, binary: bool
) -> None:
    """BDAT content is the same fed whole, byte by byte, or followed by more bytes."""
    sizes = [(len(c), i == len(chunks) - 1) for i, c in enumerate(chunks)]
    data = b"".join(chunks)

    def feed(pieces: list[bytes]) -> tuple[bytes, Reply | None, bytes]:
        reader = BdatReader(max_size=None, bare_newlines=policy, binary=binary)
        buf = ReceiveBuffer()
        feed_iter = iter(pieces)
        out = b""
        for size, last in sizes:
            reader.start_chunk(size, last=last)
            for _ in range(10 * len(data) + 10):
                out += reader.read(buf)
                if reader.chunk_done:
                    break
                buf.append(next(feed_iter, b""))
        for rest in feed_iter:
            buf.append(rest)
        return out, reader.error, buf.extract_all()

    whole = feed([data + b"NEXT"])
    bytewise = feed([data[i : i + 1] for i in range(len(data))] + [b"NEXT"])
    assert whole[1:] == bytewise[1:]
    if whole[1] is None:
        assert whole[0] == bytewise[0]
        if binary:
            assert whole[0] == data
    assert whole[2] == b"NEXT"


def test_stuffed_dot_not_counted_in_line_limit() -> None:
    """A line at the limit that starts with a stuffed dot is accepted (§4.5.3.1.6)."""
    assert three_ways(b".." + b"x" * 97 + b"\r\n.\r\n", max_text_line=100)[2] is None
    assert three_ways(b".." + b"x" * 98 + b"\r\n.\r\n", max_text_line=100)[2] == LINE_TOO_LONG_REPLY


def obvious_has_bare(data: bytes) -> bool:
    """A CR or LF outside a CRLF pair, by removing the pairs."""
    rest = data.replace(b"\r\n", b"")
    return b"\r" in rest or b"\n" in rest


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from([b"\r", b"\n", b"\r\n", b"\xd8", b"a", b"\x0a\x0d", b".", b"\n.", b"\r\n."])
    )
)
def test_has_bare_is_exact(pieces: list[bytes]) -> None:
    """The bare-newline regex searches agree with removing CRLF pairs, from any start."""
    data = b"".join(pieces)
    assert _has_bare(data) == obvious_has_bare(data)
    for start in range(len(data)):
        # From a start offset, an LF still counts as paired with the CR before it.
        expected = obvious_has_bare(data[start:])
        if data[start : start + 1] == b"\n" and data[start - 1 : start] == b"\r":
            expected = obvious_has_bare(data[start + 1 :])
        assert _has_bare(data, start) == expected


def test_bytes_beyond_ascii_are_ordinary_content() -> None:
    """Content with bytes 0x80..0xFF (UTF-8 text, binary) is judged by its CR/LF only."""
    clean = bytes(range(128, 256)) + b"\x00\xd8\r\n"
    assert not _has_bare(clean * 100)
    assert _has_bare(clean * 100 + b"\n")
    assert three_ways(clean * 100 + b".\r\n")[:3] == (clean * 100, True, None)


def test_normalize_measures_lines_after_splitting_at_bare_cr() -> None:
    """With normalize, a bare CR ends a line for the line limit too."""
    data = b"Subject: x\r" + b"y" * 60 + b"\r\n.\r\n"
    assert three_ways(data, max_text_line=64, policy="normalize")[2] is None
    assert three_ways(data, max_text_line=64, policy="reject")[2] == BARE_NEWLINE_REPLY


def model_data(
    wire: bytes, *, max_text_line: int, max_size: int | None, policy: Policy
) -> tuple[bytes, bool, bool, bytes] | None:
    """A slow, obvious DATA reader: (content, refused, done, rest), or None if not done."""
    stream = b"\r\n" + wire  # the DATA command's CRLF starts the first line
    end = stream.find(b"\r\n.\r\n")
    if end < 0:
        return None
    body, rest = stream[: end + 2], stream[end + 5 :]
    bare = any(
        (byte == 13 and body[i + 1 : i + 2] != b"\n") or (byte == 10 and body[i - 1 : i] != b"\r")
        for i, byte in enumerate(body)
    )
    if bare:
        # Each bare CR or LF is a line end; then every line loses a leading dot.
        normalized = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
        out = normalized.replace(b"\r\n.", b"\r\n")[2:]
    else:
        out = body.replace(b"\r\n.", b"\r\n")[2:]
    too_long = any(len(line) + 1 > max_text_line for line in out.split(b"\n"))
    too_big = max_size is not None and len(out) > max_size
    refused = (bare and policy == "reject") or too_long or too_big
    return out, refused, True, rest


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.sampled_from(
            [
                b"\r\n",
                b"\r",
                b"\n",
                b".",
                b"..",
                b"\r\n.\r\n",
                b"x",
                b"yyyyyyyyyy",
                b"\x00",
                b"\xd8",
            ]
        ),
        max_size=30,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=6),
    policy=st.sampled_from(["reject", "normalize"]),
    max_size=st.sampled_from([None, 5, 40]),
)
def test_reader_matches_the_obvious_model(
    pieces: list[bytes], cuts: list[int], policy: Policy, max_size: int | None
) -> None:
    """The chunked reader agrees with a slow line-by-line model, however bytes are cut."""
    wire = b"".join(pieces)
    points = sorted({min(c, len(wire)) for c in cuts})
    chunks = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    out, done, error, rest = read_all(chunks, max_text_line=64, max_size=max_size, policy=policy)
    expected = model_data(wire, max_text_line=64, max_size=max_size, policy=policy)
    if expected is None:
        assert not done
        return
    want_out, refused, _, want_rest = expected
    assert done
    assert rest == want_rest
    assert (error is not None) == refused
    if not refused:
        assert out == want_out


def test_normalize_unstuffs_a_dot_line_begun_by_a_bare_lf_at_a_chunk_edge() -> None:
    """normalize: a bare LF ending one chunk still unstuffs the dot opening the next."""
    wire = [b"Hello\n", b"..x\n", b"...y\r\n.\r\n"]
    assert read_all(wire, policy="normalize")[:3] == (
        b"Hello\r\n.x\r\n..y\r\n",
        True,
        None,
    )


def test_many_bare_lf_dots_are_content() -> None:
    """LF "." never ends the message; under normalize the LF ends a line whose dot goes."""
    data = b"x\n." * 50 + b"\r\n.y\r\n.\r\n"
    assert three_ways(data, policy="normalize")[:3] == (
        b"x\r\n" * 50 + b"\r\ny\r\n",
        True,
        None,
    )
    assert three_ways(data)[2] == BARE_NEWLINE_REPLY


# Inputs whose interesting bytes sit where a chunk boundary can fall: CRLF pairs,
# dot lines and the end marker, bare CR/LF next to them, lines at and over the limit
# (64 with CRLF) with and without a transparency dot.
EDGE_CASES = [
    b"a\r\nb\r\n.\r\nNEXT",
    b"..x\r\n.\r\n..\r\n.\r\n",
    b".\r\n",
    b"x\r\n.\rNOT\r\n.\r\n",
    b"x\r\r\n\n.\r\n.\r\n",
    b"x\n\r\n.\r\n",
    b"\r\r\n.\r\n",
    b"\n.\r\n.\r\n",
    b"y" * 62 + b"\r\n.\r\n",
    b"y" * 63 + b"\r\n.\r\n",
    b"." + b"y" * 62 + b"\r\n.\r\n",
    b"." + b"y" * 63 + b"\r\n.\r\n",
    b"a\r\n." + b"y" * 62 + b"\r\n.\r\n",
    b"a\r\n.." + b"y" * 62 + b"\r\n.\r\n",
    b"y" * 40 + b"\r" + b"y" * 30 + b"\r\n.\r\n",
    b"y" * 40 + b"\n" + b"y" * 22 + b"\r\n.\r\n",
]


@pytest.mark.parametrize("wire", EDGE_CASES)
@pytest.mark.parametrize("policy", ["reject", "normalize"])
def test_every_two_and_three_way_split_matches_the_model(wire: bytes, policy: Policy) -> None:
    """Cutting the input at any one or two offsets gives the model's result."""
    expected = model_data(wire, max_text_line=64, max_size=None, policy=policy)
    assert expected is not None
    want_out, refused, _, want_rest = expected
    n = len(wire)
    splits = [[wire[:i], wire[i:]] for i in range(n + 1)]
    splits += [
        [wire[:i], wire[i:j], wire[j:]] for i in range(n) for j in range(i + 1, min(n, i + 6))
    ]
    for chunks in splits:
        out, done, error, rest = read_all(chunks, max_text_line=64, policy=policy)
        assert (done, rest, error is not None) == (True, want_rest, refused), chunks
        if not refused:
            assert out == want_out, chunks
