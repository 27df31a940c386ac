"""The sansio-smtpd process: durability under SIGKILL, SIGTERM shutdown, start-up errors."""

from __future__ import annotations

import os
import re
import select
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

from minger import Status
from trio_server.minger_client import verify

from .conftest import write_config
from .nexthop import AiosmtpdHop

pytestmark = pytest.mark.slow

STARTUP_SECONDS = 30.0


@contextmanager
def server_process(
    folder: Path, extra: str = "", **server: object
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Run `python -m trio_server` on a fresh config; yields the process and its port."""
    config = write_config(folder, server=server)
    if extra:
        with config.path.open("a", encoding="utf-8") as file:
            file.write(extra)
    process = subprocess.Popen(
        [sys.executable, "-m", "trio_server", "--config", str(config.path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield process, wait_for_port(process)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        assert process.stderr is not None
        process.stderr.close()


_SEEN: dict[int, bytes] = {}


def wait_for_port(process: subprocess.Popen[bytes], what: bytes = rb"listening on") -> int:
    """Read the server's log until ``what HOST:PORT`` appears; returns the port.

    Reads the pipe with os.read (unbuffered), so select() never misses a line that a
    buffered reader already took; lines read so far are kept for the next call.
    """
    assert process.stderr is not None
    fd = process.stderr.fileno()
    pattern = re.compile(what + rb" 127\.0\.0\.1:(\d+)")
    deadline = time.monotonic() + STARTUP_SECONDS
    for _ in range(10_000):
        match = pattern.search(_SEEN.get(process.pid, b""))
        if match:
            return int(match.group(1))
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(remaining, 0))
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:
            seen = _SEEN.get(process.pid, b"").decode(errors="replace")
            raise AssertionError(f"server did not start: {seen}")
        _SEEN[process.pid] = _SEEN.get(process.pid, b"") + chunk
    raise AssertionError("no port in the server's log")


def whole_log(process: subprocess.Popen[bytes]) -> str:
    """Everything the (finished) server wrote to stderr."""
    assert process.stderr is not None
    return (_SEEN.get(process.pid, b"") + process.stderr.read()).decode(errors="replace")


class RawClient:
    """A blocking line-level SMTP client on a plain socket."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.file = self.sock.makefile("rb")

    def reply(self) -> bytes:
        """One whole reply (all its lines)."""
        lines = b""
        for _ in range(100):
            line = self.file.readline()
            if not line:
                return lines
            lines += line
            if line[3:4] != b"-":
                return lines
        raise AssertionError("reply too long")

    def command(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def open_transaction(client: RawClient) -> None:
    assert client.reply().startswith(b"220")
    assert client.command(b"EHLO client.test").startswith(b"250")
    assert client.command(b"MAIL FROM:<s@remote.test>").startswith(b"250")
    assert client.command(b"RCPT TO:<alice@example.test>").startswith(b"250")
    assert client.command(b"DATA").startswith(b"354")


def maildir_files(folder: Path, sub: str) -> list[Path]:
    path = folder / "mail" / "alice" / sub
    return sorted(path.iterdir()) if path.exists() else []


def test_sigkill_right_after_250_keeps_the_message(tmp_path: Path) -> None:
    """The 250 comes after fsync: killed at once, the message is complete in new/."""
    body = b"Subject: durable\r\n\r\n" + b"line of text\r\n" * 5000
    with server_process(tmp_path) as (process, port):
        client = RawClient(port)
        open_transaction(client)
        client.sock.sendall(body + b".\r\n")
        reply = client.reply()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        client.close()
    assert reply.startswith(b"250 2.0.0 Ok: queued as ")
    (stored,) = maildir_files(tmp_path, "new")
    assert stored.read_bytes().endswith(body.replace(b"\r\n", b"\n"))
    assert maildir_files(tmp_path, "tmp") == []


def test_sigkill_mid_data_leaves_nothing(tmp_path: Path) -> None:
    """Killed while the content is still arriving: nothing in new/, tmp/ or the spool."""
    with server_process(tmp_path) as (process, port):
        client = RawClient(port)
        open_transaction(client)
        # 2 MB: well past what the kernel buffers, so the server has read most of it
        # (and spilled it to its spool file) by the time sendall returns.
        client.sock.sendall(b"Subject: partial\r\n\r\n" + (b"x" * 998 + b"\r\n") * 2000)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        client.close()
    assert maildir_files(tmp_path, "new") == []
    assert maildir_files(tmp_path, "tmp") == []
    # The queue's own folders (tmp/, queue/, corrupt/) exist; no file may.
    assert [p for p in (tmp_path / "spool").rglob("*") if p.is_file()] == []


def test_sigterm_finishes_transaction_then_exits_0(tmp_path: Path) -> None:
    """SIGTERM: idle session 421 4.3.2 at once, the transaction in flight completes, exit 0."""
    with server_process(tmp_path) as (process, port):
        busy = RawClient(port)
        open_transaction(busy)
        idle = RawClient(port)
        assert idle.reply().startswith(b"220")
        process.send_signal(signal.SIGTERM)
        assert idle.reply().startswith(b"421 4.3.2 ")
        busy.sock.sendall(b"Subject: in flight\r\n\r\nstill delivered\r\n.\r\n")
        assert busy.reply().startswith(b"250 ")
        assert busy.reply().startswith(b"421 4.3.2 ")
        assert process.wait(timeout=30) == 0
        idle.close()
        busy.close()
        log = whole_log(process)
    assert "SIGTERM: shutting down" in log
    assert len(maildir_files(tmp_path, "new")) == 1


def test_sigint_when_idle_exits_0(tmp_path: Path) -> None:
    """SIGINT (Ctrl-C in `make run`) with no sessions: clean exit 0, no traceback."""
    with server_process(tmp_path) as (process, _):
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        log = whole_log(process)
    assert "Traceback" not in log
    assert "stopped" in log


def test_port_in_use_exits_1(tmp_path: Path) -> None:
    """A listen address that cannot be bound: one log line, exit 1, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, server={"listen": [f"127.0.0.1:{port}"]})
        result = subprocess.run(
            [sys.executable, "-m", "trio_server", "--config", str(config.path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert "cannot start" in result.stderr
    assert "Traceback" not in result.stderr


def test_entry_point_script_exists() -> None:
    """`sansio-smtpd` is installed next to the interpreter (what `make run` calls)."""
    script = Path(sys.executable).parent / "sansio-smtpd"
    assert script.exists()
    assert os.access(script, os.X_OK)


def test_minger_service_runs_beside_smtp(tmp_path: Path) -> None:
    """[minger] starts the UDP service on the same mailboxes; SIGTERM stops both, exit 0."""
    secret = "a-shared-secret-of-32-characters"
    extra = f'[minger]\nlisten = "127.0.0.1:0"\nsecret = "{secret}"\n'
    with server_process(tmp_path, extra) as (process, _):
        udp = wait_for_port(process, rb"minger listening on udp")
        answers = trio.run(_ask_minger, udp, secret)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    assert answers == [Status.ACTIVE, Status.ACTIVE, Status.NOT_FOUND]


async def _ask_minger(port: int, secret: str) -> list[Status]:
    return [
        await verify(address, ("127.0.0.1", port), secret, timeout=5.0)
        for address in ("alice@example.test", "A.Smith@example.test", "carol@example.test")
    ]


def test_forward_route_through_the_daemon(tmp_path: Path) -> None:
    """With [[forward]], the daemon queues routed mail and its delivery loop sends it on."""
    hop = AiosmtpdHop()
    hop.start()
    try:
        extra = f'[[forward]]\naddresses = "*@branch.test"\nserver = "127.0.0.1:{hop.port}"\n'
        with server_process(tmp_path, extra) as (process, port):
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                client.sendmail("s@remote.test", ["y@branch.test"], b"Subject: fwd\r\n\r\nhi\r\n")
            trio.run(_until_forwarded, hop)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
    finally:
        hop.stop()
    ((sender, recipients, content),) = hop.messages
    assert (sender, recipients) == ("s@remote.test", ["y@branch.test"])
    assert b"Subject: fwd" in content


async def _until_forwarded(hop: AiosmtpdHop) -> None:
    with trio.fail_after(30):
        for _ in range(3000):
            if hop.messages:
                return
            await trio.sleep(0.01)
