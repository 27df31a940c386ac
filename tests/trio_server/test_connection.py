"""One session over Trio memory streams: deadlines on a MockClock, shutdown, limits, TLS."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from sansio_smtp import ReplyParser
from trio_server.config import Config
from trio_server.connection import Peer, SMTPConnection
from trio_server.delivery import MaildirDelivery
from trio_server.server import SMTPServer

from .conftest import MemoryClient, connect_memory, log_lines, messages, write_config

MESSAGE = b"Subject: hi\r\n\r\nhello\r\n.\r\n"


def make_server(tmp_path: Path, **server: object) -> tuple[SMTPServer, Config]:
    config = write_config(tmp_path, server=server)
    smtp_server = SMTPServer(config)
    smtp_server.prepare()
    return smtp_server, config


async def open_transaction(client: MemoryClient) -> None:
    assert (await client.reply()).code == 220
    assert (await client.command("EHLO client.test")).code == 250
    assert (await client.command("MAIL FROM:<s@remote.test>")).code == 250
    assert (await client.command("RCPT TO:<alice@example.test>")).code == 250


async def test_session_delivers(
    tmp_path: Path, nursery: trio.Nursery, server_log: pytest.LogCaptureFixture
) -> None:
    """A plain session over a memory stream delivers, and logs each step with conn/peer."""
    server, config = make_server(tmp_path)
    client = await connect_memory(nursery, server)
    await open_transaction(client)
    assert (await client.command("DATA")).code == 354
    await client.send(MESSAGE)
    reply = await client.reply()
    assert reply.code == 250
    assert reply.text.startswith("Ok: queued as ")
    queue_id = reply.text.removeprefix("Ok: queued as ")
    assert (await client.command("QUIT")).code == 221
    assert await client.closed()
    await trio.testing.wait_all_tasks_blocked()
    (message,) = messages(config, "alice")
    assert f"id {queue_id}" in message["Received"]
    lines = log_lines(server_log)
    assert all(line.startswith("conn=1 peer=127.0.0.1:40000 ") for line in lines)
    events = [line.split()[2] for line in lines]
    assert events == [
        "connect",
        "helo",
        "mail",
        "rcpt",
        "accept",
        "delivered",
        "closed",
        "disconnect",
    ]
    assert f'queue_id="{queue_id}"' in lines[4]


async def test_pipelined_commands_over_lockstep_stream(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    """A whole pipelined transaction in one write gets every reply, in order, no deadlock."""
    server, config = make_server(tmp_path)
    client_end, server_end = trio.testing.lockstep_stream_pair()
    nursery.start_soon(server.handle, server_end, Peer(ip="127.0.0.1", port=1))
    client = MemoryClient(stream=client_end, parser=ReplyParser())
    assert (await client.reply()).code == 220
    await client.send(
        b"EHLO c.test\r\nMAIL FROM:<s@r.test>\r\nRCPT TO:<alice@example.test>\r\n"
        b"RCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
    )
    codes = [(await client.reply()).code for _ in range(6)]
    assert codes == [250, 250, 250, 550, 250, 354]
    await client.send(MESSAGE + b"QUIT\r\n")
    assert (await client.reply()).code == 250
    assert (await client.reply()).code == 221
    assert len(messages(config, "alice")) == len(messages(config, "bob")) == 1


async def test_command_timeout(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """No command within command_timeout: 421 4.4.2, then the server closes."""
    server, _ = make_server(tmp_path, command_timeout=30)
    client = await connect_memory(nursery, server)
    start = trio.current_time()
    assert (await client.reply()).code == 220
    reply = await client.reply()
    assert (reply.code, reply.status) == (421, "4.4.2")
    assert trio.current_time() - start == pytest.approx(30)
    assert await client.closed()


async def test_each_command_gets_a_fresh_deadline(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """command_timeout is per command: a slow but steady client is never cut off."""
    server, _ = make_server(tmp_path, command_timeout=30)
    client = await connect_memory(nursery, server)
    assert (await client.reply()).code == 220
    for _ in range(5):
        await trio.sleep(25)
        assert (await client.command("NOOP")).code == 250


async def test_data_deadline_extends_with_progress(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """In DATA, each chunk buys time (min data rate): 12 s gaps pass a 10 s timeout."""
    server, config = make_server(tmp_path, command_timeout=10, data_timeout=100, min_data_rate=100)
    client = await connect_memory(nursery, server)
    await open_transaction(client)
    assert (await client.command("DATA")).code == 354
    line = b"x" * 998 + b"\r\n"
    await client.send(b"Subject: slow\r\n\r\n" + line * 2)
    for _ in range(5):
        await trio.sleep(12)
        await client.send(line * 2)  # 2000 bytes buy 20 s
    await client.send(b".\r\n")
    assert (await client.reply()).code == 250
    assert len(messages(config, "alice")) == 1


async def test_data_deadline_never_beyond_data_timeout(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A burst buys at most data_timeout of silence; then 421 4.4.2 and nothing delivered."""
    server, config = make_server(tmp_path, command_timeout=10, data_timeout=100, min_data_rate=1)
    client = await connect_memory(nursery, server)
    await open_transaction(client)
    assert (await client.command("DATA")).code == 354
    await client.send(b"x" * 998 + b"\r\n")  # would buy 1000 s at 1 byte/s
    start = trio.current_time()
    reply = await client.reply()
    assert (reply.code, reply.status) == (421, "4.4.2")
    assert trio.current_time() - start == pytest.approx(100)
    assert messages(config, "alice") == []


