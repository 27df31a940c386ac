# Invariant: any client bytes into ServerConnection, answered by an application that
# accepts everything, give events or RemoteProtocolError and nothing else; every byte
# the engine emits is a whole, well-formed reply (enhanced status after EHLO when
# enabled); feeding the same bytes whole, split at fuzzer-chosen points, or one byte at
# a time gives the same events and replies (up to the STARTTLS point, where what was
# already buffered legitimately matters); buffered input stays within the line limits;
# and the DATA and BDAT readers, fed in any pieces, agree with plain reference versions.
"""Fuzz the SMTP server engine with raw client bytes (RFC 5321 and extensions)."""

from __future__ import annotations

from collections.abc import Iterable

from fuzz import sessions
from fuzz._common import run_fuzzer
from fuzz._smtp import (
    Driver,
    Observation,
    config_from_flags,
    has_bare_newline,
    tls_from_flags,
)
from sansio_smtp._data import BdatReader, DataReader
from sansio_smtp._events import ConnectionClosed, MessageData, MessageEnd, StartTLS
from sansio_smtp._receivebuffer import ReceiveBuffer

# Input layout: flags (config), split byte (low 4 bits: number of split points, bit 4:
# also feed one byte at a time, bit 5: instead check DataReader against a reference),
# one gap byte per split point, then the client bytes.
_ONE_BYTE_LIMIT = 256  # longest payload also fed byte by byte (keeps executions fast)


def _chunks(payload: bytes, gaps: bytes) -> list[bytes]:
    chunks: list[bytes] = []
    pos = 0
    for gap in gaps:
        if pos >= len(payload):
            break
        chunks.append(payload[pos : pos + gap + 1])
        pos += gap + 1
    if pos < len(payload):
        chunks.append(payload[pos:])
    return chunks


def _run(flags: int, chunks: Iterable[bytes]) -> Driver:
    driver = Driver(config_from_flags(flags), tls_active=tls_from_flags(flags))
    for chunk in chunks:
        driver.feed(chunk)
    driver.feed(b"")
    assert driver.closed or driver.failed is not None, "EOF did not end the session"
    return driver


def _reference_data(
    stream: bytes, max_text_line: int, max_size: int | None
) -> tuple[int, bytes, bool]:
    """The DATA reader's job done the obvious way (RFC 5321 §4.1.1.4, §4.5.2, §2.3.8).

    Returns:
        (offset just past CRLF.CRLF in ``stream`` or -1, the unstuffed content, whether
        the message breaks a rule: bare CR/LF, a line over max_text_line not counting a
        stuffed dot, or more than max_size bytes).
    """
    data = b"\r\n" + stream  # the DATA command's CRLF starts the first line
    end = data.find(b"\r\n.\r\n")
    if end < 0:
        return -1, b"", False
    lines = data[2 : end + 2].split(b"\r\n")[:-1]
    content = b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n" for line in lines)
    bad = any(b"\r" in line or b"\n" in line for line in lines)
    bad = bad or any(len(line) - line.startswith(b".") + 2 > max_text_line for line in lines)
    bad = bad or (max_size is not None and len(content) > max_size)
    return end + 3, content, bad


def _differential_data(flags: int, stream: bytes, gaps: bytes) -> None:
    """DataReader, fed in fuzzer-chosen pieces, agrees with the reference above."""
    max_text_line = 64 if flags & 4 else 1000
    max_size = 200 if flags & 4 else None
    reader = DataReader(max_text_line=max_text_line, max_size=max_size, bare_newlines="reject")
    buf = ReceiveBuffer()
    out = bytearray()
    for piece in _chunks(stream, gaps):
        buf.append(piece)
        for _ in range(4):
            if reader.done or not buf:
                break
            out += reader.read(buf)
    end, content, bad = _reference_data(stream, max_text_line, max_size)
    assert reader.done == (end >= 0), (stream, end)
    if end < 0:
        return
    # Exactly the bytes after CRLF.CRLF are left for the command reader.
    assert buf.extract_all() == stream[end:], (stream, end)
    if bad:
        assert reader.error is not None, (stream, bytes(out))
    else:
        assert reader.error is None, (stream, reader.error)
        assert bytes(out) == content, (stream, bytes(out), content)


