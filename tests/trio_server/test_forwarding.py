"""End to end: sansio-smtpd forwards over loopback to another SMTP server, and reports."""

from __future__ import annotations

import email
import email.policy
import os
import re
import select
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from email.message import Message
from pathlib import Path

import pytest
import trio

import minger
from sansio_smtp import Notify, OriginalRecipient, Reject, Ret
from trio_server.config import Config, load_config
from trio_server.minger_service import MingerSettings, serve_minger
from trio_server.outbound import Forwarding
from trio_server.server import SMTPServer
from trio_server.spool import Spool

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


# --- through the whole session: DSN parameters, Minger at RCPT time, reports ---------


async def test_dsn_parameters_reach_a_dsn_lan_server(tmp_path: Path) -> None:
    """ENVID (xtext-decoded), RET, NOTIFY reach a DSN next hop, with ORCPT added."""
    hop = EngineHop()
    async with trio.open_nursery() as nursery:
        hop_port = await nursery.start(hop.serve)
        async with _running(_config(tmp_path, forward_port=hop_port)) as (port, forwarding):

            def send() -> None:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                    client.sendmail(
                        "alice@example.test",
                        ["bob@branch.example.test"],
                        ORIGINAL,
                        mail_options=["RET=HDRS", "ENVID=QQ+2B1"],
                        rcpt_options=["NOTIFY=SUCCESS,FAILURE"],
                    )

            await trio.to_thread.run_sync(send)
            await _eventually(lambda: not list(forwarding.spool.scan()))
        nursery.cancel_scope.cancel()
    (seen,) = hop.transactions
    assert seen.mail_params is not None
    assert (seen.mail_params.envid, seen.mail_params.ret) == ("QQ+1", Ret.HDRS)
    ((_, params),) = seen.recipients
    assert params.notify == frozenset({Notify.SUCCESS, Notify.FAILURE})
    assert params.orcpt == OriginalRecipient(addr_type="rfc822", address="bob@branch.example.test")
    assert _maildir_messages(tmp_path) == []  # the DSN hop reports, not us


async def test_relayed_report_from_a_non_dsn_lan_server(tmp_path: Path) -> None:
    """NOTIFY=SUCCESS through aiosmtpd (no DSN): we report "relayed" to the local sender."""
    hop = AiosmtpdHop()
    await trio.to_thread.run_sync(hop.start)
    try:
        async with _running(_config(tmp_path, forward_port=hop.port)) as (port, forwarding):

            def send() -> None:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                    client.sendmail(
                        "alice@example.test",
                        ["bob@branch.example.test"],
                        ORIGINAL,
                        mail_options=["ENVID=E42"],
                        rcpt_options=["NOTIFY=SUCCESS", "ORCPT=rfc822;Bob+2B@Branch.example.test"],
                    )

            await trio.to_thread.run_sync(send)
            await _eventually(lambda: not list(forwarding.spool.scan()))
    finally:
        await trio.to_thread.run_sync(hop.stop)
    (report,) = _maildir_messages(tmp_path)
    per_message, block = _status_blocks(report)
    assert per_message["Original-Envelope-Id"] == "E42"
    assert block["Action"] == "relayed"
    assert block["Original-Recipient"] == "rfc822;Bob+@Branch.example.test"


async def test_local_delivery_with_notify_success_reports_delivered(tmp_path: Path) -> None:
    """A local recipient with NOTIFY=SUCCESS gives the (local) sender a "delivered" report."""
    async with _running(_config(tmp_path, forward_port=free_port())) as (port, _):

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.sendmail(
                    "alice@example.test",
                    ["alice@example.test"],
                    ORIGINAL,
                    rcpt_options=["NOTIFY=SUCCESS"],
                )

        await trio.to_thread.run_sync(send)
    messages = _maildir_messages(tmp_path)
    reports = [m for m in messages if m.get_content_type() == "multipart/report"]
    assert len(messages) == 2
    (report,) = reports
    assert _status_blocks(report)[1]["Action"] == "delivered"


SECRET = "a-shared-secret-of-24ch"


def _minger_directory(mailbox: str) -> minger.Status:
    return {
        "active@branch.example.test": minger.Status.ACTIVE,
        "off@branch.example.test": minger.Status.DISABLED,
    }.get(mailbox, minger.Status.NOT_FOUND)


def _verify_config(folder: Path, *, forward_port: int, minger_port: int) -> Config:
    config = _config(folder, forward_port=forward_port)
    text = config.path.read_text(encoding="utf-8").replace(
        f'server = "127.0.0.1:{forward_port}"\n',
        f'server = "127.0.0.1:{forward_port}"\n'
        'verify = "minger"\n'
        f'minger_server = "127.0.0.1:{minger_port}"\n'
        f'minger_secret = "{SECRET}"\n'
        "minger_timeout = 0.5\n",
    )
    text = text.replace(
        "[local]\n",
        '[smtp]\nlog_rejected_recipients = true\nrejected_recipients_log = "bad.log"\n\n[local]\n',
    )
    config.path.write_text(text, encoding="utf-8")
    return load_config(config.path)


