"""End to end: sansio-smtpd forwards over loopback to another SMTP server, and reports."""

from __future__ import annotations

import email
import email.policy
import smtplib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from email.message import Message
from pathlib import Path

import pytest
import trio

from sansio_smtp import Reject
from trio_server.config import Config, load_config
from trio_server.outbound import Forwarding
from trio_server.server import SMTPServer

from .nexthop import AiosmtpdHop, EngineHop, free_port

pytestmark = pytest.mark.slow

ORIGINAL = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: bob@branch.example.test\r\n"
    b"Subject: forwarded\r\n"
    b"Message-ID: <fw1@example.test>\r\n"
    b"\r\n"
    b"First line.\r\n"
    b".A line that starts with a dot.\r\n"
    b"Last line.\r\n"
)


def _config(
    folder: Path, *, forward_port: int, smarthost_port: int | None = None, trusted: bool = True
) -> Config:
    text = f"""
[server]
hostname = "mx.example.test"
listen = ["127.0.0.1:0"]
spool_dir = "spool"
local_networks = {'["127.0.0.0/8"]' if trusted else '["192.0.2.0/24"]'}

[local]
domains = ["example.test"]
maildir_root = "mail"

[local.mailboxes]
alice = ["alice"]

[[forward]]
addresses = "*@branch.example.test"
server = "127.0.0.1:{forward_port}"

[queue]
retry_schedule = [60, 300]
max_age = 3600
delay_notice_after = 600
"""
    if smarthost_port is not None:
        text += f'\n[relay]\nsmarthost = "127.0.0.1:{smarthost_port}"\n'
    path = folder / "smtpd.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


@asynccontextmanager
async def _running(config: Config, *, later: float = 0.0) -> AsyncIterator[tuple[int, Forwarding]]:
    """Our server with forwarding, on a free port; yields the port and the parts.

    ``later`` shifts the wall clock forward, standing in for time passing between runs.
    """
    delivery = SMTPServer(config).context.delivery
    forwarding = Forwarding.from_config(config, delivery, wall_clock=lambda: time.time() + later)
    server = SMTPServer(config, router=forwarding.router)
    server.prepare()
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(server.serve)
        await nursery.start(forwarding.agent.run)
        yield bound[0][1], forwarding
        nursery.cancel_scope.cancel()


def _send(port: int, recipients: list[str], message: bytes = ORIGINAL) -> dict[str, object]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        return dict(client.sendmail("alice@example.test", recipients, message))


async def _eventually(check: Callable[[], bool]) -> None:
    """Wait (up to 10 s, real time) until ``check()`` holds."""
    for _ in range(200):
        if check():
            return
        await trio.sleep(0.05)
    raise AssertionError("timed out waiting")


async def test_forwarded_message_arrives_intact_under_our_received(tmp_path: Path) -> None:
    """aiosmtpd as the LAN server: the message arrives byte for byte, our Received: on top."""
    hop = AiosmtpdHop()
    await trio.to_thread.run_sync(hop.start)
    try:
        async with _running(_config(tmp_path, forward_port=hop.port)) as (port, forwarding):
            await trio.to_thread.run_sync(_send, port, ["bob@branch.example.test"])
            await _eventually(lambda: bool(hop.messages))
            await _eventually(lambda: not list(forwarding.spool.scan()))
    finally:
        await trio.to_thread.run_sync(hop.stop)
    ((sender, recipients, content),) = hop.messages
    assert (sender, recipients) == ("alice@example.test", ["bob@branch.example.test"])
    assert content.startswith(b"Received: from ")
    assert b"by mx.example.test (sansio-smtpd) with ESMTP id " in content.split(b"\r\n\r\n")[0]
    assert b"\tfor <bob@branch.example.test>; " in content
    headers_end = content.index(b"From: Alice")
    assert content[headers_end:] == ORIGINAL


