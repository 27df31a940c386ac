"""The running server over 127.0.0.1 with real clients: smtplib (in a thread) and aiosmtplib."""

from __future__ import annotations

import gc
import smtplib
import socket
import ssl
import warnings
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
import trio
import trio.testing

from sansio_smtp import ReplyParser

from .conftest import PASSWORD, MemoryClient, log_lines, messages, raw_messages, start, write_config

# Real clients over 127.0.0.1 (smtplib in a thread, aiosmtplib).
pytestmark = pytest.mark.slow

BODY = "Subject: hello\r\nFrom: s@remote.test\r\n\r\nHi there.\r\n"


def smtp_send(
    port: int, sender: str, recipients: list[str], body: str = BODY
) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10) as client:
        return client.sendmail(sender, recipients, body)


async def test_smtplib_plain_delivery(
    tmp_path: Path, nursery: trio.Nursery, server_log: pytest.LogCaptureFixture
) -> None:
    """smtplib delivers to two mailboxes; each copy has Return-Path and Received ESMTP."""
    config = write_config(tmp_path)
    _, port = await start(nursery, config)
    refused = await trio.to_thread.run_sync(
        smtp_send, port, "s@remote.test", ["alice@example.test", "BOB@Example.Test"]
    )
    assert refused == {}
    (alice,) = messages(config, "alice")
    (bob,) = messages(config, "bob")
    for message in (alice, bob):
        assert message["Return-Path"] == "<s@remote.test>"
        received = " ".join(message["Received"].split())
        assert received.startswith("from client.test ([127.0.0.1]) by mx.example.test")
        assert " with ESMTP id " in received
        assert message["Subject"] == "hello"
        assert message.get_content() == "Hi there.\n"
        assert b"\r" not in raw_messages(config, "alice")[0]
    assert "for <BOB@Example.Test>" in " ".join(bob["Received"].split())
    await trio.testing.wait_all_tasks_blocked()
    lines = log_lines(server_log)
    events = [line.split()[2] for line in lines if line.startswith("conn=")]
    for wanted in ("connect", "helo", "accept", "delivered", "disconnect"):
        assert wanted in events


async def test_alias_local_parts_share_a_mailbox(tmp_path: Path, nursery: trio.Nursery) -> None:
    """alice and a.smith both land in alice, as one copy."""
    config = write_config(tmp_path)
    _, port = await start(nursery, config)
    await trio.to_thread.run_sync(
        smtp_send, port, "s@remote.test", ["alice@example.test", "A.Smith@example.test"]
    )
    assert len(messages(config, "alice")) == 1
    assert messages(config, "bob") == []


async def test_unknown_local_and_relay_refused(tmp_path: Path, nursery: trio.Nursery) -> None:
    """Unknown local user: 550 5.1.1. Other domains, even from a local network: 550 5.7.1."""
    config = write_config(tmp_path)
    _, port = await start(nursery, config)

    def session() -> list[tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.ehlo("client.test")
            client.mail("s@remote.test")
            return [client.rcpt(rcpt) for rcpt in ("carol@example.test", "x@elsewhere.test")]

    unknown, relay = await trio.to_thread.run_sync(session)
    assert unknown[0] == 550
    assert unknown[1].startswith(b"5.1.1 ")
    assert relay[0] == 550
    assert relay[1].startswith(b"5.7.1 ")


async def test_never_an_open_relay_for_outsiders(tmp_path: Path, nursery: trio.Nursery) -> None:
    """A client outside local_networks is told 'Relay access denied' for other domains."""
    config = write_config(tmp_path, server={"local_networks": ["10.0.0.0/8"]})
    _, port = await start(nursery, config)
    refused = await trio.to_thread.run_sync(
        lambda: _send_expect_refusal(port, ["victim@elsewhere.test"])
    )
    assert refused == (550, b"5.7.1 <victim@elsewhere.test>: Relay access denied")


def _send_expect_refusal(port: int, recipients: list[str]) -> tuple[int, bytes]:
    try:
        smtp_send(port, "spammer@bad.test", recipients)
    except smtplib.SMTPRecipientsRefused as error:
        return error.recipients[recipients[0]]
    raise AssertionError("accepted")


async def test_starttls_and_auth_with_smtplib(
    tmp_path: Path,
    nursery: trio.Nursery,
    tls_files: tuple[Path, Path],
    client_ssl: ssl.SSLContext,
    alice_hash: str,
) -> None:
    """AUTH appears only after STARTTLS; login works; Received says ESMTPSA."""
    config = write_config(tmp_path, tls=tls_files, passwords={"alice": alice_hash})
    _, port = await start(nursery, config)

    def session() -> tuple[str, str]:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10) as client:
            client.ehlo()
            before = client.ehlo_resp.decode() if client.ehlo_resp else ""
            client.starttls(context=client_ssl)
            client.ehlo()
            after = client.ehlo_resp.decode() if client.ehlo_resp else ""
            client.login("alice", PASSWORD)
            client.sendmail("alice@example.test", ["bob@example.test"], BODY)
            return before, after

    before, after = await trio.to_thread.run_sync(session)
    assert "STARTTLS" in before
    assert "AUTH" not in before
    assert "STARTTLS" not in after
    assert "AUTH PLAIN LOGIN" in after
    (message,) = messages(config, "bob")
    received = " ".join(message["Received"].split())
    assert " with ESMTPSA id " in received
    assert "(using TLSv1." in received


