"""Shared helpers for the sansio-smtpd tests: configs, a running server, a memory client."""

from __future__ import annotations

import email
import email.message
import email.policy
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trustme

from sansio_smtp import Reply, ReplyParser
from trio_server.config import Config, load_config
from trio_server.connection import Peer
from trio_server.passwords import hash_password
from trio_server.server import SMTPServer

PASSWORD = "correct horse battery"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(value)


def write_config(
    folder: Path,
    *,
    server: Mapping[str, object] | None = None,
    smtp: Mapping[str, object] | None = None,
    tls: tuple[Path, Path] | None = None,
    passwords: Mapping[str, str] | None = None,
) -> Config:
    """Write smtpd.toml into ``folder`` (example.test, alice + a.smith, bob) and load it."""
    tables: dict[str, dict[str, object]] = {
        "server": {
            "hostname": "mx.example.test",
            "listen": ["127.0.0.1:0"],
            "spool_dir": "spool",
            **(server or {}),
        },
        "smtp": {"rejected_recipients_log": "log/bad.log", **(smtp or {})},
        "local": {"domains": ["example.test"], "maildir_root": "mail"},
        "local.mailboxes": {"alice": ["alice", "a.smith"], "bob": ["bob"]},
    }
    if tls is not None:
        tables["tls"] = {"certificate": str(tls[0]), "private_key": str(tls[1])}
    if passwords:
        tables["local.passwords"] = dict(passwords)
    text = "".join(
        f"[{name}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in table.items())
        for name, table in tables.items()
    )
    path = folder / "smtpd.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throw-away certificate authority."""
    return trustme.CA()


@pytest.fixture(scope="session")
def alice_hash() -> str:
    """alice's password hash (cheap scrypt cost, same format)."""
    return hash_password(PASSWORD, log_n=4)


@pytest.fixture
def tls_files(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path]:
    """Certificate and key files for mx.example.test / 127.0.0.1, signed by ``ca``."""
    cert = ca.issue_cert("mx.example.test", "127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path


@pytest.fixture
def client_ssl(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts ``ca``."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture the server's log lines."""
    caplog.set_level(logging.INFO, logger="sansio_smtpd")
    return caplog


def log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The server's log messages so far."""
    return [r.getMessage() for r in caplog.records if r.name == "sansio_smtpd"]


async def start(nursery: trio.Nursery, config: Config) -> tuple[SMTPServer, int]:
    """Start a server on 127.0.0.1 port 0 in ``nursery``; returns it and its port."""
    server = SMTPServer(config)
    server.prepare()
    bound = await nursery.start(server.serve)
    return server, bound[0][1]


def messages(config: Config, mailbox: str) -> list[email.message.EmailMessage]:
    """The messages in ``mailbox``'s new/, parsed, oldest name first."""
    folder = config.local.maildir_root / mailbox / "new"
    result = []
    for path in sorted(folder.iterdir()):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        result.append(message)
    return result


def raw_messages(config: Config, mailbox: str) -> list[bytes]:
    """The raw bytes of the messages in ``mailbox``'s new/."""
    folder = config.local.maildir_root / mailbox / "new"
    return [path.read_bytes() for path in sorted(folder.iterdir())]


@dataclass
class MemoryClient:
    """A scripted SMTP client on one end of a memory stream pair."""

    stream: trio.abc.Stream
    parser: ReplyParser

    async def reply(self) -> Reply:
        """The next complete reply from the server."""
        for _ in range(10_000):
            reply = self.parser.next_reply()
            if reply is not None:
                return reply
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError("server closed the connection")
            self.parser.receive_data(bytes(data))
        raise AssertionError("no reply")

    async def send(self, data: bytes) -> None:
        """Send raw bytes."""
        await self.stream.send_all(data)

    async def command(self, line: str) -> Reply:
        """Send one command line and return its reply."""
        await self.send(line.encode() + b"\r\n")
        return await self.reply()

    async def closed(self) -> bool:
        """Whether the server has closed its side (reads EOF)."""
        try:
            return await self.stream.receive_some(65536) == b""
        except trio.BrokenResourceError:
            return True


async def connect_memory(
    nursery: trio.Nursery, server: SMTPServer, peer_ip: str = "127.0.0.1"
) -> MemoryClient:
    """Run one session of ``server`` over a memory stream; returns the client end."""
    client_end, server_end = trio.testing.memory_stream_pair()
    nursery.start_soon(server.handle, server_end, Peer(ip=peer_ip, port=40000))
    return MemoryClient(stream=client_end, parser=ReplyParser())