async def test_smarthost_only_for_trusted_clients(tmp_path: Path) -> None:
    """Other domains go to the smarthost for local clients; others get 550 5.7.1."""
    smarthost = EngineHop()
    async with trio.open_nursery() as nursery:
        smarthost_port = await nursery.start(smarthost.serve)
        config = _config(tmp_path, forward_port=free_port(), smarthost_port=smarthost_port)
        async with _running(config) as (port, _):
            await trio.to_thread.run_sync(_send, port, ["carol@far.test"])
            await _eventually(lambda: bool(smarthost.transactions))
        untrusted = _config(
            tmp_path, forward_port=free_port(), smarthost_port=smarthost_port, trusted=False
        )
        async with _running(untrusted) as (port, _):
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                await trio.to_thread.run_sync(_send, port, ["dave@far.test"])
        nursery.cancel_scope.cancel()
    code, text = refused.value.recipients["dave@far.test"]
    assert code == 550
    assert text.startswith(b"5.7.1")
    assert [t.recipients[0][0] for t in smarthost.transactions] == ["carol@far.test"]


async def test_no_smarthost_refuses_other_domains(tmp_path: Path) -> None:
    """Without [relay], even a trusted client's recipient at another domain gets 550 5.7.1."""
    async with _running(_config(tmp_path, forward_port=free_port())) as (port, _):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            await trio.to_thread.run_sync(_send, port, ["carol@far.test"])
    code, text = refused.value.recipients["carol@far.test"]
    assert (code, text.split(b" ")[0]) == (550, b"5.7.1")


def _maildir_messages(folder: Path) -> list[Message]:
    new = folder / "mail" / "alice" / "new"
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted(new.iterdir())
    ]


def _status_blocks(report: Message) -> list[Message]:
    """The header blocks of a report's message/delivery-status part."""
    parts = report.get_payload()
    assert isinstance(parts, list)
    status = parts[1]
    assert isinstance(status, Message)
    blocks = status.get_payload()
    assert isinstance(blocks, list)
    return [block for block in blocks if isinstance(block, Message)]


async def test_refused_forward_bounces_to_local_sender(tmp_path: Path) -> None:
    """A 550 from the LAN server becomes a failure report in the local sender's Maildir."""
    hop = EngineHop(
        reject={"gone@branch.example.test": Reject(code=550, status="5.1.1", text="no")}
    )
    async with trio.open_nursery() as nursery:
        hop_port = await nursery.start(hop.serve)
        async with _running(_config(tmp_path, forward_port=hop_port)) as (port, forwarding):
            await trio.to_thread.run_sync(
                _send, port, ["gone@branch.example.test", "here@branch.example.test"]
            )
            await _eventually(lambda: not list(forwarding.spool.scan()))
        nursery.cancel_scope.cancel()
    assert [r for r, _ in hop.transactions[0].recipients] == ["here@branch.example.test"]
    (report,) = _maildir_messages(tmp_path)
    assert report["Return-Path"] == "<>"
    assert report.get_content_type() == "multipart/report"
    blocks = _status_blocks(report)
    assert blocks[1]["Final-Recipient"] == "rfc822;gone@branch.example.test"
    assert blocks[1]["Action"] == "failed"
    assert blocks[1]["Status"] == "5.1.1"
    assert blocks[1]["Diagnostic-Code"] == "smtp; 550 5.1.1 no"
    assert len(blocks) == 2  # the accepted recipient is not reported (no NOTIFY)


async def test_restart_delivers_queued_message_once(tmp_path: Path) -> None:
    """Queued while the LAN server is down, the message survives a restart and arrives once."""
    hop = AiosmtpdHop()
    config = _config(tmp_path, forward_port=hop.port)
    async with _running(config) as (port, forwarding):
        await trio.to_thread.run_sync(_send, port, ["bob@branch.example.test"])
        await _eventually(
            lambda: any(r.attempts for e in forwarding.spool.scan() for r in e.recipients)
        )
    # The first server is gone; the message waits on disk, its retry 60 s away. The hop
    # comes up, and a fresh server on the same spool starts two minutes later: the
    # rescan finds the message due and sends it, once.
    await trio.to_thread.run_sync(hop.start)
    try:
        async with _running(config, later=120) as (_, forwarding):
            await _eventually(lambda: bool(hop.messages))
            await _eventually(lambda: not list(forwarding.spool.scan()))
            await trio.sleep(0.2)  # room for a (wrong) second delivery to show up
    finally:
        await trio.to_thread.run_sync(hop.stop)
    assert len(hop.messages) == 1
    assert hop.messages[0][2].endswith(ORIGINAL)