async def test_trickling_client_times_out(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A client below min_data_rate is cut off although it never stops sending."""
    server, _ = make_server(tmp_path, command_timeout=10, data_timeout=100, min_data_rate=500)
    client = await connect_memory(nursery, server)
    await open_transaction(client)
    assert (await client.command("DATA")).code == 354
    start = trio.current_time()

    async def trickle() -> None:
        for _ in range(100):
            await trio.sleep(1)
            try:
                await client.send(b"x")
            except trio.BrokenResourceError:
                return

    nursery.start_soon(trickle)
    reply = await client.reply()
    assert (reply.code, reply.status) == (421, "4.4.2")
    assert trio.current_time() - start < 11  # ~10 s: 1 byte per second buys 2 ms each


async def test_shutdown_ends_idle_session(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """begin_shutdown: an idle session gets 421 4.3.2 at once."""
    server, _ = make_server(tmp_path)
    client = await connect_memory(nursery, server)
    assert (await client.reply()).code == 220
    assert (await client.command("EHLO c.test")).code == 250
    await trio.testing.wait_all_tasks_blocked()
    server.begin_shutdown()
    reply = await client.reply()
    assert (reply.code, reply.status) == (421, "4.3.2")
    assert await client.closed()


async def test_shutdown_lets_transaction_finish(tmp_path: Path, nursery: trio.Nursery) -> None:
    """begin_shutdown in mid-transaction: the message is still accepted, then 421 4.3.2."""
    server, config = make_server(tmp_path)
    client = await connect_memory(nursery, server)
    await open_transaction(client)
    await trio.testing.wait_all_tasks_blocked()
    server.begin_shutdown()
    assert (await client.command("DATA")).code == 354
    await client.send(MESSAGE)
    assert (await client.reply()).code == 250
    reply = await client.reply()
    assert (reply.code, reply.status) == (421, "4.3.2")
    assert len(messages(config, "alice")) == 1


async def test_new_connection_during_shutdown_refused(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    """A connection arriving while the server stops gets 421 4.3.2 instead of 220."""
    server, _ = make_server(tmp_path)
    server.begin_shutdown()
    client = await connect_memory(nursery, server)
    reply = await client.reply()
    assert (reply.code, reply.status) == (421, "4.3.2")


async def test_max_connections(
    tmp_path: Path, nursery: trio.Nursery, server_log: pytest.LogCaptureFixture
) -> None:
    """Past max_connections a new client gets 421 4.7.0 at connect and is closed."""
    server, _ = make_server(tmp_path, max_connections=2)
    first = await connect_memory(nursery, server)
    second = await connect_memory(nursery, server)
    assert (await first.reply()).code == 220
    assert (await second.reply()).code == 220
    third = await connect_memory(nursery, server)
    reply = await third.reply()
    assert (reply.code, reply.status) == (421, "4.7.0")
    assert await third.closed()
    assert any("reject" in line and "421 4.7.0" in line for line in log_lines(server_log))
    assert (await first.command("QUIT")).code == 221
    await trio.testing.wait_all_tasks_blocked()
    fourth = await connect_memory(nursery, server)
    assert (await fourth.reply()).code == 220


async def test_exception_stays_in_its_session(
    tmp_path: Path,
    nursery: trio.Nursery,
    monkeypatch: pytest.MonkeyPatch,
    server_log: pytest.LogCaptureFixture,
) -> None:
    """A bug in one session answers 421 4.3.0 there; the next session works."""
    server, config = make_server(tmp_path)
    real = server.context.delivery.deliver

    async def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr(server.context.delivery, "deliver", broken)
    client = await connect_memory(nursery, server)
    await open_transaction(client)
    assert (await client.command("DATA")).code == 354
    await client.send(MESSAGE)
    reply = await client.reply()
    assert (reply.code, reply.status) == (421, "4.3.0")
    assert await client.closed()
    assert any("error RuntimeError: boom" in line for line in log_lines(server_log))
    monkeypatch.setattr(server.context.delivery, "deliver", real)
    again = await connect_memory(nursery, server)
    await open_transaction(again)
    assert (await again.command("DATA")).code == 354
    await again.send(MESSAGE)
    assert (await again.reply()).code == 250
    assert len(messages(config, "alice")) == 1


async def test_disk_failure_is_a_temporary_error(
    tmp_path: Path, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the Maildir write fails the client gets 451 4.3.0 (retry), never 250."""
    server, _ = make_server(tmp_path)

    async def full(*args: object, **kwargs: object) -> object:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(server.context.delivery, "deliver", full)
    client = await connect_memory(nursery, server)
    await open_transaction(client)
    assert (await client.command("DATA")).code == 354
    await client.send(MESSAGE)
    reply = await client.reply()
    assert (reply.code, reply.status) == (451, "4.3.0")
    assert (await client.command("NOOP")).code == 250


async def test_log_lines_never_carry_peer_control_characters(
    tmp_path: Path, nursery: trio.Nursery, server_log: pytest.LogCaptureFixture
) -> None:
    """Hostile bytes in commands end up escaped: every log event is one printable line."""
    server, _ = make_server(tmp_path)
    client = await connect_memory(nursery, server)
    assert (await client.reply()).code == 220
    await client.command("EHLO c.test")
    await client.command("MAIL\x1b[2J FROM:<a@b.test>")
    await client.command("X\x00\x7f\x85 forged=1")
    await client.command("QUIT")
    await trio.testing.wait_all_tasks_blocked()
    lines = log_lines(server_log)
    assert sum("reject" in line for line in lines) == 2
    assert all(line.isprintable() for line in lines)


# ----------------------------------------------------------------- STARTTLS


async def tls_session(
    tmp_path: Path, nursery: trio.Nursery, tls_files: tuple[Path, Path], **smtp: object
) -> tuple[SMTPServer, MemoryClient]:
    config = write_config(tmp_path, tls=tls_files, smtp=smtp)
    server = SMTPServer(config)
    server.prepare()
    return server, await connect_memory(nursery, server)


async def test_starttls_over_memory_stream_forgets_ehlo(
    tmp_path: Path,
    nursery: trio.Nursery,
    tls_files: tuple[Path, Path],
    client_ssl: ssl.SSLContext,
) -> None:
    """After the handshake the session starts over: MAIL before a new EHLO is refused."""
    _, client = await tls_session(tmp_path, nursery, tls_files)
    assert (await client.reply()).code == 220
    assert "STARTTLS" in (await client.command("EHLO c.test")).lines
    assert (await client.command("STARTTLS")).code == 220
    tls = trio.SSLStream(client.stream, client_ssl, server_hostname="mx.example.test")
    await tls.do_handshake()
    secure = MemoryClient(stream=tls, parser=ReplyParser())
    assert (await secure.command("MAIL FROM:<s@r.test>")).code == 503
    ehlo = await secure.command("EHLO c.test")
    assert "STARTTLS" not in ehlo.lines


async def test_plaintext_pipelined_behind_starttls_is_never_executed(
    tmp_path: Path,
    nursery: trio.Nursery,
    tls_files: tuple[Path, Path],
    server_log: pytest.LogCaptureFixture,
) -> None:
    """STARTTLS with a command glued behind it: no 220, the command never runs."""
    _, client = await tls_session(tmp_path, nursery, tls_files)
    assert (await client.reply()).code == 220
    await client.command("EHLO c.test")
    await client.send(b"STARTTLS\r\nMAIL FROM:<evil@attacker.test>\r\n")
    reply = await client.reply()
    assert reply.code != 220
    assert await client.closed()
    await trio.testing.wait_all_tasks_blocked()
    assert not any(" mail " in line for line in log_lines(server_log))


async def test_plaintext_after_starttls_220_breaks_the_handshake(
    tmp_path: Path,
    nursery: trio.Nursery,
    tls_files: tuple[Path, Path],
    server_log: pytest.LogCaptureFixture,
) -> None:
    """Plaintext sent after the 220 goes to the TLS handshake, which fails; nothing runs."""
    _, client = await tls_session(tmp_path, nursery, tls_files)
    assert (await client.reply()).code == 220
    await client.command("EHLO c.test")
    assert (await client.command("STARTTLS")).code == 220
    await client.send(b"MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<alice@example.test>\r\n")
    assert await client.closed()
    await trio.testing.wait_all_tasks_blocked()
    lines = log_lines(server_log)
    assert any("tls-failed" in line for line in lines)
    assert not any(" mail " in line for line in lines)


async def test_bdat_chunks_are_delivered(tmp_path: Path, nursery: trio.Nursery) -> None:
    """CHUNKING (RFC 3030): BDAT chunks are spooled and delivered like DATA."""
    server, config = make_server(tmp_path)
    client = await connect_memory(nursery, server)
    await open_transaction(client)
    first, last = b"Subject: b\r\n", b"\r\nchunk\r\n"
    await client.send(b"BDAT %d\r\n%s" % (len(first), first))
    assert (await client.reply()).code == 250
    await client.send(b"BDAT %d LAST\r\n%s" % (len(last), last))
    reply = await client.reply()
    assert reply.code == 250
    assert "queued as" in reply.text
    (message,) = messages(config, "alice")
    assert message["Subject"] == "b"
    assert message.get_content() == "chunk\n"


async def test_bdat_deadline_extends_with_progress(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A BDAT chunk arriving slowly but steadily is not cut off by command_timeout."""
    server, config = make_server(tmp_path, command_timeout=10, min_data_rate=100)
    client = await connect_memory(nursery, server)
    await open_transaction(client)
    await client.send(b"BDAT 10002 LAST\r\n" + b"x" * 2000)
    for _ in range(4):
        await trio.sleep(12)
        await client.send(b"x" * 2000)
    await client.send(b"\r\n")
    assert (await client.reply()).code == 250
    assert len(messages(config, "alice")) == 1


async def test_smtputf8_transaction_is_traced_as_utf8smtp(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    """MAIL ... SMTPUTF8 makes the Received: 'with' word UTF8SMTP (RFC 6531 §3.7.3)."""
    server, config = make_server(tmp_path)
    client = await connect_memory(nursery, server)
    assert (await client.reply()).code == 220
    await client.command("EHLO c.test")
    assert (await client.command("MAIL FROM:<sénder@remote.test> SMTPUTF8")).code == 250
    assert (await client.command("RCPT TO:<bob@example.test>")).code == 250
    assert (await client.command("DATA")).code == 354
    await client.send("Subject: ünï\r\n\r\nbody\r\n.\r\n".encode())
    assert (await client.reply()).code == 250
    (message,) = messages(config, "bob")
    assert " with UTF8SMTP id " in " ".join(message["Received"].split())
    assert message["Return-Path"] == "<sénder@remote.test>"


async def test_mail_pipelined_after_last_message_during_shutdown(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    """Shutting down: a MAIL pipelined behind the final dot gets 421 4.3.2, no new transaction."""
    server, config = make_server(tmp_path)
    client = await connect_memory(nursery, server)
    await open_transaction(client)
    assert (await client.command("DATA")).code == 354
    await trio.testing.wait_all_tasks_blocked()
    server.begin_shutdown()
    await client.send(MESSAGE + b"MAIL FROM:<next@remote.test>\r\n")
    assert (await client.reply()).code == 250
    reply = await client.reply()
    assert (reply.code, reply.status) == (421, "4.3.2")
    assert await client.closed()
    assert len(messages(config, "alice")) == 1


async def test_stalled_tls_handshake_is_closed(
    tmp_path: Path,
    nursery: trio.Nursery,
    tls_files: tuple[Path, Path],
    autojump_clock: trio.testing.MockClock,
    server_log: pytest.LogCaptureFixture,
) -> None:
    """A client that never starts the TLS handshake is dropped after command_timeout."""
    config = write_config(tmp_path, tls=tls_files, server={"command_timeout": 20})
    server = SMTPServer(config)
    server.prepare()
    client = await connect_memory(nursery, server)
    assert (await client.reply()).code == 220
    await client.command("EHLO c.test")
    assert (await client.command("STARTTLS")).code == 220
    start = trio.current_time()
    assert await client.closed()
    assert trio.current_time() - start == pytest.approx(20)
    assert any("handshake timeout" in line for line in log_lines(server_log))


async def test_client_that_never_reads_is_dropped(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Replies that cannot be delivered within command_timeout end the session."""
    server, _ = make_server(tmp_path, command_timeout=15)
    client_end, server_end = trio.testing.lockstep_stream_pair()
    done = trio.Event()

    async def session() -> None:
        await server.handle(server_end, Peer(ip="127.0.0.1", port=1))
        done.set()

    nursery.start_soon(session)
    start = trio.current_time()
    await done.wait()  # the greeting is never read
    assert trio.current_time() - start == pytest.approx(15)
    await client_end.aclose()


async def test_session_trickled_one_byte_at_a_time(tmp_path: Path, nursery: trio.Nursery) -> None:
    """Every command and the content arriving one byte per read still delivers exactly."""
    server, config = make_server(tmp_path)
    client_end, server_end = trio.testing.lockstep_stream_pair()
    nursery.start_soon(server.handle, server_end, Peer(ip="127.0.0.1", port=1))
    client = MemoryClient(stream=client_end, parser=ReplyParser())
    codes: list[int] = []

    async def read_replies() -> None:
        for _ in range(20):
            codes.append((await client.reply()).code)
            if codes[-1] == 221:
                return

    script = (
        b"EHLO c.test\r\nMAIL FROM:<s@r.test>\r\nRCPT TO:<a.smith@example.test>\r\nDATA\r\n"
        + b"Subject: drip\r\n\r\n..dot-stuffed\r\n"
        + MESSAGE
        + b"QUIT\r\n"
    )
    async with trio.open_nursery() as inner:
        inner.start_soon(read_replies)
        for index in range(len(script)):
            await client.send(script[index : index + 1])
    assert codes == [220, 250, 250, 250, 354, 250, 221]
    (stored,) = messages(config, "alice")
    assert stored.get_content() == ".dot-stuffed\nSubject: hi\n\nhello\n"


async def test_forgotten_decision_is_an_error_not_a_hang(
    tmp_path: Path,
    nursery: trio.Nursery,
    monkeypatch: pytest.MonkeyPatch,
    server_log: pytest.LogCaptureFixture,
) -> None:
    """If this layer ever left an event unanswered, the client gets 421 4.3.0, not silence."""
    server, _ = make_server(tmp_path)

    async def forgetful(self: SMTPConnection, event: object) -> None:
        del self, event

    monkeypatch.setattr(SMTPConnection, "_handle", forgetful)
    client = await connect_memory(nursery, server)
    assert (await client.reply()).code == 220
    reply = await client.command("EHLO c.test")
    assert (reply.code, reply.status) == (421, "4.3.0")
    assert await client.closed()
    assert any("engine paused" in line for line in log_lines(server_log))


async def test_failed_auth_is_slowed_then_cut_off(
    tmp_path: Path,
    nursery: trio.Nursery,
    tls_files: tuple[Path, Path],
    client_ssl: ssl.SSLContext,
    alice_hash: str,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Each failed AUTH waits auth_failure_delay; max_auth_failures ends the session."""
    config = write_config(
        tmp_path,
        tls=tls_files,
        passwords={"alice": alice_hash},
        server={"auth_failure_delay": 2, "max_auth_failures": 2},
    )
    server = SMTPServer(config)
    server.prepare()
    client = await connect_memory(nursery, server)
    assert (await client.reply()).code == 220
    await client.command("EHLO c.test")
    assert (await client.command("STARTTLS")).code == 220
    tls = trio.SSLStream(client.stream, client_ssl, server_hostname="mx.example.test")
    await tls.do_handshake()
    secure = MemoryClient(stream=tls, parser=ReplyParser())
    await secure.command("EHLO c.test")
    wrong = base64.b64encode(b"\0alice\0wrong").decode()
    start = trio.current_time()
    first = await secure.command(f"AUTH PLAIN {wrong}")
    assert (first.code, first.status) == (535, "5.7.8")
    assert trio.current_time() - start == pytest.approx(2, abs=0.5)
    second = await secure.command(f"AUTH PLAIN {wrong}")
    assert (second.code, second.status) == (421, "4.7.0")
    assert await secure.closed()


async def test_client_vanishing_mid_data_delivers_nothing(
    tmp_path: Path, nursery: trio.Nursery, server_log: pytest.LogCaptureFixture
) -> None:
    """EOF in the middle of DATA (even past the in-memory part): nothing lands anywhere."""
    server, config = make_server(tmp_path)
    client_end, server_end = trio.testing.memory_stream_pair()
    done = trio.Event()

    async def session() -> None:
        await server.handle(server_end, Peer(ip="127.0.0.1", port=1))
        done.set()

    nursery.start_soon(session)
    client = MemoryClient(stream=client_end, parser=ReplyParser())
    await open_transaction(client)
    assert (await client.command("DATA")).code == 354
    await client.send(b"Subject: cut\r\n\r\n" + (b"y" * 998 + b"\r\n") * 200)  # 200 KB: spilled
    await client.stream.aclose()
    await done.wait()
    assert messages(config, "alice") == []
    assert list((tmp_path / "spool").iterdir()) == []
    assert log_lines(server_log)[-1].endswith(" disconnect")


@pytest.mark.parametrize("policy", ["reject", "normalize"])
async def test_bare_newlines_policy(tmp_path: Path, nursery: trio.Nursery, policy: str) -> None:
    """bare_newlines: "reject" refuses a bare LF (5xx, nothing kept); "normalize" keeps the line."""
    server, config = make_server(tmp_path, bare_newlines=policy)
    client = await connect_memory(nursery, server)
    await open_transaction(client)
    assert (await client.command("DATA")).code == 354
    await client.send(b"Subject: lf\r\n\r\none\ntwo\r\n.\r\n")
    reply = await client.reply()
    if policy == "reject":
        assert reply.code // 100 == 5
        assert messages(config, "alice") == []
    else:
        assert reply.code == 250
        (message,) = messages(config, "alice")
        assert message.get_content() == "one\ntwo\n"


async def test_slow_delivery_is_not_a_client_timeout(
    tmp_path: Path,
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """command_timeout bounds waiting on the client only: a slow disk still gets its 250."""
    server, config = make_server(tmp_path, command_timeout=30)
    real = MaildirDelivery.deliver

    async def slow(self: MaildirDelivery, *args: Any, **kwargs: Any) -> Any:
        await trio.sleep(100)
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(MaildirDelivery, "deliver", slow)
    client = await connect_memory(nursery, server)
    await open_transaction(client)
    assert (await client.command("DATA")).code == 354
    start = trio.current_time()
    await client.send(MESSAGE)
    assert (await client.reply()).code == 250
    assert trio.current_time() - start == pytest.approx(100)
    assert (await client.command("NOOP")).code == 250
    assert len(messages(config, "alice")) == 1
