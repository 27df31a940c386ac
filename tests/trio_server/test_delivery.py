"""Maildir delivery: trace headers, the Date scanner, spooling and durability steps."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_server.delivery import (
    SPOOL_MEMORY,
    Envelope,
    HeaderScanner,
    MaildirDelivery,
    Spool,
    TraceInfo,
    header_safe,
    new_queue_id,
)

TRACE = TraceInfo(
    hostname="mx.example.test", peer_ip="192.0.2.7", helo="client.test", protocol="ESMTP"
)


def scan(data: bytes, step: int | None = None) -> HeaderScanner:
    scanner = HeaderScanner()
    step = step or max(len(data), 1)
    for start in range(0, len(data), step):
        scanner.feed(data[start : start + step])
    return scanner


@pytest.mark.parametrize(
    ("message", "has_date"),
    [
        (b"Subject: x\r\nDate: Sat, 28 Nov 2026 09:00:00 +0000\r\n\r\nbody\r\n", True),
        (b"DATE: whenever\r\n\r\n", True),
        (b"Subject: x\r\n\r\nDate: in the body\r\n", False),
        (b"Subject: x\r\n X-Date: folded\r\n\r\n", False),
        (b"X-Date: no\r\n\r\n", False),
        (b"just a body line\r\nDate: not a header\r\n", False),
        (b"\r\nDate: after the blank line\r\n", False),
        (b"", False),
    ],
)
def test_header_scanner(message: bytes, has_date: bool) -> None:
    """Date: counts only in the header section; same answer whole or byte by byte."""
    assert scan(message).has_date is has_date
    assert scan(message, 1).has_date is has_date
    assert scan(message + b"trailing\r\nDate: x\r\n").has_date is has_date


@settings(max_examples=100)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_header_scanner_chunking_never_matters(data: bytes, step: int) -> None:
    """Any content gives the same verdict whatever the chunk boundaries."""
    assert scan(data).has_date == scan(data, step).has_date


def test_header_safe() -> None:
    """CR, LF and other controls never survive into a header value."""
    assert header_safe("a\r\nBcc: x\x00\x7f") == "a??Bcc: x??"
    assert header_safe("ünï") == "ünï"


def test_queue_ids_are_unique() -> None:
    """Queue ids are 12 hex digits and do not repeat."""
    ids = {new_queue_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 12 and int(i, 16) >= 0 for i in ids)


def maildir(tmp_path: Path, header: str | None = None) -> MaildirDelivery:
    agent = MaildirDelivery(tmp_path / "mail", original_recipients_header=header, host="h/o:st")
    agent.prepare(["alice", "bob"])
    return agent


async def spool_of(tmp_path: Path, *chunks: bytes) -> Spool:
    spool = Spool(tmp_path)
    SPOOLS.append(spool)
    for chunk in chunks:
        await spool.write(chunk)
    return spool


SPOOLS: list[Spool] = []


@pytest.fixture(autouse=True)
def close_spools() -> Iterator[None]:
    """Every spool a test made is closed afterwards (no ResourceWarning)."""
    yield
    for spool in SPOOLS:
        file = spool._file
        if file is not None:
            file.close()
    SPOOLS.clear()


async def test_delivers_into_new_with_trace_headers(tmp_path: Path) -> None:
    """One copy per mailbox in new/, nothing left in tmp/, trace headers first."""
    agent = maildir(tmp_path)
    envelope = Envelope(queue_id="ABC123", sender="s@remote.test")
    envelope.add("alice", "alice@example.test")
    spool = await spool_of(tmp_path, b"Subject: hi\r\n\r\nbody\r\n")
    (copy,) = await agent.deliver(spool, envelope, TRACE, add_date=False)
    assert copy.path.parent == tmp_path / "mail" / "alice" / "new"
    assert os.listdir(tmp_path / "mail" / "alice" / "tmp") == []
    assert "h\\057o\\072st" in copy.path.name
    text = copy.path.read_bytes().decode()
    head, _, rest = text.partition("Subject: hi\n")
    assert rest == "\nbody\n"
    assert head.startswith(
        "Return-Path: <s@remote.test>\nReceived: from client.test ([192.0.2.7])\n"
    )
    assert "\tby mx.example.test (sansio-smtpd) with ESMTP id ABC123\n" in head
    assert "\tfor <alice@example.test>; " in head
    assert "Date:" not in head
    assert "X-Original-To" not in head


async def test_date_added_when_asked(tmp_path: Path) -> None:
    """add_date=True prepends an RFC 5322 Date: line."""
    agent = maildir(tmp_path)
    envelope = Envelope(queue_id="Q", sender="")
    envelope.add("bob", "bob@example.test")
    (copy,) = await agent.deliver(
        await spool_of(tmp_path, b"\r\nx\r\n"), envelope, TRACE, add_date=True
    )
    text = copy.path.read_bytes().decode()
    assert text.startswith("Return-Path: <>\n")
    date_line = next(line for line in text.split("\n") if line.startswith("Date: "))
    assert date_line.endswith("+0000")


async def test_original_recipients_per_mailbox(tmp_path: Path) -> None:
    """Each copy lists only the RCPT addresses delivered into its own mailbox."""
    agent = maildir(tmp_path, header="X-Original-To")
    envelope = Envelope(queue_id="Q", sender="s@x.test")
    envelope.add("alice", "Alice@Example.TEST")
    envelope.add("alice", "a.smith@example.test")
    envelope.add("bob", "bob@example.test")
    copies = await agent.deliver(await spool_of(tmp_path, b"\r\n"), envelope, TRACE, add_date=False)
    texts = {c.mailbox: c.path.read_bytes().decode() for c in copies}
    assert (
        "X-Original-To: Alice@Example.TEST\nX-Original-To: a.smith@example.test\n" in texts["alice"]
    )
    assert "bob@" not in texts["alice"]
    assert "X-Original-To: bob@example.test\n" in texts["bob"]
    assert "alice" not in texts["bob"].lower()
    # Two recipients in one copy: no "for" clause naming one of them.
    assert "\tfor <" not in texts["alice"]


async def test_received_variants(tmp_path: Path) -> None:
    """IPv6 peers get an IPv6: literal; TLS adds a 'using' comment; peer HELO is sanitised."""
    agent = maildir(tmp_path)
    envelope = Envelope(queue_id="Q", sender="s@x.test")
    envelope.add("bob", "bob@example.test")
    trace = TraceInfo(
        hostname="mx",
        peer_ip="::1",
        helo="evil\r\nBcc: x",
        protocol="ESMTPSA",
        tls="TLSv1.3 with cipher X",
    )
    header = agent.headers(envelope, "bob", trace, add_date=False, newline=b"\r\n").decode()
    assert (
        "Received: from evil??Bcc: x ([IPv6:::1])\r\n\t(using TLSv1.3 with cipher X)\r\n" in header
    )
    assert "with ESMTPSA id Q" in header
    assert header.count("\r\n") == header.count("\r\n\t") + 2  # Return-Path + Received only


async def test_large_message_spills_to_disk_and_arrives_whole(tmp_path: Path) -> None:
    """Content past SPOOL_MEMORY goes to a spool file; the copy holds every byte in order."""
    agent = maildir(tmp_path)
    chunks = [bytes([65 + i % 26]) * 10_000 + b"\r\n" for i in range(3 * SPOOL_MEMORY // 10_000)]
    spool = await spool_of(tmp_path, b"Subject: big\r\n\r\n", *chunks)
    assert spool._file is not None  # spilled
    assert len(spool._pending) < SPOOL_MEMORY
    envelope = Envelope(queue_id="Q", sender="s@x.test")
    envelope.add("alice", "alice@example.test")
    (copy,) = await agent.deliver(spool, envelope, TRACE, add_date=False)
    body = copy.path.read_bytes().split(b"Subject: big\n\n", 1)[1]
    assert body == b"".join(chunks).replace(b"\r\n", b"\n")
    assert spool.size == len(b"Subject: big\r\n\r\n") + len(b"".join(chunks))
    await spool.aclose()
    assert list(tmp_path.glob("spool.*")) == []  # the spool file is anonymous


async def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An fsync failure raises OSError and leaves neither tmp/ nor new/ entries."""
    agent = maildir(tmp_path)
    envelope = Envelope(queue_id="Q", sender="s@x.test")
    envelope.add("alice", "alice@example.test")

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="Input/output"):
        await agent.deliver(await spool_of(tmp_path, b"\r\n"), envelope, TRACE, add_date=False)
    assert os.listdir(tmp_path / "mail" / "alice" / "tmp") == []
    assert os.listdir(tmp_path / "mail" / "alice" / "new") == []


