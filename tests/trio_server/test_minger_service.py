"""Tests for trio_server.minger_service: the [minger] table and the UDP Minger service."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

import minger
from minger import Status
from trio_server.minger_client import MingerTimeout, verify
from trio_server.minger_service import (
    MingerConfigError,
    MingerService,
    MingerSettings,
    make_directory,
    parse_host_port,
    parse_minger_table,
    serve_minger,
)

SECRET = "0123456789abcdef"
LOOPBACK = ("127.0.0.1", 0)
MAILBOXES = {"alice": "alice", "a.smith": "alice", "bob": "bob"}


def directory(mailbox: str) -> Status:
    """example.test with alice (active, also as a.smith) and bob (disabled)."""
    lookup = make_directory(
        is_local_domain=lambda domain: domain.lower() == "example.test",
        mailbox_for=lambda local: MAILBOXES.get(local.lower()),
        disabled_mailboxes={"bob"},
    )
    return lookup(mailbox)


def settings(**overrides: object) -> MingerSettings:
    """Loopback settings on a free port, signed queries only, overridable."""
    values: dict[str, object] = {"listen": LOOPBACK, "secret": SECRET, "allow_anonymous": False}
    values.update(overrides)
    return MingerSettings(**values)  # type: ignore[arg-type]


# -- parse_minger_table ----------------------------------------------------------------


def test_parse_full_table() -> None:
    """Every documented key is read into MingerSettings."""
    result = parse_minger_table(
        {
            "listen": "[::1]:4070",
            "secret": "at least 16 chars".replace(" ", "_"),
            "allow_anonymous": True,
            "allowed_networks": ["192.0.2.0/24", "::1/128"],
            "disabled_mailboxes": ["bob"],
            "rate_limit_per_second": 2,
            "rate_limit_burst": 7,
        },
        source="smtpd.toml",
    )
    assert result.listen == ("::1", 4070)
    assert result.secret == "at_least_16_chars"
    assert result.allow_anonymous is True
    assert result.allowed_networks == (
        ipaddress.ip_network("192.0.2.0/24"),
        ipaddress.ip_network("::1/128"),
    )
    assert result.disabled_mailboxes == frozenset({"bob"})
    assert result.rate_limit_per_second == 2.0
    assert result.rate_limit_burst == 7


def test_parse_defaults() -> None:
    """With only a secret, the service listens on loopback:4069 for loopback peers."""
    result = parse_minger_table({"secret": SECRET})
    assert result.listen == ("127.0.0.1", 4069)
    assert result.allow_anonymous is False
    assert all(net.is_loopback for net in result.allowed_networks)


def test_parse_secret_file_relative_to_base_dir(tmp_path: Path) -> None:
    """secret_file is read relative to the config's folder, newline stripped."""
    (tmp_path / "minger.secret").write_text(SECRET + "\n", encoding="ascii")
    result = parse_minger_table({"secret_file": "minger.secret"}, base_dir=tmp_path)
    assert result.secret == SECRET


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"secret": SECRET, "listen": "localhost:4069"}, "listen"),
        ({"secret": SECRET, "listen": "127.0.0.1:70000"}, "listen"),
        ({"secret": SECRET, "listen": 4069}, "listen"),
        ({"secret": "short"}, "secret"),
        ({"secret": "x" * 51}, "secret"),
        ({"secret": "sixteen chars with spaces"}, "secret"),
        ({"secret": 1234567890123456}, "secret"),
        ({}, "secret"),
        ({"allow_anonymous": False}, "secret"),
        ({"secret": SECRET, "allow_anonymous": "yes"}, "allow_anonymous"),
        ({"secret": SECRET, "allowed_networks": "127.0.0.0/8"}, "allowed_networks"),
        ({"secret": SECRET, "allowed_networks": []}, "allowed_networks"),
        ({"secret": SECRET, "allowed_networks": ["127.0.0.1/8"]}, "allowed_networks"),
        ({"secret": SECRET, "allowed_networks": ["nonsense"]}, "allowed_networks"),
        ({"secret": SECRET, "allowed_networks": [8]}, "allowed_networks"),
        ({"secret": SECRET, "disabled_mailboxes": "bob"}, "disabled_mailboxes"),
        ({"secret": SECRET, "rate_limit_per_second": 0}, "rate_limit_per_second"),
        ({"secret": SECRET, "rate_limit_per_second": True}, "rate_limit_per_second"),
        ({"secret": SECRET, "rate_limit_per_second": float("inf")}, "rate_limit_per_second"),
        ({"secret": SECRET, "rate_limit_burst": 0}, "rate_limit_burst"),
        ({"secret": SECRET, "rate_limit_burst": 2.5}, "rate_limit_burst"),
        ({"secret": SECRET, "secret_file": "f"}, "secret_file"),
        ({"secret_file": "/nonexistent/minger.secret"}, "secret_file"),
        ({"secret": SECRET, "port": 4069}, "port"),
    ],
)
def test_parse_errors_name_the_key(table: dict[str, object], key: str) -> None:
    """Each bad value raises a ValueError naming the file, the key and what was expected."""
    with pytest.raises(MingerConfigError) as info:
        parse_minger_table(table, source="smtpd.toml")
    assert isinstance(info.value, ValueError)
    assert info.value.key == key
    assert str(info.value).startswith(f"smtpd.toml: [minger] {key}: expected ")