async def test_auth_login_mechanism_and_bad_password(
    tmp_path: Path,
    nursery: trio.Nursery,
    tls_files: tuple[Path, Path],
    client_ssl: ssl.SSLContext,
    alice_hash: str,
    server_log: pytest.LogCaptureFixture,
) -> None:
    """AUTH LOGIN works; a wrong password or unknown user gets 535 5.7.8."""
    config = write_config(
        tmp_path,
        tls=tls_files,
        passwords={"alice": alice_hash},
        server={"auth_failure_delay": 0.01},
    )
    _, port = await start(nursery, config)

    def session() -> list[str]:
        outcomes = []
        for user, password in (("alice", "wrong"), ("mallory", PASSWORD), ("alice", PASSWORD)):
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.starttls(context=client_ssl)
                client.ehlo("client.test")
                client.user, client.password = user, password
                try:
                    code, _ = client.auth("LOGIN", client.auth_login)
                    outcomes.append(str(code))
                except smtplib.SMTPAuthenticationError as error:
                    text = error.smtp_error
                    shown = text.decode() if isinstance(text, bytes) else text
                    outcomes.append(f"{error.smtp_code} {shown[:5]}")
        return outcomes

    assert await trio.to_thread.run_sync(session) == ["535 5.7.8", "535 5.7.8", "235"]
    await trio.testing.wait_all_tasks_blocked()
    assert PASSWORD not in "\n".join(log_lines(server_log))


async def test_no_auth_without_tls(tmp_path: Path, nursery: trio.Nursery, alice_hash: str) -> None:
    """Passwords but no [tls]: AUTH is never offered and AUTH gets refused."""
    config = write_config(tmp_path, passwords={"alice": alice_hash})
    _, port = await start(nursery, config)

    def session() -> tuple[bool, int]:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.ehlo("client.test")
            code, _ = client.docmd("AUTH", "PLAIN AGFsaWNlAHg=")
            return client.has_extn("auth"), code

    offered, code = await trio.to_thread.run_sync(session)
    assert not offered
    assert code >= 500


async def test_aiosmtplib_client(
    tmp_path: Path,
    nursery: trio.Nursery,
    tls_files: tuple[Path, Path],
    client_ssl: ssl.SSLContext,
) -> None:
    """aiosmtplib (asyncio, in a thread) delivers over STARTTLS; EmailMessage intact."""
    config = write_config(tmp_path, tls=tls_files)
    _, port = await start(nursery, config)
    message = EmailMessage()
    message["From"] = "s@remote.test"
    message["To"] = "alice@example.test"
    message["Subject"] = "via aiosmtplib"
    message.set_content("ünïcode body\n")

    def run() -> tuple[dict[str, aiosmtplib.SMTPResponse], str]:
        import asyncio

        return asyncio.run(
            aiosmtplib.send(
                message,
                hostname="127.0.0.1",
                port=port,
                start_tls=True,
                tls_context=client_ssl,
                local_hostname="aio.test",
                timeout=10,
            )
        )

    errors, reply = await trio.to_thread.run_sync(run)
    with warnings.catch_warnings():
        # asyncio's STARTTLS leaves the plaintext transport object for the collector.
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    assert errors == {}
    assert "queued as" in reply
    (stored,) = messages(config, "alice")
    assert stored["Subject"] == "via aiosmtplib"
    assert stored.get_content() == "ünïcode body\n"
    assert " with ESMTPS id " in " ".join(stored["Received"].split())