async def test_fsync_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is fsynced before the rename and new/ after it (Maildir durability)."""
    agent = maildir(tmp_path)
    envelope = Envelope(queue_id="Q", sender="s@x.test")
    envelope.add("alice", "alice@example.test")
    steps: list[str] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        steps.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    def rename(src: str, dst: str) -> None:
        steps.append("rename")
        real_rename(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    await agent.deliver(await spool_of(tmp_path, b"\r\n"), envelope, TRACE, add_date=False)
    assert steps == ["fsync-file", "rename", "fsync-dir"]


async def test_blocking_work_runs_in_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delivery and spilling run in worker threads, never on the event loop."""
    agent = maildir(tmp_path)
    calls: list[str] = []
    real = trio.to_thread.run_sync

    async def spy(fn: Callable[..., object], *args: object) -> object:
        calls.append(getattr(fn, "__name__", "?"))
        return await real(fn, *args)

    monkeypatch.setattr(trio.to_thread, "run_sync", spy)
    envelope = Envelope(queue_id="Q", sender="s@x.test")
    envelope.add("alice", "alice@example.test")
    spool = await spool_of(tmp_path, b"x" * (SPOOL_MEMORY + 1))
    await agent.deliver(spool, envelope, TRACE, add_date=False)
    assert calls == ["_spill", "_deliver_all"]