def _differential_bdat(flags: int, stream: bytes, gaps: bytes) -> None:
    """BdatReader over chunks cut at the gaps (each fed in two writes) gives the content
    back exactly, or refuses it exactly when it holds a bare CR/LF (unless binary) or is
    too big (RFC 3030 §2, RFC 5321 §2.3.8)."""
    binary = bool(flags & 1)
    max_size = 200 if flags & 4 else None
    reader = BdatReader(max_size=max_size, bare_newlines="reject", binary=binary)
    chunks = _chunks(stream, gaps) or [b""]
    out = bytearray()
    for i, chunk in enumerate(chunks):
        reader.start_chunk(len(chunk), last=i == len(chunks) - 1)
        buf = ReceiveBuffer()
        for piece in (chunk[: len(chunk) // 2], chunk[len(chunk) // 2 :]):
            buf.append(piece)
            out += reader.read(buf)
        assert reader.chunk_done, (chunks, i)
        assert not buf, (chunks, i)
    bad = (not binary and has_bare_newline(stream)) or (
        max_size is not None and len(stream) > max_size
    )
    if bad:
        assert reader.error is not None, (chunks, bytes(out))
    else:
        assert reader.error is None, (chunks, reader.error)
        assert bytes(out) == stream, (chunks, bytes(out))


def _tls_cut(transcript: list[Observation]) -> int:
    """Index of the reply to the first STARTTLS that was accepted or refused as pipelined."""
    for i, (kind, value) in enumerate(transcript):
        if kind == "event" and (
            isinstance(value, StartTLS)
            or (isinstance(value, ConnectionClosed) and "STARTTLS" in value.reason)
        ):
            return i - 1
    return len(transcript)


def _meaning(transcript: list[Observation]) -> list[Observation]:
    """Drops content the application discards: MessageData of a message that did not end
    in MessageEnd (refused, reset or cut by EOF). How much of such a message was streamed
    before the engine saw the problem depends on how the bytes arrived; it is void."""
    kept: list[Observation] = []
    for i, (kind, value) in enumerate(transcript):
        if kind == "event" and isinstance(value, MessageData):
            later = (v for k, v in transcript[i + 1 :] if k == "event")
            following = next((v for v in later if not isinstance(v, MessageData)), None)
            if not isinstance(following, MessageEnd):
                continue
        kept.append((kind, value))
    return kept


def _same(whole: Driver, other: Driver, how: str) -> None:
    a, b = _meaning(whole.transcript), _meaning(other.transcript)
    cut = min(_tls_cut(a), _tls_cut(b))
    if cut == len(a) == len(b):
        assert a == b, (how, a, b)
    else:
        assert a[:cut] == b[:cut], (how, cut, a, b)


def test_one_input(data: bytes) -> None:
    """Runs one fuzz input (see the layout comment above)."""
    if len(data) < 2:
        return
    flags, split = data[0], data[1]
    count = split & 0x0F
    gaps, payload = data[2 : 2 + count], data[2 + count :]
    if split & 0x20:
        _differential_data(flags, payload, gaps)
        _differential_bdat(flags, payload, gaps)
        return
    whole = _run(flags, [payload])
    if count:
        _same(whole, _run(flags, _chunks(payload, gaps)), "split")
    if split & 0x10 and len(payload) <= _ONE_BYTE_LIMIT:
        _same(whole, _run(flags, [payload[i : i + 1] for i in range(len(payload))]), "bytewise")


def seeds() -> Iterable[tuple[str, bytes]]:
    """Returns the named seeds: every session of fuzz/sessions.py under a few configs."""
    for name, session in sessions.all_sessions().items():
        yield name, bytes([0x00, 0x00]) + session
        # Split at a few points and byte by byte; AUTH in plaintext; STARTTLS offered.
        yield f"{name}_split", bytes([0x18, 0x13, 4, 20, 250]) + session
        yield f"{name}_small_normalize", bytes([0x05, 0x02, 9, 60]) + session
        yield f"{name}_plain_policy", bytes([0xE0, 0x00]) + session
        # The same bytes as DATA content for the differential DataReader check.
        yield f"{name}_as_content", bytes([0x04, 0x23, 7, 30, 2]) + session


def main() -> None:
    """Starts atheris on this harness."""
    run_fuzzer(test_one_input, packages=("sansio_smtp",))


if __name__ == "__main__":
    main()
