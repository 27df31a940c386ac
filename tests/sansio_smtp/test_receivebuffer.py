"""ReceiveBuffer: line extraction without rescanning, and the other cuts."""

from __future__ import annotations

from sansio_smtp import ReceiveBuffer


def test_extract_line_waits_for_lf() -> None:
    """A line is returned only once its LF arrived, LF included."""
    buf = ReceiveBuffer()
    buf.append(b"EHLO")
    assert buf.extract_line() is None
    buf.append(b" x\r\nNOOP")
    assert buf.extract_line() == b"EHLO x\r\n"
    assert buf.extract_line() is None
    assert len(buf) == 4
    assert buf


def test_search_resumes_where_it_stopped() -> None:
    """Bytes already searched are not searched again (the offset moves forward)."""
    buf = ReceiveBuffer()
    for _ in range(1000):
        buf.append(b"x")
        assert buf.extract_line() is None
    assert buf._searched == 1000
    buf.append(b"\n")
    assert buf.extract_line() == b"x" * 1000 + b"\n"
    assert buf._searched == 0
    assert not buf


def test_other_cuts() -> None:
    """push_front, peek, extract_at_most, discard_at_most, extract_all and clear."""
    buf = ReceiveBuffer()
    buf.append(b"abcdef")
    assert buf.peek(2) == b"ab"
    assert buf.extract_at_most(2) == b"ab"
    assert buf.discard_at_most(10) == 4
    buf.push_front(b"")
    buf.push_front(b"xy")
    buf.append(b"z")
    assert buf.extract_all() == b"xyz"
    buf.append(b"q")
    buf.clear()
    assert len(buf) == 0


def test_startswith_looks_without_consuming() -> None:
    """startswith compares the front of the buffer and leaves the bytes in place."""
    buf = ReceiveBuffer()
    assert not buf.startswith(b"\x16\x03")
    buf.append(b"\x16")
    assert not buf.startswith(b"\x16\x03")
    buf.append(b"\x03\x01")
    assert buf.startswith(b"\x16\x03")
    assert buf.extract_all() == b"\x16\x03\x01"


def test_bytes_arriving_in_an_empty_buffer_are_taken_back_without_a_copy() -> None:
    """A bytes chunk appended to an empty buffer comes back from extract_all as is."""
    buf = ReceiveBuffer()
    chunk = b"x" * 65536
    buf.append(chunk)
    assert len(buf) == 65536
    assert buf
    assert buf.startswith(b"xx")
    assert buf.extract_all() is chunk
    assert not buf
    assert len(buf) == 0


def test_a_caller_bytearray_is_copied() -> None:
    """Changing a bytearray after appending it does not change what was buffered."""
    buf = ReceiveBuffer()
    data = bytearray(b"abc")
    buf.append(data)
    data[:] = b"zzz"
    assert buf.extract_all() == b"abc"


def test_kept_chunk_joins_later_bytes_in_order() -> None:
    """Every operation sees a kept chunk followed by what came after it."""
    buf = ReceiveBuffer()
    buf.append(b"")
    assert not buf
    buf.append(b"MAIL ")
    buf.append(b"FROM:<>\r\nRC")
    assert buf.peek(4) == b"MAIL"
    assert buf.extract_line() == b"MAIL FROM:<>\r\n"
    buf.append(b"PT\r\n")
    assert buf.extract_line() == b"RCPT\r\n"
    buf.append(b"1234")
    assert buf.extract_at_most(2) == b"12"
    buf.append(b"56")
    assert buf.extract_all() == b"3456"
    buf.append(b"1234")
    assert buf.discard_at_most(3) == 3
    buf.append(b"56")
    assert buf.extract_all() == b"456"
    buf.append(b"1234")
    buf.clear()
    assert not buf
    buf.append(b"tail")
    buf.push_front(b"head-")
    assert buf.extract_all() == b"head-tail"