def test_parse_error_without_source_starts_with_the_key() -> None:
    """Without a source the message starts with the key, for callers that add the file."""
    with pytest.raises(MingerConfigError) as info:
        parse_minger_table({"secret": SECRET, "listen": 4069})
    assert str(info.value).startswith("listen: expected ")


def test_parse_error_never_shows_the_secret() -> None:
    """A rejected secret is described by its length, never echoed."""
    with pytest.raises(MingerConfigError) as info:
        parse_minger_table({"secret": "hunter2hunter2"})
    assert "hunter2" not in str(info.value)


def test_settings_validate_when_built() -> None:
    """MingerSettings built directly enforces the same rules as the TOML parser."""
    with pytest.raises(MingerConfigError):
        MingerSettings(secret="short")
    with pytest.raises(MingerConfigError):
        MingerSettings(secret=None, allow_anonymous=False)
    with pytest.raises(MingerConfigError):
        MingerSettings(secret=SECRET, rate_limit_burst=0)
    with pytest.raises(MingerConfigError):
        MingerSettings(secret=SECRET, rate_limit_per_second=0.0)
    with pytest.raises(MingerConfigError):
        MingerSettings(secret=SECRET, allowed_networks=())
    with pytest.raises(MingerConfigError):
        MingerSettings(secret=SECRET, listen=("127.0.0.1", 65536))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:4070", ("127.0.0.1", 4070)),
        ("127.0.0.1", ("127.0.0.1", 4069)),
        ("[::1]:4070", ("::1", 4070)),
        ("[::1]", ("::1", 4069)),
        ("::1", ("::1", 4069)),
        ("mx.example.test:0", ("mx.example.test", 0)),
    ],
)
def test_parse_host_port(text: str, expected: tuple[str, int]) -> None:
    """host:port, [v6]:port and a bare host (port 4069) are understood."""
    assert parse_host_port(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", ":4069", "host:", "host:x", "host:65536", "host:\u00b2", "[::1", "[::1]x", "[::1]:"],
)
def test_parse_host_port_errors(text: str) -> None:
    """A missing host or a bad port is a ValueError."""
    with pytest.raises(ValueError, match=r"port|host|IPv6"):
        parse_host_port(text)


@pytest.mark.parametrize(
    ("mailbox", "status"),
    [
        ("alice@example.test", Status.ACTIVE),
        ("A.Smith@EXAMPLE.test", Status.ACTIVE),
        ("bob@example.test", Status.DISABLED),
        ("carol@example.test", Status.NOT_FOUND),
        ("alice@example.org", Status.NOT_FOUND),
    ],
)
def test_make_directory(mailbox: str, status: Status) -> None:
    """The directory answers as RCPT TO would: 5 active, 4 disabled, 3 unknown or foreign."""
    assert directory(mailbox) is status


# -- MingerService.handle (no socket) --------------------------------------------------

PEER = ("127.0.0.1", 40000)


def test_handle_logs_one_line_per_query(caplog: pytest.LogCaptureFixture) -> None:
    """Each answered query logs one INFO line with peer, mailbox, auth and status."""
    caplog.set_level(logging.INFO, logger="trio_server.minger")
    service = MingerService(settings(), directory)
    query = minger.make_query("alice@example.test", secret=SECRET)
    reply = service.handle(minger.encode_query(query), PEER, 0.0)
    assert reply == b"alice@example.test 5"
    [record] = caplog.records
    assert record.name == "trio_server.minger"
    assert record.getMessage() == (
        "minger peer=127.0.0.1:40000 mailbox=alice@example.test auth=digest status=5 ACTIVE"
    )


def test_handle_escapes_peer_text_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Control bytes from the peer reach the log only as escapes: one query, one line."""
    caplog.set_level(logging.INFO, logger="trio_server.minger")
    service = MingerService(settings(), directory)
    reply = service.handle(b"x@example.test \x1b[2J\r\nFAKE: line", PEER, 0.0)
    assert reply == b"x@example.test 0"
    [record] = caplog.records
    message = record.getMessage()
    assert "status=0 INVALID_REQUEST" in message
    assert "\\x1b" in message
    assert message.isprintable()


class _Lines(logging.Handler):
    """Collects formatted log messages."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@hypothesis_settings(max_examples=200)
@given(st.binary(max_size=600))
def test_handle_any_datagram(data: bytes) -> None:
    """Any datagram: no exception, a reply at most 2 bytes longer, one printable log line."""
    handler = _Lines()
    log = logging.getLogger("trio_server.minger")
    log.addHandler(handler)
    old_level = log.level
    log.setLevel(logging.INFO)
    try:
        reply = MingerService(settings(), directory).handle(data, PEER, 0.0)
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
    assert reply is None or len(reply) <= len(data) + 2
    [message] = handler.messages
    assert message.isprintable()


def test_handle_unechoable_datagram_sends_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """An empty datagram gets no reply, but still one log line saying so."""
    caplog.set_level(logging.INFO, logger="trio_server.minger")
    service = MingerService(settings(), directory)
    assert service.handle(b"", PEER, 0.0) is None
    assert "status=none" in caplog.records[0].getMessage()


def test_handle_directory_failure_sends_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """A failing directory yields silence (the client retries), logged as an error."""

    def broken(mailbox: str) -> Status:
        raise OSError("directory unavailable")

    service = MingerService(settings(), broken)
    query = minger.make_query("alice@example.test", secret=SECRET)
    assert service.handle(minger.encode_query(query), PEER, 0.0) is None
    assert caplog.records[0].levelno == logging.ERROR


def test_handle_rate_limit_drops_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    """Over the limit, datagrams are dropped; one warning per episode, then refills."""
    caplog.set_level(logging.INFO, logger="trio_server.minger")
    service = MingerService(settings(rate_limit_burst=2, rate_limit_per_second=1.0), directory)
    data = minger.encode_query(minger.make_query("alice@example.test", secret=SECRET))
    replies = [service.handle(data, PEER, 10.0) for _ in range(5)]
    assert replies[:2] == [b"alice@example.test 5"] * 2
    assert replies[2:] == [None, None, None]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "rate limit engaged" in warnings[0].getMessage()
    assert service.handle(data, PEER, 11.0) == b"alice@example.test 5"


def test_rate_limit_is_per_address_not_per_port() -> None:
    """Changing source port does not escape the limit; another address is independent."""
    service = MingerService(settings(rate_limit_burst=1), directory)
    data = minger.encode_query(minger.make_query("alice@example.test", secret=SECRET))
    assert service.handle(data, ("127.0.0.1", 1), 0.0) is not None
    assert service.handle(data, ("127.0.0.1", 2), 0.0) is None
    assert service.handle(data, ("127.0.0.2", 1), 0.0) is not None


def test_rate_limit_groups_ipv6_by_64() -> None:
    """IPv6 peers in one /64 share a bucket; IPv4-mapped peers count as IPv4."""
    service = MingerService(
        settings(rate_limit_burst=1, allowed_networks=(ipaddress.ip_network("::/0"),)),
        directory,
    )
    data = minger.encode_query(minger.make_query("alice@example.test", secret=SECRET))
    assert service.handle(data, ("2001:db8::1", 1, 0, 0), 0.0) is not None
    assert service.handle(data, ("2001:db8::ffff", 1, 0, 0), 0.0) is None
    assert service.handle(data, ("2001:db8:0:1::1", 1, 0, 0), 0.0) is not None
    assert service.handle(data, ("::ffff:127.0.0.1", 1, 0, 0), 0.0) == b"alice@example.test 1"


def test_mapped_ipv4_peer_matches_ipv4_network() -> None:
    """A dual-stack socket's ::ffff:127.0.0.1 peer is inside 127.0.0.0/8."""
    service = MingerService(settings(), directory)
    data = minger.encode_query(minger.make_query("alice@example.test", secret=SECRET))
    assert service.handle(data, ("::ffff:127.0.0.1", 1, 0, 0), 0.0) == b"alice@example.test 5"


# -- loopback UDP: the project's client against the project's server -------------------


async def start(nursery: trio.Nursery, **overrides: object) -> tuple[str, int]:
    """Start the service on 127.0.0.1, port 0; return the bound address."""
    bound: tuple[str, int] = await nursery.start(serve_minger, settings(**overrides), directory)
    return bound


@pytest.mark.parametrize(
    ("mailbox", "status"),
    [
        ("alice@example.test", Status.ACTIVE),
        ("bob@example.test", Status.DISABLED),
        ("carol@example.test", Status.NOT_FOUND),
    ],
)
async def test_loopback_directory_statuses(mailbox: str, status: Status) -> None:
    """verify() over loopback gets 5, 4 and 3 from the service's directory."""
    async with trio.open_nursery() as nursery:
        server = await start(nursery)
        assert server[0] == "127.0.0.1"
        assert server[1] != 0
        assert await verify(mailbox, server, SECRET, timeout=2.0) is status
        nursery.cancel_scope.cancel()


async def test_loopback_malformed_gets_0() -> None:
    """A malformed datagram over loopback is answered 0, echoing its first token."""
    async with trio.open_nursery() as nursery:
        server = await start(nursery)
        with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
            await sock.sendto(b"alice@example.test D=A7E/WJtlUbO5NWDjZba+bw==", server)
            with trio.fail_after(2):
                data, source = await sock.recvfrom(600)
        assert source == server
        assert minger.decode_response(data) == minger.Response(
            mailbox="alice@example.test", status=Status.INVALID_REQUEST
        )
        nursery.cancel_scope.cancel()


async def test_loopback_peer_outside_allowed_networks_gets_1() -> None:
    """A peer outside allowed_networks gets 1, even with the right secret."""
    async with trio.open_nursery() as nursery:
        server = await start(nursery, allowed_networks=(ipaddress.ip_network("192.0.2.0/24"),))
        status = await verify("alice@example.test", server, SECRET, timeout=2.0)
        assert status is Status.ACCESS_DENIED
        nursery.cancel_scope.cancel()


async def test_loopback_anonymous_refused_gets_2() -> None:
    """With allow_anonymous false, a query without a digest gets 2."""
    async with trio.open_nursery() as nursery:
        server = await start(nursery)
        status = await verify("alice@example.test", server, None, timeout=2.0)
        assert status is Status.BAD_CREDENTIALS
        nursery.cancel_scope.cancel()


async def test_loopback_wrong_secret_gets_2() -> None:
    """A digest made with another secret gets 2, and no directory answer."""
    async with trio.open_nursery() as nursery:
        server = await start(nursery)
        status = await verify("alice@example.test", server, "fedcba9876543210", timeout=2.0)
        assert status is Status.BAD_CREDENTIALS
        nursery.cancel_scope.cancel()


async def test_loopback_anonymous_allowed() -> None:
    """With allow_anonymous true, anonymous and signed queries both get the answer."""
    async with trio.open_nursery() as nursery:
        server = await start(nursery, allow_anonymous=True)
        assert await verify("alice@example.test", server, None, timeout=2.0) is Status.ACTIVE
        assert await verify("alice@example.test", server, SECRET, timeout=2.0) is Status.ACTIVE
        nursery.cancel_scope.cancel()


async def test_loopback_anonymous_only_server_without_secret() -> None:
    """A server configured with no secret answers anonymous queries."""
    async with trio.open_nursery() as nursery:
        server = await start(nursery, secret=None, allow_anonymous=True)
        assert await verify("bob@example.test", server, None, timeout=2.0) is Status.DISABLED
        nursery.cancel_scope.cancel()


async def test_loopback_rate_limit_engaged(autojump_clock: trio.testing.MockClock) -> None:
    """Over the burst the service stays silent (client times out); it recovers with time."""
    async with trio.open_nursery() as nursery:
        server = await start(nursery, rate_limit_burst=3, rate_limit_per_second=0.5)
        for _ in range(3):
            status = await verify("alice@example.test", server, SECRET, timeout=1.0, retries=0)
            assert status is Status.ACTIVE
        with pytest.raises(MingerTimeout):
            await verify("alice@example.test", server, SECRET, timeout=1.0, retries=0)
        await trio.sleep(2.0)  # virtual time: one token back at 0.5 per second
        status = await verify("alice@example.test", server, SECRET, timeout=1.0, retries=0)
        assert status is Status.ACTIVE
        nursery.cancel_scope.cancel()


async def test_loopback_over_long_datagram_gets_no_answer() -> None:
    """A datagram over 512 bytes is dropped unanswered, not truncated and read."""
    async with trio.open_nursery() as nursery:
        server = await start(nursery)
        with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
            await sock.sendto(b"alice@example.test " + b"x=1 " * 200, server)
            await sock.sendto(b"alice@example.test", server)
            with trio.fail_after(2):
                data, _ = await sock.recvfrom(600)
        # The only answer is to the second, short datagram.
        assert data == b"alice@example.test 2"
        nursery.cancel_scope.cancel()


async def test_service_reports_bound_ipv6_address() -> None:
    """Listening on [::1]:0 reports the bound IPv6 address and answers over it."""
    with trio.socket.socket(trio.socket.AF_INET6, trio.socket.SOCK_DGRAM) as probe:
        try:
            await probe.bind(("::1", 0))
        except OSError:  # pragma: no cover - IPv6 disabled on this host
            pytest.skip("cannot bind ::1")
    async with trio.open_nursery() as nursery:
        server = await start(nursery, listen=("::1", 0))
        assert server[0] == "::1"
        assert await verify("alice@example.test", server, SECRET, timeout=2.0) is Status.ACTIVE
        nursery.cancel_scope.cancel()


def test_server_config_loader_builds_minger_settings(tmp_path: Path) -> None:
    """sansio-smtpd's config loader turns [minger] into MingerSettings via this module."""
    from trio_server.config import load_config

    (tmp_path / "minger.secret").write_text(SECRET + "\n", encoding="ascii")
    path = tmp_path / "smtpd.toml"
    path.write_text(
        '[server]\nhostname = "mx.example.test"\n'
        '[local]\ndomains = ["example.test"]\n'
        '[minger]\nlisten = "127.0.0.1:0"\nsecret_file = "minger.secret"\n',
        encoding="utf-8",
    )
    loaded = load_config(path).minger
    assert isinstance(loaded, MingerSettings)
    assert loaded.secret == SECRET
    assert loaded.listen == ("127.0.0.1", 0)