async def test_minger_verification_at_rcpt(tmp_path: Path) -> None:
    """RCPT to a verified route: 5 accepted, 3 refused 5.1.1, 4 refused 5.2.1."""
    settings = MingerSettings(listen=("127.0.0.1", 0), secret=SECRET)
    hop = EngineHop()
    async with trio.open_nursery() as nursery:
        hop_port = await nursery.start(hop.serve)
        _, minger_port = await nursery.start(serve_minger, settings, _minger_directory)
        config = _verify_config(tmp_path, forward_port=hop_port, minger_port=minger_port)
        async with _running(config) as (port, forwarding):

            def send() -> dict[str, tuple[int, bytes]]:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                    client.ehlo()
                    client.mail("alice@example.test")
                    answers = {
                        address: client.rcpt(address)
                        for address in (
                            "active@branch.example.test",
                            "gone@branch.example.test",
                            "off@branch.example.test",
                        )
                    }
                    client.data(ORIGINAL)
                    return answers

            answers = await trio.to_thread.run_sync(send)
            await _eventually(lambda: not list(forwarding.spool.scan()))
        nursery.cancel_scope.cancel()
    codes = {a: (code, text.split(b" ")[0]) for a, (code, text) in answers.items()}
    assert codes == {
        "active@branch.example.test": (250, b"2.1.5"),
        "gone@branch.example.test": (550, b"5.1.1"),
        "off@branch.example.test": (550, b"5.2.1"),
    }
    assert [r for r, _ in hop.transactions[0].recipients] == ["active@branch.example.test"]
    # Minger's refusals go to the rejected-recipients log like unknown local users.
    logged = (tmp_path / "bad.log").read_text(encoding="utf-8").splitlines()
    assert [line.split("\t")[4] for line in logged] == [
        "gone@branch.example.test",
        "off@branch.example.test",
    ]


async def test_silent_minger_defers_rcpt(tmp_path: Path) -> None:
    """A Minger server that never answers makes RCPT 451 4.4.3: the sender retries later."""
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as silent:
        await silent.bind(("127.0.0.1", 0))
        minger_port = silent.getsockname()[1]
        config = _verify_config(tmp_path, forward_port=free_port(), minger_port=minger_port)
        async with _running(config) as (port, forwarding):

            def send() -> tuple[int, bytes]:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                    client.ehlo()
                    client.mail("alice@example.test")
                    return client.rcpt("who@branch.example.test")

            code, text = await trio.to_thread.run_sync(send)
    assert (code, text.split(b" ")[0]) == (451, b"4.4.3")
    assert list(forwarding.spool.scan()) == []


# --- the real process, killed while a message waits in the queue -----------------------


def _wait_for_port(process: subprocess.Popen[bytes]) -> int:
    """Read the daemon's log until it says where it listens."""
    assert process.stderr is not None
    seen = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], deadline - time.monotonic())
        if not ready:
            break
        chunk = os.read(process.stderr.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
        match = re.search(rb"listening on 127\.0\.0\.1:(\d+)", seen)
        if match:
            return int(match.group(1))
    raise AssertionError(f"server did not start: {seen!r}")


def _daemon(config: Config) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "trio_server", "--config", str(config.path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)
    assert process.stderr is not None
    process.stderr.close()


async def test_sigkilled_daemon_delivers_queued_message_once_after_restart(
    tmp_path: Path,
) -> None:
    """sansio-smtpd killed with SIGKILL holding a queued message: restarted, it sends it once."""
    hop = AiosmtpdHop()
    config = _config(tmp_path, forward_port=hop.port)
    # Retry after one second, so the restarted daemon finds the message due at once.
    config.path.write_text(
        config.path.read_text(encoding="utf-8").replace("[60, 300]", "[1]"), encoding="utf-8"
    )
    first = _daemon(config)
    try:
        port = await trio.to_thread.run_sync(_wait_for_port, first)
        await trio.to_thread.run_sync(_send, port, ["bob@branch.example.test"])
        spool = Spool(config.server.spool_dir)
        await _eventually(lambda: any(r.attempts for e in spool.scan() for r in e.recipients))
        first.send_signal(signal.SIGKILL)
    finally:
        await trio.to_thread.run_sync(_stop, first)
    await trio.to_thread.run_sync(hop.start)
    second = _daemon(config)
    try:
        await trio.to_thread.run_sync(_wait_for_port, second)
        await _eventually(lambda: bool(hop.messages))
        await _eventually(lambda: not list(spool.scan()))
        await trio.sleep(1.5)  # past the next retry: a second copy would show up now
    finally:
        await trio.to_thread.run_sync(_stop, second)
        await trio.to_thread.run_sync(hop.stop)
    assert len(hop.messages) == 1
    assert hop.messages[0][2].endswith(ORIGINAL)