@settings(max_examples=100)
@given(
    st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"")), max_size=8),
    st.lists(st.integers(min_value=0, max_value=300), max_size=6),
)
async def test_crlf_to_lf_whatever_the_chunks(lines: list[bytes], cuts: list[int]) -> None:
    """CRLF becomes LF, other bytes (bare LF too) are kept, wherever the chunks split.

    Text content has no bare CR: the engine refuses or normalises it first.
    """
    content = b"".join(line + b"\r\n" for line in lines)
    bounds = sorted({0, len(content), *(min(c, len(content)) for c in cuts)})
    chunks = [content[a:b] for a, b in itertools.pairwise(bounds)]
    spool = await spool_of(Path("/nonexistent"), *chunks)  # small: never spills to disk
    read, write = os.pipe()
    try:
        spool.copy_to(write)
        os.close(write)
        stored = os.read(read, 1 << 16)
    finally:
        os.close(read)
    assert stored == content.replace(b"\r\n", b"\n")


async def test_binarymime_is_stored_exactly(tmp_path: Path) -> None:
    """A BINARYMIME spool keeps CRLF and every byte; its headers end in CRLF too."""
    agent = maildir(tmp_path)
    envelope = Envelope(queue_id="Q", sender="s@x.test")
    envelope.add("bob", "bob@example.test")
    spool = Spool(tmp_path, binary=True)
    SPOOLS.append(spool)
    payload = b"Content-Type: application/octet-stream\r\n\r\n\x00\r\n\r\xff\n"
    await spool.write(payload)
    (copy,) = await agent.deliver(spool, envelope, TRACE, add_date=False)
    stored = copy.path.read_bytes()
    assert stored.endswith(payload)
    assert stored.startswith(b"Return-Path: <s@x.test>\r\nReceived: ")