async def test_large_message_over_the_wire(tmp_path: Path, nursery: trio.Nursery) -> None:
    """A 3 MB message (spooled to disk on the way) arrives byte for byte."""
    config = write_config(tmp_path)
    _, port = await start(nursery, config)
    lines = "".join(f"line {i:07d} " + "x" * 60 + "\r\n" for i in range(40_000))
    body = "Subject: big\r\n\r\n" + lines
    await trio.to_thread.run_sync(smtp_send, port, "s@remote.test", ["bob@example.test"], body)
    (raw,) = [path.read_bytes() for path in (config.local.maildir_root / "bob" / "new").iterdir()]
    assert raw.endswith(lines.replace("\r\n", "\n").encode())


async def test_size_limit(tmp_path: Path, nursery: trio.Nursery) -> None:
    """max_message_size is advertised and enforced with 552 5.3.4."""
    config = write_config(tmp_path, server={"max_message_size": 2000})
    _, port = await start(nursery, config)

    def session() -> tuple[int, int]:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.ehlo("client.test")
            advertised = int(client.esmtp_features["size"])
            try:
                client.sendmail("s@remote.test", ["bob@example.test"], "x" * 5000)
            except smtplib.SMTPSenderRefused as error:
                return advertised, error.smtp_code
            except smtplib.SMTPDataError as error:
                return advertised, error.smtp_code
        return advertised, 250

    assert await trio.to_thread.run_sync(session) == (2000, 552)
    assert messages(config, "bob") == []


async def test_listens_on_ipv6_and_ipv4(tmp_path: Path, nursery: trio.Nursery) -> None:
    """Several listen addresses; task_status reports each bound address."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    config = write_config(tmp_path, server={"listen": ["127.0.0.1:0", "[::1]:0"]})
    from trio_server.server import SMTPServer

    server = SMTPServer(config)
    server.prepare()
    try:
        bound = await nursery.start(server.serve)
    except OSError:
        pytest.skip("cannot bind ::1")
    hosts = sorted(host for host, _ in bound)
    assert hosts == ["127.0.0.1", "::1"]


async def test_graceful_shutdown_over_tcp(
    tmp_path: Path, server_log: pytest.LogCaptureFixture
) -> None:
    """begin_shutdown: idle client gets 421 4.3.2, serve() returns, the port is closed."""
    config = write_config(tmp_path)
    from trio_server.server import SMTPServer

    server = SMTPServer(config)
    server.prepare()
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(server.serve)
        port = bound[0][1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        assert (await stream.receive_some(1000)).startswith(b"220 ")
        await trio.testing.wait_all_tasks_blocked()
        server.begin_shutdown()
        assert (await stream.receive_some(1000)).startswith(b"421 4.3.2 ")
        assert await stream.receive_some(1000) == b""
        await stream.aclose()
    with pytest.raises(OSError, match=r"refused|connect"):
        await trio.open_tcp_stream("127.0.0.1", port)


async def test_shutdown_deadline_cuts_stragglers(tmp_path: Path) -> None:
    """A transaction still open after shutdown_timeout gets 421 4.3.2; serve() returns."""
    config = write_config(tmp_path, server={"shutdown_timeout": 0.2})
    from trio_server.server import SMTPServer

    server = SMTPServer(config)
    server.prepare()
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(server.serve)
        stream = await trio.open_tcp_stream("127.0.0.1", bound[0][1])
        client = MemoryClient(stream=stream, parser=ReplyParser())
        assert (await client.reply()).code == 220
        await client.command("EHLO client.test")
        await client.command("MAIL FROM:<s@remote.test>")
        start = trio.current_time()
        server.begin_shutdown()
        reply = await client.reply()
        assert (reply.code, reply.status) == (421, "4.3.2")
        assert trio.current_time() - start >= 0.2
        assert await client.closed()
        await stream.aclose()
    assert server.connections == set()
